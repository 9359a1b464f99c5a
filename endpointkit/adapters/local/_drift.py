"""Drift on the local target: a recorded tritonserver that died, or whose HTTP port no longer answers.

``apply`` repairs either: a dead server makes the endpoint FAILED, which plan replaces; one that runs but does
not answer makes an update, and ``_rollout`` relaunches an endpoint on its own config when a server does not serve.
"""

from __future__ import annotations

from endpointkit._observations import Drift
from endpointkit.adapters.base import EndpointState, EndpointStatus

__all__ = ["server_drift"]


def server_drift(state: EndpointState) -> tuple[Drift, ...]:
    """One Drift per variant whose recorded server does not serve, from the state ``read`` already made.

    Sends no request: the state's variant statuses come from the pid check and the readiness probe of the read.
    An endpoint still starting (no ``endpoint.json`` yet) has no recorded servers, so no drift.
    """
    servers = {server["variant"]: server for server in state.extra.get("servers", [])}
    found: list[Drift] = []
    for variant in state.variants:
        server = servers.get(variant.name)
        if server is None:
            continue
        field = f"variants.{variant.name}.server"
        if variant.status == EndpointStatus.FAILED.value:
            found.append(Drift(field, f"not running (pid {server['pid']})", "running"))
        elif variant.status == EndpointStatus.UNKNOWN.value:
            found.append(Drift(field, f"not answering on port {server['http_port']}", "ready"))
    return tuple(found)
