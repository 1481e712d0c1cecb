"""The risk index files cross accounts of any shape by margin budget, never too narrowly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from perpx.convert import format_ticks
from perpx.core.enums import MarginMode, PositionMode
from perpx.core.risk.risk_index import entry_parts
from support.builders import Driver, btcusdt, ethusdt

TRADER = 1
MAKER = 2


def _mixed_cross_account() -> Driver:
    """A cross trader long BTC, hedged both ways on ETH, with a resting ETH bid."""
    d = Driver(btcusdt(), ethusdt(), funded={TRADER: "9000", MAKER: "10000000"})
    d.margin_mode(TRADER, MarginMode.CROSS)
    d.position_mode(TRADER, PositionMode.HEDGE, symbol="ETHUSDT")
    d.leverage(TRADER, "20")
    d.leverage(TRADER, "20", symbol="ETHUSDT")
    d.mark("60000")
    d.mark("3000", symbol="ETHUSDT")
    d.limit(MAKER, "Sell", "60000", "1")
    d.market(TRADER, "Buy", "1")
    d.limit(MAKER, "Sell", "3000", "20", symbol="ETHUSDT")
    d.market(TRADER, "Buy", "20", symbol="ETHUSDT", position_idx=1)
    d.limit(MAKER, "Buy", "3000", "8", symbol="ETHUSDT")
    d.market(TRADER, "Sell", "8", symbol="ETHUSDT", position_idx=2)
    d.limit(TRADER, "Buy", "2900", "5", symbol="ETHUSDT", position_idx=1)
    d.engine.risk.refresh(d.engine.clearing.dirty)
    return d


def _bands(d: Driver) -> dict[str, tuple[int, int]]:
    bands: dict[str, tuple[int, int]] = {}
    for symbol, is_long, entry in d.engine.risk.filed[TRADER]:
        assert entry is not None, "a mixed cross account is filed by budget, not 'always'"
        low, high = bands.get(symbol, (0, 0))
        trigger = entry_parts(entry)[0]
        bands[symbol] = (trigger, high) if is_long else (low, trigger)
    return bands


def test_a_mixed_cross_account_is_filed_by_budget_bands_on_every_symbol() -> None:
    d = _mixed_cross_account()
    bands = _bands(d)
    assert sorted(bands) == ["BTCUSDT", "ETHUSDT"]
    risk = d.engine.risk
    for symbol, (low, high) in bands.items():
        mark = d.engine.mark_price[symbol]
        assert low < mark < high
        assert TRADER not in risk.candidates(symbol, low + 1)
        assert TRADER not in risk.candidates(symbol, high - 1)
        assert TRADER in risk.candidates(symbol, low)
        assert TRADER in risk.candidates(symbol, high)


@given(st.integers(0, 1000), st.integers(0, 1000))
def test_no_marks_inside_the_bands_can_breach_the_account(btc_at: int, eth_at: int) -> None:
    d = _mixed_cross_account()
    bands = _bands(d)
    engine = d.engine
    account = engine.clearing.account(TRADER)
    assert account is not None
    for symbol, at in (("BTCUSDT", btc_at), ("ETHUSDT", eth_at)):
        low, high = bands[symbol]
        # Marks set straight into the state: the bound must hold whatever the index does.
        engine.mark_price[symbol] = low + 1 + (high - low - 2) * at // 1000
    figures = engine.clearing.figures(account)
    assert figures.mm_atoms < figures.margin_balance_atoms + figures.order_loss_atoms


def test_leaving_a_band_checks_the_account_and_refiles_it_around_the_new_mark() -> None:
    d = _mixed_cross_account()
    low, _high = _bands(d)["ETHUSDT"]
    moved = low - 1
    d.mark(format_ticks(d.spec("ETHUSDT"), moved), symbol="ETHUSDT")
    d.engine.risk.refresh(d.engine.clearing.dirty)
    new_low, new_high = _bands(d)["ETHUSDT"]
    assert new_low < d.engine.mark_price["ETHUSDT"] < new_high
