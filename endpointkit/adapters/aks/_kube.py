"""The Kubernetes side of an AKS endpoint: a small client over the official ``kubernetes`` package, and the
reading of a rollout (ready replicas, and pods that cannot run, with their own reason; the Gateway and routes
are read by ``_front``).

Objects are applied with server-side apply: ``PATCH`` with ``Content-Type: application/apply-patch+yaml``,
``fieldManager=endpointkit`` and ``force=true`` (https://kubernetes.io/docs/reference/using-api/server-side-apply/).
The typed APIs (and ``CustomObjectsApi`` for the Gateway API kinds) are called with ``_preload_content=False``
so objects stay plain dicts and no API discovery is needed. The kubeconfig stays in memory; certificates the client must hand to OpenSSL as files go to a private
0700 folder (files 0600, ``tempfile.mkstemp``) that :meth:`KubeClient.close` removes.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from endpointkit._lazy import require
from endpointkit.adapters.aks._errors import RetryPolicy, with_retries
from endpointkit.adapters.aks._render import AGENTPOOL_LABEL, LABEL_ENDPOINT, LABEL_TEMPLATE, LABEL_VARIANT
from endpointkit.adapters.aks._tls import environment_ca_bundle
from endpointkit.adapters.base import MANAGED_BY_TAG, MANAGED_BY_VALUE
from endpointkit.errors import CapacityError, NotFoundError, ProviderError

if TYPE_CHECKING:  # the front reads through this module's client
    from endpointkit.adapters.aks._front import FrontStatus

__all__ = [
    "FIELD_MANAGER",
    "DeploymentStatus",
    "KubeClient",
    "Observation",
    "ScaleUpGrace",
    "default_kube_factory",
    "observe",
]

FIELD_MANAGER = "endpointkit"
APPLY_PATCH = "application/apply-patch+yaml"
# Waiting reasons after which the kubelet keeps failing the same way: the wait ends at once with them.
_STUCK_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)

# kind -> (API group object, snake-case name used by the generated methods, namespaced)
_KINDS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("core", "namespace", False),
    "Node": ("core", "node", False),
    "Secret": ("core", "secret", True),
    "ConfigMap": ("core", "config_map", True),
    "Service": ("core", "service", True),
    "Pod": ("core", "pod", True),
    "Event": ("core", "event", True),
    "Deployment": ("apps", "deployment", True),
    "DaemonSet": ("apps", "daemon_set", True),
}
# Custom resources (namespaced): kind -> (group, version, plural), served through CustomObjectsApi. The Gateway API
# kinds are CRDs installed with the cluster's Gateway API support (https://gateway-api.sigs.k8s.io/).
_CUSTOM_KINDS: dict[str, tuple[str, str, str]] = {
    "Gateway": ("gateway.networking.k8s.io", "v1", "gateways"),
    "HTTPRoute": ("gateway.networking.k8s.io", "v1", "httproutes"),
    "GRPCRoute": ("gateway.networking.k8s.io", "v1", "grpcroutes"),
}

KubeFactory = Callable[[dict[str, Any], str], Any]


def default_kube_factory(kubeconfig: dict[str, Any], temp_dir: str) -> Any:
    """An ``ApiClient`` for ``kubeconfig`` (a dict); certificate files go under ``temp_dir``.

    The API server is trusted through the kubeconfig's own CA (AKS always includes it); a kubeconfig without
    one trusts the bundle ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` / ``SSL_CERT_FILE`` names, where the
    kubernetes client alone would fall back to certifi.
    """
    config = require("kubernetes.config", extra="aks")
    client = require("kubernetes.client", extra="aks")
    configuration = client.Configuration()
    config.load_kube_config_from_dict(
        config_dict=kubeconfig, client_configuration=configuration, temp_file_path=temp_dir
    )
    bundle = environment_ca_bundle()
    if configuration.verify_ssl and not configuration.ssl_ca_cert and bundle:
        configuration.ssl_ca_cert = bundle
    return client.ApiClient(configuration=configuration)


class KubeClient:
    """Apply, read, list and delete objects as dicts; every call mapped and retried."""

    def __init__(
        self,
        kubeconfig: Mapping[str, Any],
        *,
        factory: KubeFactory | None = None,
        retry: RetryPolicy | None = None,
        request_timeout: float = 30.0,
        operation_prefix: str = "",
    ) -> None:
        self._retry = retry or RetryPolicy()
        self._timeout = request_timeout
        self._prefix = operation_prefix
        self.temp_dir = tempfile.mkdtemp(prefix="endpointkit-kube-")
        try:
            self._api = self._call(
                "load the kubeconfig",
                lambda: (factory or default_kube_factory)(dict(kubeconfig), self.temp_dir),
            )
            client = require("kubernetes.client", extra="aks")
            self._groups = {"core": client.CoreV1Api(self._api), "apps": client.AppsV1Api(self._api)}
            self._custom = client.CustomObjectsApi(self._api)
        except BaseException:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            raise

    def close(self) -> None:
        """Close connections and remove the certificate files."""
        try:
            self._api.close()
        finally:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _call(self, operation: str, call: Callable[[], Any]) -> Any:
        return with_retries(
            call, policy=self._retry, provider="kubernetes", operation=self._prefix + operation
        )

    def _method(
        self, kind: str, verb: str, *, all_namespaces: bool = False
    ) -> tuple[Callable[..., Any], bool]:
        if kind in _CUSTOM_KINDS:
            return self._custom_method(kind, verb, all_namespaces=all_namespaces)
        group, snake, namespaced = _KINDS[kind]
        api = self._groups[group]
        if not namespaced:
            return getattr(api, f"{verb}_{snake}"), False
        if all_namespaces:
            return getattr(api, f"{verb}_{snake}_for_all_namespaces"), False
        return getattr(api, f"{verb}_namespaced_{snake}"), True

    def _custom_method(
        self, kind: str, verb: str, *, all_namespaces: bool
    ) -> tuple[Callable[..., Any], bool]:
        """A CustomObjectsApi method taking the typed methods' arguments: ``(name, namespace)`` for one object,
        ``(namespace,)`` for a list; the kind's group, version and plural are bound here."""
        group, version, plural = _CUSTOM_KINDS[kind]
        api = self._custom
        if verb == "list":
            if all_namespaces:
                return functools.partial(api.list_cluster_custom_object, group, version, plural), False

            def listed(namespace: str, **options: Any) -> Any:
                return api.list_namespaced_custom_object(group, version, namespace, plural, **options)

            return listed, True
        # The typed APIs' "read" is CustomObjectsApi's "get".
        method = getattr(api, f"{'get' if verb == 'read' else verb}_namespaced_custom_object")

        def on_object(name: str, namespace: str, **options: Any) -> Any:
            body = options.pop("body", None)
            return method(
                group, version, namespace, plural, name, *(() if body is None else (body,)), **options
            )

        return on_object, True

    def _invoke(self, operation: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            response = method(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
            return json.loads(response.data) if response.data else {}

        return self._call(operation, call)

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` (owned by field manager ``endpointkit``, conflicts forced)."""
        kind, metadata = obj["kind"], obj["metadata"]
        method, namespaced = self._method(kind, "patch")
        args = (metadata["name"], metadata["namespace"]) if namespaced else (metadata["name"],)
        result: dict[str, Any] = self._invoke(
            f"apply {kind} {metadata['name']}",
            method,
            *args,
            body=dict(obj),
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY_PATCH,
        )
        return result

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        method, namespaced = self._method(kind, "read")
        args = (name, namespace) if namespaced else (name,)
        try:
            result: dict[str, Any] = self._invoke(f"read {kind} {name}", method, *args)
        except NotFoundError:
            return None
        return result

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete the object (its dependents are collected in the background); False when it was gone."""
        method, namespaced = self._method(kind, "delete")
        args = (name, namespace) if namespaced else (name,)
        try:
            self._invoke(f"delete {kind} {name}", method, *args, propagation_policy="Background")
        except NotFoundError:
            return False
        return True

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Objects of ``kind`` in ``namespace`` (every namespace when None) matching the selectors."""
        method, namespaced = self._method(kind, "list", all_namespaces=namespace is None)
        args = (namespace,) if namespaced else ()
        options = {
            k: v for k, v in (("label_selector", label_selector), ("field_selector", field_selector)) if v
        }
        result = self._invoke(f"list {kind}", method, *args, **options)
        return list(result.get("items") or [])

    def pod_log(self, name: str, namespace: str, *, container: str, tail_lines: int, previous: bool) -> str:
        """The last lines a pod's container wrote (of its previous run with ``previous``); '' when none."""
        try:
            return self.read_pod_log(
                name, namespace, container=container, tail_lines=tail_lines, previous=previous
            )
        except ProviderError:
            return ""  # logs are a courtesy in an error message: never the reason a call fails

    def read_pod_log(
        self,
        name: str,
        namespace: str,
        *,
        container: str,
        previous: bool = False,
        timestamps: bool = False,
        since_seconds: int | None = None,
        tail_lines: int | None = None,
    ) -> str:
        """What a pod's container wrote (its previous run with ``previous``), errors mapped and raised.

        ``timestamps`` prefixes each line with the RFC 3339 time the kubelet received it; ``since_seconds`` and
        ``tail_lines`` are the API's own ``sinceSeconds`` and ``tailLines`` (None: not sent).
        """
        api = self._groups["core"]
        options = {
            k: v for k, v in (("since_seconds", since_seconds), ("tail_lines", tail_lines)) if v is not None
        }

        def call() -> str:
            response = api.read_namespaced_pod_log(
                name,
                namespace,
                container=container,
                previous=previous,
                timestamps=timestamps,
                _preload_content=False,
                _request_timeout=self._timeout,
                **options,
            )
            return bytes(response.data or b"").decode("utf-8", "replace")

        result: str = self._call(f"read logs of pod {name}", call)
        return result

    def pod_proxy_get(self, name: str, namespace: str, *, port: int, path: str) -> str:
        """``GET`` ``path`` on a pod's ``port`` through the API server's pod proxy (the port stays private).

        The request goes to ``/api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH``; the API server answers 503
        when nothing listens there, which comes back as a retryable ProviderError.
        """
        api = self._groups["core"]

        def call() -> str:
            response = api.connect_get_namespaced_pod_proxy_with_path(
                f"{name}:{port}",
                namespace,
                path.lstrip("/"),
                _preload_content=False,
                _request_timeout=self._timeout,
            )
            return bytes(response.data or b"").decode("utf-8", "replace")

        result: str = self._call(f"GET {path} on pod {name} port {port} (API server proxy)", call)
        return result


