"""`perpx bench journal`: what durability costs, on SQLite and PostgreSQL.

Measured in one process, on one machine:

- ``journal_only``: the journal's own throughput: encode + one transaction per batch of 4,096
  stamped commands (what the sequencer's group commit hands it), no engine;
- ``naive``: the baseline, one transaction and one fsync per command on the same SQLite
  settings; the ratio shows what group commit buys;
- ``durable`` (end to end): many concurrent submitters through the real `Sequencer`, which
  applies each command to the engine and acknowledges it only once its batch is durable; the
  engine's apply (tens of thousands of orders/s in CPython) bounds this figure; each of the
  1,000 submitters awaits one `submit` at a time, so every command also costs a future, a
  task wake-up and a result of its own (the figure is kept, same method, across versions);
- ``durable_batched`` (end to end, issue #14): the same pipeline fed in batches, as gateways
  forward them and a batch request arrives: 16 submitters each `submit_all` 64 commands at
  a time (fresh request ids), awaiting one future per batch. The same commands, engine,
  window and group commit; what it leaves out is the per-command asyncio round, so the gap
  between it and ``durable`` is that overhead, and between it and ``replay`` (apply alone)
  what stamping, the request-id window and the journal's encode still cost;
- with both durable figures, the same run's process CPU per command (``*_cpu_us_per_command``,
  both threads: steadier than the rate when the machine is shared) and the journal batches'
  mean size (``*_mean_batch``). The submitters wait for their own acknowledgement, so what
  is in flight is bounded (~1,000 commands either way) and so is every group commit: the
  batches do not grow past it however loaded the writer is;
- ``replay``: read + decode alone, and read + decode + apply to a fresh engine;
- ``snapshot``: with N resting orders: the inline cost (to_snapshot + encode + hash: what a writer
  would be paused for without fork), the state hash, the encoded bytes, the pause the writer
  sees with the forking `Snapshotter`, and its total time until stored.

Ends with one JSON line.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from perpx.core.commands import Command, Deposit, PlaceOrder
from perpx.core.engine import Engine
from perpx.core.enums import OrderType, Side
from perpx.instruments import load_instruments
from perpx.sequencer import Sequencer
from perpx.store.journal import Journal, new_request_id
from perpx.store.loadflow import order_flow
from perpx.store.snapshots import SnapshotStore, SqliteSnapshotStore
from perpx.store.snapshotter import Snapshotter, encode_state
from perpx.store.sqlite import SqliteJournal

BATCH = 4096
SUBMITTERS = 1000  # `durable`: concurrent one-at-a-time submitters
BATCH_SUBMITTERS, BATCH_SIZE = 16, 64  # `durable_batched`: gateways forwarding batches
SIZES = {  # pipeline commands, journal-only commands, naive commands, resting orders
    "quick": (3_000, 20_000, 200, 10_000),
    "full": (100_000, 500_000, 2_000, 1_000_000),
}


def _stamped(count: int, seed: int = 5) -> list[Command]:
    return [msgspec.structs.replace(c, seq=i, ts_ms=1_700_000_000_000 + i)
            for i, c in enumerate(order_flow(count, seed), start=1)]


def journal_only(journal: Journal, commands: list[Command]) -> float:
    """Append `commands` in batches of BATCH; return commands/s."""
    started = time.perf_counter()
    for i in range(0, len(commands), BATCH):
        journal.append(commands[i:i + BATCH])
    return len(commands) / (time.perf_counter() - started)


def naive(path: Path, commands: list[Command]) -> float:
    """One transaction (one fsync) per command; return commands/s."""
    journal = SqliteJournal(path)
    started = time.perf_counter()
    for command in commands:
        journal.append([command])
    rate = len(commands) / (time.perf_counter() - started)
    journal.close()
    return rate


def pipeline(journal: Journal, count: int, submitters: int = SUBMITTERS,
             batch: int = 1, stats: dict[str, float] | None = None) -> float:
    """Drive `count` commands through the real Sequencer from concurrent tasks; commands/s.

    Each with a fresh request id, as every command from the API has (its window and column).
    `batch` 1: each submitter awaits one `submit` at a time; more: one `submit_all` of
    `batch` commands at a time (the last may be shorter). `stats`, if given, receives the
    same run's process CPU time per command (both threads, in us: steadier than the rate on
    a shared machine) and its journal batches' mean size (the group commit's reach).
    """
    commands = list(order_flow(count, seed=11))

    async def run() -> float:
        sequencer = Sequencer(Engine(load_instruments()), journal)
        flow = iter(commands)

        async def one_by_one() -> None:
            for command in flow:
                await sequencer.submit(command, new_request_id())

        async def in_batches() -> None:
            while chunk := list(itertools.islice(flow, batch)):
                await sequencer.submit_all(chunk, [new_request_id() for _ in chunk])

        submitter = one_by_one if batch == 1 else in_batches
        cpu = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(submitter() for _ in range(submitters)))
        await sequencer.drain()
        rate = len(commands) / (time.perf_counter() - started)
        if stats is not None:
            stats["cpu_us_per_command"] = (time.process_time() - cpu) / len(commands) * 1e6
            stats["mean_batch"] = len(commands) / max(sequencer.batches, 1)
        return rate

    return asyncio.run(run())


def batched(journal: Journal, count: int, stats: dict[str, float] | None = None) -> float:
    """`pipeline` fed as gateways forward: BATCH_SUBMITTERS tasks of BATCH_SIZE commands."""
    return pipeline(journal, count, BATCH_SUBMITTERS, BATCH_SIZE, stats)


def replay(journal: SqliteJournal) -> tuple[float, float, int]:
    """Return (decode-only commands/s, decode+apply commands/s, commands)."""
    started = time.perf_counter()
    count = 0
    for commands in journal.read_chunks(1):  # what `journal.read` decodes, chunk by chunk
        count += len(commands)
    decode_rate = count / (time.perf_counter() - started)
    engine = Engine(load_instruments())
    apply = engine.apply
    started = time.perf_counter()
    for commands in journal.read_chunks(1):  # as `replay_journal` reads the journal
        for command in commands:
            apply(command)
    return decode_rate, count / (time.perf_counter() - started), count


def resting_book(orders: int) -> Engine:
    """Return an engine with `orders` resting (non-crossing) limit orders.

    Bybit allows 500 open orders per account and symbol, so 400 go to each account.
    """
    engine = Engine(load_instruments())
    accounts = max(1, -(-orders // 400))
    seq = 0
    for account in range(1, accounts + 1):
        seq += 1
        engine.apply(Deposit(seq, seq, account, "USDT", 10**16))
    for i in range(orders):
        seq += 1
        side = Side.BUY if i % 2 == 0 else Side.SELL
        away = 1 + (i // 2) % 5000
        price = 650_000 - away if side is Side.BUY else 650_000 + away
        engine.apply(PlaceOrder(seq, seq, 1 + i // 400, "BTCUSDT", side, OrderType.LIMIT, 1,
                                price))
    return engine


def snapshot(engine: Engine, store: SnapshotStore) -> dict[str, float]:
    """Time the inline work (snapshot, encode, hash), the hash, and the fork's pause and total."""
    started = time.perf_counter()
    body = encode_state(engine)[0]
    both = time.perf_counter() - started
    started = time.perf_counter()
    engine.state_hash()
    hash_s = time.perf_counter() - started
    snapshotter = Snapshotter(engine, store, lambda: engine.last_seq, every_commands=0)
    snapshotter.start()
    result = snapshotter.wait()
    assert result is not None and not result.error, result
    return {"snapshot_s": result.total_s, "snapshot_bytes": len(body),
            "snapshot_inline_s": both, "snapshot_hash_s": hash_s,
            "snapshot_fork_pause_s": result.pause_s}


