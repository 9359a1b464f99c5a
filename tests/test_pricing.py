"""Cost estimates: instance count x a dated, sourced price; unknown is unknown, never zero."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

import endpointkit as ek
from endpointkit.adapters.memory import MemoryAdapter
from endpointkit.adapters.sagemaker import hosting_instance_types
from endpointkit.catalog import azure_accelerated_sizes, sagemaker_instance
from endpointkit.pricing import cost_limit_violation, estimate_cost, format_usd, price_table
from endpointkit.spec import Spec, spec_from_dict

ROLE = "arn:aws:iam::123456789012:role/x"


def sagemaker_spec(instance_type: str = "ml.g4dn.xlarge", count: int = 1, **target: Any) -> Spec:
    return spec_from_dict(
        {
            "name": "demo",
            "model": {"repository": "s3://models/demo/model.tar.gz"},
            "variants": [{"name": "primary", "instance_type": instance_type, "instance_count": count}],
            "targets": {
                "aws": {
                    "kind": "sagemaker",
                    "region": "us-east-1",
                    "role_arn": ROLE,
                    "bucket": "models",
                    **target,
                }
            },
        }
    )


def aks_spec(**target: Any) -> Spec:
    section = {"kind": "aks", "subscription_id": "sub", "resource_group": "rg", "cluster": "gpu", **target}
    return spec_from_dict(
        {
            "name": "demo",
            "model": {"repository": "as://models/demo"},
            "variants": [{"name": "a", "accelerator": "gpu"}, {"name": "b", "accelerator": "gpu"}],
            "targets": {"azure": section},
        }
    )


def test_sagemaker_variant_costs_instance_count_times_the_price() -> None:
    estimate = estimate_cost(sagemaker_spec("ml.g4dn.xlarge", count=3).deployment())
    assert [item.hourly_cost for item in estimate.items] == [pytest.approx(3 * 0.736)]
    assert estimate.total == pytest.approx(2.208)


def test_the_table_is_dated_and_sourced() -> None:
    for kind in ("sagemaker", "aks"):
        table = price_table(kind)
        assert table is not None
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", table.as_of)
        assert table.sources and all(source.startswith("https://") for source in table.sources)
        assert all(price > 0 for price in table.prices.values())


def test_every_sagemaker_price_names_a_hosting_instance_type() -> None:
    table = price_table("sagemaker")
    assert table is not None
    assert all(sagemaker_instance(name) is not None for name in table.prices)


def test_an_instance_type_without_a_price_is_unknown_not_zero() -> None:
    estimate = estimate_cost(sagemaker_spec("ml.inf2.xlarge").deployment())
    assert estimate.items[0].unit_price is None
    assert estimate.items[0].hourly_cost is None
    assert estimate.total is None
    assert "unknown" in "\n".join(estimate.lines())
    assert "$0" not in "\n".join(estimate.lines())


def test_a_region_outside_the_table_is_unknown() -> None:
    spec = sagemaker_spec(region="eu-west-1")
    item = estimate_cost(spec.deployment()).items[0]
    assert item.unit_price is None and "us-east-1" in item.note


def test_serverless_is_not_priced_per_hour() -> None:
    spec = spec_from_dict(
        {
            "name": "demo",
            "model": {"repository": "s3://models/demo/model.tar.gz"},
            "variants": [{"name": "primary"}],
            "targets": {
                "aws": {
                    "kind": "sagemaker",
                    "region": "us-east-1",
                    "role_arn": ROLE,
                    "bucket": "models",
                    "serverless": {"memory_mb": 2048},
                }
            },
        }
    )
    assert estimate_cost(spec.deployment()).total is None


def test_local_is_a_known_zero() -> None:
    spec = spec_from_dict(
        {"name": "demo", "model": {"repository": "s3://m/x.tar.gz"}, "variants": [{"name": "primary"}]}
    )
    estimate = estimate_cost(spec.deployment())
    assert estimate.total == 0.0
    assert estimate.unknown == ()


def aks_variants_spec(variants: list[dict[str, Any]], **node_pool: Any) -> Spec:
    section = {
        "kind": "aks",
        "subscription_id": "sub",
        "resource_group": "rg",
        "cluster": "gpu",
        "location": "eastus",
        "node_pool": node_pool,
    }
    return spec_from_dict(
        {
            "name": "demo",
            "model": {"repository": "as://models/demo"},
            "variants": variants,
            "targets": {"azure": section},
        }
    )


def test_aks_shows_each_variants_nodes_and_totals_the_pool_once() -> None:
    spec = aks_variants_spec(
        [
            {"name": "a", "accelerator": "gpu", "instance_count": 3},
            {"name": "b", "accelerator": "gpu", "instance_count": 2, "gpus": 2},
        ],
        vm_size="Standard_NC64as_T4_v3",
        count=2,
    )
    estimate = estimate_cost(spec.deployment())
    lines = [(item.subject, item.count, item.in_total) for item in estimate.items]
    # a: ceil(3 x 1 / 4) = 1 node; b: ceil(2 x 2 / 4) = 1 node; the pool's 2 nodes are what is billed
    assert lines == [("variant a", 1, False), ("variant b", 1, False), ("node pool gpu", 2, True)]
    assert [item.hourly_cost for item in estimate.items] == [
        pytest.approx(4.352),
        pytest.approx(4.352),
        pytest.approx(8.704),
    ]
    assert estimate.total == pytest.approx(2 * 4.352)
    text = "\n".join(estimate.lines())
    assert "not added to the total" in text and "runs a, b" in text
    assert [item["in_total"] for item in estimate.to_dict()["items"]] == [False, False, True]


def test_aks_variant_needing_more_nodes_rounds_up() -> None:
    spec = aks_variants_spec(
        [{"name": "a", "accelerator": "gpu", "instance_count": 3}], vm_size="Standard_NC4as_T4_v3", count=3
    )
    variant = estimate_cost(spec.deployment()).items[0]
    assert (variant.count, variant.hourly_cost) == (3, pytest.approx(3 * 0.526))


def test_aks_cpu_variant_is_an_upper_bound_of_the_pools_nodes() -> None:
    spec = aks_variants_spec([{"name": "a", "instance_count": 5}], vm_size="Standard_D4s_v5", count=2)
    variant, pool = estimate_cost(spec.deployment()).items
    assert (variant.count, variant.in_total) == (2, False)
    assert "at most" in variant.note
    assert estimate_cost(spec.deployment()).total == pytest.approx(pool.hourly_cost)


def test_aks_fpga_pool_without_a_confirmed_price_is_unknown() -> None:
    spec = aks_variants_spec(
        [{"name": "a", "accelerator": "fpga", "instance_count": 2}], vm_size="Standard_NP20s", count=1
    )
    estimate = estimate_cost(spec.deployment())
    variant, pool = estimate.items
    assert variant.count == 1  # 2 replicas x 1 card, 2 cards per NP20s
    assert pool.unit_price is None and "unpriced" in pool.note
    assert estimate.total is None
    assert [item.subject for item in estimate.unknown] == ["node pool gpu"]


def test_aks_adds_the_system_pool_when_endpointkit_creates_the_cluster() -> None:
    spec = aks_spec(location="East US", create_cluster=True)
    subjects = [item.subject for item in estimate_cost(spec.deployment()).items]
    assert subjects == ["variant a", "variant b", "node pool gpu", "node pool system"]


def test_aks_without_a_location_is_unknown() -> None:
    assert estimate_cost(aks_spec().deployment()).total is None


def test_plan_shows_cost_with_date_and_sources_in_text_and_json() -> None:
    plan = ek.plan(sagemaker_spec("ml.g5.xlarge", count=2), adapter=MemoryAdapter())
    table = price_table("sagemaker")
    assert table is not None
    assert plan.hourly_cost == pytest.approx(2 * 1.408)
    text = str(plan)
    assert "$2.816/h" in text and table.as_of in text and table.sources[0] in text
    document = json.loads(json.dumps(plan.to_dict()))
    assert document["hourly_cost"] == pytest.approx(2.816)
    assert document["costs"]["prices"]["as_of"] == table.as_of
    assert document["costs"]["prices"]["sources"] == list(table.sources)
    assert document["costs"]["items"][0]["instance_type"] == "ml.g5.xlarge"


def test_unknown_cost_is_null_in_plan_json() -> None:
    plan = ek.plan(sagemaker_spec("ml.inf2.xlarge"), adapter=MemoryAdapter())
    assert plan.to_dict()["hourly_cost"] is None


def test_cost_limit_refuses_above_and_names_both_amounts() -> None:
    estimate = estimate_cost(sagemaker_spec("ml.p3.2xlarge").deployment())
    message = cost_limit_violation(estimate, 1.0)
    assert message is not None and "$3.825/h" in message and "$1/h" in message
    assert cost_limit_violation(estimate, 5.0) is None


def test_cost_limit_refuses_an_unknown_price_and_says_so() -> None:
    estimate = estimate_cost(sagemaker_spec("ml.inf2.xlarge").deployment())
    message = cost_limit_violation(estimate, 100.0)
    assert message is not None and "unknown" in message


def test_format_usd() -> None:
    assert format_usd(None) == "unknown"
    assert format_usd(0.0) == "$0/h"
    assert format_usd(37.688) == "$37.688/h"


def test_every_accelerated_catalog_type_is_priced_or_listed_as_unpriced() -> None:
    sagemaker, aks = price_table("sagemaker"), price_table("aks")
    assert sagemaker is not None and aks is not None
    accelerated = [
        name
        for name in hosting_instance_types()
        if (info := sagemaker_instance(name)) is not None and info.accelerator != "cpu"
    ]
    missing = [
        name for name in accelerated if name not in sagemaker.prices and name not in sagemaker.unpriced
    ]
    missing += [
        info.name
        for info in azure_accelerated_sizes()
        if info.name not in aks.prices and info.name not in aks.unpriced
    ]
    assert missing == []


def test_unpriced_lists_name_catalog_types_without_a_price_and_say_why() -> None:
    for kind, known in (
        ("sagemaker", {name.lower() for name in hosting_instance_types()}),
        ("aks", {info.name for info in azure_accelerated_sizes()}),
    ):
        table = price_table(kind)
        assert table is not None
        assert table.unpriced and table.unpriced_note
        assert table.unpriced <= known
        assert not table.unpriced & set(table.prices)


def test_an_unpriced_type_says_so_in_the_estimate() -> None:
    item = estimate_cost(sagemaker_spec("ml.p5en.48xlarge").deployment()).items[0]
    assert item.unit_price is None and "unpriced" in item.note
    other = estimate_cost(sagemaker_spec("ml.m5.12xlarge").deployment()).items[0]
    assert other.note == "not in the price table"
