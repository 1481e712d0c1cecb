"""`perpx.Exchange`: the whole exchange in-process, synchronous, for bots, notebooks and sims.

It plays the sequencer's part without threads: each call builds one command from decimal
strings and Bybit's words (through `perpx.convert` only), stamps it with the next seq and the
exchange's own clock, applies it to the core and answers a `Result` carrying Bybit's
retCode/retMsg and the events. Mistakes come back as results, never as exceptions: input the
core would refuse (an off-grid price, an unknown word) is answered with the same retCode and
changes nothing, not even the seq. An exception means misuse of the facade itself (the clock
sent back) or a broken invariant in the core, after which the exchange refuses every call.

Time is explicit: it starts at `start_ms` and moves only by `advance(ms)` or `at(ts_ms)`,
unless `wall_clock=True` asks for the machine's clock. With a `journal` every applied command
is appended to it (in batches of `journal_batch`; `flush()`/`close()` write the rest), so the
run can be checked with `perpx replay --journal PATH` or reopened with `Exchange.from_journal`.

    >>> from perpx import Exchange
    >>> ex = Exchange()
    >>> ex.deposit(1, "10000").ok
    True
    >>> ex.place_order(1, "BTCUSDT", "Buy", "Limit", qty="0.01", price="65000").order_id
    '1'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from perpx.bybit import stops, translate
from perpx.bybit.errors import ApiError
from perpx.bybit.params import LINEAR, Params, category_of
from perpx.bybit.retcodes import OK
from perpx.convert import (
    ConversionError,
    format_atoms,
    format_scaled,
    to_atoms,
    to_rate,
    to_ticks,
)
from perpx.core import Engine
from perpx.core.account.collateral import CollateralTable
from perpx.core.codes import RejectCode
from perpx.core.commands import (
    AdjustMargin,
    AmendOrder,
    CancelOrder,
    Command,
    Deposit,
    IndexPrice,
    ListInstrument,
    MarkPrice,
    PlaceOrder,
    SetAutoAddMargin,
    SetFundingInterval,
    SetLeverage,
    SetMarginMode,
    SwitchPositionMode,
    Tick,
    Withdraw,
)
from perpx.core.enums import (
    MarginMode,
    PositionMode,
)
from perpx.core.events import (
    CommandRejected,
    ConditionalOrderAccepted,
    Event,
    OrderAccepted,
    OrderRejected,
)
from perpx.core.instruments import InstrumentSpec, spec_record
from perpx.instruments import bundled_instruments, load_instruments, spec_from_bybit
from perpx.store.codec import decode_snapshot, encode_snapshot
from perpx.store.journal import Journal
from perpx.views import (
    AccountRiskView,
    OrderBookView,
    OrderView,
    PositionView,
    Result,
    WalletView,
    account_risk_view,
    book_view,
    order_view,
    position_view,
    wallet_view,
)

DEFAULT_START_MS = 1_677_628_800_000  # 2023-03-01 00:00 UTC, the start of the bundled data
SNAPSHOT_FORMAT = "perpx.Exchange/1"
Listener = Callable[[Command, list[Event]], None]

# Bybit's words, matched case-insensitively.
_MARGIN_MODES = {"isolated_margin": MarginMode.ISOLATED, "isolated": MarginMode.ISOLATED,
                 "regular_margin": MarginMode.CROSS, "cross": MarginMode.CROSS,
                 "portfolio_margin": MarginMode.PORTFOLIO, "portfolio": MarginMode.PORTFOLIO}
_POSITION_MODES = {"0": PositionMode.ONE_WAY, "oneway": PositionMode.ONE_WAY,
                   "one_way": PositionMode.ONE_WAY, "mergedsingle": PositionMode.ONE_WAY,
                   "3": PositionMode.HEDGE, "hedge": PositionMode.HEDGE,
                   "bothside": PositionMode.HEDGE}


class Refused(Exception):
    """Input refused before it became a command (internal: turned into a `Result`)."""

    def __init__(self, code: RejectCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _word(table: dict[str, Any], value: object, name: str) -> Any:
    """Return the enum a Bybit word (or the enum itself) stands for, or refuse it."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        found = table.get(value.replace(" ", "").lower())
        if found is not None:
            return found
    for member in table.values():
        if value is member:
            return member
    raise Refused(RejectCode.INVALID_PARAMETER, f"{name} invalid: {value!r}")


