"""The shortcuts of `Params` and `CategoryView` answer exactly as the general readings.

`Params.choice`, `integer`, `category` and `spec` answer their common cases (a string taken
as it is, an optional parameter left out) before `Params.text` is called (issue #15); the
general readings (`_choice`, `_integer`, `_category`, `text`) answer everything else. For any
JSON value here both give the same value or the same refusal. `CategoryView` (what
`translate.category_specs` returns) reads through to the live table what `in_category`
copies out of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.bybit import translate
from perpx.bybit.errors import ApiError
from perpx.bybit.params import MAX_TEXT, CategoryView, Params, in_category
from perpx.core.instruments import InstrumentSpec
from perpx.instruments import bundled_instruments

_WORDS = ["Buy", "Sell", "Limit", "GTC", "1", "0", "linear", "inverse", "spot", "option",
          "BTCUSDT", "BTCUSD", "ETHUSD", "x" * MAX_TEXT, "y" * (MAX_TEXT + 1), " ", "-2", "2"]
# What a JSON body or a query string may hold for one parameter.
_VALUES = st.one_of(st.none(), st.sampled_from(_WORDS), st.just(""), st.text(max_size=6),
                    st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False),
                    st.lists(st.integers(), max_size=2),
                    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
_CHOICES = st.dictionaries(st.sampled_from([*_WORDS, ""]), st.integers(0, 3), max_size=6)
_SPECS = {spec.symbol: spec for spec in bundled_instruments()}


def _outcome(read: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "value", read()
    except ApiError as error:
        return "refused", (error.code, error.message, error.reject)


def _params(value: Any, present: bool) -> Params:
    return Params({"p": value, "symbol": value, "category": value} if present else {})


@settings(max_examples=500, deadline=None)
@given(_VALUES, st.booleans(), _CHOICES, st.sampled_from([None, 7]), st.booleans())
def test_choice_answers_as_its_general_reading(value: Any, present: bool,
                                               choices: dict[str, int], default: Any,
                                               required: bool) -> None:
    params = _params(value, present)
    assert _outcome(lambda: params.choice("p", choices, default, required=required)) == \
        _outcome(lambda: params._choice("p", choices, default, required))


@settings(max_examples=500, deadline=None)
@given(_VALUES, st.booleans(), st.sampled_from([None, 0, 5]), st.sampled_from([None, 0, 1]),
       st.sampled_from([None, 2, 9]), st.booleans())
def test_integer_answers_as_its_general_reading(value: Any, present: bool, default: int | None,
                                                low: int | None, high: int | None,
                                                required: bool) -> None:
    params = _params(value, present)
    assert _outcome(lambda: params.integer("p", default, low=low, high=high,
                                           required=required)) == \
        _outcome(lambda: params._integer("p", default, low, high, required))


@settings(max_examples=300, deadline=None)
@given(_VALUES, st.booleans(), st.booleans(), st.sampled_from(["linear", "inverse"]))
def test_category_answers_as_its_general_reading(value: Any, present: bool, required: bool,
                                                 default: str) -> None:
    params = _params(value, present)
    assert _outcome(lambda: params.category(required=required, default=default)) == \
        _outcome(lambda: params._category(required, default))


def _spec_through_text(params: Params, specs: dict[str, InstrumentSpec],
                       required: bool) -> InstrumentSpec | None:
    """`Params.spec` as it read before its shortcut: `text`, then the lookup."""
    symbol = params.text("symbol", required=required)
    if symbol == "":
        return None
    spec = specs.get(symbol)
    if spec is None:
        raise ApiError(10001, "params error: symbol invalid")
    return spec


@settings(max_examples=300, deadline=None)
@given(_VALUES, st.booleans(), st.booleans())
def test_spec_answers_as_text_then_lookup(value: Any, present: bool, required: bool) -> None:
    params = _params(value, present)
    fast = _outcome(lambda: params.spec(_SPECS, required=required))
    slow = _outcome(lambda: _spec_through_text(params, _SPECS, required))
    assert fast[0] == slow[0]
    if fast[0] == "value":
        assert fast[1] is slow[1]
    else:
        assert fast[1][:2] == slow[1][:2]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(sorted(_SPECS)), unique=True),
       st.sampled_from(["linear", "inverse"]),
       st.sampled_from([*sorted(_SPECS), "NOPE", ""]))
def test_category_view_reads_as_in_category(symbols: list[str], category: str,
                                            asked: str) -> None:
    specs = {symbol: _SPECS[symbol] for symbol in symbols}
    view = CategoryView(specs, category)
    copied = in_category(specs, category)
    assert list(view) == list(copied) and len(view) == len(copied)
    assert dict(view.items()) == copied
    assert view.get(asked) is copied.get(asked)
    assert (asked in view) == (asked in copied)
    assert view == copied


def test_category_view_sees_an_instrument_replaced_in_place() -> None:
    specs = {symbol: _SPECS[symbol] for symbol in ("BTCUSDT", "BTCUSD")}
    view = translate.category_specs(Params({"category": "linear"}), specs)
    old = specs["BTCUSDT"]
    assert view.get("BTCUSDT") is old and view.get("BTCUSD") is None
    # The same symbol replaced (another tick size), then moved to the other category.
    specs["BTCUSDT"] = dataclasses.replace(old, tick_size="0.5")
    assert view["BTCUSDT"] is specs["BTCUSDT"] and view["BTCUSDT"] is not old
    specs["BTCUSDT"] = _SPECS["BTCUSD"]  # an inverse contract under that name
    assert view.get("BTCUSDT") is None and "BTCUSDT" not in view
    assert dict(view) == in_category(specs, "linear") == {}
    specs["ETHUSDT"] = _SPECS["ETHUSDT"]  # listed after the view was taken
    assert list(view) == ["ETHUSDT"] and view == in_category(specs, "linear")
