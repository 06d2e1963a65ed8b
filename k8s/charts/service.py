"""The agent service on Kubernetes: HTTP and WebSocket sessions, the container pattern's image.

Deployment (hardened pods, probes, preStop + drain within the grace period, spread over zones
and hosts), Service, optional Ingress with WebSocket-sized timeouts, PodDisruptionBudget,
NetworkPolicy, an autoscaling/v2 HPA on CPU and memory whose scale-down never cuts sessions
short, and a VPA that only recommends (or sizes new pods), so it never fights the HPA.
"""

from __future__ import annotations

from cdk8s import Chart
from cdk8s_plus_33 import k8s

from config.environment import service_environment
from config.model import (
    K8S_PRE_STOP_SECONDS,
    DeploymentConfig,
    K8sIngressConfig,
    KubernetesConfig,
)
from constructs import Construct
from k8s.lib import checkov, defaults
from k8s.lib.checkov import skip_checkov
from k8s.lib.pod import (
    agent_pod_environment,
    disruption_budget,
    hardened_container,
    http_probe,
    labels,
    llm_key_secret_arn,
    plain_env,
    rolling_deployment,
    secret_envs,
    secret_keys,
    selector_labels,
    service_account,
)
from k8s.lib.vpa import VerticalPodAutoscaler, VpaProps

CONTAINER_NAME = "agent"
COMPONENT = "service"
# HPA scale-up: double, or add 4 pods, per minute, whichever is more: a traffic spike is met in
# a few steps; new pods are ready within the startup probe's minute.
SCALE_UP_PERCENT = 100
SCALE_UP_PODS = 4
SCALE_UP_PERIOD_SECONDS = 60


def egress_rules(kubernetes: KubernetesConfig) -> list[k8s.NetworkPolicyEgressRule]:
    """DNS, HTTPS (the model API and AWS APIs) and Redis: all an agent pod talks to."""
    return [
        k8s.NetworkPolicyEgressRule(
            to=[
                k8s.NetworkPolicyPeer(
                    namespace_selector=k8s.LabelSelector(
                        match_labels={"kubernetes.io/metadata.name": "kube-system"}
                    ),
                    pod_selector=k8s.LabelSelector(match_labels={"k8s-app": "kube-dns"}),
                )
            ],
            ports=[
                k8s.NetworkPolicyPort(protocol=protocol, port=k8s.IntOrString.from_number(53))
                for protocol in ("UDP", "TCP")
            ],
        ),
        k8s.NetworkPolicyEgressRule(
            ports=[k8s.NetworkPolicyPort(protocol="TCP", port=k8s.IntOrString.from_number(443))]
        ),
        k8s.NetworkPolicyEgressRule(
            to=[
                k8s.NetworkPolicyPeer(ip_block=k8s.IpBlock(cidr=cidr))
                for cidr in kubernetes.redis.cidrs
            ],
            ports=[
                k8s.NetworkPolicyPort(
                    protocol="TCP", port=k8s.IntOrString.from_number(kubernetes.redis.port)
                )
            ],
        ),
    ]


def ingress_annotations(config: DeploymentConfig, ingress: K8sIngressConfig) -> dict[str, str]:
    """Timeouts sized for WebSockets and for a step's silence while the model thinks."""
    # The same idle timeout as the ECS load balancer: longer than the WebSocket heartbeat and
    # than a model call (config.model checks both).
    idle = str(config.container.alb_idle_timeout_seconds)
    if ingress.controller == "nginx":
        annotations = {
            "nginx.ingress.kubernetes.io/proxy-read-timeout": idle,
            "nginx.ingress.kubernetes.io/proxy-send-timeout": idle,
            # A step request is at most max_body_bytes; nginx's default 1m would also do, but
            # the two limits must not drift apart.
            "nginx.ingress.kubernetes.io/proxy-body-size": f"{config.agent.max_body_bytes}",
            "nginx.ingress.kubernetes.io/ssl-redirect": str(
                ingress.tls_secret_name is not None
            ).lower(),
        }
        return annotations
    annotations = {
        "alb.ingress.kubernetes.io/scheme": "internet-facing",
        # Pods as targets: the ALB health-checks each pod and drains it on its own.
        "alb.ingress.kubernetes.io/target-type": "ip",
        "alb.ingress.kubernetes.io/healthcheck-path": defaults.READY_PATH,
        "alb.ingress.kubernetes.io/load-balancer-attributes": (
            f"idle_timeout.timeout_seconds={idle}"
        ),
        "alb.ingress.kubernetes.io/target-group-attributes": (
            f"deregistration_delay.timeout_seconds={config.container.drain_seconds}"
        ),
    }
    if ingress.certificate_arn is not None:
        annotations |= {
            "alb.ingress.kubernetes.io/certificate-arn": ingress.certificate_arn,
            "alb.ingress.kubernetes.io/listen-ports": '[{"HTTP": 80}, {"HTTPS": 443}]',
            "alb.ingress.kubernetes.io/ssl-redirect": "443",
            "alb.ingress.kubernetes.io/ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
        }
    return annotations


