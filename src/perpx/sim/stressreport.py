"""A stress report's folder (`perpx sim --sweep` / `--fund-sizing --report-dir`).

Tables as CSV and markdown (exact decimal strings), and with `plot` the charts of
`perpx.sim.stressplot`.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from perpx.convert import format_atoms
from perpx.sim.adlcause import CAUSE_TEXT
from perpx.sim.stress import (
    CASCADE_WINDOW_MS,
    EXHAUSTION_COLUMNS,
    SUMMARY_COLUMNS,
    RunResult,
    exhaustion_curve,
)


def write_sweep_report(results: Sequence[RunResult], axes: Sequence[tuple[str, list[str]]],
                       folder: Path, *, command_line: str, plot: bool = True) -> list[Path]:
    """Write summary.csv, summary.md, fund_paths.csv and (with `plot`) the charts."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "summary.csv", folder / "fund_paths.csv", folder / "summary.md"]
    with written[0].open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(SUMMARY_COLUMNS)
        writer.writerows(r.row() for r in results)
    with written[1].open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["run", "ts_ms", "insurance_fund"])
        for r in results:
            writer.writerow([r.label, "", format_atoms(r.fund_start)])
            writer.writerows([r.label, ts, format_atoms(b)] for ts, b in r.fund_path)
    lines = ["# Stress sweep", "", f"    {command_line}", "",
             f"Deepest cascade: most liquidations within {CASCADE_WINDOW_MS // 60_000} "
             "minutes. Bad debt: the loss the fund did not cover (ADL at the bankruptcy "
             "price instead of the mark). Recovery: minutes from the first fall below the "
             "start level back to it. ADL steps by cause (`perpx.sim.adlcause`): "
             f"adl_fund = {CAUSE_TEXT['fund']}, adl_pool = {CAUSE_TEXT['pool']}, "
             f"adl_book = {CAUSE_TEXT['book']}.", "",
             "| " + " | ".join(SUMMARY_COLUMNS[:-1]) + " |",
             "|" + "---|" * (len(SUMMARY_COLUMNS) - 1)]
    lines += ["| " + " | ".join(r.row()[:-1]) + " |" for r in results]
    if plot:
        from perpx.sim.stressplot import plot_fund_paths, plot_heatmaps

        written.append(plot_fund_paths(results, folder / "fund_paths.png"))
        lines += ["", "![fund paths](fund_paths.png)"]
        if len(axes) >= 2:
            written.append(plot_heatmaps(results, axes, folder / "heatmaps.png"))
            lines += ["", "![heatmaps](heatmaps.png)"]
    lines += ["", "Files: `summary.csv` (this table), `fund_paths.csv` (each run's fund after "
              "every change)."]
    written[2].write_text("\n".join(lines) + "\n")
    return written


def write_sizing_report(results: Sequence[RunResult], folder: Path, *, command_line: str,
                        block: int, plot: bool = True) -> list[Path]:
    """Write exhaustion.csv, runs.csv, report.md and (with `plot`) exhaustion.png."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "exhaustion.csv", folder / "runs.csv", folder / "report.md"]
    curve = exhaustion_curve(results)
    with written[0].open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(EXHAUSTION_COLUMNS)
        writer.writerows(curve)
    with written[1].open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(SUMMARY_COLUMNS)
        writer.writerows(r.row() for r in results)
    lines = ["# Insurance fund sizing", "", f"    {command_line}", "",
             f"Price paths: moving-block bootstrap of the file's minute returns, blocks of "
             f"{block} minutes. Exhausted: within the horizon the fund's balance reached 0 or "
             "less, or it could not pay for a takeover's close (an ADL step caused by its "
             "balance: the fund never closes past what its balance covers). Bad debt: the "
             "loss the fund did not cover (ADL at the bankruptcy price instead of the "
             "mark).", "",
             "| " + " | ".join(EXHAUSTION_COLUMNS) + " |",
             "|" + "---|" * len(EXHAUSTION_COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in curve]
    if plot:
        from perpx.sim.stressplot import plot_exhaustion

        written.append(plot_exhaustion(curve, folder / "exhaustion.png"))
        lines += ["", "![exhaustion](exhaustion.png)"]
    lines += ["", "Files: `exhaustion.csv` (this table), `runs.csv` (every path and fund)."]
    written[2].write_text("\n".join(lines) + "\n")
    return written
