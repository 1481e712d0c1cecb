"""Refuse deeply nested JSON before any recursive decoder sees it.

msgspec and `json` both recurse per nesting level and raise RecursionError (not a decode
error) on input like ``[[[[...``; no Bybit request nests more than three levels. The check
counts brackets outside strings with one regular expression, so it is linear and runs in C;
most bodies have fewer brackets than the limit and are not scanned at all.
"""

from __future__ import annotations

import re

MAX_DEPTH = 32
# A whole string literal (skipped, escapes included) or one bracket.
_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', re.DOTALL)
_OPEN = frozenset(b"[{")


def too_deep(raw: bytes | str, max_depth: int = MAX_DEPTH) -> bool:
    """Tell whether the JSON text `raw` nests arrays/objects deeper than `max_depth`."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return False
    depth = 0
    for token in _TOKENS.finditer(data):
        first = token.group()[0]
        if first in _OPEN:
            depth += 1
            if depth > max_depth:
                return True
        elif first != 0x22:  # a closing bracket (0x22 is the quote of a skipped string)
            depth -= 1
    return False
