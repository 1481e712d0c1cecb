"""The library facade `perpx.Exchange`: every call, refusals as results, replay and restore."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import perpx
from perpx import Exchange
from perpx.cli import app
from perpx.core.codes import RejectCode
from perpx.core.commands import Deposit, PlaceOrder
from perpx.core.enums import OrderType, Side
from perpx.core.events import (
    Deleveraged,
    FundingSettled,
    Liquidated,
    OrderCancelled,
    Trade,
)
from perpx.instruments import served_instruments
from perpx.store import open_journal
from perpx.store.journal import MemoryJournal
from perpx.store.replay import replay_journal

BTC = "BTCUSDT"
HOUR = 3_600_000


def market(ex: Exchange) -> Exchange:
    """Two funded traders, a funded insurance fund, an index and a two-sided book."""
    for account in (1, 2, 3, 4):
        assert ex.deposit(account, "100000").ok
    assert ex.fund_insurance("50000").ok
    assert ex.index_price(BTC, "20000").ok
    for i in range(1, 6):
        assert ex.place_order(1, BTC, "Buy", "Limit", qty="1", price=f"{20000 - 10 * i}").ok
        assert ex.place_order(2, BTC, "Sell", "Limit", qty="1", price=f"{20000 + 10 * i}").ok
    return ex


def busy_day(ex: Exchange) -> Exchange:
    """A fixed script: trades, a leveraged isolated long liquidated, funding settled."""
    market(ex)
    assert ex.set_margin_mode(3, "ISOLATED_MARGIN").ok
    assert ex.set_leverage(3, BTC, "100").ok
    assert ex.place_order(3, BTC, "Buy", "Market", qty="0.5").ok
    assert ex.place_order(4, BTC, "Sell", "Market", qty="0.2").ok
    ex.advance(HOUR, tick_every_ms=60_000)
    ex.index_price(BTC, "19700")
    ex.advance(8 * HOUR, tick_every_ms=60_000)
    return ex


def test_the_package_exports_the_facade_and_the_version_only() -> None:
    assert perpx.__all__ == ["Exchange", "__version__"]
    assert perpx.Exchange is Exchange


def test_deposit_order_fill_positions_and_wallet_in_decimal_strings() -> None:
    ex = Exchange([BTC], check_invariants=True)
    assert ex.deposit(1, "10000").ok and ex.deposit(2, "10000").ok
    assert ex.index_price(BTC, "65000").ok
    placed = ex.place_order(1, BTC, "Buy", "Limit", qty="0.01", price="65000",
                            order_link_id="my-1")
    assert placed.ok and placed.order_id == "1" and placed.order_link_id == "my-1"
    assert [o.order_link_id for o in ex.open_orders(1, BTC)] == ["my-1"]
    book = ex.orderbook(BTC, 5)
    assert book.bids == [("65000.00", "0.010")] and book.asks == []
    taken = ex.place_order(2, BTC, "Sell", "Market", qty="0.01")
    assert taken.ok and any(isinstance(e, Trade) for e in taken.events)
    [long] = ex.positions(1)
    assert (long.side, long.size, long.avg_price, long.margin_mode) == (
        "Buy", "0.010", "65000.00", "cross")
    [short] = ex.positions(2, BTC)
    assert short.side == "Sell"
    wallet = ex.wallet(1)
    # 0.01 × 65000 = 650 notional; the maker fee 0.02% = 0.13.
    assert wallet.wallet_balance == "9999.87"
    assert ex.wallet(99).wallet_balance == "0" and ex.positions(99) == []
    assert ex.prices(BTC)["last"] == "65000.00"


def test_refusals_are_results_with_bybit_codes_and_change_nothing() -> None:
    ex = market(Exchange([BTC]))
    before, seq = ex.state_hash(), ex.engine.last_seq
    off_grid = ex.place_order(1, BTC, "Buy", "Limit", qty="0.0101", price="19000")
    assert (off_grid.ret_code, off_grid.reject, off_grid.seq) == (10001, RejectCode.INVALID_QTY,
                                                                  None)
    bad_word = ex.place_order(1, BTC, "Up", "Limit", qty="1", price="19000")
    assert bad_word.ret_code == 10001 and "side" in bad_word.detail
    no_price = ex.place_order(1, BTC, "Buy", "Limit", qty="1")
    assert no_price.reject is RejectCode.INVALID_PRICE
    unknown = ex.place_order(1, "DOGEUSDT", "Buy", "Limit", qty="1", price="1")
    assert unknown.reject is RejectCode.UNKNOWN_SYMBOL
    assert ex.deposit(1, "1e5").ret_code == 10001
    assert ex.state_hash() == before and ex.engine.last_seq == seq
    # Refusals by the core take a seq (they are journaled) and change nothing else.
    poor = ex.place_order(3, BTC, "Buy", "Limit", qty="100", price="19990")
    assert (poor.ret_code, poor.ret_msg) == (110007, "ab not enough for new order")
    assert poor.seq == seq + 1 and not poor.ok
    assert ex.cancel(1, BTC, "999").ret_code == 110001
    assert ex.cancel(1, BTC, "abc").ret_code == 110001
    assert ex.set_leverage(1, BTC, "10").ret_code == 110043
    assert ex.set_leverage(1, BTC, "1000").ret_code == 10001
    assert ex.withdraw(5, "1").ret_code == 10003
    assert ex.set_margin_mode(1, "sideways").ret_code == 10001
    assert ex.switch_position_mode(1, BTC, 7).ret_code == 10001
    assert ex.trading_stop(1, BTC, take_profit="21000").ret_code == 10001  # no position


def test_amend_cancel_cancel_all_and_submit() -> None:
    ex = market(Exchange([BTC], check_invariants=True))
    placed = ex.place_order(3, BTC, "Buy", "Limit", qty="0.1", price="19000",
                            order_link_id="a")
    amended = ex.amend(3, BTC, placed.order_id, qty="0.2", price="19001")
    assert amended.ok and amended.order_id == placed.order_id
    [view] = ex.open_orders(3, BTC)
    assert (view.price, view.qty) == ("19001.00", "0.200")
    assert ex.amend(3, BTC, order_link_id="a", price="19002").ok
    assert ex.cancel(3, BTC, order_link_id="a").ok
    assert ex.open_orders(3, BTC) == []
    for price in ("19000", "19001"):
        ex.place_order(3, BTC, "Buy", "Limit", qty="0.1", price=price)
    done = ex.cancel_all(3, BTC, "Order")
    assert done.ok and sum(isinstance(e, OrderCancelled) for e in done.events) == 2
    raw = ex.submit(PlaceOrder(0, 0, 3, BTC, Side.BUY, OrderType.LIMIT, 100, 1_900_000))
    assert raw.ok and raw.seq == ex.engine.last_seq and raw.order_id
    assert ex.submit(Deposit(0, 0, 3, "USDT", -5)).ret_code == 10001


def test_settings_margin_position_modes_and_trading_stop() -> None:
    ex = market(Exchange([BTC], check_invariants=True))
    assert ex.switch_position_mode(3, BTC, "Hedge").ok
    assert ex.set_leverage(3, BTC, "25", "25").ok
    opened = ex.place_order(3, BTC, "Buy", "Market", qty="0.3", position_idx=1)
    assert opened.ok
    stop = ex.trading_stop(3, BTC, position_idx=1, take_profit="21000", stop_loss="19000")
    assert stop.ok
    assert ex.switch_position_mode(3, BTC, 0).ret_code == 110025  # not while open
    assert ex.place_order(4, BTC, "Sell", "Market", qty="0.3").ok
    assert ex.set_margin_mode(4, "REGULAR_MARGIN").ret_code == 3400045  # already cross
    assert ex.set_margin_mode(5, "isolated").ret_code == 10003  # no wallet yet
    ex.deposit(5, "1000")
    assert ex.set_margin_mode(5, "isolated").ok
    assert ex.place_order(5, BTC, "Buy", "Market", qty="0.1").ok
    assert ex.add_margin(5, BTC, "10").ok
    assert ex.set_auto_add_margin(5, BTC, True).ok
    [isolated] = ex.positions(5)
    assert isolated.margin_mode == "isolated" and isolated.liq_price
    conditional = ex.place_order(5, BTC, "Sell", "Market", qty="0.1", reduce_only=True,
                                 trigger_price="18000", trigger_direction=2)
    assert conditional.ok and conditional.order_id
    assert ex.amend(5, BTC, conditional.order_id, trigger_price="18100").ok
    assert ex.set_funding_interval(BTC, 240).ok
    assert ex.mark_price(BTC, "20001").ok


def test_clock_moves_only_forward_and_ticks_on_the_grid() -> None:
    ex = Exchange([BTC], start_ms=1_000_000)
    assert ex.now_ms == 1_000_000
    ticks = ex.advance(3_500, tick_every_ms=1_000)
    assert len(ticks) == 3 and ex.now_ms == 1_003_500
    assert ex.engine.last_ts_ms == 1_003_000
    ex.at(2_000_000)
    assert ex.tick().ok and ex.engine.last_ts_ms == 2_000_000
    with pytest.raises(ValueError):
        ex.at(1_000_000)
    with pytest.raises(ValueError):
        ex.advance(-1)
    wall = Exchange([BTC], start_ms=0, wall_clock=True)
    assert wall.now_ms > 1_600_000_000_000


def test_subscribers_see_every_applied_command_in_order() -> None:
    ex = Exchange([BTC])
    seen: list[int] = []
    stop = ex.subscribe(lambda command, events: seen.append(command.seq))
    ex.deposit(1, "10")
    ex.deposit(1, "x")  # refused before the engine: nothing applied, nothing published
    ex.deposit(1, "10")
    stop()
    ex.deposit(1, "10")
    assert seen == [1, 2]


def test_a_busy_day_liquidates_and_settles_funding_deterministically() -> None:
    first, second = busy_day(Exchange()), busy_day(Exchange())
    assert first.state_hash() == second.state_hash()
    first.check_invariants()
    kinds: set[type] = set()
    replayed = Exchange()
    replayed.subscribe(lambda command, events: kinds.update(type(e) for e in events))
    busy_day(replayed)
    assert Liquidated in kinds and FundingSettled in kinds and Deleveraged not in kinds
    # The fund took the 100x long over at its bankruptcy price and sold it in the book above.
    assert replayed.insurance_fund() != "50000" and replayed.positions(3) == []


def test_snapshot_and_restore_round_trip_and_continue_alike() -> None:
    ex = busy_day(Exchange())
    data = ex.snapshot()
    restored = Exchange.restore(data)
    assert restored.state_hash() == ex.state_hash() and restored.now_ms == ex.now_ms
    for each in (ex, restored):
        each.advance(1_000)
        each.place_order(2, BTC, "Sell", "Market", qty="0.1")
        each.tick()
    assert restored.state_hash() == ex.state_hash()
    with pytest.raises(ValueError):
        Exchange.restore(data, journal=_journal_with_one_command())
    one = Exchange([BTC])
    one.deposit(1, "5")
    assert Exchange.restore(one.snapshot()).instruments() == [BTC]


def _journal_with_one_command() -> MemoryJournal:
    journal = MemoryJournal()
    journal.append([Deposit(1, 1, 1, "USDT", 1)])
    return journal


def test_a_journaled_run_replays_to_the_same_hash(tmp_path: Path) -> None:
    path = tmp_path / "sim.db"
    with Exchange(journal=open_journal(str(path)), journal_batch=7) as ex:
        busy_day(ex)
        expected = ex.state_hash()
    journal = open_journal(str(path))
    assert replay_journal(ex._specs, journal).engine.state_hash() == expected
    reopened = Exchange.from_journal(journal)
    assert reopened.state_hash() == expected
    assert reopened.deposit(9, "1").ok
    assert journal.last_seq() == reopened.engine.last_seq - 1  # batched until close()
    reopened.close()
    # An Exchange() journal holds the default table: `--instruments default` replays it so.
    out = CliRunner().invoke(app, ["replay", "--journal", str(path), "--instruments", "default"])
    assert out.exit_code == 0, out.output
    replayed = Exchange.from_journal(open_journal(str(path)))
    assert f"state hash {replayed.state_hash()}" in out.output.replace("\n", "")
    replayed.close()
    # Without it, `perpx replay` replays on what `perpx serve` lists (inverse and USDC too).
    out = CliRunner().invoke(app, ["replay", "--journal", str(path)])
    assert out.exit_code == 0, out.output
    served = Exchange.from_journal(open_journal(str(path)), served_instruments())
    assert f"state hash {served.state_hash()}" in out.output.replace("\n", "")


def test_a_non_empty_journal_is_refused_by_the_constructor() -> None:
    with pytest.raises(ValueError, match="from_journal"):
        Exchange(journal=_journal_with_one_command())
