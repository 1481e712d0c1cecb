"""Authentication of signed REST requests (spec bybit-v5-api.md §1.2-§1.4).

The signature is HMAC-SHA256 over `timestamp + api_key + recv_window + payload`, where the
payload is the raw query string (GET) or the raw body bytes (POST) exactly as received: the
clients serialise differently and both are valid, so nothing is ever re-serialised here.
"""

from __future__ import annotations

from collections.abc import Mapping

from perpx.api.envelope import ApiError
from perpx.api.keys import ApiKey, KeyStore

DEFAULT_RECV_WINDOW = 5000
FUTURE_TOLERANCE_MS = 1000  # Bybit: timestamp < server_time + 1000


def _integer(text: str | None) -> int | None:
    if text is None or not text.isascii() or not text.strip().isdigit() or len(text) > 19:
        return None
    return int(text)


def authenticate(keys: KeyStore, headers: Mapping[str, str], payload: bytes,
                 now_ms: int) -> ApiKey:
    """Return the key of a correctly signed, timely request; raise ApiError otherwise."""
    api_key = headers.get("x-bapi-api-key")
    if not api_key:
        raise ApiError(10003, "API key is invalid.")
    timestamp_text = headers.get("x-bapi-timestamp")
    window_text = headers.get("x-bapi-recv-window")
    timestamp = _integer(timestamp_text)
    window = DEFAULT_RECV_WINDOW if window_text is None else _integer(window_text)
    if timestamp is None or window is None or \
            not now_ms - window <= timestamp < now_ms + FUTURE_TOLERANCE_MS:
        raise ApiError(10002, "invalid request, please check your server timestamp or "
                              f"recv_window param. req_timestamp[{timestamp_text}],"
                              f"server_timestamp[{now_ms}],recv_window[{window_text}]")
    key = keys.get(api_key)
    if key is None:
        raise ApiError(10003, "API key is invalid.")
    signature = headers.get("x-bapi-sign", "")
    origin = f"{timestamp_text}{api_key}{window_text if window_text is not None else ''}"
    if not signature or not key.verify(origin.encode() + payload, signature):
        shown = (origin.encode() + payload)[:2000].decode("utf-8", "replace")
        raise ApiError(10004, "Error sign, please check your signature generation "
                              f"algorithm: origin_string[{shown}]")
    return key
