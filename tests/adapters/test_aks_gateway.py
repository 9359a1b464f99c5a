"""An AKS endpoint behind the Gateway API, on the fakes: its Gateway, routes and TLS Secrets, what status reports
of them, weights moved by the routes alone, certificates renewed or brought in files, an existing Gateway, and
the refusals plan makes before any call.

The fake cluster programs Gateways of class ``approuting-istio`` and serves their data plane over TLS with the
certificate the listener's Secret holds; ``connect_to`` sends the endpoint's host to it, so invoke checks the
whole path: DNS name, certificate chain and host name, route, backend Service, pod.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import endpointkit as ek
from endpointkit.adapters.aks import AksAdapter
from endpointkit.adapters.aks._certificates import (
    Authority,
    certificate_info,
    issue_server_certificate,
    make_authority,
)
from endpointkit.adapters.aks._desired import plan_endpoint
from endpointkit.adapters.aks._gateway import gateway as gateway_object
from endpointkit.adapters.base import EndpointStatus
from endpointkit.spec import Spec
from tests.fakes.arm import GATEWAY_INGRESS_PROFILE
from tests.fakes.kube import FakeAzure, aks_spec, azure, repository, tls

# Fixtures used by the tests below (pytest finds them in this namespace).
__all__ = ["azure", "repository", "tls"]


def their_cluster(azure: FakeAzure) -> None:
    """A cluster someone else made, with the Gateway API add-on (app routing's Istio implementation) on."""
    azure.arm.add_cluster("rg", "gpu-aks", properties={"ingressProfile": GATEWAY_INGRESS_PROFILE})


ARM = "https://management.azure.com"
HOST = "triton.example.com"
TWO = [
    {"name": "blue", "accelerator": "gpu", "instance_count": 1, "weight": 1},
    {"name": "green", "accelerator": "gpu", "instance_count": 1, "weight": 1},
]


def names(azure: FakeAzure, kind: str) -> list[str]:
    return [o["metadata"]["name"] for o in azure.kube.all(kind)]


def route_weights(azure: FakeAzure, kind: str = "HTTPRoute") -> dict[str, int]:
    route = azure.kube.get(kind, "vision")
    assert route is not None
    [rule] = route["spec"]["rules"]
    return {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}


def secret_text(azure: FakeAzure, name: str, key: str) -> str:
    secret = azure.kube.get("Secret", name)
    assert secret is not None, name
    return base64.b64decode(secret["data"][key]).decode()


def echo(adapter: AksAdapter, state: ek.EndpointState) -> None:
    data = np.arange(4, dtype=np.float32)
    response = ek.invoke_endpoint(state, {"INPUT0": data}, adapter=adapter)
    np.testing.assert_array_equal(response["OUTPUT0"], data)


def offline(spec: Spec) -> AksAdapter:
    def no_cloud(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("plan rules must fail before any cloud call")

    return AksAdapter(
        spec.targets["azure"],  # type: ignore[arg-type]
        target_name="azure",
        credential=object(),
        arm_client_factory=no_cloud,
        kube_client_factory=no_cloud,
    )


def write_pair(folder: Path, authority: Authority, host: str, **options: Any) -> tuple[Path, Path]:
    certificate, key = issue_server_certificate(authority, host, **options)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tls.crt").write_text(certificate)
    (folder / "tls.key").write_text(key)
    return folder / "tls.crt", folder / "tls.key"


# --------------------------------------------------------------------------------------------------- status


def test_status_reports_host_certificate_and_gateway(azure: FakeAzure, repository: Path) -> None:
    spec = aks_spec(repository, azure.arm.url)
    with azure.adapter(spec.targets["azure"]) as adapter:
        ek.apply(spec, adapter=adapter)
        state = ek.status(spec, adapter=adapter)
        assert state is not None and state.status is EndpointStatus.IN_SERVICE
        extra = state.extra
        assert (extra["gateway"], extra["gateway_programmed"], extra["address"]) == (
            "default/vision",
            True,
            azure.lb_ip,
        )
        assert (
            extra["host"].endswith(".eastus.cloudapp.azure.com") and state.url == f"https://{extra['host']}"
        )
        expires = datetime.fromisoformat(extra["certificate_expires"])
        assert timedelta(days=390) < expires - datetime.now(timezone.utc) <= timedelta(days=398)
        # the CA clients trust is the one kept in EP-ca; the server certificate names the host
        assert extra["ca_certificate"] == secret_text(azure, "vision-ca", "tls.crt")
        assert certificate_info(secret_text(azure, "vision-tls", "tls.crt")).hosts == (extra["host"],)
        gateway = azure.kube.get("Gateway", "vision")
        assert gateway is not None
        annotations = gateway["spec"]["infrastructure"]["annotations"]
        assert annotations["service.beta.kubernetes.io/azure-dns-label-name"] == extra["host"].split(".")[0]
        echo(adapter, state)
        assert azure.gateway.handshakes[-1].secret == "default/vision-tls"


def test_a_weight_change_writes_only_the_routes(azure: FakeAzure, repository: Path) -> None:
    spec = aks_spec(repository, azure.arm.url, variants=TWO)
    reweighted = aks_spec(repository, azure.arm.url, variants=[{**TWO[0], "weight": 3}, TWO[1]])
    with azure.adapter(spec.targets["azure"]) as adapter:
        before = ek.apply(spec, adapter=adapter)
        versions = plan_endpoint(spec.deployment("azure")).versions
        assert route_weights(azure) == {versions["blue"]: 500, versions["green"]: 500}
        pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in azure.kube.all("Pod")}
        deployment_writes = len(azure.kube.calls("PATCH", "/deployments/")) + len(
            azure.kube.calls("DELETE", "/deployments/")
        )

        plan = ek.plan(reweighted, adapter=adapter)
        [change] = [c for c in plan.changes if c.resource == "endpoint"]
        assert change.action == "update"
        after = ek.apply(reweighted, adapter=adapter)

        assert after.status is EndpointStatus.IN_SERVICE and after.extra["config"] != before.extra["config"]
        assert (
            route_weights(azure)
            == route_weights(azure, "GRPCRoute")
            == {
                versions["blue"]: 750,
                versions["green"]: 250,
            }
        )
        written = len(azure.kube.calls("PATCH", "/deployments/")) + len(
            azure.kube.calls("DELETE", "/deployments/")
        )
        assert written == deployment_writes  # no Deployment written or deleted
        assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in azure.kube.all("Pod")} == pods
        assert [(v.name, v.weight) for v in after.variants] == [("blue", 3.0), ("green", 1.0)]
        assert not ek.plan(reweighted, adapter=adapter).has_changes


