"""Bybit's response envelope: HTTP 200 and `{retCode, retMsg, result, retExtInfo, time}` always.

Every reply, errors included, is a JSON object with an integer `retCode` (pybit treats any
non-200 status as a transport failure and never reads `retCode`). `ApiError` carries a
Bybit code and message from anywhere in a handler to the envelope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from perpx.core.codes import RejectCode

_encoder = msgspec.json.Encoder()


class ApiError(Exception):
    """A request refused with Bybit's `retCode` and `retMsg`; nothing changed.

    `reject` names the core's reason where there is one (a bad quantity, an unknown symbol),
    for callers that speak the core's codes (`perpx.Exchange`).
    """

    def __init__(self, code: int, message: str, result: dict[str, Any] | None = None,
                 ext: dict[str, Any] | None = None, *, reject: RejectCode | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.reject = reject
        self.result = result if result is not None else {}
        self.ext = ext if ext is not None else {}


def envelope(code: int, message: str, result: Any, time_ms: int,
             ext: dict[str, Any] | None = None) -> bytes:
    """Encode one reply."""
    return _encoder.encode({"retCode": code, "retMsg": message, "result": result,
                            "retExtInfo": ext if ext is not None else {}, "time": time_ms})


def params_error(detail: str) -> ApiError:
    """Bybit's generic 10001 parameter error."""
    return ApiError(10001, f"params error: {detail}")
