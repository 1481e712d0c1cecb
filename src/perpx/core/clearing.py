"""Clearing: every account's wallets, positions and margin; pre-trade checks; settling fills.

It owns invariant 1 (per coin: Σ wallets, cash view, = deposits − withdrawals) and 2
(long OI = short OI). Account commands follow settle → check → commit: a change is computed
on a copy of the account, checked, and only then put in place.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from perpx.core import calc
from perpx.core.accounts import (
    FEE_ACCOUNT_ID,
    INSURANCE_FUND_ID,
    SYSTEM_ACCOUNT_IDS,
    Account,
)
from perpx.core.book.order import RestingOrder
from perpx.core.codes import RejectCode, Rejected
from perpx.core.commands import (
    AdjustMargin,
    Deposit,
    SetAutoAddMargin,
    SetLeverage,
    SetMarginMode,
    SwitchPositionMode,
    Withdraw,
)
from perpx.core.enums import BalanceReason, MarginMode, PositionMode, Side
from perpx.core.errors import InvariantViolation
from perpx.core.events import (
    AutoAddMarginSet,
    BalanceChanged,
    Event,
    Executed,
    FundingPaid,
    FundingSettled,
    LeverageSet,
    MarginAdjusted,
    MarginModeSet,
    PositionChanged,
    PositionModeSwitched,
    Trade,
)
from perpx.core.funding import funding_fee_atoms
from perpx.core.instruments import InstrumentSpec
from perpx.core.margin import (
    AccountFigures,
    account_figures,
    opposite_position_lots,
    order_cost_for_value_atoms,
    order_margin_atoms,
)
from perpx.core.positions import Position, apply_fill

_BUY = Side.BUY


class _Stamp:
    """The seq and time of the command being applied, for events raised without a trade."""

    __slots__ = ("seq", "ts_ms")

    def __init__(self, seq: int, ts_ms: int) -> None:
        self.seq = seq
        self.ts_ms = ts_ms


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


class Clearing:
    """Accounts and the rules that move money between them."""

    def __init__(
        self,
        instruments: dict[str, InstrumentSpec],
        mark_of: Callable[[str], int | None],
        orders_of: Callable[[int, str], Iterable[RestingOrder]],
        published_mark_of: Callable[[str], int | None],
        last_price_of: Callable[[str], int | None],
    ) -> None:
        self.instruments = instruments
        self.mark_of = mark_of
        self.orders_of = orders_of
        self.published_mark_of = published_mark_of
        self.last_price_of = last_price_of
        self._value_caps: dict[tuple[str, int], int] = {}
        self.coins = sorted({spec.settle_coin for spec in instruments.values()})
        self.accounts: dict[int, Account] = {i: Account(i) for i in SYSTEM_ACCOUNT_IDS}
        self.net_deposits: dict[str, int] = {}

    # -- queries ----------------------------------------------------------------------------

    def account(self, account_id: int) -> Account | None:
        """Return the account, if it exists."""
        return self.accounts.get(account_id)

    def figures(self, account: Account, coin: str = "USDT") -> AccountFigures:
        """Return an account's figures for `coin` at the current marks."""
        return account_figures(account, coin, self.instruments, self.mark_of, self.orders_of,
                               self.published_mark_of)

    def _user_account(self, account_id: int) -> Account:
        if account_id in SYSTEM_ACCOUNT_IDS or account_id <= 0:
            raise Rejected(RejectCode.UNKNOWN_ACCOUNT, f"account {account_id} cannot trade")
        account = self.accounts.get(account_id)
        if account is None:
            raise Rejected(RejectCode.UNKNOWN_ACCOUNT, f"account {account_id} has no wallet")
        return account

    def _spec(self, symbol: str) -> InstrumentSpec:
        spec = self.instruments.get(symbol)
        if spec is None:
            raise Rejected(RejectCode.UNKNOWN_SYMBOL, f"symbol invalid: {symbol}")
        return spec

    # -- wallet commands --------------------------------------------------------------------

    def deposit(self, cmd: Deposit, events: list[Event]) -> None:
        """Credit a deposit; the first deposit opens the account."""
        if cmd.account_id <= 0:
            raise Rejected(RejectCode.UNKNOWN_ACCOUNT, "user account ids are positive")
        if cmd.coin not in self.coins:
            raise Rejected(RejectCode.UNKNOWN_COIN, f"coin {cmd.coin} is not settled here")
        if cmd.amount_atoms <= 0:
            raise Rejected(RejectCode.INVALID_AMOUNT, "amount must be positive")
        account = self.accounts.get(cmd.account_id)
        if account is None:
            account = self.accounts[cmd.account_id] = Account(cmd.account_id)
        self.net_deposits[cmd.coin] = self.net_deposits.get(cmd.coin, 0) + cmd.amount_atoms
        self._move(account, cmd.coin, cmd.amount_atoms, BalanceReason.DEPOSIT, cmd, events)

    def withdraw(self, cmd: Withdraw, events: list[Event]) -> None:
        """Pay out a withdrawal of at most the withdrawable amount."""
        account = self._user_account(cmd.account_id)
        if cmd.coin not in self.coins:
            raise Rejected(RejectCode.UNKNOWN_COIN, f"coin {cmd.coin} is not settled here")
        if cmd.amount_atoms <= 0:
            raise Rejected(RejectCode.INVALID_AMOUNT, "amount must be positive")
        if cmd.amount_atoms > self.figures(account, cmd.coin).withdrawable_atoms:
            raise Rejected(RejectCode.INSUFFICIENT_WALLET_BALANCE,
                           "Wallet balance is insufficient")
        self.net_deposits[cmd.coin] -= cmd.amount_atoms
        self._move(account, cmd.coin, -cmd.amount_atoms, BalanceReason.WITHDRAW, cmd, events)

    def _move(self, account: Account, coin: str, change: int, reason: BalanceReason,
              cmd: Any, events: list[Event], symbol: str = "", trade_id: int = 0) -> None:
        balance = account.credit(coin, change)
        events.append(BalanceChanged(cmd.seq, cmd.ts_ms, account.account_id, coin, change,
                                     balance, reason, symbol, trade_id))

    # -- settings ---------------------------------------------------------------------------

    def set_leverage(self, cmd: SetLeverage, events: list[Event]) -> None:
        """Set leverage (seeds 003, 004): within the tier's max; funded; not liquidating."""
        account = self._user_account(cmd.account_id)
        spec = self._spec(cmd.symbol)
        hedge = account.position_mode(cmd.symbol) is PositionMode.HEDGE
        if not hedge and cmd.buy_leverage != cmd.sell_leverage:
            raise Rejected(RejectCode.LEVERAGE_OUT_OF_RANGE,
                           "buy and sell leverage must be equal in one-way mode")
        wanted = {1: cmd.buy_leverage, 2: cmd.sell_leverage} if hedge else {0: cmd.buy_leverage}
        for idx, leverage in wanted.items():
            self._check_leverage_value(account, spec, idx, leverage)
        if all(account.leverage_for(cmd.symbol, i) == lev for i, lev in wanted.items()):
            raise Rejected(RejectCode.LEVERAGE_NOT_MODIFIED, "Set leverage not modified")
        draft = copy.deepcopy(account)
        draft.order_margin_cache.clear()
        for idx, leverage in wanted.items():
            draft.leverage[cmd.symbol, idx] = leverage
            position = draft.position(cmd.symbol, idx)
            if position is None or not position.size_lots:
                if position is not None:
                    position.leverage = leverage
                continue
            raised = leverage > position.leverage
            position.leverage = leverage
            if draft.margin_mode is MarginMode.ISOLATED:
                # Changing leverage resets the position margin to the new requirement, and
                # the added margin goes back to zero (spec §1.5).
                position.margin_atoms = self._isolated_margin(spec, position)
                position.extra_margin_atoms = 0
                if raised and self._isolated_is_liquidatable(spec, position):
                    raise Rejected(RejectCode.WOULD_TRIGGER_LIQUIDATION,
                                   "leverage would trigger liquidation")
        if self.figures(draft, spec.settle_coin).available_atoms < 0:
            raise Rejected(RejectCode.INSUFFICIENT_AVAILABLE_BALANCE,
                           "available balance is insufficient for this leverage")
        self.accounts[account.account_id] = draft
        events.append(LeverageSet(cmd.seq, cmd.ts_ms, cmd.account_id, cmd.symbol,
                                  draft.leverage_for(cmd.symbol, 1 if hedge else 0),
                                  draft.leverage_for(cmd.symbol, 2 if hedge else 0)))
        for idx in wanted:
            position = draft.position(cmd.symbol, idx)
            if position is not None and position.size_lots:
                self._position_changed(position, cmd.seq, cmd.ts_ms, events)

    def _check_leverage_value(self, account: Account, spec: InstrumentSpec, idx: int,
                              leverage: int) -> None:
        if not spec.min_leverage <= leverage <= spec.max_leverage:
            raise Rejected(RejectCode.LEVERAGE_OUT_OF_RANGE, "leverage out of range")
        if (leverage - spec.min_leverage) % spec.leverage_step:
            raise Rejected(RejectCode.LEVERAGE_OUT_OF_RANGE, "leverage is off its step")
        value = self._exposure_atoms(account, spec, idx)
        tier = calc.tier_for_position(spec, value)
        if leverage > tier.max_leverage:
            raise Rejected(RejectCode.LEVERAGE_OUT_OF_RANGE,
                           "leverage above the risk limit tier's maximum")

    def _exposure_atoms(self, account: Account, spec: InstrumentSpec, idx: int) -> int:
        """Return position value at mark plus open-order value on the larger side (spec §4.2)."""
        return max(self._side_exposure_atoms(account, spec, idx, Side.BUY),
                   self._side_exposure_atoms(account, spec, idx, Side.SELL))

    def _side_exposure_atoms(self, account: Account, spec: InstrumentSpec, idx: int,
                             side: Side) -> int:
        """Return one side's position value at the mark plus its open-order value."""
        sums = account.order_sums.get((spec.symbol, idx, side))
        value = sums.notional_atoms if sums is not None else 0
        position = account.positions.get((spec.symbol, idx))
        if position is not None and position.size_lots and (position.size_lots > 0) == (
                side is _BUY):
            mark = self.mark_of(spec.symbol)
            value += (spec.notional_atoms(mark, position.qty_lots) if mark is not None
                      else position.entry_value_atoms)
        return value

    def set_margin_mode(self, cmd: SetMarginMode, events: list[Event]) -> None:
        """Switch isolated ↔ cross; refused with open positions or orders (seed 000)."""
        account = self._user_account(cmd.account_id)
        if cmd.margin_mode is MarginMode.PORTFOLIO:
            raise Rejected(RejectCode.MARGIN_MODE_SWITCH_REFUSED,
                           "portfolio margin is not offered yet")
        if cmd.margin_mode is account.margin_mode:
            raise Rejected(RejectCode.MARGIN_MODE_SWITCH_REFUSED, "margin mode not modified")
        if account.has_exposure():
            raise Rejected(RejectCode.MARGIN_MODE_SWITCH_REFUSED,
                           "close positions and cancel orders before switching margin mode")
        for symbol in {s for s, _ in account.leverage}:
            if (account.position_mode(symbol) is PositionMode.HEDGE
                    and account.leverage_for(symbol, 1) != account.leverage_for(symbol, 2)):
                raise Rejected(RejectCode.MARGIN_MODE_SWITCH_REFUSED,
                               "long and short leverage differ")
        account.margin_mode = cmd.margin_mode
        events.append(MarginModeSet(cmd.seq, cmd.ts_ms, cmd.account_id, cmd.margin_mode))

    def switch_position_mode(self, cmd: SwitchPositionMode, events: list[Event]) -> None:
        """Switch one-way ↔ hedge for a symbol; only when flat with no orders (seed 000)."""
        account = self._user_account(cmd.account_id)
        self._spec(cmd.symbol)
        if account.position_mode(cmd.symbol) is cmd.position_mode:
            raise Rejected(RejectCode.POSITION_MODE_SWITCH_REFUSED,
                           "Position mode is not modified")
        busy = any(p.size_lots for (s, _), p in account.positions.items() if s == cmd.symbol)
        if busy or any(True for _ in self.orders_of(cmd.account_id, cmd.symbol)):
            raise Rejected(RejectCode.POSITION_MODE_SWITCH_REFUSED,
                           "close the position and cancel orders before switching mode")
        leverage = account.leverage_for(cmd.symbol, 0 if cmd.position_mode is
                                        PositionMode.HEDGE else 1)
        for idx in (0, 1, 2):
            account.leverage.pop((cmd.symbol, idx), None)
            account.positions.pop((cmd.symbol, idx), None)
        for idx in ((1, 2) if cmd.position_mode is PositionMode.HEDGE else (0,)):
            account.leverage[cmd.symbol, idx] = leverage
        account.position_modes[cmd.symbol] = cmd.position_mode
        account.order_margin_cache.pop(cmd.symbol, None)
        events.append(PositionModeSwitched(cmd.seq, cmd.ts_ms, cmd.account_id, cmd.symbol,
                                           cmd.position_mode))

    def set_auto_add_margin(self, cmd: SetAutoAddMargin, events: list[Event]) -> None:
        """Turn auto margin replenishment on or off (isolated mode only)."""
        account = self._user_account(cmd.account_id)
        self._spec(cmd.symbol)
        if account.margin_mode is not MarginMode.ISOLATED:
            raise Rejected(RejectCode.INVALID_PARAMETER, "auto add margin is for isolated mode")
        self._check_idx(account, cmd.symbol, cmd.position_idx)
        account.auto_add_margin[cmd.symbol, cmd.position_idx] = cmd.enabled
        events.append(AutoAddMarginSet(cmd.seq, cmd.ts_ms, cmd.account_id, cmd.symbol,
                                       cmd.position_idx, cmd.enabled))

    def adjust_margin(self, cmd: AdjustMargin, events: list[Event]) -> None:
        """Add or reduce isolated margin (seed 003): never below IM + estimated closing fee."""
        account = self._user_account(cmd.account_id)
        spec = self._spec(cmd.symbol)
        self._check_idx(account, cmd.symbol, cmd.position_idx)
        if account.margin_mode is not MarginMode.ISOLATED:
            raise Rejected(RejectCode.INVALID_PARAMETER, "margin can be adjusted in isolated mode")
        position = account.position(cmd.symbol, cmd.position_idx)
        if position is None or not position.size_lots:
            raise Rejected(RejectCode.INVALID_PARAMETER, "no position to adjust")
        if cmd.amount_atoms == 0:
            raise Rejected(RejectCode.INVALID_AMOUNT, "amount must not be zero")
        if cmd.amount_atoms > 0:
            if cmd.amount_atoms > self.figures(account, spec.settle_coin).available_atoms:
                raise Rejected(RejectCode.INSUFFICIENT_AVAILABLE_BALANCE,
                               "available balance is insufficient")
        elif position.margin_atoms + cmd.amount_atoms < self._isolated_margin(spec, position):
            raise Rejected(RejectCode.MARGIN_REDUCTION_TOO_LARGE,
                           "margin cannot fall below IM + estimated closing fee")
        self._add_margin(position, cmd.amount_atoms, False, cmd.seq, cmd.ts_ms, events)

    def _add_margin(self, position: Position, change: int, automatic: bool, seq: int,
                    ts_ms: int, events: list[Event]) -> None:
        position.margin_atoms += change
        position.extra_margin_atoms += change
        events.append(MarginAdjusted(seq, ts_ms, position.account_id, position.symbol,
                                     position.position_idx, change, position.margin_atoms,
                                     automatic))
        self._position_changed(position, seq, ts_ms, events)

    def _check_idx(self, account: Account, symbol: str, idx: int) -> None:
        hedge = account.position_mode(symbol) is PositionMode.HEDGE
        if (idx in (1, 2)) != hedge or idx not in (0, 1, 2):
            raise Rejected(RejectCode.POSITION_IDX_MISMATCH, "position idx not match position mode")

    # -- isolated margin --------------------------------------------------------------------

    def _isolated_margin(self, spec: InstrumentSpec, position: Position) -> int:
        """Return IM + fee to close of a position at its entry: what isolated mode holds."""
        side = Side.BUY if position.size_lots > 0 else Side.SELL
        return (calc.initial_margin_atoms(position.entry_value_atoms, position.leverage)
                + calc.fee_to_close_for_entry_value_atoms(
                    side, position.entry_value_atoms, position.leverage, spec.taker_fee_rate))

    def _isolated_is_liquidatable(self, spec: InstrumentSpec, position: Position) -> bool:
        mark = self.mark_of(spec.symbol)
        if mark is None:
            return False
        side = Side.BUY if position.size_lots > 0 else Side.SELL
        value = spec.notional_atoms(mark, position.qty_lots)
        upnl = calc.unrealized_pnl_atoms(spec, side, position.entry_value_atoms,
                                         position.qty_lots, mark)
        ftc = calc.fee_to_close_for_entry_value_atoms(side, position.entry_value_atoms,
                                                      position.leverage, spec.taker_fee_rate)
        return position.margin_atoms + upnl <= calc.maintenance_margin_atoms(spec, value, ftc)

    def liquidation_price_ticks(self, position: Position) -> int | None:
        """Return the isolated liquidation price (UTA formula), or None when flat."""
        if not position.size_lots:
            return None
        spec = self.instruments[position.symbol]
        side = Side.BUY if position.size_lots > 0 else Side.SELL
        tier = calc.tier_for_position(spec, position.entry_value_atoms)
        numerator, denominator = calc.isolated_liquidation_price_fraction(
            spec, side, position.entry_value_atoms, position.qty_lots, position.leverage,
            position.extra_margin_atoms, tier.mmr, tier.mm_deduction_atoms, spec.taker_fee_rate)
        return max(0, calc.round_liquidation_price(side, numerator, denominator))

    def position_prices(self, account: Account, position: Position) -> tuple[int | None,
                                                                             int | None]:
        """Return (liquidation, bankruptcy) prices in ticks shown on a position, or None.

        Isolated: the UTA liquidation price (spec §1.4) and the price at which the position's
        margin is gone (§1.3). Cross: the account-level estimate (§2.2), holding the other
        symbols' marks fixed, and the price at which the account's margin balance is gone.
        Prices at or below zero are shown as None (Bybit shows "").
        """
        if not position.size_lots:
            return None, None
        spec = self.instruments[position.symbol]
        side = Side.BUY if position.size_lots > 0 else Side.SELL
        liq: int | None
        bust: int | None
        if account.margin_mode is MarginMode.ISOLATED:
            liq = self.liquidation_price_ticks(position)
            bust = calc.bankruptcy_price_for_margin_ticks(
                spec, side, position.entry_value_atoms, position.qty_lots, position.margin_atoms)
        else:
            mark = self.mark_of(spec.symbol) or position.average_entry_ticks(spec)
            figures = self.figures(account, spec.settle_coin)
            tier = calc.tier_for_position(spec, spec.notional_atoms(mark, position.qty_lots))
            liq = calc.cross_liquidation_price_estimate_ticks(
                spec, side, position.qty_lots, mark, figures.margin_balance_atoms,
                figures.mm_atoms, tier.mmr)
            bust = calc.cross_liquidation_price_estimate_ticks(
                spec, side, position.qty_lots, mark, figures.margin_balance_atoms, 0, 0)
        return (liq if liq is not None and liq > 0 else None,
                bust if bust is not None and bust > 0 else None)

    def position_summary(self, account: Account, position: Position,
                         at_last_price: bool = False) -> PositionSummary:
        """Return what a trader reads on a position: value, uPnL, margin, ROI and prices.

        Unrealized P&L is at the mark (Bybit's default) or, on request, at the last traded
        price. ROI is uPnL over the position margin (IM + fee to close, plus added margin in
        isolated mode), Bybit's calculator definition (spec §12).
        """
        spec = self.instruments[position.symbol]
        side = Side.BUY if position.size_lots > 0 else Side.SELL
        price = (self.last_price_of(spec.symbol) if at_last_price else self.mark_of(spec.symbol))
        if price is None:
            price = position.average_entry_ticks(spec)
        qty = position.qty_lots
        upnl = calc.unrealized_pnl_atoms(spec, side, position.entry_value_atoms, qty, price)
        if account.margin_mode is MarginMode.ISOLATED:
            margin = position.margin_atoms
        else:
            margin = (calc.initial_margin_atoms(spec.notional_atoms(price, qty), position.leverage)
                      + position.fee_to_close_atoms(spec))
        liq, bust = self.position_prices(account, position)
        return PositionSummary(
            size_lots=position.size_lots, entry_price_ticks=position.average_entry_ticks(spec),
            value_atoms=spec.notional_atoms(price, qty), upnl_atoms=upnl,
            margin_atoms=margin, roi=calc.roi_rate(upnl, margin) if margin > 0 else 0,
            liq_price_ticks=liq, bust_price_ticks=bust,
            realized_pnl_atoms=position.realized_pnl_atoms,
            cum_realized_pnl_atoms=position.cum_realized_pnl_atoms)

    def maybe_auto_add_margin(self, symbol: str, seq: int, ts_ms: int,
                              events: list[Event]) -> None:
        """Replenish isolated positions whose mark reached the liquidation price (seed 003).

        Adds the position's current IM from available balance, or all that is available;
        nothing for a position at 1x or less. Scans the symbol's positions; the indexed risk
        sweep comes with liquidation (#5).
        """
        mark = self.mark_of(symbol)
        if mark is None:
            return
        spec = self.instruments[symbol]
        for account_id in sorted(self.accounts):
            account = self.accounts[account_id]
            if account.margin_mode is not MarginMode.ISOLATED:
                continue
            for idx in (0, 1, 2):
                position = account.position(symbol, idx)
                if (position is None or not position.size_lots
                        or not account.auto_add_margin.get((symbol, idx), False)):
                    continue
                liq = self.liquidation_price_ticks(position)
                reached = liq is not None and (mark <= liq if position.size_lots > 0
                                               else mark >= liq)
                value = spec.notional_atoms(mark, position.qty_lots)
                if not reached or position.margin_atoms >= value:
                    continue
                im = calc.initial_margin_atoms(position.entry_value_atoms, position.leverage)
                available = self.figures(account, spec.settle_coin).available_atoms
                add = min(im, available)
                if add > 0:
                    self._add_margin(position, add, True, seq, ts_ms, events)

    # -- orders -----------------------------------------------------------------------------

    def check_order(self, account_id: int, spec: InstrumentSpec, side: Side, position_idx: int,
                    reduce_only: bool, qty_lots: int, price_ticks: int) -> tuple[int, bool]:
        """Check an order's position index and margin; return its (qty, reduce_only).

        A closing order in hedge mode (sell on the long side, buy on the short side) is
        reduce-only. A reduce-only quantity is cut to what the position can still close;
        nothing left is a 110017 rejection. Only the part of an order that opens exposure
        needs margin: its cost must fit the available balance (isolated), or keep the
        account IM rate at or under 100% (cross).
        """
        account = self.accounts.get(account_id)
        hedge = account is not None and account.position_mode(spec.symbol) is PositionMode.HEDGE
        if hedge:
            if position_idx not in (1, 2):
                raise Rejected(RejectCode.POSITION_IDX_MISMATCH,
                               "position idx not match position mode")
            reduce_only = reduce_only or (position_idx == 1) != (side is _BUY)
        elif position_idx != 0:
            raise Rejected(RejectCode.POSITION_IDX_MISMATCH,
                           "position idx not match position mode")
        if reduce_only:
            return self._reduce_only_qty(account, spec, side, position_idx, qty_lots), True
        if account is None:
            raise Rejected(RejectCode.INSUFFICIENT_AVAILABLE_BALANCE,
                           "ab not enough for new order")
        key = (spec.symbol, position_idx, side)
        sums = account.order_sums.get(key)
        resting = sums.leaves_lots if sums is not None else 0
        closing = opposite_position_lots(account, spec.symbol, position_idx, side)
        opening = max(0, resting + qty_lots - closing) - max(0, resting - closing)
        if opening == 0:
            return qty_lots, False
        leverage = account.leverage_for(spec.symbol, position_idx)
        value = spec.notional_atoms(price_ticks, opening)
        cap = self._value_cap_atoms(spec, leverage)
        # Only the order's own side grows, so only its total can newly pass the cap.
        if self._side_exposure_atoms(account, spec, position_idx, side) + value > cap:
            raise Rejected(RejectCode.RISK_LIMIT_EXCEEDED,
                           "Order placement failed as your position may exceed the max limit")
        cost = order_cost_for_value_atoms(side, value, leverage, spec.taker_fee_rate)
        mark = self.published_mark_of(spec.symbol)
        loss = (calc.order_loss_atoms(side, mark, price_ticks, qty_lots, spec)
                if mark is not None and account.margin_mode is MarginMode.CROSS else 0)
        if cost - loss > self.available_atoms(account, spec.settle_coin):
            raise Rejected(RejectCode.INSUFFICIENT_AVAILABLE_BALANCE,
                           "ab not enough for new order")
        return qty_lots, False

    def available_atoms(self, account: Account, coin: str) -> int:
        """Return the available balance: the figures' value, computed the short way.

        Isolated: wallet − position margins − order margin needs no mark. Cross without a
        hedged pair: wallet + Σ (uPnL − IM) + order loss − order margin, skipping MM. A
        hedged cross pair takes the full figures. Equal to `figures().available_atoms`
        (the property tests compare the two).
        """
        mode = account.margin_mode
        total = account.balances.get(coin, 0)
        instruments = self.instruments
        symbols: set[str] = set()
        for (symbol, idx), position in account.positions.items():
            if not position.size_lots:
                continue
            spec = instruments[symbol]
            if spec.settle_coin != coin:
                continue
            symbols.add(symbol)
            if mode is MarginMode.ISOLATED:
                total -= position.margin_atoms
                continue
            if idx and account.positions.get((symbol, 3 - idx)) is not None and (
                    account.positions[symbol, 3 - idx].size_lots):
                return self.figures(account, coin).available_atoms
            mark = self.mark_of(symbol)
            qty = position.qty_lots
            if mark is None:
                mark = calc.average_entry_display(spec, position.entry_value_atoms, qty)
            value = spec.notional_atoms(mark, qty)
            sign = 1 if position.size_lots > 0 else -1
            total += (sign * (value - position.entry_value_atoms)
                      - calc.initial_margin_atoms(value, position.leverage)
                      - position.fee_to_close_atoms(spec))
        for (symbol, _idx, _side), sums in account.order_sums.items():
            if sums.leaves_lots and instruments[symbol].settle_coin == coin:
                symbols.add(symbol)
        for symbol in symbols:
            spec = instruments[symbol]
            total -= order_margin_atoms(account, spec)
            if mode is MarginMode.CROSS:
                mark = self.published_mark_of(symbol)
                if mark is not None:
                    for order in self.orders_of(account.account_id, symbol):
                        if not order.reduce_only:
                            total += calc.order_loss_atoms(order.side, mark, order.price_ticks,
                                                           order.leaves_lots, spec)
        return total

    def check_amend(self, order: RestingOrder, price_ticks: int, leaves_lots: int) -> None:
        """Refuse an amendment that the account cannot fund or a position cannot absorb.

        A reduce-only order may not grow past what its position can close. Another order
        must find the rise in its cost (as if all of it opened) in the available balance.
        """
        spec = self.instruments[order.symbol]
        account = self.accounts[order.account_id]
        if order.reduce_only:
            if leaves_lots > order.leaves_lots:
                room = self._reduce_only_qty(account, spec, order.side, order.position_idx,
                                             leaves_lots - order.leaves_lots)
                if room < leaves_lots - order.leaves_lots:
                    raise Rejected(RejectCode.REDUCE_ONLY_NOT_SATISFIED,
                                   "Reduce-only rule not satisfied")
            return
        leverage = account.leverage_for(order.symbol, order.position_idx)
        before = order_cost_for_value_atoms(
            order.side, spec.notional_atoms(order.price_ticks, order.leaves_lots), leverage,
            spec.taker_fee_rate)
        after = order_cost_for_value_atoms(
            order.side, spec.notional_atoms(price_ticks, leaves_lots), leverage,
            spec.taker_fee_rate)
        available = self.figures(account, spec.settle_coin).available_atoms
        if after > before and after - before > available:
            raise Rejected(RejectCode.INSUFFICIENT_AVAILABLE_BALANCE,
                           "ab not enough for new order")

    def _value_cap_atoms(self, spec: InstrumentSpec, leverage: int) -> int:
        """Return the largest position value the leverage allows: the last tier it fits."""
        cap = self._value_caps.get((spec.symbol, leverage))
        if cap is None:
            cap = spec.risk_tiers[0].limit_atoms
            for tier in spec.risk_tiers:
                if tier.max_leverage >= leverage:
                    cap = tier.limit_atoms
            self._value_caps[spec.symbol, leverage] = cap
        return cap

    def _reduce_only_qty(self, account: Account | None, spec: InstrumentSpec, side: Side,
                         position_idx: int, qty_lots: int) -> int:
        position = account.position(spec.symbol, position_idx) if account else None
        held = 0
        if position is not None and position.side is not None and position.side is not side:
            held = position.qty_lots
        if account is not None:
            for order in self.orders_of(account.account_id, spec.symbol):
                if (order.reduce_only and order.side is side
                        and order.position_idx == position_idx):
                    held -= order.leaves_lots
        if held <= 0:
            raise Rejected(RejectCode.REDUCE_ONLY_NOT_SATISFIED,
                           "Reduce-only rule not satisfied")
        return min(qty_lots, held)

    def order_rested(self, order: RestingOrder) -> None:
        """Count a resting order's leaves toward its account's open-order sums."""
        if order.reduce_only:
            return
        account = self.accounts[order.account_id]
        account.order_margin_cache.pop(order.symbol, None)
        sums = account.sums(order.symbol, order.position_idx, order.side)
        sums.leaves_lots += order.leaves_lots
        sums.notional_atoms += self.instruments[order.symbol].notional_atoms(
            order.price_ticks, order.leaves_lots)

    def order_left(self, order: RestingOrder) -> None:
        """Take what is left of an order that leaves the book out of the sums."""
        if order.reduce_only or not order.leaves_lots:
            return
        self._shrink_sums(order, order.leaves_lots)

    def _shrink_sums(self, order: RestingOrder, qty_lots: int) -> None:
        account = self.accounts[order.account_id]
        account.order_margin_cache.pop(order.symbol, None)
        key = (order.symbol, order.position_idx, order.side)
        sums = account.order_sums[key]
        sums.leaves_lots -= qty_lots
        sums.notional_atoms -= self.instruments[order.symbol].notional_atoms(
            order.price_ticks, qty_lots)
        if sums.leaves_lots == 0:
            if sums.notional_atoms:
                raise InvariantViolation(f"order sums {key}: notional left without leaves")
            del account.order_sums[key]

    # -- settlement -------------------------------------------------------------------------

    def settle(self, trade: Trade, taker: RestingOrder, maker: RestingOrder,
               events: list[Event]) -> None:
        """Settle one trade for both sides: position, realized P&L, fees, isolated margin."""
        spec = self.instruments[trade.symbol]
        if not maker.reduce_only:
            self._shrink_sums(maker, trade.qty_lots)
        value = spec.notional_atoms(trade.price_ticks, trade.qty_lots)
        fee_income = 0
        for order, is_maker in ((taker, False), (maker, True)):
            rate = spec.maker_fee_rate if is_maker else spec.taker_fee_rate
            fee = calc.fee_atoms(value, rate)
            fee_income += fee
            self._settle_side(spec, trade, order, is_maker, fee, events)
        if fee_income:
            fees = self.accounts[FEE_ACCOUNT_ID]
            self._move(fees, spec.settle_coin, fee_income, BalanceReason.FEE_INCOME, trade,
                       events, trade.symbol, trade.trade_id)

    def _settle_side(self, spec: InstrumentSpec, trade: Trade, order: RestingOrder,
                     is_maker: bool, fee: int, events: list[Event]) -> None:
        account = self.accounts[order.account_id]
        key = (trade.symbol, order.position_idx)
        position = account.positions.get(key)
        if position is None:
            position = account.positions[key] = Position(
                account.account_id, trade.symbol, order.position_idx,
                account.leverage_for(trade.symbol, order.position_idx))
        effect = apply_fill(position, spec, order.side, trade.price_ticks, trade.qty_lots)
        account.order_margin_cache.pop(trade.symbol, None)
        if effect.opened_lots and account.margin_mode is MarginMode.ISOLATED:
            opened_value = spec.notional_atoms(trade.price_ticks, effect.opened_lots)
            position.margin_atoms += (
                calc.initial_margin_atoms(opened_value, position.leverage)
                + calc.fee_to_close_for_entry_value_atoms(
                    order.side, opened_value, position.leverage, spec.taker_fee_rate))
        position.book_realized(-fee)
        position.updated_ts_ms = trade.ts_ms
        coin = spec.settle_coin
        # One transaction-log line per fill, as Bybit's TRADE entry: cash flow less the fee.
        balance = account.credit(coin, effect.pnl_atoms - fee)
        events.append(BalanceChanged(trade.seq, trade.ts_ms, account.account_id, coin,
                                     effect.pnl_atoms - fee, balance, BalanceReason.TRADE,
                                     trade.symbol, trade.trade_id, effect.pnl_atoms, fee))
        events.append(Executed(trade.seq, trade.ts_ms, account.account_id, order.order_id,
                               trade.trade_id, trade.symbol, order.side, trade.price_ticks,
                               trade.qty_lots, fee, is_maker, effect.closed_lots,
                               effect.pnl_atoms - fee, order.position_idx))
        self._position_changed(position, trade.seq, trade.ts_ms, events)

    def _position_changed(self, position: Position, seq: int, ts_ms: int,
                          events: list[Event]) -> None:
        events.append(PositionChanged(seq, ts_ms, position.account_id, position.symbol,
                                      position.position_idx, position.size_lots,
                                      position.entry_value_atoms, position.leverage,
                                      position.margin_atoms, position.realized_pnl_atoms,
                                      position.cum_realized_pnl_atoms))

    # -- funding ----------------------------------------------------------------------------

    def settle_funding(self, symbol: str, rate: int, mark_ticks: int, funding_ms: int,
                       seq: int, ts_ms: int, events: list[Event]) -> None:
        """Exchange funding between every position of `symbol` at `rate` (spec §6.2).

        Positive rate: longs pay, shorts receive. A payment rounds up, a receipt down; the
        difference goes to the insurance fund, so the coin is conserved exactly. A payer in
        isolated mode pays from its available balance first and then from position margin.
        """
        spec = self.instruments[symbol]
        coin = spec.settle_coin
        paid = received = 0
        for account_id in sorted(self.accounts):
            account = self.accounts[account_id]
            for idx in (0, 1, 2):
                position = account.positions.get((symbol, idx))
                if position is None or not position.size_lots or not rate:
                    continue
                value = spec.notional_atoms(mark_ticks, position.qty_lots)
                pays = (position.size_lots > 0) == (rate > 0)
                amount = funding_fee_atoms(value, rate, pays)
                if not amount:
                    continue
                if pays:
                    paid += amount
                    if account.margin_mode is MarginMode.ISOLATED:
                        short = amount - max(0, self.available_atoms(account, coin))
                        if short > 0:
                            position.margin_atoms -= min(short, position.margin_atoms)
                else:
                    received += amount
                signed = amount if pays else -amount
                position.book_realized(-signed)
                self._move(account, coin, -signed, BalanceReason.FUNDING,
                           _Stamp(seq, ts_ms), events, symbol)
                events.append(FundingPaid(seq, ts_ms, account_id, symbol, idx,
                                          position.size_lots, value, rate, signed, funding_ms))
                self._position_changed(position, seq, ts_ms, events)
        remainder = paid - received
        if remainder:
            self._move(self.accounts[INSURANCE_FUND_ID], coin, remainder, BalanceReason.FUNDING,
                       _Stamp(seq, ts_ms), events, symbol)
        events.append(FundingSettled(seq, ts_ms, symbol, rate, mark_ticks, funding_ms, paid,
                                     received, remainder))

    # -- invariants and snapshots ----------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise `InvariantViolation` unless money is conserved and open interest balances.

        Conservation is checked in the cash view: a long's entry value has been paid out of
        its wallet, a short's received, so Σ (wallet − signed entry value) over every account,
        system accounts included, equals deposits − withdrawals, per coin, exactly.
        """
        cash: dict[str, int] = {coin: 0 for coin in self.coins}
        open_interest: dict[str, int] = {}
        for account in self.accounts.values():
            account.check()
            for coin, balance in account.balances.items():
                cash[coin] = cash.get(coin, 0) + balance
            for (symbol, _idx), position in account.positions.items():
                spec = self.instruments[symbol]
                sign = 1 if position.size_lots > 0 else -1
                cash[spec.settle_coin] -= sign * position.entry_value_atoms
                open_interest[symbol] = open_interest.get(symbol, 0) + position.size_lots
                if position.size_lots == 0 and position.entry_value_atoms:
                    raise InvariantViolation(f"flat position {symbol} keeps an entry value")
        for coin, total in cash.items():
            if total != self.net_deposits.get(coin, 0):
                raise InvariantViolation(
                    f"conservation: {coin} cash {total} != net deposits "
                    f"{self.net_deposits.get(coin, 0)}")
        for symbol, net in open_interest.items():
            if net:
                raise InvariantViolation(f"open interest of {symbol} is off by {net} lots")

    def insurance_fund(self) -> Account:
        """Return the insurance fund's account."""
        return self.accounts[INSURANCE_FUND_ID]

    def to_snapshot(self) -> dict[str, Any]:
        """Return the accounts as plain data in a canonical order."""
        return {
            "net_deposits": sorted(self.net_deposits.items()),
            "accounts": [
                {
                    "id": a.account_id,
                    "balances": sorted(a.balances.items()),
                    "margin_mode": int(a.margin_mode),
                    "position_modes": sorted((s, int(m)) for s, m in a.position_modes.items()),
                    "leverage": sorted([s, i, v] for (s, i), v in a.leverage.items()),
                    "auto_add_margin": sorted([s, i, v] for (s, i), v in
                                              a.auto_add_margin.items()),
                    "positions": [a.positions[k].to_record() for k in sorted(a.positions)],
                }
                for a in (self.accounts[i] for i in sorted(self.accounts))
            ],
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Load `to_snapshot`'s data (order sums are rebuilt from the resting orders)."""
        self.net_deposits = dict(snapshot["net_deposits"])
        self.accounts = {}
        for data in snapshot["accounts"]:
            account = Account(data["id"])
            account.balances = dict(data["balances"])
            account.margin_mode = MarginMode(data["margin_mode"])
            account.position_modes = {s: PositionMode(m) for s, m in data["position_modes"]}
            account.leverage = {(s, i): v for s, i, v in data["leverage"]}
            account.auto_add_margin = {(s, i): v for s, i, v in data["auto_add_margin"]}
            for record in data["positions"]:
                position = Position.from_record(record)
                account.positions[position.symbol, position.position_idx] = position
            self.accounts[account.account_id] = account
