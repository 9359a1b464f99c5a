"""A SageMaker deployment rehearsed on this machine first: the very archive SageMaker would get, on a local Triton.

A model that fails to load, or fails its first request, costs a SageMaker update many minutes (a new fleet
started, then rolled back) and the bill for them; here it fails in seconds, before any SageMaker call::

    rehearse(deployment, sagemaker_adapter, verification.verify_hook)

1. ``SageMakerAdapter.rehearsal_artifact`` builds the ``model.tar.gz`` exactly as the upload would (same code
   path, same bytes; an ``s3://`` archive is downloaded), with the default model its container would load;
2. the archive is extracted into a temporary folder, refusing absolute names, ``..``, links and special files
   (:func:`extract_archive`);
3. a local endpoint serves it: a :class:`~endpointkit.adapters.local.LocalAdapter` with the SageMaker protocol
   (``/ping`` and ``/invocations`` with SageMaker's content types, as the SageMaker container answers) and its
   state in the temporary folder; one CPU variant, named after the spec's first (instance types and
   accelerators are SageMaker's business), the spec's ``model.environment`` and ``timeouts``;
4. the hook ``make_hook(local_deployment, local_adapter)`` gives (the ``verify`` checks) runs against it;
5. the local endpoint is destroyed and the folder removed, whatever happened.

Limits: the rehearsal runs on CPU, so a model that needs a GPU (a TensorRT plan, ``KIND_GPU`` instance groups)
cannot be rehearsed on a machine without one; skip the rehearsal for it (``--no-rehearse``).

This module sits above ``provisioners`` and below ``_api`` (importlinter layers): it runs a local plan and
destroy with the provisioner, and is the one place that uses both the local and the SageMaker adapter.
"""

from __future__ import annotations

import logging
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from endpointkit._wait import Progress
from endpointkit.adapters.base import Adapter, EndpointState, VerifyHook
from endpointkit.adapters.local import LocalAdapter, find_tritonserver
from endpointkit.adapters.sagemaker import SageMakerAdapter
from endpointkit.errors import (
    MissingDependencyError,
    PayloadError,
    ProviderError,
    SpecError,
    VerificationError,
)
from endpointkit.provisioners import apply_plan, destroy_endpoint, make_plan
from endpointkit.spec import Deployment, LocalTarget, ModelSection, Spec, Variant

__all__ = ["REHEARSAL_TARGET", "MakeHook", "extract_archive", "rehearsal_deployment", "rehearse"]

logger = logging.getLogger("endpointkit")

REHEARSAL_TARGET = "rehearsal"
"""The target name of the local rehearsal endpoint (what its states and check subjects say)."""
MakeHook = Callable[[Deployment, Adapter], VerifyHook | None]
"""Builds the checks of a deployment against an adapter (``verification.verify_hook``); None: nothing to check."""
_NO_REHEARSE = "skip the rehearsal with `endpointkit apply --no-rehearse`"


def rehearse(
    deployment: Deployment,
    adapter: SageMakerAdapter,
    make_hook: MakeHook,
    *,
    progress: Progress | None = None,
) -> None:
    """Serve the archive ``adapter`` would deploy on a local tritonserver, run the checks on it, tear it down.

    Blocks until the local endpoint is ready, checked and gone. Makes no SageMaker call (an ``s3://`` archive is
    read from S3). Without checks (``make_hook`` returns None), the rehearsal proves that the archive loads.

    Args:
        deployment: the spec resolved for its SageMaker target.
        adapter: the SageMaker adapter the deployment will be applied with.
        make_hook: builds the checks for the local deployment and adapter (it is called before any server
            starts, so a check that cannot load fails first).
        progress: called with each ``ProgressEvent`` while the local server starts and stops.

    Raises:
        MissingDependencyError: no tritonserver on this machine; the message says how to skip the rehearsal.
        ProviderError: the archive does not load (tritonserver exited; the message carries its log lines).
        ProvisionTimeout: the local server was not ready within ``timeouts.create``.
        VerificationError: a check failed, or a request to the rehearsed model failed (the message names it).
        SpecError: the spec is not deployable on SageMaker, or the archive holds an unsafe member.
    """
    tritonserver = _tritonserver_setting(deployment.spec)
    try:
        find_tritonserver(tritonserver)
    except MissingDependencyError as exc:
        raise MissingDependencyError(
            f"endpoint {deployment.name} is rehearsed on a local tritonserver before SageMaker gets it: {exc} "
            f"Or {_NO_REHEARSE}."
        ) from exc
    with tempfile.TemporaryDirectory(prefix="endpointkit-rehearsal-", ignore_cleanup_errors=True) as folder:
        workspace = Path(folder)
        with adapter.rehearsal_artifact(deployment) as artifact:
            repository = extract_archive(artifact.archive, workspace / "repository")
        local = rehearsal_deployment(
            deployment,
            repository,
            default_model=artifact.default_model,
            state_dir=workspace / "state",
            tritonserver=tritonserver,
        )
        assert isinstance(local.target, LocalTarget)
        local_adapter = LocalAdapter(local.target, target_name=REHEARSAL_TARGET)
        try:
            _run(local, local_adapter, make_hook, progress)
        finally:
            local_adapter.close()


