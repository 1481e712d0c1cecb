"""The order link id's check without a regular expression refuses exactly what the regex did.

The oracle is Bybit's grammar as the check once read it: `[A-Za-z0-9_-]{1,36}`, a full match.
"""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perpx.core.codes import RejectCode, Rejected
from perpx.core.orders.rules import check_order_link_id

ORACLE = re.compile(r"[A-Za-z0-9_-]{1,36}")
NEAR = st.text(alphabet=string.ascii_letters + string.digits + "_-. /é٣\n\x00", max_size=40)


def _verdict(link: str, taken: dict[int, dict[str, int]]) -> RejectCode | None:
    try:
        check_order_link_id(link, 7, taken)
    except Rejected as refusal:
        return refusal.code
    return None


@given(st.one_of(NEAR, st.text(max_size=40)), st.booleans())
def test_the_check_follows_the_grammar(link: str, taken_already: bool) -> None:
    taken = {7: {link: 1}} if taken_already else {}
    if not link:
        expected = None
    elif not ORACLE.fullmatch(link):
        expected = RejectCode.INVALID_ORDER_LINK_ID
    else:
        expected = RejectCode.DUPLICATE_ORDER_LINK_ID if taken_already else None
    assert _verdict(link, taken) == expected


@pytest.mark.parametrize("length", [35, 36, 37])
def test_the_length_edge(length: int) -> None:
    link = "a" * length
    assert _verdict(link, {}) == (None if length <= 36 else RejectCode.INVALID_ORDER_LINK_ID)


@pytest.mark.parametrize(
    "link", ["-", "_", "-_-", "a-b_C9", "é", "a b", "a\n", "٣", "ａ", "A" * 36])
def test_named_edges(link: str) -> None:
    expected = None if ORACLE.fullmatch(link) else RejectCode.INVALID_ORDER_LINK_ID
    assert _verdict(link, {}) == expected


def test_every_character_near_the_ranges() -> None:
    """Each code point below 384 (the range ends and their neighbours, Latin-1 and beyond),
    alone and inside an otherwise valid id, as the expression says: the check compares code
    points against the ranges' ends."""
    for code in range(384):
        for link in (chr(code), "a" + chr(code) + "9"):
            expected = None if ORACLE.fullmatch(link) else RejectCode.INVALID_ORDER_LINK_ID
            assert _verdict(link, {}) == expected, code
