"""Liquidation and bankruptcy prices as a position shows them, and what AMR does near them.

Acting on a breach (cancelling orders, partial liquidation, takeover, insurance fund, ADL) is
built on these in issue #5; here are the prices (spec §1.3, §1.4, §2.2), the position as a
trader reads it, and auto margin replenishment (seed 003), which acts before liquidation.

The position's record (`PositionSummary`) lives with the other plain records in
`perpx.core.account.risk_value`: a module that defines a msgspec Struct stays pure Python, and
this one, on the liquidation path of every mark move, is compiled with the core.
"""

from __future__ import annotations

from perpx.core import calc, liqprice
from perpx.core.account.accounts import Account, MarginLedger
from perpx.core.account.positions import Position
from perpx.core.account.risk_value import PositionSummary
from perpx.core.contract import UNREACHABLE_PRICE_TICKS
from perpx.core.enums import Side
from perpx.core.events import Event
from perpx.core.instruments import LiquidationFormula


class ReplenishingLedger(MarginLedger):
    """What auto margin replenishment asks of the clearing besides the margin figures.

    A base class the clearing extends, as `MarginLedger` is.
    """

    accounts: dict[int, Account]

    def add_margin(self, position: Position, change: int, automatic: bool, seq: int,
                   ts_ms: int, events: list[Event]) -> None:
        """Move an isolated position's margin by `change` (hand or AMR) and say so."""
        raise NotImplementedError


def liquidation_price_ticks(clearing: MarginLedger, position: Position) -> int | None:
    """Return the isolated liquidation price (the instrument's formula, §14 Q2), or None.

    It depends only on the position's own size, entry value, leverage and added margin, so it
    is kept on the position until one of those moves (the risk index asks for it often).
    """
    if not position.size_lots:
        return None
    key = (position.size_lots, position.entry_value_atoms, position.leverage,
           position.extra_margin_atoms)
    cached = position.liq_cache
    if cached is not None and cached[0] == key:
        return cached[1]
    spec = clearing.instruments[position.symbol]
    side = Side.BUY if position.size_lots > 0 else Side.SELL
    tier = calc.tier_for_position(spec, position.entry_value_atoms)
    price = max(0, liqprice.isolated_liquidation_price_selected_ticks(
        spec, side, position.entry_value_atoms, position.qty_lots, position.leverage,
        position.extra_margin_atoms, tier.mmr, tier.mm_deduction_atoms))
    position.liq_cache = (key, price)
    return price


def liquidation_trigger_ticks(clearing: MarginLedger, position: Position) -> int | None:
    """Return the mark at which an isolated position is liquidated, or None when flat.

    The first the mark reaches of the published liquidation price, by the instrument's
    formula (`liquidation_price_ticks`: UTA by default, spec §14 Q2), and, under the UTA
    formula, the price where the position's actual margin meets its maintenance margin
    (`liqprice.isolated_margin_call_price_fraction`, with every tier's line: MM is the largest
    of them under the deduction recursion). They differ when margin was added (the published
    formula's ``extra/(1 -/+ f)`` puts its price a little beyond the margin call) or by
    rounding: the engine checks the margin at the mark continuously, as Bybit does, so no
    isolated position is ever left at or below its MM unliquidated (#13 B1). An instrument on
    the legacy formula is liquidated at the legacy price alone, as the older rule did.
    Kept on the position until size, entry value, leverage or margin move.
    """
    if not position.size_lots:
        return None
    key = (position.size_lots, position.entry_value_atoms, position.leverage,
           position.extra_margin_atoms, position.margin_atoms)
    cached = position.trigger_cache
    if cached is not None and cached[0] == key:
        return cached[1]
    shown = liquidation_price_ticks(clearing, position)
    if shown is None:
        return None
    spec = clearing.instruments[position.symbol]
    if spec.liq_price_formula is LiquidationFormula.LEGACY:
        position.trigger_cache = (key, shown)
        return shown
    trigger = liqprice.isolated_margin_call_trigger_ticks(
        spec, Side.BUY if position.size_lots > 0 else Side.SELL, position.entry_value_atoms,
        position.qty_lots, position.margin_atoms, position.fee_to_close_atoms(spec), shown)
    position.trigger_cache = (key, trigger)
    return trigger


