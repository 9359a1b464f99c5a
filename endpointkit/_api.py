"""The top-level verbs: plan, apply, status, destroy. Each resolves the target, makes its adapter, and closes it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from endpointkit._clients import forget_endpoint
from endpointkit._wait import Progress
from endpointkit.adapters import create_adapter
from endpointkit.adapters.base import Adapter, EndpointState
from endpointkit.provisioners import Plan, apply_plan, destroy_endpoint, make_plan, read_status
from endpointkit.spec import Deployment, Spec, load_spec

__all__ = ["apply", "destroy", "plan", "resolve", "status"]

SpecLike = Spec | str | os.PathLike[str]


def resolve(spec: SpecLike, target: str | None = None, *, check_repository: bool = True) -> Deployment:
    """A spec (or the path of one) resolved for ``target``."""
    loaded = spec if isinstance(spec, Spec) else load_spec(spec, check_repository=check_repository)
    return loaded.deployment(target)


@contextlib.contextmanager
def _adapter_for(
    deployment: Deployment, adapter: Adapter | None, options: dict[str, Any]
) -> Iterator[Adapter]:
    if adapter is not None:
        yield adapter
        return
    created = create_adapter(deployment, **options)
    try:
        yield created
    finally:
        created.close()


def plan(
    spec: SpecLike, target: str | None = None, *, adapter: Adapter | None = None, **options: Any
) -> Plan:
    """What ``apply`` would change. Read-only: checks capabilities, reads the target, diffs.

    Raises:
        SpecError, UnsupportedCapabilityError: before any cloud call.
        ProviderError: reading the target failed.
    """
    deployment = resolve(spec, target)
    with _adapter_for(deployment, adapter, options) as active:
        return make_plan(deployment, active)


def apply(
    spec: SpecLike,
    target: str | None = None,
    *,
    progress: Progress | None = None,
    adapter: Adapter | None = None,
    **options: Any,
) -> EndpointState:
    """Create or update the endpoint and block until it serves (bounded by the spec's timeouts).

    An unchanged spec makes no mutating call. An update is blue/green. On failure everything this run created
    is deleted, what existed before is left serving, and the provider's reason is raised.

    Raises:
        SpecError, UnsupportedCapabilityError: before any cloud call.
        ProviderError (QuotaError, CapacityError, …): the provider refused; carries its reason.
        ProvisionTimeout: the endpoint did not serve within ``timeouts``.
    """
    deployment = resolve(spec, target)
    with _adapter_for(deployment, adapter, options) as active:
        return apply_plan(deployment, active, make_plan(deployment, active), progress=progress)


def status(
    spec: SpecLike, target: str | None = None, *, adapter: Adapter | None = None, **options: Any
) -> EndpointState | None:
    """The endpoint's state, or None when it does not exist. Read-only."""
    deployment = resolve(spec, target, check_repository=False)
    with _adapter_for(deployment, adapter, options) as active:
        return read_status(deployment, active)


def destroy(
    spec: SpecLike,
    target: str | None = None,
    *,
    progress: Progress | None = None,
    adapter: Adapter | None = None,
    **options: Any,
) -> bool:
    """Delete the endpoint, its config and its model, in that order. Idempotent; True when anything existed."""
    deployment = resolve(spec, target, check_repository=False)
    # Pooled keep-alive connections would hold a stopping Triton for its whole exit timeout.
    forget_endpoint(deployment.name)
    with _adapter_for(deployment, adapter, options) as active:
        return destroy_endpoint(deployment, active, progress=progress)
