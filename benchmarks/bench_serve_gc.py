"""CPU the serving processes spend in CPython's cyclic GC while they serve (issue #15).

One pass of the split layout under load, every process of the venue logging its collections
(`benchmarks/gcprobe/sitecustomize.py` on the children's PYTHONPATH):

- `api [CLIENTS]`: `perpx bench api --gateways 1 --writer-only nats://127.0.0.1:4222`'s
  measurement (writer only, one gateway, projector 0; CLIENTS signed clients, default 64,
  5 s of orders);
- `ws [PER_TICK]`: `perpx bench ws --gateways 1 --client-processes 2`'s (the writer with
  its read side, one gateway, 1,000 subscribers in two client processes; PER_TICK commands
  every 10 ms, default 40).

Per process (writer, gateway, projector), the collections inside the measured window (the
signed orders, or the order flow): count and CPU ms by generation. With `api`, also the
commands per journal batch of the writer and the gateway's journal polls per command in the
window. Compare `PERPX_GC_FREEZE=0 PERPX_GC_GEN0=700` (the collector as Python sets it)
against the defaults (`perpx.heap`), alternating. Measurement only. JSON last.

Run: `PYTHONPATH=src python benchmarks/bench_serve_gc.py api` (or `ws 40`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROBE = Path(__file__).resolve().parent / "gcprobe"
NATS = "nats://127.0.0.1:4222"


def _in_window(folder: Path, start: float, end: float) -> dict[str, Any]:
    """Each serving process's collections (and counters) between `start` and `end`."""
    found: dict[str, Any] = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        argv: list[str] = data["argv"]
        if "serve" not in argv:
            continue
        role = argv[argv.index("--role") + 1] if "--role" in argv else "writer"
        inside = [entry for entry in data["log"] if start <= entry[0] <= end]
        figures: dict[str, Any] = {
            "collections": [sum(1 for e in inside if e[1] == g) for g in range(3)],
            "gc_cpu_ms": [round(sum(e[2] for e in inside if e[1] == g) * 1000, 1)
                          for g in range(3)],
            "frozen": data["frozen"], "threshold": data["threshold"]}
        counters = [row for row in data["counters"] if start <= row[0] <= end]
        if len(counters) >= 2:
            first, last = counters[0], counters[-1]
            if first[1] is not None and last[1] > first[1]:
                figures["commands_per_batch"] = round(
                    (last[2] - first[2]) / (last[1] - first[1]), 2)
            if first[3] is not None and last[4] > first[4]:
                figures["polls_per_command"] = round(
                    (last[3] - first[3]) / (last[4] - first[4]), 3)
        found[f"{role}_{path.stem}"] = figures
    return found


def run() -> None:
    """Measure one pass; print the bench's figures and each process's GC in the window."""
    kind = sys.argv[1] if len(sys.argv) > 1 else "api"
    number = int(sys.argv[2]) if len(sys.argv) > 2 else (64 if kind == "api" else 40)
    window: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="perpx-gcprobe-") as folder:
        os.environ["GCPROBE_DIR"] = folder
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(PROBE), *filter(None, [os.environ.get("PYTHONPATH", "")])])
        if kind == "api":
            import perpx.bench.api as api

            loadgen = api._loadgen

            def timed(job: dict[str, Any]) -> Any:
                if job.get("kind") != "order":
                    return loadgen(job)
                window["start"] = time.monotonic()
                answer = loadgen(job)
                window["end"] = time.monotonic()
                return answer

            api._loadgen = timed  # type: ignore[assignment]
            result = api._through_gateways(1, number, 5.0, 1, writer_only=NATS)
        else:
            import perpx.bench.ws as ws

            drive = ws._drive_writer

            async def timed_drive(*args: Any, **kwargs: Any) -> int:
                window["start"] = time.monotonic()
                answer = await drive(*args, **kwargs)
                window["end"] = time.monotonic()
                return answer

            ws._drive_writer = timed_drive  # type: ignore[assignment]
            result = ws._through_gateways(1, 1000, 3.0, number, 42, client_processes=2)
            gateway_cpu = result["gateways_1_gateway_cpu"][0]
            msgs = result["gateways_1_msgs_per_s"]
            result["gateway_cpu_us_per_msg"] = round(gateway_cpu * 1e6 / msgs, 2) if msgs else None
        time.sleep(0.6)  # the probes' last writes
        processes = _in_window(Path(folder), window["start"], window["end"])
    print(json.dumps({"bench": "serve_gc", "kind": kind, "number": number,
                      "gc_env": {name: os.environ.get(name, "") for name in
                                 ("PERPX_GC_FREEZE", "PERPX_GC_GEN0")},
                      "window_s": round(window["end"] - window["start"], 2),
                      "processes": processes, **result}))


if __name__ == "__main__":
    run()
