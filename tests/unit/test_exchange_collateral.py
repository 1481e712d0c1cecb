"""Multi-collateral accounts through `perpx.Exchange` (next-mechanics §4, issue #17 item 5).

BTC deposited as collateral with no USDT: a BTCUSDT trade takes USDT below zero (a
liability), the next hh:05 charges its interest (an INTEREST ledger row and a borrow-history
row from the projector), repayment is refused in the hh:04:00–hh:05:30 window and, after it,
converts BTC (CURRENCY_SELL / CURRENCY_BUY rows) until the liability is gone. The private
`wallet` topic is pushed for the conversion and the interest, with the coin rows moved.
"""

from __future__ import annotations

from decimal import Decimal

from perpx import Exchange
from perpx.api import collateral_wire
from perpx.api.ws.private import PrivateFeed
from perpx.core.account.collateral import HOUR_MS, INTEREST_OFFSET_MS
from perpx.core.codes import RejectCode
from perpx.core.events import Converted, InterestCharged, LiabilityRepaid
from perpx.store.records import (
    BorrowRecord,
    ClosedPnlRecord,
    DeliveryRecord,
    ExecutionRecord,
    LedgerRecord,
    OrderRecord,
    Projection,
    Projector,
    SettlementRecord,
)

T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC, on the hour
ALICE, MAKER = 1, 2


class Rows:
    """A projector sink that keeps the rows."""

    def __init__(self) -> None:
        self.ledger_rows: list[LedgerRecord] = []
        self.borrows: list[BorrowRecord] = []

    def order_final(self, record: OrderRecord) -> None:
        pass

    def execution(self, record: ExecutionRecord) -> None:
        pass

    def closed_pnl(self, record: ClosedPnlRecord) -> None:
        pass

    def ledger(self, record: LedgerRecord) -> None:
        self.ledger_rows.append(record)

    def delivery(self, record: DeliveryRecord) -> None:
        pass

    def settlement(self, record: SettlementRecord) -> None:
        pass

    def borrow(self, record: BorrowRecord) -> None:
        self.borrows.append(record)


def venue() -> tuple[Exchange, Rows]:
    ex = Exchange(["BTCUSDT", "ETHUSDT", "BTCUSD"], start_ms=T0 + 600_000,
                  check_invariants=True)
    rows = Rows()
    projector = Projector(ex.engine.instruments.values(), rows)
    ex.subscribe(lambda command, events: projector.project(command, events))
    for symbol, price in (("BTCUSDT", "30000"), ("BTCUSD", "30000"), ("ETHUSDT", "2000")):
        assert ex.index_price(symbol, price).ok
    assert ex.deposit(MAKER, "1000000").ok
    assert ex.place_order(MAKER, "BTCUSDT", "Sell", "Limit", qty="1", price="30000").ok
    return ex, rows


def test_btc_eth_and_usdc_deposit_as_collateral() -> None:
    ex, _ = venue()
    for coin, amount in (("BTC", "1"), ("ETH", "10"), ("USDC", "500")):
        assert ex.deposit(ALICE, amount, coin).ok, coin
    risk = ex.account_risk(ALICE)
    # 30,000 + 20,000 + 500 USD; BTC and ETH count at 0.95, USDC in full.
    assert Decimal(risk.total_equity) == Decimal("50500")
    assert Decimal(risk.margin_balance) == Decimal("48000")
    assert Decimal(risk.haircut) == Decimal("2500")
    assert risk.pooled and risk.account_im_rate == "0.0000"
    refused = ex.deposit(ALICE, "1", "DOGE")
    assert refused.reject is RejectCode.UNKNOWN_COIN and refused.ret_code == 10001


def test_a_collateral_coin_needs_its_price_listed() -> None:
    """USDC has a fixed USD price (§7 N17): any venue takes it. ETH is priced by ETHUSDT's
    index: a venue without it (nor an ETH-settled contract) cannot value it, and refuses it."""
    ex = Exchange(["BTCUSDT"], start_ms=T0)
    assert ex.deposit(ALICE, "100", "USDC").ok and ex.deposit(ALICE, "1", "BTC").ok
    assert ex.deposit(ALICE, "1", "ETH").reject is RejectCode.UNKNOWN_COIN


