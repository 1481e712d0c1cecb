"""Account history records built from engine events: orders, executions, closed P&L, ledger.

`Projector.project(command, events)` folds a command's events into records. It keeps the
live state that needs more than one event (an order's cumulative fills and trigger fields,
each position's entry value for closed P&L and its trading stop, the last mark for execution
rows) and reports what became final through `RecordSink` calls, which the SQLite history
(`perpx.store.history`) turns into table rows. It is the one order projection: the REST
endpoints read its records and the private WebSocket topics publish the `Projection` each
`project` call returns, so both show the same order objects and execution ids.

Records hold integers in the core's units (ticks, lots, atoms, rates in 10**-8) and the
enums' names; the API formats them at the edge. Only user accounts (id > 0) get records.

`Projector.to_state()` / `Projector.from_state()` export and rebuild the projector's live state
as plain data (`ProjectorState`: integers, strings, lists and record structs), which the
read-side checkpoint (`perpx.readside`) stores.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import msgspec

from perpx.core import calc, lifecycle
from perpx.core.account.positions import take_share
from perpx.core.enums import BalanceReason, CancelReason, OrderStatus, Side, StopOrderType
from perpx.core.events import (
    BalanceChanged,
    ConditionalOrderAccepted,
    ConditionalOrderAmended,
    Deleveraged,
    Event,
    Executed,
    FundingPaid,
    HedgedPairClosed,
    InstrumentListed,
    InterestCharged,
    Liquidated,
    MarkPriceUpdated,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderDeactivated,
    OrderReduced,
    OrderTriggered,
    PositionChanged,
    PositionDelivered,
    SessionSettled,
    TpSlAttached,
    Trade,
    TradingStopSet,
    TrailingStopMoved,
)
from perpx.core.instruments import InstrumentSpec, spec_from_record
from perpx.core.numbers import div_round
from perpx.rows import Stamp

# Closed orders kept in memory per account for GET /v5/order/realtime by id (Bybit: 500).
RECENT_CLOSED_PER_ACCOUNT = 500

# Execution ids are UUID strings (Bybit's execId), version 8 (RFC 9562: laid out by the
# maker), written out from integers rather than hashed per row with `uuid5` (~7% of the
# writer's time, issue #15). The first 48 bits name perpx's executions; the 12 bits after the
# version name the kind; the last 62 the execution within it.
_EXEC_PREFIX = "5f1c3a2e-8d4b-8"
_KIND_TRADE = 0x001
_KIND_HASHED = 0x002
_LOW_48 = (1 << 48) - 1
_LOW_62 = (1 << 62) - 1
_VARIANT = 0b10 << 14  # RFC 9562's variant, in the top two bits of the fourth group


def _uuid8(kind: int, number: int) -> str:
    """Return perpx's execution UUID for `number` (< 2**62) of `kind`."""
    # %-formatting: an f-string's format specs cost an `int.__format__` call each (three per
    # execution a gateway folds, issue #15); the same digits.
    return "%s%03x-%04x-%012x" % (  # noqa: UP031  # the cheaper formatting, on purpose
        _EXEC_PREFIX, kind, _VARIANT | (number >> 48), number & _LOW_48)


class OrderRecord(msgspec.Struct, gc=False):
    """An order as the API shows it; mutable while the order is open."""

    order_id: int
    account_id: int
    symbol: str
    side: int
    order_type: int
    price_ticks: int
    qty_lots: int
    time_in_force: int
    reduce_only: bool
    close_on_trigger: bool
    position_idx: int
    order_link_id: str
    smp_type: int
    created_ms: int
    updated_ms: int
    seq: int
    status: int = int(lifecycle.START)
    cum_lots: int = 0
    cum_value_atoms: int = 0
    cum_fee_atoms: int = 0
    closed_lots: int = 0
    closed_pnl_atoms: int = 0  # Bybit's closed P&L: less opening fee share and funding
    entry_value_closed_atoms: int = 0  # entry value released by this order's closing fills
    exit_value_atoms: int = 0  # value of this order's closing fills
    fill_count: int = 0
    cancel_reason: int = 0  # CancelReason, 0 when not cancelled
    # Conditional, TP/SL and trailing-stop orders (0: not such an order / no such leg).
    stop_order_type: int = 0  # StopOrderType
    trigger_price_ticks: int = 0  # a trailing stop's current stop (0 until armed)
    trigger_direction: int = 0  # TriggerDirection
    trigger_by: int = 0  # TriggerBy
    trailing_stop_ticks: int = 0
    active_price_ticks: int = 0
    parent_order_id: int = 0
    last_price_on_created: int = 0
    # TP/SL the order carries (TpSlAttached), or the mode of the TP/SL leg it is.
    tpsl_mode: int = 0  # TpSlMode
    take_profit_ticks: int = 0
    stop_loss_ticks: int = 0
    tp_trigger_by: int = 0
    sl_trigger_by: int = 0
    tp_limit_price_ticks: int = 0
    sl_limit_price_ticks: int = 0
    open_fee_closed_atoms: int = 0  # the closed lots' share of the opening fees (#13 B3)
    close_fee_atoms: int = 0  # the closing part of this order's fees

    @property
    def leaves_lots(self) -> int:
        """Quantity still open (0 once final)."""
        if self.status in _FINAL:
            return 0
        return self.qty_lots - self.cum_lots


class ExecutionRecord(msgspec.Struct, frozen=True, gc=False):
    """One row of GET /v5/execution/list: a fill, a funding payment or a bust trade."""

    exec_id: str
    account_id: int
    symbol: str
    exec_type: str  # Trade, Funding, BustTrade, AdlTrade
    side: int
    order_id: int
    order_link_id: str
    order_type: int  # 0 for funding (UNKNOWN)
    order_price_ticks: int
    order_qty_lots: int
    leaves_lots: int
    price_ticks: int
    qty_lots: int
    value_atoms: int
    fee_atoms: int
    fee_rate: int
    is_maker: bool
    mark_ticks: int
    closed_lots: int
    exec_ms: int
    seq: int
    closed_pnl_atoms: int = 0  # the P&L this fill closed (funding: minus the payment)
    stop_order_type: int = 0  # of the order that filled
    create_type: str = ""  # Bybit's createType of that order ('' for funding)


class TradingStop(msgspec.Struct, frozen=True, gc=False):
    """A position's Full-mode TP/SL and trailing stop, as `TradingStopSet` last said (0: none)."""

    take_profit_ticks: int = 0
    stop_loss_ticks: int = 0
    tp_trigger_by: int = 1
    sl_trigger_by: int = 1
    trailing_stop_ticks: int = 0
    active_price_ticks: int = 0


class ClosedPnlRecord(msgspec.Struct, frozen=True, gc=False):
    """One row of GET /v5/position/closed-pnl: a closing order's result."""

    order_id: int
    account_id: int
    symbol: str
    side: int
    order_type: int
    order_price_ticks: int
    qty_lots: int
    closed_lots: int
    entry_value_atoms: int
    exit_value_atoms: int
    closed_pnl_atoms: int
    close_fee_atoms: int
    fill_count: int
    leverage: int
    exec_type: str
    created_ms: int
    updated_ms: int
    seq: int
    open_fee_atoms: int = 0  # the closed lots' share of the opening fees (#13 B3)


