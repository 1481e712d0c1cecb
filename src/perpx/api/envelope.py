"""Bybit's response envelope: HTTP 200 and `{retCode, retMsg, result, retExtInfo, time}` always.

Every reply, errors included, is a JSON object with an integer `retCode` (pybit treats any
non-200 status as a transport failure and never reads `retCode`). `perpx.bybit.errors.ApiError`
carries a Bybit code and message from anywhere in a handler to the envelope.
"""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()


def envelope(code: int, message: str, result: Any, time_ms: int,
             ext: dict[str, Any] | None = None) -> bytes:
    """Encode one reply."""
    return _encoder.encode({"retCode": code, "retMsg": message, "result": result,
                            "retExtInfo": ext if ext is not None else {}, "time": time_ms})
