"""One split-layout measurement of `perpx bench api`, with the venue's code taken from PYTHONPATH.

    PYTHONPATH=OTHER/src python benchmarks/bench_writer_only.py LABEL [NATS_URL [PROFILE]]

Runs `perpx.bench.api._through_gateways(1, 64, 5.0, 1, ...)` from this checkout, while the
venue it starts (`python -m perpx.cli serve --gateways 1 ...`, and its gateway and projector)
runs the perpx that PYTHONPATH names: so one checkout's benchmark measures another's writer
in the same layout, e.g. a writer that still folds the history beside one that does not
(`docs/decisions.md`, "The writer only"). With NATS_URL the layout is split
(`--projectors 1 --bus NATS_URL`); with PROFILE the writer runs under cProfile. Prints the
figures as one JSON line, with LABEL.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from perpx.bench.api import _through_gateways


def main() -> None:
    label = sys.argv[1]
    nats = sys.argv[2] if len(sys.argv) > 2 else ""
    profile = sys.argv[3] if len(sys.argv) > 3 else ""
    figures = _through_gateways(1, 64, 5.0, 1, writer_only=nats, profile=profile)
    print(json.dumps({"label": label, **figures}))


if __name__ == "__main__":
    main()
