"""The queue worker on Kubernetes: the async pattern's tasks, scaled by KEDA on the queue.

Two shapes, chosen by ``kubernetes.worker.scaled_job`` (config.model):

* **Deployment + ScaledObject** (tasks up to ``scaled_job_above_seconds``): long-running workers
  that KEDA scales between ``min_replicas`` (0 by default) and ``max_replicas`` on the queue's
  length. A worker being scaled in, rolled or evicted finishes its task first: its grace period
  covers ``max_task_seconds`` and the runtime drains that long (WORKER_DRAIN_SECONDS), which is
  what a plain Deployment behind an HPA gets wrong for long agent runs.
* **ScaledJob** (longer tasks): one Job per message that runs it to completion and exits, never
  scaled in, so no grace period has to be as long as a task.

The queue is the async stack's SQS task queue (``aws-sqs-queue`` scaler, AWS credentials through
pod identity) or a Redis list (``redis`` scaler, password from the Secret). Around them: a
dedicated ServiceAccount (IRSA), a PodDisruptionBudget for the Deployment, and a NetworkPolicy
that admits nothing in and lets out only DNS, HTTPS and Redis.
"""

from __future__ import annotations

from cdk8s import Chart
from cdk8s_plus_33 import k8s

from config.environment import task_environment, worker_environment
from config.model import (
    K8S_TERMINATION_MARGIN_SECONDS,
    DeploymentConfig,
    K8sRedisConfig,
    KubernetesConfig,
)
from constructs import Construct
from k8s.charts.service import egress_rules
from k8s.lib import checkov, defaults, keda
from k8s.lib.checkov import skip_checkov
from k8s.lib.pod import (
    agent_pod_environment,
    disruption_budget,
    hardened_container,
    labels,
    llm_key_secret_arn,
    plain_env,
    restricted_pod_spec,
    rolling_deployment,
    secret_envs,
    secret_keys,
    selector_labels,
    service_account,
)

CONTAINER_NAME = "worker"
COMPONENT = "worker"
# The one-shot mode of `python -m runtime.service worker`: exit 0 after this many messages, or
# after one receive that comes back empty (another Job took the message).
ONE_SHOT_ARGS = ("--max-messages", "1")
# The worker's long poll (WORKER_RECEIVE_WAIT_SECONDS' default, SQS's maximum): how long a Job
# may wait for its message before the task starts.
RECEIVE_WAIT_SECONDS = 20
# A Job's deadline counts from its creation, so it includes waiting for a node (a cluster
# autoscaler adds one in a few minutes) and the image pull, before the receive and the task.
JOB_START_SECONDS = 300
# Finished Jobs kept for `kubectl logs`; failed ones longer, as they are what gets debugged.
SUCCESSFUL_JOBS_HISTORY = 3
FAILED_JOBS_HISTORY = 10
# HPA scale-down removes at most one worker per period, and never faster than KEDA re-measures
# the queue.
SCALE_DOWN_PODS = 1
SCALE_DOWN_MIN_PERIOD_SECONDS = 60
# The HPA's longest stabilization window.
HPA_MAX_STABILIZATION_SECONDS = 3600
# A Job pod runs one task to completion: node consolidation must wait for it, not evict it
# (the Cluster Autoscaler and Karpenter each read their own annotation).
DO_NOT_EVICT = {
    "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
    "karpenter.sh/do-not-disrupt": "true",
}

# checkov's liveness and readiness checks (CKV_K8S_8, CKV_K8S_9), for the reason at the
# container below. (Belongs with the other reasons in k8s/lib/checkov.py.)


def callback_list(redis: K8sRedisConfig) -> str:
    """The Redis list of callback messages, beside the task list."""
    return f"{redis.task_list}-callbacks"


def callback_dead_list(redis: K8sRedisConfig) -> str:
    """Where the callback worker moves callbacks it gave up on (CALLBACK_DLQ_URL)."""
    return f"{redis.task_list}-callbacks-dead"


