"""A fake Kubernetes API server on loopback (HTTPS), with a tiny scheduler and kubelet, and the Gateway API with its
data plane (:mod:`tests.fakes.gateway`), whose pods answer as a Triton-like echo server.

It answers what the AKS adapter sends: server-side apply (``PATCH`` ``application/apply-patch+yaml`` with
``fieldManager`` and ``force``), GET, DELETE, lists with label and field selectors (per namespace and across
namespaces), pod logs. Every applied object is validated with kubernetes-validate (strict) like an API server
with ``fieldValidation=Strict`` would (Gateway API objects against the vendored CRD schemas), and refused with
422 when invalid.

The simulation, run on every request:

- Nodes come from :attr:`FakeKube.node_pools` (the fake ARM's pools): each pool's taints, and
  ``nvidia.com/gpu`` allocatable once a device plugin DaemonSet selects the pool (or the pool has one already).
- A Deployment gets pods for its template; a pod is scheduled on a node that matches its nodeSelector,
  tolerates the taints and has free GPUs (pods never share one), or stays Pending with the PodScheduled
  condition Unschedulable and a FailedScheduling event in the scheduler's words.
- Scheduled pods become Ready after :attr:`ready_after_polls` observations, unless their image contains
  ``does-not-exist`` (ImagePullBackOff) or :attr:`crash_logs` names their Deployment (CrashLoopBackOff, with
  those log lines as the previous container's output). Old pods go once the new ones are ready (rolling
  update), or first when the strategy has ``maxSurge: 0``.
- A LoadBalancer Service gets :attr:`lb_ip` as its ingress after :attr:`lb_after_polls` reads.
- Gateway API objects (``gateway.networking.k8s.io/v1`` Gateways, HTTPRoutes, GRPCRoutes; GatewayClasses of
  :attr:`gateway_classes`, read only) are validated against the vendored CRD schemas and given the status a
  Gateway controller writes: :mod:`tests.fakes.gateway` documents it, and serves their data plane.
- With :attr:`autoscaler_after_polls` set, a cluster autoscaler looks at a pod that stayed unschedulable that
  long and records its verdict as an event: TriggeredScaleUp after :attr:`scale_up` added a node to the pod's
  pool (the fake ARM's pool grows), or NotTriggerScaleUp with the reason it cannot.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import kubernetes_validate
import pytest
import yaml

from endpointkit.catalog import azure_vm_size
from endpointkit.spec import Spec, spec_from_dict
from tests.fakes import CertificateAuthority, LoopbackServer, make_certificate_authority
from tests.fakes import gateway as gateway_api
from tests.fakes.gateway import FakeGateway, TritonCounters

__all__ = [
    "FakeAzure",
    "FakeGateway",
    "FakeKube",
    "NodePool",
    "aks_spec",
    "azure",
    "echo_repository",
    "repository",
    "tls",
]

TOKEN = "fake-kube-token"
AGENTPOOL = "kubernetes.azure.com/agentpool"
_PLURALS = {
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "services": "Service",
    "pods": "Pod",
    "events": "Event",
    "deployments": "Deployment",
    "daemonsets": "DaemonSet",
    "namespaces": "Namespace",
    "nodes": "Node",
    **gateway_api.KINDS,
}
_GROUPS = {"Deployment": "apis/apps/v1", "DaemonSet": "apis/apps/v1"} | {
    kind: f"apis/{gateway_api.API_VERSION}" for kind in gateway_api.KINDS.values()
}
_CLUSTER_SCOPED = {"Namespace", "Node", "GatewayClass"}
_PATH = re.compile(
    r"^/(?P<group>api/v1|apis/apps/v1|apis/gateway\.networking\.k8s\.io/v1)(?:/namespaces/(?P<ns>[^/]+))?"
    r"/(?P<plural>[a-z]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>log|proxy/.*))?$"
)


@dataclass(frozen=True)
class NodePool:
    """Nodes of one AKS pool as the fake cluster sees them."""

    name: str
    vm_size: str
    count: int
    taints: tuple[str, ...] = ()
    device_plugin: bool = False


@dataclass
class FakeKube:
    """The cluster's objects, the simulation knobs, and every request seen (method, path, content type)."""

    tls: CertificateAuthority
    lb_ip: str = "127.0.0.1"
    node_pools: Callable[[], list[NodePool]] = field(default=lambda: [])
    ready_after_polls: int = 1
    lb_after_polls: int = 1
    plugin_after_polls: int = 1
    crash_logs: dict[str, list[str]] = field(default_factory=dict)
    #: each running pod's log (pod name -> lines, each "RFC3339-TIME text" as the API server sends them with
    #: timestamps=true); a pod in :attr:`previous_logs` has restarted once and those are its previous run's lines
    pod_logs: dict[str, list[str]] = field(default_factory=dict)
    previous_logs: dict[str, list[str]] = field(default_factory=dict)
    #: every pod log read: (pod name, its query parameters)
    log_reads: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    #: what each pod's Triton serves on port 8002 at /metrics (pod name -> exposition text); a running pod
    #: that is not here has nothing listening there (the proxy answers 503)
    pod_metrics: dict[str, str] = field(default_factory=dict)
    autoscaler_after_polls: int | None = None
    #: asks for one more node in a pool: (TriggeredScaleUp, message) when added, (NotTriggerScaleUp, why) if not
    scale_up: Callable[[str], tuple[str, str]] = field(
        default=lambda pool: ("NotTriggerScaleUp", "pod didn't trigger scale-up: no node group")
    )
    validate_versions: tuple[str, ...] = ("1.30.0",)
    #: GatewayClasses with a controller: their Gateways get programmed (others stay Pending)
    gateway_classes: set[str] = field(default_factory=lambda: {"approuting-istio"})
    #: reads of Gateway API objects after which a Gateway's current generation is reconciled
    gateway_after_polls: int = 1
    #: (reason, message): every reconciled Gateway is Programmed False with them, and gets no address
    gateway_failure: tuple[str, str] | None = None
    #: what each pod's Triton counted of the requests the data plane sent it (pod name -> counters)
    served: dict[str, TritonCounters] = field(default_factory=dict)
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    server: LoopbackServer | None = None
    _counter: int = 0
    _ticks: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("default", "kube-system"):
            self.objects[("Namespace", "", name)] = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name},
            }

    # ---- test controls -------------------------------------------------------------------------------
    def start(self) -> FakeKube:
        self.server = LoopbackServer(_KubeHandler, fake=self, tls=self.tls).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def url(self) -> str:
        assert self.server is not None, "start() the fake first"
        return self.server.url

    def kubeconfig(self) -> dict[str, Any]:
        """What listClusterUserCredential returns for this cluster: token auth, the fake CA inline."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [
                {
                    "name": "fake",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(self.tls.ca_pem).decode(),
                    },
                }
            ],
            "users": [{"name": "clusterUser", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "clusterUser"}}],
        }

    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        with self.lock:
            found = self.objects.get((kind, "" if kind in _CLUSTER_SCOPED else namespace, name))
            return copy.deepcopy(found) if found else None

    def edit(
        self, kind: str, name: str, change: Callable[[dict[str, Any]], None], namespace: str = "default"
    ) -> None:
        """Change a stored object in place, as ``kubectl edit`` by another field manager would (out of band):
        a new resourceVersion, and a new generation when its spec changed."""
        with self.lock:
            stored = self.objects[(kind, "" if kind in _CLUSTER_SCOPED else namespace, name)]
            spec = copy.deepcopy(stored.get("spec"))
            change(stored)
            self._counter += 1
            stored["metadata"]["resourceVersion"] = str(self._counter)
            if stored.get("spec") != spec:
                stored["metadata"]["generation"] = stored["metadata"].get("generation", 1) + 1
            self._reconcile(tick=False)

    def all(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(o) for (k, _, _), o in sorted(self.objects.items()) if k == kind]

    def calls(self, method: str | None = None, contains: str = "") -> list[tuple[str, str, str]]:
        with self.lock:
            return [r for r in self.requests if (method is None or r[0] == method) and contains in r[1]]

    # ---- request handling ----------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> tuple[int, Any, str]:
        with self.lock:
            self.requests.append((method, path, str(headers.get("Content-Type", ""))))
            if headers.get("Authorization") != f"Bearer {TOKEN}":
                return _status(401, "Unauthorized", "Unauthorized")
            match = _PATH.match(path)
            if (
                match is None
                or match.group("plural") not in _PLURALS
                or _GROUPS.get(_PLURALS[match.group("plural")], "api/v1") != match.group("group")
            ):
                return _status(404, "NotFound", f"the server could not find the requested resource ({path})")
            kind = _PLURALS[match.group("plural")]
            namespace = match.group("ns") or ""
            name = match.group("name")
            self._reconcile(
                tick=kind in ("Deployment", "Service", "Node") and method == "GET",
                gateway_read=kind in gateway_api.KINDS.values() and method == "GET",
            )
            if kind == "GatewayClass":
                return self._gateway_classes(method, name)
            if match.group("sub") == "log":
                return self._log(namespace, str(name), query)
            if str(match.group("sub") or "").startswith("proxy/"):
                return self._proxy(namespace, unquote(str(name)), match.group("sub").removeprefix("proxy"))
            if name is None:
                if method != "GET":
                    return _status(405, "MethodNotAllowed", f"{method} on a collection")
                return self._list(kind, namespace if match.group("ns") else None, query)
            key = (kind, "" if kind in _CLUSTER_SCOPED else namespace, name)
            if method == "GET":
                found = self.objects.get(key)
                if found is None:
                    return _status(404, "NotFound", f'{match.group("plural")} "{name}" not found')
                return 200, found, "application/json"
            if method == "DELETE":
                return self._delete(key)
            if method == "PATCH":
                return self._apply(kind, key, query, headers, body)
            return _status(405, "MethodNotAllowed", method)

    def _list(self, kind: str, namespace: str | None, query: dict[str, list[str]]) -> tuple[int, Any, str]:
        labels = _selector(query.get("labelSelector", [""])[0])
        fields = _selector(query.get("fieldSelector", [""])[0])
        items = []
        for (k, ns, _), obj in sorted(self.objects.items()):
            if k != kind or (namespace is not None and ns != namespace):
                continue
            object_labels = obj.get("metadata", {}).get("labels") or {}
            if any(object_labels.get(key) != value for key, value in labels.items()):
                continue
            if any(_field(obj, key) != value for key, value in fields.items()):
                continue
            items.append(obj)
        return (
            200,
            {
                "kind": f"{kind}List",
                "apiVersion": _GROUPS.get(kind, "api/v1").removeprefix("api/").removeprefix("apis/"),
                "metadata": {"resourceVersion": str(self._counter)},
                "items": items,
            },
            "application/json",
        )

    def _delete(self, key: tuple[str, str, str]) -> tuple[int, Any, str]:
        found = self.objects.pop(key, None)
        if found is None:
            return _status(404, "NotFound", f'{key[0].lower()}s "{key[2]}" not found')
        if key[0] == "Deployment":
            for pod_key in [k for k, p in self.objects.items() if k[0] == "Pod" and p["_owner"] == key[2]]:
                del self.objects[pod_key]
        return (
            200,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Success",
                "details": {"name": key[2], "kind": key[0].lower() + "s"},
            },
            "application/json",
        )

    def _apply(
        self, kind: str, key: tuple[str, str, str], query: dict[str, list[str]], headers: Any, body: bytes
    ) -> tuple[int, Any, str]:
        if headers.get("Content-Type") != "application/apply-patch+yaml":
            return _status(415, "UnsupportedMediaType", "this fake only takes server-side apply")
        if query.get("fieldManager") != ["endpointkit"] or query.get("force") != ["true"]:
            return _status(400, "BadRequest", "apply needs fieldManager=endpointkit and force=true")
        applied = yaml.safe_load(body)
        if applied.get("kind") != kind or applied.get("metadata", {}).get("name") != key[2]:
            return _status(400, "BadRequest", "the body does not match the URL")
        if key[1] and ("Namespace", "", key[1]) not in self.objects:
            return _status(404, "NotFound", f'namespaces "{key[1]}" not found')
        if kind in gateway_api.KINDS.values():
            problem = gateway_api.validate(applied)
            if problem is not None:
                return _status(422, "Invalid", f"{kind}.{gateway_api.GROUP} {key[2]} is invalid: {problem}")
        else:
            for version in self.validate_versions:
                try:
                    kubernetes_validate.validate(applied, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    return _status(422, "Invalid", f"{kind} {key[2]} is invalid: {exc.message}")
        self._counter += 1
        previous = self.objects.get(key)
        stored = copy.deepcopy(applied)
        metadata = stored["metadata"]
        if key[1]:
            metadata.setdefault("namespace", key[1])
        metadata["uid"] = previous["metadata"]["uid"] if previous else str(uuid.uuid4())
        metadata["resourceVersion"] = str(self._counter)
        generation = previous["metadata"].get("generation", 1) if previous else 0
        if previous is None or previous.get("spec") != stored.get("spec"):
            generation += 1
        metadata["generation"] = generation
        if previous is not None and "status" in previous:
            stored["status"] = previous["status"]
        elif previous is None and gateway_api.initial_status(kind) is not None:
            stored["status"] = gateway_api.initial_status(kind)
        if kind == "Service" and previous is None:
            self._ticks[f"svc/{key[1]}/{key[2]}"] = 0
        if kind == "DaemonSet":
            self._ticks[f"plugin/{key[2]}"] = 0
        self.objects[key] = stored
        self._reconcile(tick=False)
        return 200, self.objects[key], "application/json"

    def _log(self, namespace: str, name: str, query: dict[str, list[str]]) -> tuple[int, Any, str]:
        pod = self.objects.get(("Pod", namespace, name))
        if pod is None:
            return _status(404, "NotFound", f'pods "{name}" not found')
        self.log_reads.append((name, query))
        container = query.get("container", [""])[0]
        names = [c["name"] for c in pod["spec"]["containers"]]
        if container and container not in names:
            return _status(400, "BadRequest", f"container {container} is not valid for pod {name}")
        if pod["_owner"] in self.crash_logs:
            lines = self.crash_logs[pod["_owner"]]
        elif query.get("previous") == ["true"]:
            if name not in self.previous_logs:
                return _status(
                    400, "BadRequest", f'previous terminated container "{names[0]}" in pod "{name}" not found'
                )
            lines = _log_window(self.previous_logs[name], query)
        else:
            lines = _log_window(self.pod_logs.get(name, []), query)
        tail = int(query.get("tailLines", ["0"])[0] or 0)
        return 200, "".join(line + "\n" for line in (lines[-tail:] if tail else lines)).encode(), "text/plain"

    def _gateway_classes(self, method: str, name: str | None) -> tuple[int, Any, str]:
        if method != "GET":
            return _status(405, "MethodNotAllowed", f"{method} on a GatewayClass (read only in this fake)")
        if name is None:
            items = [gateway_api.gateway_class(n) for n in sorted(self.gateway_classes)]
            return (
                200,
                {"kind": "GatewayClassList", "apiVersion": gateway_api.API_VERSION, "items": items},
                "application/json",
            )
        if name not in self.gateway_classes:
            return _status(404, "NotFound", f'gatewayclasses.{gateway_api.GROUP} "{name}" not found')
        return 200, gateway_api.gateway_class(name), "application/json"

    def _proxy(self, namespace: str, target: str, path: str) -> tuple[int, Any, str]:
        """The API server's pod proxy: ``NAME:PORT`` and a path on that port (only Triton's /metrics here).

        A pod's metrics are :attr:`pod_metrics` when a test set any (then a pod not there does not answer), else
        Triton's counters of the requests the data plane sent the pod (:attr:`served`) while its container runs.
        """
        pod_name, _, port = target.partition(":")
        pod = self.objects.get(("Pod", namespace, pod_name))
        if pod is None:
            return _status(404, "NotFound", f'pods "{pod_name}" not found')
        text = self.pod_metrics.get(pod_name)
        running = any("running" in s.get("state", {}) for s in pod["status"].get("containerStatuses") or [])
        if text is None and not self.pod_metrics and running:
            owner = self.objects.get(("Deployment", namespace, pod["_owner"])) or {}
            model = (owner.get("metadata", {}).get("annotations") or {}).get("endpointkit-default-model")
            text = gateway_api.triton_metrics(pod, self.served.get(pod_name), [model] if model else [])
        if port != "8002" or path != "/metrics" or text is None:
            return _status(
                503, "ServiceUnavailable", f"error trying to reach service: dial tcp {target}: refused"
            )
        return 200, text.encode(), "text/plain; version=0.0.4"

    # ---- simulation ----------------------------------------------------------------------------------
    def _nodes(self, tick: bool) -> list[dict[str, Any]]:
        nodes = []
        plugins = {
            d["spec"]["template"]["spec"].get("nodeSelector", {}).get(AGENTPOOL): name
            for (kind, _, name), d in self.objects.items()
            if kind == "DaemonSet"
        }
        for pool in self.node_pools():
            gpus = (
                azure_vm_size(pool.vm_size).accelerators
                if azure_vm_size(pool.vm_size).accelerator == "gpu"
                else 0
            )
            plugin = plugins.get(pool.name)
            registered = pool.device_plugin
            if plugin is not None:
                ticks = self._ticks.get(f"plugin/{plugin}", 0)
                if tick:
                    self._ticks[f"plugin/{plugin}"] = ticks + 1
                registered = registered or ticks >= self.plugin_after_polls
            for index in range(pool.count):
                allocatable = {"cpu": "4", "memory": "28Gi", "pods": "110"}
                if gpus and registered:
                    allocatable["nvidia.com/gpu"] = str(gpus)
                taints = [
                    dict(zip(("key", "value", "effect"), re.split("[=:]", t), strict=True))
                    for t in pool.taints
                ]
                nodes.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "metadata": {
                            "name": f"aks-{pool.name}-1234-vmss{index:06d}",
                            "labels": {AGENTPOOL: pool.name},
                        },
                        "spec": {"taints": taints} if taints else {},
                        "status": {
                            "allocatable": allocatable,
                            "conditions": [{"type": "Ready", "status": "True"}],
                        },
                    }
                )
        return nodes

    def _reconcile(self, *, tick: bool, gateway_read: bool = False) -> None:
        for key in [k for k in self.objects if k[0] == "Node"]:
            del self.objects[key]
        nodes = self._nodes(tick)
        for node in nodes:
            self.objects[("Node", "", node["metadata"]["name"])] = node
        for (kind, namespace, name), service in list(self.objects.items()):
            if kind == "Service" and service["spec"].get("type") == "LoadBalancer":
                ticks = self._ticks.get(f"svc/{namespace}/{name}", 0)
                if ticks >= self.lb_after_polls:
                    service["status"] = {"loadBalancer": {"ingress": [{"ip": self.lb_ip}]}}
                elif tick:
                    self._ticks[f"svc/{namespace}/{name}"] = ticks + 1
        for (kind, namespace, name), deployment in list(self.objects.items()):
            if kind == "Deployment":
                self._reconcile_deployment(namespace, name, deployment, nodes, tick)
        gateway_api.reconcile(self, read=gateway_read)

    def _pods_of(self, name: str) -> list[dict[str, Any]]:
        return [p for (k, _, _), p in self.objects.items() if k == "Pod" and p["_owner"] == name]

    def _reconcile_deployment(
        self, namespace: str, name: str, deployment: dict[str, Any], nodes: list[dict[str, Any]], tick: bool
    ) -> None:
        template = deployment["spec"]["template"]
        template_hash = template["metadata"]["labels"].get("endpointkit-template", "0")
        wanted = int(deployment["spec"].get("replicas", 1))
        pods = self._pods_of(name)
        new = [p for p in pods if p["_template"] == template_hash]
        old = [p for p in pods if p["_template"] != template_hash]
        surge = deployment["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", 1)
        if old and surge == 0:
            for pod in old:
                del self.objects[("Pod", namespace, pod["metadata"]["name"])]
            old = []
        for index in range(len(new), wanted):
            pod_name = f"{name}-{template_hash[:8]}-{index}"
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "_owner": name,
                "_template": template_hash,
                "_age": 0,
                "metadata": {
                    "name": pod_name,
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "labels": {**template["metadata"]["labels"]},
                },
                "spec": copy.deepcopy(template["spec"]),
                "status": {"phase": "Pending", "conditions": []},
            }
            self.objects[("Pod", namespace, pod_name)] = pod
            new.append(pod)
        for pod in new[wanted:]:
            del self.objects[("Pod", namespace, pod["metadata"]["name"])]
        new = new[:wanted]
        for pod in new:
            self._run_pod(pod, nodes, tick)
        if new and all(_is_ready(p) for p in new):
            for pod in old:
                del self.objects[("Pod", namespace, pod["metadata"]["name"])]
            old = []
        ready = sum(1 for p in new + old if _is_ready(p))
        available = len(new) == wanted and all(_is_ready(p) for p in new)
        deployment["status"] = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": len(new) + len(old),
            "updatedReplicas": len(new),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if available else "False",
                    "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                }
            ],
        }

    def _run_pod(self, pod: dict[str, Any], nodes: list[dict[str, Any]], tick: bool) -> None:
        status = pod["status"]
        if not pod["spec"].get("nodeName"):
            node, message = self._schedule(pod, nodes)
            if node is None:
                condition = {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                }
                if status["conditions"] != [condition]:
                    status["conditions"] = [condition]
                    self._event(pod, "FailedScheduling", message)
                self._autoscale(pod, tick)
                return
            pod["spec"]["nodeName"] = node
            status["conditions"] = [{"type": "PodScheduled", "status": "True"}]
        container = pod["spec"]["containers"][0]
        if "does-not-exist" in container["image"]:
            status["containerStatuses"] = [
                {
                    "name": container["name"],
                    "ready": False,
                    "restartCount": 0,
                    "image": container["image"],
                    "state": {
                        "waiting": {
                            "reason": "ImagePullBackOff",
                            "message": f'Back-off pulling image "{container["image"]}"',
                        }
                    },
                }
            ]
            return
        if pod["_owner"] in self.crash_logs:
            status["phase"] = "Running"
            status["containerStatuses"] = [
                {
                    "name": container["name"],
                    "ready": False,
                    "restartCount": 3,
                    "image": container["image"],
                    "state": {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off 40s restarting failed container={container['name']}",
                        }
                    },
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
                }
            ]
            return
        if tick:
            pod["_age"] += 1
        ready = pod["_age"] >= self.ready_after_polls
        status["phase"] = "Running"
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True" if ready else "False"},
        ]
        status["containerStatuses"] = [
            {
                "name": container["name"],
                "ready": ready,
                "restartCount": 0,
                "image": container["image"],
                "state": {"running": {}},
            }
        ]
        if pod["metadata"]["name"] in self.previous_logs:
            status["containerStatuses"][0]["restartCount"] = 1
            status["containerStatuses"][0]["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error"}}

    def _autoscale(self, pod: dict[str, Any], tick: bool) -> None:
        """The cluster autoscaler's one look at an unschedulable pod, once it has waited long enough."""
        if self.autoscaler_after_polls is None or pod.get("_verdict"):
            return
        if tick:
            pod["_unschedulable"] = pod.get("_unschedulable", 0) + 1
        if pod.get("_unschedulable", 0) < self.autoscaler_after_polls:
            return
        reason, message = self.scale_up(str(pod["spec"].get("nodeSelector", {}).get(AGENTPOOL, "")))
        pod["_verdict"] = reason
        self._event(pod, reason, message)

    def _schedule(self, pod: dict[str, Any], nodes: list[dict[str, Any]]) -> tuple[str | None, str]:
        limits = pod["spec"]["containers"][0].get("resources", {}).get("limits", {})
        extended = {k: int(v) for k, v in limits.items() if "/" in k}
        selector = pod["spec"].get("nodeSelector", {})
        tolerations = pod["spec"].get("tolerations", [])
        reasons: dict[str, int] = {}
        for node in nodes:
            labels = node["metadata"]["labels"]
            if any(labels.get(k) != v for k, v in selector.items()):
                reasons["node(s) didn't match Pod's node affinity/selector"] = (
                    reasons.get("node(s) didn't match Pod's node affinity/selector", 0) + 1
                )
                continue
            untolerated = [
                t
                for t in node["spec"].get("taints", [])
                if not any(o.get("key") == t["key"] and o.get("value") == t.get("value") for o in tolerations)
            ]
            if untolerated:
                text = f"node(s) had untolerated taint {{{untolerated[0]['key']}: {untolerated[0]['value']}}}"
                reasons[text] = reasons.get(text, 0) + 1
                continue
            short = [r for r, n in extended.items() if n > self._free(node, r)]
            if short:
                reasons[f"Insufficient {short[0]}"] = reasons.get(f"Insufficient {short[0]}", 0) + 1
                continue
            return node["metadata"]["name"], ""
        listing = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        total = len(nodes)
        return None, (
            f"0/{total} nodes are available: {listing}. preemption: 0/{total} nodes are available: "
            f"{total} Preemption is not helpful for scheduling."
        )

    def _free(self, node: dict[str, Any], resource: str) -> int:
        capacity = int(node["status"]["allocatable"].get(resource, "0"))
        used = sum(
            int(p["spec"]["containers"][0].get("resources", {}).get("limits", {}).get(resource, 0))
            for (k, _, _), p in self.objects.items()
            if k == "Pod" and p["spec"].get("nodeName") == node["metadata"]["name"]
        )
        return capacity - used

    def _event(self, pod: dict[str, Any], reason: str, message: str) -> None:
        self._counter += 1
        name = f"{pod['metadata']['name']}.{self._counter:x}"
        namespace = pod["metadata"]["namespace"]
        self.objects[("Event", namespace, name)] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"], "namespace": namespace},
            "reason": reason,
            "message": message,
            "type": "Warning",
            "lastTimestamp": f"2026-01-01T00:00:{self._counter % 60:02d}Z",
        }


