"""Liquidation at the mark: takeover at bankruptcy, close in the book, insurance fund, ADL.

Spec §7 and §8. Isolated margin (cross follows the same steps at the account level, with
hedged pairs closed first; see `_liquidate_cross`):
1. a position is liquidatable when the **mark** reaches its liquidation price (§1.4, the
   price where margin plus unrealized P&L meets maintenance margin, rounded toward the mark);
2. its account's orders on the symbol are cancelled (`BEFORE_LIQUIDATION`); above the
   lowest risk-limit tier, a reduce-only IOC first tries to bring it down to the tier below,
   and if that ends the breach the rest stays with its owner;
3. the insurance fund takes the position over at the bankruptcy price, where the position's
   margin is gone: the trader loses the margin and no more;
4. the liquidation desk closes what it took over in the book, no worse than the price at
   which the fund's balance would run out; a fill better than bankruptcy is the fund's gain,
   a worse one its loss;
5. what the book could not take is auto-deleveraged: closed at the bankruptcy price against
   the opposite side's positions in Bybit's ranking order (profit × effective leverage).
Every step moves positions between accounts at one price, so money and open interest are
conserved exactly; an account left below zero equity is made whole by the fund.
"""

from __future__ import annotations

from fractions import Fraction

from perpx.core import calc, liqprice
from perpx.core.account.accounts import INSURANCE_FUND_ID, Account
from perpx.core.account.clearing import Clearing
from perpx.core.account.margin_model import ISOLATED
from perpx.core.account.positions import Position, apply_fill
from perpx.core.book.order import RestingOrder
from perpx.core.enums import (
    BalanceReason,
    CancelReason,
    OrderType,
    Side,
    SmpType,
    TimeInForce,
)
from perpx.core.events import Deleveraged, Event, HedgedPairClosed, Liquidated
from perpx.core.instruments import InstrumentSpec
from perpx.core.keys import position_key
from perpx.core.market import Market
from perpx.core.numbers import div_floor
from perpx.core.ports import OrderRunner
from perpx.core.risk.adl_pool import AdlPool
from perpx.core.risk.adl_queue import AdlQueue, adl_entries, adl_rank_terms


class LiquidationDesk:
    """What the liquidation desk works with, and the state it owns.

    It reads the market and the clearing, and sends and cancels orders through the desk's
    order runner; the insurance pool's record (ADL condition 1, §6.2) and each side's ADL
    ranking for the command at hand are its own. What it uses is bound once here, so a
    takeover looks nothing up on the way.
    """

    def __init__(self, market: Market, clearing: Clearing, runner: OrderRunner) -> None:
        self.clearing = clearing
        self.instruments = market.instruments
        self.mark_price = market.mark_price
        self.mark_of = market.mark_of
        self.orders_of = market.orders_of
        self.price_band = market.price_band
        self.new_order_id = runner.new_order_id
        self.run_order = runner.run_order
        self.cancel_order = runner.cancel_order
        # The insurance pool's balance and per-symbol P&L history: ADL condition 1 (§6.2).
        self.adl_pool = AdlPool()
        # Scratch: each side's ADL ranking, valid for one command (keyed by its seq), so
        # never part of the state.
        self.adl_queues: dict[tuple[str, Side], AdlQueue] = {}


def is_liquidatable(clearing: Clearing, position: Position, mark_ticks: int) -> bool:
    """Tell whether the mark has reached an isolated position's liquidation price."""
    return ISOLATED.is_liquidatable(clearing, clearing.accounts[position.account_id], position,
                                    mark_ticks)


