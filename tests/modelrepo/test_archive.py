"""Deterministic model.tar.gz packaging."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from endpointkit.errors import SpecError
from endpointkit.modelrepo import load_repository, package_repository
from tests.modelrepo.builders import write_pipeline

FILES = {
    "net/config.pbtxt": b'name: "net"\n',
    "net/1/model.py": b"print('net')\n",
    "net/1/weights.bin": bytes(range(256)) * 64,
    "net/labels.txt": b"cat\ndog\n",
    "pre/1/model.py": b"print('pre')\n",
    "pre/1/run.sh": b"#!/bin/sh\n",
}


def build_copy(root: Path, *, reverse: bool, file_mode: int, dir_mode: int, mtime: int) -> Path:
    """Write FILES (plus junk that must not be packaged) in a given order, with given modes and times."""
    for relative in sorted(FILES, reverse=reverse):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(FILES[relative])
        path.chmod(0o700 if relative.endswith(".sh") else file_mode)
    (root / "ens" / "1").mkdir(parents=True)
    for junk in (
        "net/1/__pycache__/model.cpython-311.pyc",
        "net/.DS_Store",
        "pre/1/stale.pyc",
        "pre/.git/HEAD",
    ):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_bytes(os.urandom(8))
    (root / "README.md").write_text("top-level files are not part of any model")
    for folder in [root, *(path for path in root.rglob("*") if path.is_dir())]:
        folder.chmod(dir_mode)
    for path in root.rglob("*"):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


def test_same_content_gives_the_same_bytes_whatever_order_modes_and_times(tmp_path: Path) -> None:
    first = build_copy(tmp_path / "a", reverse=False, file_mode=0o600, dir_mode=0o700, mtime=1_000_000_000)
    second = build_copy(tmp_path / "b", reverse=True, file_mode=0o664, dir_mode=0o775, mtime=2_000_000_000)
    packages = [
        package_repository(first, tmp_path / "out" / "first.tar.gz"),
        package_repository(first, tmp_path / "out" / "again.tar.gz"),
        package_repository(second, tmp_path / "out" / "second.tar.gz"),
    ]
    contents = [package.path.read_bytes() for package in packages]
    assert contents[0] == contents[1] == contents[2]
    assert {package.sha256 for package in packages} == {hashlib.sha256(contents[0]).hexdigest()}
    assert {package.size for package in packages} == {len(contents[0])}


def test_the_content_hash_is_the_sha256_of_the_uncompressed_tar_stream(tmp_path: Path) -> None:
    write_pipeline(tmp_path / "repo")
    repository = load_repository(tmp_path / "repo")
    package = package_repository(tmp_path / "repo", f"{tmp_path}/out/")
    assert package.path == tmp_path / "out" / "model.tar.gz"
    tar_stream = gzip.decompress(package.path.read_bytes())
    assert repository.content_hash() == package.content_sha256 == hashlib.sha256(tar_stream).hexdigest()
    assert package.sha256 == hashlib.sha256(package.path.read_bytes()).hexdigest() != package.content_sha256


def test_the_archive_holds_one_top_level_folder_per_model_with_normalised_entries(tmp_path: Path) -> None:
    root = build_copy(tmp_path / "repo", reverse=False, file_mode=0o640, dir_mode=0o750, mtime=1_234_567_890)
    package = package_repository(root, tmp_path / "model.tar.gz")
    header = package.path.read_bytes()[:10]
    assert header[3] == 0, "no file name (or other optional field) in the gzip header"
    assert header[4:8] == b"\0\0\0\0", "gzip mtime is 0"
    with tarfile.open(package.path) as archive:
        members = archive.getmembers()
    names = [member.name for member in members]
    assert names == [
        "ens",
        "ens/1",
        "net",
        "net/1",
        "net/1/model.py",
        "net/1/weights.bin",
        "net/config.pbtxt",
        "net/labels.txt",
        "pre",
        "pre/1",
        "pre/1/model.py",
        "pre/1/run.sh",
    ]
    assert {name.split("/")[0] for name in names} == {"ens", "net", "pre"}
    for member in members:
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")
        executable = member.isdir() or member.name.endswith(".sh")
        assert member.mode == (0o755 if executable else 0o644), member.name


def test_symbolic_links_are_packaged_as_the_files_they_point_to(tmp_path: Path) -> None:
    write_pipeline(tmp_path / "repo")
    (tmp_path / "weights.bin").write_bytes(b"shared weights")
    (tmp_path / "repo" / "net" / "1" / "weights.bin").symlink_to(tmp_path / "weights.bin")
    package = package_repository(tmp_path / "repo", tmp_path / "model.tar.gz")
    with tarfile.open(package.path) as archive:
        member = archive.getmember("net/1/weights.bin")
        assert member.isfile()
        extracted = archive.extractfile(member)
        assert extracted is not None and extracted.read() == b"shared weights"


def unpack(archive: Path, destination: Path) -> None:
    """Unpack an archive this test made (trusted), with tarfile's ``data`` filter where Python has it."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.10.12+, 3.11.4+
            tar.extractall(destination, filter="data")
        else:
            tar.extractall(destination)


def test_large_files_round_trip_through_package_and_unpack(tmp_path: Path) -> None:
    write_pipeline(tmp_path / "repo")
    big = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "repo" / "net" / "1" / "weights.bin").write_bytes(big)
    package = package_repository(tmp_path / "repo", tmp_path / "model.tar.gz")
    unpack(package.path, tmp_path / "extracted")
    assert (tmp_path / "extracted" / "net" / "1" / "weights.bin").read_bytes() == big
    assert (tmp_path / "extracted" / "pipeline" / "1").is_dir(), "an ensemble's empty version folder survives"
    assert load_repository(tmp_path / "extracted").models == load_repository(tmp_path / "repo").models
    assert package_repository(tmp_path / "extracted", tmp_path / "again.tar.gz").sha256 == package.sha256


def test_the_package_may_not_be_written_inside_a_model_folder(tmp_path: Path) -> None:
    write_pipeline(tmp_path)
    with pytest.raises(SpecError, match="inside a model folder"):
        package_repository(tmp_path, tmp_path / "net" / "model.tar.gz")
