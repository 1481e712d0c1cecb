"""The summary table of a simulation: what happened, as (label, decimal string) rows."""

from __future__ import annotations

from perpx.convert import format_atoms, format_lots, format_scaled
from perpx.core.enums import Side
from perpx.sim.report import SimulationReport, utc_text
from perpx.sim.series import SeriesRecorder


def summary_rows(recorder: SeriesRecorder, report: SimulationReport) -> list[tuple[str, str]]:
    """Return the table rows: trades, volume, fees, funding, liquidations, ADL, fund, checks."""
    spec = recorder.spec
    coin = spec.settle_coin
    # An inverse quantity is contracts (USD), not the base coin.
    unit = "contracts" if spec.contract.value_sign < 0 else spec.base_coin
    paid = sum(f.paid_atoms for f in recorder.fundings)
    received = sum(f.received_atoms for f in recorder.fundings)
    remainder = sum(f.remainder_atoms for f in recorder.fundings)
    longs = [p for p in recorder.liquidations if p.side is Side.BUY]
    shorts = [p for p in recorder.liquidations if p.side is Side.SELL]
    liquidated_accounts = {p.account_id for p in recorder.liquidations}
    equities = recorder.equities()
    deposits = sum(recorder.deposits.get(a, 0) for a in equities)
    fund_start = recorder.insurance_seeded_atoms
    return [
        ("commands", f"{report.commands:,}"),
        ("trades", f"{recorder.trades:,}"),
        ("volume", f"{format_lots(spec, recorder.volume_lots)} {unit} = "
                   f"{format_atoms(recorder.volume_atoms)} {coin}"),
        ("fees collected", f"{format_atoms(recorder.fees_atoms)} {coin}"),
        ("funding settlements", f"{len(recorder.fundings)}"),
        ("funding paid / received",
         f"{format_atoms(paid)} / {format_atoms(received)} {coin} "
         f"(rounding to the fund {format_atoms(remainder)})"),
        ("liquidations", f"{len(recorder.liquidations)} ({len(longs)} long, "
                         f"{len(shorts)} short; {len(liquidated_accounts)} accounts)"),
        ("liquidated notional",
         f"{format_atoms(recorder.liquidated_notional_atoms)} {coin} "
         f"({format_lots(spec, sum(p.qty_lots for p in recorder.liquidations))} "
         f"{unit})"),
        ("ADL steps", f"{len(recorder.adl)} "
                      f"({format_lots(spec, sum(p.qty_lots for p in recorder.adl))} "
                      f"{unit})"),
        ("insurance fund seeded / end",
         f"{format_atoms(fund_start)} / {format_atoms(recorder.insurance_atoms)} {coin}"),
        ("traders' equity (sum) / deposits",
         f"{format_atoms(sum(equities.values()))} / {format_atoms(deposits)} {coin}"),
        *[(f"delivery {done.symbol}",
           f"{format_scaled(done.price_e8, 8, 8)} at {utc_text(done.delivery_ms)}: "
           f"{done.positions} positions, fee {format_atoms(done.fee_atoms)} {coin}")
          for done in report.deliveries],
        ("invariant checks", f"{report.invariant_checks:,} (all held)"),
    ]


def markdown_table(rows: list[tuple[str, str]]) -> str:
    """Return rows as a two-column Markdown table."""
    lines = ["| | |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in rows]
    return "\n".join(lines)
