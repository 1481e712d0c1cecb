"""Authentication of signed REST requests (spec bybit-v5-api.md §1.2-§1.4) and WebSocket auth.

The signature is HMAC-SHA256 over `timestamp + api_key + recv_window + payload`, where the
payload is the raw query string (GET) or the raw body bytes (POST) exactly as received: the
clients serialise differently and both are valid, so nothing is ever re-serialised here.

A captured request may be replayed only within its window, so the window is bounded
(`AuthLimits`): `X-BAPI-RECV-WINDOW` at most `max_recv_window_ms`, and a WebSocket auth's
`expires` at most `max_ws_expires_ahead_ms` after now (pybit signs now + 1 s, ccxt.pro
now + 10 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from perpx.api.keys import ApiKey, KeyStore
from perpx.api.permissions import INVALID_KEY, Access, KeyLookup, authorize
from perpx.bybit.errors import ApiError

DEFAULT_RECV_WINDOW = 5000
FUTURE_TOLERANCE_MS = 1000  # Bybit: timestamp < server_time + 1000
# The request headers a signed request is checked by (lowercase, as HTTP servers give them):
# all `authenticate` reads, so all a server needs to hand it.
API_KEY = "x-bapi-api-key"
TIMESTAMP = "x-bapi-timestamp"
RECV_WINDOW = "x-bapi-recv-window"
SIGN = "x-bapi-sign"
SIGNED_HEADERS = (API_KEY, TIMESTAMP, RECV_WINDOW, SIGN)


@dataclass(frozen=True, slots=True)
class AuthLimits:
    """How long a signed request or a WebSocket auth frame may be replayed (ms)."""

    max_recv_window_ms: int = 60_000
    max_ws_expires_ahead_ms: int = 300_000

    def __post_init__(self) -> None:
        if self.max_recv_window_ms <= 0 or self.max_ws_expires_ahead_ms <= 0:
            raise ValueError("AuthLimits: the windows must be positive")


DEFAULT_LIMITS = AuthLimits()


def _integer(text: str | None) -> int | None:
    if text is None or not text.isascii() or not text.strip().isdigit() or len(text) > 19:
        return None
    return int(text)


def authenticate(keys: KeyStore, headers: Mapping[str, str], payload: bytes,
                 now_ms: int, limits: AuthLimits = DEFAULT_LIMITS) -> ApiKey:
    """Return the key of a correctly signed, timely request; raise ApiError otherwise."""
    api_key = headers.get(API_KEY)
    if not api_key:
        raise ApiError(10003, INVALID_KEY)
    timestamp_text = headers.get(TIMESTAMP)
    window_text = headers.get(RECV_WINDOW)
    timestamp = _integer(timestamp_text)
    window = DEFAULT_RECV_WINDOW if window_text is None else _integer(window_text)
    if timestamp is None or window is None or window > limits.max_recv_window_ms or \
            not now_ms - window <= timestamp < now_ms + FUTURE_TOLERANCE_MS:
        raise ApiError(10002, "invalid request, please check your server timestamp or "
                              f"recv_window param. req_timestamp[{timestamp_text}],"
                              f"server_timestamp[{now_ms}],recv_window[{window_text}]")
    key = keys.get(api_key)
    if key is None:
        raise ApiError(10003, INVALID_KEY)
    signature = headers.get(SIGN, "")
    origin = f"{timestamp_text}{api_key}{window_text if window_text is not None else ''}"
    if not signature or not key.verify(origin.encode() + payload, signature):
        shown = (origin.encode() + payload)[:2000].decode("utf-8", "replace")
        raise ApiError(10004, "Error sign, please check your signature generation "
                              f"algorithm: origin_string[{shown}]")
    return key


def authenticate_ws(keys: KeyLookup, api_key: str, expires_ms: int, signature: str,
                    now_ms: int, limits: AuthLimits = DEFAULT_LIMITS) -> ApiKey:
    """Check a WebSocket auth frame (§1.5): the key of a valid one, else ApiError.

    The signature is the HMAC of ``"GET/realtime" + str(expires)``; `expires` must be in the
    future, and no further than the limit.
    """
    if expires_ms <= now_ms:
        raise ApiError(10002, "error:auth expired")
    if expires_ms > now_ms + limits.max_ws_expires_ahead_ms:
        raise ApiError(10002, "error:expires too far in the future, at most "
                              f"{limits.max_ws_expires_ahead_ms} ms ahead")
    key = authorize(keys, api_key, Access.READ)
    if not key.verify(f"GET/realtime{expires_ms}".encode(), signature):
        raise ApiError(10004, "error:signature verification failed")
    return key
