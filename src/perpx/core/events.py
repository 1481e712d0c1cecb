"""Events: facts in the past tense returned by `Engine.apply`; read models and streams feed on them.

Each event carries what a read model needs, so nothing downstream calls back into the engine.
"""

from __future__ import annotations

from typing import Any

import msgspec

from perpx.core.codes import RejectCode
from perpx.core.enums import (
    BalanceReason,
    CancelReason,
    InstrumentStatus,
    MarginMode,
    OrderType,
    PositionMode,
    Side,
    SmpType,
    StopOrderType,
    TimeInForce,
    TpSlMode,
    TriggerBy,
    TriggerDirection,
)


class Event(msgspec.Struct, frozen=True, gc=False, tag=True):
    """Base of every event: the seq and time of the command that caused it."""

    seq: int
    ts_ms: int


class OrderAccepted(Event, frozen=True, gc=False, tag=True):
    """An order passed validation and entered the book's process (status New).

    For a market order `price_ticks` is its protection price and `time_in_force` is IOC.
    """

    order_id: int
    account_id: int
    symbol: str
    side: Side
    order_type: OrderType
    price_ticks: int
    qty_lots: int
    time_in_force: TimeInForce
    reduce_only: bool
    close_on_trigger: bool
    position_idx: int
    order_link_id: str
    smp_type: SmpType


class OrderRejected(Event, frozen=True, gc=False, tag=True):
    """A place, amend or cancel was refused; nothing changed."""

    account_id: int
    symbol: str
    reason: RejectCode
    order_id: int | None = None
    order_link_id: str = ""
    detail: str = ""


class Trade(Event, frozen=True, gc=False, tag=True):
    """A fill between a taker and a resting maker, at the maker's price."""

    trade_id: int
    symbol: str
    price_ticks: int
    qty_lots: int
    taker_side: Side
    taker_order_id: int
    taker_account_id: int
    maker_order_id: int
    maker_account_id: int
    taker_leaves_lots: int
    maker_leaves_lots: int


class OrderCancelled(Event, frozen=True, gc=False, tag=True):
    """An accepted order ended with `leaves_lots` unfilled, for `reason`.

    A triggered order that failed its checks ends with `REFUSED_AT_TRIGGER` and the `code`
    it would have been rejected with.
    """

    order_id: int
    account_id: int
    symbol: str
    leaves_lots: int
    reason: CancelReason
    code: RejectCode | None = None


class OrderAmended(Event, frozen=True, gc=False, tag=True):
    """An open order now has this price and quantity; if not `kept_priority`, it queued anew."""

    order_id: int
    account_id: int
    symbol: str
    price_ticks: int
    qty_lots: int
    leaves_lots: int
    kept_priority: bool


class CommandRejected(Event, frozen=True, gc=False, tag=True):
    """An account or admin command was refused; nothing changed."""

    account_id: int
    reason: RejectCode
    detail: str = ""


class BalanceChanged(Event, frozen=True, gc=False, tag=True):
    """A wallet moved by `change_atoms` to `balance_atoms`: one line of the transaction log."""

    account_id: int
    coin: str
    change_atoms: int
    balance_atoms: int
    reason: BalanceReason
    symbol: str = ""
    trade_id: int = 0
    cash_flow_atoms: int = 0  # TRADE: the realized P&L of the fill
    fee_atoms: int = 0  # TRADE: the fee it paid (change = cash flow - fee)


class Executed(Event, frozen=True, gc=False, tag=True):
    """One side of a trade as its account sees it: fee paid and P&L closed by this fill."""

    account_id: int
    order_id: int
    trade_id: int
    symbol: str
    side: Side
    price_ticks: int
    qty_lots: int
    fee_atoms: int
    is_maker: bool
    closed_qty_lots: int
    closed_pnl_atoms: int  # price P&L of the closed lots less their closing fee
    position_idx: int
    # The closed lots' share of the position's opening fees and of the funding it paid
    # (received: negative), and the closing part of `fee_atoms`: Bybit's closed P&L of the
    # fill is closed_pnl - open_fee - funding (#13 B3).
    open_fee_atoms: int = 0
    funding_atoms: int = 0
    close_fee_atoms: int = 0


