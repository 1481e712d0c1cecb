"""Positions: signed size, entry value kept as a sum, realized P&L per reduction, one-way flips.

The entry value is Σ price × qty in atoms, not an average, so the average entry price is an
exact fraction and nothing drifts as fills add up. A reduction releases the entry value pro
rata, rounded in the exchange's favour. What a fill adds to the entry value, what a reduction
releases and realizes, and the fee to close are the instrument's contract maths
(`spec.contract`, `perpx.core.contract`).

A session-settled contract (USDC perpetuals, next-mechanics §3.2) keeps two entry values: the
*session* one in `entry_value_atoms` (reset to the mark's value at every settlement, so the
uPnL, margin and realised P&L that the rest of the core computes from it are the session's)
and the *true* one in `true_entry_atoms` (Bybit's avgPrice, never touched by a settlement:
closed P&L and break-even). Other contracts leave `true_entry_atoms` at zero.
"""

from __future__ import annotations

from typing import Any, Final

from perpx.core import calc
from perpx.core.enums import Side
from perpx.core.errors import InvariantViolation
from perpx.core.instruments import InstrumentSpec

_BUY: Final = Side.BUY
_SELL: Final = Side.SELL


class Position:
    """One position of one account: (symbol, position_idx); size > 0 long, < 0 short."""

    __slots__ = (
        "account_id",
        "cum_realized_pnl_atoms",
        "entry_value_atoms",
        "extra_margin_atoms",
        "ftc_atoms",
        "ftc_leverage",
        "ftc_signed_entry",
        "funding_atoms",
        "leverage",
        "liq_cache",
        "margin_atoms",
        "moved_key",
        "open_fee_atoms",
        "position_idx",
        "realized_pnl_atoms",
        "size_lots",
        "symbol",
        "trigger_cache",
        "true_entry_atoms",
        "updated_ts_ms",
    )

    def __init__(self, account_id: int, symbol: str, position_idx: int, leverage: int) -> None:
        self.account_id = account_id
        self.symbol = symbol
        self.position_idx = position_idx
        # Its entry in the clearing's `moved_positions`, built once: every fill and change
        # adds it, and the set then finds this very object, where a fresh tuple is allocated,
        # then compared field by field (issue #14). Typed Any: compiled, a tuple[int, str, int]
        # is an unboxed struct, rebuilt as a new tuple at each use.
        self.moved_key: Any = (account_id, symbol, position_idx)
        self.size_lots = 0
        self.entry_value_atoms = 0
        self.leverage = leverage
        # Isolated mode only: margin allocated to the position (IM + fee to close + extra).
        self.margin_atoms = 0
        self.extra_margin_atoms = 0
        self.realized_pnl_atoms = 0  # since the position last opened: trading P&L, fees, funding
        self.cum_realized_pnl_atoms = 0  # over the position's whole life
        self.updated_ts_ms = 0
        # Not yet attributed to a closing (Bybit's closed P&L, spec §12): the opening fees of
        # the size held, and the net funding it paid (received: negative). A reduction takes
        # its share pro rata (`take_share`); the flat position holds neither.
        self.open_fee_atoms = 0
        self.funding_atoms = 0
        # Session-settled contracts only: the true entry value (see the module's docstring).
        self.true_entry_atoms = 0
        # (entry value, negated for a short; leverage; fee to close): the fee is on the value
        # at bankruptcy, V(1 - 1/L) long and V(1 + 1/L) short, and a one-way position that
        # turns at the price it was opened at keeps its entry value.
        # Three int fields, not one tuple: compiled, a tuple of ints is unpacked (each item
        # unboxed) at every read and a new one boxed at every miss (issue #14).
        self.ftc_signed_entry = 0
        self.ftc_leverage = 0
        self.ftc_atoms = 0
        # Derived: ((size, entry value, leverage, added margin), isolated liquidation price),
        # and ((size, entry value, leverage, added margin, margin), liquidation trigger).
        self.liq_cache: tuple[tuple[int, int, int, int], int] | None = None
        self.trigger_cache: tuple[tuple[int, int, int, int, int], int] | None = None

    def copy(self) -> Position:
        """Return an independent copy (explicit, as `copy.deepcopy` cannot copy a mypyc class)."""
        twin = Position(self.account_id, self.symbol, self.position_idx, self.leverage)
        twin.size_lots = self.size_lots
        twin.entry_value_atoms = self.entry_value_atoms
        twin.margin_atoms = self.margin_atoms
        twin.extra_margin_atoms = self.extra_margin_atoms
        twin.realized_pnl_atoms = self.realized_pnl_atoms
        twin.cum_realized_pnl_atoms = self.cum_realized_pnl_atoms
        twin.updated_ts_ms = self.updated_ts_ms
        twin.open_fee_atoms = self.open_fee_atoms
        twin.funding_atoms = self.funding_atoms
        twin.true_entry_atoms = self.true_entry_atoms
        # The caches are tuples of ints, immutable, so the copy may share them (and its key).
        twin.moved_key = self.moved_key
        twin.ftc_signed_entry = self.ftc_signed_entry
        twin.ftc_leverage = self.ftc_leverage
        twin.ftc_atoms = self.ftc_atoms
        twin.liq_cache = self.liq_cache
        twin.trigger_cache = self.trigger_cache
        return twin

    def fee_to_close_atoms(self, spec: InstrumentSpec) -> int:
        """Return the estimated fee to close (spec §1.1), recomputed as entry, side or L change."""
        long = self.size_lots > 0
        entry = self.entry_value_atoms
        signed_entry = entry if long else -entry
        leverage = self.leverage
        if self.ftc_signed_entry == signed_entry and self.ftc_leverage == leverage:
            return self.ftc_atoms
        ftc = spec.contract.fee_to_close_atoms(
            _BUY if long else _SELL, entry, leverage, spec.taker_fee_rate)
        self.ftc_signed_entry = signed_entry
        self.ftc_leverage = leverage
        self.ftc_atoms = ftc
        return ftc

    @property
    def side(self) -> Side | None:
        """The side of the position, or None when flat."""
        if self.size_lots > 0:
            return Side.BUY
        if self.size_lots < 0:
            return Side.SELL
        return None

    @property
    def qty_lots(self) -> int:
        """The absolute size."""
        return abs(self.size_lots)

    def average_entry_ticks(self, spec: InstrumentSpec) -> int:
        """Return the average entry price in ticks, rounded half-up for display (0 when flat)."""
        if not self.size_lots:
            return 0
        return spec.contract.average_entry_display_ticks(self.entry_value_atoms, self.qty_lots)

    def true_entry_value_atoms(self, spec: InstrumentSpec) -> int:
        """Return the entry value behind Bybit's avgPrice.

        The true one of a session-settled contract (never moved by a settlement), else the
        only one there is.
        """
        return self.true_entry_atoms if spec.session_settled else self.entry_value_atoms

    def book_realized(self, amount_atoms: int) -> None:
        """Add trading P&L, a fee (negative) or funding to the realized P&L figures."""
        self.realized_pnl_atoms += amount_atoms
        self.cum_realized_pnl_atoms += amount_atoms

    def to_record(self) -> list[Any]:
        """Return the fields in a fixed order, for snapshots and the state hash.

        The true entry value is appended only when there is one (a session-settled
        position), so every other position's record, and the state hash, are as before.
        """
        record = [self.account_id, self.symbol, self.position_idx, self.size_lots,
                  self.entry_value_atoms, self.leverage, self.margin_atoms,
                  self.extra_margin_atoms, self.realized_pnl_atoms, self.cum_realized_pnl_atoms,
                  self.updated_ts_ms, self.open_fee_atoms, self.funding_atoms]
        if self.true_entry_atoms:
            record.append(self.true_entry_atoms)
        return record

    @classmethod
    def from_record(cls, record: list[Any]) -> Position:
        """Rebuild a position from `to_record`'s list (one of 11 fields predates #13 B3)."""
        (account_id, symbol, idx, size, entry, leverage, margin, extra, realized, cum,
         updated) = record[:11]
        open_fee, funding = record[11:13] if len(record) > 11 else (0, 0)
        position = cls(account_id, symbol, idx, leverage)
        position.size_lots = size
        position.entry_value_atoms = entry
        position.margin_atoms = margin
        position.extra_margin_atoms = extra
        position.realized_pnl_atoms = realized
        position.cum_realized_pnl_atoms = cum
        position.updated_ts_ms = updated
        position.open_fee_atoms = open_fee
        position.funding_atoms = funding
        if len(record) > 13:
            position.true_entry_atoms = record[13]
        return position


