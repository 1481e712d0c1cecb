"""Charts of a stress report (matplotlib, headless; `pip install perpx[plot]`).

The fund's path of every run of a sweep; heatmaps of the first two sweep keys against the
maximum drawdown, the bad debt and the deepest cascade (the mean over any further keys);
the fund sizing's exhaustion curve. Small PNGs (low dpi): they are committed under docs/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from perpx.sim.plot import ATOMS_PER_COIN, _pyplot
from perpx.sim.stress import RunResult

DPI = 80


def plot_fund_paths(results: Sequence[RunResult], path: Path) -> Path:
    """Draw each run's insurance fund over time as a step line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for r in results:
        if not r.fund_path:
            continue
        times = [datetime.fromtimestamp(ts / 1000, UTC) for ts, _ in r.fund_path]
        values = [b / ATOMS_PER_COIN for _, b in r.fund_path]
        label = " ".join(f"{k}={v}" for k, v in r.params)
        ax.step([times[0], *times], [r.fund_start / ATOMS_PER_COIN, *values], where="post",
                label=label, linewidth=1)
    ax.set_ylabel("insurance fund")
    ax.set_title("insurance fund per run", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, ncol=2)
    else:  # no run moved its fund
        ax.text(0.5, 0.5, "no change of the fund in any run", ha="center",
                transform=ax.transAxes)
    ax.tick_params(labelsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


HEAT_FIGURES: tuple[tuple[str, Callable[[RunResult], float]], ...] = (
    ("max drawdown", lambda r: r.max_drawdown() / ATOMS_PER_COIN),
    ("bad debt", lambda r: r.bad_debt / ATOMS_PER_COIN),
    ("deepest cascade (5 min)", lambda r: float(r.deepest_cascade())))


def plot_heatmaps(results: Sequence[RunResult], axes: Sequence[tuple[str, list[str]]],
                  path: Path) -> Path:
    """Draw the first two sweep keys against each figure of HEAT_FIGURES."""
    plt = _pyplot()
    (row_key, rows), (col_key, cols) = axes[0], axes[1]
    fig, panels = plt.subplots(1, len(HEAT_FIGURES), figsize=(4 * len(HEAT_FIGURES), 3.2))
    for panel, (title, figure) in zip(panels, HEAT_FIGURES, strict=True):
        grid = []
        for row in rows:
            line = []
            for col in cols:
                cell = [figure(r) for r in results
                        if dict(r.params)[row_key] == row and dict(r.params)[col_key] == col]
                line.append(sum(cell) / len(cell) if cell else float("nan"))
            grid.append(line)
        image = panel.imshow(grid, cmap="Reds", aspect="auto")
        top = max((v for line in grid for v in line if v == v), default=0.0)
        for i, line in enumerate(grid):
            for j, value in enumerate(line):
                # White on the dark cells, black on the light ones.
                panel.text(j, i, f"{value:,.0f}", ha="center", va="center", fontsize=7,
                           color="white" if top and value > top / 2 else "black")
        panel.set_xticks(range(len(cols)), cols, fontsize=7)
        panel.set_yticks(range(len(rows)), rows, fontsize=7)
        panel.set_xlabel(col_key, fontsize=8)
        panel.set_ylabel(row_key, fontsize=8)
        panel.set_title(title, fontsize=9)
        fig.colorbar(image, ax=panel)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_exhaustion(curve: Sequence[Sequence[str]], path: Path) -> Path:
    """Draw the probability of exhausting the fund against its size (exhaustion_curve rows)."""
    plt = _pyplot()
    funds = [float(row[0]) for row in curve]
    probability = [float(row[3]) for row in curve]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(funds, probability, marker="o")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("insurance fund (settle coin)", fontsize=8)
    ax.set_ylabel("P(exhausted within horizon)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