class PositionChanged(Event, frozen=True, gc=False, tag=True):
    """A position's new state (size signed: long > 0, short < 0)."""

    account_id: int
    symbol: str
    position_idx: int
    size_lots: int
    entry_value_atoms: int
    leverage: int
    margin_atoms: int
    realized_pnl_atoms: int
    cum_realized_pnl_atoms: int


class LeverageSet(Event, frozen=True, gc=False, tag=True):
    """Leverage of a symbol (per side in hedge mode) was set."""

    account_id: int
    symbol: str
    buy_leverage: int
    sell_leverage: int


class MarginModeSet(Event, frozen=True, gc=False, tag=True):
    """The account's margin mode changed."""

    account_id: int
    margin_mode: MarginMode


class PositionModeSwitched(Event, frozen=True, gc=False, tag=True):
    """A symbol's position mode changed."""

    account_id: int
    symbol: str
    position_mode: PositionMode


class AutoAddMarginSet(Event, frozen=True, gc=False, tag=True):
    """Auto margin replenishment was turned on or off for a position."""

    account_id: int
    symbol: str
    position_idx: int
    enabled: bool


class MarginAdjusted(Event, frozen=True, gc=False, tag=True):
    """An isolated position's margin moved by `change_atoms` (by hand or automatically)."""

    account_id: int
    symbol: str
    position_idx: int
    change_atoms: int
    margin_atoms: int
    automatic: bool


class MarkPriceUpdated(Event, frozen=True, gc=False, tag=True):
    """A symbol's mark price is now `price_ticks`."""

    symbol: str
    price_ticks: int


class IndexPriceUpdated(Event, frozen=True, gc=False, tag=True):
    """A symbol's index price is now `price_ticks`."""

    symbol: str
    price_ticks: int


class PremiumIndexSampled(Event, frozen=True, gc=False, tag=True):
    """The minute's premium index, and the funding rate it predicts for the interval."""

    symbol: str
    premium_rate: int
    predicted_rate: int
    next_funding_ms: int


class FundingSettled(Event, frozen=True, gc=False, tag=True):
    """Funding was exchanged at `funding_ms` at `rate`; `remainder_atoms` went to the fund.

    With no mark price yet nobody could be valued, so nothing moved (`mark_price_ticks` 0).
    """

    symbol: str
    rate: int
    mark_price_ticks: int
    funding_ms: int
    paid_atoms: int
    received_atoms: int
    remainder_atoms: int
    next_funding_ms: int = 0
    predicted_rate: int = 0  # the next interval's rate before any premium sample


class FundingPaid(Event, frozen=True, gc=False, tag=True):
    """One position's funding: `amount_atoms` > 0 paid, < 0 received (Bybit's sign)."""

    account_id: int
    symbol: str
    position_idx: int
    size_lots: int
    value_atoms: int
    rate: int
    amount_atoms: int
    funding_ms: int
    mark_price_ticks: int = 0


class SessionSettled(Event, frozen=True, gc=False, tag=True):
    """One position's session settlement (USDC contracts, next-mechanics §3.2).

    `session_entry_value_atoms` is the session's entry value before the settlement (over the
    size, the previous sessionAvgPrice of Bybit's settlement record); the position's new
    session entry is the value at `mark_price_ticks`; `realised_pnl_atoms` went to the wallet.
    """

    account_id: int
    symbol: str
    position_idx: int
    size_lots: int
    session_entry_value_atoms: int
    mark_price_ticks: int
    realised_pnl_atoms: int
    session_ms: int


class FundingIntervalSet(Event, frozen=True, gc=False, tag=True):
    """A symbol's funding interval changed; the next funding is at `next_funding_ms`."""

    symbol: str
    interval_min: int
    next_funding_ms: int


class Liquidated(Event, frozen=True, gc=False, tag=True):
    """The mark breached a position: the insurance fund took it over at `bust_price_ticks`."""

    account_id: int
    symbol: str
    position_idx: int
    side: Side
    qty_lots: int
    bust_price_ticks: int
    mark_price_ticks: int


class Deleveraged(Event, frozen=True, gc=False, tag=True):
    """Auto-deleveraging closed `qty_lots` of this position at a bankrupt position's price.

    The insurance fund could not close a liquidated position in the book; this profitable
    position on the other side, first in Bybit's ranking, was closed against it instead.
    """

    account_id: int
    symbol: str
    position_idx: int
    qty_lots: int
    price_ticks: int
    mark_price_ticks: int