def worker_env(config: DeploymentConfig) -> dict[str, str]:
    """The worker's environment: the same contract as the ECS worker, sized for Kubernetes."""
    kubernetes = _kubernetes(config)
    worker = kubernetes.worker
    aws = kubernetes.aws
    # Webhook signatures are checked where webhooks arrive (the ingress), never by the worker,
    # so its environment describes none: the cluster does not know that secret's ARN.
    tasks_config = config.model_copy(
        update={"webhook": config.webhook.model_copy(update={"inbound_signature": None})}
    )
    if worker.queue == "sqs":
        # config.model requires all three when the queue is sqs.
        assert aws.task_queue_url and aws.callback_queue_url and aws.callback_dlq_url
        task_queue, callback_queue, callback_dlq = (
            aws.task_queue_url,
            aws.callback_queue_url,
            aws.callback_dlq_url,
        )
    else:
        redis = kubernetes.redis
        task_queue = redis.url(fragment=redis.task_list)
        callback_queue = redis.url(fragment=callback_list(redis))
        callback_dlq = redis.url(fragment=callback_dead_list(redis))
    environment = (
        # The async stack's session table, as the ECS and Lambda workers use: a task's
        # conversation is the same whichever worker runs it.
        # The LLM key by ARN with the worker's IRSA role when the config gives one (a rotated
        # key reaches a running worker), else from the Secret (secret_keys, below).
        agent_pod_environment(
            config,
            session_table_name=aws.session_table_name,
            llm_secret_arn=llm_key_secret_arn(config),
        )
        | task_environment(
            tasks_config,
            task_table_name=aws.task_table_name,
            task_queue_url=task_queue,
            callback_queue_url=callback_queue,
            callback_dlq_url=callback_dlq,
            signing_secret_arn=aws.callback_signing_secret_arn,
            inbound_secret_arn=None,
            # The lease bounds a run's model calls (and when another worker may take the task
            # over): not the Lambda timeout, this worker's limit, max_task_seconds.
            lease_seconds=worker.max_task_seconds,
        )
        # A scaled-in worker finishes its task: the pod's grace period covers this drain. A
        # ScaledJob's pod is never scaled in, so it keeps the container pattern's drain.
        | worker_environment(
            config, drain_seconds=None if worker.scaled_job else worker.max_task_seconds
        )
    )
    if worker.queue == "redis":
        # No callback Lambda consumes a Redis list: the workers deliver callbacks too.
        environment["WORKER_QUEUES"] = "both"
    return environment


def _kubernetes(config: DeploymentConfig) -> KubernetesConfig:
    if config.kubernetes is None:
        raise ValueError(f"{config.name}: the config has no kubernetes section")
    return config.kubernetes


def _triggers(
    kubernetes: KubernetesConfig, *, authentication: str, one_job_per_message: bool
) -> tuple[keda.Trigger, ...]:
    """The queue's triggers. ``one_job_per_message``: a ScaledJob's, whose every Job takes one
    message, so a trigger's target is 1 and in-flight messages (already held by a running Job)
    are not counted."""
    worker = kubernetes.worker
    target = 1 if one_job_per_message else worker.target_queue_length
    if worker.queue == "sqs":
        assert kubernetes.aws.task_queue_url is not None
        return (
            keda.sqs_trigger(
                name="tasks",
                queue_url=kubernetes.aws.task_queue_url,
                region=kubernetes.aws.region,
                queue_length=target,
                activation_queue_length=worker.activation_queue_length,
                # A Deployment's scale counts the messages being worked on (NotVisible), so
                # KEDA neither scales in nor deactivates (to zero) workers that are busy, nor
                # leaves a message in retry back-off without a worker to take it back.
                scale_on_in_flight=not one_job_per_message,
                authentication_ref=authentication,
            ),
        )
    redis = kubernetes.redis
    # activation_queue_length holds back the first worker while few tasks wait; a callback is
    # owed to a client already, and is never held back.
    queues = (
        ("tasks", redis.task_list, worker.activation_queue_length),
        ("callbacks", callback_list(redis), 0),
    )

    def trigger(name: str, key: str, activation: int) -> keda.Trigger:
        return keda.redis_trigger(
            name=name,
            address=f"{redis.host}:{redis.port}",
            key=key,
            length=target,
            activation_length=activation,
            database_index=redis.db,
            tls=redis.tls,
            authentication_ref=authentication,
        )

    if one_job_per_message:
        return tuple(trigger(name, key, activation) for name, key, activation in queues)
    # The list holds ready messages only (runtime/tasks/redis_queue.py). Its in-flight and
    # delayed sets count as well, as scaleOnInFlight does for SQS: a busy worker is not scaled
    # in, and a worker stays while any message waits there, because only a client's call moves
    # a due message back to the list ("promotion needs a client").
    return tuple(
        trigger(f"{name}{suffix}", f"{key}{key_suffix}", ready_activation if not suffix else 0)
        for name, key, ready_activation in queues
        for suffix, key_suffix in (("", ""), ("-in-flight", ":inflight"), ("-delayed", ":delayed"))
    )


