"""The fake cluster's Gateway API (tests/fakes/gateway.py) on its own: the status its controller writes, and the
data plane in front of the programmed Gateways. Objects go in through the real kubernetes client, as the AKS
adapter sends them (server-side apply on the custom objects API)."""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import socket
import ssl
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from endpointkit.payloads import decode_response, encode_request
from tests.fakes import CertificateAuthority, make_certificate_authority
from tests.fakes.gateway import API_VERSION, CONTROLLER, GROUP, FakeGateway
from tests.fakes.kube import FakeKube, NodePool

HOST = "echo.example.test"
APPLY: dict[str, Any] = {
    "field_manager": "endpointkit",
    "force": True,
    "_content_type": "application/apply-patch+yaml",
}
PLURALS = {"Gateway": "gateways", "HTTPRoute": "httproutes", "GRPCRoute": "grpcroutes"}


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return make_certificate_authority(tmp_path_factory.mktemp("tls"))


class Cluster:
    """A started FakeKube and FakeGateway, and the kubernetes client's typed and custom-object APIs on them."""

    def __init__(self, kube: FakeKube, gateway: FakeGateway, api: Any) -> None:
        from kubernetes import client

        self.kube, self.gateway, self.api = kube, gateway, api
        # Any: the generated clients' annotations do not cover _preload_content=False answers
        self.core: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        name, namespace = obj["metadata"]["name"], obj["metadata"].get("namespace", "default")
        if obj["apiVersion"] == API_VERSION:
            response = self.custom.patch_namespaced_custom_object(
                GROUP, "v1", namespace, PLURALS[obj["kind"]], name, obj, _preload_content=False, **APPLY
            )
        else:
            method = {
                "Secret": self.core.patch_namespaced_secret,
                "Service": self.core.patch_namespaced_service,
                "Deployment": self.apps.patch_namespaced_deployment,
            }[obj["kind"]]
            response = method(name, namespace, obj, _preload_content=False, **APPLY)
        result: dict[str, Any] = json.loads(response.data)
        return result

    def read(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any]:
        response = self.custom.get_namespaced_custom_object(
            GROUP, "v1", namespace, PLURALS[kind], name, _preload_content=False
        )
        result: dict[str, Any] = json.loads(response.data)
        return result

    def backend(self, name: str, *, env: dict[str, str] | None = None, replicas: int = 1) -> None:
        """A Deployment and a ClusterIP Service of the same name, its pods ready."""
        self.apply(deployment(name, env=env or {}, replicas=replicas))
        self.apply(service(name))
        for _ in range(5):  # each read is one kubelet observation
            if self.apps.read_namespaced_deployment(name, "default").status.ready_replicas == replicas:
                return
        raise AssertionError(f"{name} did not become ready")


@pytest.fixture
def cluster(authority: CertificateAuthority, tmp_path: Path) -> Iterator[Cluster]:
    from kubernetes import client
    from kubernetes import config as loader

    config: Any = loader
    kube = FakeKube(authority, node_pools=lambda: [NodePool("system", "Standard_NC4as_T4_v3", 2)]).start()
    gateway = FakeGateway(kube, seed=7).start()
    configuration = client.Configuration()
    config.load_kube_config_from_dict(
        config_dict=kube.kubeconfig(), client_configuration=configuration, temp_file_path=str(tmp_path)
    )
    api: Any = client.ApiClient(configuration)
    try:
        yield Cluster(kube, gateway, api)
    finally:
        api.close()
        gateway.stop()
        kube.stop()


# ------------------------------------------------------------------------------------------ objects


def meta(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "labels": {"endpointkit-endpoint": "echo"}}


def deployment(name: str, *, env: dict[str, str], replicas: int = 1) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "triton", "image": "tritonserver:fake"}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "endpointkit-template": "t1"}},
                "spec": {"containers": [container]},
            },
        },
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 8000, "targetPort": 8000}],
        },
    }


