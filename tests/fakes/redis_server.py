"""A real ``redis-server`` (Debian's package) on 127.0.0.1, started and stopped by the tests.

No persistence (nothing written to disk), a free port, a password like ElastiCache's AUTH token.
``make setup`` and ``.ci/run`` install the package; without it the tests that need Redis fail
in CI (``CI`` is set) and are skipped elsewhere with the command that installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests.fakes.ports import free_port, wait_until_listening

INSTALL_HINT = "sudo apt-get install -y redis-server   (or: make setup)"


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    password: str

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        message = f"redis-server is not installed: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


@contextmanager
def running_redis(password: str = "test-auth-token") -> Iterator[RedisServer]:  # noqa: S107 - a throwaway local server
    binary = redis_server_binary()
    port = free_port()
    arguments = ["--port", str(port), "--bind", "127.0.0.1", "--requirepass", password]
    # No persistence: nothing is written to disk, and shutdown is instant.
    arguments += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    process = subprocess.Popen(
        [binary, *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_listening(port, process, timeout_seconds=10, what="redis-server")
        yield RedisServer("127.0.0.1", port, password)
    finally:
        process.terminate()
        process.wait(10)
