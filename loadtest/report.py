"""A scenario's results, read from what the locust process wrote, as a table and as JSON.

Inputs, both in the run's output directory: locust's own ``--json-file`` (per request type and
name: counts, failures and the response-time histogram, written once at the end), and the extras
file of :mod:`loadtest.locustfile` (each error's kind and count, frames, callbacks, why the run
stopped). Locust's CSV files stay there for the reader; they are rewritten every second, so
their last second may be missing, and are not used here. Nothing here imports
locust: importing it would gevent-patch this (the CLI's) process.

Percentiles come from locust's histogram, whose buckets are exact to 100 ms, then 10 ms wide to
1 s, then 100 ms wide, so a figure is at most one bucket above the true value; they are computed
as locust computes them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PERCENTILES = (0.50, 0.95, 0.99)


@dataclass(frozen=True)
class Row:
    """One locust stats entry: a request type and name."""

    kind: str
    name: str
    requests: int
    failures: int
    requests_per_second: float
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None
    max_ms: float | None


@dataclass(frozen=True)
class Failure:
    kind: str
    name: str
    error: str
    occurrences: int


@dataclass(frozen=True)
class ScenarioReport:
    scenario: str
    target: str
    local: bool
    users: int
    run_time_seconds: float
    max_requests: int
    stopped_by: str
    # From the first request to the moment the run stopped sending.
    send_seconds: float
    requests_sent: int
    rows: tuple[Row, ...]
    failures: tuple[Failure, ...]
    ws_frames: int = 0
    frames_per_second: float | None = None
    webhook: Mapping[str, int] | None = None
    artefacts: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> int:
        """Every failed measurement; a callback counted missing is one of them."""
        return sum(row.failures for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["errors"] = self.errors
        return data


def percentile(histogram: Mapping[int, int], total: int, fraction: float) -> int | None:
    """Locust's ``calculate_response_time_percentile``: the bucket holding the fraction."""
    if total <= 0 or not histogram:
        return None
    wanted = int(total * fraction)
    processed = 0
    for response_time in sorted(histogram, reverse=True):
        processed += histogram[response_time]
        if total - processed <= wanted:
            return response_time
    return 0


def read_rows(stats_json: Path, send_seconds: float) -> list[Row]:
    entries = json.loads(stats_json.read_text(encoding="utf-8"))
    rows = []
    for entry in entries:
        histogram = {int(k): int(v) for k, v in (entry.get("response_times") or {}).items()}
        requests = int(entry.get("num_requests") or 0)
        values = [percentile(histogram, requests, fraction) for fraction in PERCENTILES]
        rows.append(
            Row(
                kind=str(entry.get("method") or ""),
                name=str(entry["name"]),
                requests=requests,
                failures=int(entry.get("num_failures") or 0),
                requests_per_second=requests / send_seconds if send_seconds > 0 else 0.0,
                p50_ms=values[0],
                p95_ms=values[1],
                p99_ms=values[2],
                max_ms=entry.get("max_response_time"),
            )
        )
    return rows


def read_failures(extras: Mapping[str, Any]) -> list[Failure]:
    return [
        Failure(
            kind=str(item["kind"]),
            name=str(item["name"]),
            error=str(item["error"]),
            occurrences=int(item["occurrences"]),
        )
        for item in extras.get("failures") or ()
    ]


def build_report(
    *,
    scenario: str,
    target: str,
    local: bool,
    users: int,
    run_time_seconds: float,
    out_dir: Path,
    prefix: str,
) -> ScenarioReport:
    """The report of one finished locust run whose files are ``out_dir/prefix*``."""
    extras = json.loads((out_dir / f"{prefix}_extras.json").read_text(encoding="utf-8"))
    started, stopped = extras.get("started_at"), extras.get("stopped_at")
    send_seconds = float(stopped - started) if started and stopped else 0.0
    rows = read_rows(out_dir / f"{prefix}_stats.json", send_seconds)
    frames = int(extras.get("ws_frames") or 0)
    return ScenarioReport(
        scenario=scenario,
        target=target,
        local=local,
        users=users,
        run_time_seconds=run_time_seconds,
        max_requests=int(extras["max_requests"]),
        stopped_by=str(extras["stopped_by"]),
        send_seconds=round(send_seconds, 3),
        requests_sent=int(extras["requests_sent"]),
        rows=tuple(rows),
        failures=tuple(read_failures(extras)),
        ws_frames=frames,
        frames_per_second=round(frames / send_seconds, 1)
        if scenario == "ws" and send_seconds > 0
        else None,
        webhook=extras.get("webhook"),
        artefacts=str(out_dir),
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def render(report: ScenarioReport) -> str:
    """The scenario's table, in Markdown so it pastes into an issue or the README."""
    where = "local" if report.local else "remote"
    lines = [
        f"## {report.scenario}: {report.target} ({where}), {report.users} users, "
        f"stopped by {report.stopped_by} after {report.send_seconds:.1f} s, "
        f"{report.requests_sent} requests sent",
        "",
        "| type | name | requests | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report.rows:
        lines.append(
            f"| {row.kind} | {row.name} | {row.requests} | {row.requests_per_second:.1f} "
            f"| {_ms(row.p50_ms)} | {_ms(row.p95_ms)} | {_ms(row.p99_ms)} | {row.failures} |"
        )
    if report.frames_per_second is not None:
        lines += [
            "",
            f"WebSocket frames received: {report.ws_frames} ({report.frames_per_second:g}/s)",
        ]
    if report.webhook is not None:
        counts = ", ".join(
            f"{name.replace('_', ' ')} {value}" for name, value in report.webhook.items()
        )
        lines += ["", f"Webhook: {counts}"]
    lines += ["", f"Errors: {report.errors}"]
    for failure in report.failures:
        lines.append(f"- {failure.occurrences} x {failure.kind} {failure.name}: {failure.error}")
    lines += ["", f"Locust CSV/JSON and the local targets' logs: {report.artefacts}"]
    return "\n".join(lines)


def write_json(path: Path, reports: Sequence[ScenarioReport]) -> None:
    document = {
        "scenarios": [report.to_dict() for report in reports],
        "errors": sum(report.errors for report in reports),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
