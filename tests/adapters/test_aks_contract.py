"""The adapter contract, run against AKS-on-fakes.

Real azure-mgmt-containerservice, azure-storage-blob and kubernetes clients talk HTTPS to a fake ARM and a fake
Kubernetes API (tests/fakes); invoke goes over HTTP to an echo Triton listening on the fake LoadBalancer's
address, which decodes the request and returns every INPUTn as OUTPUTn, so the echo check covers encoding,
the key header, the transport and decoding (not a model: that is Triton's behaviour, tested locally).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from endpointkit.adapters.base import Adapter
from endpointkit.spec import Spec
from tests.adapters.contract import AdapterContract
from tests.fakes.kube import FakeAzure, aks_spec, azure, repository, tls

# Fixtures used by the tests below (pytest finds them in this namespace).
__all__ = ["azure", "repository", "tls"]


class TestAksOnFakes(AdapterContract):
    invokes_real_model = True

    @pytest.fixture(autouse=True)
    def _azure(self, azure: FakeAzure, repository: Path) -> None:
        self.azure = azure
        self.repository = repository

    def make_spec(self) -> Spec:
        return aks_spec(self.repository, self.azure.arm.url, target={"api_key": True})

    def make_adapter(self, spec: Spec) -> Adapter:
        adapter: Adapter = self.azure.adapter(spec.targets["azure"])
        return adapter

    def change_spec(self, spec: Spec) -> Spec:
        variants = [{**v.model_dump(exclude_none=True), "instance_count": 2} for v in spec.variants]
        return aks_spec(self.repository, self.azure.arm.url, target={"api_key": True}, variants=variants)

    def invoke_inputs(self) -> dict[str, Any]:
        return {"INPUT0": np.array([1.0, 2.0, 3.0], dtype=np.float32)}
