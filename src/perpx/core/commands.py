"""Commands: the only way state changes. Immutable, stamped with `seq` and `ts_ms` by the sequencer.

Amounts are integers already (ticks, lots, atoms); decimal strings were converted at the edge.
Commands are msgspec Structs: immutable like frozen dataclasses, but about ten times cheaper to
build, which matters on the matching path, and directly encodable by the journal.
"""

from __future__ import annotations

from typing import Any

import msgspec

from perpx.core.enums import (
    MarginMode,
    OrderFilter,
    OrderType,
    PositionMode,
    Side,
    SmpType,
    TimeInForce,
    TpSlMode,
    TriggerBy,
    TriggerDirection,
)


class Command(msgspec.Struct, frozen=True, gc=False, tag=True, array_like=True):
    """Base of every command: its sequence number and time, both given by the sequencer.

    ``array_like`` (inherited by every command): encoded as an array of the fields by
    position, the journal's format 3 (`perpx.store.codec`), which msgspec decodes about
    twice as fast as a map by field name. Positions are that format: add a field only at a
    type's end, with a default (`tests/data/journals/format3_fields.json` pins the order).
    """

    seq: int
    ts_ms: int


class PlaceOrder(Command, frozen=True, gc=False, tag=True):
    """Place a limit or market order; `price_ticks` is None for a market order.

    With `trigger_price_ticks` the order is conditional: it waits, reserving nothing, until
    the `trigger_by` price rises (direction 1) or falls (2) to the trigger. `take_profit_ticks`
    / `stop_loss_ticks` attach TP/SL that start when the order fills. `qty_lots` 0 with
    `reduce_only` and `close_on_trigger` closes the whole position (up to the max quantity).
    """

    account_id: int
    symbol: str
    side: Side
    order_type: OrderType
    qty_lots: int
    price_ticks: int | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    close_on_trigger: bool = False
    position_idx: int = 0
    order_link_id: str = ""
    smp_type: SmpType = SmpType.NONE
    trigger_price_ticks: int | None = None
    trigger_direction: TriggerDirection | None = None
    trigger_by: TriggerBy = TriggerBy.LAST_PRICE
    take_profit_ticks: int | None = None
    stop_loss_ticks: int | None = None
    tp_trigger_by: TriggerBy = TriggerBy.LAST_PRICE
    sl_trigger_by: TriggerBy = TriggerBy.LAST_PRICE
    tpsl_mode: TpSlMode = TpSlMode.FULL
    tp_order_type: OrderType = OrderType.MARKET
    sl_order_type: OrderType = OrderType.MARKET
    tp_limit_price_ticks: int | None = None
    sl_limit_price_ticks: int | None = None


class AmendOrder(Command, frozen=True, gc=False, tag=True):
    """Change an open order's total quantity and/or price, found by id or by order link id.

    An untriggered conditional, TP/SL or trailing order may also change its trigger price and
    reference; any order may change its attached TP/SL (a price of 0 removes that leg).
    """

    account_id: int
    symbol: str
    order_id: int | None = None
    order_link_id: str = ""
    qty_lots: int | None = None
    price_ticks: int | None = None
    trigger_price_ticks: int | None = None
    trigger_by: TriggerBy | None = None
    take_profit_ticks: int | None = None
    stop_loss_ticks: int | None = None
    tp_trigger_by: TriggerBy | None = None
    sl_trigger_by: TriggerBy | None = None
    tp_limit_price_ticks: int | None = None
    sl_limit_price_ticks: int | None = None


class CancelOrder(Command, frozen=True, gc=False, tag=True):
    """Cancel one open order, found by id or by order link id."""

    account_id: int
    symbol: str
    order_id: int | None = None
    order_link_id: str = ""


class CancelAllOrders(Command, frozen=True, gc=False, tag=True):
    """Cancel every open order of an account on one symbol that `order_filter` selects."""

    account_id: int
    symbol: str
    order_filter: OrderFilter = OrderFilter.ALL


