"""The Bybit V5 REST server: `create_app(service, keys)` is an ASGI application.

Every reply is HTTP 200 with Bybit's envelope, except an unknown route (404, retCode 10017,
as Bybit), a public request over the per-address throttle (403, as Bybit's "access too
frequent") and a body over `Limits.max_body_bytes` (413, refused before it is read whole or
authenticated, and the connection closed). Signed endpoints check the signature over the
raw query or body, the key's rights and its rate limit before the handler runs. An
unexpected exception is logged and answered 10016; a broken core invariant stops the
service (`ExchangeService.fatal`), and everything after is answered 10016 too. In a gateway
(`perpx.roles.gateway`) a writer that cannot be reached is 10016 with "nothing was done"
(`NotSequenced`) or "the outcome is unknown" (`OutcomeUnknown`, once the gateway's resends
with the same request id found no writer in time, or the writer no longer had the answer).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

from perpx.api.auth import (
    API_KEY,
    DEFAULT_LIMITS,
    RECV_WINDOW,
    SIGN,
    SIGNED_HEADERS,
    TIMESTAMP,
    AuthLimits,
    authenticate,
)
from perpx.api.context import Access, Context, Endpoint, ServerInfo
from perpx.api.envelope import envelope
from perpx.api.jsondepth import MAX_DEPTH, too_deep
from perpx.api.keys import ApiKey, KeyStore
from perpx.api.limits import AddressThrottle, BodyTooLarge, ConnectionGuard, Limits
from perpx.api.permissions import permit
from perpx.api.ratelimit import Limiter, RateLimiter
from perpx.api.replywriter import take_body, write_reply
from perpx.api.rest import (
    account,
    calc,
    collateral,
    demo,
    insurance,
    market,
    order,
    position,
    status,
)
from perpx.api.ws.gate import Gate
from perpx.api.ws.hub import StreamHub
from perpx.api.ws.server import build_routes
from perpx.bybit.errors import ApiError
from perpx.bybit.params import Params
from perpx.bybit.retcodes import bybit_code
from perpx.convert import ConversionError
from perpx.durable import ReadTimeout
from perpx.store.history import CursorError, HistoryUnavailable
from perpx.transport.wire import NotSequenced, OutcomeUnknown
from perpx.venue import ServiceStopped, Venue
from perpx.web import is_web_path, web_routes

log = logging.getLogger("perpx.api")

ENDPOINTS: list[Endpoint] = [*market.ROUTES, *order.ROUTES, *position.ROUTES, *account.ROUTES,
                             *collateral.ROUTES, *calc.ROUTES, *status.ROUTES, *demo.ROUTES,
                             *insurance.ROUTES]
_decoder = msgspec.json.Decoder()
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def _params(method: str, raw: bytes) -> Params:
    if method == "GET":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise ApiError(10001, "params error: query string is not UTF-8") from bad
        return Params(dict(parse_qsl(text, keep_blank_values=True)))
    if not raw or raw.isspace():  # `not raw.strip()`, without copying the body
        return Params({})
    if too_deep(raw):  # before the recursive decoder, which would raise RecursionError
        raise ApiError(10001, f"params error: JSON nested deeper than {MAX_DEPTH} levels")
    try:
        body = _decoder.decode(raw)
    except msgspec.DecodeError as bad:
        raise ApiError(10001, "params error: the body is not valid JSON") from bad
    if not isinstance(body, dict):
        raise ApiError(10001, "params error: the body must be a JSON object")
    return Params(body)


def _names_known_contract(params: Params, specs: Mapping[str, object],
                          by_coin: bool = False) -> bool:
    """Whether every contract the request names is one this process already knows.

    A request names its `symbol`, or a batch each item's of its `request` list; a request
    naming none or an item that is not an object names no known one, except that with
    `by_coin` (`Endpoint.by_coin`) a request naming no `symbol` (absent or empty, as
    `Params.spec` reads it) passes: its handler reads the contracts after its own wait.
    Contracts are only ever added, never changed (`readside._learn`): a known one reads the
    same whether or not this process has followed every write acknowledged so far.
    """
    items = params.data.get("request")
    if type(items) is list and items:
        return all(type(item) is dict and _known(item.get("symbol"), specs) for item in items)
    symbol = params.data.get("symbol")
    if type(symbol) is str:  # `_known`'s test, inline for the one-symbol request
        return symbol in specs or (by_coin and symbol == "")
    return by_coin and symbol is None


def _known(symbol: object, specs: Mapping[str, object]) -> bool:
    return type(symbol) is str and symbol in specs


Headers = dict[str, str]
# A reply's headers as they go on the wire (lowercase names, latin-1 values), ours only:
# the server adds the length and the type.
RawHeaders = list[tuple[bytes, bytes]]
# An enum member read from its class goes through the enum type's `__getattr__` hook
# (Python 3.11: ~500 instructions); per request, it is read once, here.
_PUBLIC = Access.PUBLIC
Reply = tuple[int, bytes, Headers]
RawReply = tuple[int, bytes, RawHeaders]


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


async def read_body(receive: Receive, declared: bytes | str | None, cap: int) -> bytes:
    """Read a request body of at most `cap` bytes, or raise `BodyTooLarge` as soon as it is over.

    `declared` is the Content-Length header: a body announced over the cap is refused before
    a byte of it is read, and a chunked one as soon as the bytes received pass the cap.
    """
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            length = 0  # the HTTP parser refuses a malformed length before the app sees it
        if length > cap:
            raise BodyTooLarge
    # Arrived whole on uvicorn's cycle (a REST body, nearly always): taken as `receive`
    # would give it, without its coroutine and message (`take_body`).
    whole = take_body(receive)
    if whole is not None:
        if len(whole) > cap:
            raise BodyTooLarge
        return whole
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise BodyTooLarge
        if not message.get("more_body", False):
            # The common case, a body in one message, is returned as it came (no join).
            return b"".join([*chunks, chunk]) if chunks else chunk
        chunks.append(chunk)


# What the dispatcher reads of a request's headers: those `authenticate` checks, by name.
_API_KEY, _TIMESTAMP, _RECV_WINDOW, _SIGN = (name.encode("latin-1") for name in SIGNED_HEADERS)


def _request_headers(raw: list[tuple[bytes, bytes]]) -> tuple[Headers, bytes | None]:
    """Return the signature headers and the Content-Length of an ASGI scope's headers.

    The first of a repeated name wins, as in Starlette's `Headers.get`: the dict is built
    from the last pair to the first (in C, not a loop here). Each of `SIGNED_HEADERS` is
    read in line, not in a loop (four per request).
    """
    get = dict(reversed(raw)).get
    found: Headers = {}
    if (value := get(_API_KEY)) is not None:
        found[API_KEY] = value.decode("latin-1")
    if (value := get(_TIMESTAMP)) is not None:
        found[TIMESTAMP] = value.decode("latin-1")
    if (value := get(_RECV_WINDOW)) is not None:
        found[RECV_WINDOW] = value.decode("latin-1")
    if (value := get(_SIGN)) is not None:
        found[SIGN] = value.decode("latin-1")
    return found, get(b"content-length")


class Dispatcher:
    """The REST table: one request in (method, path, query or body, headers), one reply out."""

    def __init__(self, service: Venue, keys: KeyStore, limiter: Limiter,
                 limits: Limits | None = None,
                 auth_limits: AuthLimits = DEFAULT_LIMITS) -> None:
        self.service = service
        self.keys = keys
        self.limiter = limiter
        self.auth_limits = auth_limits
        self.limits = limits = limits or Limits()
        self.throttle = AddressThrottle(limits.public_requests, limits.public_window_ms,
                                        limits.public_tracked_addresses)
        # perpx's own endpoints (status, demo accounts) read the server through this.
        self.server = ServerInfo(limiter)
        self.table = {(e.method, e.path): e for e in ENDPOINTS}
        self.paths = {e.path for e in ENDPOINTS}

    async def __call__(self, method: str, path: str, raw: bytes | Callable[[], Awaitable[bytes]],
                       headers: Mapping[str, str], client: str = "") -> Reply:
        """Answer one request; `raw` is the query string, or (POST...) reads the body.

        `client` is the client's address, for the per-address throttle of public endpoints.
        The reply's headers by (lowercase) name; `answer` gives them as they go on the wire.
        """
        status, body, raw_headers = await self.answer(method, path, raw, headers, client)
        return status, body, {name.decode("latin-1"): value.decode("latin-1")
                              for name, value in raw_headers}

    async def answer(self, method: str, path: str, raw: bytes | Callable[[], Awaitable[bytes]],
                     headers: Mapping[str, str], client: str = "") -> RawReply:
        """Answer as `__call__` does, the headers as they go on the wire (the ASGI fast path)."""
        service = self.service
        now = service.now_ms()
        endpoint = self.table.get((method, path))
        if endpoint is None:
            known = path in self.paths
            code = 10001 if known else 10017
            message = "params error: method" if known else "route not found"
            return (200 if known else 404), envelope(code, message, {}, now), []
        public = endpoint.access is _PUBLIC
        if public and not self.throttle.allow(client):
            # Bybit answers an IP over 600 requests per 5 s with HTTP 403 "access too frequent".
            return 403, envelope(10018, "access too frequent: exceeded the IP rate limit", {},
                                 now), [(_TIMENOW, b"%d" % now)]
        reply_headers: RawHeaders = []
        try:
            payload = raw if isinstance(raw, bytes) else await raw()
            if not public:
                key = authenticate(self.keys, headers, payload, now, self.auth_limits)
                limit = key.rate_limit
                allowed, remaining, reset = self.limiter.hit(key.api_key, limit, now)
                reply_headers = [(_LIMIT, b"%d" % limit),
                                 (_LIMIT_STATUS, b"%d" % remaining),
                                 (_LIMIT_RESET, b"%d" % reset)]
                if not allowed:
                    raise ApiError(10006, "Too many visits. Exceeded the API Rate Limit.")
                # The key `authenticate` just looked up (nothing was awaited since): the
                # permission check on it, without looking it up again (`authorize`'s own).
                key = permit(key, endpoint.access)
                await service.ensure_funded(key.account_id, key.demo_funds)
                ctx = Context(service, self.keys, _params(method, payload), now, key,
                              self.server)
                # Read-your-writes: the read side must have passed this key's account's last
                # acknowledged write (at once in one process; see `perpx.durable`; a gateway
                # waits for its follower to pass the journal's end as of now). A write that
                # reads first only the contract it names skips it once that is known here.
                if endpoint.reads_state or not _names_known_contract(
                        ctx.params, service.specs, endpoint.by_coin):
                    await ctx.catch_up()
            else:
                ctx = Context(service, self.keys, _params(method, payload), now, None,
                              self.server)
            result: Any = await endpoint.handler(ctx)
            if isinstance(result, tuple):
                body = envelope(0, "OK", result[0], now, result[1])
            else:
                body = envelope(0, "OK", result, now)
        except ClientGone:
            raise
        except BodyTooLarge:
            message = f"request body too large: at most {self.limits.max_body_bytes} bytes"
            return 413, envelope(10001, message, {}, now), [(b"connection", b"close"),
                                                             (_TIMENOW, b"%d" % now)]
        except ApiError as error:
            body = envelope(error.code, error.message, error.result, now, error.ext)
        except ConversionError as bad:
            code, message = bybit_code(bad.code)
            body = envelope(code, message, {}, now)
        except CursorError:
            body = envelope(10001, "params error: cursor invalid", {}, now)
        except HistoryUnavailable:
            # The history database is failing; its writer retries and reconnects on its own.
            log.warning("history unavailable on %s %s", method, path)
            body = envelope(10016, "Internal system error: history temporarily unavailable",
                            {}, now)
        except ReadTimeout:
            body = envelope(10016, "Internal system error: reads are behind, retry", {}, now)
        except ServiceStopped:
            body = envelope(10016, "Internal system error: the service has stopped", {}, now)
        except NotSequenced:
            # A gateway found no writer (or it refused unread): nothing was placed, retry.
            body = envelope(10016, "Internal system error: the writer is unavailable, "
                                   "nothing was done; retry", {}, now)
        except OutcomeUnknown:
            # Resent with its request id and still no answer (or the answer is gone): the
            # writer may have journaled it, so the caller must look before resending.
            log.warning("outcome unknown on %s %s", method, path)
            body = envelope(10016, "Internal system error: the outcome is unknown; check "
                                   "before retrying", {}, now)
        except Exception:
            log.exception("unexpected error on %s %s", method, path)
            body = envelope(10016, "Internal system error.", {}, now)
        reply_headers.append((_TIMENOW, b"%d" % now))
        return 200, body, reply_headers


# Bybit's reply headers (`perpx.api.ratelimit`), as the wire has them (names lowercased, as
# Starlette's `Response` writes a name given in any case).
_LIMIT = b"x-bapi-limit"
_LIMIT_STATUS = b"x-bapi-limit-status"
_LIMIT_RESET = b"x-bapi-limit-reset-timestamp"
_TIMENOW = b"timenow"
_JSON_TYPE = (b"content-type", b"application/json")


class RestApp:
    """The ASGI application: REST requests go straight to the dispatcher, the rest to Starlette.

    Starlette's middleware, router and Request/Response objects cost more than the whole
    order path of the engine, so an HTTP request with a known method that no extra route
    claims is answered here from the ASGI scope, with the same status, body and headers the
    Starlette route gives. WebSocket streams, lifespan, extra routes and odd methods go to
    the Starlette app (`starlette`), whose catch-all route calls the same dispatcher.
    """

    def __init__(self, dispatcher: Dispatcher, starlette: Starlette,
                 extra_routes: Sequence[BaseRoute]) -> None:
        self.dispatcher = dispatcher
        # Bound once: a method looked up per request costs more.
        self._answer = dispatcher.answer
        self.starlette = starlette
        self.extra_routes = list(extra_routes)
        self.methods = frozenset(METHODS)
        # A REST path is never the web page's, so for one `is_web_path` need not be asked.
        self.rest_paths = frozenset(dispatcher.paths)
        assert not any(is_web_path(path) for path in self.rest_paths)

    def _claimed(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] is not Match.NONE for route in self.extra_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        # A lifespan scope has no path: the type is looked at first.
        if scope["type"] != "http" or scope["method"] not in self.methods or \
                ((path := scope["path"]) not in self.rest_paths and is_web_path(path)) or \
                (self.extra_routes and self._claimed(scope)):
            await self.starlette(scope, receive, send)
            return
        method: str = scope["method"]
        signed, declared = _request_headers(scope["headers"])
        # The body's reader as a partial: awaiting it runs `read_body` itself.
        raw: bytes | Callable[[], Awaitable[bytes]] = scope["query_string"] \
            if method == "GET" else functools.partial(
                read_body, receive, declared, self.dispatcher.limits.max_body_bytes)
        client = scope.get("client")
        try:
            status, reply, headers = await self._answer(
                method, path, raw, signed, client[0] if client else "")
        except ClientGone:
            return  # nobody to answer
        # Starlette's response headers for a JSON body: ours, then length and type.
        headers.append((b"content-length", b"%d" % len(reply)))
        headers.append(_JSON_TYPE)
        if write_reply(send, status, headers, reply):  # on uvicorn: at once, as its send
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": reply})

    @property
    def state(self) -> Any:
        """The Starlette app's state (for code that expects a Starlette application)."""
        return self.starlette.state


