"""The margin model of each margin mode: every rule that differs between isolated and cross.

An account holds one model (`Account.model`), chosen when its margin mode is set; callers ask
it, and nothing outside this module branches on the mode. A model answers the account's risk
value (`RiskValue`: equity, IM, MM, available balance, MM rate) and the mode's predicates and
rules: can an order open, is a position or account liquidatable, what a fill does to the
position margin, what funding takes from it, what a leverage change does to it, and the
liquidation and bankruptcy prices a position shows. Portfolio margin will be a third model.

Cross: margin balance = wallet + unrealized P&L; IM rate = ΣIM / (margin balance + order loss);
available = margin balance + order loss − ΣIM; liquidated when MM rate ≥ 100% (seed 001,
spec §7.2). Isolated: each position holds its own margin; available = wallet − Σ position
margin − Σ order margin; a position is liquidated when the mark reaches its trigger, where its
margin plus unrealized P&L meets maintenance (seed 001, seed 003, spec §1.4).
"""

from __future__ import annotations

from typing import Final

from perpx.core import calc, liqprice
from perpx.core.account.accounts import Account, MarginLedger, MarginModel
from perpx.core.account.collateral import usd_ceil, usd_floor
from perpx.core.account.margin import order_margin_atoms, order_margin_ceiling
from perpx.core.account.portfolio import PmAccountResult, PmLeg, portfolio_margin
from perpx.core.account.positions import Position
from perpx.core.account.risk_value import AccountRisk, PositionRisk, RiskValue
from perpx.core.codes import RejectCode, Rejected
from perpx.core.enums import MarginMode, Side
from perpx.core.instruments import InstrumentSpec
from perpx.core.keys import position_key
from perpx.core.numbers import RATE_ONE, div_ceil, mul_div_floor
from perpx.core.risk import liquidation

_BUY: Final = Side.BUY
_SELL: Final = Side.SELL


def position_risk(position: Position, spec: InstrumentSpec, mark_ticks: int,
                  mode: MarginMode) -> PositionRisk:
    """Value one position at `mark_ticks` (seed 001; spec §1.1, §1.2).

    IM is the mode's (`MarginModel.position_im_atoms`); MM is PV × MMR − deduction + fee to
    close, with the tier of the position value.
    """
    side = Side.BUY if position.size_lots > 0 else Side.SELL
    qty = abs(position.size_lots)
    value = spec.contract.value_ceil_atoms(mark_ticks, qty)
    upnl = calc.unrealized_pnl_atoms(spec, side, position.entry_value_atoms, qty, mark_ticks)
    ftc = position.fee_to_close_atoms(spec)
    mm = calc.maintenance_margin_atoms(spec, value, ftc)
    im = model_for(mode).position_im_atoms(position, spec, value, ftc)
    return PositionRisk(value, upnl, im, mm, ftc)


def account_figures(ledger: MarginLedger, account: Account, coin: str) -> RiskValue:
    """Return an account's risk value for `coin` by its own model (seed 001)."""
    return account.model.risk_value(ledger, account, coin)


def _order_terms(ledger: MarginLedger, account: Account, coin: str, symbols: set[str],
                 with_im: bool = True) -> tuple[int, int]:
    """Return (order IM, order loss) over `symbols` and those with open orders in `coin`.

    Order loss is measured only against a published mark price (`order_loss_atoms`, asked
    of the ledger by a native call: a callable handed in was a generic call per symbol).
    Without `with_im` the order IM is not computed (0): a margin budget reads only the
    order loss.
    """
    instruments = ledger.instruments
    # A symbol's side groups mostly come one after another: one that repeats the last symbol
    # looked at is skipped (its coin, so its verdict, is the same), not looked up again.
    last = ""
    for (symbol, _idx, _side), sums in account.order_sums.items():
        if sums.leaves_lots and symbol != last:
            last = symbol
            # A symbol already held in `coin` is there: no lookup of its spec (the usual
            # account orders where it holds, and a filing's every order comes here).
            if symbol not in symbols and instruments[symbol].settle_coin == coin:
                symbols.add(symbol)
    order_im = order_loss = 0
    # In the set's order, not sorted: exact integer sums do not depend on the order, and
    # each symbol's terms (and the caches they fill) are its own.
    for symbol in symbols:
        spec = instruments[symbol]
        if with_im:
            order_im += order_margin_atoms(account, spec)
        order_loss += ledger.account_order_loss_atoms(account, spec)
    return order_im, order_loss


