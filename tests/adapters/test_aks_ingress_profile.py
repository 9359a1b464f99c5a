"""The Gateway API add-on in the managed cluster's ingress profile, through the real azure-mgmt-containerservice
client against the local ARM fake.

A cluster endpointkit makes carries the add-on from its first PUT; an existing cluster without it is refused in
plan, naming the ``az aks`` commands, unless ``allow_addon_changes`` lets endpointkit enable it, which sends the
cluster back with only ``properties.ingressProfile`` changed. Classes AKS does not manage are never checked.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import endpointkit as ek
from endpointkit.adapters.aks._arm import ArmClient
from endpointkit.adapters.aks._desired import plan_endpoint
from endpointkit.adapters.aks._gateway_classes import KNOWN_CLASSES, gateway_class_info
from endpointkit.adapters.aks._infra import Infrastructure
from endpointkit.spec import Deployment
from tests.fakes.arm import GATEWAY_INGRESS_PROFILE
from tests.fakes.kube import FakeAzure, aks_spec, azure, repository, tls

# Fixtures used by the tests below (pytest finds them in this namespace).
__all__ = ["azure", "repository", "tls"]

CLUSTER = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/gpu-aks"
# What endpointkit asks for: the managed Gateway API CRDs and app routing's Istio implementation, application
# routing on (as az aks ... --enable-app-routing-istio does) without its default NGINX controller.
ADDON_PROFILE = {
    "gatewayAPI": {"installation": "Standard"},
    "webAppRouting": {
        "enabled": True,
        "nginx": {"defaultIngressControllerType": "None"},
        "gatewayAPIImplementations": {"appRoutingIstio": {"mode": "Enabled"}},
    },
}
# Fields of someone else's cluster that an update must send back untouched.
THEIR_CLUSTER = {
    "dnsPrefix": "their-aks",
    "kubernetesVersion": "1.33.2",
    "enableRBAC": True,
    "networkProfile": {"networkPlugin": "azure", "networkPluginMode": "overlay", "podCidr": "10.244.0.0/16"},
    "addonProfiles": {
        "azureKeyvaultSecretsProvider": {"enabled": True, "config": {"enableSecretRotation": "true"}}
    },
    "oidcIssuerProfile": {"enabled": True},
}
# Read-only fields the fake reports (the SDK leaves them out of a PUT).
READ_ONLY = {"provisioningState", "currentKubernetesVersion", "fqdn", "powerState"}

Build = Callable[..., tuple[Infrastructure, Deployment]]


def _no_kube() -> Any:
    raise AssertionError("the ingress profile is ARM's business: no Kubernetes call is expected")


@pytest.fixture
def build(azure: FakeAzure, repository: Path) -> Iterator[Build]:
    """``build(**target_fields)``: the Infrastructure of an AKS target on the fakes, and its deployment."""
    clients: list[ArmClient] = []

    def make(**target: Any) -> tuple[Infrastructure, Deployment]:
        deployment = aks_spec(repository, azure.arm.url, target=target).deployment("azure")
        options = azure.adapter_options()
        arm = ArmClient(
            deployment.target,  # type: ignore[arg-type]
            credential=lambda: options["credential"],
            client_options=options["arm_options"],
            retry=options["retry"],
            polling=options["polling"],
        )
        clients.append(arm)
        return Infrastructure(arm, _no_kube, lambda: None, polling=options["polling"]), deployment

    yield make
    for arm in clients:
        arm.close()


def deadline() -> float:
    return time.monotonic() + 30


def test_the_default_class_is_the_application_routing_addon() -> None:
    info = gateway_class_info("approuting-istio")
    assert info is not None and info.addon and info.key_vault is None
    assert "app-routing-gateway-api" in info.docs
    alb = KNOWN_CLASSES["azure-alb-external"]
    assert not alb.addon and alb.key_vault is not None and "Kubernetes Secrets" in alb.key_vault
    assert gateway_class_info("my-envoy") is None


def test_a_cluster_endpointkit_makes_carries_the_addon_in_its_create(azure: FakeAzure, build: Build) -> None:
    infra, deployment = build()
    cluster = infra.ensure_cluster(deployment, plan_endpoint(deployment), deadline=deadline(), progress=None)
    [put] = azure.arm.cluster_puts("rg", "gpu-aks")
    assert put.body["properties"]["ingressProfile"] == ADDON_PROFILE
    assert put.if_match is None
    assert cluster.gateway_api and cluster.app_routing and not cluster.istio_mesh
    infra.check_gateway_addon(deployment, cluster)
    assert infra.ensure_gateway_addon(deployment, cluster, deadline=deadline(), progress=None) == cluster
    assert len(azure.arm.writes) == 1


def test_a_cluster_made_for_a_class_aks_does_not_manage_has_no_ingress_profile(
    azure: FakeAzure, build: Build
) -> None:
    infra, deployment = build(gateway_class="azure-alb-external")
    cluster = infra.ensure_cluster(deployment, plan_endpoint(deployment), deadline=deadline(), progress=None)
    [put] = azure.arm.cluster_puts("rg", "gpu-aks")
    assert "ingressProfile" not in put.body["properties"]
    assert not cluster.gateway_api


def test_an_existing_cluster_without_the_addon_is_refused_naming_the_commands(
    azure: FakeAzure, build: Build
) -> None:
    azure.arm.add_cluster("rg", "gpu-aks")
    infra, deployment = build(create_cluster=False)
    cluster = infra.arm.cluster()
    assert cluster is not None and not cluster.gateway_api_crds and not cluster.app_routing_istio
    with pytest.raises(ek.ConflictError) as caught:
        infra.check_gateway_addon(deployment, cluster)
    message = str(caught.value)
    commands = [
        "az aks update --resource-group rg --name gpu-aks --enable-gateway-api",
        "az aks update --resource-group rg --name gpu-aks --enable-app-routing-istio",
    ]
    for command in commands:
        assert command in message
    assert "targets.azure.gateway_class: approuting-istio" in message
    assert "AKS cluster gpu-aks (resource group rg)" in message
    assert "gatewayAPI.installation: Standard" in message and "appRoutingIstio.mode: Enabled" in message
    assert "or set allow_addon_changes: true" in message
    assert caught.value.code == "GatewayAddonMissing"
    assert caught.value.details["commands"] == commands
    with pytest.raises(ek.ConflictError):
        infra.ensure_gateway_addon(deployment, cluster, deadline=deadline(), progress=None)
    assert azure.arm.writes == []


def test_allowed_changes_enable_the_addon_and_change_nothing_else(azure: FakeAzure, build: Build) -> None:
    azure.arm.add_cluster("rg", "gpu-aks", tags={"team": "vision"}, properties=copy.deepcopy(THEIR_CLUSTER))
    before = copy.deepcopy(azure.arm.clusters[("rg", "gpu-aks")])
    infra, deployment = build(create_cluster=False, allow_addon_changes=True)
    cluster = infra.arm.cluster()
    assert cluster is not None
    infra.check_gateway_addon(deployment, cluster)  # allowed: no refusal in plan

    updated = infra.ensure_gateway_addon(deployment, cluster, deadline=deadline(), progress=None)

    assert updated.gateway_api and updated.provisioning_state == "Succeeded"
    assert azure.arm.writes == [("PUT", CLUSTER)]
    [put] = azure.arm.cluster_puts("rg", "gpu-aks")
    assert put.if_match == f'"{before["eTag"]}"'  # the eTag read, so a change made meanwhile is refused
    sent = copy.deepcopy(put.body)
    assert sent["properties"].pop("ingressProfile") == ADDON_PROFILE
    unchanged = {k: v for k, v in before["properties"].items() if k not in READ_ONLY}
    assert sent["properties"] == unchanged
    assert (sent["location"], sent["tags"], sent["identity"]) == (
        "eastus",
        {"team": "vision"},
        before["identity"],
    )
    assert set(sent) == {"location", "tags", "identity", "properties"}
    assert infra.arm.cluster() == updated


def test_an_enabled_application_routing_keeps_its_own_settings(azure: FakeAzure, build: Build) -> None:
    zone = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/dns/providers/Microsoft.Network/dnszones/example.com"
    routing = {
        "enabled": True,
        "dnsZoneResourceIds": [zone],
        "nginx": {"defaultIngressControllerType": "AnnotationControlled"},
    }
    azure.arm.add_cluster("rg", "gpu-aks", properties={"ingressProfile": {"webAppRouting": routing}})
    infra, deployment = build(create_cluster=False, allow_addon_changes=True)
    cluster = infra.arm.cluster()
    assert cluster is not None and cluster.app_routing and not cluster.gateway_api
    infra.ensure_gateway_addon(deployment, cluster, deadline=deadline(), progress=None)
    [put] = azure.arm.cluster_puts("rg", "gpu-aks")
    assert put.body["properties"]["ingressProfile"] == {
        "gatewayAPI": {"installation": "Standard"},
        "webAppRouting": {**routing, "gatewayAPIImplementations": {"appRoutingIstio": {"mode": "Enabled"}}},
    }


def test_an_existing_cluster_with_the_addon_gets_nothing_sent(azure: FakeAzure, build: Build) -> None:
    azure.arm.add_cluster("rg", "gpu-aks", properties={"ingressProfile": GATEWAY_INGRESS_PROFILE})
    infra, deployment = build(create_cluster=False)
    cluster = infra.arm.cluster()
    assert cluster is not None and cluster.gateway_api
    infra.check_gateway_addon(deployment, cluster)
    assert infra.ensure_gateway_addon(deployment, cluster, deadline=deadline(), progress=None) is cluster
    assert azure.arm.writes == []


@pytest.mark.parametrize(
    "target",
    [
        {"gateway_class": "azure-alb-external"},
        {"gateway_class": "my-envoy-gateway"},
        {"gateway": "infra/shared"},
    ],
    ids=["application-gateway-for-containers", "a-class-someone-installed", "an-existing-gateway"],
)
def test_nothing_is_checked_or_sent_when_endpointkit_needs_no_addon(
    azure: FakeAzure, build: Build, target: dict[str, str]
) -> None:
    azure.arm.add_cluster("rg", "gpu-aks")
    infra, deployment = build(create_cluster=False, **target)
    cluster = infra.arm.cluster()
    assert cluster is not None and not cluster.gateway_api
    infra.check_gateway_addon(deployment, cluster)
    assert infra.ensure_gateway_addon(deployment, cluster, deadline=deadline(), progress=None) is cluster
    assert azure.arm.writes == []


def test_a_cluster_with_the_istio_mesh_is_refused_even_when_changes_are_allowed(
    azure: FakeAzure, build: Build
) -> None:
    azure.arm.add_cluster("rg", "gpu-aks", properties={"serviceMeshProfile": {"mode": "Istio"}})
    infra, deployment = build(create_cluster=False, allow_addon_changes=True)
    cluster = infra.arm.cluster()
    assert cluster is not None and cluster.istio_mesh
    with pytest.raises(ek.ConflictError) as caught:
        infra.ensure_gateway_addon(deployment, cluster, deadline=deadline(), progress=None)
    assert "gateway_class: istio" in str(caught.value)
    assert "az aks mesh disable --resource-group rg --name gpu-aks" in str(caught.value)
    assert azure.arm.writes == []


def test_a_key_vault_certificate_needs_the_application_routing_operator(
    azure: FakeAzure, build: Build
) -> None:
    profile = copy.deepcopy(GATEWAY_INGRESS_PROFILE)
    profile["webAppRouting"]["enabled"] = False
    azure.arm.add_cluster("rg", "gpu-aks", properties={"ingressProfile": profile})
    certificate = "https://vision-kv.vault.azure.net/certificates/triton"
    infra, deployment = build(create_cluster=False, tls={"key_vault_certificate": certificate})
    cluster = infra.arm.cluster()
    assert cluster is not None and cluster.gateway_api and not cluster.app_routing
    with pytest.raises(ek.ConflictError) as caught:
        infra.check_gateway_addon(deployment, cluster)
    assert caught.value.details["commands"] == ["az aks approuting enable --resource-group rg --name gpu-aks"]
    _, with_files = build(create_cluster=False, tls="auto")
    infra.check_gateway_addon(with_files, cluster)  # no Key Vault: the Gateway API add-on is enough


def test_a_cluster_changed_meanwhile_is_refused_not_overwritten(azure: FakeAzure, build: Build) -> None:
    azure.arm.add_cluster("rg", "gpu-aks")
    azure.arm.fail("cluster.put", code="PreconditionFailed", message="eTag mismatch", status=412)
    infra, deployment = build(create_cluster=False, allow_addon_changes=True)
    cluster = infra.arm.cluster()
    assert cluster is not None
    with pytest.raises(ek.ConflictError, match="changed while endpointkit was updating it"):
        infra.ensure_gateway_addon(deployment, cluster, deadline=deadline(), progress=None)
    assert "ingressProfile" not in azure.arm.clusters[("rg", "gpu-aks")]["properties"]


def test_a_failed_update_surfaces_azures_reason(azure: FakeAzure, build: Build) -> None:
    azure.arm.add_cluster("rg", "gpu-aks")
    azure.arm.fail(
        "cluster.put", code="BadRequest", message="the ingress profile change was refused", asynchronous=True
    )
    infra, deployment = build(create_cluster=False, allow_addon_changes=True)
    cluster = infra.arm.cluster()
    assert cluster is not None
    with pytest.raises(ek.ProviderError) as caught:
        infra.ensure_gateway_addon(deployment, cluster, deadline=deadline(), progress=None)
    assert "the ingress profile change was refused" in str(caught.value)
    assert "enable the Gateway API add-on on cluster gpu-aks" in str(caught.value)
