"""BTCUSD (inverse, settled in BTC) beside BTCUSDT through the real fall of 2023-03-03.

The replay: the one-minute Binance.US BTC/USD candles of 2023-03-02 22:00 to 2023-03-03 04:00
UTC (tests/data/prices, see its README), walked open → extremes → close every 15 s, are the
index of both BTCUSD and BTCUSDT (the same USD price: an inverse contract is quoted in USD,
and the candles are BTC/USD), with a `Tick` every minute, so marks follow the index and
funding settles at 00:00, in BTC for BTCUSD and USDT for BTCUSDT. The stretch holds the sharp
fall of 01:00-02:00 (23,420 to 22,000, 6% inside the hour).

A thin market maker requotes five levels of 2,000 contracts a side around the index each
minute on BTCUSD (five levels of 0.05 BTC on BTCUSDT); the insurance fund holds 0.05 BTC and
1,000 USDT. Sixteen BTCUSD traders go long at 10x-100x in both margin modes with 0.02-0.2 BTC
wallets, four go short large at 2x (the counterparties ADL reaches), and two BTCUSDT traders
do the same in USDT. The fall liquidates the leveraged longs (12 BTCUSD takeovers, in both
margin modes); takeovers larger than the book's depth are auto-deleveraged against the
shorts (15 ADL steps). Some 9,000 commands, a few seconds.

Checked after every command, through `perpx.Exchange` with the core's invariant checks on:
- every atom of each coin is accounted for, BTC and USDT apart: wallets in the cash view +
  fee account + insurance fund = deposits, recounted here beside the engine's own check;
- no trader's equity in either coin is below zero;
- after every command that moved a mark, no isolated position is past its liquidation point
  and no cross account is at an MM rate of 100% or more;
- BTCUSD positions were liquidated in both margin modes and deleveraged, the fund's BTC
  balance moved, funding was paid in BTC, and the fund holds no position at the end.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from perpx import Exchange
from perpx.core.account.accounts import INSURANCE_FUND_ID
from perpx.core.commands import Command, IndexPrice, Tick
from perpx.core.enums import BalanceReason, MarginMode
from perpx.core.events import BalanceChanged, Deleveraged, Event, FundingPaid, Liquidated
from perpx.core.risk import takeover
from perpx.core.risk.liquidation import is_past_liquidation
from perpx.feeds.csv_replay import CandleReplay
from support.builders import PRICES

START = datetime(2023, 3, 2, 22, tzinfo=UTC)
END = datetime(2023, 3, 3, 4, tzinfo=UTC)
MAKER = 100
LONGS = range(1, 17)
SHORTS = range(17, 21)
USDT_LONG, USDT_SHORT = 21, 22
TRADERS = (*LONGS, *SHORTS, USDT_LONG, USDT_SHORT)
COINS = ("BTC", "USDT")


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class Audit:
    """Sees every command with its events; checks the coins after each one."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.deposits = dict.fromkeys(COINS, 0)
        self.counts: Counter[str] = Counter()
        self.liquidated_modes: set[MarginMode] = set()
        self.fund_btc_moves = 0

    def __call__(self, command: Command, events: list[Event]) -> None:
        engine = self.exchange.engine
        for event in events:
            if isinstance(event, BalanceChanged):
                if event.reason in (BalanceReason.DEPOSIT, BalanceReason.WITHDRAW):
                    self.deposits[event.coin] += event.change_atoms
                elif event.account_id == INSURANCE_FUND_ID and event.coin == "BTC":
                    self.fund_btc_moves += 1
            elif isinstance(event, Liquidated):
                self.counts[f"liquidated {event.symbol}"] += 1
                if event.symbol == "BTCUSD":
                    self.liquidated_modes.add(
                        engine.clearing.accounts[event.account_id].margin_mode)
            elif isinstance(event, Deleveraged):
                self.counts[f"deleveraged {event.symbol}"] += 1
            elif isinstance(event, FundingPaid):
                self.counts[f"funding {event.symbol}"] += 1
        assert self.cash_view() == self.deposits, command
        for account_id in TRADERS:
            account = engine.clearing.accounts.get(account_id)
            if account is None:
                continue
            for coin in COINS:
                assert engine.clearing.equity_atoms(account, coin) >= 0, (command, account_id)
            if isinstance(command, (IndexPrice, Tick)):
                assert not self.breached(account_id), (command, account_id)

    def cash_view(self) -> dict[str, int]:
        """Per coin, Σ (wallet − value_sign × signed entry value) over every account."""
        engine = self.exchange.engine
        totals = dict.fromkeys(COINS, 0)
        for account in engine.clearing.accounts.values():
            for coin, balance in account.balances.items():
                totals[coin] += balance
            for (symbol, _idx), position in account.positions.items():
                spec = engine.instruments[symbol]
                sign = 1 if position.size_lots > 0 else -1
                totals[spec.settle_coin] -= (sign * spec.contract.value_sign
                                             * position.entry_value_atoms)
        return totals

    def breached(self, account_id: int) -> bool:
        engine = self.exchange.engine
        account = engine.clearing.accounts[account_id]
        held = [p for p in account.positions.values() if p.size_lots]
        if account.margin_mode is MarginMode.CROSS:
            coins = {engine.instruments[p.symbol].settle_coin for p in held}
            return any(takeover.cross_is_liquidatable(engine.clearing, account, coin)
                       for coin in coins)
        for position in held:
            mark = engine.mark_of(position.symbol)
            if mark is not None and is_past_liquidation(engine.clearing, position, mark):
                return True
        return False


