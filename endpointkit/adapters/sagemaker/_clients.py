"""boto3 clients for the four AWS services the adapter uses, built the same way everywhere.

Clients honour the usual AWS environment, including ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``
(botocore's "service-specific endpoints", since botocore 1.31; verified with botocore 1.44 against moto), so
the adapter runs unchanged against moto or LocalStack.

Retries: SageMaker, sagemaker-runtime and Application Auto Scaling clients have botocore's retries off
(``total_max_attempts=1``); :class:`~endpointkit.adapters.sagemaker._errors.Caller` retries them, so one
policy bounds every call and the attempt count is ours. The S3 client keeps botocore's ``standard`` retries
(5 attempts) because boto3's transfer manager sends the parts of a multipart upload from its own threads,
where a per-call policy of ours cannot reach; the whole upload is also retried by ``Caller``.

Sessions: without a session of the caller's, clients come from one boto3 session per AWS environment, shared
by every adapter of the process. A new session parses botocore's service models again, about 0.3 s of CPU
per adapter that a fleet of adapters on threads would serialise on the GIL; a shared one parses them once.
boto3 sessions are not thread-safe ("Multithreading or multiprocessing with resources", boto3 user guide)
while the clients they make are, so clients are made under a lock and used freely after.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from endpointkit._lazy import require

__all__ = ["MAX_POOL_CONNECTIONS", "ClientFactory", "client_config", "make_client_factory"]

ClientFactory = Callable[[str], Any]
"""Builds a boto3 client for a service name: ``sagemaker``, ``sagemaker-runtime``, ``s3``,
``application-autoscaling``."""

USER_AGENT = "endpointkit"
_CONNECT_TIMEOUT = 10.0
# InvokeEndpoint allows the container 60 s to answer (SageMaker real-time inference limits); leave headroom.
_READ_TIMEOUT = 70.0
MAX_POOL_CONNECTIONS = 16
"""Connections each client keeps (botocore's default is 10); the adapter's ``max_concurrency`` defaults to it,
so every thread of its executor has a pooled connection and none waits on another's."""


def client_config(
    service: str, *, read_timeout: float | None = None, max_pool_connections: int = MAX_POOL_CONNECTIONS
) -> Any:
    """The botocore ``Config`` the adapter uses for ``service`` (see the module docstring for retries)."""
    config_module = require("botocore.config", extra="sagemaker")
    attempts = 5 if service == "s3" else 1
    return config_module.Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=_CONNECT_TIMEOUT if read_timeout is None else min(_CONNECT_TIMEOUT, read_timeout),
        read_timeout=_READ_TIMEOUT if read_timeout is None else read_timeout,
        user_agent_appid=USER_AGENT,
        max_pool_connections=max_pool_connections,
    )


def make_client_factory(
    region: str,
    *,
    session: Any = None,
    read_timeout: float | None = None,
    max_pool_connections: int = MAX_POOL_CONNECTIONS,
) -> ClientFactory:
    """A factory of clients for ``region`` from a boto3 session (default: the shared one of the environment).

    Args:
        region: the AWS region every client talks to.
        session: a ``boto3.session.Session`` to take credentials and settings from.
        read_timeout: socket read timeout in seconds (default 70).
        max_pool_connections: connections each client keeps for concurrent calls (default 16).
    """

    def factory(service: str) -> Any:
        config = client_config(service, read_timeout=read_timeout, max_pool_connections=max_pool_connections)
        if session is not None:
            return session.client(service, region_name=region, config=config)
        with _sessions_lock:
            return _shared_session().client(service, region_name=region, config=config)

    return factory


_SESSIONS_KEPT = 4
_sessions: OrderedDict[tuple[tuple[str, str], ...], Any] = OrderedDict()
_sessions_lock = threading.Lock()


def _shared_session() -> Any:
    """The boto3 session of the current AWS environment; the caller holds ``_sessions_lock``.

    A session resolves credentials and profile once, so the key is every ``AWS_*`` variable: a process that
    switches credentials or endpoints (tests, scripts looping over accounts) gets a session of its own.
    """
    boto3 = require("boto3", extra="sagemaker")
    key = tuple(sorted((name, value) for name, value in os.environ.items() if name.startswith("AWS_")))
    session = _sessions.get(key)
    if session is None:
        session = _sessions[key] = boto3.session.Session()
        while len(_sessions) > _SESSIONS_KEPT:
            _sessions.popitem(last=False)
    _sessions.move_to_end(key)
    return session