def _wire(table: Mapping[str, Any], value: object) -> object:
    """Return Bybit's own word for `value` (any case, or the enum itself) as the wire has it.

    Unknown words pass through unchanged, for the translator to refuse as REST would.
    """
    if isinstance(value, str):
        wanted = value.replace(" ", "").lower()
        for word in table:
            if word.lower() == wanted:
                return word
        return value
    for word, member in table.items():
        if value is member:
            return word
    return value


def _leverage(value: str | int) -> int:
    """Leverage "10", "12.5" or 10 as a rate in 10**-8."""
    return to_rate(str(value))


class Exchange:
    """An in-process exchange: call methods with decimal strings, read views back.

    `instruments`: specs, bundled symbol names (the inverse BTCUSD and ETHUSD among them), or
    None for the default bundled table (what `perpx replay` assumes). `collateral`: the
    collateral table (coins, tiered ratios, USDT rate; default `default_collateral()`).
    `check_invariants=True`
    runs the core's invariant checks after every command (slow; for tests). Listeners given
    to `subscribe` see every applied command with its events, in seq order.
    """

    def __init__(self, instruments: Iterable[InstrumentSpec | str] | None = None, *,
                 start_ms: int = DEFAULT_START_MS, wall_clock: bool = False,
                 journal: Journal | None = None, journal_batch: int = 1_000,
                 check_invariants: bool = False,
                 collateral: CollateralTable | None = None) -> None:
        self._specs = _resolve(instruments)
        # The venue's collateral coins and USDT rate (next-mechanics §4); perpx's defaults
        # unless given. A journal replays only on the same table: it is configuration.
        self._collateral = collateral
        self.engine = Engine(self._specs, collateral)
        self._now_ms = start_ms
        self._wall_clock = wall_clock
        self._journal = journal
        if journal is not None and journal.last_seq() != 0:
            raise ValueError("Exchange: the journal is not empty; use Exchange.from_journal")
        if journal_batch < 1:
            raise ValueError("Exchange: journal_batch must be at least 1")
        self._journal_batch = journal_batch
        self._pending: list[Command] = []
        self._check = check_invariants
        self._listeners: list[Listener] = []
        self._broken: BaseException | None = None

    # -- construction from saved state ------------------------------------------------------

    @classmethod
    def from_journal(cls, journal: Journal,
                     instruments: Iterable[InstrumentSpec | str] | None = None,
                     **options: Any) -> Exchange:
        """Rebuild an exchange by replaying `journal`, then keep appending to it."""
        exchange = cls(instruments, **options)
        last_ts = exchange._now_ms
        for command in journal.read(1):
            exchange.engine.apply(command)
            last_ts = command.ts_ms
        exchange._now_ms = max(exchange._now_ms, last_ts)
        exchange._journal = journal
        return exchange

    @classmethod
    def restore(cls, data: bytes, instruments: Iterable[InstrumentSpec | str] | None = None,
                *, journal: Journal | None = None, **options: Any) -> Exchange:
        """Rebuild an exchange from `snapshot()`'s bytes and the same instruments.

        Without `instruments`, the bundled specs of the snapshot's symbols are used (pass
        your own specs if the snapshot was taken with others). A `journal` given here must
        end exactly at the snapshot's seq; commands go on from it.
        """
        body = decode_snapshot(data)
        if body.get("format") != SNAPSHOT_FORMAT:
            raise ValueError("Exchange.restore: not an Exchange snapshot")
        if instruments is None:
            # Contracts listed while it ran come back from the snapshot itself.
            listed = {record["symbol"] for record in body["engine"].get("listed", ())}
            instruments = [s for s in body["engine"]["symbols"] if s not in listed]
        exchange = cls(instruments, start_ms=body["now_ms"], **options)
        exchange.engine = Engine.from_snapshot(exchange._specs, body["engine"],
                                               exchange._collateral)
        if journal is not None:
            if journal.last_seq() != exchange.engine.last_seq:
                raise ValueError(f"Exchange.restore: the journal ends at seq "
                                 f"{journal.last_seq()}, the snapshot at "
                                 f"{exchange.engine.last_seq}")
            exchange._journal = journal
        return exchange

    def snapshot(self) -> bytes:
        """Return the whole state and the clock as bytes (`Exchange.restore` takes them)."""
        return encode_snapshot({"format": SNAPSHOT_FORMAT, "now_ms": self._now_ms,
                                "engine": self.engine.to_snapshot()})

    def state_hash(self) -> str:
        """Return the core's state hash: equal states, equal hashes."""
        return self.engine.state_hash()

    # -- time -------------------------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        """Return the exchange's time (ms since the epoch) that the next command will carry."""
        if self._wall_clock:
            self._now_ms = max(self._now_ms, time.time_ns() // 1_000_000)
        return self._now_ms

    def advance(self, ms: int, *, tick_every_ms: int | None = None) -> list[Result]:
        """Move the clock `ms` forward; with `tick_every_ms`, `tick()` at each multiple passed.

        Ticks land on the grid of multiples of `tick_every_ms` after now, up to and including
        the new time, so funding timestamps on the grid settle on time.
        """
        if ms < 0:
            raise ValueError("Exchange.advance: time does not run back")
        target = self.now_ms + ms
        results: list[Result] = []
        if tick_every_ms is not None:
            if tick_every_ms <= 0:
                raise ValueError("Exchange.advance: tick_every_ms must be positive")
            moment = (self._now_ms // tick_every_ms + 1) * tick_every_ms
            while moment <= target:
                self._now_ms = moment
                results.append(self.tick())
                moment += tick_every_ms
        self._now_ms = target
        return results

    def at(self, ts_ms: int) -> None:
        """Set the clock to `ts_ms` (never earlier than now)."""
        if ts_ms < self.now_ms:
            raise ValueError(f"Exchange.at: {ts_ms} is before now ({self._now_ms})")
        self._now_ms = ts_ms

    # -- events -----------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(command, events)` after each applied command; returns unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- money ------------------------------------------------------------------------------

    def deposit(self, account: int, amount: str, coin: str = "USDT") -> Result:
        """Credit `amount` of `coin` (opens the account on its first deposit)."""
        return self._run(lambda seq, ts: Deposit(seq, ts, account, coin, to_atoms(amount)))

    def withdraw(self, account: int, amount: str, coin: str = "USDT") -> Result:
        """Take `amount` out of the wallet (never more than is withdrawable)."""
        return self._run(lambda seq, ts: Withdraw(seq, ts, account, coin, to_atoms(amount)))

    def fund_insurance(self, amount: str, coin: str = "USDT") -> Result:
        """Seed the insurance fund (an operator's deposit to its system account)."""
        from perpx.core.account.accounts import INSURANCE_FUND_ID

        return self._run(lambda seq, ts: Deposit(seq, ts, INSURANCE_FUND_ID, coin,
                                                 to_atoms(amount)))

    # -- collateral and liabilities (next-mechanics §4) -------------------------------------

    def set_collateral_switch(self, account: int, coin: str, on: bool) -> Result:
        """Switch `coin` on or off as collateral (Bybit's set-collateral-switch).

        USDT and USDC cannot be switched off; switching off is refused when it would leave
        the account's IM above its margin balance.
        """
        wire = {"coin": coin, "collateralSwitch": "ON" if on else "OFF"}
        return self._run(lambda seq, ts: msgspec.structs.replace(
            translate.collateral_switch(account, Params(wire)), seq=seq, ts_ms=ts))

    def repay(self, account: int, coin: str | None = None, amount: str | None = None, *,
              convert: bool = True) -> Result:
        """Repay a liability: `coin` None repays every one, `amount` None all of the coin's.

        With `convert` (Bybit's repay and quick-repayment) other coins are converted at the
        USD index prices, in liquidation order; without (no-convert-repay) only the coin's
        own balance may repay, which a derivatives liability never leaves (nothing repaid).
        Refused between hh:04:00 and hh:05:30, while interest is computed.
        """
        wire = {"coin": coin, "amount": amount}

        def build(seq: int, ts: int) -> Command:
            command = translate.repay(account, Params(wire), convert=convert,
                                      coin_required=not convert)
            return msgspec.structs.replace(command, seq=seq, ts_ms=ts)

        return self._run(build)

    # -- orders -----------------------------------------------------------------------------

    def place_order(self, account: int, symbol: str, side: str, order_type: str, *,
                    qty: str, price: str | None = None, time_in_force: str = "GTC",
                    reduce_only: bool = False, close_on_trigger: bool = False,
                    position_idx: int = 0, order_link_id: str = "", smp_type: str = "None",
                    trigger_price: str | None = None, trigger_direction: int | None = None,
                    trigger_by: str = "LastPrice", take_profit: str | None = None,
                    stop_loss: str | None = None, tp_trigger_by: str = "LastPrice",
                    sl_trigger_by: str = "LastPrice", tpsl_mode: str = "Full",
                    tp_order_type: str = "Market", sl_order_type: str = "Market",
                    tp_limit_price: str | None = None,
                    sl_limit_price: str | None = None) -> Result:
        """Place an order (Bybit's create-order, keyword names in snake case).

        `side` "Buy"/"Sell", `order_type` "Limit"/"Market"; a limit needs `price`. With
        `trigger_price` (and `trigger_direction` 1 rising / 2 falling) it is conditional.
        """
        return self._order("order.create", account, {
            "symbol": symbol, "side": _wire(translate.SIDES, side),
            "orderType": _wire(translate.ORDER_TYPES, order_type), "qty": qty, "price": price,
            "timeInForce": _wire(translate.TIME_IN_FORCE, time_in_force),
            "reduceOnly": reduce_only, "closeOnTrigger": close_on_trigger,
            "positionIdx": position_idx, "orderLinkId": order_link_id,
            "smpType": _wire(translate.SMP_TYPES, smp_type), "triggerPrice": trigger_price,
            "triggerDirection": _wire(stops.TRIGGER_DIRECTIONS, trigger_direction),
            "triggerBy": _wire(stops.TRIGGER_BY, trigger_by), "takeProfit": take_profit,
            "stopLoss": stop_loss, "tpTriggerBy": _wire(stops.TRIGGER_BY, tp_trigger_by),
            "slTriggerBy": _wire(stops.TRIGGER_BY, sl_trigger_by),
            "tpslMode": _wire(stops.TPSL_MODES, tpsl_mode),
            "tpOrderType": _wire(stops.LEG_ORDER_TYPES, tp_order_type),
            "slOrderType": _wire(stops.LEG_ORDER_TYPES, sl_order_type),
            "tpLimitPrice": tp_limit_price, "slLimitPrice": sl_limit_price}, order_link_id)

    def amend(self, account: int, symbol: str, order_id: str | int | None = None, *,
              order_link_id: str = "", qty: str | None = None, price: str | None = None,
              trigger_price: str | None = None, trigger_by: str | None = None,
              take_profit: str | None = None, stop_loss: str | None = None,
              tp_trigger_by: str | None = None, sl_trigger_by: str | None = None,
              tp_limit_price: str | None = None, sl_limit_price: str | None = None) -> Result:
        """Amend an open or waiting order by id or link id (a TP/SL price of "0" removes it)."""
        return self._order("order.amend", account, {
            "symbol": symbol, "orderId": order_id, "orderLinkId": order_link_id, "qty": qty,
            "price": price, "triggerPrice": trigger_price,
            "triggerBy": _wire(stops.TRIGGER_BY, trigger_by), "takeProfit": take_profit,
            "stopLoss": stop_loss, "tpTriggerBy": _wire(stops.TRIGGER_BY, tp_trigger_by),
            "slTriggerBy": _wire(stops.TRIGGER_BY, sl_trigger_by),
            "tpLimitPrice": tp_limit_price, "slLimitPrice": sl_limit_price}, order_link_id)

    def cancel(self, account: int, symbol: str, order_id: str | int | None = None, *,
               order_link_id: str = "") -> Result:
        """Cancel one open or waiting order by id or link id."""
        return self._order("order.cancel", account, {
            "symbol": symbol, "orderId": order_id, "orderLinkId": order_link_id}, order_link_id)

    def _category(self, symbol: str) -> str:
        """Return the Bybit category a request on `symbol` names (unknown: refused later)."""
        spec = self.engine.instruments.get(symbol)
        return category_of(spec) if spec is not None else LINEAR

    def _order(self, op: str, account: int, wire: dict[str, Any], order_link_id: str) -> Result:
        """Apply the command Bybit's wire parameters `wire` of `op` stand for (REST's reading)."""
        wire["category"] = self._category(wire["symbol"])

        def build(seq: int, ts: int) -> Command:
            command = translate.command(op, wire, account, self.engine.instruments)
            return msgspec.structs.replace(command, seq=seq, ts_ms=ts)

        return self._run(build, order_link_id=order_link_id)

    def cancel_all(self, account: int, symbol: str, order_filter: str | None = None) -> Result:
        """Cancel the account's orders on `symbol` (Bybit's orderFilter: Order, StopOrder...)."""
        wire = {"category": self._category(symbol), "symbol": symbol,
                "orderFilter": _wire(stops.CANCEL_FILTERS, order_filter)}

        def build(seq: int, ts: int) -> Command:
            # One symbol, so exactly one command (REST's reading of the same body).
            [command] = translate.cancel_all(account, Params(wire), self.engine.instruments)
            return msgspec.structs.replace(command, seq=seq, ts_ms=ts)

        return self._run(build)

    # -- positions and settings -------------------------------------------------------------

    def set_leverage(self, account: int, symbol: str, buy_leverage: str | int,
                     sell_leverage: str | int | None = None) -> Result:
        """Set a symbol's leverage ("10", "12.5"); the sell side defaults to the buy side."""
        return self._run(lambda seq, ts: SetLeverage(
            seq, ts, account, symbol, _leverage(buy_leverage),
            _leverage(buy_leverage if sell_leverage is None else sell_leverage)))

    def set_margin_mode(self, account: int, mode: str) -> Result:
        """Switch margin mode: "ISOLATED_MARGIN"/"isolated" or "REGULAR_MARGIN"/"cross"."""
        return self._run(lambda seq, ts: SetMarginMode(
            seq, ts, account, _word(_MARGIN_MODES, mode, "setMarginMode")))

    def switch_position_mode(self, account: int, symbol: str, mode: str | int) -> Result:
        """Switch one-way (0, "OneWay") or hedge (3, "Hedge") mode; only when flat."""
        return self._run(lambda seq, ts: SwitchPositionMode(
            seq, ts, account, symbol, _word(_POSITION_MODES, mode, "mode")))

    def add_margin(self, account: int, symbol: str, amount: str,
                   position_idx: int = 0) -> Result:
        """Add (or with a negative amount reduce) an isolated position's margin."""
        return self._run(lambda seq, ts: AdjustMargin(seq, ts, account, symbol, position_idx,
                                                      to_atoms(amount)))

    def set_auto_add_margin(self, account: int, symbol: str, enabled: bool,
                            position_idx: int = 0) -> Result:
        """Turn auto margin replenishment of an isolated position on or off."""
        return self._run(lambda seq, ts: SetAutoAddMargin(seq, ts, account, symbol,
                                                          position_idx, enabled))

    def trading_stop(self, account: int, symbol: str, *, position_idx: int = 0,
                     tpsl_mode: str = "Full", take_profit: str | None = None,
                     stop_loss: str | None = None, trailing_stop: str | None = None,
                     active_price: str | None = None, tp_size: str | None = None,
                     sl_size: str | None = None, tp_trigger_by: str = "LastPrice",
                     sl_trigger_by: str = "LastPrice", tp_order_type: str = "Market",
                     sl_order_type: str = "Market", tp_limit_price: str | None = None,
                     sl_limit_price: str | None = None) -> Result:
        """Set a position's TP/SL or trailing stop (Bybit's position/trading-stop; "0" removes)."""
        wire = {"category": self._category(symbol), "symbol": symbol, "positionIdx": position_idx,
                "tpslMode": _wire(stops.TPSL_MODES, tpsl_mode), "takeProfit": take_profit,
                "stopLoss": stop_loss, "trailingStop": trailing_stop, "activePrice": active_price,
                "tpSize": tp_size, "slSize": sl_size,
                "tpTriggerBy": _wire(stops.TRIGGER_BY, tp_trigger_by),
                "slTriggerBy": _wire(stops.TRIGGER_BY, sl_trigger_by),
                "tpOrderType": _wire(stops.LEG_ORDER_TYPES, tp_order_type),
                "slOrderType": _wire(stops.LEG_ORDER_TYPES, sl_order_type),
                "tpLimitPrice": tp_limit_price, "slLimitPrice": sl_limit_price}

        def build(seq: int, ts: int) -> Command:
            command = translate.trading_stop(account, Params(wire), self.engine.instruments)
            return msgspec.structs.replace(command, seq=seq, ts_ms=ts)

        return self._run(build)

    def submit(self, command: Command) -> Result:
        """Stamp a core command built elsewhere (e.g. by a sim agent) and apply it like any call.

        The command's own `seq` and `ts_ms` are replaced by the next seq and the clock.
        """
        return self._run(lambda seq, ts: msgspec.structs.replace(command, seq=seq, ts_ms=ts),
                         order_link_id=getattr(command, "order_link_id", ""))

    # -- prices and time passing ------------------------------------------------------------

    def index_price(self, symbol: str, price: str) -> Result:
        """Publish a new index price (moves the mark, may liquidate, may settle funding)."""
        return self._run(lambda seq, ts: IndexPrice(seq, ts, symbol,
                                                    to_ticks(self._spec(symbol), price)))

    def mark_price(self, symbol: str, price: str) -> Result:
        """Set the mark price directly (an operator's override, e.g. to test liquidations)."""
        return self._run(lambda seq, ts: MarkPrice(seq, ts, symbol,
                                                   to_ticks(self._spec(symbol), price)))

    def tick(self) -> Result:
        """Let time pass at now: sample basis and premium, refresh marks, settle due funding."""
        return self._run(lambda seq, ts: Tick(seq, ts))

    def list_instrument(self, instrument: InstrumentSpec | Mapping[str, Any]) -> Result:
        """List a new contract (the operator's `ListInstrument`): a spec or a Bybit item.

        A Bybit instruments-info item (with perpx's fields, as in the bundled tables) is
        converted first; the core refuses a malformed, duplicate or expired listing.
        """
        spec = (instrument if isinstance(instrument, InstrumentSpec)
                else spec_from_bybit(dict(instrument)))
        record = spec_record(spec)
        return self._run(lambda seq, ts: ListInstrument(seq, ts, record))

    def instrument_status(self, symbol: str) -> str:
        """Return Bybit's status of a symbol: Trading, or a future's Delivering/Closed."""
        self._spec_or_error(symbol)
        return self.engine.delivery.status(symbol).name.capitalize()

    def delivery_price(self, symbol: str) -> str:
        """Return a future's delivery price once delivered, else the running average ('')."""
        self._spec_or_error(symbol)
        clock = self.engine.delivery.clocks.get(symbol)
        price = (clock.price_e8 if clock is not None and clock.price_e8
                 else self.engine.delivery.predicted_price_e8(symbol))
        return format_scaled(price, 8, 8) if price else ""

    def set_funding_interval(self, symbol: str, minutes: int) -> Result:
        """Change a symbol's funding interval."""
        return self._run(lambda seq, ts: SetFundingInterval(seq, ts, symbol, minutes))

    # -- reading ----------------------------------------------------------------------------

    def instruments(self) -> list[str]:
        """Return the symbols traded here."""
        return sorted(self.engine.instruments)

    def positions(self, account: int, symbol: str | None = None) -> list[PositionView]:
        """Return the account's open positions (optionally of one symbol), by symbol and idx."""
        held = self.engine.clearing.account(account)
        if held is None:
            return []
        return [position_view(self.engine, held, position)
                for (name, _idx), position in sorted(held.positions.items())
                if position.size_lots and (symbol is None or name == symbol)]

    def wallet(self, account: int, coin: str = "USDT") -> WalletView:
        """Return the account's figures in `coin` (zeros for an account never funded)."""
        return wallet_view(self.engine, self.engine.clearing.account(account), coin)

    def account_risk(self, account: int) -> AccountRiskView:
        """Return the account's figures in USD across its coins.

        Total equity, margin balance after the collateral ratios, IM, MM, available balance
        and the account rates (next-mechanics §4.3), as decimal strings.
        """
        return account_risk_view(self.engine, self.engine.clearing.account(account))

    def liability(self, account: int, coin: str = "USDT") -> str:
        """Return the account's liability in `coin` now: |min(0, equity)| ("0" if none)."""
        held = self.engine.clearing.account(account)
        return format_atoms(self.engine.clearing.liability_atoms(held, coin)
                            if held is not None else 0)

    def open_orders(self, account: int, symbol: str) -> list[OrderView]:
        """Return the account's orders resting in `symbol`'s book, oldest first."""
        spec = self._spec_or_error(symbol)
        return [order_view(spec, order) for order in self.engine.orders_of(account, symbol)]

    def orderbook(self, symbol: str, depth: int = 25) -> OrderBookView:
        """Return the top `depth` price levels of each side."""
        self._spec_or_error(symbol)
        return book_view(self.engine, symbol, depth)

    def prices(self, symbol: str) -> dict[str, str]:
        """Return the last, mark and index prices ("" where none yet)."""
        from perpx.convert import format_ticks

        spec = self._spec_or_error(symbol)
        found = {"last": self.engine.last_price.get(symbol),
                 "mark": self.engine.mark_price.get(symbol),
                 "index": self.engine.index_price.get(symbol)}
        return {k: format_ticks(spec, v) if v is not None else "" for k, v in found.items()}

    def insurance_fund(self, coin: str = "USDT") -> str:
        """Return the insurance fund's balance."""
        from perpx.core.account.accounts import INSURANCE_FUND_ID

        fund = self.engine.clearing.accounts.get(INSURANCE_FUND_ID)
        return format_atoms(fund.balance(coin) if fund is not None else 0)

    def check_invariants(self) -> None:
        """Run the core's invariant checks now (raises `InvariantViolation` on a breach)."""
        self.engine.check_invariants()

    # -- the journal ------------------------------------------------------------------------

    def flush(self) -> None:
        """Append the commands not yet journaled (durable once this returns)."""
        if self._journal is not None and self._pending:
            self._journal.append(self._pending)
            self._pending = []

    def close(self) -> None:
        """Flush and close the journal, if any."""
        self.flush()
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _spec(self, symbol: str) -> InstrumentSpec:
        spec = self.engine.instruments.get(symbol)
        if spec is None:
            raise Refused(RejectCode.UNKNOWN_SYMBOL, f"symbol invalid: {symbol}")
        return spec

    def _spec_or_error(self, symbol: str) -> InstrumentSpec:
        spec = self.engine.instruments.get(symbol)
        if spec is None:
            raise KeyError(f"unknown symbol {symbol!r}; this exchange trades "
                           f"{', '.join(self.instruments())}")
        return spec

    def _run(self, build: Callable[[int, int], Command], order_link_id: str = "") -> Result:
        """Build, stamp, apply, journal and publish one command; answer its result."""
        if self._broken is not None:
            raise RuntimeError("Exchange stopped after a broken invariant") from self._broken
        seq = self.engine.last_seq + 1
        ts_ms = max(self.now_ms, self.engine.last_ts_ms)
        try:
            command = build(seq, ts_ms)
        except ConversionError as bad:
            return Result.refused(bad.code, str(bad), order_link_id=order_link_id)
        except Refused as bad:
            return Result.refused(bad.code, bad.detail, order_link_id=order_link_id)
        except ApiError as bad:
            return Result(bad.code, bad.message, order_link_id=order_link_id,
                          reject=bad.reject or RejectCode.INVALID_PARAMETER, detail=bad.message)
        try:
            events = self.engine.apply(command)
            if self._check:
                self.engine.check_invariants()
        except Exception as broken:
            self._broken = broken
            raise
        if self._journal is not None:
            self._pending.append(command)
            if len(self._pending) >= self._journal_batch:
                self.flush()
        for listener in list(self._listeners):
            listener(command, events)
        return _answer(command, events)


def _resolve(instruments: Iterable[InstrumentSpec | str] | None) -> list[InstrumentSpec]:
    """Return the specs asked for: given specs, bundled ones by name, or all bundled."""
    if instruments is None:
        return load_instruments()
    bundled = {spec.symbol: spec for spec in bundled_instruments()}
    specs: list[InstrumentSpec] = []
    for item in instruments:
        if isinstance(item, str):
            if item not in bundled:
                raise ValueError(f"no bundled instrument {item!r} (have {sorted(bundled)})")
            specs.append(bundled[item])
        else:
            specs.append(item)
    return specs


def _answer(command: Command, events: Sequence[Event]) -> Result:
    """Return the result of an applied command: the caller's refusal, or what was created."""
    account = getattr(command, "account_id", 0)
    link = getattr(command, "order_link_id", "")
    order_id = ""
    for event in events:
        if isinstance(event, OrderRejected | CommandRejected) and event.account_id == account:
            return Result.refused(event.reason, event.detail, tuple(events), command.seq, link)
        if (not order_id and isinstance(command, PlaceOrder)
                and isinstance(event, OrderAccepted | ConditionalOrderAccepted)
                and event.account_id == account):
            order_id = str(event.order_id)
    if isinstance(command, AmendOrder | CancelOrder) and command.order_id is not None:
        order_id = str(command.order_id)
    return Result(OK, "OK", tuple(events), command.seq, order_id, link)

