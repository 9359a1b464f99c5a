"""Local endpoints without their specs: listing the state folder, and destroying a listed endpoint."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from endpointkit._wait import Progress
from endpointkit.adapters.base import EndpointState, EndpointStatus
from endpointkit.adapters.local._files import remove
from endpointkit.adapters.local._servers import ServerSupervisor
from endpointkit.adapters.local._state import (
    EndpointPaths,
    EndpointRecord,
    endpoint_lock,
    is_endpoint_name,
    load_record,
    load_starting,
    process_alive,
    read_state,
)
from endpointkit.errors import ConflictError, ProviderError
from endpointkit.spec import Timeouts

__all__ = ["UNREADABLE", "Reaper"]

logger = logging.getLogger("endpointkit.adapters.local")

# Without a spec there are no timeouts to read: destroying by state waits as long as a default spec would.
_DESTROY_TIMEOUT = Timeouts().delete
UNREADABLE = (OSError, ValueError, TypeError, KeyError)
"""What a state file that cannot be read raises while it is parsed (bad JSON, missing or unknown fields)."""


class Reaper:
    """``list_endpoints`` and ``destroy_by_state`` of ``LocalAdapter``, which documents them."""

    def __init__(self, servers: ServerSupervisor, *, root: Path, target_name: str) -> None:
        self._servers = servers
        self._root = root
        self._target_name = target_name

    def list_endpoints(self) -> list[EndpointState]:
        try:
            folders = sorted(entry for entry in self._root.iterdir() if entry.is_dir())
        except FileNotFoundError:
            return []
        except OSError as error:
            raise ProviderError(
                f"cannot list the local state folder {self._root}: {error.strerror or error}",
                provider="local",
                operation="list",
            ) from error
        states: list[EndpointState] = []
        for folder in folders:
            if not is_endpoint_name(folder.name):
                continue  # .locks and anything endpointkit did not name
            paths = EndpointPaths(self._root, folder.name)
            try:
                record = load_record(paths)
                state = read_state(paths, record, target_name=self._target_name, ready=lambda server: True)
            except UNREADABLE as error:
                logger.warning("local endpoint %s: cannot read %s: %s", folder.name, paths.record, error)
                states.append(
                    EndpointState(
                        folder.name,
                        self._target_name,
                        "local",
                        EndpointStatus.UNKNOWN,
                        reason=f"cannot read {paths.record}: {error}",
                        extra={"state_root": str(paths.root), "state_dir": str(paths.directory)},
                    )
                )
                continue
            if state.status is not EndpointStatus.NOT_FOUND:
                states.append(dataclasses.replace(state, name=folder.name, target=self._target_name))
        return states

    def destroy_by_state(self, state: EndpointState, progress: Progress | None) -> None:
        paths = self.owned_paths(state)
        with endpoint_lock(paths, timeout=_DESTROY_TIMEOUT):
            record = _read_record(paths)
            listed = {server.pid for server in record.servers} if record is not None else set()
            orphans = [entry.server for entry in load_starting(paths) if entry.server.pid not in listed]
            if record is None and not orphans:
                paths.prune()
                return
            if record is not None and state.expires_at is not None and record.expires != state.expires_at:
                raise ConflictError(
                    f"local endpoint {paths.name} was applied again since it was listed (it now expires at "
                    f"{record.expires.isoformat() if record.expires else 'never'}); not destroyed",
                    provider="local",
                    operation="delete",
                    code="Changed",
                )
            servers = [*(record.servers if record is not None else ()), *orphans]
            self._servers.report(progress, paths.name, "DELETING", 0.0, _DESTROY_TIMEOUT)
            self._servers.stop(paths, servers)
            survivors = [
                pid for server in servers for pid, ticks in server.processes() if process_alive(pid, ticks)
            ]
            if survivors:
                raise ProviderError(
                    f"local endpoint {paths.name}: tritonserver pid(s) {survivors} did not exit after SIGKILL; "
                    f"its state is kept in {paths.directory}",
                    provider="local",
                    operation="delete",
                    code="StillRunning",
                )
            for leftover in (paths.key, paths.logs, paths.configs, paths.models, paths.starting):
                remove(leftover)
            remove(paths.record)
            remove(paths.directory)
        logger.info(
            "local endpoint %s destroyed (servers %s)", paths.name, [server.pid for server in servers]
        )

    def owned_paths(self, state: EndpointState) -> EndpointPaths:
        """The files of the endpoint ``state`` names, refusing names and roots this adapter does not manage."""
        if not is_endpoint_name(state.name):
            raise ConflictError(
                f"{state.name!r} is not a local endpoint name, so it is not managed by endpointkit under "
                f"{self._root}",
                provider="local",
                operation="delete",
                code="NotManaged",
            )
        root = state.extra.get("state_root")
        if root and Path(str(root)).expanduser().resolve() != self._root:
            raise ConflictError(
                f"local endpoint {state.name} lives under {root}, not under this adapter's state root "
                f"{self._root}; destroy it with LocalAdapter.from_state(state)",
                provider="local",
                operation="delete",
                code="OtherStateRoot",
            )
        return EndpointPaths(self._root, state.name)


def _read_record(paths: EndpointPaths) -> EndpointRecord | None:
    try:
        return load_record(paths)
    except UNREADABLE as error:
        raise ProviderError(
            f"cannot read {paths.record} of local endpoint {paths.name} ({error}), so its servers "
            "cannot be found; stop them and remove the folder by hand",
            provider="local",
            operation="delete",
            code="UnreadableState",
        ) from error
