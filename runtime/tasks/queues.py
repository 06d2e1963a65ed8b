"""The two queues of the async pattern and the messages on them.

Messages carry ids only (the task record holds the data), so a message is small, never stale,
and nothing in it is worth tampering with. ``v`` versions the shape for rolling deploys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

# SQS's ceiling for DelaySeconds; longer waits are chained (see runtime.tasks.callbacks).
MAX_DELAY_SECONDS = 900
MESSAGE_VERSION = 1


class PoisonMessageError(Exception):
    """The message cannot be processed, now or ever; SQS moves it to the DLQ after its tries."""


class RetryLaterError(Exception):
    """Processing should be tried again after ``delay_seconds`` (a visibility change)."""

    def __init__(self, message: str, *, delay_seconds: int) -> None:
        super().__init__(message)
        self.delay_seconds = delay_seconds


class MessageQueue(Protocol):
    def send(self, body: Mapping[str, Any], *, delay_seconds: int = 0) -> None: ...


class SqsQueue:
    def __init__(self, url: str, *, client: SQSClient) -> None:
        self.url = url
        self._client = client

    def send(self, body: Mapping[str, Any], *, delay_seconds: int = 0) -> None:
        if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"delay_seconds must be 0-{MAX_DELAY_SECONDS}, got {delay_seconds}")
        self._client.send_message(
            QueueUrl=self.url,
            MessageBody=json.dumps(body, separators=(",", ":")),
            DelaySeconds=delay_seconds,
        )

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        self._client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )


def task_message(task_id: str) -> dict[str, Any]:
    return {"v": MESSAGE_VERSION, "task_id": task_id}


@dataclass(frozen=True)
class CallbackMessage:
    task_id: str
    # Which completion of the task this callback reports (a redriven task completes again).
    event: int
    attempt: int
    # Epoch seconds before which the attempt must not run: back-offs beyond SQS's 15-minute
    # delay are chained through several delayed sends.
    not_before: int = 0
    # Set on the records the callback worker dead-letters: redriving one from the callback DLQ
    # starts the callback's attempts over (attempt 1) instead of being ignored as finished.
    restart: bool = False

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "v": MESSAGE_VERSION,
            "task_id": self.task_id,
            "event": self.event,
            "attempt": self.attempt,
        }
        if self.not_before:
            body["not_before"] = self.not_before
        if self.restart:
            body["restart"] = True
        return body

    @classmethod
    def parse(cls, body: str) -> CallbackMessage:
        data = _parse_object(body)
        try:
            message = cls(
                task_id=_str_field(data, "task_id"),
                event=_int_field(data, "event"),
                attempt=_int_field(data, "attempt"),
                not_before=_int_field(data, "not_before", default=0),
                restart=data.get("restart") is True,
            )
        except (KeyError, TypeError) as exc:
            raise PoisonMessageError(f"not a callback message: {exc}") from None
        if message.event < 1 or message.attempt < 1:
            raise PoisonMessageError("not a callback message: event and attempt start at 1")
        return message


def parse_task_message(body: str) -> str:
    """The task id of a task message."""
    data = _parse_object(body)
    try:
        return _str_field(data, "task_id")
    except (KeyError, TypeError) as exc:
        raise PoisonMessageError(f"not a task message: {exc}") from None


def _parse_object(body: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise PoisonMessageError("the message body is not JSON") from None
    if not isinstance(data, dict):
        raise PoisonMessageError("the message body is not a JSON object")
    if data.get("v") != MESSAGE_VERSION:
        raise PoisonMessageError(f"unknown message version {data.get('v')!r}")
    return data


def _str_field(data: Mapping[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty string")
    return value


def _int_field(data: Mapping[str, Any], name: str, *, default: int | None = None) -> int:
    if name not in data and default is not None:
        return default
    value = data[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer")
    return value