def test_weights_moved_by_hand_are_drift_that_apply_puts_back(azure: FakeAzure, repository: Path) -> None:
    spec = aks_spec(repository, azure.arm.url, variants=TWO)
    with azure.adapter(spec.targets["azure"]) as adapter:
        ek.apply(spec, adapter=adapter)
        wanted = route_weights(azure)

        def tilted(route: dict[str, Any]) -> None:
            refs = route["spec"]["rules"][0]["backendRefs"]
            refs[0]["weight"], refs[1]["weight"] = 1000, 0

        azure.kube.edit("HTTPRoute", "vision", tilted)
        plan = ek.plan(spec, adapter=adapter)
        assert [(item.field, item.wanted) for item in plan.drift] == [("routes.weights", wanted)]
        deployment_patches = len(azure.kube.calls("PATCH", "/deployments/"))
        ek.apply(spec, adapter=adapter)
        assert route_weights(azure) == wanted
        assert len(azure.kube.calls("PATCH", "/deployments/")) == deployment_patches
        assert not ek.plan(spec, adapter=adapter).has_changes


def test_a_gateway_that_fails_ends_the_wait_with_its_reason_and_apply_removes_what_it_made(
    azure: FakeAzure, repository: Path
) -> None:
    azure.kube.gateway_failure = ("NoResources", "no public IP address is left in the subscription's quota")
    spec = aks_spec(repository, azure.arm.url, target={"create_cluster": False})
    their_cluster(azure)
    azure.add_user_pool("rg", "gpu-aks", "gpu", vm_size="Standard_NC4as_T4_v3", count=2)
    with azure.adapter(spec.targets["azure"]) as adapter:
        with pytest.raises(ek.ProviderError) as caught:
            ek.apply(spec, adapter=adapter)
        assert caught.value.code == "NoResources"
        assert "Gateway default/vision" in str(caught.value) and "no public IP address" in str(caught.value)
        for kind in ("Gateway", "HTTPRoute", "GRPCRoute", "Deployment", "Service"):
            assert names(azure, kind) == [], kind
        assert [s for s in names(azure, "Secret") if s.startswith("vision-")] == []


