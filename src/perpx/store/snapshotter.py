"""When and how snapshots are taken without stopping trading for long.

`Engine.to_snapshot()` walks the whole state: about 1.5 s for a million resting orders, and
the state hash as long again (benchmarks/README.md). Done inline that is a pause of seconds
for every client. So, as Redis does, the writer forks: the child gets a copy-on-write image
of the engine frozen at that command, encodes it and hashes it, and streams the result back
through a pipe; the parent goes on trading at once and pays only for the fork (the page
tables: milliseconds). A thread of the parent's then stores the body (SQLite and psycopg
release the GIL while writing), but only once the journal is durable up to the snapshot's
seq, since the engine applies commands before they are durable and a snapshot must never
hold a command that a crash could take out of the journal.

The child touches nothing but the engine's plain Python objects, a hash and its pipe (no
database connection, no lock another thread may hold), and leaves with ``os._exit``. Where
fork is missing (or ``fork=False``) the snapshot is taken inline.

A caller may add its own state at the same seq: `extra()` runs where the engine is encoded
(in the child when forking, so it may fold pending work into its private copy of the
process) and returns bytes; `save_extra(seq, data)` stores them from the parent's thread just
before the engine's snapshot is saved. The service uses this for its read side.

Policy: every `every_commands` durable commands (call the snapshotter as a
``Sequencer.subscribe`` callback) and/or every `every_seconds` (run `periodic()` as a task).
One snapshot is in flight at a time.

A snapshot is a side task: it runs inside the sequencer's flush loop, so none of its
failures may escape. No descriptor left for the pipe, no process for the fork, a child that
dies, a store that is full: each ends as a `SnapshotResult` with an `error`, logged, and the
next trigger tries again (the periodic task also retries after a failure with nothing new to
snapshot). A caller that knows its state can no longer be captured soundly calls `disable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from perpx.core.commands import Command
from perpx.core.engine import Engine
from perpx.core.events import Event
from perpx.store.codec import encode_snapshot
from perpx.store.snapshots import SnapshotStore

log = logging.getLogger("perpx.snapshots")

_HEADER = struct.Struct(">QQQQ64s")  # seq, ts_ms, body and extra lengths, state hash (hex)


@dataclass(slots=True)
class SnapshotResult:
    """What one snapshot cost and where it ended."""

    seq: int
    pause_s: float  # how long the writer (the event loop) was held
    total_s: float = 0.0  # from the start until stored
    nbytes: int = 0
    error: str = ""


def encode_state(engine: Engine) -> tuple[bytes, str]:
    """Return the engine's encoded snapshot and its state hash."""
    return encode_snapshot(engine.to_snapshot()), engine.state_hash()


def _reap(pid: int, fd: int) -> None:
    """End a child whose output nobody will read, and close its pipe."""
    os.close(fd)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@dataclass(slots=True)
class _Work:
    """What a snapshot's worker thread runs, and how to undo it if the thread never starts."""

    run: Callable[[], None]
    cancel: Callable[[], None] = lambda: None


