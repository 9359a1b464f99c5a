"""Drift into changes: what differs live from the spec becomes a change that ``apply`` carries out.

The adapters find the drift (``ObservedState.drift``, filled by each adapter's ``read``); this module only decides
what repairs it, the same way on every target:

- drift of tags alone is repaired by the tags-only update (the adapter re-tags, no rollout);
- any other drift is an ``update`` of the endpoint whose reason names the drifted fields (the adapter moves the
  endpoint back to the desired config, re-applies its objects or restarts its servers);
- when the endpoint changes anyway (update, replace), the drifted fields are added to that change's reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from endpointkit._observations import Drift
from endpointkit.adapters._drift import TAG_FIELD_PREFIX

__all__ = ["ENDPOINT_CONFIG_FIELD", "drift_fields", "only_tags"]

#: the field of an endpoint moved to a config the spec did not make (SageMaker ``EndpointConfigName``)
ENDPOINT_CONFIG_FIELD = "endpoint_config"


def drift_fields(drift: Sequence[Drift]) -> list[str]:
    """The drifted fields' names, in the order found, each once."""
    return list(dict.fromkeys(item.field for item in drift))


def only_tags(drift: Sequence[Drift]) -> bool:
    """Whether re-tagging alone repairs ``drift`` (it is not empty and every field is a tag)."""
    return bool(drift) and all(item.field.startswith(TAG_FIELD_PREFIX) for item in drift)
