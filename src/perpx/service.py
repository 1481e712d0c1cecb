"""The live exchange: engine, sequencer, read models, price feeds and a market maker together.

`ExchangeService` is what `perpx serve` runs and what the API talks to. Reads (books,
positions, wallets, tickers) come straight from the engine and the in-memory read models,
in the event loop between commands; every change goes through `submit`, i.e. through the
sequencer, the journal and then the engine. The built-in market maker is one more client of
the sequencer, on its own accounts (one per symbol, below the API keys' account ids).

On start the service replays the journal into a fresh engine and re-projects into the
history tables every command past their high watermark. A history newer than the journal
(the journal was lost, e.g. the in-memory journal of a restarted server) is emptied first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from perpx.api.ws.hub import StreamHub
from perpx.convert import ConversionError, format_ticks, to_atoms, to_ticks
from perpx.core.commands import Command, Deposit, IndexPrice, Tick
from perpx.core.engine import Engine
from perpx.core.events import Event
from perpx.core.instruments import InstrumentSpec
from perpx.feeds import CandleReplay, IndexObservation, RandomWalkFeed
from perpx.readmodels import FundingHistory, Klines, OpenInterest, Tickers
from perpx.sequencer import Sequencer, SequencerStopped, wall_clock_ms
from perpx.sim.agents import MarketMaker, MarketView
from perpx.store import open_journal
from perpx.store.history import History
from perpx.store.journal import Journal
from perpx.store.records import Projector

log = logging.getLogger("perpx.service")

MAKER_ACCOUNT_BASE = 1  # market-maker accounts 1, 2, 3, ... one per symbol
START_PRICES = {"BTCUSDT": "65000", "ETHUSDT": "3500", "SOLUSDT": "150"}


class ServiceStopped(RuntimeError):
    """The service stopped (journal failure or a broken core invariant); nothing is accepted."""


def open_service_journal(data_dir: str | Path, url: str | None = None) -> Journal:
    """Open the service's journal: `url` if given, else SQLite at DATA/journal.db."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    return open_journal(url if url is not None else str(Path(data_dir) / "journal.db"))


def _walk(spec: InstrumentSpec, start_price: str, seed: int) -> Iterator[IndexObservation]:
    return iter(RandomWalkFeed(spec.symbol, spec.tick_size, start_price, start_ms=0,
                               step_ms=1000, volatility=0.5, seed=seed))