def test_a_gateway_still_waiting_for_its_address_times_out_with_the_gateways_words(
    azure: FakeAzure, repository: Path
) -> None:
    azure.kube.gateway_failure = ("AddressNotAssigned", "address pending for the load balancer")
    their_cluster(azure)  # nothing to make in ARM: the whole (short) timeout goes to the Kubernetes wait
    azure.add_user_pool("rg", "gpu-aks", "gpu", vm_size="Standard_NC4as_T4_v3", count=2)
    spec = aks_spec(repository, azure.arm.url, target={"create_cluster": False}, timeouts={"create": "2s"})
    with azure.adapter(spec.targets["azure"]) as adapter, pytest.raises(ek.ProvisionTimeout) as caught:
        ek.apply(spec, adapter=adapter)
    assert "Gateway not programmed yet: AddressNotAssigned: address pending" in str(caught.value)
    last = caught.value.last_state
    assert last is not None and last.extra["gateway_programmed"] is False


def test_routes_attach_to_an_existing_gateway_which_stays(azure: FakeAzure, repository: Path) -> None:
    their_cluster(azure)
    azure.add_user_pool("rg", "gpu-aks", "gpu", vm_size="Standard_NC4as_T4_v3", count=2)
    target = {"gateway": "shared", "tls": "off", "create_cluster": False}
    spec = aks_spec(repository, azure.arm.url, target=target)
    with azure.adapter(spec.targets["azure"]) as adapter:
        shared = gateway_object(
            "shared",
            "default",
            gateway_class="approuting-istio",
            hostname=HOST,
            tls_secret=None,
            exposure="public",
            dns_label=None,
            labels={"team": "platform"},
        )
        adapter._kube_client().apply(shared)

        state = ek.apply(spec, adapter=adapter)

        assert state.status is EndpointStatus.IN_SERVICE
        assert (state.url, state.extra["gateway"]) == (f"http://{HOST}", "default/shared")
        assert names(azure, "Gateway") == ["shared"]
        route = azure.kube.get("HTTPRoute", "vision")
        assert route is not None
        assert route["spec"]["parentRefs"] == [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "namespace": "default",
                "name": "shared",
            }
        ]
        assert [s for s in names(azure, "Secret") if s.endswith(("-tls", "-ca"))] == []
        echo(adapter, state)
        assert ek.destroy(spec, adapter=adapter) is True
        assert names(azure, "Gateway") == ["shared"] and names(azure, "HTTPRoute") == []


def test_tls_off_serves_plain_http_and_plan_warns_that_the_key_travels_in_clear(
    azure: FakeAzure, repository: Path
) -> None:
    spec = aks_spec(repository, azure.arm.url, target={"tls": "off", "api_key": True})
    with azure.adapter(spec.targets["azure"]) as adapter:
        [note] = adapter.plan_notes(spec.deployment("azure"))
        assert "tls: off" in note and "endpointkit-key" in note and "clear text" in note
        state = ek.apply(spec, adapter=adapter)
        assert state.url == f"http://{state.extra['host']}"
        gateway = azure.kube.get("Gateway", "vision")
        assert gateway is not None
        assert [(lst["protocol"], lst["port"]) for lst in gateway["spec"]["listeners"]] == [("HTTP", 80)]
        assert "ca_certificate" not in state.extra and "certificate_expires" not in state.extra
        assert [s for s in names(azure, "Secret") if s.endswith(("-tls", "-ca"))] == []
        echo(adapter, state)


# ------------------------------------------------------------------------------------------- certificates


