"""The vocabulary of orders, in Bybit's terms: sides, types, time in force, SMP, cancel causes."""

from __future__ import annotations

from enum import IntEnum


class Side(IntEnum):
    """Order or taker side."""

    BUY = 1
    SELL = 2

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        """The other side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(IntEnum):
    """Limit orders carry a price; market orders become IOC limits at the protection price."""

    LIMIT = 1
    MARKET = 2


class TimeInForce(IntEnum):
    """Bybit's timeInForce values for derivatives."""

    GTC = 1
    IOC = 2
    FOK = 3
    POST_ONLY = 4


class SmpType(IntEnum):
    """Self-match prevention, decided by the taker's setting (Bybit `smpType`)."""

    NONE = 0
    CANCEL_MAKER = 1
    CANCEL_TAKER = 2
    CANCEL_BOTH = 3


class CancelReason(IntEnum):
    """Why an accepted order ended without filling in full (Bybit rejectReason/cancelType)."""

    BY_USER = 1
    POST_ONLY_WOULD_TAKE = 2
    NO_IMMEDIATE_QTY = 3
    IOC_REMAINDER = 4
    FOK_NOT_FILLABLE = 5
    SELF_MATCH = 6
    OUTSIDE_PRICE_BAND = 7
    REDUCE_ONLY = 8
    BEFORE_LIQUIDATION = 9
    BEFORE_ADL = 10
    TPSL_CLEARED = 11
    BY_ADMIN = 12


class OrderStatus(IntEnum):
    """Bybit's orderStatus for linear contracts."""

    NEW = 1
    PARTIALLY_FILLED = 2
    FILLED = 3
    CANCELLED = 4
    REJECTED = 5
    UNTRIGGERED = 6
    TRIGGERED = 7
    DEACTIVATED = 8


class MarginMode(IntEnum):
    """Account-wide margin mode of the unified account (Bybit setMarginMode)."""

    ISOLATED = 1
    CROSS = 2  # Bybit's REGULAR_MARGIN, the default
    PORTFOLIO = 3


class PositionMode(IntEnum):
    """Per-symbol position mode; the values are Bybit's `mode` (0 one-way, 3 hedge)."""

    ONE_WAY = 0
    HEDGE = 3


class BalanceReason(IntEnum):
    """Why a wallet balance changed: the transaction log's `type`."""

    DEPOSIT = 1
    WITHDRAW = 2
    TRADING_FEE = 3
    FEE_INCOME = 4
    REALIZED_PNL = 5
    FUNDING = 6
    INSURANCE = 7
    LIQUIDATION = 8
    TRADE = 9  # one line per fill: realized P&L (cash flow) less the fee
    ADL = 10
