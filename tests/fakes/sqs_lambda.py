"""Lambda's SQS event source mapping, reproduced over a (moto) queue for tests.

:meth:`EventSource.poll` does what the mapping does: receive up to ``batch_size`` messages (which
counts a receive, and moves a message that reached ``maxReceiveCount`` to the DLQ), build the
exact Lambda event, invoke the handler, and delete every message that is not in the response's
``batchItemFailures``. Failed messages stay on the queue. Real time does not pass in a test, so
``fast_forward=True`` makes each failed message visible again at once, as if its visibility
timeout (or back-off) had elapsed; the handler's own visibility changes are still made first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class PollResult:
    received: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", "0"),
            "SenderId": attributes.get("SenderId", "AIDAEXAMPLE"),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", "0"
            ),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324 - SQS's own checksum field
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


@dataclass
class EventSource:
    sqs: SQSClient
    queue_url: str
    handler: Handler
    context_factory: Callable[[], Any]
    batch_size: int = 10
    fast_forward: bool = True

    @property
    def queue_arn(self) -> str:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]
        return attributes["QueueArn"]

    def poll(self) -> PollResult:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            MessageSystemAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        result = PollResult(received=[m["MessageId"] for m in messages])
        if not messages:
            return result
        arn = self.queue_arn
        event = {"Records": [lambda_record(dict(m), arn) for m in messages]}
        response = self.handler(event, self.context_factory())
        failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        result.failed = [m["MessageId"] for m in messages if m["MessageId"] in failed]
        for message in messages:
            if message["MessageId"] in failed:
                if self.fast_forward:
                    self.sqs.change_message_visibility(
                        QueueUrl=self.queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=0,
                    )
            else:
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return result


def queue_depth(sqs: SQSClient, queue_url: str) -> int:
    """Visible + in flight + delayed: everything the queue still holds."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def drain(sqs: SQSClient, queue_url: str) -> list[dict[str, Any]]:
    """Every message on the queue (e.g. a DLQ), received once and left in place."""
    found: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=60,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            return found
        found.extend(dict(m) for m in batch)
