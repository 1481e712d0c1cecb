"""Accounts of the unified trading account: wallets per coin, modes, leverage and open-order sums.

Wallet balances change only through `credit`/`debit` with a reason, so every change can be
logged and the conservation invariant checked. System accounts (fees, insurance fund) have
negative ids, so they can never collide with a user's.

Each account holds the margin model of its mode; the models' base class (`MarginModel`, with
the `MarginLedger` protocol, what a model may ask of the clearing) is declared here, beside the
account it is asked about, and subclassed in `perpx.core.account.margin_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from perpx.core.account.portfolio import PmParams
from perpx.core.account.positions import Position
from perpx.core.account.risk_value import AccountRisk, RiskValue
from perpx.core.book.order import RestingOrder
from perpx.core.enums import MarginMode, PositionMode, Side
from perpx.core.errors import InvariantViolation
from perpx.core.instruments import InstrumentSpec
from perpx.core.keys import position_key, side_key
from perpx.core.numbers import RATE_ONE

FEE_ACCOUNT_ID: Final = -1
INSURANCE_FUND_ID: Final = -2
# The conversion desk: the counterparty of every conversion that repays a liability
# (next-mechanics §4.5; perpx has no spot market). Opened at its first conversion, so a venue
# that never converts keeps the state it always had.
CONVERSION_DESK_ID: Final = -3
SYSTEM_ACCOUNT_IDS: Final = (FEE_ACCOUNT_ID, INSURANCE_FUND_ID, CONVERSION_DESK_ID)
OPENING_ACCOUNT_IDS: Final = (FEE_ACCOUNT_ID, INSURANCE_FUND_ID)  # opened with the venue
DEFAULT_LEVERAGE: Final = 10 * RATE_ONE  # Bybit's default for a new USDT-perpetual position

MarkOf = Callable[[str], "int | None"]


class OpenOrderSums:
    """Leaves and notional of one account's open, non-reduce-only orders on one side group.

    The ``memo_*`` fields keep the group's last order margin (`memo_margin_atoms`) with the
    leaves, notional, opening lots and leverage it was computed from, so an unchanged group
    is not costed again (`perpx.core.account.margin.order_margin_atoms`); `memo_leaves_lots`
    0 means none (a costed group has leaves). Plain int fields, not a tuple of tuples: no
    allocation per costing, and native ints when compiled.
    """

    __slots__ = ("leaves_lots", "memo_leaves_lots", "memo_leverage", "memo_margin_atoms",
                 "memo_notional_atoms", "memo_opening_lots", "notional_atoms")

    def __init__(self) -> None:
        self.leaves_lots = 0
        self.notional_atoms = 0
        self.memo_leaves_lots = 0
        self.memo_notional_atoms = 0
        self.memo_opening_lots = 0
        self.memo_leverage = 0
        self.memo_margin_atoms = 0

    def copy(self) -> OpenOrderSums:
        """Return an independent copy."""
        twin = OpenOrderSums()
        twin.leaves_lots = self.leaves_lots
        twin.notional_atoms = self.notional_atoms
        twin.memo_leaves_lots = self.memo_leaves_lots
        twin.memo_notional_atoms = self.memo_notional_atoms
        twin.memo_opening_lots = self.memo_opening_lots
        twin.memo_leverage = self.memo_leverage
        twin.memo_margin_atoms = self.memo_margin_atoms
        return twin


class OrderLossMemo:
    """An account's order loss on one symbol at one published mark, kept exact as orders move.

    `Clearing.order_loss_atoms` scans the account's opening orders once at a mark and keeps
    the sum here; each order that rests, fills or leaves adds the change of its own term
    (`perpx.core.account.clearing`'s ``_order_loss_moved``), so the sum stays that of a fresh
    scan while the mark stays. Beside the sum, the account's opening orders with leaves on the
    symbol, one list per side sorted by (price, order id) (`perpx.core.account.order_loss`):
    only buys above the mark and sells below it lose anything, so a moved mark re-sums just
    those, from the lists' ends, instead of scanning every order (issue #14). One pointer an
    order: the price levels kept before cost ~95 bytes an order. Plain int fields: native ints
    when compiled.
    """

    __slots__ = ("buys", "loss_atoms", "mark_ticks", "sells")

    def __init__(self, mark_ticks: int, loss_atoms: int, buys: list[RestingOrder],
                 sells: list[RestingOrder]) -> None:
        self.mark_ticks = mark_ticks
        self.loss_atoms = loss_atoms
        self.buys = buys
        self.sells = sells


class Account:
    """One trader's (or a system account's) state."""

    __slots__ = (
        "account_id",
        "auto_add_margin",
        "balances",
        "collateral_off",
        "leverage",
        "model",
        "order_loss_memos",
        "order_margin_cache",
        "order_sums",
        "position_modes",
        "positions",
    )

    def __init__(self, account_id: int, model: MarginModel) -> None:
        self.account_id = account_id
        self.balances: dict[str, int] = {}
        # Coins the user switched off as collateral (`collateralSwitch` OFF, §4.2).
        self.collateral_off: set[str] = set()
        # The margin model of the account's margin mode (`perpx.core.account.margin_model`): every
        # rule that differs between modes is asked of it, chosen once when the mode is set.
        self.model = model
        self.position_modes: dict[str, PositionMode] = {}
        # Leverage and auto-add-margin by (symbol, position_idx); idx 0 in one-way mode.
        self.leverage: dict[tuple[str, int], int] = {}
        self.auto_add_margin: dict[tuple[str, int], bool] = {}
        self.positions: dict[tuple[str, int], Position] = {}
        # Open orders that may open exposure, by (symbol, position_idx, side).
        self.order_sums: dict[tuple[str, int, Side], OpenOrderSums] = {}
        # Derived: margin of open orders by symbol; dropped whenever orders or positions move.
        self.order_margin_cache: dict[str, int] = {}
        # Derived: order loss by symbol at the mark it was summed at (`OrderLossMemo`); kept
        # up to date by every order change, summed afresh when the mark moves.
        self.order_loss_memos: dict[str, OrderLossMemo] = {}

    @property
    def margin_mode(self) -> MarginMode:
        """Return the margin mode, the one its model applies."""
        return self.model.mode

    def forget_order_margin(self, symbol: str) -> None:
        """Drop the cached order margin of `symbol`: an order, position or leverage moved.

        A membership test and a ``del``, not ``dict.pop(symbol, None)``: compiled, those are
        primitives and ``pop`` with a default a generic method call. An empty cache (two
        calls in three in the standard stream: an earlier fill or order of the account has
        emptied it) is told by its size, without looking the symbol up.
        """
        cache = self.order_margin_cache
        if cache and symbol in cache:
            del cache[symbol]

    def copy(self) -> Account:
        """Return an independent copy, a draft to change and keep or drop.

        Explicit rather than `copy.deepcopy`, which cannot copy a class compiled by mypyc.
        Keys, enum values and the stateless margin model are shared; positions and sums are
        copied.
        """
        twin = Account(self.account_id, self.model)
        twin.balances = dict(self.balances)
        twin.collateral_off = set(self.collateral_off)
        twin.position_modes = dict(self.position_modes)
        twin.leverage = dict(self.leverage)
        twin.auto_add_margin = dict(self.auto_add_margin)
        twin.positions = {key: p.copy() for key, p in self.positions.items()}
        twin.order_sums = {key: s.copy() for key, s in self.order_sums.items()}
        twin.order_margin_cache = dict(self.order_margin_cache)
        # `order_loss_memos` start empty: mutable, and a draft sums its order loss afresh.
        return twin

    def balance(self, coin: str) -> int:
        """Return the wallet balance of `coin` in atoms."""
        balance: int = self.balances.get(coin, 0)
        return balance

    def credit(self, coin: str, amount_atoms: int) -> int:
        """Add `amount_atoms` (may be negative) to the wallet; return the new balance."""
        new = self.balances.get(coin, 0) + amount_atoms
        self.balances[coin] = new
        return new

    def position_mode(self, symbol: str) -> PositionMode:
        """Return the position mode of `symbol` (one-way unless switched)."""
        return self.position_modes.get(symbol, PositionMode.ONE_WAY)

    def leverage_for(self, symbol: str, position_idx: int) -> int:
        """Return the leverage (10**-8) set for a symbol and position index."""
        return self.leverage.get(position_key(symbol, position_idx), DEFAULT_LEVERAGE)

    def position(self, symbol: str, position_idx: int) -> Position | None:
        """Return the position at (symbol, idx), if it exists."""
        return self.positions.get(position_key(symbol, position_idx))

    def has_exposure(self) -> bool:
        """Tell whether the account holds any open position or opening order."""
        return any(p.size_lots for p in self.positions.values()) or any(
            s.leaves_lots for s in self.order_sums.values()
        )

    def sums(self, symbol: str, position_idx: int, side: Side) -> OpenOrderSums:
        """Return (creating if needed) the open-order sums of a side group."""
        key = side_key(symbol, position_idx, side)
        found = self.order_sums.get(key)
        if found is None:
            found = self.order_sums[key] = OpenOrderSums()
        return found

    def check(self) -> None:
        """Raise `InvariantViolation` if an order sum went negative."""
        for key, sums in self.order_sums.items():
            if sums.leaves_lots < 0 or sums.notional_atoms < 0:
                raise InvariantViolation(f"account {self.account_id}: negative order sums {key}")


class MarginModel:
    """What every margin mode answers; one stateless instance per mode (`model_for`).

    A base class, not a Protocol: compiled by mypyc, a call through a base class is a
    vtable call, through a Protocol a generic Python method call (this is on every order's
    margin check and every fill). The modes subclass it (`perpx.core.account.margin_model`).
    """

    __slots__ = ("holds_position_margin", "mode", "pools")

    def __init__(self, mode: MarginMode, holds_position_margin: bool,
                 pools: bool = False) -> None:
        self.mode = mode
        # The account is always one USD pool across coins, even in one coin at par
        # (portfolio margin: its IM and MM exist only in USD, by risk unit).
        self.pools = pools
        # Each position holds its own margin, adjusted by hand or by AMR, and is liquidated
        # on its own; otherwise the account is one pool, liquidated as a whole.
        self.holds_position_margin = holds_position_margin

    def position_im_atoms(self, position: Position, spec: InstrumentSpec, value_atoms: int,
                          fee_to_close_atoms: int) -> int:
        """Return the IM a position counts at a value (with its fee to close)."""
        raise NotImplementedError

    def risk_value(self, ledger: MarginLedger, account: Account, coin: str) -> RiskValue:
        """Return the account's risk value in `coin` at the ledger's marks, from scratch.

        Prices and order loss are asked of the ledger (`mark_ticks`, `order_loss_atoms`):
        compiled, a method of this base class is a native call, where a callable handed in
        was a generic one per symbol (issue #14).
        """
        raise NotImplementedError

    def slack_terms(self, ledger: MarginLedger, account: Account,
                    coin: str) -> tuple[int, int, int]:
        """Return `risk_value`'s (margin balance, MM, order loss): what a margin budget reads.

        A mode that can compute them for less than the whole risk value overrides this.
        """
        figures = self.risk_value(ledger, account, coin)
        return figures.margin_balance_atoms, figures.mm_atoms, figures.order_loss_atoms

    def account_risk(self, clearing: MarginLedger, account: Account) -> AccountRisk:
        """Return the account's figures in USD across its coins (next-mechanics §4.3)."""
        raise NotImplementedError

    def available_atoms(self, clearing: MarginLedger, account: Account, coin: str) -> int:
        """Return the risk value's available balance, the short way (the hot path)."""
        raise NotImplementedError

    def can_open(self, clearing: MarginLedger, account: Account, spec: InstrumentSpec, side: Side,
                 price_ticks: int, qty_lots: int, cost_atoms: int) -> bool:
        """Tell whether an order whose opening part costs `cost_atoms` is funded."""
        raise NotImplementedError

    def margin_on_open(self, position: Position, spec: InstrumentSpec, side: Side,
                       price_ticks: int, opened_lots: int) -> None:
        """Allocate what a fill that opened `opened_lots` adds to the position's margin."""
        raise NotImplementedError

    def cover_funding(self, clearing: MarginLedger, account: Account, position: Position,
                      amount_atoms: int, coin: str) -> None:
        """Take a funding payment's shortfall where the mode takes it (before it is paid)."""
        raise NotImplementedError

    def apply_leverage(self, clearing: MarginLedger, spec: InstrumentSpec, position: Position,
                       raised: bool) -> None:
        """Rework a held position's margin after its leverage changed; refuse a breach."""
        raise NotImplementedError

    def is_liquidatable(self, clearing: MarginLedger, account: Account, position: Position,
                        mark_ticks: int) -> bool:
        """Tell whether `position` (isolated) or its account (cross) is to be liquidated."""
        raise NotImplementedError

    def trigger_ticks(self, clearing: MarginLedger, position: Position) -> int | None:
        """Return the mark at which the position alone is liquidated, if the mode has one."""
        raise NotImplementedError

    def fully_hedged(self, account: Account, position: Position) -> bool:
        """Tell whether the opposite side covers the position (never deleveraged then)."""
        raise NotImplementedError

    def adl_margin_atoms(self, clearing: MarginLedger, account: Account, position: Position,
                         coin: str) -> int:
        """Return the margin that ranks a position for auto-deleveraging."""
        raise NotImplementedError

    def position_prices(self, clearing: MarginLedger, account: Account,
                        position: Position) -> tuple[int | None, int | None]:
        """Return the (liquidation, bankruptcy) prices a position shows, before clipping."""
        raise NotImplementedError


class MarginLedger:
    """What a margin model may ask of the clearing: instruments, prices, an account's figures.

    The clearing answers it; the models (and the liquidation prices they use) are typed on
    this, not on the clearing, so they sit below it. A base class the clearing extends, not a
    Protocol (as `MarginModel`): compiled by mypyc, an attribute read or a method call through
    a base class is native, through a Protocol a generic Python lookup, and the models read
    the ledger on every order's margin check.
    """

    instruments: dict[str, InstrumentSpec]
    # Coins worth exactly 1 USD that count in full (`Clearing.par_coins`).
    par_coins: set[str]
    # The index price of a symbol; the venue's portfolio-margin parameters.
    index_of: MarkOf
    pm_params: PmParams
    # The price positions are valued at (mark, else last traded); the published mark alone
    # (order loss is measured only against it); the last traded price.
    mark_of: MarkOf
    published_mark_of: MarkOf
    last_price_of: MarkOf

    def figures(self, account: Account, coin: str = "USDT") -> RiskValue:
        """Return an account's risk value in `coin` at the current marks."""
        raise NotImplementedError

    def mark_ticks(self, symbol: str) -> int | None:
        """Return `mark_of(symbol)` by a native call, for the checks of every order."""
        raise NotImplementedError

    def published_mark_ticks(self, symbol: str) -> int | None:
        """Return `published_mark_of(symbol)` by a native call, as `mark_ticks`."""
        raise NotImplementedError

    def coin_figures(self, account: Account, coin: str) -> RiskValue:
        """Return the risk value of `coin` alone (its wallet and its contracts)."""
        raise NotImplementedError

    def pooled(self, account: Account) -> bool:
        """Tell whether the account's margin is a USD pool across coins."""
        raise NotImplementedError

    def account_coins(self, account: Account) -> list[str]:
        """Return the coins an account holds, owes or trades."""
        raise NotImplementedError

    def account_risk(self, account: Account) -> AccountRisk:
        """Return the account's figures in USD."""
        raise NotImplementedError

    def usd_terms(self, account: Account, coin: str) -> tuple[RiskValue, int, int, int]:
        """Return a coin's own figures, USD price, USD equity and USD margin value."""
        raise NotImplementedError

    def usd_px(self, coin: str) -> int:
        """Return a coin's USD price in 10**-8 USD; 0 while unknown."""
        raise NotImplementedError

    def equity_atoms(self, account: Account, coin: str) -> int:
        """Return wallet + unrealized P&L in `coin` at the marks."""
        raise NotImplementedError

    def order_loss_atoms(self, account_id: int, spec: InstrumentSpec) -> int:
        """Return the loss an account's open orders on `spec` carry against the mark."""
        raise NotImplementedError

    def account_order_loss_atoms(self, account: Account, spec: InstrumentSpec) -> int:
        """Return `order_loss_atoms` of an account the caller holds."""
        raise NotImplementedError
