"""Build perpx, compiling the core with mypyc when it can (issue #14, item 7).

The pure-Python package is always installed: every module's source goes into the package. On
top of it the core's modules are compiled to C extensions when mypyc is importable and a C
compiler works; if anything in that fails the build says why and installs pure Python, never
fails. Compiling is the default; ``PERPX_COMPILE=0`` at install skips it (``PERPX_PURE=1`` at run
time runs the pure sources of a compiled install).

Compiled: every module of ``src/perpx/core`` except the packages' ``__init__`` and any module
that defines a msgspec ``Struct`` — mypyc drops Struct options such as ``tag``, ``frozen`` and
``gc`` (a trial broke journal decoding), so those stay pure Python.

After a successful build, ``_compiled.json`` beside the core lists the compiled modules and
the SHA-256 of every source of the core; `perpx.compiled` runs the compiled core only while
every source still matches, so an edited core never runs as its stale compiled self.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
CORE = SRC / "perpx" / "core"
MANIFEST = "_compiled.json"  # beside the core's sources; read by perpx.compiled
GROUP = "perpx_core"  # mypyc's shared library: perpx_core__mypyc.<abi>.so, top level
MYPY_CONFIG = """[mypy]
python_version = 3.11
mypy_path = src
strict = True

# The core imports nothing else of perpx; its parent package, which imports everything, is
# skipped, so the build needs none of the service's dependencies.
[mypy-perpx]
follow_imports = skip

[mypy-sortedcontainers.*]
ignore_missing_imports = True
"""
BUILD_COMMANDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


def say(message: str) -> None:
    """Print a build message where pip shows it (stderr; `pip -v` shows all of it)."""
    print(f"perpx build: {message}", file=sys.stderr)


def defines_struct(source: str) -> bool:
    """Tell whether a module defines a class based on msgspec's ``Struct``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
                if name == "Struct":
                    return True
    return False


def core_modules() -> list[Path]:
    """Return the core's modules to compile, sorted."""
    chosen = []
    for path in sorted(CORE.rglob("*.py")):
        if path.name == "__init__.py" or defines_struct(path.read_text(encoding="utf-8")):
            continue
        chosen.append(path)
    return chosen


def module_name(path: Path) -> str:
    """Return the dotted name of a module under ``src``."""
    return ".".join(path.relative_to(SRC).with_suffix("").parts)


def compile_wanted() -> bool:
    """Tell whether to try compiling: yes unless PERPX_COMPILE=0 (or false/no/off) says no."""
    if os.environ.get("PERPX_COMPILE", "1").strip().lower() in ("0", "false", "no", "off"):
        say("PERPX_COMPILE=0: installing the pure-Python core")
        return False
    return True


def compiler_problem() -> str | None:
    """Return why no C extension can be built here, or None when a test one compiles.

    Checked before mypyc runs, because mypyc's type check and C generation take most of a
    minute that a machine without a compiler (or without Python's headers) would waste.
    """
    import tempfile

    try:
        from distutils.ccompiler import new_compiler  # setuptools' copy (imported above)
        from distutils.sysconfig import customize_compiler, get_python_inc

        compiler = new_compiler()
        customize_compiler(compiler)  # CC, CFLAGS and Python's own flags, as build_ext does
        with tempfile.TemporaryDirectory() as folder:
            probe = Path(folder) / "probe.c"
            probe.write_text("#include <Python.h>\nint perpx_probe(void) { return 0; }\n",
                             encoding="utf-8")
            compiler.compile([str(probe)], output_dir=folder, include_dirs=[get_python_inc()])
    except Exception as failure:  # any failure at all means no compiled core, never no install
        return f"no working C compiler with Python's headers ({failure!r})"
    return None


def compiled_extensions(modules: list[Path]) -> list[Any]:
    """Return mypyc's extensions for `modules`, or none when mypyc cannot make them."""
    try:
        from mypyc.build import mypycify
    except ImportError as missing:
        say(f"mypyc is not available ({missing}); installing the pure-Python core")
        return []
    here = Path.cwd()
    os.chdir(HERE)  # mypyc writes its C sources into build/ from here
    try:
        # Its own mypy settings: pyproject's [tool.mypy] checks the whole package, which would
        # need every dependency in the build environment; the core needs msgspec only.
        config = HERE / "build" / "mypyc-core.ini"
        config.parent.mkdir(exist_ok=True)
        config.write_text(MYPY_CONFIG, encoding="utf-8")
        options = ["--config-file", str(config)]
        return list(mypycify([str(p.relative_to(HERE)) for p in modules] + options,
                             opt_level="3", group_name=GROUP))
    except (Exception, SystemExit) as failure:  # a type error exits; either way, pure
        say(f"mypyc could not compile the core ({failure!r}); installing the pure-Python core")
        return []
    finally:
        os.chdir(here)


class OptionalBuildExt(build_ext):
    """Build the compiled core if mypyc and a C compiler manage it; otherwise leave pure Python.

    On success it writes the manifest of the compiled sources; on failure it removes any
    extension it built, so the compiled core is whole or absent.
    """

    compiled: list[Path] = []

    def run(self) -> None:
        """Build the extensions; on any failure remove what was built and carry on."""
        if self.inplace:  # an earlier build's manifest must not vouch for this one's output
            (CORE / MANIFEST).unlink(missing_ok=True)
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as failure:  # a missing or failing compiler: pure Python instead
            say(f"compiling the core failed ({failure!r}); installing the pure-Python core")
            self._remove_built()
            return
        self._write_manifest()
        say(f"compiled {len(self.compiled)} core modules with mypyc")

    def _remove_built(self) -> None:
        for output in self.get_outputs():
            Path(output).unlink(missing_ok=True)
        self.extensions = []

    def _write_manifest(self) -> None:
        # Every source of the core, compiled or not: the compiled modules were type-checked
        # and built against the others, so a change to any of them retires the build.
        record = {
            "compiled": [module_name(p) for p in self.compiled],
            "sources": {p.relative_to(SRC).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted(CORE.rglob("*.py"))},
        }
        text = json.dumps(record, indent=1, sort_keys=True) + "\n"
        # Beside the extensions: in the sources when built in place (an editable install),
        # else in the tree that becomes the wheel.
        root = SRC if self.inplace else Path(self.build_lib)
        target = root / "perpx" / "core" / MANIFEST
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def main() -> None:
    """Run setuptools, with mypyc's extensions when building and compiling is wanted."""
    wanted = compile_wanted()
    # mypyc type-checks for a while: only when something is built, not each time setuptools
    # reads the project for its metadata or build requirements (`egg_info`, `dist_info`).
    building = any(command in BUILD_COMMANDS for command in sys.argv[1:])
    problem = compiler_problem() if wanted and building else None
    if problem is not None:
        say(f"{problem}; installing the pure-Python core")
    modules = core_modules() if wanted and building and problem is None else []
    extensions = compiled_extensions(modules) if modules else []
    if not wanted or (building and not extensions):
        # Extensions an earlier editable install left in the sources stay unused: this
        # install is pure, and its core must be what `perpx.compiled` reports.
        (CORE / MANIFEST).unlink(missing_ok=True)
    OptionalBuildExt.compiled = modules if extensions else []
    setup(ext_modules=extensions, cmdclass={"build_ext": OptionalBuildExt})


main()
