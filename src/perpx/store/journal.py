"""The journal: every command in sequence, the source of truth the state is rebuilt from.

A backend implements `Journal`. `append` returns only once the batch is durable, so the
sequencer can acknowledge every command in it; it is called from one writer thread at a time.

Beside each command a journal keeps the request id it came with, if any (16 bytes the API
gave the request where it entered: `new_request_id`), outside the command's own encoding, so
the core never sees it and the behaviour is unchanged. A writer that takes a journal over reads
the ids of its tail back (`request_ids`) to answer a resent command with its recorded outcome
instead of applying it twice (`perpx.sequencer`). Journals written before the ids existed have
none (an optional column, added when a writer opens them).
`MemoryJournal` keeps commands in a list: it is exact and ordered but not durable, and serves
simulations and tests that need no disk.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from perpx.core.commands import Command
from perpx.store.codec import CommandCodec


class JournalError(RuntimeError):
    """The journal refused a batch (gap or repeat in seq, or a storage failure)."""


class JournalMissing(JournalError):
    """A read-only opening found no journal there (replay and audit create nothing)."""


class JournalBusy(JournalError):
    """Another writer holds the journal's writer lock (a standby keeps waiting for it)."""


class JournalFenced(JournalError):
    """A newer writer took the journal over: this one may never commit again.

    Every writer bumps the journal's leader epoch when it takes the lock and checks it inside
    each group commit; a writer that lost its lock without noticing (a zombie) finds a newer
    epoch there and its batch is rolled back, never acknowledged.
    """


class OutcomeNotKept(RuntimeError):
    """A resent request id is journaled, but this writer cannot tell its events.

    A command journaled before the snapshot a takeover started from has its events
    recomputed by replay when it is resent (`perpx.sequencer`); this is raised only when
    that replay fails (or for a sequencer given no way to replay). It was applied once; the
    caller must look for its effect.
    """

    def __init__(self, seq: int) -> None:
        super().__init__(f"the request was journaled at seq {seq}, before this writer's "
                         "snapshot, and its outcome could not be recomputed here")
        self.seq = seq


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    """Who writes the journal: the leader epoch, the holder's address, since when (ms)."""

    epoch: int
    holder: str
    since_ms: int


REQUEST_ID_BYTES = 16
READ_CHUNK = 4096  # rows a SQL journal reads per query
RequestIds = Sequence[bytes | None]

def _draw_prefix() -> int:
    """Return 8 random bytes as the high half of a 16-byte integer."""
    return int.from_bytes(os.urandom(REQUEST_ID_BYTES - 8), "big") << 64


_PROCESS_PREFIX = _draw_prefix()
_REQUEST_COUNTER = itertools.count(1)


def new_request_id() -> bytes:
    """Return a request id unique across processes and restarts: a random prefix, a counter.

    8 random bytes drawn once per process, then a per-process counter: no syscall per request,
    and two processes (or one restarted) collide only if their prefixes do (2**-64). Built
    as one integer's 16 bytes (the prefix's, then the counter's 8): one conversion and no
    concatenation per id.
    """
    return (_PROCESS_PREFIX + next(_REQUEST_COUNTER)).to_bytes(REQUEST_ID_BYTES, "big")


def fork_request_ids() -> None:
    """Draw a new prefix (in a forked child, which would otherwise share its parent's)."""
    global _PROCESS_PREFIX
    _PROCESS_PREFIX = _draw_prefix()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=fork_request_ids)


class Journal(Protocol):
    """An append-only log of sequenced commands."""

    def append(self, commands: Sequence[Command], request_ids: RequestIds | None = None
               ) -> None:
        """Store the batch durably, in order; seqs must continue the log without a gap.

        `request_ids`: one per command (None for a command without one), or None for none.
        """
        ...

    def request_ids(self, from_seq: int = 1) -> list[tuple[int, bytes]]:
        """Return (seq, request id) of the commands with seq >= `from_seq` that carry one."""
        ...

    def read(self, from_seq: int = 1) -> Iterator[Command]:
        """Yield the commands with seq >= `from_seq`, in order."""
        ...

    def read_chunks(self, from_seq: int = 1) -> Iterator[list[Command]]:
        """Yield the commands with seq >= `from_seq`, in order, a list at a time."""
        ...

    def last_seq(self) -> int:
        """Return the seq of the last durable command (0 when empty)."""
        ...

    def close(self) -> None:
        """Release the store; appends after this are errors."""
        ...


def check_continues(last_seq: int, commands: Sequence[Command]) -> None:
    """Raise `JournalError` unless `commands` carry seqs last_seq+1, last_seq+2, ..."""
    expected = last_seq + 1
    for command in commands:
        if command.seq != expected:
            raise JournalError(f"journal gap: expected seq {expected}, got {command.seq}")
        expected += 1


def check_request_ids(commands: Sequence[Command], request_ids: RequestIds | None
                      ) -> RequestIds:
    """Return one request id (or None) per command; raise `JournalError` on a bad list."""
    if request_ids is None:
        return [None] * len(commands)
    if len(request_ids) != len(commands):
        raise JournalError(f"{len(request_ids)} request ids for {len(commands)} commands")
    return request_ids


def decode_joined_run(codec: CommandCodec, joined: bytes, count: int, first_seq: int
                      ) -> list[Command] | None:
    """Return the `count` commands of rows `first_seq`, `first_seq` + 1, ... joined, or None.

    `CommandCodec.decode_joined` (bodies joined by `JOIN_SEPARATOR`), held to the rows: the
    commands must carry exactly those seqs, in order (a journal's rows are its commands'
    seqs without a gap; this also says the bodies were joined in seq order). None
    otherwise, or when the bodies are not all msgpack commands: the caller decodes the rows
    one by one, which gives what reading them one by one always gave, or its `CodecError`.
    """
    commands = codec.decode_joined(joined, count)
    if commands is None:
        return None
    if [command.seq for command in commands] != list(range(first_seq, first_seq + count)):
        return None
    return commands