def service_hub(service: Venue) -> StreamHub:
    """Return a stream hub publishing from `service`'s read side, listening to its commands.

    The hub shares the service's order projection, tickers, klines, book mirrors and ADL
    ranks (REST and the streams show one state), so it folds nothing itself; the service
    tells it of each durable command once these are folded (`ExchangeService.listen`).
    """
    hub = StreamHub(service.durable.engine, list(service.specs.values()),
                    projector=service.projector,
                    tickers=service.tickers, klines=service.klines, books=service.books,
                    adl=service.adl)
    service.listen(hub.on_durable)
    return hub


def create_app(service: Venue, keys: KeyStore, *,
               extra_routes: Sequence[BaseRoute] = (), manage_service: bool = False,
               rate_limiter: Limiter | None = None,
               limits: Limits | None = None,
               auth_limits: AuthLimits = DEFAULT_LIMITS,
               connections: ConnectionGuard | None = None) -> RestApp:
    """Build the app: the service's WebSocket streams, `extra_routes`, then the REST table.

    With `manage_service`, the app's lifespan starts the service (feed, market maker) and
    closes it at shutdown. REST and `/v5/trade` share one rate limiter, clock and key check;
    `limits` gives the body cap and the public throttle, `auth_limits` the replay windows;
    `connections`, the server's connection guard, is what `/perpx/status` counts.
    """
    limiter = rate_limiter or RateLimiter()
    dispatcher = Dispatcher(service, keys, limiter, limits, auth_limits)
    cap = dispatcher.limits.max_body_bytes

    async def fund(key: ApiKey) -> None:
        await service.ensure_funded(key.account_id, key.demo_funds)

    gate = Gate(keys, limits=auth_limits, limiter=limiter, clock=service.now_ms, fund=fund)

    async def dispatch(request: Request) -> Response:
        method = request.method

        async def body() -> bytes:
            return await read_body(request.receive, request.headers.get("content-length"), cap)

        raw: bytes | Callable[[], Awaitable[bytes]] = request.scope["query_string"] \
            if method == "GET" else body
        status, reply, headers = await dispatcher(method, request.url.path, raw,
                                                  request.headers,
                                                  request.client.host if request.client else "")
        return Response(reply, status, headers=headers, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_service:
            await service.start()
        try:
            yield
        finally:
            if manage_service:
                await service.close()

    hub = service_hub(service)
    dispatcher.server.sessions = hub.sessions
    dispatcher.server.connections = connections
    streams = build_routes(hub, gate, service.submit)
    routes: list[BaseRoute] = [*streams, *web_routes(), *extra_routes,
                               Route("/{path:path}", dispatch, methods=METHODS)]
    return RestApp(dispatcher, Starlette(routes=routes, lifespan=lifespan), extra_routes)
