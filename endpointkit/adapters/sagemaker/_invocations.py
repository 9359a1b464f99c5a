"""Inference requests of ``SageMakerAdapter``: InvokeEndpoint (blocking and on the adapter's executor) and
asynchronous inference through S3. A mixin, so the adapter module keeps to its resources."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from endpointkit._wait import Progress
from endpointkit.adapters.base import Capability, EndpointState, RawResponse
from endpointkit.adapters.sagemaker._api import SageMakerApi
from endpointkit.adapters.sagemaker._async_inference import (
    DEFAULT_ASYNC_TIMEOUT,
    DEFAULT_POLL_INTERVAL,
    AsyncInvoker,
    check_async_size,
    input_prefix,
)
from endpointkit.adapters.sagemaker._clients import make_client_factory
from endpointkit.adapters.sagemaker._executor import BlockingCallExecutor
from endpointkit.adapters.sagemaker._invoke import invoke_endpoint, refuse_model_selection
from endpointkit.adapters.sagemaker._state import Description
from endpointkit.errors import NotFoundError, UnsupportedCapabilityError
from endpointkit.spec import SageMakerTarget

__all__ = ["Invocations"]


class Invocations:
    """``invoke``, ``ainvoke`` and ``invoke_asynchronous`` of :class:`SageMakerAdapter`, which sets what is
    declared here in its constructor."""

    region: str
    target: SageMakerTarget | None
    target_variant: str | None
    async_input_path: str | None
    _api: SageMakerApi
    _session: Any
    _executor: BlockingCallExecutor
    _async: AsyncInvoker

    if TYPE_CHECKING:  # provided by SageMakerAdapter, which this class is mixed into

        def _state(self, name: str, description: Description | None) -> EndpointState:
            """The EndpointState of a DescribeEndpoint answer."""
            ...

    def _runtime(self, timeout: float | None) -> Any:
        if timeout is None or self._api.has_factory:
            return self._api.client("sagemaker-runtime")  # a given factory decides its clients' timeouts
        factory = make_client_factory(
            self.region,
            session=self._session,
            read_timeout=timeout,
            max_pool_connections=self._api.max_pool_connections,
        )
        return self._api.extra_client(f"sagemaker-runtime:{timeout:g}", factory, "sagemaker-runtime")

    def invoke(
        self,
        state: EndpointState,
        body: bytes | Sequence[bytes | bytearray | memoryview],
        headers: Mapping[str, str],
        *,
        model: str | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """Send one encoded request through ``sagemaker-runtime`` InvokeEndpoint (``TargetVariant`` if set).

        Raises:
            UnsupportedCapabilityError: ``model`` names a model (a SageMaker endpoint serves its default model),
                or the endpoint is asynchronous.
            ProviderError: the container answered an error (ModelError), with Triton's status and message.
        """
        return invoke_endpoint(
            self._api.caller,
            self._runtime(timeout),
            state,
            body,
            headers,
            model=model,
            target_variant=self.target_variant,
        )

    async def ainvoke(
        self,
        state: EndpointState,
        body: bytes | Sequence[bytes | bytearray | memoryview],
        headers: Mapping[str, str],
        *,
        model: str | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """:meth:`invoke` for asyncio: the same request and result, on the adapter's bounded executor.

        At most ``max_concurrency`` calls run at once (16 by default, as many as each default client keeps
        pooled connections); more wait in line, in order. Cancelling the awaiting task drops a call still in
        line; one already sent runs to its end on its thread (botocore cannot abort a request), its connection
        goes back to the pool and its result is dropped. :meth:`close` waits for calls running then.

        Why threads and not aiobotocore: aiobotocore pins botocore to a narrow window of its own (3.10 needs
        botocore <1.43.118) while boto3 pins botocore to its own release, so the two cannot share one install,
        and the ``sagemaker`` extra would have to follow aiobotocore's releases; it would also add aiohttp to
        the import. Handing a call to a thread costs tens to a few hundred microseconds, against the
        milliseconds of a round trip to SageMaker at the very least.

        Raises:
            The errors of :meth:`invoke`.
        """
        call = functools.partial(self.invoke, state, body, headers, model=model, timeout=timeout)
        return await self._executor.run(call)

    def invoke_asynchronous(
        self,
        state: EndpointState,
        body: bytes | Sequence[bytes | bytearray | memoryview],
        headers: Mapping[str, str],
        *,
        model: str | None = None,
        timeout: float | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        progress: Progress | None = None,
    ) -> RawResponse:
        """Run one request on an asynchronous endpoint: upload it to S3, InvokeEndpointAsync, wait for the result.

        Where the request goes and the S3 permissions it takes: ``_async_inference.input_prefix`` and
        ``AsyncInvoker``. Large bodies go up in parts; a body of several buffers is read in place, never joined.
        The result is looked for (S3 HEAD) at the OutputLocation and FailureLocation SageMaker answers, first
        after ``poll_interval`` seconds, then at doubling intervals up to 5 s. The request object is deleted
        once the result or failure is read (best effort). Blocks.

        Args:
            state: the endpoint; a state that does not say its mode (a listed or hand-made one) is described
                first.
            body, headers: the encoded request (``payloads.encode_request(..., protocol="sagemaker")``).
            model: must be None: a SageMaker endpoint serves its default model.
            timeout: seconds to wait for the result, upload included (default 900, SageMaker's default
                invocation timeout); SageMaker is told to drop the request after as long (RequestTTLSeconds,
                InvocationTimeoutSeconds, within their bounds of 60-21600 s and 1-3600 s).
            poll_interval: seconds before the second look for the result.
            progress: called after each look with an ``endpointkit.ProgressEvent``.

        Returns:
            The output object as a RawResponse; its content type is the object's (the Triton container's).

        Raises:
            UnsupportedCapabilityError: ``model`` names a model, or the endpoint is not asynchronous; no call made.
            PayloadError: the body is over 1 GB, SageMaker's asynchronous limit; no call made.
            NotFoundError: the endpoint does not exist.
            ProviderError: the request failed (``code="AsyncInferenceFailed"``, the failure object's text), no
                result came within ``timeout`` (``code="Timeout"``, the message says where it will appear and the
                request object is kept for SageMaker to read), or AWS refused a call.
        """
        refuse_model_selection(state, model)
        check_async_size(body)
        endpoint = self._asynchronous_endpoint(state)
        return self._async.invoke(
            endpoint.name,
            input_prefix(endpoint, explicit=self.async_input_path, target=self.target),
            body,
            headers,
            timeout=DEFAULT_ASYNC_TIMEOUT if timeout is None else timeout,
            poll_interval=poll_interval,
            progress=progress,
        )

    def _asynchronous_endpoint(self, state: EndpointState) -> EndpointState:
        """``state``, described first when it does not say its mode or output path; refused unless asynchronous."""
        if "mode" not in state.extra or (
            state.extra["mode"] == "async" and not state.extra.get("async_output_path")
        ):
            description = self._api.describe("endpoint", state.name)
            if description is None:
                raise NotFoundError(
                    f"endpoint {state.name} does not exist in {self.region}",
                    provider="sagemaker",
                    operation="invoke_endpoint_async",
                    code="NOT_FOUND",
                )
            if description.get("EndpointConfigName"):
                self._api.describe("endpoint_config", description["EndpointConfigName"])
            state = self._state(state.name, description)
        mode = state.extra.get("mode")
        if mode != "async":
            raise UnsupportedCapabilityError(
                f"endpoint {state.name} is a {mode} endpoint, not an asynchronous one: invoke it without "
                "asynchronous=True, or give the target an `async:` section (output_path) and apply",
                missing={
                    Capability.ASYNC_INFERENCE.value: f"the endpoint's config has no AsyncInferenceConfig ({mode})"
                },
            )
        return state
