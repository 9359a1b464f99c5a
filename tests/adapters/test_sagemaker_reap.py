"""Reaping SageMaker endpoints without their specs, against moto in server mode.

``fleet``: three endpoints applied through the adapter (ttl 1h, ttl 8h, no ttl) next to one created by hand without
the ``managed-by=endpointkit`` tag. ``reap`` runs with a fake "now" two hours ahead (API), or after the first
endpoint's expiry tag was moved into the past (CLI, which reads the real clock). ``hand_made``: the same shape
created directly in moto with hand-written tags, for the tests that need no apply (an apply costs ~0.2 s). Every
AWS call goes through the fixtures' botocore hooks, so the cost of listing (one ListEndpoints, one ListTags per
endpoint in the region) and of destroying is asserted call by call.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

import endpointkit as ek
from endpointkit import adapters
from endpointkit._endpoint_state import encode_expiry
from endpointkit.adapters.base import EXPIRES_AT_TAG, MANAGED_BY_TAG, EndpointState, ReapableAdapter
from endpointkit.adapters.sagemaker import SageMakerAdapter, _api
from endpointkit.cli import main
from endpointkit.provisioners.reap import reap
from endpointkit.spec import Spec
from tests.adapters.sagemaker_fixtures import BUCKET, REGION, ROLE_ARN, SageMakerWorld

pytest_plugins = ["tests.adapters.sagemaker_fixtures"]

EXPIRED, FRESH, FOREVER, FOREIGN = "reap-expired", "reap-fresh", "reap-forever", "hand-made"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/sagemaker-tritonserver:24.09-py3"
MANAGED = {MANAGED_BY_TAG: "endpointkit"}
PAST, FUTURE = "2001-01-01T00:00:00Z", "2099-01-01T00:00:00Z"

BARE = EndpointState("", "sagemaker", "sagemaker", ek.EndpointStatus.UNKNOWN, region=REGION)
"""What ``endpointkit reap --target sagemaker --region us-east-1`` passes to ``from_state``."""

# The listing: one ListEndpoints page, one ListTags for each of the 4 endpoints in the region (managed or not).
LIST_CALLS = [("sagemaker", "ListEndpoints")] + [("sagemaker", "ListTags")] * 4
# destroy_by_state of one endpoint with autoscaling (moto deletes at once, so one poll after DeleteEndpoint).
DESTROY_CALLS = [
    ("sagemaker", "DescribeEndpoint"),
    ("sagemaker", "ListTags"),
    ("application-autoscaling", "DescribeScalableTargets"),
    ("application-autoscaling", "DeleteScalingPolicy"),
    ("application-autoscaling", "DeregisterScalableTarget"),
    ("sagemaker", "DeleteEndpoint"),
    ("sagemaker", "DescribeEndpoint"),
    ("sagemaker", "DescribeEndpointConfig"),
    ("sagemaker", "ListTags"),
    ("sagemaker", "DeleteEndpointConfig"),
    ("sagemaker", "DescribeModel"),
    ("sagemaker", "ListTags"),
    ("sagemaker", "DeleteModel"),
]


def bare_adapter(world: SageMakerWorld, **options: Any) -> SageMakerAdapter:
    """A spec-less adapter for the region, as reap builds it, wired to the hooks and the fake clock."""
    options.setdefault("client_factory", world.hooks.factory)
    options.setdefault("sleep", world.clock.sleep)
    options.setdefault("clock", world.clock)
    adapter = SageMakerAdapter.from_state(BARE, **options)
    world.adapters.append(adapter)
    return adapter


def set_expiry(world: SageMakerWorld, name: str, value: str) -> None:
    client = world.client("sagemaker")
    arn = client.describe_endpoint(EndpointName=name)["EndpointArn"]
    client.add_tags(ResourceArn=arn, Tags=[{"Key": EXPIRES_AT_TAG, "Value": value}])


def make_by_hand(
    world: SageMakerWorld, name: str, *, endpoint_tags: dict[str, str], tags: dict[str, str] | None = None
) -> None:
    """A model, config and endpoint created directly in moto: the endpoint tagged ``endpoint_tags``, the config
    and the model ``tags``."""
    client = world.client("sagemaker")
    tag_list = [{"Key": key, "Value": value} for key, value in (tags or {}).items()]
    client.create_model(
        ModelName=f"{name}-model",
        Tags=tag_list,
        ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/theirs/model.tar.gz"},
    )
    variant = {
        "VariantName": "primary",
        "ModelName": f"{name}-model",
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1,
    }
    client.create_endpoint_config(
        EndpointConfigName=f"{name}-config", ProductionVariants=[variant], Tags=tag_list
    )
    client.create_endpoint(
        EndpointName=name,
        EndpointConfigName=f"{name}-config",
        Tags=[{"Key": key, "Value": value} for key, value in endpoint_tags.items()],
    )


def two_hours_ahead() -> datetime:
    return datetime.now(timezone.utc) + timedelta(hours=2)


@dataclass
class Fleet:
    """The applied endpoints: their specs, and the model and config each runs on."""

    world: SageMakerWorld
    specs: dict[str, Spec]
    models: dict[str, str]
    configs: dict[str, str]

    def adapter(self, **options: Any) -> SageMakerAdapter:
        return bare_adapter(self.world, **options)

    def assert_untouched(self, *names: str) -> None:
        endpoints, models, configs = self.world.endpoints(), self.world.models(), self.world.configs()
        for name in names:
            assert name in endpoints
            if name == FOREIGN:
                assert f"{FOREIGN}-model" in models and f"{FOREIGN}-config" in configs
            else:
                assert self.models[name] in models and self.configs[name] in configs

    def assert_gone(self, name: str) -> None:
        assert name not in self.world.endpoints()
        assert self.models[name] not in self.world.models()
        assert self.configs[name] not in self.world.configs()


@pytest.fixture
def fleet(sagemaker_world: SageMakerWorld) -> Iterator[Fleet]:
    autoscaling = {"min_instances": 1, "max_instances": 2, "target_invocations_per_instance": 50}
    specs = {
        EXPIRED: sagemaker_world.spec(name=EXPIRED, ttl="1h", autoscaling=autoscaling),
        FRESH: sagemaker_world.spec(name=FRESH, ttl="8h"),
        FOREVER: sagemaker_world.spec(name=FOREVER),
    }
    models, configs = {}, {}
    adapter = sagemaker_world.adapter(specs[EXPIRED])  # one adapter (one set of clients) for the one target
    for name, spec in specs.items():
        state = ek.apply(spec, adapter=adapter)
        models[name], configs[name] = state.extra["model"], state.extra["config"]
    # Not endpointkit's, though its tags say it expired long ago: reap must never touch it.
    make_by_hand(sagemaker_world, FOREIGN, endpoint_tags={EXPIRES_AT_TAG: PAST})
    sagemaker_world.hooks.calls.clear()
    yield Fleet(sagemaker_world, specs, models, configs)


@pytest.fixture
def hand_made(sagemaker_world: SageMakerWorld) -> SageMakerWorld:
    """Managed endpoints made directly in moto: ``a`` expired, ``b`` not yet, ``c`` never; and FOREIGN."""
    make_by_hand(sagemaker_world, "a", endpoint_tags={**MANAGED, EXPIRES_AT_TAG: PAST}, tags=MANAGED)
    make_by_hand(sagemaker_world, "b", endpoint_tags={**MANAGED, EXPIRES_AT_TAG: FUTURE}, tags=MANAGED)
    make_by_hand(sagemaker_world, "c", endpoint_tags=MANAGED, tags=MANAGED)
    make_by_hand(sagemaker_world, FOREIGN, endpoint_tags={EXPIRES_AT_TAG: PAST})
    sagemaker_world.hooks.calls.clear()
    return sagemaker_world


# ---- list_endpoints -----------------------------------------------------------------------------------------


def test_list_endpoints_lists_the_managed_ones_with_one_listing_and_one_tag_read_each(fleet: Fleet) -> None:
    before = datetime.now(timezone.utc)

    listed = {state.name: state for state in fleet.adapter().list_endpoints()}

    assert sorted(listed) == [EXPIRED, FOREVER, FRESH]
    assert fleet.world.hooks.calls == LIST_CALLS
    for name, state in listed.items():
        assert (state.target, state.kind, state.region) == ("sagemaker", "sagemaker", REGION)
        assert state.status is ek.EndpointStatus.IN_SERVICE
        assert state.spec_hash == fleet.specs[name].deployment().spec_hash()
        assert state.extra["arn"].endswith(f":endpoint/{name}")
    assert listed[FOREVER].expires_at is None
    expires = listed[EXPIRED].expires_at
    assert expires is not None and expires.utcoffset() == timedelta(0)
    assert timedelta(minutes=55) < expires - before <= timedelta(hours=1)
    fresh = listed[FRESH].expires_at
    assert fresh is not None and fresh - expires > timedelta(hours=6)


def test_list_endpoints_follows_every_page(
    hand_made: SageMakerWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_api, "LIST_PAGE_SIZE", 3)

    listed = [state.name for state in bare_adapter(hand_made).list_endpoints()]

    assert listed == ["a", "b", "c"]
    assert Counter(hand_made.hooks.operations()) == {"ListEndpoints": 2, "ListTags": 4}


def test_list_endpoints_survives_throttling(hand_made: SageMakerWorld) -> None:
    hand_made.hooks.fail("sagemaker", "ListEndpoints", "ThrottlingException", "Rate exceeded", times=2)

    assert len(bare_adapter(hand_made).list_endpoints()) == 3
    assert hand_made.hooks.operations() == ["ListEndpoints"] * 3 + ["ListTags"] * 4


def test_an_unreadable_expiry_is_no_expiry_and_a_warning(
    hand_made: SageMakerWorld, caplog: pytest.LogCaptureFixture
) -> None:
    set_expiry(hand_made, "a", "next tuesday")

    with caplog.at_level(logging.WARNING, logger="endpointkit.sagemaker"):
        listed = {state.name: state for state in bare_adapter(hand_made).list_endpoints()}
        report = reap(bare_adapter(hand_made))

    assert listed["a"].expires_at is None
    assert f"endpoint a has an unreadable {EXPIRES_AT_TAG} tag 'next tuesday'" in caplog.text
    assert report.outcomes == () and "a" in hand_made.endpoints()


def test_a_tag_of_the_previous_writer_is_reaped_like_one_of_the_codec(hand_made: SageMakerWorld) -> None:
    moment = datetime(2001, 1, 1, tzinfo=timezone.utc)
    set_expiry(hand_made, "a", moment.strftime("%Y-%m-%dT%H:%M:%SZ"))  # managed_tags before the codec
    set_expiry(hand_made, "b", encode_expiry(moment))

    listed = {state.name: state.expires_at for state in bare_adapter(hand_made).list_endpoints()}
    report = reap(bare_adapter(hand_made), now=moment + timedelta(seconds=1))

    assert listed == {"a": moment, "b": moment, "c": None}
    assert sorted((o.state.name, o.action) for o in report.outcomes) == [
        ("a", "destroyed"),
        ("b", "destroyed"),
    ]
    assert sorted(hand_made.endpoints()) == ["c", FOREIGN]


# ---- reap through the API -----------------------------------------------------------------------------------


def test_reap_destroys_the_expired_endpoint_with_its_config_model_and_autoscaling(fleet: Fleet) -> None:
    world = fleet.world
    archives = world.objects()
    assert len(world.scalable_targets()) == 1

    report = reap(fleet.adapter(), now=two_hours_ahead())

    assert [(o.state.name, o.action) for o in report.outcomes] == [(EXPIRED, "destroyed")]
    assert len(report.listed) == 3 and report.failed == ()
    fleet.assert_gone(EXPIRED)
    fleet.assert_untouched(FRESH, FOREVER, FOREIGN)
    assert world.scalable_targets() == [] and world.scaling_policies() == []
    assert world.objects() == archives  # archives are kept unless purge_artifacts
    assert world.hooks.calls == LIST_CALLS + DESTROY_CALLS


def test_dry_run_makes_only_the_listing_calls(fleet: Fleet) -> None:
    report = reap(fleet.adapter(), now=two_hours_ahead(), dry_run=True)

    assert [(o.state.name, o.action) for o in report.outcomes] == [(EXPIRED, "would destroy")]
    assert fleet.world.hooks.calls == LIST_CALLS
    fleet.assert_untouched(EXPIRED, FRESH, FOREVER, FOREIGN)


def test_nothing_expired_yet_costs_only_the_listing(fleet: Fleet) -> None:
    report = reap(fleet.adapter())

    assert report.outcomes == () and fleet.world.hooks.calls == LIST_CALLS


def test_purge_artifacts_deletes_the_archive_uploaded_for_the_reaped_endpoint_only(fleet: Fleet) -> None:
    world = fleet.world
    ours = [key for key in world.objects() if f"/{EXPIRED}-" in key]
    assert len(ours) == 1 and len(world.objects()) == 3

    reap(fleet.adapter(purge_artifacts=True), now=two_hours_ahead())

    assert ours[0] not in world.objects() and len(world.objects()) == 2
    assert world.hooks.operations("s3") == ["GetObjectTagging", "DeleteObject"]


def test_purge_artifacts_keeps_an_archive_the_user_uploaded(sagemaker_world: SageMakerWorld) -> None:
    sagemaker_world.client("s3").put_object(Bucket=BUCKET, Key="given/model.tar.gz", Body=b"archive")
    spec = sagemaker_world.spec(
        name="given",
        ttl="1h",
        model={"repository": f"s3://{BUCKET}/given/model.tar.gz", "default_model": "echo"},
    )
    ek.apply(spec, adapter=sagemaker_world.adapter(spec))

    report = reap(bare_adapter(sagemaker_world, purge_artifacts=True), now=two_hours_ahead())

    assert [o.action for o in report.outcomes] == ["destroyed"]
    assert (sagemaker_world.endpoints(), sagemaker_world.models()) == ([], [])
    assert sagemaker_world.objects() == ["given/model.tar.gz"]


# ---- destroy_by_state on its own ----------------------------------------------------------------------------


def _listed(adapter: SageMakerAdapter, name: str) -> EndpointState:
    return next(state for state in adapter.list_endpoints() if state.name == name)


def test_destroy_by_state_is_idempotent(hand_made: SageMakerWorld) -> None:
    adapter = bare_adapter(hand_made)
    state = _listed(adapter, "a")
    adapter.destroy_by_state(state)
    assert "a" not in hand_made.endpoints() and "a-config" not in hand_made.configs()
    hand_made.hooks.calls.clear()

    adapter.destroy_by_state(state)

    assert hand_made.hooks.operations() == ["DescribeEndpoint"]


def test_destroy_by_state_refuses_an_endpoint_endpointkit_does_not_manage(hand_made: SageMakerWorld) -> None:
    state = EndpointState(FOREIGN, "sagemaker", "sagemaker", ek.EndpointStatus.IN_SERVICE, region=REGION)

    with pytest.raises(ek.ConflictError, match="not managed by endpointkit") as raised:
        bare_adapter(hand_made).destroy_by_state(state)

    assert raised.value.code == "NotManaged"
    assert hand_made.hooks.operations() == ["DescribeEndpoint", "ListTags"]
    assert FOREIGN in hand_made.endpoints() and f"{FOREIGN}-model" in hand_made.models()


def test_destroy_by_state_refuses_an_endpoint_re_applied_since_it_was_listed(
    hand_made: SageMakerWorld,
) -> None:
    adapter = bare_adapter(hand_made)
    state = _listed(adapter, "a")
    set_expiry(hand_made, "a", FUTURE)  # another run applied it again meanwhile

    with pytest.raises(ek.ConflictError, match="re-applied or re-tagged") as raised:
        adapter.destroy_by_state(state)

    assert raised.value.code == "ExpiryChanged" and "a" in hand_made.endpoints()


def test_destroy_by_state_refuses_a_state_from_another_region(hand_made: SageMakerWorld) -> None:
    state = EndpointState("a", "sagemaker", "sagemaker", ek.EndpointStatus.IN_SERVICE, region="eu-west-1")

    with pytest.raises(ek.ConflictError, match="eu-west-1") as raised:
        bare_adapter(hand_made).destroy_by_state(state)

    assert raised.value.code == "WrongRegion" and hand_made.hooks.calls == []


def test_a_config_and_model_endpointkit_does_not_manage_are_kept(
    sagemaker_world: SageMakerWorld, caplog: pytest.LogCaptureFixture
) -> None:
    # Someone tagged their own endpoint as endpointkit's: it goes, the config and model it ran on stay.
    make_by_hand(sagemaker_world, "adopted", endpoint_tags=MANAGED)
    state = EndpointState("adopted", "sagemaker", "sagemaker", ek.EndpointStatus.IN_SERVICE, region=REGION)

    with caplog.at_level(logging.WARNING, logger="endpointkit.sagemaker"):
        bare_adapter(sagemaker_world).destroy_by_state(state)

    assert sagemaker_world.endpoints() == []
    assert sagemaker_world.configs() == ["adopted-config"] and sagemaker_world.models() == ["adopted-model"]
    assert "keeping endpoint config adopted-config" in caplog.text
    assert "keeping model adopted-model" in caplog.text


def test_a_deletion_that_never_finishes_times_out_within_the_delete_timeout(fleet: Fleet) -> None:
    hooks, clock = fleet.world.hooks, fleet.world.clock
    hooks.respond("sagemaker", "DeleteEndpoint", lambda _: {})  # accepted, but the endpoint never goes
    hooks.script_status(EXPIRED, ("InService", None), ("Deleting", None), sticky=True)
    started = clock.now

    report = reap(fleet.adapter(delete_timeout=300), now=two_hours_ahead())

    (outcome,) = report.outcomes
    assert outcome.action == "failed" and isinstance(outcome.error, ek.ProvisionTimeout)
    assert "did not finish within 5m" in str(outcome.error)
    assert clock.now - started == 300 and max(clock.sleeps) <= 30
    assert fleet.configs[EXPIRED] in fleet.world.configs()  # the config and model wait for the endpoint to go


def test_destroy_falls_back_to_the_endpoint_description_when_the_repository_is_gone(fleet: Fleet) -> None:
    spec = fleet.specs[FRESH]
    for path in sorted(fleet.world.repository.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    fleet.world.repository.rmdir()

    assert ek.destroy(spec, adapter=fleet.world.adapter(spec)) is True

    # Without the repository the spec's names cannot be computed: the provisioner used destroy_by_state, which
    # reads the model the endpoint ran on (the spec's own path never describes a model unless purging).
    assert "DescribeModel" in fleet.world.hooks.operations()
    fleet.assert_gone(FRESH)
    fleet.assert_untouched(EXPIRED, FOREVER, FOREIGN)


# ---- an adapter built from a bare state -----------------------------------------------------------------------


def test_a_bare_state_builds_a_list_and_delete_only_adapter(sagemaker_world: SageMakerWorld) -> None:
    adapter = adapters.adapter_for_state(BARE, client_factory=sagemaker_world.hooks.factory)
    assert isinstance(adapter, SageMakerAdapter) and isinstance(adapter, ReapableAdapter)
    sagemaker_world.adapters.append(adapter)
    assert (adapter.region, adapter.target_name, adapter.target) == (REGION, "sagemaker", None)

    with pytest.raises(ek.UnsupportedCapabilityError, match="without a spec target"):
        ek.apply(sagemaker_world.spec(), adapter=adapter)

    assert sagemaker_world.hooks.mutating() == []  # nothing created, and no rollback call either
    with pytest.raises(ValueError, match="region"):
        SageMakerAdapter.from_state(EndpointState("", "sagemaker", "sagemaker", ek.EndpointStatus.UNKNOWN))


# ---- the command ----------------------------------------------------------------------------------------------


@pytest.fixture
def cli_wiring(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> list[EndpointState]:
    """Route the adapters the CLI builds (from_state or create_adapter) through the hooks and the fake clock, and
    move EXPIRED's expiry five minutes into the past. Returns the states the CLI passed to ``from_state``."""
    passed: list[EndpointState] = []
    original_from_state = SageMakerAdapter.from_state
    original_create = adapters.create_adapter
    world = fleet.world
    wiring = {"client_factory": world.hooks.factory, "sleep": world.clock.sleep, "clock": world.clock}

    def from_state(cls: type[SageMakerAdapter], /, state: EndpointState, **options: Any) -> SageMakerAdapter:
        passed.append(state)
        adapter = original_from_state(state, **{**wiring, **options})
        world.adapters.append(adapter)
        return adapter

    def create_adapter(deployment: Any, **options: Any) -> Any:
        return original_create(deployment, **{**wiring, **options})

    monkeypatch.setattr(SageMakerAdapter, "from_state", classmethod(from_state))
    monkeypatch.setattr(adapters, "create_adapter", create_adapter)
    five_minutes_ago = datetime.now(timezone.utc) - timedelta(minutes=5)
    set_expiry(world, EXPIRED, five_minutes_ago.strftime("%Y-%m-%dT%H:%M:%SZ"))
    world.hooks.calls.clear()
    return passed


