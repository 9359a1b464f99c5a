from __future__ import annotations

from pathlib import Path

import pytest

from endpointkit.errors import SpecError
from endpointkit.spec import load_spec, parse_duration, spec_from_dict

ROLE = "arn:aws:iam::123456789012:role/endpointkit"


def minimal(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "demo",
        "model": {"repository": "s3://models/demo/model.tar.gz"},
        "variants": [{"name": "primary"}],
    }
    data.update(overrides)
    return data


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "endpoint.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("8h", 28800), ("1d", 86400), (45, 45)]
)
def test_durations_accept_units(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30x", "-5s", "0", "soon", True])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_minimal_spec_defaults_to_the_local_target() -> None:
    spec = spec_from_dict(minimal())
    deployment = spec.deployment()
    assert deployment.target_name == "local"
    assert deployment.kind == "local"
    assert spec.timeouts.create == 1800


def test_unknown_key_names_the_path_line_and_nearest_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: demo\nmodel:\n  repository: s3://b/m.tar.gz\n  enviroment: {A: b}\nvariants: [{name: a}]\n",
    )
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert "model.enviroment" in message
    assert "did you mean 'environment'" in message
    assert ":4:" in message
    assert caught.value.field == "model.enviroment"
    assert caught.value.line == 4


def test_bad_value_names_the_indexed_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: demo\nmodel: {repository: s3://b/m.tar.gz}\nvariants:\n  - {name: a, instance_count: 0}\n",
    )
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.field == "variants[0].instance_count"
    assert caught.value.line == 4
    assert "greater than or equal to 1" in str(caught.value)


def test_broken_yaml_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\nmodel: {repository: x\nvariants: []\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.line == 3
    assert "not valid YAML" in str(caught.value)


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "absent.yaml")


def test_unknown_target_kind_lists_the_valid_kinds() -> None:
    with pytest.raises(SpecError, match="valid kinds: local, sagemaker, aks"):
        spec_from_dict(minimal(targets={"x": {"kind": "gke"}}))


def test_invalid_choice_lists_the_choices() -> None:
    with pytest.raises(SpecError, match="valid choices") as caught:
        spec_from_dict(minimal(variants=[{"name": "a", "accelerator": "tpu"}]))
    assert "'gpu'" in str(caught.value)


def test_gpu_variant_on_cpu_instance_type_is_refused_at_load() -> None:
    target = {"kind": "sagemaker", "region": "us-east-1", "role_arn": ROLE, "bucket": "models"}
    data = minimal(
        variants=[{"name": "a", "accelerator": "gpu", "instance_type": "ml.m5.large"}],
        targets={"aws": target},
    )
    with pytest.raises(SpecError, match="ml.m5.large has no accelerator") as caught:
        spec_from_dict(data)
    assert caught.value.field == "variants[0].accelerator"


def test_role_arn_shape_is_checked() -> None:
    target = {"kind": "sagemaker", "region": "us-east-1", "role_arn": "my-role", "bucket": "models"}
    with pytest.raises(SpecError, match="not an IAM role ARN"):
        spec_from_dict(minimal(targets={"aws": target}))


def test_target_overrides_replace_variant_fields() -> None:
    target = {
        "kind": "sagemaker",
        "region": "us-east-1",
        "role_arn": ROLE,
        "bucket": "models",
        "variants": {"primary": {"accelerator": "gpu", "instance_type": "ml.g5.xlarge"}},
    }
    spec = spec_from_dict(minimal(targets={"local": {"kind": "local"}, "aws": target}))
    assert spec.deployment("aws").variants[0].instance_type == "ml.g5.xlarge"
    assert spec.deployment("local").variants[0].accelerator == "cpu"


def test_override_of_unknown_variant_is_refused() -> None:
    with pytest.raises(SpecError, match="names ghost"):
        spec_from_dict(minimal(targets={"local": {"kind": "local", "variants": {"ghost": {"weight": 2}}}}))


def test_target_must_be_named_when_there_are_several() -> None:
    spec = spec_from_dict(minimal(targets={"a": {"kind": "local"}, "b": {"kind": "local"}}))
    with pytest.raises(SpecError, match="pick one"):
        spec.deployment()
    with pytest.raises(SpecError, match="did you mean 'a'"):
        spec.deployment("aa")


def test_weights_must_add_up_to_a_positive_total() -> None:
    with pytest.raises(SpecError, match="weights add up to 0"):
        spec_from_dict(minimal(variants=[{"name": "a", "weight": 0}]))


def test_duplicate_variant_names_are_refused() -> None:
    with pytest.raises(SpecError, match="repeated: a"):
        spec_from_dict(minimal(variants=[{"name": "a"}, {"name": "a"}]))


