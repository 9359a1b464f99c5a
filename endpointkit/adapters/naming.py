"""Deterministic names and the tags every managed resource carries."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from endpointkit._endpoint_state import (
    EXPIRES_AT_TAG,
    MANAGED_BY_TAG,
    MANAGED_BY_VALUE,
    SPEC_HASH_TAG,
    encode_expiry,
)
from endpointkit.errors import ConflictError
from endpointkit.spec import Deployment

__all__ = ["changed_since_plan", "content_hash", "content_name", "expires_at", "managed_tags"]


def changed_since_plan(endpoint: str, running: str, wanted: str, *, provider: str) -> ConflictError:
    """The error of a create that finds the endpoint made by another run, on another config, since it planned.

    Creating over it would take the endpoint from that run, and a rollback of this one would then delete an
    endpoint it never made: the create refuses instead, and the provisioner's rollback leaves it alone.
    """
    return ConflictError(
        f"endpoint {endpoint} was created by another run after this one planned, and serves config {running}, "
        f"not {wanted}: run apply again to update it",
        provider=provider,
        operation="create",
        code="ChangedSincePlan",
        details={"running_config": running, "wanted_config": wanted},
    )


def content_hash(content: Mapping[str, Any]) -> str:
    """sha256 (hex) of a JSON-able mapping, independent of key order."""
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def content_name(endpoint: str, content: Mapping[str, Any], *, max_length: int = 63) -> str:
    """``<endpoint>-<8 hex of the content hash>``, cut so the whole fits ``max_length``."""
    suffix = "-" + content_hash(content)[:8]
    return endpoint[: max_length - len(suffix)].rstrip("-") + suffix


def expires_at(deployment: Deployment, *, now: datetime | None = None) -> datetime | None:
    """When a spec with a ``ttl`` expires if applied ``now`` (UTC, whole seconds)."""
    if deployment.spec.ttl is None:
        return None
    start = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    return start + timedelta(seconds=deployment.spec.ttl)


def managed_tags(deployment: Deployment, *, now: datetime | None = None) -> dict[str, str]:
    """The user's tags plus ``managed-by``, ``endpointkit-spec-hash`` and, with a ttl, ``endpointkit-expires-at``
    (written by :func:`~endpointkit._endpoint_state.encode_expiry`, the same form on every target)."""
    tags = dict(deployment.spec.tags)
    tags[MANAGED_BY_TAG] = MANAGED_BY_VALUE
    tags[SPEC_HASH_TAG] = deployment.spec_hash()
    expiry = expires_at(deployment, now=now)
    if expiry is not None:
        tags[EXPIRES_AT_TAG] = encode_expiry(expiry)
    return tags