class ExchangeService:
    """Own the engine, the sequencer, the read models, the feed and the market maker."""

    def __init__(self, instruments: Iterable[InstrumentSpec], journal: Journal, *,
                 history: History | None = None, clock: Callable[[], int] = wall_clock_ms,
                 maker: bool = True, replay: str | Path | None = None,
                 replay_symbol: str = "BTCUSDT", feed_interval_s: float = 1.0,
                 seed: int = 7) -> None:
        specs = list(instruments)
        self.specs: dict[str, InstrumentSpec] = {spec.symbol: spec for spec in specs}
        self.clock = clock
        self.engine = Engine(specs)
        self.history = history if history is not None else History(None)
        self.projector = Projector(specs, sink=None)
        self.tickers = Tickers(specs)
        self.klines = Klines(specs)
        self.open_interest = OpenInterest()
        self.funding = FundingHistory(specs)
        self._read_models = (self.tickers, self.klines, self.open_interest, self.funding)
        self.fatal: BaseException | None = None
        self.stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_scheduled = False
        self._funding_accounts: set[int] = set()
        self._feed_interval_s = feed_interval_s
        # The streams fold every durable command too, replayed ones included, so their book
        # mirrors and order states start where the journal ends.
        self.hub = StreamHub(self.engine, specs, projector=self.projector)
        self._recover(journal)
        self.sequencer = Sequencer(self.engine, journal, clock)
        self.sequencer.subscribe(self._on_durable)
        self.makers = [MarketMaker(MAKER_ACCOUNT_BASE + i, spec.symbol)
                       for i, spec in enumerate(specs)] if maker else []
        self._feeds = self._build_feeds(replay, replay_symbol, seed)

    # -- recovery and projection ----------------------------------------------------------

    def _recover(self, journal: Journal) -> None:
        if self.history.high_watermark > journal.last_seq():
            log.warning("history is ahead of the journal (seq %d > %d): rebuilding it",
                        self.history.high_watermark, journal.last_seq())
            self.history.reset()
        watermark = self.history.high_watermark
        for command in journal.read(1):
            events = self.engine.apply(command)
            self._project(command, events, write=command.seq > watermark)
        self.history.flush().result()

    def _project(self, command: Command, events: list[Event], *, write: bool) -> None:
        for model in self._read_models:
            for event in events:
                model.apply(event)
        self.projector.sink = self.history if write else None
        projection = self.projector.project(command, events)
        self.hub.on_durable(command, events, projection)
        if write:
            self.history.projected(command.seq)

    def _on_durable(self, command: Command, events: list[Event]) -> None:
        self._project(command, events, write=True)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_history)

    def _flush_history(self) -> None:
        self._flush_scheduled = False
        self.history.flush()

    # -- writes ---------------------------------------------------------------------------

    async def submit(self, command: Command) -> list[Event]:
        """Sequence, apply and journal `command`; return its events once durable."""
        if self.fatal is not None:
            raise ServiceStopped("the service has stopped") from self.fatal
        try:
            return await self.sequencer.submit(command)
        except SequencerStopped as stopped:
            self._stop(self.sequencer.failure or stopped)
            raise ServiceStopped("the service has stopped") from stopped
        except Exception as bug:
            # An exception out of the core is a broken invariant (DESIGN): stop the service.
            self._stop(bug)
            raise ServiceStopped("the service has stopped") from bug

    def _stop(self, failure: BaseException) -> None:
        if self.fatal is None:
            log.critical("stopping the service: %r", failure)
            self.fatal = failure
        self.stopped.set()

    async def ensure_funded(self, account_id: int, demo_funds: str) -> None:
        """Credit a key's demo funds once, when its account has no wallet in the engine yet."""
        if account_id in self._funding_accounts or not demo_funds:
            return
        if self.engine.clearing.account(account_id) is not None:
            self._funding_accounts.add(account_id)
            return
        try:
            amount = to_atoms(demo_funds)
        except ConversionError:
            return
        if amount <= 0:
            return
        self._funding_accounts.add(account_id)
        await self.submit(Deposit(0, 0, account_id, "USDT", amount))

    def now_ms(self) -> int:
        """Return the service clock, never behind the engine's last command."""
        return max(self.clock(), self.engine.last_ts_ms)

    # -- feeds and market maker -----------------------------------------------------------

    def _build_feeds(self, replay: str | Path | None, replay_symbol: str,
                     seed: int) -> dict[str, Iterator[IndexObservation]]:
        feeds: dict[str, Iterator[IndexObservation]] = {}
        for number, spec in enumerate(self.specs.values()):
            if replay is not None and spec.symbol == replay_symbol:
                feeds[spec.symbol] = iter(CandleReplay(replay, spec.symbol, spec.tick_size,
                                                       step_ms=1000))
                continue
            last = self.engine.index_price.get(spec.symbol)
            # After a restart the walk continues from the last index price.
            start_price = (START_PRICES.get(spec.symbol, "100") if last is None
                           else format_ticks(spec, last))
            feeds[spec.symbol] = _walk(spec, start_price, seed + number)
        return feeds

    async def start(self) -> None:
        """Set up the market makers and start the feed loop."""
        view = MarketView(self.engine)
        for maker in self.makers:
            for command in maker.setup(view):
                if isinstance(command, Deposit) and \
                        self.engine.clearing.account(command.account_id) is not None:
                    continue  # funded in an earlier run (durable journal)
                await self.submit(command)
        await self.step()
        self._tasks.append(asyncio.create_task(self._feed_loop(), name="perpx-feed"))

    async def step(self) -> None:
        """One feed step: a new index price per symbol, a Tick, then the makers' quotes."""
        futures: list[asyncio.Future[list[Event]]] = []
        for symbol, feed in self._feeds.items():
            observation = next(feed, None)
            if observation is None:
                continue  # a replay that ended keeps its last price
            spec = self.specs[symbol]
            await self.submit(IndexPrice(0, 0, symbol, to_ticks(spec, observation.price)))
        await self.submit(Tick(0, 0))
        view = MarketView(self.engine)
        now = self.now_ms()
        for maker in self.makers:
            for command in maker.act(view, now):
                futures.append(asyncio.ensure_future(self.submit(command)))
        if futures:
            await asyncio.gather(*futures)

    async def _feed_loop(self) -> None:
        while self.fatal is None:
            await asyncio.sleep(self._feed_interval_s)
            try:
                await self.step()
            except ServiceStopped:
                return
            except Exception as failure:  # a feed error must not pass silently
                log.exception("feed step failed")
                self._stop(failure)
                return

    async def close(self) -> None:
        """Stop the feed, finish journal writes and close the history."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.sequencer.close()
        self.history.close()
