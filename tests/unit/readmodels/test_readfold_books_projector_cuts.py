"""The read side's per-command cuts of issue #15 (eighth session) against the paths they skip.

- `records._uuid8` (%-formatted) is the RFC 9562 text of the 128 bits it lays out, as the
  standard library's `uuid.UUID` writes it, for every kind and every 62-bit number;
- a `Projector` without a sink skips `_balance` and `_interest` (they only write rows): over
  seeded order flows, one without a sink shows, command by command, the projection and the
  state of one with a sink (the general path, every handler called);
- `Books.apply` (methods by type, `_rest_pending` only when something is pending, a level
  already filed set in the dict itself) is `BookMirror.apply` on each book event and
  `end_command` per touched mirror, the per-event path the stream views use: the same
  mirrors after every command; its `BookChanges` name every book whose levels moved and only
  books the command touched, with each trade's direction in event order.
"""

from __future__ import annotations

import uuid

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.bench.match import funded_engine, perpx_commands
from perpx.bench.stream import standard_stream
from perpx.core.commands import Command
from perpx.core.engine import Engine
from perpx.core.events import Event, Trade
from perpx.instruments import load_instruments
from perpx.readmodels.books import BOOK_EVENTS, BookMirror, Books, TickDirection
from perpx.store import records
from perpx.store.loadflow import order_flow
from perpx.store.records import Projector

_PREFIX_BITS = 0x5F1C3A2E8D4B8  # the first 13 hex digits, "5f1c3a2e-8d4b-8"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFF), st.integers(0, 2**62 - 1))
def test_an_execution_id_is_the_uuid_text_of_its_bits(kind: int, number: int) -> None:
    # Arrange: the 128 bits RFC 9562's layout gives (prefix, version 8, kind, variant, number)
    bits = (_PREFIX_BITS << 76) | (kind << 64) | ((0x8000 | (number >> 48)) << 48) \
        | (number & ((1 << 48) - 1))
    # Act
    found = records._uuid8(kind, number)
    # Assert
    assert found == str(uuid.UUID(int=bits))
    assert uuid.UUID(found).version == 8 and uuid.UUID(found).variant == uuid.RFC_4122


def test_the_edge_execution_ids() -> None:
    # Arrange / Act / Assert: the smallest and largest number of each kind used
    assert records.trade_exec_id(0, False) == "5f1c3a2e-8d4b-8001-8000-000000000000"
    assert records._uuid8(records._KIND_HASHED, 2**62 - 1) == \
        "5f1c3a2e-8d4b-8002-bfff-ffffffffffff"


class _Rows:
    """A sink that keeps every row it is handed, in order."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, object]] = []

    def order_final(self, record: object) -> None:
        self.rows.append(("order", record))

    def execution(self, record: object) -> None:
        self.rows.append(("execution", record))

    def closed_pnl(self, record: object) -> None:
        self.rows.append(("closed_pnl", record))

    def ledger(self, record: object) -> None:
        self.rows.append(("ledger", record))

    def delivery(self, record: object) -> None:
        self.rows.append(("delivery", record))

    def settlement(self, record: object) -> None:
        self.rows.append(("settlement", record))

    def borrow(self, record: object) -> None:
        self.rows.append(("borrow", record))


def _flow(count: int, seed: int) -> list[Command]:
    """The load flow (deposits, crossing orders, cancels, market orders, prices), 20 s apart.

    20 s a command: a few thousand pass funding times and candle closes.
    """
    return [msgspec.structs.replace(command, seq=n, ts_ms=1_700_000_000_000 + 20_000 * n)
            for n, command in enumerate(order_flow(count, seed), start=1)]


def _same_projection_with_and_without_a_sink(commands: list[Command], engine: Engine) -> int:
    specs = list(engine.instruments.values())
    sink = _Rows()
    general, cut = Projector(specs, sink=sink), Projector(specs)
    folded = 0
    for command in commands:
        events = engine.apply(command)
        expected = general.project(command, events)
        found = cut.project(command, events)
        assert found == expected
        assert cut.to_state() == general.to_state()
        folded += len(events)
    assert any(kind == "ledger" for kind, _ in sink.rows)  # the skipped handlers had work
    return folded


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(100, 600))
def test_a_projector_without_a_sink_folds_as_one_with_a_sink(seed: int, count: int) -> None:
    # Arrange / Act / Assert: the load flow and the bench's standard stream
    _same_projection_with_and_without_a_sink(_flow(count, seed), Engine(load_instruments()))
    _same_projection_with_and_without_a_sink(
        perpx_commands(standard_stream(count, seed)), funded_engine())


def test_a_projector_without_a_sink_over_funding_times() -> None:
    # Arrange / Act / Assert: 3,000 commands 20 s apart (over 16 hours: funding settles)
    assert _same_projection_with_and_without_a_sink(
        _flow(3_000, 11), Engine(load_instruments())) > 3_000


def _per_event(mirrors: dict[str, BookMirror], events: list[Event]) -> None:
    """The per-event path: each book event to its mirror, then `end_command` on each touched."""
    touched: list[str] = []
    for event in events:
        if isinstance(event, BOOK_EVENTS):
            mirrors[event.symbol].apply(event)
            if event.symbol not in touched:
                touched.append(event.symbol)
    for symbol in touched:
        mirrors[symbol].end_command()
        mirrors[symbol].changed = False


def _levels(books: Books) -> dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]]]]:
    return {symbol: (list(mirror.bids.items()), list(mirror.asks.items()))
            for symbol, mirror in books.mirrors.items()}


def _books_as_per_event(commands: list[Command], engine: Engine) -> None:
    symbols = list(engine.instruments)
    books, reference = Books(symbols), Books(symbols)
    directions = TickDirection()
    for command in commands:
        events = engine.apply(command)
        before = _levels(books)
        changes = books.apply(command, events)
        _per_event(reference.mirrors, events)
        after = _levels(books)
        assert {symbol: mirror.to_state() for symbol, mirror in books.mirrors.items()} == \
            {symbol: mirror.to_state() for symbol, mirror in reference.mirrors.items()}
        touched = {event.symbol for event in events if isinstance(event, BOOK_EVENTS)}
        moved = {symbol for symbol in symbols if before[symbol] != after[symbol]}
        assert moved <= changes.changed <= touched
        assert changes.directions == [directions.next(event.symbol, event.price_ticks)
                                      for event in events if isinstance(event, Trade)]
        assert (books.seq, books.now_ms >= command.ts_ms) == (command.seq, True)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(50, 600))
def test_books_apply_is_the_per_event_path(seed: int, count: int) -> None:
    # Arrange / Act / Assert: the bench's standard stream and the load flow
    _books_as_per_event(perpx_commands(standard_stream(count, seed)), funded_engine())
    _books_as_per_event(_flow(count, seed), Engine(load_instruments()))
