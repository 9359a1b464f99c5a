"""Validate Gateway API objects against the vendored standard-channel CRDs in ``tests/schemas/gateway-api``.

What is checked, as the API server would for ``kubectl apply`` (field validation Strict, kubectl's default):

- the ``openAPIV3Schema`` of the CRD version the object's ``apiVersion`` names: types, enums, required fields,
  min/max items, lengths, bounds and patterns;
- unknown fields, which a structural schema would prune and strict field validation rejects: every object
  schema with ``properties`` is closed (``additionalProperties: false``) unless it preserves unknown fields;
- ``x-kubernetes-list-type: map`` (entries unique by their ``x-kubernetes-list-map-keys``) and ``set``;
- ``metadata``, which CRD schemas leave open: name, namespace, label and annotation syntax
  (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/, .../labels/#syntax-and-character-set,
  .../annotations/#syntax-and-character-set).

What is not: ``x-kubernetes-validations``. Those rules are CEL expressions
(https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation-rules)
and jsonschema cannot evaluate CEL, so they are dropped here; tests that depend on one state it themselves.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml

__all__ = ["GATEWAY_API_VERSION", "SCHEMA_DIR", "cel_rules", "schema_for", "validate_gateway_object"]

GATEWAY_API_VERSION = "v1.6.1"
SCHEMA_DIR = Path(__file__).parent / "schemas" / "gateway-api" / GATEWAY_API_VERSION

_CEL = "x-kubernetes-validations"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ANNOTATIONS_MAX_BYTES = 256 * 1024


def validate_gateway_object(obj: Mapping[str, Any]) -> None:
    """Raise AssertionError naming every problem (``kind/name: path: message``) if ``obj`` is not valid."""
    kind, name = obj.get("kind"), (obj.get("metadata") or {}).get("name")
    problems = [f"{path}: {message}" for path, message in _problems(obj)]
    if problems:
        raise AssertionError(f"{kind}/{name} is not valid:\n  " + "\n  ".join(problems))


def schema_for(api_version: str, kind: str) -> dict[str, Any]:
    """The structural schema (CEL rules dropped, objects closed) of a served ``apiVersion``/``kind``."""
    try:
        return _schemas()[(api_version, kind)][0]
    except KeyError:
        known = ", ".join(f"{a} {k}" for a, k in sorted(_schemas()))
        raise AssertionError(f"no vendored schema for {api_version} {kind} (have: {known})") from None


def cel_rules(api_version: str, kind: str) -> list[str]:
    """The CEL rules of that schema, which this validator does not run (for tests that check them by hand)."""
    schema_for(api_version, kind)
    return list(_schemas()[(api_version, kind)][1])


def _problems(obj: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    schema = schema_for(str(obj.get("apiVersion")), str(obj.get("kind")))
    validator = _Validator(schema)
    for error in sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path]):
        yield _dotted(error.absolute_path), error.message
    yield from _metadata_problems(obj.get("metadata"))


@functools.cache
def _schemas() -> dict[tuple[str, str], tuple[dict[str, Any], tuple[str, ...]]]:
    schemas: dict[tuple[str, str], tuple[dict[str, Any], tuple[str, ...]]] = {}
    for path in sorted(SCHEMA_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                rules: list[str] = []
                structural = _structural(version["schema"]["openAPIV3Schema"], rules)
                schemas[(f"{group}/{version['name']}", kind)] = (structural, tuple(rules))
    return schemas


def _structural(schema: Any, rules: list[str]) -> Any:
    """A copy with CEL rules moved out to ``rules`` and objects with declared properties closed."""
    if isinstance(schema, list):
        return [_structural(item, rules) for item in schema]
    if not isinstance(schema, dict):
        return schema
    copy = {key: _structural(value, rules) for key, value in schema.items() if key != _CEL}
    rules.extend(str(rule["rule"]) for rule in schema.get(_CEL, ()))
    open_object = schema.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in schema
    if "properties" in schema and not open_object:
        copy["additionalProperties"] = False
    return copy


def _list_type(validator: Any, list_type: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[Any]:
    """``x-kubernetes-list-type``: ``map`` entries unique by their keys (defaults applied), ``set`` items unique."""
    if not validator.is_type(instance, "array") or list_type not in ("map", "set"):
        return
    keys = schema.get("x-kubernetes-list-map-keys", ())
    defaults = {k: v.get("default") for k, v in schema.get("items", {}).get("properties", {}).items()}
    seen: dict[str, int] = {}
    for index, item in enumerate(instance):
        identity = (
            item
            if list_type == "set" or not isinstance(item, dict)
            else {k: item.get(k, defaults.get(k)) for k in keys}
        )
        encoded = json.dumps(identity, sort_keys=True)
        if encoded in seen:
            what = "value" if list_type == "set" else f"key {encoded}"
            yield jsonschema.ValidationError(
                f"duplicate {what}: entry {seen[encoded]} has it too", path=[index]
            )
        seen.setdefault(encoded, index)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"x-kubernetes-list-type": _list_type}
)


def _metadata_problems(metadata: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(metadata, Mapping):
        yield "metadata", "is required and must be an object"
        return
    name = metadata.get("name")
    if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        yield "metadata.name", f"{name!r} is not a DNS subdomain (lowercase, at most 253 characters)"
    namespace = metadata.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not _is_dns_label(namespace)):
        yield "metadata.namespace", f"{namespace!r} is not a DNS label (lowercase, at most 63 characters)"
    labels = metadata.get("labels") or {}
    for key, value in labels.items():
        yield from (("metadata.labels", f"{key!r}: {p}") for p in _key_problems(key))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            yield "metadata.labels", f"{key!r}: value {value!r} is not a label value"
    annotations = metadata.get("annotations") or {}
    for key, value in annotations.items():
        yield from (("metadata.annotations", f"{key!r}: {p}") for p in _key_problems(key))
        if not isinstance(value, str):
            yield "metadata.annotations", f"{key!r}: value {value!r} is not a string"
    if len(json.dumps(annotations).encode()) > _ANNOTATIONS_MAX_BYTES:
        yield "metadata.annotations", "exceed 256 KiB"


def _key_problems(key: Any) -> Iterator[str]:
    """A label or annotation key: optional DNS-subdomain prefix and ``/``, then a name of at most 63."""
    if not isinstance(key, str):
        yield "key is not a string"
        return
    prefix, _, name = key.rpartition("/")
    if "/" in key and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        yield f"prefix {prefix!r} is not a DNS subdomain"
    if len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        yield f"name {name!r} is not a qualified name"


def _is_dns_label(value: str) -> bool:
    return len(value) <= 63 and bool(_DNS_LABEL.fullmatch(value))


def _dotted(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(object)"
