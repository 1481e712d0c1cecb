"""The journal: every command in sequence, the source of truth the state is rebuilt from.

A backend implements `Journal`. `append` returns only once the batch is durable, so the
sequencer can acknowledge every command in it; it is called from one writer thread at a time.
`MemoryJournal` keeps commands in a list: it is exact and ordered but not durable, and serves
simulations and tests that need no disk.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
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


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    """Who writes the journal: the leader epoch, the holder's address, since when (ms)."""

    epoch: int
    holder: str
    since_ms: int


class Journal(Protocol):
    """An append-only log of sequenced commands."""

    def append(self, commands: Sequence[Command]) -> None:
        """Store the batch durably, in order; seqs must continue the log without a gap."""
        ...

    def read(self, from_seq: int = 1) -> Iterator[Command]:
        """Yield the commands with seq >= `from_seq`, in order."""
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


def decode_chunks(codec: CommandCodec, chunks: Iterable[list[bytes]]) -> Iterator[Command]:
    """Yield the commands of chunks of encoded bodies, in order (the SQL journals' `read`)."""
    decode = codec.decode
    for bodies in chunks:
        for body in bodies:
            yield decode(body)


class SqlJournal:
    """What the SQL journals share: one guarded connection, the codec, the durable end.

    A backend opens `_conn`, calls `_start(last_seq)` and implements `append` and
    `read_bodies`; reading, `last_seq` and `close` are the same for all.
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

    def read_bodies(self, from_seq: int = 1, chunk: int = 4096) -> Iterator[list[bytes]]:
        """Yield the encoded bodies from `from_seq` on, a list of up to `chunk` at a time."""
        raise NotImplementedError

    def read(self, from_seq: int = 1) -> Iterator[Command]:
        """Yield the commands from `from_seq` on, decoded, in chunks of rows."""
        return decode_chunks(self._codec, self.read_bodies(from_seq))

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
        self._closed = False

    def append(self, commands: Sequence[Command]) -> None:
        """Keep the batch (in memory only)."""
        if self._closed:
            raise JournalError("journal is closed")
        check_continues(self.last_seq(), commands)
        self._commands.extend(commands)

    def read(self, from_seq: int = 1) -> Iterator[Command]:
        """Yield the commands from `from_seq` on."""
        start = max(from_seq, 1) - 1
        yield from self._commands[start:]

    def last_seq(self) -> int:
        """Return the last seq held."""
        return self._commands[-1].seq if self._commands else 0

    def close(self) -> None:
        """Refuse further appends."""
        self._closed = True
