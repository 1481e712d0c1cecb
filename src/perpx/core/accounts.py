"""Accounts of the unified trading account: wallets per coin, modes, leverage and open-order sums.

Wallet balances change only through `credit`/`debit` with a reason, so every change can be
logged and the conservation invariant checked. System accounts (fees, insurance fund) have
negative ids, so they can never collide with a user's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpx.core.enums import MarginMode, PositionMode, Side
from perpx.core.errors import InvariantViolation
from perpx.core.numbers import RATE_ONE
from perpx.core.positions import Position

if TYPE_CHECKING:
    from perpx.core.margin_model import MarginModel

FEE_ACCOUNT_ID = -1
INSURANCE_FUND_ID = -2
SYSTEM_ACCOUNT_IDS = (FEE_ACCOUNT_ID, INSURANCE_FUND_ID)
DEFAULT_LEVERAGE = 10 * RATE_ONE  # Bybit's default for a new USDT-perpetual position


class OpenOrderSums:
    """Leaves and notional of one account's open, non-reduce-only orders on one side group.

    `margin_memo` keeps the group's last order margin with what it was computed from
    ((leaves, notional, opening lots, leverage), margin), so an unchanged group is not
    costed again (`perpx.core.margin.order_margin_atoms`).
    """

    __slots__ = ("leaves_lots", "margin_memo", "notional_atoms")

    def __init__(self) -> None:
        self.leaves_lots = 0
        self.notional_atoms = 0
        self.margin_memo: tuple[tuple[int, int, int, int], int] | None = None

    def copy(self) -> OpenOrderSums:
        """Return an independent copy."""
        twin = OpenOrderSums()
        twin.leaves_lots = self.leaves_lots
        twin.notional_atoms = self.notional_atoms
        twin.margin_memo = self.margin_memo
        return twin


class Account:
    """One trader's (or a system account's) state."""

    __slots__ = (
        "account_id",
        "auto_add_margin",
        "balances",
        "leverage",
        "model",
        "order_margin_cache",
        "order_sums",
        "position_modes",
        "positions",
    )

    def __init__(self, account_id: int, model: MarginModel) -> None:
        self.account_id = account_id
        self.balances: dict[str, int] = {}
        # The margin model of the account's margin mode (`perpx.core.margin_model`): every
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

    @property
    def margin_mode(self) -> MarginMode:
        """Return the margin mode, the one its model applies."""
        return self.model.mode

    def copy(self) -> Account:
        """Return an independent copy, a draft to change and keep or drop.

        Explicit rather than `copy.deepcopy`, which cannot copy a class compiled by mypyc.
        Keys, enum values and the stateless margin model are shared; positions and sums are
        copied.
        """
        twin = Account(self.account_id, self.model)
        twin.balances = dict(self.balances)
        twin.position_modes = dict(self.position_modes)
        twin.leverage = dict(self.leverage)
        twin.auto_add_margin = dict(self.auto_add_margin)
        twin.positions = {key: p.copy() for key, p in self.positions.items()}
        twin.order_sums = {key: s.copy() for key, s in self.order_sums.items()}
        twin.order_margin_cache = dict(self.order_margin_cache)
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
        return self.leverage.get((symbol, position_idx), DEFAULT_LEVERAGE)

    def position(self, symbol: str, position_idx: int) -> Position | None:
        """Return the position at (symbol, idx), if it exists."""
        return self.positions.get((symbol, position_idx))

    def has_exposure(self) -> bool:
        """Tell whether the account holds any open position or opening order."""
        return any(p.size_lots for p in self.positions.values()) or any(
            s.leaves_lots for s in self.order_sums.values()
        )

    def sums(self, symbol: str, position_idx: int, side: Side) -> OpenOrderSums:
        """Return (creating if needed) the open-order sums of a side group."""
        key = (symbol, position_idx, side)
        found = self.order_sums.get(key)
        if found is None:
            found = self.order_sums[key] = OpenOrderSums()
        return found

    def check(self) -> None:
        """Raise `InvariantViolation` if an order sum went negative."""
        for key, sums in self.order_sums.items():
            if sums.leaves_lots < 0 or sums.notional_atoms < 0:
                raise InvariantViolation(f"account {self.account_id}: negative order sums {key}")
