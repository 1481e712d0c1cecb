"""Clearing: every account's wallets, positions and margin; pre-trade checks; settling fills.

It owns invariant 1 (per coin: Σ wallets, cash view, = deposits − withdrawals) and 2
(long OI = short OI). Account commands follow settle → check → commit: a change is computed
on a copy of the account, checked, and only then put in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from perpx.core.account.accounts import (
    CONVERSION_DESK_ID,
    DEFAULT_LEVERAGE,
    FEE_ACCOUNT_ID,
    INSURANCE_FUND_ID,
    OPENING_ACCOUNT_IDS,
    SYSTEM_ACCOUNT_IDS,
    Account,
    OpenOrderSums,
    OrderLossMemo,
)
from perpx.core.account.collateral import (
    PX_ONE,
    CollateralTable,
    coin_ceil,
    coin_floor,
    default_collateral,
    free_borrow_atoms,
    in_repay_blackout,
    interest_atoms,
    margin_value_usd,
    usd_ceil,
    usd_floor,
)
from perpx.core.account.margin_model import CROSS, ISOLATED, account_figures, model_for
from perpx.core.account.order_loss import (
    list_order,
    listed_loss_atoms,
    listed_orders,
    order_loss_change,
    unlist_order,
)
from perpx.core.account.order_loss import (
    order_loss_term as _order_loss_term,
)
from perpx.core.account.portfolio import PmParams
from perpx.core.account.positions import FillEffect, Position, apply_fill
from perpx.core.account.risk_value import AccountFigures, AccountRisk, RiskValue
from perpx.core.book.order import RestingOrder
from perpx.core.codes import RejectCode, Rejected
from perpx.core.commands import (
    Deposit,
    RepayLiability,
    SetCollateralSwitch,
    Withdraw,
)
from perpx.core.contract import (
    ContractMaths,
    fee_for_value_atoms,
    settlement_fee_atoms,
)
from perpx.core.enums import BalanceReason, MarginMode, PositionMode, Side
from perpx.core.errors import InvariantViolation
from perpx.core.events import (
    BalanceChanged,
    CollateralSwitched,
    Converted,
    Event,
    Executed,
    FundingPaid,
    FundingSettled,
    InterestCharged,
    LiabilityRepaid,
    MarginAdjusted,
    PositionChanged,
    PositionDelivered,
    SessionSettled,
)
from perpx.core.instruments import InstrumentSpec
from perpx.core.keys import position_key
from perpx.core.market import Market
from perpx.core.numbers import BOXED_ZERO, RATE_ONE, boxed, div_floor
from perpx.core.orders.rules import check_position_idx, closes_hedge_side
from perpx.core.prices.funding import funding_fee_atoms
from perpx.core.risk.liquidation import ReplenishingLedger

# Enum members read on the hot path, bound once: a class attribute lookup of an enum
# member costs several times a global's in CPython 3.11.
_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
_TRADE: Final = BalanceReason.TRADE
_HEDGE: Final = PositionMode.HEDGE
_FEE_INCOME: Final = BalanceReason.FEE_INCOME
# The events of every fill, bound once: compiled, a name imported from a pure module (the
# events are msgspec Structs) is looked up in the module's dict at each use; a Final is not.
_BALANCE_CHANGED: Final = BalanceChanged
_EXECUTED: Final = Executed
_POSITION_CHANGED: Final = PositionChanged
# An account's order loss on a symbol is kept (`OrderLossMemo`) once it holds this many orders
# there: a scan of fewer costs less than keeping the sum up to date at each of their changes
# (the realistic stream's accounts hold few; the journal bench's order flow, ~126 each).
_ORDER_LOSS_KEPT_FROM: Final = 16


# `check_order`'s quantity for an opening order whose cost the account's margin does not fund:
# returned, not raised. A refused order is common where margin runs short (a third of the
# realistic stream's orders), and compiled, a raised `Rejected` costs some 13k instructions
# (its construction, a traceback entry at each compiled frame it passes, the catch) where the
# hot caller only turns it into an event (`Engine._place`). Its code and detail are
# `NO_BALANCE_CODE` and `NO_BALANCE_DETAIL`; `no_balance` raises them for every other caller.
MARGIN_REFUSED: Final = -1
NO_BALANCE_CODE: Final = RejectCode.INSUFFICIENT_AVAILABLE_BALANCE
NO_BALANCE_DETAIL: Final = "ab not enough for new order"


def no_balance() -> Rejected:
    """Return the refusal of an order whose margin is not funded (110007)."""
    return Rejected(NO_BALANCE_CODE, NO_BALANCE_DETAIL)


def _no_price(symbol: str) -> int | None:
    return None


def _order_loss_moved(account: Account, contract: ContractMaths, order: RestingOrder,
                      before_lots: int, after_lots: int) -> None:
    """Move the account's kept order loss (`OrderLossMemo`) as an opening order's leaves move.

    Per order, its term's change (`order_loss_change`): an inverse contract rounds each
    order's loss, so there a term is not linear in its lots. An order whose leaves come from
    or go to nothing enters or leaves the memo's lists by price (every such change passes
    here: resting, requeue, fills, cancels, amends in place, cuts).
    """
    memo = account.order_loss_memos.get(order.symbol)
    if memo is None:
        return
    side = order.side
    price = order.price_ticks
    memo.loss_atoms += order_loss_change(contract, memo.mark_ticks, side, price, before_lots,
                                         after_lots)
    if not before_lots:
        if after_lots:
            list_order(memo.buys if side is _BUY else memo.sells, order)
    elif not after_lots:
        unlist_order(memo.buys if side is _BUY else memo.sells, order)


def index_reads_orders(account: Account) -> bool:
    """Tell whether the risk index's filing of `account` can read its open orders.

    An isolated account is filed by its positions' own triggers, and an account with no
    position record (never held one) is not filed at all (`RiskIndex._file`): an order
    resting on or leaving either changes nothing the index holds, so it does not mark the
    account dirty (issue #14: most refreshes of isolated accounts found their filing as it
    was). Whatever moves a position or its margin marks the account by its own path. A
    property test holds every such account filed as a fresh index files it, after every
    command.
    """
    return bool(account.positions) and not account.model.holds_position_margin


class DeliverySettled:
    """What settling a future's positions at delivery did (`Clearing.settle_delivery`)."""

    __slots__ = ("accounts", "fee_atoms", "positions", "remainder_atoms")

    def __init__(self) -> None:
        self.accounts: list[int] = []  # the accounts settled, ascending
        self.positions = 0
        self.fee_atoms = 0
        self.remainder_atoms = 0  # the rounding of the P&L, credited to the insurance fund


