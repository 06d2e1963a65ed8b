"""The two local servers :mod:`loadtest.local` runs in their own processes, on 127.0.0.1 only.

``python -m loadtest.servers model --port P [--latency S]``
    An OpenAI-compatible ``POST /v1/chat/completions`` that answers every call with a short
    text after ``--latency`` seconds: the agent's real model client talks to it over HTTP, so
    what a run measures is the service and its store, not a model.

``python -m loadtest.servers webhook-api --port P``
    ``POST /webhook`` and ``GET /tasks/{task_id}`` served by the real Lambda handler
    (:mod:`runtime.handlers.webhook_api`): each request becomes an API Gateway REST proxy event,
    as the deployed API's integration sends it. Invocations are serialised, because a Lambda
    instance runs one at a time and the handler's resolver keeps the current event in a global;
    this process is one warm instance.

Both are separate processes so their CPU and GIL are not shared with the load generator.
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BIND_ADDRESS = "127.0.0.1"
CHAT_PATH = "/v1/chat/completions"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many short connections at load: a bigger accept backlog than socketserver's 5.
    request_queue_size = 1024


class _JsonHandler(BaseHTTPRequestHandler):
    # Keep-alive, as the clients in front of these servers (httpx, locust) use it.
    protocol_version = "HTTP/1.1"
    # The status line and headers go out in one write and the body in another: with Nagle's
    # algorithm on, the body then waits for the client's delayed ACK (40 ms on Linux) on every
    # keep-alive request after the first.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request would cost more than the request at load.
        pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        merged = {"Content-Type": "application/json", **(headers or {})}
        for name, value in merged.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# --- the fake model -----------------------------------------------------------------------------


def completion(text: str) -> bytes:
    """One chat completion with ``text`` as the assistant's answer (no tool calls)."""
    return json.dumps(
        {
            "id": "chatcmpl-loadtest",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "loadtest-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        }
    ).encode()


def serve_model(port: int, *, latency_seconds: float) -> None:
    answer = completion("ok")

    class Handler(_JsonHandler):
        def do_POST(self) -> None:
            self._read_body()
            if self.path != CHAT_PATH:
                self._send(404, b'{"error":{"message":"no such route"}}')
                return
            if latency_seconds > 0:
                time.sleep(latency_seconds)
            self._send(200, answer)

    _Server((BIND_ADDRESS, port), Handler).serve_forever()


# --- the webhook API adapter ---------------------------------------------------------------------


@dataclass(frozen=True)
class LambdaContext:
    """The attributes Powertools' ``inject_lambda_context`` reads."""

    aws_request_id: str
    function_name: str = "loadtest-webhook-ingress"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:loadtest-webhook-ingress"
    )

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def api_gateway_event(
    method: str, path: str, headers: dict[str, str], body: bytes
) -> dict[str, Any] | None:
    """The REST API proxy event (payload 1.0) of a request, or ``None`` for an unknown route."""
    if path == "/webhook":
        resource, parameters = "/webhook", {}
    elif path.startswith("/tasks/") and path.count("/") == 2 and len(path) > len("/tasks/"):
        resource, parameters = "/tasks/{task_id}", {"task_id": path[len("/tasks/") :]}
    else:
        return None
    request_id = str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": path,
            "stage": "local",
            "requestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": BIND_ADDRESS, "caller": None, "apiKeyId": None},
            "domainName": "127.0.0.1",
            "apiId": "local",
        },
        # Base64 always: the handler must see the exact bytes (signatures are over them).
        "body": base64.b64encode(body).decode("ascii") if body else None,
        "isBase64Encoded": bool(body),
    }


def serve_webhook_api(port: int) -> None:
    # Imported here: only this process needs Powertools and the task clients.
    from runtime.handlers import webhook_api

    # Built now, so a bad environment stops the start rather than the first request.
    webhook_api.clients().store  # noqa: B018 - the property builds the client
    invoke = threading.Lock()

    class Handler(_JsonHandler):
        def do_GET(self) -> None:
            self._invoke("GET")

        def do_POST(self) -> None:
            self._invoke("POST")

        def _invoke(self, method: str) -> None:
            body = self._read_body()
            headers = {name: value for name, value in self.headers.items()}
            event = api_gateway_event(method, self.path.split("?", 1)[0], headers, body)
            if event is None:
                self._send(404, b'{"message":"Missing Authentication Token"}')
                return
            with invoke:
                response = webhook_api.lambda_handler(
                    event, LambdaContext(aws_request_id=event["requestContext"]["requestId"])
                )
            out_headers = {
                name: str(values[-1])
                for name, values in (response.get("multiValueHeaders") or {}).items()
            }
            out_headers.update({k: str(v) for k, v in (response.get("headers") or {}).items()})
            raw = response.get("body") or ""
            payload = base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode()
            self._send(int(response["statusCode"]), payload, out_headers)

    _Server((BIND_ADDRESS, port), Handler).serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.servers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    model = commands.add_parser("model", help="the fake OpenAI-compatible model")
    model.add_argument("--port", type=int, required=True)
    model.add_argument("--latency", type=float, default=0.0, help="seconds per model call")
    webhook = commands.add_parser("webhook-api", help="the webhook handler behind HTTP")
    webhook.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "model":
        serve_model(args.port, latency_seconds=args.latency)
    else:
        serve_webhook_api(args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
