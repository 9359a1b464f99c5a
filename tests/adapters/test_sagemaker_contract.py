"""The adapter contract, run against SageMaker-on-moto (server mode on loopback).

moto has no UpdateEndpoint and no Triton: the fixtures' botocore hooks emulate the blue/green update, and moto's
static results API answers InvokeEndpoint with a Triton JSON response echoing the contract's input, so the echo
check exercises encoding, the sagemaker-runtime call and decoding, not a model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from endpointkit.adapters.base import Adapter
from endpointkit.spec import Spec
from tests.adapters.contract import AdapterContract
from tests.adapters.sagemaker_fixtures import SageMakerWorld

pytest_plugins = ["tests.adapters.sagemaker_fixtures"]

INPUT = [1.0, 2.0, 3.0]
ECHO = {
    "model_name": "echo",
    "model_version": "1",
    "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [3], "data": INPUT}],
}


class TestSageMakerOnMoto(AdapterContract):
    invokes_real_model = True  # the canned answer is a valid Triton response carrying the input back

    @pytest.fixture(autouse=True)
    def _moto(self, sagemaker_world: SageMakerWorld) -> None:
        self.sagemaker_world = sagemaker_world
        sagemaker_world.set_invoke_results(
            {"Body": orjson.dumps(ECHO).decode(), "ContentType": "application/json"}
        )

    def make_spec(self) -> Spec:
        return self.sagemaker_world.spec()

    def make_adapter(self, spec: Spec) -> Adapter:
        return self.sagemaker_world.adapter(spec)

    def change_spec(self, spec: Spec) -> Spec:
        variants = [
            {**variant.model_dump(exclude_none=True), "instance_count": 2} for variant in spec.variants
        ]
        return self.sagemaker_world.spec(variants=variants)

    def invoke_inputs(self) -> dict[str, Any]:
        return {"INPUT0": np.array(INPUT, dtype=np.float32)}
