"""perpx's own replies written straight to uvicorn's connection, in one write (issue #15).

uvicorn's `RequestResponseCycle.send` is general: for every response it checks each header
(the server's `date` and `server` too) with two regular expressions, lowercases the names,
looks for `content-length`, `transfer-encoding` and `connection` among them, and writes the
head and the body in two ASGI messages (two coroutines, two dicts, two transport writes). A
REST reply `RestApp` builds has none of that to find: its header names are our constants,
its values digits or a constant type, its length is the body's, and it has no `connection`
or `transfer-encoding` header unless it says to close (the 413, left to uvicorn).

`write_reply` writes such a reply on the cycle uvicorn gave the app (`send.__self__`, on
uvicorn's httptools protocol, which `perpx.api.protocol` extends), as uvicorn's two `send`s
would have, byte for byte: the status line, the server's default headers (checked once per
list, with uvicorn's own expressions, not per reply), ours, `connection: close` when the
connection does not stay open, the body unless the method is HEAD; then the response is
complete (the request's waiters woken, the connection closed or the next request started).
Anything else (another server, an ASGI middleware's `send`, a paused transport, an access
log, a response already started, our `connection` header, or a default header that is
invalid or says something of the framing) returns False and goes through uvicorn's `send`.
`tests/unit/api/test_reply_writer_oracle.py` holds the bytes on the wire to uvicorn's path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import MethodType
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)

# Header names whose presence changes what uvicorn's `send` does beyond writing them.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})

# The server's default headers (uvicorn's `ServerState.default_headers`, a new list each
# second for the new date) last seen, and their wire bytes, or None where uvicorn's `send`
# must see them (invalid, or naming the framing). Held by identity: uvicorn's server
# replaces the list (`Server.on_tick`), it never edits it in place.
_defaults: tuple[list[tuple[bytes, bytes]] | None, bytes | None] = (None, None)


def _default_lines(defaults: list[tuple[bytes, bytes]]) -> bytes | None:
    """Return the default headers as uvicorn's `send` writes them, or None: it must see them."""
    global _defaults
    seen, lines = _defaults
    if defaults is seen:
        return lines
    parts: list[bytes] = []
    for name, value in defaults:
        if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value) or \
                name.lower() in _FRAMING:
            parts = []
            break
        parts += (name.lower(), b": ", value, b"\r\n")
    else:
        _defaults = (defaults, b"".join(parts))
        return _defaults[1]
    _defaults = (defaults, None)
    return None


def write_reply(send: Callable[..., Any], status: int,
                headers: Sequence[tuple[bytes, bytes]], body: bytes) -> bool:
    """Write one perpx reply on uvicorn's connection at once; False: send it through ASGI.

    `headers` must be perpx's own, valid as they are (lowercase token names, values without
    control characters) and include `content-length: len(body)`; they are not checked again.
    True means the reply was written (or the client is gone, as uvicorn's `send` would drop
    it): the app must not send anything more.
    """
    cycle = getattr(send, "__self__", None)
    if type(cycle) is not RequestResponseCycle:  # not uvicorn's httptools cycle (exactly)
        return False
    if cycle.disconnected:  # uvicorn's `send` returns at once, for both messages
        return True
    if cycle.response_started or cycle.flow.write_paused or cycle.access_log:
        return False
    line = STATUS_LINE.get(status)
    defaults = _default_lines(cycle.default_headers)
    if line is None or defaults is None:
        return False
    content = [line, defaults]
    for name, value in headers:
        if name == b"connection":  # uvicorn's rule for it stays uvicorn's
            return False
        content += (name, b": ", value, b"\r\n")
    keep_alive = cycle.keep_alive
    content.append(b"\r\n" if keep_alive else b"connection: close\r\n\r\n")
    if cycle.scope["method"] != "HEAD":  # uvicorn writes no body for HEAD
        content.append(body)
    # The state uvicorn's two `send`s leave behind.
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    cycle.chunked_encoding = False
    cycle.expected_content_length = 0
    transport = cycle.transport
    transport.write(b"".join(content))
    cycle.response_complete = True
    cycle.message_event.set()
    if not keep_alive:
        transport.close()
    cycle.on_response()
    return True


def take_body(receive: Callable[..., Any]) -> bytes | None:
    """Take the whole request body from uvicorn's cycle as its `receive` would; or None.

    When the request has arrived whole (no more body, nothing disconnected, answered or
    waiting for a 100-continue, the cycle's event set), uvicorn's `receive` returns at once
    with the body and no more to come: this does the same (the reading resumed, the event
    cleared, the body taken) without its coroutine and message dict. None: not uvicorn's
    httptools cycle (exactly), or not that state; the caller awaits `receive` as before.
    `tests/unit/api/test_take_body_oracle.py` holds it to `receive`.
    """
    # A bound method first: `getattr` with a default on a plain function raises inside.
    if type(receive) is not MethodType:
        return None
    cycle = receive.__self__
    if type(cycle) is not RequestResponseCycle or cycle.more_body or \
            cycle.waiting_for_100_continue or cycle.disconnected or cycle.response_complete:
        return None
    event = cycle.message_event
    if not event.is_set():
        return None
    cycle.flow.resume_reading()
    event.clear()
    body = bytes(cycle.body)
    cycle.body = bytearray()
    return body
