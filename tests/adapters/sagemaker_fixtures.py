"""Fixtures for the SageMaker adapter tests: moto in server mode on loopback, and faults at the botocore layer.

moto runs as a ThreadedMotoServer on 127.0.0.1 (a free port) and the adapter reaches it only through
``AWS_ENDPOINT_URL``, exactly as it would reach LocalStack. Where moto has gaps (no UpdateEndpoint, endpoints
InService at once, no Failed state, duplicates silently overwritten) botocore event hooks fill them in:
``before-call`` handlers answer instead of moto (faults, UpdateEndpoint) and ``after-call`` handlers rewrite
DescribeEndpoint answers (scripted statuses). ``before-parameter-build`` handlers record the parameters of every
call as the adapter passed them (``BotoHooks.sent``); botocore validates them against its service model after
that, so a malformed request fails the test the way it would fail against AWS.

Test modules load it with ``pytest_plugins = ["tests.adapters.sagemaker_fixtures"]`` (and may import its helpers,
which is why pytest must not try to rewrite it: PYTEST_DONT_REWRITE).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import logging
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto.sagemaker.models import sagemaker_backends
from moto.server import ThreadedMotoServer

from endpointkit.adapters.sagemaker import SageMakerAdapter, make_client_factory
from endpointkit.spec import Spec, spec_from_dict

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "endpointkit-models"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/sagemaker-execution"

ECHO_CONFIG = """\
name: "echo"
backend: "python"
max_batch_size: 0
input [ { name: "INPUT0", data_type: TYPE_FP32, dims: [ -1 ] } ]
output [ { name: "OUTPUT0", data_type: TYPE_FP32, dims: [ -1 ] } ]
"""
ECHO_MODEL = """\
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", data)]))
        return responses
"""


def write_echo_repository(root: Path, *, models: tuple[str, ...] = ("echo",)) -> Path:
    """A Triton repository of python-backend echo models (config.pbtxt + 1/model.py each)."""
    for name in models:
        (root / name / "1").mkdir(parents=True, exist_ok=True)
        (root / name / "config.pbtxt").write_text(ECHO_CONFIG.replace('"echo"', f'"{name}"'))
        (root / name / "1" / "model.py").write_text(ECHO_MODEL)
    return root


class _HttpResponse:
    """What botocore needs of an HTTP response a before-call handler answers with."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""


def _answer(status: int, body: dict[str, Any]) -> tuple[_HttpResponse, dict[str, Any]]:
    metadata = {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0}
    return _HttpResponse(status), {**body, "ResponseMetadata": metadata}


def error_answer(
    code: str, message: str, status: int = 400, **extra: Any
) -> tuple[_HttpResponse, dict[str, Any]]:
    """A before-call answer that makes botocore raise ClientError(code, message)."""
    return _answer(status, {"Error": {"Code": code, "Message": message}, **extra})


@dataclass
class Fault:
    """Answer ``times`` calls of ``service``/``operation`` (fnmatch patterns) with an error instead of moto."""

    service: str
    operation: str
    code: str
    message: str
    status: int = 400
    times: int | None = 1
    per_operation: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    answered: dict[str, int] = field(default_factory=dict)

    def take(self, service: str, operation: str) -> bool:
        """Whether this call gets the fault (and count it): ``times`` in all, or per operation."""
        if not (fnmatch.fnmatch(service, self.service) and fnmatch.fnmatch(operation, self.operation)):
            return False
        key = f"{service}.{operation}" if self.per_operation else "*"
        if self.times is not None and self.answered.get(key, 0) >= self.times:
            return False
        self.answered[key] = self.answered.get(key, 0) + 1
        return True


def _backend() -> Any:
    return sagemaker_backends[ACCOUNT][REGION]


