"""Dependencies run one way (issue #15, item 6): no import circle, and no role imports upward.

The imports are read from the source with `ast`, nothing is imported. Every import counts:
at module level, inside functions (a lazy import still ties the two modules), and under
`if TYPE_CHECKING:` (a circle of types is still a circle of meaning, so none is exempt).
`from pkg import name` is an arrow to `pkg.name` when that is a module of perpx, else to
`pkg`; importing `a.b.c` is not counted as importing the packages `a` and `a.b` as well.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src"
PACKAGE = "perpx"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted((SRC / PACKAGE).rglob("*.py"))}


MODULES = _modules()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Yield (imported perpx module, line) for every import in `path`."""
    is_package = path.name == "__init__.py"
    here = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _within(alias.name, PACKAGE):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = here.split(".")
                base_parts = parts[:len(parts) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not _within(base, PACKAGE):
                continue
            for alias in node.names:
                target = f"{base}.{alias.name}"
                yield (target if target in MODULES else base), node.lineno


def _graph() -> dict[str, dict[str, int]]:
    """Return module -> {imported module: first line}, perpx modules only."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        arrows = graph.setdefault(module, {})
        for target, line in _imports(module, path):
            if target != module and target in MODULES:
                arrows.setdefault(target, line)
    return graph


GRAPH = _graph()


def _circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Return the strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        # Iterative, so a deep chain of imports cannot exhaust the recursion limit.
        work: list[tuple[str, Iterator[str]]] = []

        def enter(node: str) -> None:
            nonlocal counter
            index[node] = low[node] = counter
            counter += 1
            stack.append(node)
            on_stack.add(node)
            work.append((node, iter(sorted(graph[node]))))

        enter(start)
        while work:
            node, targets = work[-1]
            advanced = False
            for target in targets:
                if target not in index:
                    enter(target)
                    advanced = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _describe(circle: list[str]) -> str:
    members = set(circle)
    ties = [f"{a} -> {b} (line {line})" for a in circle
            for b, line in sorted(GRAPH[a].items()) if b in members]
    return "; ".join(ties)


def test_the_reader_sees_the_imports() -> None:
    # Guard against a reader that finds nothing and so passes everything.
    assert "perpx.store.recovery" in GRAPH["perpx.service"]
    assert "perpx.bybit.translate" in GRAPH["perpx.exchange"]
    assert "perpx.core.engine" in GRAPH["perpx.sequencer"]
    assert "perpx.store.postgres" in GRAPH["perpx.store.snapshots"]  # from pkg import module
    assert "perpx.store.sqlite" in GRAPH["perpx.store"]  # lazy, inside a function
    assert "perpx.bus.consumer" in GRAPH["perpx.roles.projector"]
    assert "perpx.store.codec" in GRAPH["perpx.transport.wire"]
    assert _circles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [
        ["a", "b", "c"]]


def test_no_import_circle() -> None:
    circles = _circles(GRAPH)
    assert not circles, "import circles:\n" + "\n".join(_describe(c) for c in circles)


# (importer, what it must not import, why). Each rule holds for every module under the
# importer's name; what lies under the importer's own name is never an offence (the core
# imports the core).
FORBIDDEN = [
    ("perpx.core", "perpx", "the core is pure: it imports nothing of perpx outside itself"),
    ("perpx.store", "perpx.api", "the journal and tables serve every role, the API included"),
    ("perpx.store", "perpx.service", "the store is below the service that composes it"),
    ("perpx.store", "perpx.sequencer", "the writer drives the store, not the other way"),
    ("perpx.store", "perpx.readside", "the checkpoint format is the service's, above"),
    ("perpx.readmodels", "perpx.store", "projectors depend on events (rows: perpx.rows)"),
    ("perpx.readmodels", "perpx.api", "projectors depend on events"),
    ("perpx.readmodels", "perpx.service", "projectors depend on events"),
    ("perpx.rows", "perpx", "plain rows shared by read models and tables"),
    ("perpx.bybit", "perpx.api", "Bybit's words lie below the gateways that use them"),
    ("perpx.bybit", "perpx.service", "the translator builds commands, it submits none"),
    ("perpx.service", "perpx.api", "the service publishes to listeners; the API listens"),
    ("perpx.readside", "perpx.api", "the read side's state is folded below the API"),
    ("perpx.readside", "perpx.service", "the read side takes its owner as a protocol"),
    ("perpx.sequencer", "perpx.api", "the writer knows commands, not gateways"),
    ("perpx.sequencer", "perpx.service", "the writer is below the service"),
    ("perpx.bus", "perpx.api", "the bus carries events between roles, it knows no gateway"),
    ("perpx.bus", "perpx.service", "the service hands the bus its events, not the reverse"),
    ("perpx.bus", "perpx.sequencer", "the publisher is a sequencer subscriber by signature"),
    ("perpx.bus", "perpx.readside", "projections consume the bus from above it"),
    ("perpx.store", "perpx.bus", "the bus republishes from the store, below it"),
    ("perpx.standby", "perpx.api", "the standby follows the journal; the CLI serves after"),
    ("perpx.standby", "perpx.service", "the standby hands a writer journal up, not down"),
    ("perpx.store", "perpx.standby", "the standby waits on the store's writer lock"),
    ("perpx.roles", "perpx.api", "a role process imports no gateway (issue #15)"),
    ("perpx.roles", "perpx.service", "a projector folds events, it runs no exchange"),
    ("perpx.roles", "perpx.sequencer", "a projector follows the bus, never the writer"),
    ("perpx.transport", "perpx.api", "gateways stand on the command path, not under it"),
    ("perpx.transport", "perpx.service", "the endpoint takes the service's submit as a call"),
    ("perpx.transport", "perpx.sequencer", "the endpoint submits through the service"),
    ("perpx.transport", "perpx.readside", "the command path carries commands and events"),
    ("perpx.service", "perpx.transport", "the CLI opens the endpoint over the service"),
    ("perpx.store", "perpx.transport", "the transport borrows the journal's encoding"),
    ("perpx.bus", "perpx.transport", "the transport borrows the bus's encoding"),
    ("perpx.sequencer", "perpx.transport", "the writer knows commands, not transports"),
]

# Who may import perpx.api from outside it: the entries that wire the server together.
API_ENTRIES = (
    "perpx.cli",  # `perpx serve`, `perpx keys`: builds the app over the service
    "perpx.config",  # the serve settings hold the API's limits (`Limits`, `AuthLimits`)
    "perpx.bench",  # `perpx bench api|ws` load the real server
)


@pytest.mark.parametrize(("importer", "imported", "why"), FORBIDDEN,
                         ids=[f"{a}-/->{b}" for a, b, _ in FORBIDDEN])
def test_layers(importer: str, imported: str, why: str) -> None:
    offences = [f"{module} -> {target} (line {line})"
                for module, arrows in GRAPH.items() if _within(module, importer)
                for target, line in arrows.items()
                if _within(target, imported) and not _within(target, importer)]
    assert not offences, f"{why}:\n" + "\n".join(offences)


def test_only_the_entries_import_the_api() -> None:
    offences = [f"{module} -> {target} (line {line})"
                for module, arrows in GRAPH.items()
                if not _within(module, "perpx.api")
                and not any(_within(module, entry) for entry in API_ENTRIES)
                for target, line in arrows.items() if _within(target, "perpx.api")]
    assert not offences, "no role imports the API:\n" + "\n".join(offences)
