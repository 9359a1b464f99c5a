"""Updates of an AKS endpoint through its routes, on the fakes: the preview route a verify hook runs through,
canary and linear weight steps, the alarm read from Triton's counters of the new pods, and the rollback to the
previous routes on a failed check, an alarm or an interrupt.

A "version" here differs in the Triton container's environment, which the fake data plane obeys:
``FAKE_TRITON_OFFSET=n`` answers INPUT + n, ``FAKE_TRITON_FAIL=1`` answers 500 (counted as failures in the
pod's metrics). Step waits are tiny (10 ms); nothing here measures time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import endpointkit as ek
from endpointkit.adapters.aks import AksAdapter
from endpointkit.adapters.aks._desired import plan_endpoint
from endpointkit.adapters.aks._gateway import VERSION_HEADER
from endpointkit.adapters.base import EndpointStatus
from endpointkit.spec import Spec
from tests.fakes.kube import FakeAzure, aks_spec, azure, repository, tls

# Fixtures used by the tests below (pytest finds them in this namespace).
__all__ = ["azure", "repository", "tls"]

ARM = "https://management.azure.com"
DATA = np.arange(4, dtype=np.float32)
TINY = 0.01  # seconds a step holds


def spec_of(azure: FakeAzure, repository: Path, *, offset: int = 0, **fields: Any) -> Spec:
    environment = {"FAKE_TRITON_OFFSET": str(offset), **fields.pop("environment", {})}
    return aks_spec(
        repository,
        azure.arm.url,
        target={"api_key": True},
        model={"repository": str(repository), "environment": environment},
        **fields,
    )


def update(
    adapter: AksAdapter,
    spec: Spec,
    *,
    verify: Callable[[ek.EndpointState], None] | None = None,
    progress: Callable[[ek.ProgressEvent], None] | None = None,
) -> None:
    """What apply does for an update: the new config's record, then the endpoint, with the verify hook."""
    deployment = spec.deployment("azure")
    desired = adapter.desired(deployment)
    observed = adapter.read(deployment, desired)
    if ("endpoint_config", desired.config.name) not in observed.existing:
        adapter.create(deployment, desired.config)
    adapter.update_endpoint(deployment, desired, verify=verify, progress=progress)


def version(spec: Spec) -> str:
    return plan_endpoint(spec.deployment("azure")).versions["primary"]


def config(spec: Spec) -> str:
    return plan_endpoint(spec.deployment("azure")).desired.config.name


def rules(azure: FakeAzure) -> list[dict[str, Any]]:
    route = azure.kube.get("HTTPRoute", "vision")
    assert route is not None
    found: list[dict[str, Any]] = route["spec"]["rules"]
    return found


def main_weights(azure: FakeAzure) -> dict[str, int]:
    """The weights of the HTTPRoute's rule without a header match."""
    [main] = [rule for rule in rules(azure) if not rule["matches"][0].get("headers")]
    return {ref["name"]: ref["weight"] for ref in main["backendRefs"]}


def answer(adapter: AksAdapter, state: ek.EndpointState) -> float:
    """What the endpoint adds to its input (the offset of the version that answered)."""
    response = ek.invoke_endpoint(state, {"INPUT0": DATA}, adapter=adapter)
    return float(response["OUTPUT0"][0] - DATA[0])


def names(azure: FakeAzure, kind: str) -> list[str]:
    return [o["metadata"]["name"] for o in azure.kube.all(kind)]


def assert_old_serves(azure: FakeAzure, adapter: AksAdapter, old: Spec, new: Spec) -> None:
    """The previous version holds all traffic and the new one is gone."""
    assert main_weights(azure) == {version(old): 1000}
    assert len(rules(azure)) == 1  # no preview rule
    assert names(azure, "Deployment") == [version(old)]
    assert version(new) not in names(azure, "Service")
    state = ek.status(old, adapter=adapter)
    assert state is not None and state.status is EndpointStatus.IN_SERVICE
    assert state.extra["config"] == config(old)
    assert answer(adapter, state) == 0.0


@pytest.fixture
def deployed(azure: FakeAzure, repository: Path) -> Any:
    spec = spec_of(azure, repository)
    adapter: AksAdapter = azure.adapter(spec.targets["azure"])
    state = ek.apply(spec, adapter=adapter)
    yield spec, adapter, state
    adapter.close()


