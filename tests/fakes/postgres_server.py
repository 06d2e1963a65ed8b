"""A real PostgreSQL with pgvector on 127.0.0.1, from the ``pgserver`` PyPI package's binaries.

pgserver bundles PostgreSQL 16 and pgvector; its own ``get_server`` is not used because it
listens on a Unix socket only (the runtime connects by ``postgresql://host:port/db`` URL, as to
Aurora), keeps lock and PID files outside the data directory, and as root adds a system user.
Here the bundled ``initdb`` and ``postgres`` run directly, as the redis-server fake runs Redis:

* a fresh data directory in a temporary folder, removed afterwards;
* TCP on 127.0.0.1 with a free port, password (SCRAM) authentication, like Aurora;
* no durability (``fsync=off``): nothing here must survive a crash, and start-up stays < 1 s;
* PostgreSQL refuses to run as root, so under root (CI) both run as ``nobody``; when ``nobody``
  cannot reach the virtualenv (a clone under ``/root``, mode 700), the binaries (34 MB) are
  copied into the temporary folder first;
* shutdown is "fast" (SIGINT): open client connections are cut, not waited for.

Without pgserver installed the tests that need it fail in CI (``CI`` is set) and are skipped
elsewhere with the command that installs it.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fakes.ports import free_port

INSTALL_HINT = ".venv/bin/pip install -r requirements-dev.txt   (pgserver)"
# PostgreSQL will not run as root; this account exists on every Debian system.
UNPRIVILEGED_USER = "nobody"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def url(self) -> str:
        """The server as ``MEMORY_DATABASE_URL`` names it: no credentials."""
        return f"postgresql://{self.host}:{self.port}/{self.database}"

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, user=self.user, password=self.password, **kwargs)


def pgserver_bin_dir() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        message = f"pgserver is not installed: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Path(spec.origin).parent / "pginstall" / "bin"


def _reachable_by_others(path: Path) -> bool:
    """Whether ``path`` and every folder above it let other users through (their ``x`` bit)."""
    resolved = path.resolve()
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in (resolved, *resolved.parents))


def _copy_binaries(bin_dir: Path, target: Path) -> Path:
    """The install copied under ``target`` in the same layout; returns the copy's ``bin``.

    PostgreSQL finds lib/ and share/ relative to its binaries, and the wheel's binaries find the
    vendored libpq at ``$ORIGIN/../../../pgserver.libs``: both relations must survive the copy.
    """
    install = bin_dir.parent  # site-packages/pgserver/pginstall
    site_packages = install.parent.parent
    shutil.copytree(install, target / "pgserver" / "pginstall")
    libs = site_packages / "pgserver.libs"
    if libs.is_dir():
        shutil.copytree(libs, target / "pgserver.libs")
    return target / "pgserver" / "pginstall" / "bin"


def _run_as() -> dict[str, Any]:
    """``subprocess`` arguments that drop root to :data:`UNPRIVILEGED_USER`; nothing otherwise."""
    if os.geteuid() != 0:
        return {}
    account = pwd.getpwnam(UNPRIVILEGED_USER)
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


@contextmanager
def running_postgres(
    password: str = "test-memory-password",  # noqa: S107 - a throwaway local server
    *,
    start_timeout_seconds: float = 20.0,
) -> Iterator[PostgresServer]:
    bin_dir = pgserver_bin_dir()
    run_as = _run_as()
    parent = Path(tempfile.gettempdir())
    if run_as and not _reachable_by_others(parent):
        # A TMPDIR under root's home would hide the data directory from the server's user.
        parent = Path("/tmp")
    workdir = Path(tempfile.mkdtemp(prefix="agent-pg-", dir=parent))
    process: subprocess.Popen[bytes] | None = None
    try:
        if run_as:
            os.chown(workdir, run_as["user"], run_as["group"])
            if not _reachable_by_others(bin_dir):
                bin_dir = _copy_binaries(bin_dir, workdir / "pg")
        password_file = workdir / "password"
        password_file.write_text(password + "\n")
        if run_as:
            os.chown(password_file, run_as["user"], run_as["group"])
        data = workdir / "data"
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                "postgres",
                "--auth",
                "scram-sha-256",
                f"--pwfile={password_file}",
                "--encoding",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            cwd=workdir,
            check=False,
            **run_as,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}): {initdb.stderr[-2000:]}")
        password_file.unlink()

        port = free_port()
        log_path = workdir / "postgres.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    # The Unix socket goes in the work folder, not /var/run/postgresql.
                    "-k",
                    str(workdir),
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=workdir,
                **run_as,
            )
        server = PostgresServer("127.0.0.1", port, "postgres", password, "postgres")
        _wait_until_ready(server, process, log_path, start_timeout_seconds)
        yield server
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_until_ready(
    server: PostgresServer,
    process: subprocess.Popen[bytes],
    log_path: Path,
    timeout_seconds: float,
) -> None:
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            server.connect(connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                log = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"PostgreSQL did not start on port {server.port}; its log ends:\n{log}"
                ) from None
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # SIGINT is PostgreSQL's "fast" shutdown: it disconnects clients instead of waiting for them
    # (SIGTERM's "smart" shutdown would wait on any connection a test left open).
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
