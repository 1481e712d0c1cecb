"""#13 B1: margin taken by funding moves the isolated liquidation price, and can liquidate.

Account 1 holds an isolated long of 1 BTC at 50,000, 10x, with 47.75 USDT spare: a funding
payment beyond that is taken from the position margin (5,024.75 = IM 5,000 + fee to close
24.75). The funding rate is forced through the instrument's interest (no premium sample),
with the clamps opened wide, so one settlement pays `rate x 50,000`.
"""

from __future__ import annotations

from perpx.convert import to_atoms, to_ticks
from perpx.core.account.margin_model import position_risk
from perpx.core.enums import MarginMode
from perpx.core.events import FundingPaid, Liquidated, MarkPriceUpdated
from perpx.core.risk import liquidation
from support.builders import Driver, btcusdt, of_type

USDT = to_atoms
EIGHT_HOURS_MS = 8 * 3_600_000
T0 = 1_700_006_400_000  # a multiple of 8 h


def drained_long(rate_8h: int) -> Driver:
    """The long above, with an 8-hour funding rate of `rate_8h` (10**-8) about to settle."""
    spec = btcusdt(interest_rate_8h=rate_8h, premium_clamp_rate=rate_8h,
                   upper_funding_rate=rate_8h)
    d = Driver(spec, start_ts_ms=T0 + 60_000,
               funded={1: "5100", 2: "1000000", 3: "1000000"})
    d.margin_mode(1, MarginMode.ISOLATED)
    d.index("50000")  # starts the symbol's funding clock
    d.mark("50000")
    d.limit(2, "sell", "50000", "1")
    d.limit(1, "buy", "50000", "1")  # taker: 27.5 fee; margin 5,024.75; 47.75 spare
    assert d.position(1).margin_atoms == USDT("5024.75")
    return d


def settle(d: Driver) -> list:
    """Send the mark, unchanged, at the funding timestamp: funding settles before it."""
    d.ts_ms = T0 + EIGHT_HOURS_MS - 1
    return d.mark("50000")


def test_funding_taken_from_margin_moves_the_liquidation_price() -> None:
    """#13 B1: 9% funding (4,500) takes 4,452.25 from the margin; the LP follows it."""
    d = drained_long(9_000_000)
    clearing = d.engine.clearing
    before = liquidation.liquidation_price_ticks(clearing, d.position(1))
    assert before == to_ticks(d.spec(), "45226.2")  # 45,000 / 0.995, rounded up
    events = settle(d)
    [paid] = [e for e in of_type(events, FundingPaid) if e.account_id == 1]
    assert paid.amount_atoms == USDT("4500")
    position = d.position(1)
    assert position.margin_atoms == USDT("572.5")
    assert position.extra_margin_atoms == -USDT("4452.25")
    # UTA formula with extra = -4,452.25: (45,000 + 4,452.25 / (1 - 0.055%)) / 0.995
    # = 49,703.22.. -> 49,703.3 (rounded toward the mark).
    after = liquidation.liquidation_price_ticks(clearing, position)
    assert after == to_ticks(d.spec(), "49703.3")
    assert not of_type(events, Liquidated)  # 572.5 of margin is above MM 274.75 at 50,000
    # Before #13 the LP stayed at 45,226.2: a mark of 49,500 left the position open with
    # 72.5 of equity against an MM of 272.25. Now it is liquidated there.
    [liquidated] = of_type(d.mark("49500"), Liquidated)
    assert liquidated.account_id == 1
    assert d.position(1).size_lots == 0


def test_funding_that_breaches_at_the_current_mark_liquidates_in_the_same_command() -> None:
    """#13 B1: 10% funding (5,000) leaves 72.5 of margin at mark 50,000, under MM 274.75."""
    d = drained_long(10_000_000)
    events = settle(d)
    [paid] = [e for e in of_type(events, FundingPaid) if e.account_id == 1]
    assert paid.amount_atoms == USDT("5000")
    [liquidated] = of_type(events, Liquidated)
    assert (liquidated.account_id, liquidated.mark_price_ticks) == (1, to_ticks(d.spec(),
                                                                                "50000"))
    assert events.index(paid) < events.index(liquidated) < events.index(
        of_type(events, MarkPriceUpdated)[0])  # by the funding, before the command's mark
    assert d.position(1).size_lots == 0
    assert d.figures(1).wallet_atoms >= 0  # nobody ends below zero


