"""One WebSocket client as the hub sees it: its topics, its account and a bounded send queue.

The hub never awaits a socket. It puts already-encoded frames into each subscriber's queue
(`offer`, O(1)); a sender task per connection drains the queue into the socket. A client that
falls `max_queue` frames behind is cut off (close code 1013, "try again later") and its queue
dropped, so one slow reader can neither stall the exchange nor grow memory without bound; a
client that reconnects gets fresh snapshots. A session whose API key is revoked is closed
the same way (close code 1008, policy violation).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

DEFAULT_MAX_QUEUE = 2048
OVERFLOW_CLOSE_CODE = 1013
REVOKED_CLOSE_CODE = 1008


class Connection:
    """A connected client of one endpoint."""

    def __init__(self, endpoint: str, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.endpoint = endpoint
        self.conn_id = uuid.uuid4().hex
        self.topics: set[str] = set()
        self.account_id: int | None = None
        self.api_key: str | None = None  # the key that authenticated this session
        self.max_queue = max_queue
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = False
        self.overflowed = False
        self.close_code: int | None = None  # why the server ends the session (None: no reason)
        self.close_reason = ""
        self.sent = 0

    def offer(self, frame: str) -> None:
        """Queue `frame` for sending; cut the client off if it is too far behind."""
        if self.closed:
            return
        if self._queue.qsize() >= self.max_queue:
            self.overflowed = True
            self.close(OVERFLOW_CLOSE_CODE, "send queue overflow")
            return
        self._queue.put_nowait(frame)

    def close(self, code: int | None = None, reason: str = "") -> None:
        """Stop sending: drop what is queued and wake the sender to close the socket.

        With a `code`, the server closes the socket with it (the client did not leave).
        """
        if self.closed:
            return
        self.closed = True
        self.close_code, self.close_reason = code, reason
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def pump(self, send: Callable[[str], Awaitable[None]]) -> None:
        """Send queued frames in order until closed."""
        queue = self._queue
        while True:
            frame = await queue.get()
            if frame is None:
                return
            await send(frame)
            self.sent += 1
