"""The Bybit V5 REST server: `create_app(service, keys)` is a Starlette application.

Every reply is HTTP 200 with Bybit's envelope, except an unknown route (404, retCode 10017,
as Bybit). Signed endpoints check the signature over the raw query or body, the key's
rights and its rate limit before the handler runs. An unexpected exception is logged and
answered 10016; a broken core invariant stops the service (`ExchangeService.fatal`), and
everything after is answered 10016 too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from perpx.api.auth import authenticate
from perpx.api.context import Access, Context, Endpoint
from perpx.api.envelope import ApiError, envelope
from perpx.api.keys import KeyStore
from perpx.api.params import Params
from perpx.api.ratelimit import RateLimiter
from perpx.api.rest import account, market, order, position
from perpx.api.retcodes import bybit_code
from perpx.convert import ConversionError
from perpx.service import ExchangeService, ServiceStopped
from perpx.store.history import CursorError

log = logging.getLogger("perpx.api")

ENDPOINTS: list[Endpoint] = [*market.ROUTES, *order.ROUTES, *position.ROUTES, *account.ROUTES]
_decoder = msgspec.json.Decoder()
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def _params(method: str, raw: bytes) -> Params:
    if method == "GET":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise ApiError(10001, "params error: query string is not UTF-8") from bad
        return Params(dict(parse_qsl(text, keep_blank_values=True)))
    if not raw.strip():
        return Params({})
    try:
        body = _decoder.decode(raw)
    except msgspec.DecodeError as bad:
        raise ApiError(10001, "params error: the body is not valid JSON") from bad
    if not isinstance(body, dict):
        raise ApiError(10001, "params error: the body must be a JSON object")
    return Params(body)


def create_app(service: ExchangeService, keys: KeyStore, *,
               extra_routes: Sequence[BaseRoute] = (), manage_service: bool = False,
               rate_limiter: RateLimiter | None = None) -> Starlette:
    """Build the app: the service's WebSocket streams, `extra_routes`, then the REST table.

    With `manage_service`, the app's lifespan starts the service (feed, market maker) and
    closes it at shutdown.
    """
    table = {(e.method, e.path): e for e in ENDPOINTS}
    paths = {e.path for e in ENDPOINTS}
    limiter = rate_limiter or RateLimiter()

    async def dispatch(request: Request) -> Response:
        now = service.now_ms()
        path = request.url.path
        endpoint = table.get((request.method, path))
        headers: dict[str, str] = {}
        if endpoint is None:
            code = 10017 if path not in paths else 10001
            message = "route not found" if path not in paths else "params error: method"
            return Response(envelope(code, message, {}, now), 404 if code == 10017 else 200,
                            media_type="application/json")
        try:
            raw = request.scope["query_string"] if request.method == "GET" \
                else await request.body()
            ctx = Context(service, keys, Params({}), now)
            if endpoint.access is not Access.PUBLIC:
                key = authenticate(keys, request.headers, raw, now)
                allowed, remaining, reset = limiter.hit(key.api_key, key.rate_limit, now)
                headers = {"X-Bapi-Limit": str(key.rate_limit),
                           "X-Bapi-Limit-Status": str(remaining),
                           "X-Bapi-Limit-Reset-Timestamp": str(reset)}
                if not allowed:
                    raise ApiError(10006, "Too many visits. Exceeded the API Rate Limit.")
                if endpoint.access is Access.WRITE and key.read_only:
                    raise ApiError(10005, "Permission denied, please check your API key "
                                          "permissions.")
                ctx.key = key
                await service.ensure_funded(key.account_id, key.demo_funds)
            ctx.params = _params(request.method, raw)
            result: Any = await endpoint.handler(ctx)
            if isinstance(result, tuple):
                body = envelope(0, "OK", result[0], now, result[1])
            else:
                body = envelope(0, "OK", result, now)
        except ApiError as error:
            body = envelope(error.code, error.message, error.result, now, error.ext)
        except ConversionError as bad:
            code, message = bybit_code(bad.code)
            body = envelope(code, message, {}, now)
        except CursorError:
            body = envelope(10001, "params error: cursor invalid", {}, now)
        except ServiceStopped:
            body = envelope(10016, "Internal system error: the service has stopped", {}, now)
        except Exception:
            log.exception("unexpected error on %s %s", request.method, path)
            body = envelope(10016, "Internal system error.", {}, now)
        headers["Timenow"] = str(now)
        return Response(body, 200, headers=headers, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_service:
            await service.start()
        try:
            yield
        finally:
            if manage_service:
                await service.close()

    streams = service.hub.routes(keys.verify_ws, service.submit)
    routes: list[BaseRoute] = [*streams, *extra_routes,
                               Route("/{path:path}", dispatch, methods=METHODS)]
    return Starlette(routes=routes, lifespan=lifespan)
