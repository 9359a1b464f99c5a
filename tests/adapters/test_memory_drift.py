"""The provisioner's handling of drift, on the in-memory target: which change repairs what."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import endpointkit as ek
from endpointkit._observations import Drift
from endpointkit.adapters.base import ObservedState
from endpointkit.adapters.memory import MemoryAdapter
from endpointkit.provisioners.plan import diff
from endpointkit.spec import Spec, spec_from_dict
from tests.adapters.sagemaker_fixtures import write_echo_repository


def _spec(tmp_path: Path) -> Spec:
    write_echo_repository(tmp_path / "repo")
    return spec_from_dict(
        {
            "name": "memo",
            "model": {"repository": str(tmp_path / "repo")},
            "variants": [{"name": "primary"}],
            "tags": {"team": "vision"},
            "targets": {"mem": {"kind": "local"}},
        }
    )


def test_a_tag_removed_by_hand_is_repaired_by_the_tags_only_update(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    adapter = MemoryAdapter()
    ek.apply(spec, adapter=adapter)
    del adapter.cloud.endpoint_tags["memo"]["team"]

    plan = ek.plan(spec, adapter=adapter)

    assert plan.drift == (Drift("tags.team", None, "vision"),)
    assert [(c.action, c.reason) for c in plan.changes if c.action != "noop"] == [
        ("update", "tags only: drift of tags.team")
    ]
    adapter.calls.clear()
    ek.apply(spec, adapter=adapter)
    assert adapter.mutating_calls == [("update", "endpoint", "memo")]
    assert not ek.plan(spec, adapter=adapter).has_changes


def test_drift_of_what_runs_is_an_update_naming_the_fields(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    desired = adapter.desired(_spec(tmp_path).deployment())
    adapter.cloud.resources["model"][desired.model.name] = desired.model
    adapter.cloud.resources["endpoint_config"][desired.config.name] = desired.config
    adapter.cloud.resources["endpoint"]["memo"] = desired.endpoint
    adapter.cloud.endpoint_tags["memo"] = dict(desired.tags)
    observed = adapter.read(_spec(tmp_path).deployment(), desired)
    drifted = dataclasses.replace(observed, drift=(Drift("variants.primary.instance_count", 3, 1),))

    changes = diff(desired, drifted)

    assert [c.action for c in diff(desired, observed)] == ["noop", "noop", "noop"]
    assert [(c.action, c.reason) for c in changes][-1] == ("update", "drift: variants.primary.instance_count")


def test_drift_adds_its_fields_to_a_change_that_happens_anyway(tmp_path: Path) -> None:
    adapter = MemoryAdapter()
    desired = adapter.desired(_spec(tmp_path).deployment())
    failed = ObservedState(
        ek.EndpointState("memo", "mem", "memory", ek.EndpointStatus.FAILED),
        drift=(Drift("variants.primary.server", "not running (pid 7)", "running"),),
    )

    (*_, endpoint) = diff(desired, failed)

    assert (endpoint.action, endpoint.reason) == (
        "replace",
        "endpoint is FAILED; drift: variants.primary.server",
    )
