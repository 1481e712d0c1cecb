"""The records of a risk value: a position valued at a price, an account's figures in a coin.

Plain data every margin mode answers in (`perpx.core.account.accounts.MarginModel`); below the
accounts, so the margin models' protocol can name them.
"""

from __future__ import annotations

import msgspec


class PositionRisk(msgspec.Struct, frozen=True, gc=False):
    """A position valued at a price: value, unrealized P&L, IM, MM and fee to close."""

    value_atoms: int
    upnl_atoms: int
    im_atoms: int
    mm_atoms: int
    fee_to_close_atoms: int


class RiskValue(msgspec.Struct, frozen=True, gc=False):
    """An account's risk value in one settle coin (seed 001's account figures), in atoms.

    Each margin model answers it its own way (`perpx.core.account.margin_model`): equity, IM, MM,
    available balance and the IM and MM rates.
    """

    wallet_atoms: int
    upnl_atoms: int
    margin_balance_atoms: int
    position_im_atoms: int
    order_im_atoms: int
    mm_atoms: int
    order_loss_atoms: int
    available_atoms: int

    @property
    def equity_atoms(self) -> int:
        """Equity: wallet + unrealized P&L (the margin balance)."""
        return self.margin_balance_atoms

    @property
    def total_im_atoms(self) -> int:
        """Σ IM of positions and orders."""
        return self.position_im_atoms + self.order_im_atoms

    @property
    def withdrawable_atoms(self) -> int:
        """What may leave the account: never more than the wallet or the available balance."""
        return max(0, min(self.wallet_atoms, self.available_atoms))

    def im_rate(self) -> tuple[int, int]:
        """Return the account IM rate as a fraction (numerator, denominator)."""
        return self.total_im_atoms, self.margin_balance_atoms + self.order_loss_atoms

    def mm_rate(self) -> tuple[int, int]:
        """Return the account MM rate as a fraction (numerator, denominator)."""
        return self.mm_atoms, self.margin_balance_atoms + self.order_loss_atoms


class AccountRisk(msgspec.Struct, frozen=True, gc=False):
    """An account's figures in USD atoms across its coins (next-mechanics §4.3, seed 001).

    `total_equity_atoms` is every coin's equity at its USD price; `margin_balance_atoms` the
    same after each coin's collateral value ratio (a liability counts in full). Available
    balance = margin balance + order loss − IM; the IM and MM rates divide by margin balance
    + order loss.
    """

    total_equity_atoms: int
    wallet_atoms: int
    upnl_atoms: int
    margin_balance_atoms: int
    position_im_atoms: int
    order_im_atoms: int
    mm_atoms: int
    order_loss_atoms: int

    @property
    def total_im_atoms(self) -> int:
        """Σ IM of positions and orders."""
        return self.position_im_atoms + self.order_im_atoms

    @property
    def available_atoms(self) -> int:
        """Margin balance + order loss − IM (cross and portfolio margin alike, §4.3, §5.5)."""
        return self.margin_balance_atoms + self.order_loss_atoms - self.total_im_atoms

    @property
    def haircut_atoms(self) -> int:
        """What the collateral ratios take off the equity."""
        return self.total_equity_atoms - self.margin_balance_atoms

    def im_rate(self) -> tuple[int, int]:
        """Return the account IM rate as a fraction (numerator, denominator)."""
        return self.total_im_atoms, self.margin_balance_atoms + self.order_loss_atoms

    def mm_rate(self) -> tuple[int, int]:
        """Return the account MM rate as a fraction (numerator, denominator)."""
        return self.mm_atoms, self.margin_balance_atoms + self.order_loss_atoms

    def breached(self) -> bool:
        """Tell whether the MM rate is at or above 100% (a denominator ≤ 0 counts too)."""
        mm, denominator = self.mm_rate()
        return mm > 0 and mm >= denominator


class PositionSummary(msgspec.Struct, frozen=True, gc=False):
    """A position as the trader reads it (the API's position fields, in integers)."""

    size_lots: int
    entry_price_ticks: int
    value_atoms: int
    upnl_atoms: int
    margin_atoms: int
    roi: int  # 10**-8
    liq_price_ticks: int | None
    bust_price_ticks: int | None
    realized_pnl_atoms: int
    cum_realized_pnl_atoms: int


# The name the callers knew before the margin models: the same record.
AccountFigures = RiskValue
