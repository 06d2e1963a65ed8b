"""The benchmarks' tools work: they never pass or fail on figures, but a benchmark that no
longer runs, or a what-if server that does not switch off what its row says, would make
``make bench``'s tables wrong without anyone noticing.

Only correctness is asserted here (every request answered 200, the switched-off parts absent
from the server's output, the targets' arithmetic); never a timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import run_all
from tests.fakes.ports import free_port, wait_until_listening

REPO_ROOT = Path(__file__).resolve().parents[2]
APPS = REPO_ROOT / "bench" / "service_apps.py"
TOKEN = "bench-tools-test-token"

pytestmark = pytest.mark.timeout(120)

Line = dict[str, Any]


def _run(script: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / script), *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )


def test_service_benchmark_runs_every_server_without_errors(tmp_path: Path) -> None:
    out = tmp_path / "service.json"
    result = _run(
        "service.py", "--runs", "1", "--seconds", "0.5", "--connections", "4",
        "--ws-connections", "2", "--idle", "20", "--json-out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    for which in ("bare", "hello", "agent"):
        assert figures["http"][which]["errors"] == 0, which
        assert figures["http"][which]["requests_per_second"] > 0, which
    assert figures["http"]["hello"]["requests_per_second_vs_hello"] == 1.0
    assert figures["websocket_frames_per_second"] > 0
    memory = figures["memory"]
    assert memory["with_idle_websockets_mb"] >= memory["idle_mb"] > 0


def test_service_floor_benchmark_runs_every_row_without_errors(tmp_path: Path) -> None:
    out = tmp_path / "floor.json"
    result = _run(
        "service_floor.py", "--runs", "1", "--seconds", "0.5", "--connections", "4",
        "--json-out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert len(figures) == 6
    for label, row in figures.items():
        assert row["errors"] == 0, label
        assert row["requests_per_second"] > 0, label
    assert "| agent, as production runs it |" in result.stdout


def _agent_output(tmp_path: Path, off: str | None) -> tuple[Line, list[Line]]:
    """One request to ``service_apps.py agent`` (with ``--off off``): its answer and the JSON
    lines the server wrote to stdout."""
    port = free_port()
    stdout_path = tmp_path / f"agent-{off}.out"
    options = [] if off is None else ["--off", off]
    with stdout_path.open("w") as stdout:
        process = subprocess.Popen(
            [sys.executable, str(APPS), "agent", str(port), *options],
            cwd=REPO_ROOT,
            stdout=stdout,
            env={**os.environ, "SERVICE_AUTH_TOKEN": TOKEN},
        )
        try:
            wait_until_listening(port, process, timeout_seconds=30, what="the agent")
            response = httpx.post(
                f"http://127.0.0.1:{port}/sessions/s-1/messages",
                json={"message": "hi"},
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            answer: Line = response.json()
        finally:
            process.terminate()
            process.wait(30)
    lines = [json.loads(line) for line in stdout_path.read_text().splitlines() if line.strip()]
    return answer, lines


def _metric_lines(lines: list[Line]) -> list[Line]:
    return [line for line in lines if "_aws" in line]


def _step_logs(lines: list[Line]) -> list[Line]:
    return [line for line in lines if line.get("message") == "agent step done"]


def test_the_agent_as_production_runs_it_writes_its_metric_and_log_lines(tmp_path: Path) -> None:
    answer, lines = _agent_output(tmp_path, None)
    assert answer["output"] == "ok" and answer["version"] == 1
    assert len(_metric_lines(lines)) == 1
    assert len(_step_logs(lines)) == 1
    assert any(line.get("logger") == "uvicorn.access" for line in lines)


def test_switching_off_metrics_leaves_the_log_lines(tmp_path: Path) -> None:
    answer, lines = _agent_output(tmp_path, "metrics")
    assert answer["version"] == 1
    assert _metric_lines(lines) == []
    assert len(_step_logs(lines)) == 1


def test_switching_off_logs_leaves_the_metric_line(tmp_path: Path) -> None:
    answer, lines = _agent_output(tmp_path, "logs")
    assert answer["version"] == 1
    assert len(_metric_lines(lines)) == 1
    assert [line for line in lines if "_aws" not in line] == []


def test_switching_off_the_step_answers_without_a_model_call(tmp_path: Path) -> None:
    answer, lines = _agent_output(tmp_path, "thread,step")
    # The fixed result, and no model call: no usage metric line.
    assert answer["output"] == "ok" and answer["iterations"] == 1
    assert _metric_lines(lines) == []
    assert len(_step_logs(lines)) == 1


def test_an_unknown_part_is_refused_by_name() -> None:
    result = subprocess.run(
        [sys.executable, str(APPS), "agent", "1", "--off", "thread,nope"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "no part nope" in result.stderr and "thread" in result.stderr


def _lambda_figures() -> Line:
    return {
        "bar_seconds": 0.4,
        "handler_import_seconds": {"runtime.a": 0.30, "runtime.b": 0.44},
        "handler_first_client_seconds": {"runtime.a": 0.72, "runtime.b": 0.60},
        "zipped_bytes": {"0123456789abcdef": 770_000},
    }


def test_the_lambda_targets_hold_the_import_and_the_first_client_to_the_same_bar() -> None:
    init, with_client, package = run_all.lambda_targets(_lambda_figures())
    # Each row names its own heaviest handler: b for the import, a with its first client.
    assert "(runtime.b)" in init.what and init.value == pytest.approx(0.44 / 0.4)
    assert "first boto3 client (runtime.a)" in with_client.what
    assert with_client.value == pytest.approx(0.72 / 0.4) and not with_client.met
    assert package.value == pytest.approx(0.77) and package.met


def test_the_service_targets_read_the_ratios_and_the_memory() -> None:
    figures = {
        "http": {"agent": {"requests_per_second_vs_hello": 0.85, "p99_vs_hello": 1.6}},
        "memory": {"with_idle_websockets_mb": 90.0},
    }
    rps, p99, memory = run_all.service_targets(figures)
    assert rps.met and rps.at_least  # 0.85 >= 0.8
    assert not p99.met  # 1.6 > 1.5
    assert memory.met and "| **missed** |" in p99.row()


def test_the_synth_targets_divide_by_the_floor_and_the_full_synth() -> None:
    medians = {
        "import aws_cdk (floor)": 0.5,
        "cdk synth, all envs": 18.0,
        "cdk synth, all envs, CDK_VALIDATION=false": 4.0,
        "cdk8s synth, all envs": 2.0,
        "test suite (make test's pytest)": 60.0,
    }
    synth, suite, suite_cdk = run_all.synth_targets({"median_seconds": medians})
    assert synth.value == pytest.approx(8.0) and synth.met  # exactly at the limit
    assert suite.value == pytest.approx(3.0) and suite.met
    assert suite_cdk.value == pytest.approx(60 / 18) and not suite_cdk.met
