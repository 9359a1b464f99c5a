"""Calling a deployed endpoint: encode with ``payloads``, send through the target's adapter, decode, map errors.

- :func:`invoke_endpoint`: one request, blocking, over HTTP or Triton's gRPC API (``transport=``).
- :func:`ainvoke_endpoint`: the same from asyncio.
- :func:`invoke_stream` / :func:`ainvoke_stream`: the responses of a decoupled model over a gRPC stream.

Adapters come from the facade's connection pool, keyed by endpoint, so connections stay warm between calls.
"""

from __future__ import annotations

from endpointkit.invoke._async import ainvoke_endpoint
from endpointkit.invoke._common import TRANSPORTS, Transport
from endpointkit.invoke._stream import ainvoke_stream, invoke_stream
from endpointkit.invoke._sync import invoke_endpoint

__all__ = [
    "TRANSPORTS",
    "Transport",
    "ainvoke_endpoint",
    "ainvoke_stream",
    "invoke_endpoint",
    "invoke_stream",
]
