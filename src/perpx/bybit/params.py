"""Request parameters: typed reads with Bybit's 10001 errors.

Numbers may arrive as JSON numbers or strings (pybit passes the user's ints and floats
through); they are turned into decimal text and converted by `perpx.convert` only, never
through float arithmetic. Unknown parameters are ignored, as Bybit does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from perpx.bybit.errors import ApiError, params_error
from perpx.core.codes import RejectCode
from perpx.core.instruments import ContractType, InstrumentSpec
from perpx.store.history import decode_cursor

DAY_MS = 86_400_000
LINEAR = "linear"
INVERSE = "inverse"
# The categories perpx lists contracts in; the others are answered with an empty list
# (ccxt's load_markets and watch_positions ask for them, and an error would abort the call).
LISTED_CATEGORIES = frozenset({LINEAR, INVERSE})
OTHER_CATEGORIES = frozenset({"spot", "option"})
_INVERSE_TYPES = frozenset({ContractType.INVERSE_PERPETUAL, ContractType.INVERSE_FUTURES})


def category_of(spec: InstrumentSpec) -> str:
    """Return Bybit's `category` of an instrument: `inverse` for coin-settled contracts.

    Bybit's enum: `linear` covers USDT and USDC perpetuals and futures, `inverse` the inverse
    perpetuals and futures (next-mechanics §0).
    """
    return INVERSE if spec.contract_type in _INVERSE_TYPES else LINEAR


def in_category(specs: Mapping[str, InstrumentSpec],
                category: str) -> dict[str, InstrumentSpec]:
    """Return the instruments of `category` (none for a category perpx does not list).

    A request names its symbol within its category: looked up here, a linear symbol asked for
    with `category=inverse` (or the other way round) is unknown, Bybit's 10001 "symbol
    invalid", as any symbol the category does not list.
    """
    return {symbol: spec for symbol, spec in specs.items() if category_of(spec) == category}


class CategoryView(Mapping[str, InstrumentSpec]):
    """The instruments of one category, read through to the live table (`in_category`'s).

    What `in_category` copies out (O(instruments) per request) this answers per lookup,
    from the table as it is at that moment: an instrument listed or replaced in place is
    seen at once, so nothing can go stale. For a request's synchronous reads (an order's
    symbol, cancel-all's symbols): a reader that holds the mapping across an await or hands
    it to a thread takes `in_category`'s copy instead. `test_params_shortcuts.py` holds the
    two equal.
    """

    __slots__ = ("category", "specs")

    def __init__(self, specs: Mapping[str, InstrumentSpec], category: str) -> None:
        self.specs = specs
        self.category = category

    def get(self, symbol: str, default: Any = None) -> Any:
        """Return the instrument `symbol` if it is of this category, else `default`."""
        spec = self.specs.get(symbol)
        if spec is None or category_of(spec) != self.category:
            return default
        return spec

    def __getitem__(self, symbol: str) -> InstrumentSpec:
        spec = self.get(symbol)
        if spec is None:
            raise KeyError(symbol)
        return spec  # type: ignore[no-any-return]

    def __contains__(self, symbol: object) -> bool:
        return type(symbol) is str and self.get(symbol) is not None

    def __iter__(self) -> Iterator[str]:
        category = self.category
        return iter([symbol for symbol, spec in self.specs.items()
                     if category_of(spec) == category])

    def __len__(self) -> int:
        return sum(1 for _ in self)


def request_specs(specs: Mapping[str, InstrumentSpec],
                  category: str) -> Mapping[str, InstrumentSpec]:
    """Return the instruments a read of `category` may name: its category's (`in_category`).

    A category perpx does not list (spot, option) keeps every symbol nameable: its answer is
    an empty list whatever the symbol, as it was before perpx listed inverse contracts.
    """
    return in_category(specs, category) if category in LISTED_CATEGORIES else specs


def _text(value: Any) -> str | None:
    """Return the decimal text of a JSON value; None for null."""
    if type(value) is str:  # nearly every parameter: before the four isinstance checks
        return value
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


# The raw values a parameter is absent as (`Params.__contains__`, `Params.text`).
_ABSENT = (None, "")
MAX_TEXT = 200  # the longest text a parameter may be (`Params.text`)


class Params:
    """The parameters of one request (query or JSON body)."""

    __slots__ = ("data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def __contains__(self, name: str) -> bool:
        return self.data.get(name) not in _ABSENT

    def text(self, name: str, default: str = "", *, required: bool = False) -> str:
        """Return a string parameter ('' when absent unless required)."""
        value = self.data.get(name)
        if type(value) is not str:  # nearly every parameter is: no `_text` call for it
            value = _text(value)
        if value is None or value == "":
            if required:
                raise params_error(f"{name} is required")
            return default
        if len(value) > MAX_TEXT:
            raise params_error(f"{name} too long")
        return value

    def choice(self, name: str, choices: Mapping[str, Any], default: Any = None, *,
               required: bool = False) -> Any:
        """Return a parameter that must be one of `choices` (keys); returns the mapped value."""
        value = self.data.get(name)
        # The common cases answered before `text` is called (a frame with keywords, per
        # parameter; issue #15): a string key of `choices` that `text` returns as it is,
        # and an optional parameter left out. `test_params_shortcuts.py` holds the result
        # to the general reading below for any value.
        if type(value) is str and value in choices and value and len(value) <= MAX_TEXT:
            return choices[value]
        if value is None and not required:
            return default
        return self._choice(name, choices, default, required)

    def _choice(self, name: str, choices: Mapping[str, Any], default: Any,
                required: bool) -> Any:
        """`choice`'s general reading, through `text`."""
        value = self.text(name, required=required)
        if value == "":
            return default
        if value not in choices:
            raise params_error(f"{name} invalid")
        return choices[value]

    def integer(self, name: str, default: int | None = None, *, low: int | None = None,
                high: int | None = None, required: bool = False) -> int | None:
        """Return an integer parameter within [low, high]."""
        # An optional parameter left out, answered before `text` is called (as `choice`).
        if not required and self.data.get(name) in _ABSENT:
            return default
        return self._integer(name, default, low, high, required)

    def _integer(self, name: str, default: int | None, low: int | None, high: int | None,
                 required: bool) -> int | None:
        """`integer`'s general reading, through `text`."""
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
        """`category`: 'linear', 'inverse', or another Bybit category (an empty list)."""
        value = self.data.get("category")
        if type(value) is str and value in LISTED_CATEGORIES:  # as `text` returns it
            return value
        return self._category(required, default)

    def _category(self, required: bool, default: str) -> str:
        """`category`'s general reading, through `text`."""
        value = self.text("category", required=required) or default
        if value not in LISTED_CATEGORIES and value not in OTHER_CATEGORIES:
            raise params_error("category invalid")
        return value

    def spec(self, specs: Mapping[str, InstrumentSpec], *,
             required: bool = True) -> InstrumentSpec | None:
        """`symbol` as an instrument; an unknown symbol is Bybit's 10001 'symbol invalid'."""
        symbol = self.data.get("symbol")
        # A string `text` returns as it is (the common case) is looked up without its call.
        if type(symbol) is not str or not 0 < len(symbol) <= MAX_TEXT:
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
