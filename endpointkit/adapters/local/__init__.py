"""The local target: a real ``tritonserver`` process per variant on this machine, listening on 127.0.0.1.

Resources, as on the clouds:

- **model**: the model repository, copied under the endpoint's state folder (``models/<sha256>/``) so that
  later edits to the source folder do not change what a running endpoint serves;
- **endpoint config**: the Triton launch settings of every variant (a JSON record ``<endpoint>-<hash8>``);
- **endpoint**: the processes, their ports and readiness, recorded in ``endpoint.json``.

State lives on disk (``_state.py``), so an endpoint applied by one process is
invoked, inspected and destroyed by another; servers start in their own session and outlive the process that
started them, and are recorded before they are ready, so a run killed meanwhile leaves no server that later
commands cannot find. Changes to one endpoint are serialized by a file lock.

Modules, one per role as in the other target packages: ``_adapter`` (the class), ``_desired`` (desired state, no
process), ``_state`` (what exists on disk and how it reads), ``_rollout`` (create, update, delete), ``_reap``
(list and destroy without a spec); then the target's own: ``_invoke`` (requests), ``_servers`` (starting and
stopping processes), ``_tritonserver`` (one tritonserver process), ``_sagemaker_front`` (the SageMaker protocol
on 127.0.0.1), ``_files`` (atomic state files). There is no ``_errors``: nothing here maps an SDK's errors.
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
