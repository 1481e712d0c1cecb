"""kill -9 the leader under signed load: the hot standby takes over, nothing acknowledged is lost.

A leader (`perpx serve`) and a standby (`perpx serve --role standby`, same data folder, same
journal, same port) run as real processes. Three clients send signed orders and cancels to
the port and simply reconnect when it stops answering. At each crash point the leader is
killed with SIGKILL (after a seeded time under load, or a seeded moment after it starts
storing a snapshot), and then:

- the standby accepts commands within 3 s of the kill (the time from the kill to each
  client's first acknowledged order after it is measured and printed);
- every order acknowledged by any leader so far is there, cancelled if its cancel was;
- the standby's state hash at takeover equals an independent full replay of the journal up
  to the seq it took over at;
- the audit (wallets against the transaction log, conservation per coin) passes;
- the leader record names the new leader, one epoch on.

The standby that took over is the leader of the next crash point, with a new standby beside
it. At the end the last leader is stopped with SIGINT and `perpx audit` and `perpx replay
--verify-snapshots` must pass on what it leaves. On SQLite and PostgreSQL journals.

PERPX_STANDBY_CRASH_POINTS sets the crash points per store (default 3).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from perpx.api.keys import KeyStore
from perpx.instruments import served_instruments
from perpx.store import open_journal
from perpx.store.audit import audit_journal
from support.failover import CLIENTS, Load, client, kill_leader, pause, replayed_hash
from support.serving import Server, check_orders, free_port

CRASH_POINTS = int(os.environ.get("PERPX_STANDBY_CRASH_POINTS", "3"))
TAKEOVER_LIMIT_S = 3.0


def test_the_standby_takes_over_a_killed_leader_losing_nothing_acknowledged(
        journal_location: str | None, tmp_path: Path) -> None:
    data = tmp_path / "data"
    location = journal_location or str(data / "journal.db")
    store = KeyStore(data)
    keys = [store.create(demo_funds="100000", rate_limit=100_000) for _ in range(CLIENTS)]
    store.close()
    port = free_port()
    rng = random.Random(20261206)
    leader = Server(data, journal_location, port=port)
    load = Load()
    threads = [threading.Thread(target=client, args=(leader.url, key, n, load))
               for n, key in enumerate(keys)]
    for thread in threads:
        thread.start()
    takeovers: list[tuple[str, float, float, int]] = []
    epoch = 0
    try:
        for point in range(CRASH_POINTS):
            mode = ("load", "snapshot")[point % 2]
            standby = Server(data, journal_location, port=port, role="standby")
            time.sleep(0.2)
            # While the leader lives the standby only follows: it neither writes nor serves.
            assert standby.proc.poll() is None and not standby.url
            assert not any("took the journal over" in line for line in standby.output)
            killed = kill_leader(leader, rng, mode)
            standby.wait_serving(timeout_s=30)
            assert standby.url == leader.url  # the same host:port: clients just reconnect
            while len(load.first_acks_after(killed)) < CLIENTS:
                assert time.monotonic() - killed < 30, "clients found no new leader"
                time.sleep(0.01)
            firsts = load.first_acks_after(killed)
            assert max(firsts) < TAKEOVER_LIMIT_S, f"point {point}: {firsts}"
            pause(load)
            assert standby.recovered is not None
            seq, _, _, digest = standby.recovered
            assert digest == replayed_hash(location, seq), f"point {point}"
            check_orders(standby.url, keys, load.acked)
            journal = open_journal(location, readonly=True)
            report = audit_journal(served_instruments(), journal)
            record = journal.leader()  # type: ignore[attr-defined]
            journal.close()
            assert report.ok, (report.wallet_mismatches[:5], report.log_breaks[:5])
            assert record.holder == standby.url and record.epoch > epoch
            epoch = record.epoch
            takeovers.append((mode, min(firsts), max(firsts), seq))
            leader = standby
            load.pause.clear()
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=30)
    leader.proc.send_signal(signal.SIGINT)
    assert leader.proc.wait(timeout=60) == 0, "\n".join(leader.output)
    for tool in (["audit", "--journal", location],
                 ["replay", "--journal", location, "--verify-snapshots"]):
        done = subprocess.run([sys.executable, "-m", "perpx.cli", *tool], capture_output=True,
                              text=True, env=dict(os.environ, COLUMNS="200"), timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    kind = "PostgreSQL" if journal_location else "SQLite"
    print(f"\nstandby takeovers on {kind} ({len(load.acked.orders)} acknowledged orders): "
          + "; ".join(f"{mode} kill at seq {seq}: first order accepted {first:.2f} s after "
                      f"the kill, every client by {last:.2f} s"
                      for mode, first, last, seq in takeovers))
    assert len(load.acked.orders) > 0
