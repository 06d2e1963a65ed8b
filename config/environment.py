"""The runtime's environment contract, built from a deployment config.

Every variable the agent runtime reads (``runtime.settings``, ``runtime.tasks.settings``,
``runtime.service.settings``, ``runtime.queue_worker``) is set here, once, for every platform:
the CDK stacks (Lambda and ECS) and the Kubernetes charts (k8s/) call the same functions, so a
function, a Fargate task and a pod of one config run the same agent. Plain Python (no CDK): the
cdk8s app imports it without loading aws-cdk-lib. Deploy-time values (table names, queue URLs,
secret ARNs) come in as arguments, CDK tokens included.
"""

from __future__ import annotations

from functools import cache

from config.model import DeploymentConfig, InboundSignatureConfig

_DEFAULT_TOLERANCE_SECONDS = InboundSignatureConfig.model_fields["tolerance_seconds"].default


def agent_environment(
    config: DeploymentConfig,
    *,
    session_table_name: str | None = None,
    redis_url: str | None = None,
    llm_secret_arn: str | None,
) -> dict[str, str]:
    """Every ``runtime.settings.RuntimeSettings`` variable: the agent a function or task runs.

    Sessions live in DynamoDB (``session_table_name``) or in Redis (``redis_url``; the password
    and, for containers, the LLM key arrive as ECS secrets, not here).
    """
    if (session_table_name is None) == (redis_url is None):
        raise ValueError(
            "agent_environment: pass exactly one of session_table_name (DynamoDB sessions) or "
            "redis_url (Redis sessions)"
        )
    environment = {}
    if session_table_name is not None:
        environment["SESSION_TABLE_NAME"] = session_table_name
    else:
        environment["SESSION_STORE"] = "redis"
        environment["REDIS_URL"] = str(redis_url)
    environment |= {
        "SESSION_TTL_SECONDS": str(config.session.ttl_seconds),
        "LLM_PROVIDER": config.llm.provider,
        "LLM_MODEL_ID": config.llm.model_id,
        "LLM_REQUEST_TIMEOUT_SECONDS": str(config.llm.request_timeout_seconds),
        "LLM_MAX_ATTEMPTS": str(config.llm.max_attempts),
        "AGENT_MAX_ITERATIONS": str(config.agent.max_iterations),
        "AGENT_SYSTEM_PROMPT": config.agent.system_prompt,
        "MAX_MESSAGE_CHARS": str(config.agent.max_message_chars),
        "MAX_BODY_BYTES": str(config.agent.max_body_bytes),
    }
    if llm_secret_arn is not None:
        environment["LLM_API_KEY_SECRET_ARN"] = llm_secret_arn
    if config.llm.base_url is not None:
        environment["LLM_BASE_URL"] = str(config.llm.base_url)
    return environment


def service_environment(
    config: DeploymentConfig,
    *,
    port: int,
    stop_timeout_seconds: int,
    forwarded_allow_ips: str,
    drain_seconds: int | None = None,
) -> dict[str, str]:
    """The container service's ``runtime.service.settings.ServiceSettings`` variables.

    ``forwarded_allow_ips``: the network the load balancer (or ingress controller) sends from;
    X-Forwarded-For/-Proto are believed only from there.
    """
    container = config.container
    return {
        "SERVICE_PORT": str(port),
        "SERVICE_MAX_CONCURRENT_SESSIONS": str(container.max_concurrent_sessions),
        # One WebSocket frame carries one step request: the same limit as an HTTP body.
        "SERVICE_MAX_FRAME_BYTES": str(config.agent.max_body_bytes),
        "SERVICE_WS_HEARTBEAT_SECONDS": str(container.ws_heartbeat_seconds),
        # The service checks its heartbeat and drain against the platform's values.
        "SERVICE_LB_IDLE_TIMEOUT_SECONDS": str(container.alb_idle_timeout_seconds),
        # By default container.drain_seconds; a platform with a fixed kill timeout passes less.
        "SERVICE_DRAIN_SECONDS": str(drain_seconds or container.drain_seconds),
        "SERVICE_STOP_TIMEOUT_SECONDS": str(stop_timeout_seconds),
        "SERVICE_FORWARDED_ALLOW_IPS": forwarded_allow_ips,
    }


