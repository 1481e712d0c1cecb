"""What `perpx.Exchange` answers: call results and read views, as decimal strings.

Everything here is read from the engine after a call and formatted through `perpx.convert`;
a view is a frozen copy, so holding one never holds (or lets anyone change) engine state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perpx.bybit.retcodes import OK, bybit_code
from perpx.convert import (
    account_rate_e4,
    format_atoms,
    format_average_price,
    format_lots,
    format_rate,
    format_scaled,
    format_ticks,
)
from perpx.core.account.accounts import Account
from perpx.core.account.margin_model import position_risk
from perpx.core.account.positions import Position
from perpx.core.book.order import RestingOrder
from perpx.core.codes import RejectCode
from perpx.core.engine import Engine
from perpx.core.enums import MarginMode, Side
from perpx.core.events import Event
from perpx.core.instruments import InstrumentSpec
from perpx.core.risk.liquidation import position_prices

SIDE_WORDS = {Side.BUY: "Buy", Side.SELL: "Sell"}
AVERAGE_EXTRA_DECIMALS = 4  # an average entry may fall between ticks: up to 4 more decimals


@dataclass(frozen=True, slots=True)
class Result:
    """The answer to one call: Bybit's retCode/retMsg, and the events the call caused.

    `ret_code` 0 means accepted (an accepted order may still end cancelled, e.g. an IOC
    remainder, exactly as on Bybit). A refusal has the core's `reject` code and a `detail`;
    refused input that never reached the engine (an off-grid price) has `seq` None.
    """

    ret_code: int
    ret_msg: str
    events: tuple[Event, ...] = ()
    seq: int | None = None
    order_id: str = ""
    order_link_id: str = ""
    reject: RejectCode | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the call was accepted."""
        return self.ret_code == OK

    @classmethod
    def refused(cls, code: RejectCode, detail: str, events: tuple[Event, ...] = (),
                seq: int | None = None, order_link_id: str = "") -> Result:
        """Return a refusal with Bybit's code and message for `code`."""
        ret_code, ret_msg = bybit_code(code)
        return cls(ret_code, ret_msg, events, seq, "", order_link_id, code, detail)


@dataclass(frozen=True, slots=True)
class PositionView:
    """One open position, in Bybit's position-list words (decimal strings)."""

    symbol: str
    position_idx: int
    side: str  # "Buy" (long) or "Sell" (short)
    size: str
    avg_price: str
    position_value: str  # entry value
    leverage: str
    margin_mode: str  # "isolated", "cross" or "portfolio"
    mark_price: str
    unrealised_pnl: str
    cur_realised_pnl: str
    cum_realised_pnl: str
    position_im: str
    position_mm: str
    liq_price: str  # "" when none (cross estimate beyond the price range, or no mark yet)
    # Isolated: where the loss equals IM + added margin (#13 B2); cross: where the margin
    # balance is gone. "" when at or below zero.
    bust_price: str = ""
    # USDC contracts (session settlement, next-mechanics §3.2): the session's entry, which
    # the uPnL and margin use; `avg_price` stays the true entry. "" for other contracts.
    session_avg_price: str = ""


@dataclass(frozen=True, slots=True)
class WalletView:
    """An account's figures in one coin (seed 001): wallet, equity, margins, available."""

    coin: str
    wallet_balance: str
    equity: str
    unrealised_pnl: str
    margin_balance: str
    position_im: str
    order_im: str
    maintenance_margin: str
    order_loss: str
    available_balance: str
    withdrawable: str
    account_im_rate: str  # "" when the margin base is not positive
    account_mm_rate: str


@dataclass(frozen=True, slots=True)
class AccountRiskView:
    """An account's figures in USD across its coins (next-mechanics §4.3, seed 001).

    `total_equity` is every coin's equity at its USD price; `margin_balance` the same after
    each coin's collateral value ratio (`haircut` is the difference; a liability counts in
    full); `available_balance` = margin balance + order loss − IM. The rates divide IM and
    MM by margin balance + order loss, 4 decimals rounded down ("" when it is not
    positive). `pooled` tells whether the account's margin is this USD pool (cross or
    portfolio margin across coins), or each coin on its own (isolated, or one coin at par).
    """

    total_equity: str
    wallet_balance: str
    unrealised_pnl: str
    margin_balance: str
    haircut: str
    position_im: str
    order_im: str
    initial_margin: str
    maintenance_margin: str
    order_loss: str
    available_balance: str
    account_im_rate: str
    account_mm_rate: str
    pooled: bool


@dataclass(frozen=True, slots=True)
class OrderView:
    """One open order in the book."""

    order_id: str
    order_link_id: str
    symbol: str
    side: str
    price: str
    qty: str
    leaves_qty: str
    filled_qty: str
    position_idx: int
    reduce_only: bool
    created_ms: int


@dataclass(frozen=True, slots=True)
class OrderBookView:
    """The aggregated top of a book: (price, size) levels, best first."""

    symbol: str
    bids: list[tuple[str, str]] = field(default_factory=list)
    asks: list[tuple[str, str]] = field(default_factory=list)
    seq: int = 0
    ts_ms: int = 0


def _ratio(numerator: int, denominator: int) -> str:
    """Return numerator/denominator to 4 decimals, rounded down; "" if undefined."""
    rate = account_rate_e4(numerator, denominator)
    return "" if rate is None else format_scaled(rate, 4, 4)


