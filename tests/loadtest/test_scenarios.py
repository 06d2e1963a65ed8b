"""Each scenario through the real CLI (a subprocess, as a user runs it) against real targets.

The six runs start together and are awaited together: each spends most of its time starting its
local targets and locust, so running them side by side keeps the module at the duration of the
slowest. Every assertion is on a run's ``--json-out`` document, its exit status and output.

Under pytest-xdist (``make test``) the module is one ``xdist_group``: its tests share the runs,
so they run on one worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtest.cli import EXIT_ERRORS
from tests.fakes.http_server import LoopbackServer, QuietHandler, serving
from tests.loadtest.cli_runs import run_side_by_side

pytestmark = pytest.mark.xdist_group("loadtest-runs")
HTTP_STEP = "POST /sessions/{id}/messages"


class _Recorder(LoopbackServer):
    """A server that answers every POST the same way and remembers the paths."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers
        self.paths: list[str] = []
        super().__init__(_RecordingHandler)


class _RecordingHandler(QuietHandler):
    server: _Recorder

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.paths.append(self.path)
        self.send_response(self.server.status)
        for name, value in self.server.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def redirecting_deployment() -> Iterator[tuple[_Recorder, _Recorder]]:
    """A "deployed service" redirecting every request to another server on this machine."""
    elsewhere = _Recorder(200, {})
    redirecting = _Recorder(307, {"Location": f"{elsewhere.url}/sessions/x/messages"})
    with serving(redirecting, elsewhere):
        yield redirecting, elsewhere


def run_all(base: Path) -> dict[str, Any]:
    """Every run of this module, side by side."""
    with redirecting_deployment() as (redirecting, elsewhere):
        commands = {
            "http": ["http", "--users", "3", "--run-time", "2s"],
            "ws": ["ws", "--users", "3", "--run-time", "2s", "--steps-per-session", "3"],
            "webhook": ["webhook", "--users", "3", "--run-time", "3s", "--workers", "1"],
            "max-requests": ["http", "--users", "3", "--run-time", "60s", "--max-requests", "25"],
            "wrong-token": [
                "http", "--users", "2", "--run-time", "30s", "--max-requests", "20",
                "--token", "not-the-service-token-0123456789",
            ],
            "remote-redirect": [
                "http", "--host", redirecting.url, "--token", "remote-token",
                "--users", "2", "--run-time", "30s", "--max-requests", "10",
            ],
        }  # fmt: skip
        runs = run_side_by_side(base, {name: (argv, None) for name, argv in commands.items()})
        return {
            "runs": runs,
            "redirecting": {"url": redirecting.url, "paths": redirecting.paths},
            "elsewhere_paths": elsewhere.paths,
        }


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_all(tmp_path_factory.mktemp("loadtest"))


def scenario_of(results: dict[str, Any], name: str, *, returncode: int) -> dict[str, Any]:
    """The one scenario of run ``name``, after checking how the CLI exited."""
    run = results["runs"][name]
    assert run["returncode"] == returncode, run["output"]
    assert run["document"] is not None, run["output"]
    scenarios: list[dict[str, Any]] = run["document"]["scenarios"]
    assert len(scenarios) == 1
    return scenarios[0]


def rows_by_name(scenario: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in scenario["rows"]}


def assert_percentiles_ordered(row: dict[str, Any]) -> None:
    assert row["p50_ms"] is not None
    # max is exact; the percentiles are locust's buckets (up to 100 ms wide past 1 s).
    assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"] + 100


def clean_local_scenario(
    results: dict[str, Any], name: str, run_time_seconds: float
) -> dict[str, Any]:
    scenario = scenario_of(results, name, returncode=0)
    assert scenario["local"] is True
    # Local targets are on the loopback interface, and nowhere else.
    assert scenario["target"].startswith("http://127.0.0.1:")
    assert scenario["errors"] == 0, scenario["failures"]
    # Sent for --run-time from the users' start (a little tolerance for timer granularity).
    assert scenario["stopped_by"] == "run-time"
    assert run_time_seconds - 0.2 <= scenario["send_seconds"] < run_time_seconds + 5
    return scenario


def test_http_scenario_reports_throughput_and_latency(results: dict[str, Any]) -> None:
    scenario = clean_local_scenario(results, "http", 2)
    row = rows_by_name(scenario)[HTTP_STEP]
    assert row["requests"] > 0 and row["requests_per_second"] > 0
    assert_percentiles_ordered(row)
    assert f"| POST | {HTTP_STEP} |" in results["runs"]["http"]["output"]


def test_ws_scenario_times_steps_to_their_final_frame(results: dict[str, Any]) -> None:
    scenario = clean_local_scenario(results, "ws", 2)
    rows = rows_by_name(scenario)
    step = rows["step (send -> final frame)"]
    assert step["requests"] > 0
    assert_percentiles_ordered(step)
    # A new WebSocket every 3 steps.
    assert rows["connect /agent/{id}"]["requests"] >= step["requests"] // 3
    assert scenario["ws_frames"] >= step["requests"] and scenario["frames_per_second"] > 0


def test_webhook_scenario_times_202_to_verified_callback(results: dict[str, Any]) -> None:
    scenario = clean_local_scenario(results, "webhook", 3)
    rows = rows_by_name(scenario)
    accepted = rows["POST /webhook"]["requests"]
    callbacks = rows["202 -> callback"]
    assert accepted > 0
    assert_percentiles_ordered(callbacks)
    assert callbacks["requests"] == accepted
    webhook = scenario["webhook"]
    assert webhook["accepted"] == accepted
    assert webhook["callbacks_verified"] == accepted
    assert (webhook["callbacks_missing"], webhook["callbacks_rejected"]) == (0, 0)


def test_a_run_stops_at_max_requests(results: dict[str, Any]) -> None:
    scenario = scenario_of(results, "max-requests", returncode=0)
    assert scenario["stopped_by"] == "max-requests"
    assert scenario["requests_sent"] == 25
    assert rows_by_name(scenario)[HTTP_STEP]["requests"] == 25
    # Long before --run-time (60 s).
    assert scenario["send_seconds"] < 30


def test_a_wrong_token_is_reported_as_errors(results: dict[str, Any]) -> None:
    scenario = scenario_of(results, "wrong-token", returncode=EXIT_ERRORS)
    row = rows_by_name(scenario)[HTTP_STEP]
    assert row["requests"] == 20 and row["failures"] == 20
    assert scenario["errors"] == 20 == results["runs"]["wrong-token"]["document"]["errors"]
    [failure] = scenario["failures"]
    assert failure["error"] == "HTTP 401 unauthorized" and failure["occurrences"] == 20
    assert "Errors: 20" in results["runs"]["wrong-token"]["output"]


def test_a_remote_run_sends_only_to_its_host_and_never_follows_redirects(
    results: dict[str, Any],
) -> None:
    scenario = scenario_of(results, "remote-redirect", returncode=EXIT_ERRORS)
    assert scenario["local"] is False
    assert scenario["target"] == results["redirecting"]["url"]
    assert len(results["redirecting"]["paths"]) == 10
    assert results["elsewhere_paths"] == []
    [failure] = scenario["failures"]
    assert failure["error"] == "HTTP 307" and failure["occurrences"] == 10
