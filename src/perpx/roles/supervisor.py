"""The gateway processes `perpx serve --gateways N` starts, watches and stops (issue #15, item 7).

Each gateway is `python -m perpx.cli serve --role gateway ...` with the writer's settings.
Its output goes to the writer's, each line prefixed with ``gateway K:``; it is ready once it
says it serves. A gateway that ends while the writer runs is started again (it keeps no
state: it catches up from the journal). On Linux each is tied to the writer's life
(``PR_SET_PDEATHSIG``): a writer killed -9 takes its gateways with it rather than leave them
answering reads of a journal nobody writes and commands nobody takes.
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
from collections.abc import Callable, Sequence

READY_S = 60.0  # how long a gateway may take to start serving
STOP_S = 10.0  # how long a gateway may take to stop before it is killed
RESTART_PAUSE_S = 1.0  # between a gateway's end and its restart

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the writer's thread ends."""
    with contextlib.suppress(Exception):  # not Linux, or no libc: the writer's stop() still ends it
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Gateway:
    """One gateway process and whether it has said it serves."""

    def __init__(self, number: int, args: Sequence[str], say: Callable[[str], None]) -> None:
        self.number = number
        self.ready = threading.Event()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "perpx.cli", "serve", *args], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=env, preexec_fn=_die_with_parent)
        self._say = say
        say(f"gateway {number}: started, pid {self.proc.pid}")
        threading.Thread(target=self._relay, daemon=True,
                         name=f"perpx-gateway-{number}").start()

    def _relay(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip()
            if " serving " in line:
                self.ready.set()
            self._say(f"gateway {self.number}: {line}")
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


class Gateways:
    """N gateway processes sharing one port: start, restart the ones that end, stop."""

    def __init__(self, count: int, args: Sequence[str],
                 say: Callable[[str], None] = lambda line: None) -> None:
        self.count = count
        self.args = list(args)
        self.say = say
        self.running: list[Gateway] = []
        self.restarts = 0
        self._stopping = False

    async def start(self) -> None:
        """Start every gateway; return once all serve (RuntimeError if one does not)."""
        self.running = [Gateway(k, self.args, self.say) for k in range(self.count)]
        for gateway in self.running:
            await self._wait_ready(gateway)

    async def _wait_ready(self, gateway: Gateway) -> None:
        ready = await asyncio.to_thread(gateway.ready.wait, READY_S)
        if self._stopping:
            return
        if not ready or gateway.proc.poll() is not None:
            raise RuntimeError(f"gateway {gateway.number} did not start serving in "
                               f"{READY_S:.0f} s (exit code {gateway.proc.poll()})")

    async def supervise(self) -> None:
        """Restart any gateway that ends, until `stop` (runs until cancelled)."""
        while not self._stopping:
            await asyncio.sleep(0.2)
            for index, gateway in enumerate(self.running):
                code = gateway.proc.poll()
                if code is None or self._stopping:
                    continue
                self.say(f"gateway {gateway.number} ended (exit code {code}); restarting it")
                await asyncio.sleep(RESTART_PAUSE_S)
                if self._stopping:
                    return
                self.restarts += 1
                replacement = Gateway(gateway.number, self.args, self.say)
                self.running[index] = replacement
                await self._wait_ready(replacement)

    async def stop(self) -> None:
        """Stop every gateway (they finish the requests in hand)."""
        self._stopping = True
        for gateway in self.running:
            if gateway.proc.poll() is None:
                gateway.proc.terminate()  # all at once: they stop in parallel
        for gateway in self.running:
            await asyncio.to_thread(gateway.stop)
