"""The compiled core (issue #14, item 7): mypyc's build emits the pure core's bytes.

`setup.py` compiles the core with mypyc when it can (the default); `perpx.compiled` runs it
only while its sources are unchanged. When a compiled core is present, the standard and the
realistic streams (200,000 seeded commands each) run through it and, in another process with
``PERPX_PURE=1``, through the pure sources: the event bytes must be identical block by block,
not only the final state hash. This is where CI runs the pure core, the rest of the suite
running compiled. Without a compiled core these tests skip with the reason, except under
``PERPX_REQUIRE_COMPILED=1`` (`.ci/run` sets it), where they fail: a build that fell back to
pure, or a compiled core that does not load, cannot pass CI."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import inspect
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

import perpx.compiled
import perpx.core
from perpx.bench.digest import BLOCK

WORKER = Path(__file__).resolve().parents[1] / "support" / "event_bytes.py"
# 200,000 commands each: about 965,000 events on the standard stream and 429,000 on the
# realistic one (margin refusals, liquidations, funding); about 30 s of CPU for both cores.
STANDARD_COMMANDS, REALISTIC_COMMANDS, SEED = 200_000, 200_000, 42


def require_compiled() -> None:
    """Skip without a compiled core, or fail when CI requires one."""
    if perpx.compiled.COMPILED:
        return
    message = f"no compiled core: {perpx.compiled.REASON}"
    if os.environ.get("PERPX_REQUIRE_COMPILED") == "1":
        pytest.fail(f"{message} [PERPX_REQUIRE_COMPILED=1]")
    pytest.skip(message)


def core_modules() -> list[Any]:
    """Import and return every module of the core."""
    names = [info.name for info in pkgutil.walk_packages(perpx.core.__path__, "perpx.core.")]
    return [importlib.import_module(name) for name in names]


def start_worker(pure: bool) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop("PERPX_PURE", None)
    if pure:
        env["PERPX_PURE"] = "1"
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(STANDARD_COMMANDS), str(REALISTIC_COMMANDS), str(SEED)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def worker_report(worker: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = worker.communicate()
    assert worker.returncode == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def test_the_chosen_core_is_the_one_running() -> None:
    assert perpx.compiled.core_is_compiled() is perpx.compiled.COMPILED, perpx.compiled.REASON


def test_a_compiled_core_is_present_when_required() -> None:
    require_compiled()


def defines_struct(module: Any) -> bool:
    return any(inspect.isclass(value) and issubclass(value, msgspec.Struct)
               and value.__module__ == module.__name__ for value in vars(module).values())


def test_modules_defining_msgspec_structs_stay_pure_python() -> None:
    """mypyc drops Struct options (tag, frozen, gc): such modules are never compiled."""
    with_structs = [module for module in core_modules() if defines_struct(module)]
    assert {"perpx.core.events", "perpx.core.commands"} <= {m.__name__ for m in with_structs}
    for module in with_structs:
        assert str(module.__file__).endswith(".py"), module.__name__


def test_every_other_core_module_is_compiled() -> None:
    require_compiled()
    for module in core_modules():
        pure = hasattr(module, "__path__") or defines_struct(module)  # packages, Structs
        assert str(module.__file__).endswith(".py") is pure, module.__file__


def test_compiled_and_pure_cores_emit_identical_event_bytes() -> None:
    require_compiled()
    # Both at once (CI machines have two cores or more): the pure one takes the longer.
    compiled_worker, pure_worker = start_worker(pure=False), start_worker(pure=True)
    compiled, pure = worker_report(compiled_worker), worker_report(pure_worker)
    assert compiled["compiled"] is True, compiled["reason"]
    assert pure["compiled"] is False, pure["reason"]
    for stream in ("standard", "realistic"):
        ours, theirs = compiled[stream], pure[stream]
        assert ours["events"] == theirs["events"], stream
        assert ours["events"] > 400_000, stream  # a long stream, not a token one
        for index, (mine, reference) in enumerate(zip(ours["blocks"], theirs["blocks"],
                                                      strict=True)):
            assert mine == reference, f"{stream}: events {index * BLOCK}.. differ"
        assert ours["digest"] == theirs["digest"], stream
        assert ours["state_hash"] == theirs["state_hash"], stream


def fake_build(root: Path, source: str) -> Path:
    """A core of one module 'compiled' (an empty extension file) with its manifest."""
    core = root / "perpx" / "core"
    core.mkdir(parents=True)
    module = core / "engine.py"
    module.write_text(source, encoding="utf-8")
    module.with_suffix(importlib.machinery.EXTENSION_SUFFIXES[0]).write_bytes(b"")
    (core / "events.py").write_text("KIND = 1\n", encoding="utf-8")  # stays pure
    sources = {f"perpx/core/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
               for p in core.glob("*.py")}
    (core / perpx.compiled.MANIFEST).write_text(
        json.dumps({"compiled": ["perpx.core.engine"], "sources": sources}), encoding="utf-8")
    return core


def test_the_compiled_core_runs_only_while_it_matches_its_sources(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERPX_PURE", raising=False)
    core = fake_build(tmp_path, "ANSWER = 42\n")
    monkeypatch.setattr(perpx.compiled, "CORE_DIR", core)
    assert perpx.compiled._compiled_core_problem() is None

    monkeypatch.setenv("PERPX_PURE", "1")
    assert perpx.compiled._compiled_core_problem() == "PERPX_PURE is set"
    monkeypatch.delenv("PERPX_PURE")

    (core / "engine.py").write_text("ANSWER = 43\n", encoding="utf-8")  # edited after the build
    assert "perpx/core/engine.py changed since the core was compiled" in str(
        perpx.compiled._compiled_core_problem())
    (core / "engine.py").write_text("ANSWER = 42\n", encoding="utf-8")

    (core / "events.py").write_text("KIND = 2\n", encoding="utf-8")  # a pure module, too
    assert "perpx/core/events.py changed" in str(perpx.compiled._compiled_core_problem())
    (core / "events.py").write_text("KIND = 1\n", encoding="utf-8")
    assert perpx.compiled._compiled_core_problem() is None

    (core / f"engine{importlib.machinery.EXTENSION_SUFFIXES[0]}").unlink()  # extension gone
    assert perpx.compiled._compiled_core_problem() == "perpx.core.engine has no compiled extension"

    (core / perpx.compiled.MANIFEST).unlink()
    assert perpx.compiled._compiled_core_problem() == (
        "the core was not compiled at install; `pip install -v` says why")
