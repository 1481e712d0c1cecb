"""Fingerprints of the events the engine emits on the seeded benchmark streams.

One definition for both users: `benchmarks/behaviour_digest.py` prints the digests that pin
the core's behaviour across refactors (a SHA-256 over every event's MessagePack bytes, then
the final state hash, shortened to 16 hex digits), and the compiled-core test
(`tests/unit/test_compiled_core.py`, through `tests/support/event_bytes.py`) compares the
compiled and pure cores block by block, so a difference names the block of events where the
two first part. One pass over the stream gives both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import msgspec

from perpx.bench.match import funded_engine, perpx_commands
from perpx.bench.realistic import realistic_stream
from perpx.bench.stream import standard_stream
from perpx.core import Command, Engine

BLOCK = 1000  # events per block hash


@dataclass
class EventDigest:
    """What one run emitted: its event count, digests and final state hash."""

    events: int
    digest: str  # SHA-256 over every event's bytes then the state hash, 16 hex digits
    state_hash: str
    blocks: list[str] = field(default_factory=list)  # SHA-256 of each `BLOCK` events' bytes

    def as_dict(self) -> dict[str, object]:
        """Return the figures as plain JSON values."""
        return {"events": self.events, "digest": self.digest, "state_hash": self.state_hash,
                "blocks": self.blocks}


def digest_events(engine: Engine, commands: list[Command], block: int = BLOCK) -> EventDigest:
    """Apply `commands` to `engine` and fingerprint every event it returns, in order."""
    encoder = msgspec.msgpack.Encoder()
    whole = hashlib.sha256()
    part = hashlib.sha256()
    blocks: list[str] = []
    count = 0
    for command in commands:
        for event in engine.apply(command):
            data = encoder.encode(event)
            whole.update(data)
            part.update(data)
            count += 1
            if count % block == 0:
                blocks.append(part.hexdigest())
                part = hashlib.sha256()
    blocks.append(part.hexdigest())  # the tail (empty when the count is a multiple of block)
    state_hash = engine.state_hash()
    whole.update(state_hash.encode())
    return EventDigest(count, whole.hexdigest()[:16], state_hash, blocks)


def standard_digest(commands: int, seed: int, block: int = BLOCK) -> EventDigest:
    """Fingerprint the standard stream of `commands` commands on the funded benchmark engine."""
    return digest_events(funded_engine(), perpx_commands(standard_stream(commands, seed=seed)),
                         block)


def realistic_digest(commands: int, seed: int, block: int = BLOCK) -> EventDigest:
    """Fingerprint the realistic stream (margin refusals, liquidations, funding)."""
    stream = realistic_stream(commands, seed=seed)
    return digest_events(stream.engine(), stream.commands, block)
