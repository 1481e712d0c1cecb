"""Running the API: `serve` for `perpx serve`, server threads for tests and benchmarks."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvicorn
from starlette.types import ASGIApp

from perpx.api.app import create_app
from perpx.api.auth import AuthLimits
from perpx.api.keys import KeyStore
from perpx.api.limits import ConnectionGuard, Limits
from perpx.api.protocol import protocol_classes
from perpx.api.ratelimit import Limiter
from perpx.stopping import stop_task
from perpx.venue import Venue

T = TypeVar("T")


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """Return uvloop's loop factory where uvloop is installed, else asyncio's default."""
    try:
        import uvloop
    except ImportError:  # Windows: the default loop serves, only slower
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on the fastest event loop available (uvloop), like `asyncio.run`."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(main)


def _config(app: ASGIApp, limits: Limits, guard: ConnectionGuard, host: str = "127.0.0.1",
            port: int = 0, **options: Any) -> uvicorn.Config:
    # httptools parses HTTP/1.1 in C (h11, uvicorn's pure-Python fallback, costs ~2x); our
    # subclass of its protocol adds the connection caps and the request timeout. The loop is
    # chosen by whoever runs the server (`run` above, or uvicorn's "auto" in threads).
    http, ws = protocol_classes(limits, guard, options.pop("ws", "auto"))
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                          http=http, ws=ws, proxy_headers=False,
                          timeout_keep_alive=limits.keep_alive_s,
                          ws_max_size=limits.ws_max_message_bytes,
                          ws_per_message_deflate=limits.ws_compression, **options)


def _guard(limits: Limits) -> ConnectionGuard:
    return ConnectionGuard(limits.max_connections_per_address, limits.connection_cap())


def shared_port_socket(host: str, port: int) -> socket.socket:
    """Return a TCP socket bound to (host, port) with SO_REUSEPORT: one of N on one port.

    Every process that binds the port so (same user) gets its own listening socket, and the
    kernel spreads new connections over those that listen. Bound but not listening, it only
    holds the port (`perpx serve --gateways N` keeps one so, to pick a free port for all).
    """
    reuse_port = getattr(socket, "SO_REUSEPORT", None)
    if reuse_port is None:
        raise OSError("SO_REUSEPORT is not available on this platform: run one gateway per "
                      "port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, reuse_port, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def serve(service: Venue, keys: KeyStore, host: str, port: int,
                on_ready: Callable[[int], None] = lambda port: None,
                limits: Limits | None = None, auth_limits: AuthLimits | None = None,
                reuse_port: bool = False, rate_limiter: Limiter | None = None) -> None:
    """Serve until Ctrl-C or until the service stops on a fatal error.

    `reuse_port`: listen on a socket with SO_REUSEPORT, beside other gateways on the port;
    `rate_limiter`: the key's counts (a gateway's, shared with the others on the machine).
    """
    limits = limits or Limits()
    guard = _guard(limits)
    app = create_app(service, keys, manage_service=True, limits=limits,
                     auth_limits=auth_limits or AuthLimits(), rate_limiter=rate_limiter,
                     connections=guard)
    server = uvicorn.Server(_config(app, limits, guard, host, port))
    sockets = [shared_port_socket(host, port)] if reuse_port else None

    async def watch() -> None:
        while not server.started and not server.should_exit:
            await asyncio.sleep(0.05)
        if server.started:
            on_ready(server.servers[0].sockets[0].getsockname()[1])
        await service.stopped.wait()
        server.should_exit = True  # a broken invariant or a failed journal: stop serving

    watcher = asyncio.create_task(watch())
    try:
        await server.serve(sockets=sockets)
    finally:
        await stop_task(watcher)  # cancelled again if 3.11's wait_for swallows it


class ServerThread:
    """uvicorn serving `app` on a loopback port in a background thread.

    `limits` are the server's (connections, timeouts); the app takes its own (body size,
    public throttle) from `create_app`. `guard` counts the open connections.
    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0,
                 limits: Limits | None = None) -> None:
        limits = limits or Limits()
        self.guard = _guard(limits)
        self.server = uvicorn.Server(_config(app, limits, self.guard, host, port))
        self.host = host
        self.port = 0
        self._thread = threading.Thread(target=self.server.run, daemon=True,
                                        name="perpx-api")

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:40123."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> ServerThread:
        """Start serving; return once the port is open."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Shut down and wait for the thread."""
        self.server.should_exit = True
        self._thread.join(timeout=20)


class LoopServerThread:
    """uvicorn serving `app` on a loopback port in a thread whose event loop callers can use.

    The WebSocket tests and `perpx bench ws` drive the sequencer on the server's own loop
    (`run`), so that commands and the streams they cause share one loop, as in `perpx serve`.
    """

    def __init__(self, app: ASGIApp, limits: Limits | None = None) -> None:
        limits = limits or Limits()
        self.guard = _guard(limits)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._sock = sock
        self.port: int = sock.getsockname()[1]
        self.server = uvicorn.Server(_config(app, limits, self.guard, lifespan="off",
                                             ws="websockets-sansio"))
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="perpx-ws")

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve(sockets=[self._sock])

        asyncio.run(main())

    def start(self, timeout_s: float = 10.0) -> LoopServerThread:
        """Start serving; return once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run `coroutine` on the server's loop and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def stop(self) -> None:
        """Shut down and wait for the thread."""
        self.server.should_exit = True
        self._thread.join(10)
