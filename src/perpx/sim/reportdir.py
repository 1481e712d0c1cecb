"""A simulation's report folder: report.md, the chart, and CSV files of the series and events.

CSV figures are exact decimal strings (`perpx.convert`), so a spreadsheet or pandas reads
what the engine computed, not a float's approximation of it.
"""

from __future__ import annotations

import csv
from pathlib import Path

from perpx.convert import format_atoms, format_lots, format_rate, format_ticks
from perpx.sim.report import SimulationReport, utc_text
from perpx.sim.series import SeriesRecorder
from perpx.sim.summary import markdown_table, summary_rows

SERIES_COLUMNS = ["time", "ts_ms", "index", "mark", "last", "predicted_funding_rate",
                  "premium_index",
                  "open_interest", "insurance_fund", "liquidations", "liquidated_notional",
                  "adl_steps", "volume", "equity_p10", "equity_p50", "equity_p90"]


def write_series_csv(recorder: SeriesRecorder, path: Path) -> None:
    """Write one row per sample."""
    spec = recorder.spec

    def price(ticks: int | None) -> str:
        return format_ticks(spec, ticks) if ticks is not None else ""

    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(SERIES_COLUMNS)
        for s in recorder.samples:
            writer.writerow([
                utc_text(s.ts_ms), s.ts_ms, price(s.index_ticks), price(s.mark_ticks),
                price(s.last_ticks),
                format_rate(s.predicted_rate) if s.predicted_rate is not None else "",
                format_rate(s.premium_rate) if s.premium_rate is not None else "",
                format_lots(spec, s.open_interest_lots), format_atoms(s.insurance_fund_atoms),
                s.liquidations, format_atoms(s.liquidated_notional_atoms), s.adl_steps,
                format_lots(spec, s.volume_lots), *(
                    format_atoms(v) if v is not None else ""
                    for v in (s.equity_p10_atoms, s.equity_p50_atoms, s.equity_p90_atoms))])


def write_events_csv(recorder: SeriesRecorder, path: Path) -> None:
    """Write the liquidations, ADL steps and funding settlements in time order."""
    spec = recorder.spec
    rows: list[tuple[int, list[str]]] = []
    for p in recorder.liquidations:
        rows.append((p.ts_ms, ["liquidation", str(p.account_id), p.side.name.lower(),
                               format_lots(spec, p.qty_lots),
                               format_ticks(spec, p.bust_price_ticks),
                               format_ticks(spec, p.mark_price_ticks),
                               format_atoms(p.notional_atoms), ""]))
    for a in recorder.adl:
        rows.append((a.ts_ms, ["adl", str(a.account_id), "", format_lots(spec, a.qty_lots),
                               format_ticks(spec, a.price_ticks), "", "", ""]))
    for f in recorder.fundings:
        rows.append((f.ts_ms, ["funding", "", "", "", "",
                               format_ticks(spec, f.mark_price_ticks),
                               format_atoms(f.paid_atoms), format_rate(f.rate)]))
    rows.sort(key=lambda row: row[0])
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["time", "ts_ms", "kind", "account", "side", "qty", "price", "mark",
                         "amount", "rate"])
        for ts_ms, row in rows:
            writer.writerow([utc_text(ts_ms), ts_ms, *row])


def write_report_dir(recorder: SeriesRecorder, report: SimulationReport, folder: Path, *,
                     command_line: str, plot: bool = True) -> list[Path]:
    """Write report.md, series.csv, events.csv and (with `plot`) chart.png; return them."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = recorder.spec
    written = [folder / "series.csv", folder / "events.csv"]
    write_series_csv(recorder, written[0])
    write_events_csv(recorder, written[1])
    lines = [f"# {spec.symbol} simulation", "", f"    {command_line}", ""]
    if report.first_ts_ms is not None and report.last_ts_ms is not None:
        lines += [f"From {utc_text(report.first_ts_ms)} to {utc_text(report.last_ts_ms)} "
                  "(feed time).", ""]
    lines += [markdown_table(summary_rows(recorder, report)), ""]
    if plot:
        from perpx.sim.plot import plot_series

        written.append(plot_series(recorder, folder / "chart.png",
                                   title=f"{spec.symbol}: {command_line}"))
        lines += ["![chart](chart.png)", ""]
    lines += ["Files: `series.csv` (one row per sample), `events.csv` (liquidations, ADL, "
              "funding).", "", "## Engine report", "", "```", report.format({spec.symbol: spec}),
              "```", ""]
    (folder / "report.md").write_text("\n".join(lines))
    written.append(folder / "report.md")
    return written
