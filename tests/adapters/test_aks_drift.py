"""Drift on the AKS fakes: Deployments, the Service and tags changed out of band show in plan, and apply repairs.

A Deployment edited by another field manager (``kubectl scale``, ``kubectl set image``, ``kubectl edit``) is drift
named by its field; ``plan --detailed-exitcode`` exits 2; ``apply`` re-applies the objects by server-side apply
and waits until they serve; the next plan has no drift.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import endpointkit as ek
from endpointkit import adapters
from endpointkit.adapters.aks import AksAdapter
from endpointkit.adapters.base import SPEC_HASH_TAG, EndpointStatus
from endpointkit.cli import main
from endpointkit.spec import Spec
from tests.fakes.kube import FakeAzure, aks_spec, azure, repository, tls

# Fixtures used by the tests below (pytest finds them in this namespace).
__all__ = ["azure", "repository", "tls"]

#: the prefix of the primary variant's Deployment (its name ends with its pod template's revision)
PRIMARY = "vision-primary-"


def _primary(azure: FakeAzure) -> str:
    """The name of the primary variant's Deployment."""
    (name,) = [d["metadata"]["name"] for d in azure.kube.all("Deployment")]
    assert name.startswith(PRIMARY)
    return str(name)


@pytest.fixture
def deployed(azure: FakeAzure, repository: Path) -> Iterator[tuple[Spec, AksAdapter]]:
    spec = aks_spec(repository, azure.arm.url, tags={"team": "vision"})
    adapter: AksAdapter = azure.adapter(spec.targets["azure"])
    ek.apply(spec, adapter=adapter)
    yield spec, adapter
    adapter.close()


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def _scale(replicas: int) -> Callable[[dict[str, Any]], None]:
    def change(deployment: dict[str, Any]) -> None:
        deployment["spec"]["replicas"] = replicas

    return change


def _set_image(image: str) -> Callable[[dict[str, Any]], None]:
    def change(deployment: dict[str, Any]) -> None:
        _container(deployment)["image"] = image

    return change


def _fields(plan: ek.Plan) -> list[str]:
    return [item.field for item in plan.drift]


def _deployment_patches(azure: FakeAzure) -> int:
    return len(azure.kube.calls("PATCH", contains=f"/deployments/{PRIMARY}"))


def _spec_file(spec: Spec, path: Path) -> Path:
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True)))
    return path


@pytest.fixture
def cli_on_fakes(azure: FakeAzure, monkeypatch: pytest.MonkeyPatch) -> None:
    """``endpointkit.cli.main`` makes its AKS adapters with the fakes' options."""
    original = adapters.create_adapter

    def create_adapter(deployment: Any, **options: Any) -> Any:
        return original(deployment, **{**azure.adapter_options(), **options})

    monkeypatch.setattr(adapters, "create_adapter", create_adapter)


def test_an_unchanged_endpoint_has_no_drift(deployed: tuple[Spec, AksAdapter]) -> None:
    spec, adapter = deployed
    plan = ek.plan(spec, adapter=adapter)
    assert plan.drift == () and not plan.has_changes, str(plan)


