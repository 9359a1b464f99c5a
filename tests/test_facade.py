"""The facade the CLI and the Terraform hook go through: resolved once, dry runs, the cost limit, validate, reap,
and the invoke connection pool it owns."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

import endpointkit as ek
from endpointkit import _api, adapters
from endpointkit._wait import Progress, ProgressEvent
from endpointkit.adapters.base import EXPIRES_AT_TAG, EndpointState, RawResponse
from endpointkit.adapters.memory import MemoryAdapter, MemoryCloud
from endpointkit.errors import EXIT_BAD_INPUT, exit_code
from endpointkit.payloads import encode_response
from endpointkit.spec import Spec, spec_from_dict

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


def make_spec(name: str = "facade", *, ttl: str | None = None) -> Spec:
    data: dict[str, Any] = {
        "name": name,
        "model": {"repository": "s3://models/demo/model.tar.gz"},
        "variants": [{"name": "primary"}],
        "targets": {
            "mem": {"kind": "local"},
            "aws": {
                "kind": "sagemaker",
                "region": "us-east-1",
                "role_arn": "arn:aws:iam::123456789012:role/x",
                "bucket": "models",
                "variants": {"primary": {"instance_type": "ml.m5.large"}},
            },
        },
    }
    if ttl is not None:
        data["ttl"] = ttl
    return spec_from_dict(data)


class Connection:
    """A pooled invoke adapter: records when the facade closes it."""

    def __init__(self, events: list[tuple[str, str]], name: str) -> None:
        self.events, self.name = events, name

    def close(self) -> None:
        self.events.append(("closed", self.name))


def pooled(events: list[tuple[str, str]], name: str) -> EndpointState:
    """Put a connection to endpoint ``name`` in the facade's pool, as an earlier invoke would have."""
    state = EndpointState(name, "mem", "memory", ek.EndpointStatus.IN_SERVICE, url=f"memory://{name}")
    _api.connection_pool.keep(state, Connection(events, name))  # type: ignore[arg-type]
    return state


# ---- resolved once ----------------------------------------------------------------------------------------