def maybe_liquidate(desk: LiquidationDesk, symbol: str, seq: int, ts_ms: int,
                    events: list[Event], candidates: list[int]) -> None:
    """Liquidate every position or account holding `symbol` that the mark price has breached.

    Only a published mark price triggers liquidation, never the last traded price. The risk
    index proposes the accounts the move may have breached; each is checked exactly by its
    margin model, in account-id then position-index order, so the outcome is deterministic.
    A model that holds position margin liquidates each breached position on its own; the
    other (cross, portfolio) liquidates the whole account once it is breached (its
    account-wide test). A USD pool is tested even without a position on `symbol`: the move
    may have priced its collateral down (next-mechanics §4.5).
    """
    mark = desk.mark_price.get(symbol)
    if mark is None:
        return
    spec = desk.instruments[symbol]
    clearing = desk.clearing
    for account_id in candidates:
        account = clearing.accounts[account_id]
        model = account.model
        tested = False
        for idx in (0, 1, 2):
            position = account.positions.get(spec.keys.position(idx))
            if position is None or not position.size_lots:
                continue
            if model.holds_position_margin:
                if model.is_liquidatable(clearing, account, position, mark):
                    _liquidate(desk, spec, account, position, mark, seq, ts_ms, events)
                continue
            # The account is tested once, at its first position on the symbol.
            tested = True
            if model.is_liquidatable(clearing, account, position, mark):
                _liquidate_cross(desk, account, spec.settle_coin, seq, ts_ms, events)
            break
        if not tested and not model.holds_position_margin and clearing.pooled(account) and (
                clearing.account_risk(account).breached()):
            _liquidate_cross(desk, account, spec.settle_coin, seq, ts_ms, events)


def cross_is_liquidatable(clearing: Clearing, account: Account, coin: str) -> bool:
    """Tell whether a cross account's MM rate is at or above 100% (seed 001, spec §7.2).

    MM rate = ΣMM / (margin balance + order loss); a denominator at or below zero counts as
    breached too. A USD pool's rate is the account's across its coins (next-mechanics
    §4.3); an account in one coin at par has that coin's.
    """
    return clearing.account_risk(account).breached()  # `CrossMargin.is_liquidatable`


def _liquidate_cross(desk: LiquidationDesk, account: Account, coin: str, seq: int, ts_ms: int,
                     events: list[Event]) -> None:
    """Liquidate a cross account step by step until its MM rate is back under 100%.

    1. cancel all its orders; 2. a USD pool repays its liabilities by converting collateral
    in liquidation order (next-mechanics §4.5 step 2); 3. close fully hedged pairs against
    each other at the mark (seed 000: hedged first); 4. the largest maintenance margin first
    (in USD across a pool's coins), cut a position above tier 1 to the tier below (spec
    §7.1) and stop if that ends the breach; else take it over at the price where the
    account's margin balance is gone, close it in the book and deleverage what the book
    will not take. A pool left without positions has its remaining liabilities repaid from
    collateral, and what no collateral covers is made whole by each coin's fund.
    """
    clearing = desk.clearing
    pooled = clearing.pooled(account)
    for symbol in sorted({s for s, _ in account.positions}):
        for order in desk.orders_of(account.account_id, symbol):
            desk.cancel_order(order, CancelReason.BEFORE_LIQUIDATION, seq, ts_ms, events)
    if not cross_is_liquidatable(clearing, account, coin):
        return
    if pooled:
        clearing.repay_liabilities(account, "", seq, ts_ms, events)
        if not cross_is_liquidatable(clearing, account, coin):
            return
    for symbol in sorted({s for s, _ in account.positions}):
        long = account.positions.get(position_key(symbol, 1))
        short = account.positions.get(position_key(symbol, 2))
        if long is None or short is None or not long.size_lots or not short.size_lots:
            continue
        spec = desk.instruments[symbol]
        mark = desk.mark_price.get(symbol) or desk.mark_of(symbol) or 0
        hedged = min(long.qty_lots, short.qty_lots)
        # Both legs close at one price, so their P&L is booked as one sum: the wallet never
        # shows the first leg's loss without the second leg's gain.
        pnl = 0
        for position in (long, short):
            side = Side.BUY if position.size_lots > 0 else Side.SELL
            pnl += apply_fill(position, spec, side.opposite, mark, hedged).pnl_atoms
            position.updated_ts_ms = ts_ms
        events.append(HedgedPairClosed(seq, ts_ms, account.account_id, symbol, hedged, mark,
                                       pnl))
        if pnl:
            clearing.move(account, spec.settle_coin, pnl, BalanceReason.LIQUIDATION, seq, ts_ms,
                          events, symbol)
        for position in (long, short):
            clearing.position_changed(position, seq, ts_ms, events)
        account.order_margin_cache.pop(symbol, None)
        if not cross_is_liquidatable(clearing, account, coin):
            return
    while cross_is_liquidatable(clearing, account, coin):
        held = [p for p in account.positions.values()
                if p.size_lots and (pooled or desk.instruments[p.symbol].settle_coin == coin)]
        if not held:
            break
        position = max(held, key=lambda p: (_maintenance_usd(desk, p), p.symbol,
                                            p.position_idx))
        spec = desk.instruments[position.symbol]
        mark = desk.mark_of(position.symbol) or position.average_entry_ticks(spec)
        bust = _cross_bust(desk, account, position, spec, mark)
        if account.model.pools:
            # Portfolio margin: the position is first closed in the book, no worse than the
            # bankruptcy price; the account keeps what is left of its equity (§5.5).
            _close_position_in_book(desk, spec, position, bust, seq, ts_ms, events)
            if not cross_is_liquidatable(clearing, account, coin):
                return
        elif _reduce_to_lower_tier(desk, spec, position, mark, bust, seq, ts_ms, events) and (
                not cross_is_liquidatable(clearing, account, coin)):
            return
        if position.size_lots:
            _take_over(desk, spec, account, position,
                       _cross_bust(desk, account, position, spec, mark), mark, seq, ts_ms,
                       events)
    if pooled and not any(p.size_lots for p in account.positions.values()):
        for owed in clearing.account_coins(account):
            make_whole(desk, account, owed, seq, ts_ms, events)


