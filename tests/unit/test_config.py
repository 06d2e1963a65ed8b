"""The deployment config: real files load, bad input fails with one line per problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import ConfigError, load_config
from config.loader import available_envs, load_config_file

REPO_ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, data: object, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def base() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "config" / "dev.yaml").read_text())
    return data


def assert_one_problem_naming(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    """``change`` merged into dev.yaml gives exactly one problem line: file, field, ``expected``."""
    problems = problems_for(tmp_path, merged(base(), change))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{tmp_path / 'bad.yaml'}: ")
    assert expected in problems[0], problems[0]


def problems_for(tmp_path: Path, data: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_file(write(tmp_path, data))
    return caught.value.problems


def test_every_committed_config_loads() -> None:
    assert {"dev", "prod"} <= set(available_envs())
    for env in available_envs():
        config = load_config(env)
        assert config.name.endswith(env)


def test_prod_keeps_data_and_dev_does_not() -> None:
    assert load_config("prod").removal_policy == "retain"
    assert load_config("dev").removal_policy == "destroy"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"lambda": {"timeout_seconds": 40}},
            "lambda.timeout_seconds: must be below 29 (API Gateway's integration timeout)",
        ),
        ({"logs": {"retention_days": 10}}, "logs.retention_days: must be one of CloudWatch's"),
        ({"llm": {"provider": "anthropic"}}, "llm.provider: Input should be 'bedrock' or"),
        ({"removal_policy": "keep"}, "removal_policy: Input should be 'destroy' or 'retain'"),
        ({"lambda": {"memory_mb": 64}}, "lambda.memory_mb: Input should be greater than or equal"),
        ({"lamda": {"memory_mb": 512}}, "lamda: unknown setting; check the spelling"),
        (
            {"llm": {"base_url": "http://api.example.com/v1"}},
            "llm: base_url must use https",
        ),
        (
            {"lambda": {"provisioned_concurrency": 50}},
            "lambda: provisioned_concurrency cannot exceed reserved_concurrency",
        ),
        ({"name": "Agent_Dev"}, "name: String should match pattern"),
    ],
)
def test_bad_values_name_file_field_and_what_is_allowed(
    tmp_path: Path, change: dict[str, object], expected: str
) -> None:
    assert_one_problem_naming(tmp_path, change, expected)


def test_every_problem_gets_its_own_line(tmp_path: Path) -> None:
    data = base()
    data["lambda"] = {**data["lambda"], "timeout_seconds": 60, "memory_mb": 1}
    data["session"] = {"ttl_seconds": 5}
    problems = problems_for(tmp_path, data)
    fields = sorted(p.split(": ")[1] for p in problems)
    assert fields == ["lambda.memory_mb", "lambda.timeout_seconds", "session.ttl_seconds"]


def test_missing_required_and_cross_field_rules(tmp_path: Path) -> None:
    data = base()
    del data["llm"]
    assert problems_for(tmp_path, data) == [
        f"{tmp_path / 'bad.yaml'}: llm: required setting is missing"
    ]
    data = base()
    data["alarms"] = {**data["alarms"], "p99_duration_ms": 30_000}
    [problem] = problems_for(tmp_path, data)
    assert "alarms.p99_duration_ms must be below lambda.timeout_seconds (25000 ms)" in problem


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    [problem] = problems_for(tmp_path, "name: agent-dev\nllm: [unclosed\n")
    assert "YAML syntax error at line" in problem


def test_unknown_env_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"no such config file; choose -c env=<name> from: .*dev"):
        load_config("qa")


def _synth(tmp_path: Path, context: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(context),
        "CDK_OUTDIR": str(tmp_path / "out"),
        "PATH": f"{REPO_ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        check=False, timeout=300,
    )  # fmt: skip


def test_synth_with_a_bad_config_exits_nonzero_without_traceback(tmp_path: Path) -> None:
    data = base()
    data["lambda"] = {**data["lambda"], "timeout_seconds": 30}
    data["logs"] = {"retention_days": 2}
    bad = write(tmp_path, data)
    run = _synth(tmp_path, {"config": str(bad)})
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    lines = [line.strip() for line in run.stderr.splitlines() if "bad.yaml" in line]
    assert len(lines) == 2, run.stderr
    assert any("lambda.timeout_seconds: must be below 29" in line for line in lines)
    assert any("logs.retention_days: must be one of" in line for line in lines)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_synth_with_an_unknown_env_exits_nonzero(tmp_path: Path) -> None:
    run = _synth(tmp_path, {"env": "qa"})
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "qa.yaml: no such config file" in run.stderr


# --- webhook / async pattern ----------------------------------------------------------------------


def merged(data: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``data`` with ``change`` merged in at any depth (a None value deletes the key)."""
    result = dict(data)
    for key, value in change.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


