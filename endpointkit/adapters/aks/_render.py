"""The Kubernetes objects of an AKS endpoint, as plain dicts: pure functions of the spec, no client import.

Per endpoint: a Deployment per variant and version (named after its pod template), the anchor ClusterIP Service
over all of them (HTTP 8000 and gRPC 8001; metrics 8002 stays inside the cluster; the Gateway API objects in
front of them are ``_gateway``'s and ``_routes``'), a Secret with the storage account key (the model), a
ConfigMap that records the rendered objects (the endpoint config), a Secret with the endpoint key when
``api_key`` is set, and on an endpointkit-made GPU pool the NVIDIA device plugin DaemonSet.

Shapes follow triton-inference-server/server ``deploy/k8s-onprem/templates/deployment.yaml`` (probes, ports,
``runAsUser 1000``) and the AKS GPU guide (``sku=gpu:NoSchedule`` toleration, device plugin DaemonSet):
https://learn.microsoft.com/azure/aks/use-nvidia-gpu.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from endpointkit._endpoint_state import encode_expiry
from endpointkit.adapters._triton_metrics import SUMMARY_ARGUMENTS
from endpointkit.adapters.base import EXPIRES_AT_TAG, MANAGED_BY_TAG, MANAGED_BY_VALUE, SPEC_HASH_TAG
from endpointkit.adapters.naming import content_hash

__all__ = [
    "ANNOTATION_API_KEY",
    "ANNOTATION_CONFIG",
    "ANNOTATION_DEFAULT_MODEL",
    "ANNOTATION_WEIGHTS",
    "API_KEY_ENV",
    "API_KEY_HEADER",
    "DEFAULT_TRITON_TAG",
    "DEVICE_PLUGIN_IMAGE",
    "LABEL_ENDPOINT",
    "LABEL_POOL",
    "LABEL_TEMPLATE",
    "LABEL_VARIANT",
    "TRITON_IMAGE",
    "VariantRender",
    "EndpointRender",
    "applied_config",
    "config_map",
    "deployment",
    "device_plugin",
    "key_secret",
    "model_secret",
    "namespace",
    "service",
    "service_name",
    "stamp",
    "triton_image",
    "version_name",
    "version_selector",
    "volatile_labels",
    "weights_of",
]

TRITON_IMAGE = "nvcr.io/nvidia/tritonserver"
# 24.10 ships Triton 2.51.0, the server the local target runs (nvidia-pytriton 0.7.0), so a repository that
# loads locally loads the same way on AKS. https://docs.nvidia.com/deeplearning/triton-inference-server/release-notes/
DEFAULT_TRITON_TAG = "24.10"
# The version the AKS GPU guide deploys (MicrosoftDocs/azure-aks-docs articles/aks/use-nvidia-gpu.md).
DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.18.0"

LABEL_ENDPOINT = "endpointkit-endpoint"
LABEL_VARIANT = "endpointkit-variant"
LABEL_TEMPLATE = "endpointkit-template"
LABEL_POOL = "endpointkit-node-pool"
LABEL_ROLE = "endpointkit-role"
ANNOTATION_CONFIG = "endpointkit-config"
ANNOTATION_WEIGHTS = "endpointkit-weights"
ANNOTATION_DEFAULT_MODEL = "endpointkit-default-model"
ANNOTATION_API_KEY = "endpointkit-api-key-secret"
AGENTPOOL_LABEL = "kubernetes.azure.com/agentpool"  # set by AKS on every node of a pool
API_KEY_HEADER = "endpointkit-key"
API_KEY_ENV = "ENDPOINTKIT_API_KEY"
STORAGE_KEY = "AZURE_STORAGE_KEY"
STORAGE_ACCOUNT = "AZURE_STORAGE_ACCOUNT"
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
#: hex digits of the pod template hash in a version's name
REVISION_LENGTH = 8
# Every API group but health, so probes work without the key (Triton "Limit Endpoint Access", server
# docs/customization_guide/inference_protocols.md). gRPC gets the same fence: it is exposed too.
_RESTRICTED = "metadata,inference,shared-memory,model-config,model-repository,statistics,trace,logging"
_DEFAULT_CPU = "1"
_DEFAULT_MEMORY = "2Gi"


@dataclass(frozen=True)
class VariantRender:
    """One variant as a Deployment: replicas, per-replica resources, traffic weight and rollout headroom."""

    name: str
    replicas: int
    weight: float
    cpu: float | None
    memory: str | None
    accelerators: int
    surge: bool


@dataclass(frozen=True)
class EndpointRender:
    """Everything the objects of one endpoint are made from."""

    endpoint: str
    namespace: str
    image: str
    repository_uri: str
    storage_account: str
    storage_key_secret: str
    environment: Mapping[str, str]
    default_model: str | None
    variants: Sequence[VariantRender]
    pool: str | None = None
    accelerator_resource: str | None = None
    taint: tuple[str, str] | None = None
    api_key_secret: str | None = None
    startup_seconds: float = 1800.0
    user_annotations: Mapping[str, str] = field(default_factory=dict)


def triton_image(image: str | None) -> str:
    """``model.image`` as given, a bare tag (``24.10``) as NGC's ``-py3`` image, or the default image."""
    if image is None:
        return f"{TRITON_IMAGE}:{DEFAULT_TRITON_TAG}-py3"
    if re.fullmatch(r"\d{2}\.\d{2}(-py3)?", image):
        return f"{TRITON_IMAGE}:{image.removesuffix('-py3')}-py3"
    return image


