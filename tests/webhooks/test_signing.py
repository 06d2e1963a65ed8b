"""signing.py without a network: known vectors, every rejection rule, the replay guard."""

from __future__ import annotations

import ast
import base64
import sys
import threading
from pathlib import Path

import pytest

from runtime.webhooks import signing
from runtime.webhooks.signing import (
    InvalidSignatureError,
    MissingHeaderError,
    ReplayedMessageError,
    ReplayGuard,
    TimestampToleranceError,
    WebhookVerificationError,
)
from tests.fakes.clock import FakeClock

# The Standard Webhooks reference test vector (the spec repository's library test suites).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# GitHub's documented example ("Validating webhook deliveries").
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

NOW = 1_700_000_000
SECRET = signing.generate_secret()
OTHER_SECRET = signing.generate_secret()


def headers_for(body: bytes = b'{"ok": true}', *, timestamp: int = NOW, msg_id: str = "msg_1"):
    return signing.signed_headers(msg_id, timestamp, body, [SECRET])


def test_standard_webhooks_spec_vector() -> None:
    assert signing.sign(SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY, [SPEC_SECRET]) == SPEC_SIGNATURE
    headers = {
        "webhook-id": SPEC_MSG_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    assert signing.verify(headers, SPEC_BODY, [SPEC_SECRET], now=SPEC_TIMESTAMP) == SPEC_MSG_ID


def test_signed_headers_carry_one_signature_per_secret() -> None:
    headers = signing.signed_headers("msg_1", NOW, b"{}", [SECRET, OTHER_SECRET])
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(NOW)
    first, second = headers["webhook-signature"].split(" ")
    assert first == signing.sign("msg_1", NOW, b"{}", [SECRET])
    assert second == signing.sign("msg_1", NOW, b"{}", [OTHER_SECRET])


def test_generate_secret_is_whsec_base64_of_32_random_bytes() -> None:
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert len(signing.standard_key(secret)) == 32
    assert signing.generate_secret() != secret


def test_standard_key_accepts_the_prefix_or_not_and_secrets_manager_alphanumerics() -> None:
    raw = base64.b64encode(b"k" * 24).decode()
    assert signing.standard_key("whsec_" + raw) == signing.standard_key(raw) == b"k" * 24
    # What Secrets Manager's GetRandomPassword returns with ExcludePunctuation, length 48.
    alphanumeric = "Qz7pLm2XvR9tKc4WnB8yHd3JfG6sAe1UoT5iYr0PaNbMhVkE"
    assert len(alphanumeric) == 48
    assert len(signing.standard_key(alphanumeric)) == 36


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("", "empty"),
        ("whsec_", "empty"),
        ("whsec_not*base64!", "not valid base64"),
        ("whsec_abcde", "not valid base64"),
        ("whsec_====", "not valid base64"),
    ],
)
def test_standard_key_names_the_problem_without_echoing_the_secret(
    secret: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        signing.standard_key(secret)
    if secret.removeprefix("whsec_"):
        assert secret.removeprefix("whsec_") not in str(caught.value)


def test_secrets_must_be_a_list_not_a_str() -> None:
    with pytest.raises(TypeError, match="not a single str"):
        signing.sign("msg_1", NOW, b"{}", SECRET)
    with pytest.raises(TypeError, match="not a single str"):
        signing.verify(headers_for(), b"{}", SECRET, now=NOW)
    with pytest.raises(ValueError, match="at least one"):
        signing.verify(headers_for(), b"{}", [], now=NOW)


def test_verify_returns_the_message_id_and_ignores_header_case() -> None:
    body = b'{"ok": true}'
    headers = {name.upper(): value for name, value in headers_for(body).items()}
    assert signing.verify(headers, body, [SECRET], now=NOW) == "msg_1"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_named(missing: str) -> None:
    body = b'{"ok": true}'
    headers = headers_for(body)
    del headers[missing]
    with pytest.raises(MissingHeaderError, match=f"the {missing} header is missing"):
        signing.verify(headers, body, [SECRET], now=NOW)


def test_empty_header_counts_as_missing() -> None:
    headers = headers_for() | {"webhook-id": "  "}
    with pytest.raises(MissingHeaderError, match="webhook-id"):
        signing.verify(headers, b'{"ok": true}', [SECRET], now=NOW)


@pytest.mark.parametrize("raw", ["12.5", "abc", "+1700000000", "1_700_000_000", "-5", "١٢٣"])
def test_non_integer_timestamp_is_rejected(raw: str) -> None:
    headers = headers_for() | {"webhook-timestamp": raw}
    with pytest.raises(TimestampToleranceError, match="not an integer number of seconds"):
        signing.verify(headers, b'{"ok": true}', [SECRET], now=NOW)


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-412, "webhook-timestamp is 412 s in the past; the tolerance is 300 s"),
        (412, "webhook-timestamp is 412 s in the future; the tolerance is 300 s"),
        (-301, "webhook-timestamp is 301 s in the past; the tolerance is 300 s"),
    ],
)
def test_timestamp_outside_tolerance_says_how_far(offset: int, expected: str) -> None:
    body = b'{"ok": true}'
    with pytest.raises(TimestampToleranceError) as caught:
        signing.verify(headers_for(body, timestamp=NOW + offset), body, [SECRET], now=NOW)
    assert str(caught.value) == expected


