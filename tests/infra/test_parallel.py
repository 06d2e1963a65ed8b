"""`make test` runs pytest-xdist with --dist loadgroup; the tests that share the session's one
synthesis must stay on one worker (tests/conftest.py), or each worker synthesizes the app again."""

from __future__ import annotations

import pytest


# The group tests/conftest.py gives every test that uses the ``synth`` fixture.
@pytest.mark.xdist_group("synth")
def test_xdist_keeps_a_group_on_one_worker(request: pytest.FixtureRequest) -> None:
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("only under pytest-xdist with --dist loadgroup (make test)")
    # pytest-xdist marks a grouped test's id with @<group> and schedules by it; with pytest 9.2
    # the mark is silently dropped (pytest-xdist#1386), so requirements-dev.txt pins 9.1.
    assert request.node.nodeid.endswith("@synth"), (
        f"{request.node.nodeid}: pytest-xdist ignored the xdist_group; keep pytest at the "
        "version requirements-dev.txt pins"
    )
