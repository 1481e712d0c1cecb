from __future__ import annotations

import json

import pytest

from perpx.bench.bus import bench_bus


@pytest.mark.service
def test_bench_bus_reports_both_buses_with_json_last(nats_url: str) -> None:
    lines: list[str] = []
    report = bench_bus(300, nats_url, max_batch=64, echo=lines.append)
    assert json.loads(lines[-1]) == report
    for bus in ("inprocess", "jetstream"):
        assert report[bus]["events_consumed"] == report["events"] > 0
        assert report[bus]["publish_events_per_s"] > 0
