"""The public ways of invoking, end to end on a real local endpoint: gRPC, asyncio (HTTP and gRPC), streams, CLI.

One endpoint serves an identity model (the default) beside the decoupled ``counter``, ``failing_counter`` and
``slow_echo`` models of ``tests/triton_decoupled_models.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml

import endpointkit as ek
from endpointkit.adapters.local import LocalAdapter
from endpointkit.cli import main
from endpointkit.spec import LocalTarget, Spec
from tests.adapters.conftest import IDENTITY_MODEL
from tests.adapters.test_local import local_spec
from tests.triton_decoupled_models import (
    COUNTER_MODEL,
    FAIL_AFTER,
    FAILING_COUNTER_MODEL,
    SLOW_ECHO_MODEL,
    cancelled_marker,
    started_marker,
    write_decoupled_models,
)

pytestmark = pytest.mark.triton

INPUTS = {"INPUT0": np.arange(6, dtype=np.float32)}
WAIT_SECONDS = 30.0


class Served:
    """The endpoint of this module: its spec file, its state, the adapter that applied it, the markers folder."""

    def __init__(
        self, spec_file: Path, spec: Spec, state: ek.EndpointState, adapter: LocalAdapter, markers: Path
    ):
        self.spec_file = spec_file
        self.spec = spec
        self.state = state
        self.adapter = adapter
        self.markers = markers


@pytest.fixture(scope="module")
def served(identity_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("transports")
    repository = folder / "models"
    shutil.copytree(identity_repository, repository)
    markers = folder / "markers"
    write_decoupled_models(repository, markers)
    document: dict[str, Any] = {
        "name": "transports",
        "model": {"repository": str(repository), "default_model": IDENTITY_MODEL},
        "variants": [{"name": "primary"}],
        "timeouts": {"create": "120s", "update": "120s", "delete": "60s"},
        "targets": {"local": {"kind": "local", "state_dir": str(folder / "state"), "transport": "grpc"}},
    }
    spec_file = folder / "endpoint.yaml"
    spec_file.write_text(yaml.safe_dump(document))
    spec = ek.load_spec(spec_file)
    target = spec.deployment("local").target
    assert isinstance(target, LocalTarget)
    adapter = LocalAdapter(target, target_name="local")
    state = ek.apply(spec, adapter=adapter)
    try:
        yield Served(spec_file, spec, state, adapter, markers)
    finally:
        ek.destroy(spec, adapter=adapter)
        adapter.close()


def _wait_for(path: Path) -> None:
    """Until ``path`` exists, bounded: the model writes it from its own process."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path.name} did not appear within {WAIT_SECONDS} s")
        time.sleep(0.02)


# ---- gRPC, blocking ------------------------------------------------------------------------------------------
def test_the_targets_transport_setting_travels_in_the_state(served: Served) -> None:
    assert served.state.extra["transport"] == "grpc"
    assert ek.status(served.spec, adapter=served.adapter).extra["transport"] == "grpc"  # type: ignore[union-attr]


def test_grpc_and_http_give_the_same_answer(served: Served) -> None:
    over_grpc = ek.invoke_endpoint(served.state, INPUTS, adapter=served.adapter)
    over_http = ek.invoke_endpoint(served.state, INPUTS, transport="http", adapter=served.adapter)

    np.testing.assert_array_equal(over_grpc["OUTPUT0"], INPUTS["INPUT0"])
    np.testing.assert_array_equal(over_http["OUTPUT0"], INPUTS["INPUT0"])


def test_a_16_mib_tensor_goes_over_grpc(served: Served) -> None:
    big = np.random.default_rng(0).random(4 * 1024 * 1024, dtype=np.float32)

    response = ek.invoke_endpoint(served.state, {"INPUT0": big}, transport="grpc", adapter=served.adapter)

    np.testing.assert_array_equal(response["OUTPUT0"], big)


def test_an_unknown_input_over_grpc_is_bad_input_with_tritons_words(served: Served) -> None:
    with pytest.raises(ek.InvalidRequestError, match="NOPE"):
        ek.invoke_endpoint(served.state, {"NOPE": INPUTS["INPUT0"]}, transport="grpc", adapter=served.adapter)


