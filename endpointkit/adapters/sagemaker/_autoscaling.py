"""Application Auto Scaling for production variants: target tracking on invocations per instance.

ResourceId, dimension and metric from the Application Auto Scaling API (botocore ``application-autoscaling``
service-2.json, RegisterScalableTarget / PutScalingPolicy) and the SageMaker guide
https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling.html.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from endpointkit.adapters.sagemaker._errors import Caller
from endpointkit.errors import NotFoundError, ProviderError

__all__ = ["DIMENSION", "NAMESPACE", "POLICY_NAME", "Autoscaler", "resource_id"]

logger = logging.getLogger("endpointkit.sagemaker")

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"
POLICY_NAME = "endpointkit-invocations-per-instance"
_SCALE_IN_COOLDOWN = 300
_SCALE_OUT_COOLDOWN = 60


def resource_id(endpoint: str, variant: str) -> str:
    """``endpoint/<endpoint>/variant/<variant>``, the ResourceId of a variant's scalable target."""
    return f"endpoint/{endpoint}/variant/{variant}"


class Autoscaler:
    """Registers and deregisters variants as scalable targets with one target-tracking policy each."""

    def __init__(self, client: Callable[[], Any], caller: Caller) -> None:
        self._client = client
        self._caller = caller

    def register(self, endpoint: str, variants: Iterable[str], settings: Mapping[str, Any]) -> None:
        """Register each variant (``min_instances``..``max_instances``) and put its target-tracking policy.

        Idempotent: registering again updates the bounds, putting the policy again replaces it.
        """
        for variant in variants:
            target = resource_id(endpoint, variant)
            common = {"ServiceNamespace": NAMESPACE, "ResourceId": target, "ScalableDimension": DIMENSION}
            self._caller.call(
                self._client(),
                "register_scalable_target",
                target,
                MinCapacity=int(settings["min_instances"]),
                MaxCapacity=int(settings["max_instances"]),
                **common,
            )
            if settings.get("target_invocations_per_instance") is None:
                continue
            self._caller.call(
                self._client(),
                "put_scaling_policy",
                target,
                PolicyName=POLICY_NAME,
                PolicyType="TargetTrackingScaling",
                TargetTrackingScalingPolicyConfiguration={
                    "TargetValue": float(settings["target_invocations_per_instance"]),
                    "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
                    "ScaleInCooldown": _SCALE_IN_COOLDOWN,
                    "ScaleOutCooldown": _SCALE_OUT_COOLDOWN,
                },
                **common,
            )

    def _registered(self, endpoint: str, variants: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = {resource_id(endpoint, variant): variant for variant in variants}
        if not ids:
            return {}
        response = self._caller.call(
            self._client(),
            "describe_scalable_targets",
            f"endpoint {endpoint}",
            ServiceNamespace=NAMESPACE,
            ResourceIds=sorted(ids),
            ScalableDimension=DIMENSION,
        )
        return {
            ids[target["ResourceId"]]: target
            for target in response.get("ScalableTargets", [])
            if target["ResourceId"] in ids
        }

    def registered(self, endpoint: str, variants: Iterable[str]) -> list[str]:
        """Which of ``variants`` are registered as scalable targets."""
        return sorted(self._registered(endpoint, variants))

    def deregister(self, endpoint: str, variants: Iterable[str]) -> list[str]:
        """Delete the policy and deregister each registered variant; returns the variants deregistered."""
        return [variant for variant, _ in self.deregister_with_snapshot(endpoint, variants, snapshot=False)]

    def deregister_with_snapshot(
        self, endpoint: str, variants: Iterable[str], *, snapshot: bool = True
    ) -> list[tuple[str, dict[str, Any]]]:
        """Deregister like :meth:`deregister`, returning each variant's settings so :meth:`restore` can put them back.

        Real AWS deletes a target's policies with it; the policy is deleted first anyway so emulators that do
        not (moto) end in the same state.
        """
        done: list[tuple[str, dict[str, Any]]] = []
        for variant, registration in sorted(self._registered(endpoint, variants).items()):
            target = resource_id(endpoint, variant)
            common = {"ServiceNamespace": NAMESPACE, "ResourceId": target, "ScalableDimension": DIMENSION}
            settings: dict[str, Any] = {
                "min_instances": registration.get("MinCapacity", 1),
                "max_instances": registration.get("MaxCapacity", 1),
                "target_invocations_per_instance": None,
            }
            if snapshot:
                policies = self._caller.call(
                    self._client(), "describe_scaling_policies", target, PolicyNames=[POLICY_NAME], **common
                ).get("ScalingPolicies", [])
                if policies:
                    tracking = policies[0].get("TargetTrackingScalingPolicyConfiguration", {})
                    settings["target_invocations_per_instance"] = tracking.get("TargetValue")
            for operation, extra in (
                ("delete_scaling_policy", {"PolicyName": POLICY_NAME}),
                ("deregister_scalable_target", {}),
            ):
                with contextlib.suppress(NotFoundError):
                    self._caller.call(self._client(), operation, target, **common, **extra)
            done.append((variant, settings))
        return done

    def restore(self, endpoint: str, snapshot: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Register again what :meth:`deregister_with_snapshot` removed; failures are logged, not raised."""
        for variant, settings in snapshot:
            try:
                self.register(endpoint, [variant], settings)
            except ProviderError as exc:
                logger.error("could not restore autoscaling of %s variant %s: %s", endpoint, variant, exc)