def service_name(endpoint: str) -> str:
    """A Service name is a DNS-1035 label: it must start with a letter."""
    return endpoint if endpoint[0].isalpha() else f"ek-{endpoint}"[:63].rstrip("-")


def base_labels(endpoint: str) -> dict[str, str]:
    return {
        MANAGED_BY_TAG: MANAGED_BY_VALUE,
        LABEL_ENDPOINT: endpoint,
        "app.kubernetes.io/name": "triton",
        "app.kubernetes.io/instance": endpoint,
        "app.kubernetes.io/managed-by": MANAGED_BY_VALUE,
    }


def _metadata(
    name: str, namespace: str | None, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _cpu(value: float | None) -> str:
    if value is None:
        return _DEFAULT_CPU
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


def namespace(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _metadata(name, None, {MANAGED_BY_TAG: MANAGED_BY_VALUE}),
    }


def model_secret(
    name: str, namespace: str, *, endpoint: str, repository_uri: str, account: str, key: str | None
) -> dict[str, Any]:
    """The model: where Triton reads the repository, and the storage key when endpointkit fetched it."""
    data = {"repository": _b64(repository_uri), STORAGE_ACCOUNT: _b64(account)}
    if key is not None:
        data[STORAGE_KEY] = _b64(key)
    labels = {**base_labels(endpoint), LABEL_ROLE: "model"}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(name, namespace, labels),
        "type": "Opaque",
        "data": data,
    }


def key_secret(name: str, namespace: str, *, endpoint: str, key: str) -> dict[str, Any]:
    labels = {**base_labels(endpoint), LABEL_ROLE: "api-key"}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(name, namespace, labels),
        "type": "Opaque",
        "data": {"key": _b64(key)},
    }


def config_map(
    name: str, namespace: str, *, endpoint: str, pool: str | None, objects: str, summary: str
) -> dict[str, Any]:
    """The endpoint config: the rendered objects (JSON) that ``update_endpoint`` applies or restores."""
    labels = {**base_labels(endpoint), LABEL_ROLE: "config"}
    if pool is not None:
        labels[LABEL_POOL] = pool
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(name, namespace, labels),
        "data": {"objects.json": objects, "summary.json": summary},
    }


def version_name(endpoint: str, variant: str, template_hash: str) -> str:
    """The name of one variant's version: ``<endpoint>-<variant>-<rev>``, ``rev`` the first 8 hex digits of its pod
    template's hash, the prefix cut so the whole name is a DNS-1035 label of at most 63 characters (the
    Deployment and its Service share it)."""
    revision = template_hash[:REVISION_LENGTH]
    prefix = service_name(f"{endpoint}-{variant}")[: 63 - len(revision) - 1].rstrip("-")
    return f"{prefix}-{revision}"


