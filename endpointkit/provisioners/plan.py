"""Plan: the pure diff between what the spec asks for and what exists."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from endpointkit._observations import Drift
from endpointkit.adapters.base import (
    Adapter,
    DesiredState,
    EndpointStatus,
    ObservedState,
    Resource,
    ResourceKind,
    required_capabilities,
)
from endpointkit.errors import UnsupportedCapabilityError
from endpointkit.pricing import CostEstimate
from endpointkit.provisioners.drift import ENDPOINT_CONFIG_FIELD, drift_fields, only_tags
from endpointkit.spec import Deployment

__all__ = ["Action", "Change", "Plan", "check_capabilities", "diff"]

Action = Literal["create", "update", "replace", "delete", "noop"]


@dataclass(frozen=True, slots=True)
class Change:
    """One step of a plan: what happens to which resource, and why."""

    action: Action
    resource: ResourceKind
    name: str
    reason: str = ""
    properties: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "resource": self.resource,
            "name": self.name,
            "reason": self.reason,
            "properties": dict(self.properties),
        }


@dataclass(frozen=True)
class Plan:
    """The ordered changes ``apply`` would make; ``str(plan)`` is a readable diff.

    ``costs`` is the estimated hourly cost of what the spec deploys (``endpointkit.pricing``), whether or not
    anything changes. ``drift`` lists each field where what is live differs from the spec (a count changed by
    hand, a dead server, a removed tag); the changes already include what repairs it.
    """

    endpoint: str
    target: str
    kind: str
    changes: tuple[Change, ...]
    desired: DesiredState
    observed: ObservedState
    costs: CostEstimate | None = None
    drift: tuple[Drift, ...] = ()
    #: the spec's ``verify`` checks that run against the new version before it takes traffic, one line each
    checks: tuple[str, ...] = ()
    #: how traffic moves to the new version (steps, waits, alarms), one line each
    rollout: tuple[str, ...] = ()
    #: warnings and facts the target adds (a key sent in clear text, a certificate renewal)
    notes: tuple[str, ...] = ()

    @property
    def has_changes(self) -> bool:
        return any(change.action != "noop" for change in self.changes)

    @property
    def hourly_cost(self) -> float | None:
        """The estimated total per hour in USD; None when a price is unknown or no estimate was made."""
        return self.costs.total if self.costs is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "target": self.target,
            "kind": self.kind,
            "spec_hash": self.desired.spec_hash,
            "status": self.observed.state.status.value,
            "has_changes": self.has_changes,
            "changes": [change.to_dict() for change in self.changes],
            "hourly_cost": self.hourly_cost,
            "costs": self.costs.to_dict() if self.costs is not None else None,
            "drift": [
                {"field": item.field, "live": _plain(item.live), "wanted": _plain(item.wanted)}
                for item in self.drift
            ],
            "checks": list(self.checks) if self.moves_traffic else [],
            "rollout": list(self.rollout) if self.moves_traffic else [],
            "notes": list(self.notes),
        }

    @property
    def moves_traffic(self) -> bool:
        """Whether applying starts a version of the endpoint: its checks and rollout steps then run."""
        return any(
            c.resource == "endpoint" and c.action in ("create", "update", "replace") for c in self.changes
        )

    def __str__(self) -> str:
        return self.render()

    def render(self, *, price_sources: bool = True) -> str:
        """The readable diff and cost estimate; ``price_sources=False`` leaves out the price table's sources."""
        symbols = {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "noop": " "}
        lines = [
            f"endpoint {self.endpoint} on {self.target} ({self.kind}): {self.observed.state.status.value}"
        ]
        for change in self.changes:
            reason = f"  ({change.reason})" if change.reason else ""
            lines.append(f"  {symbols[change.action]:>3} {change.resource:<15} {change.name}{reason}")
        lines.extend(f"    ! {item}" for item in self.drift)
        if not self.has_changes:
            lines.append("  no changes")
        if self.moves_traffic:
            lines.extend(f"  verify: {line}" for line in self.checks)
            lines.extend(f"  rollout: {line}" for line in self.rollout)
        lines.extend(f"  note: {line}" for line in self.notes)
        if self.costs is not None:
            lines.extend(self.costs.lines(sources=price_sources))
        return "\n".join(lines)


