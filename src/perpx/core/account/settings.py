"""Account settings: leverage, margin mode, position mode, margin adjustment and AMR switch.

Each follows settle → check → commit: a change is worked out (on a copy of the account where
it touches margin), checked against the rules of seeds 000, 003 and 004, and only then kept.
A refusal raises `Rejected` and changes nothing.
"""

from __future__ import annotations

from perpx.core import calc
from perpx.core.account.accounts import Account
from perpx.core.account.clearing import Clearing
from perpx.core.account.margin_model import IsolatedMargin, model_for
from perpx.core.codes import RejectCode, Rejected
from perpx.core.commands import (
    AdjustMargin,
    SetAutoAddMargin,
    SetLeverage,
    SetMarginMode,
    SwitchPositionMode,
)
from perpx.core.enums import PositionMode
from perpx.core.events import (
    AutoAddMarginSet,
    Event,
    LeverageSet,
    MarginModeSet,
    PositionModeSwitched,
)
from perpx.core.instruments import InstrumentSpec
from perpx.core.keys import position_key
from perpx.core.orders.rules import check_position_idx, position_indexes


def set_leverage(clearing: Clearing, cmd: SetLeverage, events: list[Event]) -> None:
    """Set leverage (seeds 003, 004): within the tier's max; funded; not liquidating."""
    account = clearing.user_account(cmd.account_id)
    spec = clearing.spec_of(cmd.symbol)
    hedge = account.position_mode(cmd.symbol) is PositionMode.HEDGE
    if not hedge and cmd.buy_leverage != cmd.sell_leverage:
        raise Rejected(RejectCode.LEVERAGE_OUT_OF_RANGE,
                       "buy and sell leverage must be equal in one-way mode")
    wanted = {1: cmd.buy_leverage, 2: cmd.sell_leverage} if hedge else {0: cmd.buy_leverage}
    for idx, leverage in wanted.items():
        _check_leverage_value(clearing, account, spec, idx, leverage)
    if all(account.leverage_for(cmd.symbol, i) == lev for i, lev in wanted.items()):
        raise Rejected(RejectCode.LEVERAGE_NOT_MODIFIED, "Set leverage not modified")
    draft = account.copy()
    draft.order_margin_cache.clear()
    for idx, leverage in wanted.items():
        draft.leverage[position_key(cmd.symbol, idx)] = leverage
        position = draft.position(cmd.symbol, idx)
        if position is None or not position.size_lots:
            if position is not None:
                position.leverage = leverage
            continue
        raised = leverage > position.leverage
        position.leverage = leverage
        # What the mode does to a held position's margin (isolated: reset, spec §1.5).
        draft.model.apply_leverage(clearing, spec, position, raised)
    if clearing.figures(draft, spec.settle_coin).available_atoms < 0:
        raise Rejected(RejectCode.INSUFFICIENT_AVAILABLE_BALANCE,
                       "available balance is insufficient for this leverage")
    clearing.accounts[account.account_id] = draft
    events.append(LeverageSet(cmd.seq, cmd.ts_ms, cmd.account_id, cmd.symbol,
                              draft.leverage_for(cmd.symbol, 1 if hedge else 0),
                              draft.leverage_for(cmd.symbol, 2 if hedge else 0)))
    for idx in wanted:
        position = draft.position(cmd.symbol, idx)
        if position is not None and position.size_lots:
            clearing.position_changed(position, cmd.seq, cmd.ts_ms, events)


def _check_leverage_value(clearing: Clearing, account: Account, spec: InstrumentSpec, idx: int,
                          leverage: int) -> None:
    if not spec.min_leverage <= leverage <= spec.max_leverage:
        raise Rejected(RejectCode.LEVERAGE_OUT_OF_RANGE, "leverage out of range")
    if (leverage - spec.min_leverage) % spec.leverage_step:
        raise Rejected(RejectCode.LEVERAGE_OUT_OF_RANGE, "leverage is off its step")
    value = clearing.exposure_atoms(account, spec, idx)
    tier = calc.tier_for_position(spec, value)
    if leverage > tier.max_leverage:
        raise Rejected(RejectCode.LEVERAGE_OUT_OF_RANGE,
                       "leverage above the risk limit tier's maximum")


# Portfolio margin's entry condition: "Equity needs to be equal to or greater than 1000 USDC"
# (Bybit's reason 3400000, next-mechanics §5.1), read as the account's total equity in USD.
PM_MIN_EQUITY_ATOMS = 1_000 * 10**8
PM_EQUITY_REASON = "3400000: Equity needs to be equal to or greater than 1000 USDC"


def set_margin_mode(clearing: Clearing, cmd: SetMarginMode, events: list[Event]) -> None:
    """Switch between isolated, cross and portfolio margin (seed 000; next-mechanics §5.1).

    Isolated ↔ anything is refused with open positions or orders (seed 000). Cross ↔
    portfolio keeps the positions, and is refused if the account's margin under the new
    mode would not cover its IM. Portfolio margin needs a total equity of 1,000 USD.
    """
    account = clearing.user_account(cmd.account_id)
    model = model_for(cmd.margin_mode)
    if model is account.model:
        raise Rejected(RejectCode.MARGIN_MODE_SWITCH_REFUSED, "margin mode not modified")
    pooled_pair = not model.holds_position_margin and not account.model.holds_position_margin
    if account.has_exposure() and not pooled_pair:
        raise Rejected(RejectCode.MARGIN_MODE_SWITCH_REFUSED,
                       "close positions and cancel orders before switching margin mode")
    for symbol in {s for s, _ in account.leverage}:
        if (account.position_mode(symbol) is PositionMode.HEDGE
                and account.leverage_for(symbol, 1) != account.leverage_for(symbol, 2)):
            raise Rejected(RejectCode.MARGIN_MODE_SWITCH_REFUSED,
                           "long and short leverage differ")
    if model.pools and clearing.account_risk(account).total_equity_atoms < PM_MIN_EQUITY_ATOMS:
        raise Rejected(RejectCode.MARGIN_MODE_SWITCH_REFUSED, PM_EQUITY_REASON)
    before = account.model
    account.model = model
    if account.has_exposure() and clearing.account_risk(account).available_atoms < 0:
        account.model = before
        raise Rejected(RejectCode.MARGIN_MODE_SWITCH_REFUSED,
                       "insufficient margin under the new margin mode")
    account.order_margin_cache.clear()
    clearing.dirty.add(account.account_id)
    if model.pools:
        clearing.multi_coin.add(account.account_id)
    events.append(MarginModeSet(cmd.seq, cmd.ts_ms, cmd.account_id, cmd.margin_mode))


