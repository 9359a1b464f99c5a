"""Reading an endpoint's front as it runs: whether its Gateway is programmed and its routes attached, the host and
address clients reach, the certificate the listener serves. Read-only.

Readiness follows the conditions the Gateway API defines (https://gateway-api.sigs.k8s.io/reference/spec/): a
Gateway serves once ``Programmed`` is True for its current generation; a route once every parent entry for that
Gateway says ``Accepted`` and ``ResolvedRefs``. What a controller reports while it still works (``Pending``, Istio's
``AddressNotAssigned`` while the load balancer gets its IP) is waiting; any other reason why a Gateway is not
accepted or programmed, or why an attached Gateway refuses a route, is a failure in the Gateway's own words.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from endpointkit.adapters.aks._certificates import CertificateInfo, certificate_info
from endpointkit.adapters.aks._gateway import GatewayStatus, RouteStatus, gateway_status, route_status
from endpointkit.adapters.aks._kube import KubeClient
from endpointkit.adapters.aks._routes import Front, route_backends
from endpointkit.errors import ProviderError

__all__ = ["FrontStatus", "read_front", "secret_text"]

# Reasons a controller gives while it is still at work: Pending (Gateway API, "not yet reconciled"), and
# AddressNotAssigned, which Istio reports until the load balancer Service has its IP
# (istio/istio pilot/pkg/config/kube/gateway/conditions.go).
_WAITING_REASONS = frozenset({"Pending", "AddressNotAssigned"})
# A route's ResolvedRefs reasons that can clear without a change of ours: a backend Service the controller has
# not seen yet (its informer lags behind the API server).
_RESOLVING_REASONS = frozenset({"BackendNotFound"})


@dataclass(frozen=True)
class FrontStatus:
    """The front of one endpoint, read once."""

    front: Front
    gateway_object: dict[str, Any] | None
    gateway: GatewayStatus
    http: RouteStatus
    grpc: RouteStatus
    http_route: dict[str, Any] | None
    host: str | None
    certificate: CertificateInfo | None = None
    ca_certificate: str | None = None
    #: the HTTPRoute's weights per Service in its main rule
    weights: dict[str, int] = field(default_factory=dict)
    #: whether the HTTPRoute has a preview (header) rule
    preview: bool = False

    @property
    def scheme(self) -> str:
        """``https`` or ``http``, as the listener serves the endpoint."""
        return self.front.scheme(self.gateway_object)

    @property
    def address(self) -> str | None:
        return self.gateway.addresses[0] if self.gateway.addresses else None

    @property
    def routes_ready(self) -> bool:
        return all(r.accepted and r.resolved for r in (self.http, self.grpc))

    @property
    def ready(self) -> bool:
        """Gateway programmed and both routes accepted with every backend resolved."""
        return self.gateway.programmed and self.routes_ready

    @property
    def problem(self) -> ProviderError | None:
        """Why the front cannot serve without a change: the Gateway's or route's own reason; None otherwise."""
        name = f"Gateway {self.front.gateway_label}"
        if self.gateway_object is not None and not self.gateway.programmed:
            reason = self.gateway.reason
            if reason is not None and reason not in _WAITING_REASONS:
                return _failure(f"{name} is not serving", reason, self.gateway.message)
        if self.gateway_object is None and not self.front.owns_gateway:
            return ProviderError(
                f"{name}, which targets.*.gateway names, does not exist: create it, or leave gateway unset so "
                "endpointkit makes one",
                provider="kubernetes",
                operation="attach routes",
                code="GatewayNotFound",
            )
        if not self.gateway.programmed:
            return None
        for kind, status in (("HTTPRoute", self.http), ("GRPCRoute", self.grpc)):
            reason = status.reason
            if reason is None or reason in _WAITING_REASONS | _RESOLVING_REASONS:
                continue
            if not status.accepted or not status.resolved:
                subject = f"{kind} {self.front.endpoint} is not accepted by {name}"
                return _failure(subject, reason, status.message)
        return None

    def describe(self) -> str:
        """One line: what the Gateway and the routes report."""
        if self.gateway_object is None:
            parts = [f"Gateway {self.front.gateway_label} not found"]
        elif self.gateway.programmed:
            parts = [f"Gateway programmed at {self.address or 'no address'}"]
        else:
            said = ": ".join(x for x in (self.gateway.reason, self.gateway.message) if x)
            parts = [f"Gateway not programmed yet{': ' + said if said else ''}"]
        for kind, status in (("HTTPRoute", self.http), ("GRPCRoute", self.grpc)):
            if not (status.accepted and status.resolved):
                said = f" ({status.reason})" if status.reason else ""
                parts.append(f"{kind} not attached yet{said}")
        return ", ".join(parts)


def _failure(subject: str, reason: str, message: str | None) -> ProviderError:
    return ProviderError(
        f"{subject}: {reason}: {message or 'no message'}",
        provider="kubernetes",
        operation="wait for the Gateway",
        code=reason,
    )


def secret_text(secret: dict[str, Any] | None, key: str) -> str | None:
    """One value of a Secret's ``data``, decoded as text; None when absent or not base64."""
    value = ((secret or {}).get("data") or {}).get(key)
    if not value:
        return None
    try:
        return base64.b64decode(value).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


def read_front(kube: KubeClient, front: Front, *, location: str | None) -> FrontStatus:
    """Read the endpoint's Gateway, routes and listener certificate (4 GETs at most). Read-only."""
    gateway_namespace, gateway_name = front.gateway
    gateway = kube.get("Gateway", gateway_name, gateway_namespace)
    http = kube.get("HTTPRoute", front.endpoint, front.namespace)
    grpc = kube.get("GRPCRoute", front.endpoint, front.namespace)
    certificate = ca = None
    if front.tls_secret is not None:
        secret = kube.get("Secret", front.tls_secret, front.namespace)
        pem = secret_text(secret, "tls.crt")
        if pem:
            try:
                certificate = certificate_info(pem)
            except ValueError:
                certificate = None  # a Secret edited into something else: renewal replaces it
        ca = secret_text(secret, "ca.crt")
    weights, preview = route_backends(http)
    return FrontStatus(
        front=front,
        gateway_object=gateway,
        gateway=gateway_status(gateway),
        http=route_status(http, front.gateway),
        grpc=route_status(grpc, front.gateway),
        http_route=http,
        host=front.host_of(location, gateway),
        certificate=certificate,
        ca_certificate=ca,
        weights=weights,
        preview=preview,
    )