def borrowed() -> tuple[Exchange, Rows]:
    """Alice: 1 BTC and no USDT, long 0.5 BTCUSDT: the taker fee is a USDT liability."""
    ex, rows = venue()
    assert ex.deposit(ALICE, "1", "BTC").ok
    assert ex.place_order(ALICE, "BTCUSDT", "Buy", "Market", qty="0.5").ok
    return ex, rows


def test_a_trade_without_usdt_leaves_a_liability_counted_in_usd() -> None:
    ex, _ = borrowed()
    usdt = ex.wallet(ALICE, "USDT")
    assert usdt.wallet_balance == "-8.25"  # the taker fee, 0.5 × 30,000 × 0.055%
    equity = Decimal(usdt.wallet_balance) + Decimal(usdt.unrealised_pnl)
    assert equity < 0 and Decimal(ex.liability(ALICE, "USDT")) == -equity
    risk = ex.account_risk(ALICE)
    assert Decimal(risk.total_equity) == Decimal("30000") + equity
    assert Decimal(risk.margin_balance) == Decimal("28500") + equity
    assert Decimal(risk.initial_margin) > 0
    assert Decimal(risk.available_balance) == (Decimal(risk.margin_balance)
                                               - Decimal(risk.initial_margin))
    # Rates as the wallet prints them, 4 decimals (here rounded down).
    assert risk.account_im_rate == str(
        (Decimal(risk.initial_margin) / Decimal(risk.margin_balance)).quantize(
            Decimal("0.0001"), rounding="ROUND_DOWN"))


def test_collateral_switch_refusals() -> None:
    ex, _ = borrowed()
    usdt = ex.set_collateral_switch(ALICE, "USDT", False)
    assert usdt.reject is RejectCode.COLLATERAL_NOT_SWITCHABLE and usdt.ret_code == 10001
    # BTC is all the margin the position has.
    btc = ex.set_collateral_switch(ALICE, "BTC", False)
    assert btc.reject is RejectCode.COLLATERAL_SWITCH_REFUSED and btc.ret_code == 110007
    assert ex.set_collateral_switch(ALICE, "DOGE", True).reject is RejectCode.UNKNOWN_COIN
    lower = ex.set_collateral_switch(ALICE, "btc", True)
    assert lower.ret_code == 10001 and lower.seq is None  # refused before the core
    assert ex.set_collateral_switch(ALICE, "ETH", False).ok
    held = ex.engine.clearing.account(ALICE)
    assert held is not None and held.collateral_off == {"ETH"}
    # The private wallet topic is pushed for a switch (no money moves): collateralSwitch.
    feed = PrivateFeed(ex.engine, Projector(ex.engine.instruments.values()))
    on = ex.set_collateral_switch(ALICE, "ETH", True)
    assert on.ok
    assert feed.collect(list(on.events), {ALICE}, Projection())[
        ALICE].wallet


def next_interest(ex: Exchange) -> int:
    now = ex.now_ms
    return (now - INTEREST_OFFSET_MS) // HOUR_MS * HOUR_MS + HOUR_MS + INTEREST_OFFSET_MS


