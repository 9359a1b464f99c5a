"""``endpointkit terraform``: the program protocol of Terraform's ``external`` data source.

Terraform runs the program without a shell or a terminal, with its own environment, in the directory it was
started from, and writes the data source's ``query`` on stdin: one JSON object whose values are all strings.
The program answers on stdout with one flat JSON object whose values are all strings, or, on failure, writes
one human-readable line on stderr and exits non-zero (Terraform then ignores stdout and shows that line).
See https://registry.terraform.io/providers/hashicorp/external/latest/docs/data-sources/external.

Query keys:

* ``spec`` (required): the spec file; a relative path resolves against the current directory, so pass
  ``abspath("${path.module}/endpoint.yaml")`` from a module.
* ``target``: which of the spec's targets; may be empty when the spec has exactly one.
* ``action``: ``status`` (default) reads the endpoint and changes nothing: Terraform runs data sources on every
  plan and refresh, so this path makes one status read (at most one describe call per resource) and imports
  no cloud SDK it does not need. ``apply`` creates or updates the endpoint and blocks until it serves; it is
  opt-in because it then runs on every ``terraform plan``, never deletes anything, and a slow apply stalls the
  plan. The ``terraform_data`` + ``local-exec`` pattern in ``examples/terraform`` is the managed alternative.

Result keys (missing values are ``""``): ``name``, ``target``, ``kind``, ``status`` (an ``EndpointStatus``
value, ``NOT_FOUND`` when not deployed), ``url``, ``region``, ``spec_hash`` (of the spec for this target, as
apply would tag it), ``deployed_spec_hash`` (the tag on the running endpoint), ``variants`` (a JSON-encoded
list: decode it with ``jsondecode``), ``expires_at`` (UTC, ISO 8601), ``hourly_cost`` (the estimate in USD,
``""`` when a price is unknown), ``reason``, ``action``, ``drift`` (``"true"`` when what is live differs from
the spec: a count changed by hand, a dead server, a removed tag; always ``"false"`` after ``apply``, which repairs
it) and ``drift_fields`` (a JSON-encoded list of the drifted fields' names). The ``status`` action finds drift
with the read-only plan, and reports none when the spec's model repository is gone (nothing to compare with).
``checks`` is a JSON-encoded list of the spec's ``verify`` check names (they run before a new version takes
traffic), ``rollout`` the strategy (``all_at_once``, ``canary`` or ``linear``) and ``rollout_steps`` a
JSON-encoded list of the new version's share of traffic after each step, in percent.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from endpointkit.errors import EXIT_INTERRUPTED, EXIT_OK, TerraformQueryError, exit_code

if TYPE_CHECKING:
    from endpointkit import EndpointState
    from endpointkit.spec import Deployment

__all__ = ["QUERY_KEYS", "QueryError", "run_external", "state_result"]

QUERY_KEYS = ("spec", "target", "action")
ACTIONS = ("status", "apply")

#: The protocol error under the name this module has always given it; the class lives in ``endpointkit.errors``.
QueryError = TerraformQueryError


def run_external(stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Read one query from ``stdin``, answer on ``stdout``; on failure one line on ``stderr``. Returns the exit code.

    Never raises for an expected failure and never prompts.
    """
    try:
        if stdin.isatty():
            # Terraform always pipes the query; a person at a terminal would wait forever for nothing.
            raise TerraformQueryError(
                'reads one JSON query on stdin, e.g. echo \'{"spec": "endpoint.yaml"}\' | endpointkit terraform'
            )
        with _quiet():
            query = parse_query(stdin.read())
            result = _answer(query)
    except KeyboardInterrupt:
        stderr.write("endpointkit terraform: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as error:  # the protocol allows one line on stderr: never a traceback
        stderr.write(f"endpointkit terraform: {_one_line(error)}\n")
        stderr.flush()
        return exit_code(error)
    stdout.write(json.dumps(result, sort_keys=True) + "\n")
    stdout.flush()
    return EXIT_OK


def parse_query(text: str) -> dict[str, str]:
    """The query as a dict of strings, checked against the protocol.

    Raises:
        TerraformQueryError: not a JSON object, a value that is not a string, an unknown key, no ``spec``, or an
            unknown ``action``.
    """
    try:
        query = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TerraformQueryError(
            f"stdin is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(query, dict):
        raise TerraformQueryError(f"stdin must hold one JSON object, not a JSON {_json_type(query)}")
    for key, value in query.items():
        if not isinstance(value, str):
            raise TerraformQueryError(
                f"query value {key!r} is a JSON {_json_type(value)}, not a string: the external data source "
                "passes strings only (use tostring() or jsonencode() in the query)"
            )
    unknown = sorted(set(query) - set(QUERY_KEYS))
    if unknown:
        raise TerraformQueryError(
            f"unknown query key(s) {', '.join(unknown)}; allowed: {', '.join(QUERY_KEYS)}"
        )
    if not query.get("spec"):
        raise TerraformQueryError(
            'the query needs "spec": the spec file, e.g. abspath("${path.module}/endpoint.yaml")'
        )
    action = query.get("action") or "status"
    if action not in ACTIONS:
        raise TerraformQueryError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    return {"spec": query["spec"], "target": query.get("target", ""), "action": action}


def _answer(query: dict[str, str]) -> dict[str, str]:
    # Imported here, not at module level: `endpointkit terraform --help` and protocol errors stay cheap.
    from endpointkit import _api

    spec_path = Path(query["spec"])
    if not spec_path.is_absolute():
        spec_path = Path.cwd() / spec_path
    deployment = _api.resolve(spec_path, query["target"] or None, check_repository=query["action"] == "apply")
    drift_fields: list[str] = []
    if query["action"] == "apply":
        state: EndpointState | None = _api.apply(deployment)
    else:
        state, drift_fields = _observe(deployment)
    result = state_result(deployment, state, hourly_cost=_api.hourly_cost(deployment))
    result["action"] = query["action"]
    result["drift"] = "true" if drift_fields else "false"
    result["drift_fields"] = json.dumps(drift_fields)
    return result


def _observe(deployment: Deployment) -> tuple[EndpointState | None, list[str]]:
    """The endpoint's state and its drifted fields, read-only: the plan's read when the spec can be planned."""
    from endpointkit import _api
    from endpointkit.errors import SpecError

    try:
        plan = _api.plan(deployment)
    except SpecError:
        # The model repository is gone (a status after the files moved): no desired state to compare with.
        return _api.status(deployment), []
    state = plan.observed.state
    fields = list(dict.fromkeys(item.field for item in plan.drift))
    return (None if state.status.value == "NOT_FOUND" else state), fields


def state_result(
    deployment: Deployment, state: EndpointState | None, *, hourly_cost: float | None = None
) -> dict[str, str]:
    """The flat all-strings result for ``deployment`` observed as ``state`` (None: not deployed)."""
    target = deployment.target
    region = getattr(target, "region", None) or getattr(target, "location", None) or ""
    variants: list[dict[str, Any]] = []
    if state is not None:
        variants = [
            {
                "name": v.name,
                "instance_type": v.instance_type,
                "instance_count": v.instance_count,
                "weight": v.weight,
                "status": v.status,
            }
            for v in state.variants
        ]
    expires_at = state.expires_at if state is not None else None
    return {
        "name": deployment.name,
        "target": deployment.target_name,
        "kind": deployment.kind,
        "status": state.status.value if state is not None else "NOT_FOUND",
        "url": (state.url if state is not None else None) or "",
        "region": (state.region if state is not None else None) or region,
        "spec_hash": deployment.spec_hash(),
        "deployed_spec_hash": (state.spec_hash if state is not None else None) or "",
        "variants": json.dumps(variants, sort_keys=True),
        "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") if expires_at is not None else "",
        "hourly_cost": "" if hourly_cost is None else str(round(hourly_cost, 6)),
        "reason": (state.reason if state is not None else None) or "",
        **_rollout_result(deployment),
    }


def _rollout_result(deployment: Deployment) -> dict[str, str]:
    """The checks and rollout steps an apply of ``deployment`` runs, as all-strings result keys."""
    rollout = deployment.spec.rollout
    kind, steps = (
        ("all_at_once", [100.0]) if isinstance(rollout, str) else (rollout.kind, list(rollout.percentages()))
    )
    return {
        "checks": json.dumps([check.name for check in deployment.spec.verify]),
        "rollout": kind,
        "rollout_steps": json.dumps(steps),
    }


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep stderr to the one line the protocol allows, whatever the libraries underneath say meanwhile.

    Terraform shows everything a failing program wrote on stderr, so a third-party log record (azure.identity's
    DefaultAzureCredential prints a dozen lines when it finds no credential), a warning, or a stray print would
    bury the one line that says what went wrong. For the duration: every logger is disabled (not only
    endpointkit's: records of loggers without a handler reach stderr through ``logging.lastResort``), warnings
    are ignored, and whatever is still written to ``sys.stderr`` is dropped. The caller keeps its own reference
    to the real stream for the one line.
    """
    previous_disable = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous_disable)


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "string"
    return "null"


def _one_line(error: BaseException) -> str:
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    return text or type(error).__name__
