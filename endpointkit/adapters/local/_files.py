"""Files of the local target's state folder: atomic JSON, owner-only secrets, removal that tolerates absence.

Every JSON file is written to a temporary file and moved into place (``os.replace``), so a reader in another
process sees the old or the new content, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "generate_key",
    "read_json",
    "read_secret",
    "remove",
    "write_bytes",
    "write_json",
    "write_secret",
]


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON atomically (temporary file, fsync, ``os.replace``), mode 0600."""
    write_bytes(path, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def write_bytes(path: Path, content: bytes) -> None:
    """Write ``content`` atomically, mode 0600, creating the folder (0700) when needed."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file does not exist."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None
    data = orjson.loads(content)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def generate_key() -> str:
    """A fresh endpoint key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def write_secret(path: Path, value: str) -> None:
    """Store a secret readable by its owner only (0600)."""
    write_bytes(path, value.encode())


def read_secret(path: Path) -> str | None:
    """The secret stored in ``path``, or None when there is none."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def remove(path: Path) -> None:
    """Delete a file or a folder tree; nothing happens when it is already gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
