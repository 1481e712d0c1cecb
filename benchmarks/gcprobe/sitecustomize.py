"""Measurement only: log a process's cyclic GC runs, for `benchmarks/bench_serve_gc.py`.

Imported by every Python process started with this folder on PYTHONPATH (`sitecustomize`)
and GCPROBE_DIR set: each collection is logged (monotonic time, generation, CPU time of the
collecting thread, objects collected), and every 0.25 s the log is written to
GCPROBE_DIR/PID.json with, in a writer, the sequencer's journal batches and durable seq and,
in a gateway, its journal polls and followed seq (found once by a scan of the heap).
Nothing is done without GCPROBE_DIR.
"""

from __future__ import annotations

import os

if os.environ.get("GCPROBE_DIR"):
    import gc
    import json
    import sys
    import threading
    import time
    from typing import Any

    _dir = os.environ["GCPROBE_DIR"]
    _log: list[tuple[float, int, float, int]] = []
    _counters: list[list[Any]] = []
    _found: dict[str, Any] = {}
    _started = [0.0]

    def _keep(obj: Any) -> None:
        name = type(obj).__name__
        if name in ("Sequencer", "GatewayService"):
            _found[name] = obj
        elif name == "ExchangeService":
            _found["Sequencer"] = obj.sequencer

    def _scan() -> None:
        # A serving process freezes its heap (`perpx.heap`), and `gc.get_objects` does not
        # see frozen objects: look in the frames of the running tasks too.
        for obj in gc.get_objects():
            _keep(obj)
        import asyncio

        for task in list(asyncio.tasks._all_tasks):
            coro: Any = task.get_coro()
            while coro is not None and getattr(coro, "cr_frame", None) is not None:
                for value in list(coro.cr_frame.f_locals.values()):
                    _keep(value)
                coro = coro.cr_await

    def _sample() -> None:
        seq, gateway = _found.get("Sequencer"), _found.get("GatewayService")
        _counters.append([time.monotonic(),
                          seq.batches if seq else None, seq.durable_seq if seq else None,
                          gateway._polls_started if gateway else None,
                          gateway.durable.seq if gateway else None])

    def _write() -> None:
        data = {"argv": sys.argv, "frozen": gc.get_freeze_count(),
                "threshold": gc.get_threshold(), "log": _log, "counters": _counters}
        path = f"{_dir}/{os.getpid()}.json"
        with open(path + ".tmp", "w") as out:
            json.dump(data, out)
        os.replace(path + ".tmp", path)

    def _loop() -> None:
        scans = 0
        while True:
            time.sleep(0.25)
            # The writer's sequencer or the gateway's follower; a projector has neither.
            if "serve" in sys.argv and "projector" not in sys.argv and not _found \
                    and scans < 80:
                scans += 1
                _scan()
            if _found:
                _sample()
            _write()

    def _collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _started[0] = time.thread_time()
            return
        _log.append((time.monotonic(), info["generation"], time.thread_time() - _started[0],
                     info["collected"]))

    threading.Thread(target=_loop, daemon=True).start()
    gc.callbacks.append(_collected)
