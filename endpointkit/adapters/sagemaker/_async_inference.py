"""SageMaker asynchronous inference: the request through S3, ``InvokeEndpointAsync``, the result polled from S3.

An asynchronous endpoint (a config with ``AsyncInferenceConfig``) takes no request body: the request is an S3
object, SageMaker queues it, the container answers it, and SageMaker writes the answer to the output path (or
its error to the failure path). https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference.html
"""

from __future__ import annotations

import bisect
import io
import itertools
import logging
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from endpointkit._wait import Progress, wait_for
from endpointkit.adapters.base import EndpointState, RawResponse
from endpointkit.adapters.sagemaker._artifacts import ArtifactStore, parse_s3_url
from endpointkit.adapters.sagemaker._errors import Caller
from endpointkit.errors import EndpointKitError, PayloadError, ProviderError, ProvisionTimeout
from endpointkit.payloads import error_message
from endpointkit.spec import SageMakerTarget

__all__ = [
    "DEFAULT_ASYNC_TIMEOUT",
    "DEFAULT_POLL_INTERVAL",
    "SAGEMAKER_ASYNC_LIMIT",
    "AsyncInvoker",
    "BufferReader",
    "async_input_prefix",
    "check_async_size",
    "input_prefix",
]

logger = logging.getLogger("endpointkit.sagemaker")

SAGEMAKER_ASYNC_LIMIT = 1_000_000_000
"""Asynchronous inference request limit, 1 GB ("large payload sizes (up to 1GB)", SageMaker async-inference docs)."""
DEFAULT_ASYNC_TIMEOUT = 900.0
"""Seconds an asynchronous invoke waits for its result when given no timeout: SageMaker's default
``InvocationTimeoutSeconds`` (15 minutes)."""
DEFAULT_POLL_INTERVAL = 0.5
"""Seconds before the second look for the result; the interval then doubles up to :data:`MAX_POLL_INTERVAL`."""
MAX_POLL_INTERVAL = 5.0
INPUTS_FOLDER = "async-inputs"

# Bounds of botocore's sagemaker-runtime service-2.json (shapes RequestTTLSecondsHeader: 60-21600,
# InvocationTimeoutSecondsHeader: 1-3600), also in
# https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-invoke-endpoint.html (at most one hour).
_REQUEST_TTL_BOUNDS = (60, 21_600)
_INVOCATION_TIMEOUT_BOUNDS = (1, 3_600)
_FAILED = "failure"
_DONE = "output"

Buffer = bytes | bytearray | memoryview


def async_input_prefix(endpoint: str, *, bucket: str, prefix: str) -> str:
    """``s3://BUCKET/PREFIX/ENDPOINT/async-inputs/``: where the requests of ``endpoint`` are uploaded."""
    folder = "/".join(part for part in (prefix.strip("/"), endpoint, INPUTS_FOLDER) if part)
    return f"s3://{bucket}/{folder}/"


def input_prefix(state: EndpointState, *, explicit: str | None, target: SageMakerTarget | None) -> str:
    """The ``s3://`` folder the requests of ``state``'s endpoint are uploaded to; the execution role must read it.

    In order: ``explicit`` (the adapter's ``async_input_path``); the state's ``async_input_path`` (the states of
    an adapter with a target carry it); :func:`async_input_prefix` of the target's bucket and prefix; that of
    the bucket of the endpoint's output path with the spec's default prefix.
    """
    if explicit:
        return explicit
    if state.extra.get("async_input_path"):
        return str(state.extra["async_input_path"])
    if target is not None:
        return async_input_prefix(state.name, bucket=target.bucket, prefix=target.prefix)
    output_bucket, _ = parse_s3_url(str(state.extra.get("async_output_path") or ""))
    default_prefix = str(SageMakerTarget.model_fields["prefix"].default)
    return async_input_prefix(state.name, bucket=output_bucket, prefix=default_prefix)


def _parts(body: Buffer | Sequence[Buffer]) -> list[Buffer]:
    return [body] if isinstance(body, (bytes, bytearray, memoryview)) else list(body)


def _byte_views(body: Buffer | Sequence[Buffer]) -> list[memoryview]:
    views = []
    for part in _parts(body):
        view = memoryview(part)
        # cast("B") needs a C-contiguous buffer; encode_request makes only those, anything else is copied once.
        views.append(view.cast("B") if view.c_contiguous else memoryview(view.tobytes()))
    return views