def service_pod_environment(
    config: DeploymentConfig,
    *,
    llm_secret_arn: str | None,
    stop_timeout_seconds: int,
    forwarded_allow_ips: str,
    drain_seconds: int | None = None,
) -> dict[str, str]:
    """The service container's plain variables (the Secret's come apart), on any platform.

    ``llm_secret_arn``: where the container reads the LLM key (k8s.lib.pod.llm_key_secret_arn),
    or None when it comes from a secret reference (``secret_keys``).
    """
    kubernetes = config.kubernetes
    if kubernetes is None:
        raise ValueError(f"{config.name}: the config has no kubernetes section")
    return agent_pod_environment(
        config, redis_url=kubernetes.redis.url(), llm_secret_arn=llm_secret_arn
    ) | service_environment(
        config,
        port=defaults.CONTAINER_PORT,
        stop_timeout_seconds=stop_timeout_seconds,
        forwarded_allow_ips=forwarded_allow_ips,
        drain_seconds=drain_seconds,
    )


class ServiceChart(Chart):
    """Everything the agent service needs in its namespace; one instance per config."""

    def __init__(self, scope: Construct, construct_id: str, *, config: DeploymentConfig) -> None:
        super().__init__(scope, construct_id, disable_resource_name_hashes=True)
        kubernetes = config.kubernetes
        if kubernetes is None:
            raise ValueError(f"{config.name}: the config has no kubernetes section")
        service = kubernetes.service
        name = f"{config.name}-service"
        object_labels = labels(name=name, component=COMPONENT, instance=config.name)
        selector = selector_labels(object_labels)
        namespace = kubernetes.namespace

        def meta(annotations: dict[str, str] | None = None) -> k8s.ObjectMeta:
            return k8s.ObjectMeta(
                name=name, namespace=namespace, labels=object_labels, annotations=annotations
            )

        self.service_account = service_account(
            self, "ServiceAccount", name=name, namespace=namespace,
            role_arn=kubernetes.service_role_arn, object_labels=object_labels,
        )  # fmt: skip

        grace = config.k8s_service_grace_seconds
        # The LLM key by ARN with the service's IRSA role when the config gives one, so a
        # rotated key reaches running pods; else from the Secret.
        llm_secret_arn = llm_key_secret_arn(config)
        environment = service_pod_environment(
            config,
            llm_secret_arn=llm_secret_arn,
            # SIGTERM arrives after preStop; the service checks its drain fits before SIGKILL.
            stop_timeout_seconds=grace - K8S_PRE_STOP_SECONDS,
            forwarded_allow_ips=",".join(kubernetes.ingress_controller.source_cidrs),
        )
        secrets = secret_envs(
            secret_keys(
                config, redis_password=True, service_token=True, llm_secret_arn=llm_secret_arn
            ),
            secret_name=kubernetes.secret_name,
        )
        container = hardened_container(
            name=CONTAINER_NAME,
            image=kubernetes.image,
            args=defaults.SERVICE_ARGS,
            env=[*plain_env(environment), *secrets],
            spec=service.resources,
            ports=[k8s.ContainerPort(name="http", container_port=defaults.CONTAINER_PORT)],
            startup_probe=http_probe(
                defaults.HEALTH_PATH,
                period=defaults.STARTUP_PERIOD_SECONDS,
                failure_threshold=defaults.STARTUP_FAILURE_THRESHOLD,
            ),
            readiness_probe=http_probe(
                defaults.READY_PATH, period=defaults.READINESS_PERIOD_SECONDS, failure_threshold=1
            ),
            liveness_probe=http_probe(
                defaults.HEALTH_PATH,
                period=defaults.LIVENESS_PERIOD_SECONDS,
                failure_threshold=defaults.LIVENESS_FAILURE_THRESHOLD,
            ),
            # Endpoints and ingress controllers stop routing to a terminating pod a few seconds
            # after it starts terminating; sleeping first means no new session lands mid-drain.
            lifecycle=k8s.Lifecycle(
                pre_stop=k8s.LifecycleHandler(sleep=k8s.SleepAction(seconds=K8S_PRE_STOP_SECONDS))
            ),
        )
        self.deployment = rolling_deployment(
            self,
            "Deployment",
            metadata=meta(),
            selector=selector,
            pod_labels=object_labels,
            containers=[container],
            service_account_name=name,
            termination_grace_period_seconds=grace,
        )
        skip_checkov(self.deployment, {"CKV_K8S_35": checkov.SECRETS_AS_ENV})
        self.service = k8s.KubeService(
            self,
            "Service",
            metadata=meta(),
            spec=k8s.ServiceSpec(
                type="ClusterIP",
                selector=selector,
                ports=[
                    k8s.ServicePort(
                        name="http",
                        port=defaults.SERVICE_PORT,
                        target_port=k8s.IntOrString.from_string("http"),
                        protocol="TCP",
                    )
                ],
            ),
        )
        self.ingress: k8s.KubeIngress | None = None
        if kubernetes.ingress is not None:
            ingress = kubernetes.ingress
            tls = (
                [k8s.IngressTls(hosts=[ingress.host], secret_name=ingress.tls_secret_name)]
                if ingress.tls_secret_name
                else None
            )
            self.ingress = k8s.KubeIngress(
                self,
                "Ingress",
                metadata=meta(annotations=ingress_annotations(config, ingress)),
                spec=k8s.IngressSpec(
                    ingress_class_name=ingress.class_name,
                    tls=tls,
                    rules=[
                        k8s.IngressRule(
                            host=ingress.host,
                            http=k8s.HttpIngressRuleValue(
                                paths=[
                                    k8s.HttpIngressPath(
                                        path="/",
                                        path_type="Prefix",
                                        backend=k8s.IngressBackend(
                                            service=k8s.IngressServiceBackend(
                                                name=name,
                                                port=k8s.ServiceBackendPort(name="http"),
                                            )
                                        ),
                                    )
                                ]
                            ),
                        )
                    ],
                ),
            )
        self.disruption_budget = disruption_budget(
            self,
            "DisruptionBudget",
            metadata=meta(),
            selector=selector,
            max_unavailable=service.pdb_max_unavailable,
        )
        controller = kubernetes.ingress_controller
        self.network_policy = k8s.KubeNetworkPolicy(
            self,
            "NetworkPolicy",
            metadata=meta(),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=selector),
                policy_types=["Ingress", "Egress"],
                ingress=[
                    k8s.NetworkPolicyIngressRule(
                        # Only the ingress controller (its pods, or an ALB's subnets) reaches
                        # the service; other pods in the cluster cannot call the agent.
                        from_=[
                            k8s.NetworkPolicyPeer(
                                namespace_selector=k8s.LabelSelector(
                                    match_labels={
                                        "kubernetes.io/metadata.name": controller.namespace
                                    }
                                ),
                                pod_selector=k8s.LabelSelector(
                                    match_labels=dict(controller.pod_labels)
                                ),
                            ),
                            *(
                                k8s.NetworkPolicyPeer(ip_block=k8s.IpBlock(cidr=cidr))
                                for cidr in controller.source_cidrs
                                if kubernetes.ingress is not None
                                and kubernetes.ingress.controller == "alb"
                            ),
                        ],
                        ports=[
                            k8s.NetworkPolicyPort(
                                protocol="TCP",
                                port=k8s.IntOrString.from_number(defaults.CONTAINER_PORT),
                            )
                        ],
                    )
                ],
                egress=egress_rules(kubernetes),
            ),
        )
        self.autoscaler = k8s.KubeHorizontalPodAutoscalerV2(
            self,
            "Autoscaler",
            metadata=meta(),
            spec=k8s.HorizontalPodAutoscalerSpecV2(
                scale_target_ref=k8s.CrossVersionObjectReferenceV2(
                    api_version="apps/v1", kind="Deployment", name=name
                ),
                min_replicas=service.min_replicas,
                max_replicas=service.max_replicas,
                metrics=[
                    k8s.MetricSpecV2(
                        type="Resource",
                        resource=k8s.ResourceMetricSourceV2(
                            name=resource,
                            target=k8s.MetricTargetV2(
                                type="Utilization", average_utilization=percent
                            ),
                        ),
                    )
                    for resource, percent in (
                        ("cpu", service.cpu_target_percent),
                        ("memory", service.memory_target_percent),
                    )
                ],
                behavior=k8s.HorizontalPodAutoscalerBehaviorV2(
                    scale_up=k8s.HpaScalingRulesV2(
                        stabilization_window_seconds=0,
                        select_policy="Max",
                        policies=[
                            k8s.HpaScalingPolicyV2(
                                type="Percent",
                                value=SCALE_UP_PERCENT,
                                period_seconds=SCALE_UP_PERIOD_SECONDS,
                            ),
                            k8s.HpaScalingPolicyV2(
                                type="Pods",
                                value=SCALE_UP_PODS,
                                period_seconds=SCALE_UP_PERIOD_SECONDS,
                            ),
                        ],
                    ),
                    # Scale-down ends sessions on the removed pods: wait out dips (the
                    # stabilization window), then remove a few pods per period, the period at
                    # least a pod's preStop + drain (config.model checks), so earlier pods have
                    # finished draining before the next ones start.
                    scale_down=k8s.HpaScalingRulesV2(
                        stabilization_window_seconds=service.scale_down_stabilization_seconds,
                        select_policy="Min",
                        policies=[
                            k8s.HpaScalingPolicyV2(
                                type="Pods",
                                value=service.scale_down_pods,
                                period_seconds=service.scale_down_period_seconds,
                            )
                        ],
                    ),
                ),
            ),
        )
        resources = service.resources
        self.vertical_autoscaler = VerticalPodAutoscaler(
            self,
            "VerticalAutoscaler",
            props=VpaProps(
                name=name,
                namespace=namespace,
                labels=object_labels,
                deployment_name=name,
                container_name=CONTAINER_NAME,
                update_mode=service.vpa_mode,
                min_allowed={"cpu": resources.cpu_request, "memory": resources.memory_request},
                max_allowed={"cpu": resources.cpu_limit, "memory": resources.memory_limit},
            ),
        )
