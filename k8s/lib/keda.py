"""KEDA's custom resources (``keda.sh/v1alpha1``) as typed ``ApiObject``s.

ScaledObject, ScaledJob and TriggerAuthentication, with the fields this project sets, and the
triggers it uses (``aws-sqs-queue``, ``redis``, ``cron``).

Typed here rather than generated with ``cdk8s import``: for Python the import emits a jsii
package that must be compiled and committed, thousands of lines for the dozen fields we set.
Small frozen dataclasses keep the chart's side typed, and tests/k8s validates every object we
emit against KEDA's released CRD schemas (and fails on any field the schema does not declare,
which the API server would prune silently), so a misspelt field fails a test, not a rollout.

A trigger's ``metadata`` is a ``map[string]string`` to the CRD: the scaler parses it, so the
schema cannot catch a misspelt key or a number where a string belongs. The trigger builders
below are the only place those keys are spelt, every value goes out as a string, and the tests
check the keys against what each scaler reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cdk8s import ApiObject, ApiObjectMetadata, JsonPatch
from cdk8s_plus_33 import k8s

from constructs import Construct

API_VERSION = "keda.sh/v1alpha1"

ScalingStrategy = Literal["default", "custom", "accurate", "eager"]
MultipleScalersCalculation = Literal["max", "min", "avg", "sum"]
RolloutStrategy = Literal["gradual", "immediate"]
IdentityOwner = Literal["keda", "workload"]


@dataclass(frozen=True)
class Trigger:
    """One entry of ``spec.triggers``; build it with the functions below."""

    type: str
    metadata: Mapping[str, str]
    # Unique within the object; KEDA names the trigger's metric after it, which keeps two
    # triggers of one type apart in events and metrics.
    name: str | None = None
    # A TriggerAuthentication in the same namespace.
    authentication_ref: str | None = None

    def to_json(self) -> dict[str, Any]:
        trigger: dict[str, Any] = {"type": self.type, "metadata": dict(self.metadata)}
        if self.name is not None:
            trigger["name"] = self.name
        if self.authentication_ref is not None:
            trigger["authenticationRef"] = {
                "kind": "TriggerAuthentication",
                "name": self.authentication_ref,
            }
        return trigger


def _flag(value: bool) -> str:
    return "true" if value else "false"


def sqs_trigger(
    *,
    name: str,
    queue_url: str,
    region: str,
    queue_length: int,
    activation_queue_length: int,
    scale_on_in_flight: bool,
    authentication_ref: str,
) -> Trigger:
    """``aws-sqs-queue``: messages per replica (or per Job) from GetQueueAttributes."""
    return Trigger(
        type="aws-sqs-queue",
        name=name,
        authentication_ref=authentication_ref,
        metadata={
            "queueURL": queue_url,
            "awsRegion": region,
            "queueLength": str(queue_length),
            "activationQueueLength": str(activation_queue_length),
            "scaleOnInFlight": _flag(scale_on_in_flight),
            # Delayed messages are not work yet; they count once they become visible.
            "scaleOnDelayed": "false",
        },
    )


def redis_trigger(
    *,
    name: str,
    address: str,
    key: str,
    length: int,
    activation_length: int,
    database_index: int,
    tls: bool,
    authentication_ref: str,
) -> Trigger:
    """``redis`` (lists): the length of ``key``. KEDA's script reads LLEN of a list and ZCARD of
    a sorted set, so a queue's in-flight and delayed sets can be watched as well."""
    return Trigger(
        type="redis",
        name=name,
        authentication_ref=authentication_ref,
        metadata={
            "address": address,
            "listName": key,
            "listLength": str(length),
            "activationListLength": str(activation_length),
            "databaseIndex": str(database_index),
            "enableTLS": _flag(tls),
        },
    )


def cron_trigger(
    *, name: str, start: str, end: str, timezone: str, desired_replicas: int
) -> Trigger:
    """``cron``: at least ``desired_replicas`` between ``start`` and ``end`` (a window, not a
    recurring job)."""
    return Trigger(
        type="cron",
        name=name,
        metadata={
            "timezone": timezone,
            "start": start,
            "end": end,
            "desiredReplicas": str(desired_replicas),
        },
    )


@dataclass(frozen=True)
class ScalingPolicy:
    type: Literal["Pods", "Percent"]
    value: int
    period_seconds: int

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value, "periodSeconds": self.period_seconds}


@dataclass(frozen=True)
class ScalingRules:
    """One direction of the HPA's ``behavior`` (autoscaling/v2 HPAScalingRules)."""

    stabilization_window_seconds: int
    policies: tuple[ScalingPolicy, ...]
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"

    def to_json(self) -> dict[str, Any]:
        return {
            "stabilizationWindowSeconds": self.stabilization_window_seconds,
            "selectPolicy": self.select_policy,
            "policies": [policy.to_json() for policy in self.policies],
        }


@dataclass(frozen=True)
class ObjectMeta:
    name: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def api_metadata(self) -> ApiObjectMetadata:
        return ApiObjectMetadata(name=self.name, namespace=self.namespace, labels=dict(self.labels))