def test_cli_reap_a_bare_sagemaker_target(
    fleet: Fleet, cli_wiring: list[EndpointState], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reap", "--target", "sagemaker", "--region", REGION, "--json"]) == 0

    document = json.loads(capsys.readouterr().out)
    assert (document["target"], document["kind"], document["listed"], document["failed"]) == (
        "sagemaker",
        "sagemaker",
        3,
        0,
    )
    assert [(e["name"], e["action"]) for e in document["expired"]] == [(EXPIRED, "destroyed")]
    assert 300 <= document["expired"][0]["expired_seconds_ago"] < 400
    assert cli_wiring == [BARE]
    fleet.assert_gone(EXPIRED)
    fleet.assert_untouched(FRESH, FOREVER, FOREIGN)
    assert fleet.world.hooks.calls == LIST_CALLS + DESTROY_CALLS


def test_cli_reap_dry_run_deletes_nothing(
    fleet: Fleet, cli_wiring: list[EndpointState], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reap", "--target", "sagemaker", "--region", REGION, "--dry-run"]) == 0

    out = capsys.readouterr().out
    assert "reap on sagemaker (sagemaker): 3 managed endpoint(s), 1 expired (dry run)" in out
    assert f"would destroy {EXPIRED} (expired 5m ago)" in out
    assert fleet.world.hooks.calls == LIST_CALLS
    fleet.assert_untouched(EXPIRED, FRESH, FOREVER, FOREIGN)


def test_cli_reap_the_target_of_a_spec(
    fleet: Fleet, cli_wiring: list[EndpointState], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "endpoint.yaml"
    spec = fleet.specs[FOREVER]  # any spec naming the target will do
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True)))

    assert main(["reap", "--spec", str(path), "--target", "aws", "--json"]) == 0

    document = json.loads(capsys.readouterr().out)
    assert (document["target"], document["kind"]) == ("aws", "sagemaker")
    assert [(e["name"], e["action"]) for e in document["expired"]] == [(EXPIRED, "destroyed")]
    assert cli_wiring == []  # built from the spec's target, not from a state
    fleet.assert_gone(EXPIRED)
    fleet.assert_untouched(FRESH, FOREVER, FOREIGN)
    assert fleet.world.hooks.calls == LIST_CALLS + DESTROY_CALLS
