"""kubernetes.aws.llm_api_key_secret_arn (config/model.py): the pods read the rotated LLM key by
ARN. Each mistake gives one line naming the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config.loader import CONFIG_DIR, ConfigError, load_config, load_config_file

PROD_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:agent-prod/llm-api-key-AbCdEf"
FIELD = "kubernetes.aws.llm_api_key_secret_arn"


def prod_with(tmp_path: Path, arn: Any, **top: Any) -> Path:
    raw = yaml.safe_load((CONFIG_DIR / "prod.yaml").read_text())
    raw["kubernetes"]["aws"]["llm_api_key_secret_arn"] = arn
    raw.update(top)
    path = tmp_path / "prod.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_config_file(path)
    return raised.value.problems


def test_prod_reads_the_key_by_arn_and_dev_from_the_secret() -> None:
    prod, dev = load_config("prod"), load_config("dev")
    assert prod.kubernetes is not None and dev.kubernetes is not None
    assert prod.kubernetes.aws.llm_api_key_secret_arn == PROD_ARN
    # The secret rotation.llm_key rotates, in the pods' region.
    assert prod.rotation.llm_key is not None
    assert prod.llm.api_key_secret_name == "agent-prod/llm-api-key"
    assert dev.kubernetes.aws.llm_api_key_secret_arn is None


def test_unset_is_valid(tmp_path: Path) -> None:
    config = load_config_file(prod_with(tmp_path, None))
    assert config.kubernetes is not None
    assert config.kubernetes.aws.llm_api_key_secret_arn is None


@pytest.mark.parametrize(
    "arn",
    [
        # A partial ARN (no six-character suffix): IAM policies on it would not match.
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:agent-prod/llm-api-key",
        "agent-prod/llm-api-key",
        "arn:aws:ssm:us-east-1:123456789012:parameter/agent-prod/llm-api-key-AbCdEf",
        "arn:aws:secretsmanager:us-east-1:1234:secret:agent-prod/llm-api-key-AbCdEf",
    ],
)
def test_anything_but_a_complete_secret_arn_is_refused(tmp_path: Path, arn: str) -> None:
    (line,) = problems(prod_with(tmp_path, arn))
    assert f"{FIELD}: must be the complete ARN of the LLM key's Secrets Manager secret" in line
    assert "describe-secret" in line and "or remove it" in line


def test_the_secret_must_be_in_the_pods_region(tmp_path: Path) -> None:
    arn = PROD_ARN.replace("us-east-1", "eu-west-1")
    (line,) = problems(prod_with(tmp_path, arn))
    assert "kubernetes.aws: llm_api_key_secret_arn is in eu-west-1 but region is us-east-1" in line
    assert "in us-east-1" in line.split("but region is us-east-1", 1)[1]


def test_the_secret_must_be_the_one_the_stacks_rotate(tmp_path: Path) -> None:
    arn = PROD_ARN.replace("agent-prod/llm-api-key", "agent-prod/other-key")
    (line,) = problems(prod_with(tmp_path, arn))
    assert f"{FIELD} names the secret 'agent-prod/other-key'" in line
    assert "llm.api_key_secret_name is 'agent-prod/llm-api-key'" in line
    assert "--secret-id agent-prod/llm-api-key --query ARN" in line


def test_bedrock_reads_no_key(tmp_path: Path) -> None:
    bedrock = {"provider": "bedrock", "model_id": "anthropic.claude-3-5-haiku-20241022-v1:0"}
    raw = yaml.safe_load(prod_with(tmp_path, PROD_ARN, llm=bedrock).read_text())
    raw.pop("rotation", None)  # rotation.llm_key needs an openai-compatible key
    path = tmp_path / "bedrock.yaml"
    path.write_text(yaml.safe_dump(raw))
    found = problems(path)
    assert any(
        f"{FIELD} is set, but llm.provider is bedrock" in line and f"remove {FIELD}" in line
        for line in found
    ), found
