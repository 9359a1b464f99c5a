"""Amazon SageMaker target: Triton on SageMaker real-time, serverless or asynchronous hosting.

A spec becomes three SageMaker resources, each named ``NAME-HASH8`` after its content (the endpoint keeps the
spec's name) and tagged ``managed-by=endpointkit``:

* Model: AWS's ``sagemaker-tritonserver`` image (vendored region table, ``_images.py``) or
  ``model.image``, the repository packaged deterministically and uploaded once to
  ``s3://BUCKET/PREFIX/NAME-HASH/model.tar.gz``, and ``SAGEMAKER_TRITON_DEFAULT_MODEL_NAME``.
* EndpointConfig: one production variant per spec variant (or serverless / async settings).
* Endpoint: created or moved blue/green to a new config, waited on with backoff, autoscaled through Application
  Auto Scaling. A ``canary`` or ``linear`` rollout is SageMaker's own traffic shifting (UpdateEndpoint
  ``DeploymentConfig``), rolled back by SageMaker on CloudWatch alarms endpointkit makes
  (``endpointkit-<endpoint>-<variant>-errors`` / ``-p99``) and deletes with the endpoint.

``SageMakerAdapter.rehearsal_artifact`` hands out the very ``model.tar.gz`` an upload would send, for a rehearsal
on a local tritonserver before any SageMaker call (``endpointkit._rehearsal``).

boto3/botocore are imported lazily (``endpointkit._lazy.require``): importing this package needs neither; a
missing one raises MissingDependencyError naming ``pip install 'endpointkit[sagemaker]'``. Every client honours
``AWS_ENDPOINT_URL`` and the usual AWS environment, so the adapter runs unchanged against moto or LocalStack.
"""

from __future__ import annotations

from endpointkit.adapters.sagemaker._adapter import SageMakerAdapter
from endpointkit.adapters.sagemaker._artifacts import RehearsalArtifact
from endpointkit.adapters.sagemaker._clients import ClientFactory, client_config, make_client_factory
from endpointkit.adapters.sagemaker._desired import hosting_instance_types, nearest_instance_types
from endpointkit.adapters.sagemaker._images import DEFAULT_TRITON_TAG, triton_image
from endpointkit.adapters.sagemaker._state import STATUS_MAP

__all__ = [
    "DEFAULT_TRITON_TAG",
    "STATUS_MAP",
    "ClientFactory",
    "RehearsalArtifact",
    "SageMakerAdapter",
    "client_config",
    "hosting_instance_types",
    "make_client_factory",
    "nearest_instance_types",
    "triton_image",
]
