"""One HTTP connection of perpx's server protocol or stock uvicorn's, over a fake transport.

For the oracle tests that hold perpx's protocol (`perpx.api.protocol`, `perpx.api.replywriter`)
to uvicorn's: both are built from the same config, server state and transport, so whatever
differs on the wire is the protocols' doing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from perpx.api.limits import ConnectionGuard, Limits
from perpx.api.server import _config

DATE = b"Mon, 07 Dec 2026 14:00:00 GMT"  # the server's date header, fixed for byte equality


class RecordingTransport:
    """A connection's transport that keeps what is written and whether it was closed."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.protocol: Any = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000),
                "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_protocol(self) -> Any:
        return self.protocol

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol


def open_connection(app: Any, limits: Limits, ours: bool, loop: asyncio.AbstractEventLoop,
                    app_state: dict[str, Any]) -> tuple[Any, ServerState, RecordingTransport]:
    """Return a connected protocol (perpx's if `ours`, else uvicorn's), its state, its transport."""
    guard = ConnectionGuard(limits.max_connections_per_address, limits.connection_cap())
    config = _config(app, limits, guard, lifespan="off")
    config.load()
    protocol_class: Callable[..., Any] = config.http_protocol_class if ours \
        else HttpToolsProtocol
    state = ServerState()
    state.default_headers = [(b"date", DATE), *config.encoded_headers]
    transport = RecordingTransport()
    protocol = protocol_class(config=config, server_state=state, app_state=app_state,
                              _loop=loop)
    protocol.connection_made(transport)
    return protocol, state, transport
