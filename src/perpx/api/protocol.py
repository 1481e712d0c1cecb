"""uvicorn's HTTP protocol with connection caps and a request timeout (uvicorn has neither).

`protocol_classes(limits)` returns the HTTP and WebSocket protocol classes for one server:
- a new connection is counted by a `ConnectionGuard`; over the per-address or total cap it
  is answered 503 (Bybit's envelope) and closed at once, and the others are untouched;
- a request's bytes must all arrive within `Limits.request_timeout_s` of its first byte, or
  of the connection for the first request, else the connection is closed: a socket that
  sends nothing, or sends its head one byte at a time, holds a descriptor for seconds, not
  for good. Between requests the keep-alive timeout (`Limits.keep_alive_s`) applies instead;
- on a WebSocket upgrade uvicorn hands the transport to a WebSocket protocol instance and
  never calls the HTTP protocol's `connection_lost`, so the connection's slot moves to the
  WebSocket protocol, which releases it when that connection ends;
- on uvicorn's sans-I/O WebSocket protocol (the `websockets` library's `ServerProtocol`, the
  default), `FrameWriter` lets the stream endpoints write prebuilt frames straight to the
  connection's transport (`perpx.api.ws.connection`): the fan-out's send path.
"""

from __future__ import annotations

import asyncio
import string
import time
from typing import Any

from uvicorn.config import WS_PROTOCOLS
from uvicorn.importer import import_from_string
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from websockets.exceptions import InvalidState

from perpx.api.envelope import envelope
from perpx.api.limits import ConnectionGuard, Limits, Slot
from perpx.api.ws.connection import Outgoing

_REFUSALS = {
    "address": (10018, "Exceeded the IP Rate Limit: too many connections from this address"),
    "total": (10429, "System level frequency protection: too many connections"),
}


def _refusal(reason: str) -> bytes:
    code, message = _REFUSALS[reason]
    body = envelope(code, message, {}, 0)
    return (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
            + body)


class SlotHolder:
    """A WebSocket protocol mixin: release the connection's slot when it ends."""

    slot: Slot | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        """Release the slot after the WebSocket protocol has cleaned up."""
        try:
            super().connection_lost(exc)  # type: ignore[misc]  # the protocol it is mixed into
        finally:
            if self.slot is not None:
                self.slot.release()


# The ASGI scope extension under which `FrameWriter` offers itself to the app.
FRAME_WRITER = "perpx.frame_writer"
# A connection the server closes (a slow reader cut off, a revoked key) has this long to
# read what is buffered and answer the close frame; then the socket is reset and the
# buffer freed. uvicorn's own close waits 10 s and then closes gracefully, which for a
# reader that stopped reading would hold the buffer until TCP gives up.
CUT_GRACE_S = 1.0
# How early asyncio may run a timer (its `_clock_resolution`); see `LimitedHttpProtocol`.
_RESOLUTION = time.get_clock_info("monotonic").resolution


class FrameWriter:
    """A mixin for uvicorn's `WebSocketsSansIOProtocol`: offers the app a `TransportSink`.

    The app finds it in the scope (`scope["extensions"][FRAME_WRITER]["sink"]`) and, once
    it has accepted the handshake, sends every data frame through it.
    """

    def handle_connect(self, event: Any) -> None:
        """Offer a sink to the app in the scope of a WebSocket handshake."""
        super().handle_connect(event)  # type: ignore[misc]  # the protocol it is mixed into
        scope = getattr(self, "scope", None)
        if scope is not None:  # set only for a handshake the app will see
            scope["extensions"][FRAME_WRITER] = {"sink": TransportSink(self)}


