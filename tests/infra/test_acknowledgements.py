"""The acknowledgement allow-list: the app's exceptions equal quality/acknowledgements.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import Acknowledgment, App, CfnResource, Stack, Validations

from constructs import Construct
from constructs.acknowledgements import (
    Acknowledged,
    AcknowledgementError,
    acknowledge_nag,
    audit,
    check_reason,
    collect_acknowledgements,
    collect_from_assembly,
    load_allowlist,
    skip_checkov,
)
from tests.infra.conftest import REPO_ROOT, Synthesized, cdk_json_context

ALLOWLIST = REPO_ROOT / "quality" / "acknowledgements.yaml"
GOOD_REASON = "the queue is encrypted with the stack's own KMS key, not SSE-SQS"


def test_app_acknowledgements_match_the_allowlist(synth: Synthesized) -> None:
    assert audit(collect_from_assembly(synth.outdir), load_allowlist(ALLOWLIST)) == []


def test_the_assembly_holds_the_same_acknowledgements_as_the_construct_tree(
    tmp_path: Path,
) -> None:
    # One config's app (the whole app's tree walk through jsii is what the reader avoids).
    from config.loader import load_config
    from stacks.composition import build_app

    app = App(outdir=str(tmp_path), context={**cdk_json_context(), "aws:cdk:bundling-stacks": []})
    build_app(app, [load_config("dev")])
    app.synth()
    from_tree = collect_acknowledgements(app)
    assert {a.kind for a in from_tree} == {"nag", "checkov"}
    assert collect_from_assembly(tmp_path) == from_tree


@pytest.mark.parametrize("reason", ["", "   ", "false positive", "n/a", "too short"])
def test_a_reason_that_says_nothing_is_refused(reason: str) -> None:
    with pytest.raises(AcknowledgementError, match=r"AwsSolutions-SQS4: the reason must say why"):
        check_reason("AwsSolutions-SQS4", reason)


def _tiny_app() -> tuple[App, Construct, CfnResource]:
    app = App()
    stack = Stack(app, "s")
    holder = Construct(stack, "Holder")
    resource = CfnResource(holder, "Resource", type="AWS::SQS::Queue")
    return app, holder, resource


def test_helpers_refuse_an_empty_reason() -> None:
    _, holder, resource = _tiny_app()
    with pytest.raises(AcknowledgementError, match="AwsSolutions-SQS4"):
        acknowledge_nag(holder, "AwsSolutions-SQS4", "")
    with pytest.raises(AcknowledgementError, match="CKV_AWS_27"):
        skip_checkov(resource, "CKV_AWS_27", "")


def test_audit_fails_an_empty_reason_made_through_cdk_directly() -> None:
    # cdk-nag v3 itself accepts this; the audit is what refuses it.
    app, holder, _ = _tiny_app()
    Validations.of(holder).acknowledge(Acknowledgment(id="AwsSolutions-SQS4", reason=""))
    listed = {Acknowledged("nag", "Holder", "AwsSolutions-SQS4", "")}
    problems = audit(collect_acknowledgements(app), listed)
    assert any("Holder: AwsSolutions-SQS4: the reason must say why" in p for p in problems)


def test_audit_fails_unlisted_and_stale_entries() -> None:
    app, holder, resource = _tiny_app()
    acknowledge_nag(holder, "AwsSolutions-SQS4", GOOD_REASON)
    skip_checkov(resource, "CKV_AWS_27", GOOD_REASON)
    stale = Acknowledged("nag", "Gone", "AwsSolutions-IAM4", GOOD_REASON)
    problems = audit(collect_acknowledgements(app), {stale})
    assert "nag Holder AwsSolutions-SQS4: not in the allow-list with this exact reason" in problems
    assert (
        "checkov Holder/Resource CKV_AWS_27: not in the allow-list with this exact reason"
        in problems
    )
    assert "nag Gone AwsSolutions-IAM4: allow-listed but no longer made" in problems


def test_audit_passes_when_list_and_app_agree() -> None:
    app, holder, resource = _tiny_app()
    acknowledge_nag(holder, "AwsSolutions-SQS4", GOOD_REASON)
    skip_checkov(resource, "CKV_AWS_27", GOOD_REASON)
    listed = {
        Acknowledged("nag", "Holder", "AwsSolutions-SQS4", GOOD_REASON),
        Acknowledged("checkov", "Holder/Resource", "CKV_AWS_27", GOOD_REASON),
    }
    assert audit(collect_acknowledgements(app), listed) == []
    assert resource.get_metadata("checkov") == {
        "skip": [{"id": "CKV_AWS_27", "comment": GOOD_REASON}]
    }


def test_asking_the_assembly_for_a_stack_it_lacks_is_an_error(synth: Synthesized) -> None:
    # A filter that matched nothing would make "no acknowledgement here" pass vacuously.
    with pytest.raises(ValueError, match=r"no stack artifact \['agent-nope-serverless'\]"):
        collect_from_assembly(synth.outdir, {"agent-dev-serverless", "agent-nope-serverless"})
