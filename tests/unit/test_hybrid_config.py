"""The hybrid section of the config: the committed profile loads, bad values fail with one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config import load_config
from config.loader import load_config_file
from config.model import HybridConfig, MemoryConfig
from tests.unit.test_config import (
    assert_one_problem_naming,
    merged,
    problems_for,
    write,
)
from tests.unit.test_config import base as dev_base


def base() -> dict[str, Any]:
    """dev.yaml with the container pattern on, which the hybrid architecture builds on."""
    return merged(dev_base(), {"container": {"enabled": True}})


def test_hybrid_needs_the_container_pattern(tmp_path: Path) -> None:
    (problem,) = problems_for(
        tmp_path, merged(base(), {"container": {"enabled": False}, "hybrid": {}})
    )
    assert (
        "hybrid needs the container pattern (the front door routes WebSockets and the vector "
        "store's clients are the container tasks): set container.enabled: true"
    ) in problem


def test_the_hybrid_profile_builds_the_hybrid_architecture() -> None:
    config = load_config("hybrid")
    assert config.name == "agent-hybrid"
    assert config.kubernetes is None
    assert config.hybrid is not None
    # Cheap when idle: the vector store pauses.
    assert config.hybrid.memory.min_acu == 0


def test_dev_and_prod_have_no_hybrid_section() -> None:
    assert load_config("dev").hybrid is None
    assert load_config("prod").hybrid is None


def test_defaults_need_nothing_from_the_yaml() -> None:
    hybrid = HybridConfig()
    assert (hybrid.sync_backend, hybrid.cloudfront) == ("container", True)
    assert hybrid.memory == MemoryConfig()
    assert hybrid.memory.min_acu == 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"sync_backend": "ecs"}, "hybrid.sync_backend: Input should be 'container' or 'lambda'"),
        ({"cloudfrnt": True}, "hybrid.cloudfrnt: unknown setting"),
        ({"memory": {"min_acu": -1}}, "hybrid.memory.min_acu: Input should be greater than"),
        ({"memory": {"max_acu": 300}}, "hybrid.memory.max_acu: Input should be less than"),
        ({"memory": {"max_acu": 2.25}}, "hybrid.memory.max_acu: must be a multiple of 0.5"),
        (
            {"memory": {"min_acu": 4, "max_acu": 2}},
            "hybrid.memory: min_acu (4) cannot exceed max_acu (2)",
        ),
        (
            {"memory": {"min_acu": 0.5, "auto_pause_seconds": 600}},
            "hybrid.memory: auto_pause_seconds applies only when min_acu is 0 (got min_acu 0.5)",
        ),
        (
            {"memory": {"auto_pause_seconds": 60}},
            "hybrid.memory.auto_pause_seconds: Input should be greater than or equal to 300",
        ),
        (
            {"memory": {"auto_pause_seconds": 90_000}},
            "hybrid.memory.auto_pause_seconds: Input should be less than or equal to 86400",
        ),
        (
            {"memory": {"embedding_dimensions": 1536}},
            "hybrid.memory: embedding_dimensions must be one of 256, 512, 1024 when embedder is "
            "bedrock",
        ),
        (
            {"memory": {"embedding_dimensions": 4096}},
            "hybrid.memory.embedding_dimensions: Input should be less than or equal to 2000",
        ),
        ({"memory": {"embedder": "cohere"}}, "hybrid.memory.embedder: Input should be 'bedrock'"),
        (
            {"memory": {"embedding_model": "titan embed"}},
            "hybrid.memory: embedding_model must be a Bedrock model id",
        ),
        (
            {"memory": {"database_name": "Agent-Memory"}},
            "hybrid.memory.database_name: String should match pattern",
        ),
        (
            {"memory": {"backup_retention_days": 0}},
            "hybrid.memory.backup_retention_days: Input should be greater than or equal to 1",
        ),
    ],
)
def test_a_bad_hybrid_value_is_one_problem_naming_the_field(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    assert_one_problem_naming(tmp_path, {"hybrid": change}, expected)


def test_an_openai_compatible_embedder_needs_an_openai_compatible_llm(tmp_path: Path) -> None:
    bedrock_llm = {"provider": "bedrock", "model_id": "amazon.nova-lite-v1:0"}
    data = merged(
        base(),
        {
            "llm": {**bedrock_llm, "base_url": None, "api_key_secret_name": None},
            "hybrid": {"memory": {"embedder": "openai-compatible"}},
        },
    )
    (problem,) = problems_for(tmp_path, data)
    assert (
        "(top level): hybrid.memory.embedder is openai-compatible, which uses llm.base_url and "
        "the LLM key, but llm.provider is bedrock; set hybrid.memory.embedder to bedrock"
    ) in problem


def test_the_front_door_needs_iam_api_auth(tmp_path: Path) -> None:
    (problem,) = problems_for(tmp_path, merged(base(), {"api": {"auth": "api_key"}, "hybrid": {}}))
    assert "hybrid needs api.auth iam (got api_key): the front door is an HTTP API" in problem


def test_a_certificate_needs_the_service_domain_name(tmp_path: Path) -> None:
    certificate = (
        "arn:aws:acm:us-east-1:123456789012:certificate/" + "0" * 8 + "-0000" * 3 + "-" + "0" * 12
    )
    with_cert = {"container": {"certificate_arn": certificate, "allow_plain_http": False}}
    (problem,) = problems_for(tmp_path, merged(base(), {**with_cert, "hybrid": {}}))
    assert "hybrid.service_domain_name is required when container.certificate_arn is set" in problem
    (problem,) = problems_for(
        tmp_path, merged(base(), {"hybrid": {"service_domain_name": "agent.example.com"}})
    )
    assert "hybrid.service_domain_name needs container.certificate_arn" in problem
    assert (
        load_config_file(
            write(
                tmp_path,
                merged(
                    base(),
                    {**with_cert, "hybrid": {"service_domain_name": "agent.example.com"}},
                ),
                "good.yaml",
            )
        ).hybrid
        is not None
    )


def test_an_openai_compatible_embedder_may_use_its_own_vector_size(tmp_path: Path) -> None:
    memory = {
        "embedder": "openai-compatible",
        "embedding_model": "text-embedding-3-small",
        "embedding_dimensions": 1536,
    }
    config = load_config_file(write(tmp_path, merged(base(), {"hybrid": {"memory": memory}})))
    assert config.hybrid is not None
    assert config.hybrid.memory.embedding_dimensions == 1536
