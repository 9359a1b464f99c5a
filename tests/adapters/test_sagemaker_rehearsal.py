"""The local rehearsal of a SageMaker deployment: the very archive SageMaker would get, served by a real
tritonserver in SageMaker mode, checked, and torn down, before any SageMaker call (moto records every call)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import endpointkit as ek
from endpointkit._rehearsal import extract_archive, rehearse
from endpointkit.adapters.base import Adapter, EndpointState, VerifyHook
from endpointkit.errors import MissingDependencyError, ProviderError, SpecError, VerificationError
from endpointkit.spec import Deployment, Spec
from tests.adapters.conftest import servers_under, write_model
from tests.adapters.sagemaker_fixtures import BUCKET, SageMakerWorld

pytest_plugins = ["tests.adapters.sagemaker_fixtures"]

INPUTS = {"INPUT0": np.arange(4, dtype=np.float32)}
DOUBLING = textwrap.dedent(
    """
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            return [
                pb_utils.InferenceResponse(
                    [pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy() * 2)]
                )
                for r in requests
            ]
    """
)
RAISING = textwrap.dedent(
    """
    class TritonPythonModel:
        def execute(self, requests):
            raise RuntimeError("the tokenizer file is missing")
    """
)
NOT_LOADING = textwrap.dedent(
    """
    class TritonPythonModel:
        def initialize(self, args):
            raise RuntimeError("weights are corrupt")

        def execute(self, requests):
            return []
    """
)


class Workspace:
    """Where rehearsals put their temporary folders (``tempfile.tempdir``), to check that nothing is left."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def leftovers(self) -> list[str]:
        return sorted(path.name for path in self.root.iterdir())

    def servers(self) -> list[int]:
        return servers_under(self.root, program=None)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return Workspace(root)


def _spec(world: SageMakerWorld, repository: Path | str) -> Spec:
    return world.spec(
        model={"repository": str(repository), "environment": {"SAGEMAKER_TRITON_LOG_VERBOSE": "1"}}
    )


def _doubling_hook(seen: list[EndpointState]) -> Callable[[Deployment, Adapter], VerifyHook]:
    """A make_hook whose check invokes the rehearsed endpoint and compares the outputs."""

    def make_hook(deployment: Deployment, adapter: Adapter) -> VerifyHook:
        def hook(state: EndpointState) -> None:
            seen.append(state)
            result = ek.invoke_endpoint(state, INPUTS, adapter=adapter)
            np.testing.assert_array_equal(result["OUTPUT0"], INPUTS["INPUT0"] * 2)

        return hook

    return make_hook


def test_a_good_model_passes_its_check_over_the_sagemaker_protocol_and_leaves_nothing(
    sagemaker_world: SageMakerWorld, workspace: Workspace, tmp_path: Path
) -> None:
    repository = write_model(tmp_path / "good", "doubler", DOUBLING)
    spec = _spec(sagemaker_world, repository)
    seen: list[EndpointState] = []

    rehearse(spec.deployment(), sagemaker_world.adapter(spec), _doubling_hook(seen))

    (state,) = seen
    assert state.kind == "local" and state.target == "rehearsal"
    assert state.extra["protocol"] == "sagemaker" and str(state.url).endswith("/invocations")
    assert [variant.name for variant in state.variants] == ["primary"]
    assert state.extra["default_model"] == "doubler"
    assert sagemaker_world.hooks.calls == []
    assert workspace.servers() == [] and workspace.leftovers() == []


def test_a_model_that_raises_on_its_first_request_fails_before_any_sagemaker_call(
    sagemaker_world: SageMakerWorld, workspace: Workspace, tmp_path: Path
) -> None:
    repository = write_model(tmp_path / "raising", "tokenizer", RAISING)
    spec = _spec(sagemaker_world, repository)

    with pytest.raises(VerificationError) as raised:
        rehearse(spec.deployment(), sagemaker_world.adapter(spec), _doubling_hook([]))

    assert "tokenizer" in str(raised.value) and "the tokenizer file is missing" in str(raised.value)
    assert isinstance(raised.value.__cause__, ProviderError)
    assert sagemaker_world.hooks.calls == []
    assert workspace.servers() == [] and workspace.leftovers() == []


def test_a_model_that_does_not_load_fails_with_the_load_error_before_any_call(
    sagemaker_world: SageMakerWorld, workspace: Workspace, tmp_path: Path
) -> None:
    repository = write_model(tmp_path / "broken", "corrupt", NOT_LOADING)
    spec = _spec(sagemaker_world, repository)
    checked: list[EndpointState] = []

    with pytest.raises(ProviderError) as raised:
        rehearse(spec.deployment(), sagemaker_world.adapter(spec), _doubling_hook(checked))

    assert "weights are corrupt" in str(raised.value)
    assert checked == []
    assert sagemaker_world.hooks.calls == []
    assert workspace.servers() == [] and workspace.leftovers() == []


