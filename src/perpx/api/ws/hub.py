"""The stream hub: durable events in, Bybit V5 topic messages out to subscribed connections.

`StreamHub.on_durable(command, events, ...)` listens to durable commands: it runs in the event
loop, in seq order, once a command is durable (the service calls it after folding its read
side; a hub alone is the sequencer's subscriber and folds its own). It publishes trades,
liquidations and private rows at once and marks the throttled views (order books, tickers,
klines) dirty, in O(events).
A flush task publishes each dirty view at most once per Bybit push interval, so a burst of
commands yields one delta per view per interval. A message is encoded once, with its
WebSocket frame, and offered to each subscriber of its topic: the work per command is
O(events + subscribed views), plus one append per subscriber that gets a message (the frames
go out at the end of the loop's turn, one write per connection: `perpx.api.ws.connection`).

What is folded from events (book mirrors and tick directions: `perpx.readmodels.books`;
tickers, klines, the order projection) belongs to the read side, which checkpoints it; the
hub only reads it. Subscriptions and published views belong to connections and are never
checkpointed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from perpx.adl import AdlIndicators
from perpx.api.ws import public
from perpx.api.ws.book import DepthView
from perpx.api.ws.connection import Connection, Outbox, Outgoing
from perpx.api.ws.private import PRIVATE_TOPICS, PrivateFeed
from perpx.bybit.params import category_of
from perpx.core.commands import Command
from perpx.core.engine import Engine
from perpx.core.events import (
    Event,
    FundingIntervalSet,
    FundingSettled,
    IndexPriceUpdated,
    InstrumentListed,
    Liquidated,
    MarkPriceUpdated,
    PositionChanged,
    PremiumIndexSampled,
    Trade,
)
from perpx.core.instruments import InstrumentSpec, spec_from_record
from perpx.readmodels.books import BookChanges, BookMirror, Books, TickDirection
from perpx.readmodels.klines import Klines
from perpx.readmodels.period import KLINE_INTERVALS, period_start
from perpx.readmodels.tickers import Tickers
from perpx.store.records import Projection, Projector

Submit = Callable[[Command], Awaitable[list[Event]]]

_TICKER_EVENTS = (MarkPriceUpdated, IndexPriceUpdated, PremiumIndexSampled, FundingSettled,
                  FundingIntervalSet, PositionChanged)
_TICKER_TYPES: frozenset[type[Event]] = frozenset(_TICKER_EVENTS)
FLUSH_PERIOD_S = 0.005
_encode = msgspec.json.Encoder().encode


def encode(message: dict[str, Any]) -> Outgoing:
    """Encode a message to the JSON text of one frame, and the frame."""
    return Outgoing(_encode(message))


class _TickerView:
    __slots__ = ("dirty", "fields", "last_publish", "seq")

    def __init__(self) -> None:
        self.fields: dict[str, str] | None = None
        self.dirty = False
        self.last_publish = 0.0
        self.seq = 0


class _KlineView:
    __slots__ = ("dirty", "last_publish", "start_ms")

    def __init__(self) -> None:
        self.start_ms: int | None = None
        self.dirty = False
        self.last_publish = 0.0


class StreamHub:
    """Public and private topics of `/v5/public/linear`, `/v5/public/inverse`, `/v5/private`."""

    def __init__(self, engine: Engine, instruments: list[InstrumentSpec] | None = None,
                 max_buffer: int | None = None, projector: Projector | None = None,
                 tickers: Tickers | None = None, klines: Klines | None = None,
                 books: Books | None = None, adl: AdlIndicators | None = None) -> None:
        """Serve `engine`'s streams; orders come from `projector` when the caller owns one.

        With a `projector` (the service's, shared with REST) the caller projects each command
        and hands the `Projection` to `on_durable`; without one the hub keeps its own. Likewise
        `books`: shared ones are folded by their owner, who hands `on_durable` the command's
        `BookChanges`; and `tickers` and `klines`: shared ones are folded by their owner
        before `on_durable` (so each event is folded once); without them the hub folds its
        own. Shared klines must keep at least the two closed candles before the open one.
        `adl` is the owner's ADL indicator cache (REST shows the same ranks).
        """
        self.engine = engine
        specs = instruments if instruments is not None else list(engine.instruments.values())
        self.specs = {spec.symbol: spec for spec in specs}
        self.max_buffer = max_buffer  # unsent bytes per connection (None: the default)
        self._own_books = books is None
        self.books = books if books is not None else Books(list(self.specs))
        self._own_models = tickers is None and klines is None
        if (tickers is None) != (klines is None):
            raise ValueError("share both tickers and klines with the hub, or neither")
        self.tickers = tickers if tickers is not None else Tickers(specs)
        # The open candle and the two before it: enough to confirm a closed candle once.
        self.klines = klines if klines is not None else Klines(specs, keep_closed=2)
        self._own_projector = projector is None
        self.projector = projector if projector is not None else Projector(specs)
        self.private = PrivateFeed(engine, self.projector, adl)
        self.subscribers: dict[str, set[Connection]] = {}
        self.accounts: dict[int, set[Connection]] = {}
        self.depth_views: dict[tuple[str, int], DepthView] = {}
        self.ticker_views: dict[str, _TickerView] = {}
        self.kline_views: dict[tuple[str, str], _KlineView] = {}
        self.messages = 0  # frames offered, over all connections
        self.sessions: dict[str, int] = {}  # open sessions by endpoint kind (/perpx/status)
        self._flusher: asyncio.Task[None] | None = None
        self._outbox: Outbox | None = None

    # -- the folded state it publishes (the read side's) --------------------------------------

    @property
    def mirrors(self) -> dict[str, BookMirror]:
        """Each symbol's book mirror."""
        return self.books.mirrors

    @property
    def directions(self) -> TickDirection:
        """Each symbol's last tick direction."""
        return self.books.directions

    @property
    def seq(self) -> int:
        """The last durable command folded."""
        return self.books.seq

    @property
    def now_ms(self) -> int:
        """The clock of the durable commands folded (never runs back)."""
        return self.books.now_ms

    # -- topics -----------------------------------------------------------------------------

    def public_topic_ok(self, topic: str, category: str = "") -> bool:
        """Tell whether `topic` is a public topic this hub serves (on `category`'s path).

        A public path serves its category's symbols only (`/v5/public/inverse` BTCUSD, not
        BTCUSDT), as Bybit's; "" accepts any symbol.
        """
        parts = topic.split(".")

        def listed(symbol: str) -> bool:
            spec = self.specs.get(symbol)
            return spec is not None and (not category or category_of(spec) == category)

        if len(parts) == 3 and parts[0] == "orderbook":
            return parts[1] in {str(d) for d in public.ORDERBOOK_DEPTHS} and listed(parts[2])
        if len(parts) == 3 and parts[0] == "kline":
            return parts[1] in KLINE_INTERVALS and listed(parts[2])
        if len(parts) == 2 and parts[0] in ("publicTrade", "tickers", "allLiquidation",
                                            "liquidation"):
            return listed(parts[1])
        return False

    @staticmethod
    def private_topic_ok(topic: str) -> bool:
        """Tell whether `topic` is a private topic this hub serves."""
        return topic in PRIVATE_TOPICS

    def add(self, conn: Connection, topic: str) -> None:
        """Subscribe `conn` to `topic` and queue its first snapshot, in one step.

        Nothing awaits between the snapshot and the registration, so the next delta of the
        topic applies to exactly what the snapshot showed.
        """
        self._ensure_flusher()
        conn.topics.add(topic)
        self.subscribers.setdefault(topic, set()).add(conn)
        parts = topic.split(".")
        kind = parts[0]
        if kind == "orderbook":
            self._book_snapshot(conn, parts[2], int(parts[1]))
        elif kind == "tickers":
            self._ticker_snapshot(conn, parts[1])
        elif kind == "kline":
            self._kline_snapshot(conn, parts[2], parts[1])

    def remove(self, conn: Connection, topic: str) -> None:
        """Unsubscribe `conn` from `topic`."""
        conn.topics.discard(topic)
        found = self.subscribers.get(topic)
        if found is not None:
            found.discard(conn)
            if not found:
                del self.subscribers[topic]
                parts = topic.split(".")
                if parts[0] == "orderbook":
                    self.depth_views.pop((parts[2], int(parts[1])), None)

    def attach_account(self, conn: Connection, account_id: int) -> None:
        """Route `account_id`'s private rows to `conn`."""
        conn.account_id = account_id
        self.accounts.setdefault(account_id, set()).add(conn)

    def drop(self, conn: Connection) -> None:
        """Forget a closed connection everywhere."""
        conn.close()
        for topic in list(conn.topics):
            self.remove(conn, topic)
        if conn.account_id is not None:
            found = self.accounts.get(conn.account_id)
            if found is not None:
                found.discard(conn)
                if not found:
                    del self.accounts[conn.account_id]

    def outbox(self) -> Outbox:
        """Return the outbox the hub's connections share (one flush per turn of the loop)."""
        if self._outbox is None:
            self._outbox = Outbox(asyncio.get_running_loop())
        return self._outbox

    def new_connection(self, endpoint: str) -> Connection:
        """Return a connection with the hub's bound on unsent bytes."""
        if self.max_buffer is None:
            return Connection(endpoint)
        return Connection(endpoint, self.max_buffer)

    # -- publishing -------------------------------------------------------------------------

    def _publish(self, topic: str, message: dict[str, Any]) -> None:
        conns = self.subscribers.get(topic)
        if not conns:
            return
        frame = encode(message)
        for conn in conns:
            conn.offer(frame)
        self.messages += len(conns)

    def _send(self, conn: Connection, message: dict[str, Any]) -> None:
        conn.offer(encode(message))
        self.messages += 1

    def _book_snapshot(self, conn: Connection, symbol: str, depth: int) -> None:
        view = self.depth_views.get((symbol, depth))
        if view is None:
            view = self.depth_views[(symbol, depth)] = DepthView(symbol, depth)
            view.reset(self.mirrors[symbol], self.seq)
            view.last_publish = asyncio.get_running_loop().time()
        bids, asks = view.levels()
        self._send(conn, public.orderbook_message(self.specs[symbol], view, "snapshot", bids,
                                                  asks, self.now_ms))

    def _ticker_fields(self, symbol: str) -> dict[str, str]:
        bid, ask = self.mirrors[symbol].best()
        spec = self.specs[symbol]
        ticker = self.tickers.ticker(symbol)
        fields = public.ticker_fields(spec, ticker, self.directions.current(symbol), bid, ask)
        if spec.dated:
            predicted = self.engine.delivery.predicted_price_e8(symbol)
            fields = public.futures_ticker_fields(spec, ticker, fields, predicted)
        return fields

    def _ticker_snapshot(self, conn: Connection, symbol: str) -> None:
        view = self.ticker_views.get(symbol)
        if view is None:
            view = self.ticker_views[symbol] = _TickerView()
        if view.fields is None:
            view.fields = self._ticker_fields(symbol)
            view.seq = self.seq
            view.dirty = False
        self._send(conn, {"topic": f"tickers.{symbol}", "type": "snapshot",
                          "data": dict(view.fields), "cs": view.seq, "ts": self.now_ms})

    def _kline_snapshot(self, conn: Connection, symbol: str, interval: str) -> None:
        view = self.kline_views.setdefault((symbol, interval), _KlineView())
        candle = self.klines.current(symbol, interval, self.now_ms)
        if candle is None:
            return
        view.start_ms = candle.start_ms
        self._send(conn, {"topic": f"kline.{interval}.{symbol}", "type": "snapshot",
                          "ts": self.now_ms,
                          "data": [public.kline_row(self.specs[symbol], interval, candle,
                                                    False)]})

    # -- the sequencer's subscriber ---------------------------------------------------------

    def on_durable(self, command: Command, events: list[Event],
                   projection: Projection | None = None,
                   books: BookChanges | None = None) -> None:
        """Publish what a durable command changed that cannot wait for the flush.

        `projection` and `books` are what the shared order projector and book mirrors made of
        the command; a hub with its own projector (books) folds the command itself.
        """
        if len(events) == 1 and type(events[0]) is InstrumentListed:
            # A contract the operator listed: its topics open now. The shared read side (the
            # service's) has learnt it in the fold; a hub folding its own models learns it
            # here too.
            spec = spec_from_record(events[0].record)
            self.specs[spec.symbol] = spec
            if self._own_models:
                self.tickers.specs[spec.symbol] = spec
                self.klines.specs[spec.symbol] = spec
            if self._own_books:
                self.books.mirrors[spec.symbol] = BookMirror(spec.symbol)
        if projection is None:
            if not self._own_projector:
                raise ValueError("a hub sharing a projector needs the command's projection")
            projection = self.projector.project(command, events)
        if books is None:
            if not self._own_books:
                raise ValueError("a hub sharing its books needs the command's book changes")
            books = self.books.apply(command, events)
        own_models = self._own_models
        if not (own_models or self.subscribers or self.accounts or self.depth_views
                or self.ticker_views or self.kline_views):
            # Nobody subscribed and no view open: the rest only publishes (to no one) and
            # marks views dirty (none), and the models are the owner's, folded already: a
            # command costs the writer's process no more here (issue #15).
            return
        directions = iter(books.directions)
        trades: dict[str, list[dict[str, Any]]] = {}
        liquidations: list[Liquidated] = []
        ticker_symbols: set[str] = set(books.changed)
        for event in events:
            if own_models:
                self.tickers.apply(event)
                self.klines.apply(event)
            # Exact types (the event classes are leaves): a miss costs a set lookup, not a
            # walk of the tuple (a gateway's hub sees every command; issue #15).
            if type(event) is Trade:
                direction = next(directions)
                rows = trades.setdefault(event.symbol, [])
                # Rows cost more than the match itself: build them only for listeners.
                if self.subscribers.get(f"publicTrade.{event.symbol}"):
                    rows.append(public.trade_row(self.specs[event.symbol], event, direction))
            elif type(event) in _TICKER_TYPES:
                symbol = event.symbol  # type: ignore[attr-defined]  # every ticker event's
                ticker_symbols.add(symbol)
                if type(event) is MarkPriceUpdated and symbol not in trades \
                        and not self.klines.has_traded(symbol):
                    trades[symbol] = []  # the mark moves the last-price candle (C3)
            elif type(event) is Liquidated:
                liquidations.append(event)
        # The views exist only once someone subscribed: with none, their lookups (a key
        # per depth, per interval: 13 for each traded symbol) are skipped, not made to miss.
        depth_views = self.depth_views
        if depth_views:
            for symbol in books.changed:
                for depth in public.ORDERBOOK_DEPTHS:
                    view = depth_views.get((symbol, depth))
                    if view is not None:
                        view.dirty = True
        ticker_views = self.ticker_views
        if ticker_views:
            for symbol in ticker_symbols:
                ticker_view = ticker_views.get(symbol)
                if ticker_view is not None:
                    ticker_view.dirty = True
        kline_views = self.kline_views
        for symbol, rows in trades.items():
            if rows:
                self._publish(f"publicTrade.{symbol}", {
                    "topic": f"publicTrade.{symbol}", "type": "snapshot", "ts": self.now_ms,
                    "data": rows})
            if kline_views:
                for interval in KLINE_INTERVALS:
                    kline_view = kline_views.get((symbol, interval))
                    if kline_view is not None:
                        kline_view.dirty = True
        # A new period starts a new candle even without a trade (#13 C3): push it.
        for (_symbol, interval), kline_view in self.kline_views.items():
            if not kline_view.dirty and (kline_view.start_ms is None or kline_view.start_ms
                                         < period_start(interval, self.now_ms)):
                kline_view.dirty = True
        for liq in liquidations:
            self._publish_liquidation(liq)
        self._publish_private(events, projection)

    def _publish_liquidation(self, event: Liquidated) -> None:
        spec = self.specs[event.symbol]
        self._publish(f"allLiquidation.{event.symbol}", {
            "topic": f"allLiquidation.{event.symbol}", "type": "snapshot", "ts": event.ts_ms,
            "data": [public.liquidation_row(spec, event)]})
        self._publish(f"liquidation.{event.symbol}", {
            "topic": f"liquidation.{event.symbol}", "type": "snapshot", "ts": event.ts_ms,
            "data": {"price": public.liquidation_row(spec, event)["p"],
                     "side": public.side_name(event.side),
                     "size": public.liquidation_row(spec, event)["v"],
                     "symbol": event.symbol, "updatedTime": event.ts_ms}})

    def _publish_private(self, events: list[Event], projection: Projection) -> None:
        # Rows are built only for connected accounts.
        if not self.accounts:
            return
        changed = self.private.collect(events, self.accounts, projection)
        for account_id, rows in changed.items():
            conns = self.accounts.get(account_id)
            if not conns:
                continue
            wanted = set().union(*(c.topics for c in conns))
            out: list[tuple[str, list[dict[str, Any]]]] = []
            if rows.executions and "execution" in wanted:
                out.append(("execution", [self.private.execution_row(r)
                                          for r in rows.executions]))
            if rows.orders and "order" in wanted:
                out.append(("order", [self.private.order_row(r) for r in rows.orders]))
            if rows.positions and "position" in wanted:
                out.append(("position", [self.private.position_row(account_id, symbol, idx)
                                         for symbol, idx in sorted(rows.positions)]))
            if rows.wallet and "wallet" in wanted:
                wallet = self.private.wallet_row(account_id)
                if wallet is not None:
                    out.append(("wallet", [wallet]))
            for topic, data in out:
                frame = encode({"id": f"{self.seq}-{topic}-{account_id}", "topic": topic,
                                "creationTime": self.now_ms, "data": data})
                for conn in conns:
                    if topic in conn.topics:
                        conn.offer(frame)
                        self.messages += 1

    # -- the throttled views ----------------------------------------------------------------

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self.subscribers:
            self.flush(loop.time())
            await asyncio.sleep(FLUSH_PERIOD_S)

    def flush(self, now: float) -> None:
        """Publish every dirty view whose push interval has passed."""
        for (symbol, depth), view in self.depth_views.items():
            if depth == 1:
                if view.dirty and now - view.last_publish >= public.ORDERBOOK_INTERVAL_S[1]:
                    changed = view.advance(self.mirrors[symbol], self.seq)
                    if changed is not None:
                        self._publish_book_snapshot(view, now)
                elif now - view.last_publish >= public.LEVEL1_REPEAT_S:
                    self._publish_book_snapshot(view, now)
                continue
            if view.dirty and now - view.last_publish >= public.ORDERBOOK_INTERVAL_S[depth]:
                changes = view.advance(self.mirrors[symbol], self.seq)
                if changes is not None:
                    view.last_publish = now
                    self._publish(f"orderbook.{depth}.{symbol}", public.orderbook_message(
                        self.specs[symbol], view, "delta", changes[0], changes[1],
                        self.now_ms))
        for symbol, ticker in self.ticker_views.items():
            if ticker.dirty and now - ticker.last_publish >= public.TICKER_INTERVAL_S:
                self._publish_ticker(symbol, ticker, now)
        for (symbol, interval), kline in self.kline_views.items():
            if kline.dirty and now - kline.last_publish >= public.KLINE_INTERVAL_S:
                self._publish_kline(symbol, interval, kline, now)

    def _publish_book_snapshot(self, view: DepthView, now: float) -> None:
        view.last_publish = now
        bids, asks = view.levels()
        self._publish(f"orderbook.{view.depth}.{view.symbol}", public.orderbook_message(
            self.specs[view.symbol], view, "snapshot", bids, asks, self.now_ms))

    def _publish_ticker(self, symbol: str, view: _TickerView, now: float) -> None:
        view.dirty = False
        fields = self._ticker_fields(symbol)
        old = view.fields or {}
        delta = {k: v for k, v in fields.items() if old.get(k) != v}
        view.fields = fields
        if not delta:
            return
        view.last_publish = now
        view.seq = self.seq
        delta["symbol"] = symbol
        self._publish(f"tickers.{symbol}", {"topic": f"tickers.{symbol}", "type": "delta",
                                            "data": delta, "cs": view.seq, "ts": self.now_ms})

    def _publish_kline(self, symbol: str, interval: str, view: _KlineView, now: float) -> None:
        view.dirty = False
        view.last_publish = now
        spec = self.specs[symbol]
        candle = self.klines.current(symbol, interval, self.now_ms)
        if candle is None:
            return
        rows = []
        if view.start_ms is not None and view.start_ms < candle.start_ms:
            # The candle the clients hold has closed: confirm it once, then the new one.
            closed = self.klines.candles(symbol, interval, start_ms=view.start_ms,
                                         end_ms=view.start_ms, limit=1)
            if closed:
                rows.append(public.kline_row(spec, interval, closed[0], True))
        rows.append(public.kline_row(spec, interval, candle, False))
        view.start_ms = candle.start_ms
        self._publish(f"kline.{interval}.{symbol}", {"topic": f"kline.{interval}.{symbol}",
                                                     "type": "snapshot", "ts": self.now_ms,
                                                     "data": rows})
