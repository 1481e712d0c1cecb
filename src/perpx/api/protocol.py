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
  WebSocket protocol, which releases it when that connection ends.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import WS_PROTOCOLS
from uvicorn.importer import import_from_string
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from perpx.api.envelope import envelope
from perpx.api.limits import ConnectionGuard, Limits, Slot

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


class LimitedHttpProtocol(HttpToolsProtocol):
    """httptools' protocol, counted by a guard and timed while a request arrives."""

    guard: ConnectionGuard
    request_timeout_s: float

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slot: Slot | None = None
        self.deadline: asyncio.TimerHandle | None = None

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
        self._disarm()
        if self.slot is not None:
            self.slot.release()
            self.slot = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser, starting the clock on the first byte of a request."""
        # Bytes between requests (even blank lines the parser skips) start the clock; bytes
        # while a request is being answered do not: the server, not the client, is slow.
        if self.deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()
        super().data_received(data)

    def on_message_begin(self) -> None:
        """Start the clock for a request, unless it already runs."""
        super().on_message_begin()
        if self.deadline is None:  # a pipelined request arriving after its predecessor
            self._arm()

    def on_headers_complete(self) -> None:
        """Start the request, or queue it (and stop its clock) behind one in progress."""
        super().on_headers_complete()
        if self.pipeline:  # queued behind a request in progress: reading stops, so the clock
            self._disarm()

    def on_message_complete(self) -> None:
        """Stop the clock: the whole request arrived."""
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        """Hand the transport, and the connection's slot, to the WebSocket protocol."""
        self._disarm()
        super().handle_websocket_upgrade()
        protocol = self.transport.get_protocol()
        if isinstance(protocol, SlotHolder):
            protocol.slot, self.slot = self.slot, None
        elif self.slot is not None:  # not ours to follow: uncount rather than leak the count
            self.slot.release()
            self.slot = None

    def _arm(self) -> None:
        self._disarm()
        self.deadline = self.loop.call_later(self.request_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _expire(self) -> None:
        self.deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def protocol_classes(limits: Limits, guard: ConnectionGuard,
                     ws: str = "auto") -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
    """Return (HTTP protocol, WebSocket protocol) classes sharing `guard` for one server."""
    http = type("PerpxHttpProtocol", (LimitedHttpProtocol,),
                {"guard": guard, "request_timeout_s": limits.request_timeout_s})
    base = import_from_string(WS_PROTOCOLS[ws]) if ws in WS_PROTOCOLS else None
    if base is None:
        raise RuntimeError(f"no WebSocket protocol for {ws!r}: install websockets")
    websocket = type("PerpxWebSocketProtocol", (SlotHolder, base), {})
    return http, websocket