def _postgres_reachable(dsn: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception:
        return False
    return True


def bench_journal(quick: bool, postgres_dsn: str, echo: Callable[[str], None]) -> dict[str, Any]:
    """Run every measurement and print figures, then one JSON line."""
    n_pipe, n_only, n_naive, n_orders = SIZES["quick" if quick else "full"]
    out: dict[str, Any] = {"size": "quick" if quick else "full"}
    stamped = _stamped(n_only)
    with tempfile.TemporaryDirectory(prefix="perpx-bench-") as tmp:
        base = Path(tmp)
        sq = SqliteJournal(base / "only.db")
        out["journal_only_orders_per_s"] = journal_only(sq, stamped)
        out["naive_fsync_per_command_per_s"] = naive(base / "naive.db", stamped[:n_naive])
        out["group_commit_ratio"] = (out["journal_only_orders_per_s"]
                                     / out["naive_fsync_per_command_per_s"])
        echo(f"SQLite journal alone (encode + 1 txn per {BATCH}): "
             f"{out['journal_only_orders_per_s']:,.0f} commands/s; naive 1 fsync/command: "
             f"{out['naive_fsync_per_command_per_s']:,.0f}/s; ratio "
             f"{out['group_commit_ratio']:,.1f}x")
        decode, apply, count = replay(sq)
        sq.close()
        out["decode_only_commands_per_s"] = decode
        out["replay_commands_per_s"] = apply
        echo(f"replay of {count:,} commands: read + decode {decode:,.0f}/s; "
             f"read + decode + apply {apply:,.0f}/s")
        pipe = SqliteJournal(base / "pipe.db")
        single: dict[str, float] = {}
        out["durable_orders_per_s"] = pipeline(pipe, n_pipe, stats=single)
        pipe.close()
        out["durable_cpu_us_per_command"] = single["cpu_us_per_command"]
        out["durable_mean_batch"] = single["mean_batch"]
        echo(f"durable pipeline on SQLite (Sequencer + engine, {SUBMITTERS:,} submitters, "
             f"{n_pipe:,} commands): {out['durable_orders_per_s']:,.0f} commands/s "
             f"({single['cpu_us_per_command']:.1f} us CPU a command, journal batches of "
             f"{single['mean_batch']:,.0f} on average)")
        out["batched_submitters"], out["batched_batch_size"] = BATCH_SUBMITTERS, BATCH_SIZE
        pipe = SqliteJournal(base / "batched.db")
        fed: dict[str, float] = {}
        out["durable_batched_orders_per_s"] = batched(pipe, n_pipe, fed)
        pipe.close()
        out["durable_batched_cpu_us_per_command"] = fed["cpu_us_per_command"]
        out["durable_batched_mean_batch"] = fed["mean_batch"]
        echo(f"durable pipeline on SQLite fed in batches ({BATCH_SUBMITTERS} submitters of "
             f"{BATCH_SIZE}-command `submit_all`): {out['durable_batched_orders_per_s']:,.0f}"
             f" commands/s ({fed['cpu_us_per_command']:.1f} us CPU a command, journal "
             f"batches of {fed['mean_batch']:,.0f} on average)")
        if not _postgres_reachable(postgres_dsn):
            echo(f"PostgreSQL at {postgres_dsn} unreachable: its figures are null")
            out["durable_orders_per_s_postgres"] = None
            out["durable_batched_orders_per_s_postgres"] = None
            out["journal_only_orders_per_s_postgres"] = None
        else:
            from perpx.store.postgres import PostgresJournal

            schema = f"perpx_bench_{uuid.uuid4().hex[:10]}"
            try:
                only = PostgresJournal(postgres_dsn, schema + "_a")
                out["journal_only_orders_per_s_postgres"] = journal_only(only, stamped)
                only.close()
                pipe_pg = PostgresJournal(postgres_dsn, schema)
                out["durable_orders_per_s_postgres"] = pipeline(pipe_pg, n_pipe)
                pipe_pg.close()
                pipe_pg = PostgresJournal(postgres_dsn, schema + "_b")
                out["durable_batched_orders_per_s_postgres"] = batched(pipe_pg, n_pipe)
                pipe_pg.close()
            finally:  # drop only the schemas this run created
                for name in (schema, schema + "_a", schema + "_b"):
                    _drop_schema(postgres_dsn, name)
            echo(f"PostgreSQL journal alone: {out['journal_only_orders_per_s_postgres']:,.0f}"
                 f" commands/s; durable pipeline: {out['durable_orders_per_s_postgres']:,.0f}"
                 f" commands/s; fed in batches: "
                 f"{out['durable_batched_orders_per_s_postgres']:,.0f} commands/s")
        echo(f"building a book of {n_orders:,} resting orders ...")
        engine = resting_book(n_orders)
        out["resting_orders"] = len(engine.open_orders)
        store = SqliteSnapshotStore(base / "snap.db")
        out.update(snapshot(engine, store))
        store.close()
        echo(f"snapshot of {out['resting_orders']:,} resting orders: "
             f"{out['snapshot_bytes'] / 1e6:,.1f} MB; inline (to_snapshot, encode, hash) "
             f"{out['snapshot_inline_s']:.2f} s, state hash {out['snapshot_hash_s']:.2f} s; "
             f"forked: writer paused {out['snapshot_fork_pause_s'] * 1000:.1f} ms, stored "
             f"after {out['snapshot_s']:.2f} s")
    echo(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}))
    return out


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