@pytest.mark.parametrize("offset", [-300, 300, 0])
def test_timestamp_at_the_tolerance_edge_is_accepted(offset: int) -> None:
    body = b'{"ok": true}'
    headers = headers_for(body, timestamp=NOW + offset)
    assert signing.verify(headers, body, [SECRET], now=NOW) == "msg_1"


def test_custom_tolerance() -> None:
    body = b"{}"
    headers = headers_for(body, timestamp=NOW - 20)
    with pytest.raises(TimestampToleranceError, match="tolerance is 10 s"):
        signing.verify(headers, body, [SECRET], now=NOW, tolerance_seconds=10)
    assert signing.verify(headers, body, [SECRET], now=NOW, tolerance_seconds=30) == "msg_1"


@pytest.mark.parametrize(
    ("field", "value"),
    [("body", None), ("webhook-id", "msg_2"), ("webhook-timestamp", str(NOW + 1))],
)
def test_changing_anything_signed_breaks_the_signature(field: str, value: str | None) -> None:
    body = b'{"amount": 10}'
    headers = headers_for(body)
    if field == "body":
        body = b'{"amount": 99}'
    else:
        assert value is not None
        headers[field] = value
    with pytest.raises(InvalidSignatureError, match="matches any of the 1 configured secret"):
        signing.verify(headers, body, [SECRET], now=NOW)


def test_failure_messages_never_contain_secrets_or_expected_signatures() -> None:
    body = b'{"ok": true}'
    headers = headers_for(body) | {"webhook-signature": "v1,AAAA"}
    expected = signing.sign("msg_1", NOW, body, [SECRET])
    with pytest.raises(WebhookVerificationError) as caught:
        signing.verify(headers, body, [SECRET], now=NOW)
    message = str(caught.value)
    assert SECRET.removeprefix("whsec_") not in message
    assert expected.removeprefix("v1,") not in message


def test_unknown_signature_versions_are_skipped() -> None:
    body = b"{}"
    good = signing.sign("msg_1", NOW, body, [SECRET])
    headers = headers_for(body) | {"webhook-signature": f"v1a,bm90LWEta2V5 {good} v2,xyz"}
    assert signing.verify(headers, body, [SECRET], now=NOW) == "msg_1"
    # The right bytes under another version label do not count as v1.
    only_v1a = good.replace("v1,", "v1a,")
    with pytest.raises(InvalidSignatureError, match="contains no v1 signature"):
        signing.verify(headers | {"webhook-signature": only_v1a}, body, [SECRET], now=NOW)


def test_non_ascii_signature_is_a_mismatch_not_a_crash() -> None:
    body = b"{}"
    headers = headers_for(body) | {"webhook-signature": "v1,ünïcode"}
    with pytest.raises(InvalidSignatureError):
        signing.verify(headers, body, [SECRET], now=NOW)


def test_any_configured_secret_may_match() -> None:
    body = b"{}"
    headers = headers_for(body)
    assert signing.verify(headers, body, [OTHER_SECRET, SECRET], now=NOW) == "msg_1"
    with pytest.raises(InvalidSignatureError, match="any of the 1 configured"):
        signing.verify(headers, body, [OTHER_SECRET], now=NOW)


def test_replay_guard_rejects_the_second_delivery_of_an_id() -> None:
    guard = ReplayGuard()
    body = b"{}"
    headers = headers_for(body)
    assert signing.verify(headers, body, [SECRET], now=NOW, replay_guard=guard) == "msg_1"
    with pytest.raises(ReplayedMessageError, match="msg_1 was already accepted"):
        signing.verify(headers, body, [SECRET], now=NOW + 1, replay_guard=guard)


def test_forgeries_are_not_remembered() -> None:
    guard = ReplayGuard()
    body = b"{}"
    for index in range(50):
        forged = headers_for(body, msg_id=f"msg_{index}") | {"webhook-signature": "v1,AAAA"}
        with pytest.raises(InvalidSignatureError):
            signing.verify(forged, body, [SECRET], now=NOW, replay_guard=guard)
    assert len(guard) == 0
    # The genuine message with a previously forged id still gets through.
    assert (
        signing.verify(
            headers_for(body, msg_id="msg_3"), body, [SECRET], now=NOW, replay_guard=guard
        )
        == "msg_3"
    )


