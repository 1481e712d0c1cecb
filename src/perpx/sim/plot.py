"""Charts of a simulation's time series (matplotlib, headless; `pip install perpx[plot]`).

One figure, time on a shared axis: index/mark/last price with liquidation and ADL markers;
the predicted funding rate and each settlement; open interest; the insurance fund;
liquidations so far (count and notional); the traders' equity distribution over time, and a
histogram of their final equity against what they deposited. Integers become floats here
only, to be drawn.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perpx.convert import format_ticks
from perpx.core.enums import Side
from perpx.core.numbers import ATOM_DECIMALS, RATE_ONE
from perpx.sim.series import SeriesRecorder

NAN = float("nan")  # a gap in a drawn line (no price yet)
ATOMS_PER_COIN: int = 10**ATOM_DECIMALS


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as missing:
        raise PlotUnavailable("plots need matplotlib: pip install 'perpx[plot]'") from missing
    matplotlib.use("Agg")  # headless: files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _time(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1_000, tz=UTC)


def plot_series(recorder: SeriesRecorder, path: Path, *, title: str = "",
                dpi: int = 72) -> Path:
    """Draw the recorder's series into a PNG at `path`; return the path."""
    plt = _pyplot()
    spec = recorder.spec
    samples = recorder.samples
    if not samples:
        raise ValueError("plot_series: nothing was sampled")

    def price(ticks: int | None) -> float:
        return float(format_ticks(spec, ticks)) if ticks is not None else NAN

    def usdt(atoms: int | None) -> float:
        return atoms / ATOMS_PER_COIN if atoms is not None else NAN

    times = [_time(s.ts_ms) for s in samples]
    figure = plt.figure(figsize=(12, 17), layout="constrained")
    grid = figure.add_gridspec(7, 3)
    axes = [figure.add_subplot(grid[0:2, :])]
    for row in range(2, 6):
        axes.append(figure.add_subplot(grid[row, :], sharex=axes[0]))
    band = figure.add_subplot(grid[6, 0:2], sharex=axes[0])
    histogram = figure.add_subplot(grid[6, 2])
    prices, funding, interest, fund, liquidations = axes

    # Last first and grey: the mark follows it closely and is drawn over it.
    prices.plot(times, [price(s.last_ticks) for s in samples], lw=2.0, color="lightgrey",
                label="last")
    prices.plot(times, [price(s.index_ticks) for s in samples], lw=1.0, label="index")
    prices.plot(times, [price(s.mark_ticks) for s in samples], lw=0.8, label="mark")
    for side, marker, colour, label in ((Side.BUY, "v", "red", "long liquidated"),
                                        (Side.SELL, "^", "green", "short liquidated")):
        points = [p for p in recorder.liquidations if p.side is side]
        if points:
            prices.scatter([_time(p.ts_ms) for p in points],
                           [price(p.bust_price_ticks) for p in points], marker=marker,
                           color=colour, s=36, zorder=3,
                           label=f"{label} ({len(points)}, at bankruptcy price)")
    if recorder.adl:
        prices.scatter([_time(p.ts_ms) for p in recorder.adl],
                       [price(p.price_ticks) for p in recorder.adl], marker="x",
                       color="purple", s=40, zorder=4, label=f"ADL ({len(recorder.adl)})")
    prices.set_ylabel(f"{spec.symbol} price")
    prices.legend(loc="best", fontsize=8)
    figure.suptitle(title or f"{spec.symbol} simulation", fontsize=9, wrap=True)

    def percent(rate: int | None) -> float:
        return 100 * rate / RATE_ONE if rate is not None else NAN

    funding.plot(times, [percent(s.premium_rate) for s in samples], lw=0.6, color="grey",
                 label="premium index")
    funding.plot(times, [percent(s.predicted_rate) for s in samples], lw=1.0,
                 label="predicted funding rate")
    if recorder.fundings:
        funding.scatter([_time(f.ts_ms) for f in recorder.fundings],
                        [100 * f.rate / RATE_ONE for f in recorder.fundings], color="black",
                        zorder=3, label="settled rate")
        for point in recorder.fundings:
            funding.annotate(f"paid {usdt(point.paid_atoms):,.0f}",
                             (_time(point.ts_ms), 100 * point.rate / RATE_ONE),
                             textcoords="offset points", xytext=(4, 4), fontsize=7)
    funding.axhline(0, color="grey", lw=0.5)
    funding.set_ylabel("rate %")
    funding.legend(loc="best", fontsize=8)

    interest.plot(times, [float(s.open_interest_lots) * float(spec.qty_step)
                          for s in samples], color="teal")
    interest.set_ylabel(f"open interest {spec.base_coin}")

    fund.plot(times, [usdt(s.insurance_fund_atoms) for s in samples], color="darkorange")
    fund.set_ylabel(f"insurance fund {spec.settle_coin}")

    liquidations.step(times, [s.liquidations for s in samples], where="post", color="red",
                      label="liquidations")
    liquidations.step(times, [s.adl_steps for s in samples], where="post", color="purple",
                      label="ADL steps")
    liquidations.set_ylabel("count so far")
    liquidations.legend(loc="upper left", fontsize=8)
    notional = liquidations.twinx()
    notional.plot(times, [usdt(s.liquidated_notional_atoms) for s in samples], color="grey",
                  lw=0.8, ls="--")
    notional.set_ylabel(f"liquidated notional {spec.settle_coin}")

    band.fill_between(times, [usdt(s.equity_p10_atoms) for s in samples],
                      [usdt(s.equity_p90_atoms) for s in samples], alpha=0.3,
                      label="p10-p90")
    band.plot(times, [usdt(s.equity_p50_atoms) for s in samples], label="median")
    band.set_ylabel(f"trader equity {spec.settle_coin}")
    band.legend(loc="best", fontsize=8)

    equities = recorder.equities()
    returns = [100 * (equity - recorder.deposits.get(account, 0))
               / recorder.deposits[account]
               for account, equity in equities.items() if recorder.deposits.get(account)]
    histogram.hist(returns or [0.0], bins=min(20, max(5, len(returns) // 2)), color="slateblue")
    histogram.set_xlabel("final equity vs deposit %")
    histogram.set_ylabel("traders")
    for axis in (*axes, band):
        axis.grid(alpha=0.3)
    for axis in axes[:-1]:
        axis.tick_params(labelbottom=False)
    figure.autofmt_xdate()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path
