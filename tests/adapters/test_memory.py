"""The contract suite against the in-memory adapter, with an echo model made of the payload codecs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import endpointkit as ek
from endpointkit.adapters import adapter_for_state
from endpointkit.adapters.base import Adapter, EndpointState, EndpointStatus, RawResponse
from endpointkit.adapters.memory import MemoryAdapter, MemoryCloud
from endpointkit.errors import PayloadError
from endpointkit.payloads import decode_request, encode_response
from endpointkit.spec import Spec, spec_from_dict
from tests.adapters.contract import AdapterContract


def echo(body: bytes, headers: dict[str, str]) -> RawResponse:
    request = decode_request(body, headers)
    outputs = {name.replace("INPUT", "OUTPUT"): array for name, array in request.inputs.items()}
    response = encode_response(outputs, model_name="echo", binary=True)
    return RawResponse(200, dict(response.headers), response.to_bytes())


class TestMemoryContract(AdapterContract):
    def setup_method(self) -> None:
        self.cloud = MemoryCloud()

    def make_adapter(self, spec: Spec) -> Adapter:
        return MemoryAdapter(cloud=self.cloud, responder=echo)

    def make_spec(self) -> Spec:
        return spec_from_dict(
            {
                "name": "contract",
                "model": {"repository": "s3://models/demo/model.tar.gz"},
                "variants": [{"name": "primary"}],
            }
        )

    def change_spec(self, spec: Spec) -> Spec:
        data = spec.model_dump(mode="json", by_alias=True, exclude={"base_dir"})
        data["variants"][0]["instance_count"] = 2
        return spec_from_dict(data)

    def invoke_inputs(self) -> dict[str, Any]:
        return {"INPUT0": np.arange(6, dtype=np.float32).reshape(2, 3)}


def test_the_registry_builds_an_adapter_from_a_state_that_satisfies_the_protocol() -> None:
    state = EndpointState("contract", "mem", "memory", EndpointStatus.IN_SERVICE)
    adapter = adapter_for_state(state, cloud=MemoryCloud())
    assert isinstance(adapter, MemoryAdapter) and isinstance(adapter, Adapter)
    assert adapter.target_name == "mem" and adapter.max_request_bytes is None


def test_invoke_refuses_a_request_over_the_adapters_limit_before_any_call() -> None:
    adapter = MemoryAdapter(responder=echo)
    state = ek.apply(TestMemoryContract().make_spec(), adapter=adapter)
    adapter.max_request_bytes = 1024
    with pytest.raises(PayloadError, match="1,024-byte limit"):
        ek.invoke_endpoint(state, {"INPUT0": np.zeros(1024, dtype=np.float32)}, adapter=adapter)
    assert [call for call in adapter.calls if call[0] == "invoke"] == []
    small = ek.invoke_endpoint(state, {"INPUT0": np.zeros(4, dtype=np.float32)}, adapter=adapter)
    assert small["OUTPUT0"].tolist() == [0.0] * 4
