"""`perpx bench projector`: the fold alone, then a projector into SQLite (and JetStream)."""

from __future__ import annotations

import json

import pytest

from perpx.bench.projector import bench_projector


@pytest.mark.service
def test_bench_projector_reports_each_path_with_json_last(nats_url: str) -> None:
    lines: list[str] = []
    report = bench_projector(400, nats_url, max_batch=64, echo=lines.append)
    assert json.loads(lines[-1]) == report
    assert report["fold"]["events_per_s"] > 0
    for path in ("sqlite", "jetstream_sqlite"):
        assert report[path]["rows"] > 0 and report[path]["events_per_s"] > 0
        assert report[path]["checkpoint_bytes"] > 0
    # The same flow gives the same rows by either bus.
    assert report["sqlite"]["rows"] == report["jetstream_sqlite"]["rows"]