def take_share(amount_atoms: int, part_lots: int, held_lots: int) -> int:
    """Return the share of `amount_atoms` that closing `part_lots` of `held_lots` takes.

    Pro rata, ``amount * part / held`` rounded toward zero (so an earlier partial close
    never carries more than its exact share of a fee or of funding, whatever the sign);
    closing everything takes the whole amount, so the pieces always sum to it exactly and
    the remainder of each rounding goes with the last close (#13 B3).
    """
    if part_lots >= held_lots:
        return amount_atoms
    share = abs(amount_atoms) * part_lots // held_lots
    return share if amount_atoms >= 0 else -share


class FillEffect:
    """What one fill did to a position: how much it closed and opened, the P&L, the fees.

    `close_fee_atoms` is the closing part of the fill's fee; `open_fee_atoms` and
    `funding_atoms` the closed part's share of the position's opening fees and of the
    funding it paid (received: negative), the three deductions of Bybit's closed P&L.
    `pnl_atoms` is what the wallet realises; `entry_pnl_atoms` the closed lots' price P&L
    against the true entry, Bybit's closed P&L: the same number except for a
    session-settled contract, whose wallet realises against the session's entry.
    """

    __slots__ = ("close_fee_atoms", "closed_lots", "entry_pnl_atoms", "funding_atoms",
                 "open_fee_atoms", "opened_lots", "pnl_atoms")

    def __init__(self) -> None:
        self.closed_lots = 0
        self.opened_lots = 0
        self.pnl_atoms = 0
        self.entry_pnl_atoms = 0
        self.close_fee_atoms = 0
        self.open_fee_atoms = 0
        self.funding_atoms = 0

    @property
    def closed_pnl_atoms(self) -> int:
        """Return Bybit's closed P&L of the fill (`calc.closed_pnl_atoms`, spec §12)."""
        return calc.closed_pnl_atoms(self.entry_pnl_atoms, self.open_fee_atoms,
                                     self.close_fee_atoms, self.funding_atoms)


