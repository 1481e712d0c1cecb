"""Stress tests of a venue (issue #19 items 3 and 4): scenario sweeps and insurance-fund sizing.

A *sweep* runs a scenario once per point of a grid of scenario fields (`--sweep KEY=V1,V2`),
each run seeded and deterministic, in parallel processes. A *fund sizing* replays Monte Carlo
price paths, block-bootstrapped from the real minute returns of a candle file, through the
real engine with the scenario's population, once per path and fund size, and estimates the
probability that the fund is exhausted within the horizon.

Sweep keys are scenario fields written ``table.field`` (``run.insurance_fund``,
``retail.count``, ``makers.level_qty``: in an array of tables, every table), or one of the
aliases in `ALIASES`; ``max_leverage`` caps the retail leverage distribution (weights above
the cap move to the cap). Each grid point is re-validated as a whole scenario before any run.

Every run checks the core's invariants every ``run.check_every`` commands and at the end
(`Simulation.check_invariants`); a breach raises in the worker and fails the sweep.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import os
import random
import tomllib
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from perpx.convert import format_atoms, to_atoms
from perpx.core.account.accounts import INSURANCE_FUND_ID
from perpx.core.commands import Command
from perpx.core.events import BalanceChanged, Deleveraged, Event, Liquidated
from perpx.core.instruments import InstrumentSpec, spec_from_record, spec_record
from perpx.feeds.base import IndexObservation, round_to_tick
from perpx.feeds.csv_replay import CandleReplay, read_candles
from perpx.sim.adlcause import CAUSES, AdlCauses, watch_pool
from perpx.sim.runner import Simulation
from perpx.sim.scenario import (
    SIGNAL_IDS,
    ScenarioError,
    field_type,
    scenario_from_doc,
    scenario_text,
)

ALIASES = {"insurance_fund": "run.insurance_fund", "seed": "run.seed",
           "retail_count": "retail.count", "maker_depth": "makers.level_qty"}
MAX_LEVERAGE = "max_leverage"
CASCADE_WINDOW_MS = 5 * 60_000  # the deepest cascade: most liquidations within 5 minutes
SUMMARY_COLUMNS = ["run", "params", "liquidations", "deepest_cascade_5min", "adl_steps",
                   "adl_fund", "adl_pool", "adl_book", "adl_notional", "bad_debt", "fund_start",
                   "fund_end", "fund_min",
                   "max_drawdown", "recovery_minutes", "exhausted", "invariant_checks",
                   "commands", "digest"]


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One run: a scenario document with overrides applied, on a price feed.

    The feed is a window of a candle file (`data`, `start_ms`, `hours`) or a given price path
    (`prices`, one a minute).
    """

    label: str
    params: tuple[tuple[str, str], ...]
    doc: dict[str, Any]
    spec: InstrumentSpec
    hours: float
    data: str | None = None
    start_ms: int | None = None
    prices: tuple[tuple[int, str], ...] = ()


