"""``python -m runtime.service``: the health check, the worker hand-off, start-up errors, logs."""

from __future__ import annotations

import gc
import io
import json
import logging
import subprocess
import sys
import threading
import time
import types
from collections.abc import Sequence
from pathlib import Path

import pytest

from runtime.service.__main__ import EXIT_CONFIG_ERROR, main
from runtime.service.app import create_app
from runtime.service.server import (
    GIL_SWITCH_INTERVAL_SECONDS,
    DrainingServer,
    JsonFormatter,
    lean_log_records,
    production_server,
    uvicorn_config,
)
from tests.fakes.memory_store import InMemorySessionStore
from tests.service.conftest import (
    RUNTIME_ENV,
    script,
    scripted_dependencies,
    serve,
    service_settings,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_healthcheck_exits_0_when_the_service_answers(store: InMemorySessionStore) -> None:
    with serve(scripted_dependencies(script(), store)) as service:
        code = main(["healthcheck"], environ={"SERVICE_PORT": str(service.port)})

    assert code == 0


def test_healthcheck_exits_1_when_nothing_listens(
    store: InMemorySessionStore, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(scripted_dependencies(script(), store)) as service:
        port = service.port
    # The service has stopped: its port refuses connections.

    code = main(["healthcheck", "--timeout", "1"], environ={"SERVICE_PORT": str(port)})

    assert code == 1
    assert capsys.readouterr().err.startswith(f"unhealthy: http://127.0.0.1:{port}/healthz:")


def test_worker_hands_its_arguments_to_the_queue_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[Sequence[str] | None] = []

    def worker_main(argv: Sequence[str] | None = None) -> int:
        received.append(argv)
        return 7

    fake = types.ModuleType("runtime.queue_worker")
    fake.main = worker_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "runtime.queue_worker", fake)

    assert main(["worker", "--once", "tasks"]) == 7
    assert received == [["--once", "tasks"]]


def test_serve_refuses_to_start_on_a_bad_environment_with_one_json_line() -> None:
    env = {**RUNTIME_ENV, "SERVICE_DRAIN_SECONDS": "40", "PATH": ""}
    del env["LLM_MODEL_ID"]

    run = subprocess.run(
        [sys.executable, "-m", "runtime.service", "serve"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert run.returncode == EXIT_CONFIG_ERROR, run.stderr
    (line,) = run.stdout.splitlines()
    record = json.loads(line)
    assert (record["level"], record["message"]) == ("ERROR", "invalid configuration")
    assert "LLM_MODEL_ID: Field required" in record["reason"]
    assert (
        "SERVICE_DRAIN_SECONDS (40) must be below SERVICE_STOP_TIMEOUT_SECONDS" in record["reason"]
    )


def test_json_log_records_carry_extras_and_access_fields() -> None:
    formatter = JsonFormatter()
    step = logging.LogRecord(
        "runtime.service", logging.INFO, __file__, 1, "agent step done", None, None
    )
    step.session_id = "s-1"
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("10.0.0.7:5123", "POST", "/sessions/s-1/messages", "1.1", 200),
        None,
    )
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord(
            "runtime.service", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )

    step_entry = json.loads(formatter.format(step))
    access_entry = json.loads(formatter.format(access))
    failed_entry = json.loads(formatter.format(failed))

    assert step_entry["message"] == "agent step done"
    assert step_entry["session_id"] == "s-1"
    assert step_entry["level"] == "INFO"
    assert access_entry["message"] == '10.0.0.7:5123 - "POST /sessions/s-1/messages HTTP/1.1" 200'
    assert (access_entry["method"], access_entry["path"], access_entry["status"]) == (
        "POST",
        "/sessions/s-1/messages",
        200,
    )
    assert "ValueError: boom" in failed_entry["exception"]


def test_lean_log_records_leave_the_json_lines_as_they_were(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Restored after the test: lean_log_records changes the whole process's records.
    monkeypatch.setattr(logging, "_srcfile", logging._srcfile)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.lean_log_records")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.info("agent step done", extra={"session_id": "s-1", "tools": ["calculator"]})
        lean_log_records()
        logger.info("agent step done", extra={"session_id": "s-1", "tools": ["calculator"]})
    finally:
        logger.removeHandler(handler)

    before, after = (json.loads(line) for line in buffer.getvalue().splitlines())
    before.pop("time")
    after.pop("time")
    assert after == before
    assert logging._srcfile is None


@pytest.mark.parametrize("freeze_heap", [True, False])
def test_a_server_freezes_its_heap_before_it_listens_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, store: InMemorySessionStore, freeze_heap: bool
) -> None:
    settings = service_settings()
    app = create_app(deps=scripted_dependencies(script(), store), settings=settings)
    config = uvicorn_config(app, settings, host="127.0.0.1", port=0, configure_logging=False)
    server = DrainingServer(config, freeze_heap=freeze_heap)
    # How many sockets were listening at each freeze (gc.freeze itself is not called: the test
    # process's heap stays collectable).
    listening_at_freeze: list[int] = []
    monkeypatch.setattr(
        gc, "freeze", lambda: listening_at_freeze.append(len(getattr(server, "servers", ())))
    )
    _started_and_stopped(server)
    assert listening_at_freeze == ([0] if freeze_heap else [])


def _started_and_stopped(server: DrainingServer) -> None:
    """Run ``server`` in a thread until it has started, then stop it."""
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.started
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_production_server_shortens_the_gil_switch_interval_and_freezes_its_heap(
    monkeypatch: pytest.MonkeyPatch, store: InMemorySessionStore
) -> None:
    settings = service_settings()
    app = create_app(deps=scripted_dependencies(script(), store), settings=settings)
    config = uvicorn_config(app, settings, host="127.0.0.1", port=0, configure_logging=False)
    # Recorded, not applied: the test process keeps its own interval and collectable heap.
    intervals: list[float] = []
    frozen: list[bool] = []
    monkeypatch.setattr(sys, "setswitchinterval", intervals.append)
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    _started_and_stopped(production_server(config))
    assert intervals == [GIL_SWITCH_INTERVAL_SECONDS] and frozen == [True]
    assert GIL_SWITCH_INTERVAL_SECONDS < 0.005  # shorter than Python's default

    intervals.clear()
    _started_and_stopped(
        DrainingServer(
            uvicorn_config(app, settings, host="127.0.0.1", port=0, configure_logging=False)
        )
    )
    assert intervals == []


@pytest.mark.parametrize("interval", [0, -1, 0.5])
def test_a_switch_interval_out_of_range_is_refused(
    store: InMemorySessionStore, interval: float
) -> None:
    settings = service_settings()
    app = create_app(deps=scripted_dependencies(script(), store), settings=settings)
    config = uvicorn_config(app, settings, host="127.0.0.1", port=0, configure_logging=False)
    with pytest.raises(ValueError, match="gil_switch_interval must be in"):
        DrainingServer(config, gil_switch_interval=interval)
