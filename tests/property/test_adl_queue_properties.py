"""The ADL queue's heap and float-first comparisons give exactly the old full sort's order.

`perpx.core.risk.adl_queue` compares two ranks by their floors at 2**-32 and falls back to the
exact cross-multiplication only on equal floors; `AdlQueue` serves the order from a heap.
Checked against Fractions (entries with exact ties and ties closer than the floor tells)
and against the sort it replaced (`adl_queue_oracle`), over random accounts: isolated,
cross, multi-coin pools and portfolio margin, one-way and hedge mode, on linear and inverse
contracts, with positions copied from a few templates so that exact ties are common.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.property import adl_queue_oracle
from tests.support.builders import btcusd, btcusdt, ethusdt

from perpx.core.account.accounts import Account
from perpx.core.account.margin_model import model_for
from perpx.core.account.positions import Position
from perpx.core.engine import Engine
from perpx.core.enums import MarginMode, Side
from perpx.core.risk import takeover
from perpx.core.risk.adl_queue import AdlEntry, AdlQueue, adl_entries

Terms = tuple[int, int]


@st.composite
def _term_lists(draw: st.DrawFn) -> list[tuple[Terms, int, int]]:
    """Rank terms (numerator, denominator > 0) with their (account id, idx), unique by both.

    Drawn around a few base ranks: copies, exact ties (both terms scaled by one factor) and
    near-ties (the numerator nudged by one after scaling by 2**20..2**90: equal floors at
    2**-32 for the larger scales, different ones for the smaller).
    """
    base = draw(st.lists(st.tuples(st.integers(-10**24, 10**24), st.integers(1, 10**26)),
                         min_size=1, max_size=4))
    keys = draw(st.lists(st.tuples(st.integers(1, 12), st.integers(0, 2)), unique=True,
                         max_size=36))
    out: list[tuple[Terms, int, int]] = []
    for account_id, idx in keys:
        numerator, denominator = draw(st.sampled_from(base))
        kind = draw(st.sampled_from(("copy", "tie", "near", "zero")))
        if kind == "tie":
            scale = draw(st.integers(1, 2**40))
            numerator, denominator = numerator * scale, denominator * scale
        elif kind == "near":
            scale = 2 ** draw(st.integers(20, 90))
            numerator = numerator * scale + draw(st.sampled_from((-1, 1)))
            denominator *= scale
        elif kind == "zero":
            numerator = 0
        out.append(((numerator, denominator), account_id, idx))
    return out


def _entries(term_list: list[tuple[Terms, int, int]]) -> list[AdlEntry]:
    # The queue reads only the terms and the tie-break; a position stands for the entry.
    out = []
    for (numerator, denominator), account_id, idx in term_list:
        position = Position(account_id, "BTCUSDT", idx, 0)
        out.append(AdlEntry(numerator, denominator, account_id, idx, position))
    return out


def _exact_key(entry: AdlEntry) -> tuple[Fraction, int, int]:
    rank = Fraction(entry.numerator, entry.denominator)
    return rank, -entry.account_id, -entry.idx


@settings(max_examples=300, deadline=None)
@given(_term_lists())
def test_precedes_answers_as_the_exact_ranks_do(term_list: list[tuple[Terms, int, int]]
                                                 ) -> None:
    entries = _entries(term_list)
    for first in entries:
        for second in entries:
            assert first.precedes(second) == (_exact_key(first) > _exact_key(second))


@settings(max_examples=300, deadline=None)
@given(_term_lists(), st.integers(0, 40))
def test_the_heap_serves_the_sorted_order(term_list: list[tuple[Terms, int, int]],
                                          taken: int) -> None:
    entries = _entries(term_list)
    expected = [e.position for e in sorted(entries, key=_exact_key, reverse=True)]
    queue = AdlQueue((0, "BTCUSDT", Side.BUY), list(entries))
    served = []
    for _ in range(min(taken, len(entries))):  # taken one by one, as `deleverage` does
        head = queue.head()
        assert head is not None
        served.append(head)
        queue.pop()
    assert served + queue.drain() == expected
    assert queue.head() is None


SPECS = [btcusdt(), ethusdt(), btcusd()]
MODES = (MarginMode.CROSS, MarginMode.ISOLATED, MarginMode.PORTFOLIO)
# Marks in ticks: BTCUSDT and BTCUSD tick 0.10, ETHUSDT 0.01.
MARK_CHOICES = {"BTCUSDT": (600_000, 650_000, 700_000), "ETHUSDT": (300_000, 350_000),
                "BTCUSD": (600_000, 650_000, 700_000)}


@st.composite
def _template(draw: st.DrawFn) -> tuple[int, int, int]:
    """(lots, entry price in ticks, isolated margin in atoms) of a position."""
    return (draw(st.integers(1, 5_000)), draw(st.integers(550_000, 750_000)),
            draw(st.integers(0, 10**12)))


@st.composite
def _venues(draw: st.DrawFn) -> Engine:
    engine = Engine(SPECS)
    specs = {spec.symbol: spec for spec in SPECS}
    for symbol, choices in MARK_CHOICES.items():
        engine.market.mark_price[symbol] = draw(st.sampled_from(choices))
    templates = draw(st.lists(_template(), min_size=1, max_size=4))
    wallets = draw(st.lists(st.integers(0, 10**12), min_size=1, max_size=3))
    clearing = engine.clearing
    for account_id in range(1, draw(st.integers(1, 14)) + 1):
        account = Account(account_id, model_for(draw(st.sampled_from(MODES))))
        account.balances["USDT"] = draw(st.sampled_from(wallets))
        if draw(st.booleans()):
            account.balances["BTC"] = draw(st.integers(0, 10**8))  # a pool across coins
        for symbol in draw(st.lists(st.sampled_from(sorted(specs)), unique=True, max_size=3)):
            spec = specs[symbol]
            hedge = draw(st.booleans())
            legs = ((1, 1), (2, -1)) if hedge else ((0, draw(st.sampled_from((1, -1)))),)
            for idx, sign in legs:
                if hedge and not draw(st.integers(0, 3)):
                    continue  # one hedge leg only
                lots, entry_ticks, margin = draw(st.sampled_from(templates))
                if symbol == "ETHUSDT":
                    entry_ticks //= 2
                position = Position(account_id, symbol, idx, 10**9)
                position.size_lots = sign * lots
                position.entry_value_atoms = spec.contract.entry_value_atoms(entry_ticks, lots)
                position.margin_atoms = margin
                account.positions[spec.keys.position(idx)] = position
        clearing.accounts[account_id] = account
    return engine


@settings(max_examples=200, deadline=None)
@given(_venues())
def test_the_queue_is_the_old_full_sort(engine: Engine) -> None:
    clearing = engine.clearing
    for spec in SPECS:
        mark = clearing.mark_of(spec.symbol)
        assert mark is not None
        for side in (Side.BUY, Side.SELL):
            expected = adl_queue_oracle.ranked_positions(clearing, spec, side, mark)
            assert takeover.ranked_positions(clearing, spec, side, mark) == expected
            queue = AdlQueue((1, spec.symbol, side), adl_entries(clearing, spec, side, mark))
            assert queue.drain() == expected