def test_a_resolved_deployment_is_never_resolved_again(monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = _api.resolve(make_spec(), "mem")
    resolutions: list[str | None] = []
    original = Spec.deployment

    def counted(self: Spec, target: str | None = None) -> ek.Deployment:
        resolutions.append(target)
        return original(self, target)

    monkeypatch.setattr(Spec, "deployment", counted)
    adapter = MemoryAdapter(target_name="mem")
    assert _api.resolve(deployment) is deployment and _api.resolve(deployment, "mem") is deployment
    _api.plan(deployment, adapter=adapter)
    _api.apply(deployment, adapter=adapter)
    assert _api.status(deployment, adapter=adapter) is not None
    assert _api.destroy(deployment, adapter=adapter)
    assert resolutions == []
    assert _api.resolve(deployment, "aws").target_name == "aws"  # another target is resolved from its spec


# ---- dry runs and the cost limit --------------------------------------------------------------------------


def test_a_dry_run_plans_and_applies_against_memory_without_making_the_targets_adapter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_real_target(*args: object, **kwargs: object) -> None:
        raise AssertionError("a dry run made the target's own adapter")

    monkeypatch.setattr(adapters, "create_adapter", no_real_target)
    plan = _api.plan(make_spec(), "aws", dry_run=True)
    assert [change.action for change in plan.changes] == ["create", "create", "create"]
    assert plan.target == "aws"
    assert _api.apply(make_spec(), "aws", dry_run=True).status is ek.EndpointStatus.IN_SERVICE


def test_a_dry_run_takes_no_adapter_of_its_own() -> None:
    with pytest.raises(ek.UsageError, match="dry_run"):
        _api.plan(make_spec(), "mem", dry_run=True, adapter=MemoryAdapter())


def test_a_cost_limit_refuses_before_any_call() -> None:
    adapter = MemoryAdapter(target_name="aws")
    with pytest.raises(ek.CostLimitExceeded) as refused:
        _api.apply(make_spec(), "aws", adapter=adapter, max_hourly_cost=0.10)
    assert refused.value.estimate == pytest.approx(0.115) and refused.value.limit == pytest.approx(0.10)
    assert "above --max-hourly-cost" in str(refused.value)
    assert adapter.calls == []
    assert exit_code(refused.value) == EXIT_BAD_INPUT


def test_the_hourly_cost_comes_through_the_facade() -> None:
    assert _api.hourly_cost(make_spec(), "aws") == pytest.approx(0.115)
    assert _api.hourly_cost(make_spec(), "mem") == 0.0
    assert _api.format_usd(0.115) == "$0.115/h"


# ---- validate ---------------------------------------------------------------------------------------------


def test_validate_runs_each_targets_checks_and_returns_a_report() -> None:
    report = _api.validate(make_spec(), adapter=MemoryAdapter())
    assert report.targets == ("mem", "aws") and report.skipped == {}
    assert report.to_dict() == {
        "valid": True,
        "name": "facade",
        "targets": ["mem", "aws"],
        "checks": {"mem": "ok", "aws": "ok"},
        "skipped": {},
    }
    assert _api.validate(_api.resolve(make_spec(), "aws"), adapter=MemoryAdapter()).targets == ("aws",)


def test_validate_raises_what_a_target_refuses() -> None:
    refusing = MemoryAdapter(unsupported={ek.Capability.TRAFFIC_SPLIT: "one variant only"})
    spec = make_spec()
    two_variants = spec.model_copy(
        update={"variants": [*spec.variants, spec.variants[0].model_copy(update={"name": "second"})]}
    )
    with pytest.raises(ek.UnsupportedCapabilityError, match="one variant only"):
        _api.validate(two_variants, "mem", adapter=refusing)


# ---- destroy and reap close pooled connections ------------------------------------------------------------


def test_destroy_closes_the_endpoints_pooled_connections_before_deleting() -> None:
    events: list[tuple[str, str]] = []
    pooled(events, "facade")
    pooled(events, "bystander")

    class Recording(MemoryAdapter):
        def delete(self, deployment: Any, kind: Any, name: str, *, progress: Progress | None = None) -> None:
            events.append(("deleted", kind))
            super().delete(deployment, kind, name, progress=progress)

    adapter = Recording(target_name="mem")
    _api.apply(make_spec(), "mem", adapter=adapter)
    assert _api.destroy(make_spec(), "mem", adapter=adapter)
    assert events[:2] == [("closed", "facade"), ("deleted", "endpoint")]
    assert ("closed", "bystander") not in events
    _api.connection_pool.forget("bystander")


class ReportingAdapter(MemoryAdapter):
    """Deletes as the memory target does, after reporting a poll of the wait, and records when."""

    def __init__(self, events: list[tuple[str, str]], **options: Any) -> None:
        super().__init__(**options)
        self.events = events

    def destroy_by_state(self, state: EndpointState, *, progress: Progress | None = None) -> None:
        if progress is not None:
            progress(ProgressEvent(f"endpoint {state.name}", "Deleting", 0.0, 60.0))
        self.events.append(("destroyed", state.name))
        super().destroy_by_state(state, progress=progress)


class Lines:
    """A ReapProgress that writes down what it is told."""

    def __init__(self, events: list[tuple[str, str]]) -> None:
        self.events = events

    def started(self, state: EndpointState) -> Progress:
        self.events.append(("started", state.name))
        return lambda event: self.events.append(("progress", f"{event.subject}: {event.status}"))

    def finished(self, state: EndpointState, error: Exception | None) -> None:
        self.events.append(("finished", f"{state.name}: {error or 'ok'}"))


def expired_cloud(events: list[tuple[str, str]], *names: str) -> ReportingAdapter:
    adapter = ReportingAdapter(events, cloud=MemoryCloud(), target_name="mem")
    for name in names:
        ek.apply(make_spec(name, ttl="1h"), "mem", adapter=adapter)
        adapter.cloud.endpoint_tags[name][EXPIRES_AT_TAG] = (NOW - timedelta(hours=1)).strftime(
            "%Y%m%dT%H%M%SZ"
        )
    return adapter


def test_reap_closes_each_endpoints_connections_before_its_deletion_and_reports_each() -> None:
    events: list[tuple[str, str]] = []
    adapter = expired_cloud(events, "first", "second")
    pooled(events, "first")
    pooled(events, "second")
    report = _api.reap(adapter=adapter, progress=Lines(events), now=NOW)
    assert [(o.state.name, o.action) for o in report.outcomes] == [
        ("first", "destroyed"),
        ("second", "destroyed"),
    ]
    assert events == [
        ("closed", "first"),
        ("started", "first"),
        ("progress", "endpoint first: Deleting"),
        ("destroyed", "first"),
        ("finished", "first: ok"),
        ("closed", "second"),
        ("started", "second"),
        ("progress", "endpoint second: Deleting"),
        ("destroyed", "second"),
        ("finished", "second: ok"),
    ]


def test_reap_reports_a_failed_deletion_and_goes_on() -> None:
    events: list[tuple[str, str]] = []
    adapter = expired_cloud(events, "first", "second")
    adapter.fail("delete", "endpoint", ek.ProviderError("throttled", provider="memory"))
    report = _api.reap(adapter=adapter, progress=Lines(events), now=NOW)
    assert [o.action for o in report.outcomes] == ["failed", "destroyed"]
    assert ("finished", "first: throttled") in events and ("finished", "second: ok") in events


def test_a_dry_run_reap_deletes_nothing_and_reports_nothing() -> None:
    events: list[tuple[str, str]] = []
    adapter = expired_cloud(events, "first")
    report = _api.reap(adapter=adapter, progress=Lines(events), now=NOW, dry_run=True)
    assert [o.action for o in report.outcomes] == ["would destroy"] and events == []


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({}, "reap needs a target"),
        ({"target": "aks"}, "--spec FILE --target NAME"),
        ({"target": "gcp"}, "'gcp' is not a target kind"),
        ({"target": "local", "region": "us-east-1"}, "is for a bare sagemaker target"),
        ({"spec": make_spec(), "target": "aws", "region": "us-east-1"}, "a spec's target says its own"),
    ],
)
def test_reap_says_how_to_name_a_target(arguments: dict[str, Any], says: str) -> None:
    with pytest.raises(ek.UsageError, match=says.replace("-", r"\-")):
        _api.reap(**arguments)


