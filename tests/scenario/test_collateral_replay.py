"""A BTC-collateral cross account on real BTC prices: collateral and position lose together.

The replay: the one-minute Binance.US BTC/USD candles of 2023-03-02 00:00 to 2023-03-03 04:00
UTC as BTCUSDT's index and mark, two observations a minute (the candle's low, then its
close), through the fall of 2023-03-03 01:15-02:00 (23,400 to 22,001). Two cross accounts
open the same long of 1 BTCUSDT at 25x at the first open (23,635.3), sold to them by a
well-funded account 3:
- account 1 holds only BTC: 0.075 BTC (its USDT fee and losses are a USDT liability, §4.4,
  backed by BTC counted at 0.95 and priced by the falling index, §4.1);
- account 2 holds the same USD value in USDT (0.075 x 23,635.3).

As BTC falls, account 1's margin balance loses twice: the position's loss and its
collateral's value. It breaches first (MM rate at 100%): its liquidation converts its BTC to
repay the USDT liability (§4.5 step 2) and takes its position over, while account 2, with
the same position and the same money at the start, survives that price and is liquidated
only at the lower low 25 minutes later. Conservation per coin is checked after every
command (`check_invariants=True`).
"""

from __future__ import annotations

import csv
from decimal import Decimal

from perpx import Exchange
from perpx.core.events import Converted, Liquidated
from support.builders import PRICES

MINUTE_FILE = PRICES / "btcusd_1m_2023-03-01_2023-03-07.csv"
START = "2023-03-02 00:00"
END = "2023-03-03 04:00"
START_MS = 1_677_715_200_000  # 2023-03-02 00:00 UTC
TICK = Decimal("0.1")
BTC_HELD = Decimal("0.075")
QTY = "1"


def candles() -> list[dict[str, str]]:
    """The minute candles of the replay window, in time order."""
    with MINUTE_FILE.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if START <= row["open_time"] < END]


class Outcome:
    """Where and when each account's liquidation started and its position was taken over."""

    def __init__(self) -> None:
        self.converted: dict[int, tuple[str, Decimal]] = {}
        self.liquidated: dict[int, tuple[str, Decimal]] = {}
        self.sold: list[Converted] = []
        self.other_breached_when_first: bool | None = None


def replay() -> tuple[Exchange, Outcome]:
    """Open the two longs at the first open and move the index and mark through the window."""
    rows = candles()
    ex = Exchange(["BTCUSDT"], start_ms=START_MS, check_invariants=True)
    first = Decimal(rows[0]["open"]).quantize(TICK)
    ex.index_price("BTCUSDT", str(first))
    ex.mark_price("BTCUSDT", str(first))
    ex.deposit(1, str(BTC_HELD), "BTC")
    ex.deposit(2, str((BTC_HELD * first).quantize(Decimal("0.01"))))
    ex.deposit(3, "10000000")
    for account in (1, 2):
        assert ex.set_leverage(account, "BTCUSDT", "25", "25").ok
        assert ex.place_order(3, "BTCUSDT", "Sell", "Limit", qty=QTY, price=str(first)).ok
        assert ex.place_order(account, "BTCUSDT", "Buy", "Market", qty=QTY).ok
    clearing = ex.engine.clearing
    outcome = Outcome()
    for minute, row in enumerate(rows):
        for half, price in enumerate((row["low"], row["close"])):
            ex.at(max(ex.now_ms, START_MS + minute * 60_000 + half * 30_000))
            shown = str(Decimal(price).quantize(TICK))
            events = [*ex.index_price("BTCUSDT", shown).events,
                      *ex.mark_price("BTCUSDT", shown).events]
            for event in events:
                if isinstance(event, Converted) and event.account_id in (1, 2):
                    outcome.sold.append(event)
                    outcome.converted.setdefault(event.account_id,
                                                 (row["open_time"], Decimal(shown)))
                if isinstance(event, Liquidated) and event.account_id in (1, 2):
                    if not outcome.liquidated and event.account_id == 1:
                        other = clearing.account(2)
                        assert other is not None
                        outcome.other_breached_when_first = (
                            clearing.account_risk(other).breached())
                    outcome.liquidated.setdefault(event.account_id,
                                                  (row["open_time"], Decimal(shown)))
    return ex, outcome


def test_btc_collateral_account_is_liquidated_first_and_higher() -> None:
    ex, outcome = replay()
    # Account 1 (BTC only) is liquidated in the fall; its BTC went first, to repay USDT.
    assert 1 in outcome.liquidated
    time_1, price_1 = outcome.liquidated[1]
    assert "2023-03-03 01:15" <= time_1 < "2023-03-03 02:00"
    assert outcome.converted[1] <= outcome.liquidated[1]
    sold = [e for e in outcome.sold if e.account_id == 1]
    assert sold and all(e.automatic and (e.sold_coin, e.bought_coin) == ("BTC", "USDT")
                        for e in sold)
    # At that moment account 2 (USDT, the same money and position) was not breached.
    assert outcome.other_breached_when_first is False
    # It is liquidated later and lower, or not at all.
    if 2 in outcome.liquidated:
        time_2, price_2 = outcome.liquidated[2]
        assert time_2 > time_1 and price_2 < price_1
    account = ex.engine.clearing.account(1)
    assert account is not None and not any(p.size_lots for p in account.positions.values())
    ex.check_invariants()


def test_the_fall_is_in_the_file() -> None:
    """The window holds the 2023-03-03 fall: from over 23,400 to a low of 22,001."""
    rows = candles()
    assert len(rows) == 28 * 60
    assert min(Decimal(r["low"]) for r in rows) == Decimal("22001.0")
    assert max(Decimal(r["high"]) for r in rows[-240:]) > Decimal(23_400)
