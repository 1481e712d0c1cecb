"""Compare two read sides object by object (pickled bytes differ with sharing and interning)."""

from __future__ import annotations

import pickle
from typing import Any

from perpx import readside
from perpx.service import ExchangeService


def differences(a: Any, b: Any, path: str = "", found: list[str] | None = None) -> list[str]:
    """Return where two object graphs differ (empty when they are equal)."""
    out = [] if found is None else found
    if type(a) is not type(b):
        out.append(f"{path}: {type(a).__name__} != {type(b).__name__}")
    elif isinstance(a, dict):
        if list(a) != list(b):
            odd = sorted(set(a) ^ set(b), key=repr)[:5]
            out.append(f"{path}: keys {odd or 'in another order'}")
        for key in a:
            if key in b:
                differences(a[key], b[key], f"{path}[{key!r}]", out)
    elif isinstance(a, (list, tuple)) or type(a).__name__ == "deque":
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            differences(x, y, f"{path}[{i}]", out)
    elif hasattr(a, "__struct_fields__") or isinstance(a, (int, str, float, bytes, set,
                                                           frozenset)) or a is None:
        if a != b:
            out.append(f"{path}: {a!r:.80} != {b!r:.80}")
    elif hasattr(a, "__dict__"):
        differences(vars(a), vars(b), path + ".", out)
    elif hasattr(a, "__slots__"):
        for name in a.__slots__:
            differences(getattr(a, name, None), getattr(b, name, None), f"{path}.{name}", out)
    elif a != b:
        out.append(f"{path}: {a!r:.80} != {b!r:.80}")
    return out


def read_side_differences(a: ExchangeService, b: ExchangeService) -> list[str]:
    """Return where the read sides of two services differ."""
    return differences(pickle.loads(readside.capture(a)), pickle.loads(readside.capture(b)))
