"""The risk index's incremental upkeep never drifts from a recomputation.

On seeded realistic streams (mark moves every second, margin refusals, liquidations,
funding), after every command: the sorted books and the always-checked sets hold exactly the
entries of the per-account filings (the refresh moves only the filings that changed), every
isolated position's cached liquidation trigger equals the trigger recomputed from scratch by
the plain per-tier rule, and an isolated account the index does not hold as changed is filed
under that trigger.
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.bench.realistic import realistic_stream
from perpx.core import Engine, liqprice
from perpx.core.account.accounts import SYSTEM_ACCOUNT_IDS
from perpx.core.account.positions import Position
from perpx.core.enums import MarginMode, Side
from perpx.core.instruments import LiquidationFormula
from perpx.core.risk import liquidation, takeover
from perpx.core.risk.risk_index import entry_key, entry_parts


def _trigger_from_scratch(engine: Engine, position: Position) -> int | None:
    """The published liquidation price and every tier's margin call, the first reached."""
    spec = engine.instruments[position.symbol]
    kept, position.liq_cache = position.liq_cache, None
    shown = liquidation.liquidation_price_ticks(engine.clearing, position)
    position.liq_cache = kept
    if shown is None or spec.liq_price_formula is not LiquidationFormula.UTA:
        return shown
    side = Side.BUY if position.size_lots > 0 else Side.SELL
    trigger = shown
    for tier in spec.risk_tiers:
        numerator, denominator = liqprice.isolated_margin_call_price_fraction(
            spec, side, position.entry_value_atoms, position.qty_lots, position.margin_atoms,
            position.fee_to_close_atoms(spec), tier.mmr, tier.mm_deduction_atoms)
        price = liqprice.round_liquidation_price(side, numerator, denominator)
        trigger = max(trigger, price) if side is Side.BUY else min(trigger, price)
    return trigger


def _check_books_match_filings(engine: Engine) -> None:
    risk = engine.risk
    filed: Counter[tuple[str, bool, object]] = Counter()
    always: dict[str, set[int]] = {}
    for account_id, filings in risk.filed.items():
        assert filings, "an account with nothing filed is not kept"
        for symbol, is_long, entry in filings:
            if entry is None:
                always.setdefault(symbol, set()).add(account_id)
            else:
                assert entry_parts(entry)[1] == account_id
                assert entry_key(*entry_parts(entry)) == entry
                filed[symbol, is_long, entry] += 1
    held: Counter[tuple[str, bool, object]] = Counter()
    for is_long, books in ((True, risk.longs), (False, risk.shorts)):
        for symbol, entries in books.items():
            assert entries == sorted(entries)
            for entry in entries:
                held[symbol, is_long, entry] += 1
    assert held == filed
    assert {s: a for s, a in risk.always.items() if a} == always


def _check_cross_estimates_see_the_margin_balance(engine: Engine) -> None:
    # The cross trigger estimate reads the equity for the margin balance: equal for an
    # account with one held position that a mark values (the only accounts it estimates).
    clearing = engine.clearing
    for account_id, account in clearing.accounts.items():
        if account.margin_mode is not MarginMode.CROSS or account_id in SYSTEM_ACCOUNT_IDS:
            continue
        held = [p for p in account.positions.values() if p.size_lots]
        if len(held) != 1 or clearing.mark_of(held[0].symbol) is None:
            continue
        coin = engine.instruments[held[0].symbol].settle_coin
        assert clearing.equity_atoms(account, coin) == (
            clearing.figures(account, coin).margin_balance_atoms)


def _check_isolated_triggers(engine: Engine) -> None:
    clearing = engine.clearing
    for account_id, account in clearing.accounts.items():
        if account.margin_mode is not MarginMode.ISOLATED:
            continue
        for position in account.positions.values():
            if not position.size_lots:
                continue
            cached = liquidation.liquidation_trigger_ticks(clearing, position)
            recomputed = _trigger_from_scratch(engine, position)
            assert cached == recomputed
            if account_id in clearing.dirty or cached is None:
                continue
            entry = entry_key(cached, account_id, position.position_idx)
            assert (position.symbol, position.size_lots > 0, entry) in (
                engine.risk.filed.get(account_id, []))


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**16))
def test_the_risk_index_matches_a_recomputation_after_every_command(seed: int) -> None:
    stream = realistic_stream(1_200, seed=seed)
    engine = stream.engine()
    for command in stream.commands:
        engine.apply(command)
        _check_books_match_filings(engine)
        _check_isolated_triggers(engine)
        _check_cross_estimates_see_the_margin_balance(engine)


def _queue_from_scratch(engine: Engine, side: Side, mark: int) -> list[Position]:
    """Every user position on `side` not fully hedged, by exact (rank, -account id), best first."""
    clearing = engine.clearing
    spec = engine.instruments["BTCUSDT"]
    ranked: list[tuple[Fraction, int, Position]] = []
    for account_id, account in clearing.accounts.items():
        if account_id in SYSTEM_ACCOUNT_IDS:
            continue
        for position in account.positions.values():
            if (position.symbol != spec.symbol or position.side is not side
                    or account.model.fully_hedged(account, position)):
                continue
            margin = account.model.adl_margin_atoms(clearing, account, position,
                                                    spec.settle_coin)
            ranked.append((takeover.adl_rank(spec, position, mark, margin), -account_id,
                           position))
    ranked.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
    return [entry[2] for entry in ranked]


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**16))
def test_the_adl_queue_is_the_exact_ranking(seed: int) -> None:
    # The queue compares ranks by a floor first and exactly only on equal floors; it must
    # order the positions as the exact ranks do, ties to the lower account id.
    stream = realistic_stream(3_000, seed=seed)
    engine = stream.engine()
    spec = engine.instruments["BTCUSDT"]
    for number, command in enumerate(stream.commands):
        engine.apply(command)
        if number % 250:
            continue
        mark = engine.clearing.mark_of("BTCUSDT")
        if mark is None:
            continue
        for side in (Side.BUY, Side.SELL):
            assert takeover.ranked_positions(engine.clearing, spec, side, mark) == (
                _queue_from_scratch(engine, side, mark))
