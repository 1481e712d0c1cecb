"""The gateway follower's per-command CPU, without HTTP or other processes (issue #15).

What a gateway does for each durable command it reads, timed alone so that two versions of
the code can be compared on a shared, noisy machine (the whole-venue figures of `perpx bench
api --writer-only` move by a quarter between identical runs there):

- `fold`: the engine's apply and the read side's fold (`readside.fold`: orders, tickers,
  klines, funding, books) of the standard order stream (`perpx bench match`'s), per command;
- `read side`: the read side's fold alone (the engine's events computed beforehand), per
  command;
- `waits`: a signed request's two waits on a `Watermark` (the poll it needs, then its seq),
  64 requests in flight, per request.

Usage: `PYTHONPATH=src python benchmarks/bench_gateway_fold.py [COMMANDS] [ROUNDS]`
(defaults 20000 and 5; the best round of each is kept). JSON last.

`... bench_gateway_fold.py COMMANDS readside` runs the read side's fold once, and nothing
else, inside `any(map(...))`, so that valgrind counts its instructions alone, steadier than
any clock on a shared machine: `valgrind --tool=callgrind --collect-atstart=no
--toggle-collect=builtin_any python benchmarks/bench_gateway_fold.py 20000 readside`
(the total `Ir` divided by COMMANDS is instructions per command). `... COMMANDS follower`
counts the same way a gateway follower's whole fold: the engine, the read side and the
stream hub (no subscribers).
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time

from perpx import readside
from perpx.bench.match import funded_engine, perpx_commands
from perpx.bench.stream import standard_stream
from perpx.core.commands import Command
from perpx.core.events import Event
from perpx.core.instruments import InstrumentSpec
from perpx.durable import Watermark


class _Owner:
    """A read side as a gateway holds it (`readside.Owner`)."""

    def __init__(self, specs: dict[str, InstrumentSpec]) -> None:
        empty = readside.fresh(list(specs.values()))
        self.specs = dict(specs)
        self.read_seq = 0
        self.projector, self.tickers, self.klines = empty.projector, empty.tickers, empty.klines
        self.funding, self.books = empty.funding, empty.books


def fold_us(count: int) -> float:
    """Return the CPU µs per command of engine apply + read-side fold over `count` commands."""
    commands = perpx_commands(standard_stream(count, 42))
    engine = funded_engine()
    owner = _Owner(engine.instruments)
    gc.collect()
    started = time.process_time()
    for command in commands:
        events = engine.apply(command)
        readside.fold(owner, command, events, None)
    return (time.process_time() - started) * 1e6 / len(commands)


def _read_side_pairs(count: int) -> tuple[_Owner, list[tuple[Command, list[Event]]]]:
    commands = perpx_commands(standard_stream(count, 42))
    engine = funded_engine()
    owner = _Owner(engine.instruments)
    return owner, [(command, engine.apply(command)) for command in commands]


def read_side_us(count: int) -> float:
    """Return the CPU µs per command of the read side's fold alone over `count` commands."""
    owner, pairs = _read_side_pairs(count)
    gc.collect()
    started = time.process_time()
    for command, events in pairs:
        readside.fold(owner, command, events, None)
    return (time.process_time() - started) * 1e6 / len(pairs)


def read_side_once(count: int) -> None:
    """Fold the read side of `count` commands once, inside `any(map(...))` (for callgrind)."""
    owner, pairs = _read_side_pairs(count)
    gc.collect()

    def fold(pair: tuple[Command, list[Event]]) -> bool:
        readside.fold(owner, pair[0], pair[1], None)
        return False

    any(map(fold, pairs))  # the only `any` while it runs: valgrind's toggle
    print(json.dumps({"bench": "gateway-fold", "mode": "readside-once", "commands": count}))


def follower_once(count: int) -> None:
    """A gateway follower's whole fold of `count` commands, once, inside `any(map(...))`.

    Per command what `GatewayService._fold` does: the engine's apply, the read side's fold
    and the stream hub's `on_durable` (no subscribers), for callgrind as `readside`.
    """
    from perpx.api.ws.hub import StreamHub

    commands = perpx_commands(standard_stream(count, 42))
    engine = funded_engine()
    owner = _Owner(engine.instruments)
    hub = StreamHub(engine, list(owner.specs.values()), projector=owner.projector,
                    tickers=owner.tickers, klines=owner.klines, books=owner.books)
    gc.collect()

    def fold(command: Command) -> bool:
        events = engine.apply(command)
        projection, books = readside.fold(owner, command, events, None)
        hub.on_durable(command, events, projection, books)
        return False

    any(map(fold, commands))  # the only `any` while it runs: valgrind's toggle
    print(json.dumps({"bench": "gateway-fold", "mode": "follower-once", "commands": count}))


def waits_us(requests: int, in_flight: int = 64) -> float:
    """Return the CPU µs per request of two watermark waits, `in_flight` requests at a time."""

    async def run() -> float:
        mark = Watermark(0)
        started = time.process_time()
        for wave in range(0, requests, in_flight):
            waiting = [asyncio.ensure_future(mark.wait_for(wave + n + 1))
                       for n in range(in_flight)]
            await asyncio.sleep(0)
            for n in range(in_flight):  # the follower passes them one poll at a time
                mark.advance(wave + n + 1)
            await asyncio.gather(*waiting)
        return (time.process_time() - started) * 1e6 / requests * 2

    return asyncio.run(run())


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    if len(sys.argv) > 2 and sys.argv[2] in ("readside", "follower"):
        (read_side_once if sys.argv[2] == "readside" else follower_once)(count)
        return
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    fold = min(fold_us(count) for _ in range(rounds))
    side = min(read_side_us(count) for _ in range(rounds))
    waits = min(waits_us(count) for _ in range(rounds))
    print(f"fold (engine + read side): {fold:.1f} µs/command; read side alone: {side:.1f} "
          f"µs/command; two waits: {waits:.1f} µs/request")
    print(json.dumps({"bench": "gateway-fold", "commands": count, "rounds": rounds,
                      "fold_us_per_command": round(fold, 1),
                      "read_side_us_per_command": round(side, 1),
                      "waits_us_per_request": round(waits, 1)}))


if __name__ == "__main__":
    main()