def check_async_size(body: Buffer | Sequence[Buffer]) -> int:
    """The body's size in bytes.

    Raises:
        PayloadError: the body is over :data:`SAGEMAKER_ASYNC_LIMIT`.
    """
    size = sum(memoryview(part).nbytes for part in _parts(body))
    if size > SAGEMAKER_ASYNC_LIMIT:
        raise PayloadError(
            f"body is {size:,} bytes, over the {SAGEMAKER_ASYNC_LIMIT:,}-byte (1 GB) SageMaker asynchronous "
            f"inference limit by {size - SAGEMAKER_ASYNC_LIMIT:,} bytes: send smaller batches, or tensors in "
            "binary form (binary=True)"
        )
    return size


class BufferReader(io.RawIOBase):
    """A read-only, seekable file over a sequence of buffers, read in place: the buffers are never joined.

    boto3's managed transfer reads it part by part (and seeks back to retry a part), so a 1 GB request made of
    a JSON header and array views is uploaded without a 1 GB copy.
    """

    def __init__(self, body: Buffer | Sequence[Buffer]) -> None:
        super().__init__()
        self._parts = _byte_views(body)
        self._starts = list(itertools.accumulate((part.nbytes for part in self._parts), initial=0))
        self._size = self._starts[-1]
        self._position = 0

    @property
    def size(self) -> int:
        """The total number of bytes."""
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        bases = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}
        if whence not in bases:
            raise ValueError(f"invalid whence {whence}")
        position = bases[whence] + offset
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        written = 0
        while written < len(target) and self._position < self._size:
            # The part holding the position: starts[index] <= position < starts[index + 1] (empty parts skipped).
            index = bisect.bisect_right(self._starts, self._position) - 1
            part = self._parts[index]
            offset = self._position - self._starts[index]
            count = min(part.nbytes - offset, len(target) - written)
            target[written : written + count] = part[offset : offset + count]
            written += count
            self._position += count
        return written

    def readall(self) -> bytes:
        return self.read(max(self._size - self._position, 0)) or b""