def wallet_view(engine: Engine, account: Account | None, coin: str) -> WalletView:
    """Return an account's figures in `coin` (all zero for an account without a wallet)."""
    if account is None:
        zero = "0"
        return WalletView(coin, zero, zero, zero, zero, zero, zero, zero, zero, zero, zero,
                          "", "")
    figures = engine.clearing.figures(account, coin)
    return WalletView(
        coin=coin,
        wallet_balance=format_atoms(figures.wallet_atoms),
        equity=format_atoms(figures.wallet_atoms + figures.upnl_atoms),
        unrealised_pnl=format_atoms(figures.upnl_atoms),
        margin_balance=format_atoms(figures.margin_balance_atoms),
        position_im=format_atoms(figures.position_im_atoms),
        order_im=format_atoms(figures.order_im_atoms),
        maintenance_margin=format_atoms(figures.mm_atoms),
        order_loss=format_atoms(figures.order_loss_atoms),
        available_balance=format_atoms(max(0, figures.available_atoms)),
        withdrawable=format_atoms(figures.withdrawable_atoms),
        account_im_rate=_ratio(*figures.im_rate()),
        account_mm_rate=_ratio(*figures.mm_rate()),
    )


def account_risk_view(engine: Engine, account: Account | None) -> AccountRiskView:
    """Return an account's USD figures (`Clearing.account_risk`; zeros without a wallet)."""
    if account is None:
        zero = "0"
        return AccountRiskView(zero, zero, zero, zero, zero, zero, zero, zero, zero, zero,
                               zero, "", "", False)
    clearing = engine.clearing
    risk = clearing.account_risk(account)
    return AccountRiskView(
        total_equity=format_atoms(risk.total_equity_atoms),
        wallet_balance=format_atoms(risk.wallet_atoms),
        unrealised_pnl=format_atoms(risk.upnl_atoms),
        margin_balance=format_atoms(risk.margin_balance_atoms),
        haircut=format_atoms(risk.haircut_atoms),
        position_im=format_atoms(risk.position_im_atoms),
        order_im=format_atoms(risk.order_im_atoms),
        initial_margin=format_atoms(risk.total_im_atoms),
        maintenance_margin=format_atoms(risk.mm_atoms),
        order_loss=format_atoms(risk.order_loss_atoms),
        available_balance=format_atoms(risk.available_atoms),
        account_im_rate=_ratio(*risk.im_rate()),
        account_mm_rate=_ratio(*risk.mm_rate()),
        pooled=clearing.pooled(account),
    )


def position_view(engine: Engine, account: Account, position: Position) -> PositionView:
    """Return an open position's view, valued at the mark (at its entry before any mark)."""
    spec = engine.instruments[position.symbol]
    qty = position.qty_lots
    side = Side.BUY if position.size_lots > 0 else Side.SELL
    mark = engine.mark_of(position.symbol)
    value_mark = mark if mark else position.average_entry_ticks(spec)
    mode = account.margin_mode
    risk = position_risk(position, spec, value_mark, mode)
    # The margin model's prices (`MarginModel.position_prices`): isolated, the position's own;
    # cross, the account estimate, shown once a mark exists; portfolio margin, none.
    liq, bust = position_prices(engine.clearing, account, position)
    if mode is not MarginMode.ISOLATED and not mark:
        liq = None
    if liq is not None and not spec.min_price_ticks <= liq <= spec.max_price_ticks:
        liq = None
    return PositionView(
        symbol=position.symbol, position_idx=position.position_idx, side=SIDE_WORDS[side],
        size=format_lots(spec, qty),
        avg_price=average_price(spec, position.true_entry_value_atoms(spec), qty),
        position_value=format_atoms(position.entry_value_atoms),
        leverage=format_rate(position.leverage),
        margin_mode=_MODE_WORDS[mode],
        mark_price=format_ticks(spec, mark) if mark else "",
        unrealised_pnl=format_atoms(risk.upnl_atoms),
        cur_realised_pnl=format_atoms(position.realized_pnl_atoms),
        cum_realised_pnl=format_atoms(position.cum_realized_pnl_atoms),
        position_im=format_atoms(risk.im_atoms), position_mm=format_atoms(risk.mm_atoms),
        liq_price=format_ticks(spec, liq) if liq is not None else "",
        bust_price=format_ticks(spec, bust) if bust is not None else "",
        # The session's entry (next-mechanics §3.2), which the uPnL and margin use.
        session_avg_price=(average_price(spec, position.entry_value_atoms, qty)
                           if spec.session_settled else ""),
    )


_MODE_WORDS = {MarginMode.ISOLATED: "isolated", MarginMode.CROSS: "cross",
               MarginMode.PORTFOLIO: "portfolio"}


def average_price(spec: InstrumentSpec, value_atoms: int, lots: int) -> str:
    """Return entry value / size as a price, floored to the price decimals + 4 ("0" if flat)."""
    return format_average_price(spec, value_atoms, lots, AVERAGE_EXTRA_DECIMALS)


def order_view(spec: InstrumentSpec, order: RestingOrder) -> OrderView:
    """Return a resting order's view."""
    return OrderView(
        order_id=str(order.order_id), order_link_id=order.order_link_id, symbol=order.symbol,
        side=SIDE_WORDS[order.side], price=format_ticks(spec, order.price_ticks),
        qty=format_lots(spec, order.qty_lots), leaves_qty=format_lots(spec, order.leaves_lots),
        filled_qty=format_lots(spec, order.filled_lots), position_idx=order.position_idx,
        reduce_only=order.reduce_only, created_ms=order.created_ts_ms)


def book_view(engine: Engine, symbol: str, depth: int) -> OrderBookView:
    """Return the top `depth` levels of a book."""
    spec = engine.instruments[symbol]
    bids, asks = engine.books[symbol].depth(depth)
    return OrderBookView(
        symbol,
        [(format_ticks(spec, p), format_lots(spec, q)) for p, q in bids],
        [(format_ticks(spec, p), format_lots(spec, q)) for p, q in asks],
        engine.last_seq, engine.last_ts_ms)
