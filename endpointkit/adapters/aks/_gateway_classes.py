"""Gateway classes known to work on AKS: whether AKS turns them on through the managed cluster's ingress profile,
and whether they can serve a certificate kept in Azure Key Vault.

A class missing from the table is not refused: it is a class someone installed (Envoy Gateway, Cilium, …), used as
it is; endpointkit then neither enables an add-on for it nor promises Key Vault certificates.

Sources, as read in 2026:

- ``approuting-istio``: the application routing add-on's Gateway API implementation (a sidecar-less Istio control
  plane), "Gateway Class name ``approuting-istio``"; needs the managed Gateway API CRDs
  (https://learn.microsoft.com/azure/aks/app-routing-gateway-api, https://learn.microsoft.com/azure/aks/managed-gateway-api).
- ``istio``: the Istio service mesh add-on's class (same table; https://learn.microsoft.com/azure/aks/istio-gateway-api);
  the two cannot be enabled on one cluster at the same time.
- Key Vault: "When a Gateway resource uses a managed GatewayClass - either ``approuting-istio`` … or ``istio`` …"
  and a listener carries the ``kubernetes.azure.com/tls-cert-keyvault-uri`` and
  ``kubernetes.azure.com/tls-cert-service-account`` TLS options, the application routing operator syncs the
  certificate (https://learn.microsoft.com/azure/aks/app-routing-gateway-api-dns-tls).
- ``azure-alb-external``: Application Gateway for Containers' class, served by its ALB Controller (Helm, or an
  AKS add-on in preview that the GA SDK does not model); "Certificates for Application Gateway for Containers must
  be stored as Kubernetes secrets. Azure Key Vault integration via the Secrets Store CSI driver is not supported"
  (https://learn.microsoft.com/azure/application-gateway/for-containers/how-to-ssl-offloading-gateway-api).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["APP_ROUTING_ISTIO", "KNOWN_CLASSES", "GatewayClassInfo", "gateway_class_info"]


@dataclass(frozen=True, slots=True)
class GatewayClassInfo:
    """One Gateway class and what AKS offers for it.

    Attributes:
        name: the ``gatewayClassName``.
        description: what serves it and where it comes from.
        addon: AKS turns it on through the managed cluster's ``properties.ingressProfile`` (so endpointkit can
            check, and with ``allow_addon_changes`` enable, it through ARM).
        key_vault: None when a listener can take its certificate straight from Azure Key Vault; otherwise why it
            cannot and what to do instead.
        docs: the page that documents the class on AKS.
    """

    name: str
    description: str
    addon: bool
    key_vault: str | None
    docs: str


APP_ROUTING_ISTIO = "approuting-istio"

KNOWN_CLASSES: dict[str, GatewayClassInfo] = {
    info.name: info
    for info in (
        GatewayClassInfo(
            name=APP_ROUTING_ISTIO,
            description=(
                "the application routing add-on's Gateway API implementation (a sidecar-less Istio control plane "
                "managed by AKS), on the managed Gateway API CRDs"
            ),
            addon=True,
            key_vault=None,
            docs="https://learn.microsoft.com/azure/aks/app-routing-gateway-api",
        ),
        GatewayClassInfo(
            name="istio",
            description=(
                "the Istio service mesh add-on (az aks mesh enable) with the managed Gateway API CRDs; it cannot run "
                f"on a cluster that has the {APP_ROUTING_ISTIO} implementation enabled"
            ),
            addon=False,
            key_vault=None,
            docs="https://learn.microsoft.com/azure/aks/istio-gateway-api",
        ),
        GatewayClassInfo(
            name="azure-alb-external",
            description="Application Gateway for Containers, served by its ALB Controller",
            addon=False,
            key_vault=(
                "Application Gateway for Containers reads listener certificates only from Kubernetes Secrets "
                "(Key Vault through the Secrets Store CSI driver is not supported): use tls: {cert_file, key_file} "
                "or tls: auto, or use gateway_class: approuting-istio for a Key Vault certificate"
            ),
            docs="https://learn.microsoft.com/azure/application-gateway/for-containers/how-to-ssl-offloading-gateway-api",
        ),
    )
}


def gateway_class_info(name: str) -> GatewayClassInfo | None:
    """What endpointkit knows about Gateway class ``name``; None for a class it does not know (used as found)."""
    return KNOWN_CLASSES.get(name)