def worker_environment(
    config: DeploymentConfig, *, drain_seconds: int | None = None
) -> dict[str, str]:
    """The container queue worker's ``runtime.queue_worker.WorkerSettings`` variables.

    ``drain_seconds``: how long a stopping worker's task may still run; by default the
    container pattern's (ECS stops a task within 120 s), more where the platform waits longer.
    """
    container = config.container
    return {
        # Task messages only: callbacks stay with the async stack's callback Lambda.
        "WORKER_QUEUES": "task",
        "WORKER_VISIBILITY_SECONDS": str(container.worker.visibility_seconds),
        "WORKER_DRAIN_SECONDS": str(drain_seconds or container.drain_seconds),
    }


def task_environment(
    config: DeploymentConfig,
    *,
    task_table_name: str,
    task_queue_url: str,
    callback_queue_url: str,
    callback_dlq_url: str,
    signing_secret_arn: str,
    inbound_secret_arn: str | None,
    lease_seconds: int | None = None,
) -> dict[str, str]:
    """Every ``runtime.tasks.settings.TaskSettings`` variable (the agent's are added apart).

    ``lease_seconds``: how long a worker holds a task before another may take it over; by
    default the Lambda worker's timeout, longer for workers without one.
    """
    webhook = config.webhook
    callback = webhook.callback
    inbound = webhook.inbound_signature
    environment = {
        "TASK_TABLE_NAME": task_table_name,
        "TASK_QUEUE_URL": task_queue_url,
        "CALLBACK_QUEUE_URL": callback_queue_url,
        "CALLBACK_DLQ_URL": callback_dlq_url,
        "TASK_TTL_SECONDS": str(webhook.task_ttl_seconds),
        "IDEMPOTENCY_WINDOW_SECONDS": str(webhook.idempotency_window_seconds),
        # The worker's last receive marks the task failed before SQS dead-letters the message.
        "TASK_MAX_RECEIVE_COUNT": str(webhook.queue.max_receive_count),
        # A crashed worker's claim runs out when its invocation would have been killed anyway.
        "TASK_LEASE_SECONDS": str(lease_seconds or webhook.worker.timeout_seconds),
        "TASK_RETRY_BASE_SECONDS": str(webhook.worker.retry_base_seconds),
        "TASK_RETRY_MAX_SECONDS": str(webhook.worker.retry_max_seconds),
        "INBOUND_SIGNATURE_STYLE": inbound.style if inbound else "none",
        "INBOUND_SIGNATURE_TOLERANCE_SECONDS": str(
            inbound.tolerance_seconds if inbound else _DEFAULT_TOLERANCE_SECONDS
        ),
        "CALLBACK_SIGNING_SECRET_ARN": signing_secret_arn,
        "CALLBACK_TIMEOUT_SECONDS": str(callback.timeout_seconds),
        "CALLBACK_MAX_ATTEMPTS": str(callback.max_attempts),
        "CALLBACK_BASE_DELAY_SECONDS": str(callback.base_delay_seconds),
        "CALLBACK_MAX_DELAY_SECONDS": str(callback.max_delay_seconds),
        "CALLBACK_ROTATION_OVERLAP_SECONDS": str(callback.rotation_overlap_seconds),
        "CALLBACK_ALLOW_HTTP_LOOPBACK": "true" if callback.allow_http_loopback else "false",
        "CALLBACK_GONE_TTL_SECONDS": str(callback.gone_ttl_seconds),
    }
    if inbound is not None:
        if inbound_secret_arn is None:
            raise ValueError("inbound_secret_arn is required when webhook.inbound_signature is set")
        environment["INBOUND_SIGNATURE_SECRET_ARN"] = inbound_secret_arn
        # Unset: the runtime uses the style's usual header.
        if inbound.header is not None:
            environment["INBOUND_SIGNATURE_HEADER"] = inbound.header
    return environment


