"""Read-side checkpoints are data: they round-trip exactly, and a bad one is skipped, never run.

Issue #12, item 7 "No code from stored state" (finding: read-side checkpoints were pickles,
so whoever could write the journal's schema ran code on the host at the next start) and the
finding "a corrupt checkpoint stops start-up instead of falling back".
"""

from __future__ import annotations

import logging
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perpx import readside
from perpx.core.commands import (
    AmendOrder,
    CancelOrder,
    Command,
    Deposit,
    IndexPrice,
    MarkPrice,
    PlaceOrder,
    SetTradingStop,
    Tick,
)
from perpx.core.enums import OrderType, Side, TimeInForce, TriggerDirection
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store import open_history, open_journal, open_snapshots
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.journal import MemoryJournal
from support.readside import live_read_side, read_side_differences
from support.stores import history_sql

# -- round trip ------------------------------------------------------------------------------

_SPECS = load_instruments()
_MIDS = {"BTCUSDT": 650_000, "ETHUSDT": 350_000}  # ticks near each bundled start price
_START_MS = 1_700_000_000_000


@st.composite
def _command(draw: st.DrawFn) -> Command:
    """One command of a varied flow: orders of every kind, prices, time and trading stops."""
    symbol = draw(st.sampled_from(sorted(_MIDS)))
    mid = _MIDS[symbol]
    account = draw(st.integers(1, 4))
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    price = mid + draw(st.integers(-300, 300))
    qty = draw(st.integers(1, 40))
    kind = draw(st.sampled_from(["limit", "limit", "market", "market", "conditional", "amend",
                                 "cancel", "index", "mark", "tick", "stop", "stop"]))
    if kind == "limit":
        return PlaceOrder(0, 0, account, symbol, side, OrderType.LIMIT, qty, price,
                          order_link_id=f"l{draw(st.integers(0, 30))}",
                          time_in_force=draw(st.sampled_from(list(TimeInForce))))
    if kind == "market":
        return PlaceOrder(0, 0, account, symbol, side, OrderType.MARKET, qty,
                          take_profit_ticks=draw(st.none() | st.just(mid + 2_000)))
    if kind == "conditional":
        rising = draw(st.booleans())
        return PlaceOrder(0, 0, account, symbol, side, OrderType.MARKET, qty,
                          trigger_price_ticks=price,
                          trigger_direction=TriggerDirection.RISING if rising
                          else TriggerDirection.FALLING)
    if kind == "amend":
        return AmendOrder(0, 0, account, symbol, order_link_id=f"l{draw(st.integers(0, 30))}",
                          price_ticks=price)
    if kind == "cancel":
        return CancelOrder(0, 0, account, symbol, order_id=draw(st.integers(1, 200)))
    if kind == "index":
        return IndexPrice(0, 0, symbol, price)
    if kind == "mark":
        return MarkPrice(0, 0, symbol, price)
    if kind == "stop":
        return SetTradingStop(0, 0, account, symbol,
                              stop_loss_ticks=draw(st.none() | st.just(mid - 3_000)),
                              trailing_stop_ticks=500)
    return Tick(0, 0)


@st.composite
def _flows(draw: st.DrawFn) -> tuple[list[Command], int]:
    """A stamped flow (deposits first; time jumps cross minutes, hours and funding) and a cut."""
    body = draw(st.lists(_command(), min_size=2, max_size=60))
    commands: list[Command] = [Deposit(0, 0, account, "USDT", 10**6 * 10**8)
                               for account in range(1, 5)]
    commands += [IndexPrice(0, 0, symbol, mid) for symbol, mid in _MIDS.items()]
    # A resting ladder on both sides, so that market and crossing orders trade.
    commands += [PlaceOrder(0, 0, 1 + level % 2, symbol, side, OrderType.LIMIT, 60,
                            mid - 20 * (level + 1) if side is Side.BUY else mid + 20 * (level + 1))
                 for symbol, mid in _MIDS.items() for side in (Side.BUY, Side.SELL)
                 for level in range(6)]
    # Positions with a trailing stop and a stop loss, a conditional order, a TP/SL order.
    for symbol, mid in _MIDS.items():
        commands += [
            PlaceOrder(0, 0, 3, symbol, Side.BUY, OrderType.MARKET, 10),
            SetTradingStop(0, 0, 3, symbol, stop_loss_ticks=mid - 3_000,
                           trailing_stop_ticks=500),
            PlaceOrder(0, 0, 4, symbol, Side.SELL, OrderType.MARKET, 5,
                       trigger_price_ticks=mid - 200,
                       trigger_direction=TriggerDirection.FALLING),
            PlaceOrder(0, 0, 4, symbol, Side.BUY, OrderType.LIMIT, 5, mid - 400,
                       take_profit_ticks=mid + 2_000, stop_loss_ticks=mid - 2_000)]
    commands += body
    stamped: list[Command] = []
    now = _START_MS
    for seq, command in enumerate(commands, start=1):
        now += draw(st.sampled_from([0, 1, 700, 59_000, 3_600_000, 8 * 3_600_000]))
        stamped.append(msgspec.structs.replace(command, seq=seq, ts_ms=now))
    return stamped, draw(st.integers(1, len(stamped)))


