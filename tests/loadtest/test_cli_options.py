"""Bad options are refused before anything starts, with the option's name and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest import cli

EXECUTE_API = "https://abc123.execute-api.eu-west-1.amazonaws.com/v1"


@pytest.fixture(autouse=True)
def no_secrets_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (cli.TOKEN_ENV, cli.API_KEY_ENV, cli.CALLBACK_SECRET_ENV, cli.INBOUND_SECRET_ENV):
        monkeypatch.delenv(name, raising=False)


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["http", "--users", "0"], "argument --users: must be between 1 and 5000, got 0"),
        (["http", "--max-requests", "0"], "argument --max-requests: must be between 1"),
        (["http", "--run-time", "2h"], "argument --run-time: must be between 1s and 60m"),
        (["http", "--run-time", "soon"], "must be a duration like 20s, 2m or 1h"),
        (["http", "--timeout", "0"], "argument --timeout: must be between 0.1 s and 300 s"),
        (["http", "--spawn-rate", "0"], "argument --spawn-rate: must be between 0.01 and 10000"),
        (["http", "--host", "ftp://agent.example.com", "--token", "t"], "--host must be an http"),
        (["http", "--host", "agent.example.com", "--token", "t"], "--host must be an http"),
        (
            ["http", "--host", "https://agent.example.com"],
            f"--host needs the service's bearer token: set {cli.TOKEN_ENV}",
        ),
        (
            ["http", "--host", "http://agent.example.com", "--token", "t"],
            "--host must be https:// for a host other than 127.0.0.1",
        ),
        (
            ["ws", "--host", "https://u:p@agent.example.com", "--token", "t"],
            "--host must not carry credentials",
        ),
        (
            ["http", "--host", "https://agent.example.com", "--token", "t", "--workers", "3"],
            "--workers sets up local targets; it does not apply with --host",
        ),
        (
            ["all", "--host", "https://agent.example.com", "--token", "t"],
            "'all' with --host needs --webhook-host too",
        ),
        (["http", "--webhook-host", EXECUTE_API], "--webhook-host is for 'all' with --host"),
        (
            ["webhook", "--callback-url", "https://tunnel.example.com/cb"],
            "--callback-url is for a deployed webhook API (--host)",
        ),
        (
            ["webhook", "--host", EXECUTE_API, "--webhook-auth", "api-key"],
            f"--webhook-auth api-key needs the key: set {cli.API_KEY_ENV}",
        ),
        (
            ["webhook", "--host", "https://hooks.example.com", "--webhook-auth", "iam"],
            "--webhook-auth iam needs --region",
        ),
        (
            [
                "webhook",
                "--host",
                EXECUTE_API,
                "--webhook-auth",
                "none",
                "--callback-url",
                "http://tunnel.example.com/cb",
                "--callback-secret",
                "whsec_x",
            ],
            "--callback-url must be https://",
        ),
        (
            [
                "webhook",
                "--host",
                EXECUTE_API,
                "--webhook-auth",
                "none",
                "--callback-url",
                "https://tunnel.example.com/cb",
            ],
            f"--callback-url needs the callback signing secret to verify callbacks: set "
            f"{cli.CALLBACK_SECRET_ENV}",
        ),
        (
            [
                "webhook",
                "--host",
                EXECUTE_API,
                "--webhook-auth",
                "none",
                "--inbound-signature",
                "github",
            ],
            f"--inbound-signature github needs the source's secret: set {cli.INBOUND_SECRET_ENV}",
        ),
    ],
)
def test_bad_options_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in refused(argv, capsys)


def test_iam_without_credentials_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An empty credential chain: no variables, no profile files, no instance metadata.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    assert "--webhook-auth iam found no AWS credentials" in refused(
        ["webhook", "--host", EXECUTE_API], capsys
    )


def plan(argv: list[str]) -> cli.Plan:
    parser = cli.build_parser()
    return cli.plan_from_args(parser, parser.parse_args(argv))


def test_a_deployed_webhook_api_without_a_callback_url_is_polled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    webhook = plan(["webhook", "--host", EXECUTE_API, "--out-dir", str(tmp_path)])
    assert webhook.webhook_api is not None and webhook.service is None
    assert webhook.webhook.mode == "poll"
    assert (webhook.webhook.api_auth, webhook.webhook.aws_region) == ("iam", "eu-west-1")


def test_all_against_deployments_targets_each_url(tmp_path: Path) -> None:
    everything = plan(
        ["all", "--host", "https://agent.example.com", "--token", "t", "--webhook-host",
         EXECUTE_API, "--webhook-auth", "api-key", "--api-key", "k", "--out-dir", str(tmp_path)]
    )  # fmt: skip
    assert everything.scenarios == ("http", "ws", "webhook")
    assert everything.service is not None and everything.service.base_url == (
        "https://agent.example.com"
    )
    assert everything.webhook_api is not None and everything.webhook_api.base_url == EXECUTE_API


def test_local_runs_default_to_small_bounds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A token exported for a deployment is not used against the local service.
    monkeypatch.setenv(cli.TOKEN_ENV, "deployment-token")
    local = plan(["http", "--out-dir", str(tmp_path)])
    assert (local.service, local.webhook_api, local.token) == (None, None, None)
    assert (local.run_time_seconds, local.max_requests) == (20.0, 10_000)


def test_the_token_variable_stands_in_for_the_option_with_a_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(cli.TOKEN_ENV, "deployment-token")
    remote = plan(["ws", "--host", "https://agent.example.com", "--out-dir", str(tmp_path)])
    assert remote.token == "deployment-token"