def gateway(
    name: str = "echo", *, gateway_class: str = "approuting-istio", tls_secret: str | None = None
) -> dict[str, Any]:
    listener: dict[str, Any] = {"name": "http", "protocol": "HTTP", "port": 80}
    if tls_secret is not None:
        listener = {
            "name": "https",
            "protocol": "HTTPS",
            "port": 443,
            "hostname": HOST,
            "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": tls_secret}]},
        }
    return {
        "apiVersion": API_VERSION,
        "kind": "Gateway",
        "metadata": meta(name),
        "spec": {"gatewayClassName": gateway_class, "listeners": [listener]},
    }


def backend_ref(name: str, weight: int = 1) -> dict[str, Any]:
    return {"kind": "Service", "name": name, "port": 8000, "weight": weight}


def http_route(*rules: dict[str, Any], name: str = "echo", parent: str = "echo") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "HTTPRoute",
        "metadata": meta(name),
        "spec": {"parentRefs": [{"name": parent}], "rules": list(rules)},
    }


def rule(*backends: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    match: dict[str, Any] = {"path": {"type": "PathPrefix", "value": "/"}}
    if version is not None:
        match["headers"] = [{"name": "endpointkit-version", "value": version}]
    return {"matches": [match], "backendRefs": list(backends)}


def tls_secret(name: str, certificate: bytes, key: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(name),
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(certificate).decode(),
            "tls.key": base64.b64encode(key).decode(),
        },
    }


def issue(host: str) -> tuple[bytes, bytes, bytes]:
    """(CA PEM, certificate PEM for ``host`` signed by that CA, key PEM): a fresh CA each call."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"CA for {host}")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return (
        ca.public_bytes(pem),
        leaf.public_bytes(pem),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


# ------------------------------------------------------------------------------------------ requests


def send(
    cluster: Cluster,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    ca: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request to the data plane for HOST: over TLS (verifying against ``ca``, SNI HOST) or plain."""
    port = cluster.gateway.https_port if ca is not None else cluster.gateway.http_port
    sock = socket.create_connection((cluster.gateway.address, port), timeout=30)
    if ca is not None:
        sock = ssl.create_default_context(cadata=ca.decode()).wrap_socket(sock, server_hostname=HOST)
    connection = http.client.HTTPConnection(HOST, timeout=30)
    connection.sock = sock
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def infer(
    cluster: Cluster, values: list[float], *, headers: dict[str, str] | None = None, ca: bytes | None = None
) -> tuple[int, Any]:
    encoded = encode_request({"INPUT0": np.asarray(values, dtype=np.float32)})
    data = b"".join(bytes(part) for part in encoded.body) if isinstance(encoded.body, tuple) else encoded.body
    status, reply, body = send(
        cluster,
        "POST",
        "/v2/models/echo/infer",
        body=bytes(data),
        headers={**encoded.headers, **(headers or {})},
        ca=ca,
    )
    return status, decode_response(body, reply)["OUTPUT0"] if status == 200 else body


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


# ------------------------------------------------------------------------------------------ status


def test_a_gateway_is_pending_until_read_enough_then_programmed_per_generation(cluster: Cluster) -> None:
    cluster.kube.gateway_after_polls = 2
    applied = cluster.apply(gateway())

    assert condition(applied, "Accepted")["status"] == "Unknown"  # the CRD's status default
    assert condition(applied, "Programmed")["reason"] == "Pending"
    assert condition(cluster.read("Gateway", "echo"), "Programmed")["status"] == "Unknown"  # one read
    programmed = cluster.read("Gateway", "echo")  # two reads

    assert condition(programmed, "Accepted")["status"] == "True"
    assert condition(programmed, "Programmed") | {"lastTransitionTime": ""} == {
        "type": "Programmed",
        "status": "True",
        "reason": "Programmed",
        "message": "",
        "observedGeneration": 1,
        "lastTransitionTime": "",
    }
    assert programmed["status"]["addresses"] == [{"type": "IPAddress", "value": cluster.kube.lb_ip}]
    [listener] = programmed["status"]["listeners"]
    assert listener["name"] == "http" and {c["type"]: c["status"] for c in listener["conditions"]} == {
        "Accepted": "True",
        "ResolvedRefs": "True",
        "Programmed": "True",
        "Conflicted": "False",
    }

    changed = gateway()
    changed["spec"]["listeners"][0]["hostname"] = HOST
    cluster.apply(changed)
    stale = cluster.read("Gateway", "echo")
    assert stale["metadata"]["generation"] == 2 and condition(stale, "Programmed")["observedGeneration"] == 1
    assert condition(cluster.read("Gateway", "echo"), "Programmed")["observedGeneration"] == 2


