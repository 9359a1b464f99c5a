"""The Gateway API objects of an AKS endpoint, as plain dicts: pure functions, no client import.

An endpoint behind a Gateway is: a ClusterIP Service per variant (the weighted backends), a Gateway whose
proxy terminates TLS behind the Azure load balancer its class provisions, an HTTPRoute (Triton HTTP, port
8000) and a GRPCRoute (Triton gRPC, port 8001) that split traffic between the variants, and the TLS Secret
the listener serves. Readers turn the status the Gateway controller writes into what the adapter waits for.

Shapes follow the Gateway API v1 standard channel (https://gateway-api.sigs.k8s.io/reference/spec/); the
vendored CRDs in ``tests/schemas/gateway-api`` check every object rendered here.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from endpointkit.adapters.aks._render import GRPC_PORT, HTTP_PORT

__all__ = [
    "ANNOTATION_AZURE_DNS_LABEL",
    "ANNOTATION_AZURE_INTERNAL",
    "GATEWAY_API_VERSION",
    "GRPC_INFERENCE_SERVICE",
    "MAX_WEIGHT",
    "VERSION_HEADER",
    "WEIGHT_TOTAL",
    "Backend",
    "GatewayStatus",
    "RouteStatus",
    "azure_dns_name",
    "dns_label",
    "gateway",
    "gateway_status",
    "grpc_route",
    "http_route",
    "integer_weights",
    "route_status",
    "tls_secret",
    "variant_service",
]

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_API_VERSION = f"{GATEWAY_GROUP}/v1"
#: the request header (HTTP) or metadata key (gRPC, where keys are lowercase) that selects the preview rule
VERSION_HEADER = "endpointkit-version"
#: Triton's gRPC service (triton-inference-server/common protobuf/grpc_service.proto, ``package inference``)
GRPC_INFERENCE_SERVICE = "inference.GRPCInferenceService"
#: BackendRef.weight bounds: https://gateway-api.sigs.k8s.io/reference/spec/#backendref
MAX_WEIGHT = 1_000_000
#: the scale integer_weights aims at: weights read as parts per thousand
WEIGHT_TOTAL = 1000
# cloud-provider-azure Service annotations, the same ones AKS documents for a plain LoadBalancer Service:
# https://learn.microsoft.com/azure/aks/static-ip#apply-a-dns-label-to-the-service
# https://learn.microsoft.com/azure/aks/internal-lb#create-an-internal-load-balancer
# https://cloud-provider-azure.sigs.k8s.io/topics/loadbalancer/#loadbalancer-annotations
ANNOTATION_AZURE_DNS_LABEL = "service.beta.kubernetes.io/azure-dns-label-name"
ANNOTATION_AZURE_INTERNAL = "service.beta.kubernetes.io/azure-load-balancer-internal"
# Backend protocol selection (GEP-1911): a Service port's appProtocol ``kubernetes.io/h2c`` tells the Gateway
# to speak HTTP/2 over cleartext to it, which Triton's gRPC port needs.
# https://gateway-api.sigs.k8s.io/geps/gep-1911/
# https://kubernetes.io/docs/concepts/services-networking/service/#application-protocol
_H2C = "kubernetes.io/h2c"
# Azure's rule for a public IP's domainNameLabel (3 to 63 characters):
# https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftnetwork
_AZURE_DNS_LABEL = re.compile(r"^[a-z][a-z0-9-]{1,61}[a-z0-9]$")
_DNS_LABEL_HASH_LENGTH = 8
# Public Azure; sovereign clouds use their own zone (e.g. cloudapp.usgovcloudapi.net):
# https://learn.microsoft.com/azure/virtual-network/ip-services/public-ip-addresses#dns-name-label
_PUBLIC_CLOUD_ZONE = "cloudapp.azure.com"


@dataclass(frozen=True)
class Backend:
    """One weighted backendRef of a route rule: a variant's Service and its integer weight."""

    service: str
    weight: int

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= MAX_WEIGHT:
            raise ValueError(f"backend {self.service}: weight {self.weight} is outside 0..{MAX_WEIGHT}")


@dataclass(frozen=True)
class GatewayStatus:
    """What the Gateway controller reports: whether the listeners are programmed, why not, and the addresses."""

    programmed: bool
    reason: str | None
    message: str | None
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class RouteStatus:
    """What the Gateway reports about one route: attached (Accepted) and every backend found (ResolvedRefs)."""

    accepted: bool
    resolved: bool
    reason: str | None
    message: str | None