def _positions_at_mark(model: MarginModel, ledger: MarginLedger, account: Account, coin: str,
                       with_im: bool = True) -> tuple[int, int, int, set[str]]:
    """Return (uPnL, IM, MM, symbols) of the account's open positions settled in `coin`.

    Each is valued at the ledger's `mark_ticks` (the entry price before any mark); the model
    says what IM a position takes (not computed, 0, without `with_im`). `position_risk`,
    written out: the property tests compare the figures.
    """
    instruments = ledger.instruments
    upnl = position_im = mm = 0
    symbols: set[str] = set()
    for (symbol, _idx), position in account.positions.items():
        size = position.size_lots
        if not size:
            continue
        spec = instruments[symbol]
        if spec.settle_coin != coin:
            continue
        symbols.add(symbol)
        qty = size if size > 0 else -size
        entry = position.entry_value_atoms
        mark = ledger.mark_ticks(symbol)
        if mark is None:
            mark = calc.average_entry_display(spec, entry, qty)
        value = spec.contract.value_ceil_atoms(mark, qty)
        if spec.contract.value_sign > 0:
            upnl += value - entry if size > 0 else entry - value
        else:  # an inverse value rounds, and its uPnL picks the rounding (`InverseContract`)
            upnl += spec.contract.unrealised_pnl_atoms(_BUY if size > 0 else _SELL, entry, qty,
                                                       mark)
        ftc = position.fee_to_close_atoms(spec)
        mm += calc.maintenance_margin_atoms(spec, value, ftc)
        if with_im:
            position_im += model.position_im_atoms(position, spec, value, ftc)
    return upnl, position_im, mm, symbols


def pool_risk(clearing: MarginLedger, account: Account) -> AccountRisk:
    """Sum an account's coins in USD (next-mechanics §4.3): its cross-margin figures.

    Each coin's own figures (its wallet, and the IM, MM and order loss of the contracts
    settled in it, by the account's model) at the coin's USD price: equity and order loss
    rounded down, IM and MM up, the margin balance after each coin's collateral ratio. An
    account in one coin at par comes out exactly as that coin's own figures.
    """
    total_equity = wallet = upnl = margin = position_im = order_im = mm = order_loss = 0
    for coin in clearing.account_coins(account):
        own, px, equity_usd, value = clearing.usd_terms(account, coin)
        total_equity += equity_usd
        margin += value
        wallet += usd_floor(own.wallet_atoms, px)
        upnl += usd_floor(own.upnl_atoms, px)
        position_im += usd_ceil(own.position_im_atoms, px)
        order_im += usd_ceil(own.order_im_atoms, px)
        mm += usd_ceil(own.mm_atoms, px)
        order_loss += usd_floor(own.order_loss_atoms, px)
    return AccountRisk(total_equity, wallet, upnl, margin, position_im, order_im, mm,
                       order_loss)


class _Stateless(MarginModel):
    """A model holds no state: a copied account shares its model."""

    __slots__ = ()

    def __copy__(self) -> _Stateless:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> _Stateless:
        return self