def test_a_class_without_a_controller_leaves_the_gateway_pending(cluster: Cluster) -> None:
    cluster.apply(gateway(gateway_class="not-installed"))
    cluster.apply(http_route(rule(backend_ref("missing"))))

    for _ in range(3):
        pending = cluster.read("Gateway", "echo")
    assert [(c["type"], c["status"], c["reason"]) for c in pending["status"]["conditions"]] == [
        ("Accepted", "Unknown", "Pending"),
        ("Programmed", "Unknown", "Pending"),
    ]
    assert "addresses" not in pending["status"]
    assert cluster.read("HTTPRoute", "echo")["status"] == {"parents": []}  # no controller writes it
    classes = cluster.custom.list_cluster_custom_object(GROUP, "v1", "gatewayclasses")
    assert [(c["metadata"]["name"], c["spec"]["controllerName"]) for c in classes["items"]] == [
        ("approuting-istio", CONTROLLER)
    ]


def test_a_failing_gateway_reports_the_reason_and_gets_no_address(cluster: Cluster) -> None:
    cluster.kube.gateway_failure = ("AddressNotAssigned", "no public IP left in the subscription")
    cluster.apply(gateway())

    failed = cluster.read("Gateway", "echo")

    assert condition(failed, "Accepted")["status"] == "True"
    programmed = condition(failed, "Programmed")
    assert (programmed["status"], programmed["reason"], programmed["message"]) == (
        "False",
        "AddressNotAssigned",
        "no public IP left in the subscription",
    )
    assert "addresses" not in failed["status"]
    cluster.kube.gateway_failure = None
    assert condition(cluster.read("Gateway", "echo"), "Programmed")["status"] == "True"


def test_route_status_names_a_missing_backend_until_it_exists(cluster: Cluster) -> None:
    cluster.apply(gateway())
    cluster.read("Gateway", "echo")
    cluster.apply(http_route(rule(backend_ref("echo-v1"))))

    route = cluster.read("HTTPRoute", "echo")

    [parent] = route["status"]["parents"]
    assert parent["parentRef"] == {"name": "echo"} and parent["controllerName"] == CONTROLLER
    assert condition({"status": parent}, "Accepted")["status"] == "True"
    resolved = condition({"status": parent}, "ResolvedRefs")
    assert (resolved["status"], resolved["reason"]) == ("False", "BackendNotFound")
    assert "default/echo-v1" in resolved["message"] and resolved["observedGeneration"] == 1
    assert cluster.read("Gateway", "echo")["status"]["listeners"][0]["attachedRoutes"] == 1

    cluster.apply(service("echo-v1"))
    [parent] = cluster.read("HTTPRoute", "echo")["status"]["parents"]
    assert condition({"status": parent}, "ResolvedRefs")["status"] == "True"

    grpc = {
        "apiVersion": API_VERSION,
        "kind": "GRPCRoute",
        "metadata": meta("echo"),
        "spec": {
            "parentRefs": [{"name": "echo", "sectionName": "nope"}],
            "rules": [{"backendRefs": [{"name": "echo-v1", "port": 8001}]}],
        },
    }
    cluster.apply(grpc)
    [parent] = cluster.read("GRPCRoute", "echo")["status"]["parents"]
    assert condition({"status": parent}, "Accepted")["reason"] == "NoMatchingParent"


