"""Request parameters: typed reads with Bybit's 10001 errors.

Numbers may arrive as JSON numbers or strings (pybit passes the user's ints and floats
through); they are turned into decimal text and converted by `perpx.convert` only, never
through float arithmetic. Unknown parameters are ignored, as Bybit does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perpx.bybit.errors import ApiError, params_error
from perpx.core.codes import RejectCode
from perpx.core.instruments import InstrumentSpec
from perpx.store.history import decode_cursor

DAY_MS = 86_400_000
LINEAR = "linear"
OTHER_CATEGORIES = frozenset({"spot", "inverse", "option"})


def _text(value: Any) -> str | None:
    """Return the decimal text of a JSON value; None for null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # shortest round-trip text: 0.01 -> "0.01"
    if isinstance(value, str):
        return value
    raise params_error("value must be a string or a number")


class Params:
    """The parameters of one request (query or JSON body)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def __contains__(self, name: str) -> bool:
        return self.data.get(name) not in (None, "")

    def text(self, name: str, default: str = "", *, required: bool = False) -> str:
        """Return a string parameter ('' when absent unless required)."""
        value = _text(self.data.get(name))
        if value is None or value == "":
            if required:
                raise params_error(f"{name} is required")
            return default
        if len(value) > 200:
            raise params_error(f"{name} too long")
        return value

    def choice(self, name: str, choices: Mapping[str, Any], default: Any = None, *,
               required: bool = False) -> Any:
        """Return a parameter that must be one of `choices` (keys); returns the mapped value."""
        value = self.text(name, required=required)
        if value == "":
            return default
        if value not in choices:
            raise params_error(f"{name} invalid")
        return choices[value]

    def integer(self, name: str, default: int | None = None, *, low: int | None = None,
                high: int | None = None, required: bool = False) -> int | None:
        """Return an integer parameter within [low, high]."""
        value = self.text(name, required=required)
        if value == "":
            return default
        body = value[1:] if value.startswith("-") else value
        if not body.isascii() or not body.isdigit() or len(body) > 18:
            raise params_error(f"{name} invalid")
        number = int(value)
        if (low is not None and number < low) or (high is not None and number > high):
            raise params_error(f"{name} out of range")
        return number

    def flag(self, name: str, default: bool = False) -> bool:
        """Return a boolean: JSON true/false, "true"/"false" or 0/1."""
        value = self.data.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        text = _text(value)
        if text in ("true", "True", "1"):
            return True
        if text in ("false", "False", "0"):
            return False
        raise params_error(f"{name} invalid")

    def limit(self, default: int, most: int) -> int:
        """Return the `limit` parameter in [1, most]."""
        value = self.integer("limit", default, low=1, high=most)
        assert value is not None
        return value

    def cursor(self) -> str:
        """`cursor` of a history page, '' when absent; one this store did not issue is refused.

        Checked before anything is read, so a bad cursor fails the same way for every category.
        """
        cursor = self.text("cursor")
        if cursor:
            decode_cursor(cursor)
        return cursor

    def category(self, *, required: bool = True, default: str = LINEAR) -> str:
        """`category`: 'linear', or another Bybit category (answered with an empty list)."""
        value = self.text("category", required=required) or default
        if value != LINEAR and value not in OTHER_CATEGORIES:
            raise params_error("category invalid")
        return value

    def spec(self, specs: Mapping[str, InstrumentSpec], *,
             required: bool = True) -> InstrumentSpec | None:
        """`symbol` as an instrument; an unknown symbol is Bybit's 10001 'symbol invalid'."""
        symbol = self.text("symbol", required=required)
        if symbol == "":
            return None
        spec = specs.get(symbol)
        if spec is None:
            raise ApiError(10001, "params error: symbol invalid", reject=RejectCode.UNKNOWN_SYMBOL)
        return spec

    def window(self, now_ms: int, days: int = 7, start_name: str = "startTime",
               end_name: str = "endTime") -> tuple[int, int]:
        """Bybit's history window: default the last `days`; both ends at most `days` apart."""
        start = self.integer(start_name, low=0)
        end = self.integer(end_name, low=0)
        span = days * DAY_MS
        if start is None and end is None:
            return now_ms - span, now_ms
        if start is None:
            assert end is not None
            return end - span, end
        if end is None:
            return start, start + span
        if end < start or end - start > span:
            raise params_error(f"{start_name} and {end_name} must be at most {days} days apart")
        return start, end