@dataclass(slots=True)
class RunResult:
    """What a stress report keeps of one run; money in atoms of the settle coin."""

    label: str
    params: tuple[tuple[str, str], ...]
    fund_path: list[tuple[int, int]]  # (ts_ms, balance) after each change of the fund
    fund_start: int
    liquidation_times: list[int]
    adl_steps: int
    adl_notional: int
    bad_debt: int
    invariant_checks: int
    commands: int
    digest: str  # sha256 of every event's msgpack, in order: the run to the event
    fields: dict[str, Any] = field(default_factory=dict)
    adl_causes: dict[str, int] = field(default_factory=dict)  # ADL steps by cause (adlcause)

    @property
    def fund_min(self) -> int:
        """Return the lowest balance the fund reached (its start if it never fell)."""
        return min([self.fund_start, *(b for _, b in self.fund_path)])

    @property
    def fund_end(self) -> int:
        """Return the fund's balance at the end."""
        return self.fund_path[-1][1] if self.fund_path else self.fund_start

    def max_drawdown(self) -> int:
        """Return the largest fall of the fund from a previous peak (0 if it never fell)."""
        peak, worst = self.fund_start, 0
        for _, balance in self.fund_path:
            peak = max(peak, balance)
            worst = max(worst, peak - balance)
        return worst

    def deepest_cascade(self, window_ms: int = CASCADE_WINDOW_MS) -> int:
        """Return the most liquidations within any `window_ms` (a sliding window)."""
        times, best, first = self.liquidation_times, 0, 0
        for last, ts in enumerate(times):
            while ts - times[first] >= window_ms:
                first += 1
            best = max(best, last - first + 1)
        return best

    def recovery_ms(self) -> int | None:
        """Return the time the fund took to come back to its start level.

        From the first fall below the start to the first return to it after the lowest
        point; 0 if the fund never fell below, None if it never came back.
        """
        below = next((ts for ts, b in self.fund_path if b < self.fund_start), None)
        if below is None:
            return 0
        low = min(range(len(self.fund_path)), key=lambda i: self.fund_path[i][1])
        back = next((ts for ts, b in self.fund_path[low:] if b >= self.fund_start), None)
        return None if back is None else back - below

    def exhausted(self) -> bool:
        """Tell whether the fund ran out (reached 0 or less, or could not pay for a close).

        The fund never closes past what its balance covers, so its balance itself rarely
        reaches 0: running out shows as an ADL step caused by the fund's balance (ADL
        condition 2's side of a takeover, `perpx.sim.adlcause`).
        """
        return self.fund_min <= 0 or self.adl_causes.get("fund", 0) > 0

    def row(self) -> list[str]:
        """Return the summary-table row (SUMMARY_COLUMNS)."""
        recovery = self.recovery_ms()
        return [self.label, " ".join(f"{k}={v}" for k, v in self.params),
                str(len(self.liquidation_times)), str(self.deepest_cascade()),
                str(self.adl_steps),
                *(str(self.adl_causes.get(c, 0)) for c in CAUSES),
                format_atoms(self.adl_notional),
                format_atoms(self.bad_debt), format_atoms(self.fund_start),
                format_atoms(self.fund_end), format_atoms(self.fund_min),
                format_atoms(self.max_drawdown()),
                "never" if recovery is None else str(recovery // 60_000),
                str(self.exhausted()).lower(), str(self.invariant_checks), str(self.commands),
                self.digest[:16]]


class FundWatcher:
    """Observer folding the figures of a stress report from events, with a running digest."""

    def __init__(self, spec: InstrumentSpec) -> None:
        self.spec = spec
        self.fund_path: list[tuple[int, int]] = []
        self.liquidation_times: list[int] = []
        self.adl_steps = 0
        self.adl_notional = 0
        self.bad_debt = 0
        self.hash = hashlib.sha256()
        self.encoder = msgspec.msgpack.Encoder()
        self.causes = AdlCauses(spec)

    def __call__(self, command: Command, events: list[Event]) -> None:
        """Observe one applied command (the `Simulation` observer signature)."""
        self.causes(command, events)
        for event in events:
            self.hash.update(self.encoder.encode(event))
            if isinstance(event, BalanceChanged):
                if (event.account_id == INSURANCE_FUND_ID
                        and event.coin == self.spec.settle_coin):
                    self.fund_path.append((command.ts_ms, event.balance_atoms))
            elif isinstance(event, Liquidated):
                self.liquidation_times.append(event.ts_ms)
            elif isinstance(event, Deleveraged):
                self.adl_steps += 1
                at_bust = self.spec.notional_atoms(event.price_ticks, event.qty_lots)
                self.adl_notional += at_bust
                # The deleveraged trader is closed at the bankrupt position's price instead of
                # the mark: the profit given up is the loss the fund did not cover.
                self.bad_debt += abs(
                    self.spec.notional_atoms(event.mark_price_ticks, event.qty_lots) - at_bust)


class _PathFeed:
    """A `PriceFeed` of given (ts_ms, price) points for one symbol."""

    def __init__(self, symbol: str, prices: Sequence[tuple[int, str]]) -> None:
        self.symbol = symbol
        self.prices = prices

    def __iter__(self) -> Iterator[IndexObservation]:
        return (IndexObservation(ts, self.symbol, price) for ts, price in self.prices)


class _Window:
    """A candle replay's observations in [start_ms, end_ms)."""

    def __init__(self, replay: CandleReplay, start_ms: int) -> None:
        self.replay = replay
        self.start_ms = start_ms

    def __iter__(self) -> Iterator[IndexObservation]:
        return (o for o in self.replay if o.ts_ms >= self.start_ms)


def run_one(run: RunSpec) -> RunResult:
    """Play one run (in a worker process or inline) and return its figures."""
    venue = scenario_from_doc(run.doc, run.label)
    spec = run.spec
    feed: _PathFeed | _Window
    if run.prices:
        feed = _PathFeed(spec.symbol, run.prices)
        start_ms = run.prices[0][0]
    else:
        if run.data is None or run.start_ms is None:
            raise ValueError("run_one: a candle file and a start, or a price path")
        feed = _Window(CandleReplay(run.data, spec.symbol, spec.tick_size,
                                    step_ms=venue.step_ms), run.start_ms)
        start_ms = run.start_ms
    fund = to_atoms(venue.insurance_fund)
    watcher = FundWatcher(spec)
    agents = venue.agents(spec.symbol, venue.seed)
    simulation = Simulation([spec], feed, agents, tick_every_ms=venue.step_ms, seed=venue.seed,
                            check_every=venue.check_every, observers=[watcher],
                            insurance_fund_atoms=fund)
    watch_pool(watcher.causes, simulation.engine)
    report = simulation.run(until_ms=start_ms + int(run.hours * 3_600_000))
    # The seed deposit is the fund's start level, not a movement of it.
    path = watcher.fund_path[1:] if watcher.fund_path and fund > 0 else watcher.fund_path
    return RunResult(run.label, run.params, path, fund, watcher.liquidation_times,
                     watcher.adl_steps, watcher.adl_notional, watcher.bad_debt,
                     simulation.invariant_checks, report.commands, watcher.hash.hexdigest(),
                     {"traders": sum(a.account_id >= SIGNAL_IDS for a in agents)},
                     dict(watcher.causes.counts))


def run_all(runs: Sequence[RunSpec], workers: int | None = None) -> list[RunResult]:
    """Run every spec, in `workers` processes (default every core; 1: in this process)."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(runs) == 1:
        return [run_one(run) for run in runs]
    with ProcessPoolExecutor(max_workers=min(workers, len(runs))) as pool:
        return list(pool.map(_run_portable, [_portable(run) for run in runs]))


def _portable(run: RunSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return `run` as plain data for a worker: its fields, and its instrument as a record.

    The compiled core's frozen dataclasses (`InstrumentSpec`, `RiskLimitTier`) do not unpickle
    (their ``__setattr__`` refuses the state pickle restores), so the instrument travels as
    `spec_record`'s data, the form a `ListInstrument` command and a snapshot carry.
    """
    plain = {item.name: getattr(run, item.name) for item in fields(run) if item.name != "spec"}
    return plain, spec_record(run.spec)


def _run_portable(item: tuple[dict[str, Any], dict[str, Any]]) -> RunResult:
    """Rebuild a run sent by `_portable` in the worker and play it."""
    plain, record = item
    return run_one(RunSpec(spec=spec_from_record(record), **plain))


def load_doc(name_or_path: str) -> tuple[dict[str, Any], str]:
    """Return a scenario's TOML document (validated) and its name, for overrides."""
    text, name = scenario_text(name_or_path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as bad:
        raise ScenarioError(f"{name}: not TOML: {bad}") from None
    scenario_from_doc(doc, name)
    return doc, name


# --- sweep keys ----------------------------------------------------------------------------


def parse_sweep(texts: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Parse ``KEY=V1,V2,...`` options into (key, values), refusing empty or repeated keys."""
    axes: list[tuple[str, list[str]]] = []
    for text in texts:
        key, sep, values = text.partition("=")
        key = key.strip()
        parts = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not parts:
            raise ScenarioError(f"--sweep {text!r}: KEY=V1,V2,...")
        if key in (k for k, _ in axes):
            raise ScenarioError(f"--sweep {key}: given twice")
        axes.append((key, parts))
    return axes


def _typed(where: str, want: type | None, text: str) -> Any:
    if want is None:
        raise ScenarioError(f"--sweep {where}: unknown field (use table.field, or one of "
                            f"{', '.join(sorted([*ALIASES, MAX_LEVERAGE]))})")
    try:
        if want is int:
            return int(text)
        if want is float:
            return float(text)
    except ValueError:
        raise ScenarioError(f"--sweep {where}: a {want.__name__}, not {text!r}") from None
    if want is str:
        return text
    raise ScenarioError(f"--sweep {where}: a {want.__name__} field cannot be swept")


def apply_override(doc: dict[str, Any], key: str, value: str) -> None:
    """Set one sweep key in a scenario document (in place)."""
    if key == MAX_LEVERAGE:
        cap = _typed(key, int, value)
        retail = doc.setdefault("retail", {})
        merged: dict[int, float] = {}
        for lev, weight in retail.get("leverage", [[20, 1.0]]):
            merged[min(int(lev), cap)] = merged.get(min(int(lev), cap), 0.0) + float(weight)
        retail["leverage"] = [[lev, weight] for lev, weight in sorted(merged.items())]
        return
    table, dot, name = ALIASES.get(key, key).partition(".")
    typed = _typed(key, field_type(table, name) if dot else None, value)
    target = doc.setdefault(table, [{}] if table in ("makers", "arbitrageurs", "signals")
                            else {})
    for entry in target if isinstance(target, list) else [target]:
        entry[name] = typed


def sweep_runs(doc: dict[str, Any], name: str, axes: Sequence[tuple[str, list[str]]], *,
               spec: InstrumentSpec, data: str, start_ms: int, hours: float) -> list[RunSpec]:
    """Return one validated run per point of the grid, in the grid's order."""
    runs = []
    for number, values in enumerate(itertools.product(*(v for _, v in axes)), start=1):
        params = tuple(zip((k for k, _ in axes), values, strict=True))
        point = copy.deepcopy(doc)
        for key, value in params:
            apply_override(point, key, value)
        scenario_from_doc(point, name)  # refuse a bad grid point before any run
        runs.append(RunSpec(f"{name}-{number:03d}", params, point, spec, hours, data=data,
                            start_ms=start_ms))
    return runs


# --- fund sizing: block bootstrap ----------------------------------------------------------


def minute_returns(data: str | Path) -> tuple[int, Decimal, list[float]]:
    """Return a candle file's first open time, first close and its close-to-close ratios."""
    closes = [(c.open_ms, c.close) for c in read_candles(data)]
    if len(closes) < 2:
        raise ValueError(f"{data}: two candles are needed for returns")
    ratios = [float(b / a) for a, b in itertools.pairwise(c for _, c in closes)]
    return closes[0][0], closes[0][1], ratios


def bootstrap_blocks(returns: Sequence[float], steps: int, block: int,
                     rng: random.Random) -> list[int]:
    """Return the start indices of the blocks of one path (moving-block bootstrap).

    Whole blocks of `block` consecutive returns are drawn with replacement, so the
    volatility clustering inside a block is the sample's own; the last block is cut at
    `steps`.
    """
    if not 1 <= block <= len(returns):
        raise ValueError(f"bootstrap: block of 1 to {len(returns)} returns")
    return [rng.randrange(len(returns) - block + 1) for _ in range(-(-steps // block))]


def bootstrap_returns(returns: Sequence[float], steps: int, block: int,
                      rng: random.Random) -> list[float]:
    """Return `steps` returns: the drawn blocks laid end to end, the last one cut."""
    return [r for b in bootstrap_blocks(returns, steps, block, rng)
            for r in returns[b:b + block]][:steps]


def bootstrap_path(returns: Sequence[float], first_price: Decimal, start_ms: int, steps: int,
                   block: int, rng: random.Random, tick_size: str) -> list[tuple[int, str]]:
    """Return one price path: `steps` + 1 minute prices rounded to the tick."""
    ratios = bootstrap_returns(returns, steps, block, rng)
    price = float(first_price)
    path = [(start_ms, round_to_tick(first_price, tick_size))]
    for minute, ratio in enumerate(ratios, start=1):
        price *= ratio
        path.append((start_ms + minute * 60_000, round_to_tick(Decimal(repr(price)),
                                                                tick_size)))
    return path


def sizing_runs(doc: dict[str, Any], name: str, *, spec: InstrumentSpec, data: str,
                paths: int, horizon_hours: float, funds: Sequence[str], block: int,
                seed: int) -> list[RunSpec]:
    """Return one run per (path, fund): each path replayed with each fund size."""
    start_ms, first, returns = minute_returns(data)
    steps = math.ceil(horizon_hours * 60)
    rng = random.Random(seed)
    runs = []
    for p in range(1, paths + 1):
        prices = tuple(bootstrap_path(returns, first, start_ms, steps, block, rng,
                                      spec.tick_size))
        for fund in funds:
            point = copy.deepcopy(doc)
            apply_override(point, "insurance_fund", fund)
            scenario_from_doc(point, name)
            runs.append(RunSpec(f"path{p:03d}-fund{fund}", (("path", str(p)),
                                                            ("insurance_fund", fund)),
                                point, spec, horizon_hours, prices=prices))
    return runs


# --- reports -------------------------------------------------------------------------------


EXHAUSTION_COLUMNS = ["insurance_fund", "paths", "exhausted", "probability", "with_adl",
                      "mean_max_drawdown", "mean_bad_debt"]


def exhaustion_curve(results: Sequence[RunResult]) -> list[list[str]]:
    """Return per fund size: paths, exhausted, probability, runs with ADL, mean drawdown."""
    by_fund: dict[str, list[RunResult]] = {}
    for r in results:
        by_fund.setdefault(dict(r.params)["insurance_fund"], []).append(r)
    rows = []
    for fund, group in sorted(by_fund.items(), key=lambda kv: to_atoms(kv[0])):
        exhausted = sum(r.exhausted() for r in group)
        rows.append([fund, str(len(group)), str(exhausted), f"{exhausted / len(group):.3f}",
                     str(sum(r.adl_steps > 0 for r in group)),
                     format_atoms(sum(r.max_drawdown() for r in group) // len(group)),
                     format_atoms(sum(r.bad_debt for r in group) // len(group))])
    return rows