def apply_fill(
    position: Position, spec: InstrumentSpec, side: Side, price_ticks: int, qty_lots: int,
    fee_atoms: int = 0, into: FillEffect | None = None,
) -> FillEffect:
    """Move `position` by a fill: reduce first (realizing P&L), then open with what is left.

    The trading P&L of the reduction is booked to the position's realized P&L here (before a
    flip starts a new position's figures); the caller moves it in the wallet and books the
    fee. The fill's `fee_atoms` is split between the closed and the opened lots
    (`take_share`: the closing part rounds toward zero, the opening part takes the rest); the
    opening part joins the position's unattributed opening fees.

    In one-way mode a fill larger than an opposite position closes it at the fill price and
    opens the remainder the other way at the same price (a flip). Isolated margin is
    released pro rata to the closed quantity (the extra margin with it); the caller allocates
    margin for the opened part.

    The effect is written into `into` when given (every field, so whatever it held before
    does not matter) and returned: the settlement of a fill reads it at once and drops it, so
    it hands in one it keeps rather than allocating and freeing an object per side of every
    fill (issue #14).
    """
    # Written out for the settlement of every fill (this runs once per side per trade):
    # plain integer steps, the contract's maths called once for the reduction's P&L and once
    # for the opened value; the effect's fields kept in locals and written once at the end.
    effect = FillEffect() if into is None else into
    size = position.size_lots
    buy = side is _BUY
    closed = 0
    pnl = 0
    open_fee = 0
    funding = 0
    close_fee = 0
    if size and (size > 0) != buy:
        long = size > 0
        held = size if long else -size
        closed = qty_lots if qty_lots < held else held
        pnl, released = spec.contract.realised_pnl_on_close_atoms(
            _BUY if long else _SELL, position.entry_value_atoms, held, closed, price_ticks)
        if closed >= held:
            released_margin = position.margin_atoms
            released_extra = position.extra_margin_atoms
            open_fee = position.open_fee_atoms
            funding = position.funding_atoms
        else:
            # A zero amount's share is zero (most positions hold no added margin, and
            # funding comes hourly): no call for it.
            extra = position.extra_margin_atoms
            open_fee = position.open_fee_atoms
            funding = position.funding_atoms
            released_margin = position.margin_atoms * closed // held
            released_extra = take_share(extra, closed, held) if extra else 0
            open_fee = take_share(open_fee, closed, held) if open_fee else 0
            funding = take_share(funding, closed, held) if funding else 0
        close_fee = take_share(fee_atoms, closed, qty_lots) if fee_atoms else 0
        position.entry_value_atoms -= released
        size = position.size_lots = size - closed if long else size + closed
        position.margin_atoms -= released_margin
        position.extra_margin_atoms -= released_extra
        position.open_fee_atoms -= open_fee
        position.funding_atoms -= funding
        position.realized_pnl_atoms += pnl
        position.cum_realized_pnl_atoms += pnl
        qty_lots -= closed
        if size == 0 and (position.entry_value_atoms or position.margin_atoms
                          or position.open_fee_atoms or position.funding_atoms):
            raise InvariantViolation(
                f"apply_fill: flat position keeps entry {position.entry_value_atoms}, "
                f"margin {position.margin_atoms}, opening fee {position.open_fee_atoms} or "
                f"funding {position.funding_atoms}"
            )
    effect.closed_lots = closed
    effect.opened_lots = qty_lots
    effect.pnl_atoms = pnl
    effect.entry_pnl_atoms = pnl
    effect.close_fee_atoms = close_fee
    effect.open_fee_atoms = open_fee
    effect.funding_atoms = funding
    if qty_lots:
        if size == 0:
            position.realized_pnl_atoms = 0  # a new position starts its own realized P&L
        position.size_lots = size + qty_lots if buy else size - qty_lots
        # The contract itself, not its bound method held in a local: compiled, a method
        # called on the object is a native call, a bound method a generic Python call.
        contract = spec.contract
        # After a flip, the opened part is worth the fill's value less the closed part's
        # exit value: an inverse value rounds, and the two sides of a fill must move the
        # same whole value, however each splits it into closing and opening (conservation).
        position.entry_value_atoms += (
            contract.entry_value_atoms(price_ticks, closed + qty_lots)
            - contract.entry_value_atoms(price_ticks, closed) if closed
            else contract.entry_value_atoms(price_ticks, qty_lots))
        position.open_fee_atoms += fee_atoms - close_fee
    if spec.session_settled:  # a flag fixed with the instrument: USDT fills pay one test
        _follow_true_entry(position, spec, side, price_ticks, effect)
    return effect


