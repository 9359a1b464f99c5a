"""The model artifact in S3: package a local repository, upload it once, check a given archive, purge on request,
and hand the same archive to a local rehearsal."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from endpointkit._lazy import require
from endpointkit.adapters.base import MANAGED_BY_TAG, MANAGED_BY_VALUE
from endpointkit.adapters.sagemaker._errors import Caller
from endpointkit.errors import NotFoundError
from endpointkit.modelrepo import PackagedRepository, package_repository

__all__ = ["ArtifactStore", "RehearsalArtifact", "parse_s3_url"]

logger = logging.getLogger("endpointkit.sagemaker")

SHA256_METADATA = "sha256"
"""User metadata key (``x-amz-meta-sha256``) holding the repository's content hash (the sha256 of the uncompressed
tar stream, ``endpointkit.modelrepo`` ``content_sha256``): an object that has it is complete."""
ENDPOINT_TAG = "endpointkit-endpoint"
"""S3 object tag naming the endpoint an archive was uploaded for (next to ``managed-by=endpointkit``)."""

# Multipart above 64 MiB, in 16 MiB parts, 8 in flight: boto3's TransferConfig (s3transfer) does the rest.
_MULTIPART_THRESHOLD = 64 * 1024 * 1024
_MULTIPART_CHUNK = 16 * 1024 * 1024
_CONCURRENCY = 8


def parse_s3_url(url: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


@dataclass(frozen=True, slots=True)
class RehearsalArtifact:
    """The ``model.tar.gz`` SageMaker would be given, and how its container would start on it.

    ``archive`` is a temporary file (see :meth:`~endpointkit.adapters.sagemaker.SageMakerAdapter.rehearsal_artifact`); ``default_model`` is
    ``SAGEMAKER_TRITON_DEFAULT_MODEL_NAME`` of the container (None when the container chooses), ``environment``
    the container's whole environment.
    """

    archive: Path
    default_model: str | None
    environment: Mapping[str, str]


class ArtifactStore:
    """Puts model archives in S3 through one S3 client, with the adapter's error mapping and retries."""

    def __init__(self, s3: Callable[[], Any], caller: Caller, *, transfer_config: Any = None) -> None:
        self._s3 = s3
        self._caller = caller
        self._transfer_config = transfer_config

    def transfer_config(self) -> Any:
        """The ``boto3.s3.transfer.TransferConfig`` of every upload: the one given, or multipart above 64 MiB."""
        if self._transfer_config is None:
            transfer = require("boto3.s3.transfer", extra="sagemaker")
            self._transfer_config = transfer.TransferConfig(
                multipart_threshold=_MULTIPART_THRESHOLD,
                multipart_chunksize=_MULTIPART_CHUNK,
                max_concurrency=_CONCURRENCY,
            )
        return self._transfer_config

    def head(self, url: str) -> dict[str, Any] | None:
        """The object's HEAD response, or None when there is no such object."""
        bucket, key = parse_s3_url(url)
        try:
            response: dict[str, Any] = self._caller.call(
                self._s3(), "head_object", url, Bucket=bucket, Key=key
            )
        except NotFoundError:
            return None
        return response

    def check_exists(self, url: str) -> None:
        """HEAD a given archive.

        Raises:
            NotFoundError: no object at ``url``; the message says what to do.
        """
        if self.head(url) is None:
            raise NotFoundError(
                f"model.repository {url} does not exist (S3 HEAD answered 404): upload the archive there, or "
                "point model.repository at a local model repository folder for endpointkit to package",
                provider="sagemaker",
                operation="head_object",
                code="404",
            )

    def ensure_uploaded(self, repository: str, url: str, sha256: str, endpoint: str) -> bool:
        """Package ``repository`` and upload it to ``url`` unless an object with that sha256 is already there.

        Returns:
            Whether an upload happened.
        """
        existing = self.head(url)
        if existing is not None and existing.get("Metadata", {}).get(SHA256_METADATA) == sha256:
            logger.info("model artifact %s is already uploaded (sha256 %s)", url, sha256[:12])
            return False
        with self.packaged(repository, sha256) as packaged:
            self._upload(packaged.path, url, packaged.content_sha256, packaged.size, {ENDPOINT_TAG: endpoint})
        return True

    @contextlib.contextmanager
    def packaged(self, repository: str, sha256: str | None = None) -> Iterator[PackagedRepository]:
        """The ``model.tar.gz`` of ``repository`` in a temporary folder, removed on exit: what an upload sends.

        The one way an archive is built, for :meth:`ensure_uploaded` and for a local rehearsal alike. A
        repository whose content hash is no longer ``sha256`` (edited since it was planned) is packaged as it
        is now, with a warning.
        """
        with tempfile.TemporaryDirectory(prefix="endpointkit-") as folder:
            packaged = package_repository(repository, Path(folder) / "model.tar.gz")
            if sha256 is not None and packaged.content_sha256 != sha256:
                logger.warning(
                    "model repository %s changed since it was planned (sha256 %s, now %s); packaging what is there now",
                    repository,
                    sha256[:12],
                    packaged.content_sha256[:12],
                )
            yield packaged

    @contextlib.contextmanager
    def downloaded(self, url: str) -> Iterator[Path]:
        """The archive at ``url``, downloaded to a temporary folder removed on exit (S3 only, no SageMaker call).

        Raises:
            NotFoundError: no object at ``url``.
        """
        bucket, key = parse_s3_url(url)
        client = self._s3()
        config = self.transfer_config()
        with tempfile.TemporaryDirectory(prefix="endpointkit-") as folder:
            path = Path(folder) / "model.tar.gz"
            self._caller.run(
                lambda: client.download_file(bucket, key, str(path), Config=config), "download_file", url
            )
            yield path

    def _upload(self, path: Path, url: str, sha256: str, size: int, tags: Mapping[str, str]) -> None:
        bucket, key = parse_s3_url(url)
        extra = {
            "Metadata": {SHA256_METADATA: sha256},
            "ContentType": "application/gzip",
            "Tagging": urlencode({MANAGED_BY_TAG: MANAGED_BY_VALUE, **tags}),
        }
        logger.info("uploading model artifact %s (%d bytes)", url, size)
        client = self._s3()
        config = self.transfer_config()
        try:
            self._caller.run(
                lambda: client.upload_file(str(path), bucket, key, ExtraArgs=extra, Config=config),
                "upload_file",
                url,
            )
        except NotFoundError as exc:
            raise NotFoundError(
                f"cannot upload the model archive: {exc}; create the bucket {bucket} in the target's region or "
                "point the target's bucket at an existing one",
                provider="sagemaker",
                operation="upload_file",
                code=exc.code,
            ) from exc

    def uploaded_for(self, url: str, endpoint: str) -> bool:
        """Whether endpointkit uploaded the archive at ``url`` for ``endpoint`` (its S3 object tags say so).

        Used where there is no spec to tell which archives are endpointkit's: an archive the user uploaded
        (``model.repository: s3://...``) has no such tags, so it is never deleted. A missing object is not ours.
        """
        bucket, key = parse_s3_url(url)
        try:
            response = self._caller.call(self._s3(), "get_object_tagging", url, Bucket=bucket, Key=key)
        except NotFoundError:
            return False
        tags = {tag["Key"]: tag["Value"] for tag in response.get("TagSet", [])}
        return tags.get(MANAGED_BY_TAG) == MANAGED_BY_VALUE and tags.get(ENDPOINT_TAG) == endpoint

    def delete(self, url: str) -> None:
        """Delete the object at ``url``; nothing happens when it is already gone."""
        bucket, key = parse_s3_url(url)
        try:
            self._caller.call(self._s3(), "delete_object", url, Bucket=bucket, Key=key)
        except NotFoundError:
            return
