"""Print, as JSON, the event bytes one core emits on long seeded streams (issue #14, item 7).

Run as a script in a child process, so the parent can run it once on the compiled core and
once with ``PERPX_PURE=1`` on the pure one and compare. The fingerprints are
`perpx.bench.digest`'s (the behaviour digest's): the SHA-256 of every block of
`perpx.bench.digest.BLOCK` events' MessagePack bytes, so equal outputs mean equal bytes and
a difference names the block where the two cores first part, the whole digest and the final
state hash. Which core ran, and why, comes too.

    python tests/support/event_bytes.py [standard commands] [realistic commands] [seed]
"""

from __future__ import annotations

import json
import sys

import perpx.compiled
from perpx.bench.digest import realistic_digest, standard_digest


def main() -> None:
    """Run the standard and realistic streams and print what they emitted."""
    standard, realistic, seed = (int(arg) for arg in sys.argv[1:4])
    report = {
        "compiled": perpx.compiled.core_is_compiled(),
        "reason": perpx.compiled.REASON,
        "standard": standard_digest(standard, seed).as_dict(),
        "realistic": realistic_digest(realistic, seed).as_dict(),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
