"""Local ports for the servers the tests and benchmarks start (Redis, PostgreSQL, uvicorn)."""

from __future__ import annotations

import socket
import subprocess
import time

# One implementation, the load scenarios' (which cannot import the tests).
from loadtest.local import free_port as free_port


def wait_until_listening(
    port: int, process: subprocess.Popen[bytes], *, timeout_seconds: float, what: str
) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; fail if ``process`` exits first."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start on port {port}") from None
            time.sleep(0.02)
