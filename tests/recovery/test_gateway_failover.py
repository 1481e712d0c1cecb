"""kill -9 the leader behind API gateways: they find the standby; nothing acknowledged is lost.

A leader (`perpx serve` with a command endpoint), a hot standby (`--role standby`, same data
folder, journal and command endpoint) and two standalone gateways (`--role gateway`, one
port, SO_REUSEPORT) run as real processes. Three clients send signed orders and cancels to
the gateways' port only, never to a writer. At each crash point the leader is killed with
SIGKILL (after a seeded time under load, or a moment after it starts storing a snapshot);
the gateways keep running, and then:

- the standby accepts commands through the same gateways within 3 s of the kill (each
  client's first order sent after the kill and acknowledged);
- every order acknowledged so far is there, read through the gateways, cancelled if its
  cancel was;
- the standby's state hash at takeover equals an independent full replay of the journal to
  the seq it took over at, the audit conserves, and the leader record moved one epoch on.

How the gateways find the new leader (`docs/decisions.md`, "Leader failover behind
gateways"): over the Unix socket, the standby binds the leader's socket path once it leads
(the gateways reconnect to the same path); over NATS, it subscribes to the venue's subject
once it leads. A command that finds no writer is resent by the gateway (it certainly was not
sequenced) until the standby answers; a command in flight when the leader died is resent
with its request id, and the standby answers one it finds journaled with the recorded
events (its window of recent request ids, rebuilt from the journal's tail) instead of
applying it twice. So no client is told "the outcome is unknown", no order link id is
journaled twice, and every acknowledged order is there. Over NATS a requester is not told
that its responder died: the gateway sees it in the journal (the writer lock free, or the
leader epoch moved) and resends such a command then, not at the request's 5 s timeout.

On SQLite and PostgreSQL journals; PERPX_GATEWAY_CRASH_POINTS sets the crash points (default
3 over the socket, 2 over NATS).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from perpx.api.keys import KeyStore
from perpx.instruments import served_instruments
from perpx.store import open_journal
from perpx.store.audit import audit_journal
from support.failover import (
    CLIENTS,
    Load,
    client,
    kill_leader,
    link_ids_journaled,
    pause,
    replayed_hash,
)
from support.serving import Server, check_orders, free_port

CRASH_POINTS = os.environ.get("PERPX_GATEWAY_CRASH_POINTS")
TAKEOVER_LIMIT_S = 3.0


@pytest.mark.parametrize("path", ["unix", "nats"])
def test_gateways_find_the_new_leader_losing_nothing_acknowledged(
        journal_location: str | None, path: str, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    data = tmp_path / "data"
    location = journal_location or str(data / "journal.db")
    if path == "nats":
        nats_url = request.getfixturevalue("nats_url")
        stream = request.getfixturevalue("stream_name")
        command: tuple[str, ...] = ("--command-nats", nats_url, "--bus-stream", stream)
    else:
        command = ("--command-socket", str(tmp_path / "writer.sock"))
    points = int(CRASH_POINTS or (3 if path == "unix" else 2))
    store = KeyStore(data)
    keys = [store.create(demo_funds="100000", rate_limit=100_000) for _ in range(CLIENTS)]
    store.close()
    rng = random.Random(20261207)
    leader = Server(data, journal_location, extra=command)
    port = free_port()
    gateways = [Server(data, journal_location, port=port, role="gateway", extra=command)
                for _ in range(2)]
    url = f"http://127.0.0.1:{port}"
    load = Load()
    threads = [threading.Thread(target=client, args=(url, key, n, load))
               for n, key in enumerate(keys)]
    for thread in threads:
        thread.start()
    takeovers: list[tuple[str, float, float, int]] = []
    epoch = 0
    standby: Server | None = None
    writers = [leader]
    try:
        for point in range(points):
            mode = ("load", "snapshot")[point % 2]
            standby = Server(data, journal_location, role="standby", extra=command)
            writers.append(standby)
            time.sleep(0.2)
            assert standby.proc.poll() is None and not standby.url
            killed = kill_leader(leader, rng, mode)
            standby.wait_serving(timeout_s=30)
            while len(load.first_acks_after(killed)) < CLIENTS:
                assert time.monotonic() - killed < 30, "clients found no new leader"
                time.sleep(0.01)
            firsts = load.first_acks_after(killed)
            assert max(firsts) < TAKEOVER_LIMIT_S, f"point {point}: {firsts}"
            pause(load)
            # The same gateway processes served throughout: they found the leader themselves.
            assert all(gateway.proc.poll() is None for gateway in gateways)
            assert standby.recovered is not None
            seq, _, _, digest = standby.recovered
            assert digest == replayed_hash(location, seq), f"point {point}"
            check_orders(url, keys, load.acked)  # read through the gateways
            journal = open_journal(location, readonly=True)
            report = audit_journal(served_instruments(), journal)
            record = journal.leader()  # type: ignore[attr-defined]
            journal.close()
            assert report.ok, (report.wallet_mismatches[:5], report.log_breaks[:5])
            assert record.holder == standby.url and record.epoch > epoch
            epoch = record.epoch
            takeovers.append((mode, min(firsts), max(firsts), seq))
            leader, standby = standby, None
            load.pause.clear()
    except BaseException:
        for server in (leader, standby):
            if server is not None:
                server.kill()
        raise
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for gateway in gateways:
            gateway.kill()
    leader.proc.send_signal(signal.SIGINT)
    assert leader.proc.wait(timeout=60) == 0, "\n".join(leader.output)
    for tool in (["audit", "--journal", location],
                 ["replay", "--journal", location, "--verify-snapshots"]):
        done = subprocess.run([sys.executable, "-m", "perpx.cli", *tool], capture_output=True,
                              text=True, env=dict(os.environ, COLUMNS="200"), timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    # No refusal a failover could cause: commands in flight at the kill were resent with
    # their request ids and answered exactly (only the core's own refusals of the random
    # orders remain, e.g. a cancel racing a fill).
    assert not any("nothing was done" in message or "outcome is unknown" in message
                   for message in load.refusals), load.refusals
    # No command applied twice: each request's order link id is journaled once.
    twice = {link: n for link, n in link_ids_journaled(location).items() if n > 1}
    assert not twice, twice
    resent = sum(line.count("answered with the outcome recorded")
                 for server in writers for line in server.output)
    answered = sum("resent after an unknown outcome" in line
                   for gateway in gateways for line in gateway.output)
    kind = "PostgreSQL" if journal_location else "SQLite"
    print(f"\ngateway failover over {path} on {kind} ({len(load.acked.orders)} acknowledged "
          f"orders; refusals {load.refusals}; {answered} commands resent after an unknown "
          f"outcome, {resent} of them answered from the journal): "
          + "; ".join(f"{mode} kill at seq {seq}: first order accepted through the gateways "
                      f"{first:.2f} s after the kill, every client by {last:.2f} s"
                      for mode, first, last, seq in takeovers))
    assert len(load.acked.orders) > 0


def test_a_standby_with_gateways_serves_through_its_own_after_the_takeover(
        tmp_path: Path) -> None:
    """`--role standby --gateways 1`: the leader's gateways die with it, the standby's serve.

    The leader runs `--gateways 1` on a port; its gateway ends with it (killed -9, the
    gateway's parent-death signal: SIGTERM, so it finishes the requests it holds, whose
    commands find the standby on the same socket path). The standby, started the same way on
    the same port, starts its own gateway once it leads; the clients reconnect to the port.
    """
    data = tmp_path / "data"
    store = KeyStore(data)
    keys = [store.create(demo_funds="100000", rate_limit=100_000) for _ in range(CLIENTS)]
    store.close()
    port = free_port()
    leader = Server(data, None, port=port, extra=("--gateways", "1"))
    old_gateway = int(re.findall(r"gateway 0: started, pid (\d+)", "\n".join(leader.output))[0])
    load = Load()
    threads = [threading.Thread(target=client, args=(leader.url, key, n, load))
               for n, key in enumerate(keys)]
    for thread in threads:
        thread.start()
    standby: Server | None = None
    try:
        standby = Server(data, None, port=port, role="standby", extra=("--gateways", "1"))
        killed = kill_leader(leader, random.Random(7), "load")
        standby.wait_serving(timeout_s=30)
        assert standby.url == leader.url
        while len(load.first_acks_after(killed)) < CLIENTS:
            assert time.monotonic() - killed < 30, "clients found no new leader"
            time.sleep(0.01)
        firsts = load.first_acks_after(killed)
        assert max(firsts) < TAKEOVER_LIMIT_S, firsts
        # The standby's own gateway serves, the leader's is gone; orders go on through it.
        deadline = time.monotonic() + 30
        while not any("gateway 0: perpx" in line and "serving" in line
                      for line in standby.output):
            standby.next_line(deadline)
        served = time.monotonic() - killed
        while True:
            try:
                with open(f"/proc/{old_gateway}/stat") as stat:
                    if stat.read().split(")")[-1].split()[0] == "Z":
                        break  # ended, not yet reaped by whoever inherited it
            except FileNotFoundError:
                break  # ended and reaped
            assert time.monotonic() < deadline, "the dead leader's gateway lives on"
            time.sleep(0.05)
        after = time.monotonic()
        while len(load.first_acks_after(after)) < CLIENTS:
            assert time.monotonic() - after < 10, "the standby's gateway serves no one"
            time.sleep(0.01)
        pause(load)
        assert standby.recovered is not None
        seq, _, _, digest = standby.recovered
        assert digest == replayed_hash(str(data / "journal.db"), seq)
        check_orders(standby.url, keys, load.acked)
    except BaseException:
        leader.kill()
        if standby is not None:
            standby.kill()
        raise
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=30)
    standby.stop()
    assert standby.proc.returncode == 0, "\n".join(standby.output)
    print(f"\nstandby with its own gateway: every client served {max(firsts):.2f} s after "
          f"the kill, the standby's gateway serving {served:.2f} s after it "
          f"({len(load.acked.orders)} acknowledged orders)")
