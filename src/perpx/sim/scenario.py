"""Scenario files: a venue's population and run settings in TOML, checked field by field.

A scenario has a `[run]` table and one table per kind of agent, each optional:

    [run]            step_ms, seed, insurance_fund, check_every
    [[makers]]       count + `DepthMaker` settings (one table per kind of maker)
    [[arbitrageurs]] count + `Arbitrageur` settings
    [[signals]]      count + `SignalTrader` settings (style = "trend" or "revert")
    [retail]         count, leverage = [[lev, weight], ...], margin_modes, position_modes,
                     long_bias, short_bias + `NoiseTrader` settings

An agent's allowed fields are its constructor's keyword settings (so a setting has one
definition, in the agent), each of the default's type; anything else is refused with a
`ScenarioError` naming the table and the field. The bundled `default` scenario
(``perpx/sim/scenarios/default.toml``) documents every field with its value; `calm` (modest
leverage, a deeper book) and `crash` (a sparse book, 20x-100x retail without stops: the fund
pays for some takeovers) are variations of it.
"""

from __future__ import annotations

import inspect
import random
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from perpx.core.enums import MarginMode, PositionMode
from perpx.sim.agents import Agent, NoiseTrader
from perpx.sim.market import Arbitrageur, DepthMaker, SignalTrader, weighted_choice

BUNDLED = ("default", "calm", "crash")
MAKER_IDS, ARB_IDS, SIGNAL_IDS, RETAIL_IDS = 1, 20, 40, 100
_RUN_FIELDS: dict[str, type] = {"step_ms": int, "seed": int, "insurance_fund": str,
                                "check_every": int}
_RETAIL_OWN: dict[str, type] = {"count": int, "leverage": list, "margin_modes": list,
                                "position_modes": list, "long_bias": float,
                                "short_bias": float}
_NOT_SETTINGS = {"self", "account_id", "symbol", "seed"}
# Retail draws these per trader (a distribution, modes in turn, biases by thirds).
_RETAIL_DRAWN = {"leverage", "margin_mode", "position_mode", "long_bias"}
_LIST_TABLES: dict[str, type] = {"makers": DepthMaker, "arbitrageurs": Arbitrageur,
                                 "signals": SignalTrader}
_MARGIN = {"cross": MarginMode.CROSS, "isolated": MarginMode.ISOLATED,
           "portfolio": MarginMode.PORTFOLIO}
_POSITION = {"oneway": PositionMode.ONE_WAY, "hedge": PositionMode.HEDGE}


