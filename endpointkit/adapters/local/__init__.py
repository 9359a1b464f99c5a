"""The local target: a real ``tritonserver`` process per variant on this machine, listening on 127.0.0.1.

Resources, as on the clouds:

- **model**: the model repository, copied under the endpoint's state folder (``models/<sha256>/``) so that
  later edits to the source folder do not change what a running endpoint serves;
- **endpoint config**: the Triton launch settings of every variant (a JSON record ``<endpoint>-<hash8>``);
- **endpoint**: the processes, their ports and readiness, recorded in ``endpoint.json``.

State lives on disk (``_state.py``), so an endpoint applied by one process is
invoked, inspected and destroyed by another; servers start in their own session and outlive the process that
started them. Changes to one endpoint are serialized by a file lock.
"""

from __future__ import annotations

from endpointkit.adapters.local._adapter import KEY_HEADER, LocalAdapter, gpu_available
from endpointkit.adapters.local._tritonserver import (
    TritonBinary,
    TritonServerProcess,
    find_tritonserver,
    running_tritonserver,
)

__all__ = [
    "KEY_HEADER",
    "LocalAdapter",
    "TritonBinary",
    "TritonServerProcess",
    "find_tritonserver",
    "gpu_available",
    "running_tritonserver",
]
