"""The service's read side at one seq: captured beside each engine snapshot, restored at start.

The read side is everything the service folds from durable events: the history projector's
open and recent orders, positions and marks; the market read models (24-hour tickers, klines,
open interest, funding history); the stream hub's book mirrors, tickers, klines, private
order mirror and tick directions. None of it can be rebuilt from the engine's state alone
(a 24-hour window, candles, an order's cumulative fees, closed orders), so it is captured
exactly, at the seq of the engine snapshot it belongs to: the snapshotter's forked child
folds the commands still in flight into its copy of the read side, so that both stand at the
same seq, and pickles it. A restart then loads both and replays only the journal's tail, and
gets the read side a full replay would have built, byte for byte.

A checkpoint is pickled Python objects, so it is only ever read back by the code that wrote
it: its fingerprint hashes the source of every module whose classes it holds plus the
instrument table, and a checkpoint with another fingerprint is ignored (the service then
starts from an older snapshot, or replays the whole journal). Checkpoints are read only from
the service's own data folder, which holds its API secrets too.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import pickle
from typing import TYPE_CHECKING, Any

from perpx.core.instruments import InstrumentSpec

if TYPE_CHECKING:
    from perpx.service import ExchangeService

FORMAT = "perpx-read-side-2"  # 2: closed candles and funding rates in tables
# Every module whose objects a checkpoint holds (or whose folding logic shaped them).
_MODULES = (
    "perpx.readside", "perpx.store.records", "perpx.readmodels.klines",
    "perpx.readmodels.tickers", "perpx.readmodels.open_interest",
    "perpx.readmodels.funding_history", "perpx.readmodels.period", "perpx.api.ws.hub",
    # The tables hold what the checkpoint no longer does (closed candles, funding rates).
    "perpx.readmodels.candles", "perpx.store.history_sql",
    "perpx.api.ws.book", "perpx.api.ws.private", "perpx.api.ws.public", "perpx.core.events",
    "perpx.core.enums", "perpx.core.instruments",
)


class ReadSideError(ValueError):
    """A checkpoint that cannot be used (other code wrote it, or it does not load)."""


def fingerprint(specs: list[InstrumentSpec]) -> str:
    """Return the hash of the code and instruments a checkpoint is only valid for."""
    digest = hashlib.sha256(FORMAT.encode())
    for name in _MODULES:
        digest.update(inspect.getsource(importlib.import_module(name)).encode())
    digest.update(repr(sorted(specs, key=lambda spec: spec.symbol)).encode())
    return digest.hexdigest()


def _state(service: ExchangeService) -> dict[str, Any]:
    hub = service.hub
    return {
        "seq": service.read_seq,
        "projector": service.projector,
        "tickers": service.tickers, "klines": service.klines,
        "open_interest": service.open_interest, "funding": service.funding,
        "hub_mirrors": hub.mirrors, "hub_tickers": hub.tickers, "hub_klines": hub.klines,
        "hub_directions": hub.directions,
        "hub_seq": hub.seq, "hub_now_ms": hub.now_ms,
    }


def capture(service: ExchangeService) -> bytes:
    """Pickle the service's read side as it stands (at `service.read_seq`)."""
    # The history tables stay where they are: detach them from the models while pickling.
    models: tuple[Any, ...] = (service.projector, service.klines, service.funding)
    sinks = [model.sink for model in models]
    for model in models:
        model.sink = None
    try:
        return pickle.dumps(_state(service), protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        for model, sink in zip(models, sinks, strict=True):
            model.sink = sink


def restore(service: ExchangeService, body: bytes, seq: int) -> None:
    """Replace the service's read side with the checkpoint `body` taken at `seq`."""
    try:
        # Only our own data folder is read, written by this very code (see above).
        state = pickle.loads(body)
    except Exception as bad:
        raise ReadSideError(f"read side at {seq} does not load: {bad!r}") from bad
    if not isinstance(state, dict) or state.get("seq") != seq:
        raise ReadSideError(f"read side at {seq} holds another seq")
    service.read_seq = seq
    service.projector = state["projector"]
    service.projector.sink = None
    service.tickers = state["tickers"]
    service.klines = state["klines"]
    service.klines.sink = None
    service.open_interest = state["open_interest"]
    service.funding = state["funding"]
    service.funding.sink = None
    hub = service.hub
    hub.mirrors = state["hub_mirrors"]
    hub.tickers = state["hub_tickers"]
    hub.klines = state["hub_klines"]
    # The hub's private rows read the service's projector (one order projection for REST
    # and WebSocket): point it at the restored one.
    hub.projector = service.projector
    hub.private.projector = service.projector
    hub.directions = state["hub_directions"]
    hub.seq = state["hub_seq"]
    hub.now_ms = state["hub_now_ms"]

