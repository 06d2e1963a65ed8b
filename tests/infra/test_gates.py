"""Quality gates over the synthesized app: cdk-nag, CDK's template validation, checkov, cfn-lint.

Each gate is checked in both directions: the real app passes, and every acknowledgement or skip
is needed (remove it and exactly that finding comes back), so the exceptions cannot go stale.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from constructs import acknowledgements
from constructs.acknowledgements import collect_from_assembly
from tests.fakes.checkov import run_checkov
from tests.infra.conftest import REPO_ROOT, Synthesized, synthesize

pytestmark = pytest.mark.gate

CFN_LINT = REPO_ROOT / ".venv" / "bin" / "cfn-lint"


def _violations(report_file: Path) -> set[tuple[str, str]]:
    report = json.loads(report_file.read_text())
    return {
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    }


def test_synth_with_cdk_validation_has_no_unacknowledged_violation(synth: Synthesized) -> None:
    # The session's synthesis runs CDK's built-in CloudFormation validation next to cdk-nag.
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    assert [p for p in report["pluginReports"] if p.get("conclusion") != "success"] == []
    assert _violations(synth.outdir / "validation-report.json") == set()


def test_every_nag_acknowledgement_hides_a_real_finding(
    synth: Synthesized, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    class _Ignore:
        @staticmethod
        def of(_scope: Any) -> Any:
            return _Ignore()

        def acknowledge(self, *_rules: Any) -> None:
            return None

    monkeypatch.setattr(acknowledgements, "Validations", _Ignore)
    outdir = tmp_path_factory.mktemp("unacknowledged")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        synthesize(outdir, cfn_validation=False)
    findings = _violations(outdir / "validation-report.json")

    acknowledged = {
        (ack.rule, ack.path) for ack in collect_from_assembly(synth.outdir) if ack.kind == "nag"
    }
    assert acknowledged, "the app should acknowledge at least the X-Ray wildcard"
    # A finding sits on the L1 resource below the construct that acknowledges it.
    found = {(rule, path.partition("/")[2]) for rule, path in findings}
    unneeded = {
        (rule, path)
        for rule, path in acknowledged
        if not any(r == rule and (p == path or p.startswith(path + "/")) for r, p in found)
    }
    uncovered = {
        (rule, path)
        for rule, path in found
        if not any(r == rule and (path == p or path.startswith(p + "/")) for r, p in acknowledged)
    }
    assert unneeded == set(), "acknowledgements whose rule no longer fires: remove them"
    assert uncovered == set(), "findings that appear only because acknowledgements were removed"


def _template_files(outdir: Path) -> list[Path]:
    files = sorted(outdir.glob("*.template.json"))
    assert files, f"no templates in {outdir}"
    return files


def test_checkov_passes_and_every_skip_is_needed(synth: Synthesized, tmp_path: Path) -> None:
    # The same templates without their checkov skips, checked alongside the real ones.
    for template_file in _template_files(synth.outdir):
        template = json.loads(template_file.read_text())
        for resource in template["Resources"].values():
            resource.get("Metadata", {}).pop("checkov", None)
        (tmp_path / template_file.name).write_text(json.dumps(template))
    real, stripped = run_checkov("cloudformation", ["-d", str(synth.outdir)], ["-d", str(tmp_path)])
    assert real["summary"]["failed"] == 0, [
        (c["check_id"], c["resource"]) for c in real["results"]["failed_checks"]
    ]
    skipped = {(c["check_id"], c["resource"]) for c in real["results"]["skipped_checks"]}
    for check in real["results"]["skipped_checks"]:
        assert len(check["check_result"].get("suppress_comment", "")) >= 25, check["check_id"]

    # Without the skips, exactly the skipped checks fail.
    failed = {(c["check_id"], c["resource"]) for c in stripped["results"]["failed_checks"]}
    assert failed == skipped


def test_cfn_lint_is_clean(synth: Synthesized, tmp_path: Path) -> None:
    files = [str(f) for f in _template_files(synth.outdir)]
    # W3005 (redundant DependsOn) is produced by CDK itself; nothing else is ignored. Two
    # processes, each half of the templates: cfn-lint uses one core.
    runs = [
        subprocess.Popen(
            [str(CFN_LINT), "--ignore-checks", "W3005", "--", *half],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for half in (files[0::2], files[1::2])
    ]
    for run in runs:
        output, _ = run.communicate(timeout=600)
        assert run.returncode == 0, output


def test_checkov_and_cfn_lint_would_catch_a_bad_template(tmp_path: Path) -> None:
    # The gates are only worth something if they fail on a bad resource.
    bad = {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"NoSuchProperty": True}},
        }
    }
    (tmp_path / "bad.template.json").write_text(json.dumps(bad))
    [report] = run_checkov("cloudformation", ["-d", str(tmp_path)])
    assert report["summary"]["failed"] > 0
    lint = subprocess.run(
        [str(CFN_LINT), "--", str(tmp_path / "bad.template.json")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert lint.returncode != 0
