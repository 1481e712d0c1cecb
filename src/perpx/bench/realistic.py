"""The realistic stream: orders with margin that runs out, a moving mark, liquidations, funding.

The standard stream (`perpx.bench.stream`) never moves a mark, funds every account with a
billion USDT and so never refuses an order for margin or liquidates anyone. This stream keeps
its order mix (60% limits, 30% cancels, 10% markets, one symbol, BTCUSDT) and adds what a
venue spends its time on besides matching:

- **A mark that moves every second.** The clock runs at `ORDERS_PER_SECOND` order commands a
  second; each second brings an `IndexPrice` (a seeded random walk with occasional jumps) and
  a `Tick` (basis and premium samples, the mark refreshed). Limit prices sit around the index.
- **Modest funds and high leverage.** Each account deposits between 20 and 2,000 USDT
  (log-uniform), sets a leverage of 20×, 50× or 100× and one in two goes isolated, so orders
  are refused for margin and positions are liquidated when the mark moves against them.
- **Funding.** Funding is hourly and the clock starts half the stream's span before a full
  hour, so at least one funding timestamp is settled by every stream of a few hundred events.

Building the stream runs it once on an engine (the engine numbers orders itself and a cancel
must name that number; an order the engine refused or already closed is not cancelled again).
That same run counts what happened, so the counts describe exactly the commands measured.
Everything is seeded: the same arguments give the same commands and the same counts.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from perpx.core import CancelOrder, Command, Engine, OrderType, PlaceOrder, Side
from perpx.core.codes import RejectCode
from perpx.core.commands import (
    Deposit,
    IndexPrice,
    SetFundingInterval,
    SetLeverage,
    SetMarginMode,
    Tick,
)
from perpx.core.enums import MarginMode
from perpx.core.events import (
    FundingSettled,
    Liquidated,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    Trade,
)
from perpx.instruments import load_instruments

ACCOUNTS = 1_000
ORDERS_PER_SECOND = 20
HOUR_MS = 3_600_000
EPOCH_HOUR_MS = 1_700_006_400_000  # 2023-11-15 00:00 UTC: a funding timestamp
START_INDEX_TICKS = 650_000  # 65,000.0 USDT, the standard stream's starting mid
WALK_SIGMA = 0.0002  # 0.02% of the index a second: a lively hour on BTC
JUMP_EVERY_S = 30  # on average one jump every half minute...
JUMP_SIGMA = 0.004  # ...of 0.4%: a stormy hour
USDT_ATOMS = 10**8
LEVERAGE_CHOICES = (20, 50, 100)


@dataclass
class RealisticStream:
    """The commands to measure, the setup before them, and what they did on the engine."""

    setup: list[Command]
    commands: list[Command]
    counts: dict[str, int] = field(default_factory=dict)

    def engine(self) -> Engine:
        """Return a fresh engine with BTCUSDT and the setup (deposits, leverage, modes) applied."""
        spec = next(s for s in load_instruments() if s.symbol == "BTCUSDT")
        engine = Engine([spec])
        for command in self.setup:
            engine.apply(command)
        return engine


def _setup(rng: random.Random, start_ms: int) -> list[Command]:
    """Deposits, leverage and margin modes of every account, hourly funding, a first index."""
    out: list[Command] = []
    seq = 0

    def stamp() -> tuple[int, int]:
        nonlocal seq
        seq += 1
        return seq, start_ms

    for account in range(1, ACCOUNTS + 1):
        usdt = math.exp(rng.uniform(math.log(20), math.log(2_000)))
        out.append(Deposit(*stamp(), account, "USDT", int(usdt * USDT_ATOMS)))
        if rng.random() < 0.5:
            out.append(SetMarginMode(*stamp(), account, MarginMode.ISOLATED))
        leverage = rng.choice(LEVERAGE_CHOICES) * 10**8
        out.append(SetLeverage(*stamp(), account, "BTCUSDT", leverage, leverage))
    out.append(SetFundingInterval(*stamp(), "BTCUSDT", 60))
    out.append(IndexPrice(*stamp(), "BTCUSDT", START_INDEX_TICKS))
    return out


def realistic_stream(events: int, seed: int = 42) -> RealisticStream:
    """Build `events` commands (orders, cancels, index prices and ticks) and run them once.

    The measured commands are numbered after the setup's; `counts` holds: commands, orders
    (places), accepted, refused_margin (refused for the available balance), refused_other,
    cancels, fills (trades), liquidations, funding_settlements, index_moves and ticks.
    """
    rng = random.Random(seed)
    per_second = ORDERS_PER_SECOND + 2  # the orders plus an IndexPrice and a Tick
    span_ms = events * 1_000 // per_second
    # Start half the span before a full hour, on a whole second, so funding falls mid-stream.
    start_ms = EPOCH_HOUR_MS - (span_ms // 2 // 1_000 + 1) * 1_000
    setup = _setup(rng, start_ms)
    stream = RealisticStream(setup, [])
    engine = stream.engine()
    counts: Counter[str] = Counter()
    live: list[int] = []  # engine ids of orders that rested when last looked at
    index = START_INDEX_TICKS
    seq = len(setup)
    step_ms = 1_000 // ORDERS_PER_SECOND
    second = 0
    in_second = 0
    commands = stream.commands
    limit_share, cancel_share = 0.60, 0.30
    while len(commands) < events:
        seq += 1
        now = start_ms + second * 1_000
        command: Command
        if in_second == ORDERS_PER_SECOND:
            move = rng.gauss(0.0, WALK_SIGMA)
            if rng.random() < 1 / JUMP_EVERY_S:
                move += rng.gauss(0.0, JUMP_SIGMA)
            index = max(1_000, round(index * (1 + move)))
            command = IndexPrice(seq, now + 999, "BTCUSDT", index)
            counts["index_moves"] += 1
            in_second += 1
        elif in_second == ORDERS_PER_SECOND + 1:
            command = Tick(seq, now + 999)
            counts["ticks"] += 1
            second += 1
            in_second = 0
        else:
            ts = now + in_second * step_ms
            in_second += 1
            kind = rng.random()
            account = rng.randint(1, ACCOUNTS)
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            order = None
            if limit_share <= kind < limit_share + cancel_share:
                # Cancel a random order that still rests (one filled or cancelled by a
                # liquidation since is forgotten); with none left, place a limit instead.
                while live and order is None:
                    i = rng.randrange(len(live))
                    live[i], live[-1] = live[-1], live[i]
                    order = engine.order(live.pop())
            if order is not None:
                command = CancelOrder(seq, ts, order.account_id, "BTCUSDT", order.order_id)
                counts["cancels"] += 1
            elif kind < limit_share + cancel_share:
                behind = rng.randint(-5, 40)
                price = index - behind if side is Side.BUY else index + behind
                command = PlaceOrder(seq, ts, account, "BTCUSDT", side, OrderType.LIMIT,
                                     rng.randint(1, 100), price)
                counts["orders"] += 1
            else:
                command = PlaceOrder(seq, ts, account, "BTCUSDT", side, OrderType.MARKET,
                                     rng.randint(1, 50))
                counts["orders"] += 1
        commands.append(command)
        _count(engine.apply(command), counts, live)
    counts["commands"] = len(commands)
    stream.counts = dict(sorted(counts.items()))
    return stream


def _count(events: list[Any], counts: Counter[str], live: list[int]) -> None:
    """Tally one command's events; note the orders that entered the book."""
    for event in events:
        kind = type(event)
        if kind is OrderAccepted:
            counts["accepted"] += 1
            if event.order_type is OrderType.LIMIT:
                live.append(event.order_id)
        elif kind is Trade:
            counts["fills"] += 1
        elif kind is OrderRejected:
            if event.reason is RejectCode.INSUFFICIENT_AVAILABLE_BALANCE:
                counts["refused_margin"] += 1
            else:
                counts["refused_other"] += 1
        elif kind is Liquidated:
            counts["liquidations"] += 1
        elif kind is FundingSettled:
            counts["funding_settlements"] += 1
        elif kind is OrderCancelled:
            counts["cancelled"] += 1