class BotoHooks:
    """Records every AWS call the adapter makes and answers some of them instead of moto.

    Pass :meth:`factory` as the adapter's ``client_factory``.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.requests: dict[tuple[str, str], dict[str, Any]] = {}
        self.params: list[tuple[str, str, dict[str, Any]]] = []
        self.callbacks: dict[tuple[str, str], list[Callable[[dict[str, Any]], None]]] = {}
        self.faults: list[Fault] = []
        self.responders: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]] = {}
        self.statuses: dict[str, list[tuple[str, str | None]]] = {}
        self.sticky: dict[str, bool] = {}
        self.update_outcomes: list[str | None] = []
        self.update_polls = 1
        self.updating_observations: list[str] = []
        self._pending_updates: dict[str, dict[str, Any]] = {}
        self._base = make_client_factory(REGION)

    # ---- wiring
    def factory(self, service: str) -> Any:
        client = self._base(service)
        client.meta.events.register("before-parameter-build", self._record_params)
        client.meta.events.register("before-call", self._before_call)
        client.meta.events.register("after-call", self._after_call)
        return client

    def operations(self, service: str | None = None) -> list[str]:
        return [operation for svc, operation in self.calls if service is None or svc == service]

    def mutating(self) -> list[tuple[str, str]]:
        return [(svc, op) for svc, op in self.calls if not op.startswith(("Describe", "List", "Get", "Head"))]

    def sent(self, service: str, operation: str) -> list[dict[str, Any]]:
        """The parameters of every ``service``/``operation`` call, in order, as the adapter passed them."""
        return [params for svc, op, params in self.params if (svc, op) == (service, operation)]

    # ---- configuration
    def fail(self, service: str, operation: str, code: str, message: str = "", **options: Any) -> Fault:
        fault = Fault(service, operation, code, message or code, **options)
        self.faults.append(fault)
        return fault

    def respond(
        self, service: str, operation: str, responder: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        """Answer ``service``/``operation`` with ``responder(request_dict)`` (a parsed response) instead of moto."""
        self.responders[(service, operation)] = responder

    def before(self, service: str, operation: str, callback: Callable[[dict[str, Any]], None]) -> None:
        """Run ``callback(request_dict)`` just before each ``service``/``operation`` call (which then goes on)."""
        self.callbacks.setdefault((service, operation), []).append(callback)

    def script_status(self, endpoint: str, *statuses: tuple[str, str | None], sticky: bool = False) -> None:
        """DescribeEndpoint of ``endpoint`` reports these (status, FailureReason) in turn, then moto's own answer
        (or the last scripted one forever, when ``sticky``)."""
        self.statuses[endpoint] = list(statuses)
        self.sticky[endpoint] = sticky

    # ---- handlers
    def _record_params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        try:
            recorded = copy.deepcopy(params)
        except TypeError:  # a body that is an open file (S3 uploads): keep the top level only
            recorded = dict(params)
        self.params.append((model.service_model.service_name, model.name, recorded))

    def _before_call(self, model: Any, params: dict[str, Any], **_: Any) -> Any:
        service, operation = model.service_model.service_name, model.name
        self.calls.append((service, operation))
        self.requests[(service, operation)] = params
        for callback in self.callbacks.get((service, operation), []):
            callback(params)
        for fault in self.faults:
            if fault.take(service, operation):
                return error_answer(fault.code, fault.message, fault.status, **fault.extra)
        responder = self.responders.get((service, operation))
        if responder is not None:
            return _answer(200, responder(params))
        if service == "sagemaker" and operation == "UpdateEndpoint":
            return self._update_endpoint(json.loads(params["body"]))
        if service == "sagemaker" and operation == "DescribeEndpoint":
            self._settle_update(json.loads(params["body"])["EndpointName"])
        return None

    def _after_call(self, model: Any, parsed: dict[str, Any], http_response: Any, **_: Any) -> None:
        if model.name != "DescribeEndpoint" or http_response.status_code != 200:
            return
        name = parsed["EndpointName"]
        pending = self._pending_updates.get(name)
        if pending is not None:
            pending["polls"] -= 1
            parsed["EndpointStatus"] = "Updating"
            self.updating_observations.append(parsed["EndpointConfigName"])
            return
        script = self.statuses.get(name)
        if script:
            status, reason = script[0] if len(script) == 1 and self.sticky.get(name) else script.pop(0)
            parsed["EndpointStatus"] = status
            if reason:
                parsed["FailureReason"] = reason

    # ---- UpdateEndpoint, which moto does not implement: blue/green over ``update_polls`` DescribeEndpoint calls
    def _update_endpoint(self, body: dict[str, Any]) -> Any:
        name, config = body["EndpointName"], body["EndpointConfigName"]
        backend = _backend()
        if name not in backend.endpoints:
            return error_answer("ValidationException", f"Could not find endpoint '{name}'.")
        if config not in backend.endpoint_configs:
            return error_answer("ValidationException", f"Could not find endpoint configuration '{config}'.")
        outcome = self.update_outcomes.pop(0) if self.update_outcomes else None
        self._pending_updates[name] = {"config": config, "polls": self.update_polls, "failure": outcome}
        return _answer(200, {"EndpointArn": backend.endpoints[name].arn})

    def _settle_update(self, name: str) -> None:
        pending = self._pending_updates.get(name)
        if pending is None or pending["polls"] > 0:
            return
        del self._pending_updates[name]
        endpoint = _backend().endpoints.get(name)
        if endpoint is None:
            return
        if pending["failure"] is None:
            config = _backend().endpoint_configs[pending["config"]]
            endpoint.endpoint_config_name = pending["config"]
            endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
            endpoint.failure_reason = None
        else:  # blue/green rolled back: the old config serves on, SageMaker says why
            endpoint.failure_reason = pending["failure"]


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class SageMakerWorld:
    """A moto account with a bucket, a tiny repository and what a test needs to drive and inspect the adapter."""

    url: str
    repository: Path
    base_dir: Path
    hooks: BotoHooks
    clock: FakeClock
    adapters: list[SageMakerAdapter] = field(default_factory=list)

    def spec(self, **overrides: Any) -> Spec:
        target = {
            "kind": "sagemaker",
            "region": REGION,
            "role_arn": ROLE_ARN,
            "bucket": BUCKET,
            "prefix": "endpointkit",
            **overrides.pop("target", {}),
        }
        data: dict[str, Any] = {
            "name": "echo-endpoint",
            "model": {
                "repository": str(self.repository),
                "environment": {"SAGEMAKER_TRITON_LOG_VERBOSE": "1"},
            },
            "variants": [{"name": "primary", "accelerator": "gpu", "instance_type": "ml.g4dn.xlarge"}],
            "timeouts": {"create": "20m", "update": "20m", "delete": "10m"},
            "tags": {"team": "vision"},
            "targets": {"aws": target},
        }
        data.update(overrides)
        return spec_from_dict(data, base_dir=self.base_dir)

    def adapter(self, spec: Spec, **options: Any) -> SageMakerAdapter:
        deployment = spec.deployment()
        assert deployment.target.kind == "sagemaker"
        options.setdefault("client_factory", self.hooks.factory)
        options.setdefault("sleep", self.clock.sleep)
        options.setdefault("clock", self.clock)
        adapter = SageMakerAdapter(deployment.target, target_name=deployment.target_name, **options)  # type: ignore[arg-type]
        self.adapters.append(adapter)
        return adapter

    # ---- what is in moto
    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    def models(self) -> list[str]:
        return sorted(m["ModelName"] for m in self.client("sagemaker").list_models()["Models"])

    def configs(self) -> list[str]:
        return sorted(
            c["EndpointConfigName"]
            for c in self.client("sagemaker").list_endpoint_configs()["EndpointConfigs"]
        )

    def endpoints(self) -> list[str]:
        return sorted(e["EndpointName"] for e in self.client("sagemaker").list_endpoints()["Endpoints"])

    def tags(self, arn: str) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in self.client("sagemaker").list_tags(ResourceArn=arn)["Tags"]}

    def objects(self) -> list[str]:
        listing = self.client("s3").list_objects_v2(Bucket=BUCKET)
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def archive_members(self, key: str, destination: Path) -> list[str]:
        path = destination / "downloaded.tar.gz"
        self.client("s3").download_file(BUCKET, key, str(path))
        with tarfile.open(path) as archive:
            return archive.getnames()

    def alarms(self) -> list[dict[str, Any]]:
        """Every CloudWatch metric alarm in the account, by name."""
        found = self.client("cloudwatch").describe_alarms(AlarmTypes=["MetricAlarm"])["MetricAlarms"]
        return sorted(found, key=lambda alarm: str(alarm["AlarmName"]))

    def alarm_tags(self, arn: str) -> dict[str, str]:
        response = self.client("cloudwatch").list_tags_for_resource(ResourceARN=arn)
        return {tag["Key"]: tag["Value"] for tag in response["Tags"]}

    def scalable_targets(self) -> list[dict[str, Any]]:
        client = self.client("application-autoscaling")
        return list(client.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"])

    def scaling_policies(self) -> list[dict[str, Any]]:
        client = self.client("application-autoscaling")
        return list(client.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"])

    def set_invoke_results(self, *results: dict[str, Any]) -> None:
        """Queue sagemaker-runtime InvokeEndpoint answers (moto's static results API)."""
        response = requests.post(
            f"{self.url}/moto-api/static/sagemaker/endpoint-results",
            json={"account_id": ACCOUNT, "region": REGION, "results": list(results)},
            timeout=5,
        )
        if response.status_code != 201:
            raise RuntimeError(f"moto refused the invoke results: {response.text}")


@pytest.fixture(scope="session")
def sagemaker_moto_server() -> Iterator[str]:
    """moto in server mode on a free loopback port, for the whole session."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def sagemaker_aws_environment(
    sagemaker_moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    """The AWS environment pointing at moto with dummy credentials and nothing from the developer's machine."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", sagemaker_moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    requests.post(f"{sagemaker_moto_server}/moto-api/reset", timeout=5).raise_for_status()
    return sagemaker_moto_server


@pytest.fixture
def sagemaker_world(sagemaker_aws_environment: str, tmp_path: Path) -> Iterator[SageMakerWorld]:
    """A clean moto account with the models bucket, a one-model echo repository, hooks and a fake clock."""
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    repository = write_echo_repository(tmp_path / "model_repository")
    result = SageMakerWorld(sagemaker_aws_environment, repository, tmp_path, BotoHooks(), FakeClock())
    try:
        yield result
    finally:
        for adapter in result.adapters:
            adapter.close()