def is_past_liquidation(clearing: MarginLedger, position: Position, mark_ticks: int) -> bool:
    """Tell whether the mark has reached an isolated position's liquidation trigger.

    The trigger (`liquidation_trigger_ticks`) is rounded toward the mark (DESIGN.md), so a
    position is breached at its liquidation price or when its margin meets maintenance,
    whichever comes first, never after.
    """
    trigger = liquidation_trigger_ticks(clearing, position)
    if trigger is None:
        return False
    return mark_ticks <= trigger if position.size_lots > 0 else mark_ticks >= trigger


def position_prices(clearing: MarginLedger, account: Account,
                    position: Position) -> tuple[int | None, int | None]:
    """Return (liquidation, bankruptcy) prices in ticks shown on a position, or None.

    Each margin model has its own (`MarginModel.position_prices`): isolated, the position's
    own liquidation and bankruptcy prices; cross, the account-level estimates.
    Prices at or below zero are shown as None (Bybit shows ""), and so is the price an
    inverse short at 1x does not have (`UNREACHABLE_PRICE_TICKS`, next-mechanics §1.5).
    """
    if not position.size_lots:
        return None, None
    liq, bust = account.model.position_prices(clearing, account, position)
    return (liq if liq is not None and 0 < liq < UNREACHABLE_PRICE_TICKS else None,
            bust if bust is not None and 0 < bust < UNREACHABLE_PRICE_TICKS else None)


def position_summary(clearing: MarginLedger, account: Account, position: Position,
                     at_last_price: bool = False) -> PositionSummary:
    """Return what a trader reads on a position: value, uPnL, margin, ROI and prices.

    Unrealized P&L is at the mark (Bybit's default) or, on request, at the last traded
    price. ROI is uPnL over the position margin (IM + fee to close, plus added margin in
    isolated mode), Bybit's calculator definition (spec §12).
    """
    spec = clearing.instruments[position.symbol]
    side = Side.BUY if position.size_lots > 0 else Side.SELL
    price = (clearing.last_price_of(spec.symbol) if at_last_price
             else clearing.mark_of(spec.symbol))
    if price is None:
        price = position.average_entry_ticks(spec)
    qty = position.qty_lots
    contract = spec.contract
    upnl = contract.unrealised_pnl_atoms(side, position.entry_value_atoms, qty, price)
    value = contract.value_ceil_atoms(price, qty)
    margin = account.model.position_im_atoms(position, spec, value,
                                             position.fee_to_close_atoms(spec))
    liq, bust = position_prices(clearing, account, position)
    return PositionSummary(
        size_lots=position.size_lots, entry_price_ticks=position.average_entry_ticks(spec),
        value_atoms=value, upnl_atoms=upnl,
        margin_atoms=margin, roi=calc.roi_rate(upnl, margin) if margin > 0 else 0,
        liq_price_ticks=liq, bust_price_ticks=bust,
        realized_pnl_atoms=position.realized_pnl_atoms,
        cum_realized_pnl_atoms=position.cum_realized_pnl_atoms)


def maybe_auto_add_margin(clearing: ReplenishingLedger, symbol: str, seq: int, ts_ms: int,
                          events: list[Event], account_ids: list[int] | None = None) -> None:
    """Replenish isolated positions whose mark reached the liquidation price (seed 003).

    Adds the position's current IM from available balance, or all that is available;
    nothing for a position at 1x or less. Looks at `account_ids` (the risk index's
    candidates for this mark) or, without them, at every account.
    """
    mark = clearing.mark_of(symbol)
    if mark is None:
        return
    spec = clearing.instruments[symbol]
    for account_id in (sorted(clearing.accounts) if account_ids is None else account_ids):
        account = clearing.accounts[account_id]
        if not account.model.holds_position_margin:
            continue
        for idx in (0, 1, 2):
            position = account.position(symbol, idx)
            if (position is None or not position.size_lots
                    or not account.auto_add_margin.get((symbol, idx), False)):
                continue
            reached = is_past_liquidation(clearing, position, mark)
            value = spec.contract.value_ceil_atoms(mark, position.qty_lots)
            if not reached or position.margin_atoms >= value:
                continue
            im = spec.contract.initial_margin_atoms(position.entry_value_atoms,
                                                    position.leverage)
            available = clearing.figures(account, spec.settle_coin).available_atoms
            add = min(im, available)
            if add > 0:
                clearing.add_margin(position, add, True, seq, ts_ms, events)