def test_replicas_scaled_by_hand_are_drift_that_apply_puts_back(
    deployed: tuple[Spec, AksAdapter],
    azure: FakeAzure,
    tmp_path: Path,
    cli_on_fakes: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec, adapter = deployed
    primary = _primary(azure)
    azure.kube.edit("Deployment", primary, _scale(2))
    path = _spec_file(spec, tmp_path / "endpoint.yaml")

    plan = ek.plan(spec, adapter=adapter)

    assert _fields(plan) == ["variants.primary.replicas"]
    assert (plan.drift[0].live, plan.drift[0].wanted) == (2, 1)
    (update,) = [change for change in plan.changes if change.action != "noop"]
    assert (update.action, update.resource) == ("update", "endpoint")
    assert "variants.primary.replicas" in update.reason
    capsys.readouterr()
    assert main(["plan", str(path), "--target", "azure", "--detailed-exitcode"]) == 2
    assert "! variants.primary.replicas: live 2, spec 1" in capsys.readouterr().out

    patches = _deployment_patches(azure)
    state = ek.apply(spec, adapter=adapter)

    assert _deployment_patches(azure) == patches + 1  # re-applied by server-side apply
    assert state.status is EndpointStatus.IN_SERVICE
    assert [(v.name, v.instance_count) for v in state.variants] == [("primary", 1)]
    assert azure.kube.get("Deployment", primary)["spec"]["replicas"] == 1  # type: ignore[index]
    again = ek.plan(spec, adapter=adapter)
    assert again.drift == () and not again.has_changes, str(again)
    capsys.readouterr()
    assert main(["plan", str(path), "--target", "azure", "--detailed-exitcode", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["drift"] == []


def test_an_image_set_by_hand_is_drift_that_apply_puts_back(
    deployed: tuple[Spec, AksAdapter], azure: FakeAzure
) -> None:
    spec, adapter = deployed
    primary = _primary(azure)
    rendered = _container(azure.kube.get("Deployment", primary) or {})["image"]
    azure.kube.edit("Deployment", primary, _set_image("nvcr.io/nvidia/tritonserver:24.01-py3"))

    plan = ek.plan(spec, adapter=adapter)

    assert _fields(plan) == ["variants.primary.image"]
    assert (plan.drift[0].live, plan.drift[0].wanted) == ("nvcr.io/nvidia/tritonserver:24.01-py3", rendered)
    events: list[ek.ProgressEvent] = []
    ek.apply(spec, adapter=adapter, progress=events.append)
    assert _container(azure.kube.get("Deployment", primary) or {})["image"] == rendered
    # apply waited for the re-applied Deployment to serve, as any rollout does
    assert [e.subject for e in events] == ["endpoint vision on AKS cluster gpu-aks"]
    assert ek.plan(spec, adapter=adapter).drift == ()


def test_args_and_resources_are_drift_but_the_same_quantity_written_otherwise_is_not(
    deployed: tuple[Spec, AksAdapter], azure: FakeAzure
) -> None:
    spec, adapter = deployed
    primary = _primary(azure)

    def canonical_quantities(deployment: dict[str, Any]) -> None:
        # what the API server returns: quantities as strings in canonical form, a limit added by another tool
        resources = _container(deployment)["resources"]
        resources["requests"] = {"cpu": "2000m", "memory": "4096Mi"}
        resources["limits"] = {"memory": "4Gi", "nvidia.com/gpu": "1", "cpu": "3"}

    azure.kube.edit("Deployment", primary, canonical_quantities)
    assert ek.plan(spec, adapter=adapter).drift == ()

    def edited(deployment: dict[str, Any]) -> None:
        container = _container(deployment)
        container["args"] = [*container["args"], "--log-verbose=1"]
        container["resources"]["limits"]["nvidia.com/gpu"] = "2"

    azure.kube.edit("Deployment", primary, edited)
    plan = ek.plan(spec, adapter=adapter)

    assert _fields(plan) == ["variants.primary.args", "variants.primary.resources.limits.nvidia.com/gpu"]
    assert plan.drift[0].live[-1] == "--log-verbose=1" and "--log-verbose=1" not in plan.drift[0].wanted
    assert (plan.drift[1].live, plan.drift[1].wanted) == ("2", "1")


def test_a_deleted_deployment_or_service_is_drift_that_apply_recreates(
    deployed: tuple[Spec, AksAdapter], azure: FakeAzure
) -> None:
    spec, adapter = deployed
    primary = _primary(azure)
    for kind, name, field in (
        ("Deployment", primary, "variants.primary"),
        ("Service", "vision", "service"),
    ):
        with azure.kube.lock:
            del azure.kube.objects[(kind, "default", name)]

        plan = ek.plan(spec, adapter=adapter)

        assert [(item.field, item.live) for item in plan.drift] == [(field, None)]
        state = ek.apply(spec, adapter=adapter)
        assert state.status is EndpointStatus.IN_SERVICE and state.url is not None
        assert azure.kube.get(kind, name) is not None
        assert ek.plan(spec, adapter=adapter).drift == ()


def test_removed_labels_and_tags_are_drift_repaired_without_a_rollout(
    deployed: tuple[Spec, AksAdapter], azure: FakeAzure
) -> None:
    spec, adapter = deployed

    def untagged(service: dict[str, Any]) -> None:
        del service["metadata"]["labels"][SPEC_HASH_TAG]
        del service["metadata"]["annotations"]["endpointkit-tags"]

    azure.kube.edit("Service", "vision", untagged)
    pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in azure.kube.all("Pod")}

    plan = ek.plan(spec, adapter=adapter)

    assert _fields(plan) == [f"tags.{SPEC_HASH_TAG}", "tags.team"]
    (update,) = [change for change in plan.changes if change.action != "noop"]
    assert update.reason.startswith("tags only")
    ek.apply(spec, adapter=adapter)
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in azure.kube.all("Pod")} == pods
    assert ek.plan(spec, adapter=adapter).drift == ()