def memory_environment(
    config: DeploymentConfig, *, database_url: str, database_user: str, secret_arn: str
) -> dict[str, str]:
    """The agent memory's ``MEMORY_*`` variables (``runtime.memory.settings``).

    ``database_url`` is ``postgresql://<host>:<port>/<database>[?options]`` without credentials:
    the user is ``MEMORY_DATABASE_USER``, and the password is read at run time from the
    credentials secret, ``MEMORY_DATABASE_SECRET_ARN`` (its complete ARN; the JSON's
    ``password`` field), never put in the environment: the secret rotates
    (``hybrid.memory.credentials_rotation_days``) and the runtime follows it. Memory entries
    expire with ``SESSION_TTL_SECONDS`` (agent_environment), the same knob as Redis and DynamoDB.
    """
    if config.hybrid is None:
        raise ValueError("memory_environment: the config has no hybrid section (hybrid.memory)")
    if "@" in database_url.partition("://")[2].partition("/")[0]:
        raise ValueError(
            "memory_environment: database_url must not carry credentials; the password is "
            "read from the secret MEMORY_DATABASE_SECRET_ARN names"
        )
    memory = config.hybrid.memory
    return {
        "MEMORY_STORE": "pgvector",
        "MEMORY_DATABASE_URL": database_url,
        "MEMORY_DATABASE_USER": database_user,
        "MEMORY_DATABASE_SECRET_ARN": secret_arn,
        "MEMORY_EMBEDDER": memory.embedder,
        "MEMORY_EMBEDDING_MODEL": memory.embedding_model,
        "MEMORY_EMBEDDING_DIMENSIONS": str(memory.embedding_dimensions),
    }


def usage_environment(config: DeploymentConfig) -> dict[str, str]:
    """The runtime's LLM usage-metric variables (``runtime.observability.usage``).

    The model's token prices come from ``costs/prices.yaml`` (``llm_per_million_tokens``), the
    table ``python -m costs`` reads: one source of prices. A model missing from it gets token
    metrics without a cost estimate, unless the config alarms on cost, which then fails here.
    Empty when ``observability.usage_metrics`` is off.
    """
    observability = config.observability
    if not observability.usage_metrics:
        return {}
    environment = {
        # CloudWatch namespace and Service dimension: the deployment's name, as Powertools'.
        "USAGE_METRICS_NAMESPACE": config.name,
        "USAGE_METRICS_SERVICE": config.name,
    }
    prices = model_token_prices(config.llm.model_id)
    if prices is None:
        if observability.cost_per_hour_alarm_usd is not None:
            raise ValueError(
                f"observability.cost_per_hour_alarm_usd needs the token prices of "
                f"llm.model_id {config.llm.model_id!r}: add them under llm_per_million_tokens in "
                f"costs/prices.yaml, or set cost_per_hour_alarm_usd: null"
            )
        return environment
    input_price, output_price = prices
    environment["LLM_INPUT_PRICE_USD_PER_MILLION"] = _price(input_price)
    environment["LLM_OUTPUT_PRICE_USD_PER_MILLION"] = _price(output_price)
    return environment


@cache
def model_token_prices(model_id: str) -> tuple[float, float] | None:
    """(input, output) USD per million tokens of ``model_id`` from costs/prices.yaml, or None.

    Cached: every stack of every config asks for its model's prices, and the table is one file
    that does not change during a synth.
    """
    # Imported here: the price table is read only by the stacks that emit usage metrics.
    from costs.estimate import PriceError, load_prices

    try:
        return load_prices().tokens(model_id)
    except PriceError:
        return None


def _price(usd: float) -> str:
    """``2.5`` as ``"2.5"``, ``10.0`` as ``"10"``: stable, readable template values."""
    return str(int(usd)) if usd.is_integer() else repr(usd)