def test_an_unknown_transport_is_a_usage_error(served: Served) -> None:
    with pytest.raises(ek.UsageError, match="carrier-pigeon"):
        ek.invoke_endpoint(served.state, INPUTS, transport="carrier-pigeon", adapter=served.adapter)


# ---- asyncio -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_many_calls_in_flight_on_one_loop_all_answer(served: Served, transport: str) -> None:
    async def run() -> list[ek.InferResponse]:
        calls = [
            ek.ainvoke_endpoint(
                served.state,
                {"INPUT0": np.full(4, index, np.float32)},
                transport=transport,
                adapter=served.adapter,
            )
            for index in range(64)
        ]
        try:
            return await asyncio.gather(*calls)
        finally:
            await served.adapter.aclose()

    responses = asyncio.run(run())

    for index, response in enumerate(responses):
        np.testing.assert_array_equal(response["OUTPUT0"], np.full(4, index, np.float32))


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_a_cancelled_call_leaves_the_connections_usable(served: Served, transport: str) -> None:
    request_id = f"cancel-{transport}"

    async def run() -> ek.InferResponse:
        slow = asyncio.create_task(
            ek.ainvoke_endpoint(
                served.state,
                {"INPUT0": np.ones(3, np.float32), "DELAY_MS": np.array([3000], np.int32)},
                model=SLOW_ECHO_MODEL,
                request_id=request_id,
                transport=transport,
                adapter=served.adapter,
            )
        )
        while not started_marker(served.markers, request_id).exists() and not slow.done():
            await asyncio.sleep(0.02)
        slow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slow
        assert slow.cancelled()
        try:
            return await ek.ainvoke_endpoint(
                served.state, INPUTS, transport=transport, adapter=served.adapter
            )
        finally:
            await served.adapter.aclose()

    response = asyncio.run(asyncio.wait_for(run(), WAIT_SECONDS))

    np.testing.assert_array_equal(response["OUTPUT0"], INPUTS["INPUT0"])


# ---- streams -------------------------------------------------------------------------------------------------
def test_a_stream_yields_each_response_of_a_decoupled_model(served: Served) -> None:
    responses = list(
        ek.invoke_stream(
            served.state, {"COUNT": np.array([5], np.int32)}, model=COUNTER_MODEL, adapter=served.adapter
        )
    )

    assert [int(response["INDEX"][0]) for response in responses] == [0, 1, 2, 3, 4]


def test_leaving_a_stream_early_cancels_it_on_the_server(served: Served) -> None:
    request_id = "leave-early"
    stream = ek.invoke_stream(
        served.state,
        {"COUNT": np.array([1000], np.int32), "DELAY_MS": np.array([20], np.int32)},
        model=COUNTER_MODEL,
        request_id=request_id,
        adapter=served.adapter,
    )
    first = next(stream)
    stream.close()

    assert int(first["INDEX"][0]) == 0
    _wait_for(cancelled_marker(served.markers, request_id))


def test_a_model_failing_mid_stream_raises_after_its_good_responses(served: Served) -> None:
    received: list[int] = []
    with pytest.raises(ek.ProviderError, match="failed at response") as raised:
        for response in ek.invoke_stream(
            served.state,
            {"COUNT": np.array([5], np.int32)},
            model=FAILING_COUNTER_MODEL,
            adapter=served.adapter,
        ):
            received.append(int(response["INDEX"][0]))

    assert received == list(range(FAIL_AFTER))
    assert raised.value.code == "ModelError"


def test_a_model_that_is_not_decoupled_yields_its_one_response(served: Served) -> None:
    (response,) = ek.invoke_stream(served.state, INPUTS, adapter=served.adapter)

    np.testing.assert_array_equal(response["OUTPUT0"], INPUTS["INPUT0"])


def test_an_asyncio_stream_yields_each_response(served: Served) -> None:
    async def run() -> list[int]:
        try:
            return [
                int(response["INDEX"][0])
                async for response in ek.ainvoke_stream(
                    served.state,
                    {"COUNT": np.array([3], np.int32)},
                    model=COUNTER_MODEL,
                    adapter=served.adapter,
                )
            ]
        finally:
            await served.adapter.aclose()

    assert asyncio.run(run()) == [0, 1, 2]


