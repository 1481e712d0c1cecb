"""Apply a bench stream's commands, for an instruction count of `Engine.apply` under callgrind.

    PYTHONPATH=src valgrind --tool=callgrind --collect-atstart=no \
        --toggle-collect='CPyDef_engine___Engine___apply' --callgrind-out-file=OUT \
        .venv/bin/python benchmarks/apply_instructions.py standard 30000

(Not ``valgrind ... env PYTHONPATH=src python``: valgrind stops at `env`'s exec without
``--trace-children=yes``, and the count is empty.)

Only the compiled core has that symbol, so only time inside `apply` is counted; the stream's
own dry run on a throwaway engine (`perpx_commands`, `realistic_stream`) applies every command
once too, so the count is that of two runs, the same on both sides of a comparison.
`callgrind_annotate --inclusive=yes OUT` shows which functions the instructions went to.
"""

import sys

from perpx.bench.match import perpx_commands, run_perpx, run_realistic
from perpx.bench.realistic import realistic_stream
from perpx.bench.stream import standard_stream


def main(kind: str, events: int) -> None:
    """Build the stream of `kind` (standard or realistic) and apply it once, untimed."""
    if kind == "standard":
        run_perpx(perpx_commands(standard_stream(events, 42)), False)
    else:
        run_realistic(realistic_stream(events, 42), False)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