# ------------------------------------------------------------------------------------------------- rollouts


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    """One version of one variant: its Deployment as it runs."""

    name: str
    variant: str
    replicas: int
    ready: int
    available: int
    rolled_out: bool
    annotations: Mapping[str, str]
    generation: int = 1
    #: the pod template hash (``endpointkit-template``) that names the version
    template: str = ""


@dataclass(frozen=True)
class Observation:
    """An endpoint's Deployments and anchor Service, the first pod problem found, and its front (Gateway and
    routes, read by :func:`~endpointkit.adapters.aks._front.read_front`; None when not read)."""

    service: Mapping[str, Any] | None
    deployments: tuple[DeploymentStatus, ...]
    pod_problem: ProviderError | None
    #: why pods are pending without a problem yet (the cluster autoscaler is adding or about to add a node)
    waiting: str | None = None
    front: FrontStatus | None = None

    @property
    def exists(self) -> bool:
        return self.service is not None or bool(self.deployments)

    @property
    def address(self) -> str | None:
        """The Gateway's address, once it has one."""
        return self.front.address if self.front is not None else None

    @property
    def problem(self) -> ProviderError | None:
        """Why the endpoint cannot serve without a change: the pods' own reason, else the Gateway's."""
        if self.pod_problem is not None:
            return self.pod_problem
        return self.front.problem if self.front is not None else None

    @property
    def updating(self) -> bool:
        """Whether a version rolls out beside another (a new template of a variant), or a Deployment that existed
        before rolls (not a first rollout)."""
        variants = [d.variant for d in self.deployments]
        return len(set(variants)) < len(variants) or any(
            not d.rolled_out and d.generation > 1 for d in self.deployments
        )

    @property
    def ready(self) -> bool:
        return (
            bool(self.deployments)
            and all(d.rolled_out for d in self.deployments)
            and self.front is not None
            and self.front.ready
        )

    def describe(self) -> str:
        if not self.exists:
            return "not found"
        parts = [f"{d.name} {d.available}/{d.replicas} available" for d in self.deployments]
        parts.append(self.front.describe() if self.front is not None else "Gateway not read")
        if self.waiting:
            parts.append(self.waiting)
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class ScaleUpGrace:
    """How long a pod of an autoscaled pool may stay Unschedulable before the cluster autoscaler says anything.

    The autoscaler scans for unschedulable pods every 10 s by default and considers a pod from 10 s after it
    became unschedulable (kubernetes/autoscaler cluster-autoscaler/FAQ.md, "How fast is Cluster Autoscaler?";
    AKS keeps ``scan-interval`` 10s, https://learn.microsoft.com/azure/aks/cluster-autoscaler), so a verdict
    event (TriggeredScaleUp or NotTriggerScaleUp) normally follows within a scan or two; the default 90 s leaves
    room for a slow API server before silence is taken to mean no autoscaler acts for the pool.
    """

    seconds: float
    until: float

    @classmethod
    def starting_now(cls, seconds: float) -> ScaleUpGrace:
        return cls(seconds, time.monotonic() + seconds)

    @property
    def over(self) -> bool:
        return time.monotonic() >= self.until


