"""The journal: every command in sequence, the source of truth the state is rebuilt from.

A backend implements `Journal`. `append` returns only once the batch is durable, so the
sequencer can acknowledge every command in it; it is called from one writer thread at a time.
`MemoryJournal` keeps commands in a list: it is exact and ordered but not durable, and serves
simulations and tests that need no disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from perpx.core.commands import Command
from perpx.store.codec import CommandCodec


class JournalError(RuntimeError):
    """The journal refused a batch (gap or repeat in seq, or a storage failure)."""


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