def integer_weights(shares: Mapping[str, float]) -> dict[str, int]:
    """Integer backendRef weights in the proportions of ``shares`` (any scale, non-negative, sum > 0).

    Proportions that whole numbers up to :data:`WEIGHT_TOTAL` can state exactly come out exact and scaled
    towards it (90/10 gives 900/100, 1/1/1 gives 333/333/333); others are rounded to a total of
    :data:`WEIGHT_TOTAL` by largest remainder, ties broken by name. A zero share stays 0 and a positive share
    never becomes 0. Deterministic; raises ValueError for a negative, infinite or NaN share or a zero sum.
    """
    _check_shares(shares)
    # divide by the largest share first, so shares near the float limits neither overflow nor all vanish
    peak = max(shares.values())
    scaled = {name: share / peak for name, share in shares.items()}
    total = math.fsum(scaled.values())
    normalized = {name: share / total for name, share in scaled.items()}
    positive = frozenset(name for name, share in shares.items() if share > 0)
    return _exact_weights(normalized, positive) or _largest_remainder(normalized, positive)


def _check_shares(shares: Mapping[str, float]) -> None:
    for name, share in shares.items():
        if not math.isfinite(share) or share < 0:
            raise ValueError(f"weight of {name} is {share}: weights are finite and not negative")
    if not any(share > 0 for share in shares.values()):
        raise ValueError("weights sum to 0: at least one variant needs a positive weight")


def _exact_weights(normalized: Mapping[str, float], positive: frozenset[str]) -> dict[str, int] | None:
    """Whole-number weights with exactly these proportions and a total up to WEIGHT_TOTAL, else None."""
    fractions = {name: Fraction(p).limit_denominator(WEIGHT_TOTAL) for name, p in normalized.items()}
    for name, fraction in fractions.items():
        share = normalized[name]
        if (fraction > 0) != (name in positive) or not math.isclose(
            fraction, share, rel_tol=1e-9, abs_tol=1e-12
        ):
            return None
    if sum(fractions.values()) != 1:
        return None
    denominator = math.lcm(*(f.denominator for f in fractions.values()))
    if denominator > WEIGHT_TOTAL:
        return None
    scale = WEIGHT_TOTAL // denominator
    return {name: int(f * denominator) * scale for name, f in fractions.items()}


def _largest_remainder(normalized: Mapping[str, float], positive: frozenset[str]) -> dict[str, int]:
    ideal = {name: p * WEIGHT_TOTAL for name, p in normalized.items()}
    weights = {name: math.floor(value) for name, value in ideal.items()}
    left = WEIGHT_TOTAL - sum(weights.values())
    by_remainder = sorted(ideal, key=lambda name: (-(ideal[name] - weights[name]), name))
    for name in by_remainder[:left]:
        weights[name] += 1
    for name in sorted(positive):
        if weights[name] == 0:
            # a variant with traffic keeps some: take the unit from the heaviest (first by name on a tie)
            heaviest = min(weights, key=lambda n: (-weights[n], n))
            weights[heaviest] -= 1
            weights[name] = 1
    return weights


