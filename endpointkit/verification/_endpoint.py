"""Checks against a deployed version: the ``invoke`` that reaches it through its adapter, the hook a rollout calls,
and recording.

Requests go straight through the adapter's HTTP transport (encode, ``Adapter.invoke``, decode), not through
``endpointkit.invoke``: that package sits above the facade, which runs these checks, so using it here would be an
import cycle. The state a rollout hands the hook reaches only the new version, and this is how it gets there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy.typing as npt

from endpointkit._wait import Progress
from endpointkit.adapters._answers import check_request_size, decoded_answer
from endpointkit.adapters.base import Adapter, EndpointState, VerifyHook
from endpointkit.payloads import Tensor, encode_request
from endpointkit.spec import Deployment
from endpointkit.verification._loading import load_checks
from endpointkit.verification._recording import record_checks
from endpointkit.verification._running import Invoke, run_checks

__all__ = ["endpoint_invoker", "record_expectations", "verify_hook"]


def endpoint_invoker(state: EndpointState, adapter: Adapter, *, timeout: float | None = None) -> Invoke:
    """An :data:`Invoke` that sends each request to the endpoint ``state`` describes, through ``adapter``.

    The function raises what ``invoke_endpoint`` raises for the same answer: ``PayloadError`` (encoding, the
    target's size limit, decoding), ``InvalidRequestError`` (Triton refused the request: HTTP 400, or 404 with
    its error document), ``NotFoundError`` (404 from something in front of Triton), ``ProviderError``.
    """

    def invoke(tensors: Sequence[Tensor], model: str | None) -> dict[str, npt.NDArray[Any]]:
        encoded = encode_request(list(tensors), protocol=adapter.payload_protocol)
        check_request_size(adapter, encoded)
        raw = adapter.invoke(state, encoded.body, encoded.headers, model=model, timeout=timeout)
        return decoded_answer(raw, state).outputs

    return invoke


def verify_hook(
    deployment: Deployment, adapter: Adapter, *, progress: Progress | None = None, record: bool = False
) -> VerifyHook | None:
    """The hook a rollout calls with the new version's state before it takes traffic; None when the spec has no
    checks.

    The checks are loaded now, so a missing file or a name the model lacks fails before anything is created.
    The hook runs them through ``adapter`` (see :func:`~endpointkit.verification.run_checks`) and raises
    ``VerificationError`` when one fails; its subject is ``candidate of endpoint NAME on TARGET``.

    ``record`` makes the new version the reference: the hook first writes every ``expect`` file from its answers
    (expect files need not exist yet), then runs the checks (latency and ``python:`` checks can still fail).
    It is how the first version of an endpoint gets its expectations.

    Raises:
        SpecError: as :func:`~endpointkit.verification.load_checks`.
    """
    checks = load_checks(deployment, read_expectations=not record)
    if not checks:
        return None

    def hook(state: EndpointState) -> None:
        subject = f"candidate of endpoint {state.name} on {state.target}"
        invoke = endpoint_invoker(state, adapter)
        loaded = checks
        if record:
            record_checks(loaded, invoke, subject=subject, progress=progress)
            loaded = load_checks(deployment)
        run_checks(loaded, invoke, subject=subject, progress=progress)

    return hook


def record_expectations(
    deployment: Deployment, adapter: Adapter, state: EndpointState, *, progress: Progress | None = None
) -> list[Path]:
    """Send each check's inputs to the endpoint ``state`` describes and write every ``expect`` file from the
    answer (``.npy`` with ``numpy.save``, ``.json`` as a nested list); a check without ``expect`` writes nothing.
    Blocks for the requests.

    Returns:
        The paths written, in the spec's order.

    Raises:
        SpecError: as :func:`~endpointkit.verification.load_checks` (expect files are not read), or an output
            a ``.json`` file cannot hold.
        VerificationError: the answer lacks an output that ``expect`` names.
    """
    checks = load_checks(deployment, read_expectations=False)
    subject = f"endpoint {state.name} on {state.target}"
    report = record_checks(checks, endpoint_invoker(state, adapter), subject=subject, progress=progress)
    return list(report.written)
