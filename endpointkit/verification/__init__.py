"""Golden checks of the spec's ``verify`` section: a version proves itself before it takes traffic.

::

    verify:
      - name: cat
        inputs: {IMAGE: ./sample.jpg}            # relative to the spec file; read as `invoke --input` reads them
        expect: {SCORES: ./expected_scores.npy}  # .npy or .json; compared with rtol / atol
      - name: latency
        inputs: {IMAGE: ./sample.jpg}
        repeat: 50
        max_p99: 250ms
      - name: custom
        python: mypkg.checks:check_labels        # called with invoke(inputs) -> outputs; raises to fail

- :func:`load_checks` reads every file and imports every function up front (``SpecError`` naming the field);
- :func:`run_checks` runs them through any :data:`Invoke` function and returns a :class:`VerificationReport`, or
  raises ``VerificationError`` at the first failure;
- :func:`verify_hook` is what a rollout calls with the new version's state; :func:`record_expectations` writes
  the ``expect`` files from what an endpoint answers (``endpointkit verify --record``).
"""

from __future__ import annotations

from endpointkit.verification._comparison import Comparison, compare
from endpointkit.verification._endpoint import endpoint_invoker, record_expectations, verify_hook
from endpointkit.verification._loading import EXPECT_SUFFIXES, LoadedCheck, load_checks
from endpointkit.verification._python_checks import PythonCheck, PythonInvoke
from endpointkit.verification._recording import record_checks, write_expectation
from endpointkit.verification._running import (
    CheckResult,
    Invoke,
    VerificationReport,
    format_seconds,
    p99,
    run_checks,
)

__all__ = [
    "EXPECT_SUFFIXES",
    "CheckResult",
    "Comparison",
    "Invoke",
    "LoadedCheck",
    "PythonCheck",
    "PythonInvoke",
    "VerificationReport",
    "compare",
    "endpoint_invoker",
    "format_seconds",
    "load_checks",
    "p99",
    "record_checks",
    "record_expectations",
    "run_checks",
    "verify_hook",
    "write_expectation",
]