class CrossMargin(_Stateless):
    """Cross margin: the account is one pool; IM and MM are summed over its positions."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(MarginMode.CROSS, False)

    def position_im_atoms(self, position: Position, spec: InstrumentSpec, value_atoms: int,
                          fee_to_close_atoms: int) -> int:
        """IM = ceil(PV / L) + fee to close, at the current value (spec §1.1)."""
        return calc.initial_margin_atoms(value_atoms, position.leverage) + fee_to_close_atoms

    def risk_value(self, ledger: MarginLedger, account: Account, coin: str) -> RiskValue:
        """Positions at the mark (or the last price before any mark exists).

        Both sides of a hedge-mode symbol open: seed 001's hedged formulas replace the sum
        of the two positions' own IM and MM.
        """
        wallet, upnl, margin_balance, position_im, mm, order_im, order_loss = self._terms(
            ledger, account, coin, True)
        available = margin_balance + order_loss - position_im - order_im
        return RiskValue(wallet, upnl, margin_balance, position_im, order_im, mm, order_loss,
                         available)

    def slack_terms(self, ledger: MarginLedger, account: Account,
                    coin: str) -> tuple[int, int, int]:
        """`risk_value`'s margin balance, MM and order loss, without its IM terms."""
        _wallet, _upnl, margin_balance, _im, mm, _order_im, order_loss = self._terms(
            ledger, account, coin, False)
        return margin_balance, mm, order_loss

    def _terms(self, ledger: MarginLedger, account: Account, coin: str,
               with_im: bool) -> tuple[int, int, int, int, int, int, int]:
        """Return (wallet, uPnL, margin balance, position IM, MM, order IM, order loss).

        The one rule for both `risk_value` and `slack_terms`; without `with_im` the two IM
        terms are not computed (0), which is all a margin budget saves.
        """
        upnl, position_im, mm, symbols = _positions_at_mark(self, ledger, account, coin, with_im)
        hedged: dict[str, list[Position]] = {}
        # A held pair is two position records on one symbol of `symbols`, each of which has
        # at least one: with no more records than symbols there is none, and the records are
        # not walked again (most accounts hold one position: every filing by a budget).
        if len(account.positions) > len(symbols):
            for (symbol, idx), position in account.positions.items():
                if idx and position.size_lots and symbol in symbols:
                    hedged.setdefault(symbol, []).append(position)
        for symbol, pair in hedged.items():
            if len(pair) == 2:
                spec = ledger.instruments[symbol]
                mark = ledger.mark_ticks(symbol) or calc.average_entry_display(
                    spec, pair[0].entry_value_atoms, pair[0].qty_lots)
                for position in pair:
                    risk = position_risk(position, spec, mark, MarginMode.CROSS)
                    if with_im:
                        position_im -= risk.im_atoms
                    mm -= risk.mm_atoms
                long, short = sorted(pair, key=lambda p: p.position_idx)
                margins = calc.hedge_im_mm_atoms(
                    spec, long.qty_lots, long.entry_value_atoms, short.qty_lots,
                    short.entry_value_atoms, mark, min(long.leverage, short.leverage),
                    spec.taker_fee_rate)
                if with_im:
                    position_im += margins.long_im + margins.short_im
                mm += margins.long_mm + margins.short_mm
        order_im, order_loss = _order_terms(ledger, account, coin, symbols, with_im)
        wallet = account.balance(coin)
        return wallet, upnl, wallet + upnl, position_im, mm, order_im, order_loss

    def account_risk(self, clearing: MarginLedger, account: Account) -> AccountRisk:
        """Return the USD pool of the account's coins (`pool_risk`)."""
        return pool_risk(clearing, account)

    def available_atoms(self, clearing: MarginLedger, account: Account, coin: str) -> int:
        """Wallet + Σ (uPnL − IM − fee to close) + order loss − order margin, skipping MM.

        A hedged pair takes the full risk value. Equal to `risk_value(...).available_atoms`
        (the property tests compare the two). Only symbols with open orders hold order
        margin or order loss, so only those are looked up. An account that holds, owes or
        trades another coin, or a coin not at par, is a USD pool: its available balance is
        the pool's (`MarginLedger.figures`), not this coin's own.
        """
        return self._available(clearing, account, coin, False, 0, None)

    def _available(self, clearing: MarginLedger, account: Account, coin: str, bounded: bool,
                   need: int, hint: InstrumentSpec | None) -> int:
        """Return `available_atoms`; with `bounded`, possibly a lower bound of it at or over `need`.

        What `can_open` asks is only whether `need` fits. The order margin is the costliest
        term (each side group costed at its leverage), and its ceiling
        (`order_margin_ceiling`) is a sum of the groups' notional: when the balance with the
        ceiling in place of the margin already covers `need`, the exact figure, larger or
        equal, covers it too, and is not computed. Otherwise the margin is computed as
        `available_atoms` does and the exact figure returned. Either way
        ``need <= result`` says what ``need <= available_atoms(...)`` says. `hint` is a spec
        the caller holds (the order's), taken for its symbol without a lookup.
        """
        balances = account.balances
        held = balances.get(coin)  # one lookup: None exactly when the coin is not held
        total = held if held is not None else 0
        if (len(balances) > 1 or held is None or coin not in clearing.par_coins) and (
                clearing.pooled(account)):
            return clearing.figures(account, coin).available_atoms
        instruments = clearing.instruments
        positions = account.positions
        # The spec of the last position counted: an account's orders are mostly on the
        # symbol it holds, and their loop below takes it again without a dict lookup.
        held_spec: InstrumentSpec | None = None
        # By value, its symbol and index read off the position: compiled, each key of the
        # items would be unpacked and type-checked.
        for position in positions.values():
            size = position.size_lots
            if not size:
                continue
            symbol = position.symbol
            idx = position.position_idx
            spec = held_spec = (hint if hint is not None and hint.symbol == symbol
                                else instruments[symbol])
            if spec.settle_coin != coin:
                return clearing.figures(account, coin).available_atoms  # a USD pool
            if idx:
                other = positions.get(spec.keys.position(3 - idx))
                if other is not None and other.size_lots:
                    return clearing.figures(account, coin).available_atoms
            qty = size if size > 0 else -size
            mark = clearing.mark_ticks(symbol)
            if mark is None:
                mark = calc.average_entry_display(spec, position.entry_value_atoms, qty)
            value = spec.contract.value_ceil_atoms(mark, qty)
            entry = position.entry_value_atoms
            # uPnL, less IM = ceil(PV*R/L) (floor of the negation), less the fee to close.
            if spec.contract.value_sign > 0:
                upnl = value - entry if size > 0 else entry - value
            else:  # inverse: the contract's rounding (`InverseContract.unrealised_pnl_atoms`)
                upnl = spec.contract.unrealised_pnl_atoms(_BUY if size > 0 else _SELL, entry,
                                                          qty, mark)
            total += (upnl + mul_div_floor(-value, RATE_ONE, position.leverage)
                      - position.fee_to_close_atoms(spec))
        order_sums = account.order_sums
        if not order_sums:
            return total
        # The symbols counted: the first alone, any other in a list made only then (an
        # account's symbols are few: a list beats a set, and most trade one symbol).
        first = ""
        first_spec: InstrumentSpec | None = None
        others: list[str] | None = None
        other_specs: list[InstrumentSpec] | None = None
        # With `bounded`: the groups' notional, their count and the highest taker fee rate,
        # for the order margin's ceiling; the margin itself only if the ceiling does not do.
        notional = groups = fee_rate = 0
        for (symbol, _idx, _side), sums in order_sums.items():
            if not sums.leaves_lots:
                continue
            if bounded:
                notional += sums.notional_atoms
                groups += 1
            if symbol == first:
                continue
            if not first:
                first = symbol
            elif others is None:
                others = [symbol]
            elif symbol in others:
                continue
            else:
                others.append(symbol)
            spec = (held_spec if held_spec is not None and held_spec.symbol == symbol
                    else hint if hint is not None and hint.symbol == symbol
                    else instruments[symbol])
            if spec.settle_coin != coin:
                return clearing.figures(account, coin).available_atoms  # a USD pool
            total += clearing.account_order_loss_atoms(account, spec)
            if not bounded:
                total -= order_margin_atoms(account, spec)
                continue
            if spec.taker_fee_rate > fee_rate:
                fee_rate = spec.taker_fee_rate
            if first_spec is None:
                first_spec = spec
            elif other_specs is None:
                other_specs = [spec]
            else:
                other_specs.append(spec)
        if first_spec is not None:
            ceiling = order_margin_ceiling(account.leverage, notional, groups, fee_rate)
            if ceiling >= 0 and total - ceiling >= need:
                return total - ceiling
            total -= order_margin_atoms(account, first_spec)
            if other_specs is not None:
                for spec in other_specs:
                    total -= order_margin_atoms(account, spec)
        return total

    def can_open(self, clearing: MarginLedger, account: Account, spec: InstrumentSpec, side: Side,
                 price_ticks: int, qty_lots: int, cost_atoms: int) -> bool:
        """Keep the account IM rate at or under 100%.

        The cost, less the order's own order loss against the published mark, must fit the
        available balance.
        """
        mark = clearing.published_mark_ticks(spec.symbol)
        # Only a buy above the mark or a sell below it carries an order loss.
        if mark is not None and (price_ticks > mark if side is _BUY else price_ticks < mark):
            cost_atoms -= spec.contract.order_loss_atoms(side, mark, price_ticks, qty_lots)
        return cost_atoms <= self._available(clearing, account, spec.settle_coin, True,
                                             cost_atoms, spec)

    def margin_on_open(self, position: Position, spec: InstrumentSpec, side: Side,
                       price_ticks: int, opened_lots: int) -> None:
        """Nothing: cross IM is valued at the mark, not allocated."""

    def cover_funding(self, clearing: MarginLedger, account: Account, position: Position,
                      amount_atoms: int, coin: str) -> None:
        """Nothing: the payment comes out of the shared wallet."""

    def apply_leverage(self, clearing: MarginLedger, spec: InstrumentSpec, position: Position,
                       raised: bool) -> None:
        """Nothing: the IM follows the leverage; the caller checks the available balance."""

    def is_liquidatable(self, clearing: MarginLedger, account: Account, position: Position,
                        mark_ticks: int) -> bool:
        """Tell whether the account's MM rate is at or above 100% (seed 001, spec §7.2).

        MM rate = ΣMM / (margin balance + order loss); a denominator at or below zero counts
        as breached too.
        """
        return clearing.account_risk(account).breached()

    def trigger_ticks(self, clearing: MarginLedger, position: Position) -> int | None:
        """None: a cross position is liquidated with its account, not at a price of its own."""
        return None

    def fully_hedged(self, account: Account, position: Position) -> bool:
        """Tell whether the opposite hedge-mode side is at least as large."""
        if not position.position_idx:
            return False
        other = account.positions.get(position_key(position.symbol, 3 - position.position_idx))
        return other is not None and other.qty_lots >= position.qty_lots

    def adl_margin_atoms(self, clearing: MarginLedger, account: Account, position: Position,
                         coin: str) -> int:
        """Margin balance = wallet + uPnL: the equity, without valuing any margin.

        A USD pool's margin balance, in `coin`.
        """
        if clearing.pooled(account):
            return max(0, clearing.figures(account, coin).margin_balance_atoms)
        return max(0, clearing.equity_atoms(account, coin))

    def position_prices(self, clearing: MarginLedger, account: Account,
                        position: Position) -> tuple[int | None, int | None]:
        """Return the account-level estimates (§2.2), the other symbols' marks held fixed.

        Liquidation where MM meets the margin balance; bankruptcy where it is gone.
        """
        spec = clearing.instruments[position.symbol]
        side = Side.BUY if position.size_lots > 0 else Side.SELL
        mark = clearing.mark_of(spec.symbol) or position.average_entry_ticks(spec)
        figures = clearing.figures(account, spec.settle_coin)
        tier = calc.tier_for_position(
            spec, spec.contract.value_ceil_atoms(mark, position.qty_lots))
        liq = liqprice.cross_liquidation_price_estimate_ticks(
            spec, side, position.qty_lots, mark, figures.margin_balance_atoms,
            figures.mm_atoms, tier.mmr)
        bust = liqprice.cross_liquidation_price_estimate_ticks(
            spec, side, position.qty_lots, mark, figures.margin_balance_atoms, 0, 0)
        return liq, bust