def _bounded_seconds(seconds: float, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return min(max(math.ceil(seconds), low), high)


class AsyncInvoker:
    """Sends one request to an asynchronous endpoint and waits, bounded, for its result.

    The caller needs s3:PutObject and s3:DeleteObject on the input folder, s3:GetObject on the output and
    failure paths, and s3:ListBucket on their buckets: without it S3 answers 403, not 404, for a result not yet
    written (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html).

    Args:
        caller: the adapter's error mapping and retry policy.
        runtime: the ``sagemaker-runtime`` client, built on demand.
        s3: the S3 client, built on demand.
        objects: S3 HEAD and DELETE with the adapter's error mapping, and the transfer settings of uploads.
        sleep, clock: injectable time for the polling.
    """

    def __init__(
        self,
        caller: Caller,
        *,
        runtime: Callable[[], Any],
        s3: Callable[[], Any],
        objects: ArtifactStore,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self._caller = caller
        self._runtime = runtime
        self._s3 = s3
        self._objects = objects
        self._sleep = sleep
        self._clock = clock

    def invoke(
        self,
        endpoint: str,
        input_prefix: str,
        body: Buffer | Sequence[Buffer],
        headers: Mapping[str, str],
        *,
        timeout: float,
        poll_interval: float,
        progress: Progress | None,
    ) -> RawResponse:
        """Upload ``body`` under ``input_prefix``, call InvokeEndpointAsync, wait for the result and return it.

        The uploaded request is deleted once the result or the failure is there, or when SageMaker refused the
        call; it is kept when the wait times out, since SageMaker still reads it when the request leaves its
        queue.

        Raises:
            ProviderError: SageMaker refused the call, the request failed (``code="AsyncInferenceFailed"``, with
                the text of the failure object), or no result came within ``timeout`` (``code="Timeout"``; the
                message says where the result will appear).
        """
        deadline = self._clock() + timeout
        lowered = {key.lower(): value for key, value in headers.items()}
        content_type = lowered.get("content-type", "application/json")
        inference_id = uuid.uuid4().hex
        input_url = f"{input_prefix.rstrip('/')}/{inference_id}"
        self._upload(input_url, body, content_type)
        params: dict[str, Any] = {
            "EndpointName": endpoint,
            "InputLocation": input_url,
            "ContentType": content_type,
            "InferenceId": inference_id,
            # The caller waits ``timeout`` seconds: a request still queued or running after that is not waited for.
            "RequestTTLSeconds": _bounded_seconds(timeout, _REQUEST_TTL_BOUNDS),
            "InvocationTimeoutSeconds": _bounded_seconds(timeout, _INVOCATION_TIMEOUT_BOUNDS),
        }
        if "accept" in lowered:
            params["Accept"] = lowered["accept"]
        try:
            answer = self._caller.call(
                self._runtime(), "invoke_endpoint_async", f"endpoint {endpoint}", **params
            )
            output_url = answer.get("OutputLocation")
            if not output_url:
                raise ProviderError(
                    f"InvokeEndpointAsync on endpoint {endpoint} answered without an OutputLocation",
                    provider="sagemaker",
                    operation="invoke_endpoint_async",
                    code="NoOutputLocation",
                )
        except Exception:
            self._discard(input_url)
            raise
        failure_url: str | None = answer.get("FailureLocation") or None
        subject = f"asynchronous inference {inference_id} on endpoint {endpoint}"
        found = self._wait(output_url, failure_url, deadline, poll_interval, progress, subject)
        if found is None:
            raise _timeout_error(subject, timeout, input_url, output_url, failure_url)
        try:
            return self._result(found, output_url if found == _DONE else str(failure_url), subject)
        finally:
            self._discard(input_url)

    def _upload(self, url: str, body: Buffer | Sequence[Buffer], content_type: str) -> None:
        bucket, key = parse_s3_url(url)
        client, config = self._s3(), self._objects.transfer_config()
        extra = {"ContentType": content_type}
        self._caller.run(
            # A fresh reader per attempt: a retried upload starts from the first byte.
            lambda: client.upload_fileobj(BufferReader(body), bucket, key, ExtraArgs=extra, Config=config),
            "upload_fileobj",
            url,
        )

    def _wait(
        self,
        output_url: str,
        failure_url: str | None,
        deadline: float,
        poll_interval: float,
        progress: Progress | None,
        subject: str,
    ) -> str | None:
        """Which object appeared first (:data:`_DONE` or :data:`_FAILED`), or None when ``deadline`` passed."""

        def look() -> str | None:
            if self._objects.head(output_url) is not None:
                return _DONE
            if failure_url and self._objects.head(failure_url) is not None:
                return _FAILED
            return None

        try:
            found: str | None = wait_for(
                look,
                done=lambda seen: seen is not None,
                describe=lambda seen: {_DONE: "Completed", _FAILED: "Failed"}.get(seen or "", "InProgress"),
                subject=subject,
                timeout=max(deadline - self._clock(), 0.0),
                progress=progress,
                first_delay=poll_interval,
                max_delay=max(poll_interval, MAX_POLL_INTERVAL),
                sleep=self._sleep,
                clock=self._clock,
            )
        except ProvisionTimeout:
            return None
        return found

    def _result(self, found: str, url: str, subject: str) -> RawResponse:
        bucket, key = parse_s3_url(url)
        client = self._s3()

        def download() -> tuple[bytes, str | None]:
            # The body is read inside the error mapping too: a connection lost mid-body is retried like a call.
            response = client.get_object(Bucket=bucket, Key=key)
            return response["Body"].read(), response.get("ContentType")

        data, content_type = self._caller.run(download, "get_object", url)
        if found == _DONE:
            return RawResponse(
                status=200, headers={"content-type": content_type or "application/json"}, body=data
            )
        text = data.decode("utf-8", "replace")
        raise ProviderError(
            f"{subject} failed: {error_message(data) or 'the failure object is empty'} (failure object {url})",
            provider="sagemaker",
            operation="invoke_endpoint_async",
            code="AsyncInferenceFailed",
            details={"failure_location": url, "message": text},
        )

    def _discard(self, url: str) -> None:
        try:
            self._objects.delete(url)
        except EndpointKitError as exc:  # best effort: the answer matters more than the cleanup
            logger.warning("could not delete the asynchronous request %s: %s", url, exc)


def _timeout_error(
    subject: str, timeout: float, input_url: str, output_url: str, failure_url: str | None
) -> ProviderError:
    failure = f", or its failure at {failure_url}" if failure_url else ""
    return ProviderError(
        f"{subject} has no result after {timeout:g}s; SageMaker may still answer it: the result will appear at "
        f"{output_url}{failure}. The request stays at {input_url} for SageMaker to read: delete it once the result "
        "is there",
        provider="sagemaker",
        operation="invoke_endpoint_async",
        code="Timeout",
        details={"output_location": output_url, "failure_location": failure_url, "input_location": input_url},
    )
