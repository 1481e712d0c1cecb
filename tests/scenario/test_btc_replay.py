"""Real BTC prices through the engine: a market maker and noise traders over 32 hours.

The replay: the one-minute Binance.US BTC/USD candles of 2023-03-01 00:00 to 2023-03-02 08:00
UTC (a 2.5% rally to 23,700, a fall to 23,350 and a rebound) as the BTCUSDT index, one
observation every 15 s of feed time along each candle's open → extremes → close path, and a
`Tick` every 15 s, so the clock lands on the funding timestamps 08:00, 16:00, 00:00 and 08:00.
A market maker quotes a ladder it amends as the index moves (the determinism test has it
cancel and replace instead); eight noise traders cover cross and isolated margin, one-way
and hedge mode and 10x-50x leverage, and lean into the index's move over the last half hour
(trend_weight 0.4), which is what moves the premium. About 93,000 commands and 5,000 trades;
the replay takes some 9 s on this 2-core machine, the whole module some 12 s.

Checked: the invariants every 500 commands and at the end; one settlement per 8 h timestamp;
each rate within the caps, equal to the rate the interval's premium samples give, and of
their sign where the premium dominates the interest (both signs occur in this replay); funding
zero-sum with the rounding remainder to the insurance fund; the mark within 1% of the index
after every command; the report agreeing with the engine; the run repeatable and replayable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import pytest

from perpx.core.account.accounts import INSURANCE_FUND_ID
from perpx.core.commands import Command
from perpx.core.engine import Engine
from perpx.core.enums import MarginMode, PositionMode
from perpx.core.events import (
    CommandRejected,
    Event,
    FundingPaid,
    FundingSettled,
    PremiumIndexSampled,
    Trade,
)
from perpx.core.instruments import InstrumentSpec
from perpx.feeds import CandleReplay
from perpx.sim import (
    Agent,
    MarketMaker,
    NoiseTrader,
    Simulation,
    SimulationReport,
    noise_population,
)
from support.builders import PRICES, btcusdt

MINUTE_FILE = PRICES / "btcusd_1m_2023-03-01_2023-03-07.csv"
HOUR_MS = 3_600_000
T0 = 1_677_628_800_000  # 2023-03-01 00:00 UTC
END = T0 + 32 * HOUR_MS  # 2023-03-02 08:00 UTC, a funding timestamp
CHECK_EVERY = 500
MARK_BAND = Fraction(1, 100)



@dataclass
class Replay:
    """What the replay produced, gathered by an observer while it ran."""

    spec: InstrumentSpec
    sim: Simulation
    report: SimulationReport = field(init=False)
    seconds: float = 0.0
    settled: list[FundingSettled] = field(default_factory=list)
    paid: dict[int, list[FundingPaid]] = field(default_factory=dict)
    samples: list[PremiumIndexSampled] = field(default_factory=list)
    setup_rejections: list[CommandRejected] = field(default_factory=list)
    worst_mark_gap: Fraction = Fraction(0)
    commands_seen: int = 0

    def observe(self, command: Command, events: list[Event]) -> None:
        self.commands_seen += 1
        for event in events:
            if isinstance(event, FundingSettled):
                self.settled.append(event)
            elif isinstance(event, FundingPaid):
                self.paid.setdefault(event.funding_ms, []).append(event)
            elif isinstance(event, PremiumIndexSampled):
                self.samples.append(event)
            elif isinstance(event, CommandRejected) and command.ts_ms == T0:
                self.setup_rejections.append(event)
        engine = self.sim.engine
        index = engine.index_price.get(self.spec.symbol)
        mark = engine.mark_price.get(self.spec.symbol)
        if index is not None and mark is not None:
            self.worst_mark_gap = max(self.worst_mark_gap, Fraction(abs(mark - index), index))


def agents(symbol: str, refresh: Literal["amend", "replace"]) -> list[Agent]:
    return [MarketMaker(1, symbol, refresh=refresh),
            *noise_population(symbol, 8, seed=1, long_bias=0.5, short_bias=0.5,
                              trend_weight=0.4)]


def simulation(spec: InstrumentSpec, end_ms: int,
               refresh: Literal["amend", "replace"] = "amend", **kwargs: object) -> Simulation:
    feed = CandleReplay(MINUTE_FILE, spec.symbol, spec.tick_size, step_ms=15_000,
                        start_ms=T0, end_ms=end_ms)
    return Simulation([spec], feed, agents(spec.symbol, refresh), tick_every_ms=15_000, seed=7,
                      **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def replay() -> Replay:
    spec = btcusdt()
    result = Replay(spec, simulation(spec, END, check_every=CHECK_EVERY))
    result.sim.observers.append(result.observe)
    started = time.perf_counter()
    result.report = result.sim.run(until_ms=END)
    result.seconds = time.perf_counter() - started
    print(f"\nreplay of {result.report.commands} commands in {result.seconds:.1f} s\n"
          + result.report.format({spec.symbol: spec}))
    return result


def weighted_premium(samples: list[int]) -> Fraction:
    """P̄ = Σ k·P_k / Σ k, exactly."""
    return Fraction(sum(k * p for k, p in enumerate(samples, start=1)),
                    len(samples) * (len(samples) + 1) // 2)


# -- the run as a whole -------------------------------------------------------------------------

def test_the_population_was_set_up_with_every_mode_and_leverage_it_asked_for(
        replay: Replay) -> None:
    assert replay.setup_rejections == []
    accounts = replay.sim.engine.clearing.accounts
    traders = [a for a in replay.sim.agents if isinstance(a, NoiseTrader)]
    pairs = {(accounts[t.account_id].margin_mode, accounts[t.account_id].position_mode("BTCUSDT"))
             for t in traders}
    assert pairs == {(m, p) for m in (MarginMode.CROSS, MarginMode.ISOLATED)
                     for p in (PositionMode.ONE_WAY, PositionMode.HEDGE)}
    assert all(10 <= t.leverage <= 50 for t in traders)


def test_invariants_held_every_500_commands_and_at_the_end(replay: Replay) -> None:
    report = replay.report
    assert report.commands == replay.commands_seen == replay.sim.seq
    assert report.invariant_checks == report.commands // CHECK_EVERY + 1
    replay.sim.engine.check_invariants()


def test_open_interest_balances_and_the_report_agrees_with_the_engine(replay: Replay) -> None:
    engine = replay.sim.engine
    sizes = [p.size_lots for a in engine.clearing.accounts.values()
             for (symbol, _), p in a.positions.items() if symbol == "BTCUSDT"]
    longs = sum(s for s in sizes if s > 0)
    assert longs == -sum(s for s in sizes if s < 0) > 0
    assert replay.report.open_interest_lots == {"BTCUSDT": longs}
    fund = engine.clearing.accounts[INSURANCE_FUND_ID].balance("USDT")
    assert replay.report.insurance_fund_atoms == fund == sum(s.remainder_atoms
                                                             for s in replay.settled)


def test_the_market_traded_and_fees_were_collected(replay: Replay) -> None:
    report = replay.report
    assert report.trades > 1_000
    assert report.fees_atoms > 0
    assert report.premium_samples == 32 * 60 + 1  # every minute, and the one at the end


# -- funding ------------------------------------------------------------------------------------

def test_funding_settled_once_at_every_eight_hour_timestamp_crossed(replay: Replay) -> None:
    assert [s.funding_ms for s in replay.settled] == [T0 + h * HOUR_MS for h in (8, 16, 24, 32)]
    assert [f.funding_ms for f in replay.report.fundings] == [s.funding_ms for s in replay.settled]
    assert all(s.ts_ms == s.funding_ms for s in replay.settled)  # the clock landed on them


def test_every_rate_is_within_the_instrument_caps(replay: Replay) -> None:
    spec = replay.spec
    assert all(spec.lower_funding_rate <= s.rate <= spec.upper_funding_rate
               for s in replay.settled)


def test_funding_is_zero_sum_with_the_remainder_to_the_insurance_fund(replay: Replay) -> None:
    for settled in replay.settled:
        payments = [p.amount_atoms for p in replay.paid[settled.funding_ms]]
        assert payments, "positions were open at every timestamp"
        assert sum(payments) == settled.remainder_atoms >= 0
        assert settled.paid_atoms == sum(a for a in payments if a > 0)
        assert settled.received_atoms == -sum(a for a in payments if a < 0)
        assert all(p.rate == settled.rate for p in replay.paid[settled.funding_ms])


def test_each_rate_follows_the_premium_samples_of_its_interval(replay: Replay) -> None:
    spec = replay.spec
    interest = spec.interest_rate_8h
    clamp = spec.premium_clamp_rate
    signs = set()
    for settled in replay.settled:
        samples = [s.premium_rate for s in replay.samples
                   if s.next_funding_ms == settled.funding_ms]
        assert len(samples) == 480  # one per minute of the interval
        premium = weighted_premium(samples)
        # F = clamp(P̄ + clamp(I − P̄, ±0.05%), caps), P̄ rounded to the nearest 10**-8.
        expected = min(spec.upper_funding_rate, max(spec.lower_funding_rate,
                       round(premium) + min(clamp, max(-clamp, interest - round(premium)))))
        assert settled.rate == expected
        if abs(premium - interest) <= clamp:
            assert settled.rate == interest  # the premium is inside the dead band
        elif abs(premium) > clamp + interest:  # the premium dominates: the rate takes its sign
            assert (settled.rate > 0) == (premium > 0)
            signs.add(premium > 0)
    assert signs == {True, False}, "this replay has intervals dominated by either sign"


def test_predicted_rate_at_the_last_sample_is_the_rate_settled(replay: Replay) -> None:
    for settled in replay.settled:
        last = [s for s in replay.samples if s.next_funding_ms == settled.funding_ms][-1]
        assert last.predicted_rate == settled.rate


# -- marks --------------------------------------------------------------------------------------

def test_the_mark_stayed_within_one_percent_of_the_index_after_every_command(
        replay: Replay) -> None:
    assert replay.worst_mark_gap < MARK_BAND
    assert Fraction(replay.report.max_mark_gap_rate["BTCUSDT"], 10**8) <= replay.worst_mark_gap


# -- determinism --------------------------------------------------------------------------------

def test_a_run_repeats_exactly_and_its_journal_replays_to_the_same_state() -> None:
    # Two hours, with the market maker cancelling and replacing its ladder this time.
    spec = btcusdt()
    end = T0 + 2 * HOUR_MS
    first = simulation(spec, end, "replace", keep_commands=True, keep_events=True,
                       check_every=CHECK_EVERY)
    first_report = first.run(until_ms=end)
    assert first.events is not None
    assert first_report.events == len(first.events)
    assert first_report.trades == sum(isinstance(e, Trade) for e in first.events) > 0
    assert first_report.cancellations["BY_USER"] > 0
    second = simulation(spec, end, "replace", check_every=CHECK_EVERY)
    assert second.run(until_ms=end) == first_report
    assert second.engine.state_hash() == first.engine.state_hash()
    assert first.commands is not None
    replayed = Engine([spec])
    for command in first.commands:
        replayed.apply(command)
    assert replayed.state_hash() == first.engine.state_hash()
