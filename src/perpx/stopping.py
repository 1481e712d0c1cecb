"""Stopping a background task for certain, on the Python versions perpx supports.

In Python 3.11 `asyncio.wait_for` can swallow a cancellation that lands just as the awaitable
it wraps finishes (python/cpython#86296, fixed in 3.12 where `wait_for` is built on
`asyncio.timeout`): it returns the awaitable's result instead of raising `CancelledError`. A
task that loops over `wait_for` (the gateway's journal follower waits for a kick or its poll
interval; the shared rate limits' sync waits on NATS) then goes on as if it had never been
cancelled, and one `task.cancel(); await task` waits for ever. It was seen: the NATS shared
limits test hung in `close()` with its sync task "cancelling" and still syncing every 10 ms.
`stop_task` cancels again until the task has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

RECANCEL_S = 0.1  # how long a cancelled task may run on before it is cancelled again


async def stop_task(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it ends; raise what it raised, other than cancellation.

    Like the ``task.cancel(); with suppress(CancelledError): await task`` it replaces, it
    absorbs a cancellation of the caller while it waits: uvicorn raises a captured SIGINT
    again once it has stopped serving, which cancels the main task inside its clean-up, and a
    Ctrl-C must still end `perpx serve` cleanly (exit 0, `tests/recovery/test_serve_crash.py`).
    """
    while not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task}, timeout=RECANCEL_S)
    with contextlib.suppress(asyncio.CancelledError):
        await task