class IsolatedMargin(_Stateless):
    """Isolated margin: each position holds the margin allocated to it, and no more."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(MarginMode.ISOLATED, True)

    def position_im_atoms(self, position: Position, spec: InstrumentSpec, value_atoms: int,
                          fee_to_close_atoms: int) -> int:
        """IM is the allocated position margin."""
        return position.margin_atoms

    @staticmethod
    def entry_margin_atoms(spec: InstrumentSpec, position: Position) -> int:
        """Return IM + fee to close of a position at its entry: what isolated mode holds."""
        side = Side.BUY if position.size_lots > 0 else Side.SELL
        return spec.contract.position_margin_atoms(side, position.entry_value_atoms,
                                                   position.leverage, spec.taker_fee_rate)

    def risk_value(self, ledger: MarginLedger, account: Account, coin: str) -> RiskValue:
        """Positions at the mark for uPnL and MM; IM is their allocated margin."""
        upnl, position_im, mm, symbols = _positions_at_mark(self, ledger, account, coin)
        order_im, order_loss = _order_terms(ledger, account, coin, symbols)
        wallet = account.balance(coin)
        available = wallet - position_im - order_im
        return RiskValue(wallet, upnl, wallet + upnl, position_im, order_im, mm, order_loss,
                         available)

    def account_risk(self, clearing: MarginLedger, account: Account) -> AccountRisk:
        """Sum the account's coins in USD for display; isolated margin never pools them."""
        return pool_risk(clearing, account)

    def available_atoms(self, clearing: MarginLedger, account: Account, coin: str) -> int:
        """Wallet − position margins − order margin: no mark needed (seed 001)."""
        total = account.balances.get(coin, 0)
        instruments = clearing.instruments
        for position in account.positions.values():
            if position.size_lots and instruments[position.symbol].settle_coin == coin:
                total -= position.margin_atoms
        seen: list[str] = []
        for (symbol, _idx, _side), sums in account.order_sums.items():
            if not sums.leaves_lots or symbol in seen:
                continue
            seen.append(symbol)
            spec = instruments[symbol]
            if spec.settle_coin == coin:
                total -= order_margin_atoms(account, spec)
        return total

    def can_open(self, clearing: MarginLedger, account: Account, spec: InstrumentSpec, side: Side,
                 price_ticks: int, qty_lots: int, cost_atoms: int) -> bool:
        """Tell whether the order's cost fits the available balance (no order loss offset)."""
        return cost_atoms <= self.available_atoms(clearing, account, spec.settle_coin)

    def margin_on_open(self, position: Position, spec: InstrumentSpec, side: Side,
                       price_ticks: int, opened_lots: int) -> None:
        """Move the opened value's IM + fee to close into the position margin."""
        opened_value = spec.contract.value_ceil_atoms(price_ticks, opened_lots)
        position.margin_atoms += spec.contract.position_margin_atoms(
            side, opened_value, position.leverage, spec.taker_fee_rate)

    def cover_funding(self, clearing: MarginLedger, account: Account, position: Position,
                      amount_atoms: int, coin: str) -> None:
        """Pay from the available balance first, then from the position margin.

        The added margin goes below zero with it, so the liquidation price follows (#13 B1).
        """
        short = amount_atoms - max(0, self.available_atoms(clearing, account, coin))
        if short > 0:
            taken = min(short, position.margin_atoms)
            position.margin_atoms -= taken
            position.extra_margin_atoms -= taken

    def apply_leverage(self, clearing: MarginLedger, spec: InstrumentSpec, position: Position,
                       raised: bool) -> None:
        """Reset the position margin to the new requirement, the added margin to zero.

        Spec §1.5. A raise may not put the position past its liquidation trigger.
        """
        position.margin_atoms = self.entry_margin_atoms(spec, position)
        position.extra_margin_atoms = 0
        if raised:
            # The same test the liquidation engine applies: the mark at or past the trigger.
            mark = clearing.mark_of(spec.symbol)
            if mark is not None and liquidation.is_past_liquidation(clearing, position, mark):
                raise Rejected(RejectCode.WOULD_TRIGGER_LIQUIDATION,
                               "leverage would trigger liquidation")

    def is_liquidatable(self, clearing: MarginLedger, account: Account, position: Position,
                        mark_ticks: int) -> bool:
        """Tell whether the mark has reached the position's trigger.

        Its liquidation price, or where its margin plus unrealized P&L meets maintenance
        (`liquidation.is_past_liquidation`).
        """
        return liquidation.is_past_liquidation(clearing, position, mark_ticks)

    def trigger_ticks(self, clearing: MarginLedger, position: Position) -> int | None:
        """Return the mark at which the position is liquidated (its own trigger)."""
        return liquidation.liquidation_trigger_ticks(clearing, position)

    def fully_hedged(self, account: Account, position: Position) -> bool:
        """Never: each side stands on its own margin."""
        return False

    def adl_margin_atoms(self, clearing: MarginLedger, account: Account, position: Position,
                         coin: str) -> int:
        """Return the position's own margin."""
        return position.margin_atoms

    def position_prices(self, clearing: MarginLedger, account: Account,
                        position: Position) -> tuple[int | None, int | None]:
        """Return the position's own liquidation and bankruptcy prices.

        Liquidation by the instrument's formula (spec §1.4, §14 Q2); bankruptcy where the
        loss uses up the margin bar the reserved fee to close (§1.3, #13 B2).
        """
        spec = clearing.instruments[position.symbol]
        side = Side.BUY if position.size_lots > 0 else Side.SELL
        liq = liquidation.liquidation_price_ticks(clearing, position)
        bust = liqprice.isolated_bankruptcy_price_ticks(
            spec, side, position.entry_value_atoms, position.qty_lots, position.margin_atoms,
            position.fee_to_close_atoms(spec))
        return liq, bust


