"""Why a command was refused: stable numbers grouped by subsystem, never renumbered or reused.

1xxx instrument and parameters, 2xxx risk and margin, 3xxx book and matching, 4xxx account,
5xxx admin. The mapping to Bybit's retCode and retMsg lives in `perpx.api.retcodes`.
"""

from __future__ import annotations

from enum import IntEnum


class RejectCode(IntEnum):
    """A user mistake, answered with a rejection event; the engine's state is unchanged."""

    # 1xxx: instrument and parameters
    UNKNOWN_SYMBOL = 1001
    INVALID_QTY = 1002
    QTY_BELOW_MIN = 1003
    QTY_ABOVE_MAX = 1004
    INVALID_PRICE = 1005
    PRICE_OUT_OF_RANGE = 1006
    NOTIONAL_BELOW_MIN = 1007
    POSITION_IDX_MISMATCH = 1008
    INVALID_ORDER_LINK_ID = 1009
    DUPLICATE_ORDER_LINK_ID = 1010
    NOTHING_TO_AMEND = 1011
    INVALID_PARAMETER = 1012
    PRICE_OUT_OF_BAND = 1013
    TRIGGER_NOT_ABOVE_PRICE = 1014  # triggerDirection 1 with the trigger at or under the price
    TRIGGER_NOT_BELOW_PRICE = 1015  # triggerDirection 2 with the trigger at or over the price
    INVALID_TPSL_PRICE = 1016  # TP/SL/trailing on the wrong side of its base price
    TPSL_WITH_REDUCE_ONLY = 1017
    CONTRACT_NOT_LIVE = 1018  # a dated future that has delivered (or is delivering)
    CLOSE_ONLY_BEFORE_DELIVERY = 1019  # an opening order in a future's close-only window

    # 2xxx: risk and margin
    INSUFFICIENT_AVAILABLE_BALANCE = 2001
    REDUCE_ONLY_NOT_SATISFIED = 2002
    RISK_LIMIT_EXCEEDED = 2003
    WOULD_TRIGGER_LIQUIDATION = 2004
    LEVERAGE_OUT_OF_RANGE = 2005
    LEVERAGE_NOT_MODIFIED = 2006
    MARGIN_MODE_SWITCH_REFUSED = 2007
    POSITION_MODE_SWITCH_REFUSED = 2008
    MARGIN_REDUCTION_TOO_LARGE = 2009
    INSUFFICIENT_WALLET_BALANCE = 2010
    NO_POSITION_FOR_TRADING_STOP = 2011
    HEDGE_MODE_UNSUPPORTED = 2012  # inverse and USDC contracts are one-way only (UTA 2.0)
    COLLATERAL_SWITCH_REFUSED = 2013  # switching a coin off would leave too little margin
    PM_TRIAL_MM_OVER_EQUITY = 2014  # portfolio margin: the order's trial MM exceeds equity

    # 3xxx: book and matching
    ORDER_NOT_FOUND = 3001
    AMEND_QTY_NOT_ABOVE_FILLED = 3002
    TOO_MANY_ACTIVE_ORDERS = 3003
    ORDER_ALREADY_FINAL = 3004
    NO_REFERENCE_PRICE = 3005
    TOO_MANY_CONDITIONAL_ORDERS = 3006

    # 4xxx: account
    UNKNOWN_ACCOUNT = 4001
    INVALID_AMOUNT = 4002
    UNKNOWN_COIN = 4003
    COLLATERAL_NOT_SWITCHABLE = 4004  # USDT and USDC are always collateral (§4.2)
    REPAY_WINDOW_CLOSED = 4005  # hh:04:00-hh:05:30, while interest is computed (§7 N18)
    NOTHING_TO_REPAY = 4006

    # 5xxx: admin
    DUPLICATE_INSTRUMENT = 5001
    SEQUENCE_OUT_OF_ORDER = 5002
    INVALID_INSTRUMENT = 5003  # a listing whose contract specification is malformed


class Rejected(Exception):
    """Signal inside the core that validation failed with `code`.

    The engine turns it into a rejection event inside `apply`; it never leaves the core.
    """

    def __init__(self, code: RejectCode, detail: str = "") -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail
