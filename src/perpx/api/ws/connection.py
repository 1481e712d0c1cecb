"""One WebSocket client as the hub sees it: its topics, its account and its bounded output.

The hub never awaits a socket. A message is encoded once, with its WebSocket frame
(`Outgoing`: a server's frames are unmasked, so one message's frame bytes are the same for
every subscriber), and `offer`ed to each subscriber: O(1), an append. At the end of the
event loop's current turn one callback (the `Outbox` the connections of a hub share) hands
each connection's frames to its `Sink` in one call; the sink of a uvicorn connection writes
the prebuilt frames to the socket's transport in one write
(`perpx.api.protocol.FrameWriter`), with no task, await, framing or allocation per
subscriber. Frames leave in the order offered, acks and pongs included.

A client whose unsent bytes (what its transport could not yet hand to the kernel; frames
offered in one turn are handed over at once when they alone pass the bound) exceed
`max_buffer` is cut off (close code 1013, "try again later") and what was queued for it
dropped, so one slow reader can neither stall the others nor grow memory without bound; a
client that reconnects gets fresh snapshots. A session whose API key is revoked is closed
the same way (close code 1008, policy violation).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from websockets.frames import Frame, Opcode

# Unsent bytes one connection may hold beyond the kernel's socket buffers: some 15 s of every
# public topic of one symbol (~70 KB/s in `perpx bench ws`). Unlike the frames the hub
# shares, these bytes are the connection's own copy (the transport's buffer), so the bound
# is also the memory: 1,000 subscribers that all stop reading hold at most 1 GiB.
DEFAULT_MAX_BUFFER = 1 << 20
OVERFLOW_CLOSE_CODE = 1013
REVOKED_CLOSE_CODE = 1008


class Outgoing:
    """One text message encoded once: its JSON, and its whole unmasked, uncompressed frame."""

    __slots__ = ("payload", "wire")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.wire = Frame(Opcode.TEXT, payload).serialize(mask=False)


class Sink(Protocol):
    """Where a connection's frames go: its socket."""

    def write(self, frames: list[Outgoing]) -> None:
        """Send `frames` in order, without waiting."""

    def buffered(self) -> int:
        """Bytes accepted by `write` and not yet handed to the kernel."""

    def close(self, code: int | None, reason: str) -> None:
        """Stop sending; with a `code`, close the WebSocket with it (the client did not leave)."""


class Outbox:
    """The connections offered frames in this turn of the loop; one callback flushes them.

    One `call_soon` per turn for all of them, not one per connection: a handle per
    subscriber per turn was the send path's main allocation (and so much of its garbage
    collection).
    """

    __slots__ = ("_dirty", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[Connection] = []

    def mark(self, conn: Connection) -> None:
        """Flush `conn` at the end of this turn."""
        if not self._dirty:
            self._loop.call_soon(self._flush)
        self._dirty.append(conn)

    def _flush(self) -> None:
        dirty = self._dirty
        self._dirty = []
        for conn in dirty:
            conn.flush()


class Connection:
    """A connected client of one endpoint."""

    def __init__(self, endpoint: str, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.endpoint = endpoint
        self.conn_id = uuid.uuid4().hex
        self.topics: set[str] = set()
        self.account_id: int | None = None
        self.api_key: str | None = None  # the key that authenticated this session
        self.max_buffer = max_buffer
        self.sink: Sink | None = None
        self._outbox: Outbox | None = None
        self._pending: list[Outgoing] = []
        self._pending_bytes = 0
        self.closed = False
        self.overflowed = False
        self.close_code: int | None = None  # why the server ends the session (None: no reason)
        self.close_reason = ""
        self.sent = 0

    def attach(self, sink: Sink, outbox: Outbox | None = None) -> None:
        """Send through `sink` from now on (what was offered before goes first).

        `outbox`: the one shared with the other connections (else one of its own).
        """
        self.sink = sink
        self._outbox = outbox if outbox is not None else Outbox(asyncio.get_running_loop())
        if self._pending:
            self._outbox.mark(self)

    def offer(self, frame: Outgoing) -> None:
        """Queue `frame` to send at the end of this turn; cut the client off if too far behind."""
        if self.closed:
            return
        pending = self._pending
        if not pending and self._outbox is not None:
            self._outbox.mark(self)
        pending.append(frame)
        self._pending_bytes += len(frame.wire)
        if self._pending_bytes > self.max_buffer:
            # A big turn: hand it to the socket now; the client is cut off only if what the
            # kernel could not take is still over the bound.
            if self.sink is None:
                self._overflow()
            else:
                self.flush()

    def flush(self) -> None:
        """Hand what was offered to the sink; cut the client off if it is too far behind."""
        frames = self._pending
        sink = self.sink
        if not frames or self.closed or sink is None:
            return
        sink.write(frames)  # the sink keeps no reference to the list: it is reused
        self.sent += len(frames)
        frames.clear()
        self._pending_bytes = 0
        if sink.buffered() > self.max_buffer:
            self._overflow()

    def _overflow(self) -> None:
        self.overflowed = True
        self.close(OVERFLOW_CLOSE_CODE, "send queue overflow")

    def close(self, code: int | None = None, reason: str = "") -> None:
        """Stop sending: drop what is queued and tell the sink.

        With a `code`, the server closes the socket with it (the client did not leave).
        """
        if self.closed:
            return
        self.closed = True
        self.close_code, self.close_reason = code, reason
        self._pending.clear()
        self._pending_bytes = 0
        if self.sink is not None:
            self.sink.close(code, reason)


class AsgiSink:
    """A sink for any ASGI server: a task per connection sends each frame with `send_text`.

    Used where the server offers no direct writer (`FrameWriter`): the frames keep their
    order and the bound, at the cost of an await per frame and the server's own framing.
    """

    def __init__(self, send_text: Callable[[str], Awaitable[None]],
                 close: Callable[[int, str], Awaitable[None]]) -> None:
        self._send_text = send_text
        self._close = close
        self._queue: asyncio.Queue[Outgoing | None] = asyncio.Queue()
        self._bytes = 0
        self._code: int | None = None
        self._reason = ""
        self.task = asyncio.get_running_loop().create_task(self._pump())

    def write(self, frames: list[Outgoing]) -> None:
        """Queue `frames` for the sending task."""
        for frame in frames:
            self._bytes += len(frame.wire)
            self._queue.put_nowait(frame)

    def buffered(self) -> int:
        """Bytes queued for the sending task."""
        return self._bytes

    def close(self, code: int | None, reason: str) -> None:
        """Drop what is queued; the task closes the socket with `code` (if any) and ends."""
        self._code, self._reason = code, reason
        while not self._queue.empty():
            self._queue.get_nowait()
        self._bytes = 0
        self._queue.put_nowait(None)

    async def _pump(self) -> None:
        queue = self._queue
        while True:
            frame = await queue.get()
            if frame is None:
                break
            self._bytes -= len(frame.wire)
            try:
                await self._send_text(frame.payload.decode())
            except Exception:  # the client went away while we were writing
                return
        if self._code is not None:  # cut off (overflow) or its key revoked
            try:
                await self._close(self._code, self._reason)
            except Exception:  # already gone
                return
