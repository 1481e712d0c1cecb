"""`perpx bench journal --quick` runs end to end and ends with its JSON keys (no timing)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from perpx.cli import app
from support.services import POSTGRES_DSN, postgres_or_skip


def test_bench_journal_quick_prints_the_json_keys() -> None:
    postgres_or_skip()
    result = CliRunner().invoke(app, ["bench", "journal", "--quick", "--postgres", POSTGRES_DSN])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    for key in ("durable_orders_per_s", "durable_orders_per_s_postgres",
                "durable_batched_orders_per_s", "durable_batched_orders_per_s_postgres",
                "replay_commands_per_s", "snapshot_s", "snapshot_bytes",
                "journal_only_orders_per_s", "decode_only_commands_per_s",
                "group_commit_ratio", "snapshot_fork_pause_s", "durable_cpu_us_per_command",
                "durable_batched_cpu_us_per_command", "durable_mean_batch",
                "durable_batched_mean_batch"):
        assert figures[key] is not None and figures[key] > 0, key
    assert figures["resting_orders"] == 10_000
    assert (figures["batched_submitters"], figures["batched_batch_size"]) == (16, 64)