def test_gateway_api_objects_are_validated_listed_and_deleted(cluster: Cluster) -> None:
    from kubernetes.client.exceptions import ApiException

    invalid = http_route(rule(backend_ref("echo-v1", weight=-1)))
    with pytest.raises(ApiException) as refused:
        cluster.apply(invalid)
    assert refused.value.status == 422
    message = json.loads(str(refused.value.body))["message"]
    assert "HTTPRoute" in message and "weight" in message

    cluster.apply(gateway("one"))
    cluster.apply({**gateway("two"), "metadata": {**meta("two"), "labels": {"other": "yes"}}})
    listed = cluster.custom.list_namespaced_custom_object(
        GROUP, "v1", "default", "gateways", label_selector="endpointkit-endpoint=echo"
    )
    assert [g["metadata"]["name"] for g in listed["items"]] == ["one"]
    assert listed["apiVersion"] == API_VERSION
    cluster.custom.delete_namespaced_custom_object(GROUP, "v1", "default", "gateways", "one")
    with pytest.raises(ApiException) as gone:
        cluster.read("Gateway", "one")
    assert gone.value.status == 404
    paths = {(method, path) for method, path, _ in cluster.kube.calls()}
    assert ("PATCH", f"/apis/{API_VERSION}/namespaces/default/gateways/two") in paths
    assert all(c == "application/apply-patch+yaml" for _, _, c in cluster.kube.calls("PATCH"))


# ------------------------------------------------------------------------------------------ data plane


def test_tls_is_served_from_the_listeners_secret_and_a_renewal_at_once(cluster: Cluster) -> None:
    first_ca, certificate, key = issue(HOST)
    cluster.apply(tls_secret("echo-tls", certificate, key))
    cluster.apply(gateway(tls_secret="echo-tls"))
    cluster.backend("echo-v1")
    cluster.apply(http_route(rule(backend_ref("echo-v1"))))
    cluster.read("Gateway", "echo")

    status, outputs = infer(cluster, [1.0, 2.0], ca=first_ca)

    assert status == 200
    np.testing.assert_array_equal(outputs, np.asarray([1.0, 2.0], dtype=np.float32))
    assert cluster.gateway.handshakes[-1].secret == "default/echo-tls"
    assert cluster.gateway.handshakes[-1].server_name == HOST

    second_ca, renewed, renewed_key = issue(HOST)
    cluster.apply(tls_secret("echo-tls", renewed, renewed_key))
    assert send(cluster, "GET", "/v2/health/ready", ca=second_ca)[0] == 200
    with pytest.raises(ssl.SSLCertVerificationError):
        send(cluster, "GET", "/v2/health/ready", ca=first_ca)
    assert send(cluster, "GET", "/v2/health/ready")[0] == 404  # no HTTP listener on port 80


def test_weighted_backends_split_traffic_by_weight_with_the_seeded_rng(cluster: Cluster) -> None:
    cluster.apply(gateway())
    cluster.backend("echo-v1")
    cluster.backend("echo-v2")
    cluster.apply(http_route(rule(backend_ref("echo-v1", 90), backend_ref("echo-v2", 10))))
    cluster.read("Gateway", "echo")
    cluster.gateway.reseed(1)

    picks = Counter(
        cluster.gateway.route(host=HOST, path="/v2/models/echo/infer", tls=False).service for _ in range(1000)
    )

    assert set(picks) == {"echo-v1", "echo-v2"} and 850 <= picks["echo-v1"] <= 950
    for _ in range(20):
        assert infer(cluster, [0.0])[0] == 200
    assert sum(cluster.gateway.answered.values()) == 20
    assert cluster.gateway.answered["echo-v1"] > cluster.gateway.answered["echo-v2"]
    assert cluster.gateway.deployments == cluster.gateway.answered  # each Service fronts its own Deployment


