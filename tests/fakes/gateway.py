"""The Gateway API side of the fake cluster (:mod:`tests.fakes.kube`): its objects' status, and the data plane.

The fake API server stores ``gateway.networking.k8s.io/v1`` Gateways, HTTPRoutes and GRPCRoutes like its other
kinds (server-side apply, GET, list, DELETE) and calls :func:`reconcile` on every request; this module writes the
status a Gateway controller would. Semantics (Gateway API v1, the condition types and reasons of
``apis/v1/gateway_types.go`` and ``apis/v1/shared_types.go``):

- A new Gateway gets the status the CRD defaults (``status.default`` in the Gateway CRD): Accepted and Programmed
  ``Unknown``, reason ``Pending``, "Waiting for controller". A Gateway whose ``gatewayClassName`` is not in
  :attr:`FakeKube.gateway_classes` has no controller, so it keeps that status for ever, as on a real cluster where
  the class is not installed (the spec defines no reason for "no such class": nobody is there to write one).
- A Gateway of a known class is reconciled once :attr:`FakeKube.gateway_after_polls` reads of Gateway API objects
  (GET or list) have happened since its current generation was applied; until then it keeps its previous status,
  whose ``observedGeneration`` shows the older generation. Reconciled: Accepted True; per listener Accepted,
  ResolvedRefs (an HTTPS listener's certificateRefs must name an existing ``kubernetes.io/tls`` Secret with
  ``tls.crt`` and ``tls.key`` in the Gateway's namespace, else ResolvedRefs False ``InvalidCertificateRef`` and the
  Gateway's Accepted reason becomes ``ListenersNotValid``), Programmed, Conflicted False, ``supportedKinds`` and
  ``attachedRoutes``; Programmed True with ``status.addresses`` ``[{type: IPAddress, value: lb_ip}]`` when a
  listener is programmed (else Programmed False ``Invalid``). :attr:`FakeKube.gateway_failure` ``(reason,
  message)`` makes Programmed False with that reason and message and no address (e.g. ``AddressNotAssigned``).
  Every condition carries ``observedGeneration`` = the Gateway's ``metadata.generation``.
- A route gets a ``status.parents`` entry (``controllerName`` :data:`CONTROLLER`) for each parentRef whose Gateway
  the fake controller has reconciled at least once (a missing Gateway: Accepted False ``NoMatchingParent``).
  Accepted False ``NoMatchingParent`` when ``sectionName`` names no listener, ``NotAllowedByListeners`` when no
  HTTP/HTTPS listener admits the route's namespace (``allowedRoutes.namespaces``, default ``Same``),
  ``NoMatchingListenerHostname`` when route and listener hostnames do not intersect; else Accepted True.
  ResolvedRefs True when every backendRef is a Service that exists in the route's namespace; else False with
  ``InvalidKind`` (not a Service), ``RefNotPermitted`` (another namespace: ReferenceGrants are not served) or
  ``BackendNotFound``.

The data plane, :class:`FakeGateway`: the load balancer of every programmed Gateway, on ``lb_ip`` with one
ephemeral port standing for the HTTPS listeners (port 443) and one for the HTTP listeners (port 80). HTTPS:
the certificate comes from the Secret the listener matching the SNI name references, loaded in the handshake's
SNI callback so a renewed Secret is served at once. A request goes by Host to the routes attached to the matching
listeners (their status says Accepted), picks the match with the Gateway API precedence and a backendRef by
weight (seeded RNG), then a ready pod the backend Service selects; that pod answers as Triton would (health, model
ready, infer echoing INPUTn as OUTPUTn). A pod's container environment steers the answer: ``FAKE_TRITON_OFFSET=n``
adds n to numeric outputs, ``FAKE_TRITON_FAIL=1`` answers 500, ``FAKE_TRITON_LATENCY_US=n`` is the latency its
metrics report (nothing sleeps). Each pod's Triton counters (:class:`TritonCounters`, in
:attr:`FakeKube.served`) are what the API server's pod proxy serves as the pod's metrics. Route filters and
gRPC (GRPCRoute traffic) are not served.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import os
import random
import re
import socket
import ssl
import tempfile
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from endpointkit.errors import PayloadError
from endpointkit.payloads import decode_request, encode_response
from tests.gateway_schemas import validate_gateway_object

if TYPE_CHECKING:
    from tests.fakes.kube import FakeKube

__all__ = [
    "API_VERSION",
    "CONTROLLER",
    "GROUP",
    "KINDS",
    "FakeGateway",
    "Handshake",
    "Routed",
    "TritonCounters",
    "gateway_class",
    "initial_status",
    "reconcile",
    "triton_metrics",
    "validate",
]

GROUP = "gateway.networking.k8s.io"
API_VERSION = f"{GROUP}/v1"
#: plural -> kind of what the fake serves under /apis/gateway.networking.k8s.io/v1 (GatewayClass read only)
KINDS = {
    "gateways": "Gateway",
    "httproutes": "HTTPRoute",
    "grpcroutes": "GRPCRoute",
    "gatewayclasses": "GatewayClass",
}
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")
#: the controllerName of the fake's Gateway controller (GatewayClass spec and route status)
CONTROLLER = "fake.endpointkit.test/gateway-controller"
_EPOCH = "1970-01-01T00:00:00Z"
_HTTP_PROTOCOLS = ("HTTP", "HTTPS")
_SUPPORTED_KINDS = [{"group": GROUP, "kind": "HTTPRoute"}, {"group": GROUP, "kind": "GRPCRoute"}]


# ------------------------------------------------------------------------------------------ API objects


def validate(obj: Mapping[str, Any]) -> str | None:
    """Why the API server would refuse ``obj`` (a Gateway API object) under the vendored CRD schemas, or None."""
    try:
        validate_gateway_object(obj)
    except AssertionError as error:  # the validator names every problem: "Kind/name is not valid: path: ..."
        return str(error)
    return None


def initial_status(kind: str) -> dict[str, Any] | None:
    """The status the API server defaults for a new object of ``kind`` (the Gateway CRD's ``status.default``)."""
    if kind != "Gateway":
        return None
    return {
        "conditions": [
            {
                "lastTransitionTime": _EPOCH,
                "message": "Waiting for controller",
                "reason": "Pending",
                "status": "Unknown",
                "type": condition,
            }
            for condition in ("Accepted", "Programmed")
        ]
    }


def gateway_class(name: str) -> dict[str, Any]:
    """The GatewayClass ``name`` as the fake controller shows it (installed and accepted)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "GatewayClass",
        "metadata": {"name": name, "generation": 1, "resourceVersion": "1"},
        "spec": {"controllerName": CONTROLLER},
        "status": {
            "conditions": [
                {
                    "type": "Accepted",
                    "status": "True",
                    "reason": "Accepted",
                    "message": "",
                    "observedGeneration": 1,
                    "lastTransitionTime": _EPOCH,
                }
            ]
        },
    }


def reconcile(kube: FakeKube, *, read: bool) -> None:
    """Write the status of every Gateway and route, as the fake controller sees the cluster now.

    ``read``: the request being served reads Gateway API objects (counts towards ``gateway_after_polls``).
    Called by :meth:`FakeKube.handle` with the fake's lock held.
    """
    due = []
    for (kind, _, _), gateway in sorted(kube.objects.items()):
        if kind != "Gateway" or gateway["spec"].get("gatewayClassName") not in kube.gateway_classes:
            continue
        metadata = gateway["metadata"]
        key = f"gateway/{metadata['uid']}/{metadata.get('generation', 1)}"
        ticks = kube._ticks.get(key, 0) + (1 if read else 0)
        kube._ticks[key] = ticks
        if ticks >= kube.gateway_after_polls:
            gateway["status"] = _gateway_status(kube, gateway)
            due.append(gateway)
    attached: Counter[tuple[str, str, str]] = Counter()
    for (kind, _, _), route in sorted(kube.objects.items()):
        if kind not in ROUTE_KINDS:
            continue
        parents = [_parent_status(kube, route, ref) for ref in route["spec"].get("parentRefs") or []]
        route["status"] = {"parents": [p for p, _ in parents if p is not None]}
        for _, listeners in parents:
            attached.update(listeners)
    for gateway in due:
        metadata = gateway["metadata"]
        for listener in gateway["status"].get("listeners", []):
            listener["attachedRoutes"] = attached[(metadata["namespace"], metadata["name"], listener["name"])]


def _condition(
    previous: list[dict[str, Any]], kind: str, status: bool, reason: str, message: str, generation: int
) -> dict[str, Any]:
    """A condition as Kubernetes writes one: its lastTransitionTime kept while its status does not change."""
    text = "True" if status else "False"
    before = next((c for c in previous if c.get("type") == kind), None)
    since = (
        before["lastTransitionTime"]
        if before is not None and before.get("status") == text
        else datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    return {
        "type": kind,
        "status": text,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }


def _gateway_status(kube: FakeKube, gateway: dict[str, Any]) -> dict[str, Any]:
    generation = int(gateway["metadata"].get("generation", 1))
    namespace = gateway["metadata"]["namespace"]
    previous = gateway.get("status") or {}
    before = {item.get("name"): item for item in previous.get("listeners") or []}
    failure = kube.gateway_failure
    listeners = []
    programmed_any = False
    invalid_any = False
    for listener in gateway["spec"].get("listeners") or []:
        old = (before.get(listener["name"]) or {}).get("conditions") or []
        supported = listener.get("protocol") in _HTTP_PROTOCOLS
        problem = _certificate_problem(kube, namespace, listener) if supported else None
        programmed = supported and problem is None and failure is None
        programmed_any = programmed_any or programmed
        invalid_any = invalid_any or not supported or problem is not None
        if not supported:
            accepted = (False, "UnsupportedProtocol", f"protocol {listener.get('protocol')} is not supported")
            resolved = (True, "ResolvedRefs", "")
        elif problem is not None:
            accepted = (True, "Accepted", "")
            resolved = (False, "InvalidCertificateRef", problem)
        else:
            accepted = (True, "Accepted", "")
            resolved = (True, "ResolvedRefs", "")
        if programmed:
            state = (True, "Programmed", "")
        elif failure is not None and supported and problem is None:
            state = (False, failure[0], failure[1])
        else:
            state = (False, "Invalid", accepted[2] or resolved[2])
        listeners.append(
            {
                "name": listener["name"],
                "supportedKinds": copy.deepcopy(_SUPPORTED_KINDS) if supported else [],
                "attachedRoutes": 0,
                "conditions": [
                    _condition(old, "Accepted", *accepted, generation),
                    _condition(old, "ResolvedRefs", *resolved, generation),
                    _condition(old, "Programmed", *state, generation),
                    _condition(old, "Conflicted", False, "NoConflicts", "", generation),
                ],
            }
        )
    old = previous.get("conditions") or []
    accepted_reason = "ListenersNotValid" if invalid_any else "Accepted"
    if failure is not None:
        programmed_condition = (False, failure[0], failure[1])
    elif programmed_any:
        programmed_condition = (True, "Programmed", "")
    else:
        programmed_condition = (False, "Invalid", "no listener is valid")
    status: dict[str, Any] = {
        "conditions": [
            _condition(old, "Accepted", True, accepted_reason, "", generation),
            _condition(old, "Programmed", *programmed_condition, generation),
        ],
        "listeners": listeners,
    }
    if programmed_condition[0]:
        status["addresses"] = [{"type": "IPAddress", "value": kube.lb_ip}]
    return status


def _certificate_problem(kube: FakeKube, namespace: str, listener: Mapping[str, Any]) -> str | None:
    if listener.get("protocol") != "HTTPS":
        return None
    if (listener.get("tls") or {}).get("mode", "Terminate") != "Terminate":
        return "only TLS mode Terminate is supported"
    refs = (listener.get("tls") or {}).get("certificateRefs") or []
    if not refs:
        return "an HTTPS listener needs a certificateRef"
    for ref in refs:
        if ref.get("group", "") != "" or ref.get("kind", "Secret") != "Secret":
            return f"certificateRef {ref.get('name')} is not a Secret"
        if ref.get("namespace", namespace) != namespace:
            return f"certificateRef {ref.get('name')} is in another namespace (no ReferenceGrant)"
        pair = _tls_pair(kube, namespace, ref["name"])
        if pair is None:
            return f"Secret {namespace}/{ref['name']} does not exist or is not a kubernetes.io/tls Secret"
    return None


def _tls_pair(kube: FakeKube, namespace: str, name: str) -> tuple[bytes, bytes] | None:
    """(certificate PEM, key PEM) of a kubernetes.io/tls Secret, or None."""
    secret = kube.objects.get(("Secret", namespace, name))
    if secret is None or secret.get("type") != "kubernetes.io/tls":
        return None
    found = {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}
    found.update({key: str(value).encode() for key, value in (secret.get("stringData") or {}).items()})
    if not found.get("tls.crt") or not found.get("tls.key"):
        return None
    return found["tls.crt"], found["tls.key"]


def _parent_status(
    kube: FakeKube, route: dict[str, Any], ref: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, list[tuple[str, str, str]]]:
    """The status.parents entry for one parentRef (None when the fake controller does not handle that parent),
    and the (namespace, gateway, listener) the route attaches to."""
    namespace = route["metadata"]["namespace"]
    generation = int(route["metadata"].get("generation", 1))
    if ref.get("group", GROUP) != GROUP or ref.get("kind", "Gateway") != "Gateway":
        return None, []
    parent_ns = ref.get("namespace", namespace)
    gateway = kube.objects.get(("Gateway", parent_ns, ref["name"]))
    old = next(
        (
            p.get("conditions") or []
            for p in (route.get("status") or {}).get("parents") or []
            if p.get("parentRef") == ref
        ),
        [],
    )
    if gateway is not None and not _seen(gateway, kube):
        return None, []
    attached: list[tuple[str, str, str]] = []
    if gateway is None:
        accepted = (False, "NoMatchingParent", f"Gateway {parent_ns}/{ref['name']} does not exist")
    else:
        accepted, listeners = _attachment(kube, route, ref, gateway)
        attached = [(parent_ns, ref["name"], name) for name in listeners]
    entry = {
        "parentRef": copy.deepcopy(dict(ref)),
        "controllerName": CONTROLLER,
        "conditions": [
            _condition(old, "Accepted", *accepted, generation),
            _condition(old, "ResolvedRefs", *_references(kube, route), generation),
        ],
    }
    return entry, attached


def _seen(gateway: Mapping[str, Any], kube: FakeKube) -> bool:
    """Whether the fake controller has reconciled ``gateway`` (its class is known and its status is no longer
    the CRD default)."""
    if gateway["spec"].get("gatewayClassName") not in kube.gateway_classes:
        return False
    conditions = (gateway.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Accepted" and c.get("status") != "Unknown" for c in conditions)


def _attachment(
    kube: FakeKube, route: Mapping[str, Any], ref: Mapping[str, Any], gateway: Mapping[str, Any]
) -> tuple[tuple[bool, str, str], list[str]]:
    listeners = gateway["spec"].get("listeners") or []
    section = ref.get("sectionName")
    if section is not None:
        listeners = [item for item in listeners if item["name"] == section]
        if not listeners:
            return (False, "NoMatchingParent", f"the Gateway has no listener {section}"), []
    if ref.get("port") is not None:
        listeners = [item for item in listeners if item.get("port") == ref["port"]]
    allowed = [
        item
        for item in listeners
        if item.get("protocol") in _HTTP_PROTOCOLS
        and _admits(kube, item, gateway, route["metadata"]["namespace"])
    ]
    if not allowed:
        return (False, "NotAllowedByListeners", "no listener admits this route"), []
    names = route["spec"].get("hostnames") or []
    matching = [item for item in allowed if not names or _hostnames_intersect(item.get("hostname"), names)]
    if not matching:
        return (False, "NoMatchingListenerHostname", "no listener hostname matches the route's hostnames"), []
    return (True, "Accepted", ""), [item["name"] for item in matching]


def _admits(kube: FakeKube, listener: Mapping[str, Any], gateway: Mapping[str, Any], namespace: str) -> bool:
    """``allowedRoutes.namespaces`` of a listener: Same (the default), All, or Selector (matchLabels)."""
    rule = ((listener.get("allowedRoutes") or {}).get("namespaces") or {}).get("from", "Same")
    if rule == "All":
        return True
    if rule == "Selector":
        wanted = (((listener.get("allowedRoutes") or {}).get("namespaces") or {}).get("selector") or {}).get(
            "matchLabels"
        ) or {}
        labels = ((kube.objects.get(("Namespace", "", namespace)) or {}).get("metadata") or {}).get(
            "labels"
        ) or {}
        return all(labels.get(k) == v for k, v in wanted.items())
    return bool(namespace == gateway["metadata"]["namespace"])


def _references(kube: FakeKube, route: Mapping[str, Any]) -> tuple[bool, str, str]:
    namespace = route["metadata"]["namespace"]
    for rule in route["spec"].get("rules") or []:
        for backend in rule.get("backendRefs") or []:
            name = backend.get("name")
            if backend.get("group", "") != "" or backend.get("kind", "Service") != "Service":
                return False, "InvalidKind", f"backendRef {name} is not a Service"
            if backend.get("namespace", namespace) != namespace:
                return (
                    False,
                    "RefNotPermitted",
                    f"backendRef {name} is in another namespace (no ReferenceGrant)",
                )
            if ("Service", namespace, name) not in kube.objects:
                return False, "BackendNotFound", f"Service {namespace}/{name} not found"
    return True, "ResolvedRefs", ""


def _host_matches(pattern: str | None, host: str) -> bool:
    """Gateway API hostname matching: ``*.example.com`` is a suffix match of one or more labels; no pattern
    matches any host."""
    if not pattern:
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def _hostnames_intersect(listener: str | None, route: list[str]) -> bool:
    return any(_host_matches(listener, name) or _host_matches(name, listener or "") for name in route)


def _is_true(obj: Mapping[str, Any], kind: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    return _is_true(pod, "Ready")


# ------------------------------------------------------------------------------------------ Triton metrics


@dataclass
class TritonCounters:
    """What one pod's Triton counted, per model: requests it answered and requests that failed."""

    success: Counter[str] = field(default_factory=Counter)
    failure: Counter[str] = field(default_factory=Counter)


def triton_metrics(pod: Mapping[str, Any], counters: TritonCounters | None, models: list[str]) -> str:
    """Triton's ``/metrics`` exposition for a pod: success and failure counters, queue time and the request
    summary of every model in ``models`` or counted (quantiles NaN until a request succeeded, as Triton
    reports an empty summary window)."""
    counters = counters or TritonCounters()
    latency = float(_environment(pod).get("FAKE_TRITON_LATENCY_US") or 1000)
    names = sorted(set(models) | set(counters.success) | set(counters.failure))
    lines = ["# HELP nv_inference_request_success Number of successful inference requests, all batch sizes"]
    lines.append("# TYPE nv_inference_request_success counter")
    lines += [f'nv_inference_request_success{{model="{m}",version="1"}} {counters.success[m]}' for m in names]
    lines.append("# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes")
    lines.append("# TYPE nv_inference_request_failure counter")
    lines += [
        f'nv_inference_request_failure{{model="{m}",reason="BACKEND",version="1"}} {counters.failure[m]}'
        for m in names
    ]
    lines.append(
        "# HELP nv_inference_queue_duration_us Cumulative inference queuing duration in microseconds"
    )
    lines.append("# TYPE nv_inference_queue_duration_us counter")
    lines += [
        f'nv_inference_queue_duration_us{{model="{m}",version="1"}} {counters.success[m] * 10}' for m in names
    ]
    lines.append(
        "# HELP nv_inference_request_summary_us Summary of inference request duration in microseconds"
    )
    lines.append("# TYPE nv_inference_request_summary_us summary")
    for m in names:
        value = latency if counters.success[m] else math.nan
        for quantile in ("0.5", "0.9", "0.95", "0.99"):
            lines.append(
                f'nv_inference_request_summary_us{{model="{m}",version="1",quantile="{quantile}"}} {value}'
            )
        lines.append(
            f'nv_inference_request_summary_us_count{{model="{m}",version="1"}} {counters.success[m]}'
        )
        lines.append(
            f'nv_inference_request_summary_us_sum{{model="{m}",version="1"}} {counters.success[m] * latency}'
        )
    return "\n".join(lines) + "\n"


def _environment(pod: Mapping[str, Any]) -> dict[str, str]:
    """The plain ``value`` entries of the pod's first (Triton) container's env."""
    containers = pod.get("spec", {}).get("containers") or [{}]
    return {e["name"]: str(e["value"]) for e in containers[0].get("env") or [] if "value" in e}


# ------------------------------------------------------------------------------------------ data plane


@dataclass(frozen=True)
class Routed:
    """One request through :class:`FakeGateway`: where it went and the status it got.

    ``service``, ``deployment`` and ``pod`` are None when the request got no further (``reason`` says why).
    ``status`` is what the client got; 0 in :meth:`FakeGateway.route`'s answer when a pod is to answer.
    """

    method: str
    host: str
    path: str
    tls: bool
    status: int
    reason: str = ""
    gateway: str | None = None
    route: str | None = None
    rule: int | None = None
    service: str | None = None
    deployment: str | None = None
    pod: str | None = None


@dataclass(frozen=True)
class Handshake:
    """One TLS handshake: the SNI name asked for, and ``NS/NAME`` of the Secret served (None: refused)."""

    server_name: str | None
    secret: str | None


class FakeGateway:
    """The load balancer in front of every programmed Gateway of the fake cluster (see the module docstring).

    Args:
        kube: the fake cluster.
        seed: seeds the RNG that makes the weighted backend and pod picks.
    """

    def __init__(self, kube: FakeKube, *, seed: int = 0) -> None:
        self.kube = kube
        self.rng = random.Random(seed)
        #: backend Service name -> requests a pod behind it answered (any status of the pod's own)
        self.answered: Counter[str] = Counter()
        #: Deployment name -> requests one of its pods answered
        self.deployments: Counter[str] = Counter()
        #: every request: (path, headers lower-cased), as FakeTriton.requests
        self.requests: list[tuple[str, dict[str, str]]] = []
        #: every request's routing and status
        self.routed: list[Routed] = []
        self.handshakes: list[Handshake] = []
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        base.sni_callback = self._choose_certificate
        self._https = _DataPlaneServer((kube.lb_ip, 0), self, base)
        self._http = _DataPlaneServer((kube.lb_ip, 0), self, None)
        self._threads: list[threading.Thread] = []

    # ---- test controls -------------------------------------------------------------------------------
    def start(self) -> FakeGateway:
        for server in (self._https, self._http):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self._https, self._http):
            if self._threads:
                server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> FakeGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """The load balancer's IP (the Gateways' ``status.addresses``)."""
        return self.kube.lb_ip

    @property
    def https_port(self) -> int:
        """The port standing for port 443 of every HTTPS listener."""
        return int(self._https.server_address[1])

    @property
    def http_port(self) -> int:
        """The port standing for port 80 of every HTTP listener."""
        return int(self._http.server_address[1])

    def connect_to(self) -> dict[str, str]:
        """``{":443": ..., ":80": ...}``: any host's ports 443 and 80 mapped to this data plane (curl's
        ``--connect-to`` with an empty host)."""
        return {":443": f"{self.address}:{self.https_port}", ":80": f"{self.address}:{self.http_port}"}

    def reseed(self, seed: int) -> None:
        with self._lock:
            self.rng.seed(seed)

    # ---- routing -------------------------------------------------------------------------------------
    def route(
        self,
        *,
        host: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
        tls: bool = True,
        server_name: str | None = None,
    ) -> Routed:
        """Where a request goes: listener by ``server_name`` (TLS) or Host, then the best route match, a
        weighted backendRef and a ready pod. A Routed with ``pod`` None carries the status the gateway answers
        itself: 404 no route, 500 invalid backend (the HTTPRoute spec's ``backendRefs``), 503 no ready pod."""
        host = _bare_host(host)
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        base = Routed(method=method, host=host, path=path, tls=tls, status=0)
        with self.kube.lock:
            listeners = self._listeners("HTTPS" if tls else "HTTP", _bare_host(server_name or host))
            if not listeners:
                return dataclasses.replace(base, status=404, reason=f"no programmed listener for {host}")
            best = self._best_match(listeners, host, method, path, lowered)
            if best is None:
                return dataclasses.replace(base, status=404, reason=f"no route matches {method} {host}{path}")
            route, index, rule, gateway = best
            base = dataclasses.replace(base, gateway=gateway, route=route, rule=index)
            backends = [
                (b, int(b.get("weight", 1)))
                for b in rule.get("backendRefs") or []
                if int(b.get("weight", 1)) > 0
            ]
            if not backends:
                return dataclasses.replace(base, status=500, reason="the rule has no backend with weight")
            with self._lock:
                (backend,) = self.rng.choices([b for b, _ in backends], weights=[w for _, w in backends])
            namespace = route.split("/")[0]
            name = str(backend.get("name"))
            service = self.kube.objects.get(("Service", namespace, name))
            if (
                service is None
                or backend.get("kind", "Service") != "Service"
                or backend.get("group", "") != ""
                or backend.get("namespace", namespace) != namespace
            ):
                return dataclasses.replace(
                    base, service=name, status=500, reason=f"backend {name} is not valid"
                )
            ports = [p.get("port") for p in service["spec"].get("ports") or []]
            selector = service["spec"].get("selector") or {}
            pods = sorted(
                (
                    pod
                    for (kind, ns, _), pod in self.kube.objects.items()
                    if kind == "Pod"
                    and ns == namespace
                    and selector
                    and _pod_ready(pod)
                    and all((pod["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
                ),
                key=lambda pod: str(pod["metadata"]["name"]),
            )
            if backend.get("port") not in ports or not pods:
                reason = f"no healthy upstream: Service {name} has no ready pod on port {backend.get('port')}"
                return dataclasses.replace(base, service=name, status=503, reason=reason)
            with self._lock:
                pod = self.rng.choice(pods)
            return dataclasses.replace(
                base, service=name, deployment=str(pod.get("_owner")), pod=str(pod["metadata"]["name"])
            )

    def _listeners(self, protocol: str, name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The programmed (Gateway, listener) pairs of ``protocol`` whose hostname matches ``name``: the most
        specific ones only (exact, then the longest wildcard, then none)."""
        found: list[tuple[int, tuple[str, str], dict[str, Any], dict[str, Any]]] = []
        for (kind, namespace, gateway_name), gateway in sorted(self.kube.objects.items()):
            if kind != "Gateway" or not _is_true(gateway, "Programmed"):
                continue
            statuses = {s["name"]: s for s in (gateway.get("status") or {}).get("listeners") or []}
            for listener in gateway["spec"].get("listeners") or []:
                pattern = listener.get("hostname")
                if listener.get("protocol") != protocol or not _host_matches(pattern, name):
                    continue
                if not _is_true({"status": statuses.get(listener["name"], {})}, "Programmed"):
                    continue
                rank = 0 if not pattern else (len(pattern) if pattern.startswith("*.") else 10_000)
                found.append((rank, (namespace, gateway_name), gateway, listener))
        if not found:
            return []
        top = max(rank for rank, *_ in found)
        return [(gateway, listener) for rank, _, gateway, listener in found if rank == top]

    def _best_match(
        self,
        listeners: list[tuple[dict[str, Any], dict[str, Any]]],
        host: str,
        method: str,
        path: str,
        headers: Mapping[str, str],
    ) -> tuple[str, int, dict[str, Any], str] | None:
        """The rule the HTTPRoute precedence picks (the ``matches`` field's documentation, HTTPRoute CRD):
        route hostname specificity, then Exact path, longest prefix, method match, most header matches, most
        query matches, then route ``namespace/name`` and rule order."""
        attached = {
            (g["metadata"]["namespace"], g["metadata"]["name"], listener["name"]) for g, listener in listeners
        }
        query = _query(path)
        bare_path = path.split("?", 1)[0]
        candidates = []
        for (kind, namespace, name), route in sorted(self.kube.objects.items()):
            gateway = self._parent(route, namespace, attached) if kind == "HTTPRoute" else None
            if gateway is None:
                continue
            names = route["spec"].get("hostnames") or []
            matching_names = [n for n in names if _host_matches(n, host)]
            if names and not matching_names:
                continue
            exact_chars = max((len(n) for n in matching_names if not n.startswith("*.")), default=0)
            any_chars = max((len(n) for n in matching_names), default=0)
            for index, rule in enumerate(route["spec"].get("rules") or []):
                for match in rule.get("matches") or [{}]:
                    score = _match_score(match, method, bare_path, headers, query)
                    if score is None:
                        continue
                    key = (-exact_chars, -any_chars, *score, f"{namespace}/{name}", index)
                    candidates.append((key, f"{namespace}/{name}", index, rule, gateway))
        if not candidates:
            return None
        _, route_name, index, rule, gateway = min(candidates, key=lambda item: item[0])
        return route_name, index, rule, gateway

    @staticmethod
    def _parent(route: Mapping[str, Any], namespace: str, attached: set[tuple[str, str, str]]) -> str | None:
        """``NS/NAME`` of the Gateway whose listener in ``attached`` accepted the route (its status.parents), or
        None when the route is not attached to any of them."""
        for parent in (route.get("status") or {}).get("parents") or []:
            if parent.get("controllerName") != CONTROLLER or not _is_true({"status": parent}, "Accepted"):
                continue
            ref = parent["parentRef"]
            gateway = (ref.get("namespace", namespace), ref["name"])
            for ns, name, listener in sorted(attached):
                if (ns, name) == gateway and ref.get("sectionName") in (None, listener):
                    return f"{ns}/{name}"
        return None

    # ---- TLS -----------------------------------------------------------------------------------------
    def _choose_certificate(self, sock: Any, server_name: str | None, _context: ssl.SSLContext) -> int | None:
        """The SNI callback: the certificate of the HTTPS listener that matches the name asked for, read from
        its Secret now (a renewed Secret is served from the next handshake on)."""
        with self.kube.lock:
            if server_name is None:
                listeners = [
                    pair
                    for (kind, _, _), g in sorted(self.kube.objects.items())
                    if kind == "Gateway" and _is_true(g, "Programmed")
                    for pair in [(g, item) for item in g["spec"].get("listeners") or []]
                    if pair[1].get("protocol") == "HTTPS"
                ]
                listeners = listeners if len(listeners) == 1 else []
            else:
                listeners = self._listeners("HTTPS", server_name)
            pair = None
            secret = None
            if listeners:
                gateway, listener = listeners[0]
                namespace = gateway["metadata"]["namespace"]
                refs = (listener.get("tls") or {}).get("certificateRefs") or [{}]
                secret = f"{namespace}/{refs[0].get('name')}"
                pair = _tls_pair(self.kube, namespace, str(refs[0].get("name")))
        if pair is None:
            self.handshakes.append(Handshake(server_name, None))
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        try:
            sock.context = self._context_for(*pair)
        except (ssl.SSLError, OSError):
            self.handshakes.append(Handshake(server_name, None))
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        with contextlib.suppress(AttributeError, TypeError):
            sock.fake_server_name = server_name  # read back by the request handler
        self.handshakes.append(Handshake(server_name, secret))
        return None

    def _context_for(self, certificate: bytes, key: bytes) -> ssl.SSLContext:
        digest = hashlib.sha256(certificate + b"\0" + key).hexdigest()
        with self._lock:
            found = self._contexts.get(digest)
        if found is not None:
            return found
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory(prefix="fake-gateway-") as folder:
            cert_file, key_file = Path(folder, "tls.crt"), Path(folder, "tls.key")
            cert_file.write_bytes(certificate)
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(key)
            context.load_cert_chain(cert_file, key_file)
        with self._lock:
            self._contexts[digest] = context
        return context

    # ---- answering -----------------------------------------------------------------------------------
    def serve(
        self,
        method: str,
        host: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        tls: bool,
        server_name: str | None,
    ) -> tuple[int, bytes, dict[str, str]]:
        """Route one request and answer it as the chosen pod's Triton would."""
        lowered = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            self.requests.append((path, lowered))
        routed = self.route(
            host=host, path=path, headers=lowered, method=method, tls=tls, server_name=server_name
        )
        if routed.pod is None:
            with self._lock:
                self.routed.append(routed)
            return (
                routed.status,
                json.dumps({"error": routed.reason}).encode(),
                {"Content-Type": "application/json"},
            )
        namespace = str(routed.route).split("/")[0]
        status, data, reply = _answer(self.kube, namespace, routed.pod, method, path, lowered, body)
        with self._lock:
            self.routed.append(dataclasses.replace(routed, status=status))
            self.answered[str(routed.service)] += 1
            self.deployments[str(routed.deployment)] += 1
        return status, data, {**reply, "x-fake-backend": f"{routed.service}/{routed.pod}"}


def _answer(
    kube: FakeKube,
    namespace: str,
    pod_name: str,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
) -> tuple[int, bytes, dict[str, str]]:
    """Triton's HTTP answer from one pod: health, model ready, infer (endpoint key, offset, failure)."""
    error = {"Content-Type": "application/json"}
    with kube.lock:
        pod = copy.deepcopy(kube.objects.get(("Pod", namespace, pod_name)) or {})
        key = _pod_key(kube, namespace, pod) if pod else None
    environment = _environment(pod)
    bare = path.split("?", 1)[0]
    if method in ("GET", "HEAD"):
        if bare in ("/v2/health/live", "/v2/health/ready") or re.match(
            r"^/v2/models/[^/]+(/versions/[^/]+)?/ready$", bare
        ):
            return 200, b"", {}
        return 404, b'{"error": "not found"}', error
    match = re.match(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$", bare)
    if method != "POST" or match is None:
        return 404, b'{"error": "not found"}', error
    if key is not None and headers.get(key[0]) != key[1]:
        return (
            403,
            json.dumps({"error": f"This API is restricted, expecting header '{key[0]}'"}).encode(),
            error,
        )
    model = match.group(1)
    if environment.get("FAKE_TRITON_FAIL", "").lower() in ("1", "true", "yes"):
        _count(kube, pod_name, model, succeeded=False)
        message = f"failed to infer with model '{model}': FAKE_TRITON_FAIL is set on {pod_name}"
        return 500, json.dumps({"error": message}).encode(), error
    try:
        request = decode_request(body, headers)
    except PayloadError as problem:
        _count(kube, pod_name, model, succeeded=False)
        return 400, json.dumps({"error": str(problem)}).encode(), error
    offset = float(environment.get("FAKE_TRITON_OFFSET") or 0)
    outputs = {}
    for name, array in request.inputs.items():
        value = np.asarray(array)
        if offset and value.dtype.kind in "iuf":
            value = (value + offset).astype(value.dtype)
        outputs[name.replace("INPUT", "OUTPUT")] = value
    response = encode_response(outputs, model_name=model)
    _count(kube, pod_name, model, succeeded=True)
    chunks = response.body if isinstance(response.body, tuple) else (response.body,)
    return 200, b"".join(bytes(chunk) for chunk in chunks), dict(response.headers)


def _count(kube: FakeKube, pod: str, model: str, *, succeeded: bool) -> None:
    with kube.lock:
        counters = kube.served.setdefault(pod, TritonCounters())
        (counters.success if succeeded else counters.failure)[model] += 1


def _pod_key(kube: FakeKube, namespace: str, pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (header, value) the pod's Triton demands: its ``--http-restricted-api`` and the Secret it names."""
    container = (pod.get("spec", {}).get("containers") or [{}])[0]
    for arg in container.get("args") or []:
        match = re.match(r"--http-restricted-api=[^:]+:([^=]+)=\$\((\w+)\)", arg)
        if match is None:
            continue
        env = {e["name"]: e for e in container.get("env") or []}
        ref = env[match.group(2)]["valueFrom"]["secretKeyRef"]
        secret = kube.objects.get(("Secret", namespace, ref["name"])) or {}
        return match.group(1), base64.b64decode((secret.get("data") or {}).get(ref["key"], "")).decode()
    return None


def _bare_host(host: str) -> str:
    """A Host header or SNI name without its port, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _query(path: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(path.split("?", 1)[1])) if "?" in path else {}


def _match_score(
    match: Mapping[str, Any], method: str, path: str, headers: Mapping[str, str], query: Mapping[str, str]
) -> tuple[int, int, int, int, int] | None:
    """None when ``match`` (an HTTPRouteMatch) does not match; else a sort key, smaller = higher precedence."""
    rule = match.get("path") or {"type": "PathPrefix", "value": "/"}
    kind, value = rule.get("type", "PathPrefix"), str(rule.get("value", "/"))
    if kind == "Exact" and path != value:
        return None
    if kind == "PathPrefix":
        prefix = value.rstrip("/")
        if prefix and path != prefix and not path.startswith(prefix + "/"):
            return None
    if kind == "RegularExpression" and re.match(value, path) is None:
        return None
    if match.get("method") and match["method"] != method:
        return None
    for header in match.get("headers") or []:
        seen = headers.get(str(header["name"]).lower())
        if seen is None:
            return None
        if header.get("type", "Exact") == "Exact" and seen != header["value"]:
            return None
        if header.get("type") == "RegularExpression" and re.search(header["value"], seen) is None:
            return None
    for parameter in match.get("queryParams") or []:
        if query.get(parameter["name"]) != parameter["value"]:
            return None
    return (
        0 if kind == "Exact" else 1,
        -len(value) if kind == "PathPrefix" else 0,
        0 if match.get("method") else 1,
        -len(match.get("headers") or []),
        -len(match.get("queryParams") or []),
    )


class _DataPlaneServer(ThreadingHTTPServer):
    """One port of the data plane; with ``context`` the TLS handshake runs in the connection's own thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], gateway: FakeGateway, context: ssl.SSLContext | None
    ) -> None:
        super().__init__(address, _DataPlaneHandler)
        self.gateway = gateway
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(30)
        try:
            wrapped = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a refused handshake (recorded by the SNI callback) or a client that went away
        try:
            super().finish_request(wrapped, client_address)
        finally:
            with contextlib.suppress(OSError):
                wrapped.shutdown(socket.SHUT_RDWR)
            wrapped.close()


class _DataPlaneHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: do not delay the second
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _serve(self) -> None:
        server: _DataPlaneServer = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        tls = server.context is not None
        server_name = getattr(self.connection, "fake_server_name", None) if tls else None
        status, data, headers = server.gateway.serve(
            self.command,
            str(self.headers.get("Host") or ""),
            self.path,
            dict(self.headers.items()),
            body,
            tls=tls,
            server_name=server_name,
        )
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve
