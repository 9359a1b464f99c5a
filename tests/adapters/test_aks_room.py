"""Plan says when an accelerator pool has no room for an update's new version beside the old one (on the fakes)."""

from __future__ import annotations

from pathlib import Path

import endpointkit as ek
from tests.fakes.kube import FakeAzure, aks_spec, azure, repository, tls

# Fixtures used by the tests below (pytest finds them in this namespace).
__all__ = ["azure", "repository", "tls"]


def spec_with(
    repository: Path, azure: FakeAzure, *, count: int, environment: str, weight: float = 1.0
) -> ek.Spec:
    spec = aks_spec(
        repository,
        azure.arm.url,
        target={"node_pool": {"name": "gpu", "vm_size": "Standard_NC4as_T4_v3", "count": count}},
        variants=[{"name": "primary", "accelerator": "gpu", "cpu": 2, "memory": "4Gi", "weight": weight}],
    )
    data = spec.model_dump(mode="json", by_alias=True)
    data["model"]["environment"] = {"MODEL_REVISION": environment}
    return ek.spec.spec_from_dict(data, base_dir=spec.base_dir)


def room_notes(plan: ek.Plan) -> list[str]:
    return [note for note in plan.notes if "beside the old one" in note]


def test_a_full_fixed_pool_is_named_with_the_size_that_fits_both_versions(
    azure: FakeAzure, repository: Path
) -> None:
    first = spec_with(repository, azure, count=1, environment="1")
    with azure.adapter(first.targets["azure"]) as adapter:
        ek.apply(first, adapter=adapter)
        plan = ek.plan(spec_with(repository, azure, count=1, environment="2"), adapter=adapter)
    assert plan.has_changes
    assert room_notes(plan) == [
        "the update runs the new version beside the old one until traffic moves: 2 GPUs at once (1 running, "
        "1 new), but pool gpu holds at most 1 (1 x 1); set node_pool.count to 2 or more, or the new pods cannot "
        "be scheduled and the update rolls back"
    ]
    assert any(
        line.startswith("  note: the update runs the new version") for line in plan.render().splitlines()
    )


def test_a_pool_with_room_and_a_weight_change_say_nothing(azure: FakeAzure, repository: Path) -> None:
    first = spec_with(repository, azure, count=2, environment="1")
    with azure.adapter(first.targets["azure"]) as adapter:
        ek.apply(first, adapter=adapter)
        roomy = ek.plan(spec_with(repository, azure, count=2, environment="2"), adapter=adapter)
        reweighted = ek.plan(
            spec_with(repository, azure, count=2, environment="1", weight=2.0), adapter=adapter
        )
    assert roomy.has_changes and room_notes(roomy) == []
    assert room_notes(reweighted) == []  # the same Deployment keeps serving: nothing new to schedule
