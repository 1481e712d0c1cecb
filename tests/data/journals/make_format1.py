"""How `format1.db.gz` and `format1.json` were made: run at 852a16f, the last perpx to write
command bodies in format 1 (maps by field name). Today's perpx writes format 3, so running
this now would make a format-3 journal: the fixture is kept as it was written, not remade.

    git worktree add /tmp/perpx-852a16f 852a16f && cd /tmp/perpx-852a16f
    PYTHONPATH=src:. python /path/to/make_format1.py OUT_FOLDER

The journal: 600 commands of the order flow (seed 3), a mark price, then one command of
every type (`every_command`, then its values past 64 bits: format-2 JSON bodies), keeping
only those the engine applies without raising (the replay must go through); written by
`SqliteJournal` in batches of 97 with a request id on every third command, then merged
into one file (no ``-wal``). `format1.json`: the count and the state hash of replaying it.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

import msgspec
from tests.unit.store.test_journal_contract import every_command

from perpx.core.commands import Command, MarkPrice
from perpx.core.engine import Engine
from perpx.instruments import load_instruments
from perpx.store.loadflow import order_flow
from perpx.store.sqlite import SqliteJournal

BASE_MS = 1_700_000_000_000


def _applies(commands: list[Command]) -> bool:
    engine = Engine(load_instruments())
    try:
        for command in commands:
            engine.apply(command)
    except Exception:  # an invalid sample (a negative mark price): left out
        return False
    return True


def main(out: Path) -> None:
    commands: list[Command] = [msgspec.structs.replace(c, seq=i, ts_ms=BASE_MS + i)
                               for i, c in enumerate(order_flow(600, 3), start=1)]
    extra = [MarkPrice(0, 0, "BTCUSDT", 650_010), *every_command(1), *every_command(1, big=True)]
    for command in extra:
        seq = len(commands) + 1
        stamped = msgspec.structs.replace(command, seq=seq, ts_ms=BASE_MS + seq)
        if _applies([*commands, stamped]):
            commands.append(stamped)
    engine = Engine(load_instruments())
    for command in commands:
        engine.apply(command)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "journal.db"
        journal = SqliteJournal(db)
        for at in range(0, len(commands), 97):
            batch = commands[at:at + 97]
            journal.append(batch, [bytes([c.seq % 256]) * 16 if c.seq % 3 == 1 else None
                                   for c in batch])
        journal.close()
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("VACUUM")
        with db.open("rb") as src, gzip.GzipFile(out / "format1.db.gz", "wb", mtime=0) as dst:
            shutil.copyfileobj(src, dst)
    (out / "format1.json").write_text(json.dumps(
        {"commands": len(commands), "last_seq": commands[-1].seq,
         "state_hash": engine.state_hash(), "written_at": "852a16f"}, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