def requote(exchange: Exchange, index: str) -> None:
    """The maker's five levels a side, 5 USD apart, around the index, on both symbols."""
    price = Decimal(index)
    for symbol, qty in (("BTCUSD", "2000"), ("BTCUSDT", "0.05")):
        exchange.cancel_all(MAKER, symbol)
        for level in range(1, 6):
            exchange.place_order(MAKER, symbol, "Buy", "Limit", qty=qty,
                                 price=str(price - 5 * level))
            exchange.place_order(MAKER, symbol, "Sell", "Limit", qty=qty,
                                 price=str(price + 5 * level))


def open_positions(exchange: Exchange, index: str) -> None:
    """Traders open against a deep one-off quote of the maker at the index."""
    price = Decimal(index)
    leverages = (10, 15, 20, 25, 30, 50, 75, 100)
    for n, account in enumerate(LONGS):
        leverage = leverages[n % len(leverages)]
        wallet = Decimal("0.02") + Decimal("0.01") * (n % 5)
        exchange.deposit(account, str(wallet), "BTC")
        if n % 2:
            exchange.set_margin_mode(account, "ISOLATED_MARGIN")
        exchange.set_leverage(account, "BTCUSD", str(leverage), str(leverage))
        # 70% of what the wallet allows at this leverage, in whole hundreds of USD.
        qty = str(int(wallet * price * leverage * Decimal("0.7") / 100) * 100)
        exchange.place_order(MAKER, "BTCUSD", "Sell", "Limit", qty=qty, price=index)
        result = exchange.place_order(account, "BTCUSD", "Buy", "Limit", qty=qty, price=index,
                                      time_in_force="IOC")
        assert result.ret_code == 0, result
        assert exchange.positions(account, "BTCUSD")[0].size == qty
    for account in SHORTS:
        exchange.deposit(account, "1", "BTC")
        exchange.set_leverage(account, "BTCUSD", "2", "2")
        exchange.place_order(MAKER, "BTCUSD", "Buy", "Limit", qty="20000", price=index)
        assert exchange.place_order(account, "BTCUSD", "Sell", "Limit", qty="20000",
                                    price=index, time_in_force="IOC").ret_code == 0
    for account, side, leverage, wallet in ((USDT_LONG, "Buy", "50", "1000"),
                                            (USDT_SHORT, "Sell", "2", "60000")):
        exchange.deposit(account, wallet, "USDT")
        exchange.set_leverage(account, "BTCUSDT", leverage, leverage)
        other = "Sell" if side == "Buy" else "Buy"
        qty = "1.5" if side == "Buy" else "3"
        exchange.place_order(MAKER, "BTCUSDT", other, "Limit", qty=qty, price=index)
        assert exchange.place_order(account, "BTCUSDT", side, "Limit", qty=qty, price=index,
                                    time_in_force="IOC").ret_code == 0


@pytest.fixture(scope="module")
def replay() -> Audit:
    feed = CandleReplay(PRICES / "btcusd_1m_2023-03-01_2023-03-07.csv", "BTCUSD", "0.10",
                        step_ms=15_000, start_ms=ms(START), end_ms=ms(END))
    observations = list(feed)
    exchange = Exchange(["BTCUSDT", "BTCUSD"], start_ms=ms(START), check_invariants=True)
    audit = Audit(exchange)
    exchange.subscribe(audit)
    exchange.deposit(MAKER, "1000", "BTC")
    exchange.deposit(MAKER, "100000000", "USDT")
    exchange.fund_insurance("0.05", "BTC")
    exchange.fund_insurance("1000", "USDT")
    first = observations[0].price
    for symbol in ("BTCUSD", "BTCUSDT"):
        exchange.index_price(symbol, first)
    open_positions(exchange, first)
    last_minute = None
    for observation in observations:
        exchange.at(observation.ts_ms)
        for symbol in ("BTCUSD", "BTCUSDT"):
            exchange.index_price(symbol, observation.price)
        minute = observation.ts_ms // 60_000
        if minute != last_minute:
            last_minute = minute
            exchange.tick()
            requote(exchange, observation.price)
    return audit


def test_the_fall_liquidates_inverse_longs_in_both_modes_and_deleverages(replay: Audit) -> None:
    counts = replay.counts
    assert counts["liquidated BTCUSD"] >= 4, counts
    assert replay.liquidated_modes == {MarginMode.CROSS, MarginMode.ISOLATED}
    assert counts["deleveraged BTCUSD"] >= 1, counts
    assert counts["liquidated BTCUSDT"] >= 1, counts
    assert replay.fund_btc_moves > 0


def test_funding_is_paid_in_each_contracts_own_coin(replay: Audit) -> None:
    assert replay.counts["funding BTCUSD"] > 0 and replay.counts["funding BTCUSDT"] > 0


def test_every_atom_of_each_coin_is_accounted_for_at_the_end(replay: Audit) -> None:
    assert replay.cash_view() == replay.deposits
    fund = replay.exchange.engine.clearing.accounts[INSURANCE_FUND_ID]
    assert not any(p.size_lots for p in fund.positions.values())
