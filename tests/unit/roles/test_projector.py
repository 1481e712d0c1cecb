"""The projector role in process: the writer's own rows, from events only; restarts; gaps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perpx.bus import EventBatch, GapError, InProcessBus
from perpx.cli import app
from perpx.roles.projector import HistoryProjector, ProjectorError, project
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.journal import MemoryJournal
from support.projector import SPECS, flow, same_tables, submit, writer

COMMANDS = flow(3200)


async def written(path: Path, count: int, bus: InProcessBus | None = None,
                  ) -> tuple[InProcessBus, SqliteHistory]:
    """Run the writer over `count` commands; return its bus and its own (closed) history."""
    bus = bus if bus is not None else InProcessBus()
    reference = SqliteHistory(path)
    service = writer(MemoryJournal(), reference, bus)
    await submit(service, COMMANDS[:count])
    await service.close()  # publishes what is queued, commits the history, closes it
    return bus, SqliteHistory(path)


def test_the_projector_writes_the_rows_the_writer_writes_in_process(tmp_path: Path) -> None:
    async def run() -> None:
        bus, reference = await written(tmp_path / "writer.db", len(COMMANDS))
        last = await bus.last_seq()
        assert last == len(COMMANDS)
        history = SqliteHistory(tmp_path / "projector.db")
        projector = HistoryProjector(SPECS, history)
        assert await project(bus, projector, until=last) == last
        assert history.high_watermark == last
        assert projector.events > projector.commands
        same_tables(history, reference)
        kinds = {r[0] for r in history._executor.submit(lambda: history._execute(
            "SELECT DISTINCT exec_type FROM executions")).result()}
        assert {"Trade", "Funding"} <= kinds  # funding settled and was paid: rows of it too
        history.close()
        reference.close()

    asyncio.run(run())


@pytest.mark.parametrize("stop_at", [1, 700, 1441, 2999])
def test_a_restart_refolds_from_its_checkpoint_and_writes_the_same_rows(
        tmp_path: Path, stop_at: int) -> None:
    async def run() -> None:
        bus, reference = await written(tmp_path / "writer.db", len(COMMANDS))
        last = await bus.last_seq()
        path = tmp_path / "projector.db"
        # The first run stops at `stop_at` with its rows committed and its newest
        # checkpoint behind them (as after a kill -9 between two checkpoints).
        first = HistoryProjector(SPECS, SqliteHistory(path), checkpoint_every=500,
                                 checkpoint_seconds=1e9)
        async for batch in bus.subscribe(1):
            first.apply(batch if batch.last_seq <= stop_at else
                        EventBatch.of(batch.entries[:stop_at - batch.first_seq + 1]))
            if first.read_seq >= stop_at:
                break
        first.sync()
        assert first.history.high_watermark == stop_at
        assert first.checkpointed <= stop_at
        first.history.close()

        history = SqliteHistory(path)
        second = HistoryProjector(SPECS, history)
        assert second.position() == first.checkpointed  # resumes from its read side...
        assert second.written == stop_at  # ...and writes nothing up to its rows
        await project(bus, second, until=last)
        assert second.refolded == stop_at - first.checkpointed
        same_tables(history, reference)
        history.close()
        reference.close()

    asyncio.run(run())


def test_a_pruned_bus_stops_the_projector_with_the_gap_and_keeps_what_came_before(
        tmp_path: Path) -> None:
    async def run() -> None:
        bus = InProcessBus(keep_commands=500)
        bus, reference = await written(tmp_path / "writer.db", 2000, bus)
        history = SqliteHistory(tmp_path / "projector.db")
        with pytest.raises(GapError) as gap:
            await project(bus, HistoryProjector(SPECS, history), until=2000)
        assert gap.value.expected == 1
        assert "missing" in str(gap.value)
        assert history.high_watermark == 0  # nothing folded past a hole
        history.close()
        reference.close()

    asyncio.run(run())


def test_a_bus_that_ends_before_the_rows_is_refused(tmp_path: Path) -> None:
    async def run() -> None:
        bus, reference = await written(tmp_path / "writer.db", 300)
        history = SqliteHistory(tmp_path / "projector.db")
        await project(bus, HistoryProjector(SPECS, history), until=300)
        other, again = await written(tmp_path / "other.db", 100)  # another venue's stream
        with pytest.raises(ProjectorError, match="ends at seq 100"):
            await project(other, HistoryProjector(SPECS, history))
        for store in (history, reference, again):
            store.close()

    asyncio.run(run())


def test_serve_role_projector_needs_a_jetstream_bus_and_tables_of_its_own(
        tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--role", "projector", "--bus", "memory",
                                 "--history", str(tmp_path / "h.db")])
    assert result.exit_code != 0 and "nats://" in result.output
    result = runner.invoke(app, ["serve", "--role", "projector", "--bus",
                                 "nats://127.0.0.1:4222"])
    assert result.exit_code != 0 and "--history" in result.output
    result = runner.invoke(app, ["serve", "--role", "projector", "--bus",
                                 "nats://127.0.0.1:4222", "--history",
                                 "postgresql://127.0.0.1/test"])
    assert result.exit_code != 0 and "schema" in result.output
    result = runner.invoke(app, ["serve", "--role", "gatekeeper"])
    assert result.exit_code != 0 and "unknown role" in result.output


def test_a_subscription_the_bus_ends_is_an_error_not_a_clean_stop(tmp_path: Path) -> None:
    async def run() -> None:
        bus, reference = await written(tmp_path / "writer.db", 200)
        history = SqliteHistory(tmp_path / "projector.db")
        projector = HistoryProjector(SPECS, history)
        following = asyncio.ensure_future(project(bus, projector))
        while history.high_watermark < 200:
            await asyncio.sleep(0.01)
        await bus.close()  # the connection is lost for good
        with pytest.raises(ProjectorError, match="ended the subscription at seq 200"):
            await following
        assert projector.checkpointed == 200  # committed and checkpointed on the way out
        history.close()
        reference.close()

    asyncio.run(run())


def test_a_batch_that_fails_to_fold_is_never_checkpointed(tmp_path: Path) -> None:
    async def run() -> None:
        bus, reference = await written(tmp_path / "writer.db", 400)
        history = SqliteHistory(tmp_path / "projector.db")
        projector = HistoryProjector(SPECS, history)
        reached = await project(bus, projector, until=100)  # the end of a batch past 100
        assert projector.checkpointed == reached
        broken = projector.projector

        def fail(*_: object) -> None:
            raise RuntimeError("a bug in the fold")

        broken.project = fail  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="a bug"):
            await project(bus, projector, until=400)
        assert projector.fault and projector.checkpointed == reached
        assert history.high_watermark < 400
        with pytest.raises(ProjectorError, match="unsound"):
            await project(bus, projector, until=400)
        history.close()
        # A restart (the bug fixed) refolds from the last sound checkpoint: the same rows.
        history = SqliteHistory(tmp_path / "projector.db")
        again = HistoryProjector(SPECS, history)
        assert again.position() == reached
        await project(bus, again, until=400)
        same_tables(history, reference)
        history.close()
        reference.close()

    asyncio.run(run())


class SlowBus:
    """An in-process bus whose subscription yields to the loop between batches (as NATS
    does), so that a stop can come while batches are still on their way."""

    def __init__(self, inner: InProcessBus) -> None:
        self.inner = inner

    async def last_seq(self) -> int:
        return await self.inner.last_seq()

    async def subscribe(self, from_seq: int) -> AsyncIterator[EventBatch]:
        async for batch in self.inner.subscribe(from_seq):
            await asyncio.sleep(0.002)
            yield batch


@pytest.mark.parametrize("how", ["drain", "no drain", "hurried"])
def test_a_stopping_projector_folds_to_the_streams_end_first(tmp_path: Path, how: str) -> None:
    """`perpx serve` stops its projectors once the writer has published its last batch: a
    stop folds up to the stream's last seq (bounded), a second signal stops at once."""
    async def run() -> None:
        inner, reference = await written(tmp_path / "writer.db", len(COMMANDS))
        last = await inner.last_seq()
        history = SqliteHistory(tmp_path / "projector.db")
        projector = HistoryProjector(SPECS, history)
        stop, hurry = asyncio.Event(), asyncio.Event()
        stop.set()  # the stop comes before the first batch is folded
        if how == "hurried":
            hurry.set()
        reached = await project(SlowBus(inner), projector, stop=stop,  # type: ignore[arg-type]
                                drain_s=0 if how == "no drain" else 30, hurry=hurry)
        assert reached == history.high_watermark == projector.checkpointed
        if how == "drain":
            assert reached == last
            same_tables(history, reference)
        else:
            assert reached < last
        history.close()
        reference.close()

    asyncio.run(run())
