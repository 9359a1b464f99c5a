"""Drift shared by every adapter: tags (labels on AKS) removed or changed by hand."""

from __future__ import annotations

from collections.abc import Mapping

from endpointkit._endpoint_state import EXPIRES_AT_TAG, SPEC_HASH_TAG
from endpointkit._observations import Drift

__all__ = ["TAG_FIELD_PREFIX", "tag_drift"]

#: the field of a tag's drift is ``tags.KEY``; drift made only of such fields is repaired by re-tagging
TAG_FIELD_PREFIX = "tags."

# Their values change without anyone touching the endpoint: the spec hash with every edit of the spec (a change
# plan shows by itself), the expiry with the time of each apply. Only their absence is drift.
_PRESENCE_ONLY = frozenset({SPEC_HASH_TAG, EXPIRES_AT_TAG})


def tag_drift(live: Mapping[str, str], wanted: Mapping[str, str]) -> list[Drift]:
    """One Drift per tag the spec puts on the endpoint that is missing live or has another value.

    Tags found live and not asked for are not drift: the cloud and other tools add their own.
    """
    found: list[Drift] = []
    for key, value in sorted(wanted.items()):
        current = live.get(key)
        if current is None or (key not in _PRESENCE_ONLY and current != value):
            found.append(Drift(f"{TAG_FIELD_PREFIX}{key}", current, value))
    return found
