"""Apply a bench stream's commands, for an instruction count of `Engine.apply` under callgrind.

    valgrind --tool=callgrind --trace-children=yes --collect-atstart=no \
        --toggle-collect='CPyDef_engine___Engine___apply' --callgrind-out-file=OUT \
        env PYTHONPATH=src .venv/bin/python benchmarks/apply_instructions.py standard 30000

`--trace-children=yes`: valgrind otherwise follows `env` alone, and `env` execs Python, so
the profile comes out empty. Only the compiled core has that symbol, so only time inside
`apply` is counted; the stream's own dry run on a throwaway engine (`perpx_commands`,
`realistic_stream`) applies every command once too, so the count is that of two runs, the
same on both sides of a comparison.
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
