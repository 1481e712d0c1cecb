"""Compare two read sides: their live objects one by one, and their checkpoint states."""

from __future__ import annotations

import dataclasses
from typing import Any

from perpx import readside
from perpx.service import ExchangeService

# Attributes that are wiring or scratch, not folded state: where the models hand rows (the
# history of one service, none in another) and the projector's result of its last call.
_NOT_STATE = frozenset({"sink", "_out"})


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
    elif dataclasses.is_dataclass(a):
        # Its compared fields only: one left out of `==` (compare=False) is derived from the
        # others, or a cache of such values (`InstrumentSpec.leverage_terms`), not state.
        for item in dataclasses.fields(a):
            if item.compare:
                differences(getattr(a, item.name), getattr(b, item.name),
                            f"{path}.{item.name}", out)
    elif hasattr(a, "__dict__"):
        differences({k: v for k, v in vars(a).items() if k not in _NOT_STATE},
                    {k: v for k, v in vars(b).items() if k not in _NOT_STATE}, path + ".", out)
    elif hasattr(a, "__slots__"):
        for name in a.__slots__:
            differences(getattr(a, name, None), getattr(b, name, None), f"{path}.{name}", out)
    elif a != b:
        out.append(f"{path}: {a!r:.80} != {b!r:.80}")
    return out


def live_read_side(service: ExchangeService) -> dict[str, Any]:
    """Return the objects of a service's read side (those a checkpoint holds)."""
    # The stream hub folds nothing (it is built on these by the API, after a restore), so
    # the book mirrors and tick directions it publishes are the service's `books`.
    return {
        "seq": service.read_seq, "projector": service.projector, "tickers": service.tickers,
        "klines": service.klines, "open_interest": service.open_interest,
        "funding": service.funding, "books": service.books,
    }


def read_side_differences(a: ExchangeService, b: ExchangeService) -> list[str]:
    """Return where the read sides of two services differ, as objects and as checkpoints."""
    found = differences(live_read_side(a), live_read_side(b))
    if readside.state(a) != readside.state(b):
        found.append("checkpoint states differ")
    return found
