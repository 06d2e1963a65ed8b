"""Benchmark: the agent service next to FastAPI hello-world and a bare ASGI app, in one run.

Each server runs in its own process under uvicorn (uvloop, httptools, see ``service_apps.py``);
this process is the load generator. Reported, as medians over ``--runs`` runs:

* requests/s and p50/p99 latency of ``POST /sessions/{id}/messages`` with ``--connections``
  keep-alive connections for ``--seconds`` (the agent with a zero-latency model; hello-world
  and the bare app answer the same request);
* WebSocket frames/s: ``--ws-connections`` sockets each sending a message and reading its frames;
* the agent server's memory (RSS) with ``--idle`` idle WebSockets open, and per connection,
  next to the 200 MB target.

Every server gets the same request on the same connections, with the agent's bearer token (the
agent runs with production settings, see ``service_apps.py``; its log and metric lines go to a
temporary file, as a log driver would read them). Ratios are to the same run's FastAPI
hello-world; it never passes or fails. Timings on a shared 2-core machine are noisy and the
generator competes with the server for CPU, so compare ratios. ``--json-out PATH`` also writes
the figures as JSON. Run: ``.venv/bin/python bench/service.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import websockets

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.fakes.ports import free_port, wait_until_listening  # noqa: E402

APPS = Path(__file__).with_name("service_apps.py")
SERVERS = ("bare", "hello", "agent")
MEMORY_TARGET_MB = 200.0
# The agent's SERVICE_AUTH_TOKEN, new per benchmark; sent to every server alike.
TOKEN = secrets.token_urlsafe(24)
AUTHORIZATION = f"Bearer {TOKEN}"


@contextlib.contextmanager
def server(which: str, *options: str) -> Iterator[tuple[int, int]]:
    """(port, pid) of ``service_apps.py which PORT *options`` running until the block ends."""
    port = free_port()
    # The agent's JSON log lines and EMF metric lines: written for real, to a file nobody reads.
    with tempfile.TemporaryFile() as stdout:
        process = subprocess.Popen(
            [sys.executable, str(APPS), which, str(port), *options],
            cwd=REPO_ROOT,
            stdout=stdout,
            env={**os.environ, "SERVICE_AUTH_TOKEN": TOKEN},
        )
        try:
            wait_until_listening(port, process, timeout_seconds=30, what=f"the {which} server")
            yield port, process.pid
        finally:
            process.terminate()
            process.wait(30)


@dataclass(frozen=True)
class HttpResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def _request(port: int) -> bytes:
    body = json.dumps({"message": "hi"}).encode()
    path = f"/sessions/b-{uuid.uuid4().hex[:16]}/messages"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {AUTHORIZATION}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def http_load(port: int, *, connections: int, seconds: float) -> HttpResult:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def one_connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                writer.write(_request(port))
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return HttpResult(
        requests_per_second=len(latencies) / elapsed,
        p50_ms=1000 * latencies[len(latencies) // 2],
        p99_ms=1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        errors=errors,
    )


async def ws_frames(port: int, *, connections: int, seconds: float) -> float:
    frames = 0
    stop_at = time.perf_counter() + seconds

    async def one_socket(number: int) -> None:
        nonlocal frames
        uri = f"ws://127.0.0.1:{port}/agent/ws-{number}-{uuid.uuid4().hex[:8]}"
        async with websockets.connect(
            uri, ping_interval=None, max_size=None, additional_headers=_auth()
        ) as socket_:
            while time.perf_counter() < stop_at:
                await socket_.send(json.dumps({"message": "hi"}))
                while True:
                    frame = json.loads(await socket_.recv())
                    frames += 1
                    if frame["type"] in ("result", "error"):
                        break

    started = time.perf_counter()
    await asyncio.gather(*(one_socket(n) for n in range(connections)))
    return frames / (time.perf_counter() - started)


def _auth() -> dict[str, str]:
    return {"Authorization": AUTHORIZATION}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def idle_memory(port: int, pid: int, *, count: int) -> tuple[float, float]:
    """(RSS before, RSS with ``count`` idle WebSockets open), MB."""
    # One warm-up connection so lazily imported code is loaded before the baseline.
    warm = f"ws://127.0.0.1:{port}/agent/warm"
    async with websockets.connect(warm, ping_interval=None, additional_headers=_auth()):
        pass
    await asyncio.sleep(0.5)
    before = rss_mb(pid)
    sockets = []
    try:
        for number in range(count):
            sockets.append(
                await websockets.connect(
                    f"ws://127.0.0.1:{port}/agent/idle-{number}",
                    ping_interval=None,
                    additional_headers=_auth(),
                )
            )
        await asyncio.sleep(1.0)
        return before, rss_mb(pid)
    finally:
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)


def _at_least(minimum: float, kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below the minimum of {minimum:g}")
        return value

    return parse


def load_parser(description: str | None) -> argparse.ArgumentParser:
    """The options every HTTP load of these benchmarks takes (``parse_load_args`` checks them)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=_at_least(1, int), default=3, help="default 3")
    parser.add_argument(
        "--seconds", type=_at_least(0.5, float), default=4.0, help="per load, default 4"
    )
    parser.add_argument("--connections", type=_at_least(1, int), default=16, help="default 16")
    parser.add_argument("--json-out", type=Path, help="also write the figures here as JSON")
    return parser