class Clearing(ReplenishingLedger):
    """Accounts and the rules that move money between them."""

    def __init__(
        self,
        instruments: dict[str, InstrumentSpec],
        mark_of: Callable[[str], int | None],
        orders_of: Callable[[int, str], Iterable[RestingOrder]],
        published_mark_of: Callable[[str], int | None],
        last_price_of: Callable[[str], int | None],
        order_by_id: Callable[[int], RestingOrder | None],
        index_of: Callable[[str], int | None] | None = None,
        collateral: CollateralTable | None = None,
        pm_params: PmParams | None = None,
        orders_by_account: dict[int, dict[str, dict[int, RestingOrder]]] | None = None,
        market: Market | None = None,
    ) -> None:
        self.instruments = instruments
        # The market whose `mark_of` and `mark_price.get` the price callables are (the
        # engine's), if any: `mark_ticks` asks it by a native call, where calling a stored
        # callable from compiled code is a generic Python call (issue #14).
        self.market = market
        self.mark_of = mark_of
        self.orders_of = orders_of
        self.published_mark_of = published_mark_of
        self.last_price_of = last_price_of
        self.order_by_id = order_by_id
        # The market's open orders by account and symbol (`Market.orders_by_account`), read
        # for order loss: its orders less the reduce-only ones are the account's opening
        # orders, so the clearing keeps no second index of them.
        self.orders_by_account = orders_by_account if orders_by_account is not None else {}
        self.index_of = index_of if index_of is not None else _no_price
        self.collateral = collateral if collateral is not None else default_collateral()
        # Portfolio margin's scenario grid, risk factor and IM factor (§5, §7 N14).
        self.pm_params = pm_params if pm_params is not None else PmParams()
        # Coins a wallet may hold: every settle coin, and every collateral coin the venue can
        # price (its USD price symbol is listed, or it has a fixed price).
        self.coins: list[str] = []
        # Coins worth exactly 1 USD that count in full: an account holding only one of them
        # is margined in that coin as it always was, without valuing anything in USD.
        self.par_coins: set[str] = set()
        # The settle coin of every listed contract when they all share one and it is at par,
        # else "": `pooled`'s shortcut for an account holding no other coin (`refresh_coins`).
        self.lone_coin = ""
        self.refresh_coins()
        self.accounts: dict[int, Account] = {i: Account(i, CROSS) for i in OPENING_ACCOUNT_IDS}
        # Derived: accounts whose wallet, positions or orders moved since the risk index last
        # looked at them (orders only where its filing reads them: `index_reads_orders`).
        self.dirty: set[int] = set()
        # Derived: accounts that have held a second coin, or a coin not at par, or entered
        # portfolio margin: the only ones that can be a USD pool, so the only ones the hourly
        # interest looks at (never every account).
        self.multi_coin: set[int] = set()
        self.net_deposits: dict[str, int] = {}
        # Derived: resting reduce-only orders by (account, symbol, position idx, side).
        self.reduce_only_orders: dict[tuple[int, str, int, Side], dict[int, RestingOrder]] = {}
        # Positions that changed since the trigger engine last looked (TP/SL, reduce-only).
        self.moved_positions: set[tuple[int, str, int]] = set()
        # Orders carrying TP/SL that start on fill, and their lots filled since last looked.
        self.fill_watch: set[int] = set()
        self.watched_fills: dict[int, int] = {}
        # What `apply_fill` did to the side `_settle_side` is settling, written into this one
        # object and read at once (one object per side of every fill was allocated and freed).
        self._fill_effect = FillEffect()

    # -- queries ----------------------------------------------------------------------------

    def account(self, account_id: int) -> Account | None:
        """Return the account, if it exists."""
        return self.accounts.get(account_id)

    def figures(self, account: Account, coin: str = "USDT") -> AccountFigures:
        """Return an account's figures for `coin` at the current marks, as its margin sees them.

        An account margined in one coin at par (`pooled` is False) has that coin's own
        figures. A pooled account's margin is one USD pool (next-mechanics §4.3): its margin
        balance, IM, MM, order loss and available balance are the pool's, expressed in
        `coin` at the coin's USD price (amounts down, requirements up); wallet and unrealized
        P&L stay the coin's own.
        """
        own = account_figures(self, account, coin)
        if not self.pooled(account):
            return own
        risk = self.account_risk(account)
        px = self.usd_px(coin)
        if px <= 0:
            return own
        return RiskValue(own.wallet_atoms, own.upnl_atoms,
                         coin_floor(risk.margin_balance_atoms, px),
                         coin_ceil(risk.position_im_atoms, px), coin_ceil(risk.order_im_atoms, px),
                         coin_ceil(risk.mm_atoms, px), coin_floor(risk.order_loss_atoms, px),
                         coin_floor(risk.available_atoms, px))

    def slack_terms(self, account: Account, coin: str = "USDT") -> tuple[int, int, int]:
        """Return `figures`' (margin balance, MM, order loss), skipping the IM terms it can.

        A margin budget reads only these (`RiskIndex`); an account margined in one coin has
        them from its model's `slack_terms`, a pooled one from its whole figures.
        """
        if self.pooled(account):
            figures = self.figures(account, coin)
            return figures.margin_balance_atoms, figures.mm_atoms, figures.order_loss_atoms
        return self.coin_slack_terms(account, coin)

    def coin_slack_terms(self, account: Account, coin: str) -> tuple[int, int, int]:
        """Return `coin_figures`' (margin balance, MM, order loss), as `slack_terms`.

        For a caller that already knows the account is not pooled (the risk index's budget
        of a cross account in one coin), where `figures` are the coin's own.
        """
        return account.model.slack_terms(self, account, coin)

    def coin_figures(self, account: Account, coin: str) -> AccountFigures:
        """Return the figures of `coin` alone: its wallet and the contracts settled in it."""
        return account_figures(self, account, coin)

    # -- collateral across coins (next-mechanics §4) ---------------------------------------

    def refresh_coins(self) -> None:
        """Derive the coins a wallet may hold and the coins at par from the instruments."""
        table = self.collateral
        coins = {spec.settle_coin for spec in self.instruments.values()}
        for terms in table.coins.values():
            if not terms.price_symbol or terms.price_symbol in self.instruments:
                coins.add(terms.coin)
        self.coins = sorted(coins)
        par: set[str] = set()
        for coin in self.coins:
            known = table.coin(coin)
            if known is not None and known.at_par() and self.usd_px(coin) == PX_ONE and (
                    not known.price_symbol):
                par.add(coin)
        self.par_coins = par
        settles = {spec.settle_coin for spec in self.instruments.values()}
        lone = next(iter(settles)) if len(settles) == 1 else ""
        self.lone_coin = lone if lone in par else ""

    def usd_px(self, coin: str) -> int:
        """Return a coin's USD price in 10⁻⁸ USD (next-mechanics §4.1); 0 while unknown.

        USDT is worth the table's USDT rate; a coin with a price symbol takes that USDT
        perpetual's index (its mark, then its last price, before any index) times the rate;
        otherwise an inverse contract on the coin (quoted in USD) prices it, or the table's
        fixed price (USDC, §7 N17).
        """
        symbol, _by_index = self.usd_price_source(coin)
        if not symbol:
            terms = self.collateral.coin(coin)
            if coin == "USDT":
                return self.collateral.usdt_rate_e8
            return terms.fixed_px_e8 if terms is not None and not terms.price_symbol else 0
        spec = self.instruments[symbol]
        ticks = self._price_ticks(symbol) or 0
        if spec.quote_coin == "USD":
            return ticks * spec.tick_atoms
        return ticks * spec.tick_atoms * self.collateral.usdt_rate_e8 // PX_ONE

    def usd_price_source(self, coin: str) -> tuple[str, bool]:
        """Return the symbol whose price sets a coin's USD price, and whether it is its index.

        ("", True) for a coin at a constant price (USDT at the table's rate, a fixed price);
        (symbol, False) while that symbol has no index yet (its mark or last price stands in)
        or none at all. The risk index bands a pool's collateral on this index (`usd_px`'s
        one rule).
        """
        if coin == "USDT":
            return "", True
        terms = self.collateral.coin(coin)
        candidates: list[str] = []
        if terms is not None and terms.price_symbol:
            if terms.price_symbol in self.instruments:
                candidates.append(terms.price_symbol)
        elif terms is not None:
            return "", True
        if not candidates:
            candidates = [s.symbol for s in sorted(self.instruments.values(),
                                                   key=lambda s: s.symbol)
                          if s.base_coin == coin and s.quote_coin == "USD"]
        for symbol in candidates:
            if self.index_of(symbol):
                return symbol, True
            if self.mark_of(symbol) or self.last_price_of(symbol):
                return symbol, False
        return (candidates[0], False) if candidates else ("", False)

    def _price_ticks(self, symbol: str) -> int | None:
        return self.index_of(symbol) or self.mark_of(symbol) or self.last_price_of(symbol)

    def pooled(self, account: Account) -> bool:
        """Tell whether the account's margin is a USD pool across coins (§4.3).

        Isolated margin never pools (each position keeps its settle coin). A cross account
        pools once it holds, owes or trades more than one coin, or one coin not at par; an
        account in one coin at par is margined in it exactly as a USD pool would be, and
        cheaper.
        """
        if account.model.holds_position_margin:
            return False
        if account.model.pools:
            return True
        # Every contract settles in the one coin at par, and the account holds no other (not
        # even at zero): whatever it trades, its one coin is that one, at par. The property
        # tests hold this to the walk below (`pooled_walk`).
        lone = self.lone_coin
        if lone:
            balances = account.balances
            if not balances or (len(balances) == 1 and lone in balances):
                return False
        return self.pooled_walk(account)

    def pooled_walk(self, account: Account) -> bool:
        """`pooled` for a cross account that does not pool by its model, coin by coin."""
        coin = ""
        for held, balance in account.balances.items():
            if balance:
                if not coin:
                    coin = held
                elif held != coin:
                    return True
        instruments = self.instruments
        for (symbol, _idx), position in account.positions.items():
            if position.size_lots:
                settle = instruments[symbol].settle_coin
                if not coin:
                    coin = settle
                elif settle != coin:
                    return True
        for (symbol, _idx, _side), sums in account.order_sums.items():
            if sums.leaves_lots:
                settle = instruments[symbol].settle_coin
                if not coin:
                    coin = settle
                elif settle != coin:
                    return True
        return bool(coin) and coin not in self.par_coins

    def account_coins(self, account: Account) -> list[str]:
        """Return the coins an account holds, owes or trades, sorted."""
        coins = {c for c, b in account.balances.items() if b}
        instruments = self.instruments
        coins.update(instruments[s].settle_coin for (s, _i), p in account.positions.items()
                     if p.size_lots)
        coins.update(instruments[s].settle_coin for (s, _i, _d), o in account.order_sums.items()
                     if o.leaves_lots)
        return sorted(coins)

    def account_risk(self, account: Account) -> AccountRisk:
        """Return the account's figures in USD atoms (next-mechanics §4.3, seed 001).

        Σ over its coins: total equity at the USD price, the margin balance after each
        coin's collateral ratio (`collateral.margin_value_usd`), IM, MM and order loss in USD.
        The margin model answers IM and MM (portfolio margin by its own scenarios).
        """
        return account.model.account_risk(self, account)

    def usd_terms(self, account: Account, coin: str) -> tuple[RiskValue, int, int, int]:
        """Return a coin's own figures, its USD price, its USD equity and its margin value."""
        own = self.coin_figures(account, coin)
        px = self.usd_px(coin)
        equity = own.wallet_atoms + own.upnl_atoms
        value = margin_value_usd(self.collateral.coin(coin), equity, px,
                                 coin not in account.collateral_off)
        return own, px, usd_floor(equity, px), value

    def requirement_usd(self, amount_atoms: int, coin: str) -> int:
        """Return a requirement in `coin` valued in USD atoms, rounded up."""
        return usd_ceil(amount_atoms, self.usd_px(coin))

    def liability_atoms(self, account: Account, coin: str) -> int:
        """Return a coin's liability: |min(0, equity)| (next-mechanics §4.4, `borrowAmount`)."""
        return max(0, -self.equity_atoms(account, coin))

    def repay_liabilities(self, account: Account, coin: str, seq: int, ts_ms: int,
                          events: list[Event], amount_atoms: int = 0,
                          automatic: bool = True) -> int:
        """Convert other collateral to repay liabilities; return what `coin`'s fell by.

        `coin` "" repays every owed coin, in the order of the coins' names. Sources are the
        account's other coins with a positive wallet balance, in ascending liquidation
        order (ties: lowest collateral ratio first, §7 N9), each sold at its USD index price
        to the conversion desk for the owed coin at its own, less the conversion fee
        (§4.5). `amount_atoms` caps one coin's repayment (0: all of it).
        """
        repaid = 0
        owed_coins = [coin] if coin else [c for c in self.account_coins(account)
                                          if self.liability_atoms(account, c)]
        for owed in owed_coins:
            need = self.liability_atoms(account, owed)
            if amount_atoms:
                need = min(need, amount_atoms)
            repaid += self._convert_into(account, owed, need, seq, ts_ms, events, automatic)
        return repaid

    def _convert_into(self, account: Account, owed: str, need: int, seq: int, ts_ms: int,
                      events: list[Event], automatic: bool) -> int:
        """Sell other coins for up to `need` of `owed`; return how much was bought."""
        table = self.collateral
        owed_px = self.usd_px(owed)
        if need <= 0 or owed_px <= 0:
            return 0
        keep = RATE_ONE - table.conversion_fee_rate

        def order(coin: str) -> tuple[int, int, str]:
            terms = table.coin(coin)
            if terms is None:
                return (1 << 62, 0, coin)
            return (terms.liquidation_order, terms.tiers[0].ratio if terms.tiers else 0, coin)

        sources = sorted((c for c, b in account.balances.items() if b > 0 and c != owed),
                         key=order)
        bought_total = 0
        for source in sources:
            if need <= 0:
                break
            px = self.usd_px(source)
            if px <= 0:
                continue
            # Enough of the source to buy `need`, rounded up, and never more than it holds.
            sold = min(account.balances[source],
                       -(-need * owed_px * RATE_ONE // (px * keep)))
            bought = sold * px * keep // (owed_px * RATE_ONE)
            if bought <= 0:
                continue
            desk = self.accounts.get(CONVERSION_DESK_ID)
            if desk is None:
                desk = self.accounts[CONVERSION_DESK_ID] = Account(CONVERSION_DESK_ID, CROSS)
            self._move(account, source, -sold, BalanceReason.CURRENCY_SELL, seq, ts_ms, events)
            self._move(desk, source, sold, BalanceReason.CURRENCY_SELL, seq, ts_ms, events)
            self._move(desk, owed, -bought, BalanceReason.CURRENCY_BUY, seq, ts_ms, events)
            self._move(account, owed, bought, BalanceReason.CURRENCY_BUY, seq, ts_ms, events)
            events.append(Converted(seq, ts_ms, account.account_id, source, sold, owed, bought,
                                    px, owed_px, automatic))
            need -= bought
            bought_total += bought
        return bought_total

    def set_params(self, collateral: CollateralTable, pm_params: PmParams) -> None:
        """Put a venue's collateral table and PM parameters in force (`SetVenueParams`).

        The coins and the coins at par follow the new table; every account is re-filed by
        the risk index, since ratios, prices and grids may all have moved. An account that
        now holds a coin off par joins the accounts the hourly interest looks at.
        """
        self.collateral = collateral
        self.pm_params = pm_params
        self.refresh_coins()
        self.dirty.update(self.accounts)
        self.multi_coin.update(a.account_id for a in self.accounts.values()
                               if self._may_pool(a))

    def _may_pool(self, account: Account) -> bool:
        """Tell whether an account can be a USD pool (the `multi_coin` rule)."""
        return (len(account.balances) > 1 or account.model.pools
                or any(c not in self.par_coins for c in account.balances))

    def set_collateral_switch(self, cmd: SetCollateralSwitch, events: list[Event]) -> None:
        """Switch coins on or off as collateral, all or nothing (§4.2).

        USDT and USDC cannot be switched off; a coin the venue does not take as collateral
        cannot be switched on; switching off may not leave the account's IM rate at or above
        100% (its available balance below zero).
        """
        account = self.user_account(cmd.account_id)
        off = set(account.collateral_off)
        for coin, on in cmd.switches:
            terms = self.collateral.coin(coin)
            if terms is None or coin not in self.coins:
                raise Rejected(RejectCode.UNKNOWN_COIN, f"coin {coin} is not collateral here")
            if not on and not terms.switchable:
                raise Rejected(RejectCode.COLLATERAL_NOT_SWITCHABLE,
                               f"{coin} cannot be switched off as collateral")
            if on:
                off.discard(coin)
            else:
                off.add(coin)
        before = account.collateral_off
        account.collateral_off = off
        risk = self.account_risk(account)
        if off - before and risk.total_im_atoms and risk.available_atoms < 0:
            account.collateral_off = before
            raise Rejected(RejectCode.COLLATERAL_SWITCH_REFUSED,
                           "switching the collateral off would leave too little margin")
        self.dirty.add(account.account_id)
        for coin, on in cmd.switches:
            events.append(CollateralSwitched(cmd.seq, cmd.ts_ms, account.account_id, coin, on))

    def repay(self, cmd: RepayLiability, events: list[Event]) -> None:
        """Repay liabilities on the user's request (`/v5/account/repay` and kin, §4.4).

        Refused while interest is computed (hh:04:00–hh:05:30, §7 N18). A liability here is
        a negative equity, so a coin's own balance has nothing to repay it with: without
        conversion nothing can be repaid (Bybit's no-convert-repay uses a spot balance).
        """
        account = self.user_account(cmd.account_id)
        if in_repay_blackout(cmd.ts_ms):
            raise Rejected(RejectCode.REPAY_WINDOW_CLOSED,
                           "repayment is unavailable between hh:04:00 and hh:05:30")
        if cmd.coin and cmd.coin not in self.coins:
            raise Rejected(RejectCode.UNKNOWN_COIN, f"coin {cmd.coin} is not settled here")
        if cmd.amount_atoms < 0:
            raise Rejected(RejectCode.INVALID_AMOUNT, "amount must not be negative")
        owed = [cmd.coin] if cmd.coin else [c for c in self.account_coins(account)
                                            if self.liability_atoms(account, c)]
        if not any(self.liability_atoms(account, c) for c in owed):
            raise Rejected(RejectCode.NOTHING_TO_REPAY, "no liability to repay")
        for coin in owed:
            repaid = 0
            if cmd.convert:
                repaid = self.repay_liabilities(account, coin, cmd.seq, cmd.ts_ms, events,
                                                cmd.amount_atoms, automatic=False)
            events.append(LiabilityRepaid(cmd.seq, cmd.ts_ms, account.account_id, coin, repaid,
                                          cmd.convert))

    def charge_interest(self, seq: int, ts_ms: int, events: list[Event],
                        hour_ms: int) -> None:
        """Charge an hour's interest on every liability of a pooled account (§4.4, §7 N18).

        The liability at this hh:05 (`|min(0, equity)|`), less its interest-free part, at the
        coin's hourly rate; booked at once as more liability in the same coin, paid to the
        fee account, with an `InterestCharged` row for the borrow history.
        """
        table = self.collateral
        fee_account = self.accounts[FEE_ACCOUNT_ID]
        for account_id in sorted(self.multi_coin):
            account = self.accounts[account_id]
            if account_id <= 0 or not self.pooled(account):
                continue
            for coin in self.account_coins(account):
                terms = table.coin(coin)
                due = self.interest_due(account, coin)
                if terms is None or due is None:
                    continue
                borrow, free, unrealised, cost = due
                events.append(InterestCharged(seq, ts_ms, account_id, hour_ms, coin,
                                              borrow, free,
                                              max(0, borrow - free), unrealised,
                                              terms.hourly_borrow_rate, cost))
                if cost:
                    self._move(account, coin, -cost, BalanceReason.INTEREST, seq, ts_ms, events)
                    self._move(fee_account, coin, cost, BalanceReason.INTEREST, seq, ts_ms,
                               events)
                limit = terms.max_borrowing_atoms
                if limit and borrow + cost > limit:
                    # Above the borrowing limit Bybit auto-repays (§4.4): the excess is bought
                    # with other collateral, in liquidation order.
                    self.repay_liabilities(account, coin, seq, ts_ms, events,
                                           borrow + cost - limit)

    def interest_due(self, account: Account, coin: str) -> tuple[int, int, int, int] | None:
        """Return a coin's hour of interest now: (borrow, free, unrealised part, cost).

        The liability (`|min(0, equity)|`), its interest-free part, the part owed to
        unrealised losses, and the interest on the rest at the coin's hourly rate (§4.4);
        None without a liability or borrowing terms. `charge_interest` books it at hh:05;
        `perpx calc account` shows it.
        """
        terms = self.collateral.coin(coin)
        equity = self.equity_atoms(account, coin)
        if terms is None or equity >= 0:
            return None
        wallet = account.balances.get(coin, 0)
        borrow = -equity
        free = free_borrow_atoms(terms, wallet, equity)
        return (borrow, free, max(0, borrow - max(0, -wallet)),
                interest_atoms(terms, borrow, free))

    def equity_atoms(self, account: Account, coin: str) -> int:
        """Return total equity in `coin`: wallet + unrealized P&L at the marks (seed 001).

        The same as the figures' wallet + uPnL, without valuing any margin.
        """
        equity = account.balances.get(coin, 0)
        instruments = self.instruments
        for position in account.positions.values():
            size = position.size_lots
            if not size:
                continue
            spec = instruments[position.symbol]
            if spec.settle_coin != coin:
                continue
            # `mark_of`, through the market (`mark_ticks`): a native call, where the bound
            # method held in a field is a generic one.
            mark = self.mark_ticks(position.symbol)
            if mark is None:
                continue  # valued at entry: no unrealized P&L
            qty = size if size > 0 else -size
            if spec.contract.value_sign < 0:  # inverse: the contract's rounding
                equity += spec.contract.unrealised_pnl_atoms(
                    _BUY if size > 0 else _SELL, position.entry_value_atoms, qty, mark)
                continue
            # `calc.unrealized_pnl_atoms`, written out: value at the mark less the entry value
            # (the other way round for a short), exact.
            value = spec.contract.value_ceil_atoms(mark, qty)
            equity += (value - position.entry_value_atoms if size > 0
                       else position.entry_value_atoms - value)
        return equity

    def user_account(self, account_id: int) -> Account:
        """Return a user's account, refusing system accounts and accounts without a wallet."""
        if account_id in SYSTEM_ACCOUNT_IDS or account_id <= 0:
            raise Rejected(RejectCode.UNKNOWN_ACCOUNT, f"account {account_id} cannot trade")
        account = self.accounts.get(account_id)
        if account is None:
            raise Rejected(RejectCode.UNKNOWN_ACCOUNT, f"account {account_id} has no wallet")
        return account

    def spec_of(self, symbol: str) -> InstrumentSpec:
        """Return the instrument, refusing an unknown symbol."""
        spec = self.instruments.get(symbol)
        if spec is None:
            raise Rejected(RejectCode.UNKNOWN_SYMBOL, f"symbol invalid: {symbol}")
        return spec

    # -- wallet commands --------------------------------------------------------------------

    def deposit(self, cmd: Deposit, events: list[Event]) -> None:
        """Credit a deposit; the first deposit opens the account."""
        if cmd.account_id <= 0 and cmd.account_id != INSURANCE_FUND_ID:
            raise Rejected(RejectCode.UNKNOWN_ACCOUNT,
                           "deposits go to user accounts (positive ids) or the insurance fund")
        if cmd.coin not in self.coins:
            raise Rejected(RejectCode.UNKNOWN_COIN, f"coin {cmd.coin} is not settled here")
        if cmd.amount_atoms <= 0:
            raise Rejected(RejectCode.INVALID_AMOUNT, "amount must be positive")
        account = self.accounts.get(cmd.account_id)
        if account is None:
            account = self.accounts[cmd.account_id] = Account(cmd.account_id, CROSS)
        self.net_deposits[cmd.coin] = self.net_deposits.get(cmd.coin, 0) + cmd.amount_atoms
        self._move(account, cmd.coin, cmd.amount_atoms, BalanceReason.DEPOSIT, cmd.seq,
                   cmd.ts_ms, events)

    def withdraw(self, cmd: Withdraw, events: list[Event]) -> None:
        """Pay out a withdrawal of at most the withdrawable amount."""
        account = self.user_account(cmd.account_id)
        if cmd.coin not in self.coins:
            raise Rejected(RejectCode.UNKNOWN_COIN, f"coin {cmd.coin} is not settled here")
        if cmd.amount_atoms <= 0:
            raise Rejected(RejectCode.INVALID_AMOUNT, "amount must be positive")
        if cmd.amount_atoms > self.figures(account, cmd.coin).withdrawable_atoms:
            raise Rejected(RejectCode.INSUFFICIENT_WALLET_BALANCE,
                           "Wallet balance is insufficient")
        self.net_deposits[cmd.coin] -= cmd.amount_atoms
        self._move(account, cmd.coin, -cmd.amount_atoms, BalanceReason.WITHDRAW, cmd.seq,
                   cmd.ts_ms, events)

    def move(self, account: Account, coin: str, change: int, reason: BalanceReason, seq: int,
             ts_ms: int, events: list[Event], symbol: str = "") -> None:
        """Credit `change` (may be negative) to a wallet and log it."""
        self._move(account, coin, change, reason, seq, ts_ms, events, symbol)

    def _move(self, account: Account, coin: str, change: int, reason: BalanceReason,
              seq: Any, ts_ms: Any, events: list[Event], symbol: str = "",
              trade_id: Any = 0) -> None:
        # `seq`, `ts_ms` and `trade_id` only go into the event: typed Any, a caller holding
        # them boxed (the settlement of a fill) hands them on without boxing them again.
        # `Account.credit`, written out: the balance and the account id boxed once each,
        # for the wallet and the event (and the dirty set).
        balances = account.balances
        balance: Any = balances.get(coin, 0) + change
        balances[coin] = balance
        account_id: Any = account.account_id
        self.dirty.add(account_id)
        if len(balances) > 1 or coin not in self.par_coins:
            self.multi_coin.add(account_id)
        events.append(_BALANCE_CHANGED(seq, ts_ms, account_id, coin, change, balance,
                                       reason, symbol, trade_id))

    # -- settings ---------------------------------------------------------------------------

    def exposure_atoms(self, account: Account, spec: InstrumentSpec, idx: int) -> int:
        """Return position value at mark plus open-order value on the larger side (spec §4.2)."""
        return max(self._side_exposure_atoms(account, spec, idx, Side.BUY),
                   self._side_exposure_atoms(account, spec, idx, Side.SELL))

    def _side_exposure_atoms(self, account: Account, spec: InstrumentSpec, idx: int,
                             side: Side) -> int:
        """Return one side's position value at the mark plus its open-order value."""
        sums = account.order_sums.get(spec.keys.side(idx, side))
        value = sums.notional_atoms if sums is not None else 0
        position = account.positions.get(spec.keys.position(idx))
        if position is not None and position.size_lots and (position.size_lots > 0) == (
                side is _BUY):
            mark = self.mark_of(spec.symbol)
            value += (spec.contract.value_ceil_atoms(mark, position.qty_lots) if mark is not None
                      else position.entry_value_atoms)
        return value

    def add_margin(self, position: Position, change: int, automatic: bool, seq: int,
                    ts_ms: int, events: list[Event]) -> None:
        """Move an isolated position's margin by `change` (hand or AMR) and say so."""
        position.margin_atoms += change
        position.extra_margin_atoms += change
        events.append(MarginAdjusted(seq, ts_ms, position.account_id, position.symbol,
                                     position.position_idx, change, position.margin_atoms,
                                     automatic))
        self.position_changed(position, seq, ts_ms, events)

    # -- isolated margin --------------------------------------------------------------------

    # -- orders -----------------------------------------------------------------------------

    def check_order(self, account: Account | None, spec: InstrumentSpec, side: Side,
                    position_idx: int, reduce_only: bool, qty_lots: int,
                    price_ticks: int) -> tuple[int, bool]:
        """Check an order's position index and margin; return its (qty, reduce_only).

        An opening order whose cost the margin does not fund comes back as
        (`MARGIN_REFUSED`, False): the caller refuses it with `no_balance`'s code and detail.
        Every other refusal is raised.

        A closing order in hedge mode (sell on the long side, buy on the short side) is
        reduce-only. A reduce-only quantity is cut to what the position can still close;
        nothing left is a 110017 rejection. Only the part of an order that opens exposure
        needs margin: the account's margin model says whether its cost is funded. The
        account is the caller's (None if it has none yet), looked up once per order.
        """
        # Most accounts never switch a mode: an empty table is not looked up.
        modes = account.position_modes if account is not None else None
        hedge = modes is not None and bool(modes) and modes.get(spec.symbol) is _HEDGE
        if hedge or position_idx:  # one-way mode with index 0 passes both rules as they are
            check_position_idx(hedge, position_idx)
            reduce_only = reduce_only or closes_hedge_side(hedge, position_idx, side)
        if reduce_only:
            return self._reduce_only_qty(account, spec, side, position_idx, qty_lots), True
        if account is None:
            raise no_balance()
        # The hot path of every opening order: the formulas of `opposite_position_lots`,
        # `_side_exposure_atoms`, `calc.order_cost_for_value_atoms` and
        # `calc.order_loss_atoms`, written out (the property tests hold them equal).
        symbol = spec.symbol
        sign = 1 if side is _BUY else -1
        keys = spec.keys
        sums = account.order_sums.get(keys.side(position_idx, side))
        if sums is not None:
            resting = sums.leaves_lots
            side_value = sums.notional_atoms
        else:
            resting = side_value = 0
        key = keys.position(position_idx)
        position = account.positions.get(key)
        size = position.size_lots if position is not None else 0
        closing = 0
        if position_idx == 0 and size and (size < 0) == (sign > 0):
            closing = size if size > 0 else -size
        opening = max(0, resting + qty_lots - closing) - max(0, resting - closing)
        if opening == 0:
            return qty_lots, False
        # No default in the lookup, and an int variable apart from the lookup's: compiled,
        # either way the default would be boxed anew at each order. An empty table (the
        # default leverage everywhere, as most accounts keep it) is not looked up.
        leverages = account.leverage
        found = leverages.get(key) if leverages else None
        leverage = DEFAULT_LEVERAGE if found is None else found
        value = spec.contract.value_ceil_atoms(price_ticks, opening)
        terms = spec.terms_at(leverage)
        # Only the order's own side grows, so only its total can newly pass the cap.
        if position is not None and size and (size > 0) == (sign > 0):
            mark = self.mark_ticks(symbol)
            side_value += (spec.contract.value_ceil_atoms(mark, size if size > 0 else -size)
                           if mark is not None else position.entry_value_atoms)
        if side_value + value > terms.value_cap_atoms:
            raise Rejected(RejectCode.RISK_LIMIT_EXCEEDED,
                           "Order placement failed as your position may exceed the max limit")
        # `order_cost_fast_atoms`, through the spec's rates at this leverage; the rates of
        # ``sign * value_sign`` chosen by comparing signs (compiled, a product with a
        # negative factor leaves the machine word's fast path).
        cost = (terms.plus if (sign > 0) == (spec.contract.value_sign > 0)
                else terms.minus).cost_atoms(value)
        if not account.model.can_open(self, account, spec, side, price_ticks, qty_lots, cost):
            return MARGIN_REFUSED, False  # `no_balance`, returned (see `MARGIN_REFUSED`)
        return qty_lots, False

    def mark_ticks(self, symbol: str) -> int | None:
        """Return `mark_of(symbol)`, through the market when the clearing has it."""
        market = self.market
        if market is not None:
            return market.mark_of(symbol)
        return self.mark_of(symbol)

    def published_mark_ticks(self, symbol: str) -> int | None:
        """Return `published_mark_of(symbol)`, through the market when the clearing has it."""
        market = self.market
        if market is not None:
            marks = market.mark_price  # none published yet: no lookup (see `Market.mark_of`)
            return marks.get(symbol) if marks else None
        return self.published_mark_of(symbol)

    def available_atoms(self, account: Account, coin: str) -> int:
        """Return the available balance: the risk value's, computed the short way.

        The account's margin model knows the short way (`MarginModel.available_atoms`); the
        property tests hold it equal to `figures().available_atoms`.
        """
        return account.model.available_atoms(self, account, coin)

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
        before = spec.contract.order_cost_atoms(
            order.side, spec.notional_atoms(order.price_ticks, order.leaves_lots), leverage,
            spec.taker_fee_rate)
        after = spec.contract.order_cost_atoms(
            order.side, spec.notional_atoms(price_ticks, leaves_lots), leverage,
            spec.taker_fee_rate)
        available = self.figures(account, spec.settle_coin).available_atoms
        if after > before and after - before > available:
            raise no_balance()

    def _reduce_only_qty(self, account: Account | None, spec: InstrumentSpec, side: Side,
                         position_idx: int, qty_lots: int) -> int:
        position = account.position(spec.symbol, position_idx) if account else None
        held = 0
        if position is not None and position.side is not None and position.side is not side:
            held = position.qty_lots
        if account is not None:
            resting = self.reduce_only_orders.get(
                (account.account_id, spec.symbol, position_idx, side))
            if resting:
                held -= sum(order.leaves_lots for order in resting.values())
        if held <= 0:
            raise Rejected(RejectCode.REDUCE_ONLY_NOT_SATISFIED,
                           "Reduce-only rule not satisfied")
        return min(qty_lots, held)

    def order_rested(self, order: RestingOrder) -> None:
        """Count a resting order's leaves toward its account's open-order sums."""
        account_id = order.account_obj  # boxed once with the order (`RestingOrder.id_obj`)
        symbol = order.symbol
        if order.reduce_only:
            key = (account_id, symbol, order.position_idx, order.side)
            found = self.reduce_only_orders.get(key)
            if found is None:
                found = self.reduce_only_orders[key] = {}
            found[order.id_obj] = order
            return
        account = self.accounts[account_id]
        account.forget_order_margin(symbol)
        if index_reads_orders(account):
            self.dirty.add(account_id)
        spec = self.instruments[symbol]
        key3 = spec.keys.side(order.position_idx, order.side)
        sums = account.order_sums.get(key3)
        if sums is None:
            sums = account.order_sums[key3] = OpenOrderSums()
        leaves = order.leaves_lots
        sums.leaves_lots += leaves
        contract = spec.contract
        sums.notional_atoms += contract.value_ceil_atoms(order.price_ticks, leaves)
        if account.order_loss_memos:
            _order_loss_moved(account, contract, order, 0, leaves)

    def order_left(self, order: RestingOrder) -> None:
        """Take what is left of an order that leaves the book out of the sums."""
        if order.reduce_only:
            key = (order.account_obj, order.symbol, order.position_idx, order.side)
            found = self.reduce_only_orders[key]
            del found[order.id_obj]
            if not found:
                del self.reduce_only_orders[key]
            return
        if order.leaves_lots:
            account_id = order.account_obj
            account = self.accounts[account_id]
            account.forget_order_margin(order.symbol)
            if index_reads_orders(account):
                self.dirty.add(account_id)
            self._shrink_sums(account, self.instruments[order.symbol], order, order.leaves_lots,
                              0)

    def order_loss_atoms(self, account_id: int, spec: InstrumentSpec) -> int:
        """Return an account's order loss on one symbol against the published mark (seed 001).

        Only buys above the mark and sells below it lose anything: Σ ``min(0, s*(MP − P)*q)``
        lots × ticks over the account's opening orders, times the atoms of a tick on a lot
        (`calc.order_loss_atoms`, summed exactly). For an account with many orders on the
        symbol the sum is kept at the mark it was taken at (`OrderLossMemo`), each order
        change adding its own term's change (issue #14: a scan per call was 43% of the
        journal bench's order flow). The memo also lists the orders by price per side, one
        pointer each, so a moved mark re-sums only the buys above it and the sells below it
        (`perpx.core.account.order_loss`), not every order.
        """
        account = self.accounts.get(account_id)
        if account is None:
            mark = self.published_mark_ticks(spec.symbol)
            return 0 if mark is None else self.scan_order_loss_atoms(account_id, spec, mark)
        return self.account_order_loss_atoms(account, spec)

    def account_order_loss_atoms(self, account: Account, spec: InstrumentSpec) -> int:
        """Return `order_loss_atoms` of an account the caller holds (no lookup of its id).

        The margin models ask it per symbol of every margin check and filing (issue #14: the
        id's lookup was a boxing and a dict probe each time).
        """
        mark = self.published_mark_ticks(spec.symbol)
        if mark is None:
            return 0
        account_id = account.account_id
        memos = account.order_loss_memos
        memo = memos.get(spec.symbol)
        if memo is not None:
            if memo.mark_ticks != mark:
                memo.loss_atoms = listed_loss_atoms(spec.contract, mark, memo.buys, memo.sells)
                memo.mark_ticks = mark
            return memo.loss_atoms
        by_symbol = self.orders_by_account.get(account_id)
        mine = by_symbol.get(spec.symbol) if by_symbol is not None else None
        if mine is None or len(mine) < _ORDER_LOSS_KEPT_FROM:
            return self.scan_order_loss_atoms(account_id, spec, mark)
        buys, sells = listed_orders(list(mine.values()))
        loss = listed_loss_atoms(spec.contract, mark, buys, sells)
        memos[spec.symbol] = OrderLossMemo(mark, loss, buys, sells)
        return loss

    def scan_order_loss_atoms(self, account_id: int, spec: InstrumentSpec, mark: int) -> int:
        """Return an account's order loss on one symbol at `mark`, summed order by order.

        The fresh sum over the market's index of the account's orders; `order_loss_atoms`
        keeps it, and the orders by price, once the account holds many there.
        """
        by_symbol = self.orders_by_account.get(account_id)
        mine = by_symbol.get(spec.symbol) if by_symbol is not None else None
        if not mine:
            return 0
        contract = spec.contract
        loss = 0
        for order in mine.values():
            if order.reduce_only:  # it only ever closes: no order loss (nor margin)
                continue
            loss += _order_loss_term(contract, mark, order.side, order.price_ticks,
                                     order.leaves_lots)
        return loss

    def _shrink_sums(self, account: Account, spec: InstrumentSpec, order: RestingOrder,
                     qty_lots: int, left_lots: int) -> None:
        """Take `qty_lots` of `order` out of its side's sums, `left_lots` staying in them.

        The value taken is what the order was counted at less what stays: an inverse value
        rounds up per order (``ceil(C/P)``), and rounded parts would not add up to it. Its
        `account` (and `spec`) come from the caller, which also drops the account's order
        margin and marks it dirty: a fill's settlement does both for the maker's side anyway.
        """
        key = spec.keys.side(order.position_idx, order.side)
        order_sums = account.order_sums
        sums = order_sums[key]
        sums.leaves_lots -= qty_lots
        # The contract's own method (`spec.notional_atoms` is the same one, bound): compiled,
        # a native call, where a bound method in a field is a generic Python call.
        contract = spec.contract
        sums.notional_atoms -= (contract.value_ceil_atoms(order.price_ticks, qty_lots + left_lots)
                                - contract.value_ceil_atoms(order.price_ticks, left_lots))
        if account.order_loss_memos:
            _order_loss_moved(account, contract, order, qty_lots + left_lots, left_lots)
        if sums.leaves_lots == 0:
            if sums.notional_atoms:
                raise InvariantViolation(f"order sums {key}: notional left without leaves")
            del order_sums[key]

    # -- settlement -------------------------------------------------------------------------

    def settle(self, spec: InstrumentSpec, price_obj: Any, qty_obj: Any, trade_id: Any,
               maker_leaves_lots: int, taker: RestingOrder, taker_account: Account,
               maker: RestingOrder, fees: Account, seq: Any, ts_ms: Any,
               events: list[Event]) -> None:
        """Settle one trade for both sides: position, realized P&L, fees, isolated margin.

        Given the trade's numbers, not its `Trade` event: the settlement pass holds them as
        locals, where each read of a msgspec Struct's field from compiled code is a generic
        attribute lookup. The numbers that only go into events (`seq`, `ts_ms`, `trade_id`)
        and the price and quantity come boxed (typed Any), the same objects as the trade's:
        compiled, an int is boxed anew at each event it goes to, and these go to five.
        The instrument, the taker's account and the fee account are the same for every fill
        of a walk, so the settlement pass looks them up once per walk (`settle_steps`).
        """
        price: int = price_obj
        qty: int = qty_obj
        symbol = spec.symbol
        maker_account = self.accounts[maker.account_obj]
        if not maker.reduce_only:
            # Its order margin dropped and its account marked dirty by its side's settlement
            # below, before anything reads either.
            self._shrink_sums(maker_account, spec, maker, qty, maker_leaves_lots)
        if len(self.fill_watch):  # a set's size is a primitive; its truth a generic call
            for order in (taker, maker):
                if order.order_id in self.fill_watch:
                    self.watched_fills[order.order_id] = (
                        self.watched_fills.get(order.order_id, 0) + qty)
        value = spec.contract.value_ceil_atoms(price, qty)
        # ceil(value * rate / R), a charge rounded up (spec §11).
        taker_fee = fee_for_value_atoms(value, spec.taker_fee_rate)
        maker_fee = fee_for_value_atoms(value, spec.maker_fee_rate)
        self._settle_side(spec, symbol, price, qty, price_obj, qty_obj, seq, ts_ms, trade_id,
                          taker, taker_account, False, taker_fee, events)
        self._settle_side(spec, symbol, price, qty, price_obj, qty_obj, seq, ts_ms, trade_id,
                          maker, maker_account, True, maker_fee, events)
        fee_income = taker_fee + maker_fee
        if fee_income:
            self._move(fees, spec.settle_coin, fee_income, _FEE_INCOME, seq, ts_ms, events,
                       symbol, trade_id)

    def _settle_side(self, spec: InstrumentSpec, symbol: str, price: int, qty: int,
                     price_obj: Any, qty_obj: Any, seq: Any, ts_ms: Any, trade_id: Any,
                     order: RestingOrder, account: Account, is_maker: bool, fee: int,
                     events: list[Event]) -> None:
        # Boxed once, into locals typed Any (which stay Python objects): compiled, an int
        # handed to a Struct, a dict, a set or a tuple is boxed at each use, a new object
        # each time above 256. The fee goes to two events; the ids come boxed with the order.
        account_id: Any = order.account_obj
        fee_obj: Any = fee
        idx = order.position_idx
        key = spec.keys.position(idx)
        found = account.positions.get(key)
        if found is None:
            position = account.positions[key] = Position(
                order.account_id, symbol, idx, account.leverage.get(key, DEFAULT_LEVERAGE))
        else:
            position = found
        # Into the clearing's own effect, read here and dropped: no object per side.
        effect = apply_fill(position, spec, order.side, price, qty, fee, self._fill_effect)
        account.forget_order_margin(symbol)
        model = account.model
        if effect.opened_lots and model.holds_position_margin:  # a cross model's is a no-op
            model.margin_on_open(position, spec, order.side, price, effect.opened_lots)
        # `Position.book_realized(-fee)`, written out.
        position.realized_pnl_atoms -= fee
        position.cum_realized_pnl_atoms -= fee
        position.updated_ts_ms = ts_ms
        coin = spec.settle_coin
        pnl = effect.pnl_atoms
        # What the fill closed, boxed for the events: all zero when it closed nothing (an
        # opening fill: about three sides in five of the standard stream), so the one boxed
        # zero (`numbers.BOXED_ZERO`; boxing is a call per use even for a cached small int).
        closed_obj: Any = BOXED_ZERO
        cash_flow: Any = BOXED_ZERO
        closed_pnl: Any = BOXED_ZERO
        open_fee: Any = BOXED_ZERO
        funding: Any = BOXED_ZERO
        close_fee_obj: Any = BOXED_ZERO
        if effect.closed_lots:
            close_fee = effect.close_fee_atoms
            closed_obj = effect.closed_lots
            cash_flow = pnl
            closed_pnl = effect.entry_pnl_atoms - close_fee
            open_fee = boxed(effect.open_fee_atoms)
            funding = boxed(effect.funding_atoms)
            close_fee_obj = close_fee
        # One transaction-log line per fill, as Bybit's TRADE entry: cash flow less the fee.
        balances = account.balances
        balance: Any = balances.get(coin, 0) + pnl - fee
        balances[coin] = balance
        events.append(_BALANCE_CHANGED(seq, ts_ms, account_id, coin, pnl - fee, balance,
                                       _TRADE, symbol, trade_id, cash_flow, fee_obj))
        idx_obj: Any = boxed(idx)
        events.append(_EXECUTED(seq, ts_ms, account_id, order.id_obj, trade_id, symbol,
                                order.side, price_obj, qty_obj, fee_obj, is_maker,
                                closed_obj, closed_pnl, idx_obj, open_fee, funding,
                                close_fee_obj))
        # `position_changed`, written out.
        self.dirty.add(account_id)
        self.moved_positions.add(position.moved_key)
        events.append(_POSITION_CHANGED(seq, ts_ms, account_id, symbol, idx_obj,
                                        position.size_lots, position.entry_value_atoms,
                                        position.leverage, boxed(position.margin_atoms),
                                        position.realized_pnl_atoms,
                                        position.cum_realized_pnl_atoms))

    def position_changed(self, position: Position, seq: int, ts_ms: int,
                          events: list[Event]) -> None:
        """Emit the position's new state."""
        self.dirty.add(position.account_id)
        self.moved_positions.add(position.moved_key)
        events.append(_POSITION_CHANGED(seq, ts_ms, position.account_id, position.symbol,
                                        position.position_idx, position.size_lots,
                                        position.entry_value_atoms, position.leverage,
                                        position.margin_atoms, position.realized_pnl_atoms,
                                        position.cum_realized_pnl_atoms))

    # -- funding ----------------------------------------------------------------------------

    def settle_funding(self, symbol: str, rate: int, mark_ticks: int, funding_ms: int,
                       next_funding_ms: int, predicted_rate: int, seq: int, ts_ms: int,
                       events: list[Event]) -> None:
        """Exchange funding between every position of `symbol` at `rate` (spec §6.2).

        Positive rate: longs pay, shorts receive. A payment rounds up, a receipt down; the
        difference goes to the insurance fund, so the coin is conserved exactly. What a
        payment does to margin is the account's margin model's (`cover_funding`).
        """
        spec = self.instruments[symbol]
        coin = spec.settle_coin
        paid = received = 0
        for account_id in (sorted(self.accounts) if mark_ticks else ()):
            account = self.accounts[account_id]
            for idx in (0, 1, 2):
                position = account.positions.get(spec.keys.position(idx))
                if position is None or not position.size_lots or not rate:
                    continue
                value = spec.contract.value_ceil_atoms(mark_ticks, position.qty_lots)
                pays = (position.size_lots > 0) == (rate > 0)
                amount = funding_fee_atoms(value, rate, pays)
                if not amount:
                    continue
                if pays:
                    paid += amount
                    account.model.cover_funding(self, account, position, amount, coin)
                else:
                    received += amount
                signed = amount if pays else -amount
                position.book_realized(-signed)
                position.funding_atoms += signed
                self._move(account, coin, -signed, BalanceReason.FUNDING,
                           seq, ts_ms, events, symbol)
                events.append(FundingPaid(seq, ts_ms, account_id, symbol, idx,
                                          position.size_lots, value, rate, signed, funding_ms,
                                          mark_ticks))
                self.position_changed(position, seq, ts_ms, events)
        remainder = paid - received
        if remainder:
            self._move(self.accounts[INSURANCE_FUND_ID], coin, remainder, BalanceReason.FUNDING,
                       seq, ts_ms, events, symbol)
        events.append(FundingSettled(seq, ts_ms, symbol, rate, mark_ticks, funding_ms, paid,
                                     received, remainder, next_funding_ms, predicted_rate))

    # -- delivery -----------------------------------------------------------------------------

    def settle_delivery(self, spec: InstrumentSpec, price_e8: int, seq: int, ts_ms: int,
                        events: list[Event]) -> DeliverySettled:
        """Close every position of a dated future at the delivery price (next-mechanics §2.5).

        `price_e8` is DP in 10**-8 of the quote coin, i.e. ``price_e8 / tick_atoms`` ticks,
        off the tick. Each position realises its P&L (`settlement_pnl_atoms`, rounded toward
        the exchange) and pays the delivery fee on its value at DP (truncated, §7 N1); its
        margin is released and it is flat. The fees go to the fee account; what the P&L's
        rounding kept (the longs' values round down, the shorts' up) goes to the insurance
        fund, so the coin is conserved exactly.
        """
        symbol = spec.symbol
        coin = spec.settle_coin
        contract = spec.contract
        rate = spec.delivery_fee_rate
        denominator = spec.tick_atoms
        result = DeliverySettled()
        cash = 0  # the change of the cash view (wallet - signed entry value), fees aside
        for account_id in sorted(self.accounts):
            account = self.accounts[account_id]
            settled = False
            for idx in (0, 1, 2):
                position = account.positions.get(spec.keys.position(idx))
                if position is None or not position.size_lots:
                    continue
                size = position.size_lots
                side = _BUY if size > 0 else Side.SELL
                qty = position.qty_lots
                entry = position.entry_value_atoms
                value_n, value_d = contract.value_fraction_atoms(qty, price_e8, denominator)
                pnl = contract.settlement_pnl_atoms(side, entry, qty, price_e8, denominator)
                fee = settlement_fee_atoms(value_n, value_d, rate)
                # The cash view held -value_sign x the signed entry value (a linear long had
                # paid it, an inverse long received it); the position is gone, the P&L booked.
                cash += pnl + contract.value_sign * (entry if size > 0 else -entry)
                events.append(PositionDelivered(
                    seq, ts_ms, account_id, symbol, idx, size, entry, price_e8,
                    div_floor(value_n, value_d), pnl, fee, rate, position.leverage,
                    position.open_fee_atoms, position.funding_atoms))
                position.size_lots = 0
                position.entry_value_atoms = 0
                position.margin_atoms = 0
                position.extra_margin_atoms = 0
                position.open_fee_atoms = 0
                position.funding_atoms = 0
                position.book_realized(pnl - fee)
                position.updated_ts_ms = ts_ms
                balance = account.credit(coin, pnl - fee)
                events.append(BalanceChanged(seq, ts_ms, account_id, coin, pnl - fee, balance,
                                             BalanceReason.DELIVERY, symbol, 0, pnl, fee))
                self.position_changed(position, seq, ts_ms, events)
                result.positions += 1
                result.fee_atoms += fee
                settled = True
            if settled:
                account.order_margin_cache.pop(symbol, None)
                result.accounts.append(account_id)
        if result.fee_atoms:
            self._move(self.accounts[FEE_ACCOUNT_ID], coin, result.fee_atoms, _FEE_INCOME,
                       seq, ts_ms, events, symbol)
        # Exact P&L would leave the cash view unchanged; the rounding kept -cash >= 0.
        result.remainder_atoms = -cash
        if cash > 0:
            raise InvariantViolation(f"delivery of {symbol} paid out {cash} atoms too many")
        if cash:
            self._move(self.accounts[INSURANCE_FUND_ID], coin, -cash, BalanceReason.DELIVERY,
                       seq, ts_ms, events, symbol)
        return result

    # -- session settlement (USDC contracts) -------------------------------------------------

    def settle_sessions(self, symbol: str, mark_ticks: int, session_ms: int, seq: int,
                        ts_ms: int, events: list[Event]) -> None:
        """Realise every position's session uPnL of a session-settled `symbol` at the mark.

        next-mechanics §3.2: at each funding time ``side × |q| × (MP − sessionAvgPrice)`` is
        credited or debited to the wallet as realised P&L, then the session's entry becomes
        the mark's value. The value at the mark is exact (linear), so the wallet moves by
        exactly the uPnL and the cash view of conservation does not move at all: no rounding,
        nothing for the insurance fund. A gain is free balance at once (Bybit's stated aim);
        a loss of an isolated position comes out of its margin first, so its liquidation
        trigger (margin + uPnL against MM) stays where it was, and any rest out of the
        wallet, which may then be negative (§3.2: a derivatives liability). A cross
        account's equity does not move at all. The caller sweeps for liquidations
        afterwards, as after funding. The true entry (avgPrice) is not touched.
        """
        if not mark_ticks:
            return  # nobody can be valued yet (as funding)
        spec = self.instruments[symbol]
        coin = spec.settle_coin
        contract = spec.contract
        for account_id in sorted(self.accounts):
            account = self.accounts[account_id]
            position = account.positions.get(spec.keys.position(0))
            if position is None or not position.size_lots:
                continue  # one-way only: index 0 is the only one (`one_way_only`)
            size = position.size_lots
            qty = size if size > 0 else -size
            side = _BUY if size > 0 else _SELL
            before = position.entry_value_atoms
            settled = contract.value_floor_atoms(mark_ticks, qty)
            pnl = contract.unrealised_pnl_atoms(side, before, qty, mark_ticks)
            if settled != contract.value_ceil_atoms(mark_ticks, qty):
                raise InvariantViolation(f"session settlement of {symbol}: inexact value")
            position.entry_value_atoms = settled
            if account.model.holds_position_margin:
                if pnl < 0:
                    # margin + uPnL, what the trigger compares with MM, is unchanged.
                    position.margin_atoms -= min(-pnl, position.margin_atoms)
                # The margin held is the requirement at the (new) session entry plus the
                # added margin, as `IsolatedMargin.apply_leverage` keeps it: so the
                # liquidation price shown (which counts the added margin) stays the
                # trigger's.
                position.extra_margin_atoms = (
                    position.margin_atoms - ISOLATED.entry_margin_atoms(spec, position))
            position.book_realized(pnl)
            position.updated_ts_ms = ts_ms
            if pnl:
                self._move(account, coin, pnl, BalanceReason.SESSION_SETTLEMENT,
                           seq, ts_ms, events, symbol)
            events.append(SessionSettled(seq, ts_ms, account_id, symbol, 0, size, before,
                                         mark_ticks, pnl, session_ms))
            self.position_changed(position, seq, ts_ms, events)

    # -- invariants and snapshots ----------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise `InvariantViolation` unless money is conserved and open interest balances.

        Conservation is checked in the cash view: a linear long's entry value has been paid out
        of its wallet, a short's received, so Σ (wallet − signed entry value) over every
        account, system accounts included, equals deposits − withdrawals, per coin, exactly.
        An inverse position's value falls as the price rises, so there the signs swap
        (`ContractMaths.value_sign`): an inverse long has received its entry value.
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
                cash[spec.settle_coin] -= sign * spec.contract.value_sign \
                    * position.entry_value_atoms
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

    def to_snapshot(self) -> dict[str, Any]:
        """Return the accounts as plain data in a canonical order."""
        return {
            "net_deposits": sorted(self.net_deposits.items()),
            "accounts": [
                {
                    "id": a.account_id,
                    "balances": sorted(a.balances.items()),
                    # Only where a coin is off, so states without it hash as they did.
                    **({"collateral_off": sorted(a.collateral_off)} if a.collateral_off
                       else {}),
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
            account = Account(data["id"], model_for(MarginMode(data["margin_mode"])))
            account.balances = dict(data["balances"])
            account.collateral_off = set(data.get("collateral_off", ()))
            account.position_modes = {s: PositionMode(m) for s, m in data["position_modes"]}
            account.leverage = {position_key(s, i): v for s, i, v in data["leverage"]}
            account.auto_add_margin = {(s, i): v for s, i, v in data["auto_add_margin"]}
            for record in data["positions"]:
                position = Position.from_record(record)
                key = position_key(position.symbol, position.position_idx)
                account.positions[key] = position
            self.accounts[account.account_id] = account
        self.dirty = set(self.accounts)
        self.multi_coin = {a.account_id for a in self.accounts.values() if self._may_pool(a)}