def test_interest_window_and_quick_repayment_by_conversion() -> None:
    ex, rows = borrowed()
    assert ex.repay(ALICE, "BTC").reject is RejectCode.NOTHING_TO_REPAY
    due = next_interest(ex)
    ex.at(due - 60_001)  # hh:03:59.999: still open
    assert ex.repay(ALICE, "USDT", "0.01").ok
    ex.at(due - 60_000)  # hh:04:00: closed until hh:05:30
    assert ex.repay(ALICE).reject is RejectCode.REPAY_WINDOW_CLOSED
    ex.at(due)
    wallet_before = Decimal(ex.wallet(ALICE, "USDT").wallet_balance)
    charged = ex.tick()
    [interest] = [e for e in charged.events
                  if isinstance(e, InterestCharged) and e.account_id == ALICE]
    # The fee is realised (wallet −8.25): that part bears interest at USDT's hourly
    # 0.000014621596; what the position's unrealised loss adds would be interest-free.
    borrow = interest.borrow_atoms
    # Booked as more liability in USDT (the marks the tick then moved do not change it).
    assert Decimal(ex.wallet(ALICE, "USDT").wallet_balance) == wallet_before - Decimal(
        interest.cost_atoms) / 10**8
    assert interest.bearing_atoms == min(borrow, -int(wallet_before * 10**8))
    assert interest.free_atoms == borrow - interest.bearing_atoms
    assert interest.cost_atoms == interest.bearing_atoms * 14_621_596 // 10**12 > 0
    [record] = [r for r in rows.borrows if r.account_id == ALICE]
    row = collateral_wire.borrow_row(record)
    assert (row["currency"], row["createdTime"], row["hourlyBorrowRate"]) == (
        "USDT", due, "0.000014621596")
    assert Decimal(row["borrowCost"]) == Decimal(interest.cost_atoms) / 10**8
    assert Decimal(row["InterestBearingBorrowSize"]) + Decimal(
        row["freeBorrowedAmount"]) == Decimal(row["borrowAmount"])
    assert [r.kind for r in rows.ledger_rows if r.account_id == ALICE][-1] == "INTEREST"
    # hh:05:00 to hh:05:30: still computing, repayment refused.
    refused = ex.repay(ALICE)
    assert refused.reject is RejectCode.REPAY_WINDOW_CLOSED and refused.ret_code == 10001
    ex.at(due + 30_000)
    nothing = ex.repay(ALICE, "USDT", convert=False)
    assert nothing.ok
    assert [e.repaid_atoms for e in nothing.events if isinstance(e, LiabilityRepaid)] == [0]
    feed = PrivateFeed(ex.engine, Projector(ex.engine.instruments.values()))
    repaid = ex.repay(ALICE)
    assert repaid.ok
    [converted] = [e for e in repaid.events if isinstance(e, Converted)]
    assert (converted.sold_coin, converted.bought_coin, converted.automatic) == (
        "BTC", "USDT", False)
    assert ex.liability(ALICE, "USDT") == "0"
    kinds = [r.kind for r in rows.ledger_rows if r.account_id == ALICE][-2:]
    assert kinds == ["CURRENCY_SELL", "CURRENCY_BUY"]
    sold = [r for r in rows.ledger_rows if r.account_id == ALICE][-2]
    assert sold.coin == "BTC" and sold.cash_flow_atoms == sold.change_atoms < 0
    # The private wallet topic is pushed for the conversion, with the liability gone.
    changed = feed.collect(list(repaid.events), {ALICE}, Projection())
    assert changed[ALICE].wallet
    wallet = feed.wallet_row(ALICE)
    assert wallet is not None
    coins = {c["coin"]: c for c in wallet["coin"]}
    assert coins["USDT"]["borrowAmount"] == "0"
    assert Decimal(coins["BTC"]["walletBalance"]) < 1
    # And for the interest: a BalanceChanged of the account.
    assert feed.collect(list(charged.events), {ALICE}, Projection())[ALICE].wallet


def test_repay_amount_needs_a_coin_and_a_positive_amount() -> None:
    ex, _ = borrowed()
    assert ex.repay(ALICE, None, "1").ret_code == 10001
    assert ex.repay(ALICE, "USDT", "0").ret_code == 10001
    assert ex.repay(ALICE, "USDT", "-1").ret_code == 10001
    before = Decimal(ex.liability(ALICE, "USDT"))
    part = ex.repay(ALICE, "USDT", "1")
    assert part.ok
    # BTC is sold in whole atoms (0.0003 USDT each here): at most one atom's worth more.
    fell = before - Decimal(ex.liability(ALICE, "USDT"))
    assert Decimal("1") <= fell < Decimal("1.0003")
