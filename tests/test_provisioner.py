from __future__ import annotations

import pytest

import endpointkit as ek
from endpointkit.adapters.base import Capability, EndpointStatus
from endpointkit.adapters.memory import MemoryAdapter, MemoryCloud
from endpointkit.errors import CapacityError, ProviderError, UnsupportedCapabilityError
from endpointkit.spec import Spec, spec_from_dict


def make_spec(count: int = 1, **extra: object) -> Spec:
    data: dict[str, object] = {
        "name": "demo",
        "model": {"repository": "s3://models/demo/model.tar.gz"},
        "variants": [{"name": "primary", "instance_count": count}],
        "targets": {"mem": {"kind": "local"}},
    }
    data.update(extra)
    return spec_from_dict(data)


def test_first_apply_creates_model_config_endpoint_in_order() -> None:
    adapter = MemoryAdapter()
    state = ek.apply(make_spec(), adapter=adapter)
    assert state.status is EndpointStatus.IN_SERVICE
    assert [(op, kind) for op, kind, _ in adapter.mutating_calls] == [
        ("create", "model"),
        ("create", "endpoint_config"),
        ("create", "endpoint"),
    ]


def test_unchanged_reapply_makes_no_mutating_call() -> None:
    adapter = MemoryAdapter()
    ek.apply(make_spec(), adapter=adapter)
    adapter.calls.clear()
    ek.apply(make_spec(), adapter=adapter)
    assert adapter.mutating_calls == []


def test_update_is_blue_green_new_first_old_deleted_last() -> None:
    adapter = MemoryAdapter()
    ek.apply(make_spec(1), adapter=adapter)
    old_config = adapter.cloud.resources["endpoint"]["demo"].properties["config"]
    adapter.calls.clear()
    ek.apply(make_spec(2), adapter=adapter)
    operations = [(op, kind) for op, kind, _ in adapter.mutating_calls]
    assert operations == [
        ("create", "endpoint_config"),
        ("update", "endpoint"),
        ("delete", "endpoint_config"),
    ]
    assert adapter.mutating_calls[-1][2] == old_config
    assert old_config not in adapter.cloud.resources["endpoint_config"]


def test_failed_create_rolls_back_exactly_what_the_run_created() -> None:
    adapter = MemoryAdapter()
    adapter.fail("create", "endpoint", CapacityError("no ml.g5.xlarge capacity", provider="memory"))
    with pytest.raises(CapacityError, match="no ml.g5.xlarge capacity"):
        ek.apply(make_spec(), adapter=adapter)
    deletes = [(kind) for op, kind, _ in adapter.mutating_calls if op == "delete"]
    assert deletes == ["endpoint", "endpoint_config", "model"]
    assert all(not resources for resources in adapter.cloud.resources.values())


def test_failed_update_leaves_the_serving_endpoint_untouched() -> None:
    cloud = MemoryCloud()
    adapter = MemoryAdapter(cloud=cloud)
    ek.apply(make_spec(1), adapter=adapter)
    serving = dict(cloud.resources["endpoint"])
    old_model = set(cloud.resources["model"])
    adapter.fail("update", "endpoint", ProviderError("update failed: health check", provider="memory"))
    with pytest.raises(ProviderError, match="health check"):
        ek.apply(make_spec(3), adapter=adapter)
    assert cloud.resources["endpoint"] == serving
    assert set(cloud.resources["model"]) == old_model
    assert len(cloud.resources["endpoint_config"]) == 1
    assert not ek.plan(make_spec(1), adapter=adapter).has_changes


def test_destroy_is_idempotent() -> None:
    adapter = MemoryAdapter()
    ek.apply(make_spec(), adapter=adapter)
    assert ek.destroy(make_spec(), adapter=adapter) is True
    assert ek.destroy(make_spec(), adapter=adapter) is False
    assert ek.status(make_spec(), adapter=adapter) is None


def test_capabilities_are_checked_before_any_call() -> None:
    adapter = MemoryAdapter(
        unsupported={Capability.AUTOSCALING: "no scaler here", Capability.TRAFFIC_SPLIT: "one variant only"}
    )
    spec = make_spec(
        variants=[{"name": "a"}, {"name": "b"}],
        autoscaling={"min_instances": 1, "max_instances": 2},
    )
    with pytest.raises(UnsupportedCapabilityError) as caught:
        ek.plan(spec, adapter=adapter)
    assert set(caught.value.missing) == {"autoscaling", "traffic_split"}
    assert "no scaler here" in str(caught.value) and "one variant only" in str(caught.value)
    assert adapter.calls == []


def test_plan_renders_a_readable_diff_and_json() -> None:
    plan = ek.plan(make_spec(), adapter=MemoryAdapter())
    text = str(plan)
    assert "+ model" in text and "+ endpoint" in text
    document = plan.to_dict()
    assert [change["action"] for change in document["changes"]] == ["create", "create", "create"]
    assert document["has_changes"] is True


def test_failed_endpoint_is_replaced() -> None:
    cloud = MemoryCloud()
    adapter = MemoryAdapter(cloud=cloud)
    ek.apply(make_spec(), adapter=adapter)
    cloud.endpoint_status["demo"] = EndpointStatus.FAILED
    cloud.endpoint_reason["demo"] = "container exited"
    plan = ek.plan(make_spec(), adapter=adapter)
    replace = [c for c in plan.changes if c.action == "replace"]
    assert replace and "container exited" in replace[0].reason
    ek.apply(make_spec(), adapter=adapter)
    assert ek.status(make_spec(), adapter=adapter).status is EndpointStatus.IN_SERVICE  # type: ignore[union-attr]


def test_expiry_tag_follows_the_ttl() -> None:
    desired = MemoryAdapter().desired(make_spec(ttl="2h").deployment())
    assert desired.tags["managed-by"] == "endpointkit"
    assert desired.tags["endpointkit-expires-at"].endswith("Z")
    assert "endpointkit-expires-at" not in MemoryAdapter().desired(make_spec().deployment()).tags


def test_a_name_taken_by_someone_else_is_never_rolled_back() -> None:
    from endpointkit.errors import ConflictError

    cloud = MemoryCloud()
    adapter = MemoryAdapter(cloud=cloud)
    adapter.fail("create", "endpoint", ConflictError("demo exists and is not managed by endpointkit"))
    with pytest.raises(ConflictError):
        ek.apply(make_spec(), adapter=adapter)
    deleted = [kind for op, kind, _ in adapter.mutating_calls if op == "delete"]
    assert deleted == ["endpoint_config", "model"]
