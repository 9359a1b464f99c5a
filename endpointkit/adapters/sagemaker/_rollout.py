"""Putting a SageMaker endpoint on a config until it serves: create, blue/green update, instance-type fallbacks.

When SageMaker has no capacity for a config's instance types, the config is recreated under the same name with the
next of the target's ``instance_type_fallbacks`` (tagged ``FALLBACK_TAG``) and the create or update runs again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from endpointkit._wait import Progress
from endpointkit.adapters.base import EXPIRES_AT_TAG, DesiredState, Resource
from endpointkit.adapters.naming import changed_since_plan, managed_tags
from endpointkit.adapters.sagemaker import _desired
from endpointkit.adapters.sagemaker._api import SageMakerApi
from endpointkit.adapters.sagemaker._autoscaling import Autoscaler
from endpointkit.adapters.sagemaker._drift import capacity_repairs
from endpointkit.adapters.sagemaker._state import MOVING, Description, EndpointWaiter, tag_list
from endpointkit.adapters.sagemaker._teardown import Teardown
from endpointkit.errors import CapacityError, NotFoundError
from endpointkit.spec import Deployment

__all__ = ["FALLBACK_TAG", "Attempt", "Rollout"]

logger = logging.getLogger("endpointkit.sagemaker")

FALLBACK_TAG = "endpointkit-instance-type-fallback"
"""Tag on an endpoint config that was recreated with a fallback instance type after a capacity error."""
Attempt = Callable[[int, tuple[str, ...]], None]
"""One try of a create or update: the attempt's index (0: the spec's own types) and the instance types it uses."""


class Rollout:
    """Creates endpoint configs and endpoints, and updates endpoints, for ``SageMakerAdapter``, which documents them."""

    def __init__(
        self,
        api: SageMakerApi,
        *,
        autoscaler: Autoscaler,
        waiter: EndpointWaiter,
        teardown: Teardown,
        clock: Callable[[], float],
    ) -> None:
        self._api = api
        self._autoscaler = autoscaler
        self._waiter = waiter
        self._teardown = teardown
        self._clock = clock

    def create_config(
        self,
        deployment: Deployment,
        name: str,
        content: Mapping[str, Any],
        *,
        instance_type: str | None = None,
    ) -> None:
        """Create (or adopt) the endpoint config ``name``; with ``instance_type``, every variant on that type."""
        tags = managed_tags(deployment)
        if instance_type is not None:
            tags[FALLBACK_TAG] = instance_type
        params: dict[str, Any] = {
            "EndpointConfigName": name,
            "ProductionVariants": _desired.production_variants(content, instance_type=instance_type),
            "Tags": tag_list(tags),
        }
        async_config = _desired.async_inference_config(content)
        if async_config is not None:
            params["AsyncInferenceConfig"] = async_config
        self._api.forget_config(name)
        self._api.create_or_adopt(
            "endpoint_config", name, "create_endpoint_config", instance_type=instance_type, **params
        )

    def _with_fallbacks(
        self, deployment: Deployment, config_name: str, content: Mapping[str, Any], attempt: Attempt
    ) -> None:
        """Run ``attempt``; on CapacityError recreate the config with the next fallback type and run it again."""
        primary = tuple(
            dict.fromkeys(v["instance_type"] for v in content["variants"] if "instance_type" in v)
        )
        fallbacks = _desired.sagemaker_target(deployment).instance_type_fallbacks if primary else []
        attempts: list[tuple[str | None, tuple[str, ...]]] = [(None, primary)]
        attempts += [(fallback, (fallback,)) for fallback in fallbacks if fallback not in primary]
        tried: list[str] = []
        for index, (fallback, types) in enumerate(attempts):
            tried += [name for name in types if name not in tried]
            if fallback is not None:
                # The config is in use by no endpoint (the create failed, or the update rolled back), so it is
                # replaced under the same name: the name stands for these variants with this fallback policy.
                self._api.delete_config(config_name)
                self.create_config(deployment, config_name, content, instance_type=fallback)
            try:
                attempt(index, types)
                return
            except CapacityError as exc:
                if index == len(attempts) - 1:
                    raise CapacityError(
                        f"no SageMaker capacity in {self._api.region} for any of {', '.join(tried)}: {exc}; add "
                        f"types to targets.{deployment.target_name}.instance_type_fallbacks, try another region, "
                        "or retry later",
                        provider="sagemaker",
                        operation=exc.operation,
                        code=exc.code,
                        details={**exc.details, "instance_types": tried},
                    ) from exc
                logger.warning(
                    "no capacity for %s (%s); trying %s next", ", ".join(types), exc, attempts[index + 1][0]
                )

    def create_endpoint(
        self,
        deployment: Deployment,
        resource: Resource,
        content: Mapping[str, Any],
        progress: Progress | None,
    ) -> None:
        """Create (or adopt) the endpoint on the config ``content`` describes, wait until InService, autoscale it."""
        name, config_name = resource.name, resource.properties["config"]
        deadline = self._clock() + deployment.spec.timeouts.create

        def attempt(index: int, types: tuple[str, ...]) -> None:
            if index > 0:  # the endpoint of the failed attempt must go before the name can be used again
                self._teardown.delete_endpoint(name, progress, timeout=deployment.spec.timeouts.delete)
            try:
                adopted = self._api.create_or_adopt(
                    "endpoint",
                    name,
                    "create_endpoint",
                    instance_type=types[0] if types else None,
                    EndpointName=name,
                    EndpointConfigName=config_name,
                    Tags=tag_list(managed_tags(deployment)),
                )
            finally:
                self._api.forget_endpoint(name)
            current = self._api.describe("endpoint", name) if adopted else None
            if current is not None and current.get("EndpointConfigName") != config_name:
                raise changed_since_plan(
                    name, str(current.get("EndpointConfigName")), config_name, provider="sagemaker"
                )
            self._waiter.serving(
                name,
                config_name,
                operation="create",
                instance_types=types,
                deadline=deadline,
                progress=progress,
            )

        self._with_fallbacks(deployment, config_name, content, attempt)
        if content.get("autoscaling"):
            self._autoscaler.register(name, [v["name"] for v in content["variants"]], content["autoscaling"])

    def _restore_capacities(
        self, current: Description, content: Mapping[str, Any], deadline: float, progress: Progress | None
    ) -> None:
        """Put the config's weights and counts back on an endpoint where they were changed by hand; wait."""
        repairs = capacity_repairs(current, content)
        if not repairs:
            return
        name = current["EndpointName"]
        self._api.call(
            "update_endpoint_weights_and_capacities",
            f"endpoint {name}",
            EndpointName=name,
            DesiredWeightsAndCapacities=repairs,
        )
        self._waiter.wait(
            name,
            first_status="Updating",
            done=lambda d: d is not None and d.get("EndpointStatus") == "InService",
            timeout=deadline - self._clock(),
            progress=progress,
        )

    def _retag(self, current: Description, desired: DesiredState) -> None:
        """Put the spec's tags (its own, the spec hash, the expiry) on the endpoint; drop an expiry it lost."""
        name, arn = current["EndpointName"], current["EndpointArn"]
        had_expiry = EXPIRES_AT_TAG in self._api.endpoint_tags(current)
        self._api.call("add_tags", f"endpoint {name}", ResourceArn=arn, Tags=tag_list(dict(desired.tags)))
        if had_expiry and EXPIRES_AT_TAG not in desired.tags:
            self._api.call("delete_tags", f"endpoint {name}", ResourceArn=arn, TagKeys=[EXPIRES_AT_TAG])
        self._api.forget_endpoint(name)

    def update_endpoint(
        self, deployment: Deployment, desired: DesiredState, progress: Progress | None
    ) -> None:
        """Move the endpoint to ``desired.config`` blue/green and wait until it serves on it."""
        name, config_name = desired.endpoint.name, desired.config.name
        content = desired.config.properties
        deadline = self._clock() + deployment.spec.timeouts.update
        current = self._api.describe("endpoint", name)
        if current is None:
            raise NotFoundError(
                f"endpoint {name} does not exist in {self._api.region}",
                provider="sagemaker",
                operation="update",
            )
        if current.get("EndpointConfigName") == config_name:
            # Already on the desired config: the spec's ttl or tags changed (see provisioners.plan.diff), or weights
            # and counts were changed by hand (drift), which SageMaker puts back without a new fleet.
            self._restore_capacities(current, content, deadline, progress)
            self._retag(current, desired)
            return
        if current.get("EndpointStatus") in MOVING:  # SageMaker refuses an update while another change runs
            current = (
                self._waiter.wait(
                    name,
                    first_status=str(current["EndpointStatus"]),
                    done=lambda d: d is not None and d.get("EndpointStatus") == "InService",
                    timeout=deadline - self._clock(),
                    progress=progress,
                )
                or current
            )
        old_config = self._api.describe("endpoint_config", current.get("EndpointConfigName", "")) or {}
        old_types = {
            v["VariantName"]: v.get("InstanceType") for v in old_config.get("ProductionVariants", [])
        }
        snapshot: list[tuple[str, dict[str, Any]]] = []

        def attempt(index: int, types: tuple[str, ...]) -> None:
            fallback = types[0] if index > 0 else None
            new_types = {v["name"]: fallback or v.get("instance_type") for v in content["variants"]}
            moved = [variant for variant, old in old_types.items() if new_types.get(variant) != old]
            snapshot.extend(self._autoscaler.deregister_with_snapshot(name, moved))
            self._api.call(
                "update_endpoint",
                f"endpoint {name}",
                instance_type=types[0] if types else None,
                EndpointName=name,
                EndpointConfigName=config_name,
            )
            self._api.forget_endpoint(name)
            self._waiter.serving(
                name,
                config_name,
                operation="update",
                instance_types=types,
                deadline=deadline,
                progress=progress,
            )

        try:
            self._with_fallbacks(deployment, config_name, content, attempt)
        except BaseException:
            self._autoscaler.restore(name, snapshot)
            raise
        self._retag(current, desired)
        variants = [v["name"] for v in content["variants"]]
        if content.get("autoscaling"):
            self._autoscaler.register(name, variants, content["autoscaling"])
        else:
            self._autoscaler.deregister(name, variants)