def test_a_bare_sagemaker_target_takes_its_region_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[EndpointState] = []

    def adapter_for_state(state: EndpointState, **options: Any) -> MemoryAdapter:
        made.append(state)
        return MemoryAdapter(target_name=state.target)

    monkeypatch.setattr(adapters, "adapter_for_state", adapter_for_state)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert _api.reap(target="sagemaker").kind == "memory"
    assert made[0].region == "eu-west-1"
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ek.UsageError, match="needs a region"):
        _api.reap(target="sagemaker")


# ---- invoke through the pool ------------------------------------------------------------------------------


def triton_answer(status: int, body: bytes) -> Any:
    def respond(request: bytes, headers: dict[str, str]) -> RawResponse:
        return RawResponse(status, {"content-type": "application/json"}, body)

    return respond


def served(name: str, responder: Any) -> tuple[EndpointState, dict[str, Any]]:
    cloud = MemoryCloud()
    state = ek.apply(make_spec(name), "mem", adapter=MemoryAdapter(cloud=cloud, target_name="mem"))
    return state, {"cloud": cloud, "responder": responder}


def test_invoking_a_state_twice_uses_one_pooled_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = encode_response({"OUT": np.array([1.0], dtype=np.float32)}, model_name="m", binary=False)
    state, options = served("pooled", triton_answer(200, bytes(answer.to_bytes())))
    made: list[MemoryAdapter] = []
    original = MemoryAdapter.from_state

    def counted(state: EndpointState, **options: Any) -> MemoryAdapter:
        made.append(original(state, **options))
        return made[-1]

    monkeypatch.setattr(MemoryAdapter, "from_state", counted)
    try:
        for _ in range(2):
            response = ek.invoke_endpoint(state, {"IN": np.array([1.0], dtype=np.float32)}, **options)
            assert response["OUT"].tolist() == [1.0]
        assert len(made) == 1
    finally:
        _api.connection_pool.forget("pooled")


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, b"{\"error\": \"unexpected inference input 'X' for model 'm'\"}", ek.InvalidRequestError),
        (404, b'{"error": "Request for unknown model: \'m2\' is not found"}', ek.InvalidRequestError),
        (404, b"<html><body>404 page not found</body></html>", ek.NotFoundError),
        (500, b'{"error": "CUDA out of memory"}', ek.ProviderError),
    ],
)
def test_the_endpoints_refusal_of_a_request_is_bad_input_and_a_missing_route_is_not_found(
    status: int, body: bytes, error: type[Exception]
) -> None:
    state, options = served(f"answers-{status}", triton_answer(status, body))
    try:
        with pytest.raises(error) as raised:
            ek.invoke_endpoint(state, {"IN": np.array([1.0], dtype=np.float32)}, **options)
    finally:
        _api.connection_pool.forget(state.name)
    assert type(raised.value) is error
    assert str(status) in str(raised.value)