def test_aks_gpu_variant_needs_a_gpu_pool() -> None:
    target = {
        "kind": "aks",
        "subscription_id": "sub",
        "resource_group": "rg",
        "cluster": "c",
        "node_pool": {"vm_size": "Standard_D4s_v5"},
    }
    with pytest.raises(SpecError, match="Standard_D4s_v5 has no accelerator"):
        spec_from_dict(minimal(variants=[{"name": "a", "accelerator": "gpu"}], targets={"az": target}))


def test_spec_hash_is_stable_and_sensitive_to_changes() -> None:
    first = spec_from_dict(minimal()).deployment().spec_hash()
    assert first == spec_from_dict(minimal()).deployment().spec_hash()
    assert first != spec_from_dict(minimal(tags={"team": "x"})).deployment().spec_hash()


def test_the_invoke_transport_changes_no_spec_hash() -> None:
    """How clients call an endpoint is not what is deployed: no re-tag, and hashes from before the key stay."""
    plain = spec_from_dict(minimal()).deployment().spec_hash()
    grpc = spec_from_dict(minimal(targets={"local": {"kind": "local", "transport": "grpc"}})).deployment()

    assert grpc.target.transport == "grpc"
    assert grpc.spec_hash() == plain


def test_an_unknown_transport_is_refused_naming_the_field() -> None:
    with pytest.raises(SpecError, match="transport"):
        spec_from_dict(minimal(targets={"local": {"kind": "local", "transport": "carrier-pigeon"}}))


def test_quickstart_spec_loads() -> None:
    spec = load_spec(Path(__file__).parent.parent / "examples" / "quickstart" / "endpoint.yaml")
    assert set(spec.targets) == {"local", "aws", "azure"}
    assert spec.deployment("aws").variants[0].instance_type == "ml.g4dn.xlarge"


QUICKSTART = Path(__file__).parent.parent / "examples" / "quickstart"


def test_missing_local_repository_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\nmodel: {repository: ./nowhere}\nvariants: [{name: a}]\n")
    with pytest.raises(SpecError, match="is not a folder") as caught:
        load_spec(path)
    assert caught.value.field == "model.repository"


def test_default_model_must_be_in_the_repository(tmp_path: Path) -> None:
    repository = (QUICKSTART / "model_repository").resolve()
    path = write(
        tmp_path,
        f"name: demo\nmodel: {{repository: {repository}, default_model: ensembel}}\nvariants: [{{name: a}}]\n",
    )
    with pytest.raises(SpecError, match="did you mean 'ensemble'"):
        load_spec(path)


def test_status_and_destroy_can_load_a_spec_whose_repository_is_gone(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\nmodel: {repository: ./gone}\nvariants: [{name: a}]\n")
    spec = load_spec(path, check_repository=False)
    assert spec.deployment().repository.endswith("gone")


def _sagemaker(variant: dict[str, object]) -> dict[str, object]:
    target = {"kind": "sagemaker", "region": "us-east-1", "role_arn": ROLE, "bucket": "models"}
    return minimal(variants=[{"name": "a", **variant}], targets={"aws": target})


@pytest.mark.parametrize("instance_type", ["ml.p5en.48xlarge", "ml.p6-b200.48xlarge", "ml.g7e.2xlarge"])
def test_gpu_variant_on_a_current_gpu_family_loads(instance_type: str) -> None:
    spec = spec_from_dict(_sagemaker({"accelerator": "gpu", "instance_type": instance_type}))
    assert spec.deployment().variants[0].instance_type == instance_type


def test_trainium_is_a_neuron_type_not_a_gpu_or_a_cpu() -> None:
    spec_from_dict(_sagemaker({"accelerator": "inferentia", "instance_type": "ml.trn1.2xlarge"}))
    with pytest.raises(SpecError, match="ml.trn1.2xlarge has inferentia") as caught:
        spec_from_dict(_sagemaker({"accelerator": "gpu", "instance_type": "ml.trn1.2xlarge"}))
    assert caught.value.field == "variants[0].accelerator"


def test_sagemaker_fpga_variant_without_instance_type_loads_for_the_capability_check() -> None:
    spec = spec_from_dict(_sagemaker({"accelerator": "fpga"}))
    assert spec.deployment().variants[0].instance_type is None


def test_sagemaker_gpu_variant_without_instance_type_is_refused_at_load() -> None:
    with pytest.raises(SpecError, match="instance_type is required") as caught:
        spec_from_dict(_sagemaker({"accelerator": "gpu"}))
    assert caught.value.field == "variants[0].instance_type"