def _log_window(lines: list[str], query: dict[str, list[str]]) -> list[str]:
    """Stamped lines as the API server sends them: from ``sinceSeconds`` ago, without the stamp unless asked."""
    since = query.get("sinceSeconds")
    if since:
        start = datetime.now(timezone.utc) - timedelta(seconds=int(since[0]))
        lines = [line for line in lines if datetime.fromisoformat(line.split(" ", 1)[0]) >= start]
    if query.get("timestamps") != ["true"]:
        lines = [line.split(" ", 1)[1] if " " in line else "" for line in lines]
    return lines


def _is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in pod["status"].get("conditions", [])
    )


def _selector(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",") if "=" in part)


def _field(obj: dict[str, Any], path: str) -> str | None:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None else str(value)


def _status(code: int, reason: str, message: str) -> tuple[int, Any, str]:
    return (
        code,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
        "application/json",
    )


def _public(obj: Any) -> Any:
    """An object without the fake's bookkeeping fields (``_owner``, ``_template``, ``_age``, ``_verdict``…)."""
    if isinstance(obj, dict):
        return {k: _public(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [_public(v) for v in obj]
    return obj


class _KubeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: do not delay the second

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _serve(self) -> None:
        fake: FakeKube = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        status, payload, content_type = fake.handle(
            self.command, parts.path, parse_qs(parts.query), self.headers, body
        )
        data = payload if isinstance(payload, bytes) else json.dumps(_public(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _serve


# ------------------------------------------------------------------------------------------ all together


class FakeAzure:
    """ARM, Blob storage, one Kubernetes cluster and the data plane of its Gateways (:attr:`gateway`, a
    :class:`FakeGateway` whose pods answer as an echo Triton), wired together.

    The cluster's nodes are the fake ARM's provisioned pools; pools added with :meth:`add_user_pool` (made by
    someone else) already advertise their GPUs. Use as a context manager: every server stops on exit.
    """

    def __init__(self, tls: CertificateAuthority, *, polls_to_finish: int = 1) -> None:
        from tests.fakes.arm import FakeArm

        self.lb_ip = "127.0.0.1"  # the Gateways' address; the data plane listens there on ephemeral ports
        self.tls = tls
        self.preinstalled: set[str] = set()
        self.kube = FakeKube(tls, lb_ip=self.lb_ip, node_pools=self._node_pools, scale_up=self._scale_up)
        self.arm = FakeArm(tls, kubeconfig=self.kube.kubeconfig, polls_to_finish=polls_to_finish)
        self.gateway = FakeGateway(self.kube)

    def _node_pools(self) -> list[NodePool]:
        pools = []
        with self.arm.lock:
            snapshot = list(self.arm.pools.items())
        for (_, _, name), body in snapshot:
            properties = body["properties"]
            if properties.get("provisioningState") != "Succeeded":
                continue
            count = properties.get("count") or properties.get("minCount") or 0
            pools.append(
                NodePool(
                    name,
                    properties["vmSize"],
                    int(count),
                    tuple(properties.get("nodeTaints") or ()),
                    device_plugin=name in self.preinstalled,
                )
            )
        return pools

    def _scale_up(self, pool: str) -> tuple[str, str]:
        """What AKS's cluster autoscaler does for a pod waiting on ``pool``: one more VM up to ``maxCount``."""
        with self.arm.lock:
            for (_, _, name), body in self.arm.pools.items():
                properties = body["properties"]
                if name != pool.lower():
                    continue
                if not properties.get("enableAutoScaling"):
                    break
                count, most = int(properties.get("count") or 0), int(properties.get("maxCount") or 0)
                if count >= most:
                    return "NotTriggerScaleUp", "pod didn't trigger scale-up: 1 max node group size reached"
                properties["count"] = count + 1
                return (
                    "TriggeredScaleUp",
                    f"pod triggered scale-up: [{{aks-{name}-1234-vmss {count}->{count + 1} (max: {most})}}]",
                )
        return "NotTriggerScaleUp", f"pod didn't trigger scale-up: node pool {pool} does not autoscale"

    def add_user_pool(
        self, resource_group: str, cluster: str, name: str, *, vm_size: str, count: int
    ) -> None:
        """A cluster and GPU pool someone else made (no endpointkit tag, device plugin already running)."""
        if (resource_group.lower(), cluster.lower()) not in self.arm.clusters:
            self.arm.add_cluster(resource_group, cluster)
        self.arm.add_pool(resource_group, cluster, name, vm_size=vm_size, count=count)
        self.arm.pools[(resource_group.lower(), cluster.lower(), name.lower())]["properties"][
            "nodeTaints"
        ] = ["sku=gpu:NoSchedule"]
        self.preinstalled.add(name)

    def __enter__(self) -> FakeAzure:
        self.kube.start()
        try:
            self.arm.start()
            self.gateway.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for stop in (self.gateway.stop, self.arm.stop, self.kube.stop):
            with contextlib.suppress(Exception):  # a server that never started
                stop()

    def adapter_options(self, **overrides: Any) -> dict[str, Any]:
        """AksAdapter keyword arguments for these fakes: real azure-mgmt, azure-storage-blob and kubernetes
        clients, the fake CA trusted, short polls and retries, and ``connect_to`` sending every host's ports 443
        and 80 to the Gateways' data plane."""
        from azure.storage.blob import ContainerClient

        from endpointkit.adapters.aks import PollPolicy, RetryPolicy
        from tests.fakes.arm import FakeTokenCredential

        ca = str(self.tls.ca_file)

        def containers(account: str, key: str, container: str) -> Any:
            return ContainerClient(
                self.arm.blob_url(account),
                container,
                connection_verify=ca,
                retry_total=0,
                credential={"account_name": account, "account_key": key},
            )

        return {
            "credential": FakeTokenCredential(),
            "arm_options": {"connection_verify": ca, "polling_interval": 0},
            "blob_container_factory": containers,
            "retry": RetryPolicy(attempts=3, max_seconds=5, initial_wait=0.01, max_wait=0.05),
            "polling": PollPolicy(first=0.002, most=0.02),
            "connect_to": self.gateway.connect_to(),
            **overrides,
        }

    def adapter(self, target: Any, *, target_name: str = "azure", **overrides: Any) -> Any:
        """An AksAdapter for ``target`` wired to these fakes."""
        from endpointkit.adapters.aks import AksAdapter

        return AksAdapter(target, target_name=target_name, **self.adapter_options(**overrides))


# ------------------------------------------------------------------------------------------ test helpers

ECHO_CONFIG = """name: "echo"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] } ]
"""
ECHO_MODEL = """import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [
            pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())])
            for r in requests
        ]
"""


def echo_repository(root: Path) -> Path:
    """A one-model Triton repository (Python backend echo) under ``root``."""
    model = root / "model_repository" / "echo"
    (model / "1").mkdir(parents=True, exist_ok=True)
    (model / "config.pbtxt").write_text(ECHO_CONFIG)
    (model / "1" / "model.py").write_text(ECHO_MODEL)
    return model.parent


def aks_spec(
    repository: Path | str,
    arm_url: str,
    *,
    variants: list[dict[str, Any]] | None = None,
    target: dict[str, Any] | None = None,
    **fields: Any,
) -> Spec:
    """A spec with one ``azure`` AKS target on the fakes: a T4 pool of 2 VMs, cluster made on demand."""
    from tests.fakes.arm import SUBSCRIPTION

    settings: dict[str, Any] = {
        "kind": "aks",
        "subscription_id": SUBSCRIPTION,
        "resource_group": "rg",
        "cluster": "gpu-aks",
        "location": "eastus",
        "create_cluster": True,
        "arm_endpoint": arm_url,
        "node_pool": {"name": "gpu", "vm_size": "Standard_NC4as_T4_v3", "count": 2},
        "storage_account": "mymodels",
        **(target or {}),
    }
    default = [{"name": "primary", "accelerator": "gpu", "instance_count": 1, "cpu": 2, "memory": "4Gi"}]
    data = {
        "name": "vision",
        "model": {"repository": str(repository)},
        "variants": variants or default,
        "targets": {"azure": settings},
        **fields,
    }
    return spec_from_dict(
        data, base_dir=Path(str(repository)).parent if "://" not in str(repository) else None
    )


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    """One throwaway CA and server certificate for every fake of the session."""
    return make_certificate_authority(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def azure(tls: CertificateAuthority) -> Iterator[FakeAzure]:
    """Fresh fake ARM, Blob storage, cluster and Gateway data plane; all stopped afterwards."""
    with FakeAzure(tls) as fake:
        yield fake


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    return echo_repository(tmp_path)