GITHUB = {"style": "github", "secret_name": "agent-dev/github-secret"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"webhook": {"ingress": {"timeout_seconds": 29}}},
            "webhook.ingress.timeout_seconds: must be below 29 (API Gateway's integration",
        ),
        (
            {"webhook": {"worker": {"timeout_seconds": 901}}},
            "webhook.worker.timeout_seconds: Input should be less than or equal to 900",
        ),
        (
            {"webhook": {"worker": {"batch_size": 11}}},
            "webhook.worker.batch_size: Input should be less than or equal to 10",
        ),
        (
            {"webhook": {"worker": {"max_batching_window_seconds": 301}}},
            "webhook.worker.max_batching_window_seconds: Input should be less than or equal to 300",
        ),
        (
            {"webhook": {"worker": {"max_concurrency": 1}}},
            "webhook.worker.max_concurrency: Input should be greater than or equal to 2",
        ),
        (
            {"webhook": {"worker": {"max_concurrency": 3, "reserved_concurrency": 2}}},
            "webhook.worker: max_concurrency cannot exceed reserved_concurrency: raise",
        ),
        (
            {"webhook": {"worker": {"retry_base_seconds": 60, "retry_max_seconds": 30}}},
            "webhook.worker: retry_max_seconds must be at least retry_base_seconds",
        ),
        (
            {"webhook": {"queue": {"retention_days": 14, "dlq_retention_days": 14}}},
            "webhook.queue: dlq_retention_days must be greater than retention_days: a message "
            "must not expire in the DLQ before it could have expired in the source",
        ),
        (
            {"webhook": {"queue": {"dlq_retention_days": 15}}},
            "webhook.queue.dlq_retention_days: Input should be less than or equal to 14",
        ),
        (
            {"webhook": {"queue": {"max_receive_count": 0}}},
            "webhook.queue.max_receive_count: Input should be greater than or equal to 1",
        ),
        (
            {"webhook": {"queue": {"max_receive_count": 200}}},
            "webhook: queue.max_receive_count x max(worker visibility timeout, "
            "worker.retry_max_seconds) = 360000 s must be below queue.retention_days (345600 s)",
        ),
        (
            {"webhook": {"idempotency_window_seconds": 700_000}},
            "webhook: idempotency_window_seconds must not exceed task_ttl_seconds",
        ),
        (
            {"webhook": {"callback": {"timeout_seconds": 61}}},
            "webhook.callback.timeout_seconds: Input should be less than or equal to 60",
        ),
        (
            {"webhook": {"callback": {"base_delay_seconds": 60, "max_delay_seconds": 10}}},
            "webhook.callback: max_delay_seconds must be at least base_delay_seconds",
        ),
        (
            {"webhook": {"callback": {"reserved_concurrency": 1}}},
            "webhook.callback.reserved_concurrency: Input should be greater than or equal to 2",
        ),
        (
            {"webhook": {"callback": {"signing_secret_name": "has space"}}},
            "webhook.callback.signing_secret_name: String should match pattern",
        ),
        (
            {"webhook": {"inbound_signature": {**GITHUB, "style": "gitlab"}}},
            "webhook.inbound_signature.style: Input should be 'github' or 'standard'",
        ),
        (
            {"webhook": {"inbound_signature": {"style": "standard"}}},
            "webhook.inbound_signature.secret_name: required setting is missing",
        ),
        (
            {"webhook": {"inbound_signature": {**GITHUB, "header": "Bad Header:"}}},
            "webhook.inbound_signature.header: String should match pattern",
        ),
        (
            {"webhook": {"inbound_signature": {**GITHUB, "tolerance_seconds": 0}}},
            "webhook.inbound_signature.tolerance_seconds: Input should be greater than or equal",
        ),
        (
            {"webhook": {"worker": {"timeout_seconds": 15}}},
            "llm.request_timeout_seconds must be below webhook.worker.timeout_seconds (15 s), so "
            "a slow model fails the try instead of killing the worker",
        ),
        (
            {"webhook": {"worker": {"timeout_seconds": 18}}, "llm": {"request_timeout_seconds": 5}},
            "alarms.p99_duration_ms must be below webhook.worker.timeout_seconds (18000 ms)",
        ),
        (
            {"webhook": {"callback": {"signing_secret_name": "agent-dev/llm-api-key"}}},
            "llm.api_key_secret_name and webhook.callback.signing_secret_name are both "
            "'agent-dev/llm-api-key': Secrets Manager names are unique per account and region",
        ),
        (
            {
                "webhook": {
                    "callback": {"signing_secret_name": None},
                    "inbound_signature": {
                        **GITHUB,
                        "secret_name": "agent-dev/webhook-signing-secret",
                    },
                }
            },
            "webhook.callback.signing_secret_name and webhook.inbound_signature.secret_name are "
            "both 'agent-dev/webhook-signing-secret'",
        ),
        ({"webhook": {"worker": {"memory": 512}}}, "webhook.worker.memory: unknown setting"),
    ],
)
def test_bad_webhook_values_give_one_line_naming_the_field(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    assert_one_problem_naming(tmp_path, change, expected)


def test_a_config_without_a_webhook_section_gets_production_defaults(tmp_path: Path) -> None:
    data = base()
    del data["webhook"]
    config = load_config_file(write(tmp_path, data, "old.yaml"))
    webhook = config.webhook
    assert (webhook.task_ttl_seconds, webhook.idempotency_window_seconds) == (604_800, 86_400)
    assert (webhook.worker.timeout_seconds, webhook.worker.batch_size) == (300, 1)
    assert (webhook.queue.max_receive_count, webhook.queue.dlq_retention_days) == (5, 14)
    assert webhook.inbound_signature is None
    assert webhook.callback.allow_http_loopback is False
    # The signing secret's name derives from the deployment's name when not given.
    assert config.callback_signing_secret_name == "agent-dev/webhook-signing-secret"
    assert webhook.worker_visibility_timeout_seconds == 6 * 300


def test_dev_and_prod_webhook_settings() -> None:
    dev, prod = load_config("dev").webhook, load_config("prod").webhook
    # dev is cheap: the smallest concurrency the event sources allow.
    assert dev.worker.max_concurrency == dev.worker.reserved_concurrency == 2
    assert dev.callback.reserved_concurrency == 2
    assert prod.worker.reserved_concurrency > dev.worker.reserved_concurrency
    for webhook in (dev, prod):
        assert webhook.inbound_signature is None
        assert webhook.callback.allow_http_loopback is False


# --- container pattern ----------------------------------------------------------------------------

BEDROCK = {
    "provider": "bedrock",
    "model_id": "anthropic.claude-3-5-haiku-20241022-v1:0",
    "base_url": None,
    "api_key_secret_name": None,
}
ECR_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/agent:1.4.2"


def window(**changes: Any) -> dict[str, Any]:
    return {"name": "business-hours", "cron": "cron(0 8 ? * MON-FRI *)", "min_capacity": 2,
            "max_capacity": 6, **changes}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"container": {"nat_gateways": 0}},
            "container.nat_gateways is 0, so the tasks have no route to the internet, but "
            "llm.provider openai-compatible calls https://api.openai.com/v1 there. Set "
            "container.nat_gateways to 1 or more, or use llm.provider bedrock",
        ),
        (
            {"container": {"nat_gateways": 3}},
            "container: nat_gateways (3) cannot exceed max_azs (2): there is at most one NAT",
        ),
        ({"container": {"max_azs": 1}}, "container.max_azs: Input should be greater than or equal"),
        (
            {"container": {"ws_heartbeat_seconds": 120}},
            "container: alb_idle_timeout_seconds (120) must be greater than ws_heartbeat_seconds "
            "(120), or the load balancer closes idle WebSockets between heartbeats",
        ),
        (
            {"container": {"alb_idle_timeout_seconds": 10, "ws_heartbeat_seconds": 5}},
            "container.alb_idle_timeout_seconds (10) must be greater than "
            "llm.request_timeout_seconds (15): an HTTP step sends nothing while the model thinks",
        ),
        (
            {"container": {"drain_seconds": 111}},
            "container.drain_seconds: Input should be less than or equal to 110",
        ),
        (
            {"container": {"max_concurrent_sessions": 10_001}},
            "container.max_concurrent_sessions: Input should be less than or equal to 10000",
        ),
        (
            {"container": {"service": {"cpu": 300}}},
            "container.service: cpu must be one of Fargate's sizes: 256, 512, 1024",
        ),
        (
            {"container": {"service": {"cpu": 256, "memory_mib": 4096}}},
            "container.service: memory_mib 4096 is not a Fargate size for cpu 256: 512, 1024, 2048",
        ),
        (
            {"container": {"worker": {"cpu": 1024, "memory_mib": 1000}}},
            "container.worker: memory_mib 1000 is not a Fargate size for cpu 1024: 2048-8192 in "
            "steps of 1024",
        ),
        (
            {"container": {"service": {"min_capacity": 0}}},
            "container.service.min_capacity: Input should be greater than or equal to 1",
        ),
        (
            {"container": {"service": {"min_capacity": 3}}},
            "container.service: min_capacity cannot exceed max_capacity",
        ),
        (
            {"container": {"worker": {"min_capacity": 3}}},
            "container.worker: min_capacity cannot exceed max_capacity",
        ),
        (
            {"container": {"worker": {"backlog_per_task": 0}}},
            "container.worker.backlog_per_task: Input should be greater than or equal to 1",
        ),
        (
            {"container": {"service": {"scheduled_scaling": [window(cron="0 8 * * *")]}}},
            "container.service.scheduled_scaling.0.cron: must be an Application Auto Scaling "
            "schedule: cron(minutes hours day-of-month month day-of-week year)",
        ),
        (
            {"container": {"service": {"scheduled_scaling": [window(cron="cron(0 8 * * *)")]}}},
            "container.service.scheduled_scaling.0.cron: must be an Application Auto Scaling",
        ),
        (
            {
                "container": {
                    "service": {"scheduled_scaling": [window(cron="at(2030-02-30T08:00:00)")]}
                }
            },
            "container.service.scheduled_scaling.0.cron: 'at(2030-02-30T08:00:00)' is not a valid "
            "date and time",
        ),
        (
            {"container": {"service": {"scheduled_scaling": [window(timezone="Mars/Olympus")]}}},
            "container.service.scheduled_scaling.0.timezone: must be an IANA time zone",
        ),
        (
            {"container": {"service": {"scheduled_scaling": [window(min_capacity=7)]}}},
            "container.service.scheduled_scaling.0: min_capacity cannot exceed max_capacity",
        ),
        (
            {"container": {"service": {"scheduled_scaling": [window(min_capacity=0)]}}},
            "container.service: scheduled_scaling business-hours: min_capacity must be at least 1",
        ),
        (
            {"container": {"service": {"scheduled_scaling": [window(), window()]}}},
            "container.service: scheduled_scaling names must be unique",
        ),
        (
            {
                "container": {
                    "image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/agent:latest"
                }
            },
            "container.image_uri: must not use the tag 'latest': pin a version or a digest",
        ),
        (
            {"container": {"image_uri": "ghcr.io/example/agent"}},
            "container.image_uri: must be registry/repository:tag or "
            "registry/repository@sha256:<digest>",
        ),
        (
            {"container": {"certificate_arn": "arn:aws:iam::123456789012:server-certificate/x"}},
            "container.certificate_arn: String should match pattern",
        ),
        (
            {"container": {"ingress_cidrs": ["10.1.2.3/8"]}},
            "container.ingress_cidrs: '10.1.2.3/8' has host bits set; did you mean 10.0.0.0/8?",
        ),
        (
            {"container": {"ingress_cidrs": ["office"]}},
            "container.ingress_cidrs: 'office' is not an IPv4 network such as 203.0.113.0/24",
        ),
        (
            {"container": {"ingress_cidrs": []}},
            "container.ingress_cidrs: Tuple should have at least",
        ),
        (
            {"container": {"redis": {"engine": "memcached"}}},
            "container.redis.engine: Input should be 'valkey' or 'redis'",
        ),
        (
            {"container": {"redis": {"num_replicas": 6}}},
            "container.redis.num_replicas: Input should be less than or equal to 5",
        ),
        (
            {"container": {"redis": {"node_type": "t4g.micro"}}},
            "container.redis.node_type: String should match pattern",
        ),
        ({"container": {"nat": 1}}, "container.nat: unknown setting"),
    ],
)
def test_bad_container_values_give_one_line_naming_the_field(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    assert_one_problem_naming(tmp_path, change, expected)


def test_without_nat_the_model_and_the_image_must_be_reachable_through_endpoints(
    tmp_path: Path,
) -> None:
    bedrock = merged(base(), {"llm": BEDROCK, "container": {"nat_gateways": 0}})
    assert load_config_file(write(tmp_path, bedrock, "ok.yaml")).container.nat_gateways == 0
    assert (
        load_config_file(
            write(tmp_path, merged(bedrock, {"container": {"image_uri": ECR_IMAGE}}), "ecr.yaml")
        ).container.image_uri
        == ECR_IMAGE
    )
    [problem] = problems_for(
        tmp_path, merged(bedrock, {"container": {"image_uri": "ghcr.io/example/agent:1.0"}})
    )
    assert (
        "container.nat_gateways is 0, so the tasks can pull images only from private ECR "
        "(through its VPC endpoints)" in problem
    )


def test_a_container_section_needs_tls_or_an_explicit_plain_http_opt_in(tmp_path: Path) -> None:
    """The service's bearer token must not cross the network in clear text by default."""
    data = base()
    del data["container"]
    [missing] = problems_for(tmp_path, data)
    assert missing.endswith("bad.yaml: container: required setting is missing")
    data["container"] = {}
    [problem] = problems_for(tmp_path, data)
    assert "container: certificate_arn is required" in problem
    assert "allow_plain_http: true" in problem
    data["container"] = {"allow_plain_http": True}
    container = load_config_file(write(tmp_path, data, "plain.yaml")).container
    # Otherwise production defaults.
    assert (container.nat_gateways, container.max_azs) == (2, 2)
    assert container.certificate_arn is None and container.image_uri is None
    assert container.alb_idle_timeout_seconds > container.ws_heartbeat_seconds
    # Stop timeout = drain + 10 s, within Fargate's 120 s.
    assert container.stop_timeout_seconds == container.drain_seconds + 10 <= 120
    assert (container.redis.engine, container.redis.num_replicas) == ("valkey", 1)
    assert container.service.min_capacity >= 2  # two AZs, one task each
    assert container.worker.min_capacity == 1


def test_dev_and_prod_container_settings() -> None:
    dev, prod = load_config("dev"), load_config("prod")
    # dev calls an OpenAI-compatible model on the internet: one NAT gateway is the cheapest egress
    # (six interface endpoints in two AZs would cost more, and cannot reach the model anyway).
    assert dev.llm.provider == "openai-compatible" and dev.container.nat_gateways == 1
    assert dev.container.redis.num_replicas == 0
    assert dev.container.worker.min_capacity == 0
    # prod: a NAT gateway and a task per AZ, a replica to fail over to.
    assert prod.container.nat_gateways == prod.container.max_azs == 3
    assert prod.container.service.min_capacity >= prod.container.max_azs
    assert prod.container.redis.num_replicas >= 1
    assert prod.container.redis.snapshot_retention_days > 0
    for config in (dev, prod):
        assert config.container.image_uri is None  # built from the Dockerfile at deploy


# --- kubernetes ----------------------------------------------------------------------------------

DIGEST = "@sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"kubernetes": {"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent:1.0"}},
            "kubernetes.image: must be pinned by digest",
        ),
        (
            {"kubernetes": {"image": "agent:latest" + DIGEST}},
            "kubernetes.image: must be registry/repository:tag",
        ),
        (
            {"kubernetes": {"service": {"min_replicas": 5, "max_replicas": 2}}},
            "kubernetes.service: min_replicas cannot exceed max_replicas",
        ),
        (
            {"kubernetes": {"service": {"scale_down_period_seconds": 20}}},
            "kubernetes.service.scale_down_period_seconds (20) must be at least preStop + "
            "container.drain_seconds (35 s)",
        ),
        (
            {"kubernetes": {"service": {"resources": {"cpu_request": "2", "cpu_limit": "500m"}}}},
            "kubernetes.service.resources: cpu_request (2) cannot exceed cpu_limit (500m)",
        ),
        (
            {"kubernetes": {"worker": {"resources": {"memory_request": "512MB"}}}},
            "kubernetes.worker.resources.memory_request: String should match pattern",
        ),
        (
            {"kubernetes": {"ingress": {"tls_secret_name": None}}},
            "kubernetes.ingress: tls_secret_name is required",
        ),
        (
            {"kubernetes": {"ingress": {"controller": "alb", "class_name": "alb"}}},
            "kubernetes.ingress: tls_secret_name is for controller nginx",
        ),
        (
            {"kubernetes": {"aws": {"task_queue_url": None, "callback_dlq_url": None}}},
            "kubernetes: worker.queue is sqs, so aws.task_queue_url, aws.callback_dlq_url must "
            "be set",
        ),
        (
            {"kubernetes": {"aws": {"task_queue_url": "https://example.com/queue"}}},
            "kubernetes.aws.task_queue_url: must be an SQS queue URL",
        ),
        (
            {
                "kubernetes": {
                    "worker": {
                        "scaling_windows": [
                            {"name": "peak", "start": "0 8 * * 1-5", "end": "0 18 * * 1-5",
                             "desired_replicas": 9}
                        ]
                    }
                }
            },
            "kubernetes.worker: scaling_windows peak: desired_replicas (9) exceeds "
            "max_replicas (3)",
        ),
        (
            {
                "kubernetes": {
                    "worker": {
                        "scaling_windows": [
                            {"name": "peak", "start": "cron(0 8 * * ? *)", "end": "0 18 * * *",
                             "desired_replicas": 1}
                        ]
                    }
                }
            },
            "kubernetes.worker.scaling_windows.0.start: must be a five-field cron expression",
        ),
        (
            {"kubernetes": {"worker": {"max_task_seconds": 3600, "min_replicas": 1}}},
            "kubernetes.worker: min_replicas must be 0 when tasks run as a ScaledJob",
        ),
        (
            {
                "kubernetes": {
                    "worker": {
                        "max_task_seconds": 3600,
                        "scaling_windows": [
                            {"name": "peak", "start": "0 8 * * 1-5", "end": "0 18 * * 1-5",
                             "desired_replicas": 1}
                        ],
                    }
                }
            },
            "kubernetes.worker: scaling_windows cannot be used when tasks run as a ScaledJob",
        ),
        (
            {"kubernetes": {"redis": {"cidrs": ["10.0.0.1/16"]}}},
            "kubernetes.redis.cidrs: '10.0.0.1/16' is not a network",
        ),
        (
            {"container": {"max_concurrent_sessions": 5000}},
            "is also Cloud Run's containerConcurrency, which is at most 1000",
        ),
    ],
)  # fmt: skip
def test_bad_kubernetes_values_give_one_line_naming_the_field(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    assert_one_problem_naming(tmp_path, change, expected)


def test_a_config_without_a_kubernetes_section_is_valid(tmp_path: Path) -> None:
    data = merged(base(), {"kubernetes": None})
    assert load_config_file(write(tmp_path, data)).kubernetes is None


def test_the_worker_becomes_a_scaled_job_only_above_the_bound() -> None:
    worker = load_config("dev").kubernetes.worker  # type: ignore[union-attr]
    assert not worker.scaled_job
    assert worker.model_copy(update={"max_task_seconds": 901}).scaled_job
    assert not worker.model_copy(update={"max_task_seconds": 900}).scaled_job