class TransportSink:
    """A connection's frames written straight to its transport (`perpx.api.ws.connection`).

    `write` appends frames to the transport synchronously (one `transport.write` per call),
    so nothing awaits per frame or per subscriber. Without a negotiated extension the
    prebuilt frames (`Outgoing.wire`) are written as they are; with permessage-deflate each
    frame is compressed through the connection's own protocol state, as uvicorn would.
    Pings are still answered by the protocol (a control frame may come between two data
    frames); the close handshake stays the protocol's (`close` mirrors its ASGI close). The
    app must not mix this with ASGI `websocket.send` on one connection, or the order is lost.
    """

    __slots__ = ("protocol", "transport")

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol  # uvicorn's WebSocketsSansIOProtocol (its attributes, below)
        self.transport: asyncio.Transport = protocol.transport

    def write(self, frames: list[Outgoing]) -> None:
        """Write `frames` to the transport, in order, in one write."""
        transport = self.transport
        protocol = self.protocol
        if protocol.close_sent or transport.is_closing():
            return
        if protocol.conn.extensions:  # compressed: framed per connection
            try:
                for frame in frames:
                    protocol.conn.send_text(frame.payload)
            except InvalidState:  # the client is closing: it gets no more frames
                return
            transport.write(b"".join(protocol.conn.data_to_send()))
        elif len(frames) == 1:
            transport.write(frames[0].wire)
        else:
            transport.write(b"".join([frame.wire for frame in frames]))

    def buffered(self) -> int:
        """Bytes written and not yet taken by the kernel."""
        return self.transport.get_write_buffer_size()

    def close(self, code: int | None, reason: str) -> None:
        """With a `code`, send the close frame behind what is buffered; reset after a grace."""
        transport = self.transport
        protocol = self.protocol
        if code is None or protocol.close_sent or transport.is_closing():
            return
        protocol.queue.put_nowait({"type": "websocket.disconnect", "code": code,
                                   "reason": reason})
        try:
            protocol.conn.send_close(code, reason)
        except InvalidState:
            return
        transport.write(b"".join(protocol.conn.data_to_send()))
        protocol.close_sent = True
        if protocol.read_paused:  # read the client's answer to the close
            protocol.read_paused = False
            transport.resume_reading()
        protocol.close_timer = protocol.loop.call_later(CUT_GRACE_S, transport.abort)


_Base = HttpToolsProtocol

# The bytes of a request target `on_headers_complete` splits itself (`_plain_target`): an
# origin-form path and query of letters, digits and `/-._~=&,?` only. For such a target
# `httptools.parse_url` gives the path before the first `?` and the query after it (no
# fragment, nothing to unquote): `test_request_setup_oracle.py` holds the two to each other.
_PLAIN = (string.ascii_letters + string.digits + "/-._~=&,?").encode("ascii")


def _plain_target(url: bytes) -> tuple[bytes, bytes] | None:
    """(raw path, query) of `url` as `httptools.parse_url` reads it, or None: not plain."""
    if url[:1] != b"/" or url.translate(None, _PLAIN):
        return None
    path, _, query = url.partition(b"?")
    return path, query


