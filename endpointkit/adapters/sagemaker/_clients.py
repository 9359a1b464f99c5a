"""boto3 clients for the four AWS services the adapter uses, built the same way everywhere.

Clients honour the usual AWS environment, including ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``
(botocore's "service-specific endpoints", since botocore 1.31; verified with botocore 1.44 against moto), so
the adapter runs unchanged against moto or LocalStack.

Retries: SageMaker, sagemaker-runtime and Application Auto Scaling clients have botocore's retries off
(``total_max_attempts=1``); :class:`~endpointkit.adapters.sagemaker._errors.Caller` retries them, so one
policy bounds every call and the attempt count is ours. The S3 client keeps botocore's ``standard`` retries
(5 attempts) because boto3's transfer manager sends the parts of a multipart upload from its own threads,
where a per-call policy of ours cannot reach; the whole upload is also retried by ``Caller``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from endpointkit._lazy import require

__all__ = ["ClientFactory", "client_config", "make_client_factory"]

ClientFactory = Callable[[str], Any]
"""Builds a boto3 client for a service name: ``sagemaker``, ``sagemaker-runtime``, ``s3``,
``application-autoscaling``."""

USER_AGENT = "endpointkit"
_CONNECT_TIMEOUT = 10.0
# InvokeEndpoint allows the container 60 s to answer (SageMaker real-time inference limits); leave headroom.
_READ_TIMEOUT = 70.0


def client_config(service: str, *, read_timeout: float | None = None) -> Any:
    """The botocore ``Config`` the adapter uses for ``service`` (see the module docstring for retries)."""
    config_module = require("botocore.config", extra="sagemaker")
    attempts = 5 if service == "s3" else 1
    return config_module.Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=_CONNECT_TIMEOUT if read_timeout is None else min(_CONNECT_TIMEOUT, read_timeout),
        read_timeout=_READ_TIMEOUT if read_timeout is None else read_timeout,
        user_agent_appid=USER_AGENT,
        max_pool_connections=16,
    )


def make_client_factory(
    region: str, *, session: Any = None, read_timeout: float | None = None
) -> ClientFactory:
    """A factory of clients for ``region`` from a boto3 session (default: a new one from the environment).

    Args:
        region: the AWS region every client talks to.
        session: a ``boto3.session.Session`` to take credentials and settings from.
        read_timeout: socket read timeout in seconds (default 70).
    """
    boto3 = require("boto3", extra="sagemaker")
    active = session if session is not None else boto3.session.Session(region_name=region)

    def factory(service: str) -> Any:
        return active.client(
            service, region_name=region, config=client_config(service, read_timeout=read_timeout)
        )

    return factory