def deployment(render: EndpointRender, variant: VariantRender) -> dict[str, Any]:
    """The Deployment of one version of one variant, named after its pod template's hash.

    A new template is a new Deployment (and Service) beside the old one, so the routes move traffic between
    versions (blue/green); an unchanged template keeps its Deployment. Only content that defines the version is
    in it: no per-apply stamp, no weight and no tags, which live on the anchor Service and the routes, so a
    change of them never writes a Deployment.
    """
    pod_labels = {**base_labels(render.endpoint), LABEL_VARIANT: variant.name}
    template = {"metadata": {"labels": pod_labels}, "spec": _pod_spec(render, variant)}
    template_hash = content_hash(template)[:10]
    template["metadata"]["labels"] = {**pod_labels, LABEL_TEMPLATE: template_hash}
    # The template label keeps two versions of a variant from selecting each other's pods.
    selector = {LABEL_ENDPOINT: render.endpoint, LABEL_VARIANT: variant.name, LABEL_TEMPLATE: template_hash}
    labels = {
        **base_labels(render.endpoint),
        LABEL_VARIANT: variant.name,
        LABEL_TEMPLATE: template_hash,
        LABEL_ROLE: "endpoint",
    }
    if render.pool is not None and variant.accelerators:
        labels[LABEL_POOL] = render.pool
    annotations = {ANNOTATION_DEFAULT_MODEL: render.default_model} if render.default_model else None
    # Without a spare accelerator, a surge pod could never schedule: replace pods one at a time instead (a
    # rolling update happens only when the template was edited in place, e.g. by hand; a new version is a new
    # Deployment).
    rolling = {"maxSurge": 1, "maxUnavailable": 0} if variant.surge else {"maxSurge": 0, "maxUnavailable": 1}
    name = version_name(render.endpoint, variant.name, template_hash)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, render.namespace, labels, annotations),
        "spec": {
            "replicas": variant.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling},
            "template": template,
        },
    }


def version_selector(obj: Mapping[str, Any]) -> dict[str, str]:
    """The pods of one version: a rendered Deployment's selector (endpoint, variant, template)."""
    return dict(obj["spec"]["selector"]["matchLabels"])


def _pod_spec(render: EndpointRender, variant: VariantRender) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # The NGC Triton image runs as triton-server (uid 1000); the upstream charts set the same.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 30,
        "containers": [_triton_container(render, variant)],
        # The Python backend exchanges tensors through /dev/shm, which container runtimes cap at 64 MiB.
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}],
    }
    if variant.accelerators and render.pool is not None:
        spec["nodeSelector"] = {AGENTPOOL_LABEL: render.pool}
        if render.taint is not None:
            key, value = render.taint
            spec["tolerations"] = [{"key": key, "operator": "Equal", "value": value, "effect": "NoSchedule"}]
    return spec


def _triton_container(render: EndpointRender, variant: VariantRender) -> dict[str, Any]:
    args, env = _triton_command(render)
    memory = variant.memory or _DEFAULT_MEMORY
    # Memory is guaranteed (limit = request); CPU has no limit, as CFS throttling shows up as latency spikes.
    limits: dict[str, Any] = {"memory": memory}
    if variant.accelerators and render.accelerator_resource is not None:
        limits[render.accelerator_resource] = variant.accelerators  # extended resources go in limits
    return {
        "name": "triton",
        "image": render.image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": env,
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": {"requests": {"cpu": _cpu(variant.cpu), "memory": memory}, "limits": limits},
        **_probes(render.startup_seconds),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }


def _triton_command(render: EndpointRender) -> tuple[list[str], list[dict[str, Any]]]:
    """tritonserver's arguments and environment: ports, the model storage and its key, the API key fence."""
    args = [
        "tritonserver",
        f"--model-repository={render.repository_uri}",
        f"--http-port={HTTP_PORT}",
        f"--grpc-port={GRPC_PORT}",
        f"--metrics-port={METRICS_PORT}",
        *SUMMARY_ARGUMENTS,
    ]
    env: list[dict[str, Any]] = [
        {"name": key, "value": value} for key, value in sorted(render.environment.items())
    ]
    env.append({"name": STORAGE_ACCOUNT, "value": render.storage_account})
    env.append(
        {
            "name": STORAGE_KEY,
            "valueFrom": {"secretKeyRef": {"name": render.storage_key_secret, "key": STORAGE_KEY}},
        }
    )
    if render.api_key_secret is not None:
        env.append(
            {
                "name": API_KEY_ENV,
                "valueFrom": {"secretKeyRef": {"name": render.api_key_secret, "key": "key"}},
            }
        )
        # Kubernetes expands $(VAR) in args from the container's env, so the key never sits in the object.
        fence = f"{_RESTRICTED}:{API_KEY_HEADER}=$({API_KEY_ENV})"
        args += [f"--http-restricted-api={fence}", f"--grpc-restricted-protocol={fence}"]
    return args, env