def parse_load_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.json_out is not None and not args.json_out.parent.is_dir():
        parser.error(f"--json-out: the folder {args.json_out.parent} does not exist")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = load_parser(__doc__)
    parser.add_argument("--ws-connections", type=_at_least(1, int), default=16, help="default 16")
    parser.add_argument(
        "--idle", type=_at_least(1, int), default=1000, help="idle WebSockets, default 1000"
    )
    args = parse_load_args(parser, argv)

    http: dict[str, list[HttpResult]] = {which: [] for which in SERVERS}
    frames: list[float] = []
    for _ in range(args.runs):
        for which in SERVERS:
            with server(which) as (port, _pid):
                asyncio.run(http_load(port, connections=args.connections, seconds=0.5))  # warm
                http[which].append(
                    asyncio.run(http_load(port, connections=args.connections, seconds=args.seconds))
                )
                if which == "agent":
                    frames.append(
                        asyncio.run(
                            ws_frames(port, connections=args.ws_connections, seconds=args.seconds)
                        )
                    )
    with server("agent") as (port, pid):
        before, after = asyncio.run(idle_memory(port, pid, count=args.idle))

    def med(which: str, field: str) -> float:
        return float(statistics.median(getattr(result, field) for result in http[which]))

    hello_rps, hello_p99 = med("hello", "requests_per_second"), med("hello", "p99_ms")
    figures: dict[str, object] = {
        "command": {
            "runs": args.runs,
            "seconds": args.seconds,
            "connections": args.connections,
            "ws_connections": args.ws_connections,
            "idle": args.idle,
        },
        "http": {},
        "websocket_frames_per_second": round(statistics.median(frames), 1),
        "memory": {
            "idle_mb": round(before, 1),
            "with_idle_websockets_mb": round(after, 1),
            "per_websocket_kb": round(1024 * (after - before) / args.idle, 1),
            "target_mb": MEMORY_TARGET_MB,
            "under_target": after < MEMORY_TARGET_MB,
        },
        "runs": {which: [asdict(result) for result in http[which]] for which in SERVERS},
    }
    print(f"HTTP POST /sessions/{{id}}/messages, {args.connections} connections, "
          f"{args.seconds:g} s x {args.runs} runs (medians)")  # fmt: skip
    print("| server | req/s | p50 ms | p99 ms | errors | req/s vs hello | p99 vs hello |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for which in SERVERS:
        rps, p99 = med(which, "requests_per_second"), med(which, "p99_ms")
        errors = sum(r.errors for r in http[which])
        figures["http"][which] = {  # type: ignore[index]
            "requests_per_second": round(rps, 1),
            "p50_ms": round(med(which, "p50_ms"), 2),
            "p99_ms": round(p99, 2),
            "errors": errors,
            "requests_per_second_vs_hello": round(rps / hello_rps, 3),
            "p99_vs_hello": round(p99 / hello_p99, 3),
        }
        print(
            f"| {which} | {rps:.0f} | {med(which, 'p50_ms'):.2f} | {p99:.2f} | {errors} "
            f"| {rps / hello_rps:.2f} | {p99 / hello_p99:.2f} |"
        )
    print(f"\nWebSocket frames/s ({args.ws_connections} sockets): {statistics.median(frames):.0f}")
    print(
        f"Agent server RSS: {before:.1f} MB idle, {after:.1f} MB with {args.idle} idle "
        f"WebSockets (+{after - before:.1f} MB, {1024 * (after - before) / args.idle:.1f} KB "
        f"each; target: under {MEMORY_TARGET_MB:.0f} MB)"
    )
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.chdir(REPO_ROOT)
    raise SystemExit(main())
