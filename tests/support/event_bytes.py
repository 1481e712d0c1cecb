"""Print, as JSON, the event bytes one core emits on long seeded streams (issue #14, item 7).

Run as a script in a child process, so the parent can run it once on the compiled core and
once with ``PERPX_PURE=1`` on the pure one and compare: every event's MessagePack bytes go
into SHA-256 blocks of `BLOCK` events, so equal outputs mean equal bytes, and a difference
names the block where the two cores first part. The final state hash comes too.

    python tests/support/event_bytes.py [standard commands] [realistic commands] [seed]
"""

from __future__ import annotations

import hashlib
import json
import sys

import msgspec

import perpx.compiled
from perpx.bench.match import funded_engine, perpx_commands
from perpx.bench.realistic import realistic_stream
from perpx.bench.stream import standard_stream
from perpx.core import Command, Engine

BLOCK = 1000


def event_blocks(engine: Engine, commands: list[Command]) -> dict[str, object]:
    """Apply `commands`; return the SHA-256 of each block of event bytes and the state hash."""
    encoder = msgspec.msgpack.Encoder()
    blocks: list[str] = []
    sha = hashlib.sha256()
    count = 0
    for command in commands:
        for event in engine.apply(command):
            sha.update(encoder.encode(event))
            count += 1
            if count % BLOCK == 0:
                blocks.append(sha.hexdigest())
                sha = hashlib.sha256()
    blocks.append(sha.hexdigest())
    return {"events": count, "blocks": blocks, "state_hash": engine.state_hash()}


def main() -> None:
    """Run the standard and realistic streams and print what they emitted."""
    standard, realistic, seed = (int(arg) for arg in sys.argv[1:4])
    stream = realistic_stream(realistic, seed=seed)
    report = {
        "compiled": perpx.compiled.core_is_compiled(),
        "reason": perpx.compiled.REASON,
        "standard": event_blocks(funded_engine(),
                                 perpx_commands(standard_stream(standard, seed=seed))),
        "realistic": event_blocks(stream.engine(), stream.commands),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