def _maintenance_usd(desk: LiquidationDesk, position: Position) -> int:
    """Return a position's maintenance margin in USD, to rank a pool's positions."""
    return desk.clearing.requirement_usd(_maintenance(desk, position),
                                         desk.instruments[position.symbol].settle_coin)


def _cross_bust(desk: LiquidationDesk, account: Account, position: Position, spec: InstrumentSpec,
                mark: int) -> int:
    """Return the price at which a cross account's margin balance is gone, other marks fixed."""
    side = Side.BUY if position.size_lots > 0 else Side.SELL
    margin_balance = desk.clearing.figures(account, spec.settle_coin).margin_balance_atoms
    # The position as if entered at the mark, with the margin balance as its margin.
    contract = spec.contract
    at_mark = contract.entry_value_atoms(mark, position.qty_lots)
    return max(1, contract.bankruptcy_price_for_margin_ticks(
        side, at_mark, position.qty_lots, margin_balance))


def _isolated_bust(spec: InstrumentSpec, position: Position) -> int:
    """Return the isolated bankruptcy price (spec §1.3; `liqprice.isolated_bankruptcy_...`).

    The loss there uses up the margin bar the reserved fee to close (#13 B2).
    """
    side = Side.BUY if position.size_lots > 0 else Side.SELL
    return max(1, liqprice.isolated_bankruptcy_price_ticks(
        spec, side, position.entry_value_atoms, position.qty_lots, position.margin_atoms,
        position.fee_to_close_atoms(spec)))


def _take_over(desk: LiquidationDesk, spec: InstrumentSpec, account: Account, position: Position,
               bust: int, mark: int, seq: int, ts_ms: int, events: list[Event],
               isolated: bool = False) -> None:
    """Have the fund take a position over at `bust`, close it in the book, deleverage the rest.

    An isolated position also pays its reserved fee to close, valued at `bust` (the taker
    fee on the value there) and at most what its margin still holds, to the fund that
    closes it (#13 B2). The trader is made whole to zero equity if the rounded bankruptcy
    price cost more than its margin; the fund's close goes no worse than its balance can
    bear; what the book does not take is deleveraged against the other side at `bust`.
    """
    side = Side.BUY if position.size_lots > 0 else Side.SELL
    qty = position.qty_lots
    events.append(Liquidated(seq, ts_ms, account.account_id, spec.symbol,
                             position.position_idx, side, qty, bust, mark))
    fund = desk.clearing.accounts[INSURANCE_FUND_ID]
    pool, coin = desk.adl_pool, spec.settle_coin
    before = fund.balance(coin)
    pool.observe_balance(ts_ms, before)
    # ADL condition 1 (next-mechanics §6.3): while the symbol's P&L drawdown holds it
    # triggered, its takeovers go to ADL directly; otherwise the pool covers a shortfall only
    # down to the drawdown threshold.
    direct = pool.update_state(spec, ts_ms, before)
    headroom = None if direct else pool.headroom(spec, ts_ms, before)
    contract = spec.contract
    left = position.margin_atoms + contract.unrealised_pnl_atoms(
        side, position.entry_value_atoms, qty, bust)
    transfer(desk, spec, account, position, fund, qty, bust, BalanceReason.LIQUIDATION,
             seq, ts_ms, events)
    # The fund is paid the fee to close reserved beside the bankruptcy price (#13 B2), at
    # most what the margin still holds.
    fee = min(contract.fill_fee_atoms(bust, qty, spec.taker_fee_rate),
              max(0, left)) if isolated else 0
    if fee:
        position.book_realized(-fee)
        desk.clearing.move(account, coin, -fee, BalanceReason.LIQUIDATION, seq,
                             ts_ms, events, spec.symbol)
        desk.clearing.move(fund, coin, fee, BalanceReason.LIQUIDATION, seq,
                             ts_ms, events, spec.symbol)
    make_whole(desk, account, coin, seq, ts_ms, events)
    held = fund.positions[spec.keys.position(0)]
    if held.size_lots and not direct:
        if headroom is not None:
            headroom -= before - fund.balance(coin)  # what making the trader whole cost
        _close_in_book(desk, spec, fund, held, bust, seq, ts_ms, events, headroom)
    if held.size_lots:
        deleverage(desk, spec, fund, held, bust, seq, ts_ms, events)
    after = fund.balance(coin)
    pool.record_takeover(spec.symbol, ts_ms, after - before, after)
    pool.update_state(spec, ts_ms, after)


