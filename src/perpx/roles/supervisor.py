"""The processes `perpx serve` starts, watches and stops: gateways and projectors (issue #15).

Each is `python -m perpx.cli serve --role ROLE ...` with the writer's settings. Its output
goes to the writer's, each line prefixed with ``gateway K:`` (or ``projector K:``); it is
ready once it prints its role's ready line (`READY_LINES`). One that ends while the writer
runs is started again, after a pause that doubles while it keeps dying soon after a start
(`RESTART_PAUSE_S` up to `RESTART_PAUSE_MAX_S`): a gateway keeps no state (it catches up
from the journal), a projector resumes from its own tables. On Linux each is tied to the
writer's life (``PR_SET_PDEATHSIG``): a writer killed -9 takes its children with it rather
than leave them answering reads of a journal nobody writes and commands nobody takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

READY_S = 60.0  # how long a child may take to say it is ready
STOP_S = 10.0  # how long a child may take to stop before it is killed
RESTART_PAUSE_S = 1.0  # between a child's end and its restart, doubled while it keeps dying
RESTART_PAUSE_MAX_S = 30.0
STABLE_S = 30.0  # a child that ran this long died "late": its next restart waits the least

# What each role prints once it does its job: a gateway serves, a projector follows.
READY_LINES = {"gateway": " serving ", "projector": "following from seq"}

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the writer's thread ends."""
    with contextlib.suppress(Exception):  # not Linux, or no libc: the writer's stop() still ends it
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One child process of a role and whether it has said it is ready."""

    def __init__(self, role: str, number: int, args: Sequence[str],
                 say: Callable[[str], None], *, own_session: bool = False) -> None:
        self.role = role
        self.number = number
        self.ready = threading.Event()
        self.started_s = time.monotonic()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "perpx.cli", "serve", *args], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=env, preexec_fn=_die_with_parent,
            start_new_session=own_session)
        self._say = say
        self._marker = READY_LINES[role]
        say(f"{role} {number}: started, pid {self.proc.pid}")
        self._relaying = threading.Thread(target=self._relay, daemon=True,
                                          name=f"perpx-{role}-{number}")
        self._relaying.start()

    def _relay(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip()
            if self._marker in line:
                self.ready.set()
            self._say(f"{self.role} {self.number}: {line}")
        self.ready.set()  # its output ended: it did too, and no one waits for it any more

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `STOP_S`; wait for the end."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()
        self._relaying.join(STOP_S)  # its last lines (where it stopped) are said, not lost


class Children:
    """N processes of one role: start, restart the ones that end (with backoff), stop.

    `args(K)` is child K's command line after ``serve`` (a projector's names its own
    tables). `essential`: a child that does not get ready in `READY_S` is an error that
    ends the supervision, hence the venue (gateways: the venue has no API without them);
    otherwise it is said and left to end and be restarted (projectors: the venue trades on
    without them, and they catch up). `seq_of(K)`: the last seq child K has committed (a
    projector's tables' watermark) for `status`, None where that is not cheap to know.
    `own_session`: each child in a session of its own, so that a terminal's Ctrl-C (sent to
    the whole foreground process group) reaches the writer only, and the writer stops the
    children when it chooses (projectors: after its own last batch, `ExchangeService.close`).
    """

    def __init__(self, role: str, count: int, args: Callable[[int], Sequence[str]],
                 say: Callable[[str], None] = lambda line: None, *,
                 essential: bool = True,
                 seq_of: Callable[[int], int | None] | None = None,
                 own_session: bool = False) -> None:
        self.role = role
        self.own_session = own_session
        self.seq_of = seq_of
        self.count = count
        self.args = args
        self.say = say
        self.essential = essential
        self.running: list[Child] = []
        self.restarts = 0
        self._pauses: dict[int, float] = {}
        self._stopping = False

    def _spawn(self, number: int) -> Child:
        return Child(self.role, number, list(self.args(number)), self.say,
                     own_session=self.own_session)

    async def start(self) -> None:
        """Start every child; return once all are ready (RuntimeError if one is not)."""
        self.running = [self._spawn(k) for k in range(self.count)]
        for child in self.running:
            await self._wait_ready(child)

    async def _wait_ready(self, child: Child) -> None:
        ready = await asyncio.to_thread(child.ready.wait, READY_S)
        if self._stopping:
            return
        if not ready or child.proc.poll() is not None:
            failure = (f"{self.role} {child.number} did not get ready in {READY_S:.0f} s "
                       f"(exit code {child.proc.poll()})")
            if self.essential:
                raise RuntimeError(failure)
            self.say(failure)

    def _pause(self, child: Child) -> float:
        """How long to wait before restarting `child`: doubled while it keeps dying early."""
        if time.monotonic() - child.started_s >= STABLE_S:
            pause = RESTART_PAUSE_S
        else:
            pause = min(self._pauses.get(child.number, RESTART_PAUSE_S / 2) * 2,
                        RESTART_PAUSE_MAX_S)
        self._pauses[child.number] = pause
        return pause

    async def supervise(self) -> None:
        """Restart any child that ends, until `stop` (runs until cancelled)."""
        while not self._stopping:
            await asyncio.sleep(0.2)
            for index, child in enumerate(self.running):
                code = child.proc.poll()
                if code is None or self._stopping:
                    continue
                pause = self._pause(child)
                self.say(f"{self.role} {child.number} ended (exit code {code}); restarting "
                         f"it in {pause:.0f} s")
                await asyncio.sleep(pause)
                if self._stopping:
                    return
                self.restarts += 1
                replacement = self._spawn(child.number)
                self.running[index] = replacement
                await self._wait_ready(replacement)

    async def run(self) -> None:
        """`start`, then `supervise` (until cancelled)."""
        await self.start()
        await self.supervise()

    async def stop(self) -> None:
        """Stop every child (they finish the work in hand: a projector drains the stream)."""
        self._stopping = True
        for child in self.running:
            if child.proc.poll() is None:
                child.proc.terminate()  # all at once: they stop in parallel
        for child in self.running:
            await asyncio.to_thread(child.stop)

    def status(self) -> dict[str, Any]:
        """Return `/perpx/status`'s counts: children running, restarts, each one's pid and seq."""
        rows: list[dict[str, Any]] = []
        for child in self.running:
            seq = self.seq_of(child.number) if self.seq_of is not None else None
            rows.append({"number": str(child.number), "pid": str(child.pid),
                         "alive": child.proc.poll() is None,
                         "seq": "" if seq is None else str(seq)})
        return {"count": str(sum(1 for child in self.running if child.proc.poll() is None)),
                "restarts": str(self.restarts), "list": rows}