class WorkerChart(Chart):
    """The queue worker and its autoscaling; one instance per config."""

    def __init__(self, scope: Construct, construct_id: str, *, config: DeploymentConfig) -> None:
        super().__init__(scope, construct_id, disable_resource_name_hashes=True)
        kubernetes = _kubernetes(config)
        worker = kubernetes.worker
        name = f"{config.name}-worker"
        namespace = kubernetes.namespace
        object_labels = labels(name=name, component=COMPONENT, instance=config.name)
        selector = selector_labels(object_labels)
        metadata = keda.ObjectMeta(name=name, namespace=namespace, labels=object_labels)

        def meta() -> k8s.ObjectMeta:
            return k8s.ObjectMeta(name=name, namespace=namespace, labels=object_labels)

        self.service_account = service_account(
            self, "ServiceAccount", name=name, namespace=namespace,
            role_arn=kubernetes.worker_role_arn, object_labels=object_labels,
        )  # fmt: skip

        # The Redis password only for the Redis queue: the worker keeps its sessions in DynamoDB.
        secrets = secret_envs(
            secret_keys(
                config,
                redis_password=worker.queue == "redis",
                service_token=False,
                llm_secret_arn=llm_key_secret_arn(config),
            ),
            secret_name=kubernetes.secret_name,
        )
        args = (
            (*defaults.WORKER_ARGS, *ONE_SHOT_ARGS) if worker.scaled_job else defaults.WORKER_ARGS
        )
        # No probes: the worker serves no port, and the image's healthcheck asks the service's
        # /healthz. A worker whose loop fails exits (status 1), and the kubelet restarts it; a
        # hung model call is bounded by the task lease. An exec probe could only restart a pod
        # mid-task, which the drain is there to avoid.
        container = hardened_container(
            name=CONTAINER_NAME,
            image=kubernetes.image,
            args=args,
            env=[*plain_env(worker_env(config)), *secrets],
            spec=worker.resources,
        )

        if worker.queue == "sqs":
            authentication_spec = keda.TriggerAuthenticationSpec(
                # With a worker role, KEDA reads the queue as the worker (the role annotated on
                # its ServiceAccount), so one role holds the queue's permissions; its trust policy
                # must also admit the KEDA operator. Without one, the operator's own role.
                pod_identity=keda.PodIdentity(
                    identity_owner="workload" if kubernetes.worker_role_arn else "keda"
                )
            )
        else:
            authentication_spec = keda.TriggerAuthenticationSpec(
                secret_target_refs=(
                    keda.SecretTargetRef(
                        parameter="password",
                        secret_name=kubernetes.secret_name,
                        key=defaults.SECRET_KEY_REDIS_PASSWORD,
                    ),
                )
            )
        self.trigger_authentication = keda.TriggerAuthentication(
            self, "TriggerAuthentication", metadata=metadata, spec=authentication_spec
        )

        self.deployment: k8s.KubeDeployment | None = None
        self.scaled_object: keda.ScaledObject | None = None
        self.disruption_budget: k8s.KubePodDisruptionBudget | None = None
        self.scaled_job: keda.ScaledJob | None = None
        if worker.scaled_job:
            self.scaled_job = keda.ScaledJob(
                self,
                "ScaledJob",
                metadata=metadata,
                spec=keda.ScaledJobSpec(
                    job=k8s.JobSpec(
                        parallelism=1,
                        completions=1,
                        # A failed run is retried by the queue, not the Job: its message comes
                        # back after the visibility timeout, counted against max_receive_count
                        # and dead-lettered after the last, and KEDA starts a Job for it. A Job
                        # retry would only race that for another message.
                        backoff_limit=0,
                        # A backstop for a hung run; the task itself ends well before.
                        active_deadline_seconds=(
                            JOB_START_SECONDS
                            + RECEIVE_WAIT_SECONDS
                            + worker.max_task_seconds
                            + K8S_TERMINATION_MARGIN_SECONDS
                        ),
                        template=k8s.PodTemplateSpec(
                            metadata=k8s.ObjectMeta(
                                labels=object_labels, annotations=dict(DO_NOT_EVICT)
                            ),
                            spec=restricted_pod_spec(
                                containers=[container],
                                service_account_name=name,
                                # Only an eviction or the deadline stops a Job's pod early; it
                                # then gets the usual drain, and an unfinished task goes back
                                # to the queue.
                                termination_grace_period_seconds=(
                                    config.container.drain_seconds + K8S_TERMINATION_MARGIN_SECONDS
                                ),
                                selector=selector,
                                restart_policy="Never",
                            ),
                        ),
                    ),
                    polling_interval=worker.polling_interval_seconds,
                    max_replica_count=worker.max_replicas,
                    successful_jobs_history_limit=SUCCESSFUL_JOBS_HISTORY,
                    failed_jobs_history_limit=FAILED_JOBS_HISTORY,
                    # The triggers count waiting messages only, so KEDA starts one Job per
                    # waiting message less the Jobs still starting ("accurate").
                    scaling_strategy="accurate",
                    # Tasks and callbacks wait in two lists; each message needs its own Job.
                    multiple_scalers_calculation="sum",
                    # KEDA's default deletes the running Jobs when the ScaledJob changes: a
                    # deploy would cut every task short.
                    rollout_strategy="gradual",
                    triggers=_triggers(kubernetes, authentication=name, one_job_per_message=True),
                ),
            )
        else:
            grace = worker.max_task_seconds + K8S_TERMINATION_MARGIN_SECONDS
            # KEDA owns the count (through its HPA, and 0 when idle); rollouts start new
            # workers before old ones stop, and the old ones drain their task.
            self.deployment = rolling_deployment(
                self,
                "Deployment",
                metadata=meta(),
                selector=selector,
                pod_labels=object_labels,
                containers=[container],
                service_account_name=name,
                # The HPA picks which pod to remove, busy or not: a removed worker gets SIGTERM,
                # stops receiving and finishes its task within WORKER_DRAIN_SECONDS
                # (max_task_seconds), then this margin.
                termination_grace_period_seconds=grace,
            )
            skips = {"CKV_K8S_8": checkov.NO_PROBE, "CKV_K8S_9": checkov.NO_PROBE}
            if secrets:
                skips["CKV_K8S_35"] = checkov.SECRETS_AS_ENV
            skip_checkov(self.deployment, skips)
            triggers = _triggers(kubernetes, authentication=name, one_job_per_message=False)
            windows = tuple(
                keda.cron_trigger(
                    name=window.name,
                    start=window.start,
                    end=window.end,
                    timezone=window.timezone,
                    desired_replicas=window.desired_replicas,
                )
                for window in worker.scaling_windows
            )
            self.scaled_object = keda.ScaledObject(
                self,
                "ScaledObject",
                metadata=metadata,
                spec=keda.ScaledObjectSpec(
                    deployment_name=name,
                    min_replica_count=worker.min_replicas,
                    max_replica_count=worker.max_replicas,
                    polling_interval=worker.polling_interval_seconds,
                    # From 1 to 0 (KEDA); the HPA's window below covers N to 1 alike.
                    cooldown_period=worker.cooldown_seconds,
                    triggers=(*triggers, *windows),
                    # A queue empties in bursts, and the HPA cannot tell busy workers from idle
                    # ones: wait as long as KEDA's cooldown before acting on a lower count, then
                    # remove one worker at a time, each decision on a fresh measurement. Every
                    # removed worker still finishes its task (the grace period above).
                    scale_down=keda.ScalingRules(
                        stabilization_window_seconds=min(
                            worker.cooldown_seconds, HPA_MAX_STABILIZATION_SECONDS
                        ),
                        policies=(
                            keda.ScalingPolicy(
                                type="Pods",
                                value=SCALE_DOWN_PODS,
                                period_seconds=max(
                                    SCALE_DOWN_MIN_PERIOD_SECONDS, worker.polling_interval_seconds
                                ),
                            ),
                        ),
                    ),
                ),
            )
            # Node drains take one worker at a time; each finishes its task first.
            self.disruption_budget = disruption_budget(
                self, "DisruptionBudget", metadata=meta(), selector=selector, max_unavailable=1
            )

        self.network_policy = k8s.KubeNetworkPolicy(
            self,
            "NetworkPolicy",
            metadata=meta(),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=selector),
                # Ingress listed with no rules: nothing may connect to a worker, it serves no
                # port. Egress: DNS, HTTPS (AWS APIs, the model) and Redis.
                policy_types=["Ingress", "Egress"],
                egress=egress_rules(kubernetes),
            ),
        )
