"""Labels that change without a rollout (spec hash, expiry) and reaping by them, on the AKS fakes.

A spec that changes only in ttl or tags keeps its config: plan shows an update of the endpoint's tags, and
apply re-stamps the anchor Service, Gateway, routes, config and Secrets (no Deployment written, no pod replaced,
no ARM write). ``endpointkit reap --dry-run`` lists the
expired endpoints and writes nothing.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

import endpointkit as ek
from endpointkit import adapters
from endpointkit._endpoint_state import decode_expiry, encode_expiry
from endpointkit.adapters.base import EXPIRES_AT_TAG, SPEC_HASH_TAG
from endpointkit.cli import main
from endpointkit.provisioners.reap import reap
from tests.fakes.kube import FakeAzure, aks_spec, azure, repository, tls

# Fixtures used by the tests below (pytest finds them in this namespace).
__all__ = ["azure", "repository", "tls"]


def kube_writes(azure: FakeAzure) -> list[tuple[str, str, str]]:
    return [r for r in azure.kube.calls() if r[0] in ("PATCH", "DELETE", "POST", "PUT")]


def pods(azure: FakeAzure) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in azure.kube.all("Pod")}


def labels(azure: FakeAzure, kind: str, name: str) -> dict[str, str]:
    found = azure.kube.get(kind, name)
    assert found is not None, f"{kind} {name} is missing"
    return dict(found["metadata"]["labels"])


def test_adding_a_ttl_restamps_the_labels_without_a_rollout(azure: FakeAzure, repository: Path) -> None:
    spec = aks_spec(repository, azure.arm.url, target={"api_key": True})
    with azure.adapter(spec.targets["azure"]) as adapter:
        first = ek.apply(spec, adapter=adapter)
        running = pods(azure)
        (version,) = [d["metadata"]["name"] for d in azure.kube.all("Deployment")]
        arm_writes, deletes = len(azure.arm.writes), len(azure.kube.calls("DELETE"))
        deployment_patches = len(azure.kube.calls("PATCH", contains="/deployments/"))

        with_ttl = aks_spec(repository, azure.arm.url, target={"api_key": True}, ttl="8h")
        plan = ek.plan(with_ttl, adapter=adapter)
        assert [(c.action, c.resource) for c in plan.changes] == [
            ("noop", "model"),
            ("noop", "endpoint_config"),
            ("update", "endpoint"),
        ]
        state = ek.apply(with_ttl, adapter=adapter)

        assert state.status is ek.EndpointStatus.IN_SERVICE
        assert state.spec_hash == with_ttl.deployment("azure").spec_hash() != first.spec_hash
        assert state.expires_at is not None
        assert abs(state.expires_at - (datetime.now(timezone.utc) + timedelta(hours=8))) < timedelta(
            minutes=1
        )
        for kind, name in (
            ("Service", "vision"),
            ("Gateway", "vision"),
            ("HTTPRoute", "vision"),
            ("GRPCRoute", "vision"),
            ("ConfigMap", first.extra["config"]),
            ("Secret", "vision-api-key"),
        ):
            assert labels(azure, kind, name)[SPEC_HASH_TAG] == state.spec_hash, kind
            written = labels(azure, kind, name)[EXPIRES_AT_TAG]
            assert ":" not in written and decode_expiry(written, endpoint="vision") == state.expires_at
        assert pods(azure) == running  # same pods (uids): nothing restarted
        # a version carries no per-apply stamp: its Deployment is not written at all
        assert len(azure.kube.calls("PATCH", contains="/deployments/")) == deployment_patches
        assert SPEC_HASH_TAG not in labels(azure, "Deployment", version)
        assert len(azure.arm.writes) == arm_writes and len(azure.kube.calls("DELETE")) == deletes
        assert not ek.plan(with_ttl, adapter=adapter).has_changes

        # Dropping the ttl again removes the label (server-side apply drops what the manager leaves out).
        ek.apply(spec, adapter=adapter)
        assert EXPIRES_AT_TAG not in labels(azure, "Service", "vision")
        assert ek.status(spec, adapter=adapter).expires_at is None  # type: ignore[union-attr]
        assert pods(azure) == running and len(azure.arm.writes) == arm_writes


def test_cli_reap_dry_run_lists_expired_endpoints_and_writes_nothing(
    azure: FakeAzure,
    repository: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    expiring = aks_spec(repository, azure.arm.url, ttl="1h")
    kept = aks_spec(repository, azure.arm.url, name="detector")
    with azure.adapter(expiring.targets["azure"]) as adapter:
        ek.apply(expiring, adapter=adapter)
        ek.apply(kept, adapter=adapter)
    past = datetime.now(timezone.utc) - timedelta(minutes=5)
    with azure.kube.lock:
        service = azure.kube.objects[("Service", "default", "vision")]
        service["metadata"]["labels"][EXPIRES_AT_TAG] = encode_expiry(past)
    path = tmp_path / "endpoint.yaml"
    path.write_text(yaml.safe_dump(kept.model_dump(mode="json", by_alias=True, exclude_none=True)))

    original = adapters.create_adapter

    def create_adapter(deployment: Any, **options: Any) -> Any:
        return original(deployment, **{**azure.adapter_options(), **options})

    monkeypatch.setattr(adapters, "create_adapter", create_adapter)
    arm_writes, kube_before = len(azure.arm.writes), len(kube_writes(azure))

    assert main(["reap", "--spec", str(path), "--target", "azure", "--dry-run", "--json"]) == 0

    document = json.loads(capsys.readouterr().out)  # one JSON document, nothing else on stdout
    assert (document["target"], document["kind"], document["dry_run"], document["listed"]) == (
        "azure",
        "aks",
        True,
        2,
    )
    assert [(e["name"], e["action"]) for e in document["expired"]] == [("vision", "would destroy")]
    assert 290 <= document["expired"][0]["expired_seconds_ago"] < 400
    assert len(azure.arm.writes) == arm_writes and len(kube_writes(azure)) == kube_before
    assert azure.kube.get("Service", "vision") is not None
    assert any(d["metadata"]["name"].startswith("vision-primary-") for d in azure.kube.all("Deployment"))


def test_a_label_of_the_previous_writer_is_reaped_like_one_of_the_codec(
    azure: FakeAzure, repository: Path
) -> None:
    moment = datetime(2001, 1, 1, tzinfo=timezone.utc)
    written = {
        "vision": moment.strftime("%Y%m%dT%H%M%SZ"),  # what _render.expiry_label wrote before the codec
        "detector": encode_expiry(moment),
    }
    specs = [aks_spec(repository, azure.arm.url, name=name, ttl="1h") for name in written]
    with azure.adapter(specs[0].targets["azure"]) as adapter:
        for spec in specs:
            ek.apply(spec, adapter=adapter)
        with azure.kube.lock:
            for name, value in written.items():
                azure.kube.objects[("Service", "default", name)]["metadata"]["labels"][EXPIRES_AT_TAG] = value

        listed = {state.name: state.expires_at for state in adapter.list_endpoints()}
        report = reap(adapter, now=moment + timedelta(seconds=1))

    assert listed == {"vision": moment, "detector": moment}
    assert sorted((o.state.name, o.action) for o in report.outcomes) == [
        ("detector", "destroyed"),
        ("vision", "destroyed"),
    ]
    assert azure.kube.all("Service") == []
