"""SageMakerAdapter.ainvoke: the synchronous invoke on a bounded executor, for asyncio callers."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from typing import Any

import numpy as np
import orjson
import pytest
from botocore.response import StreamingBody

import endpointkit as ek
from endpointkit.adapters.base import RawResponse
from endpointkit.adapters.sagemaker import SageMakerAdapter, make_client_factory
from endpointkit.payloads import decode_response, encode_request
from tests.adapters.sagemaker_fixtures import REGION, SageMakerWorld

pytest_plugins = ["tests.adapters.sagemaker_fixtures"]

WAIT = 30.0  # seconds a test waits for threads to get somewhere; generous for a loaded 2-core machine
STATE = ek.EndpointState(
    "echo-endpoint",
    "aws",
    "sagemaker",
    ek.EndpointStatus.IN_SERVICE,
    region=REGION,
    extra={"mode": "realtime"},
)


class GatedRuntime:
    """A sagemaker-runtime client whose InvokeEndpoint echoes the body once the gate opens, counting calls."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.bodies: list[bytes] = []
        self.active = 0
        self.peak = 0
        self.finished = 0
        self.clients_made = 0
        self._changed = threading.Condition()

    def invoke_endpoint(self, **params: Any) -> dict[str, Any]:
        with self._changed:
            self.bodies.append(params["Body"])
            self.active += 1
            self.peak = max(self.peak, self.active)
            self._changed.notify_all()
        try:
            if not self.gate.wait(WAIT):
                raise TimeoutError("the test never opened the gate")
            return {
                "Body": StreamingBody(io.BytesIO(params["Body"]), len(params["Body"])),
                "ContentType": "application/json",
            }
        finally:
            with self._changed:
                self.active -= 1
                self.finished += 1
                self._changed.notify_all()

    def wait_until(self, *, active: int | None = None, finished: int | None = None) -> None:
        def reached() -> bool:
            return (active is None or self.active == active) and (
                finished is None or self.finished == finished
            )

        with self._changed:
            assert self._changed.wait_for(reached, WAIT), (self.active, self.finished)

    def close(self) -> None:
        """What the adapter calls when it closes its clients."""


def _adapter(runtime: GatedRuntime, max_concurrency: int) -> SageMakerAdapter:
    def factory(service: str) -> Any:
        assert service == "sagemaker-runtime", service
        runtime.clients_made += 1
        time.sleep(
            0.01
        )  # as long as botocore takes to build a client, at least: concurrent first calls overlap here
        return runtime

    return SageMakerAdapter(region=REGION, client_factory=factory, max_concurrency=max_concurrency)


def _body(index: int) -> bytes:
    return orjson.dumps({"index": index})


def _pool_threads() -> list[str]:
    return [
        thread.name for thread in threading.enumerate() if thread.name.startswith("endpointkit-sagemaker")
    ]


def test_32_concurrent_calls_all_return_with_at_most_max_concurrency_running() -> None:
    runtime = GatedRuntime()
    adapter = _adapter(runtime, max_concurrency=4)

    async def scenario() -> list[RawResponse]:
        calls = [
            asyncio.ensure_future(adapter.ainvoke(STATE, _body(index), {"Content-Type": "application/json"}))
            for index in range(32)
        ]
        await asyncio.to_thread(runtime.wait_until, active=4)  # the pool is full: the other 28 wait in line
        runtime.gate.set()
        return await asyncio.gather(*calls)

    try:
        responses = asyncio.run(scenario())
    finally:
        adapter.close()

    assert [bytes(response.body) for response in responses] == [_body(index) for index in range(32)]
    assert runtime.peak == 4 and len(runtime.bodies) == 32
    assert runtime.clients_made == 1  # the first calls, on four threads at once, share one client


