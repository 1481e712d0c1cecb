"""Rows handed over while the history thread is busy share one transaction (group commit).

Whatever the grouping, the tables hold the rows and watermark that one transaction per
hand-over gives, and a flush's future resolves only once its own rows are committed.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

from hypothesis import given, settings
from hypothesis import strategies as st
from test_history_failures import _Feeder, _reference

from perpx.store.history_sql import record_bytearray, record_bytes
from perpx.store.history_sqlite import SqliteHistory
from support.stores import history_rows


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(1, 24), min_size=1, max_size=12),
       held=st.lists(st.booleans(), min_size=12, max_size=12))
def test_grouped_hand_overs_store_what_one_transaction_each_stores(
        cuts: list[int], held: list[bool]) -> None:
    history = SqliteHistory(None)
    feeder = _Feeder(history)
    total = len(feeder.commands)
    gate: threading.Event | None = None
    flushes: list[tuple[int, Future[None]]] = []
    commits: list[int] = []
    try:
        upto = 0
        for cut, hold in zip(cuts, held, strict=False):
            if hold and gate is None:
                # Keep the writer thread busy: the hand-overs below queue up behind it.
                gate = threading.Event()
                history._executor.submit(gate.wait)
            upto = min(total, upto + cut)
            feeder.project(upto)
            flushes.append((upto, history.flush()))
            if not hold and gate is not None:
                gate.set()
                gate = None
        if gate is not None:
            gate.set()
        feeder.project(total)
        flushes.append((total, history.flush()))
        for seq, future in flushes:
            future.result()
            # Resolved: its rows are committed (the watermark is the committed one).
            commits.append(history.high_watermark)
            assert history.high_watermark >= seq
        rows = history_rows(history)
    finally:
        if gate is not None:
            gate.set()
        history.close()
    assert rows == _reference()
    assert commits == sorted(commits)


@given(st.integers(0, 2**63 - 1), st.text(max_size=20))
def test_a_record_encodes_to_the_same_bytes_in_a_bytearray(number: int, text: str) -> None:
    record = {"n": number, "s": text, "l": [number, text]}
    assert bytes(record_bytearray(record)) == record_bytes(record)


@given(st.text(min_size=900, max_size=3000), st.integers(0, 2**63 - 1))
def test_a_record_past_the_room_reserved_for_it_encodes_to_the_same_bytes(
        text: str, number: int) -> None:
    # `record_bytearray` encodes into a bytearray with room for an order's record: a larger
    # one grows it, and a smaller one leaves it truncated to what was written.
    record = {"s": text, "n": number}
    assert bytes(record_bytearray(record)) == record_bytes(record)
    assert bytes(record_bytearray(number)) == record_bytes(number)