def pm_legs(clearing: MarginLedger, account: Account,
            extra: tuple[str, Side, int] | None = None) -> list[PmLeg]:
    """Return the account's PM legs: per instrument, the net position and open order lots.

    `extra` adds a trial order (symbol, side, lots) to its instrument's orders: what
    `PortfolioMargin.can_open` asks. Each leg carries the instrument's index (the scenarios'
    base, §7 N13; the mark, then the entry, before any index), its mark and the USD price of
    its settle coin.
    """
    held: dict[str, list[int]] = {}  # symbol -> [net lots, buy lots, sell lots]
    for (symbol, _idx), position in account.positions.items():
        if position.size_lots:
            held.setdefault(symbol, [0, 0, 0])[0] += position.size_lots
    for (symbol, _idx, side), sums in account.order_sums.items():
        if sums.leaves_lots:
            held.setdefault(symbol, [0, 0, 0])[1 if side is _BUY else 2] += sums.leaves_lots
    if extra is not None:
        symbol, side, lots = extra
        held.setdefault(symbol, [0, 0, 0])[1 if side is _BUY else 2] += lots
    legs: list[PmLeg] = []
    instruments = clearing.instruments
    for symbol in sorted(held):
        net, buys, sells = held[symbol]
        spec = instruments[symbol]
        mark = clearing.mark_of(symbol)
        index = clearing.index_of(symbol) or mark
        if not index:
            held_position = (account.positions.get(spec.keys.position(0))
                             or account.positions.get(spec.keys.position(1)))
            if held_position is None or not held_position.size_lots:
                continue
            index = held_position.average_entry_ticks(spec)
        legs.append(PmLeg(spec, net, index, clearing.usd_px(spec.settle_coin), mark or index,
                          buys, sells))
    return legs


