"""What the SageMaker adapter decides before any cloud call: validation, limitations, names, images."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import endpointkit as ek
from endpointkit.adapters.base import EXPIRES_AT_TAG, Capability
from endpointkit.adapters.sagemaker import SageMakerAdapter, hosting_instance_types, nearest_instance_types
from endpointkit.adapters.sagemaker._images import LEGACY_ACCOUNTS, triton_image
from endpointkit.spec import Spec, spec_from_dict
from tests.adapters.sagemaker_fixtures import write_echo_repository

ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"


def _no_clients(service: str) -> Any:
    raise AssertionError(f"planning must not build a {service} client")


def make_spec(tmp_path: Path, **overrides: Any) -> Spec:
    repository = tmp_path / "repo"
    if not repository.exists():
        write_echo_repository(repository)
    target = {"kind": "sagemaker", "region": "us-east-1", "role_arn": ROLE, "bucket": "models-bucket"}
    target.update(overrides.pop("target", {}))
    data: dict[str, Any] = {
        "name": "vision",
        "model": {"repository": str(repository)},
        "variants": [{"name": "primary", "accelerator": "gpu", "instance_type": "ml.g5.xlarge"}],
        "targets": {"aws": target},
    }
    data.update(overrides)
    return spec_from_dict(data, base_dir=tmp_path)


def adapter_for(spec: Spec) -> SageMakerAdapter:
    deployment = spec.deployment()
    return SageMakerAdapter(deployment.target, target_name="aws", client_factory=_no_clients)  # type: ignore[arg-type]


def desired(spec: Spec) -> Any:
    return adapter_for(spec).desired(spec.deployment())


def test_instance_types_come_from_botocores_service_model() -> None:
    types = hosting_instance_types()
    assert {"ml.g5.xlarge", "ml.g4dn.xlarge", "ml.p4d.24xlarge", "ml.inf2.xlarge"} <= types
    assert not any(name.startswith("ml.f") for name in types)  # no FPGA on SageMaker hosting


def test_unknown_instance_type_names_the_field_and_the_nearest_valid_types(tmp_path: Path) -> None:
    spec = make_spec(
        tmp_path, variants=[{"name": "primary", "accelerator": "gpu", "instance_type": "ml.g5.xlarg"}]
    )

    with pytest.raises(ek.SpecError) as raised:
        desired(spec)

    assert raised.value.field == "variants[0].instance_type"
    assert "'ml.g5.xlarg' is not a SageMaker hosting instance type" in str(raised.value)
    assert "ml.g5.xlarge" in str(raised.value).split("nearest valid types:")[1]
    assert nearest_instance_types("ml.g5.xlarg")[0] == "ml.g5.xlarge"


def test_instance_type_override_is_reported_at_its_own_path(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, target={"variants": {"primary": {"instance_type": "ml.g4dn.hugexlarge"}}})

    with pytest.raises(ek.SpecError) as raised:
        desired(spec)

    assert raised.value.field == "targets.aws.variants.primary.instance_type"


def test_fallbacks_must_be_valid_and_carry_the_same_accelerator(tmp_path: Path) -> None:
    with pytest.raises(ek.SpecError) as raised:
        desired(make_spec(tmp_path, target={"instance_type_fallbacks": ["ml.g6.xlarge", "ml.g9.xlarge"]}))
    assert raised.value.field == "targets.aws.instance_type_fallbacks[1]"

    with pytest.raises(ek.SpecError, match="same accelerator") as raised:
        desired(make_spec(tmp_path, target={"instance_type_fallbacks": ["ml.m5.xlarge"]}))
    assert raised.value.field == "targets.aws.instance_type_fallbacks[0]"


def test_desired_is_deterministic_and_makes_no_call(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, target={"instance_type_fallbacks": ["ml.g6.xlarge"]})

    first, second = desired(spec), desired(spec)

    assert (first.model.name, first.config.name) == (second.model.name, second.config.name)
    assert first.model.name.startswith("vision-") and len(first.model.name) == len("vision-") + 8
    assert first.endpoint.name == "vision"
    assert first.model.properties["model_data_url"].startswith("s3://models-bucket/endpointkit/vision-")
    assert first.model.properties["model_data_url"].endswith("/model.tar.gz")
    # fallbacks do not name the config: changing them alone is not a redeploy
    other = desired(make_spec(tmp_path, target={"instance_type_fallbacks": ["ml.g6e.xlarge"]}))
    assert other.config.name == first.config.name


def test_startup_timeouts_follow_timeouts_create_capped_at_an_hour(tmp_path: Path) -> None:
    short = desired(make_spec(tmp_path, timeouts={"create": "15m"}))
    long = desired(make_spec(tmp_path, timeouts={"create": "3h"}))

    assert short.config.properties["variants"][0]["startup_timeout"] == 900
    assert long.config.properties["variants"][0]["startup_timeout"] == 3600


def test_default_model_comes_first_in_the_environment_and_the_user_can_override_it(tmp_path: Path) -> None:
    plain = desired(
        make_spec(tmp_path, model={"repository": str(tmp_path / "repo"), "environment": {"A": "1"}})
    )
    assert list(plain.model.properties["environment"].items()) == [
        ("SAGEMAKER_TRITON_DEFAULT_MODEL_NAME", "echo"),
        ("A", "1"),
    ]


def test_ttl_adds_an_expiry_tag(tmp_path: Path) -> None:
    assert EXPIRES_AT_TAG in desired(make_spec(tmp_path, ttl="8h")).tags
    assert EXPIRES_AT_TAG not in desired(make_spec(tmp_path)).tags


def test_images_follow_the_region_table_the_tag_and_the_accelerator(tmp_path: Path) -> None:
    gpu = desired(make_spec(tmp_path)).model.properties["image"]
    assert gpu == "763104351884.dkr.ecr.us-east-1.amazonaws.com/sagemaker-tritonserver:24.09-py3"
    cpu = desired(make_spec(tmp_path, variants=[{"name": "primary", "instance_type": "ml.c5.xlarge"}]))
    assert cpu.model.properties["image"].endswith(":24.09-py3-cpu")
    custom = desired(
        make_spec(tmp_path, model={"repository": str(tmp_path / "repo"), "image": "my/triton:1"})
    )
    assert custom.model.properties["image"] == "my/triton:1"
    assert triton_image("us-east-1", "23.02-py3").startswith("785573368785.dkr.ecr.us-east-1.amazonaws.com/")
    assert (
        triton_image("cn-north-1")
        == "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-tritonserver:24.09-py3"
    )
    assert triton_image("af-south-1").startswith("626614931356.")
    assert "us-gov-east-1" not in LEGACY_ACCOUNTS


def test_a_region_without_an_image_asks_for_model_image(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, target={"region": "xx-nowhere-1"})

    with pytest.raises(ek.SpecError, match="set model.image") as raised:
        desired(spec)

    assert raised.value.field == "targets.aws.region"


def test_repository_must_be_a_folder_or_an_s3_archive(tmp_path: Path) -> None:
    with pytest.raises(ek.SpecError, match="s3://BUCKET/KEY/model.tar.gz") as raised:
        desired(make_spec(tmp_path, model={"repository": "as://account/container/repo"}))
    assert raised.value.field == "model.repository"


def test_limitations_name_reasons_and_alternatives(tmp_path: Path) -> None:
    realtime = adapter_for(make_spec(tmp_path)).limitations(make_spec(tmp_path).deployment())
    assert "no FPGA instances" in realtime[Capability.FPGA]
    assert "Inferentia" in realtime[Capability.FPGA] and "AKS" in realtime[Capability.FPGA]
    for supported in (
        Capability.GPU,
        Capability.INFERENTIA,
        Capability.AUTOSCALING,
        Capability.TRAFFIC_SPLIT,
        Capability.SERVERLESS,
        Capability.ASYNC_INFERENCE,
        Capability.KEY_AUTH,
    ):
        assert supported not in realtime

    serverless = make_spec(tmp_path, target={"serverless": {"memory_mb": 2048}})
    limits = adapter_for(serverless).limitations(serverless.deployment())
    assert "no GPUs" in limits[Capability.GPU] or "without GPUs" in limits[Capability.GPU]


def test_fpga_and_gpu_on_serverless_fail_in_plan_before_any_call(tmp_path: Path) -> None:
    fpga = make_spec(
        tmp_path, variants=[{"name": "primary", "accelerator": "fpga", "instance_type": "ml.m5.xlarge"}]
    )
    with pytest.raises(ek.UnsupportedCapabilityError) as raised:
        ek.plan(fpga, adapter=adapter_for(fpga))
    assert "SageMaker hosting has no FPGA instances" in raised.value.missing["fpga"]

    gpu_serverless = make_spec(tmp_path, target={"serverless": {}}, autoscaling={"max_instances": 2})
    with pytest.raises(ek.UnsupportedCapabilityError) as raised:
        ek.plan(gpu_serverless, adapter=adapter_for(gpu_serverless))
    assert set(raised.value.missing) == {"gpu", "autoscaling"}


def test_inferentia_without_a_custom_image_logs_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = make_spec(
        tmp_path,
        variants=[{"name": "primary", "accelerator": "inferentia", "instance_type": "ml.inf2.xlarge"}],
    )

    with caplog.at_level(logging.WARNING, logger="endpointkit.sagemaker"):
        limits = adapter_for(spec).limitations(spec.deployment())

    assert Capability.INFERENTIA not in limits
    assert "Neuron" in caplog.text and "model.image" in caplog.text


def test_request_limit_is_6_mib_or_4_mb_serverless(tmp_path: Path) -> None:
    assert adapter_for(make_spec(tmp_path)).max_request_bytes == 6_291_456
    serverless = make_spec(tmp_path, target={"serverless": {}}, variants=[{"name": "primary"}])
    assert adapter_for(serverless).max_request_bytes == 4_000_000


def test_importing_the_adapter_does_not_import_boto3() -> None:
    import subprocess
    import sys

    code = (
        "import sys, endpointkit.adapters.sagemaker; print('boto3' in sys.modules, 'botocore' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False False"


def test_fpga_without_an_instance_type_gets_the_capability_error_not_a_missing_field(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, variants=[{"name": "primary", "accelerator": "fpga"}])

    with pytest.raises(ek.UnsupportedCapabilityError) as raised:
        ek.plan(spec, adapter=adapter_for(spec))

    reason = raised.value.missing["fpga"]
    assert "variants[0].accelerator: fpga" in reason
    assert "SageMaker hosting has no FPGA instances" in reason
    assert "Inferentia" in reason and "AKS" in reason


def test_an_inferentia_instance_type_warns_even_without_the_accelerator_field(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = make_spec(tmp_path, variants=[{"name": "primary", "instance_type": "ml.inf2.xlarge"}])

    with caplog.at_level(logging.WARNING, logger="endpointkit.sagemaker"):
        adapter_for(spec).limitations(spec.deployment())

    assert "Neuron" in caplog.text and "model.image" in caplog.text
    assert "primary (ml.inf2.xlarge)" in caplog.text


def test_a_custom_image_silences_the_neuron_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = make_spec(
        tmp_path,
        model={"repository": str(tmp_path / "repo"), "image": "my/neuron-triton:1"},
        variants=[{"name": "primary", "instance_type": "ml.trn1.2xlarge"}],
    )

    with caplog.at_level(logging.WARNING, logger="endpointkit.sagemaker"):
        adapter_for(spec).limitations(spec.deployment())

    assert "Neuron" not in caplog.text


def test_a_new_gpu_family_gets_the_gpu_image_without_the_accelerator_field(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, variants=[{"name": "primary", "instance_type": "ml.p5en.48xlarge"}])

    image = desired(spec).model.properties["image"]

    assert image.endswith(":24.09-py3")
