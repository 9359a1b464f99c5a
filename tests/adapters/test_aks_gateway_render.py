"""Gateway API objects of an AKS endpoint: pure rendering, checked against the vendored CRD schemas.

Gateway, HTTPRoute and GRPCRoute are validated with ``tests.gateway_schemas`` (Gateway API standard channel);
the Service and Secret with kubernetes-validate in strict mode, like ``test_aks_render.py``. The CEL rules the
schema validator cannot run are checked by hand where the rendered objects depend on them.
"""

from __future__ import annotations

import base64
import copy
import math
import re
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

from endpointkit.adapters.aks import _gateway, _render
from endpointkit.adapters.aks._gateway import Backend, GatewayStatus, RouteStatus
from tests.gateway_schemas import cel_rules, validate_gateway_object

VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
NAMESPACE = "inference"
GATEWAY_REF = (NAMESPACE, "resnet")
LABELS = _render.base_labels("resnet")
HOST = "resnet-1a2b3c4d.eastus.cloudapp.azure.com"
# https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftnetwork
AZURE_DNS_LABEL = re.compile(r"^[a-z][a-z0-9-]{1,61}[a-z0-9]$")
WHERE = {
    "subscription_id": "0000-1111",
    "resource_group": "ml-rg",
    "cluster": "aks-gpu",
    "namespace": NAMESPACE,
}


def public_gateway(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "gateway_class": "approuting-istio",
        "hostname": HOST,
        "tls_secret": "resnet-tls",
        "exposure": "public",
        "dns_label": "resnet-1a2b3c4d",
        "labels": LABELS,
    }
    return _gateway.gateway("resnet", NAMESPACE, **(arguments | overrides))


def internal_gateway() -> dict[str, Any]:
    return public_gateway(exposure="internal", dns_label=None, hostname="triton.corp.example.com")


def plain_http_gateway() -> dict[str, Any]:
    return public_gateway(tls_secret=None)


PREVIEW = ("v2", [Backend("resnet-v2", 1)])


