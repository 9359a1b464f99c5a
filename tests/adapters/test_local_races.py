"""An update and a ``destroy`` of the same endpoint at once leave nothing on disk, whichever goes first.

Each race is played in a fixed order: one side is an adapter that holds itself at a chosen call until the test
releases it, while the other side runs to its end.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

import endpointkit as ek
from endpointkit._wait import Progress
from endpointkit.adapters.base import DesiredState, ResourceKind, VerifyHook
from endpointkit.adapters.local import LocalAdapter
from endpointkit.spec import Deployment, LocalTarget, Spec
from tests.adapters.conftest import IDENTITY_MODEL, servers_under
from tests.adapters.test_local import adapter_for, local_spec

pytestmark = pytest.mark.triton

_BOUND = 120.0


class HeldAdapter(LocalAdapter):
    """A LocalAdapter that holds at its first call of ``held`` (``delete`` or ``update_endpoint``) until released."""

    def __init__(self, target: LocalTarget, *, held: str) -> None:
        super().__init__(target)
        self.held = held
        self.holding = threading.Event()
        self.release = threading.Event()

    def _hold(self, call: str) -> None:
        if call == self.held and not self.holding.is_set():
            self.holding.set()
            assert self.release.wait(_BOUND), "the test never released the held call"

    def delete(
        self, deployment: Deployment, kind: ResourceKind, name: str, *, progress: Progress | None = None
    ) -> None:
        self._hold("delete")
        super().delete(deployment, kind, name, progress=progress)

    def update_endpoint(
        self,
        deployment: Deployment,
        desired: DesiredState,
        *,
        progress: Progress | None = None,
        verify: VerifyHook | None = None,
    ) -> None:
        self._hold("update_endpoint")
        super().update_endpoint(deployment, desired, progress=progress, verify=verify)


def held_adapter(spec: Spec, held: str) -> HeldAdapter:
    target = spec.deployment("local").target
    assert isinstance(target, LocalTarget)
    return HeldAdapter(target, held=held)


def in_thread(call: Any, *arguments: Any, **options: Any) -> tuple[threading.Thread, list[Any]]:
    """Run ``call`` in a thread; its result, or the exception it raised, lands in the returned list."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call(*arguments, **options))
        except Exception as error:  # the test asserts on it
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def two_versions(identity_repository: Path, state_root: Path, tmp_path: Path) -> tuple[Spec, Spec]:
    """Two specs of one endpoint whose model copies and configs differ (the second adds a file to the model)."""
    repository = tmp_path / "repository"
    shutil.copytree(identity_repository, repository)
    first = local_spec(repository, state_root, name="raced")
    second_repository = tmp_path / "repository-2"
    shutil.copytree(repository, second_repository)
    (second_repository / IDENTITY_MODEL / "1" / "NOTES.txt").write_text("version 2\n")
    return first, local_spec(second_repository, state_root, name="raced")


def test_destroy_that_read_before_an_update_removes_the_updates_model_and_config(
    identity_repository: Path, state_root: Path, tmp_path: Path
) -> None:
    first, second = two_versions(identity_repository, state_root, tmp_path)
    updater = adapter_for(second)
    ek.apply(first, adapter=updater)
    destroyer = held_adapter(first, "delete")
    destroying, destroyed = in_thread(ek.destroy, first, adapter=destroyer)
    try:
        assert destroyer.holding.wait(_BOUND)  # the destroy has read the first version, changed nothing yet

        updated = ek.apply(second, adapter=updater)
        assert updated.extra["config"] != ek.plan(first, adapter=updater).desired.config.name
    finally:
        destroyer.release.set()
        destroying.join(_BOUND)
        updater.close()
        destroyer.close()

    assert destroyed == [True]
    assert servers_under(state_root) == []
    assert not (state_root / "raced").exists()


def test_update_that_finds_its_endpoint_destroyed_leaves_nothing_behind(
    identity_repository: Path, state_root: Path, tmp_path: Path
) -> None:
    first, second = two_versions(identity_repository, state_root, tmp_path)
    destroyer = adapter_for(first)
    ek.apply(first, adapter=destroyer)
    updater = held_adapter(second, "update_endpoint")
    updating, updated = in_thread(ek.apply, second, adapter=updater)
    try:
        assert updater.holding.wait(_BOUND)  # the update has copied its model and written its config

        assert ek.destroy(first, adapter=destroyer) is True
    finally:
        updater.release.set()
        updating.join(_BOUND)
        updater.close()
        destroyer.close()

    (error,) = updated
    assert isinstance(error, ek.NotFoundError)
    assert servers_under(state_root) == []
    assert not (state_root / "raced").exists()
