"""Which positions a mark move can breach, found without scanning every position.

Each isolated position is filed under its liquidation price, and each cross account that
holds one one-way position and no orders under the estimated price where its MM rate reaches
100% (spec §2.2, with the tier that applies at that price). A move of the mark to M then
touches only longs filed at or above M and shorts at or below it: the cost of a sweep grows
with the positions at risk, not with all positions.

A cross account the estimate cannot describe (several symbols, hedge mode, open orders) is
filed by a *margin budget*: its slack (margin balance + order loss − MM) is shared among its
symbols in proportion to how fast each can consume it, giving every symbol a band
[M − d, M + d] inside which no combination of moves can breach the account. A mark leaving a
band makes the account a candidate; it is checked exactly and refiled around the new marks.
The index is derived state: it may only ever propose too many candidates, never too few, and
every candidate is checked exactly before anything is done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from sortedcontainers import SortedList

from perpx.core import calc
from perpx.core.account.accounts import SYSTEM_ACCOUNT_IDS, Account
from perpx.core.enums import Side
from perpx.core.numbers import RATE_ONE, apply_rate_ceil, mul_div_floor
from perpx.core.risk import liquidation

if TYPE_CHECKING:
    from perpx.core.account.clearing import Clearing
    from perpx.core.market import Market

Entry = tuple[int, int, int]  # (trigger price in ticks, account id, position idx)
# (symbol, filed with the longs, entry or None for "check on every move of the symbol")
Filing = tuple[str, bool, Entry | None]

_NOTHING: list[Filing] = []  # the filing of an account not in the index (never changed)
_BUDGET_IDX: Final = -1  # the position idx of an account-wide budget entry
# A budget band is at most this share of the mark wide (in RATE_ONE), so the risk tier met
# inside it is known when the band is drawn.
_BAND_CAP: Final = RATE_ONE // 10


class RiskIndex:
    """Liquidation triggers by symbol and side, refreshed for accounts that changed."""

    def __init__(self, market: Market, clearing: Clearing) -> None:
        self.market = market
        self.clearing = clearing
        self.longs: dict[str, SortedList] = {}  # breached when the mark falls to the trigger
        self.shorts: dict[str, SortedList] = {}  # breached when the mark rises to it
        self.always: dict[str, set[int]] = {}  # accounts checked on every move of the symbol
        self.filed: dict[int, list[Filing]] = {}

    def refresh(self, account_ids: set[int]) -> None:
        """File the current triggers of `account_ids` (the accounts that changed).

        Most changes leave an account's filing as it was (an order on an isolated account, a
        fill that keeps a cached trigger), so only the entries that differ move: a sorted
        list's removal and insertion cost more than computing the filing.
        """
        accounts = self.clearing.accounts
        filed = self.filed
        for account_id in account_ids:
            account = accounts.get(account_id)
            new: list[Filing] = []
            if account is not None and account_id not in SYSTEM_ACCOUNT_IDS:
                self._file(account, new)
            old = filed.get(account_id, _NOTHING)
            if old == new:
                continue
            if old and new:
                kept = set(new)
                self._unfile([f for f in old if f not in kept], account_id)
                was = set(old)
                self._put([f for f in new if f not in was], account_id)
            else:
                self._unfile(old, account_id)
                self._put(new, account_id)
            if new:
                filed[account_id] = new
            else:
                del filed[account_id]
        account_ids.clear()

    def candidates(self, symbol: str, mark: int) -> list[int]:
        """Return the ids of accounts that a mark of `mark` may breach on `symbol`, sorted."""
        found: set[int] = set(self.always.get(symbol, ()))
        longs = self.longs.get(symbol)
        if longs:
            # Longs whose trigger is at or above the mark, from the highest down.
            for trigger, account_id, _idx in reversed(longs):
                if trigger < mark:
                    break
                found.add(account_id)
        shorts = self.shorts.get(symbol)
        if shorts:
            for trigger, account_id, _idx in shorts:
                if trigger > mark:
                    break
                found.add(account_id)
        return sorted(found)

    # -- filing -----------------------------------------------------------------------------

    def _unfile(self, filings: list[Filing], account_id: int) -> None:
        for symbol, is_long, entry in filings:
            if entry is None:
                self.always[symbol].discard(account_id)
            else:
                (self.longs if is_long else self.shorts)[symbol].remove(entry)

    def _put(self, filings: list[Filing], account_id: int) -> None:
        for symbol, is_long, entry in filings:
            if entry is None:
                self.always.setdefault(symbol, set()).add(account_id)
            else:
                book = self.longs if is_long else self.shorts
                entries = book.get(symbol)
                if entries is None:
                    entries = book[symbol] = SortedList()
                entries.add(entry)

    def _file(self, account: Account, out: list[Filing]) -> None:
        """Append the filings of `account`'s current triggers to `out`."""
        held = [p for p in account.positions.values() if p.size_lots]
        if not held:
            return
        account_id = account.account_id
        if account.model.holds_position_margin:
            clearing = self.clearing
            trigger_of = liquidation.liquidation_trigger_ticks
            for position in held:
                trigger = trigger_of(clearing, position)
                if trigger is not None:
                    out.append((position.symbol, position.size_lots > 0,
                                (trigger, account_id, position.position_idx)))
            return
        if self.clearing.pooled(account):
            self._file_pool(account, out)
            return
        has_orders = any(s.leaves_lots for s in account.order_sums.values())
        if len(held) == 1 and not has_orders and held[0].position_idx == 0:
            [position] = held
            trigger = self._cross_trigger(account, position.symbol)
            if trigger is not None:
                out.append((position.symbol, position.size_lots > 0,
                            (trigger, account_id, position.position_idx)))
                return
        self._file_budget(account, out)

    def _file_pool(self, account: Account, out: list[Filing]) -> None:
        """File a USD pool (several coins, or portfolio margin) to be checked on every move.

        Under every symbol it holds or orders, and every symbol on a coin it holds that is
        not at par: a move of that coin's price revalues its collateral or its liability
        (next-mechanics §4.5). Only pooled accounts are checked this way, never all accounts.
        """
        instruments = self.market.instruments
        symbols = {p.symbol for p in account.positions.values() if p.size_lots}
        symbols.update(s for (s, _i, _d), o in account.order_sums.items() if o.leaves_lots)
        clearing = self.clearing
        for coin in clearing.account_coins(account):
            if coin not in clearing.par_coins:
                symbols.update(s for s, spec in instruments.items() if spec.base_coin == coin)
        for symbol in sorted(symbols):
            out.append((symbol, False, None))

    def _file_budget(self, account: Account, out: list[Filing]) -> None:
        """File a cross account by margin budget: one band per symbol it holds or orders."""
        instruments = self.market.instruments
        exposure: dict[str, list[int]] = {}  # symbol -> [net lots, gross lots, order lots]
        for position in account.positions.values():
            if position.size_lots:
                held = exposure.setdefault(position.symbol, [0, 0, 0])
                held[0] += position.size_lots
                held[1] += abs(position.size_lots)
        for (symbol, _idx, _side), sums in account.order_sums.items():
            if sums.leaves_lots:
                exposure.setdefault(symbol, [0, 0, 0])[2] += sums.leaves_lots
        for coin in sorted({instruments[s].settle_coin for s in exposure}):
            symbols = sorted(s for s in exposure if instruments[s].settle_coin == coin)
            bands = self._budget_bands(account, coin, {s: exposure[s] for s in symbols})
            for symbol in symbols:
                band = None if bands is None else bands.get(symbol)
                if band is None:
                    out.append((symbol, False, None))
                    continue
                low, high = band
                out.append((symbol, True, (low, account.account_id, _BUDGET_IDX)))
                out.append((symbol, False, (high, account.account_id, _BUDGET_IDX)))

    def _budget_bands(self, account: Account, coin: str,
                      exposure: dict[str, list[int]]) -> dict[str, tuple[int, int]] | None:
        """Return each symbol's safe band of marks, or None when no band can be drawn.

        Moving symbol s's mark by Δ ticks changes the slack by at most
        ``Δ/M_s · w_s`` atoms, where w_s values at the band's dearest end the net size
        (unrealized P&L), the orders (order loss) and the gross size at the band's highest MM
        rate plus twice the taker fee. With ``d_s = slack · M_s / Σw`` every combination of
        moves inside the bands consumes at most the slack, so the account cannot reach an MM
        rate of 100% there.
        """
        market = self.market
        figures = self.clearing.figures(account, coin)
        # Each rounded-up term of MM and order loss may move by an atom within a band.
        rounding = 4 * (len(account.positions) + len(account.order_sums) + 1)
        slack = (figures.margin_balance_atoms + figures.order_loss_atoms - figures.mm_atoms
                 - rounding)
        if slack <= 0:
            return None
        marks: dict[str, int] = {}
        weight_total = 0
        for symbol, (net, gross, ordered) in exposure.items():
            spec = market.instruments[symbol]
            mark = market.mark_of(symbol)
            if mark is None:
                return None
            marks[symbol] = mark
            # Value at the band's end where the position is worth most: its top for a linear
            # contract, its bottom for an inverse one (``C/P`` grows as the price falls), so
            # the weight bounds the value's change over the whole band either way.
            cap = apply_rate_ceil(mark, _BAND_CAP)
            top = mark + cap if spec.contract.value_sign > 0 else max(1, mark - cap)
            value_at_top = spec.contract.value_ceil_atoms
            gross_value = value_at_top(top, gross)
            mmr = calc.tier_for_position(spec, gross_value).mmr
            weight_total += (value_at_top(top, abs(net) + ordered)
                             + apply_rate_ceil(gross_value, mmr + 2 * spec.taker_fee_rate) + 1)
        bands: dict[str, tuple[int, int]] = {}
        for symbol, mark in marks.items():
            reach = min(mul_div_floor(slack, mark, weight_total),
                        mul_div_floor(mark, _BAND_CAP, RATE_ONE))
            if reach <= 0:
                return None
            bands[symbol] = (mark - reach, mark + reach)
        return bands

    def _cross_trigger(self, account: Account, symbol: str) -> int | None:
        """Estimate the mark at which a one-position cross account's MM rate reaches 100%.

        Spec §2.2 holding the wallet fixed; evaluated with the tier of the position value at
        the estimate itself (iterated, §14 Q4), rounded toward the current mark.
        """
        market = self.market
        clearing = self.clearing
        spec = market.instruments[symbol]
        position = account.positions.get((symbol, 0))
        if position is None or not position.size_lots:
            return None
        mark = market.mark_of(symbol)
        if mark is None:
            return None
        side = Side.BUY if position.size_lots > 0 else Side.SELL
        # The margin balance (wallet + uPnL). The account holds this one position and a mark
        # values it, so the equity is exactly the figures' margin balance, without valuing
        # IM, MM and order terms the estimate does not use (a property test compares them).
        margin_balance = clearing.equity_atoms(account, spec.settle_coin)
        ftc = position.fee_to_close_atoms(spec)
        contract = spec.contract
        qty = position.qty_lots
        at = mark
        trigger: int | None = None
        for _ in range(4):
            tier = calc.tier_for_position(spec, contract.value_ceil_atoms(at, qty))
            mm_at_mark = contract.maintenance_margin_atoms(
                contract.value_ceil_atoms(mark, qty), tier.mmr, tier.mm_deduction_atoms, ftc)
            trigger = contract.cross_liquidation_price_estimate_ticks(
                side, qty, mark, margin_balance, mm_at_mark, tier.mmr)
            if trigger is None or trigger <= 0:
                return None
            if calc.tier_for_position(spec, contract.value_ceil_atoms(trigger, qty)) is tier:
                return trigger
            at = trigger
        return None  # no settled tier: check this account on every move
