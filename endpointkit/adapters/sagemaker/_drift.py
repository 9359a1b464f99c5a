"""Drift on SageMaker: what a DescribeEndpoint and the endpoint's tags say against what the spec asks.

Only what the spec controls is compared, in the form SageMaker returns it: variant weights as floats, instance
counts only without autoscaling (the autoscaler moves them), the config only while the spec is the one last
applied (otherwise the config changes because the spec did, which plan shows as an update by itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from endpointkit._observations import Drift
from endpointkit.adapters._drift import tag_drift
from endpointkit.adapters.base import SPEC_HASH_TAG, DesiredState
from endpointkit.adapters.sagemaker._state import Description

__all__ = ["capacity_repairs", "endpoint_drift"]


def endpoint_drift(
    description: Description, tags: Mapping[str, str], desired: DesiredState
) -> tuple[Drift, ...]:
    """Every field of a managed endpoint that differs from ``desired``, in a stable order. Makes no call."""
    found: list[Drift] = []
    live_config = description.get("EndpointConfigName")
    if live_config != desired.config.name:
        if tags.get(SPEC_HASH_TAG) == desired.spec_hash:
            found.append(Drift("endpoint_config", live_config, desired.config.name))
    else:
        found.extend(_variant_drift(description, desired.config.properties))
    found.extend(tag_drift(tags, desired.tags))
    return tuple(found)


def _variant_drift(description: Description, content: Mapping[str, Any]) -> list[Drift]:
    live = {variant["VariantName"]: variant for variant in description.get("ProductionVariants", [])}
    found: list[Drift] = []
    for wanted in content.get("variants", []):
        name = wanted["name"]
        variant = live.get(name)
        if variant is None:
            found.append(Drift(f"variants.{name}", None, "present"))
            continue
        weight = _live_weight(variant)
        if weight is not None and abs(weight - float(wanted["weight"])) > 1e-6:
            found.append(Drift(f"variants.{name}.weight", weight, float(wanted["weight"])))
        count = _live_count(variant)
        if (
            "instance_count" in wanted
            and not content.get("autoscaling")
            and count is not None
            and count != int(wanted["instance_count"])
        ):
            found.append(Drift(f"variants.{name}.instance_count", count, int(wanted["instance_count"])))
    return found


def _live_weight(variant: Mapping[str, Any]) -> float | None:
    value = variant.get("DesiredWeight", variant.get("CurrentWeight"))
    return None if value is None else float(value)


def _live_count(variant: Mapping[str, Any]) -> int | None:
    # DesiredInstanceCount is what was last asked for; CurrentInstanceCount lags behind it during a change.
    value = variant.get("DesiredInstanceCount", variant.get("CurrentInstanceCount"))
    return None if value is None else int(value)


def capacity_repairs(description: Description, content: Mapping[str, Any]) -> list[dict[str, Any]]:
    """UpdateEndpointWeightsAndCapacities ``DesiredWeightsAndCapacities`` that put back the spec's weights and
    counts (counts only without autoscaling); empty when nothing differs."""
    drifted = {item.field.split(".")[1] for item in _variant_drift(description, content)}
    repairs: list[dict[str, Any]] = []
    for wanted in content.get("variants", []):
        if wanted["name"] not in drifted:
            continue
        entry: dict[str, Any] = {"VariantName": wanted["name"], "DesiredWeight": float(wanted["weight"])}
        if "instance_count" in wanted and not content.get("autoscaling"):
            entry["DesiredInstanceCount"] = int(wanted["instance_count"])
        repairs.append(entry)
    return repairs
