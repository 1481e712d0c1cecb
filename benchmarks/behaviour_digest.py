"""Behaviour digest: a fingerprint of every event the engine emits on seeded streams.

A refactor of the core must not change behaviour. This script runs the benchmark streams
(the standard one and the realistic one, which refuses orders for margin, liquidates and
settles funding) through a fresh engine and hashes the MessagePack bytes of every event it
returns, then the final state hash. Two checkouts that print the same digests emitted the
same events, byte for byte, on those streams. The fingerprint is `perpx.bench.digest`'s, the
one the compiled-core test compares too.

    python benchmarks/behaviour_digest.py            # standard 50k, realistic 20k
    python benchmarks/behaviour_digest.py --standard 10000 --realistic 5000 --seeds 7 8
"""

from __future__ import annotations

import argparse
import json

from perpx.bench.digest import realistic_digest, standard_digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--standard", type=int, default=50_000)
    parser.add_argument("--realistic", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="*", default=[42])
    args = parser.parse_args()
    result: dict[str, dict[str, object]] = {}
    for seed in args.seeds:
        if args.standard:
            run = standard_digest(args.standard, seed)
            result[f"standard seed {seed}"] = {"digest": run.digest, "events": run.events}
        if args.realistic:
            run = realistic_digest(args.realistic, seed)
            result[f"realistic seed {seed}"] = {"digest": run.digest, "events": run.events}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