class SetTradingStop(Command, frozen=True, gc=False, tag=True):
    """Set a position's TP/SL or trailing stop (Bybit's position/trading-stop).

    Full mode: one TP and one SL closing the whole position at market; None leaves a leg as
    it is, 0 removes it. Partial mode: a new TP/SL pair of `tp_size_lots` (= `sl_size_lots`),
    at market or limit. `trailing_stop_ticks` is a price distance (0 removes the trailing
    stop); `active_price_ticks` the price that arms it (None: armed at once).
    """

    account_id: int
    symbol: str
    position_idx: int = 0
    tpsl_mode: TpSlMode = TpSlMode.FULL
    take_profit_ticks: int | None = None
    stop_loss_ticks: int | None = None
    tp_trigger_by: TriggerBy = TriggerBy.LAST_PRICE
    sl_trigger_by: TriggerBy = TriggerBy.LAST_PRICE
    trailing_stop_ticks: int | None = None
    active_price_ticks: int | None = None
    tp_size_lots: int | None = None
    sl_size_lots: int | None = None
    tp_order_type: OrderType = OrderType.MARKET
    sl_order_type: OrderType = OrderType.MARKET
    tp_limit_price_ticks: int | None = None
    sl_limit_price_ticks: int | None = None


class Deposit(Command, frozen=True, gc=False, tag=True):
    """Credit a coin to an account's wallet, opening the account on its first deposit."""

    account_id: int
    coin: str
    amount_atoms: int


class Withdraw(Command, frozen=True, gc=False, tag=True):
    """Take a coin out of a wallet; never more than is withdrawable."""

    account_id: int
    coin: str
    amount_atoms: int


class SetCollateralSwitch(Command, frozen=True, gc=False, tag=True):
    """Switch coins on or off as collateral (`/v5/account/set-collateral-switch`, §4.2).

    All or nothing: a batch request is one command.
    """

    account_id: int
    switches: list[tuple[str, bool]]


class RepayLiability(Command, frozen=True, gc=False, tag=True):
    """Repay a coin's liability, or every liability (`coin` "") (next-mechanics §4.4).

    `convert`: other coins are converted in liquidation order (`/v5/account/repay`,
    `quick-repayment`); otherwise only the coin's own balance repays (`no-convert-repay`).
    `amount_atoms` 0 repays all.
    """

    account_id: int
    coin: str
    amount_atoms: int
    convert: bool


class SetLeverage(Command, frozen=True, gc=False, tag=True):
    """Set buy and sell leverage of a symbol (equal in one-way mode), in 10**-8."""

    account_id: int
    symbol: str
    buy_leverage: int
    sell_leverage: int


class SetMarginMode(Command, frozen=True, gc=False, tag=True):
    """Switch the account between isolated and cross margin."""

    account_id: int
    margin_mode: MarginMode


class SwitchPositionMode(Command, frozen=True, gc=False, tag=True):
    """Switch a symbol between one-way and hedge mode (only when flat with no orders)."""

    account_id: int
    symbol: str
    position_mode: PositionMode


class AdjustMargin(Command, frozen=True, gc=False, tag=True):
    """Add (positive) or reduce (negative) an isolated position's margin."""

    account_id: int
    symbol: str
    position_idx: int
    amount_atoms: int


class SetAutoAddMargin(Command, frozen=True, gc=False, tag=True):
    """Turn auto margin replenishment on or off for an isolated position."""

    account_id: int
    symbol: str
    position_idx: int
    enabled: bool


class MarkPrice(Command, frozen=True, gc=False, tag=True):
    """Set a symbol's mark price (from the price service or a replay)."""

    symbol: str
    price_ticks: int


class IndexPrice(Command, frozen=True, gc=False, tag=True):
    """A new index price for a symbol, from the price feeds."""

    symbol: str
    price_ticks: int


class Tick(Command, frozen=True, gc=False, tag=True):
    """Time passed: sample the basis and premium, update marks, settle due funding."""


class SetFundingInterval(Command, frozen=True, gc=False, tag=True):
    """Change a symbol's funding interval (minutes); the next timestamp follows the new one."""

    symbol: str
    interval_min: int


class ListInstrument(Command, frozen=True, gc=False, tag=True):
    """List a new contract (operator): `record` is `instruments.spec_record(spec)`'s data.

    Journaled like any command, so a replay lists it at the same point; refused with
    `INVALID_INSTRUMENT` if the record is malformed (or a dated future's delivery time has
    passed) and `DUPLICATE_INSTRUMENT` if the symbol is already listed.
    """

    record: dict[str, Any]


class SetVenueParams(Command, frozen=True, gc=False, tag=True):
    """Set the venue's collateral table and portfolio-margin parameters (operator, #17).

    `record` is `perpx.core.account.venue.venue_params_record`'s data (integers in the
    core's units). Journaled like any command, so every replica applies the same parameters
    at the same seq; refused with `INVALID_PARAMETER` if the record is malformed. Allowed
    with accounts open: the new ratios and grids apply from this command on, as Bybit
    changes its collateral ratios live.
    """

    record: dict[str, Any]