# ------------------------------------------------------------------------------------------------- verify


def test_verify_runs_through_the_preview_route_where_only_the_new_version_answers(
    deployed: Any, azure: FakeAzure, repository: Path
) -> None:
    old, adapter, state = deployed
    new = spec_of(azure, repository, offset=100)
    seen: list[tuple[list[dict[str, Any]], list[float], float]] = []

    def verify(candidate: ek.EndpointState) -> None:
        assert candidate.extra["headers"] == {VERSION_HEADER: config(new)}
        answers = [answer(adapter, candidate) for _ in range(12)]
        seen.append((rules(azure), answers, answer(adapter, state)))

    update(adapter, new, verify=verify)

    [(during, candidate_answers, plain)] = seen
    preview, main = during
    assert preview["matches"][0]["headers"] == [
        {"type": "Exact", "name": VERSION_HEADER, "value": config(new)}
    ]
    assert [(r["name"], r["weight"]) for r in preview["backendRefs"]] == [(version(new), 1000)]
    assert [(r["name"], r["weight"]) for r in main["backendRefs"]] == [(version(old), 1000)]
    assert candidate_answers == [100.0] * 12  # only the new version answers the header
    assert plain == 0.0  # everyone else still reaches the old one
    # done: all traffic on the new version, no preview rule, the old version gone
    assert main_weights(azure) == {version(new): 1000} and len(rules(azure)) == 1
    assert names(azure, "Deployment") == [version(new)]
    after = ek.status(new, adapter=adapter)
    assert after is not None and after.extra["config"] == config(new)
    assert answer(adapter, after) == 100.0


def test_a_failed_verify_leaves_the_old_routes_and_removes_the_new_version(
    deployed: Any, azure: FakeAzure, repository: Path
) -> None:
    old, adapter, _ = deployed
    new = spec_of(azure, repository, offset=100)

    def verify(candidate: ek.EndpointState) -> None:
        got = answer(adapter, candidate)
        raise ek.VerificationError(
            f"golden: OUTPUT0 is off by {got}", check="golden", detail=f"off by {got}", output="OUTPUT0"
        )

    with pytest.raises(ek.VerificationError, match="off by 100"):
        update(adapter, new, verify=verify)

    assert_old_serves(azure, adapter, old, new)


def test_an_interrupt_inside_verify_leaves_the_old_routes(
    deployed: Any, azure: FakeAzure, repository: Path
) -> None:
    old, adapter, _ = deployed
    new = spec_of(azure, repository, offset=100)

    def verify(candidate: ek.EndpointState) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        update(adapter, new, verify=verify)

    assert_old_serves(azure, adapter, old, new)


# -------------------------------------------------------------------------------------------------- steps


@pytest.mark.parametrize(
    ("strategy", "steps"),
    [
        ({"canary": {"step": 10, "wait": TINY}}, [(900, 100)]),
        ({"linear": {"step": 25, "wait": TINY}}, [(750, 250), (500, 500), (250, 750)]),
    ],
)
def test_steps_move_the_weights_in_order_then_all_traffic(
    deployed: Any, azure: FakeAzure, repository: Path, strategy: dict[str, Any], steps: list[tuple[int, int]]
) -> None:
    old, adapter, _ = deployed
    new = spec_of(azure, repository, offset=100, rollout=strategy)
    weights: list[dict[str, int]] = []
    events: list[str] = []

    def verify(candidate: ek.EndpointState) -> None:  # runs before the first step and after each
        weights.append(main_weights(azure))
        assert answer(adapter, candidate) == 100.0

    update(adapter, new, verify=verify, progress=lambda event: events.append(event.subject))

    expected = [{version(old): 1000}] + [{version(old): o, version(new): n} for o, n in steps]
    assert weights == expected
    assert main_weights(azure) == {version(new): 1000} and len(rules(azure)) == 1
    assert names(azure, "Deployment") == [version(new)]
    held = [subject for subject in dict.fromkeys(events) if subject.startswith("rollout of vision")]
    assert len(held) == len(steps) and all(config(new) in subject for subject in held)