class HedgedPairClosed(Event, frozen=True, gc=False, tag=True):
    """A cross liquidation closed a hedged long and short against each other at the mark.

    Seed 000: fully hedged positions are closed first, before anything is taken over.
    """

    account_id: int
    symbol: str
    qty_lots: int
    mark_price_ticks: int
    realized_pnl_atoms: int


class ConditionalOrderAccepted(Event, frozen=True, gc=False, tag=True):
    """A conditional, TP/SL or trailing-stop order waits for its trigger (status Untriggered).

    `price_ticks` is 0 for a market order; `qty_lots` 0 closes the whole position when it
    fires. A trailing stop's `trigger_price_ticks` is its stop (0 until armed), and it arms
    at `active_price_ticks` (0: armed at once). `pair_order_id` is the other leg of a
    partial TP/SL pair (one-cancels-the-other); `parent_order_id` the order whose fill made
    this TP/SL (0 when set on the position).
    """

    order_id: int
    account_id: int
    symbol: str
    side: Side
    order_type: OrderType
    price_ticks: int
    qty_lots: int
    time_in_force: TimeInForce
    reduce_only: bool
    close_on_trigger: bool
    position_idx: int
    order_link_id: str
    smp_type: SmpType
    stop_order_type: StopOrderType
    trigger_price_ticks: int
    trigger_direction: TriggerDirection
    trigger_by: TriggerBy
    tpsl_mode: TpSlMode | None = None
    parent_order_id: int = 0
    pair_order_id: int = 0
    trailing_stop_ticks: int = 0
    active_price_ticks: int = 0


class ConditionalOrderAmended(Event, frozen=True, gc=False, tag=True):
    """An untriggered order now has these figures (by the user, or a TP/SL resized)."""

    order_id: int
    account_id: int
    symbol: str
    qty_lots: int
    price_ticks: int
    trigger_price_ticks: int
    trigger_by: TriggerBy
    pair_order_id: int


class OrderTriggered(Event, frozen=True, gc=False, tag=True):
    """The `trigger_by` price reached `triggered_at_ticks`: the order is sent (status Triggered).

    An `OrderAccepted` with the same order id follows, or an `OrderCancelled` if the order
    fails its checks at that moment.
    """

    order_id: int
    account_id: int
    symbol: str
    stop_order_type: StopOrderType
    trigger_by: TriggerBy
    trigger_price_ticks: int
    triggered_at_ticks: int


class OrderDeactivated(Event, frozen=True, gc=False, tag=True):
    """An untriggered order was cancelled before its trigger (status Deactivated)."""

    order_id: int
    account_id: int
    symbol: str
    stop_order_type: StopOrderType
    reason: CancelReason


class TpSlAttached(Event, frozen=True, gc=False, tag=True):
    """An order carries TP/SL that start when it fills (0: no such leg)."""

    order_id: int
    account_id: int
    symbol: str
    tpsl_mode: TpSlMode
    take_profit_ticks: int
    stop_loss_ticks: int
    tp_trigger_by: TriggerBy
    sl_trigger_by: TriggerBy
    tp_order_type: OrderType
    sl_order_type: OrderType
    tp_limit_price_ticks: int
    sl_limit_price_ticks: int


class TradingStopSet(Event, frozen=True, gc=False, tag=True):
    """A position's Full-mode TP/SL and trailing stop are now these (0: none).

    The position stream's `takeProfit`, `stopLoss` and `trailingStop`.
    """

    account_id: int
    symbol: str
    position_idx: int
    take_profit_ticks: int
    stop_loss_ticks: int
    tp_trigger_by: TriggerBy
    sl_trigger_by: TriggerBy
    trailing_stop_ticks: int
    active_price_ticks: int


class TrailingStopMoved(Event, frozen=True, gc=False, tag=True):
    """A trailing stop armed or followed the last price: it fires at `stop_price_ticks`."""

    order_id: int
    account_id: int
    symbol: str
    position_idx: int
    stop_price_ticks: int
    extreme_price_ticks: int


