"""Apply a bench stream's commands, for an instruction count of `Engine.apply` under callgrind.

    PYTHONPATH=src valgrind --tool=callgrind --collect-atstart=no \
        --toggle-collect='CPyDef_engine___Engine___apply' --callgrind-out-file=OUT \
        .venv/bin/python benchmarks/apply_instructions.py standard 30000

(Not ``valgrind ... env PYTHONPATH=src python``: valgrind stops at `env`'s exec without
``--trace-children=yes``, and the count is empty.)

The ``flow`` kind is the journal bench's order flow (`perpx.store.loadflow.order_flow`, seed
11), stamped as the bench's sequencer stamps it (seq from 1, one millisecond apart): the
stream of `perpx bench journal`'s replay and durable pipeline.

Only the compiled core has that symbol, so only time inside `apply` is counted; the stream's
own dry run on a throwaway engine (`perpx_commands`, `realistic_stream`) applies every command
once too, so the count is that of two runs, the same on both sides of a comparison.
`callgrind_annotate --inclusive=yes OUT` shows which functions the instructions went to.
"""

import sys

import msgspec

from perpx.bench.match import perpx_commands, run_perpx, run_realistic
from perpx.bench.realistic import realistic_stream
from perpx.bench.stream import standard_stream
from perpx.core.engine import Engine
from perpx.instruments import load_instruments
from perpx.store.loadflow import order_flow

FLOW_SEED = 11
FLOW_START_MS = 1_700_000_000_000


def run_flow(events: int) -> None:
    """Apply the journal bench's order flow of `events` commands, stamped, to a fresh engine."""
    commands = [msgspec.structs.replace(command, seq=seq, ts_ms=FLOW_START_MS + seq)
                for seq, command in enumerate(order_flow(events, FLOW_SEED), start=1)]
    engine = Engine(load_instruments())
    for command in commands:
        engine.apply(command)


def main(kind: str, events: int) -> None:
    """Build the stream of `kind` (standard, realistic or flow) and apply it once, untimed."""
    if kind == "flow":
        run_flow(events)
    elif kind == "standard":
        run_perpx(perpx_commands(standard_stream(events, 42)), False)
    else:
        run_realistic(realistic_stream(events, 42), False)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