@dataclass(frozen=True)
class ScaledObjectSpec:
    # An apps/v1 Deployment in the same namespace.
    deployment_name: str
    min_replica_count: int
    max_replica_count: int
    polling_interval: int
    cooldown_period: int
    triggers: tuple[Trigger, ...]
    # The HPA KEDA creates; None: the HPA's defaults.
    scale_down: ScalingRules | None = None
    scale_up: ScalingRules | None = None

    def to_json(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": self.deployment_name,
            },
            "minReplicaCount": self.min_replica_count,
            "maxReplicaCount": self.max_replica_count,
            "pollingInterval": self.polling_interval,
            "cooldownPeriod": self.cooldown_period,
            "triggers": [trigger.to_json() for trigger in self.triggers],
        }
        behavior = {
            direction: rules.to_json()
            for direction, rules in (("scaleDown", self.scale_down), ("scaleUp", self.scale_up))
            if rules is not None
        }
        if behavior:
            spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": behavior}}
        return spec


@dataclass(frozen=True)
class ScaledJobSpec:
    job: k8s.JobSpec
    polling_interval: int
    max_replica_count: int
    successful_jobs_history_limit: int
    failed_jobs_history_limit: int
    scaling_strategy: ScalingStrategy
    # gradual: a changed ScaledJob only affects new Jobs; immediate (KEDA's default) deletes the
    # running ones.
    rollout_strategy: RolloutStrategy
    triggers: tuple[Trigger, ...]
    # How several triggers' Job counts combine (KEDA's default: max).
    multiple_scalers_calculation: MultipleScalersCalculation = "max"

    def to_json(self) -> dict[str, Any]:
        # KubeJob.manifest renders the typed JobSpec exactly as a Job's spec is rendered.
        job_target: dict[str, Any] = k8s.KubeJob.manifest(spec=self.job)["spec"]
        return {
            "jobTargetRef": job_target,
            "pollingInterval": self.polling_interval,
            "maxReplicaCount": self.max_replica_count,
            "successfulJobsHistoryLimit": self.successful_jobs_history_limit,
            "failedJobsHistoryLimit": self.failed_jobs_history_limit,
            "scalingStrategy": {
                "strategy": self.scaling_strategy,
                "multipleScalersCalculation": self.multiple_scalers_calculation,
            },
            "rollout": {"strategy": self.rollout_strategy},
            "triggers": [trigger.to_json() for trigger in self.triggers],
        }


@dataclass(frozen=True)
class PodIdentity:
    """``provider: aws``: KEDA gets AWS credentials the IRSA way. ``identity_owner`` keda: the
    KEDA operator's own role; workload: the role annotated on the scale target's
    ServiceAccount, which KEDA assumes."""

    identity_owner: IdentityOwner = "keda"
    provider: Literal["aws"] = "aws"

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "identityOwner": self.identity_owner}


@dataclass(frozen=True)
class SecretTargetRef:
    """A scaler parameter (``parameter``) read from a Secret key in the same namespace."""

    parameter: str
    secret_name: str
    key: str

    def to_json(self) -> dict[str, Any]:
        return {"parameter": self.parameter, "name": self.secret_name, "key": self.key}


@dataclass(frozen=True)
class TriggerAuthenticationSpec:
    pod_identity: PodIdentity | None = None
    secret_target_refs: Sequence[SecretTargetRef] = ()

    def to_json(self) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self.pod_identity is not None:
            spec["podIdentity"] = self.pod_identity.to_json()
        if self.secret_target_refs:
            spec["secretTargetRef"] = [ref.to_json() for ref in self.secret_target_refs]
        return spec


class _KedaObject(ApiObject):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        kind: str,
        metadata: ObjectMeta,
        spec: dict[str, Any],
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            api_version=API_VERSION,
            kind=kind,
            metadata=metadata.api_metadata(),
        )
        # ApiObject's Python binding takes no spec argument: the spec goes in as a JSON patch.
        self.add_json_patch(JsonPatch.add("/spec", spec))


class ScaledObject(_KedaObject):
    def __init__(
        self, scope: Construct, construct_id: str, *, metadata: ObjectMeta, spec: ScaledObjectSpec
    ) -> None:
        super().__init__(
            scope, construct_id, kind="ScaledObject", metadata=metadata, spec=spec.to_json()
        )
        self.spec = spec


class ScaledJob(_KedaObject):
    def __init__(
        self, scope: Construct, construct_id: str, *, metadata: ObjectMeta, spec: ScaledJobSpec
    ) -> None:
        super().__init__(
            scope, construct_id, kind="ScaledJob", metadata=metadata, spec=spec.to_json()
        )
        self.spec = spec


class TriggerAuthentication(_KedaObject):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        metadata: ObjectMeta,
        spec: TriggerAuthenticationSpec,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            kind="TriggerAuthentication",
            metadata=metadata,
            spec=spec.to_json(),
        )
        self.spec = spec
