"""The Journal protocol on SQLite and PostgreSQL: order, gaps, round trips, reopening."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from perpx.core.commands import Command, Deposit, PlaceOrder, Tick
from perpx.core.enums import OrderType, Side
from perpx.store.codec import CodecError, CommandCodec, command_types
from perpx.store.journal import Journal, JournalError


def _sample(info: msgspec.inspect.Type, big: bool) -> Any:
    if isinstance(info, msgspec.inspect.UnionType):
        return _sample(next(t for t in info.types
                            if not isinstance(t, msgspec.inspect.NoneType)), big)
    if isinstance(info, msgspec.inspect.BoolType):
        return True
    if isinstance(info, msgspec.inspect.IntType):
        return 10**30 if big else -123_456_789_012
    if isinstance(info, msgspec.inspect.StrType):
        return "BTCUSDT-é"
    if isinstance(info, msgspec.inspect.EnumType):
        members: list[enum.Enum] = list(info.cls)
        return members[-1]
    if isinstance(info, msgspec.inspect.DictType):  # ListInstrument's record: plain data
        return {"BTCUSDT-é": 10**30 if big else -123_456_789_012, "tiers": [[1, "x"]]}
    if isinstance(info, msgspec.inspect.ListType):  # SetCollateralSwitch's (coin, on) pairs
        return [_sample(info.item_type, big)]
    if isinstance(info, msgspec.inspect.TupleType):
        return tuple(_sample(item, big) for item in info.item_types)
    raise AssertionError(f"no sample for {info}")


def every_command(first_seq: int = 1, big: bool = False) -> list[Command]:
    """One command of every type (built from the type's fields, so new commands are covered)."""
    out: list[Command] = []
    for n, kind in enumerate(command_types()):
        info = msgspec.inspect.type_info(kind)
        assert isinstance(info, msgspec.inspect.StructType)
        values = {f.name: _sample(f.type, big) for f in info.fields
                  if f.name not in ("seq", "ts_ms")}
        out.append(kind(seq=first_seq + n, ts_ms=1_700_000_000_000 + n, **values))
    return out


def _orders(first: int, count: int) -> list[Command]:
    return [PlaceOrder(s, s, 1 + s % 7, "BTCUSDT", Side.BUY, OrderType.LIMIT, s, 650_000)
            for s in range(first, first + count)]


def test_every_command_type_round_trips(opener: Callable[[], Journal]) -> None:
    journal = opener()
    commands = every_command()
    assert len(commands) >= 15
    journal.append(commands)
    assert list(journal.read()) == commands
    assert journal.last_seq() == len(commands)
    journal.close()


def test_integers_beyond_64_bits_round_trip_through_the_json_format(
        opener: Callable[[], Journal]) -> None:
    journal = opener()
    commands = every_command(big=True)
    journal.append(commands)
    assert list(journal.read()) == commands
    journal.close()


def test_reopen_after_close_keeps_everything_and_continues(opener: Callable[[], Journal]) -> None:
    journal = opener()
    journal.append(_orders(1, 100))
    journal.append(_orders(101, 5000))
    journal.close()
    with pytest.raises(JournalError):
        journal.append(_orders(5101, 1))
    again = opener()
    assert again.last_seq() == 5100
    assert [c.seq for c in again.read()] == list(range(1, 5101))
    assert [c.seq for c in again.read(4999)] == list(range(4999, 5101))
    again.append(_orders(5101, 1))
    assert again.last_seq() == 5101
    again.close()


def test_gaps_and_repeats_are_refused_and_change_nothing(opener: Callable[[], Journal]) -> None:
    journal = opener()
    journal.append(_orders(1, 3))
    for bad in (_orders(5, 1), _orders(3, 2), _orders(4, 1) + _orders(6, 1), _orders(1, 1)):
        with pytest.raises(JournalError, match="gap"):
            journal.append(bad)
    assert journal.last_seq() == 3
    assert [c.seq for c in journal.read()] == [1, 2, 3]
    journal.append([])
    journal.append([Tick(4, 9), Deposit(5, 9, 1, "USDT", 1)])
    assert journal.last_seq() == 5
    journal.close()


def test_read_from_beyond_the_end_is_empty(opener: Callable[[], Journal]) -> None:
    journal = opener()
    assert list(journal.read()) == []
    assert journal.last_seq() == 0
    journal.append(_orders(1, 2))
    assert list(journal.read(3)) == []
    journal.close()


def test_codec_refuses_unknown_and_corrupt_bodies() -> None:
    codec = CommandCodec()
    good = codec.encode(Tick(1, 2))
    assert codec.decode(good) == Tick(1, 2)
    for bad in (b"", b"\x09" + good[1:], good[:-3], b"\x01\xc1", b"\x02{]"):
        with pytest.raises(CodecError):
            codec.decode(bad)
