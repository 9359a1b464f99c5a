"""The invoke connection pool: adapters kept warm between ``invoke_endpoint`` calls, closed when an endpoint goes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from endpointkit.adapters import adapter_for_state
from endpointkit.adapters.base import Adapter, EndpointState
from endpointkit.errors import UsageError

__all__ = ["DEFAULT_POOL_SIZE", "ConnectionPool"]

# Adapters hold pooled keep-alive connections: rebuilding one per call would cost a TCP handshake (and for
# SageMaker a boto3 client) on every request. A small bounded pool keyed by endpoint keeps them warm.
DEFAULT_POOL_SIZE = 16

_EndpointKey = tuple[str, str, str, str | None, tuple[tuple[str, Any], ...]]


def _key(state: EndpointState, options: Mapping[str, Any] | None = None) -> _EndpointKey:
    """The endpoint, and the adapter options it was made with: other options make another adapter (a call
    asking for ``max_response_bytes=N`` must not get the adapter pooled by a call that did not)."""
    made_with = tuple(sorted((name, _token(value)) for name, value in (options or {}).items()))
    return (state.kind, state.target, state.name, state.url, made_with)


def _token(value: Any) -> Any:
    """``value`` itself when hashable, else its identity (a client factory, a credential object)."""
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value


class ConnectionPool:
    """Adapters (and the connections they hold) per endpoint, for the invoke path. Bounded and thread-safe.

    The least recently used adapter is closed when a new endpoint would make more than ``size``. Adapters are
    closed outside the lock, so a slow close never holds up another thread's request.

    Args:
        size: how many endpoints keep an adapter at most.
        connect: makes the adapter for an endpoint from its state (default: the target kind's ``from_state``).
    """

    def __init__(
        self,
        size: int = DEFAULT_POOL_SIZE,
        *,
        connect: Callable[..., Adapter] = adapter_for_state,
    ) -> None:
        if size < 1:
            raise UsageError(f"a connection pool holds at least one endpoint, not {size}")
        self._size = size
        self._connect = connect
        self._adapters: OrderedDict[_EndpointKey, Adapter] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._adapters)

    def adapter_for(self, state: EndpointState, options: Mapping[str, Any] | None = None) -> Adapter:
        """The pooled adapter for ``state``'s endpoint and these ``options``, made on first use with them."""
        key = _key(state, options)
        with self._lock:
            pooled = self._adapters.get(key)
            if pooled is not None:
                self._adapters.move_to_end(key)
                return pooled
        # Made outside the lock: building a client can take a while and must not stall other endpoints.
        return self.keep(state, self._connect(state, **dict(options or {})), options)

    def keep(
        self, state: EndpointState, adapter: Adapter, options: Mapping[str, Any] | None = None
    ) -> Adapter:
        """Pool ``adapter`` for ``state``'s endpoint and return the adapter to use for it.

        When another thread pooled one for the same endpoint meanwhile, that one is kept and returned, and
        ``adapter`` is closed: an adapter in the pool may be serving a request, so it is never replaced.
        """
        key = _key(state, options)
        with self._lock:
            pooled = self._adapters.get(key)
            if pooled is None:
                self._adapters[key] = adapter
                evicted = [
                    self._adapters.popitem(last=False)[1] for _ in range(len(self._adapters) - self._size)
                ]
            else:
                self._adapters.move_to_end(key)
                evicted = [adapter] if adapter is not pooled else []
        for unused in evicted:
            unused.close()
        return adapter if pooled is None else pooled

    def forget(self, name: str) -> None:
        """Close the pooled connections to endpoint ``name`` on any target (before it is destroyed)."""
        with self._lock:
            keys = [key for key in self._adapters if key[2] == name]
            dropped = [self._adapters.pop(key) for key in keys]
        for adapter in dropped:
            adapter.close()

    def close(self) -> None:
        """Close every pooled connection. The pool stays usable: the next call connects afresh."""
        with self._lock:
            dropped = list(self._adapters.values())
            self._adapters.clear()
        for adapter in dropped:
            adapter.close()
