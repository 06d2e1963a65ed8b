"""End to end over a real socket: our signed callbacks against a receiver that verifies them.

The receiver (tests/webhooks/receiver.py) is what a customer would write: signing.verify with a
ReplayGuard and the default 5-minute tolerance, 204 when valid, 401 with the reason otherwise.
"""

from __future__ import annotations

import json
import time

import httpx

from runtime.webhooks import signing
from runtime.webhooks.delivery import deliver
from tests.fakes.webhook_receiver import WebhookReceiver

OLD_SECRET = signing.generate_secret()
NEW_SECRET = signing.generate_secret()
BODY = json.dumps({"task_id": "t-1", "status": "succeeded", "output": "done"}).encode()


def send(client: httpx.Client, receiver: WebhookReceiver, headers: dict[str, str], body: bytes):
    return deliver(
        receiver.url,
        body,
        headers,
        client=client,
        timeout_seconds=2.0,
        allow_http_loopback=True,
    )


def post_raw(client: httpx.Client, url: str, headers: dict[str, str], body: bytes):
    return client.post(url, content=body, headers=headers, timeout=2.0)


def test_valid_callback_is_delivered(client: httpx.Client) -> None:
    with WebhookReceiver([OLD_SECRET]) as receiver:
        headers = signing.signed_headers("msg_valid", int(time.time()), BODY, [OLD_SECRET])
        result = send(client, receiver, headers, BODY)
    assert (result.outcome, result.status_code, result.error) == ("delivered", 204, None)
    assert receiver.accepted == ["msg_valid"]
    request = receiver.requests[0]
    assert request.body == BODY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "agent-deploy-reference-webhooks/1"


def test_tampered_body_is_rejected(client: httpx.Client) -> None:
    with WebhookReceiver([OLD_SECRET]) as receiver:
        headers = signing.signed_headers("msg_t", int(time.time()), BODY, [OLD_SECRET])
        tampered = BODY.replace(b"succeeded", b"failed")
        response = post_raw(client, receiver.url, headers, tampered)
    assert response.status_code == 401
    assert "no v1 signature in webhook-signature matches" in response.text
    assert receiver.accepted == []


def test_timestamps_more_than_five_minutes_off_are_rejected(client: httpx.Client) -> None:
    now = int(time.time())
    with WebhookReceiver([OLD_SECRET]) as receiver:
        for msg_id, timestamp, direction in [
            ("msg_past", now - 360, "in the past"),
            ("msg_future", now + 360, "in the future"),
        ]:
            headers = signing.signed_headers(msg_id, timestamp, BODY, [OLD_SECRET])
            response = post_raw(client, receiver.url, headers, BODY)
            assert response.status_code == 401
            assert direction in response.text
            assert "the tolerance is 300 s" in response.text
            # deliver sees the same 401 as a failure to retry later (with a fresh timestamp).
            result = send(client, receiver, headers, BODY)
            assert (result.outcome, result.status_code) == ("retry", 401)
    assert receiver.accepted == []


def test_replayed_message_is_rejected(client: httpx.Client) -> None:
    with WebhookReceiver([OLD_SECRET]) as receiver:
        headers = signing.signed_headers("msg_once", int(time.time()), BODY, [OLD_SECRET])
        assert post_raw(client, receiver.url, headers, BODY).status_code == 204
        replay = post_raw(client, receiver.url, headers, BODY)
    assert replay.status_code == 401
    assert "msg_once was already accepted" in replay.text
    assert receiver.accepted == ["msg_once"]


def test_rotation_overlap_both_secrets_verify_and_strangers_do_not(client: httpx.Client) -> None:
    headers = signing.signed_headers("msg_rot", int(time.time()), BODY, [NEW_SECRET, OLD_SECRET])
    assert len(headers["webhook-signature"].split(" ")) == 2
    stranger_secret = signing.generate_secret()
    with (
        WebhookReceiver([OLD_SECRET]) as holds_old,
        WebhookReceiver([NEW_SECRET]) as holds_new,
        WebhookReceiver([stranger_secret]) as stranger,
    ):
        old_result = send(client, holds_old, headers, BODY)
        new_result = send(client, holds_new, headers, BODY)
        stranger_result = send(client, stranger, headers, BODY)
    assert old_result.outcome == new_result.outcome == "delivered"
    assert holds_old.accepted == holds_new.accepted == ["msg_rot"]
    assert (stranger_result.outcome, stranger_result.status_code) == ("retry", 401)
    assert stranger_result.error is not None
    assert "any of the 1 configured secret" in stranger_result.error
