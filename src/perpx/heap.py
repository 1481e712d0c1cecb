"""The service processes' heap: the state they loaded is frozen out of the cyclic GC.

A serving process (the writer or all-in-one `perpx serve`, a gateway, a standby that took
over, a history projector) holds a large heap that lives as long as it does: the modules it
imported and the state it loaded (engine, read side, instruments). CPython's cyclic garbage
collector walks every tracked object of the oldest generation on each full collection, so
this heap costs CPU all through serving and collects nothing (measured under signed
orders: ~7 % of a gateway's CPU, ~5 % of the writer's; `docs/decisions.md`, 2026-12-07,
"Writes skip the catch-up poll; the loaded heap leaves the cyclic GC"). `freeze_loaded`
moves what exists once the state is loaded into the permanent generation (`gc.freeze`),
which the collector never walks; everything allocated afterwards is collected as before,
and a frozen object whose references drop is still freed by reference counting. What it
can no longer free is a reference cycle among frozen objects that the process drops later:
at most the heap frozen at the start, never what is made while serving.

It also raises the collector's first threshold (`gc.set_threshold`) from Python's 700 to
`GEN0` = 10,000: a serving process allocates and frees the objects of the requests in
flight, so its count of young objects swings around a few thousand and, at 700, started a
young collection every few dozen orders that found next to nothing; at 10,000 they are rare
and what survives is still collected (measured: `docs/decisions.md`, 2026-12-07).

`PERPX_GC_FREEZE=0` in the environment turns the freeze off, `PERPX_GC_GEN0=700` restores
Python's threshold (any positive number sets it). The core library (`perpx.core`,
`perpx.Exchange`) never calls this.
"""

from __future__ import annotations

import gc
import os

ENV = "PERPX_GC_FREEZE"
GEN0_ENV = "PERPX_GC_GEN0"
GEN0 = 10_000


def freeze_loaded() -> bool:
    """Set the first threshold, collect once, freeze what the process holds; False: no freeze.

    Called by each serving role once its state is loaded, before it serves. The collection
    first frees the garbage of loading, so none of it is kept forever.
    """
    text = os.environ.get(GEN0_ENV, "").strip()
    gen0 = int(text) if text.isdigit() and int(text) > 0 else GEN0
    gc.set_threshold(gen0, *gc.get_threshold()[1:])
    if os.environ.get(ENV, "1").strip() == "0":
        return False
    gc.collect()
    gc.freeze()
    return True