def route(render: Callable[..., dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    weights = _gateway.integer_weights({"resnet-primary": 90, "resnet-canary": 10})
    arguments: dict[str, Any] = {
        "gateway": GATEWAY_REF,
        "section": "https",
        "hostnames": [HOST],
        "backends": [Backend(name, weight) for name, weight in weights.items()],
        "preview": None,
        "labels": LABELS,
    }
    return render("resnet", NAMESPACE, **(arguments | overrides))


def variant_service() -> dict[str, Any]:
    selector = {_render.LABEL_ENDPOINT: "resnet", _render.LABEL_VARIANT: "primary"}
    return _gateway.variant_service("resnet-primary", NAMESPACE, selector=selector, labels=LABELS)


def tls_secret(ca_pem: str | None = "CA PEM\n") -> dict[str, Any]:
    return _gateway.tls_secret(
        "resnet-tls",
        NAMESPACE,
        certificate_pem="CERT PEM\n",
        key_pem="KEY PEM\n",
        ca_pem=ca_pem,
        labels=LABELS,
    )


def gateway_api_objects() -> dict[str, dict[str, Any]]:
    return {
        "gateway-public-tls": public_gateway(),
        "gateway-public-no-dns-label": public_gateway(dns_label=None, hostname=None),
        "gateway-internal": internal_gateway(),
        "gateway-tls-off": plain_http_gateway(),
        "http-route": route(_gateway.http_route),
        "http-route-preview": route(_gateway.http_route, preview=PREVIEW),
        "http-route-no-section-no-hostname": route(_gateway.http_route, section=None, hostnames=[]),
        "grpc-route": route(_gateway.grpc_route),
        "grpc-route-preview": route(_gateway.grpc_route, preview=PREVIEW),
    }


# --- every object is valid -------------------------------------------------------------------------------


@pytest.mark.parametrize("which", sorted(gateway_api_objects()))
def test_gateway_api_objects_validate_against_the_vendored_crds(which: str) -> None:
    validate_gateway_object(gateway_api_objects()[which])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("make", [variant_service, tls_secret, lambda: tls_secret(ca_pem=None)])
def test_core_objects_validate_strictly(make: Callable[[], dict[str, Any]], version: str) -> None:
    kubernetes_validate.validate(make(), version, strict=True)


def test_objects_carry_exactly_the_callers_labels_and_annotations() -> None:
    annotations = {"team": "vision"}
    objects = [
        public_gateway(annotations=annotations),
        route(_gateway.http_route, annotations=annotations),
        route(_gateway.grpc_route, annotations=annotations),
        _gateway.variant_service("s", NAMESPACE, selector={"a": "b"}, labels=LABELS, annotations=annotations),
        _gateway.tls_secret(
            "t",
            NAMESPACE,
            certificate_pem="c",
            key_pem="k",
            ca_pem=None,
            labels=LABELS,
            annotations=annotations,
        ),
    ]
    for obj in objects:
        assert obj["metadata"]["labels"] == LABELS
        assert obj["metadata"]["annotations"] == annotations
        assert obj["metadata"]["namespace"] == NAMESPACE
    assert "annotations" not in public_gateway()["metadata"]


# --- the validator has teeth ------------------------------------------------------------------------------


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        target = obj
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _delete(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        target = obj
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


def _duplicate_listener(obj: dict[str, Any]) -> None:
    obj["spec"]["listeners"].append(copy.deepcopy(obj["spec"]["listeners"][0]))


BROKEN = {
    "negative weight": (
        route(_gateway.http_route),
        _set(["spec", "rules", 0, "backendRefs", 0, "weight"], -1),
        r"spec\.rules\[0\]\.backendRefs\[0\]\.weight: -1 is less than the minimum of 0",
    ),
    "weight above a million": (
        route(_gateway.grpc_route),
        _set(["spec", "rules", 0, "backendRefs", 1, "weight"], 1_000_001),
        r"spec\.rules\[0\]\.backendRefs\[1\]\.weight: 1000001 is greater than the maximum",
    ),
    "listener without a name": (
        public_gateway(),
        _delete(["spec", "listeners", 0, "name"]),
        r"spec\.listeners\[0\]: 'name' is a required property",
    ),
    "two listeners of one name": (
        public_gateway(),
        _duplicate_listener,
        r"spec\.listeners\[1\]: duplicate key",
    ),
    "unknown field": (
        public_gateway(),
        _set(["spec", "listeners", 0, "hostnmae"], HOST),
        r"spec\.listeners\[0\]: Additional properties are not allowed \('hostnmae'",
    ),
    "tls mode outside the enum": (
        public_gateway(),
        _set(["spec", "listeners", 0, "tls", "mode"], "Reencrypt"),
        r"spec\.listeners\[0\]\.tls\.mode: 'Reencrypt' is not one of",
    ),
    "header match type outside the enum": (
        route(_gateway.http_route, preview=PREVIEW),
        _set(["spec", "rules", 0, "matches", 0, "headers", 0, "type"], "Prefix"),
        r"spec\.rules\[0\]\.matches\[0\]\.headers\[0\]\.type: 'Prefix' is not one of",
    ),
    "port zero": (
        route(_gateway.http_route),
        _set(["spec", "rules", 0, "backendRefs", 0, "port"], 0),
        r"backendRefs\[0\]\.port: 0 is less than the minimum of 1",
    ),
    "hostname with capitals": (
        route(_gateway.grpc_route),
        _set(["spec", "hostnames", 0], "Resnet.example.com"),
        r"spec\.hostnames\[0\]: 'Resnet\.example\.com' does not match",
    ),
    "seventeen backends": (
        route(_gateway.http_route),
        _set(["spec", "rules", 0, "backendRefs"], [{"name": f"s{i}", "port": 8000} for i in range(17)]),
        r"spec\.rules\[0\]\.backendRefs: .* is too long",
    ),
    "weight as a string": (
        route(_gateway.http_route),
        _set(["spec", "rules", 0, "backendRefs", 0, "weight"], "90"),
        r"weight: '90' is not of type 'integer'",
    ),
    "label key with a space": (
        public_gateway(),
        _set(["metadata", "labels"], {"bad key": "x"}),
        r"metadata\.labels: 'bad key': name 'bad key' is not a qualified name",
    ),
    "capitalized name": (
        public_gateway(),
        _set(["metadata", "name"], "Resnet"),
        r"metadata\.name: 'Resnet' is not a DNS subdomain",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_validator_catches_a_schema_violation(case: str) -> None:
    valid, break_it, message = BROKEN[case]
    broken = copy.deepcopy(valid)
    validate_gateway_object(valid)
    break_it(broken)
    with pytest.raises(AssertionError, match=message):
        validate_gateway_object(broken)


def test_the_validator_refuses_a_kind_it_has_no_schema_for() -> None:
    gateway = public_gateway()
    gateway["apiVersion"] = "gateway.networking.k8s.io/v1alpha2"
    with pytest.raises(
        AssertionError, match="no vendored schema for gateway.networking.k8s.io/v1alpha2 Gateway"
    ):
        validate_gateway_object(gateway)


# --- the CEL rules the validator skips, checked by hand ---------------------------------------------------


def _cel_regex(kind: str, rule_fragment: str) -> re.Pattern[str]:
    """The regular expression inside the vendored CEL rule that contains ``rule_fragment``."""
    rules = [rule for rule in cel_rules("gateway.networking.k8s.io/v1", kind) if rule_fragment in rule]
    assert rules, f"the vendored {kind} CRD has no CEL rule with {rule_fragment!r}"
    found = re.search(r'r"""(.*?)"""', rules[0])
    assert found is not None
    pattern = found.group(1)
    # RE2 takes ``^(?i)...``; Python wants a global flag first, so it moves to the flags argument
    flags = re.IGNORECASE if "(?i)" in pattern else 0
    return re.compile(pattern.replace("(?i)", ""), flags)


def test_listeners_keep_the_tls_cel_rules() -> None:
    rules = cel_rules("gateway.networking.k8s.io/v1", "Gateway")
    assert any("l.protocol in ['HTTP', 'TCP', 'UDP'] ? !has(l.tls)" in rule for rule in rules)
    assert any("size(self.certificateRefs) > 0" in rule for rule in rules)
    (plain,) = plain_http_gateway()["spec"]["listeners"]
    assert "tls" not in plain
    (secure,) = public_gateway()["spec"]["listeners"]
    assert secure["tls"]["mode"] == "Terminate"
    assert secure["tls"]["certificateRefs"]


def test_infrastructure_annotation_keys_keep_the_cel_rule() -> None:
    key_rule = _cel_regex("Gateway", "key.matches(")
    for gateway in (public_gateway(), internal_gateway()):
        for key in gateway["spec"]["infrastructure"]["annotations"]:
            assert key_rule.fullmatch(key), key


def test_backend_refs_keep_the_port_cel_rule() -> None:
    for kind in ("HTTPRoute", "GRPCRoute"):
        assert any("has(self.port)" in rule for rule in cel_rules("gateway.networking.k8s.io/v1", kind))
    for render in (_gateway.http_route, _gateway.grpc_route):
        for rule in route(render, preview=PREVIEW)["spec"]["rules"]:
            assert all(
                ref["kind"] == "Service" and ref["group"] == "" and ref["port"] for ref in rule["backendRefs"]
            )


def test_http_paths_and_grpc_services_keep_their_cel_rules() -> None:
    path_characters = _cel_regex("HTTPRoute", "self.value.matches(")
    for rule in route(_gateway.http_route, preview=PREVIEW)["spec"]["rules"]:
        value = rule["matches"][0]["path"]["value"]
        assert value.startswith("/") and path_characters.fullmatch(value)
    service_name = _cel_regex("GRPCRoute", "self.service.matches(")
    for rule in route(_gateway.grpc_route, preview=PREVIEW)["spec"]["rules"]:
        assert service_name.fullmatch(rule["matches"][0]["method"]["service"])


# --- Gateway ----------------------------------------------------------------------------------------------


def test_tls_gateway_terminates_https_on_443_with_the_secret() -> None:
    gateway = public_gateway()
    assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert gateway["spec"]["gatewayClassName"] == "approuting-istio"
    assert gateway["spec"]["listeners"] == [
        {
            "name": "https",
            "protocol": "HTTPS",
            "port": 443,
            "hostname": HOST,
            "tls": {
                "mode": "Terminate",
                "certificateRefs": [{"group": "", "kind": "Secret", "name": "resnet-tls"}],
            },
            "allowedRoutes": {"namespaces": {"from": "Same"}},
        }
    ]


def test_gateway_with_tls_off_listens_for_http_on_80() -> None:
    (listener,) = plain_http_gateway()["spec"]["listeners"]
    assert (listener["name"], listener["protocol"], listener["port"]) == ("http", "HTTP", 80)
    assert listener["allowedRoutes"] == {"namespaces": {"from": "Same"}}


def test_listener_without_hostname_answers_any_name() -> None:
    (listener,) = public_gateway(hostname=None)["spec"]["listeners"]
    assert "hostname" not in listener


def test_public_gateway_puts_the_azure_dns_label_on_its_load_balancer() -> None:
    infrastructure = public_gateway()["spec"]["infrastructure"]
    assert infrastructure == {
        "annotations": {"service.beta.kubernetes.io/azure-dns-label-name": "resnet-1a2b3c4d"}
    }


def test_public_gateway_without_dns_label_sets_no_infrastructure() -> None:
    assert "infrastructure" not in public_gateway(dns_label=None)["spec"]


def test_internal_gateway_asks_for_an_internal_load_balancer() -> None:
    infrastructure = internal_gateway()["spec"]["infrastructure"]
    assert infrastructure == {
        "annotations": {"service.beta.kubernetes.io/azure-load-balancer-internal": "true"}
    }


def test_internal_gateway_refuses_a_dns_label() -> None:
    with pytest.raises(ValueError, match="internal load balancer has no public IP"):
        public_gateway(exposure="internal", dns_label="resnet-1a2b3c4d")


# --- routes -----------------------------------------------------------------------------------------------


def test_http_route_splits_every_path_90_10_on_the_http_port() -> None:
    spec = route(_gateway.http_route)["spec"]
    assert spec["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "namespace": NAMESPACE,
            "name": "resnet",
            "sectionName": "https",
        }
    ]
    assert spec["hostnames"] == [HOST]
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    refs = {ref["name"]: (ref["port"], ref["weight"]) for ref in rule["backendRefs"]}
    assert refs == {"resnet-primary": (8000, 900), "resnet-canary": (8000, 100)}


def test_route_without_section_or_hostnames_leaves_them_out() -> None:
    spec = route(_gateway.http_route, section=None, hostnames=[])["spec"]
    assert "sectionName" not in spec["parentRefs"][0]
    assert "hostnames" not in spec


def test_http_preview_rule_comes_first_and_reaches_only_the_preview_backends() -> None:
    preview, everyone = route(_gateway.http_route, preview=PREVIEW)["spec"]["rules"]
    assert preview["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [{"type": "Exact", "name": _gateway.VERSION_HEADER, "value": "v2"}],
        }
    ]
    assert [(ref["name"], ref["port"]) for ref in preview["backendRefs"]] == [("resnet-v2", 8000)]
    assert {ref["name"] for ref in everyone["backendRefs"]} == {"resnet-primary", "resnet-canary"}
    assert "headers" not in everyone["matches"][0]


def test_grpc_route_matches_the_triton_inference_service_on_the_grpc_port() -> None:
    spec = route(_gateway.grpc_route)["spec"]
    assert spec["parentRefs"][0]["name"] == "resnet"
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"method": {"type": "Exact", "service": "inference.GRPCInferenceService"}}]
    assert {ref["name"]: (ref["port"], ref["weight"]) for ref in rule["backendRefs"]} == {
        "resnet-primary": (8001, 900),
        "resnet-canary": (8001, 100),
    }


def test_grpc_preview_rule_matches_the_service_and_the_version_header() -> None:
    preview, everyone = route(_gateway.grpc_route, preview=PREVIEW)["spec"]["rules"]
    assert preview["matches"] == [
        {
            "method": {"type": "Exact", "service": "inference.GRPCInferenceService"},
            "headers": [{"type": "Exact", "name": "endpointkit-version", "value": "v2"}],
        }
    ]
    assert [(ref["name"], ref["port"]) for ref in preview["backendRefs"]] == [("resnet-v2", 8001)]
    assert "headers" not in everyone["matches"][0]


def test_rules_do_not_share_mutable_parts() -> None:
    preview, everyone = route(_gateway.http_route, preview=PREVIEW)["spec"]["rules"]
    preview["matches"][0]["path"]["value"] = "/changed"
    assert everyone["matches"][0]["path"]["value"] == "/"


@pytest.mark.parametrize("render", [_gateway.http_route, _gateway.grpc_route])
def test_route_refuses_a_rule_without_backends(render: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="at least one backend"):
        route(render, backends=[])
    with pytest.raises(ValueError, match="at least one backend"):
        route(render, preview=("v2", []))


def test_route_refuses_an_empty_preview_version() -> None:
    with pytest.raises(ValueError, match="preview version is empty"):
        route(_gateway.http_route, preview=("", [Backend("resnet-v2", 1)]))


@pytest.mark.parametrize("weight", [-1, 1_000_001])
def test_backend_weight_stays_within_the_gateway_api_bounds(weight: int) -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.1000000"):
        Backend("resnet-primary", weight)


# --- Service and Secret -----------------------------------------------------------------------------------


def test_variant_service_is_cluster_ip_with_h2c_on_the_grpc_port() -> None:
    service = variant_service()
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {_render.LABEL_ENDPOINT: "resnet", _render.LABEL_VARIANT: "primary"}
    ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert ports["http"] == {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    assert ports["grpc"] == {
        "name": "grpc",
        "port": 8001,
        "targetPort": "grpc",
        "protocol": "TCP",
        "appProtocol": "kubernetes.io/h2c",
    }


def test_tls_secret_holds_the_chain_key_and_ca_base64() -> None:
    secret = tls_secret()
    assert secret["type"] == "kubernetes.io/tls"
    decoded = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert decoded == {"tls.crt": "CERT PEM\n", "tls.key": "KEY PEM\n", "ca.crt": "CA PEM\n"}


def test_tls_secret_without_ca_has_no_ca_entry() -> None:
    assert set(tls_secret(ca_pem=None)["data"]) == {"tls.crt", "tls.key"}


# --- integer weights --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shares", [{"a": 90, "b": 10}, {"a": 0.9, "b": 0.1}, {"a": 9e-6, "b": 1e-6}])
def test_ninety_ten_is_exactly_nine_to_one_at_any_scale(shares: dict[str, float]) -> None:
    weights = _gateway.integer_weights(shares)
    assert weights == {"a": 900, "b": 100}
    assert weights["a"] == 9 * weights["b"]


def test_equal_shares_get_equal_weights() -> None:
    assert _gateway.integer_weights({"a": 1, "b": 1, "c": 1}) == {"a": 333, "b": 333, "c": 333}


def test_a_zero_share_stays_zero() -> None:
    assert _gateway.integer_weights({"old": 0, "new": 5}) == {"old": 0, "new": 1000}


def test_a_tiny_positive_share_never_becomes_zero() -> None:
    weights = _gateway.integer_weights({"big": 1.0, "tiny": 1e-9})
    assert weights["tiny"] >= 1
    assert sum(weights.values()) == _gateway.WEIGHT_TOTAL


def test_shares_without_a_small_exact_ratio_round_by_largest_remainder() -> None:
    shares = {"a": math.pi, "b": math.e, "c": math.sqrt(2)}
    weights = _gateway.integer_weights(shares)
    total = sum(shares.values())
    assert sum(weights.values()) == _gateway.WEIGHT_TOTAL
    for name, share in shares.items():
        assert abs(weights[name] - share / total * _gateway.WEIGHT_TOTAL) < 1


def test_ties_are_broken_by_name_whatever_the_order_given() -> None:
    # pi : pi : 1 has no small exact ratio; b and a tie for the one unit left after rounding down
    shares = {"c": 1.0, "b": math.pi, "a": math.pi}
    forward = _gateway.integer_weights(shares)
    backward = _gateway.integer_weights(dict(reversed(shares.items())))
    assert forward == backward == {"a": 432, "b": 431, "c": 137}


def test_exact_ratios_keep_their_proportion() -> None:
    weights = _gateway.integer_weights({"a": 3, "b": 7, "c": 11})
    assert weights["b"] * 3 == weights["a"] * 7 and weights["c"] * 3 == weights["a"] * 11
    assert sum(weights.values()) <= _gateway.WEIGHT_TOTAL


@pytest.mark.parametrize(
    ("shares", "message"),
    [
        ({"a": -1, "b": 2}, "not negative"),
        ({"a": math.nan}, "finite"),
        ({"a": math.inf}, "finite"),
        ({"a": 0, "b": 0}, "sum to 0"),
        ({}, "sum to 0"),
    ],
)
def test_integer_weights_refuse_shares_with_no_proportion(shares: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _gateway.integer_weights(shares)


@pytest.mark.parametrize(
    "shares", [{"a": 1e-300, "b": 1e300}, {"a": 1e308, "b": 1e308}, {"a": 5e-324, "b": 1.0}]
)
def test_shares_at_the_float_limits_keep_their_proportions_and_their_traffic(
    shares: dict[str, float],
) -> None:
    weights = _gateway.integer_weights(shares)
    assert all(weight >= 1 for weight in weights.values())
    assert sum(weights.values()) <= _gateway.WEIGHT_TOTAL
    if shares["a"] == shares["b"]:
        assert weights["a"] == weights["b"]


def test_integer_weights_are_valid_backend_weights() -> None:
    for shares in ({"a": 1}, {"a": 1e-300, "b": 1e300}, {"a": 0.5, "b": 0.25, "c": 0.25}):
        for name, weight in _gateway.integer_weights(shares).items():
            Backend(name, weight)


# --- status readers ---------------------------------------------------------------------------------------


def condition(
    kind: str, status: str, *, generation: int | None = 2, reason: str = "R", message: str = "M"
) -> dict[str, Any]:
    found: dict[str, Any] = {"type": kind, "status": status, "reason": reason, "message": message}
    if generation is not None:
        found["observedGeneration"] = generation
    return found


def gateway_object(*conditions: dict[str, Any], addresses: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "metadata": {"name": "resnet", "namespace": NAMESPACE, "generation": 2},
        "status": {
            "conditions": list(conditions),
            "addresses": [{"type": "IPAddress", "value": a} for a in addresses],
        },
    }


def test_no_gateway_is_not_programmed() -> None:
    assert _gateway.gateway_status(None) == GatewayStatus(False, None, None, ())


def test_gateway_without_status_is_not_programmed() -> None:
    assert _gateway.gateway_status({"metadata": {"generation": 1}}) == GatewayStatus(False, None, None, ())


def test_programmed_gateway_reports_its_addresses() -> None:
    obj = gateway_object(
        condition("Accepted", "True"),
        condition("Programmed", "True", reason="Programmed"),
        addresses=("20.1.2.3",),
    )
    assert _gateway.gateway_status(obj) == GatewayStatus(True, "Programmed", "M", ("20.1.2.3",))


def test_programmed_condition_of_an_older_generation_does_not_count() -> None:
    obj = gateway_object(condition("Programmed", "True", generation=1), addresses=("20.1.2.3",))
    assert _gateway.gateway_status(obj) == GatewayStatus(False, None, None, ("20.1.2.3",))


def test_condition_without_observed_generation_counts() -> None:
    obj = gateway_object(condition("Programmed", "True", generation=None))
    assert _gateway.gateway_status(obj).programmed


def test_gateway_not_accepted_is_not_programmed_and_says_why() -> None:
    obj = gateway_object(
        condition("Accepted", "False", reason="InvalidParameters", message="no such class"),
        condition("Programmed", "True"),
    )
    assert _gateway.gateway_status(obj) == GatewayStatus(False, "InvalidParameters", "no such class", ())


def test_stale_rejection_does_not_hide_a_current_programmed() -> None:
    obj = gateway_object(condition("Accepted", "False", generation=1), condition("Programmed", "True"))
    assert _gateway.gateway_status(obj).programmed


def test_gateway_not_programmed_passes_the_reason_on() -> None:
    obj = gateway_object(
        condition("Accepted", "True"),
        condition("Programmed", "False", reason="AddressNotAssigned", message="pending"),
    )
    assert _gateway.gateway_status(obj) == GatewayStatus(False, "AddressNotAssigned", "pending", ())


def route_object(*parents: dict[str, Any], generation: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": "resnet", "namespace": NAMESPACE, "generation": generation},
        "status": {"parents": list(parents)},
    }


def parent(
    *conditions: dict[str, Any], name: str = "resnet", namespace: str | None = NAMESPACE
) -> dict[str, Any]:
    ref: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": name}
    if namespace is not None:
        ref["namespace"] = namespace
    return {"parentRef": ref, "controllerName": "istio.io/gateway-controller", "conditions": list(conditions)}


def test_route_accepted_with_refs_resolved() -> None:
    obj = route_object(parent(condition("Accepted", "True"), condition("ResolvedRefs", "True")))
    assert _gateway.route_status(obj, GATEWAY_REF) == RouteStatus(True, True, None, None)


def test_route_with_a_missing_backend_is_accepted_but_not_resolved() -> None:
    obj = route_object(
        parent(
            condition("Accepted", "True"),
            condition("ResolvedRefs", "False", reason="BackendNotFound", message="resnet-v2 not found"),
        )
    )
    assert _gateway.route_status(obj, GATEWAY_REF) == RouteStatus(
        True, False, "BackendNotFound", "resnet-v2 not found"
    )


def test_route_rejected_reports_the_accepted_reason_first() -> None:
    obj = route_object(
        parent(
            condition("Accepted", "False", reason="NotAllowedByListeners"),
            condition("ResolvedRefs", "False", reason="BackendNotFound"),
        )
    )
    assert _gateway.route_status(obj, GATEWAY_REF) == RouteStatus(False, False, "NotAllowedByListeners", "M")


def test_route_status_from_another_gateway_does_not_count() -> None:
    obj = route_object(parent(condition("Accepted", "True"), condition("ResolvedRefs", "True"), name="other"))
    assert _gateway.route_status(obj, GATEWAY_REF) == RouteStatus(False, False, None, None)


def test_route_parent_ref_without_namespace_means_the_routes_own() -> None:
    obj = route_object(
        parent(condition("Accepted", "True"), condition("ResolvedRefs", "True"), namespace=None)
    )
    assert _gateway.route_status(obj, GATEWAY_REF).accepted
    assert not _gateway.route_status(obj, ("elsewhere", "resnet")).accepted


def test_route_conditions_of_an_older_generation_do_not_count() -> None:
    obj = route_object(
        parent(condition("Accepted", "True", generation=2), condition("ResolvedRefs", "True", generation=2)),
        generation=3,
    )
    assert _gateway.route_status(obj, GATEWAY_REF) == RouteStatus(False, False, None, None)


def test_route_is_accepted_only_when_every_entry_for_the_gateway_is() -> None:
    obj = route_object(
        parent(condition("Accepted", "True"), condition("ResolvedRefs", "True")),
        parent(
            condition("Accepted", "False", reason="NoMatchingListenerHostname"),
            condition("ResolvedRefs", "True"),
        ),
    )
    assert _gateway.route_status(obj, GATEWAY_REF) == RouteStatus(
        False, True, "NoMatchingListenerHostname", "M"
    )


def test_no_route_is_neither_accepted_nor_resolved() -> None:
    assert _gateway.route_status(None, GATEWAY_REF) == RouteStatus(False, False, None, None)


# --- Azure DNS label --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint",
    ["resnet", "r", "1resnet", "ResNet_50.v2", "a" * 63, "x-" * 40, "---", "9", "bert-large-uncased"],
)
def test_dns_label_follows_azures_rule(endpoint: str) -> None:
    label = _gateway.dns_label(endpoint, **WHERE)
    assert AZURE_DNS_LABEL.fullmatch(label), label
    assert "--" not in label


def test_dns_label_starts_with_the_endpoint_and_is_stable() -> None:
    label = _gateway.dns_label("resnet", **WHERE)
    assert re.fullmatch(r"resnet-[0-9a-f]{8}", label)
    assert _gateway.dns_label("resnet", **WHERE) == label


@pytest.mark.parametrize("field", sorted(WHERE))
def test_dns_label_differs_where_the_endpoint_runs_differs(field: str) -> None:
    elsewhere = WHERE | {field: WHERE[field] + "x"}
    assert _gateway.dns_label("resnet", **elsewhere) != _gateway.dns_label("resnet", **WHERE)


def test_dns_label_ignores_the_case_of_azure_names() -> None:
    shouting = WHERE | {
        "subscription_id": "0000-1111".upper(),
        "resource_group": "ML-RG",
        "cluster": "AKS-GPU",
    }
    assert _gateway.dns_label("resnet", **shouting) == _gateway.dns_label("resnet", **WHERE)


def test_azure_dns_name_is_label_region_cloudapp() -> None:
    label = _gateway.dns_label("resnet", **WHERE)
    assert _gateway.azure_dns_name(label, "eastus") == f"{label}.eastus.cloudapp.azure.com"
    assert _gateway.azure_dns_name(label, "East US") == f"{label}.eastus.cloudapp.azure.com"
    assert _gateway.azure_dns_name(label, "usgovvirginia", zone="cloudapp.usgovcloudapi.net").endswith(
        ".usgovvirginia.cloudapp.usgovcloudapi.net"
    )


@pytest.mark.parametrize("label", ["1resnet", "Resnet", "re", "resnet-", "a" * 64])
def test_azure_dns_name_refuses_a_label_azure_would_refuse(label: str) -> None:
    with pytest.raises(ValueError, match="not an Azure DNS label"):
        _gateway.azure_dns_name(label, "eastus")
