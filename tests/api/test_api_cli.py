from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from perpx.bench.api import bench_api
from perpx.cli import app

runner = CliRunner()


def test_keys_commands(tmp_path: Path) -> None:
    made = runner.invoke(app, ["keys", "create", "--json", "--read-only", "--demo-funds",
                               "100000", "--data", str(tmp_path)])
    assert made.exit_code == 0, made.output
    key = json.loads(made.output)
    assert set(key) == {"api_key", "api_secret", "account_id"}
    listed = runner.invoke(app, ["keys", "list", "--json", "--data", str(tmp_path)])
    (row,) = json.loads(listed.output)
    assert row["read_only"] and row["api_key"] == key["api_key"]
    assert key["api_secret"] not in listed.output
    assert runner.invoke(app, ["keys", "revoke", key["api_key"], "--data",
                               str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", key["api_key"], "--data",
                               str(tmp_path)]).exit_code == 1


def test_bench_api_runs_end_to_end() -> None:
    lines: list[str] = []
    result = bench_api(clients=2, seconds=0.5, ws_subscribers=2, echo=lines.append)
    assert json.loads(lines[-1]) == result
    assert result["orders_per_s"] > 0 and result["order_retcodes"] == {
        "0": sum(result["order_retcodes"].values())}
    assert result["baseline_time_req_per_s"] > 0 and result["client_ceiling_req_per_s"] > 0
    assert result["ws_msgs_per_s"] > 0
