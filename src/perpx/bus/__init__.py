"""The event bus: the writer's durable event batches, carried to projections (issue #15).

The writer publishes each durable batch of events (`BusPublisher`, a sequencer subscriber
that never blocks it); consumers `subscribe(from_seq)` from the position they keep
themselves and get every batch from there, in journal-seq order, or a `GapError`. Two buses
share the `EventBus` interface: `JetStreamBus` (NATS JetStream, one stream per venue) for
projections in other processes, and `InProcessBus` for one process without NATS.
"""

from __future__ import annotations

from perpx.bus.base import BusError, EventBus, GapError, InOrder
from perpx.bus.codec import BatchCodec, Durable, EventBatch
from perpx.bus.consumer import Projection, follow
from perpx.bus.jetstream import JetStreamBus
from perpx.bus.memory import InProcessBus
from perpx.bus.publisher import BusPublisher, catch_up, republish
from perpx.bus.replay import EventSource, journal_source

__all__ = [
    "BatchCodec",
    "BusError",
    "BusPublisher",
    "Durable",
    "EventBatch",
    "EventBus",
    "EventSource",
    "GapError",
    "InOrder",
    "InProcessBus",
    "JetStreamBus",
    "Projection",
    "catch_up",
    "follow",
    "journal_source",
    "open_bus",
    "republish",
]


def open_bus(location: str, stream: str = "PERPX_EVENTS") -> EventBus | None:
    """Return the bus `location` names: "" none, "memory" in-process, nats://... JetStream."""
    if not location or location == "none":
        return None
    if location == "memory":
        # Nothing in this process reads it yet: keep a modest window (~100k commands).
        return InProcessBus(keep_commands=100_000)
    if location.startswith(("nats://", "tls://")):
        return JetStreamBus(location, stream)
    raise ValueError(f"unknown bus {location!r}: use '', 'memory' or nats://HOST:PORT")
