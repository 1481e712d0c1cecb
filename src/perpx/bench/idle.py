"""Idle connections for `perpx bench api --idle N`: sockets that connect and never send a byte.

It runs in its own process (`python -m perpx.bench.idle`, a JSON job on stdin) beside the
load generator, as an attacker holding descriptors would. Connections come from several
loopback source addresses (127.0.0.2, .3, ...; Linux routes all of 127/8 to lo), at most
`per_address` from each, so the server's per-address cap is met as it would be by many
clients rather than one. It prints one JSON line once every connection is open (or refused),
then waits until the server has closed them all (or `hold_s` passes) and prints the figures:
accepted, refused (answered 503 by a cap), connect errors, closed by the server and after
how long, still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from perpx.bench.loadgen import percentile


@dataclass(slots=True)
class Idle:
    """What happened to the idle connections."""

    opened: int = 0
    connect_errors: int = 0
    refused: int = 0
    closed_after_s: list[float] = field(default_factory=list)
    error: str | None = None


def raise_fd_limit() -> int:
    """Raise this process's descriptor soft limit to its hard limit; return the new one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def sources(count: int, per_address: int, first: str = "127.0.0.2") -> list[str]:
    """Return the source address of each of `count` connections, `per_address` from each."""
    base = ipaddress.IPv4Address(first)
    return [str(base + i // per_address) for i in range(count)]


async def _hold(host: str, port: int, source: str, idle: Idle, opened: asyncio.Event,
                ) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    except OSError as bad:
        idle.connect_errors += 1
        idle.error = idle.error or repr(bad)
        opened.set()
        return
    began = time.monotonic()
    idle.opened += 1
    opened.set()
    first = b""
    try:
        while True:
            data = await reader.read(4096)
            if not data:
                break
            first = first or data
    except ConnectionError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    if first.startswith(b"HTTP/1.1 503"):
        idle.refused += 1
    else:
        idle.closed_after_s.append(time.monotonic() - began)


async def run(host: str, port: int, count: int, per_address: int = 400,
              hold_s: float = 60.0) -> dict[str, Any]:
    """Open `count` idle connections, report once open, then until the server closed them."""
    idle = Idle()
    tasks: list[asyncio.Task[None]] = []
    for source in sources(count, per_address):
        opened = asyncio.Event()
        tasks.append(asyncio.create_task(_hold(host, port, source, idle, opened)))
        await opened.wait()  # one at a time: the listen backlog is not what is measured
    await asyncio.sleep(0.5)  # the refusals are answered at once
    print(json.dumps({"opened": idle.opened, "connect_errors": idle.connect_errors,
                      "refused": idle.refused}), flush=True)
    _done, pending = await asyncio.wait(tasks, timeout=hold_s)
    for task in pending:
        task.cancel()
    closed = sorted(idle.closed_after_s)
    return {"idle": count, "accepted": idle.opened - idle.refused, "refused": idle.refused,
            "connect_errors": idle.connect_errors, "closed_by_server": len(closed),
            "closed_after_s_p50": round(percentile(closed, 0.5), 2),
            "closed_after_s_max": round(closed[-1], 2) if closed else None,
            "still_open_after_hold": len(pending), "error": idle.error}


def main() -> None:
    """`python -m perpx.bench.idle` with a JSON job on stdin."""
    job = json.loads(sys.stdin.read())
    raise_fd_limit()
    print(json.dumps(asyncio.run(run(**job))), flush=True)


if __name__ == "__main__":
    main()
