"""Reading a run's files into a report: locust's percentiles, errors never dropped."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.report import build_report, percentile, render


def test_percentiles_are_computed_as_locust_computes_them() -> None:
    # 100 requests: 50 at 1 ms, 45 at 2 ms, 4 at 10 ms, 1 at 100 ms.
    histogram = {1: 50, 2: 45, 10: 4, 100: 1}
    assert percentile(histogram, 100, 0.50) == 2
    assert percentile(histogram, 100, 0.95) == 10
    assert percentile(histogram, 100, 0.99) == 100
    assert percentile({}, 0, 0.5) is None


def test_a_report_counts_and_lists_every_failure(tmp_path: Path) -> None:
    (tmp_path / "webhook_stats.json").write_text(
        json.dumps(
            [
                {
                    "name": "POST /webhook",
                    "method": "POST",
                    "num_requests": 4,
                    "num_failures": 0,
                    "max_response_time": 12.5,
                    "response_times": {"5": 3, "12": 1},
                },
                {
                    "name": "202 -> callback",
                    "method": "CALLBACK",
                    "num_requests": 4,
                    "num_failures": 1,
                    "max_response_time": 30000,
                    "response_times": {"300": 3, "30000": 1},
                },
            ]
        )
    )
    (tmp_path / "webhook_extras.json").write_text(
        json.dumps(
            {
                "started_at": 100.0,
                "stopped_at": 102.0,
                "stopped_by": "run-time",
                "requests_sent": 4,
                "max_requests": 10,
                "ws_frames": 0,
                "failures": [
                    {
                        "kind": "CALLBACK",
                        "name": "202 -> callback",
                        "error": "no callback within 30 s",
                        "occurrences": 1,
                    }
                ],
                "webhook": {"accepted": 4, "callbacks_verified": 3, "callbacks_missing": 1},
            }
        )
    )
    report = build_report(
        scenario="webhook",
        target="http://127.0.0.1:1",
        local=True,
        users=2,
        run_time_seconds=2,
        out_dir=tmp_path,
        prefix="webhook",
    )
    assert report.errors == 1
    callback = report.rows[1]
    assert (callback.p50_ms, callback.p99_ms, callback.requests_per_second) == (300, 30000, 2.0)
    table = render(report)
    assert "1 x CALLBACK 202 -> callback: no callback within 30 s" in table
    assert "callbacks missing 1" in table
    assert report.to_dict()["errors"] == 1
