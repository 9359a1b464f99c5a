"""Where AWS publishes the ``sagemaker-tritonserver`` image in each region: a vendored region -> account table.

Vendored so that planning needs neither the ``sagemaker`` SDK nor the network. Two tables, because AWS moved the
image in version 23.12:

* 23.12 and newer live in the Deep Learning Containers accounts ("Starting version 23.12 ... available in a
  different set of accounts than the previous ones ... same as other DLCs": aws/deep-learning-containers
  ``available_images.md``, section "NVIDIA Triton Inference Containers (SM support only)"). Source of the
  accounts: aws/sagemaker-python-sdk ``src/sagemaker/image_uri_config/sagemaker-tritonserver.json`` (versions
  23.12-24.09), extended with the regions hashicorp/terraform-provider-aws
  ``internal/service/sagemaker/prebuilt_ecr_image_data_source.go`` (``prebuiltECRImageIDByRegion_deepLearning``)
  lists for the same repository (ap-south-2, ap-southeast-4, eu-central-2, eu-south-2, me-central-1, GovCloud).
* 23.10 and older lived in the Neo/Inferentia accounts (the same terraform file,
  ``prebuiltECRImageIDByRegion_inferentiaNeo``; e.g. aws/amazon-sagemaker-examples
  ``sagemaker-triton/inferentia2/docker/Dockerfile`` pulls ``301217895009.dkr.ecr.us-west-2...:23.03-py3``).

Tags are ``<YY.MM>-py3`` for GPU and ``<YY.MM>-py3-cpu`` for CPU: aws/sagemaker-python-sdk
``src/sagemaker/image_uris.py`` ``_get_image_tag`` ("Triton images don't have a trailing -gpu tag. Only -cpu
images do.").
"""

from __future__ import annotations

import re

__all__ = [
    "DEFAULT_TRITON_TAG",
    "DLC_ACCOUNTS",
    "LEGACY_ACCOUNTS",
    "TRITON_REPOSITORY",
    "UnknownRegionError",
    "triton_image",
]

TRITON_REPOSITORY = "sagemaker-tritonserver"
DEFAULT_TRITON_TAG = "24.09-py3"
"""The newest tag both aws/sagemaker-python-sdk (sagemaker-tritonserver.json) and the DLC image list document."""

_FIRST_DLC_VERSION = (23, 12)

DLC_ACCOUNTS: dict[str, str] = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-1": "763104351884",
    "ap-northeast-2": "763104351884",
    "ap-northeast-3": "364406365360",
    "ap-south-1": "763104351884",
    "ap-south-2": "772153158452",
    "ap-southeast-1": "763104351884",
    "ap-southeast-2": "763104351884",
    "ap-southeast-3": "907027046896",
    "ap-southeast-4": "457447274322",
    "ca-central-1": "763104351884",
    "ca-west-1": "204538143572",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "eu-central-1": "763104351884",
    "eu-central-2": "380420809688",
    "eu-north-1": "763104351884",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "eu-west-1": "763104351884",
    "eu-west-2": "763104351884",
    "eu-west-3": "763104351884",
    "il-central-1": "780543022126",
    "me-central-1": "914824155844",
    "me-south-1": "217643126080",
    "sa-east-1": "763104351884",
    "us-east-1": "763104351884",
    "us-east-2": "763104351884",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
    "us-west-1": "763104351884",
    "us-west-2": "763104351884",
}

LEGACY_ACCOUNTS: dict[str, str] = {
    "af-south-1": "774647643957",
    "ap-east-1": "110948597952",
    "ap-northeast-1": "941853720454",
    "ap-northeast-2": "151534178276",
    "ap-northeast-3": "925152966179",
    "ap-south-1": "763008648453",
    "ap-southeast-1": "324986816169",
    "ap-southeast-2": "355873309152",
    "ca-central-1": "464438896020",
    "cn-north-1": "472730292857",
    "cn-northwest-1": "474822919863",
    "eu-central-1": "746233611703",
    "eu-north-1": "601324751636",
    "eu-south-1": "966458181534",
    "eu-west-1": "802834080501",
    "eu-west-2": "205493899709",
    "eu-west-3": "254080097072",
    "il-central-1": "275950707576",
    "me-south-1": "836785723513",
    "sa-east-1": "756306329178",
    "us-east-1": "785573368785",
    "us-east-2": "007439368137",
    "us-gov-west-1": "263933020539",
    "us-west-1": "710691900526",
    "us-west-2": "301217895009",
}

_TAG_VERSION = re.compile(r"^(\d{2})\.(\d{2})")


class UnknownRegionError(LookupError):
    """The vendored table has no ``sagemaker-tritonserver`` account for the region."""


def _is_dlc_tag(tag: str) -> bool:
    match = _TAG_VERSION.match(tag)
    if match is None:  # not a YY.MM tag: assume a current image
        return True
    return (int(match.group(1)), int(match.group(2))) >= _FIRST_DLC_VERSION


def triton_image(region: str, tag: str = DEFAULT_TRITON_TAG, *, cpu: bool = False) -> str:
    """The ECR URI of AWS's Triton image for SageMaker in ``region``.

    Args:
        region: an AWS region such as ``us-east-1``.
        tag: a GPU tag such as ``24.09-py3``; ``-cpu`` is appended for ``cpu=True``.
        cpu: the CPU-only image (for CPU instance types and serverless endpoints).

    Raises:
        UnknownRegionError: the region has no published image for that tag's generation.
    """
    table = DLC_ACCOUNTS if _is_dlc_tag(tag) else LEGACY_ACCOUNTS
    account = table.get(region)
    if account is None:
        raise UnknownRegionError(
            f"no {TRITON_REPOSITORY}:{tag} image is known for region {region}; regions with one: "
            + ", ".join(sorted(table))
        )
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    full_tag = f"{tag}-cpu" if cpu and not tag.endswith("-cpu") else tag
    return f"{account}.dkr.ecr.{region}.{domain}/{TRITON_REPOSITORY}:{full_tag}"