def _maintenance(desk: LiquidationDesk, position: Position) -> int:
    spec = desk.instruments[position.symbol]
    mark = desk.mark_of(position.symbol) or position.average_entry_ticks(spec)
    # MM is valued the same way in every margin mode.
    return calc.maintenance_margin_atoms(
        spec, spec.contract.value_ceil_atoms(mark, position.qty_lots),
        position.fee_to_close_atoms(spec))


def _liquidate(desk: LiquidationDesk, spec: InstrumentSpec, account: Account, position: Position,
               mark: int, seq: int, ts_ms: int, events: list[Event]) -> None:
    # 1. Cancel the account's orders on the symbol.
    for order in desk.orders_of(account.account_id, spec.symbol):
        desk.cancel_order(order, CancelReason.BEFORE_LIQUIDATION, seq, ts_ms, events)
    # 2. Above the lowest tier, first try to bring the position down to the tier below.
    if _reduce_to_lower_tier(desk, spec, position, mark, _isolated_bust(spec, position), seq,
                             ts_ms, events) and (
            not position.size_lots or not is_liquidatable(desk.clearing, position, mark)):
        return
    # 3. The fund takes over at the bankruptcy price, closes in the book, deleverages the rest.
    _take_over(desk, spec, account, position, _isolated_bust(spec, position), mark, seq,
               ts_ms, events, isolated=True)


def _reduce_to_lower_tier(desk: LiquidationDesk, spec: InstrumentSpec, position: Position,
                          mark: int, bust: int, seq: int, ts_ms: int, events: list[Event]) -> bool:
    """Send the laddered partial liquidation of spec §7.1; return True if an order was sent.

    A position above the lowest risk-limit tier is reduced, by an IOC reduce-only order in the
    book no worse than its bankruptcy price `bust` (Bybit's `CreateByLiq`), by the value above
    the tier below. The caller rechecks: if the smaller position, now in the lower tier, is
    no longer breached, it stays with its owner.
    """
    contract = spec.contract
    value = contract.value_ceil_atoms(mark, position.qty_lots)
    tier = calc.tier_for_position(spec, value)
    place = spec.risk_tiers.index(tier)
    if place == 0:
        return False
    excess = value - spec.risk_tiers[place - 1].limit_atoms
    qty = min(position.qty_lots, contract.qty_for_value_lots(mark, excess))
    _close_position_in_book(desk, spec, position, bust, seq, ts_ms, events, qty)
    return True


def _close_position_in_book(desk: LiquidationDesk, spec: InstrumentSpec, position: Position,
                            bust: int, seq: int, ts_ms: int, events: list[Event],
                            qty_lots: int | None = None) -> None:
    """Send a reduce-only IOC for `qty_lots` (None: the whole position), no worse than `bust`.

    Bybit's `CreateByLiq`: the laddered partial liquidation's cut, and portfolio margin's
    close in the book.
    """
    side = Side.BUY if position.size_lots > 0 else Side.SELL
    order = RestingOrder(desk.new_order_id(), position.account_id, spec.symbol, side.opposite,
                         OrderType.LIMIT, bust,
                         position.qty_lots if qty_lots is None else qty_lots, TimeInForce.IOC,
                         True, False, position.position_idx, "", SmpType.NONE, ts_ms)
    desk.run_order(order, seq, ts_ms, events)


