"""Behaviour digest: a fingerprint of every event the engine emits on seeded streams.

A refactor of the core must not change behaviour. This script runs the benchmark streams
(the standard one and the realistic one, which refuses orders for margin, liquidates and
settles funding) through a fresh engine and hashes the MessagePack bytes of every event it
returns, then the final state hash. Two checkouts that print the same digests emitted the
same events, byte for byte, on those streams.

    python benchmarks/behaviour_digest.py            # standard 50k, realistic 20k
    python benchmarks/behaviour_digest.py --standard 10000 --realistic 5000 --seeds 7 8
"""

from __future__ import annotations

import argparse
import hashlib
import json

import msgspec

from perpx.bench.match import funded_engine, perpx_commands
from perpx.bench.realistic import realistic_stream
from perpx.bench.stream import standard_stream
from perpx.core import Command, Engine


def digest(engine: Engine, commands: list[Command]) -> tuple[str, int]:
    """Apply `commands`; return a sha256 over every event's bytes and the final state hash."""
    encoder = msgspec.msgpack.Encoder()
    sha = hashlib.sha256()
    count = 0
    for command in commands:
        for event in engine.apply(command):
            sha.update(encoder.encode(event))
            count += 1
    sha.update(engine.state_hash().encode())
    return sha.hexdigest()[:16], count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--standard", type=int, default=50_000)
    parser.add_argument("--realistic", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="*", default=[42])
    args = parser.parse_args()
    result: dict[str, dict[str, object]] = {}
    for seed in args.seeds:
        if args.standard:
            commands = perpx_commands(standard_stream(args.standard, seed=seed))
            sha, count = digest(funded_engine(), commands)
            result[f"standard seed {seed}"] = {"digest": sha, "events": count}
        if args.realistic:
            stream = realistic_stream(args.realistic, seed=seed)
            sha, count = digest(stream.engine(), stream.commands)
            result[f"realistic seed {seed}"] = {"digest": sha, "events": count}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