def check_capabilities(deployment: Deployment, adapter: Adapter) -> None:
    """Raise one UnsupportedCapabilityError listing every capability the target lacks, before any cloud call."""
    limitations = adapter.limitations(deployment)
    missing = {
        capability.value: f"{where}: {limitations[capability]}"
        for capability, where in required_capabilities(deployment).items()
        if capability in limitations
    }
    if missing:
        listing = "\n".join(f"  - {name}: {reason}" for name, reason in missing.items())
        raise UnsupportedCapabilityError(
            f"target {deployment.target_name!r} ({deployment.kind}) cannot serve this spec:\n{listing}",
            missing=missing,
        )


def diff(desired: DesiredState, observed: ObservedState) -> tuple[Change, ...]:
    """The ordered changes from ``observed`` to ``desired``: create before use, delete after release.

    ``observed.drift`` becomes changes too (see :mod:`endpointkit.provisioners.drift`).
    """
    return _repair_drift(_diff_names(desired, observed), observed.drift)


def _diff_names(desired: DesiredState, observed: ObservedState) -> tuple[Change, ...]:

    def ensure(resource: Resource) -> Change:
        if (resource.kind, resource.name) in observed.existing:
            return Change("noop", resource.kind, resource.name, "exists", resource.properties)
        return Change("create", resource.kind, resource.name, "", resource.properties)

    endpoint = desired.endpoint
    if not observed.exists:
        return (
            ensure(desired.model),
            ensure(desired.config),
            Change("create", "endpoint", endpoint.name, "", endpoint.properties),
        )
    if observed.state.status is EndpointStatus.FAILED or observed.replace_reason is not None:
        if observed.replace_reason is not None:
            reason = observed.replace_reason
        elif observed.state.reason:
            reason = f"endpoint is FAILED: {observed.state.reason}"
        else:
            reason = "endpoint is FAILED"
        changes = [
            ensure(desired.model),
            ensure(desired.config),
            Change("replace", "endpoint", endpoint.name, reason, endpoint.properties),
        ]
        return (*changes, *_releases(desired, observed))
    if observed.config is not None and observed.config.name == desired.config.name:
        # The config's name covers everything that runs; the spec hash also covers ttl and tags, which live in
        # the endpoint's tags (labels on AKS, the state record locally). A spec that changed only there is an
        # update the adapter carries out by re-tagging, without a rollout.
        retag = observed.state.spec_hash is not None and observed.state.spec_hash != desired.spec_hash
        return (
            Change("noop", "model", desired.model.name, "unchanged", desired.model.properties),
            Change("noop", "endpoint_config", desired.config.name, "unchanged", desired.config.properties),
            Change(
                "update",
                "endpoint",
                endpoint.name,
                f"tags only: spec hash {observed.state.spec_hash} -> {desired.spec_hash}",
                endpoint.properties,
            )
            if retag
            else Change("noop", "endpoint", endpoint.name, "unchanged", endpoint.properties),
        )
    previous = observed.config.name if observed.config is not None else "unknown"
    return (
        ensure(desired.model),
        ensure(desired.config),
        Change(
            "update",
            "endpoint",
            endpoint.name,
            f"config {previous} -> {desired.config.name}",
            endpoint.properties,
        ),
        *_releases(desired, observed),
    )


def _releases(desired: DesiredState, observed: ObservedState) -> list[Change]:
    changes = []
    if observed.config is not None and observed.config.name != desired.config.name:
        changes.append(Change("delete", "endpoint_config", observed.config.name, "replaced"))
    if observed.model is not None and observed.model.name != desired.model.name:
        changes.append(Change("delete", "model", observed.model.name, "replaced"))
    return changes


def _repair_drift(changes: tuple[Change, ...], drift: tuple[Drift, ...]) -> tuple[Change, ...]:
    """``changes`` with the endpoint's change naming the drifted fields (an update when it was a noop)."""
    if not drift:
        return changes
    fields = ", ".join(drift_fields(drift))
    repaired: list[Change] = []
    for change in changes:
        if change.action == "delete" and any(item.field == ENDPOINT_CONFIG_FIELD for item in drift):
            # The endpoint was moved to a config (and its model) that someone else made: moving it back must not
            # delete what it was moved to.
            continue
        if change.resource == "endpoint" and change.action == "noop":
            kind = "tags only: drift of" if only_tags(drift) else "drift:"
            change = Change("update", "endpoint", change.name, f"{kind} {fields}", change.properties)
        elif change.resource == "endpoint":
            reason = f"{change.reason}; drift: {fields}" if change.reason else f"drift: {fields}"
            change = Change(change.action, "endpoint", change.name, reason, change.properties)
        repaired.append(change)
    return tuple(repaired)


def _plain(value: Any) -> Any:
    """A drift value as JSON can carry it: scalars and lists as they are, anything else as its text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)