def transfer(desk: LiquidationDesk, spec: InstrumentSpec, seller: Account, position: Position,
             buyer: Account, qty: int, price: int, reason: BalanceReason, seq: int,
             ts_ms: int, events: list[Event]) -> None:
    """Move `qty` of `seller`'s position to `buyer` at `price`, without fees.

    The seller closes (realizing its P&L at `price`); the buyer takes the same side at
    `price` on its one-way position (netting anything it already holds).
    """
    clearing = desk.clearing
    side = Side.BUY if position.size_lots > 0 else Side.SELL
    closing = apply_fill(position, spec, side.opposite, price, qty)
    position.updated_ts_ms = ts_ms
    seller.order_margin_cache.pop(spec.symbol, None)
    key = spec.keys.position(0)
    taken = buyer.positions.get(key)
    if taken is None:
        taken = buyer.positions[key] = Position(buyer.account_id, spec.symbol, 0,
                                                buyer.leverage_for(spec.symbol, 0))
    opening = apply_fill(taken, spec, side, price, qty)
    taken.updated_ts_ms = ts_ms
    buyer.order_margin_cache.pop(spec.symbol, None)
    coin = spec.settle_coin
    for account, effect, moved in ((seller, closing, position), (buyer, opening, taken)):
        if effect.pnl_atoms:
            clearing.move(account, coin, effect.pnl_atoms, reason, seq, ts_ms, events,
                          spec.symbol)
        clearing.position_changed(moved, seq, ts_ms, events)


def make_whole(desk: LiquidationDesk, account: Account, coin: str, seq: int, ts_ms: int,
               events: list[Event]) -> None:
    """Have the insurance fund bring an account back to zero equity if it fell below.

    A USD pool first repays the coin's liability by converting its other collateral
    (next-mechanics §4.5); while it still holds positions, what is left stays a liability
    backed by them, and the fund makes whole only an account left with none.
    """
    clearing = desk.clearing
    equity = clearing.equity_atoms(account, coin)
    if equity < 0 and clearing.pooled(account):
        clearing.repay_liabilities(account, coin, seq, ts_ms, events)
        equity = clearing.equity_atoms(account, coin)
        if equity < 0 and any(p.size_lots for p in account.positions.values()):
            return
    if equity < 0:
        fund = clearing.accounts[INSURANCE_FUND_ID]
        clearing.move(fund, coin, equity, BalanceReason.INSURANCE, seq, ts_ms, events)
        clearing.move(account, coin, -equity, BalanceReason.INSURANCE, seq, ts_ms, events)


def _close_in_book(desk: LiquidationDesk, spec: InstrumentSpec, fund: Account, held: Position,
                   bust: int, seq: int, ts_ms: int, events: list[Event],
                   headroom: int | None = None) -> None:
    """Send the fund's IOC close, limited to the worst price its balance (less fees) covers.

    With a `headroom` (ADL condition 1, `perpx.core.risk.adl_pool`), no worse than the loss the
    pool may still take for this symbol either; what is left is deleveraged.
    """
    qty = held.qty_lots
    contract = spec.contract
    # The fees of two closes of `qty` at `bust` (the fund's and a counterparty's), rounded up
    # once.
    fee_reserve = contract.fill_fee_atoms(bust, 2 * qty, spec.taker_fee_rate)
    spare = max(0, fund.balance(spec.settle_coin) - fee_reserve)
    if headroom is not None:
        spare = min(spare, max(0, headroom - fee_reserve))
    held_side = Side.BUY if held.size_lots > 0 else Side.SELL
    closing_side = held_side.opposite
    band = desk.price_band(spec)
    limit = contract.loss_limit_price_ticks(held_side, qty, bust, spare)
    if band is not None:
        limit = max(limit, band[0]) if closing_side is Side.SELL else min(limit, band[1])
    if limit <= 0:
        return
    order = RestingOrder(desk.new_order_id(), INSURANCE_FUND_ID, spec.symbol, closing_side,
                         OrderType.LIMIT, limit, qty, TimeInForce.IOC, True, False, 0,
                         "", SmpType.NONE, ts_ms)
    desk.run_order(order, seq, ts_ms, events)


