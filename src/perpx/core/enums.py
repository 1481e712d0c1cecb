"""The vocabulary of orders in Bybit's terms: sides, types, time in force, SMP, cancel causes.

Also the words of conditional orders: trigger direction and price, stop order types, TP/SL mode.
"""

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
    OCO = 13  # the other leg of a partial TP/SL pair triggered
    REFUSED_AT_TRIGGER = 14  # a triggered order failed its checks (margin, reduce-only...)
    FOR_CLOSE_ON_TRIGGER = 15  # a reduce-only order cut to make room for a close-on-trigger
    BY_SETTLE = 16  # a dated future delivered: Bybit's CancelBySettle (next-mechanics §7 N4)


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
    DELIVERY = 11  # a dated future's settlement at delivery: P&L less the delivery fee
    SESSION_SETTLEMENT = 12  # a USDC contract's session uPnL realised (next-mechanics §3.2)
    INTEREST = 13  # hourly interest on a liability, booked as more liability (§4.4)
    CURRENCY_SELL = 14  # collateral converted away to repay a liability (§4.5)
    CURRENCY_BUY = 15  # the coin a conversion bought to repay its liability


class TriggerDirection(IntEnum):
    """Bybit's triggerDirection: 1 fires when the price rises to the trigger, 2 when it falls."""

    RISING = 1
    FALLING = 2


class TriggerBy(IntEnum):
    """The reference price a trigger watches (Bybit's triggerBy / tpTriggerBy / slTriggerBy)."""

    LAST_PRICE = 1
    MARK_PRICE = 2
    INDEX_PRICE = 3


class StopOrderType(IntEnum):
    """Bybit's stopOrderType: what kind of waiting order this is."""

    STOP = 1  # a conditional order placed by the user
    TAKE_PROFIT = 2  # Full-mode TP of a position
    STOP_LOSS = 3  # Full-mode SL of a position
    PARTIAL_TAKE_PROFIT = 4
    PARTIAL_STOP_LOSS = 5
    TRAILING_STOP = 6


class TpSlMode(IntEnum):
    """Bybit's tpslMode: Full closes the whole position at market; Partial a quantity."""

    FULL = 1
    PARTIAL = 2


class OrderFilter(IntEnum):
    """Which open orders a cancel-all reaches (Bybit's orderFilter; ALL when absent)."""

    ALL = 0
    ORDER = 1  # active orders in the book
    STOP_ORDER = 2  # untriggered conditional orders placed by the user
    TPSL_ORDER = 3  # TP/SL and trailing stops


class InstrumentStatus(IntEnum):
    """Bybit's instrument `status` of a dated future (next-mechanics §2.1, §2.2)."""

    TRADING = 1
    DELIVERING = 2  # the settlement state: from deliveryTime until every position is settled
    CLOSED = 3  # delivered: no orders, no positions
