"""Instructions per journal command read, decoded and folded: replay and a gateway's follower.

A SQLite journal of COMMANDS commands of `perpx bench journal`'s order flow (stamped as its
`_stamped`, appended in its batches of 4,096) is written first, outside the count; then one
of these runs once inside `any(map(...))`, the only `any` while it runs, so that valgrind
counts it alone with `--toggle-collect=builtin_any`:

- `read`: read + decode only (`perpx bench journal`'s first replay figure: the journal's
  `read_chunks`; before issue #14's seventh session, `read_bodies` then each body decoded);
- `replay`: read + decode + apply to a fresh engine, command by command from `journal.read`
  (its "replay with apply" until issue #14's seventh session; kept to compare with before);
- `replay-chunks`: the same from `journal.read_chunks`, as `perpx bench journal`'s replay
  and `perpx.store.replay.replay_journal` now read;
- `follow`: a gateway follower's polls (`GatewayService._read_new` and `_fold_all`, the very
  methods, on a service built without its network parts): read, decode, the durable
  engine's fold, the read side's fold, the listeners (none), the watermark. A writer
  appends `POLL` commands a commit (default 64: a busy gateway's polls are short) outside
  the count, and each commit is followed by one poll inside its own `any`.

Usage: `PYTHONPATH=src valgrind --tool=callgrind --collect-atstart=no
--toggle-collect=builtin_any --callgrind-out-file=OUT /work/main/.venv/bin/python
benchmarks/replay_instructions.py read|replay|replay-chunks|follow COMMANDS [POLL]`; the
total `Ir` over COMMANDS is instructions per command. The engine's own share: `callgrind_annotate
--inclusive=yes OUT | grep Engine___apply` (compiled core) beside the total.
Without valgrind it prints the wall-clock rate too (noisy; for a sanity check only).
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
import time
from pathlib import Path

from perpx import readside
from perpx.bench.journal import BATCH, _stamped
from perpx.core.commands import Command
from perpx.core.engine import Engine
from perpx.durable import DurableState, Watermark
from perpx.instruments import load_instruments
from perpx.roles.gateway import GatewayService
from perpx.store.sqlite import SqliteJournal


def write_journal(path: Path, count: int) -> None:
    """Append `count` stamped commands of the order flow in batches of BATCH."""
    commands = _stamped(count)
    journal = SqliteJournal(path)
    for i in range(0, len(commands), BATCH):
        journal.append(commands[i:i + BATCH])
    journal.close()


def run_read(journal: SqliteJournal) -> int:
    """`perpx.bench.journal.replay`'s read + decode (`read_chunks`), inside `any`."""
    count = 0

    def chunk(commands: list[Command]) -> bool:
        nonlocal count
        count += len(commands)
        return False

    any(map(chunk, journal.read_chunks(1)))
    return count


def run_replay(journal: SqliteJournal) -> int:
    """`perpx.bench.journal.replay`'s read + decode + apply, inside `any`."""
    engine = Engine(load_instruments())
    apply = engine.apply

    def one(command: Command) -> bool:
        apply(command)
        return False

    any(map(one, journal.read(1)))
    return engine.last_seq


def run_replay_chunks(journal: SqliteJournal) -> int:
    """The same as `replay`, the journal read a chunk at a time as `perpx bench journal`'s
    replay and `replay_journal` read it since issue #14's seventh session."""
    engine = Engine(load_instruments())
    apply = engine.apply

    def chunk(commands: list[Command]) -> bool:
        for command in commands:
            apply(command)
        return False

    any(map(chunk, journal.read_chunks(1)))
    return engine.last_seq


def _follower(journal: SqliteJournal) -> GatewayService:
    """A `GatewayService` with only its follower's parts: reader, durable state, read side."""
    specs = load_instruments()
    service = GatewayService.__new__(GatewayService)
    service.specs = {spec.symbol: spec for spec in specs}
    empty = readside.fresh(specs)
    service.projector, service.tickers, service.klines = (empty.projector, empty.tickers,
                                                          empty.klines)
    service.funding, service.books = empty.funding, empty.books
    service.read_seq = 0
    service._listeners = []
    service._reader = journal
    service.durable = DurableState(Engine(specs))
    service._polls = Watermark(0)
    return service


def run_follow(path: Path, count: int, poll: int) -> int:
    """A writer appends `poll` commands at a time; after each commit a follower's poll runs
    `_read_new` and `_fold_all` inside its own `any` (the appends are not counted)."""
    commands = _stamped(count)
    writer = SqliteJournal(path)
    reader = SqliteJournal(path, readonly=True)
    service = _follower(reader)

    def one_poll(after: int) -> bool:
        service._fold_all(service._read_new(after))
        return False

    for at in range(0, count, poll):
        writer.append(commands[at:at + poll])
        any(map(one_poll, [service.durable.seq]))
    writer.close()
    reader.close()
    return service.read_seq


def main() -> None:
    mode = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    poll = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    with tempfile.TemporaryDirectory(prefix="perpx-replay-") as tmp:
        path = Path(tmp) / "journal.db"
        if mode == "follow":
            gc.collect()
            started = time.perf_counter()
            done = run_follow(path, count, poll)
        elif mode in ("read", "replay", "replay-chunks"):
            write_journal(path, count)
            journal = SqliteJournal(path, readonly=True)
            gc.collect()
            started = time.perf_counter()
            done = {"read": run_read, "replay": run_replay,
                    "replay-chunks": run_replay_chunks}[mode](journal)
            journal.close()
        else:
            raise SystemExit(f"unknown mode {mode}: read, replay, replay-chunks or follow")
        seconds = time.perf_counter() - started
    print(json.dumps({"bench": "replay-instructions", "mode": mode, "commands": done,
                      "per_s": round(done / seconds)}))


if __name__ == "__main__":
    main()
