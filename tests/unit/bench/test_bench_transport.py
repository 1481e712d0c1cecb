from __future__ import annotations

import json

from perpx.bench.transport import bench_transport


def test_bench_transport_reports_each_path_with_json_last() -> None:
    lines: list[str] = []
    # No NATS on port 1: that path is reported as not measured, the others still are.
    report = bench_transport(64, "nats://127.0.0.1:1", echo=lines.append)
    assert json.loads(lines[-1]) == report
    for kind in ("inprocess", "unix"):
        for clients in ("1", "16"):
            figures = report[kind][clients]
            assert figures["round_trips"] == 64 and figures["per_s"] > 0
            assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert "error" in report["nats"]
    assert set(report["ratio_to_inprocess"]) == {"unix"}