def test_an_alarm_on_the_new_pods_rolls_back(deployed: Any, azure: FakeAzure, repository: Path) -> None:
    old, adapter, state = deployed
    strategy = {"canary": {"step": 50, "wait": TINY, "max_error_rate": 1}}
    new = spec_of(azure, repository, offset=100, rollout=strategy, environment={"FAKE_TRITON_FAIL": "1"})
    failures: list[str] = []

    def traffic(event: ek.ProgressEvent) -> None:
        # clients keep calling while the step holds: half of them reach the new, failing version
        if event.subject.startswith("rollout of vision") and not failures:
            for _ in range(24):
                try:
                    answer(adapter, state)
                except ek.ProviderError as error:
                    failures.append(str(error))

    with pytest.raises(ek.VerificationError) as caught:
        update(adapter, new, progress=traffic)

    assert caught.value.check == "alarm: max_error_rate"
    assert failures and "of" in caught.value.detail and "the bound is 1%" in caught.value.detail
    assert_old_serves(azure, adapter, old, new)


def test_a_quiet_step_passes_its_alarm(deployed: Any, azure: FakeAzure, repository: Path) -> None:
    _, adapter, _ = deployed
    strategy = {"canary": {"step": 20, "wait": TINY, "max_error_rate": 1, "max_p99": 1}}
    new = spec_of(azure, repository, offset=7, rollout=strategy)

    update(adapter, new)

    assert main_weights(azure) == {version(new): 1000}
    state = ek.status(new, adapter=adapter)
    assert state is not None and answer(adapter, state) == 7.0


def test_a_gateway_failing_once_traffic_moved_rolls_everything_back(
    deployed: Any, azure: FakeAzure, repository: Path
) -> None:
    old, adapter, _ = deployed
    new = spec_of(azure, repository, offset=100, rollout={"canary": {"step": 50, "wait": TINY}})

    def break_the_gateway(event: ek.ProgressEvent) -> None:
        if event.subject.startswith("rollout of vision"):
            azure.kube.gateway_failure = ("NoResources", "the load balancer lost its public IP")

    with pytest.raises(ek.ProviderError, match="lost its public IP"):
        update(adapter, new, progress=break_the_gateway)

    azure.kube.gateway_failure = None
    assert_old_serves(azure, adapter, old, new)  # routes, versions and the anchor's config as before


def test_a_failed_update_puts_back_the_replicas_it_changed(
    deployed: Any, azure: FakeAzure, repository: Path
) -> None:
    old, adapter, _ = deployed
    variants = [{"name": "primary", "accelerator": "gpu", "instance_count": 2, "cpu": 2, "memory": "4Gi"}]
    bigger = spec_of(azure, repository, variants=variants)
    assert version(bigger) == version(old)  # same pod template: the same Deployment, scaled

    def verify(candidate: ek.EndpointState) -> None:
        raise ek.VerificationError("golden failed", check="golden", detail="no")

    with pytest.raises(ek.VerificationError):
        update(adapter, bigger, verify=verify)

    deployment = azure.kube.get("Deployment", version(old))
    assert deployment is not None and deployment["spec"]["replicas"] == 1
    assert main_weights(azure) == {version(old): 1000} and len(rules(azure)) == 1
    state = ek.status(old, adapter=adapter)
    assert state is not None and state.extra["config"] == config(old)


# ---------------------------------------------------------------------------------------------------- plan


def test_rollout_lines_describe_the_steps(repository: Path) -> None:
    def lines(**fields: Any) -> list[str]:
        spec = aks_spec(repository, ARM, **fields)
        adapter = AksAdapter(spec.targets["azure"], target_name="azure", credential=object())  # type: ignore[arg-type]
        return adapter.rollout_lines(spec.deployment("azure"))

    assert lines() == ["all at once: the routes move all traffic to the new version once it is ready"]
    canary = lines(rollout={"canary": {"step": 10, "wait": "5m", "max_error_rate": 2, "max_p99": 0.5}})
    assert canary[0] == (
        "canary 10% -> 100% by the routes' weights, 5m between steps; rolls back on error rate > 2% or "
        "p99 > 500ms of the new pods (Triton's counters)"
    )
    assert "beside the old ones" in canary[1]
    verified = lines(
        rollout={"linear": {"step": 50, "wait": 90}},
        verify=[{"name": "golden", "python": "checks:golden"}],
    )
    assert verified[0] == (
        "linear 50% -> 100% by the routes' weights, 90s between steps; the checks run first through a preview "
        "route (requests with header endpointkit-version reach only the new version)"
    )
