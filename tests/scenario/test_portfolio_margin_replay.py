"""A hedged book on real BTC prices: portfolio margin asks a fraction of cross margin (#17).

The replay: the one-minute BTC/USD candles of 2023-03-02 00:00 to 2023-03-03 04:00 UTC (the
fall of 2023-03-03 01:15-02:00 included) as the index and mark of both BTCUSDT and the dated
BTCUSDT-25DEC26, which share the BTC index. Two accounts hold the same book, long 1 BTCUSDT
and short 1 BTCUSDT-25DEC26, opened at the first open:
- account 1 in cross margin, at 10x on each leg;
- account 2 in portfolio margin, where the two legs offset in every scenario of the BTC unit
  (next-mechanics §5.3, P4), so only the contingency of 0.006 × 2 × index is asked (×1.2).

At every minute both are margined from their own figures: PM's IM stays under a tenth of
cross margin's, both accounts stay far from liquidation through the fall, and conservation
per coin holds after every command.
"""

from __future__ import annotations

import csv
from decimal import Decimal

from perpx import Exchange
from perpx.core.events import Liquidated
from support.builders import PRICES

MINUTE_FILE = PRICES / "btcusd_1m_2023-03-01_2023-03-07.csv"
START, END = "2023-03-02 00:00", "2023-03-03 04:00"
START_MS = 1_677_715_200_000  # 2023-03-02 00:00 UTC
PERP, FUTURE = "BTCUSDT", "BTCUSDT-25DEC26"
TICK = Decimal("0.1")
USD = Decimal("0.00000001")


def test_a_hedged_book_needs_a_fraction_of_cross_margin_through_the_fall() -> None:
    with MINUTE_FILE.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if START <= r["open_time"] < END]
    assert len(rows) == 28 * 60
    ex = Exchange([PERP, FUTURE], start_ms=START_MS, check_invariants=True)
    first = str(Decimal(rows[0]["open"]).quantize(TICK))
    for symbol in (PERP, FUTURE):
        ex.index_price(symbol, first)
        ex.mark_price(symbol, first)
    for account in (1, 2):
        ex.deposit(account, "6000")
    ex.deposit(3, "10000000")
    assert ex.set_margin_mode(2, "PORTFOLIO_MARGIN").ret_code == 0
    assert ex.place_order(3, PERP, "Sell", "Limit", qty="2", price=first).ret_code == 0
    assert ex.place_order(3, FUTURE, "Buy", "Limit", qty="2", price=first).ret_code == 0
    for account in (1, 2):
        assert ex.place_order(account, PERP, "Buy", "Market", qty="1").ret_code == 0
        assert ex.place_order(account, FUTURE, "Sell", "Market", qty="1").ret_code == 0
    clearing = ex.engine.clearing
    cross, portfolio = clearing.account(1), clearing.account(2)
    assert cross is not None and portfolio is not None
    worst_ratio = Decimal(0)
    liquidated = 0
    for row in rows:
        price = str(Decimal(row["close"]).quantize(TICK))
        for symbol in (PERP, FUTURE):
            liquidated += sum(isinstance(e, Liquidated)
                              for e in ex.index_price(symbol, price).events)
            liquidated += sum(isinstance(e, Liquidated)
                              for e in ex.mark_price(symbol, price).events)
        cross_risk = clearing.account_risk(cross)
        pm_risk = clearing.account_risk(portfolio)
        # P4 at this index: MaxLoss 0, MM = 0.006 × 2 × index, IM = 1.2 × MM.
        index = Decimal(price)
        assert usd(pm_risk.mm_atoms) == (Decimal("0.012") * index).quantize(USD)
        ratio = Decimal(pm_risk.total_im_atoms) / Decimal(cross_risk.total_im_atoms)
        worst_ratio = max(worst_ratio, ratio)
        assert not cross_risk.breached() and not pm_risk.breached()
    assert liquidated == 0
    assert worst_ratio < Decimal("0.1")  # PM asks under a tenth of cross margin's IM
    assert all(p.size_lots for a in (cross, portfolio) for p in a.positions.values()
               if p.symbol in (PERP, FUTURE))


def usd(atoms: int) -> Decimal:
    return Decimal(atoms) * USD
