"""`ApiError`: a request refused with Bybit's `retCode` and `retMsg`, from anywhere to its reply.

The translator and the parameter readers raise it; the API turns it into an envelope
(`perpx.api.envelope`) and `perpx.Exchange` into a `Result`, so it lives below both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perpx.core.codes import RejectCode


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


def params_error(detail: str) -> ApiError:
    """Bybit's generic 10001 parameter error."""
    return ApiError(10001, f"params error: {detail}")
