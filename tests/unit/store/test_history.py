from __future__ import annotations

import pytest

from perpx.core import OrderType, PlaceOrder, Side
from perpx.core.commands import Deposit, IndexPrice, Tick
from perpx.core.engine import Engine
from perpx.instruments import load_instruments
from perpx.store import open_history
from perpx.store.history import CursorError, History, decode_cursor, encode_cursor
from perpx.store.records import Projector


def run(history: History) -> Projector:
    specs = load_instruments()
    engine = Engine(specs)
    projector = Projector(specs, history)
    commands = [Deposit(1, 1, 1001, "USDT", 10**13), Deposit(2, 2, 1002, "USDT", 10**13),
                IndexPrice(3, 1000, "BTCUSDT", 650000), Tick(4, 1000)]
    seq = 4
    for i in range(5):
        seq += 1
        commands.append(PlaceOrder(seq, 2000 + i, 1001, "BTCUSDT", Side.BUY, OrderType.LIMIT,
                                   10, 650000))
        seq += 1
        commands.append(PlaceOrder(seq, 2000 + i, 1002, "BTCUSDT", Side.SELL,
                                   OrderType.MARKET, 10))
    for command in commands:
        projector.project(command, engine.apply(command))
        history.projected(command.seq)
    history.flush().result()
    return projector


def test_history_pages_newest_first_and_projecting_twice_changes_nothing(
        location: str) -> None:
    history = open_history(location)
    run(history)
    first = history.executions(1001, limit=3)
    assert len(first.records) == 3 and first.next_cursor
    second = history.executions(1001, limit=3, cursor=first.next_cursor)
    assert len(second.records) == 2 and second.next_cursor == ""
    ids = [r.exec_id for r in first.records + second.records]
    assert len(set(ids)) == 5
    assert [r.seq for r in first.records + second.records] == sorted(
        (r.seq for r in first.records + second.records), reverse=True)
    orders = history.orders(1002, status=3)
    assert len(orders.records) == 5 and all(o.cum_lots == 10 for o in orders.records)
    ledger = history.ledger_entries(1001, limit=50)
    assert {e.kind for e in ledger.records} == {"TRANSFER_IN", "TRADE"}
    run(history)  # a replay after a restart re-projects the same commands
    assert len(history.executions(1001, limit=50).records) == 5
    assert len(history.ledger_entries(1001, limit=50).records) == len(ledger.records)
    assert history.high_watermark == 14
    history.close()
    again = open_history(location)
    assert again.high_watermark == 14
    again.close()


def test_cursors_are_url_safe_and_checked() -> None:
    cursor = encode_cursor(123456)
    assert cursor.replace("-", "").replace("_", "").isalnum()
    assert decode_cursor(cursor) == 123456
    for bad in ("%%%", "abc", encode_cursor(1) + "x" * 40):
        with pytest.raises(CursorError):
            decode_cursor(bad)


def test_checkpoints_keep_the_newest_and_reset_empties_everything(location: str) -> None:
    history = open_history(location)
    run(history)
    for seq in (5, 9, 12, 14):
        history.save_checkpoint(seq, "code", bytes([seq]) * 3, keep=3)
    history.save_checkpoint(14, "code", b"again", keep=3)  # the same seq replaces
    assert history.checkpoint_seqs() == [14, 12, 9]
    assert history.load_checkpoint(14) == ("code", b"again")
    assert history.load_checkpoint(5) is None
    history.reset()
    assert history.high_watermark == 0 and history.checkpoint_seqs() == []
    assert history.executions(1001).records == []
    history.close()
