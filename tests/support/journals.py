"""Journals for tests of what is durable when: one whose commit a test holds, one that is slow.

Both in memory (`HeldJournal`) and on a SQLite file (`HeldSqliteJournal`, for a gateway that
follows the journal from another connection).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from perpx.core.commands import Command
from perpx.store.journal import MemoryJournal
from perpx.store.sqlite import SqliteJournal


class Held:
    """A journal whose commit waits while the test holds it (`hold` / `release`).

    The sequencer writes in a worker thread, so a held commit leaves the writer's engine with
    applied commands that are not durable, for as long as the test likes: what no read may
    show. Mixed into a journal class (before it).
    """

    def _hold_init(self, delay_s: float) -> None:
        self._open = threading.Event()
        self._open.set()
        self.delay_s = delay_s
        self.waiting = threading.Event()  # set while a commit waits for `release`

    def hold(self) -> None:
        """Make the next commits wait until `release`."""
        self._open.clear()

    def release(self) -> None:
        """Let the commits through."""
        self._open.set()

    def append(self, commands: Sequence[Command], request_ids: Any = None) -> None:
        """Wait while held (or `delay_s`), then keep the batch."""
        if not self._open.is_set():
            self.waiting.set()
            self._open.wait(30)
            self.waiting.clear()
        if self.delay_s:
            time.sleep(self.delay_s)
        super().append(commands, request_ids)  # type: ignore[misc]


class HeldJournal(Held, MemoryJournal):
    """A memory journal whose commit a test holds (`Held`)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        MemoryJournal.__init__(self)
        self._hold_init(delay_s)


class HeldSqliteJournal(Held, SqliteJournal):
    """A SQLite journal (the writer's, locked) whose commit a test holds (`Held`)."""

    def __init__(self, path: str, delay_s: float = 0.0) -> None:
        SqliteJournal.__init__(self, path)
        self._hold_init(delay_s)
