"""The order parsing's faster forms against the plain ones they replaced (issue #15).

`parse_fraction` checks its grammar with str methods, not a regular expression; `units_of`
reads 10**n from a table; `Params.text` skips `_text` for a str. The old forms are kept here
as oracles: every text (valid or not) gets the same answer, or the same refusal and message.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from perpx.bybit.errors import ApiError
from perpx.bybit.params import Params, _text
from perpx.convert import ConversionError, parse_fraction, units_of
from perpx.core.codes import RejectCode

_OLD_PLAIN_DECIMAL = re.compile(r"(-?)([0-9]{1,50})(?:\.([0-9]{0,30}))?", re.ASCII)


def old_parse_fraction(text: str, code: RejectCode) -> tuple[int, int]:
    """`parse_fraction` before issue #15's sixth session: the regular expression."""
    if not isinstance(text, str):
        raise ConversionError(code, f"expected a decimal string, got {type(text).__name__}")
    found = _OLD_PLAIN_DECIMAL.fullmatch(text)
    if found is None:
        raise ConversionError(code, f"not a plain decimal number: {text[:40]!r}")
    sign, whole, fraction = found.groups()
    fraction = fraction or ""
    numerator = int(whole + fraction)
    return (-numerator if sign else numerator), len(fraction)


def old_units_of(text: str, unit: str, code: RejectCode) -> int:
    """`units_of` before: `**` for the scales."""
    value, value_decimals = old_parse_fraction(text, code)
    step, step_decimals = old_parse_fraction(unit, RejectCode.INVALID_PARAMETER)
    count, remainder = divmod(value * 10**step_decimals, step * 10**value_decimals)
    if remainder:
        raise ConversionError(code, f"{text} is not a multiple of {unit}")
    return count


def outcome(call: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", call(*args)
    except ConversionError as bad:
        return "refused", (bad.code, str(bad))
    except ApiError as bad:
        return "api", (bad.code, bad.message, bad.reject)


# Texts near the grammar: digits, signs, points, exponents, blanks, non-ASCII digits, long runs.
_ALPHABET = st.sampled_from(list("0123456789") * 4 + list("-.+e _\n") + ["٣", "²", "０", "\x00"])
NEAR_DECIMALS = st.one_of(
    st.text(_ALPHABET, max_size=12),
    st.text(),
    st.builds(lambda sign, whole, point, fraction: sign + whole + point + fraction,
              st.sampled_from(["", "-", "--", "+"]),
              st.text("0123456789", max_size=55),
              st.sampled_from(["", ".", ".."]),
              st.text("0123456789", max_size=35)),
)
UNITS = st.sampled_from(["1", "0.1", "0.5", "0.001", "0.01", "5", "0.0001", "25", "0.00000001"])


@given(NEAR_DECIMALS)
def test_parse_fraction_matches_the_regular_expression(text: str) -> None:
    for code in (RejectCode.INVALID_PARAMETER, RejectCode.INVALID_PRICE):
        assert outcome(parse_fraction, text, code) == outcome(old_parse_fraction, text, code)


@given(st.one_of(st.none(), st.integers(), st.binary(max_size=4)))
def test_parse_fraction_refuses_what_is_not_a_str_alike(value: Any) -> None:
    code = RejectCode.INVALID_QTY
    assert outcome(parse_fraction, value, code) == outcome(old_parse_fraction, value, code)


@given(NEAR_DECIMALS, UNITS)
def test_units_of_matches_the_plain_formula(text: str, unit: str) -> None:
    code = RejectCode.INVALID_QTY
    assert outcome(units_of, text, unit, code) == outcome(old_units_of, text, unit, code)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4,
                   min_value=-10**6, max_value=10**6), UNITS)
def test_units_of_matches_on_decimals(value: Any, unit: str) -> None:
    text = format(value, "f")
    code = RejectCode.INVALID_PRICE
    assert outcome(units_of, text, unit, code) == outcome(old_units_of, text, unit, code)


def old_text(params: Params, name: str, default: str = "", *, required: bool = False) -> str:
    """`Params.text` before: `_text` for every value."""
    value = _text(params.data.get(name))
    if value is None or value == "":
        if required:
            raise ApiError(10001, f"params error: {name} is required")
        return default
    if len(value) > 200:
        raise ApiError(10001, f"params error: {name} too long")
    return value


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=210),
                        st.lists(st.integers(), max_size=2), st.dictionaries(st.text(), st.none(),
                                                                              max_size=1))


@given(JSON_VALUES, st.booleans(), st.sampled_from(["", "x"]))
def test_params_text_matches_the_plain_form(value: Any, required: bool, default: str) -> None:
    params = Params({"qty": value})
    for name in ("qty", "absent"):
        new = outcome(functools.partial(params.text, required=required), name, default)
        old = outcome(functools.partial(old_text, params, required=required), name, default)
        assert new == old
