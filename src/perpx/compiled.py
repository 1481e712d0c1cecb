"""Which core runs: the one mypyc compiled at install, or the pure-Python sources (#14 item 7).

`setup.py` compiles the core's modules when it can and records the SHA-256 of every compiled
source in ``perpx/core/_compiled.json``. Python would import an extension before the source
beside it, so `choose_core` (run by ``perpx/__init__`` before anything imports the core) puts
the sources first whenever the compiled core must not run:

- ``PERPX_PURE=1`` asks for the pure core (the equality test runs both side by side);
- there is no manifest (never compiled, or compilation failed and fell back);
- a compiled module is missing, or any source of the core changed since the build (an edited
  checkout runs what it reads, never a stale extension; reinstall to compile again).

`COMPILED` then tells which core this process runs, and `REASON` why.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

CORE_PACKAGE = "perpx.core"
MANIFEST = "_compiled.json"
CORE_DIR = Path(__file__).resolve().parent / "core"

COMPILED = False
REASON = "not chosen yet"


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Find the core's modules as Python sources only, passing over compiled extensions."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if not fullname.startswith(CORE_PACKAGE + ".") or path is None:
            return None
        loaders = [(importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)]
        for entry in path:
            spec = importlib.machinery.FileFinder(entry, *loaders).find_spec(fullname)
            if spec is not None:
                return spec
        return None


def _compiled_core_problem() -> str | None:
    """Return why the compiled core cannot run here, or None when it can."""
    if os.environ.get("PERPX_PURE", "").strip() not in ("", "0"):
        return "PERPX_PURE is set"
    try:
        manifest = json.loads((CORE_DIR / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "the core was not compiled at install; `pip install -v` says why"
    except ValueError as bad:
        return f"unreadable {MANIFEST}: {bad}"
    compiled: list[str] = manifest.get("compiled", [])
    sources: dict[str, str] = manifest.get("sources", {})
    if not compiled or not sources:
        return f"{MANIFEST} lists no compiled module or no source"
    root = CORE_DIR.parent.parent
    for name in compiled:
        stem = root.joinpath(*name.split("."))
        if not any(stem.with_name(stem.name + suffix).exists()
                   for suffix in importlib.machinery.EXTENSION_SUFFIXES):
            return f"{name} has no compiled extension"
    for relative, sha256 in sorted(sources.items()):
        try:
            if hashlib.sha256((root / relative).read_bytes()).hexdigest() != sha256:
                return f"{relative} changed since the core was compiled (reinstall to compile)"
        except FileNotFoundError:
            return f"{relative} is gone since the core was compiled"
    return None


def choose_core() -> None:
    """Decide, once and before the core is imported, whether its compiled build runs."""
    global COMPILED, REASON
    if any(name.startswith(CORE_PACKAGE + ".") for name in sys.modules):
        return  # already imported: too late to choose, and `COMPILED` was set then
    problem = _compiled_core_problem()
    if problem is None:
        COMPILED, REASON = True, "built at install, sources unchanged since"
        return
    COMPILED, REASON = False, problem
    if not any(isinstance(finder, _SourcesFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourcesFirst())


def core_is_compiled() -> bool:
    """Tell whether the core's engine in this process is a compiled extension."""
    engine = sys.modules.get(CORE_PACKAGE + ".engine")
    origin = getattr(engine, "__file__", "") or ""
    return not origin.endswith(".py")