def _rolled_out(deployment: Mapping[str, Any]) -> bool:
    # kubectl rollout status's rule: the controller saw this generation, every replica runs the new template and
    # is available, and no old replica is left (k8s.io/kubectl/pkg/polymorphichelpers/rollout_status.go).
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    wanted = int(spec.get("replicas", 1))
    return (
        int(status.get("observedGeneration", 0)) >= int(deployment["metadata"].get("generation", 0))
        and int(status.get("updatedReplicas", 0)) >= wanted
        and int(status.get("replicas", 0)) <= wanted
        and int(status.get("availableReplicas", 0)) >= wanted
    )


def observe(
    kube: KubeClient,
    *,
    namespace: str,
    endpoint: str,
    service: str,
    autoscaling: bool = False,
    log_lines: int = 20,
    grace: ScaleUpGrace | None = None,
) -> Observation:
    """Read the endpoint's Deployments, Service and pods once. Read-only.

    A pod that cannot be scheduled is a problem at once on a fixed-size pool (``autoscaling`` false) or when the
    cluster autoscaler refused it (NotTriggerScaleUp). On an autoscaled pool it is pending while the autoscaler
    adds a node (TriggeredScaleUp), and, before any verdict, until ``grace`` is over (forever without one: a
    read outside a wait cannot tell how long the pod has waited).
    """
    selector = f"{MANAGED_BY_TAG}={MANAGED_BY_VALUE},{LABEL_ENDPOINT}={endpoint}"
    found = kube.list("Deployment", namespace, label_selector=selector)
    service_object = kube.get("Service", service, namespace)
    deployments: list[DeploymentStatus] = []
    for item in sorted(found, key=lambda d: str(d["metadata"]["name"])):
        metadata, status = item["metadata"], item.get("status", {})
        template = item.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
        deployments.append(
            DeploymentStatus(
                name=str(metadata["name"]),
                variant=str(metadata.get("labels", {}).get(LABEL_VARIANT, metadata["name"])),
                replicas=int(item.get("spec", {}).get("replicas", 1)),
                ready=int(status.get("readyReplicas", 0)),
                available=int(status.get("availableReplicas", 0)),
                rolled_out=_rolled_out(item),
                annotations=dict(metadata.get("annotations") or {}),
                generation=int(metadata.get("generation", 1)),
                template=str(template.get(LABEL_TEMPLATE, "")),
            )
        )
    problem = waiting = None
    if deployments and not all(d.rolled_out for d in deployments):
        templates = {d.template for d in deployments}
        problem, waiting = _pod_problem(kube, namespace, selector, templates, autoscaling, log_lines, grace)
    return Observation(service_object, tuple(deployments), problem, waiting)


