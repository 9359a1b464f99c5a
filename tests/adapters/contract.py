"""The lifecycle every adapter must honour, run against each of them (memory, local, SageMaker, AKS).

Subclass :class:`AdapterContract` in a test module and implement the four hooks; pytest collects the tests.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import numpy as np
import pytest

import endpointkit as ek
from endpointkit.adapters.base import Adapter, EndpointStatus
from endpointkit.spec import Spec


class AdapterContract:
    """Create, read, update, delete, invoke, idempotent re-apply, delete of a missing endpoint."""

    #: whether ``invoke`` reaches a real model that echoes its input (False: only the call path is checked)
    invokes_real_model: ClassVar[bool] = True

    # ---- hooks -------------------------------------------------------------------------------------------
    def make_adapter(self, spec: Spec) -> Adapter:
        raise NotImplementedError  # a Protocol-like hook every subclass provides

    def make_spec(self) -> Spec:
        raise NotImplementedError

    def change_spec(self, spec: Spec) -> Spec:
        """A spec whose endpoint config differs from ``spec`` (an update, not a replace)."""
        raise NotImplementedError

    def invoke_inputs(self) -> dict[str, Any]:
        raise NotImplementedError

    def check_response(self, response: ek.InferResponse, inputs: dict[str, Any]) -> None:
        for name, value in inputs.items():
            np.testing.assert_array_equal(response.outputs[name.replace("INPUT", "OUTPUT")], value)

    # ---- the contract ------------------------------------------------------------------------------------
    @pytest.fixture
    def deployed(self) -> Any:
        spec = self.make_spec()
        adapter = self.make_adapter(spec)
        state = ek.apply(spec, adapter=adapter)
        try:
            yield spec, adapter, state
        finally:
            ek.destroy(spec, adapter=adapter)
            adapter.close()

    def test_create_then_read(self, deployed: Any) -> None:
        spec, adapter, state = deployed
        assert state.status is EndpointStatus.IN_SERVICE
        assert state.name == spec.name
        observed = ek.status(spec, adapter=adapter)
        assert observed is not None and observed.status is EndpointStatus.IN_SERVICE
        assert [v.name for v in observed.variants] == [v.name for v in spec.variants]

    def test_unchanged_reapply_plans_no_change(self, deployed: Any) -> None:
        spec, adapter, _ = deployed
        plan = ek.plan(spec, adapter=adapter)
        assert not plan.has_changes, str(plan)
        again = ek.apply(spec, adapter=adapter)
        assert again.status is EndpointStatus.IN_SERVICE

    def test_update_moves_to_new_config(self, deployed: Any) -> None:
        spec, adapter, before = deployed
        changed = self.change_spec(spec)
        plan = ek.plan(changed, adapter=adapter)
        assert [c.action for c in plan.changes if c.resource == "endpoint"] == ["update"]
        after = ek.apply(changed, adapter=adapter)
        assert after.status is EndpointStatus.IN_SERVICE
        assert not ek.plan(changed, adapter=adapter).has_changes
        assert after.spec_hash != before.spec_hash or after.extra != before.extra

    def test_ttl_change_retags_without_rollout(self, deployed: Any) -> None:
        spec, adapter, before = deployed
        assert before.expires_at is None
        retagged = spec.model_copy(update={"ttl": 7200.0})
        plan = ek.plan(retagged, adapter=adapter)
        changes = [change for change in plan.changes if change.action != "noop"]
        assert [(change.action, change.resource) for change in changes] == [("update", "endpoint")], str(plan)
        assert changes[0].reason.startswith("tags only"), str(plan)
        started = datetime.now(timezone.utc).replace(microsecond=0)
        after = ek.apply(retagged, adapter=adapter)
        assert after.status is EndpointStatus.IN_SERVICE
        assert after.spec_hash == plan.desired.spec_hash != before.spec_hash
        assert after.expires_at is not None
        assert (
            started + timedelta(hours=2)
            <= after.expires_at
            <= datetime.now(timezone.utc) + timedelta(hours=2)
        )
        assert not ek.plan(retagged, adapter=adapter).has_changes
        back = ek.apply(spec, adapter=adapter)  # dropping the ttl drops the expiry
        assert back.expires_at is None and back.spec_hash == before.spec_hash

    def test_invoke(self, deployed: Any) -> None:
        _, adapter, state = deployed
        inputs = self.invoke_inputs()
        response = ek.invoke_endpoint(state, inputs, adapter=adapter)
        if self.invokes_real_model:
            self.check_response(response, inputs)

    def test_delete_then_status_is_none(self, deployed: Any) -> None:
        spec, adapter, _ = deployed
        assert ek.destroy(spec, adapter=adapter) is True
        assert ek.status(spec, adapter=adapter) is None
        assert ek.plan(spec, adapter=adapter).has_changes

    def test_delete_of_missing_endpoint_succeeds(self) -> None:
        spec = self.make_spec()
        adapter = self.make_adapter(spec)
        try:
            assert ek.destroy(spec, adapter=adapter) is False
            assert ek.destroy(spec, adapter=adapter) is False
        finally:
            adapter.close()