def test_the_header_rule_wins_over_the_path_rule_and_offset_and_failure_answer(cluster: Cluster) -> None:
    cluster.apply(gateway())
    cluster.backend("echo-v1")
    cluster.backend("echo-v2", env={"FAKE_TRITON_OFFSET": "5"})
    cluster.backend("echo-bad", env={"FAKE_TRITON_FAIL": "1"})
    # The preview rules come last: precedence goes to the match with the most header matches, not list order.
    cluster.apply(
        http_route(
            rule(backend_ref("echo-v1")),
            rule(backend_ref("echo-v2"), version="v2"),
            rule(backend_ref("echo-bad"), version="bad"),
        )
    )
    cluster.read("Gateway", "echo")

    status, plain = infer(cluster, [1.0, 2.0])
    assert status == 200
    np.testing.assert_array_equal(plain, np.asarray([1.0, 2.0], dtype=np.float32))
    status, shifted = infer(cluster, [1.0, 2.0], headers={"endpointkit-version": "v2"})
    assert status == 200
    np.testing.assert_array_equal(shifted, np.asarray([6.0, 7.0], dtype=np.float32))
    status, body = infer(cluster, [1.0], headers={"endpointkit-version": "bad"})
    assert status == 500 and b"FAKE_TRITON_FAIL" in body
    assert [r.service for r in cluster.gateway.routed] == ["echo-v1", "echo-v2", "echo-bad"]

    metrics = {}
    for pod in cluster.kube.all("Pod"):
        name = pod["metadata"]["name"]
        text = cluster.core.connect_get_namespaced_pod_proxy_with_path(
            f"{name}:8002", "default", "metrics", _preload_content=False
        ).data.decode()
        metrics[pod["_owner"]] = [
            line for line in text.splitlines() if line.startswith("nv_inference_request_")
        ]
    assert 'nv_inference_request_success{model="echo",version="1"} 1' in metrics["echo-v2"]
    assert 'nv_inference_request_failure{model="echo",reason="BACKEND",version="1"} 1' in metrics["echo-bad"]
    assert 'nv_inference_request_success{model="echo",version="1"} 0' in metrics["echo-bad"]


def test_no_route_no_ready_pod_and_a_missing_endpoint_key_are_refused(cluster: Cluster) -> None:
    cluster.apply(gateway())
    cluster.apply(http_route(rule(backend_ref("echo-v1"))))
    cluster.read("Gateway", "echo")
    assert send(cluster, "GET", "/v2/health/ready")[0] == 500  # the backend Service does not exist

    cluster.kube.ready_after_polls = 10_000
    cluster.apply(deployment("echo-v1", env={}))
    cluster.apply(service("echo-v1"))
    status, _, body = send(cluster, "GET", "/v2/health/ready")
    assert status == 503 and b"no healthy upstream" in body

    cluster.kube.ready_after_polls = 0
    cluster.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta("key"), "data": {"key": "czNjcjN0"}}
    )
    keyed = deployment("echo-v1", env={})
    container = keyed["spec"]["template"]["spec"]["containers"][0]
    container["args"] = ["--http-restricted-api=inference:endpointkit-key=$(ENDPOINT_KEY)"]
    container["env"] = [
        {"name": "ENDPOINT_KEY", "valueFrom": {"secretKeyRef": {"name": "key", "key": "key"}}}
    ]
    keyed["spec"]["template"]["metadata"]["labels"]["endpointkit-template"] = "t2"
    cluster.apply(keyed)
    cluster.apps.read_namespaced_deployment("echo-v1", "default")
    assert send(cluster, "GET", "/v2/health/ready")[0] == 200
    assert infer(cluster, [1.0])[0] == 403
    assert infer(cluster, [1.0], headers={"endpointkit-key": "s3cr3t"})[0] == 200
    assert send(cluster, "GET", "/v2/health/ready", headers={"Host": "other.example.test"})[0] == 200

    cluster.custom.delete_namespaced_custom_object(GROUP, "v1", "default", "httproutes", "echo")
    status, _, body = send(cluster, "GET", "/v2/health/ready")
    assert status == 404 and b"no route" in body