def adl_rank(spec: InstrumentSpec, position: Position, mark: int, margin: int) -> Fraction:
    """Return Bybit's ADL ranking of a position (spec §8), exact (`adl_rank_terms`)."""
    numerator, denominator = adl_rank_terms(spec, position, mark, margin)
    return Fraction(numerator, denominator)


def ranked_positions(clearing: Clearing, spec: InstrumentSpec, side: Side,
                     mark: int) -> list[Position]:
    """Return the users' positions on `side` of a symbol, first in the ADL queue first.

    Ties go to the lower account id. In cross mode the bankrupt value uses the account's
    margin balance; a cross account holding both sides (hedge mode) offers only its
    unhedged part, so its fully hedged positions are never chosen (seed 000). The whole
    queue, in the order `deleverage` takes it (`perpx.core.risk.adl_queue`).
    """
    return AdlQueue((0, spec.symbol, side), adl_entries(clearing, spec, side, mark)).drain()


def adl_rank_indicator(clearing: Clearing, symbol: str) -> dict[tuple[int, int], int]:
    """Return Bybit's `adlRankIndicator` (1-5) of every user position of `symbol`.

    Each side is ranked on its own; the top 20% of a side's queue shows 5, the next 20% 4,
    and so on (seed 001: each light is 20%). Positions not listed (none held) show 0.
    """
    spec = clearing.instruments[symbol]
    mark = clearing.mark_of(symbol)
    out: dict[tuple[int, int], int] = {}
    if mark is None:
        return out
    for side in (Side.BUY, Side.SELL):
        queue = ranked_positions(clearing, spec, side, mark)
        for place, position in enumerate(queue):
            out[position.account_id, position.position_idx] = 5 - div_floor(5 * place, len(queue))
    return out


def deleverage(desk: LiquidationDesk, spec: InstrumentSpec, fund: Account, held: Position,
               bust: int, seq: int, ts_ms: int, events: list[Event]) -> None:
    """Close the fund's leftover against the best-ranked opposite positions at `bust`."""
    clearing = desk.clearing
    mark = desk.mark_price.get(spec.symbol, bust)
    counterparty_side = Side.SELL if held.size_lots > 0 else Side.BUY
    queue = _adl_queue(desk, spec, counterparty_side, mark, seq)
    while held.size_lots:
        position = queue.head()
        if position is None:
            break
        if position.side is not counterparty_side or _fully_hedged(desk, position):
            queue.pop()  # closed, flipped or hedged since it was ranked
            continue
        account = clearing.accounts[position.account_id]
        for order in desk.orders_of(account.account_id, spec.symbol):
            desk.cancel_order(order, CancelReason.BEFORE_ADL, seq, ts_ms, events)
        qty = min(held.qty_lots, position.qty_lots)
        events.append(Deleveraged(seq, ts_ms, account.account_id, spec.symbol,
                                  position.position_idx, qty, bust, mark))
        # The counterparty closes its position at the bankruptcy price; the fund closes its
        # takeover at the same price.
        transfer(desk, spec, account, position, fund, qty, bust, BalanceReason.ADL, seq,
                 ts_ms, events)
        make_whole(desk, account, spec.settle_coin, seq, ts_ms, events)
        if not position.size_lots:
            queue.pop()


def _adl_queue(desk: LiquidationDesk, spec: InstrumentSpec, side: Side, mark: int,
               seq: int) -> AdlQueue:
    """Return the side's ranking for this command, ranking it on first use.

    Bybit ranks the queue periodically, not per fill; ranking once per command keeps a
    cascade of takeovers from re-ranking every position of the symbol for each one, while a
    position that closed, flipped or became fully hedged since is skipped when reached. The
    ranks are all computed here, but only the head is taken out of the heap as it is used.
    """
    key = (seq, spec.symbol, side)
    queue = desk.adl_queues.get((spec.symbol, side))
    if queue is None or queue.key != key:
        queue = AdlQueue(key, adl_entries(desk.clearing, spec, side, mark))
        desk.adl_queues[spec.symbol, side] = queue
    return queue


def _fully_hedged(desk: LiquidationDesk, position: Position) -> bool:
    """Whether a cross hedge-mode position is covered by its opposite side (never ADL'd)."""
    if not position.position_idx:
        return False
    account = desk.clearing.accounts[position.account_id]
    return account.model.fully_hedged(account, position)