def test_replay_guard_forgets_after_the_ttl_and_prunes(clock: FakeClock) -> None:
    guard = ReplayGuard(ttl_seconds=600)
    guard.check_and_remember("msg_a", clock())
    clock.advance(599)
    with pytest.raises(ReplayedMessageError, match="within the last 600 s"):
        guard.check_and_remember("msg_a", clock())
    clock.advance(1)
    guard.check_and_remember("msg_a", clock())  # expired, so accepted (and remembered) again

    for index in range(1000):
        guard.check_and_remember(f"msg_{index}", clock())
    assert len(guard) == 1001
    clock.advance(600)
    guard.check_and_remember("msg_last", clock())
    assert len(guard) == 1  # every expired id was dropped, so memory stays bounded


def test_replay_guard_default_ttl_covers_both_sides_of_the_tolerance() -> None:
    assert ReplayGuard().ttl_seconds == 2 * signing.DEFAULT_TOLERANCE_SECONDS
    with pytest.raises(ValueError, match="positive"):
        ReplayGuard(ttl_seconds=0)


def test_replay_guard_admits_one_of_many_concurrent_deliveries() -> None:
    guard = ReplayGuard()
    threads_count = 16
    barrier = threading.Barrier(threads_count)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait()
        try:
            guard.check_and_remember("msg_same", NOW)
            result = "accepted"
        except ReplayedMessageError:
            result = "replayed"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["accepted"] + ["replayed"] * (threads_count - 1)


def test_github_documented_vector() -> None:
    assert signing.github_signature(GITHUB_BODY, GITHUB_SECRET) == GITHUB_SIGNATURE
    signing.verify_github({"X-Hub-Signature-256": GITHUB_SIGNATURE}, GITHUB_BODY, [GITHUB_SECRET])


def test_github_wrong_secret_missing_header_and_rotation() -> None:
    headers = {"x-hub-signature-256": GITHUB_SIGNATURE}
    with pytest.raises(InvalidSignatureError, match="does not match any of the 1"):
        signing.verify_github(headers, GITHUB_BODY, ["a different secret"])
    with pytest.raises(MissingHeaderError, match="X-Hub-Signature-256"):
        signing.verify_github({}, GITHUB_BODY, [GITHUB_SECRET])
    with pytest.raises(InvalidSignatureError, match="must start with sha256="):
        signing.verify_github({"X-Hub-Signature-256": "sha1=abc"}, GITHUB_BODY, [GITHUB_SECRET])
    # The second secret of a rotation pair verifies.
    signing.verify_github(headers, GITHUB_BODY, ["the new secret", GITHUB_SECRET])
    with pytest.raises(InvalidSignatureError):
        signing.verify_github(headers, GITHUB_BODY + b" ", [GITHUB_SECRET])


def test_github_custom_header_name() -> None:
    headers = {"X-Signature": GITHUB_SIGNATURE}
    signing.verify_github(headers, GITHUB_BODY, [GITHUB_SECRET], header="X-Signature")
    with pytest.raises(MissingHeaderError):
        signing.verify_github(headers, GITHUB_BODY, [GITHUB_SECRET])


def test_verify_inbound_dispatches_by_style() -> None:
    signing.verify_inbound(
        "github",
        {"X-Hub-Signature-256": GITHUB_SIGNATURE},
        GITHUB_BODY,
        [GITHUB_SECRET],
        header=None,
    )
    signing.verify_inbound(
        "github", {"X-Custom": GITHUB_SIGNATURE}, GITHUB_BODY, [GITHUB_SECRET], header="X-Custom"
    )
    body = b"{}"
    signing.verify_inbound("standard", headers_for(body), body, [SECRET], header=None, now=NOW)
    moved = headers_for(body)
    moved["x-sig"] = moved.pop("webhook-signature")
    signing.verify_inbound("standard", moved, body, [SECRET], header="x-sig", now=NOW)
    with pytest.raises(TimestampToleranceError):
        signing.verify_inbound(
            "standard",
            headers_for(body),
            body,
            [SECRET],
            header=None,
            now=NOW + 61,
            tolerance_seconds=60,
        )
    guard = ReplayGuard()
    signing.verify_inbound(
        "standard", headers_for(body), body, [SECRET], header=None, now=NOW, replay_guard=guard
    )
    with pytest.raises(ReplayedMessageError):
        signing.verify_inbound(
            "standard",
            headers_for(body),
            body,
            [SECRET],
            header=None,
            now=NOW,
            replay_guard=guard,
        )
    with pytest.raises(ValueError, match="unknown webhook signature style"):
        signing.verify_inbound("svix", {}, body, [SECRET], header=None)  # type: ignore[arg-type]


def test_signing_module_imports_only_the_standard_library() -> None:
    """Receivers copy signing.py alone; a third-party import would break that promise."""
    source = Path(signing.__file__).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module is not None
            imported.add(node.module.split(".")[0])
    assert imported - {"__future__"} <= sys.stdlib_module_names
