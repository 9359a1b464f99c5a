"""Estimated hourly cost of a deployment, from a vendored and dated price table (``data/prices.json``).

The cost model, per target kind:

* ``sagemaker`` (real-time hosting): each variant costs ``instance_count`` x the on-demand price of its
  ``instance_type`` per hour. Autoscaling may add instances up to ``max_instances``; the estimate is for the
  count the spec deploys. Serverless and asynchronous endpoints are billed differently and are unknown here.
* ``aks``: the endpoint is billed for the nodes of the pool it runs on, ``node_pool.count`` x the VM size's
  pay-as-you-go price, and, when endpointkit creates the cluster (``create_cluster``), the one-node system pool
  it adds: those pool lines make the total. Each variant also gets a line of its own, not added to the total
  because its nodes are part of the pool's: the nodes its replicas occupy. Pods never share a GPU or FPGA, so a
  device variant occupies ``ceil(instance_count x devices per replica / devices per VM)`` nodes. CPU replicas
  pack onto nodes by cpu and memory, which the catalog does not know per VM size, so a CPU variant's line is an
  upper bound: one node per replica, at most the pool. The control plane (free tier), disks, load balancer and
  storage are not counted.
* ``local``: a Triton process on this machine costs nothing per hour: a known 0.0, not an unknown.

A price the table does not hold (another region, an instance type not listed, or one the table lists as
``unpriced`` because no public figure could be confirmed) is ``None``: unknown, never zero, and an estimate with
any unknown item in its total has no total. The table covers one region per cloud
(SageMaker us-east-1, Azure eastus); its date and sources travel with every estimate.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

from endpointkit.catalog import azure_vm_size
from endpointkit.spec import AksTarget, Deployment, SageMakerTarget, Variant

__all__ = [
    "CostEstimate",
    "CostItem",
    "PriceTable",
    "cost_limit_violation",
    "estimate_cost",
    "format_usd",
    "price_table",
]

# The system pool endpointkit adds when it creates an AKS cluster (adapters/aks/arm.py: SYSTEM_VM_SIZE). Not
# imported from there: that would load the AKS adapter package on every plan.
_AKS_SYSTEM_POOL = ("system", "Standard_D2s_v5", 1)


@dataclass(frozen=True)
class PriceTable:
    """On-demand prices per instance-hour for one target kind in one region, with their date and sources."""

    kind: str
    description: str
    region: str
    as_of: str
    sources: tuple[str, ...]
    prices: Mapping[str, float]
    currency: str = "USD"
    unpriced: frozenset[str] = frozenset()
    unpriced_note: str = ""

    def price(self, instance_type: str) -> float | None:
        """The hourly price of ``instance_type`` (case-insensitive), or None when the table does not hold it."""
        return self.prices.get(instance_type.lower())

    def missing_price_note(self, instance_type: str) -> str:
        """Why ``instance_type`` has no price: listed as unpriced (no public figure confirmed), or not listed."""
        if instance_type.lower() in self.unpriced:
            return "no confirmed public price: unpriced in the table"
        return "not in the price table"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "description": self.description,
            "region": self.region,
            "as_of": self.as_of,
            "sources": list(self.sources),
            "currency": self.currency,
        }


@dataclass(frozen=True, slots=True)
class CostItem:
    """One priced line: ``count`` instances of ``instance_type`` at ``unit_price`` per hour (None: unknown).

    ``in_total`` is False for a line that shows a share of another line (an AKS variant's nodes are part of its
    node pool's), so that nothing is counted twice.
    """

    subject: str
    instance_type: str | None
    count: int
    unit_price: float | None
    note: str = ""
    in_total: bool = True

    @property
    def hourly_cost(self) -> float | None:
        """``count`` x ``unit_price``, or None when the price is unknown."""
        return None if self.unit_price is None else round(self.count * self.unit_price, 6)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "instance_type": self.instance_type,
            "count": self.count,
            "unit_price": self.unit_price,
            "hourly_cost": self.hourly_cost,
            "note": self.note,
            "in_total": self.in_total,
        }


@dataclass(frozen=True)
class CostEstimate:
    """The estimated hourly cost of one deployment: its priced items and the table the prices come from."""

    kind: str
    items: tuple[CostItem, ...]
    table: PriceTable | None = None

    @property
    def total(self) -> float | None:
        """The sum per hour of every item counted in the total, or None when any of their prices is unknown."""
        costs = [item.hourly_cost for item in self.items if item.in_total]
        if any(cost is None for cost in costs):
            return None
        return round(sum(cost for cost in costs if cost is not None), 6)

    @property
    def unknown(self) -> tuple[CostItem, ...]:
        """The items counted in the total that have no price."""
        return tuple(item for item in self.items if item.in_total and item.unit_price is None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "currency": "USD",
            "unit": "hour",
            "total": self.total,
            "items": [item.to_dict() for item in self.items],
            "prices": self.table.to_dict() if self.table is not None else None,
        }

    def lines(self, *, sources: bool = True) -> list[str]:
        """The estimate as indented text lines, ending with the table's date and (``sources``) its sources."""
        lines = ["  estimated hourly cost (on-demand):"]
        width = max((len(item.subject) for item in self.items), default=0)
        for item in self.items:
            what = f"{item.count} x {item.instance_type}" if item.instance_type else f"{item.count} x local"
            notes = [item.note] if item.note else []
            if not item.in_total:
                notes.append("not added to the total")
            note = f"  ({'; '.join(notes)})" if notes else ""
            lines.append(f"    {item.subject:<{width}}  {what:<28} {format_usd(item.hourly_cost)}{note}")
        lines.append(f"    {'total':<{width}}  {'':<28} {format_usd(self.total)}")
        if self.table is not None:
            lines.append(f"  prices: {self.table.description}, {self.table.region}, as of {self.table.as_of}")
            if sources:
                lines.extend(f"    {source}" for source in self.table.sources)
        return lines


def format_usd(value: float | None) -> str:
    """``$0.736/h``, or ``unknown`` for None (never ``$0``)."""
    if value is None:
        return "unknown"
    digits = f"{value:,.4f}".rstrip("0").rstrip(".")
    return f"${digits}/h"


@functools.cache
def _document() -> Mapping[str, Any]:
    text = resources.files("endpointkit").joinpath("data/prices.json").read_text(encoding="utf-8")
    document: Mapping[str, Any] = json.loads(text)
    return document


@functools.cache
def price_table(kind: str) -> PriceTable | None:
    """The vendored price table for a target kind (``sagemaker``, ``aks``), or None when there is none."""
    table = _document()["tables"].get(kind)
    if table is None:
        return None
    return PriceTable(
        kind=kind,
        description=table["description"],
        region=table["region"],
        as_of=table["as_of"],
        sources=tuple(table["sources"]),
        prices=MappingProxyType({name.lower(): float(price) for name, price in table["prices"].items()}),
        currency=_document()["currency"],
        unpriced=frozenset(name.lower() for name in table.get("unpriced", {}).get("types", [])),
        unpriced_note=table.get("unpriced", {}).get("note", ""),
    )


def estimate_cost(deployment: Deployment) -> CostEstimate:
    """The estimated hourly cost of ``deployment`` (see the module docstring for the model). Makes no call."""
    target = deployment.target
    if isinstance(target, SageMakerTarget):
        return _sagemaker(deployment, target)
    if isinstance(target, AksTarget):
        return _aks(deployment, target)
    if deployment.kind == "local":
        items = tuple(
            CostItem(f"variant {variant.name}", None, variant.instance_count, 0.0, "this machine")
            for variant in deployment.variants
        )
        return CostEstimate("local", items)
    items = tuple(
        CostItem(
            f"variant {variant.name}",
            variant.instance_type,
            variant.instance_count,
            None,
            f"no prices for {deployment.kind}",
        )
        for variant in deployment.variants
    )
    return CostEstimate(deployment.kind, items)


def _sagemaker(deployment: Deployment, target: SageMakerTarget) -> CostEstimate:
    table = price_table("sagemaker")
    items = []
    for variant in deployment.variants:
        subject = f"variant {variant.name}"
        if target.serverless is not None:
            items.append(
                CostItem(subject, None, variant.instance_count, None, "serverless is billed per request")
            )
            continue
        price: float | None = None
        note = ""
        if target.async_inference is not None:
            note = "asynchronous inference prices are not in the table"
        elif table is None or target.region != table.region:
            note = f"no prices for {target.region}: the table covers {table.region if table else 'no region'}"
        elif variant.instance_type is None:
            note = "no instance type"
        else:
            price = table.price(variant.instance_type)
            if price is None:
                note = table.missing_price_note(variant.instance_type)
        items.append(CostItem(subject, variant.instance_type, variant.instance_count, price, note))
    return CostEstimate("sagemaker", tuple(items), table)


def _aks(deployment: Deployment, target: AksTarget) -> CostEstimate:
    table = price_table("aks")
    pool = target.node_pool
    price, note = _aks_price(target, table, pool.vm_size)
    items = [_aks_variant(variant, target, price, note) for variant in deployment.variants]
    details = [f"runs {', '.join(variant.name for variant in deployment.variants)}"]
    if pool.min_count is not None:
        details.append(f"autoscales {pool.min_count}-{pool.max_count} nodes")
    items.append(CostItem(f"node pool {pool.name}", pool.vm_size, pool.count, price, _join(*details, note)))
    if target.create_cluster:
        name, vm_size, count = _AKS_SYSTEM_POOL
        price, note = _aks_price(target, table, vm_size)
        items.append(CostItem(f"node pool {name}", vm_size, count, price, _join("cluster system pods", note)))
    return CostEstimate("aks", tuple(items), table)


def _aks_price(target: AksTarget, table: PriceTable | None, vm_size: str) -> tuple[float | None, str]:
    """The VM size's price in the cluster's location, or None and why not."""
    if table is None or target.location is None:
        return None, f"cluster location unknown: the table covers {table.region if table else 'no region'}"
    if target.location.replace(" ", "").lower() != table.region:
        return None, f"no prices for {target.location}: the table covers {table.region}"
    price = table.price(vm_size)
    return price, "" if price is not None else table.missing_price_note(vm_size)


def _aks_variant(variant: Variant, target: AksTarget, price: float | None, price_note: str) -> CostItem:
    """The nodes of the pool one variant's replicas occupy (see the module docstring), at the pool's VM price
    (``price``, or None with ``price_note`` saying why); not in the total."""
    pool = target.node_pool
    info = azure_vm_size(pool.vm_size)
    per_replica = variant.devices_per_replica
    if per_replica and info.accelerators:
        nodes = math.ceil(variant.instance_count * per_replica / info.accelerators)
        kind = "GPU" if variant.accelerator == "gpu" else "FPGA"
        share = (
            f"{variant.instance_count} replicas x {per_replica} {kind}, {info.accelerators} {kind} per node, "
            f"in node pool {pool.name}"
        )
    else:
        nodes = min(variant.instance_count, pool.count)
        share = f"at most: CPU replicas share node pool {pool.name}'s nodes"
    return CostItem(
        f"variant {variant.name}", pool.vm_size, nodes, price, _join(share, price_note), in_total=False
    )


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def cost_limit_violation(estimate: CostEstimate, limit: float) -> str | None:
    """Why ``estimate`` may not be applied under an hourly ``limit`` (USD), or None when it fits.

    An unknown price refuses too: a limit that cannot be checked is not a limit.
    """
    if estimate.unknown:
        unknown = ", ".join(
            f"{item.subject} ({item.instance_type or 'no instance type'}: {item.note or 'unknown'})"
            for item in estimate.unknown
        )
        return (
            f"the hourly cost is unknown for {unknown}, so --max-hourly-cost {format_usd(limit)} cannot be "
            "checked: refusing to apply (drop the limit to apply anyway)"
        )
    total = estimate.total or 0.0
    if total > limit:
        return (
            f"the estimated hourly cost {format_usd(total)} is above --max-hourly-cost {format_usd(limit)}: "
            "refusing to apply"
        )
    return None