class PortfolioMargin(_Stateless):
    """Portfolio margin (next-mechanics §5): IM and MM by risk unit, from price scenarios.

    One USD pool across coins, as cross margin, but the requirement is each underlying's
    worst scenario loss plus its contingencies (`perpx.core.account.portfolio`), not a sum
    of position margins: a hedged book needs less, an unhedged one more. No position has a
    leverage, a risk limit or a liquidation price (§5.1); the account is liquidated at an MM
    rate of 100% (§5.5), its positions first closed in the book.
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(MarginMode.PORTFOLIO, False, True)

    def position_im_atoms(self, position: Position, spec: InstrumentSpec, value_atoms: int,
                          fee_to_close_atoms: int) -> int:
        """No position margin: IM exists only per risk unit."""
        return 0

    def risk_value(self, ledger: MarginLedger, account: Account, coin: str) -> RiskValue:
        """Return the coin's wallet, uPnL and order loss; its IM and MM are the units' (in USD)."""
        instruments = ledger.instruments
        upnl, _im, _mm, symbols = _positions_at_mark(self, ledger, account, coin)
        for (symbol, _idx, _side), sums in account.order_sums.items():
            if sums.leaves_lots and instruments[symbol].settle_coin == coin:
                symbols.add(symbol)
        order_loss = 0
        for symbol in sorted(symbols):
            order_loss += ledger.account_order_loss_atoms(account, instruments[symbol])
        wallet = account.balance(coin)
        return RiskValue(wallet, upnl, wallet + upnl, 0, 0, 0, order_loss,
                         wallet + upnl + order_loss)

    def margins(self, clearing: MarginLedger, account: Account,
                extra: tuple[str, Side, int] | None = None) -> PmAccountResult:
        """Return the account's PM figures by unit (with a trial order, if given)."""
        return portfolio_margin(pm_legs(clearing, account, extra), clearing.pm_params)

    def account_risk(self, clearing: MarginLedger, account: Account) -> AccountRisk:
        """Return the USD pool's balances, with IM and MM from the units' scenarios (§5.4, §5.5).

        Position IM is IMfactor × the units' MM; order IM what the orders add on top (the
        units' IM beyond it).
        """
        pool = pool_risk(clearing, account)
        result = self.margins(clearing, account)
        im_factor = clearing.pm_params.im_factor
        position_im = sum(div_ceil(unit.mm * im_factor, RATE_ONE) for unit in result.units)
        return AccountRisk(pool.total_equity_atoms, pool.wallet_atoms, pool.upnl_atoms,
                           pool.margin_balance_atoms, position_im, result.im - position_im,
                           result.mm, pool.order_loss_atoms)

    def available_atoms(self, clearing: MarginLedger, account: Account, coin: str) -> int:
        """Return the pool's available balance, in `coin`."""
        return clearing.figures(account, coin).available_atoms

    def can_open(self, clearing: MarginLedger, account: Account, spec: InstrumentSpec, side: Side,
                 price_ticks: int, qty_lots: int, cost_atoms: int) -> bool:
        """Tell whether the account's IM with the order stays within its margin balance.

        First, the order's trial MM (the unit's MM with every order on its side filled,
        §5.4) may not exceed the account's equity: Bybit's `CancelByPmTrialMmOverEquity`.
        """
        pool = pool_risk(clearing, account)
        trial = self.margins(clearing, account, (spec.symbol, side, qty_lots))
        unit = trial.unit(spec.base_coin)
        trial_mm = trial.mm
        if unit is not None:
            trial_mm += (unit.mm_with_buys if side is _BUY else unit.mm_with_sells) - unit.mm
        if trial_mm > pool.total_equity_atoms:
            raise Rejected(RejectCode.PM_TRIAL_MM_OVER_EQUITY,
                           "CancelByPmTrialMmOverEquity: the order's trial MM exceeds equity")
        return trial.im <= pool.margin_balance_atoms + pool.order_loss_atoms

    def margin_on_open(self, position: Position, spec: InstrumentSpec, side: Side,
                       price_ticks: int, opened_lots: int) -> None:
        """Nothing: PM margin is valued by unit, not allocated."""

    def cover_funding(self, clearing: MarginLedger, account: Account, position: Position,
                      amount_atoms: int, coin: str) -> None:
        """Nothing: the payment comes out of the shared wallet."""

    def apply_leverage(self, clearing: MarginLedger, spec: InstrumentSpec, position: Position,
                       raised: bool) -> None:
        """Nothing: leverage does not enter PM margin (§5.1)."""

    def is_liquidatable(self, clearing: MarginLedger, account: Account, position: Position,
                        mark_ticks: int) -> bool:
        """Tell whether the account's MM rate is at or above 100% (§5.5)."""
        return clearing.account_risk(account).breached()

    def trigger_ticks(self, clearing: MarginLedger, position: Position) -> int | None:
        """None: liquidated with its account."""
        return None

    def fully_hedged(self, account: Account, position: Position) -> bool:
        """Tell whether the opposite hedge-mode side is at least as large."""
        return CROSS.fully_hedged(account, position)

    def adl_margin_atoms(self, clearing: MarginLedger, account: Account, position: Position,
                         coin: str) -> int:
        """Return the pool's margin balance, in `coin`."""
        return max(0, clearing.figures(account, coin).margin_balance_atoms)

    def position_prices(self, clearing: MarginLedger, account: Account,
                        position: Position) -> tuple[int | None, int | None]:
        """No liquidation or bankruptcy price under PM (§5.1: `liqPrice ""`)."""
        return None, None


CROSS: Final = CrossMargin()
ISOLATED: Final = IsolatedMargin()
PORTFOLIO: Final = PortfolioMargin()
_MODELS: dict[MarginMode, MarginModel] = {MarginMode.CROSS: CROSS,
                                          MarginMode.ISOLATED: ISOLATED,
                                          MarginMode.PORTFOLIO: PORTFOLIO}


def model_for(mode: MarginMode) -> MarginModel:
    """Return the model of a margin mode."""
    return _MODELS[mode]
