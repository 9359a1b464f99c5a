"""One inference request through ``sagemaker-runtime`` InvokeEndpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from endpointkit.adapters.base import Capability, EndpointState, RawResponse
from endpointkit.adapters.sagemaker._errors import Caller
from endpointkit.errors import UnsupportedCapabilityError

__all__ = ["invoke_endpoint", "refuse_model_selection"]


def refuse_model_selection(state: EndpointState, model: str | None) -> None:
    """Refuse a request that names a model: a SageMaker endpoint serves its default model only.

    Raises:
        UnsupportedCapabilityError: ``model`` is not None.
    """
    if model is not None:
        raise UnsupportedCapabilityError(
            f"SageMaker endpoint {state.name} serves its default model only (SAGEMAKER_TRITON_DEFAULT_MODEL_NAME); "
            "set model.default_model in the spec instead of naming a model per request",
            missing={"model": "per-request model selection is not available on SageMaker"},
        )


def invoke_endpoint(
    caller: Caller,
    runtime: Any,
    state: EndpointState,
    body: bytes | Sequence[bytes | bytearray | memoryview],
    headers: Mapping[str, str],
    *,
    model: str | None,
    target_variant: str | None,
) -> RawResponse:
    """Send an encoded request to ``state``'s endpoint and return the container's answer unparsed.

    ``Content-Type`` (and ``Accept``, if present) come from the encoded headers; the container's ModelError
    is raised as a ProviderError carrying Triton's status and message (see ``_errors``).

    Raises:
        UnsupportedCapabilityError: ``model`` names a model, or the endpoint is asynchronous.
        ProviderError: SageMaker or the container refused the request.
    """
    refuse_model_selection(state, model)
    if state.extra.get("mode") == "async":
        raise UnsupportedCapabilityError(
            f"endpoint {state.name} is asynchronous: SageMaker serves it through InvokeEndpointAsync with the "
            "request in S3, not InvokeEndpoint; invoke it with asynchronous=True",
            missing={Capability.ASYNC_INFERENCE.value: "invoke_endpoint sends synchronous requests only"},
        )
    lowered = {key.lower(): value for key, value in headers.items()}
    # botocore signs the whole body, so a body given as several buffers is joined once here.
    payload = body if isinstance(body, bytes) else b"".join(bytes(part) for part in body)
    params: dict[str, Any] = {
        "EndpointName": state.name,
        "Body": payload,
        "ContentType": lowered.get("content-type", "application/json"),
    }
    if "accept" in lowered:
        params["Accept"] = lowered["accept"]
    if target_variant:
        params["TargetVariant"] = target_variant
    response = caller.call(runtime, "invoke_endpoint", f"endpoint {state.name}", **params)
    content_type = response.get("ContentType") or params["ContentType"]
    return RawResponse(status=200, headers={"content-type": content_type}, body=response["Body"].read())
