"""Run one mode of `perpx bench journal`'s durable pipeline on SQLite, for callgrind.

    PYTHONPATH=src valgrind --tool=callgrind --callgrind-out-file=OUT \
        /work/main/.venv/bin/python benchmarks/pipeline_instructions.py batched 20000

Modes: ``single`` (`pipeline`: 1,000 submitters, one `submit` at a time), ``batched``
(`batched`: 16 submitters of 64-command `submit_all`), ``flow`` (only builds the same command
flow, which both do first). The whole process is counted (both threads), so
(mode − flow) / commands is the pipeline's instructions per command; `callgrind_annotate
--inclusive=yes OUT` splits it (`Engine.apply`, `thread_run`: the journal's thread,
`gc_collect_main`). Issue #14, docs/decisions.md.

The sequencer alone: ``stub-batched`` and ``stub-single`` drive the same submitters
(`perpx.bench.journal.pipeline`, fresh request ids) through a `Sequencer` over an engine
whose `apply` only moves its seq and time and returns no events, and a journal whose
`append` only moves its end; ``stub-flow`` builds what they build first. (stub mode −
stub-flow) / commands is the sequencer's and the submitters' own work a command.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from perpx.bench import journal as bench
from perpx.core.commands import Command
from perpx.core.events import Event
from perpx.store.journal import RequestIds
from perpx.store.loadflow import order_flow
from perpx.store.sqlite import SqliteJournal


class _StubEngine:
    """What the sequencer reads of an engine: its seq and time; `apply` moves them only."""

    def __init__(self) -> None:
        self.last_seq = 0
        self.last_ts_ms = 0

    def apply(self, command: Command) -> list[Event]:
        self.last_seq = command.seq
        self.last_ts_ms = command.ts_ms
        return []


class _StubJournal:
    """A journal that keeps nothing: `append` moves its end."""

    def __init__(self) -> None:
        self._last = 0

    def append(self, commands: Sequence[Command], request_ids: RequestIds | None = None
               ) -> None:
        self._last = commands[-1].seq

    def last_seq(self) -> int:
        return self._last

    def close(self) -> None:
        pass


def main(mode: str, count: int) -> None:
    """Run `mode` over `count` commands in a throwaway SQLite journal."""
    if mode.startswith("stub-"):
        stub(mode, count)
        return
    with tempfile.TemporaryDirectory(prefix="perpx-instr-") as tmp:
        journal = SqliteJournal(Path(tmp) / "pipeline.db")
        if mode == "flow":
            list(order_flow(count, seed=11))
        elif mode == "single":
            bench.pipeline(journal, count)
        elif mode == "batched":
            bench.batched(journal, count)  # not on versions before the batch interface
        else:
            raise SystemExit(f"unknown mode {mode!r}: flow, single or batched")
        journal.close()


def stub(mode: str, count: int) -> None:
    """The sequencer over `_StubEngine` and `_StubJournal` (see the module's doc)."""
    module: Any = bench  # the bench builds its engine by this name
    engine = module.Engine
    module.Engine = lambda _instruments: _StubEngine()
    try:
        journal = cast(Any, _StubJournal())
        if mode == "stub-flow":
            list(order_flow(count, seed=11))
        elif mode == "stub-single":
            bench.pipeline(journal, count)
        elif mode == "stub-batched":
            bench.batched(journal, count)
        else:
            raise SystemExit(f"unknown mode {mode!r}: stub-flow, stub-single or stub-batched")
    finally:
        module.Engine = engine


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