def check_position_mode_switch(clearing: Clearing, account_id: int, symbol: str,
                               mode: PositionMode) -> None:
    """Raise `Rejected` unless the account may switch `symbol` to `mode`; change nothing."""
    account = clearing.user_account(account_id)
    spec = clearing.spec_of(symbol)
    if mode is PositionMode.HEDGE and spec.one_way_only:
        # UTA 2.0: inverse contracts (perpetual and futures) and USDC contracts allow one-way
        # mode only (next-mechanics §1.1, §3.1, API acct-mode.mdx); Bybit answers an
        # unsupported switch with 110029.
        raise Rejected(RejectCode.HEDGE_MODE_UNSUPPORTED,
                       f"{symbol} trades in one-way mode only")
    if account.position_mode(symbol) is mode:
        raise Rejected(RejectCode.POSITION_MODE_SWITCH_REFUSED,
                       "Position mode is not modified")
    busy = any(p.size_lots for (s, _), p in account.positions.items() if s == symbol)
    if busy or any(True for _ in clearing.orders_of(account_id, symbol)):
        raise Rejected(RejectCode.POSITION_MODE_SWITCH_REFUSED,
                       "close the position and cancel orders before switching mode")


def switch_position_mode(clearing: Clearing, cmd: SwitchPositionMode, events: list[Event]) -> None:
    """Switch one-way ↔ hedge for a symbol; only when flat with no orders (seed 000)."""
    check_position_mode_switch(clearing, cmd.account_id, cmd.symbol, cmd.position_mode)
    account = clearing.user_account(cmd.account_id)
    leverage = account.leverage_for(cmd.symbol, 0 if cmd.position_mode is
                                    PositionMode.HEDGE else 1)
    for idx in (0, 1, 2):
        account.leverage.pop(position_key(cmd.symbol, idx), None)
        account.positions.pop(position_key(cmd.symbol, idx), None)
    for idx in position_indexes(cmd.position_mode is PositionMode.HEDGE):
        account.leverage[position_key(cmd.symbol, idx)] = leverage
    account.position_modes[cmd.symbol] = cmd.position_mode
    account.order_margin_cache.pop(cmd.symbol, None)
    events.append(PositionModeSwitched(cmd.seq, cmd.ts_ms, cmd.account_id, cmd.symbol,
                                       cmd.position_mode))


def set_auto_add_margin(clearing: Clearing, cmd: SetAutoAddMargin, events: list[Event]) -> None:
    """Turn auto margin replenishment on or off (isolated mode only)."""
    account = clearing.user_account(cmd.account_id)
    clearing.spec_of(cmd.symbol)
    if not account.model.holds_position_margin:
        raise Rejected(RejectCode.INVALID_PARAMETER, "auto add margin is for isolated mode")
    _check_idx(clearing, account, cmd.symbol, cmd.position_idx)
    account.auto_add_margin[cmd.symbol, cmd.position_idx] = cmd.enabled
    events.append(AutoAddMarginSet(cmd.seq, cmd.ts_ms, cmd.account_id, cmd.symbol,
                                   cmd.position_idx, cmd.enabled))


def adjust_margin(clearing: Clearing, cmd: AdjustMargin, events: list[Event]) -> None:
    """Add or reduce isolated margin (seed 003): never below IM + estimated closing fee."""
    account = clearing.user_account(cmd.account_id)
    spec = clearing.spec_of(cmd.symbol)
    _check_idx(clearing, account, cmd.symbol, cmd.position_idx)
    if not account.model.holds_position_margin:
        raise Rejected(RejectCode.INVALID_PARAMETER, "margin can be adjusted in isolated mode")
    position = account.position(cmd.symbol, cmd.position_idx)
    if position is None or not position.size_lots:
        raise Rejected(RejectCode.INVALID_PARAMETER, "no position to adjust")
    if cmd.amount_atoms == 0:
        raise Rejected(RejectCode.INVALID_AMOUNT, "amount must not be zero")
    if cmd.amount_atoms > 0:
        if cmd.amount_atoms > clearing.figures(account, spec.settle_coin).available_atoms:
            raise Rejected(RejectCode.INSUFFICIENT_AVAILABLE_BALANCE,
                           "available balance is insufficient")
    elif position.margin_atoms + cmd.amount_atoms < IsolatedMargin.entry_margin_atoms(
            spec, position):
        raise Rejected(RejectCode.MARGIN_REDUCTION_TOO_LARGE,
                       "margin cannot fall below IM + estimated closing fee")
    clearing.add_margin(position, cmd.amount_atoms, False, cmd.seq, cmd.ts_ms, events)


def _check_idx(clearing: Clearing, account: Account, symbol: str, idx: int) -> None:
    check_position_idx(account.position_mode(symbol) is PositionMode.HEDGE, idx)
