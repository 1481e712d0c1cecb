"""Execution ids: UUID strings (Bybit's execId), unique, the same after any replay, no hash per
trade row (issue #15)."""

from __future__ import annotations

import uuid

from perpx.core.commands import Deposit
from perpx.core.events import Event, PositionChanged
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store.journal import MemoryJournal
from perpx.store.records import exec_id, trade_exec_id


def test_trade_ids_are_uuids_unique_per_side_and_deterministic() -> None:
    seen: set[str] = set()
    for trade_id in (*range(1, 2000), 2**40, 2**60 - 1):
        for maker in (False, True):
            text = trade_exec_id(trade_id, maker)
            parsed = uuid.UUID(text)
            assert str(parsed) == text and parsed.version == 8
            assert parsed.variant == uuid.RFC_4122
            assert text == trade_exec_id(trade_id, maker)
            seen.add(text)
    assert len(seen) == 2 * 2001


def test_other_execution_ids_are_uuids_unique_and_apart_from_trades() -> None:
    ids = {exec_id(seq, 0, account, f"Funding{symbol}0")
           for seq in range(1, 200) for account in range(1, 20) for symbol in ("BTC", "ETH")}
    assert len(ids) == 199 * 19 * 2
    assert all(uuid.UUID(i).version == 8 for i in ids)
    assert not ids & {trade_exec_id(t, m) for t in range(1, 5000) for m in (False, True)}
    assert exec_id(5, 1, 7, "BustBTCUSDT") == exec_id(5, 1, 7, "BustBTCUSDT")


def test_open_interest_is_folded_once_with_the_tickers() -> None:
    service = ExchangeService(load_instruments(), MemoryJournal(), maker=False)
    assert service.open_interest is service.tickers.open_interest
    # The one fold (`readside.fold`) hands the open interest each event that moves it once
    # (`Tickers.apply_all`); the others only move its clock.
    seen: list[Event] = []
    fold = service.open_interest.apply

    def counted(event: Event) -> None:
        seen.append(event)
        fold(event)

    service.open_interest.apply = counted  # type: ignore[method-assign]
    command = Deposit(1, 1_700_000_000_000, 7, "USDT", 10**10)
    events = service.engine.apply(command)
    service._project(command, events, write=False)
    assert seen == [event for event in events if isinstance(event, PositionChanged)]
    assert service.open_interest.now_ms == command.ts_ms