class LedgerRecord(msgspec.Struct, frozen=True, gc=False):
    """One row of GET /v5/account/transaction-log: a wallet change."""

    entry_id: str
    account_id: int
    coin: str
    symbol: str
    kind: str  # Bybit's type: TRADE, SETTLEMENT, TRANSFER_IN, ...
    change_atoms: int
    cash_flow_atoms: int
    fee_atoms: int
    funding_atoms: int
    balance_atoms: int
    trade_id: int
    ts_ms: int
    seq: int
    # TRADE rows: the fill (#13 C5). `size_lots` is the position after it, signed (a short
    # is negative); `exec_id` the execution's id, Bybit's `tradeId`. Zero/empty elsewhere.
    side: int = 0
    qty_lots: int = 0
    size_lots: int = 0
    price_ticks: int = 0
    fee_rate: int = 0
    order_id: int = 0
    order_link_id: str = ""
    exec_id: str = ""


class DeliveryRecord(msgspec.Struct, frozen=True, gc=False):
    """One row of GET /v5/asset/delivery-record: a position settled at delivery (§2.7).

    `side` is the position's (Buy long, Sell short); `pnl_atoms` the price P&L and
    `fee_atoms` the delivery fee, so Bybit's `deliveryRpl` is their difference. The delivery
    price is in 10**-8 of the quote coin (8 dp, off the tick).
    """

    delivery_id: str
    account_id: int
    symbol: str
    side: int
    qty_lots: int
    entry_value_atoms: int
    delivery_price_e8: int
    fee_atoms: int
    pnl_atoms: int
    delivery_ms: int
    seq: int


class SettlementRecord(msgspec.Struct, frozen=True, gc=False):
    """One row of GET /v5/asset/settlement-record: a USDC position's session settlement.

    `session_entry_value_atoms` is the session's entry value before the settlement, over
    the size the previous sessionAvgPrice; the realised P&L went to the wallet
    (next-mechanics §3.2, §3.3).
    """

    entry_id: str
    account_id: int
    symbol: str
    side: int
    size_lots: int
    session_entry_value_atoms: int
    mark_price_ticks: int
    realised_pnl_atoms: int
    ts_ms: int
    seq: int


class BorrowRecord(msgspec.Struct, frozen=True, gc=False):
    """One row of GET /v5/account/borrow-history: an hour's interest on a liability (§4.4).

    What `InterestCharged` states: the liability at hh:05, its interest-free part, the
    interest-bearing rest, the part caused by unrealised losses, the hourly rate (10**-18)
    and the interest booked; `ts_ms` is the hh:05 it is for.
    """

    entry_id: str
    account_id: int
    coin: str
    borrow_atoms: int
    free_atoms: int
    bearing_atoms: int
    unrealised_loss_atoms: int
    hourly_rate: int
    cost_atoms: int
    ts_ms: int
    seq: int


class _OrderRow(OrderRecord, array_like=True, gc=False):
    """An `OrderRecord` in a checkpoint: the same fields as an array (no field names)."""


