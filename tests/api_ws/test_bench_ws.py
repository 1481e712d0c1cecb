"""`perpx bench ws` runs end to end and ends with its JSON line (figures are not asserted)."""

from __future__ import annotations

import json

from perpx.bench.ws import bench_ws


def test_bench_ws_prints_json_last() -> None:
    lines: list[str] = []
    bench_ws(subscribers=3, seconds=0.3, per_tick=5, echo=lines.append)
    result = json.loads(lines[-1])
    assert result["subscribers"] == 3 and result["ws_msgs_per_s"] > 0
    assert result["baseline_msgs_per_s"] > 0 and "ratio_vs_baseline" in result


def test_bench_ws_through_a_gateway_reports_each_process() -> None:
    lines: list[str] = []
    result = bench_ws(subscribers=2, seconds=0.5, per_tick=5, echo=lines.append, gateways=[1],
                      gateway_subscribers=10)
    assert json.loads(lines[-1]) == result
    assert result["gateways_1_subscribers"] == 10 and result["gateways_1_cut_off"] == 0
    assert result["gateways_1_msgs_per_s"] > 0 and result["gateways_1_commands"] > 0
    assert len(result["gateways_1_gateway_rss_mb"]) == 1
    assert len(result["gateways_1_gateway_cpu"]) == 1


def test_bench_ws_with_counting_client_processes() -> None:
    lines: list[str] = []
    result = bench_ws(subscribers=4, seconds=0.5, per_tick=5, echo=lines.append, gateways=[1],
                      gateway_subscribers=6, client_processes=2)
    assert json.loads(lines[-1]) == result and result["client_processes"] == 2
    low, high = result["per_subscriber_min_max"]
    assert 0 < low <= high and result["ws_msgs_per_s"] > 0 and result["cut_off"] == 0
    assert len(result["clients_cpu"]) == 2 and result["server_rss_mb"]
    assert result["gateways_1_msgs_per_s"] > 0 and result["gateways_1_cut_off"] == 0
    assert len(result["gateways_1_client_procs_rss_mb"]) == 2