def _replayed(commands: list[Command]) -> ExchangeService:
    journal = MemoryJournal()
    journal.append(commands)
    return ExchangeService(_SPECS, journal, maker=False)


def _fold(service: ExchangeService, commands: list[Command]) -> None:
    for command in commands:
        service._project(command, service.engine.apply(command), write=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_flows())
def test_a_checkpoint_round_trips_and_a_restored_service_folds_on_as_a_live_one(
        flow: tuple[list[Command], int]) -> None:
    """State -> bytes -> state is the identity; restored then folding equals never restarted.

    Issue #12 item 7: the checkpoint is data (MessagePack of typed state records).
    """
    commands, cut = flow
    live = _replayed(commands[:cut])
    body = readside.capture(live)
    assert msgspec.msgpack.decode(body, type=readside.ReadSideState) == readside.state(live)
    # A service at the cut whose read side is replaced, object for object, by the checkpoint.
    restarted = _replayed(commands[:cut])
    before = {name: id(part) for name, part in live_read_side(restarted).items()
              if not isinstance(part, (int, tuple))}
    readside.restore(restarted, body, cut)
    after = live_read_side(restarted)
    assert all(id(after[name]) != old for name, old in before.items())
    assert read_side_differences(restarted, live) == []
    _fold(live, commands[cut:])
    _fold(restarted, commands[cut:])
    assert read_side_differences(restarted, live) == []
    full = _replayed(commands)
    assert read_side_differences(restarted, full) == []
    for service in (live, restarted, full):
        service.history.close()


# -- bad checkpoints -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def traded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """A data folder of a service that traded with snapshots; the stored snapshot seqs."""
    import asyncio

    folder = tmp_path_factory.mktemp("traded")
    location = str(folder / "journal.db")

    async def run() -> None:
        service = ExchangeService(_SPECS, open_journal(location),
                                  history=open_history(location),
                                  snapshots=open_snapshots(location), snapshot_every=40,
                                  feed_interval_s=3600)
        await service.start()
        await service.ensure_funded(5001, "100000")
        for step in range(20):
            await service.step()
            await service.submit(PlaceOrder(0, 0, 5001, "BTCUSDT",
                                            Side.BUY if step % 2 else Side.SELL,
                                            OrderType.MARKET, 1 + step % 5))
            # A trigger that finds a snapshot still in flight starts none; on a loaded machine
            # the first could outlast the rest of the run and leave a single checkpoint.
            assert service.snapshotter is not None
            await asyncio.to_thread(service.snapshotter.wait, 30.0)
        await service.close()

    asyncio.run(run())
    seqs = sorted((row[0] for row in history_sql(location, "SELECT seq FROM read_side")),
                  reverse=True)
    assert len(seqs) >= 2
    return folder, seqs


def _copy(traded: tuple[Path, list[int]], tmp_path: Path) -> tuple[str, list[int]]:
    folder, seqs = traded
    target = tmp_path / "data"
    shutil.copytree(folder, target)
    return str(target / "journal.db"), seqs


def _restart(location: str) -> tuple[ExchangeService, ExchangeService]:
    """Start the service on `location` (under test) and a full replay of the same journal."""
    again = ExchangeService(_SPECS, open_journal(location), history=open_history(location),
                            maker=False, snapshots=open_snapshots(location))
    full = ExchangeService(_SPECS, open_journal(location, readonly=True),
                           history=SqliteHistory(None), maker=False)
    return again, full


def _set_body(location: str, seq: int, body: bytes) -> None:
    history_sql(location, "UPDATE read_side SET body = ? WHERE seq = ?", (body, seq))


def _body(location: str, seq: int) -> bytes:
    return bytes(history_sql(location, "SELECT body FROM read_side WHERE seq = ?", (seq,))[0][0])


def _older_body(location: str, seq: int) -> bytes:
    return bytes(history_sql(location, "SELECT body FROM read_side WHERE seq < ? "
                             "ORDER BY seq DESC LIMIT 1", (seq,))[0][0])


