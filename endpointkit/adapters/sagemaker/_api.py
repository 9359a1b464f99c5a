"""The SageMaker control plane as the adapter uses it: clients built on demand, every call through the one error
mapping and retry policy, cached descriptions of what cannot change, and creates that adopt what endpointkit owns."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from endpointkit.adapters.base import MANAGED_BY_TAG, MANAGED_BY_VALUE, EndpointState, ResourceKind
from endpointkit.adapters.sagemaker._clients import MAX_POOL_CONNECTIONS, ClientFactory, make_client_factory
from endpointkit.adapters.sagemaker._errors import ALREADY_EXISTS, Caller
from endpointkit.adapters.sagemaker._state import Description, endpoint_state
from endpointkit.errors import ConflictError, NotFoundError

__all__ = ["SageMakerApi"]

logger = logging.getLogger("endpointkit.sagemaker")

_ARN_KEYS: Mapping[str, str] = {
    "model": "ModelArn",
    "endpoint_config": "EndpointConfigArn",
    "endpoint": "EndpointArn",
}
_DESCRIBE: Mapping[str, tuple[str, str]] = {
    "model": ("describe_model", "ModelName"),
    "endpoint_config": ("describe_endpoint_config", "EndpointConfigName"),
    "endpoint": ("describe_endpoint", "EndpointName"),
}
# ListEndpoints allows 1..100 per page. ListTags has a minimum of 50 and no maximum; SageMaker allows 50 tags per
# resource, so one page of 100 holds them all (NextToken is still followed, should that ever change).
LIST_PAGE_SIZE = 100
TAGS_PAGE_SIZE = 100


class SageMakerApi:
    """Clients, calls and caches for one region, one per adapter.

    Only the clients are shared between threads (``ainvoke`` runs invocations on the adapter's executor): they
    are built under a lock, so concurrent first calls make one client, not one each. The caches are for the
    provisioning calls, which run on one thread.
    """

    def __init__(
        self,
        region: str,
        caller: Caller,
        *,
        factory: ClientFactory | None,
        session: Any,
        max_pool_connections: int = MAX_POOL_CONNECTIONS,
    ) -> None:
        self.region = region
        self.caller = caller
        self.max_pool_connections = max_pool_connections
        self._factory = factory
        self._factory_given = factory is not None
        self._session = session
        self._clients_lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._configs: dict[
            str, Description
        ] = {}  # a config never changes under its name: cache descriptions
        self._endpoint_tags: dict[str, dict[str, str]] = {}
        # Names a create found taken by a resource endpointkit does not manage. The provisioner records a create
        # before making it, so its rollback asks to delete these too: they are never ours to delete.
        self.foreign: set[tuple[ResourceKind, str]] = set()

    @property
    def has_factory(self) -> bool:
        """Whether the caller supplied the client factory (it then owns the clients' settings)."""
        return self._factory_given

    def client(self, service: str) -> Any:
        """The client of ``service``, built on first use."""
        client = self._clients.get(service)
        if client is None:
            with self._clients_lock:
                client = self._clients.get(service)
                if client is None:
                    if self._factory is None:
                        self._factory = make_client_factory(
                            self.region, session=self._session, max_pool_connections=self.max_pool_connections
                        )
                    client = self._clients[service] = self._factory(service)
        return client

    def extra_client(self, key: str, build: ClientFactory, service: str) -> Any:
        """A client kept under ``key`` besides the per-service ones (e.g. with another read timeout)."""
        client = self._clients.get(key)
        if client is None:
            with self._clients_lock:
                client = self._clients.get(key)
                if client is None:
                    client = self._clients[key] = build(service)
        return client

    def call(self, operation: str, subject: str, *, instance_type: str | None = None, **params: Any) -> Any:
        """A SageMaker operation with mapped errors and retries."""
        return self.caller.call(
            self.client("sagemaker"), operation, subject, instance_type=instance_type, **params
        )

    def describe(self, kind: ResourceKind, name: str) -> Description | None:
        """Describe a model, config or endpoint; None when it does not exist. Configs are cached."""
        if kind == "endpoint_config" and name in self._configs:
            return self._configs[name]
        operation, key = _DESCRIBE[kind]
        try:
            description: Description = self.call(operation, f"{kind} {name}", **{key: name})
        except NotFoundError:
            return None
        if kind == "endpoint_config":
            self._configs[name] = description
        return description

    def tags(self, arn: str) -> dict[str, str]:
        """All tags of a resource (ListTags, every page)."""
        tags: dict[str, str] = {}
        params: dict[str, Any] = {"ResourceArn": arn, "MaxResults": TAGS_PAGE_SIZE}
        while True:
            page = self.call("list_tags", arn, **params)
            tags.update({tag["Key"]: tag["Value"] for tag in page.get("Tags", [])})
            if not page.get("NextToken"):
                return tags
            params["NextToken"] = page["NextToken"]

    def list_endpoints(self, *, page_size: int | None = None) -> Iterator[Description]:
        """Every endpoint summary of the region (ListEndpoints, every page, by name), read page by page."""
        params: dict[str, Any] = {
            "SortBy": "Name",
            "SortOrder": "Ascending",
            "MaxResults": page_size or LIST_PAGE_SIZE,
        }
        while True:
            page = self.call("list_endpoints", f"endpoints in {self.region}", **params)
            yield from page.get("Endpoints", [])
            if not page.get("NextToken"):
                return
            params["NextToken"] = page["NextToken"]

    def endpoint_tags(self, description: Description) -> dict[str, str]:
        """The tags of a described endpoint, cached until :meth:`forget_endpoint`."""
        name = description["EndpointName"]
        if name not in self._endpoint_tags:
            self._endpoint_tags[name] = self.tags(description["EndpointArn"])
        return self._endpoint_tags[name]

    def forget_endpoint(self, name: str) -> None:
        """Drop what is cached about endpoint ``name`` (after changing it)."""
        self._endpoint_tags.pop(name, None)

    def forget_config(self, name: str) -> None:
        """Drop the cached description of config ``name`` (before replacing or deleting it)."""
        self._configs.pop(name, None)

    def is_managed(self, description: Description) -> bool:
        """Whether a described endpoint carries ``managed-by=endpointkit``."""
        return self.endpoint_tags(description).get(MANAGED_BY_TAG) == MANAGED_BY_VALUE

    def state(self, name: str, description: Description | None, *, target_name: str) -> EndpointState:
        """The EndpointState of a DescribeEndpoint answer, from what is cached; makes no call."""
        config = self._configs.get((description or {}).get("EndpointConfigName") or "")
        return endpoint_state(
            name,
            description,
            target_name=target_name,
            region=self.region,
            config=config,
            tags=self._endpoint_tags.get(name),
        )

    def create_or_adopt(self, kind: ResourceKind, name: str, operation: str, **params: Any) -> bool:
        """Create; when the name is taken by a resource tagged ``managed-by=endpointkit``, adopt it (True).

        Raises:
            ConflictError: the name is taken by a resource endpointkit does not manage.
        """
        try:
            self.call(operation, f"{kind} {name}", **params)
            return False
        except ConflictError as exc:
            if exc.code != ALREADY_EXISTS:
                raise
            existing = self.describe(kind, name)
            if (
                existing is None
                or self.tags(existing[_ARN_KEYS[kind]]).get(MANAGED_BY_TAG) != MANAGED_BY_VALUE
            ):
                self.foreign.add((kind, name))
                raise ConflictError(
                    f"{kind.replace('_', ' ')} {name} already exists in {self.region} and is not managed by "
                    "endpointkit (no managed-by=endpointkit tag): change the spec's name or delete it",
                    provider="sagemaker",
                    operation=operation,
                    code="NotManaged",
                ) from exc
            logger.info("adopting the existing %s %s (tagged managed-by=endpointkit)", kind, name)
            return True

    def delete_config(self, name: str) -> None:
        """Delete an endpoint config; nothing happens when it is already gone."""
        self.forget_config(name)
        try:
            self.call("delete_endpoint_config", f"endpoint config {name}", EndpointConfigName=name)
        except NotFoundError:
            logger.debug("endpoint config %s is already gone", name)

    def close(self) -> None:
        """Close every client's connections; clients are built again on demand."""
        with self._clients_lock:
            clients, self._clients = self._clients, {}
        for client in clients.values():
            close = getattr(client, "close", None)
            if callable(close):
                close()
