"""Cloud-agnostic provisioning: plan (pure diff), apply (ordered changes, rollback), destroy, status."""

from __future__ import annotations

from endpointkit.provisioners.apply import apply_plan, destroy_endpoint, make_plan, read_status
from endpointkit.provisioners.plan import Change, Plan, check_capabilities, diff

__all__ = [
    "Change",
    "Plan",
    "apply_plan",
    "check_capabilities",
    "destroy_endpoint",
    "diff",
    "make_plan",
    "read_status",
]