def test_margin_added_after_a_drain_moves_the_price_back() -> None:
    """#13 B1: adding margin after funding took some raises the added margin from below 0."""
    d = drained_long(9_000_000)
    settle(d)
    d.deposit(1, "4452.25")
    d.adjust_margin(1, "4452.25")  # the wallet had nothing spare left
    position = d.position(1)
    assert (position.margin_atoms, position.extra_margin_atoms) == (USDT("5024.75"), 0)
    assert liquidation.liquidation_price_ticks(d.engine.clearing, position) == to_ticks(
        d.spec(), "45226.2")


def test_no_isolated_position_is_left_at_or_below_its_maintenance_margin() -> None:
    """#13 B1: after the settlement, every isolated position's margin + uPnL > its MM."""
    for rate in (9_000_000, 9_500_000, 10_000_000, 12_000_000):
        d = drained_long(rate)
        settle(d)
        mark = d.engine.mark_of("BTCUSDT")
        assert mark is not None
        position = d.position(1)
        if position.size_lots:
            risk = position_risk(position, d.spec(), mark, MarginMode.ISOLATED)
            assert position.margin_atoms + risk.upnl_atoms > risk.mm_atoms


def test_a_fill_that_opens_an_isolated_position_below_maintenance_is_liquidated_at_once() -> None:
    """#13 B1, hypothesis seed 2286: funding and a far-from-mark fill in one command.

    The funding timestamp passes with the command, so funding settles (and the symbol is
    swept) first; then account 1's 100x isolated market buy of 0.1 BTC takes the only ask,
    50,450, 0.9% above the mark of 50,000. Its margin (IM 50.45 + fee to close) less the
    45 of uPnL at the mark is under its MM (25 + fee to close): the fill's position must be
    liquidated in the same command, not sit breached until the next mark.
    """
    d = Driver(btcusdt(), start_ts_ms=T0 + 60_000,
               funded={1: "1000", 2: "1000000", 3: "1000000", 4: "1000000"})
    d.margin_mode(1, MarginMode.ISOLATED)
    d.leverage(1, "100")
    d.index("50000")  # starts the symbol's funding clock
    d.mark("50000")
    d.limit(3, "sell", "50000", "1")
    d.limit(4, "buy", "50000", "1")  # a position to pay funding at the timestamp
    d.limit(2, "sell", "50450", "0.1")
    d.ts_ms = T0 + EIGHT_HOURS_MS - 1
    events = d.market(1, "buy", "0.1")
    assert of_type(events, FundingPaid)
    [liquidated] = of_type(events, Liquidated)
    assert (liquidated.account_id, liquidated.mark_price_ticks) == (1, to_ticks(d.spec(),
                                                                                "50000"))
    assert events.index(of_type(events, FundingPaid)[0]) < events.index(liquidated)
    assert d.position(1).size_lots == 0
    assert d.figures(1).wallet_atoms >= 0


def test_a_maker_fill_under_maintenance_at_the_mark_is_liquidated_at_once() -> None:
    """#13 B1: a resting 100x isolated buy at 50,450 filled after the mark fell to 50,000.

    The order was sound when placed (mark 50,450); the seller's fill opens the long 0.9%
    under water at the mark, at or below its MM, so the same command liquidates it.
    """
    d = Driver(btcusdt(), start_ts_ms=T0 + 60_000, funded={1: "1000", 2: "1000000"})
    d.margin_mode(1, MarginMode.ISOLATED)
    d.leverage(1, "100")
    d.mark("50450")
    d.limit(1, "buy", "50450", "0.1")
    assert not of_type(d.mark("50000"), Liquidated)  # no position yet: nothing to liquidate
    events = d.limit(2, "sell", "50450", "0.1")
    [liquidated] = of_type(events, Liquidated)
    assert liquidated.account_id == 1
    assert d.position(1).size_lots == 0
    assert d.figures(1).wallet_atoms >= 0
