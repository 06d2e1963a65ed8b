"""The receiver CLI, run the way a receiver runs it: a subprocess, ``python -m``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.webhooks import signing

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = signing.generate_secret()
BODY = b'{"task_id": "t-1", "status": "succeeded"}'


def run_cli(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, "-m", "runtime.webhooks.verify", *args],
        cwd=REPO_ROOT,
        input=stdin.decode(),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=30,
        check=False,
    )
    return completed


def header_args(headers: dict[str, str]) -> list[str]:
    return [arg for name, value in headers.items() for arg in ("--header", f"{name}: {value}")]


@pytest.fixture
def body_file(tmp_path: Path) -> Path:
    path = tmp_path / "body.json"
    path.write_bytes(BODY)
    return path


def test_valid_request_exits_0(body_file: Path) -> None:
    headers = signing.signed_headers("msg_cli", int(time.time()), BODY, [SECRET])
    result = run_cli("--secret", SECRET, "--body-file", str(body_file), *header_args(headers))
    assert (result.returncode, result.stdout, result.stderr) == (0, "valid: msg_cli\n", "")


def test_tampered_body_exits_1_with_the_reason(tmp_path: Path) -> None:
    headers = signing.signed_headers("msg_cli", int(time.time()), BODY, [SECRET])
    tampered = tmp_path / "tampered.json"
    tampered.write_bytes(BODY.replace(b"succeeded", b"failed"))
    result = run_cli("--secret", SECRET, "--body-file", str(tampered), *header_args(headers))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("invalid: no v1 signature in webhook-signature matches")
    assert SECRET.removeprefix("whsec_") not in result.stderr


def test_secret_env_headers_file_and_stdin_body(tmp_path: Path) -> None:
    headers = signing.signed_headers("msg_env", int(time.time()), BODY, [SECRET])
    headers_file = tmp_path / "headers.txt"
    headers_file.write_text(
        "# captured from the receiver log\n"
        + "".join(f"{name.title()}: {value}\n" for name, value in headers.items())
        + "\nContent-Type: application/json\n",
        encoding="utf-8",
    )
    result = run_cli(
        "--secret-env",
        "RECEIVER_SECRET",
        "--body-file",
        "-",
        "--headers-file",
        str(headers_file),
        stdin=BODY,
        env={"RECEIVER_SECRET": SECRET},
    )
    assert (result.returncode, result.stdout) == (0, "valid: msg_env\n")


def test_rotation_secrets_and_now_replay_a_captured_request(body_file: Path) -> None:
    captured_at = 1_700_000_000
    headers = signing.signed_headers("msg_old", captured_at, BODY, [SECRET])
    other = signing.generate_secret()
    args = ["--secret", other, "--secret", SECRET, "--body-file", str(body_file)]
    stale = run_cli(*args, *header_args(headers))
    assert stale.returncode == 1
    assert "s in the past; the tolerance is 300 s" in stale.stderr
    replayed = run_cli(*args, *header_args(headers), "--now", str(captured_at + 30))
    assert (replayed.returncode, replayed.stdout) == (0, "valid: msg_old\n")
    narrow = run_cli(
        *args, *header_args(headers), "--now", str(captured_at + 30), "--tolerance", "10"
    )
    assert narrow.returncode == 1
    assert "the tolerance is 10 s" in narrow.stderr


def test_github_style(body_file: Path) -> None:
    secret = "It's a Secret to Everybody"
    signature = signing.github_signature(BODY, secret)
    result = run_cli(
        "--style",
        "github",
        "--secret",
        secret,
        "--body-file",
        str(body_file),
        "--header",
        f"X-Hub-Signature-256: {signature}",
        "--header",
        "X-GitHub-Delivery: d-42",
    )
    assert (result.returncode, result.stdout) == (0, "valid: d-42\n")
    wrong = run_cli(
        "--style",
        "github",
        "--secret",
        "nope",
        "--body-file",
        str(body_file),
        "--header",
        f"X-Hub-Signature-256: {signature}",
    )
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("invalid: X-Hub-Signature-256 does not match")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--body-file", "-"], {}, "give at least one --secret or --secret-env"),
        (["--secret-env", "UNSET_WEBHOOK_SECRET_X", "--body-file", "-"], {}, "unset or empty"),
        (
            ["--secret", "whsec_***", "--body-file", "-", "--header", "webhook-id: m"],
            {},
            "not valid base64",
        ),
        (["--secret", SECRET, "--body-file", "-", "--header", "no colon"], {}, "Name: value"),
        (["--secret", SECRET, "--body-file", "/nonexistent/body"], {}, "cannot read --body-file"),
        (["--secret", SECRET], {}, "--body-file"),
        (["--secret", SECRET, "--body-file", "-", "--style", "svix"], {}, "invalid choice"),
    ],
)
def test_usage_errors_exit_2(args: list[str], env: dict[str, str], message: str) -> None:
    result = run_cli(*args, env=env)
    assert result.returncode == 2
    assert message in result.stderr
