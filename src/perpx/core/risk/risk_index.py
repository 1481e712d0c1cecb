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

An entry is one int, ``trigger << 32 | account id << 2 | (position idx + 1)`` (`entry_key`):
ints in the same order as the tuples (trigger, account id, idx), but a sorted list's
`bisect` compares two ints where it compared two tuples element by element, and a filing
holds one object where it held a tuple of three. An account whose id does not fit the low
bits (below 0 or from 2**30; commands never create one below 1) is checked on every move of
its symbols instead, which only adds candidates.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Final

from perpx.core import calc
from perpx.core.account.accounts import SYSTEM_ACCOUNT_IDS, Account
from perpx.core.account.collateral import PX_ONE
from perpx.core.account.positions import Position
from perpx.core.enums import Side
from perpx.core.errors import InvariantViolation
from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import RATE_ONE, apply_rate_ceil, bisect_left_ints, mul_div_floor
from perpx.core.risk import liquidation

if TYPE_CHECKING:
    from perpx.core.account.clearing import Clearing
    from perpx.core.market import Market

# (symbol, filed with the longs, entry or None for "check on every move of the symbol"). The
# entry (`entry_key`) is typed Any: compiled, an `int | None` read from a filing is unboxed
# and boxed again for `bisect`, a new int object per call; Any hands on the object as filed.
Filing = tuple[str, bool, Any]

_NOTHING: list[Filing] = []  # the filing of an account not in the index (never changed)
# The key prefix of a band on a symbol's *index* (a pool's collateral, a PM unit's scenarios)
# rather than its mark; no symbol starts with it.
_INDEX: Final = "index:"
_BUDGET_IDX: Final = -1  # the position idx of an account-wide budget entry
# A budget band is at most this share of the mark wide (in RATE_ONE), so the risk tier met
# inside it is known when the band is drawn.
_BAND_CAP: Final = RATE_ONE // 10
# Up to this many filings old and new, `refresh` finds the changed ones by list scans, not sets.
_SMALL_DIFF: Final = 8
# The low bits of an entry: account id << 2 | (position idx + 1), the idx from -1 (a budget
# band) to 2. Ids in [0, _CODED_IDS) fit; an entry's trigger is the rest, shifted above them.
_CODE_BITS: Final = 32
_CODE_MASK: Final = (1 << _CODE_BITS) - 1
_CODED_IDS: Final = 1 << (_CODE_BITS - 2)


def entry_key(trigger: int, account_id: int, idx: int) -> int:
    """Return the entry of (trigger, account id, idx) for an id in ``[0, 2**30)``.

    Ordered as the tuple is: the trigger first (any sign: Python's shift floors), then the
    id, then the idx.
    """
    return (trigger << _CODE_BITS) | (account_id << 2) | (idx + 1)


def entry_parts(key: int) -> tuple[int, int, int]:
    """Return the (trigger, account id, idx) an entry was made of (`entry_key`)."""
    return key >> _CODE_BITS, (key & _CODE_MASK) >> 2, (key & 3) - 1


class _Held:
    """What an account holds and orders on one symbol, in lots (`_exposure`).

    A class of native ints rather than a list: compiled, ``row[0] += size`` on a list
    unboxes, adds and boxes a new int (a generic in-place add), an attribute adds in place.
    """

    __slots__ = ("gross", "net", "ordered")

    def __init__(self) -> None:
        self.net = 0  # signed: long positive
        self.gross = 0
        self.ordered = 0  # leaves lots of resting orders


def _exposure(account: Account) -> dict[str, _Held]:
    """Return, per symbol an account holds or orders, its net, gross and ordered lots."""
    # `get` before building a row: `setdefault` would build a row per call.
    exposure: dict[str, _Held] = {}
    for position in account.positions.values():
        size = position.size_lots
        if size:
            held = exposure.get(position.symbol)
            if held is None:
                held = exposure[position.symbol] = _Held()
            held.net += size
            held.gross += size if size > 0 else -size
    # A symbol's side groups mostly come one after another: the last row is kept, not
    # looked up again for the same symbol.
    last = ""
    row: _Held | None = None
    for (symbol, _idx, _side), sums in account.order_sums.items():
        leaves = sums.leaves_lots
        if leaves:
            if row is None or symbol != last:
                row = exposure.get(symbol)
                if row is None:
                    row = exposure[symbol] = _Held()
                last = symbol
            row.ordered += leaves
    return exposure