class OrderReduced(Event, frozen=True, gc=False, tag=True):
    """A resting reduce-only order was cut to `qty_lots` as its position shrank (`reason`)."""

    order_id: int
    account_id: int
    symbol: str
    qty_lots: int
    leaves_lots: int
    reason: CancelReason


class InstrumentListed(Event, frozen=True, gc=False, tag=True):
    """The operator listed a new contract; `record` is its specification as plain data.

    `perpx.core.instruments.spec_from_record(record)` rebuilds the `InstrumentSpec`, so a read
    side learns the new symbol from the event alone.
    """

    symbol: str
    record: dict[str, Any]


class VenueParamsSet(Event, frozen=True, gc=False, tag=True):
    """The operator set the venue's collateral table and PM parameters (`SetVenueParams`).

    `record` is the parameters now in force, as plain data
    (`perpx.core.account.venue.venue_params_from_record` parses it).
    """

    record: dict[str, Any]


class InstrumentStatusChanged(Event, frozen=True, gc=False, tag=True):
    """A dated future's status moved (Trading -> Delivering -> Closed)."""

    symbol: str
    status: InstrumentStatus


class PositionDelivered(Event, frozen=True, gc=False, tag=True):
    """One position of a dated future was settled at the delivery price (next-mechanics §2.5).

    `pnl_atoms` is the price P&L ``q x (DP - EP) x side`` (rounded toward the exchange), and
    `fee_atoms` the delivery fee ``value(DP) x deliveryFeeRate`` (truncated); the wallet moved
    by their difference. `open_fee_atoms` and `funding_atoms` are the position's unattributed
    opening fees and funding, the other terms of Bybit's closed P&L. The delivery price is
    ``delivery_price_e8`` units of 10**-8 of the quote coin (8 dp, not on the tick, §7 N3).
    """

    account_id: int
    symbol: str
    position_idx: int
    size_lots: int  # signed, as held before delivery
    entry_value_atoms: int
    delivery_price_e8: int
    value_atoms: int  # the position's value at the delivery price (exact, rounded down)
    pnl_atoms: int
    fee_atoms: int
    fee_rate: int
    leverage: int
    open_fee_atoms: int = 0
    funding_atoms: int = 0


class FuturesDelivered(Event, frozen=True, gc=False, tag=True):
    """A dated future delivered at `delivery_price_e8` (the mean of `samples` index samples).

    `remainder_atoms` is what the rounding of the positions' P&L left to the insurance fund
    (never negative: each P&L rounds toward the exchange).
    """

    symbol: str
    delivery_time_ms: int
    delivery_price_e8: int
    samples: int
    positions: int
    fee_atoms: int
    remainder_atoms: int


class InterestCharged(Event, frozen=True, gc=False, tag=True):
    """An hour's interest on a coin's liability, booked as more liability (next-mechanics §4.4).

    One `/v5/account/borrow-history` row: the liability at hh:05 (`borrow_atoms`), its
    interest-free part, the interest-bearing rest, the hourly rate (10⁻¹⁸) and the cost.
    `hour_ms` is the hh:05 it is charged for (the first command at or after it books it).
    """

    account_id: int
    hour_ms: int
    coin: str
    borrow_atoms: int
    free_atoms: int
    bearing_atoms: int
    unrealised_loss_atoms: int
    hourly_rate: int
    cost_atoms: int


class Converted(Event, frozen=True, gc=False, tag=True):
    """Collateral converted at the USD index prices to repay a liability (§4.5).

    `sold_atoms` of `sold_coin` went to the conversion desk for `bought_atoms` of
    `bought_coin`; `automatic` when liquidation or auto-repayment did it, not the user.
    """

    account_id: int
    sold_coin: str
    sold_atoms: int
    bought_coin: str
    bought_atoms: int
    sold_px_e8: int
    bought_px_e8: int
    automatic: bool


class CollateralSwitched(Event, frozen=True, gc=False, tag=True):
    """A user switched a coin on or off as collateral (`collateralSwitch`, §4.2)."""

    account_id: int
    coin: str
    on: bool


class LiabilityRepaid(Event, frozen=True, gc=False, tag=True):
    """A repayment request's outcome: what each coin's liability fell by (§4.4)."""

    account_id: int
    coin: str
    repaid_atoms: int
    convert: bool