def _pod_problem(
    kube: KubeClient,
    namespace: str,
    selector: str,
    templates: set[str],
    autoscaling: bool,
    log_lines: int,
    grace: ScaleUpGrace | None,
) -> tuple[ProviderError | None, str | None]:
    pods = kube.list("Pod", namespace, label_selector=selector)
    waiting = None
    for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
        labels = pod["metadata"].get("labels", {})
        if labels.get(LABEL_TEMPLATE) not in templates:
            continue  # an old replica of a rolling update: it keeps serving, its state is not the new one's
        problem = _problem_of(kube, namespace, pod, autoscaling, log_lines, grace)
        if isinstance(problem, ProviderError):
            return problem, None
        waiting = waiting or problem
    return None, waiting


def _problem_of(
    kube: KubeClient,
    namespace: str,
    pod: Mapping[str, Any],
    autoscaling: bool,
    log_lines: int,
    grace: ScaleUpGrace | None,
) -> ProviderError | str | None:
    """The pod's problem, or a note on what it waits for (a string), or None when it is fine."""
    name = str(pod["metadata"]["name"])
    status = pod.get("status", {})
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and (condition.get("reason") == "Unschedulable")
        ):
            events = _events(kube, namespace, name)
            verdict = _autoscaler_verdict(events) if autoscaling else None
            if verdict is not None and verdict.get("reason") == "TriggeredScaleUp":
                return f"pod {name} waits for the node the cluster autoscaler is adding"
            if autoscaling and verdict is None and (grace is None or not grace.over):
                return f"pod {name} is unschedulable until the cluster autoscaler adds a node"
            message = condition.get("message") or next(
                (e.get("message") for e in reversed(events) if e.get("reason") == "FailedScheduling"), ""
            )
            text = f"pod {name} cannot be scheduled: Unschedulable: {message}".rstrip(": ")
            details: dict[str, Any] = {}
            if verdict is not None:
                details["autoscaler"] = str(verdict.get("message") or "")
                text += f"; the cluster autoscaler will not add a node: {details['autoscaler']}".rstrip(": ")
            elif autoscaling and grace is not None:
                text += (
                    f"; the cluster autoscaler gave no verdict within {grace.seconds:g} s (no TriggeredScaleUp "
                    "event): check that the node pool autoscales (az aks nodepool show --query enableAutoScaling) "
                    "and the autoscaler's own status (ConfigMap cluster-autoscaler-status in kube-system)"
                )
            return CapacityError(
                text,
                provider="kubernetes",
                operation="schedule pods",
                code="Unschedulable",
                details=details,
            )
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    for container in statuses:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in _STUCK_REASONS:
            return ProviderError(
                f"pod {name}: container {container.get('name')} is {reason}: {waiting.get('message', '')}".rstrip(),
                provider="kubernetes",
                operation="start pods",
                code=str(reason),
            )
        if reason == "CrashLoopBackOff":
            terminated = (container.get("lastState") or {}).get("terminated") or {}
            exit_text = f" (exit code {terminated['exitCode']})" if "exitCode" in terminated else ""
            logs = kube.pod_log(
                name, namespace, container=str(container.get("name")), tail_lines=log_lines, previous=True
            ).rstrip()
            tail = f"; its last log lines:\n{logs}" if logs else ""
            return ProviderError(
                f"pod {name}: container {container.get('name')} is in CrashLoopBackOff{exit_text}{tail}",
                provider="kubernetes",
                operation="start pods",
                code="CrashLoopBackOff",
                details={"log": logs},
            )
    return None


def _events(kube: KubeClient, namespace: str, pod: str) -> list[dict[str, Any]]:
    events = kube.list("Event", namespace, field_selector=f"involvedObject.name={pod}")
    return sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


def _autoscaler_verdict(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    # cluster-autoscaler records TriggeredScaleUp when it adds a node for a pod, NotTriggerScaleUp when it cannot
    # (kubernetes/autoscaler cluster-autoscaler/FAQ.md, "What events are emitted by CA?"); the latest one holds.
    verdicts = [e for e in events if e.get("reason") in ("TriggeredScaleUp", "NotTriggerScaleUp")]
    return verdicts[-1] if verdicts else None


def accelerator_nodes(kube: KubeClient, pool: str, resource: str) -> tuple[int, int]:
    """(nodes in ``pool``, nodes that advertise ``resource``): a device plugin registers it per node."""
    nodes = kube.list("Node", label_selector=f"{AGENTPOOL_LABEL}={pool}")
    advertising = sum(
        1
        for node in nodes
        if int(str((node.get("status", {}).get("allocatable") or {}).get(resource, "0")) or 0) > 0
    )
    return len(nodes), advertising