def _run(local: Deployment, adapter: LocalAdapter, make_hook: MakeHook, progress: Progress | None) -> None:
    """Apply the local deployment, run the checks, destroy it (also when anything fails)."""
    try:
        hook = make_hook(local, adapter)
        state = apply_plan(local, adapter, make_plan(local, adapter), progress=progress)
        if hook is not None:
            _check(hook, state)
    except BaseException:
        try:
            destroy_endpoint(local, adapter, progress=progress)
        except Exception as cleanup_error:  # the rehearsal's own failure is what the user needs
            logger.error("could not stop the rehearsal of %s: %s", local.name, cleanup_error)
        raise
    destroy_endpoint(local, adapter, progress=progress)


def _check(hook: VerifyHook, state: EndpointState) -> None:
    """Run ``hook``; a request that failed on the way (the model raised, an undecodable answer) fails the check."""
    try:
        hook(state)
    except (ProviderError, PayloadError) as exc:
        raise VerificationError(
            f"the rehearsal of endpoint {state.name} on a local tritonserver failed, before any SageMaker call: {exc}",
            check=REHEARSAL_TARGET,
            detail=str(exc),
            subject=f"rehearsal of endpoint {state.name}",
        ) from exc


def rehearsal_deployment(
    deployment: Deployment,
    repository: Path,
    *,
    default_model: str | None,
    state_dir: Path,
    tritonserver: str | None = None,
) -> Deployment:
    """The local deployment that rehearses ``deployment``: the extracted ``repository`` behind the SageMaker
    protocol, one CPU variant named after the first of the spec, state in ``state_dir``; the spec's model
    environment, timeouts, checks and folder (checks name files relative to it) are kept."""
    source = deployment.spec
    spec = Spec(
        name=source.name,
        model=ModelSection(
            repository=str(repository),
            default_model=default_model,
            environment=dict(source.model.environment),
        ),
        variants=[Variant(name=deployment.variants[0].name)],
        timeouts=source.timeouts,
        targets={
            REHEARSAL_TARGET: LocalTarget(
                kind="local", sagemaker_protocol=True, state_dir=str(state_dir), tritonserver=tritonserver
            )
        },
        verify=list(source.verify),
        base_dir=source.base_dir,
    )
    return spec.deployment(REHEARSAL_TARGET)


def _tritonserver_setting(spec: Spec) -> str | None:
    """The ``tritonserver`` a local target of the spec names (resolved against the spec's folder), else None."""
    for target in spec.targets.values():
        if isinstance(target, LocalTarget) and target.tritonserver:
            path = Path(target.tritonserver).expanduser()
            return str(path if path.is_absolute() else (spec.base_dir / path).resolve())
    return None


def extract_archive(archive: Path, destination: Path) -> Path:
    """Extract a ``model.tar.gz`` into ``destination`` (created; it must not exist) and return it.

    Every member is checked before anything is written: only regular files and folders, with relative names
    that stay inside ``destination`` (no absolute name, no ``..``, no link, device or fifo). Files are written
    0644 (0755 when executable), whatever the archive says.

    Raises:
        SpecError: the archive cannot be read, or a member is unsafe (naming it).
    """
    destination.mkdir(mode=0o700)
    root = destination.resolve()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            targets = [(member, _member_path(member, root, archive)) for member in members]
            for member, target in targets:
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - a regular file always has content
                    raise SpecError(f"{archive}: cannot read {member.name}", field="model.repository")
                with source, target.open("wb") as output:
                    shutil.copyfileobj(source, output)
                target.chmod(0o755 if member.mode & stat.S_IXUSR else 0o644)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SpecError(
            f"cannot extract the model archive {archive}: {exc}", field="model.repository"
        ) from exc
    return destination


def _member_path(member: tarfile.TarInfo, root: Path, archive: Path) -> Path:
    """Where a member goes under ``root``; SpecError for anything but a plain file or folder inside it."""
    name = PurePosixPath(member.name)
    if not (member.isfile() or member.isdir()):
        problem = "a link" if member.issym() or member.islnk() else "not a regular file or folder"
    elif member.isdir() and not name.parts and not member.name.startswith(("/", "\\")):
        return root  # "./", as `tar -C repository .` writes it
    elif name.is_absolute() or member.name.startswith(("/", "\\")) or ".." in name.parts or not name.parts:
        problem = "an absolute name or one that leaves the archive's folder"
    else:
        target = (root / Path(*name.parts)).resolve()
        if target == root or not target.is_relative_to(root):
            problem = "a name that leaves the archive's folder"
        else:
            return target
    raise SpecError(
        f"model archive {archive.name} holds {member.name!r}, {problem}: refusing to extract it",
        field="model.repository",
    )