class _Touch:
    """A pickle payload: unpickling it opens (so creates) a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return open, (str(self.path), "w")


def _header(**changes: object) -> dict[str, object]:
    header: dict[str, object] = {"format": readside.FORMAT, "version": readside.VERSION,
                                 "instruments": readside.instruments_hash(_SPECS), "seq": 0}
    header.update(changes)
    return header


def _reshaped(location: str, seq: int, change: Callable[[readside.ReadSideState], None]) -> bytes:
    found = msgspec.msgpack.decode(_body(location, seq), type=readside.ReadSideState)
    change(found)
    return msgspec.msgpack.encode(found)


# (what the newest checkpoint is made into, what the refusal says)
_BAD: dict[str, tuple[Callable[[str, int], bytes], str]] = {
    "random bytes": (lambda loc, seq: bytes(range(256)) * 7, "no readable header"),
    "empty": (lambda loc, seq: b"", "no readable header"),
    "truncated": (lambda loc, seq: _body(loc, seq)[:len(_body(loc, seq)) // 2],
                  "no readable header"),
    "a list": (lambda loc, seq: msgspec.msgpack.encode([1, 2, 3]), "no readable header"),
    "a pickle (version 2)": (
        lambda loc, seq: pickle.dumps({"seq": seq, "projector": None}), "no readable header"),
    "another version": (
        lambda loc, seq: msgspec.msgpack.encode(_header(version=2, seq=seq)), "version 2"),
    "another format": (
        lambda loc, seq: msgspec.msgpack.encode(_header(format="x", seq=seq)), "'x' version"),
    "another instrument table": (
        lambda loc, seq: msgspec.msgpack.encode(_header(instruments="0" * 64, seq=seq)),
        "another instrument table"),
    "another seq": (lambda loc, seq: _older_body(loc, seq), "holds seq"),
    "a header alone": (
        lambda loc, seq: msgspec.msgpack.encode(_header(seq=seq)), "does not decode"),
    "a field of the wrong type": (
        lambda loc, seq: msgspec.msgpack.encode({**_header(seq=seq), "projector": "rm -rf"}),
        "does not decode"),
    "an unknown symbol": (
        lambda loc, seq: _reshaped(loc, seq, lambda s: s.projector.marks.update(XYZ=1)),
        "unknown symbols"),
    "an open order list naming a closed order": (
        lambda loc, seq: _reshaped(
            loc, seq, lambda s: s.projector.open_by_account.append((7, [10**9]))),
        "is not open"),
    "another klines bound": (
        lambda loc, seq: _reshaped(
            loc, seq, lambda s: s.klines.tracks[0][2][0].starts.extend([1, 2, 3, 4])),
        "does not fit"),
}


@pytest.mark.parametrize("bad", sorted(_BAD))
def test_a_bad_checkpoint_is_skipped_for_an_older_one(
        bad: str, traded: tuple[Path, list[int]], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A corrupt, foreign-version or hostile checkpoint is skipped with a log line.

    Issue #12, finding "a corrupt checkpoint stops start-up instead of falling back": on
    main, restoring it raised out of the service's constructor.
    """
    location, seqs = _copy(traded, tmp_path)
    make, reason = _BAD[bad]
    _set_body(location, seqs[0], make(location, seqs[0]))
    with caplog.at_level(logging.WARNING, logger="perpx.service"):
        again, full = _restart(location)
    assert again.recovery.snapshot_seq == seqs[1]
    assert reason in again.recovery.rejected[0]
    assert any(f"snapshot {seqs[0]}" in r.getMessage() and "older one" in r.getMessage()
               for r in caplog.records)
    assert again.engine.state_hash() == full.engine.state_hash()
    assert read_side_differences(again, full) == []


def test_no_checkpoint_loads_then_the_whole_journal_is_replayed(
        traded: tuple[Path, list[int]], tmp_path: Path) -> None:
    """Every checkpoint truncated: start-up replays the whole journal (issue #12, finding
    "a corrupt checkpoint stops start-up instead of falling back")."""
    location, seqs = _copy(traded, tmp_path)
    for seq in seqs:
        body = _body(location, seq)
        _set_body(location, seq, body[:-1])
    again, full = _restart(location)
    assert again.recovery.snapshot_seq == 0
    assert len(again.recovery.rejected) == len(seqs)
    assert again.engine.state_hash() == full.engine.state_hash()
    assert read_side_differences(again, full) == []


def test_a_pickle_payload_in_a_checkpoint_is_never_run(
        traded: tuple[Path, list[int]], tmp_path: Path) -> None:
    """A `__reduce__` payload that would create a file is not executed (issue #12 item 7:
    checkpoints were pickles, so writing the journal's schema ran code at the next start)."""
    location, seqs = _copy(traded, tmp_path)
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"seq": seqs[0], "projector": _Touch(marker)})
    for seq in seqs:
        _set_body(location, seq, payload)
    again, full = _restart(location)
    assert not marker.exists()
    assert again.recovery.snapshot_seq == 0
    assert read_side_differences(again, full) == []
