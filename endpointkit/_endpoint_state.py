"""Endpoint state: the vocabulary every target maps into, the managed tag names, and the expiry codec.

A leaf: it imports nothing from endpointkit, so ``errors`` (whose ``ProvisionTimeout`` carries a state), the
adapters and the provisioners can all import it without a cycle. ``endpointkit`` and ``endpointkit.adapters.base``
re-export what it defines.

The expiry codec is the one place the ``endpointkit-expires-at`` value is written and read, on every target
(AWS tags, Kubernetes labels, the local ``endpoint.json``), so ``reap`` judges a value the same way wherever it
finds it.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = [
    "EXPIRES_AT_TAG",
    "MANAGED_BY_TAG",
    "MANAGED_BY_VALUE",
    "SPEC_HASH_TAG",
    "EndpointState",
    "EndpointStatus",
    "VariantState",
    "decode_expiry",
    "encode_expiry",
]

logger = logging.getLogger("endpointkit.expiry")

MANAGED_BY_TAG = "managed-by"
MANAGED_BY_VALUE = "endpointkit"
SPEC_HASH_TAG = "endpointkit-spec-hash"
EXPIRES_AT_TAG = "endpointkit-expires-at"


class EndpointStatus(str, enum.Enum):
    """One status vocabulary for every target; each adapter maps its provider's strings into it."""

    CREATING = "CREATING"
    UPDATING = "UPDATING"
    IN_SERVICE = "IN_SERVICE"
    FAILED = "FAILED"
    DELETING = "DELETING"
    NOT_FOUND = "NOT_FOUND"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class VariantState:
    """One variant as it runs: instance type and count, traffic weight, and its own status when known."""

    name: str
    instance_type: str | None
    instance_count: int
    weight: float
    status: str | None = None


@dataclass(frozen=True)
class EndpointState:
    """An endpoint as observed on its target.

    ``reason`` carries the provider's own words when the endpoint failed; ``extra`` keeps provider data
    (ARNs, ports, pod names) that the shared vocabulary has no field for. ``expires_at`` is timezone-aware UTC.
    """

    name: str
    target: str
    kind: str
    status: EndpointStatus
    url: str | None = None
    variants: tuple[VariantState, ...] = ()
    reason: str | None = None
    spec_hash: str | None = None
    region: str | None = None
    expires_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (what ``--json`` prints); secrets are never part of a state."""
        return {
            "name": self.name,
            "target": self.target,
            "kind": self.kind,
            "status": self.status.value,
            "url": self.url,
            "region": self.region,
            "spec_hash": self.spec_hash,
            "reason": self.reason,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "variants": [
                {
                    "name": v.name,
                    "instance_type": v.instance_type,
                    "instance_count": v.instance_count,
                    "weight": v.weight,
                    "status": v.status,
                }
                for v in self.variants
            ],
            "extra": dict(self.extra),
        }


# ---- the expiry codec -----------------------------------------------------------------------------------------
# ISO 8601 date and time, in the extended (2030-01-01T12:00:00Z) or the basic (20300101T120000Z) form; seconds and
# a fraction of a second optional; a zone of Z, ±HH, ±HHMM or ±HH:MM, or none. A regular expression rather than
# datetime.fromisoformat, whose accepted forms differ between Python 3.10 and 3.11 (only 3.11 reads "Z" and the
# basic form: https://docs.python.org/3/library/datetime.html#datetime.datetime.fromisoformat).
_EXPIRY_PATTERN = re.compile(
    r"""
    (?P<year>\d{4}) (?P<date_separator>-?) (?P<month>\d{2}) (?P=date_separator) (?P<day>\d{2})
    [Tt\ ]
    (?P<hour>\d{2}) (?P<time_separator>:?) (?P<minute>\d{2})
    (?: (?P=time_separator) (?P<second>\d{2}) (?: [.,] (?P<fraction>\d+) )? )?
    (?P<zone> [Zz] | (?P<sign>[+-]) (?P<offset_hours>\d{2}) (?: :? (?P<offset_minutes>\d{2}) )? )?
    """,
    re.VERBOSE | re.ASCII,
)


def encode_expiry(moment: datetime) -> str:
    """The ``endpointkit-expires-at`` value of ``moment``: UTC, whole seconds, ``20300101T120000Z``.

    The one form written on every target: it holds no ``:``, so it is a valid Kubernetes label value as well as an
    AWS tag value and a JSON string. A naive ``moment`` is taken as UTC; a fraction of a second is dropped.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    utc = moment.astimezone(timezone.utc)
    return f"{utc.year:04d}{utc.month:02d}{utc.day:02d}T{utc.hour:02d}{utc.minute:02d}{utc.second:02d}Z"


def decode_expiry(value: str | None, *, endpoint: str) -> datetime | None:
    """An ``endpointkit-expires-at`` value as a timezone-aware UTC datetime, or None for no expiry.

    Reads what :func:`encode_expiry` writes and every form earlier versions deployed: ``2030-01-01T12:00:00Z``
    (SageMaker tags), ``2030-01-01T12:00:00+00:00`` (local ``endpoint.json``), ``20300101T120000Z`` (AKS
    labels). More generally an ISO 8601 date and time, extended or basic form, with or without seconds and a
    fraction of a second; an offset is converted to UTC and a time without one is taken as UTC (the value is
    documented as UTC). ``None`` or a blank value is no expiry. Anything else is logged as a warning naming
    ``endpoint`` and read as no expiry, so one hand-edited value can neither break a listing nor get an endpoint
    reaped.
    """
    if value is None or not value.strip():
        return None
    moment = _parse(value.strip())
    if moment is None:
        logger.warning(
            "endpoint %s has an unreadable %s tag %r (expected a UTC time such as %s): "
            "treating it as having no expiry",
            endpoint,
            EXPIRES_AT_TAG,
            value,
            "20300101T120000Z or 2030-01-01T12:00:00Z",
        )
    return moment


def _parse(text: str) -> datetime | None:
    """``text`` read by :data:`_EXPIRY_PATTERN` as UTC, or None when it does not match or is no real time."""
    match = _EXPIRY_PATTERN.fullmatch(text)
    # One form throughout: a basic date with an extended time (or the reverse) is a typo, not a time.
    if match is None or bool(match["date_separator"]) != bool(match["time_separator"]):
        return None
    zone = timezone.utc
    if match["sign"] is not None:
        offset_hours, offset_minutes = int(match["offset_hours"]), int(match["offset_minutes"] or 0)
        if offset_hours > 23 or offset_minutes > 59:
            return None
        offset = timedelta(hours=offset_hours, minutes=offset_minutes)
        zone = timezone(-offset if match["sign"] == "-" else offset)
    try:
        moment = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"] or 0),
            int((match["fraction"] or "0")[:6].ljust(6, "0")),
            tzinfo=zone,
        )
        return moment.astimezone(timezone.utc)
    # ValueError: a field out of range (month 13, hour 24); OverflowError: an offset past year 1 or 9999.
    except (ValueError, OverflowError):
        return None