class ProjectorState(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A projector's live state as data; each list keeps its dictionary's order."""

    open: list[_OrderRow]
    open_by_account: list[tuple[int, list[int]]]  # account -> ids of its open orders
    recent: list[tuple[int, list[_OrderRow]]]  # account -> recently closed orders, oldest first
    trading_stops: list[tuple[int, str, int, TradingStop]]
    positions: list[tuple[int, str, int, int, int, int]]  # key, then size, entry value, leverage
    marks: dict[str, int]
    last: dict[str, int]
    trailing: list[tuple[int, str, int, int]]  # position key, then its trailing stop's order id
    recent_trades: dict[str, list[tuple[int, int, int, int, int, int]]]
    costs: list[tuple[int, str, int, int, int]]  # key, then opening fees and funding held
    true_entries: list[tuple[int, str, int, int]]  # key, then a USDC position's true entry


def _row(record: OrderRecord) -> _OrderRow:
    return _OrderRow(*msgspec.structs.astuple(record))


def _record(row: _OrderRow) -> OrderRecord:
    return OrderRecord(*msgspec.structs.astuple(row))


_FINAL = frozenset(int(status) for status in lifecycle.FINAL)

LEDGER_TYPES: dict[BalanceReason, str] = {
    BalanceReason.DEPOSIT: "TRANSFER_IN",
    BalanceReason.WITHDRAW: "TRANSFER_OUT",
    BalanceReason.TRADING_FEE: "TRADE",
    BalanceReason.FEE_INCOME: "FEE_REFUND",
    BalanceReason.REALIZED_PNL: "TRADE",
    BalanceReason.FUNDING: "SETTLEMENT",
    BalanceReason.INSURANCE: "LIQUIDATION",
    BalanceReason.LIQUIDATION: "LIQUIDATION",
    BalanceReason.TRADE: "TRADE",
    BalanceReason.ADL: "ADL",
    BalanceReason.DELIVERY: "DELIVERY",  # next-mechanics §2.5, the uta-translog type
    # Bybit books the USDC session settlement as SETTLEMENT too ("USDC Perp funding
    # settlement + USDC 8-hour session settlement", next-mechanics §3.2).
    BalanceReason.SESSION_SETTLEMENT: "SETTLEMENT",
    # Multi-collateral (next-mechanics §4.6): interest on a liability, and the two legs of a
    # conversion that repays one.
    BalanceReason.INTEREST: "INTEREST",
    BalanceReason.CURRENCY_SELL: "CURRENCY_SELL",
    BalanceReason.CURRENCY_BUY: "CURRENCY_BUY",
}


def is_final(status: int) -> bool:
    """Tell whether an order status is final (Filled, Cancelled, Rejected, Deactivated)."""
    return status in _FINAL


def exec_id(seq: int, trade_id: int, account_id: int, kind: str) -> str:
    """Return a UUID derived from what makes an execution unique, so a replay gives the same id.

    For the rare executions (funding, takeover, ADL), whose key does not fit 62 bits: its
    62-bit BLAKE2b digest (a collision is not expected before ~2**31 such rows).
    """
    digest = hashlib.blake2b(f"{kind}:{seq}:{trade_id}:{account_id}".encode(),
                             digest_size=8).digest()
    return _uuid8(_KIND_HASHED, int.from_bytes(digest) & _LOW_62)


def trade_exec_id(trade_id: int, is_maker: bool) -> str:
    """Return the execution id of one side of a trade (unique even when an account self-trades).

    Trade ids are the engine's counter, never reused, so the id is the same on REST and WS and
    after any replay: the trade id and the side are the id's last 62 bits, no hash.
    """
    return _uuid8(_KIND_TRADE, (trade_id << 1) | is_maker)


_CREATE_TYPES = {
    int(StopOrderType.STOP): "CreateByStopOrder",
    int(StopOrderType.TAKE_PROFIT): "CreateByTakeProfit",
    int(StopOrderType.STOP_LOSS): "CreateByStopLoss",
    int(StopOrderType.PARTIAL_TAKE_PROFIT): "CreateByPartialTakeProfit",
    int(StopOrderType.PARTIAL_STOP_LOSS): "CreateByPartialStopLoss",
    int(StopOrderType.TRAILING_STOP): "CreateByTrailingStop",
}


def create_type(record: OrderRecord) -> str:
    """Bybit's createType: who made the order (the user, one of its stops, or a liquidation)."""
    if record.account_id <= 0:
        return "CreateByLiq"
    return _CREATE_TYPES.get(record.stop_order_type, "CreateByUser")


# Closed-P&L rows are keyed by order id; a takeover or ADL closing has no order, so its row
# gets an id above every engine order id (the engine's counter never nears 2**62): the
# closing's seq and its place in the command, unique and the same after any replay.
_TAKEOVER_IDS = 1 << 62


def _takeover_id(seq: int, place: int) -> int:
    """Return the closed-P&L key of the `place`-th takeover or ADL closing of command `seq`.

    `seq` < 2**42, `place` < 2**20 (a command closes at most every position on one side).
    """
    return _TAKEOVER_IDS | (seq << 20) | place


class _Closing:
    """A takeover or ADL closing of the current command, until its wallet lines are seen."""

    __slots__ = ("booked_atoms", "entry_gap_atoms", "funding_atoms", "reason", "started")

    def __init__(self, started: ClosedPnlRecord, reason: BalanceReason,
                 funding_atoms: int, entry_gap_atoms: int = 0) -> None:
        self.started = started  # `closed_pnl_atoms` holds the price P&L, no closing fee
        self.reason = reason  # of the closing's wallet lines
        self.funding_atoms = funding_atoms  # the funding share it took
        self.booked_atoms = 0  # what those lines moved: P&L less the fee to close
        # The row's price P&L less the one the wallet lines book: a USDC position's row is
        # against the true entry, its lines against the session's; 0 for other contracts.
        self.entry_gap_atoms = entry_gap_atoms

    def row(self) -> ClosedPnlRecord:
        """Return the row: the closing fee is the price P&L the wallet lines fell short of.

        `calc.closed_pnl_atoms` is the one formula of every closed-P&L row (the core's
        `FillEffect` and `perpx calc pnl` use it too).
        """
        row = self.started
        pnl = row.closed_pnl_atoms
        fee = max(0, pnl - self.entry_gap_atoms - self.booked_atoms)
        return msgspec.structs.replace(row, close_fee_atoms=fee, closed_pnl_atoms=(
            calc.closed_pnl_atoms(pnl, row.open_fee_atoms, fee, self.funding_atoms)))


class Projection(msgspec.Struct):
    """What one command changed: the orders it touched and the executions it made.

    `orders` holds each touched order once, in its state after the command; `triggered`
    holds a copy of each order as it stood when its trigger fired (status Triggered), so a
    stream can show Untriggered -> Triggered -> New/Filled. A struct: one is built per
    folded command, by msgspec's C constructor rather than a Python `__init__` (issue #15).
    """

    orders: dict[int, OrderRecord] = msgspec.field(default_factory=dict)
    triggered: list[OrderRecord] = msgspec.field(default_factory=list)
    executions: list[ExecutionRecord] = msgspec.field(default_factory=list)


class RecordSink(Protocol):
    """Where the projector hands finished records (the SQLite history, or a test list)."""

    def order_final(self, record: OrderRecord) -> None:
        """Take an order that reached a final status."""

    def execution(self, record: ExecutionRecord) -> None:
        """Take a new execution row."""

    def closed_pnl(self, record: ClosedPnlRecord) -> None:
        """Take a closing order that finished."""

    def ledger(self, record: LedgerRecord) -> None:
        """Take a new transaction-log row."""

    def delivery(self, record: DeliveryRecord) -> None:
        """Take a new delivery-record row (a dated future's position settled)."""

    def settlement(self, record: SettlementRecord) -> None:
        """Take a new session-settlement row (USDC contracts)."""

    def borrow(self, record: BorrowRecord) -> None:
        """Take a new borrow-history row (interest charged on a liability)."""


class Projector:
    """Fold events into order, execution, closed-P&L and ledger records.

    Open orders (resting, untriggered and just-triggered ones) and the most recent closed
    ones stay in memory for the realtime endpoint; finished records go to the sink. Feeding
    the same events again produces the same records with the same ids, so a sink keyed by id
    stays idempotent. The live state is all derivable from the engine's open orders, waiting
    orders and positions (for a start from a snapshot), except fill totals of orders
    already part-filled.
    """

    def __init__(self, specs: Iterable[InstrumentSpec], sink: RecordSink | None = None) -> None:
        self.specs = {spec.symbol: spec for spec in specs}
        self.sink = sink
        self.open: dict[int, OrderRecord] = {}
        self.open_by_account: dict[int, dict[int, OrderRecord]] = {}
        self.recent: dict[int, OrderedDict[int, OrderRecord]] = {}
        # Full TP/SL and trailing stop per (account, symbol, position idx), when any is set.
        self.trading_stops: dict[tuple[int, str, int], TradingStop] = {}
        self._positions: dict[tuple[int, str, int], tuple[int, int, int]] = {}
        self._marks: dict[str, int] = {}
        self._last: dict[str, int] = {}
        self._trailing: dict[tuple[int, str, int], int] = {}  # position -> its trailing stop
        self._out = Projection()
        self._ledger_lines = 0  # wallet lines of the current command, for their ids
        # A fill's TRADE wallet line waits for its `Executed` and `PositionChanged` (the
        # clearing emits the three in that order) to carry the fill and the size after it.
        self._pending_trade_line: LedgerRecord | None = None
        # A funding SETTLEMENT wallet line waits for its `FundingPaid` (emitted right after
        # it) to carry the position's side, size and the funding's mark and rate.
        self._pending_settlement: LedgerRecord | None = None
        # Closings by takeover or ADL in the current command, by (account, symbol): the row
        # and the wallet lines of its reason seen since (P&L, and an isolated takeover's fee
        # to close), written when the command's events are folded.
        self._takeovers: dict[tuple[int, str], _Closing] = {}
        # Per user position: the opening fees and the net funding paid (received: negative)
        # it still holds, as the core's `Position` does (#13 B3), folded from `Executed`,
        # `FundingPaid` and `HedgedPairClosed`: a takeover or ADL closing takes its share
        # of both, which no event states.
        self._costs: dict[tuple[int, str, int], tuple[int, int]] = {}
        # Per user position of a session-settled (USDC) contract: its true entry value
        # (Bybit's avgPrice; `_positions` holds the session's), as the core's
        # `Position.true_entry_atoms` moves on every fill, so a takeover or ADL closing's row
        # is against it as a trade's is (`Executed` states that P&L; `Liquidated` and
        # `Deleveraged` do not).
        self._true_entries: dict[tuple[int, str, int], int] = {}
        self._closings = 0  # takeover and ADL closings of the current command, for row ids
        # Public trades per symbol, newest last: (trade id, price, qty, taker side, ms, seq).
        self.recent_trades: dict[str, deque[tuple[int, int, int, int, int, int]]] = {
            symbol: deque(maxlen=1000) for symbol in self.specs}

    # -- checkpoint ------------------------------------------------------------------------

    def to_state(self) -> ProjectorState:
        """Return the live state as data (the sink and the last projection are not state)."""
        return ProjectorState(
            open=[_row(record) for record in self.open.values()],
            open_by_account=[(account, list(orders))
                             for account, orders in self.open_by_account.items()],
            recent=[(account, [_row(record) for record in closed.values()])
                    for account, closed in self.recent.items()],
            trading_stops=[(*key, stop) for key, stop in self.trading_stops.items()],
            positions=[(*key, *value) for key, value in self._positions.items()],
            marks=dict(self._marks), last=dict(self._last),
            trailing=[(*key, order_id) for key, order_id in self._trailing.items()],
            recent_trades={symbol: list(trades)
                           for symbol, trades in self.recent_trades.items()},
            costs=[(*key, *value) for key, value in self._costs.items()],
            true_entries=[(*key, value) for key, value in self._true_entries.items()])

    @classmethod
    def from_state(cls, specs: Iterable[InstrumentSpec], state: ProjectorState,
                   sink: RecordSink | None = None) -> Projector:
        """Rebuild a projector from `to_state()`; raise ValueError on a state it cannot hold."""
        projector = cls(specs, sink)
        known = projector.specs
        symbols = ([row.symbol for row in state.open]
                   + [row.symbol for _, rows in state.recent for row in rows]
                   + [key[1] for key in state.trading_stops] + [key[1] for key in state.positions]
                   + [key[1] for key in state.trailing] + list(state.marks) + list(state.last)
                   + [key[1] for key in state.costs] + [key[1] for key in state.true_entries]
                   + list(state.recent_trades))
        unknown = set(symbols) - set(known)
        if unknown:
            raise ValueError(f"projector state names unknown symbols {sorted(unknown)[:3]}")
        projector.open = {row.order_id: _record(row) for row in state.open}
        try:
            projector.open_by_account = {
                account: {order_id: projector.open[order_id] for order_id in ids}
                for account, ids in state.open_by_account}
        except KeyError as missing:
            raise ValueError(f"projector state: open order {missing} is not open") from None
        projector.recent = {
            account: OrderedDict((row.order_id, _record(row)) for row in rows)
            for account, rows in state.recent}
        projector.trading_stops = {(a, s, i): stop for a, s, i, stop in state.trading_stops}
        projector._positions = {(a, s, i): (size, entry, leverage)
                                for a, s, i, size, entry, leverage in state.positions}
        projector._costs = {(a, s, i): (fees, funding) for a, s, i, fees, funding in state.costs}
        projector._true_entries = {(a, s, i): value for a, s, i, value in state.true_entries}
        projector._marks = dict(state.marks)
        projector._last = dict(state.last)
        projector._trailing = {(a, s, i): order_id for a, s, i, order_id in state.trailing}
        for symbol, trades in state.recent_trades.items():
            projector.recent_trades[symbol].extend(trades)
        return projector

    # -- queries ---------------------------------------------------------------------------

    def find(self, account_id: int, order_id: int | None, link: str) -> OrderRecord | None:
        """Return an open or recently closed order of the account by id or link id."""
        pools: list[dict[int, OrderRecord]] = [self.open_by_account.get(account_id, {}),
                                               self.recent.get(account_id, OrderedDict())]
        for pool in pools:
            if order_id is not None:
                found = pool.get(order_id)
                if found is not None:
                    return found
            elif link:
                for record in pool.values():
                    if record.order_link_id == link:
                        return record
        return None

    def open_orders(self, account_id: int) -> list[OrderRecord]:
        """Return the account's open orders, newest first."""
        orders = self.open_by_account.get(account_id, {})
        return sorted(orders.values(), key=lambda o: o.order_id, reverse=True)

    def recent_closed(self, account_id: int) -> list[OrderRecord]:
        """Return the account's recently closed orders, newest first."""
        closed = self.recent.get(account_id, OrderedDict())
        return sorted(closed.values(), key=lambda o: o.order_id, reverse=True)

    def trading_stop(self, account_id: int, symbol: str, position_idx: int) -> TradingStop:
        """Return a position's Full TP/SL and trailing stop (zeros when none is set)."""
        return self.trading_stops.get((account_id, symbol, position_idx), _NO_STOP)

    # -- projection ------------------------------------------------------------------------

    def project(self, command: Stamp, events: list[Event]) -> Projection:
        """Fold one command's events; return the orders and executions they touched.

        Only the events are read (each carries its seq and time), so a bus entry folds as
        its command does.
        """
        out = self._out = Projection()
        self._ledger_lines = 0
        self._closings = 0
        # Without a sink, the handlers that only hand rows to it are skipped (a gateway folds
        # every command without one: a wallet line or two per fill, issue #15).
        handlers = _HANDLERS if self.sink is not None else _STATE_HANDLERS
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                handler(self, event)
        # Most commands leave nothing pending: three calls and a fresh dict saved per command.
        if self._pending_trade_line is not None:
            self._flush_trade_line()
        if self._pending_settlement is not None:
            self._flush_settlement()
        if self._takeovers:
            self._flush_takeovers()
        self._ledger_lines = 0
        self._closings = 0
        return out

    def _flush_trade_line(self) -> None:
        line = self._pending_trade_line
        if line is not None:
            self._pending_trade_line = None
            if self.sink is not None:
                self.sink.ledger(line)

    def _flush_settlement(self) -> None:
        line = self._pending_settlement
        if line is not None:
            self._pending_settlement = None
            if self.sink is not None:
                self.sink.ledger(line)

    def _flush_takeovers(self) -> None:
        takeovers, self._takeovers = self._takeovers, {}
        if self.sink is None:
            return
        for closing in takeovers.values():
            self.sink.closed_pnl(closing.row())

    def _touch(self, record: OrderRecord) -> None:
        if record.account_id > 0:
            self._out.orders[record.order_id] = record

    def _new_record(self, event: OrderAccepted | ConditionalOrderAccepted) -> OrderRecord:
        record = OrderRecord(
            event.order_id, event.account_id, event.symbol, int(event.side),
            int(event.order_type), event.price_ticks, event.qty_lots,
            int(event.time_in_force), event.reduce_only, event.close_on_trigger,
            event.position_idx, event.order_link_id, int(event.smp_type), event.ts_ms,
            event.ts_ms, event.seq, last_price_on_created=self._last.get(event.symbol, 0))
        self.open[event.order_id] = record
        if event.account_id > 0:
            # Not `setdefault(id, {})`: that builds an empty dict per accepted order.
            orders = self.open_by_account.get(event.account_id)
            if orders is None:
                orders = self.open_by_account[event.account_id] = {}
            orders[event.order_id] = record
            self._out.orders[event.order_id] = record  # `_touch`: a user's order
        return record

    def _accepted(self, event: OrderAccepted) -> None:
        record = self.open.get(event.order_id)
        if record is None or record.status != _TRIGGERED:
            self._new_record(event)
            return
        # A triggered order is sent with its own id: it becomes a live order (status New).
        record.status = _next_status(record.status, _ACCEPT)
        record.order_type = int(event.order_type)
        record.price_ticks = event.price_ticks
        record.qty_lots = event.qty_lots
        record.time_in_force = int(event.time_in_force)
        record.reduce_only = event.reduce_only
        record.updated_ms = event.ts_ms
        self._touch(record)

    def _conditional(self, event: ConditionalOrderAccepted) -> None:
        record = self._new_record(event)
        record.status = int(lifecycle.START_CONDITIONAL)
        record.stop_order_type = int(event.stop_order_type)
        record.trigger_price_ticks = event.trigger_price_ticks or event.active_price_ticks
        record.trigger_direction = int(event.trigger_direction)
        record.trigger_by = int(event.trigger_by)
        record.trailing_stop_ticks = event.trailing_stop_ticks
        record.active_price_ticks = event.active_price_ticks
        record.parent_order_id = event.parent_order_id
        if event.tpsl_mode is not None:
            record.tpsl_mode = int(event.tpsl_mode)
        if event.stop_order_type is StopOrderType.TRAILING_STOP:
            self._trailing[(event.account_id, event.symbol, event.position_idx)] = event.order_id

    def _conditional_amended(self, event: ConditionalOrderAmended) -> None:
        record = self.open.get(event.order_id)
        if record is None:
            return
        record.qty_lots = event.qty_lots
        record.price_ticks = event.price_ticks
        if record.stop_order_type != _TRAILING or event.trigger_price_ticks:
            record.trigger_price_ticks = event.trigger_price_ticks
        record.trigger_by = int(event.trigger_by)
        record.updated_ms = event.ts_ms
        self._touch(record)

    def _trailing_moved(self, event: TrailingStopMoved) -> None:
        record = self.open.get(event.order_id)
        if record is None:
            return
        record.trigger_price_ticks = event.stop_price_ticks
        record.updated_ms = event.ts_ms
        self._touch(record)

    def _triggered(self, event: OrderTriggered) -> None:
        record = self.open.get(event.order_id)
        if record is None:
            return
        record.status = _next_status(record.status, _TRIGGER)
        record.updated_ms = event.ts_ms
        if record.account_id > 0:
            self._out.triggered.append(msgspec.structs.replace(record))
        self._touch(record)

    def _deactivated(self, event: OrderDeactivated) -> None:
        record = self.open.get(event.order_id)
        if record is None:
            return
        record.status = _next_status(record.status, _DEACTIVATE)
        record.cancel_reason = int(event.reason)
        record.updated_ms = event.ts_ms
        self._touch(record)
        self._finish(record, 0)

    def _tpsl_attached(self, event: TpSlAttached) -> None:
        record = self.open.get(event.order_id)
        if record is None:
            return
        record.tpsl_mode = int(event.tpsl_mode) if (
            event.take_profit_ticks or event.stop_loss_ticks) else 0
        record.take_profit_ticks = event.take_profit_ticks
        record.stop_loss_ticks = event.stop_loss_ticks
        record.tp_trigger_by = int(event.tp_trigger_by) if event.take_profit_ticks else 0
        record.sl_trigger_by = int(event.sl_trigger_by) if event.stop_loss_ticks else 0
        record.tp_limit_price_ticks = event.tp_limit_price_ticks
        record.sl_limit_price_ticks = event.sl_limit_price_ticks
        record.updated_ms = event.ts_ms
        self._touch(record)

    def _reduced(self, event: OrderReduced) -> None:
        record = self.open.get(event.order_id)
        if record is None:
            return
        record.qty_lots = event.qty_lots
        record.updated_ms = event.ts_ms
        self._touch(record)

    def _trading_stop(self, event: TradingStopSet) -> None:
        key = (event.account_id, event.symbol, event.position_idx)
        stop = TradingStop(event.take_profit_ticks, event.stop_loss_ticks,
                           int(event.tp_trigger_by), int(event.sl_trigger_by),
                           event.trailing_stop_ticks, event.active_price_ticks)
        if stop == _NO_STOP:
            self.trading_stops.pop(key, None)
        else:
            self.trading_stops[key] = stop
        # Only this event says a changed trailing distance or activation price.
        trailing = self.open.get(self._trailing.get(key, 0))
        if trailing is None:
            self._trailing.pop(key, None)
        elif event.trailing_stop_ticks:
            changed = (trailing.trailing_stop_ticks != event.trailing_stop_ticks
                       or trailing.active_price_ticks != event.active_price_ticks)
            trailing.trailing_stop_ticks = event.trailing_stop_ticks
            if trailing.active_price_ticks != event.active_price_ticks:
                trailing.active_price_ticks = event.active_price_ticks
                if event.active_price_ticks:
                    trailing.trigger_price_ticks = event.active_price_ticks
            if changed:
                self._touch(trailing)

    def _executed(self, event: Executed) -> None:
        record = self.open.get(event.order_id)
        spec = self.specs[event.symbol]
        value = spec.notional_atoms(event.price_ticks, event.qty_lots)
        entry_released = 0
        key = (event.account_id, event.symbol, event.position_idx)
        size, entry_value, leverage = self._positions.get(key, (0, 0, 0))
        if event.closed_qty_lots and size:
            if spec.session_settled:
                # The fold's entry value is the session's; the closed P&L (Bybit's) is
                # against the true entry, so the entry released is what the exit value
                # less that P&L says (exact: `realised_pnl_on_close_atoms`).
                exit_value = spec.notional_atoms(event.price_ticks, event.closed_qty_lots)
                pnl = event.closed_pnl_atoms + event.close_fee_atoms
                entry_released = exit_value - pnl if size > 0 else exit_value + pnl
            else:
                entry_released = entry_value * event.closed_qty_lots // abs(size)
        if spec.session_settled and event.account_id > 0:
            self._follow_true_entry(key, spec, event, entry_released)
        if event.account_id > 0:
            # `apply_fill`: the closing takes its shares, the opened lots add their fee.
            fees, funding = self._costs.get(key, (0, 0))
            self._costs[key] = (fees - event.open_fee_atoms + event.fee_atoms
                                - event.close_fee_atoms, funding - event.funding_atoms)
        if record is not None:
            record.cum_lots += event.qty_lots
            record.cum_value_atoms += value
            record.cum_fee_atoms += event.fee_atoms
            record.fill_count += 1
            record.updated_ms = event.ts_ms
            if event.closed_qty_lots:
                record.closed_lots += event.closed_qty_lots
                record.closed_pnl_atoms += (event.closed_pnl_atoms - event.open_fee_atoms
                                            - event.funding_atoms)
                record.open_fee_closed_atoms += event.open_fee_atoms
                record.close_fee_atoms += event.close_fee_atoms
                record.entry_value_closed_atoms += entry_released
                record.exit_value_atoms += spec.notional_atoms(event.price_ticks,
                                                               event.closed_qty_lots)
            self._touch(record)
            record.status = _next_status(
                record.status, lifecycle.fill_happening(record.cum_lots, record.qty_lots))
            if record.status in _FINAL:
                self._finish(record, leverage)
        if event.account_id <= 0:
            return
        rate = spec.maker_fee_rate if event.is_maker else spec.taker_fee_rate
        execution_id = trade_exec_id(event.trade_id, event.is_maker)
        line = self._pending_trade_line
        if line is not None and (line.account_id, line.trade_id) == (event.account_id,
                                                                     event.trade_id):
            self._pending_trade_line = msgspec.structs.replace(
                line, side=int(event.side), qty_lots=event.qty_lots,
                price_ticks=event.price_ticks, fee_rate=rate, order_id=event.order_id,
                order_link_id=record.order_link_id if record else "", exec_id=execution_id)
        self._execution(ExecutionRecord(
            execution_id, event.account_id,
            event.symbol, "Trade", int(event.side), event.order_id,
            record.order_link_id if record else "", record.order_type if record else 1,
            record.price_ticks if record else event.price_ticks,
            record.qty_lots if record else event.qty_lots,
            record.leaves_lots if record else 0, event.price_ticks, event.qty_lots, value,
            event.fee_atoms, rate, event.is_maker, self._marks.get(event.symbol, 0),
            event.closed_qty_lots, event.ts_ms, event.seq, event.closed_pnl_atoms,
            record.stop_order_type if record else 0,
            create_type(record) if record else "CreateByUser"))

    def _follow_true_entry(self, key: tuple[int, str, int], spec: InstrumentSpec,
                           event: Executed, released_atoms: int) -> None:
        """Move a USDC position's true entry by a fill, as `positions._follow_true_entry`.

        The closed lots release what the fill's P&L against the true entry says
        (`released_atoms`, from `Executed`); the opened lots add their entry value at the
        fill price, by the contract's maths and the core's expression.
        """
        true = self._true_entries.get(key, 0) - released_atoms
        closed = event.closed_qty_lots
        opened = event.qty_lots - closed
        if opened:
            entry_value_atoms = spec.contract.entry_value_atoms
            true += (entry_value_atoms(event.price_ticks, closed + opened)
                     - entry_value_atoms(event.price_ticks, closed))
        self._true_entries[key] = true

    def _execution(self, record: ExecutionRecord) -> None:
        self._out.executions.append(record)
        if self.sink is not None:
            self.sink.execution(record)

    def _amended(self, event: OrderAmended) -> None:
        record = self.open.get(event.order_id)
        if record is not None:
            record.price_ticks = event.price_ticks
            record.qty_lots = event.qty_lots
            record.updated_ms = event.ts_ms
            self._touch(record)

    def _cancelled(self, event: OrderCancelled) -> None:
        record = self.open.get(event.order_id)
        if record is None:
            return
        record.status = _next_status(record.status, _CANCEL)
        record.cancel_reason = int(event.reason)
        record.updated_ms = event.ts_ms
        self._touch(record)
        key = (record.account_id, record.symbol, record.position_idx)
        self._finish(record, self._positions.get(key, (0, 0, 0))[2])

    def _finish(self, record: OrderRecord, leverage: int) -> None:
        self.open.pop(record.order_id, None)
        if record.account_id <= 0:
            return
        # No empty dict or `OrderedDict` built per closed order for a default (issue #15).
        orders = self.open_by_account.get(record.account_id)
        if orders is not None:
            orders.pop(record.order_id, None)
        recent = self.recent.get(record.account_id)
        if recent is None:
            recent = self.recent[record.account_id] = OrderedDict()
        recent[record.order_id] = record
        while len(recent) > RECENT_CLOSED_PER_ACCOUNT:
            recent.popitem(last=False)
        if self.sink is None:
            return
        self.sink.order_final(record)
        if record.closed_lots:
            self.sink.closed_pnl(ClosedPnlRecord(
                record.order_id, record.account_id, record.symbol, record.side,
                record.order_type, record.price_ticks, record.qty_lots, record.closed_lots,
                record.entry_value_closed_atoms, record.exit_value_atoms,
                record.closed_pnl_atoms, record.close_fee_atoms, record.fill_count, leverage,
                "Trade", record.created_ms, record.updated_ms, record.seq,
                record.open_fee_closed_atoms))

    def _position(self, event: PositionChanged) -> None:
        key = (event.account_id, event.symbol, event.position_idx)
        self._positions[key] = (event.size_lots, event.entry_value_atoms, event.leverage)
        if not event.size_lots:
            self._costs.pop(key, None)  # a flat position holds none (the core checks it)
            self._true_entries.pop(key, None)
        line = self._pending_trade_line
        if line is not None and line.exec_id and (line.account_id, line.symbol) == (
                event.account_id, event.symbol):
            self._pending_trade_line = msgspec.structs.replace(line, size_lots=event.size_lots)
            self._flush_trade_line()

    def _mark(self, event: MarkPriceUpdated) -> None:
        self._marks[event.symbol] = event.price_ticks

    def _funding(self, event: FundingPaid) -> None:
        if event.account_id <= 0:
            return
        side = Side.BUY if event.size_lots > 0 else Side.SELL
        key = (event.account_id, event.symbol, event.position_idx)
        fees, funding = self._costs.get(key, (0, 0))
        self._costs[key] = (fees, funding + event.amount_atoms)
        line = self._pending_settlement
        if line is not None and (line.account_id, line.symbol) == (event.account_id,
                                                                     event.symbol):
            # Bybit's SETTLEMENT row: the position's side and size, the funding's mark
            # (`tradePrice`) and rate (`feeRate`); the payment stays in `funding` (received:
            # positive) and `change`, with `fee` 0 and `cashFlow` 0, as in Bybit's example.
            self._pending_settlement = msgspec.structs.replace(
                line, side=int(side), qty_lots=abs(event.size_lots), size_lots=event.size_lots,
                price_ticks=event.mark_price_ticks, fee_rate=event.rate)
            self._flush_settlement()
        self._execution(ExecutionRecord(
            exec_id(event.seq, event.funding_ms, event.account_id,
                    f"Funding{event.symbol}{event.position_idx}"),
            event.account_id, event.symbol, "Funding", int(side), 0, "", 0, 0, 0, 0,
            event.mark_price_ticks, abs(event.size_lots), event.value_atoms, event.amount_atoms,
            event.rate, False, event.mark_price_ticks, 0, event.funding_ms, event.seq,
            -event.amount_atoms, 0, ""))

    def _session_settled(self, event: SessionSettled) -> None:
        if event.account_id <= 0:
            return
        side = Side.BUY if event.size_lots > 0 else Side.SELL
        line = self._pending_settlement
        if line is not None and (line.account_id, line.symbol) == (event.account_id,
                                                                     event.symbol):
            # The SETTLEMENT row of the session: side, size and the settlement mark, the
            # realised P&L in `change` and `cashFlow` (no fee, no funding).
            self._pending_settlement = msgspec.structs.replace(
                line, side=int(side), qty_lots=abs(event.size_lots), size_lots=event.size_lots,
                price_ticks=event.mark_price_ticks)
            self._flush_settlement()
        if self.sink is not None:
            self.sink.settlement(SettlementRecord(
                exec_id(event.seq, event.session_ms, event.account_id,
                        f"Session{event.symbol}{event.position_idx}"),
                event.account_id, event.symbol, int(side), abs(event.size_lots),
                event.session_entry_value_atoms, event.mark_price_ticks,
                event.realised_pnl_atoms, event.ts_ms, event.seq))

    def _liquidated(self, event: Liquidated) -> None:
        if event.account_id <= 0:
            return
        spec = self.specs[event.symbol]
        self._execution(ExecutionRecord(
            exec_id(event.seq, event.position_idx, event.account_id, f"Bust{event.symbol}"),
            event.account_id, event.symbol, "BustTrade", int(Side(event.side).opposite), 0, "",
            2, event.bust_price_ticks, event.qty_lots, 0, event.bust_price_ticks,
            event.qty_lots, spec.notional_atoms(event.bust_price_ticks, event.qty_lots), 0, 0,
            False, event.mark_price_ticks, event.qty_lots, event.ts_ms, event.seq, 0, 0,
            "CreateByTakeOver_PassThrough"))
        self._closing(event, Side(event.side), event.bust_price_ticks, "BustTrade",
                      BalanceReason.LIQUIDATION)

    def _deleveraged(self, event: Deleveraged) -> None:
        if event.account_id <= 0:
            return
        spec = self.specs[event.symbol]
        key = (event.account_id, event.symbol, event.position_idx)
        size = self._positions.get(key, (0, 0, 0))[0]
        side = Side.SELL if size > 0 else Side.BUY  # closing the position
        self._execution(ExecutionRecord(
            exec_id(event.seq, event.position_idx, event.account_id, f"Adl{event.symbol}"),
            event.account_id, event.symbol, "AdlTrade", int(side), 0, "", 2,
            event.price_ticks, event.qty_lots, 0, event.price_ticks, event.qty_lots,
            spec.notional_atoms(event.price_ticks, event.qty_lots), 0, 0, False,
            event.mark_price_ticks, event.qty_lots, event.ts_ms, event.seq, 0, 0,
            "CreateByAdl_PassThrough"))
        self._closing(event, side.opposite, event.price_ticks, "AdlTrade", BalanceReason.ADL)

    def _hedged_pair(self, event: HedgedPairClosed) -> None:
        """Both legs of a hedged pair closed at the mark: each gives up its shares."""
        if event.account_id <= 0:
            return
        for idx in (1, 2):
            self._take_costs((event.account_id, event.symbol, idx), event.qty_lots)

    def _take_costs(self, key: tuple[int, str, int], qty_lots: int) -> tuple[int, int]:
        """Take closing `qty_lots`' share of a position's opening fees and funding."""
        held = abs(self._positions.get(key, (0, 0, 0))[0])
        fees, funding = self._costs.get(key, (0, 0))
        if not held:
            return 0, 0
        fee_share = take_share(fees, qty_lots, held)
        funding_share = take_share(funding, qty_lots, held)
        self._costs[key] = (fees - fee_share, funding - funding_share)
        return fee_share, funding_share

    def _closing(self, event: Liquidated | Deleveraged, held: Side, price_ticks: int,
                 exec_type: str, reason: BalanceReason) -> None:
        """Start the closed-P&L row of a position closed by takeover or ADL (no order fills).

        The events carry the closed quantity and price; the entry value and leverage are the
        fold's position (its last `PositionChanged`, before this closing). The price P&L and
        the entry value released are the contract's own (`realised_pnl_on_close_atoms`, as
        the clearing books them); the closing fee (an isolated takeover's fee to close, #13
        B2) is what the wallet lines of `reason` that follow fall short of that P&L. The
        opening-fee and funding shares are not in the events: they are the fold's
        (`_take_costs`, the core's `take_share` on what the position holds).
        """
        self._closings += 1
        key = (event.account_id, event.symbol)
        done = self._takeovers.pop(key, None)
        if done is not None and self.sink is not None:
            self.sink.closed_pnl(done.row())
        spec = self.specs[event.symbol]
        position = (event.account_id, event.symbol, event.position_idx)
        size, entry_value, leverage = self._positions.get(position, (0, 0, 0))
        pnl, released = spec.contract.realised_pnl_on_close_atoms(
            held, entry_value, abs(size), event.qty_lots, price_ticks)
        booked_pnl = pnl  # what the wallet lines book: against the session entry (USDC)
        if spec.session_settled:
            # Bybit's closed P&L of a USDC position is against its true entry (avgPrice),
            # released by the same maths as the core's `positions._follow_true_entry`.
            true = self._true_entries.get(position, 0)
            pnl, released = spec.contract.realised_pnl_on_close_atoms(
                held, true, abs(size), event.qty_lots, price_ticks)
            self._true_entries[position] = true - released
        fee_share, funding_share = self._take_costs(position, event.qty_lots)
        # Until its wallet lines are seen, the row says no closing fee and the price P&L
        # (`_Closing.row` completes both).
        row = ClosedPnlRecord(
            _takeover_id(event.seq, self._closings),
            event.account_id, event.symbol, int(held.opposite), 2, price_ticks,
            event.qty_lots, event.qty_lots, released,
            spec.notional_atoms(price_ticks, event.qty_lots), pnl, 0, 1, leverage, exec_type,
            event.ts_ms, event.ts_ms, event.seq, fee_share)
        self._takeovers[key] = _Closing(row, reason, funding_share, pnl - booked_pnl)

    def _listed(self, event: InstrumentListed) -> None:
        """Learn a contract the operator listed: its rows are valued with its spec.

        Its public trades are kept from now on, as a configured contract's are (and as a
        projector restored with the contract keeps them).
        """
        self.specs[event.symbol] = spec_from_record(event.record)
        self.recent_trades.setdefault(event.symbol, deque(maxlen=1000))

    def _delivered(self, event: PositionDelivered) -> None:
        """Fold a dated future's position settled at delivery: execution, closed P&L, record.

        The execution (Bybit's execType Delivery, Settle for an inverse future) shows the
        delivery price rounded to the tick, as its integer price field must; the delivery
        record and the closed P&L's values carry the exact one. Bybit's closed P&L nets the
        delivery fee, the position's opening fees and its funding from the price P&L.
        """
        if event.account_id <= 0:
            return
        spec = self.specs[event.symbol]
        held = Side.BUY if event.size_lots > 0 else Side.SELL
        qty = abs(event.size_lots)
        price_ticks = div_round(event.delivery_price_e8, spec.tick_atoms)
        self._closings += 1
        # Bybit's execType: Delivery for USDT futures, Settle for inverse futures (§2.5).
        exec_type = "Settle" if spec.contract.value_sign < 0 else "Delivery"
        key = f"Delivery{event.symbol}{event.position_idx}"
        self._execution(ExecutionRecord(
            exec_id(event.seq, event.position_idx, event.account_id, key),
            event.account_id, event.symbol, exec_type, int(held.opposite), 0, "", 2,
            price_ticks, qty, 0, price_ticks, qty, event.value_atoms, event.fee_atoms,
            event.fee_rate, False, self._marks.get(event.symbol, 0), qty, event.ts_ms,
            event.seq, event.pnl_atoms - event.fee_atoms, 0, "CreateBySettle"))
        if self.sink is None:
            return
        self.sink.closed_pnl(ClosedPnlRecord(
            _takeover_id(event.seq, self._closings), event.account_id, event.symbol,
            int(held.opposite), 2, price_ticks, qty, qty, event.entry_value_atoms,
            event.value_atoms,
            event.pnl_atoms - event.fee_atoms - event.open_fee_atoms - event.funding_atoms,
            event.fee_atoms, 1, event.leverage, exec_type, event.ts_ms, event.ts_ms,
            event.seq, event.open_fee_atoms))
        # Bybit's `deliveryTime` is the contract's, not the time of the command that found
        # it due (which may come later: the core delivers before the first command at or
        # after it), as `/v5/market/delivery-price` shows it too.
        self.sink.delivery(DeliveryRecord(
            f"{event.seq}-{event.account_id}-{event.position_idx}-{event.symbol}",
            event.account_id, event.symbol, int(held), qty, event.entry_value_atoms,
            event.delivery_price_e8, event.fee_atoms, event.pnl_atoms, spec.delivery_time_ms,
            event.seq))

    def _trade(self, event: Trade) -> None:
        self._last[event.symbol] = event.price_ticks
        trades = self.recent_trades.get(event.symbol)
        if trades is not None:
            trades.append((event.trade_id, event.price_ticks, event.qty_lots,
                           int(event.taker_side), event.ts_ms, event.seq))

    def _interest(self, event: InterestCharged) -> None:
        if event.account_id <= 0 or self.sink is None:
            return
        # Ids as the wallet lines': the n-th line of the command (a command that passes
        # several hh:05 at once charges a coin once an hour).
        self._ledger_lines += 1
        # Its time is the hh:05 it is charged for (`hour_ms`), Bybit's `createdTime`, not
        # that of the command that came first after it.
        self.sink.borrow(BorrowRecord(
            f"{event.seq}-{self._ledger_lines}", event.account_id, event.coin,
            event.borrow_atoms, event.free_atoms, event.bearing_atoms,
            event.unrealised_loss_atoms, event.hourly_rate, event.cost_atoms, event.hour_ms,
            event.seq))

    def _balance(self, event: BalanceChanged) -> None:
        if event.account_id <= 0 or self.sink is None:
            return
        # The member by a dict, not `BalanceReason(...)` (the enum's call), and the members
        # compared below are module constants: on 3.11 each `BalanceReason.X` read goes
        # through the enum class's `__getattr__` (~700 instructions), and this runs for
        # every wallet line (issue #15). An unknown reason still raises as the call does.
        reason = _REASONS.get(event.reason) or BalanceReason(event.reason)
        funding = event.change_atoms if reason is _FUNDING else 0
        cash_flow = event.cash_flow_atoms
        if reason in _CASH_FLOW_REASONS:
            # Money in or out that is neither a fee nor funding: its `change` is its cash
            # flow (interest and the legs of a conversion too, so change = cashFlow).
            cash_flow = event.change_atoms
        # The n-th wallet line of the command: unique even when an account trades with its
        # own resting order (two lines with the same trade id and reason).
        self._ledger_lines += 1
        self._flush_trade_line()
        self._flush_settlement()
        taken = self._takeovers.get((event.account_id, event.symbol))
        if taken is not None and taken.reason is reason:
            taken.booked_atoms += event.change_atoms
        line = LedgerRecord(
            f"{event.seq}-{self._ledger_lines}",
            event.account_id, event.coin, event.symbol, LEDGER_TYPES.get(reason, "OTHER"),
            event.change_atoms, cash_flow, event.fee_atoms, funding,
            event.balance_atoms, event.trade_id, event.ts_ms, event.seq)
        if reason is _TRADE_REASON and event.trade_id:
            self._pending_trade_line = line
        elif (reason is _FUNDING or reason is _SESSION_SETTLEMENT) and event.symbol:
            self._pending_settlement = line
        else:
            self.sink.ledger(line)


_REASONS: dict[int, BalanceReason] = {int(reason): reason for reason in BalanceReason}
_FUNDING = BalanceReason.FUNDING
_TRADE_REASON = BalanceReason.TRADE
_SESSION_SETTLEMENT = BalanceReason.SESSION_SETTLEMENT
# Money in or out that is neither a fee nor funding (`Projector._balance`).
_CASH_FLOW_REASONS = frozenset((
    BalanceReason.DEPOSIT, BalanceReason.WITHDRAW, BalanceReason.LIQUIDATION, BalanceReason.ADL,
    BalanceReason.REALIZED_PNL, BalanceReason.SESSION_SETTLEMENT, BalanceReason.INTEREST,
    BalanceReason.CURRENCY_SELL, BalanceReason.CURRENCY_BUY))
_TRIGGERED = int(OrderStatus.TRIGGERED)
_ACCEPT = int(lifecycle.Happening.ACCEPT)
_TRIGGER = int(lifecycle.Happening.TRIGGER)
_DEACTIVATE = int(lifecycle.Happening.DEACTIVATE)
_CANCEL = int(lifecycle.Happening.CANCEL)
# The core's transition table with plain-int keys and values: a record keeps its status as an
# int, and `lifecycle.next_status` names it as an `OrderStatus` first (a Python enum call,
# once per fill and cancel of every order a gateway folds; issue #15). Only the legal pairs:
# an illegal one still goes to `next_status`, which raises the core's own error.
_NEXT_STATUS: dict[tuple[int, int], int] = {
    (int(status), int(happening)): int(after)
    for (status, happening), after in lifecycle.TRANSITIONS.items()}


def _next_status(status: int, happening: int) -> int:
    """Return `lifecycle.next_status(status, happening)` as an int (the same table)."""
    after = _NEXT_STATUS.get((status, happening))
    if after is None:
        return int(lifecycle.next_status(status, lifecycle.Happening(happening)))
    return after


_TRAILING = int(StopOrderType.TRAILING_STOP)
_NO_STOP = TradingStop()

_HANDLERS: dict[type[Event], Callable[[Projector, Any], None]] = {
    OrderAccepted: Projector._accepted,
    Executed: Projector._executed,
    OrderAmended: Projector._amended,
    OrderCancelled: Projector._cancelled,
    PositionChanged: Projector._position,
    MarkPriceUpdated: Projector._mark,
    FundingPaid: Projector._funding,
    SessionSettled: Projector._session_settled,
    Liquidated: Projector._liquidated,
    Deleveraged: Projector._deleveraged,
    HedgedPairClosed: Projector._hedged_pair,
    BalanceChanged: Projector._balance,
    InterestCharged: Projector._interest,
    Trade: Projector._trade,
    ConditionalOrderAccepted: Projector._conditional,
    ConditionalOrderAmended: Projector._conditional_amended,
    TrailingStopMoved: Projector._trailing_moved,
    OrderTriggered: Projector._triggered,
    OrderDeactivated: Projector._deactivated,
    TpSlAttached: Projector._tpsl_attached,
    OrderReduced: Projector._reduced,
    TradingStopSet: Projector._trading_stop,
    InstrumentListed: Projector._listed,
    PositionDelivered: Projector._delivered,
}
# The handlers that change the projector's state: `_balance` and `_interest` return at once
# without a sink (they only write rows), so `project` passes their events by without a call.
_STATE_HANDLERS: dict[type[Event], Callable[[Projector, Any], None]] = {
    kind: handler for kind, handler in _HANDLERS.items()
    if kind not in (BalanceChanged, InterestCharged)}

# CancelReason -> (rejectReason, cancelType), spec §5.7; the stop order type decides OCO's.
CANCEL_REJECT_REASONS: dict[int, tuple[str, str]] = {
    int(CancelReason.BY_USER): ("EC_PerCancelRequest", "CancelByUser"),
    int(CancelReason.POST_ONLY_WOULD_TAKE): ("EC_PostOnlyWillTakeLiquidity", "UNKNOWN"),
    int(CancelReason.NO_IMMEDIATE_QTY): ("EC_NoImmediateQtyToFill", "UNKNOWN"),
    int(CancelReason.IOC_REMAINDER): ("EC_NoError", "UNKNOWN"),
    int(CancelReason.FOK_NOT_FILLABLE): ("EC_CancelForNoFullFill", "UNKNOWN"),
    int(CancelReason.SELF_MATCH): ("EC_BySelfMatch", "CancelBySmp"),
    int(CancelReason.OUTSIDE_PRICE_BAND): ("EC_NoImmediateQtyToFill", "UNKNOWN"),
    int(CancelReason.REDUCE_ONLY): ("EC_NoError", "CancelByReduceOnly"),
    int(CancelReason.BEFORE_LIQUIDATION): ("EC_NoError", "CancelByPrepareLiq"),
    int(CancelReason.BEFORE_ADL): ("EC_NoError", "CancelByPrepareAdl"),
    int(CancelReason.TPSL_CLEARED): ("EC_NoError", "CancelByTpSlTsClear"),
    int(CancelReason.BY_ADMIN): ("EC_NoError", "CancelByAdmin"),
    int(CancelReason.REFUSED_AT_TRIGGER): ("EC_Others", "UNKNOWN"),
    int(CancelReason.FOR_CLOSE_ON_TRIGGER): ("EC_NoError", "CancelByReduceOnly"),
    int(CancelReason.BY_SETTLE): ("EC_NoError", "CancelBySettle"),  # next-mechanics §7 N4
}


def cancel_reasons(record: OrderRecord) -> tuple[str, str]:
    """Return the order's (rejectReason, cancelType); ('EC_NoError', 'UNKNOWN') while live."""
    if record.cancel_reason == int(CancelReason.OCO):
        # The other leg of a partial pair fired: Bybit names which one.
        if record.stop_order_type == int(StopOrderType.PARTIAL_TAKE_PROFIT):
            return "EC_NoError", "CancelByOCOTpCanceledBySlTriggered"
        return "EC_NoError", "CancelByOCOSlCanceledByTpTriggered"
    return CANCEL_REJECT_REASONS.get(record.cancel_reason, ("EC_NoError", "UNKNOWN"))