def variant_service(
    name: str,
    namespace: str,
    *,
    selector: Mapping[str, str],
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A ClusterIP Service over one variant's pods: the backend the routes weight.

    HTTP on 8000 and gRPC on 8001 (``appProtocol: kubernetes.io/h2c``, so the Gateway proxies HTTP/2 in
    cleartext to Triton's gRPC port instead of HTTP/1.1); metrics stay unexposed.
    """
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, namespace, labels, annotations),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                {
                    "name": "grpc",
                    "port": GRPC_PORT,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": _H2C,
                },
            ],
        },
    }


def gateway(
    name: str,
    namespace: str,
    *,
    gateway_class: str,
    hostname: str | None,
    tls_secret: str | None,
    exposure: Literal["public", "internal"],
    dns_label: str | None,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Gateway with one listener that admits routes from its own namespace.

    With ``tls_secret``: listener ``https`` (HTTPS, 443) terminating TLS with that Secret; without: listener
    ``http`` (HTTP, 80). ``hostname`` narrows the listener to that name. The Azure load balancer is set through
    ``spec.infrastructure.annotations``: a DNS label on a public one, the internal flag on an internal one.
    Raises ValueError for a DNS label on an internal load balancer, which has no public IP to carry it.
    """
    if exposure == "internal" and dns_label is not None:
        raise ValueError("an internal load balancer has no public IP, so it cannot carry an Azure DNS label")
    spec: dict[str, Any] = {
        "gatewayClassName": gateway_class,
        "listeners": [_listener(hostname, tls_secret)],
    }
    infrastructure = _load_balancer_annotations(exposure, dns_label)
    if infrastructure:
        spec["infrastructure"] = {"annotations": infrastructure}
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "Gateway",
        "metadata": _metadata(name, namespace, labels, annotations),
        "spec": spec,
    }


def _listener(hostname: str | None, tls_secret: str | None) -> dict[str, Any]:
    listener: dict[str, Any] = {"name": "http", "protocol": "HTTP", "port": 80}
    if tls_secret is not None:
        listener = {
            "name": "https",
            "protocol": "HTTPS",
            "port": 443,
            "tls": {
                "mode": "Terminate",
                "certificateRefs": [{"group": "", "kind": "Secret", "name": tls_secret}],
            },
        }
    if hostname is not None:
        listener["hostname"] = hostname
    listener["allowedRoutes"] = {"namespaces": {"from": "Same"}}
    return listener


def _load_balancer_annotations(
    exposure: Literal["public", "internal"], dns_label: str | None
) -> dict[str, str]:
    """Service annotations for the load balancer the Gateway class makes.

    ``spec.infrastructure`` is in the standard channel since Gateway API v1.2:
    https://gateway-api.sigs.k8s.io/guides/infrastructure/
    Istio, behind AKS's ``approuting-istio`` class, writes these annotations on the Service it generates:
    https://istio.io/latest/docs/tasks/traffic-management/ingress/gateway-api/#automated-deployment and
    istio/istio ``manifests/charts/istio-control/istio-discovery/files/kube-gateway.yaml`` (the Service's
    annotations are ``.InfrastructureAnnotations``).
    """
    if exposure == "internal":
        return {ANNOTATION_AZURE_INTERNAL: "true"}
    if dns_label is not None:
        return {ANNOTATION_AZURE_DNS_LABEL: dns_label}
    return {}


def http_route(
    name: str,
    namespace: str,
    *,
    gateway: tuple[str, str],
    section: str | None,
    hostnames: Sequence[str],
    backends: Sequence[Backend],
    preview: tuple[str, Sequence[Backend]] | None = None,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An HTTPRoute from the Gateway ``(namespace, name)`` to the variants, on Triton's HTTP port.

    One rule sends every path (``PathPrefix /``) to ``backends`` by weight. ``preview=(version, backends)``
    adds a rule, first, that sends requests carrying ``endpointkit-version: <version>`` only to the preview
    backends, so a new version answers through the Gateway before any weight moves. Raises ValueError for a
    rule without backends or an empty version.
    """
    rules = [_rule({"path": {"type": "PathPrefix", "value": "/"}}, backends, HTTP_PORT)]
    if preview is not None:
        version, preview_backends = preview
        match = {"path": {"type": "PathPrefix", "value": "/"}, "headers": [_version_header(version)]}
        rules.insert(0, _rule(match, preview_backends, HTTP_PORT))
    return _route("HTTPRoute", name, namespace, gateway, section, hostnames, rules, labels, annotations)


def grpc_route(
    name: str,
    namespace: str,
    *,
    gateway: tuple[str, str],
    section: str | None,
    hostnames: Sequence[str],
    backends: Sequence[Backend],
    preview: tuple[str, Sequence[Backend]] | None = None,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A GRPCRoute from the Gateway ``(namespace, name)`` to the variants, on Triton's gRPC port.

    Same shape as :func:`http_route`: the rule matches the ``inference.GRPCInferenceService`` service, and the
    preview rule (first) matches that service with the ``endpointkit-version`` metadata key. Raises ValueError
    for a rule without backends or an empty version.
    """
    rules = [_rule({"method": _inference_service()}, backends, GRPC_PORT)]
    if preview is not None:
        version, preview_backends = preview
        match = {"method": _inference_service(), "headers": [_version_header(version)]}
        rules.insert(0, _rule(match, preview_backends, GRPC_PORT))
    return _route("GRPCRoute", name, namespace, gateway, section, hostnames, rules, labels, annotations)


def _route(
    kind: str,
    name: str,
    namespace: str,
    gateway: tuple[str, str],
    section: str | None,
    hostnames: Sequence[str],
    rules: list[dict[str, Any]],
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None,
) -> dict[str, Any]:
    # Precedence does not rest on order: a match with more header matches wins over one with fewer
    # (https://gateway-api.sigs.k8s.io/reference/spec/#httprouterule, GRPCRouteRule); the preview rule comes
    # first so a reader sees it first.
    spec: dict[str, Any] = {"parentRefs": [_parent_ref(gateway, section)], "rules": rules}
    if hostnames:
        spec["hostnames"] = list(hostnames)
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": kind,
        "metadata": _metadata(name, namespace, labels, annotations),
        "spec": spec,
    }


def _parent_ref(gateway: tuple[str, str], section: str | None) -> dict[str, Any]:
    gateway_namespace, gateway_name = gateway
    ref = {"group": GATEWAY_GROUP, "kind": "Gateway", "namespace": gateway_namespace, "name": gateway_name}
    if section is not None:
        ref["sectionName"] = section
    return ref


def _rule(match: dict[str, Any], backends: Sequence[Backend], port: int) -> dict[str, Any]:
    if not backends:
        raise ValueError("a route rule needs at least one backend")
    refs = [
        {"group": "", "kind": "Service", "name": b.service, "port": port, "weight": b.weight}
        for b in backends
    ]
    return {"matches": [match], "backendRefs": refs}


def _inference_service() -> dict[str, str]:
    return {"type": "Exact", "service": GRPC_INFERENCE_SERVICE}


def _version_header(version: str) -> dict[str, str]:
    if not version:
        raise ValueError("the preview version is empty: the header match needs a value")
    return {"type": "Exact", "name": VERSION_HEADER, "value": version}


def tls_secret(
    name: str,
    namespace: str,
    *,
    certificate_pem: str,
    key_pem: str,
    ca_pem: str | None,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A ``kubernetes.io/tls`` Secret with the listener's certificate chain and key, and ``ca.crt`` when given."""
    data = {"tls.crt": _b64(certificate_pem), "tls.key": _b64(key_pem)}
    if ca_pem is not None:
        data["ca.crt"] = _b64(ca_pem)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(name, namespace, labels, annotations),
        "type": "kubernetes.io/tls",
        "data": data,
    }


def gateway_status(obj: Mapping[str, Any] | None) -> GatewayStatus:
    """Read a Gateway's status: programmed when its current Programmed condition is True.

    A current ``Accepted: False`` means not programmed, with its reason and message. Conditions whose
    ``observedGeneration`` is older than ``metadata.generation`` describe an earlier spec and do not count.
    ``addresses`` are ``status.addresses[].value`` as reported. ``None`` (no object) reads as not programmed.
    """
    if obj is None:
        return GatewayStatus(programmed=False, reason=None, message=None, addresses=())
    status = obj.get("status") or {}
    conditions = _current_conditions(status.get("conditions"), _generation(obj))
    addresses = tuple(str(a["value"]) for a in status.get("addresses") or () if a.get("value"))
    accepted = conditions.get("Accepted")
    if accepted is not None and accepted.get("status") == "False":
        return GatewayStatus(False, accepted.get("reason"), accepted.get("message"), addresses)
    programmed = conditions.get("Programmed")
    if programmed is None:
        return GatewayStatus(programmed=False, reason=None, message=None, addresses=addresses)
    is_true = programmed.get("status") == "True"
    return GatewayStatus(is_true, programmed.get("reason"), programmed.get("message"), addresses)


def route_status(obj: Mapping[str, Any] | None, gateway: tuple[str, str]) -> RouteStatus:
    """Read what the Gateway ``(namespace, name)`` reports about a route in ``status.parents``.

    ``accepted``/``resolved`` are True when every parent entry for that Gateway (one per listener section or
    controller) has a current Accepted/ResolvedRefs condition that is True; reason and message come from the
    first condition that is not (Accepted before ResolvedRefs). Stale conditions, whose ``observedGeneration``
    is older than the route's ``metadata.generation``, do not count. No entry reads as neither.
    """
    if obj is None:
        return RouteStatus(accepted=False, resolved=False, reason=None, message=None)
    namespace = (obj.get("metadata") or {}).get("namespace")
    generation = _generation(obj)
    entries = [
        _current_conditions(parent.get("conditions"), generation)
        for parent in (obj.get("status") or {}).get("parents") or ()
        if _refers_to(parent.get("parentRef") or {}, gateway, namespace)
    ]
    if not entries:
        return RouteStatus(accepted=False, resolved=False, reason=None, message=None)
    accepted = all(_is_true(e.get("Accepted")) for e in entries)
    resolved = all(_is_true(e.get("ResolvedRefs")) for e in entries)
    failing = _first_not_true(c for e in entries for c in (e.get("Accepted"), e.get("ResolvedRefs")))
    reason, message = (failing.get("reason"), failing.get("message")) if failing else (None, None)
    return RouteStatus(accepted=accepted, resolved=resolved, reason=reason, message=message)


def _generation(obj: Mapping[str, Any]) -> int | None:
    generation = (obj.get("metadata") or {}).get("generation")
    return generation if isinstance(generation, int) else None


def _current_conditions(
    conditions: Iterable[Mapping[str, Any]] | None, generation: int | None
) -> dict[str, Any]:
    """Conditions by type, leaving out those set for an older generation of the object.

    The Gateway API status conditions are metav1.Condition, whose observedGeneration is documented as: "if
    .metadata.generation is currently 12, but the .status.conditions[x].observedGeneration is 9, the condition
    is out of date" (https://gateway-api.sigs.k8s.io/reference/spec/, GatewayStatus and RouteParentStatus
    ``conditions``). A condition without observedGeneration is taken as current.
    """
    current: dict[str, Any] = {}
    for condition in conditions or ():
        observed = condition.get("observedGeneration")
        if generation is not None and isinstance(observed, int) and observed < generation:
            continue
        current[str(condition.get("type"))] = condition
    return current


def _refers_to(parent_ref: Mapping[str, Any], gateway: tuple[str, str], route_namespace: str | None) -> bool:
    gateway_namespace, gateway_name = gateway
    return (
        parent_ref.get("group", GATEWAY_GROUP) == GATEWAY_GROUP
        and parent_ref.get("kind", "Gateway") == "Gateway"
        and parent_ref.get("name") == gateway_name
        and parent_ref.get("namespace", route_namespace) == gateway_namespace
    )


def _is_true(condition: Mapping[str, Any] | None) -> bool:
    return condition is not None and condition.get("status") == "True"


def _first_not_true(conditions: Iterable[Mapping[str, Any] | None]) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c is not None and not _is_true(c)), None)