class LimitedHttpProtocol(_Base):
    """httptools' protocol, counted by a guard and timed while a request arrives."""

    guard: ConnectionGuard
    request_timeout_s: float
    # When an idle keep-alive connection is closed (uvicorn's keep-alive timer: set when a
    # response completes, cleared by the next bytes); None: not waiting.
    idle_until: float | None = None
    _timer_at = 0.0  # when `_timer` is due

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slot: Slot | None = None
        # When (loop time) the request now arriving must have arrived; None: no clock runs.
        self.deadline: float | None = None
        # The one timer that looks at both clocks (`idle_until` too), and when it is due. A
        # keep-alive connection arms and disarms them on every request: moving a float, not
        # making and cancelling a timer (a `TimerHandle` and the loop's timer queue) each
        # time; the timer comes back at most once per `request_timeout_s` (issue #15).
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the connection, or refuse it over a cap; start the first request's clock."""
        super().connection_made(transport)
        taken = self.guard.acquire(self.client[0] if self.client else "")
        if isinstance(taken, str):
            transport.write(_refusal(taken))
            transport.close()
            return
        self.slot = taken
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock and uncount the connection."""
        self._stop_clock()
        if self.slot is not None:
            self.slot.release()
            self.slot = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, starting the clock on the first byte of a request."""
        # Any bytes end the keep-alive wait (uvicorn cancels its timer here).
        self.idle_until = None
        # Bytes between requests (even blank lines the parser skips) start the clock; bytes
        # while a request is being answered do not: the server, not the client, is slow.
        if self.deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()
        # The base class named, not `super()` (an object per call), on the callbacks every
        # request runs: the protocol's bases are one line, so it is the same method.
        _Base.data_received(self, data)

    def on_message_begin(self) -> None:
        """uvicorn's, line for line (a frame less per request); then the clock, unless it runs."""
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.scope = {  # type: ignore[typeddict-item]
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        if self.deadline is None:  # a pipelined request arriving after its predecessor
            self._arm()

    def on_headers_complete(self) -> None:
        """Start the request, or queue it (and stop its clock) behind one in progress.

        The common request (no upgrade, none in progress, a plain target, no root path or
        concurrency limit) is set up here as uvicorn's `on_headers_complete` and
        `_start_asgi_task` would set it up, without parsing the target into a URL object
        or the three calls between; any other goes to uvicorn's. The scope, the cycle and
        the task are the same (`test_request_setup_oracle.py`).
        """
        parser = self.parser
        cycle = self.cycle
        target = _plain_target(self.url)
        if target is None or parser.should_upgrade() or self.root_path or \
                self.limit_concurrency is not None or self.config.reset_contextvars or \
                (cycle is not None and not cycle.response_complete):
            _Base.on_headers_complete(self)
            if self.pipeline:  # queued behind a request in progress: reading stops, so the
                self._disarm()  # clock stops too
            return
        scope = self.scope
        scope["method"] = parser.get_method().decode("ascii")
        http_version = parser.get_http_version()
        if http_version != "1.1":
            scope["http_version"] = http_version
        raw_path, query = target
        scope["path"] = raw_path.decode("ascii")
        scope["raw_path"] = raw_path
        scope["query_string"] = query
        self.cycle = cycle = RequestResponseCycle(
            scope, self.transport, self.flow, self.logger, self.access_logger,
            self.access_log, self.server_state.default_headers, asyncio.Event(),
            self.expect_100_continue, http_version != "1.0" and parser.should_keep_alive(),
            self.on_response_complete)
        task = self.loop.create_task(cycle.run_asgi(self.app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def on_message_complete(self) -> None:
        """Stop the clock: the whole request arrived."""
        self.deadline = None  # `_disarm`, inline: the timer, if any, finds no clock and goes
        # uvicorn's, line for line (a frame less per request).
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        cycle.more_body = False
        cycle.message_event.set()

    def on_response_complete(self) -> None:
        """uvicorn's, with its keep-alive timer kept on the connection's one timer (`_wait`)."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()  # a timer of uvicorn's own, were there one
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.idle_until = until = self.loop.time() + self.timeout_keep_alive
            if self._timer is None or until < self._timer_at:  # else the timer comes first
                self._wait(until)

    def handle_websocket_upgrade(self) -> None:
        """Hand the transport, and the connection's slot, to the WebSocket protocol."""
        self._stop_clock()
        super().handle_websocket_upgrade()
        protocol = self.transport.get_protocol()
        if isinstance(protocol, SlotHolder):
            protocol.slot, self.slot = self.slot, None
        elif self.slot is not None:  # not ours to follow: uncount rather than leak the count
            self.slot.release()
            self.slot = None

    def _arm(self) -> None:
        self.deadline = deadline = self.loop.time() + self.request_timeout_s
        if self._timer is None or deadline < self._timer_at:  # else the timer comes first
            self._wait(deadline)

    def _wait(self, due: float) -> None:
        """Have the timer come at `due` at the latest (a clock was set to end then)."""
        timer = self._timer
        if timer is None:
            self._timer, self._timer_at = self.loop.call_at(due, self._check), due
        elif due < self._timer_at:  # a keep-alive shorter than the request timeout
            timer.cancel()
            self._timer, self._timer_at = self.loop.call_at(due, self._check), due

    def _disarm(self) -> None:
        self.deadline = None  # the timer, if any, finds no clock and goes

    def _stop_clock(self) -> None:
        self.deadline = None
        self.idle_until = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        """Close the connection if a clock ran out, else wait for the next one (the timer)."""
        self._timer = None
        deadline, idle_until = self.deadline, self.idle_until
        if deadline is None:
            if idle_until is None:
                return
            due = idle_until
        else:
            due = deadline if idle_until is None or deadline < idle_until else idle_until
        # asyncio runs a timer up to its clock's resolution early (`BaseEventLoop._run_once`):
        # the same allowance here, so the connection closes when a timer of its own would.
        if due > self.loop.time() + _RESOLUTION:  # moved on since the timer was set
            self._timer, self._timer_at = self.loop.call_at(due, self._check), due
            return
        self.deadline = self.idle_until = None
        if not self.transport.is_closing():
            self.transport.close()


_SANS_IO = "websockets-sansio"


def protocol_classes(limits: Limits, guard: ConnectionGuard,
                     ws: str = "auto") -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
    """Return (HTTP protocol, WebSocket protocol) classes sharing `guard` for one server.

    "auto" is uvicorn's sans-I/O protocol on the `websockets` library where this uvicorn has
    it (0.35 and later), so that the stream endpoints get their `FrameWriter`.
    """
    http = type("PerpxHttpProtocol", (LimitedHttpProtocol,),
                {"guard": guard, "request_timeout_s": limits.request_timeout_s})
    if ws == "auto" and WS_PROTOCOLS.get(_SANS_IO) is not None:
        ws = _SANS_IO
    base = import_from_string(WS_PROTOCOLS[ws]) if WS_PROTOCOLS.get(ws) is not None else None
    if base is None:
        raise RuntimeError(f"no WebSocket protocol for {ws!r}: install websockets")
    mixins: tuple[type, ...] = (SlotHolder, FrameWriter) if ws == _SANS_IO else (SlotHolder,)
    websocket = type("PerpxWebSocketProtocol", (*mixins, base), {})
    return http, websocket