def test_a_certificate_due_for_renewal_is_renewed_by_apply_with_the_same_ca(
    azure: FakeAzure, repository: Path
) -> None:
    spec = aks_spec(repository, azure.arm.url)
    with azure.adapter(spec.targets["azure"]) as adapter:
        state = ek.apply(spec, adapter=adapter)
        authority = Authority(
            secret_text(azure, "vision-ca", "tls.crt"), secret_text(azure, "vision-ca", "tls.key")
        )
        soon, key = issue_server_certificate(authority, state.extra["host"], days=10)

        def expiring(secret: dict[str, Any]) -> None:
            secret["data"]["tls.crt"] = base64.b64encode(soon.encode()).decode()
            secret["data"]["tls.key"] = base64.b64encode(key.encode()).decode()

        azure.kube.edit("Secret", "vision-tls", expiring)
        deployment_patches = len(azure.kube.calls("PATCH", "/deployments/"))

        plan = ek.plan(spec, adapter=adapter)
        assert [item.field for item in plan.drift] == ["certificate"]
        [change] = [c for c in plan.changes if c.resource == "endpoint"]
        assert change.action == "update" and "certificate" in change.reason
        due = certificate_info(soon).not_after.date().isoformat()
        assert f"~ certificate vision-tls (renewed: expires {due})" in adapter.plan_notes(
            spec.deployment("azure")
        )

        renewed = ek.apply(spec, adapter=adapter)

        expires = datetime.fromisoformat(renewed.extra["certificate_expires"])
        assert expires - datetime.now(timezone.utc) > timedelta(days=390)
        assert renewed.extra["ca_certificate"] == authority.certificate_pem  # clients keep trusting it
        assert len(azure.kube.calls("PATCH", "/deployments/")) == deployment_patches
        echo(adapter, renewed)  # the data plane serves the renewed Secret from the next handshake
        assert not ek.plan(spec, adapter=adapter).has_changes
        assert adapter.plan_notes(spec.deployment("azure")) == []