def _read_exact(fd: int, size: int) -> bytes:
    parts: list[bytes] = []
    while size:
        part = os.read(fd, min(size, 1 << 20))
        if not part:
            raise EOFError("snapshot child ended early")
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Snapshotter:
    """Take snapshots of `engine` into `store` by a count or time policy."""

    def __init__(
        self,
        engine: Engine,
        store: SnapshotStore,
        durable_seq: Callable[[], int],
        every_commands: int = 1_000_000,
        every_seconds: float = 0.0,
        keep: int = 3,
        fork: bool = True,
        durable_timeout_s: float = 60.0,
        on_stored: Callable[[SnapshotResult], None] | None = None,
        on_storing: Callable[[int], None] | None = None,
        extra: Callable[[], bytes] | None = None,
        save_extra: Callable[[int, bytes], None] | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.durable_seq = durable_seq
        self.every_commands = every_commands
        self.every_seconds = every_seconds
        self.keep = keep
        self.fork = fork and hasattr(os, "fork")
        self.durable_timeout_s = durable_timeout_s
        self.on_stored = on_stored
        self.on_storing = on_storing
        self.extra = extra
        self.save_extra = save_extra
        self.results: list[SnapshotResult] = []
        self._since = 0
        self._last_time = time.monotonic()
        self._worker: threading.Thread | None = None
        self._retry = False  # the last snapshot failed: the next periodic tick tries again
        self.disabled = ""  # why snapshots were turned off for good ('' while on)

    def disable(self, reason: str) -> None:
        """Take no more snapshots (the one in flight, if any, finishes)."""
        if not self.disabled:
            log.warning("snapshots turned off: %s", reason)
            self.disabled = reason

    # -- policy ------------------------------------------------------------------------------

    def __call__(self, command: Command, events: list[Event]) -> None:
        """Sequencer subscriber: count durable commands and snapshot every `every_commands`."""
        self._since += 1
        if self.every_commands and self._since >= self.every_commands:
            self.start()

    async def periodic(self) -> None:
        """Run forever: snapshot every `every_seconds` if anything changed since the last."""
        if self.every_seconds <= 0:
            raise ValueError("periodic snapshots need every_seconds > 0")
        while True:
            await asyncio.sleep(self.every_seconds)
            if self._since or self._retry:
                try:
                    self.start()
                except Exception:  # start catches its own; this loop must outlive any bug
                    log.exception("periodic snapshot failed")

    @property
    def busy(self) -> bool:
        """True while a snapshot is being encoded or stored."""
        return self._worker is not None and self._worker.is_alive()

    # -- taking one ------------------------------------------------------------------------

    def start(self) -> bool:
        """Begin a snapshot of the engine as it is now; False if none was started.

        None is started while one is in flight, after `disable`, or when this one fails
        at once (no pipe, no fork, an inline encoding error): that failure is recorded as
        a result and logged, and the next trigger tries again.
        """
        if self.busy or self.disabled:
            return False
        self._since = 0
        self._last_time = time.monotonic()
        seq = self.engine.last_seq
        started = time.perf_counter()
        try:
            target = self._begin(seq, started)
        except Exception as failure:
            self._finish(SnapshotResult(seq, time.perf_counter() - started,
                                        error=f"snapshot could not start: {failure!r}"))
            return False
        self._worker = threading.Thread(target=self._guarded, args=(target, seq),
                                        name=f"snapshot-{seq}", daemon=True)
        try:
            self._worker.start()
        except RuntimeError as failure:  # no thread left: as short of resources as a fork
            self._worker = None
            target.cancel()
            self._finish(SnapshotResult(seq, time.perf_counter() - started,
                                        error=f"snapshot could not start: {failure!r}"))
            return False
        return True

    def _begin(self, seq: int, started: float) -> _Work:
        """Fork (or encode inline) and return what the worker thread has to finish."""
        ts_ms = self.engine.last_ts_ms
        if self.fork:
            read_fd, write_fd = os.pipe()
            try:
                pid = os.fork()
            except BaseException:
                os.close(read_fd)
                os.close(write_fd)
                raise
            if pid == 0:  # the child: encode, hash, send, leave without any cleanup
                os.close(read_fd)
                status = 1
                try:
                    body, digest = encode_state(self.engine)
                    added = self.extra() if self.extra is not None else b""
                    _write_all(write_fd, _HEADER.pack(seq, ts_ms, len(body), len(added),
                                                      digest.encode()))
                    _write_all(write_fd, body)
                    _write_all(write_fd, added)
                    status = 0
                finally:
                    os._exit(status)
            os.close(write_fd)
            result = SnapshotResult(seq, time.perf_counter() - started)
            return _Work(partial(self._collect, result, started, pid, read_fd),
                         partial(_reap, pid, read_fd))
        body, digest = encode_state(self.engine)
        added = self.extra() if self.extra is not None else b""
        result = SnapshotResult(seq, time.perf_counter() - started)
        return _Work(partial(self._store, result, started, body, digest, ts_ms, added))

    def _guarded(self, work: _Work, seq: int) -> None:
        # The worker's own paths record their failures; this catches whatever they missed
        # (a callback's bug), so that a thread never dies with the snapshot unaccounted for.
        try:
            work.run()
        except Exception as failure:
            self._finish(SnapshotResult(seq, 0.0, error=f"snapshot failed: {failure!r}"))

    def _collect(self, result: SnapshotResult, started: float, pid: int, fd: int) -> None:
        try:
            with os.fdopen(fd, "rb", buffering=0, closefd=True) as pipe:
                _seq, ts_ms, size, extra_size, digest = _HEADER.unpack(
                    _read_exact(pipe.fileno(), _HEADER.size))
                body = _read_exact(pipe.fileno(), size)
                added = _read_exact(pipe.fileno(), extra_size) if extra_size else b""
        except (OSError, EOFError, struct.error) as failure:
            result.error = f"snapshot child failed: {failure!r}"
            self._finish(result)
            return
        finally:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self._store(result, started, body, digest.decode(), ts_ms, added)

    def _store(self, result: SnapshotResult, started: float, body: bytes, digest: str,
               ts_ms: int, added: bytes = b"") -> None:
        deadline = time.monotonic() + self.durable_timeout_s
        while self.durable_seq() < result.seq:
            if time.monotonic() > deadline:
                result.error = f"journal never became durable up to seq {result.seq}"
                self._finish(result)
                return
            time.sleep(0.005)
        if self.on_storing is not None:
            self.on_storing(result.seq)
        try:
            if self.save_extra is not None and self.extra is not None:
                self.save_extra(result.seq, added)
            self.store.save(body, result.seq, digest, ts_ms)
            self.store.prune(self.keep)
        except Exception as failure:  # a failed snapshot costs nothing but a longer replay
            result.error = f"snapshot store failed: {failure!r}"
        result.nbytes = len(body)
        result.total_s = time.perf_counter() - started
        self._finish(result)

    def _finish(self, result: SnapshotResult) -> None:
        self.results.append(result)
        self._retry = bool(result.error)
        if result.error:
            log.warning("snapshot %d failed: %s", result.seq, result.error)
        if self.on_stored is not None:
            try:
                self.on_stored(result)
            except Exception:
                log.exception("snapshot %d: on_stored failed", result.seq)

    def wait(self, timeout: float | None = None) -> SnapshotResult | None:
        """Block until the snapshot in flight is stored; return the last result."""
        if self._worker is not None:
            self._worker.join(timeout)
        return self.results[-1] if self.results else None
