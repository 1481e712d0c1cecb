"""`perpx.heap.freeze_loaded`: what a serving process loaded leaves the cyclic GC's walks.

Run in a fresh interpreter each time: a freeze (and the threshold) would stay in this one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from perpx.heap import ENV, GEN0, GEN0_ENV

_PROBE = """
import gc, json
from perpx.heap import freeze_loaded
threshold = gc.get_threshold()
loaded = [[n] for n in range(1000)]  # state a process loaded, held for its life
froze = freeze_loaded()
frozen = gc.get_freeze_count()
after = [[n] for n in range(10)]  # allocated while serving: collected as before
print(json.dumps({"froze": froze, "frozen": frozen, "later": gc.get_freeze_count(),
                  "threshold": gc.get_threshold(), "python": threshold,
                  "held": len(loaded) + len(after)}))
"""


def _run(**env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if k not in (ENV, GEN0_ENV)}
    done = subprocess.run([sys.executable, "-c", _PROBE], env={**clean, **env},
                          capture_output=True, text=True, check=True)
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_freezing_moves_the_loaded_heap_out_of_the_collector_and_the_env_turns_it_off() -> None:
    default = _run()
    assert default["froze"] is True
    assert isinstance(default["frozen"], int) and default["frozen"] >= 1000
    assert default["later"] == default["frozen"]  # what is made afterwards is not frozen
    python = default["python"]
    assert isinstance(python, list)
    assert default["threshold"] == [GEN0, *python[1:]]

    off = _run(**{ENV: "0", GEN0_ENV: "700"})
    assert off["froze"] is False and off["frozen"] == 0
    assert off["threshold"] == [700, *python[1:]]
