"""Map the core's `RejectCode` to Bybit V5 `retCode` and `retMsg` (spec bybit-v5-api.md §5.8).

Bybit numbers stay out of the core; clients key on `retCode`, so each code must map to the
number ccxt and pybit expect for that mistake.
"""

from __future__ import annotations

from perpx.core.codes import RejectCode

OK = 0

_MAP: dict[RejectCode, tuple[int, str]] = {
    RejectCode.UNKNOWN_SYMBOL: (10001, "params error: symbol invalid"),
    RejectCode.INVALID_QTY: (10001, "Qty invalid"),
    RejectCode.QTY_BELOW_MIN: (
        10001, "The number of contracts exceeds minimum limit allowed: too small"),
    RejectCode.QTY_ABOVE_MAX: (
        10001, "The number of contracts exceeds maximum limit allowed: too large"),
    RejectCode.INVALID_PRICE: (10001, "price invalid"),
    RejectCode.PRICE_OUT_OF_RANGE: (110003, "Order price is out of permissible range"),
    RejectCode.PRICE_OUT_OF_BAND: (110003, "Order price is out of permissible range"),
    RejectCode.NOTIONAL_BELOW_MIN: (110094, "Order notional value below the lower limit"),
    RejectCode.POSITION_IDX_MISMATCH: (10001, "position idx not match position mode"),
    RejectCode.INVALID_ORDER_LINK_ID: (10001, "params error: orderLinkId invalid"),
    RejectCode.DUPLICATE_ORDER_LINK_ID: (110072, "OrderLinkedID is duplicate"),
    RejectCode.NOTHING_TO_AMEND: (10001, "order not modified"),
    RejectCode.INVALID_PARAMETER: (10001, "params error"),
    RejectCode.TRIGGER_NOT_ABOVE_PRICE: (
        110092, "expect Rising, but trigger_price <= current price"),
    RejectCode.TRIGGER_NOT_BELOW_PRICE: (
        110093, "expect Falling, but trigger_price >= current price"),
    RejectCode.INVALID_TPSL_PRICE: (10001, "params error: TP/SL price invalid"),
    RejectCode.TPSL_WITH_REDUCE_ONLY: (
        10001, "params error: reduce-only orders cannot carry TP/SL"),
    RejectCode.NO_POSITION_FOR_TRADING_STOP: (10001, "can not set tp/sl/ts for zero position"),
    RejectCode.TOO_MANY_CONDITIONAL_ORDERS: (
        110009, "The number of stop orders exceeds the maximum allowable limit"),
    RejectCode.INSUFFICIENT_AVAILABLE_BALANCE: (110007, "ab not enough for new order"),
    RejectCode.REDUCE_ONLY_NOT_SATISFIED: (110017, "Reduce-only rule not satisfied"),
    RejectCode.RISK_LIMIT_EXCEEDED: (
        110090, "Order placement failed as your position may exceed the max limit"),
    RejectCode.WOULD_TRIGGER_LIQUIDATION: (
        110040, "The order will trigger a forced liquidation, please re-submit the order."),
    RejectCode.LEVERAGE_OUT_OF_RANGE: (10001, "leverage invalid"),
    RejectCode.LEVERAGE_NOT_MODIFIED: (110043, "Set leverage not modified"),
    RejectCode.MARGIN_MODE_SWITCH_REFUSED: (3400045, "Set margin mode failed"),
    RejectCode.POSITION_MODE_SWITCH_REFUSED: (110025, "Position mode is not modified"),
    RejectCode.HEDGE_MODE_UNSUPPORTED: (110029, "Hedge mode is not supported for this symbol"),
    RejectCode.MARGIN_REDUCTION_TOO_LARGE: (110012, "Insufficient available balance"),
    RejectCode.INSUFFICIENT_WALLET_BALANCE: (110004, "Wallet balance is insufficient"),
    RejectCode.ORDER_NOT_FOUND: (110001, "Order does not exist"),
    RejectCode.AMEND_QTY_NOT_ABOVE_FILLED: (
        110064,
        "The modified contract quantity cannot be less than or equal to the filled quantity."),
    RejectCode.TOO_MANY_ACTIVE_ORDERS: (110020, "Not allowed to have more than 500 active orders."),
    RejectCode.ORDER_ALREADY_FINAL: (110008, "The order has been completed or cancelled."),
    RejectCode.NO_REFERENCE_PRICE: (10001, "params error: no market price"),
    RejectCode.UNKNOWN_ACCOUNT: (10003, "API key is invalid."),
    RejectCode.INVALID_AMOUNT: (10001, "params error: amount invalid"),
    RejectCode.UNKNOWN_COIN: (10001, "params error: coin invalid"),
    RejectCode.DUPLICATE_INSTRUMENT: (10001, "params error: duplicate instrument"),
    RejectCode.SEQUENCE_OUT_OF_ORDER: (10016, "Internal system error."),
    # Bybit V5 error list: 110074 "This contract is not live"; 110042, in the V3 derivatives
    # list, refuses all but reducing orders in the pre-delivery state.
    RejectCode.CONTRACT_NOT_LIVE: (110074, "This contract is not live"),
    RejectCode.CLOSE_ONLY_BEFORE_DELIVERY: (
        110042, "Currently in pre-delivery status, only position reduction is allowed"),
    RejectCode.INVALID_INSTRUMENT: (10001, "params error: instrument invalid"),
    # Multi-collateral and portfolio margin (next-mechanics §4.4, §5.4); Bybit's own numbers
    # for these refusals are not in the documents read, so the generic ones answer.
    RejectCode.COLLATERAL_SWITCH_REFUSED: (
        110007, "Insufficient available balance to switch the collateral off"),
    RejectCode.PM_TRIAL_MM_OVER_EQUITY: (110007, "CancelByPmTrialMmOverEquity"),
    RejectCode.COLLATERAL_NOT_SWITCHABLE: (10001, "params error: coin cannot be switched off"),
    RejectCode.REPAY_WINDOW_CLOSED: (
        10001, "Repayment is unavailable between 04:00 and 05:30 of each hour"),
    RejectCode.NOTHING_TO_REPAY: (10001, "params error: no liability to repay"),
}


def bybit_code(code: RejectCode) -> tuple[int, str]:
    """Return Bybit's (retCode, retMsg) for a core rejection."""
    return _MAP[code]
