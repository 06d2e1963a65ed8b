"""``python -m scaling``: the table, and errors that exit 2 with one line, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scaling.__main__ import main
from tests.scaling.test_simulate import ROOT, ecs_template

MANIFEST = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: w}
spec:
  minReplicaCount: 0
  maxReplicaCount: 2
  pollingInterval: 5
  cooldownPeriod: 30
  triggers:
    - type: aws-sqs-queue
      metadata: {queueLength: "1", activationQueueLength: "0", scaleOnInFlight: "true"}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "x.yaml").write_text("name: agent-x\n")
    (tmp_path / "cdk.out").mkdir()
    template = ecs_template(min_capacity=1, max_capacity=3)
    (tmp_path / "cdk.out" / "agent-x-container.template.json").write_text(json.dumps(template))
    (tmp_path / "dist" / "x" / "kubernetes").mkdir(parents=True)
    (tmp_path / "dist" / "x" / "kubernetes" / "agent-worker.k8s.yaml").write_text(MANIFEST)
    return tmp_path


def args(project: Path, *extra: str) -> list[str]:
    return [
        "--config-dir",
        str(project / "config"),
        "--cdk-out",
        str(project / "cdk.out"),
        "--k8s-dist",
        str(project / "dist"),
        *extra,
    ]


def test_prints_a_row_per_profile_and_autoscaler(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(args(project, "--tasks", "4", "--mean-seconds", "10", "--pod-startup", "2"))
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "profile", "autoscaler", "first", "new", "worker", "drain", "ideal", "ratio", "peak"
    ]  # fmt: skip
    assert lines[1].startswith("x") and "ECS target tracking" in lines[1]
    # The KEDA row is the hand-computed burst of test_keda_burst_by_hand.
    assert lines[2].split() == [
        "x", "KEDA", "ScaledObject", "2", "s", "(0:00:02)", "22", "s", "(0:00:22)",
        "22", "s", "(0:00:22)", "1.00", "2",
    ]  # fmt: skip


def test_override_changes_the_simulated_setting(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--tasks", "8", "--mean-seconds", "10", "--pod-startup", "2"]
    assert main(args(project, *common)) == 0
    before = capsys.readouterr().out.splitlines()[2]
    assert main(args(project, *common, "--override", "kubernetes.max_replicas=4")) == 0
    after = capsys.readouterr().out.splitlines()[2]
    assert before.split()[-1] == "2" and after.split()[-1] == "4"


def test_missing_cdk_out_says_run_make_synth(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*args(project), "--cdk-out", str(project / "nowhere")])
    assert code == 2
    assert "run make synth" in capsys.readouterr().err


def test_unknown_profile(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args(project, "--profile", "staging")) == 2
    assert "unknown profile staging; known: x" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["--tasks", "0"],
        ["--tasks", "many"],
        ["--tasks", "1.5"],
        ["--mean-seconds", "-1"],
        ["--mean-seconds", "nan"],
        ["--mean-seconds", "inf"],
        ["--arrival-seconds", "-5"],
        ["--concurrency", "0"],
        ["--distribution", "normal"],
    ],
)
def test_bad_numbers_exit_2(project: Path, extra: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args(project, *extra))
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("kubernetes.replicas=3", "unknown override"),
        ("kubernetes.max_replicas", "unknown override"),
        ("kubernetes.max_replicas=lots", "not a number"),
        ("kubernetes.max_replicas=0", "must be > 0"),
        ("container.backlog_per_task=nan", "must be > 0"),
    ],
)
def test_bad_overrides_exit_2(
    project: Path, override: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args(project, "--override", override)) == 2
    assert message in capsys.readouterr().err


def test_a_broken_template_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "cdk.out" / "agent-x-container.template.json").write_text("{")
    assert main(args(project)) == 2
    assert "not a readable CloudFormation template" in capsys.readouterr().err


def test_module_runs_without_traceback(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "scaling", "--cdk-out", str(tmp_path / "none")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr == f"error: {tmp_path / 'none'}/ does not exist: run make synth\n"
