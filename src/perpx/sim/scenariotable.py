"""The market figures of several scenarios side by side (issue #19's closing table).

    python -m perpx.sim.scenariotable --data tests/data/prices/btcusd_1m_2023-03-01_2023-03-07.csv \
        [--hours 168] [--scenarios default,calm,crash] [--workers N] [--out table.md]

Each scenario is replayed on the candle file from its start, one per process (seeded and
deterministic, invariants checked every ``run.check_every`` commands), and one markdown
table is printed: p95 |last − index| / index, premium index non-zero, distinct funding rates
and their range, liquidations, ADL steps (by cause, `perpx.sim.adlcause`), the fund's
maximum drawdown and bad debt (`perpx.sim.stress`), commands and wall time.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from perpx.convert import format_atoms, to_atoms
from perpx.feeds.csv_replay import CandleReplay
from perpx.instruments import load_instruments
from perpx.sim.adlcause import CAUSES, AdlCauses, watch_pool
from perpx.sim.figures import MarketFigures
from perpx.sim.runner import Simulation
from perpx.sim.scenario import load_scenario
from perpx.sim.stress import FundWatcher, RunResult

NOTE = ("ADL steps by cause (`perpx.sim.adlcause`): fund = the fund's balance bounded its "
        "close, pool = the ADL pool's drawdown trigger (condition 1), book = the book held too "
        "little within the price band. Bad debt: the loss the fund did not cover (ADL at the "
        "bankruptcy price instead of the mark). Money in the settle coin.")
ROWS = ["p95 \\|last − index\\| / index", "premium index non-zero", "distinct funding rates "
        "/ settlements", "funding rate range", "liquidations", "ADL steps (fund / pool / book)",
        "fund's maximum drawdown", "bad debt (uncovered loss)", "commands, wall time"]


def run_scenario(item: tuple[str, str, float, str]) -> dict[str, Any]:
    """Replay one scenario on the file's first `hours`; return its figures (JSON-ready)."""
    name, data, hours, symbol = item
    spec = next(s for s in load_instruments() if s.symbol == symbol)
    venue = load_scenario(name)
    feed = CandleReplay(data, spec.symbol, spec.tick_size, step_ms=venue.step_ms)
    figures = MarketFigures(spec.symbol, causes=AdlCauses(spec))
    watcher = FundWatcher(spec)
    fund = to_atoms(venue.insurance_fund)
    simulation = Simulation([spec], feed, venue.agents(spec.symbol), tick_every_ms=venue.step_ms,
                            seed=venue.seed, check_every=venue.check_every,
                            observers=[figures, watcher], insurance_fund_atoms=fund)
    assert figures.causes is not None
    watch_pool(figures.causes, simulation.engine)
    started = time.monotonic()
    first = next(iter(feed)).ts_ms
    report = simulation.run(until_ms=first + int(hours * 3_600_000))
    path = watcher.fund_path[1:] if watcher.fund_path and fund > 0 else watcher.fund_path
    result = RunResult(name, (), path, fund, watcher.liquidation_times, watcher.adl_steps,
                       watcher.adl_notional, watcher.bad_debt, simulation.invariant_checks,
                       report.commands, "")
    return {"name": name, **figures.as_dict(), "max_drawdown": format_atoms(
        result.max_drawdown()), "bad_debt": format_atoms(result.bad_debt),
        "fund_start": venue.insurance_fund, "commands": report.commands,
        "invariant_checks": simulation.invariant_checks,
        "seconds": round(time.monotonic() - started, 1)}


def _pct(rate: str | None) -> str:
    return "-" if rate is None else f"{float(rate) * 100:.4f}%"


def table(results: list[dict[str, Any]], hours: float) -> str:
    """Return the markdown table: one column per scenario."""
    head = f"| {hours:g} h of the file, from its start | " + " | ".join(
        f"{r['name']} (fund {r['fund_start']})" for r in results) + " |"
    cells = [
        [_pct(r["basis_p95"]) for r in results],
        [f"{r['premium_nonzero_share']:.1%}" for r in results],
        [f"{r['funding_distinct_rates']} / {r['funding_settlements']}" for r in results],
        [f"{_pct(r['funding_min'])} to {_pct(r['funding_max'])}" for r in results],
        [str(r["liquidations"]) for r in results],
        [f"{r['adl_steps']} ({' / '.join(str(r['adl_causes'][c]) for c in CAUSES)})"
         for r in results],
        [r["max_drawdown"] for r in results],
        [r["bad_debt"] for r in results],
        [f"{r['commands']:,}, {r['seconds']} s" for r in results],
    ]
    lines = [head, "|---|" + "---|" * len(results)]
    lines += [f"| {label} | " + " | ".join(row) + " |"
              for label, row in zip(ROWS, cells, strict=True)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the scenarios in parallel and print (and with --out write) the table."""
    parser = argparse.ArgumentParser(prog="python -m perpx.sim.scenariotable")
    parser.add_argument("--data", required=True)
    parser.add_argument("--hours", type=float, default=168.0)
    parser.add_argument("--scenarios", default="default,calm,crash")
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    items = [(name, args.data, args.hours, args.symbol) for name in args.scenarios.split(",")]
    started = time.monotonic()
    if args.workers == 1:
        results = [run_scenario(item) for item in items]
    else:
        with ProcessPoolExecutor(max_workers=min(args.workers, len(items))) as pool:
            results = list(pool.map(run_scenario, items))
    text = table(results, args.hours)
    text += (f"\n\n{len(items)} scenarios in {args.workers} processes: "
             f"{time.monotonic() - started:.0f} s wall; invariants held at "
             f"{sum(r['invariant_checks'] for r in results)} checks.\n")
    print(text)
    if args.out is not None:
        command = "python -m perpx.sim.scenariotable " + shlex.join(
            sys.argv[1:] if argv is None else argv)
        args.out.write_text(f"# Scenarios side by side\n\n    {command}\n\n{NOTE}\n\n{text}")


if __name__ == "__main__":
    main()