class ScenarioError(ValueError):
    """A scenario file that cannot be used, with the table and field at fault."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed scenario: run settings and agent tables, validated."""

    name: str
    step_ms: int = 60_000
    seed: int = 1
    insurance_fund: str = "10000"
    check_every: int = 1_000
    makers: list[dict[str, Any]] = field(default_factory=list)
    arbitrageurs: list[dict[str, Any]] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
    retail: dict[str, Any] = field(default_factory=dict)

    def agents(self, symbol: str, seed: int | None = None) -> list[Agent]:
        """Return the population on `symbol`, seeded from `seed` (default the scenario's)."""
        chooser = random.Random(self.seed if seed is None else seed)
        agents: list[Agent] = []
        next_id = MAKER_IDS
        for table in self.makers:
            settings = _without(table, "count")
            for _ in range(table.get("count", 1)):
                agents.append(DepthMaker(next_id, symbol, **settings))
                next_id += 1
        next_id = ARB_IDS
        for table in self.arbitrageurs:
            settings = _without(table, "count")
            for _ in range(table.get("count", 1)):
                agents.append(Arbitrageur(next_id, symbol, **settings))
                next_id += 1
        next_id = SIGNAL_IDS
        for table in self.signals:
            settings = _without(table, "count")
            for _ in range(table.get("count", 1)):
                agents.append(SignalTrader(next_id, symbol, seed=chooser.getrandbits(32),
                                           **settings))
                next_id += 1
        agents.extend(self.retail_traders(symbol, chooser))
        return agents

    def retail_traders(self, symbol: str, chooser: random.Random) -> list[NoiseTrader]:
        """Return the retail population: leverage drawn from its distribution, modes in turn."""
        table = self.retail
        if not table:
            return []
        weights = [(int(lev), float(w)) for lev, w in table.get("leverage", [[20, 1.0]])]
        margins = [_MARGIN[m] for m in table.get("margin_modes", ["cross", "isolated"])]
        positions = [_POSITION[p] for p in table.get("position_modes", ["oneway"])]
        settings = _without(table, *_RETAIL_OWN)
        traders = []
        for k in range(table.get("count", 0)):
            traders.append(NoiseTrader(
                RETAIL_IDS + k, symbol, seed=chooser.getrandbits(32),
                leverage=weighted_choice(chooser, weights),
                margin_mode=margins[k % len(margins)],
                position_mode=positions[(k // len(margins)) % len(positions)],
                long_bias=table.get("short_bias", 0.35) if k % 3 == 1
                else table.get("long_bias", 0.6), **settings))
        return traders


def _without(table: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in table.items() if k not in names}


def _settings_of(cls: type, drawn: set[str] | None = None) -> dict[str, type]:
    """Return an agent's keyword settings and their types, from its constructor's defaults."""
    fields: dict[str, type] = {}
    for name, param in inspect.signature(cls).parameters.items():
        if (name in _NOT_SETTINGS or name in (drawn or ())
                or param.default is inspect.Parameter.empty):
            continue
        fields[name] = type(param.default)
    return fields


def _check(table: Any, where: str, allowed: dict[str, type]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ScenarioError(f"{where}: a table, not {type(table).__name__}")
    for key, value in table.items():
        if key not in allowed:
            raise ScenarioError(f"{where}.{key}: unknown field (known: "
                                f"{', '.join(sorted(allowed))})")
        want = allowed[key]
        ok = ((isinstance(value, want) and not (want is int and isinstance(value, bool)))
              or (want is float and isinstance(value, int) and not isinstance(value, bool)))
        if not ok:
            raise ScenarioError(f"{where}.{key}: a {want.__name__}, not {value!r}")
    if table.get("count", 1) < 0:
        raise ScenarioError(f"{where}.count: at least 0")
    return dict(table)


def _check_list(doc: dict[str, Any], key: str, cls: type) -> list[dict[str, Any]]:
    tables = doc.get(key, [])
    if not isinstance(tables, list):
        raise ScenarioError(f"{key}: an array of tables ([[{key}]])")
    allowed = {"count": int, **_settings_of(cls)}
    return [_check(t, f"{key}[{i}]", allowed) for i, t in enumerate(tables)]


def _check_retail(table: Any) -> dict[str, Any]:
    if table is None:
        return {}
    checked = _check(table, "retail", {**_settings_of(NoiseTrader, _RETAIL_DRAWN), **_RETAIL_OWN})
    for pair in checked.get("leverage", []):
        if (not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], int)
                or not 1 <= pair[0] <= 100 or not isinstance(pair[1], int | float)
                or pair[1] < 0):
            raise ScenarioError(f"retail.leverage: [[leverage 1-100, weight >= 0], ...], "
                                f"not {pair!r}")
    for key, words in (("margin_modes", _MARGIN), ("position_modes", _POSITION)):
        for word in checked.get(key, []):
            if word not in words:
                raise ScenarioError(f"retail.{key}: use {', '.join(words)}, not {word!r}")
    return checked


def parse_scenario(text: str, name: str = "scenario") -> Scenario:
    """Return the scenario a TOML text describes, or raise `ScenarioError`."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as bad:
        raise ScenarioError(f"{name}: not TOML: {bad}") from None
    return scenario_from_doc(doc, name)


def field_type(table: str, name: str) -> type | None:
    """Return the type a scenario field takes (`run.insurance_fund` → str), None if unknown."""
    allowed: dict[str, type]
    if table == "run":
        allowed = _RUN_FIELDS
    elif table == "retail":
        allowed = {**_settings_of(NoiseTrader, _RETAIL_DRAWN), **_RETAIL_OWN}
    elif table in _LIST_TABLES:
        allowed = {"count": int, **_settings_of(_LIST_TABLES[table])}
    else:
        return None
    return allowed.get(name)


def scenario_from_doc(doc: dict[str, Any], name: str = "scenario") -> Scenario:
    """Return the scenario a parsed TOML document describes, or raise `ScenarioError`."""
    known = {"run", "makers", "arbitrageurs", "signals", "retail", "description"}
    for key in doc:
        if key not in known:
            raise ScenarioError(f"{key}: unknown table (known: {', '.join(sorted(known))})")
    run = _check(doc.get("run", {}), "run", _RUN_FIELDS)
    if run.get("step_ms", 60_000) <= 0:
        raise ScenarioError("run.step_ms: positive")
    scenario = Scenario(
        name, makers=_check_list(doc, "makers", DepthMaker),
        arbitrageurs=_check_list(doc, "arbitrageurs", Arbitrageur),
        signals=_check_list(doc, "signals", SignalTrader),
        retail=_check_retail(doc.get("retail")), **run)
    # Every amount and setting is checked now, table by table, not in the middle of a run.
    for key, cls, tables in (("makers", DepthMaker, scenario.makers),
                             ("arbitrageurs", Arbitrageur, scenario.arbitrageurs),
                             ("signals", SignalTrader, scenario.signals)):
        for i, table in enumerate(tables):
            try:
                extra: dict[str, Any] = {"seed": 0} if cls is SignalTrader else {}
                cls(1, "BTCUSDT", **extra, **_without(table, "count"))
            except (ValueError, TypeError) as bad:
                raise ScenarioError(f"{key}[{i}]: {bad}") from None
    try:
        scenario.retail_traders("BTCUSDT", random.Random(0))
    except (ValueError, TypeError) as bad:
        raise ScenarioError(f"retail: {bad}") from None
    return scenario


def scenario_text(name_or_path: str) -> tuple[str, str]:
    """Return a bundled scenario's (`BUNDLED`) or a TOML file's text and its name."""
    if name_or_path in BUNDLED:
        text = (resources.files("perpx.sim") / "scenarios" / f"{name_or_path}.toml").read_text()
        return text, name_or_path
    path = Path(name_or_path)
    if not path.is_file():
        raise ScenarioError(f"no scenario {name_or_path!r}: a file, or one of "
                            f"{', '.join(BUNDLED)}")
    return path.read_text(), path.stem


def load_scenario(name_or_path: str) -> Scenario:
    """Return a bundled scenario by name (`BUNDLED`) or the one in a TOML file."""
    text, name = scenario_text(name_or_path)
    return parse_scenario(text, name)