def _band_top(spec: InstrumentSpec, mark: int) -> int:
    """Return the band's end where a position is worth most.

    Its top for a linear contract, its bottom for an inverse one (``C/P`` grows as the price
    falls), so a weight valued there bounds the value's change over the whole band.
    """
    cap = apply_rate_ceil(mark, _BAND_CAP)
    return mark + cap if spec.contract.value_sign > 0 else max(1, mark - cap)


def _mark_weight(spec: InstrumentSpec, top: int, net: int, gross: int, ordered: int) -> int:
    """Bound a cross account's slack change per relative mark move, in the settle coin.

    The net size (unrealized P&L), the orders (order loss) and the gross size at the band's
    highest MM rate plus twice the taker fee, all valued at `top`, plus an atom.
    """
    # The contract's method called on it, not through a local: compiled, a bound method in a
    # local is a generic Python call (a vectorcall and its arguments boxed) each time.
    contract = spec.contract
    gross_value = contract.value_ceil_atoms(top, gross)
    mmr = calc.tier_for_position(spec, gross_value).mmr
    return (contract.value_ceil_atoms(top, (net if net >= 0 else -net) + ordered)
            + apply_rate_ceil(gross_value, mmr + 2 * spec.taker_fee_rate) + 1)


def _bands(slack: int, prices: dict[str, int],
           weight_total: int) -> dict[str, tuple[int, int]] | None:
    """Share `slack` among the prices by weight: ``d = slack · P / Σw``, capped at 10%.

    None when a band would be empty (no weight, or no reach).
    """
    if not weight_total:
        return None
    # A slack of at least the total weight reaches a whole price (``slack · P / Σw >= P``),
    # past the cap (`_BAND_CAP` <= RATE_ONE): the capped reach, without the share's product
    # (a slack in atoms times a price overflows a machine word: heap longs). The usual case
    # of an account far from liquidation; a property test holds it to the plain formula.
    capped = slack >= weight_total
    bands: dict[str, tuple[int, int]] = {}
    for key, price in prices.items():
        cap = mul_div_floor(price, _BAND_CAP, RATE_ONE)
        reach = cap if capped else min(mul_div_floor(slack, price, weight_total), cap)
        if reach <= 0:
            return None
        bands[key] = (price - reach, price + reach)
    return bands


