"""RedisQueueClient against a real redis-server: SQS semantics, the key layout KEDA reads, races.

Real time, kept short: visibility and delays of 1 second where the behaviour needs time to pass,
VisibilityTimeout=0 (back at once) where it only needs a new receive.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from botocore.exceptions import ClientError

from runtime.settings import SettingsError
from runtime.tasks.redis_queue import (
    RedisQueueClient,
    is_redis_queue_url,
    parse_queue_url,
)
from runtime.tasks.settings import TaskSettings
from tests.fakes.ports import free_port
from tests.fakes.redis_server import RedisServer

MAX_RECEIVES = 3
RECEIVE_COUNT = ["ApproximateReceiveCount"]


@pytest.fixture
def name(redis_queue: str) -> str:
    return redis_queue


@pytest.fixture
def url(redis_queue_url: str) -> str:
    return redis_queue_url


@pytest.fixture
def sqs(redis_server: RedisServer) -> Iterator[RedisQueueClient]:
    client = RedisQueueClient(
        password=redis_server.password,
        max_receive_count=MAX_RECEIVES,
        poll_interval_seconds=0.02,
    )
    yield client
    client.close()


def send(sqs: RedisQueueClient, url: str, body: str, delay: int = 0) -> str:
    return str(sqs.send_message(QueueUrl=url, MessageBody=body, DelaySeconds=delay)["MessageId"])


def receive(
    sqs: RedisQueueClient, url: str, *, count: int = 10, visibility: int = 30, wait: int = 0
) -> list[dict[str, Any]]:
    response = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=count,
        VisibilityTimeout=visibility,
        WaitTimeSeconds=wait,
        MessageSystemAttributeNames=RECEIVE_COUNT,
    )
    return list(response.get("Messages", []))


def bodies(messages: list[dict[str, Any]]) -> list[str]:
    return [message["Body"] for message in messages]


def receive_count(message: dict[str, Any]) -> int:
    return int(message["Attributes"]["ApproximateReceiveCount"])


def server_ms(raw: redis.Redis) -> int:
    seconds, micros = raw.time()
    return int(seconds) * 1000 + int(micros) // 1000


def dead(raw: redis.Redis, name: str) -> list[dict[str, Any]]:
    return [json.loads(entry) for entry in raw.lrange(f"{name}:dead", 0, -1)]


def error_code(caught: pytest.ExceptionInfo[ClientError]) -> str:
    return str(caught.value.response["Error"]["Code"])


# --- order, visibility, receive counts ---------------------------------------------------------


def test_messages_come_out_in_the_order_they_were_sent(sqs: RedisQueueClient, url: str) -> None:
    for n in range(5):
        send(sqs, url, f"m{n}")

    assert bodies(receive(sqs, url, count=3)) == ["m0", "m1", "m2"]
    assert bodies(receive(sqs, url, count=1)) == ["m3"]
    assert bodies(receive(sqs, url, count=10)) == ["m4"]
    assert receive(sqs, url) == []


def test_a_received_message_is_hidden_for_its_visibility_then_comes_back(
    sqs: RedisQueueClient, url: str, raw: redis.Redis, name: str
) -> None:
    message_id = send(sqs, url, "work")
    [first] = receive(sqs, url, visibility=1)
    received_at = time.monotonic()

    assert receive(sqs, url) == []
    assert raw.llen(name) == 0
    assert raw.zcard(f"{name}:inflight") == 1
    # A long poll spanning the deadline gets it back as soon as it is due.
    [again] = receive(sqs, url, wait=3)
    elapsed = time.monotonic() - received_at

    assert 0.9 <= elapsed < 1.5
    assert again["MessageId"] == first["MessageId"] == message_id
    assert again["Body"] == "work"
    assert [receive_count(first), receive_count(again)] == [1, 2]
    assert again["ReceiptHandle"] != first["ReceiptHandle"]


def test_attributes_are_the_requested_ones_in_sqs_string_form(
    sqs: RedisQueueClient, url: str, raw: redis.Redis
) -> None:
    before = server_ms(raw)
    send(sqs, url, "a")
    send(sqs, url, "b")

    [plain] = sqs.receive_message(QueueUrl=url)["Messages"]
    [everything] = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]

    assert plain["Attributes"] == {}
    attributes = everything["Attributes"]
    assert set(attributes) == {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "ApproximateFirstReceiveTimestamp",
    }
    assert attributes["ApproximateReceiveCount"] == "1"
    assert (
        before
        <= int(attributes["SentTimestamp"])
        <= int(attributes["ApproximateFirstReceiveTimestamp"])
    )


def test_after_max_receives_a_message_is_dead_lettered_not_delivered(
    sqs: RedisQueueClient, url: str, raw: redis.Redis, name: str
) -> None:
    message_id = send(sqs, url, "poison")

    counts = [
        receive_count(m) for _ in range(MAX_RECEIVES) for m in receive(sqs, url, visibility=0)
    ]
    assert counts == [1, 2, 3]

    # Its visibility ran out after the last receive: the next receive moves it, as SQS's redrive.
    assert receive(sqs, url, visibility=0) == []
    [letter] = dead(raw, name)
    assert (letter["id"], letter["body"], letter["receive_count"]) == (message_id, "poison", 3)
    assert letter["dead_at"] >= letter["sent"]
    assert raw.hlen(f"{name}:messages") == 0
    assert raw.llen(name) == 0
    assert raw.zcard(f"{name}:inflight") == 0


def test_a_message_released_after_its_last_receive_goes_straight_to_the_dead_list(
    sqs: RedisQueueClient, url: str, raw: redis.Redis, name: str
) -> None:
    send(sqs, url, "last try")
    for _ in range(MAX_RECEIVES - 1):
        receive(sqs, url, visibility=0)
    [last] = receive(sqs, url)
    assert receive_count(last) == MAX_RECEIVES

    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=last["ReceiptHandle"], VisibilityTimeout=0
    )

    assert [letter["body"] for letter in dead(raw, name)] == ["last try"]
    assert raw.llen(name) == 0
    # The holder's late delete finds nothing to delete: no error, as SQS's idempotent delete.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=last["ReceiptHandle"])


def test_delayed_messages_are_ready_only_after_their_delay(
    sqs: RedisQueueClient, url: str, raw: redis.Redis, name: str
) -> None:
    send(sqs, url, "later", delay=1)
    sent_at = time.monotonic()
    send(sqs, url, "now")

    assert bodies(receive(sqs, url)) == ["now"]
    assert raw.llen(name) == 0  # KEDA sees no backlog while it waits
    assert raw.zcard(f"{name}:delayed") == 1

    assert bodies(receive(sqs, url, wait=3)) == ["later"]
    assert 0.9 <= time.monotonic() - sent_at < 1.5


def test_visibility_zero_makes_a_message_ready_at_once_ahead_of_the_line(
    sqs: RedisQueueClient, url: str
) -> None:
    send(sqs, url, "first")
    send(sqs, url, "second")
    [held] = receive(sqs, url, count=1)

    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=held["ReceiptHandle"], VisibilityTimeout=0
    )

    [again, other] = receive(sqs, url)
    assert (again["Body"], receive_count(again)) == ("first", 2)
    assert other["Body"] == "second"


def test_extending_visibility_moves_the_deadline_on_the_server_clock(
    sqs: RedisQueueClient, url: str, raw: redis.Redis, name: str
) -> None:
    message_id = send(sqs, url, "long task")
    [held] = receive(sqs, url, visibility=1)

    response = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[{"Id": "a", "ReceiptHandle": held["ReceiptHandle"], "VisibilityTimeout": 120}],
    )

    assert response == {"Successful": [{"Id": "a"}], "Failed": []}
    deadline = raw.zscore(f"{name}:inflight", message_id)
    assert deadline is not None
    assert 119_000 < deadline - server_ms(raw) <= 120_000


# --- receipt handles ---------------------------------------------------------------------------


def test_a_stale_receipt_handle_cannot_delete_or_extend_the_current_holders_message(
    sqs: RedisQueueClient, url: str, raw: redis.Redis, name: str
) -> None:
    message_id = send(sqs, url, "contested")
    [stale] = receive(sqs, url, visibility=0)  # the first holder's visibility ran out
    [current] = receive(sqs, url, visibility=30)
    deadline = raw.zscore(f"{name}:inflight", message_id)

    with pytest.raises(ClientError) as caught:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=stale["ReceiptHandle"])
    assert error_code(caught) == "ReceiptHandleIsInvalid"
    response = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "release", "ReceiptHandle": stale["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "garbage", "ReceiptHandle": "no-token", "VisibilityTimeout": 0},
        ],
    )
    with pytest.raises(ClientError) as caught:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=stale["ReceiptHandle"], VisibilityTimeout=600
        )

    assert error_code(caught) == "ReceiptHandleIsInvalid"
    assert response["Successful"] == []
    assert {(f["Id"], f["Code"]) for f in response["Failed"]} == {
        ("release", "ReceiptHandleIsInvalid"),
        ("garbage", "ReceiptHandleIsInvalid"),
    }
    # The current holder still holds it, on its own deadline, and can delete it.
    assert raw.zscore(f"{name}:inflight", message_id) == deadline
    assert raw.llen(name) == 0
    sqs.delete_message(QueueUrl=url, ReceiptHandle=current["ReceiptHandle"])
    assert raw.hlen(f"{name}:messages") == 0
    assert raw.zcard(f"{name}:inflight") == 0


def test_the_latest_handle_deletes_a_message_whose_visibility_ran_out(
    sqs: RedisQueueClient, url: str, raw: redis.Redis, name: str
) -> None:
    send(sqs, url, "slow")
    [held] = receive(sqs, url, visibility=0)
    send(sqs, url, "next")  # every call first moves expired messages back to the ready list

    # Back in the ready list, not received since: its last handle still counts (SQS's rule).
    assert raw.llen(name) == 2
    sqs.delete_message(QueueUrl=url, ReceiptHandle=held["ReceiptHandle"])

    assert raw.llen(name) == 1
    assert bodies(receive(sqs, url)) == ["next"]


def test_visibility_changes_of_messages_not_in_flight_fail_per_entry(
    sqs: RedisQueueClient, url: str
) -> None:
    send(sqs, url, "x")
    [held] = receive(sqs, url, visibility=0)  # visible again at once: no longer in flight

    response = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[{"Id": "1", "ReceiptHandle": held["ReceiptHandle"], "VisibilityTimeout": 5}],
    )

    [failure] = response["Failed"]
    assert (failure["Id"], failure["Code"]) == ("1", "MessageNotInflight")


# --- long polling ------------------------------------------------------------------------------


def test_a_long_poll_returns_as_soon_as_a_message_is_sent(sqs: RedisQueueClient, url: str) -> None:
    timer = threading.Timer(0.3, lambda: send(sqs, url, "wake up"))
    started = time.monotonic()
    timer.start()
    try:
        messages = receive(sqs, url, wait=5)
    finally:
        timer.join()
    elapsed = time.monotonic() - started

    assert bodies(messages) == ["wake up"]
    assert 0.3 <= elapsed < 0.6


def test_a_long_poll_on_an_empty_queue_waits_out_its_bound(sqs: RedisQueueClient, url: str) -> None:
    started = time.monotonic()
    assert receive(sqs, url, wait=1) == []
    assert 1.0 <= time.monotonic() - started < 1.5


# --- concurrency and what KEDA reads -----------------------------------------------------------


def test_concurrent_consumers_each_get_every_message_exactly_once(
    sqs: RedisQueueClient, url: str, raw: redis.Redis, name: str
) -> None:
    sent = {send(sqs, url, f"m{n}") for n in range(200)}
    received: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def consume() -> None:
        start.wait()
        while batch := receive(sqs, url, count=7):
            with lock:
                received.extend(message["MessageId"] for message in batch)

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert len(received) == 200
    assert set(received) == sent
    assert max(Counter(received).values()) == 1
    assert raw.llen(name) == 0
    assert raw.zcard(f"{name}:inflight") == 200


def test_the_ready_list_length_is_the_visible_backlog(
    sqs: RedisQueueClient, url: str, raw: redis.Redis, name: str
) -> None:
    for n in range(5):
        send(sqs, url, f"m{n}")
    send(sqs, url, "delayed", delay=60)
    assert raw.type(name) == b"list"  # KEDA's redis scaler runs LLEN on it
    assert raw.llen(name) == 5

    first, second = receive(sqs, url, count=2)
    assert raw.llen(name) == 3
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
    )
    assert raw.llen(name) == 4
    sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])
    assert raw.llen(name) == 4
    assert raw.hlen(f"{name}:messages") == 5  # 4 ready + 1 delayed


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue_url", "problem"),
    [
        ("https://sqs.us-east-1.amazonaws.com/1/q", "must be a Redis queue URL like redis://"),
        ("redis://:hunter2@cache:6379/0#q", "remove it from the URL and give the AUTH token in "),
        ("redis://user:hunter2@cache:6379/0#q", "REDIS_PASSWORD"),
        ("redis://cache:6379/0", "names no list: add #<list-name>"),
        ("redis://cache:6379/0#", "names no list"),
        ("redis:///0#q", "names no host"),
        ("redis://cache:port/0#q", "invalid port"),
        ("redis://cache:6379/zero#q", "database as a number after the host (/0), got /zero"),
        ("redis://cache:6379/0?ssl=true#q", "must not have query parameters"),
        ("redis://cache:6379/0#has space", "list name (after #) must be 1-200 letters"),
        ("redis://cache:6379/0#tasks:dead", "must not end with :messages"),
    ],
)
def test_bad_queue_urls_are_refused_naming_the_variable_and_the_fix(
    queue_url: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=r"^TASK_QUEUE_URL\b") as caught:
        parse_queue_url(queue_url, variable="TASK_QUEUE_URL")
    assert problem in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_good_queue_urls_split_into_server_and_list() -> None:
    tls = parse_queue_url("rediss://agent@cache.example.com:6380/2#{agent}-tasks")
    assert (tls.server_url, tls.list_name) == (
        "rediss://agent@cache.example.com:6380/2",
        "{agent}-tasks",
    )
    plain = parse_queue_url("REDIS://cache#tasks")
    assert (plain.server_url, plain.list_name) == ("redis://cache/0", "tasks")
    assert plain.keys == [
        "tasks",
        "tasks:messages",
        "tasks:inflight",
        "tasks:delayed",
        "tasks:dead",
    ]
    assert is_redis_queue_url("rediss://cache#q")
    assert not is_redis_queue_url("https://sqs.us-east-1.amazonaws.com/123456789012/q")


def test_task_settings_refuse_a_bad_redis_queue_url_at_start() -> None:
    environ = {
        "TASK_TABLE_NAME": "tasks",
        "TASK_QUEUE_URL": "redis://:secret@cache:6379/0#tasks",
        "CALLBACK_QUEUE_URL": "redis://cache:6379/0",
        "CALLBACK_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
        "TASK_TTL_SECONDS": "86400",
        "IDEMPOTENCY_WINDOW_SECONDS": "3600",
        "TASK_MAX_RECEIVE_COUNT": "5",
        "TASK_LEASE_SECONDS": "60",
        "MAX_BODY_BYTES": "65536",
        "MAX_MESSAGE_CHARS": "8000",
        "CALLBACK_SIGNING_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:s",
        "CALLBACK_TIMEOUT_SECONDS": "2",
        "CALLBACK_MAX_ATTEMPTS": "4",
        "CALLBACK_BASE_DELAY_SECONDS": "0",
        "CALLBACK_MAX_DELAY_SECONDS": "0",
        "CALLBACK_ROTATION_OVERLAP_SECONDS": "0",
    }
    with pytest.raises(SettingsError) as caught:
        TaskSettings.from_env(environ)
    message = str(caught.value)
    assert "TASK_QUEUE_URL: Value error, TASK_QUEUE_URL carries a password" in message
    assert "CALLBACK_QUEUE_URL: Value error, CALLBACK_QUEUE_URL names no list" in message
    assert "CALLBACK_DLQ_URL" not in message
    assert "secret@" not in message


def test_parameters_outside_sqs_limits_are_refused_as_sqs_refuses_them(
    sqs: RedisQueueClient, url: str
) -> None:
    calls = [
        lambda: sqs.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=901),
        lambda: sqs.send_message(QueueUrl=url, MessageBody=""),
        lambda: sqs.send_message(QueueUrl=url, MessageBody="x" * 262_145),
        lambda: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11),
        lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=21),
        lambda: sqs.receive_message(QueueUrl=url, VisibilityTimeout=-1),
    ]
    for call in calls:
        with pytest.raises(ClientError) as caught:
            call()
        assert error_code(caught) == "InvalidParameterValue"
    with pytest.raises(ClientError) as caught:
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=[])
    assert error_code(caught) == "EmptyBatchRequest"
    with pytest.raises(ClientError) as caught:
        sqs.send_message(QueueUrl=url.replace("#", "#bad name "), MessageBody="x")
    assert error_code(caught) == "InvalidAddress"


def test_an_unreachable_server_or_a_wrong_password_is_a_client_error(
    redis_server: RedisServer, name: str
) -> None:
    # ClientError is what the worker backs off on and the ingress answers 503 to.
    closed = RedisQueueClient(password="x", connect_timeout_seconds=0.5)
    with pytest.raises(ClientError) as caught:
        closed.receive_message(QueueUrl=f"redis://127.0.0.1:{free_port()}/0#{name}")
    assert error_code(caught) == "ConnectionError"
    closed.close()

    wrong = RedisQueueClient(password="not-the-token")
    with pytest.raises(ClientError) as caught:
        wrong.send_message(QueueUrl=f"{redis_server.url}#{name}", MessageBody="x")
    assert "REDIS_PASSWORD" in str(caught.value)
    wrong.close()


def test_the_password_comes_from_redis_password(
    redis_server: RedisServer, url: str, raw: redis.Redis, name: str
) -> None:
    client = RedisQueueClient.from_env({"REDIS_PASSWORD": redis_server.password})
    try:
        send(client, url, "authenticated")
    finally:
        client.close()
    assert raw.llen(name) == 1