def test_a_cancelled_call_leaves_the_adapter_usable() -> None:
    runtime = GatedRuntime()
    adapter = _adapter(runtime, max_concurrency=2)

    async def scenario() -> RawResponse:
        held = asyncio.ensure_future(adapter.ainvoke(STATE, _body(1), {"Content-Type": "application/json"}))
        await asyncio.to_thread(runtime.wait_until, active=1)
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
        runtime.gate.set()  # the abandoned call now finishes on its thread; its answer is dropped
        await asyncio.to_thread(runtime.wait_until, finished=1)
        return await adapter.ainvoke(STATE, _body(2), {"Content-Type": "application/json"})

    try:
        response = asyncio.run(scenario())
    finally:
        adapter.close()

    assert bytes(response.body) == _body(2)
    assert runtime.bodies == [_body(1), _body(2)] and runtime.active == 0


def test_a_call_cancelled_while_waiting_in_line_is_never_sent() -> None:
    runtime = GatedRuntime()
    adapter = _adapter(runtime, max_concurrency=1)

    async def scenario() -> None:
        first = asyncio.ensure_future(adapter.ainvoke(STATE, _body(1), {"Content-Type": "application/json"}))
        await asyncio.to_thread(runtime.wait_until, active=1)
        queued = asyncio.ensure_future(adapter.ainvoke(STATE, _body(2), {"Content-Type": "application/json"}))
        await asyncio.sleep(0)  # let it reach the executor's queue
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued  # by then the executor's future is cancelled too: no thread will take it
        runtime.gate.set()
        await first
        # The line is first in, first out: had the cancelled call stayed in it, it would run before this one.
        await adapter.ainvoke(STATE, _body(3), {"Content-Type": "application/json"})

    try:
        asyncio.run(scenario())
    finally:
        adapter.close()

    assert runtime.bodies == [_body(1), _body(3)]


def test_errors_come_back_through_the_await() -> None:
    adapter = _adapter(GatedRuntime(), max_concurrency=1)

    async def scenario() -> None:
        await adapter.ainvoke(STATE, _body(1), {"Content-Type": "application/json"}, model="other")

    try:
        with pytest.raises(ek.UnsupportedCapabilityError, match="default model"):
            asyncio.run(scenario())
    finally:
        adapter.close()


def test_close_ends_the_pool_threads_and_the_adapter_works_again() -> None:
    runtime = GatedRuntime()
    runtime.gate.set()
    adapter = _adapter(runtime, max_concurrency=3)
    before = set(_pool_threads())

    async def three_calls() -> None:
        await asyncio.gather(*(adapter.ainvoke(STATE, _body(i), {}) for i in range(3)))

    try:
        asyncio.run(three_calls())
        assert set(_pool_threads()) - before
        adapter.close()
        assert set(_pool_threads()) - before == set()
        asyncio.run(three_calls())
    finally:
        adapter.close()

    assert len(runtime.bodies) == 6


def test_ainvoke_through_moto_returns_the_decoded_answer(sagemaker_world: SageMakerWorld) -> None:
    spec = sagemaker_world.spec()
    adapter = sagemaker_world.adapter(spec)
    state = ek.apply(spec, adapter=adapter)
    answer = {
        "model_name": "echo",
        "model_version": "1",
        "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [2], "data": [4.0, 5.0]}],
    }
    sagemaker_world.set_invoke_results(
        {"Body": orjson.dumps(answer).decode(), "ContentType": "application/json"}
    )
    request = encode_request({"INPUT0": np.array([4, 5], np.float32)}, binary=False, protocol="sagemaker")

    raw = asyncio.run(adapter.ainvoke(state, request.body, request.headers, timeout=20))

    np.testing.assert_array_equal(decode_response(raw.body, raw.headers)["OUTPUT0"], [4.0, 5.0])


def test_a_default_factory_keeps_as_many_connections_as_calls_may_run(sagemaker_aws_environment: str) -> None:
    adapter = SageMakerAdapter(region=REGION, max_concurrency=7)
    try:
        assert adapter._api.client("sagemaker-runtime").meta.config.max_pool_connections == 7
        assert adapter._runtime(5.0).meta.config.max_pool_connections == 7  # the client of a per-call timeout
        assert make_client_factory(REGION)("s3").meta.config.max_pool_connections == 16
    finally:
        adapter.close()
