"""Run one mode of `perpx bench journal`'s durable pipeline on SQLite, for callgrind.

    PYTHONPATH=src valgrind --tool=callgrind --callgrind-out-file=OUT \
        /work/main/.venv/bin/python benchmarks/pipeline_instructions.py batched 20000

Modes: ``single`` (`pipeline`: 1,000 submitters, one `submit` at a time), ``batched``
(`batched`: 16 submitters of 64-command `submit_all`), ``flow`` (only builds the same command
flow, which both do first). The whole process is counted (both threads), so
(mode − flow) / commands is the pipeline's instructions per command; `callgrind_annotate
--inclusive=yes OUT` splits it (`Engine.apply`, `thread_run`: the journal's thread,
`gc_collect_main`). Issue #14, docs/decisions.md.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from perpx.bench import journal as bench
from perpx.store.loadflow import order_flow
from perpx.store.sqlite import SqliteJournal


def main(mode: str, count: int) -> None:
    """Run `mode` over `count` commands in a throwaway SQLite journal."""
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


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