class RiskIndex:
    """Liquidation triggers by symbol and side, refreshed for accounts that changed."""

    def __init__(self, market: Market, clearing: Clearing) -> None:
        self.market = market
        self.clearing = clearing
        # Entries kept sorted in plain lists with `bisect` (as a book side's prices): a
        # symbol holds one entry per filed position, so an insertion or removal is a short
        # memmove in C, where a `SortedList` runs Python code for each (compiled or not).
        self.longs: dict[str, list[int]] = {}  # breached when the mark falls to the trigger
        self.shorts: dict[str, list[int]] = {}  # breached when the mark rises to it
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
            count = len(new)
            if len(old) == count:
                # Filings come out in one order (symbols sorted, a band's low before its
                # high), so a filing of the same length is diffed place by place: what differs
                # at a place is unfiled and its replacement put. Neither list repeats a filing,
                # so that leaves the books holding `new`, as the diff by membership does.
                # An entry replaced by one in the same book (a band or trigger that moved) is
                # moved there at once (`_moved`): one lookup of the book, and a search of
                # only the part of it the new entry can go to. A sorted list is its multiset,
                # so this leaves the books as unfiling and filing would.
                changed = False
                gone: list[Filing] = []
                came: list[Filing] = []
                for at in range(count):
                    before = old[at]
                    after = new[at]
                    if before != after:
                        changed = True
                        if not self._moved(before, after):
                            gone.append(before)
                            came.append(after)
                if not changed:
                    continue
                if gone:
                    self._unfile(gone, account_id)
                    self._put(came, account_id)
            elif old and new:
                # A few filings: a list scan is cheaper than hashing each tuple into a set.
                small = len(old) + len(new) <= _SMALL_DIFF
                kept: Collection[Filing] = new if small else set(new)
                was: Collection[Filing] = old if small else set(old)
                self._unfile([f for f in old if f not in kept], account_id)
                self._put([f for f in new if f not in was], account_id)
            else:
                self._unfile(old, account_id)
                self._put(new, account_id)
            if new:
                filed[account_id] = new
            else:
                del filed[account_id]
        account_ids.clear()

    def watches_index(self, symbol: str) -> bool:
        """Tell whether some account is filed by the index of `symbol` (a pool's band)."""
        key = _INDEX + symbol
        return bool(self.longs.get(key) or self.shorts.get(key) or self.always.get(key))

    def candidates(self, symbol: str, mark: int, index: int | None = None) -> list[int]:
        """Return the ids of accounts that a mark of `mark` may breach on `symbol`, sorted.

        With the symbol's `index`, also the pools whose band on that index it left.
        """
        found = self._found(symbol, mark)
        if index is not None and self.filed:
            key = _INDEX + symbol
            if key in self.always or key in self.longs:
                found |= self._found(key, index)
        return sorted(found)

    def _found(self, symbol: str, mark: int) -> set[int]:
        found: set[int] = set(self.always.get(symbol, ()))
        longs = self.longs.get(symbol)
        if longs:
            # Longs whose trigger is at or above the mark, from the highest down: an entry's
            # trigger is at least the mark exactly when the entry is at least mark << bits.
            lowest = mark << _CODE_BITS
            for key in reversed(longs):
                if key < lowest:
                    break
                found.add((key & _CODE_MASK) >> 2)
        shorts = self.shorts.get(symbol)
        if shorts:
            # Shorts whose trigger is at or below the mark: entries under (mark + 1) << bits.
            beyond = (mark + 1) << _CODE_BITS
            for key in shorts:
                if key >= beyond:
                    break
                found.add((key & _CODE_MASK) >> 2)
        return found

    # -- filing -----------------------------------------------------------------------------

    def _moved(self, before: Filing, after: Filing) -> bool:
        """Move `before`'s entry to `after`'s if both are on the same symbol and side.

        One lookup of the book and a search for the old entry; the new one is searched for
        only on the old one's side of it (the entries before the old one are below it, those
        from it on not below it), or put in its place when it sorts strictly between the old
        one's neighbours (no shift of the list's tail). False (nothing done) otherwise.
        """
        symbol, is_long, entry = before
        new_symbol, new_is_long, new_entry = after
        if entry is None or new_entry is None or is_long != new_is_long or (
                symbol != new_symbol):
            return False
        # Compared as native ints; the list keeps the filed objects (`Filing`).
        key: int = entry
        new_key: int = new_entry
        entries = (self.longs if is_long else self.shorts)[symbol]
        count = len(entries)
        at = bisect_left_ints(entries, key, 0, count)
        if at == count or entries[at] != key:
            raise InvariantViolation(f"risk index: {entry} is not filed on {symbol}")
        if new_key > key:
            if at + 1 == count or entries[at + 1] > new_key:
                entries[at] = new_entry
                return True
            entries.pop(at)
            entries.insert(bisect_left_ints(entries, new_key, at, count - 1), new_entry)
        else:
            if at == 0 or entries[at - 1] < new_key:
                entries[at] = new_entry
                return True
            entries.pop(at)
            entries.insert(bisect_left_ints(entries, new_key, 0, at), new_entry)
        return True

    def _unfile(self, filings: list[Filing], account_id: int) -> None:
        for symbol, is_long, entry in filings:
            if entry is None:
                self.always[symbol].discard(account_id)
            else:
                entries = (self.longs if is_long else self.shorts)[symbol]
                at = bisect_left_ints(entries, entry, 0, len(entries))
                if at == len(entries) or entries[at] != entry:
                    raise InvariantViolation(f"risk index: {entry} is not filed on {symbol}")
                entries.pop(at)

    def _put(self, filings: list[Filing], account_id: int) -> None:
        for symbol, is_long, entry in filings:
            if entry is None:
                self.always.setdefault(symbol, set()).add(account_id)
            else:
                book = self.longs if is_long else self.shorts
                entries = book.get(symbol)
                if entries is None:
                    entries = book[symbol] = []
                entries.insert(bisect_left_ints(entries, entry, 0, len(entries)), entry)

    def _file(self, account: Account, out: list[Filing]) -> None:
        """Append the filings of `account`'s current triggers to `out`.

        An isolated account's come from its positions alone, and an account without a held
        position has none: the clearing marks an account dirty on an order only where they
        read orders (`perpx.core.account.clearing.index_reads_orders`).
        """
        held = [p for p in account.positions.values() if p.size_lots]
        if not held:
            return
        account_id = account.account_id
        if not 0 <= account_id < _CODED_IDS:
            self._file_always(account, held, out)
            return
        if account.model.holds_position_margin:
            clearing = self.clearing
            for position in held:
                # Called by name, not through a local: compiled, a function held in a local
                # is a generic Python call (argument parsing and boxing) each time.
                trigger = liquidation.liquidation_trigger_ticks(clearing, position)
                if trigger is not None:
                    out.append((position.symbol, position.size_lots > 0,
                                entry_key(trigger, account_id, position.position_idx)))
            return
        if self.clearing.pooled(account):
            self._file_pool(account, out)
            return
        has_orders = False
        for sums in account.order_sums.values():  # a loop: a generator costs more compiled
            if sums.leaves_lots:
                has_orders = True
                break
        if len(held) == 1 and not has_orders and held[0].position_idx == 0:
            [position] = held
            trigger = self._cross_trigger(account, position.symbol)
            if trigger is not None:
                out.append((position.symbol, position.size_lots > 0,
                            entry_key(trigger, account_id, 0)))
                return
        self._file_budget(account, out)

    def _file_always(self, account: Account, held: list[Position], out: list[Filing]) -> None:
        """File an account no entry can carry (`entry_key`) as checked on every move.

        Under every key its filing by trigger or band would use: the symbols an isolated
        account holds, the keys a pool's figures read, the symbols a cross account holds or
        orders. One filing per key: a hedged pair shares the key's set.
        """
        if account.model.holds_position_margin:
            keys = sorted({p.symbol for p in held})
        elif self.clearing.pooled(account):
            keys = self._pool_keys(account)
        else:
            keys = sorted(_exposure(account))
        for key in keys:
            out.append((key, False, None))

    def _file_pool(self, account: Account, out: list[Filing]) -> None:
        """File a USD pool (several coins, or portfolio margin) by a margin budget in USD.

        As `_budget_bands`, but the slack is the pool's (margin balance + order loss − MM, in
        USD) and it is shared among the marks of the symbols the account trades and the
        indices that price its collateral (a BTC balance moves with BTCUSDT's index, §4.1)
        or its portfolio-margin scenarios (§5.3). A band the pool cannot be given (no price
        yet, no slack) files it under every symbol concerned, checked on every move.
        """
        account_id = account.account_id
        bands = self._pool_bands(account)
        if bands is None:
            for key in self._pool_keys(account):
                out.append((key, False, None))
            return
        for key in sorted(bands):
            low, high = bands[key]
            out.append((key, True, entry_key(low, account_id, _BUDGET_IDX)))
            out.append((key, False, entry_key(high, account_id, _BUDGET_IDX)))

    def _pool_keys(self, account: Account) -> list[str]:
        """Return every mark and index key a pool's figures depend on."""
        instruments = self.market.instruments
        clearing = self.clearing
        symbols = {p.symbol for p in account.positions.values() if p.size_lots}
        symbols.update(s for (s, _i, _d), o in account.order_sums.items() if o.leaves_lots)
        keys = set(symbols) | {_INDEX + s for s in symbols}
        for coin in clearing.account_coins(account):
            keys.update(_INDEX + s for s, spec in instruments.items() if spec.base_coin == coin)
            keys.update(s for s, spec in instruments.items() if spec.base_coin == coin)
        return sorted(keys)

    def _pool_bands(self, account: Account) -> dict[str, tuple[int, int]] | None:
        """Return the pool's safe bands by key (mark: symbol; index: `_INDEX` + symbol).

        Weights bound the change in USD of the pool's slack for a relative move of each
        price over its band (at most `_BAND_CAP`): for a traded symbol's mark, the value of
        its net position and orders (uPnL, order loss) and, in cross margin, its MM at the
        band's dearest end; for a portfolio-margin symbol's index, its gross value times the
        scenario range plus the contingency rate (MaxLoss and the contingency scale with the
        index); for a coin priced by an index, its equity plus twice the value of what is
        settled in it. A coin amount is valued at its USD price at the top of its own band.
        """
        market = self.market
        clearing = self.clearing
        instruments = market.instruments
        pm = account.model.pools
        risk = clearing.account_risk(account)
        exposure = _exposure(account)
        coins = clearing.account_coins(account)
        px_top: dict[str, int] = {}
        rounding = 0
        terms = 4 * (len(account.positions) + len(account.order_sums) + 1)
        for coin in coins:
            px = clearing.usd_px(coin)
            if px <= 0:
                return None
            source, by_index = clearing.usd_price_source(coin)
            if source and not by_index and market.mark_price.get(source) is None:
                return None  # priced by a last trade: no band can hold it
            top = px if not source else apply_rate_ceil(px, RATE_ONE + _BAND_CAP)
            px_top[coin] = top
            # Each coin term rounds by an atom or so in its coin, and again into USD.
            rounding += -(-terms * top // PX_ONE) + 16
        slack = risk.margin_balance_atoms + risk.order_loss_atoms - risk.mm_atoms - rounding
        if slack <= 0:
            return None
        prices: dict[str, int] = {}  # key -> the price its band is drawn around
        weights: dict[str, int] = {}
        settled_value: dict[str, int] = {}  # coin -> value of what settles in it, at the top
        params = clearing.pm_params
        for symbol, held in exposure.items():
            net = held.net
            gross = held.gross
            ordered = held.ordered
            spec = instruments[symbol]
            mark = market.mark_of(symbol)
            if mark is None:
                return None
            top = _band_top(spec, mark)
            contract = spec.contract  # its method called on it: a local bound method is generic
            coin_px = px_top[spec.settle_coin]
            gross_value = contract.value_ceil_atoms(top, gross + ordered)
            settled_value[spec.settle_coin] = settled_value.get(spec.settle_coin, 0) + gross_value
            # Portfolio margin's MM moves with the index, weighed below; cross MM with the mark.
            weight = (contract.value_ceil_atoms(top, abs(net) + ordered) + 1 if pm
                      else _mark_weight(spec, top, net, gross, ordered))
            prices[symbol] = mark
            weights[symbol] = -(-weight * coin_px // PX_ONE)
            if pm:
                # The scenarios' base is the index, or the mark before any index
                # (`margin_model.pm_legs`): the band goes on whichever it reads.
                index = market.index_price.get(symbol)
                move = params.range_for(spec.base_coin).max_move + params.risk_factor
                key = _INDEX + symbol if index else symbol
                if index:
                    prices[key] = index
                scenario = apply_rate_ceil(contract.value_ceil_atoms(top, gross), move) + 1
                weights[key] = weights.get(key, 0) + (-(-scenario * coin_px // PX_ONE))
        for coin in coins:
            source, by_index = clearing.usd_price_source(coin)
            if not source:
                continue
            # The price `usd_px` reads: the index, or the mark before any index.
            key = _INDEX + source if by_index else source
            coin_price = (market.index_price.get(source) if by_index
                          else market.mark_price.get(source))
            if not coin_price:
                return None
            equity = clearing.equity_atoms(account, coin)
            amount = abs(equity) + 2 * settled_value.get(coin, 0) + 1
            prices[key] = coin_price
            weights[key] = weights.get(key, 0) + (-(-amount * px_top[coin] // PX_ONE))
        return _bands(slack, prices, sum(weights.values()))

    def _file_budget(self, account: Account, out: list[Filing]) -> None:
        """File a cross account by margin budget: one band per symbol it holds or orders."""
        instruments = self.market.instruments
        exposure = _exposure(account)
        if not exposure:
            return
        coin = ""
        symbols: list[str] = []
        for symbol in exposure:
            settle = instruments[symbol].settle_coin
            if coin and settle != coin:
                break
            coin = settle
            symbols.append(symbol)  # appended: compiled, `list(exposure)` is a generic call
        else:
            # All in one coin (the usual case): one budget over the whole exposure, without
            # the per-coin split (`_budget_bands` does not depend on the dict's order).
            if len(symbols) > 1:  # most accounts trade one symbol: no sort called for it
                symbols.sort()
            self._put_bands(account, symbols, self._budget_bands(account, coin, exposure), out)
            return
        for coin in sorted({instruments[s].settle_coin for s in exposure}):
            symbols = sorted(s for s in exposure if instruments[s].settle_coin == coin)
            bands = self._budget_bands(account, coin, {s: exposure[s] for s in symbols})
            self._put_bands(account, symbols, bands, out)

    @staticmethod
    def _put_bands(account: Account, symbols: list[str],
                   bands: dict[str, tuple[int, int]] | None, out: list[Filing]) -> None:
        """Append the filings of `symbols`' bands; a symbol without one is always checked."""
        account_id = account.account_id
        for symbol in symbols:
            band = None if bands is None else bands.get(symbol)
            if band is None:
                out.append((symbol, False, None))
                continue
            low, high = band
            out.append((symbol, True, entry_key(low, account_id, _BUDGET_IDX)))
            out.append((symbol, False, entry_key(high, account_id, _BUDGET_IDX)))

    def _budget_bands(self, account: Account, coin: str,
                      exposure: dict[str, _Held]) -> dict[str, tuple[int, int]] | None:
        """Return each symbol's safe band of marks, or None when no band can be drawn.

        Moving symbol s's mark by Δ ticks changes the slack by at most
        ``Δ/M_s · w_s`` atoms, where w_s values at the band's dearest end the net size
        (unrealized P&L), the orders (order loss) and the gross size at the band's highest MM
        rate plus twice the taker fee. With ``d_s = slack · M_s / Σw`` every combination of
        moves inside the bands consumes at most the slack, so the account cannot reach an MM
        rate of 100% there.
        """
        market = self.market
        # `_file` sends here only a cross account that is not pooled: its figures are the
        # coin's own, so the pool test `slack_terms` would repeat is skipped.
        margin_balance, mm, order_loss = self.clearing.coin_slack_terms(account, coin)
        # Each rounded-up term of MM and order loss may move by an atom within a band.
        rounding = 4 * (len(account.positions) + len(account.order_sums) + 1)
        slack = margin_balance + order_loss - mm - rounding
        if slack <= 0:
            return None
        marks: dict[str, int] = {}
        weight_total = 0
        for symbol, held in exposure.items():
            spec = market.instruments[symbol]
            mark = market.mark_of(symbol)
            if mark is None:
                return None
            marks[symbol] = mark
            weight_total += _mark_weight(spec, _band_top(spec, mark), held.net, held.gross,
                                         held.ordered)
        return _bands(slack, marks, weight_total)

    def _cross_trigger(self, account: Account, symbol: str) -> int | None:
        """Estimate the mark at which a one-position cross account's MM rate reaches 100%.

        Spec §2.2 holding the wallet fixed; evaluated with the tier of the position value at
        the estimate itself (iterated, §14 Q4), rounded toward the current mark.
        """
        market = self.market
        clearing = self.clearing
        spec = market.instruments[symbol]
        position = account.positions.get(spec.keys.position(0))
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