def _follow_true_entry(position: Position, spec: InstrumentSpec, side: Side, price_ticks: int,
                       effect: FillEffect) -> None:
    """Move a session-settled position's true entry value by the fill `apply_fill` applied.

    The true entry is released and added by the same contract maths as the session's
    (`realised_pnl_on_close_atoms`: pro rata, in the exchange's favour), and the closed lots'
    P&L against it is the fill's `entry_pnl_atoms` (Bybit's closed P&L uses the true
    avgPrice, next-mechanics §3.2). What the position held before the fill follows from the
    effect: the closed lots plus what is left, or only the closed lots when the fill opened
    the other way (or from flat).
    """
    closed = effect.closed_lots
    if closed:
        held = closed if effect.opened_lots else closed + position.qty_lots
        long = side is _SELL  # the fill sold: it closed a long
        pnl, released = spec.contract.realised_pnl_on_close_atoms(
            _BUY if long else _SELL, position.true_entry_atoms, held, closed, price_ticks)
        position.true_entry_atoms -= released
        effect.entry_pnl_atoms = pnl
    opened = effect.opened_lots
    if opened:
        contract = spec.contract  # its methods called on it: native calls (`apply_fill`)
        position.true_entry_atoms += (contract.entry_value_atoms(price_ticks, closed + opened)
                                      - contract.entry_value_atoms(price_ticks, closed))
    if not position.size_lots and position.true_entry_atoms:
        raise InvariantViolation(
            f"apply_fill: flat position keeps a true entry {position.true_entry_atoms}")
