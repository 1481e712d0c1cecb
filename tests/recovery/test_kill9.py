"""kill -9 a real exchange process at seeded random points; recovery must lose nothing acked.

Each crash point runs `python -m perpx.loadtarget` on the same journal (it first
recovers from what the previous one left), kills it with SIGKILL after a random number of
acknowledgements, at a random moment while it stores a snapshot, or at a random time, and
then checks: every acknowledged seq is in the journal, the journal has no gap, snapshot +
tail recovery gives the state hash of an independent full replay, and the audit (wallets
against the transaction log, conservation per coin) passes.

PERPX_CRASH_POINTS sets the number of crash points per backend (default 9).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading

from perpx.core.engine import Engine
from perpx.instruments import served_instruments
from perpx.store import open_journal, open_snapshots
from perpx.store.audit import audit_journal
from perpx.store.recovery import recover, recover_state

CRASH_POINTS = int(os.environ.get("PERPX_CRASH_POINTS", "9"))
COMMANDS_PER_RUN = 1500


def _crash_once(location: str, rng: random.Random, point: int) -> tuple[int, str, bool]:
    """Run the target, kill it; return (highest acked seq, how it was killed, ran to end)."""
    mode = ("acks", "snapshot", "time")[point % 3]
    proc = subprocess.Popen(
        [sys.executable, "-m", "perpx.loadtarget", "--journal", location,
         "--commands", str(COMMANDS_PER_RUN), "--seed", str(point), "--snapshot-every", "300",
         "--chunk-bytes", "4096"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None

    def kill() -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)

    kill_after_acks = rng.randint(1, COMMANDS_PER_RUN)
    timer: threading.Timer | None = None
    if mode == "time":
        timer = threading.Timer(rng.uniform(0.25, 0.7), kill)
        timer.start()
    acks = 0
    highest = 0
    finished = False
    for line in proc.stdout:  # lines printed before the kill are still read after it
        word = line.split()
        if word[0] == "ack":
            seq = int(word[1])
            assert seq == highest + 1 or highest == 0, f"acks out of order: {seq} after {highest}"
            highest = seq
            acks += 1
            if mode == "acks" and acks == kill_after_acks:
                kill()
        elif word[0] == "snap" and word[2] == "storing" and mode == "snapshot" and timer is None:
            timer = threading.Timer(rng.uniform(0.0, 0.01), kill)
            timer.start()
        elif word[0] == "done":
            finished = True
    proc.wait()
    if timer is not None:
        timer.cancel()
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"target failed: {proc.stderr.read() if proc.stderr else ''}")
    return highest, mode, finished


def _check(location: str, highest_acked: int) -> tuple[int, int]:
    journal = open_journal(location)
    store = open_snapshots(location)
    try:
        last = journal.last_seq()
        assert last >= highest_acked, f"acknowledged seq {highest_acked} lost (journal at {last})"
        assert [c.seq for c in journal.read()] == list(range(1, last + 1))
        recovery = recover_state(served_instruments(), journal, store)
        assert not recovery.rejected, recovery.rejected
        full = Engine(served_instruments())
        recover(full, journal)
        assert recovery.engine.state_hash() == full.state_hash()
        recovery.engine.check_invariants()
        report = audit_journal(served_instruments(), journal)
        assert report.ok, (report.wallet_mismatches, report.log_breaks, report.coins)
        assert report.engine.state_hash() == full.state_hash()
        return recovery.snapshot_seq, len(store.incomplete())
    finally:
        journal.close()
        store.close()


def test_kill9_at_random_points_loses_nothing_acknowledged(location: str) -> None:
    rng = random.Random(20240607)
    torn_snapshots = 0
    used_snapshots = 0
    for point in range(CRASH_POINTS):
        highest, mode, finished = _crash_once(location, rng, point)
        snapshot_seq, incomplete = _check(location, highest)
        used_snapshots += snapshot_seq > 0
        torn_snapshots += incomplete > 0 and mode == "snapshot"
        print(f"crash point {point} ({mode}): acked up to {highest}, finished={finished}, "
              f"recovered from snapshot {snapshot_seq}, torn snapshot chunks: {incomplete}")
    assert used_snapshots, "no recovery used a snapshot"
    print(f"{CRASH_POINTS} crash points, {torn_snapshots} killed mid snapshot write")
