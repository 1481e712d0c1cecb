"""Versioned binary encoding of commands (the journal) and engine snapshots.

Every body starts with one format byte, so a reader knows how the rest was written and an
old journal stays readable when the format changes:

- ``FORMAT_MSGPACK`` (1): msgpack of the tagged ``Command`` union (or of the snapshot dict);
- ``FORMAT_JSON`` (2): the same as JSON, used only when a value does not fit msgpack's 64-bit
  integers (the core's integers are unbounded; msgpack's are not).

The command union is collected from ``Command``'s subclasses, walked recursively when the
codec is built, so a command added to ``perpx.core.commands`` later is journaled without a
change here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, Union

import msgspec

from perpx.core import commands as _commands  # noqa: F401  (registers every command type)
from perpx.core.commands import Command

_T = TypeVar("_T")

FORMAT_MSGPACK = 1
FORMAT_JSON = 2
_MSGPACK = bytes([FORMAT_MSGPACK])
_JSON = bytes([FORMAT_JSON])
_SNAPSHOT_ENCODER = msgspec.msgpack.Encoder()
_ARRAY32 = b"\xdd"  # msgpack's array header with a 32-bit item count
# What a journal's reader puts between bodies it joins for `CommandCodec.decode_joined`:
# msgpack's nil, which no body's format byte is.
JOIN_SEPARATOR = b"\xc0"
_NOT_COMMANDS = frozenset((int, type(None)))


class CodecError(ValueError):
    """A body could not be encoded or decoded (unknown format, corrupt bytes, bad type)."""


def concrete_types(base: type[_T]) -> list[type[_T]]:
    """Return every subclass of `base`, walked recursively, by name (a tagged union's members)."""
    found: list[type[_T]] = []
    stack = list(base.__subclasses__())
    while stack:
        kind = stack.pop()
        if kind not in found:
            found.append(kind)
            stack.extend(kind.__subclasses__())
    return sorted(found, key=lambda k: k.__name__)


def command_types() -> list[type[Command]]:
    """Return every concrete command type."""
    return concrete_types(Command)


def encode_body(value: Any, msgpack: msgspec.msgpack.Encoder) -> bytes:
    """Return the format byte and `value` as msgpack, or as JSON past msgpack's 64-bit ints."""
    try:
        return _MSGPACK + msgpack.encode(value)
    except OverflowError:
        return _JSON + msgspec.json.encode(value)


class CommandCodec:
    """Encode and decode single commands; one instance per thread is cheap and safe."""

    def __init__(self) -> None:
        kinds = tuple(command_types())
        union: Any = Union[kinds]  # noqa: UP007  (a runtime-built union of the tagged types)
        self._msgpack_encoder = msgspec.msgpack.Encoder()
        self._msgpack_decoder = msgspec.msgpack.Decoder(union)
        self._json_decoder = msgspec.json.Decoder(union)
        # `decode_joined`: bodies joined by nils read as one msgpack array of each body's
        # format byte (1 is also msgpack's integer 1), its command and a nil.
        joined: Any = Union[(int, None, *kinds)]
        self._joined_decoder = msgspec.msgpack.Decoder(list[joined])

    def encode(self, command: Command) -> bytes:
        """Return the format byte and the encoded command."""
        return encode_body(command, self._msgpack_encoder)

    def encode_many(self, commands: Iterable[Command]) -> list[bytes]:
        """Encode a batch, in order."""
        encode = self.encode
        return [encode(command) for command in commands]

    def encode_blobs(self, commands: Iterable[Command]) -> list[bytearray]:
        """Encode a batch, in order, each body a bytearray (the same bytes as `encode`).

        What the SQLite journal binds: sqlite3 binds a bytearray at once but looks a bytes up
        in its adapters first (`SqliteJournal.append`). Encoding into the bytearray after its
        format byte (`encode_into`) skips the bytes that `encode` builds, the concatenation
        with the format byte and the copy into a bytearray: ~100 ns a command.
        """
        encode_into = self._msgpack_encoder.encode_into
        blobs: list[bytearray] = []
        for command in commands:
            blob = bytearray(_MSGPACK)
            try:
                encode_into(command, blob, 1)
            except OverflowError:  # past msgpack's 64-bit integers: `encode_body`'s JSON
                blob = bytearray(encode_body(command, self._msgpack_encoder))
            blobs.append(blob)
        return blobs

    def decode(self, body: bytes) -> Command:
        """Return the command in `body`; raise `CodecError` if it is not one."""
        if not body:
            raise CodecError("empty command body")
        kind = body[0]
        try:
            # Slicing bytes copies ~60 bytes, still cheaper than a memoryview per command.
            if kind == FORMAT_MSGPACK:
                command: Command = self._msgpack_decoder.decode(body[1:])
            elif kind == FORMAT_JSON:
                command = self._json_decoder.decode(body[1:])
            else:
                raise CodecError(f"unknown command format {kind}")
        except msgspec.DecodeError as bad:
            raise CodecError(f"corrupt command body: {bad}") from bad
        return command

    def decode_joined(self, joined: bytes, count: int) -> list[Command] | None:
        """Return what `decode` makes of `count` bodies joined by `JOIN_SEPARATOR`, or None.

        One decoder call for a whole chunk of the journal instead of one per body (no
        Python call, slice or error handler per command). A msgpack body is its format
        byte 1, which is also a whole msgpack value (the integer 1), then one command, and
        the separator is msgpack's nil: so the bodies joined, under a 32-bit array header
        of 3 * `count` - 1 items, are one array of 1, a command, nil, 1, a command, nil ...
        Each nil must fall where it was put, between two bodies: a body that is not one
        whole command (truncated, trailing bytes, bytes moved into a neighbour) shifts
        what follows it off that pattern. None when the array is not that (a JSON body, a
        corrupt one): the caller then decodes each body with `decode`, which gives the
        commands or the `CodecError` it always gave.
        """
        if count <= 0:
            return [] if not joined else None
        items = 3 * count - 1
        try:
            found = self._joined_decoder.decode(_ARRAY32 + items.to_bytes(4, "big") + joined)
        except (msgspec.DecodeError, OverflowError):
            return None
        commands: list[Command] = found[1::3]
        if (found[0::3].count(FORMAT_MSGPACK) != count or found[2::3].count(None) != count - 1
                or not _NOT_COMMANDS.isdisjoint(map(type, commands))):
            return None
        return commands


def encode_snapshot(snapshot: dict[str, Any]) -> bytes:
    """Encode `Engine.to_snapshot()`'s data with its format byte."""
    return encode_body(snapshot, _SNAPSHOT_ENCODER)


def decode_snapshot(body: bytes | memoryview) -> dict[str, Any]:
    """Return the snapshot data in `body`; raise `CodecError` if it is corrupt."""
    view = memoryview(body)
    try:
        if view and view[0] == FORMAT_MSGPACK:
            data = msgspec.msgpack.decode(view[1:])
        elif view and view[0] == FORMAT_JSON:
            data = msgspec.json.decode(view[1:])
        else:
            raise CodecError("unknown snapshot format")
    except msgspec.DecodeError as bad:
        raise CodecError(f"corrupt snapshot: {bad}") from bad
    if not isinstance(data, dict):
        raise CodecError("corrupt snapshot: not a mapping")
    return data
