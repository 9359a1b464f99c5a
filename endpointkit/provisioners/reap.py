"""Reap: find the endpoints whose ``endpointkit-expires-at`` has passed on a target, and destroy them.

Works with any adapter that implements :class:`~endpointkit.adapters.base.ReapableAdapter`. Costs one
``list_endpoints`` call, then one ``destroy_by_state`` per expired endpoint; endpoints that are not expired, have
no expiry, or are already being deleted are left alone. One failed deletion does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from endpointkit._wait import Progress
from endpointkit.adapters.base import EndpointState, EndpointStatus, ReapableAdapter
from endpointkit.errors import UnsupportedCapabilityError

__all__ = ["ReapOutcome", "ReapReport", "expired_endpoints", "reap", "time_left"]

logger = logging.getLogger("endpointkit")

ReapAction = Literal["destroyed", "would destroy", "failed"]


@dataclass(frozen=True, slots=True)
class ReapOutcome:
    """What reap did to one expired endpoint; ``error`` is set when its deletion failed."""

    state: EndpointState
    action: ReapAction
    error: Exception | None = None

    def to_dict(self, now: datetime) -> dict[str, Any]:
        expires_at = self.state.expires_at
        return {
            "name": self.state.name,
            "status": self.state.status.value,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "expired_seconds_ago": int((now - expires_at).total_seconds()) if expires_at else None,
            "action": self.action,
            "error": str(self.error) if self.error is not None else None,
        }


@dataclass(frozen=True)
class ReapReport:
    """Everything one reap run saw and did on one target."""

    target: str
    kind: str
    now: datetime
    listed: tuple[EndpointState, ...]
    outcomes: tuple[ReapOutcome, ...] = field(default=())
    dry_run: bool = False

    @property
    def failed(self) -> tuple[ReapOutcome, ...]:
        return tuple(outcome for outcome in self.outcomes if outcome.action == "failed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kind": self.kind,
            "now": self.now.isoformat(),
            "dry_run": self.dry_run,
            "listed": len(self.listed),
            "expired": [outcome.to_dict(self.now) for outcome in self.outcomes],
            "failed": len(self.failed),
        }

    def __str__(self) -> str:
        header = (
            f"reap on {self.target} ({self.kind}): {len(self.listed)} managed endpoint(s), "
            f"{len(self.outcomes)} expired" + (" (dry run)" if self.dry_run else "")
        )
        lines = [header]
        for outcome in self.outcomes:
            when = outcome.state.expires_at
            ago = f"expired {_duration(self.now - when)} ago" if when else "expired"
            detail = f": {outcome.error}" if outcome.error is not None else ""
            lines.append(f"  {outcome.action} {outcome.state.name} ({ago}){detail}")
        if not self.outcomes:
            lines.append("  nothing to reap")
        return "\n".join(lines)


def expired_endpoints(states: Iterable[EndpointState], now: datetime) -> list[EndpointState]:
    """The states whose expiry is at or before ``now``, skipping endpoints already being deleted."""
    return [
        state
        for state in states
        if state.expires_at is not None
        and state.expires_at <= now
        and state.status not in (EndpointStatus.DELETING, EndpointStatus.NOT_FOUND)
    ]


def reap(
    adapter: object,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ReapReport:
    """Destroy every expired endpointkit-managed endpoint on ``adapter``'s target.

    ``now`` defaults to the current UTC time. With ``dry_run`` only the listing call is made.

    Raises:
        UnsupportedCapabilityError: the adapter cannot list its endpoints (it is not a ReapableAdapter).
        ProviderError: listing failed. Failed deletions do not raise: they are in ``ReapReport.failed``.
    """
    kind = str(getattr(adapter, "kind", type(adapter).__name__))
    target = str(getattr(adapter, "target_name", kind))
    if not isinstance(adapter, ReapableAdapter):
        raise UnsupportedCapabilityError(
            f"target {target!r} ({kind}) cannot list its endpoints, so reap cannot find expired ones there: "
            "delete them with `endpointkit destroy SPEC`",
            missing={"reap": f"the {kind} adapter has no list_endpoints/destroy_by_state"},
        )
    checked_at = now or datetime.now(timezone.utc)
    listed = tuple(adapter.list_endpoints())
    outcomes = []
    for state in expired_endpoints(listed, checked_at):
        if dry_run:
            outcomes.append(ReapOutcome(state, "would destroy"))
            continue
        try:
            adapter.destroy_by_state(state, progress=progress)
        except Exception as error:  # one endpoint's failure must not keep the others alive
            logger.info("reap could not destroy %s: %s", state.name, error)
            outcomes.append(ReapOutcome(state, "failed", error))
        else:
            outcomes.append(ReapOutcome(state, "destroyed"))
    return ReapReport(target, kind, checked_at, listed, tuple(outcomes), dry_run)


def time_left(expires_at: datetime, now: datetime | None = None) -> str:
    """``expires in 3h12m`` or ``expired 5m ago``."""
    remaining = expires_at - (now or datetime.now(timezone.utc))
    if remaining.total_seconds() > 0:
        return f"expires in {_duration(remaining)}"
    return f"expired {_duration(-remaining)} ago"


def _duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{seconds}s"