# ---- the CLI -------------------------------------------------------------------------------------------------
def _write_npy(folder: Path, name: str, array: np.ndarray[Any, Any]) -> Path:
    path = folder / f"{name}.npy"
    np.save(path, array)
    return path


def test_cli_invoke_over_grpc_prints_the_outputs(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_npy(tmp_path, "input0", INPUTS["INPUT0"])

    code = main(
        ["invoke", str(served.spec_file), "--input", f"INPUT0={path}", "--transport", "grpc", "--json"]
    )

    assert code == 0
    document = orjson.loads(capsys.readouterr().out)
    assert document["outputs"]["OUTPUT0"]["data"] == INPUTS["INPUT0"].tolist()


def test_cli_invoke_stream_prints_one_json_line_per_response(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_npy(tmp_path, "count", np.array([3], np.int32))

    code = main(
        [
            "invoke",
            str(served.spec_file),
            "--input",
            f"COUNT={path}",
            "--model",
            COUNTER_MODEL,
            "--stream",
            "--json",
        ]
    )

    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [orjson.loads(line)["outputs"]["INDEX"]["data"] for line in lines] == [[0], [1], [2]]


def test_cli_stream_over_http_is_a_usage_error(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_npy(tmp_path, "count", np.array([3], np.int32))

    code = main(
        ["invoke", str(served.spec_file), "--input", f"COUNT={path}", "--stream", "--transport", "http"]
    )

    assert code == 2
    assert "gRPC" in capsys.readouterr().err


# ---- the endpoint key over gRPC ----------------------------------------------------------------------------
def test_an_endpoint_key_guards_grpc_and_travels_with_our_calls(
    identity_repository: Path, state_root: Path
) -> None:
    from endpointkit.adapters._grpc import GrpcConnection
    from endpointkit.payloads._grpc import encode_grpc_request

    spec = local_spec(identity_repository, state_root, name="grpc-key", api_key=True)
    target = spec.deployment("local").target
    assert isinstance(target, LocalTarget)
    adapter = LocalAdapter(target, target_name="local")
    try:
        state = ek.apply(spec, adapter=adapter)
        response = ek.invoke_endpoint(state, INPUTS, transport="grpc", adapter=adapter)
        np.testing.assert_array_equal(response["OUTPUT0"], INPUTS["INPUT0"])

        (server,) = state.extra["servers"]
        with GrpcConnection(f"127.0.0.1:{server['grpc_port']}") as keyless:
            request = encode_grpc_request(INPUTS, model_name=IDENTITY_MODEL)
            with pytest.raises(ek.AuthError):
                keyless.infer(request, timeout=WAIT_SECONDS)
    finally:
        ek.destroy(spec, adapter=adapter)
        adapter.close()


def test_a_state_from_before_a_blue_green_update_still_reaches_the_endpoint_over_grpc(
    identity_repository: Path, state_root: Path
) -> None:
    first = local_spec(identity_repository, state_root, name="grpc-update")
    second = local_spec(identity_repository, state_root, name="grpc-update", environment={"REVISION": "2"})
    target = first.deployment("local").target
    assert isinstance(target, LocalTarget)
    adapter = LocalAdapter(target, target_name="local")
    try:
        old_state = ek.apply(first, adapter=adapter)
        new_state = ek.apply(second, adapter=adapter)
        assert old_state.extra["servers"] != new_state.extra["servers"]

        response = ek.invoke_endpoint(old_state, INPUTS, transport="grpc", adapter=adapter)

        np.testing.assert_array_equal(response["OUTPUT0"], INPUTS["INPUT0"])
    finally:
        ek.destroy(second, adapter=adapter)
        adapter.close()


def test_a_response_over_the_adapters_bound_is_a_payload_error_naming_the_setting(served: Served) -> None:
    target = served.spec.deployment("local").target
    assert isinstance(target, LocalTarget)
    bounded = LocalAdapter(target, target_name="local", max_response_bytes=1024)
    big = {"INPUT0": np.zeros(4096, np.float32)}
    try:
        with pytest.raises(ek.PayloadError, match="max_response_bytes"):
            ek.invoke_endpoint(served.state, big, binary=True, transport="http", adapter=bounded)
        assert ek.invoke_endpoint(served.state, big, adapter=served.adapter)["OUTPUT0"].size == 4096
    finally:
        bounded.close()
