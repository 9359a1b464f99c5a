"""Putting a SageMaker endpoint on a config until it serves: create, blue/green update, instance-type fallbacks.

When SageMaker has no capacity for a config's instance types, the config is recreated under the same name with the
next of the target's ``instance_type_fallbacks`` (tagged ``FALLBACK_TAG``) and the create or update runs again.

An update with a ``canary`` or ``linear`` rollout sends SageMaker's own DeploymentConfig (``_deployment_config``)
after putting the rollout's alarms in place (``_alarms``), so SageMaker rolls back by itself on an alarm; an update
that finds the rollout no longer asks for alarms deletes them once it is done. A verify hook runs once the update is complete; when
it fails, the endpoint is moved back to the config it ran before, which serves again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from endpointkit._wait import Progress
from endpointkit.adapters.base import EXPIRES_AT_TAG, DesiredState, EndpointState, Resource, VerifyHook
from endpointkit.adapters.naming import changed_since_plan, managed_tags
from endpointkit.adapters.sagemaker import _desired
from endpointkit.adapters.sagemaker._alarms import ALARMS_TAG, RolloutAlarms
from endpointkit.adapters.sagemaker._api import SageMakerApi
from endpointkit.adapters.sagemaker._autoscaling import Autoscaler
from endpointkit.adapters.sagemaker._deployment_config import (
    RolloutPolicy,
    rollout_policy,
    variant_change_refusal,
)
from endpointkit.adapters.sagemaker._drift import capacity_repairs
from endpointkit.adapters.sagemaker._state import MOVING, Description, EndpointWaiter, tag_list
from endpointkit.adapters.sagemaker._teardown import Teardown
from endpointkit.errors import CapacityError, NotFoundError, ProviderError, QuotaError, VerificationError
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
        alarms: RolloutAlarms,
        state: Callable[[str, Description | None], EndpointState],
        clock: Callable[[], float],
    ) -> None:
        self._api = api
        self._autoscaler = autoscaler
        self._waiter = waiter
        self._teardown = teardown
        self._alarms = alarms
        self._state = state
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

    def _put_alarms(
        self, current: Description, deployment: Deployment, policy: RolloutPolicy, config_name: str
    ) -> None:
        """Put ``policy``'s alarms in place to watch ``config_name``, and delete the endpoint's others.

        The endpoint is tagged ``ALARMS_TAG`` before the first alarm exists, so its teardown finds them.
        """
        name, arn = current["EndpointName"], current["EndpointArn"]
        if ALARMS_TAG in self._api.endpoint_tags(current):
            keep = {alarm.name for alarm in policy.alarms}
            self._alarms.delete([found for found in self._alarms.find(name) if found not in keep])
        else:
            self._api.call(
                "add_tags", f"endpoint {name}", ResourceArn=arn, Tags=tag_list({ALARMS_TAG: "true"})
            )
            self._api.forget_endpoint(name)
        self._alarms.put(
            policy.alarms, endpoint=name, config_name=config_name, wait=policy.wait, tags=deployment.spec.tags
        )

    def _retag_dropping_alarms(
        self, current: Description, desired: DesiredState, policy: RolloutPolicy | None
    ) -> None:
        """:meth:`_retag`; then, when the rollout asks for no alarm and the endpoint has some, delete them.

        The endpoint's tags, which say whether it has alarms, are read once for both (an endpoint that never had
        alarms costs no call more than the re-tagging).
        """
        name, arn = current["EndpointName"], current["EndpointArn"]
        drop = (policy is None or not policy.alarms) and ALARMS_TAG in self._api.endpoint_tags(current)
        self._retag(current, desired)
        if drop:
            self._alarms.delete_all(name)
            self._api.call("delete_tags", f"endpoint {name}", ResourceArn=arn, TagKeys=[ALARMS_TAG])
            self._api.forget_endpoint(name)

    def update_endpoint(
        self,
        deployment: Deployment,
        desired: DesiredState,
        progress: Progress | None,
        verify: VerifyHook | None = None,
    ) -> None:
        """Move the endpoint to ``desired.config`` blue/green and wait until it serves on it; then ``verify``."""
        name, config_name = desired.endpoint.name, desired.config.name
        content = desired.config.properties
        policy = rollout_policy(deployment)  # a rollout SageMaker cannot run is refused before any call
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
            self._retag_dropping_alarms(current, desired, policy)
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
        previous = str(current.get("EndpointConfigName", ""))
        old_config = self._api.describe("endpoint_config", previous) or {}
        old_types = {
            v["VariantName"]: v.get("InstanceType") for v in old_config.get("ProductionVariants", [])
        }
        refusal = variant_change_refusal(deployment, old_types)
        if refusal is not None:
            raise refusal
        if policy is not None and policy.alarms:
            self._put_alarms(current, deployment, policy, config_name)
        routing = {"DeploymentConfig": policy.deployment_config()} if policy is not None else {}
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
                **routing,
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
            try:
                self._with_fallbacks(deployment, config_name, content, attempt)
            except ProviderError as exc:
                alarmed = self._alarm_verdict(name, policy, exc)
                if alarmed is None:
                    raise
                raise alarmed from exc
            if verify is not None:
                self._verify(deployment, name, previous, verify, progress)
        except BaseException:
            self._autoscaler.restore(name, snapshot)
            raise
        self._retag_dropping_alarms(current, desired, policy)
        variants = [v["name"] for v in content["variants"]]
        if content.get("autoscaling"):
            self._autoscaler.register(name, variants, content["autoscaling"])
        else:
            self._autoscaler.deregister(name, variants)

    def _alarm_verdict(
        self, name: str, policy: RolloutPolicy | None, error: ProviderError
    ) -> VerificationError | None:
        """The VerificationError of an update SageMaker rolled back because one of our alarms went off, else None."""
        if policy is None or not policy.alarms or isinstance(error, (CapacityError, QuotaError)):
            return None
        try:
            firing = self._alarms.firing([alarm.name for alarm in policy.alarms])
        except ProviderError as exc:
            logger.warning("could not read the rollout alarms of %s after its update failed: %s", name, exc)
            return None
        if not firing:
            return None
        alarm, reason = firing[0]
        bound = next(spec.bound for spec in policy.alarms if spec.name == alarm)
        return VerificationError(
            f"SageMaker rolled the {policy.kind} update of endpoint {name} back: alarm {alarm} ({bound}) went off"
            f"{': ' + reason if reason else ''}; the previous version serves",
            check=alarm,
            detail=reason or bound,
            subject=f"new version of endpoint {name} on sagemaker",
        )

    def _verify(
        self, deployment: Deployment, name: str, previous: str, verify: VerifyHook, progress: Progress | None
    ) -> None:
        """Run ``verify`` on the updated endpoint; when it fails, move the endpoint back to ``previous`` and re-raise.

        SageMaker cannot address a new fleet alone before traffic moves to it, so the check runs once the update
        is complete (the rollout's alarms guard the shift itself). An interrupt (Ctrl-C) is not a failed check:
        the endpoint stays where SageMaker put it.
        """
        description = self._api.describe("endpoint", name)
        if description is not None and description.get("EndpointConfigName"):
            self._api.describe("endpoint_config", str(description["EndpointConfigName"]))
        try:
            verify(self._state(name, description))
        except Exception as failure:
            logger.warning(
                "endpoint %s failed its checks (%s): moving it back to %s", name, failure, previous
            )
            try:
                self._api.call(
                    "update_endpoint", f"endpoint {name}", EndpointName=name, EndpointConfigName=previous
                )
                self._api.forget_endpoint(name)
                self._waiter.serving(
                    name,
                    previous,
                    operation="update",
                    instance_types=(),
                    deadline=self._clock() + deployment.spec.timeouts.update,
                    progress=progress,
                )
            except Exception as rollback_error:
                logger.error("could not move endpoint %s back to %s: %s", name, previous, rollback_error)
                raise ProviderError(
                    f"endpoint {name} failed its checks ({failure}) and moving it back to {previous} failed too "
                    f"({rollback_error}): it may still serve the version that failed its checks",
                    provider="sagemaker",
                    operation="rollback",
                    code="RollbackFailed",
                    details={"previous_config": previous},
                ) from failure
            raise
