"""Matching benchmark: `python benchmarks/bench_match.py [events]` (same as `perpx bench match`)."""

import sys

from perpx.bench.match import bench_match

if __name__ == "__main__":
    bench_match(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