def test_the_rehearsed_archive_is_byte_for_byte_the_uploaded_one(
    sagemaker_world: SageMakerWorld, workspace: Workspace, tmp_path: Path
) -> None:
    spec = sagemaker_world.spec()
    adapter = sagemaker_world.adapter(spec)
    with adapter.rehearsal_artifact(spec.deployment()) as artifact:
        rehearsed = hashlib.sha256(artifact.archive.read_bytes()).hexdigest()
        assert artifact.default_model == "echo"
        assert artifact.environment["SAGEMAKER_TRITON_LOG_VERBOSE"] == "1"
    assert sagemaker_world.hooks.calls == [] and workspace.leftovers() == []

    ek.apply(spec, adapter=adapter)

    (key,) = sagemaker_world.objects()
    uploaded = sagemaker_world.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(uploaded).hexdigest() == rehearsed


def test_an_archive_already_in_s3_is_rehearsed_as_it_is_without_a_sagemaker_call(
    sagemaker_world: SageMakerWorld, workspace: Workspace, tmp_path: Path
) -> None:
    archive = io.BytesIO()
    with tarfile.open(
        fileobj=archive, mode="w:gz"
    ) as tar:  # as `tar czf model.tar.gz -C repository .` writes it
        tar.add(write_model(tmp_path / "given", "doubler", DOUBLING), arcname=".")
    sagemaker_world.client("s3").put_object(Bucket=BUCKET, Key="given/model.tar.gz", Body=archive.getvalue())
    spec = _spec(sagemaker_world, f"s3://{BUCKET}/given/model.tar.gz")
    seen: list[EndpointState] = []

    rehearse(spec.deployment(), sagemaker_world.adapter(spec), _doubling_hook(seen))

    assert len(seen) == 1
    assert {service for service, _ in sagemaker_world.hooks.calls} == {"s3"}
    assert workspace.servers() == [] and workspace.leftovers() == []


def test_without_tritonserver_the_error_says_how_to_skip_the_rehearsal(
    sagemaker_world: SageMakerWorld, workspace: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ENDPOINTKIT_TRITONSERVER", str(tmp_path / "no-tritonserver-here"))
    spec = sagemaker_world.spec()

    with pytest.raises(MissingDependencyError, match="--no-rehearse"):
        rehearse(spec.deployment(), sagemaker_world.adapter(spec), lambda deployment, adapter: None)

    assert sagemaker_world.hooks.calls == [] and workspace.leftovers() == []


def _archive(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, content in members:
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, **fields: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("/etc/cron.d/evil"),
        _member("model/../../evil"),
        _member("model/link", tarfile.SYMTYPE, linkname="/etc/passwd"),
        _member("model/hard", tarfile.LNKTYPE, linkname="model/config.pbtxt"),
        _member("model/fifo", tarfile.FIFOTYPE),
    ],
    ids=["absolute", "dot-dot", "symlink", "hardlink", "fifo"],
)
def test_extraction_refuses_unsafe_members_before_writing_anything(
    tmp_path: Path, member: tarfile.TarInfo
) -> None:
    archive = _archive(
        tmp_path / "model.tar.gz",
        (_member("model/config.pbtxt"), b'name: "model"'),
        (member, b"x" if member.isfile() else b""),
    )

    with pytest.raises(SpecError, match="refusing to extract"):
        extract_archive(archive, tmp_path / "out")

    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_extraction_writes_files_and_folders_with_plain_modes(tmp_path: Path) -> None:
    archive = _archive(
        tmp_path / "model.tar.gz",
        (_member("model", tarfile.DIRTYPE, mode=0o777), b""),
        (_member("model/run.sh", mode=0o4777), b"#!/bin/sh\n"),
        (_member("model/config.pbtxt", mode=0o666), b'name: "model"'),
    )

    root = extract_archive(archive, tmp_path / "out")

    assert (root / "model" / "config.pbtxt").read_bytes() == b'name: "model"'
    assert (root / "model" / "run.sh").stat().st_mode & 0o7777 == 0o755
    assert (root / "model" / "config.pbtxt").stat().st_mode & 0o7777 == 0o644


def test_apply_rehearses_a_spec_with_checks_and_stops_before_any_sagemaker_call(
    sagemaker_world: SageMakerWorld, workspace: Workspace, tmp_path: Path
) -> None:
    repository = write_model(tmp_path / "raising", "tokenizer", RAISING)
    np.save(tmp_path / "input.npy", INPUTS["INPUT0"])
    spec = sagemaker_world.spec(
        model={"repository": str(repository)},
        verify=[{"name": "answers", "inputs": {"INPUT0": str(tmp_path / "input.npy")}, "max_p99": "1h"}],
    )

    with pytest.raises(VerificationError, match="the tokenizer file is missing"):
        ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    assert sagemaker_world.hooks.calls == []  # not even the plan's reads
    assert workspace.servers() == [] and workspace.leftovers() == []


def test_apply_without_checks_or_with_no_rehearse_does_not_rehearse(
    sagemaker_world: SageMakerWorld, workspace: Workspace, tmp_path: Path
) -> None:
    repository = write_model(tmp_path / "raising", "tokenizer", RAISING)
    spec = sagemaker_world.spec(model={"repository": str(repository)})
    state = ek.apply(spec, adapter=sagemaker_world.adapter(spec), rehearse=True)
    assert state.status is ek.EndpointStatus.IN_SERVICE  # no checks: nothing to rehearse, moto serves it
    assert workspace.servers() == []
