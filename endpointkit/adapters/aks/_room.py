"""Whether an accelerator pool has room for an update: the new version runs beside the old one until the routes
move, so for a while the pool holds both. Pure: reads the plan and what :func:`observe` found."""

from __future__ import annotations

import math

from endpointkit.adapters.aks._desired import EndpointPlan
from endpointkit.adapters.aks._kube import Observation
from endpointkit.adapters.aks._rules import pool_capacity
from endpointkit.spec import AksTarget

__all__ = ["room_note"]

_DEVICE = {"gpu": "GPU", "fpga": "FPGA card"}


def room_note(plan: EndpointPlan, observation: Observation, target: AksTarget) -> str | None:
    """A plan line when the pool cannot hold the running version and the new one at once, else None.

    Counts the accelerators of this endpoint alone (pods of other endpoints on the pool only make it worse), the
    running versions by their variant's accelerators per replica in the spec. Without room the new pods stay
    Pending with the scheduler's "Insufficient" reason, which ends the update's wait and rolls it back, so the
    line names the pool size that fits both, or autoscaling.
    """
    if plan.pool is None or plan.accelerator not in _DEVICE:
        return None
    per_replica = {variant.name: variant.accelerators for variant in plan.render.variants}
    running_names = {deployment.name for deployment in observation.deployments}
    new = sum(
        variant.replicas * variant.accelerators
        for variant in plan.render.variants
        if plan.versions.get(variant.name) not in running_names
    )
    if new == 0:
        return None
    running = sum(d.replicas * per_replica.get(d.variant, 0) for d in observation.deployments)
    capacity = pool_capacity(target)
    if running + new <= capacity.total:
        return None
    device = _DEVICE[plan.accelerator]
    key = "max_count" if target.node_pool.max_count is not None else "count"
    vms = math.ceil((running + new) / max(capacity.per_vm, 1))
    return (
        f"the update runs the new version beside the old one until traffic moves: {running + new} {device}s at "
        f"once ({running} running, {new} new), but pool {target.node_pool.name} holds at most {capacity.total} "
        f"({capacity.max_vms} x {capacity.per_vm}); set node_pool.{key} to {vms} or more, or the new pods cannot "
        "be scheduled and the update rolls back"
    )
