"""Margin of an account: position and order margin, and the account figures of seed 001.

Cross: margin balance = wallet + unrealized P&L; IM rate = ΣIM / (margin balance + order loss);
available = margin balance + order loss − ΣIM. Isolated: each position holds its own margin;
available = wallet − Σ position margin − Σ order margin (seed 001, "Available Balance").
Requirements round up; the figures are exact integers in atoms.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from perpx.core import calc
from perpx.core.accounts import DEFAULT_LEVERAGE, Account
from perpx.core.enums import MarginMode, Side
from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import RATE_ONE
from perpx.core.positions import Position

_BUY = Side.BUY
_CROSS = MarginMode.CROSS
_ISOLATED = MarginMode.ISOLATED


def opposite_position_lots(account: Account, symbol: str, position_idx: int, side: Side) -> int:
    """Return how much of an order on `side` would close an existing position, not open one."""
    if position_idx != 0:
        return 0  # hedge mode: opening orders never close (closing ones are reduce-only)
    position = account.position(symbol, 0)
    if position is None:
        return 0
    size = position.size_lots
    if side is _BUY:
        return -size if size < 0 else 0
    return size if size > 0 else 0


def order_cost_fast_atoms(sign: int, value_atoms: int, leverage: int, fee_rate: int) -> int:
    """Return `calc.order_cost_for_value_atoms` in one expression, for the hot path.

    The same three parts, each rounded up on its own: ``ceil(V*R/L)`` (IM),
    ``ceil(V*(L - s*R)*f / (L*R))`` (fee to close) and ``ceil(V*f/R)`` (fee to open); `sign`
    is +1 for a buy, -1 for a sell, and `leverage` is positive (settings refuse any other).
    The property tests check it against the layered formula.
    """
    return -((-value_atoms * RATE_ONE // leverage)
             + (-value_atoms * (leverage - sign * RATE_ONE) * fee_rate // (leverage * RATE_ONE))
             + (-value_atoms * fee_rate // RATE_ONE))


def order_margin_atoms(account: Account, spec: InstrumentSpec) -> int:
    """Return the margin held by an account's open orders on one symbol (opening parts only).

    Kept per symbol in `account.order_margin_cache` until an order, a position or the
    leverage of the symbol moves, and per side group in its `margin_memo` with the inputs
    it was computed from; the formulas are `calc.order_cost_for_value_atoms` and
    `opposite_position_lots`, written out (`order_cost_fast_atoms`).
    """
    symbol = spec.symbol
    cached = account.order_margin_cache.get(symbol)
    if cached is not None:
        return cached
    total = 0
    positions = account.positions
    leverages = account.leverage
    fee_rate = spec.taker_fee_rate
    for key, sums in account.order_sums.items():
        leaves = sums.leaves_lots
        if key[0] != symbol or not leaves:
            continue
        idx = key[1]
        sign = 1 if key[2] is _BUY else -1
        closing = 0
        if idx == 0:
            position = positions.get((symbol, 0))
            if position is not None:
                # A one-way order against the position closes it first: no margin for that.
                size = position.size_lots
                if (size < 0) if sign > 0 else (size > 0):
                    closing = size if size > 0 else -size
        opening = leaves - closing
        if opening <= 0:
            continue
        notional = sums.notional_atoms
        leverage = leverages.get((symbol, idx), DEFAULT_LEVERAGE)
        inputs = (leaves, notional, opening, leverage)
        memo = sums.margin_memo
        if memo is not None and memo[0] == inputs:
            total += memo[1]
            continue
        value = -(-notional * opening // leaves)
        cost = order_cost_fast_atoms(sign, value, leverage, fee_rate)
        sums.margin_memo = (inputs, cost)
        total += cost
    account.order_margin_cache[symbol] = total
    return total


class PositionRisk(msgspec.Struct, frozen=True, gc=False):
    """A position valued at a price: value, unrealized P&L, IM, MM and fee to close."""

    value_atoms: int
    upnl_atoms: int
    im_atoms: int
    mm_atoms: int
    fee_to_close_atoms: int


def position_risk(position: Position, spec: InstrumentSpec, mark_ticks: int,
                  mode: MarginMode) -> PositionRisk:
    """Value one position at `mark_ticks` (seed 001; spec §1.1, §1.2).

    IM is PV/L + fee to close in cross mode, and the allocated position margin in isolated
    mode; MM is PV × MMR − deduction + fee to close, with the tier of the position value.
    """
    side = Side.BUY if position.size_lots > 0 else Side.SELL
    qty = abs(position.size_lots)
    value = spec.notional_atoms(mark_ticks, qty)
    upnl = calc.unrealized_pnl_atoms(spec, side, position.entry_value_atoms, qty, mark_ticks)
    ftc = position.fee_to_close_atoms(spec)
    mm = calc.maintenance_margin_atoms(spec, value, ftc)
    if mode is MarginMode.ISOLATED:
        im = position.margin_atoms
    else:
        im = calc.initial_margin_atoms(value, position.leverage) + ftc
    return PositionRisk(value, upnl, im, mm, ftc)


class AccountFigures(msgspec.Struct, frozen=True, gc=False):
    """The account figures of seed 001, in atoms of the settle coin."""

    wallet_atoms: int
    upnl_atoms: int
    margin_balance_atoms: int
    position_im_atoms: int
    order_im_atoms: int
    mm_atoms: int
    order_loss_atoms: int
    available_atoms: int

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


def account_figures(
    account: Account,
    coin: str,
    instruments: dict[str, InstrumentSpec],
    mark_of: Callable[[str], int | None],
    order_loss_of: Callable[[int, InstrumentSpec], int],
) -> AccountFigures:
    """Compute an account's figures for `coin` with the current marks (seed 001).

    Positions are valued at `mark_of` (the mark, or the last price before any mark exists);
    order loss, measured only against a published mark price, comes from `order_loss_of`.
    """
    mode = account.margin_mode
    isolated = mode is _ISOLATED
    upnl = position_im = mm = order_im = order_loss = 0
    symbols: set[str] = set()
    hedged: dict[str, list[Position]] = {}
    for (symbol, idx), position in account.positions.items():
        size = position.size_lots
        if not size:
            continue
        spec = instruments[symbol]
        if spec.settle_coin != coin:
            continue
        symbols.add(symbol)
        qty = size if size > 0 else -size
        entry = position.entry_value_atoms
        mark = mark_of(symbol)
        if mark is None:
            mark = calc.average_entry_display(spec, entry, qty)
        # `position_risk`, written out (the property tests compare the figures with it).
        value = spec.notional_atoms(mark, qty)
        upnl += value - entry if size > 0 else entry - value
        ftc = position.fee_to_close_atoms(spec)
        mm += calc.maintenance_margin_atoms(spec, value, ftc)
        if isolated:
            position_im += position.margin_atoms
        else:
            position_im += ftc - (-value * RATE_ONE // position.leverage)
        if idx and mode is _CROSS:
            hedged.setdefault(symbol, []).append(position)
    for symbol, pair in hedged.items():
        if len(pair) == 2:
            # Both sides open in cross mode: seed 001's hedged formulas replace the sum of
            # the two positions' own IM and MM.
            spec = instruments[symbol]
            mark = mark_of(symbol) or calc.average_entry_display(
                spec, pair[0].entry_value_atoms, pair[0].qty_lots)
            for position in pair:
                risk = position_risk(position, spec, mark, mode)
                position_im -= risk.im_atoms
                mm -= risk.mm_atoms
            long, short = sorted(pair, key=lambda p: p.position_idx)
            margins = calc.hedge_im_mm_atoms(
                spec, long.qty_lots, long.entry_value_atoms, short.qty_lots,
                short.entry_value_atoms, mark, min(long.leverage, short.leverage),
                spec.taker_fee_rate)
            position_im += margins.long_im + margins.short_im
            mm += margins.long_mm + margins.short_mm
    for (symbol, _idx, _side), sums in account.order_sums.items():
        if sums.leaves_lots and instruments[symbol].settle_coin == coin:
            symbols.add(symbol)
    for symbol in sorted(symbols):
        spec = instruments[symbol]
        order_im += order_margin_atoms(account, spec)
        order_loss += order_loss_of(account.account_id, spec)
    wallet = account.balance(coin)
    margin_balance = wallet + upnl
    if mode is MarginMode.ISOLATED:
        available = wallet - position_im - order_im
    else:
        available = margin_balance + order_loss - position_im - order_im
    return AccountFigures(wallet, upnl, margin_balance, position_im, order_im, mm, order_loss,
                          available)
