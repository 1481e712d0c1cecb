"""Versioned binary encoding of commands (the journal) and engine snapshots.

Every body starts with one format byte, so a reader knows how the rest was written and an
old journal stays readable when the format changes:

- ``FORMAT_MSGPACK`` (1): msgpack of a map by field name: the tagged ``Command`` union as
  journals were written until issue #14's eighth session (read, no longer written, for
  commands), and the snapshot dict (still written);
- ``FORMAT_JSON`` (2): the same as JSON, used only when a value does not fit msgpack's 64-bit
  integers (the core's integers are unbounded; msgpack's are not). Commands keep this map by
  field name (`_by_name`): the rare path needs no format of its own;
- ``FORMAT_COMMAND_ARRAY`` (3): a command as a msgpack array, what journals (and the
  gateway-to-writer transport, which carries the journal's encoding) are written in now:
  ``[tag, seq, ts_ms, the type's other fields in declaration order]``, every field present.
  The command Structs are ``array_like`` (`perpx.core.commands.Command`): msgspec decodes a
  field per position instead of looking each up by name, and a body is ~60 bytes instead
  of ~300. Positions are the format: a command type may gain fields only at its end, each
  with a default (an older body then decodes with the default); renaming, reordering or
  removing a field needs a new format byte. `tests/data/journals/format3_fields.json` pins
  the order and its test fails on any other change.

The format is per body (per journal row), not per journal: a journal written by an older
perpx and appended to by this one holds format-1 rows then format-3 rows, and every reader
reads both, one body at a time (docs/decisions.md, issue #14's eighth session).

The command union is collected from ``Command``'s subclasses, walked recursively when the
codec is built, so a command added to ``perpx.core.commands`` later is journaled without a
change here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, Union

import msgspec
from msgspec.structs import astuple

from perpx.core import commands as _commands  # noqa: F401  (registers every command type)
from perpx.core.commands import Command

_T = TypeVar("_T")

FORMAT_MSGPACK = 1
FORMAT_JSON = 2
FORMAT_COMMAND_ARRAY = 3
_MSGPACK = bytes([FORMAT_MSGPACK])
_JSON = bytes([FORMAT_JSON])
_COMMAND_ARRAY = bytes([FORMAT_COMMAND_ARRAY])
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


def _by_name(kind: type[Command]) -> type[msgspec.Struct]:
    """Return a Struct with `kind`'s name, tag, fields and defaults, encoded as a map.

    What formats 1 and 2 hold: the command types as they were before they became
    ``array_like`` (their bodies are maps keyed by field name, with the tag under "type").
    Built from the type itself, so it is the old encoding of today's fields: a field added
    since an old body was written takes its default, as it always did.
    """
    config = kind.__struct_config__
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field in msgspec.structs.fields(kind):
        if field.encode_name != field.name:
            raise TypeError(f"{kind.__name__}.{field.name}: renamed fields are not journaled")
        if field.default is not msgspec.NODEFAULT:
            fields.append((field.name, field.type, field.default))
        elif field.default_factory is not msgspec.NODEFAULT:
            fields.append((field.name, field.type,
                           msgspec.field(default_factory=field.default_factory)))
        else:
            fields.append((field.name, field.type))
    return msgspec.defstruct(kind.__name__, fields, tag=config.tag, tag_field=config.tag_field,
                             frozen=True, gc=False)


class CommandCodec:
    """Encode and decode single commands; one instance per thread is cheap and safe.

    Writes format 3 (arrays; JSON by name past 64 bits) and reads formats 1, 2 and 3.
    """

    def __init__(self) -> None:
        kinds = tuple(command_types())
        if not all(kind.__struct_config__.array_like for kind in kinds):
            raise TypeError("format 3 needs every command type array_like (Command's option)")
        self._to_name = {kind: _by_name(kind) for kind in kinds}
        self._from_name = {named: kind for kind, named in self._to_name.items()}
        named_kinds = tuple(self._to_name.values())
        union: Any = Union[kinds]  # noqa: UP007  (a runtime-built union of the tagged types)
        by_name: Any = Union[named_kinds]  # noqa: UP007
        self._msgpack_encoder = msgspec.msgpack.Encoder()
        self._array_decoder = msgspec.msgpack.Decoder(union)
        self._map_decoder = msgspec.msgpack.Decoder(by_name)
        self._json_decoder = msgspec.json.Decoder(by_name)
        # `decode_joined`: bodies joined by nils read as one msgpack array of each body's
        # format byte (1 and 3 are also msgpack's integers 1 and 3), its command and a nil.
        # msgspec takes no union of array-like and map-like Structs: one decoder for each.
        joined: Any = Union[(int, None, *kinds)]
        joined_by_name: Any = Union[(int, None, *named_kinds)]
        self._joined_decoders = {
            FORMAT_COMMAND_ARRAY: msgspec.msgpack.Decoder(list[joined]),
            FORMAT_MSGPACK: msgspec.msgpack.Decoder(list[joined_by_name])}

    def _from_named(self, named: Any) -> Command:
        """Return the command a format-1 or -2 body's Struct holds (the same fields)."""
        command: Command = self._from_name[type(named)](*astuple(named))
        return command

    def _json(self, command: Command) -> bytes:
        """Return format 2: the command as JSON by field name (past msgpack's 64 bits)."""
        return _JSON + msgspec.json.encode(self._to_name[type(command)](*astuple(command)))

    def encode(self, command: Command) -> bytes:
        """Return the format byte and the encoded command."""
        try:
            return _COMMAND_ARRAY + self._msgpack_encoder.encode(command)
        except OverflowError:
            return self._json(command)

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
            blob = bytearray(_COMMAND_ARRAY)
            try:
                encode_into(command, blob, 1)
            except OverflowError:  # past msgpack's 64-bit integers: `encode`'s JSON
                blob = bytearray(self._json(command))
            blobs.append(blob)
        return blobs

    def decode(self, body: bytes) -> Command:
        """Return the command in `body` (format 1, 2 or 3); raise `CodecError` if it is not one."""
        if not body:
            raise CodecError("empty command body")
        kind = body[0]
        try:
            # Slicing bytes copies ~60 bytes, still cheaper than a memoryview per command.
            if kind == FORMAT_COMMAND_ARRAY:
                command: Command = self._array_decoder.decode(body[1:])
            elif kind == FORMAT_MSGPACK:
                command = self._from_named(self._map_decoder.decode(body[1:]))
            elif kind == FORMAT_JSON:
                command = self._from_named(self._json_decoder.decode(body[1:]))
            else:
                raise CodecError(f"unknown command format {kind}")
        except msgspec.DecodeError as bad:
            raise CodecError(f"corrupt command body: {bad}") from bad
        return command

    def decode_joined(self, joined: bytes, count: int) -> list[Command] | None:
        """Return what `decode` makes of `count` bodies joined by `JOIN_SEPARATOR`, or None.

        One decoder call for a whole chunk of the journal instead of one per body (no
        Python call, slice or error handler per command). A msgpack body is its format
        byte, 3 (or 1), which is also a whole msgpack value (that integer), then one
        command, and the separator is msgpack's nil: so the bodies joined, under a 32-bit
        array header of 3 * `count` - 1 items, are one array of 3, a command, nil, 3, a
        command, nil ... The first body's format byte picks the decoder, and every body
        must have that format: a chunk that mixes them (where an older journal's format-1
        rows meet a newer writer's format-3 rows) is one a decoder of either refuses.
        Each nil must fall where it was put, between two bodies: a body that is not one
        whole command (truncated, trailing bytes, bytes moved into a neighbour) shifts
        what follows it off that pattern. None when the array is not that (a JSON body, a
        corrupt one, mixed formats): the caller then decodes each body with `decode`,
        which gives the commands or the `CodecError` it always gave.
        """
        if count <= 0:
            return [] if not joined else None
        form = joined[0] if joined else 0
        decoder = self._joined_decoders.get(form)
        if decoder is None:
            return None
        items = 3 * count - 1
        try:
            found = decoder.decode(_ARRAY32 + items.to_bytes(4, "big") + joined)
        except (msgspec.DecodeError, OverflowError):
            return None
        commands: list[Any] = found[1::3]
        if (found[0::3].count(form) != count or found[2::3].count(None) != count - 1
                or not _NOT_COMMANDS.isdisjoint(map(type, commands))):
            return None
        if form == FORMAT_MSGPACK:  # an older journal's rows
            return [self._from_named(named) for named in commands]
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
