"""A small exchange process for crash tests: recover, then drive the real Sequencer.

``python -m perpx.loadtarget --journal URL --commands N --seed S`` recovers the engine
from the journal and its snapshots, then submits `N` commands of `loadflow.order_flow` from
`--submitters` concurrent tasks through a `Sequencer` on that journal, with a `Snapshotter`
subscribed. It prints one line per event, flushed at once, so a test that kills it with
SIGKILL knows exactly what was acknowledged:

- ``ready <seq>`` after recovery;  ``ack <seq>`` when a command is durable;
- ``snap <seq> forked`` / ``snap <seq> storing`` / ``snap <seq> stored``;  ``done`` at the end.

Loopback only: it opens no socket of its own beyond the database's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator

from perpx.core.commands import Command
from perpx.instruments import served_instruments
from perpx.sequencer import Sequencer
from perpx.store import open_journal, open_snapshots
from perpx.store.loadflow import order_flow
from perpx.store.recovery import recover_engine
from perpx.store.snapshotter import SnapshotResult, Snapshotter


def say(line: str) -> None:
    """Print `line` and flush at once (the test reads it while the process runs)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def run(args: argparse.Namespace) -> None:
    """Recover, then submit the flow and snapshot along the way."""
    journal = open_journal(args.journal)
    store = open_snapshots(args.journal, args.chunk_bytes)
    engine = recover_engine(served_instruments(), journal, store, say=lambda m: say("note " + m))
    say(f"ready {engine.last_seq}")
    sequencer = Sequencer(engine, journal)

    def stored(result: SnapshotResult) -> None:
        say(f"snap {result.seq} stored {result.error}".rstrip())

    snapshotter = Snapshotter(engine, store, lambda: sequencer.durable_seq,
                              every_commands=args.snapshot_every, fork=not args.inline,
                              on_stored=stored, on_storing=lambda s: say(f"snap {s} storing"))
    # Subscribers see each command once it is durable, in seq order: that is the ack.
    sequencer.subscribe(lambda command, _events: say(f"ack {command.seq}"))
    sequencer.subscribe(snapshotter)
    flow: Iterator[Command] = order_flow(args.commands, args.seed, start=engine.last_seq)

    async def submitter() -> None:
        for command in flow:  # shared iterator: the submitters interleave
            await sequencer.submit(command)

    await asyncio.gather(*(submitter() for _ in range(args.submitters)))
    await sequencer.close()
    snapshotter.wait()
    store.close()
    say("done")


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--journal", required=True)
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--submitters", type=int, default=16)
    parser.add_argument("--snapshot-every", type=int, default=500)
    parser.add_argument("--chunk-bytes", type=int, default=16_384)
    parser.add_argument("--inline", action="store_true", help="snapshot without forking")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
