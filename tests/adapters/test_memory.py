"""The contract suite against the in-memory adapter, with an echo model made of the payload codecs."""

from __future__ import annotations

from typing import Any

import numpy as np

from endpointkit.adapters.base import Adapter, RawResponse
from endpointkit.adapters.memory import MemoryAdapter, MemoryCloud
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