def _probes(startup_seconds: float) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/v2/health/ready", "port": "http"}}
    return {
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        # Large models take minutes to load: liveness waits until the startup probe passed once.
        "startupProbe": {
            **probe,
            "periodSeconds": 10,
            "failureThreshold": max(6, min(360, math.ceil(startup_seconds / 10))),
        },
    }


def service(render: EndpointRender) -> dict[str, Any]:
    """The endpoint's anchor: a ClusterIP Service over every pod of every version (its in-cluster address).

    It is the endpoint's record: it carries the config, key-Secret and tags annotations and the spec-hash and
    expiry labels that status, drift and reap read; traffic from outside comes through the Gateway.
    """
    labels = {**base_labels(render.endpoint), LABEL_ROLE: "endpoint"}
    annotations = {
        **render.user_annotations,
        ANNOTATION_WEIGHTS: json.dumps({v.name: v.weight for v in render.variants}, sort_keys=True),
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(service_name(render.endpoint), render.namespace, labels, annotations),
        "spec": {
            "type": "ClusterIP",
            "selector": {LABEL_ENDPOINT: render.endpoint},
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
            ],
        },
    }


def weights_of(service_object: Mapping[str, Any] | None) -> dict[str, float]:
    """The spec's variant weights the anchor Service records (``ANNOTATION_WEIGHTS``); {} when absent."""
    annotations = ((service_object or {}).get("metadata") or {}).get("annotations") or {}
    try:
        parsed = json.loads(annotations.get(ANNOTATION_WEIGHTS, "{}"))
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {str(k): float(v) for k, v in parsed.items() if isinstance(v, int | float)}


def device_plugin(pool: str) -> dict[str, Any]:
    """The NVIDIA device plugin for one pool, as the AKS GPU guide deploys it, with the pool's toleration."""
    name = f"endpointkit-nvidia-device-plugin-{pool}"
    labels = {
        MANAGED_BY_TAG: MANAGED_BY_VALUE,
        LABEL_POOL: pool,
        "app.kubernetes.io/name": "nvidia-device-plugin",
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _metadata(name, "kube-system", labels),
        "spec": {
            "selector": {"matchLabels": {"name": name}},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": {"name": name, LABEL_POOL: pool}},
                "spec": {
                    "nodeSelector": {AGENTPOOL_LABEL: pool},
                    "tolerations": [
                        {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
                        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                    ],
                    "priorityClassName": "system-node-critical",
                    "containers": [
                        {
                            "name": "nvidia-device-plugin-ctr",
                            "image": DEVICE_PLUGIN_IMAGE,
                            "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"}
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}
                    ],
                },
            },
        },
    }


def stamp(
    obj: Mapping[str, Any], *, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> dict[str, Any]:
    """A copy of ``obj`` with labels and annotations that change per apply (spec hash, expiry, config name).

    Only object metadata changes: the pod template stays the same, so restamping restarts no pod.
    """
    metadata = dict(obj["metadata"])
    metadata["labels"] = {**metadata.get("labels", {}), **labels}
    merged = {**metadata.get("annotations", {}), **annotations}
    if merged:
        metadata["annotations"] = merged
    return {**obj, "metadata": metadata}


def applied_config(obj: Mapping[str, Any] | None) -> str | None:
    """The endpoint config an object was applied from (its ``ANNOTATION_CONFIG``); None for no object."""
    return ((obj or {}).get("metadata", {}).get("annotations") or {}).get(ANNOTATION_CONFIG)


def volatile_labels(spec_hash: str, expiry: datetime | None) -> dict[str, str]:
    labels = {SPEC_HASH_TAG: spec_hash}
    if expiry is not None:
        labels[EXPIRES_AT_TAG] = encode_expiry(expiry)  # label-safe: no ":"
    return labels
