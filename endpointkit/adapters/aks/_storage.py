"""Upload a local Triton model repository to Azure Blob storage, where Triton reads it as ``as://``.

Layout: container ``models``, one prefix per repository content hash (``models/<sha256>/<model>/…``), so the
same content is uploaded once and shared by every endpoint that serves it. A marker blob written last
(``.endpointkit-uploads/<sha256>``, outside the folder Triton reads) says an upload finished: a present marker
skips the upload, an interrupted upload is simply redone. Triton's Azure support: triton-inference-server/server
``docs/user_guide/model_repository.md`` ("Azure Storage": ``as://account/container/path`` with
``AZURE_STORAGE_ACCOUNT`` and ``AZURE_STORAGE_KEY``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from endpointkit._lazy import require
from endpointkit._wait import Progress, ProgressEvent
from endpointkit.adapters.aks._errors import RetryPolicy, with_retries
from endpointkit.adapters.aks._tls import azure_verify_options
from endpointkit.errors import ConflictError, NotFoundError, SpecError

__all__ = [
    "CONTAINER",
    "MARKER_FOLDER",
    "ContainerFactory",
    "default_container_factory",
    "repository_files",
    "storage_suffix",
    "upload_repository",
]

CONTAINER = "models"
MARKER_FOLDER = ".endpointkit-uploads"
# Left out of uploads, as they are left out of the packaged repository (endpointkit.modelrepo).
_IGNORED_NAMES = frozenset({"__pycache__", ".git", ".DS_Store", ".ipynb_checkpoints"})
# Storage DNS suffix per ARM endpoint (https://learn.microsoft.com/azure/china/resources-developer-guide,
# https://learn.microsoft.com/azure/azure-government/compare-azure-government-global-azure).
_SUFFIXES = {
    "management.azure.com": "core.windows.net",
    "management.chinacloudapi.cn": "core.chinacloudapi.cn",
    "management.usgovcloudapi.net": "core.usgovcloudapi.net",
}

ContainerFactory = Callable[[str, str, str], Any]
"""(account, key, container) -> an azure-storage-blob ContainerClient (or anything with its methods)."""


def storage_suffix(arm_endpoint: str) -> str:
    """The Blob endpoint suffix for the cloud ``arm_endpoint`` belongs to.

    Public Azure and the sovereign clouds have their own table entries. Azure Stack Hub publishes ARM as
    ``management.<region>.<fqdn>`` and Blob as ``<account>.blob.<region>.<fqdn>`` ("Publish Azure Stack Hub
    services in your datacenter", learn.microsoft.com/azure-stack/operator/azure-stack-integrate-endpoints),
    so another ``management.`` host gives the rest of its name; anything else is taken as public Azure.
    """
    host = (urlsplit(arm_endpoint).hostname or "").lower()
    if host in _SUFFIXES:
        return _SUFFIXES[host]
    if host.startswith("management.") and host.count(".") >= 2:
        return host.removeprefix("management.")
    return "core.windows.net"


def default_container_factory(suffix: str = "core.windows.net", **options: Any) -> ContainerFactory:
    """A factory of real ContainerClients with shared-key auth; azure-core retries off (ours are bounded).

    ``options`` are azure-core settings; without ``connection_verify``, ``SSL_CERT_FILE`` is honoured like
    ``REQUESTS_CA_BUNDLE`` (read when a client is made).
    """

    def make(account: str, key: str, container: str) -> Any:
        blob = require("azure.storage.blob", extra="aks")
        return blob.ContainerClient(
            f"https://{account}.blob.{suffix}",
            container,
            credential={"account_name": account, "account_key": key},
            retry_total=0,
            **azure_verify_options(options),
        )

    return make


def repository_files(root: Path) -> Iterator[tuple[Path, str]]:
    """(file, blob name relative to the repository) for every file of every model folder, sorted.

    Top-level files and caches are left out; links are followed as the packaged repository follows them,
    and a link loop is refused.
    """
    seen: set[Path] = set()
    for model in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in _IGNORED_NAMES):
        for folder, dirs, files in os.walk(model, followlinks=True):
            real = Path(folder).resolve()
            if real in seen:
                raise SpecError(
                    f"model repository {root}: the folder link {folder} loops", field="model.repository"
                )
            seen.add(real)
            dirs[:] = sorted(d for d in dirs if d not in _IGNORED_NAMES)
            for name in sorted(files):
                if name in _IGNORED_NAMES or name.endswith(".pyc"):
                    continue
                path = Path(folder) / name
                yield path, path.relative_to(root).as_posix()


def upload_repository(
    container: Any, root: Path, prefix: str, *, retry: RetryPolicy, progress: Progress | None = None
) -> bool:
    """Upload ``root`` under ``prefix`` unless a finished upload is there. Returns whether it uploaded.

    Blocks; reports each file through ``progress``. Retries throttling and 5xx per blob, within ``retry``.
    """
    operation = f"upload the model repository to blob container {CONTAINER}"

    def call(what: str, function: Callable[[], Any]) -> Any:
        return with_retries(function, policy=retry, provider="azure", operation=f"{operation}: {what}")

    marker = f"{MARKER_FOLDER}/{prefix}"
    try:
        call("check", lambda: container.get_blob_client(marker).get_blob_properties())
        return False
    except NotFoundError:
        pass
    with contextlib.suppress(ConflictError):  # it exists: the usual case
        call("create the container", container.create_container)
    files = list(repository_files(root))
    started = time.monotonic()
    for index, (path, name) in enumerate(files, start=1):

        def upload(path: Path = path, name: str = name) -> None:
            with path.open("rb") as data:
                container.upload_blob(f"{prefix}/{name}", data, overwrite=True)

        call(name, upload)
        if progress is not None:
            status = f"{index}/{len(files)} files ({name})"
            progress(
                ProgressEvent(f"upload to {CONTAINER}/{prefix[:12]}", status, time.monotonic() - started, 0.0)
            )
    call("finish", lambda: container.upload_blob(marker, b"", overwrite=True))
    return True
