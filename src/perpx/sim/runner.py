"""The simulation loop: an engine, a seq counter, a price feed, a clock of ticks, and agents.

`Simulation` plays the sequencer's part without a journal: it stamps every command with the
next `seq` and the feed time, applies it, and hands the events to the report and to any
observers. Time is feed time only (no wall clock), and agents act in an order drawn from the
simulation's own seeded generator, so a run is a pure function of its inputs and seeds.

One step per distinct feed timestamp `t`:
1. `Tick`s for every point of the tick grid (multiples of `tick_every_ms`) before `t`;
2. the `IndexPrice` of each observation at `t`;
3. each agent acts at `t`, in a shuffled order (the first step starts with every agent's
   setup);
4. a `Tick` at `t` if `t` is on the grid.
Agents act before the tick samples the book because market makers requote within
milliseconds of an index move, well inside the second between two basis samples; sampling
first would measure every index jump against quotes that are only stale in the simulation.
A funding timestamp on the grid is still settled first: by the `IndexPrice` at `t`, before
anything else stamped at or after it.
The grid starts at the first multiple at or after the first observation, so ticks land on
funding timestamps whenever `tick_every_ms` divides the funding interval.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from itertools import groupby

import msgspec

from perpx.convert import to_ticks
from perpx.core import Engine
from perpx.core.account.accounts import INSURANCE_FUND_ID
from perpx.core.commands import Command, Deposit, IndexPrice, Tick
from perpx.core.events import Event
from perpx.core.instruments import InstrumentSpec
from perpx.feeds.base import IndexObservation, PriceFeed
from perpx.sim.agents import UNSTAMPED, Agent, MarketView
from perpx.sim.report import ReportBuilder, SimulationReport

Observer = Callable[[Command, list[Event]], None]


class Simulation:
    """Runs agents against an engine on a price feed's clock.

    `check_every` > 0 runs `engine.check_invariants()` after every that many commands and
    at the end of `run`; `keep_commands` keeps the stamped commands (a journal, for replay)
    and `keep_events` every event, in order. Observers see each command with its events.
    """

    def __init__(self, instruments: Iterable[InstrumentSpec], feed: PriceFeed,
                 agents: Sequence[Agent], *, tick_every_ms: int = 15_000,
                 check_every: int = 0, seed: int = 0, observers: Sequence[Observer] = (),
                 keep_commands: bool = False, keep_events: bool = False,
                 insurance_fund_atoms: int = 0) -> None:
        if tick_every_ms <= 0:
            raise ValueError("Simulation: tick_every_ms must be positive")
        self.engine = Engine(instruments)
        self.view = MarketView(self.engine)
        self.feed = feed
        self.agents = list(agents)
        if len({agent.account_id for agent in self.agents}) != len(self.agents):
            raise ValueError("Simulation: two agents share an account")
        self.tick_every_ms = tick_every_ms
        self.check_every = check_every
        self.rng = random.Random(seed)
        self.observers = list(observers)
        self.commands: list[Command] | None = [] if keep_commands else None
        self.events: list[Event] | None = [] if keep_events else None
        self.seq = 0
        self.invariant_checks = 0
        self.builder = ReportBuilder()
        self.insurance_fund_atoms = insurance_fund_atoms
        self._next_tick_ms: int | None = None
        self._started = False

    def submit(self, command: Command, ts_ms: int) -> list[Event]:
        """Stamp `command` with the next seq and `ts_ms`, apply it, and publish its events."""
        if command.seq != UNSTAMPED or command.ts_ms != UNSTAMPED:
            raise ValueError(f"submit: {type(command).__name__} is already stamped")
        self.seq += 1
        stamped = msgspec.structs.replace(command, seq=self.seq, ts_ms=ts_ms)
        events = self.engine.apply(stamped)
        if self.commands is not None:
            self.commands.append(stamped)
        if self.events is not None:
            self.events.extend(events)
        self.builder.observe(stamped, events)
        for observer in self.observers:
            observer(stamped, events)
        if self.check_every and self.seq % self.check_every == 0:
            self.check_invariants()
        return events

    def check_invariants(self) -> None:
        """Run the engine's invariant checks now (raises `InvariantViolation` on a breach)."""
        self.engine.check_invariants()
        self.invariant_checks += 1

    def run(self, until_ms: int | None = None) -> SimulationReport:
        """Play the feed (observations before `until_ms`), then tick up to `until_ms`.

        Returns the report of everything applied so far; `run` may be called once.
        """
        if self._started:
            raise RuntimeError("Simulation.run: already ran")
        self._started = True
        for ts_ms, group in groupby(self.feed, key=lambda observation: observation.ts_ms):
            if until_ms is not None and ts_ms >= until_ms:
                break
            self.step(ts_ms, list(group))
        if until_ms is not None and self._next_tick_ms is not None:
            self._tick_until(until_ms, inclusive=True)
        if self.check_every:
            self.check_invariants()
        return self.report()

    def step(self, ts_ms: int, observations: Sequence[IndexObservation]) -> None:
        """Play one feed timestamp: ticks due, index prices, agents, the tick at `ts_ms`."""
        if self._next_tick_ms is None:
            if self.insurance_fund_atoms > 0:
                self.submit(Deposit(UNSTAMPED, UNSTAMPED, INSURANCE_FUND_ID, self._fund_coin(),
                                    self.insurance_fund_atoms), ts_ms)
            for agent in self.agents:
                for command in agent.setup(self.view):
                    self.submit(command, ts_ms)
            self._next_tick_ms = -(-ts_ms // self.tick_every_ms) * self.tick_every_ms
        self._tick_until(ts_ms, inclusive=False)
        for observation in observations:
            spec = self.engine.instruments.get(observation.symbol)
            if spec is None:
                raise ValueError(f"feed symbol {observation.symbol} is not an instrument")
            self.submit(IndexPrice(UNSTAMPED, UNSTAMPED, observation.symbol,
                                   to_ticks(spec, observation.price)), ts_ms)
        order = list(self.agents)
        self.rng.shuffle(order)
        for agent in order:
            for command in agent.act(self.view, ts_ms):
                self.submit(command, ts_ms)
        self._tick_until(ts_ms, inclusive=True)

    def _fund_coin(self) -> str:
        coins = {spec.settle_coin for spec in self.engine.instruments.values()}
        if len(coins) != 1:
            raise ValueError("Simulation: seeding the fund needs one settle coin")
        return coins.pop()

    def _tick_until(self, ts_ms: int, *, inclusive: bool) -> None:
        next_tick = self._next_tick_ms
        if next_tick is None:
            return
        while next_tick < ts_ms or (inclusive and next_tick == ts_ms):
            self.submit(Tick(UNSTAMPED, UNSTAMPED), next_tick)
            next_tick += self.tick_every_ms
        self._next_tick_ms = next_tick

    def report(self) -> SimulationReport:
        """Return the report of everything applied so far."""
        return self.builder.report(self.invariant_checks)
