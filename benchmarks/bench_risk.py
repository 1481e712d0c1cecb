"""Risk-sweep benchmark: `python benchmarks/bench_risk.py [accounts]` (as `perpx bench risk`)."""

import sys

from perpx.bench.risk import bench_risk

if __name__ == "__main__":
    bench_risk(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