class SqlJournal:
    """What the SQL journals share: one guarded connection, the codec, the durable end.

    A backend opens `_conn`, calls `_start(last_seq)` and implements `append`, `_rows` and
    `_joined`; reading, `last_seq` and `close` are the same for all.
    """

    _conn: Any  # a DB-API connection with close()
    _lock: threading.Lock
    _codec: CommandCodec
    _closed: bool
    _last_seq: int

    def _start(self, last_seq: int) -> None:
        self._lock = threading.Lock()
        self._codec = CommandCodec()
        self._closed = False
        self._last_seq = last_seq

    def _rows(self, from_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Return (seq, body) of up to `limit` rows from `from_seq` on, in seq order."""
        raise NotImplementedError

    def _joined(self, from_seq: int, limit: int) -> tuple[int, int, bytes | None]:
        """Return the count, last seq and bodies of the same rows as `_rows`, in one row.

        The bodies joined in seq order by `JOIN_SEPARATOR` (None for no rows; the count
        then 0), for `read_chunks`.
        """
        raise NotImplementedError

    def read_bodies(self, from_seq: int = 1, chunk: int = READ_CHUNK) -> Iterator[list[bytes]]:
        """Yield the encoded bodies from `from_seq` on, a list of up to `chunk` at a time."""
        next_seq = max(from_seq, 1)
        while rows := self._rows(next_seq, chunk):
            next_seq = rows[-1][0] + 1
            yield [row[1] for row in rows]

    def read_chunks(self, from_seq: int = 1, chunk: int = READ_CHUNK
                    ) -> Iterator[list[Command]]:
        """Yield the commands from `from_seq` on, decoded, a list of up to `chunk` at a time.

        Each chunk is one row from the database: its rows' count, last seq and bodies
        joined (`_joined`), decoded by one msgspec call (`decode_joined_run`). Fetched row
        by row, sqlite3 builds a tuple, an integer and a bytes per row and releases and
        takes the GIL around each step (~4,300 instructions a row; psycopg more), and each
        body was then decoded by a call of its own. A chunk whose bytes are not its rows'
        commands in seq order (a JSON body, damage, a gap in seq, or both command formats
        where an older journal's rows meet a newer writer's: `perpx.store.codec`) is read
        again row by row (`_rows`) and each body decoded by `CommandCodec.decode`, which
        gives what reading it so always gave, or its `CodecError`. A chunk shorter than `chunk` was
        the journal's end when read: no further query (a follower's poll is one query).
        """
        next_seq = max(from_seq, 1)
        codec = self._codec
        while True:
            count, last, joined = self._joined(next_seq, chunk)
            if not count:
                return
            # Joined only when the rows are `next_seq`, `next_seq` + 1, ... without a gap.
            commands = (decode_joined_run(codec, joined, count, next_seq)
                        if last - next_seq + 1 == count and joined is not None else None)
            if commands is None:  # row by row, as `read_bodies` reads them
                commands = [codec.decode(row[1]) for row in self._rows(next_seq, count)]
            next_seq = last + 1
            yield commands
            if count < chunk:
                return

    def read(self, from_seq: int = 1) -> Iterator[Command]:
        """Yield the commands from `from_seq` on, decoded, in chunks of rows."""
        for commands in self.read_chunks(from_seq):
            yield from commands

    def request_ids(self, from_seq: int = 1) -> list[tuple[int, bytes]]:
        """Return (seq, request id) of the commands from `from_seq` on that carry one."""
        raise NotImplementedError

    def last_seq(self) -> int:
        """Return the seq of the last durable command (0 when empty)."""
        return self._last_seq

    def close(self) -> None:
        """Close the connection; further use is an error."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()


class MemoryJournal:
    """An in-process journal: ordered and checked like the others, gone with the process."""

    def __init__(self) -> None:
        self._commands: list[Command] = []
        self._request_ids: dict[int, bytes] = {}
        self._closed = False

    def append(self, commands: Sequence[Command], request_ids: RequestIds | None = None
               ) -> None:
        """Keep the batch (in memory only)."""
        if self._closed:
            raise JournalError("journal is closed")
        check_continues(self.last_seq(), commands)
        ids = check_request_ids(commands, request_ids)
        self._commands.extend(commands)
        for command, request_id in zip(commands, ids, strict=True):
            if request_id is not None:
                self._request_ids[command.seq] = request_id

    def request_ids(self, from_seq: int = 1) -> list[tuple[int, bytes]]:
        """Return (seq, request id) from `from_seq` on, in seq order."""
        return sorted((seq, rid) for seq, rid in self._request_ids.items() if seq >= from_seq)

    def read(self, from_seq: int = 1) -> Iterator[Command]:
        """Yield the commands from `from_seq` on."""
        start = max(from_seq, 1) - 1
        yield from self._commands[start:]

    def read_chunks(self, from_seq: int = 1) -> Iterator[list[Command]]:
        """Yield the commands from `from_seq` on as one list (none when there are none)."""
        commands = self._commands[max(from_seq, 1) - 1:]
        if commands:
            yield commands

    def last_seq(self) -> int:
        """Return the last seq held."""
        return self._commands[-1].seq if self._commands else 0

    def close(self) -> None:
        """Refuse further appends."""
        self._closed = True
