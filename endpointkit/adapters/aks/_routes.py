"""How clients reach an AKS endpoint, as the spec decides it: the Gateway (the endpoint's own, or one named in
``gateway``), its listener, the host name, the TLS Secrets, and the two routes that weight the variants' versions.

Pure: renders objects from the target and the versions' Service names; no client import. ``_gateway`` draws each
object; this module decides which ones an endpoint has, their names and how traffic splits between versions.

Names, for endpoint ``EP`` in namespace ``NS``: Gateway ``EP`` (unless ``gateway`` names one), HTTPRoute ``EP``
and GRPCRoute ``EP``, TLS Secret ``EP-tls`` (the listener's certificate) and, with ``tls: auto``, ``EP-ca`` (the
private CA that signs it, kept so a renewal keeps the CA clients trust).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from endpointkit.adapters.aks import _gateway, _render
from endpointkit.adapters.aks._gateway import Backend
from endpointkit.spec import AksTarget, AksTls, Deployment

__all__ = [
    "KEY_VAULT_ACCOUNT_OPTION",
    "KEY_VAULT_URI_OPTION",
    "Front",
    "TlsMode",
    "blend",
    "front_notes",
    "front_of",
    "route_backends",
    "tls_mode",
]

TlsMode = Literal["auto", "files", "key_vault", "off"]
# Listener TLS options the application routing operator reads to sync a Key Vault certificate for a listener of a
# managed class (approuting-istio, istio): https://learn.microsoft.com/azure/aks/app-routing-gateway-api-dns-tls
KEY_VAULT_URI_OPTION = "kubernetes.azure.com/tls-cert-keyvault-uri"
KEY_VAULT_ACCOUNT_OPTION = "kubernetes.azure.com/tls-cert-service-account"


def tls_mode(target: AksTarget) -> TlsMode:
    """``auto``, ``files`` (a PEM pair the spec names), ``key_vault`` or ``off``."""
    if isinstance(target.tls, AksTls):
        return "files" if target.tls.from_files else "key_vault"
    return target.tls


@dataclass(frozen=True)
class Front:
    """The Gateway, listener and routes of one endpoint, and the names of its TLS Secrets.

    Attributes:
        endpoint, namespace: the endpoint and the namespace of its objects (routes, Secrets, its own Gateway).
        gateway: ``(namespace, name)`` of the Gateway the routes attach to.
        owns_gateway: whether endpointkit makes (and deletes) that Gateway.
        tls: how the listener gets its certificate.
        host: the DNS name the spec gives (``host``), None when the Gateway's address decides it.
        dns_label: the Azure DNS label of a public Gateway without ``host`` (the host is then
            ``LABEL.REGION.cloudapp.azure.com``).
        gateway_class, exposure: for the endpoint's own Gateway.
        key_vault_certificate: the Key Vault certificate URI of ``tls: {key_vault_certificate}``.
    """

    endpoint: str
    namespace: str
    gateway: tuple[str, str]
    owns_gateway: bool
    tls: TlsMode
    host: str | None
    dns_label: str | None
    gateway_class: str
    exposure: Literal["public", "internal"]
    key_vault_certificate: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def gateway_label(self) -> str:
        """``namespace/name`` of the Gateway, as status shows it."""
        return "/".join(self.gateway)

    @property
    def tls_secret(self) -> str | None:
        """The Secret the own Gateway's listener serves (``EP-tls``), for ``auto`` and ``files``; None otherwise
        (an existing Gateway's listeners keep their own certificates)."""
        return f"{self.endpoint}-tls" if self.owns_gateway and self.tls in ("auto", "files") else None

    @property
    def ca_secret(self) -> str | None:
        """The Secret holding the private CA of ``tls: auto`` (``EP-ca``); None otherwise."""
        return f"{self.endpoint}-ca" if self.owns_gateway and self.tls == "auto" else None

    @property
    def key_vault_account(self) -> str | None:
        """The ServiceAccount through which the application routing operator reads a Key Vault certificate."""
        return f"{self.endpoint}-keyvault" if self.tls == "key_vault" else None

    def scheme(self, gateway: Mapping[str, Any] | None = None) -> str:
        """``https`` or ``http``: from ``tls`` for the own Gateway; from the listener of an existing ``gateway``
        (the first that admits routes: HTTPS means https)."""
        if self.owns_gateway:
            return "http" if self.tls == "off" else "https"
        listeners = ((gateway or {}).get("spec") or {}).get("listeners") or []
        return "https" if any(item.get("protocol") == "HTTPS" for item in listeners[:1]) else "http"

    @property
    def section(self) -> str | None:
        """The listener the routes attach to on the endpoint's own Gateway (``https`` or ``http``)."""
        if not self.owns_gateway:
            return None
        return "http" if self.tls == "off" else "https"

    def labels(self, role: str) -> dict[str, str]:
        return {**_render.base_labels(self.endpoint), _render.LABEL_ROLE: role}

    def gateway_object(self) -> dict[str, Any] | None:
        """The endpoint's own Gateway, or None when the routes attach to an existing one."""
        if not self.owns_gateway:
            return None
        secret = None if self.tls == "off" else f"{self.endpoint}-tls"
        obj = _gateway.gateway(
            self.gateway[1],
            self.namespace,
            gateway_class=self.gateway_class,
            hostname=self.host,
            tls_secret=secret,
            exposure=self.exposure,
            dns_label=self.dns_label,
            labels=self.labels("gateway"),
            annotations=dict(self.annotations) or None,
        )
        if self.tls == "key_vault":
            # No Secret of ours: the application routing operator syncs the Key Vault certificate into one and
            # fills the listener's certificateRefs itself, from these two options.
            listener = obj["spec"]["listeners"][0]
            listener["tls"] = {
                "mode": "Terminate",
                "options": {
                    KEY_VAULT_URI_OPTION: str(self.key_vault_certificate),
                    KEY_VAULT_ACCOUNT_OPTION: str(self.key_vault_account),
                },
            }
        return obj

    def routes(
        self, backends: Sequence[Backend], *, preview: tuple[str, Sequence[Backend]] | None = None
    ) -> list[dict[str, Any]]:
        """The HTTPRoute and GRPCRoute sending traffic to ``backends`` by weight, with the ``preview`` rule
        (``endpointkit-version: VERSION`` -> its backends) when given."""
        options: dict[str, Any] = {
            "gateway": self.gateway,
            "section": self.section,
            "hostnames": [self.host] if self.host else [],
            "backends": backends,
            "preview": preview,
            "labels": self.labels("route"),
            "annotations": dict(self.annotations) or None,
        }
        return [
            _gateway.http_route(self.endpoint, self.namespace, **options),
            _gateway.grpc_route(self.endpoint, self.namespace, **options),
        ]

    def host_of(self, location: str | None, gateway: Mapping[str, Any] | None) -> str | None:
        """The host clients call: ``host``; else the Azure DNS name of the own Gateway's label in ``location``;
        else the existing Gateway's listener host name, else its first address. None while unknown."""
        if self.host:
            return self.host
        if self.owns_gateway and self.dns_label and location:
            return _gateway.azure_dns_name(self.dns_label, location)
        if gateway is None:
            return None
        for listener in (gateway.get("spec") or {}).get("listeners") or ():
            hostname = str(listener.get("hostname") or "")
            if hostname and not hostname.startswith("*"):
                return hostname
        addresses = _gateway.gateway_status(gateway).addresses
        return addresses[0] if addresses else None


def front_of(endpoint: str, target: AksTarget, *, annotations: Mapping[str, str] | None = None) -> Front:
    """The front of ``endpoint`` on ``target``, from the spec alone."""
    owns = target.gateway is None
    if owns:
        gateway = (target.namespace, endpoint)
    else:
        assert target.gateway is not None
        namespace, _, name = target.gateway.rpartition("/")
        gateway = (namespace or target.namespace, name)
    mode = tls_mode(target)
    label = None
    if owns and target.host is None and target.exposure == "public":
        label = _gateway.dns_label(
            endpoint,
            subscription_id=target.subscription_id,
            resource_group=target.resource_group,
            cluster=target.cluster,
            namespace=target.namespace,
        )
    return Front(
        endpoint=endpoint,
        namespace=target.namespace,
        gateway=gateway,
        owns_gateway=owns,
        tls=mode,
        host=target.host,
        dns_label=label,
        gateway_class=target.gateway_class,
        exposure=target.exposure,
        key_vault_certificate=target.tls.key_vault_certificate if isinstance(target.tls, AksTls) else None,
        annotations=dict(annotations or {}),
    )


def blend(old: Mapping[str, float], new: Mapping[str, float], share: float) -> list[Backend]:
    """Backends giving the new version ``share`` percent of the traffic and the old one the rest.

    ``old`` and ``new`` map each version's Services to their weights (any scale): within a version, traffic
    splits in those proportions. A Service in both (a variant whose template did not change) gets both parts; a
    version without weight gets nothing. Integer weights by :func:`_gateway.integer_weights`.

    Raises:
        ValueError: neither version has a positive weight where it gets traffic.
    """
    shares: dict[str, float] = {}
    for version, part in ((old, 100.0 - share), (new, share)):
        total = sum(version.values())
        for service, weight in version.items():
            shares[service] = shares.get(service, 0.0) + (
                part * weight / total if part > 0 and total > 0 else 0.0
            )
    if not any(shares.values()):
        raise ValueError("no version has a positive weight: the routes would send traffic nowhere")
    weights = _gateway.integer_weights(shares)
    return [Backend(service, weights[service]) for service in sorted(weights)]


def route_backends(route: Mapping[str, Any] | None) -> tuple[dict[str, int], bool]:
    """A live route's weights per Service in its main rule (the one without a header match), and whether it has
    a preview rule."""
    weights: dict[str, int] = {}
    preview = False
    for rule in ((route or {}).get("spec") or {}).get("rules") or ():
        if any(match.get("headers") for match in rule.get("matches") or ()):
            preview = True
            continue
        for ref in rule.get("backendRefs") or ():
            weights[str(ref.get("name"))] = int(ref.get("weight", 1))
    return weights, preview


def front_notes(deployment: Deployment) -> list[str]:
    """What plan should say about how clients reach the endpoint: the key in clear text over ``tls: off``, and
    what a Key Vault certificate needs from the user."""
    target = deployment.target
    assert isinstance(target, AksTarget)
    front = front_of(deployment.name, target)
    notes: list[str] = []
    if not front.owns_gateway:
        return notes
    if front.tls == "off" and target.api_key:
        notes.append(
            "tls: off sends the endpoint key (header endpointkit-key) and every request in clear text: anyone on "
            "the path can read and reuse the key; use tls: auto (or your certificate) to encrypt them"
        )
    elif front.tls == "off" and target.exposure == "public":
        notes.append(
            "tls: off serves plain HTTP on a public address: requests and responses travel unencrypted"
        )
    if front.host is not None:
        notes.append(
            f"host {front.host}: point its DNS record at the Gateway's address (status shows it as address); "
            "endpointkit does not manage DNS records"
        )
    if front.tls == "key_vault":
        notes.append(
            f"tls: the application routing operator reads {front.key_vault_certificate} through ServiceAccount "
            f"{front.key_vault_account} in namespace {front.namespace}: create it bound to a managed identity "
            "with the Key Vault Secrets User role (workload identity), "
            "https://learn.microsoft.com/azure/aks/app-routing-gateway-api-dns-tls"
        )
    return notes
