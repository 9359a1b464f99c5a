"""The invoke connection pool: one adapter per endpoint, bounded, closed when an endpoint goes, thread-safe."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from endpointkit._clients import ConnectionPool
from endpointkit.adapters.base import EndpointState, EndpointStatus
from endpointkit.errors import UsageError


class Connection:
    """Stands in for an adapter: the pool only makes, hands out and closes them."""

    def __init__(self, state: EndpointState, **options: Any) -> None:
        self.endpoint = state.name
        self.options = options
        self.closed = False

    def close(self) -> None:
        self.closed = True


def endpoint(name: str, target: str = "local") -> EndpointState:
    return EndpointState(name, target, "local", EndpointStatus.IN_SERVICE, url=f"http://127.0.0.1/{name}")


def test_an_endpoint_keeps_one_adapter_between_calls() -> None:
    made: list[Connection] = []

    def connect(state: EndpointState, **options: Any) -> Connection:
        made.append(Connection(state, **options))
        return made[-1]

    pool = ConnectionPool(connect=connect)
    first = pool.adapter_for(endpoint("a"), {"credential": "c"})
    assert pool.adapter_for(endpoint("a"), {"credential": "c"}) is first
    assert len(made) == 1 and made[0].options == {"credential": "c"}


def test_other_adapter_options_get_an_adapter_of_their_own() -> None:
    """A call asking for ``max_response_bytes=N`` must not be served by an adapter made without it."""
    pool = ConnectionPool(connect=Connection)
    plain = pool.adapter_for(endpoint("a"))
    bounded = pool.adapter_for(endpoint("a"), {"max_response_bytes": 1024})
    factory = pool.adapter_for(endpoint("a"), {"client_factory": {"unhashable": True}})

    assert len({id(plain), id(bounded), id(factory)}) == 3
    assert bounded.options == {"max_response_bytes": 1024}  # type: ignore[attr-defined]
    pool.forget("a")
    assert plain.closed and bounded.closed and factory.closed  # type: ignore[attr-defined]


def test_the_least_recently_used_endpoint_is_closed_beyond_the_bound() -> None:
    pool = ConnectionPool(2, connect=Connection)
    a, b = pool.adapter_for(endpoint("a")), pool.adapter_for(endpoint("b"))
    pool.adapter_for(endpoint("a"))  # a is used again: b is now the least recent
    c = pool.adapter_for(endpoint("c"))
    assert (a.closed, b.closed, c.closed) == (False, True, False)
    assert len(pool) == 2


def test_keeping_a_second_adapter_for_an_endpoint_keeps_the_first_and_closes_the_second() -> None:
    pool = ConnectionPool(connect=Connection)
    first, second = Connection(endpoint("a")), Connection(endpoint("a"))
    assert pool.keep(endpoint("a"), first) is first
    assert pool.keep(endpoint("a"), second) is first
    assert not first.closed and second.closed


def test_forget_closes_one_endpoint_on_every_target_and_nothing_else() -> None:
    pool = ConnectionPool(connect=Connection)
    here, there = pool.adapter_for(endpoint("a")), pool.adapter_for(endpoint("a", target="other"))
    other = pool.adapter_for(endpoint("b"))
    pool.forget("a")
    assert here.closed and there.closed and not other.closed
    assert pool.adapter_for(endpoint("b")) is other


def test_close_closes_everything_and_the_pool_connects_again_after() -> None:
    pool = ConnectionPool(connect=Connection)
    before = pool.adapter_for(endpoint("a"))
    pool.close()
    after = pool.adapter_for(endpoint("a"))
    assert before.closed and not after.closed and after is not before


def test_threads_asking_for_one_endpoint_at_once_share_one_adapter() -> None:
    made: list[Connection] = []
    all_asking = threading.Barrier(8)

    def connect(state: EndpointState, **options: Any) -> Connection:
        all_asking.wait(timeout=30)  # every thread misses the pool before any keeps its adapter
        made.append(Connection(state))
        return made[-1]

    pool = ConnectionPool(connect=connect)
    with ThreadPoolExecutor(max_workers=8) as workers:
        handed_out = list(workers.map(lambda _: pool.adapter_for(endpoint("a")), range(8)))
    kept = handed_out[0]
    assert all(adapter is kept for adapter in handed_out)
    assert len(made) == 8 and not kept.closed
    assert sum(adapter.closed for adapter in made) == 7


def test_a_pool_holds_at_least_one_endpoint() -> None:
    with pytest.raises(UsageError, match="at least one endpoint"):
        ConnectionPool(0)