def dns_label(
    endpoint: str, *, subscription_id: str, resource_group: str, cluster: str, namespace: str
) -> str:
    """A stable Azure DNS label for an endpoint's public IP: ``<endpoint>-<8 hex>``, at most 63 characters.

    The hash covers where the endpoint runs (subscription, resource group, cluster, namespace; Azure names
    compared without case), so the same endpoint name on two clusters of one region gets two labels: labels
    are unique per region. Lowercase, starts with a letter (``ek-`` is put in front otherwise), matches
    ``^[a-z][a-z0-9-]{1,61}[a-z0-9]$``.
    """
    where = "/".join((subscription_id.lower(), resource_group.lower(), cluster.lower(), namespace))
    suffix = "-" + hashlib.sha256(where.encode()).hexdigest()[:_DNS_LABEL_HASH_LENGTH]
    name = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", endpoint.lower())).strip("-")
    if not name[:1].isalpha():
        name = f"ek-{name}".rstrip("-")
    return name[: 63 - len(suffix)].rstrip("-") + suffix


def azure_dns_name(label: str, region: str, *, zone: str = _PUBLIC_CLOUD_ZONE) -> str:
    """The name Azure gives a public IP with DNS label ``label``: ``<label>.<region>.cloudapp.azure.com``.

    ``region`` is the location name (``eastus``; a display name such as ``East US`` is folded to it);
    ``zone`` is for sovereign clouds. Raises ValueError for a label Azure would refuse.
    https://learn.microsoft.com/azure/virtual-network/ip-services/public-ip-addresses#dns-name-label
    """
    if not _AZURE_DNS_LABEL.fullmatch(label):
        raise ValueError(f"{label!r} is not an Azure DNS label: {_AZURE_DNS_LABEL.pattern}")
    location = region.replace(" ", "").lower()
    return f"{label}.{location}.{zone}"


def _metadata(
    name: str, namespace: str, labels: Mapping[str, str], annotations: Mapping[str, str] | None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