def test_a_certificate_in_files_is_served_and_a_changed_file_rewrites_only_its_secret(
    azure: FakeAzure, repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    authority = make_authority("corp test CA")
    cert_file, key_file = write_pair(tmp_path / "pki", authority, HOST)
    (tmp_path / "ca.pem").write_text(authority.certificate_pem)
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # what clients of the corp CA trust
    target = {"host": HOST, "tls": {"cert_file": str(cert_file), "key_file": str(key_file)}}
    spec = aks_spec(repository, azure.arm.url, target=target)
    with azure.adapter(spec.targets["azure"]) as adapter:
        state = ek.apply(spec, adapter=adapter)
        assert state.url == f"https://{HOST}" and "ca_certificate" not in state.extra
        assert secret_text(azure, "vision-tls", "tls.crt") == cert_file.read_text()
        assert "vision-ca" not in names(azure, "Secret")
        route = azure.kube.get("HTTPRoute", "vision")
        assert route is not None and route["spec"]["hostnames"] == [HOST]
        echo(adapter, state)

        write_pair(tmp_path / "pki", authority, HOST)  # the user renewed it
        plan = ek.plan(spec, adapter=adapter)
        assert [item.field for item in plan.drift] == ["certificate"]
        writes = [c for c in azure.kube.calls() if c[0] != "GET"]
        ek.apply(spec, adapter=adapter)
        new_writes = [c for c in azure.kube.calls() if c[0] != "GET"][len(writes) :]
        assert secret_text(azure, "vision-tls", "tls.crt") == cert_file.read_text()
        assert not any("/deployments/" in path for _, path, _ in new_writes)
        assert not any(path.endswith("/gateways/vision") for _, path, _ in new_writes)
        assert any(path.endswith("/secrets/vision-tls") for _, path, _ in new_writes)
        echo(adapter, ek.status(spec, adapter=adapter))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ refusals


def test_a_cluster_without_the_gateway_addon_is_refused_in_plan_unless_changes_are_allowed(
    azure: FakeAzure, repository: Path
) -> None:
    azure.arm.add_cluster("rg", "gpu-aks")  # someone else's, without the Gateway API add-on
    azure.add_user_pool("rg", "gpu-aks", "gpu", vm_size="Standard_NC4as_T4_v3", count=2)
    spec = aks_spec(repository, azure.arm.url, target={"create_cluster": False})
    with azure.adapter(spec.targets["azure"]) as adapter:
        with pytest.raises(ek.ConflictError, match="--enable-gateway-api"):
            ek.plan(spec, adapter=adapter)
        with pytest.raises(ek.ConflictError):
            ek.apply(spec, adapter=adapter)
        assert azure.arm.writes == [] and names(azure, "Deployment") == []

    allowed = aks_spec(
        repository, azure.arm.url, target={"create_cluster": False, "allow_addon_changes": True}
    )
    with azure.adapter(allowed.targets["azure"]) as adapter:
        state = ek.apply(allowed, adapter=adapter)
        assert state.status is EndpointStatus.IN_SERVICE
        profile = azure.arm.clusters[("rg", "gpu-aks")]["properties"]["ingressProfile"]
        assert profile["gatewayAPI"] == {"installation": "Standard"}
        echo(adapter, state)


def test_an_unknown_gateway_class_is_refused_in_plan_naming_the_known_ones(repository: Path) -> None:
    spec = aks_spec(repository, ARM, target={"gateway_class": "nginx"})
    with pytest.raises(ek.SpecError) as caught:
        offline(spec).limitations(spec.deployment("azure"))
    assert caught.value.field == "targets.azure.gateway_class"
    assert "approuting-istio" in str(caught.value) and "targets.azure.gateway" in str(caught.value)
    named = aks_spec(repository, ARM, target={"gateway_class": "nginx", "gateway": "mine"})
    offline(named).limitations(named.deployment("azure"))  # the class of an existing Gateway is its owner's


def test_files_that_do_not_cover_the_host_are_refused_in_plan(repository: Path, tmp_path: Path) -> None:
    cert_file, key_file = write_pair(tmp_path, make_authority("corp test CA"), "other.example.com")
    target = {"host": HOST, "tls": {"cert_file": str(cert_file), "key_file": str(key_file)}}
    spec = aks_spec(repository, ARM, target=target)
    with pytest.raises(ek.SpecError) as caught:
        offline(spec).limitations(spec.deployment("azure"))
    assert caught.value.field == "targets.azure.tls.cert_file" and HOST in str(caught.value)


def test_a_key_vault_certificate_needs_a_class_that_reads_it(repository: Path) -> None:
    vault = "https://corp-vault.vault.azure.net/certificates/triton"
    alb = aks_spec(
        repository,
        ARM,
        target={"host": HOST, "gateway_class": "azure-alb-external", "tls": {"key_vault_certificate": vault}},
    )
    with pytest.raises(ek.SpecError, match="Kubernetes Secrets") as caught:
        offline(alb).limitations(alb.deployment("azure"))
    assert caught.value.field == "targets.azure.tls.key_vault_certificate"

    istio = aks_spec(repository, ARM, target={"host": HOST, "tls": {"key_vault_certificate": vault}})
    adapter = offline(istio)
    adapter.limitations(istio.deployment("azure"))
    [gateway] = [o for o in plan_endpoint(istio.deployment("azure")).objects if o["kind"] == "Gateway"]
    [listener] = gateway["spec"]["listeners"]
    assert listener["tls"] == {
        "mode": "Terminate",
        "options": {
            "kubernetes.azure.com/tls-cert-keyvault-uri": vault,
            "kubernetes.azure.com/tls-cert-service-account": "vision-keyvault",
        },
    }
    dns, vault_note = adapter.plan_notes(istio.deployment("azure"))
    assert dns.startswith(f"host {HOST}: point its DNS record at the Gateway's address")
    assert "ServiceAccount vision-keyvault" in vault_note and "Key Vault Secrets User" in vault_note


# ------------------------------------------------------------------------------------------------- reaping


def test_reap_lists_the_url_and_removes_gateway_routes_and_secrets(
    azure: FakeAzure, repository: Path
) -> None:
    spec = aks_spec(repository, azure.arm.url, target={"api_key": True})
    with azure.adapter(spec.targets["azure"]) as adapter:
        state = ek.apply(spec, adapter=adapter)
        [listed] = adapter.list_endpoints()
        assert (listed.name, listed.url, listed.status) == ("vision", state.url, EndpointStatus.IN_SERVICE)
        adapter.destroy_by_state(listed)
        for kind in ("Gateway", "HTTPRoute", "GRPCRoute", "Deployment", "Service", "Secret", "ConfigMap"):
            assert names(azure, kind) == [], kind
