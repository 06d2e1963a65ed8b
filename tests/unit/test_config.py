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
    data = base()
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    problems = problems_for(tmp_path, data)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{tmp_path / 'bad.yaml'}: ")
    assert expected in problems[0]


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
