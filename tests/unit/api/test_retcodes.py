"""Core RejectCodes map to the Bybit V5 retCode clients key on (spec bybit-v5-api.md §5.8)."""

from __future__ import annotations

import pytest

from perpx.bybit.retcodes import OK, bybit_code
from perpx.core.codes import RejectCode


def test_ok_is_zero() -> None:
    # Act / Assert
    assert OK == 0


@pytest.mark.parametrize("code", list(RejectCode), ids=[code.name for code in RejectCode])
def test_every_reject_code_maps_to_a_nonzero_retcode_and_a_message(code: RejectCode) -> None:
    # Act
    ret_code, ret_msg = bybit_code(code)

    # Assert
    assert isinstance(ret_code, int) and ret_code > 0
    assert isinstance(ret_msg, str) and ret_msg.strip()


@pytest.mark.parametrize(
    ("code", "ret_code", "ret_msg"),
    [
        (RejectCode.ORDER_NOT_FOUND, 110001, "Order does not exist"),
        (RejectCode.DUPLICATE_ORDER_LINK_ID, 110072, "OrderLinkedID is duplicate"),
        (RejectCode.NOTIONAL_BELOW_MIN, 110094, "Order notional value below the lower limit"),
        (RejectCode.PRICE_OUT_OF_RANGE, 110003, "Order price is out of permissible range"),
        (RejectCode.PRICE_OUT_OF_BAND, 110003, "Order price is out of permissible range"),
        (
            RejectCode.AMEND_QTY_NOT_ABOVE_FILLED,
            110064,
            "The modified contract quantity cannot be less than or equal to the filled quantity.",
        ),
        (
            RejectCode.TOO_MANY_ACTIVE_ORDERS,
            110020,
            "Not allowed to have more than 500 active orders.",
        ),
        (RejectCode.ORDER_ALREADY_FINAL, 110008, "The order has been completed or cancelled."),
        (RejectCode.INSUFFICIENT_AVAILABLE_BALANCE, 110007, "ab not enough for new order"),
        (RejectCode.INSUFFICIENT_WALLET_BALANCE, 110004, "Wallet balance is insufficient"),
        (RejectCode.REDUCE_ONLY_NOT_SATISFIED, 110017, "Reduce-only rule not satisfied"),
        (
            RejectCode.WOULD_TRIGGER_LIQUIDATION,
            110040,
            "The order will trigger a forced liquidation, please re-submit the order.",
        ),
        (
            RejectCode.TOO_MANY_CONDITIONAL_ORDERS,
            110009,
            "The number of stop orders exceeds the maximum allowable limit",
        ),
    ],
    ids=[
        "an unknown order is 110001",
        "a duplicate orderLinkId is 110072",
        "a notional below minNotionalValue is 110094",
        "a price outside minPrice..maxPrice is 110003",
        "a price outside the price band is 110003",
        "an amend qty not above the filled qty is 110064",
        "a 501st active order is 110020",
        "an order already filled or cancelled is 110008",
        "an order costing more than available balance is 110007",
        "an insufficient wallet balance is 110004",
        "a reduce-only order that cannot reduce is 110017",
        "an order that would trigger liquidation is 110040",
        "an 11th conditional order is 110009",
    ],
)
def test_specific_rejections_use_bybit_retcode_and_message(
    code: RejectCode, ret_code: int, ret_msg: str
) -> None:
    # Act / Assert
    assert bybit_code(code) == (ret_code, ret_msg)


@pytest.mark.parametrize(
    ("code", "message_part"),
    [
        (RejectCode.UNKNOWN_SYMBOL, "symbol invalid"),
        (RejectCode.INVALID_QTY, "Qty invalid"),
        (RejectCode.QTY_BELOW_MIN, "minimum limit allowed: too small"),
        (RejectCode.QTY_ABOVE_MAX, "maximum limit allowed: too large"),
        (RejectCode.INVALID_PRICE, "price invalid"),
        (RejectCode.POSITION_IDX_MISMATCH, "position idx not match position mode"),
        (RejectCode.INVALID_ORDER_LINK_ID, "params error"),
        (RejectCode.INVALID_PARAMETER, "params error"),
        (RejectCode.INVALID_AMOUNT, "params error"),
        (RejectCode.INVALID_TPSL_PRICE, "TP/SL price invalid"),
        (RejectCode.TPSL_WITH_REDUCE_ONLY, "reduce-only"),
        (RejectCode.NO_POSITION_FOR_TRADING_STOP, "zero position"),
    ],
    ids=[
        "an unknown symbol",
        "an off-grid qty",
        "a qty below minOrderQty",
        "a qty above maxOrderQty",
        "an off-grid price",
        "a positionIdx that does not match the position mode",
        "a malformed orderLinkId",
        "any other bad parameter",
        "a malformed amount",
        "a TP or SL on the wrong side of its base price",
        "TP/SL on a reduce-only order",
        "trading-stop without a position",
    ],
)
def test_parameter_errors_are_10001_with_bybit_wording(code: RejectCode, message_part: str) -> None:
    # Act
    ret_code, ret_msg = bybit_code(code)

    # Assert
    assert ret_code == 10001
    assert message_part in ret_msg


@pytest.mark.parametrize(
    ("code", "ret_code", "word"),
    [
        (RejectCode.TRIGGER_NOT_ABOVE_PRICE, 110092, "expect Rising"),
        (RejectCode.TRIGGER_NOT_BELOW_PRICE, 110093, "expect Falling"),
    ],
    ids=["a rising trigger at or under the price is 110092",
         "a falling trigger at or over the price is 110093"],
)
def test_trigger_direction_errors_use_bybit_codes(code: RejectCode, ret_code: int,
                                                  word: str) -> None:
    # Act
    got_code, message = bybit_code(code)

    # Assert
    assert got_code == ret_code and word in message
