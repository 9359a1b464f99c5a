"""Python-backend models for the gRPC streaming tests: decoupled counters and a slow echo.

``write_decoupled_models(root, marker_dir)`` writes three models under ``root``:

- ``counter`` (decoupled): ``COUNT`` (INT32 ``[1]``) responses, each carrying its ``INDEX`` (INT32 ``[1]``), then
  a flag-only final response. An optional ``DELAY_MS`` (INT32 ``[1]``) waits between responses. Before each
  response the model asks Triton whether the request was cancelled; when it was, it writes
  ``cancelled-<request id>`` in ``marker_dir`` and stops.
- ``failing_counter`` (decoupled): the same, but after ``FAIL_AFTER`` responses (a model parameter, 2) it sends
  an error response naming the response that failed, with the final flag.
- ``slow_echo`` (not decoupled): writes ``started-<request id>`` in ``marker_dir``, waits ``DELAY_MS``, and
  returns ``INPUT0`` (FP32 ``[-1]``) as ``OUTPUT0``: a call a test can catch in flight.

Every wait in the models is bounded by the request's own ``DELAY_MS`` (at most 10 s per response).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

__all__ = [
    "COUNTER_MODEL",
    "FAILING_COUNTER_MODEL",
    "FAIL_AFTER",
    "SLOW_ECHO_MODEL",
    "cancelled_marker",
    "started_marker",
    "write_decoupled_models",
]

COUNTER_MODEL = "counter"
FAILING_COUNTER_MODEL = "failing_counter"
SLOW_ECHO_MODEL = "slow_echo"
FAIL_AFTER = 2
"""Responses ``failing_counter`` sends before its error response."""

_COUNTER_PY = textwrap.dedent(
    '''
    """Decoupled counter: COUNT responses with INDEX 0..COUNT-1, then a flag-only final response."""

    import json
    import os
    import time

    import numpy as np
    import triton_python_backend_utils as pb_utils

    FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


    def _scalar(request, name, default):
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        return default if tensor is None else int(tensor.as_numpy().reshape(-1)[0])


    class TritonPythonModel:
        def initialize(self, args):
            parameters = json.loads(args["model_config"]).get("parameters", {})
            self.marker_dir = parameters["marker_dir"]["string_value"]
            fail_after = parameters.get("fail_after", {}).get("string_value")
            self.fail_after = None if fail_after is None else int(fail_after)

        def _mark(self, request):
            name = "cancelled-" + (request.request_id() or "anonymous")
            with open(os.path.join(self.marker_dir, name), "w") as marker:
                marker.write("cancelled")

        def execute(self, requests):
            for request in requests:
                self._serve(request)
            return None

        def _serve(self, request):
            sender = request.get_response_sender()
            count = _scalar(request, "COUNT", 1)
            delay = min(max(_scalar(request, "DELAY_MS", 0), 0), 10_000) / 1000.0
            for index in range(count):
                if sender.is_cancelled():
                    self._mark(request)
                    break
                if self.fail_after is not None and index == self.fail_after:
                    error = pb_utils.TritonError(f"counter failed at response {index} of {count}")
                    sender.send(pb_utils.InferenceResponse(error=error), flags=FINAL)
                    return
                output = pb_utils.Tensor("INDEX", np.array([index], dtype=np.int32))
                sender.send(pb_utils.InferenceResponse(output_tensors=[output]))
                if delay:
                    time.sleep(delay)
            sender.send(flags=FINAL)
    '''
).lstrip()

_SLOW_ECHO_PY = textwrap.dedent(
    '''
    """Echo INPUT0 as OUTPUT0 after DELAY_MS, writing a marker when a request starts."""

    import json
    import os
    import time

    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def initialize(self, args):
            parameters = json.loads(args["model_config"]).get("parameters", {})
            self.marker_dir = parameters["marker_dir"]["string_value"]

        def execute(self, requests):
            responses = []
            for request in requests:
                name = "started-" + (request.request_id() or "anonymous")
                with open(os.path.join(self.marker_dir, name), "w") as marker:
                    marker.write("started")
                delay = pb_utils.get_input_tensor_by_name(request, "DELAY_MS")
                if delay is not None:
                    time.sleep(min(max(int(delay.as_numpy().reshape(-1)[0]), 0), 10_000) / 1000.0)
                data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
                responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", data)]))
            return responses
    '''
).lstrip()

_COUNTER_CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: 0
model_transaction_policy {{ decoupled: true }}
input [
  {{ name: "COUNT" data_type: TYPE_INT32 dims: [ 1 ] }},
  {{ name: "DELAY_MS" data_type: TYPE_INT32 dims: [ 1 ] optional: true }}
]
output [ {{ name: "INDEX" data_type: TYPE_INT32 dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
parameters: {{ key: "marker_dir" value: {{ string_value: "{marker_dir}" }} }}
{extra}"""

_SLOW_ECHO_CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: 0
input [
  {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }},
  {{ name: "DELAY_MS" data_type: TYPE_INT32 dims: [ 1 ] optional: true }}
]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
parameters: {{ key: "marker_dir" value: {{ string_value: "{marker_dir}" }} }}
"""


def cancelled_marker(marker_dir: Path, request_id: str) -> Path:
    """The file a counter model writes when it sees request ``request_id`` cancelled."""
    return marker_dir / f"cancelled-{request_id}"


def started_marker(marker_dir: Path, request_id: str) -> Path:
    """The file ``slow_echo`` writes when request ``request_id`` starts executing."""
    return marker_dir / f"started-{request_id}"


def _write(root: Path, name: str, config: str, source: str) -> None:
    (root / name / "1").mkdir(parents=True, exist_ok=True)
    (root / name / "config.pbtxt").write_text(config)
    (root / name / "1" / "model.py").write_text(source)


def write_decoupled_models(root: Path, marker_dir: Path) -> Path:
    """Write ``counter``, ``failing_counter`` and ``slow_echo`` under ``root``; markers go to ``marker_dir``.

    Returns ``root``, ready to pass as ``--model-repository`` (other models may share it).
    """
    marker_dir.mkdir(parents=True, exist_ok=True)
    markers = str(marker_dir.resolve())
    _write(
        root,
        COUNTER_MODEL,
        _COUNTER_CONFIG.format(name=COUNTER_MODEL, marker_dir=markers, extra=""),
        _COUNTER_PY,
    )
    failing = f'parameters: {{ key: "fail_after" value: {{ string_value: "{FAIL_AFTER}" }} }}\n'
    _write(
        root,
        FAILING_COUNTER_MODEL,
        _COUNTER_CONFIG.format(name=FAILING_COUNTER_MODEL, marker_dir=markers, extra=failing),
        _COUNTER_PY,
    )
    _write(
        root,
        SLOW_ECHO_MODEL,
        _SLOW_ECHO_CONFIG.format(name=SLOW_ECHO_MODEL, marker_dir=markers),
        _SLOW_ECHO_PY,
    )
    return root
