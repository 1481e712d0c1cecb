"""The operator's configuration file (TOML): one table per section, one key per field.

A section is a frozen dataclass; `Config` holds one field per section, named as its table::

    [serve]
    production = true
    host = "0.0.0.0"
    port = 8080

    [limits]                    # perpx.api.limits.Limits
    max_body_bytes = 1048576
    max_connections_per_address = 500

    [auth]                      # perpx.api.auth.AuthLimits
    max_recv_window_ms = 60000

    [collateral]                # perpx.venue_config: the venue's collateral table
    [portfolio_margin]          # and its portfolio-margin parameters (issue #17)

A new section is one line in `Config` (``limits: Limits = field(default_factory=Limits)``):
its keys map onto the dataclass's fields by name and are checked against the fields' types.
An unknown table or key is an error naming the file, the table and the known keys, so a
mistyped setting never passes silently (a misspelt ``prodution = true`` would otherwise
leave a production server handing out demo money).

Command-line options given explicitly win over the file (see `perpx serve`).

`[collateral]` and `[portfolio_margin]` are not flat sections but the venue's parameters
(coins, tiers, grids): `perpx.venue_config` converts and checks them here, at load, into
the record a journaled `SetVenueParams` carries (`Config.venue_params`).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from perpx.api.auth import AuthLimits
from perpx.api.limits import Limits
from perpx.venue_config import VenueConfigError, collateral_from_toml, pm_params_from_toml

# The venue's parameters: tables read by `perpx.venue_config`, not flat sections.
VENUE_TABLES: Final = ["collateral", "portfolio_margin"]


class ConfigError(ValueError):
    """The configuration file is missing, not TOML, or holds an unknown or ill-typed key."""


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """`perpx serve`: where it listens, where it keeps its data, and demo or production."""

    host: str = "127.0.0.1"
    port: int = 8080
    data: Path = Path("perpx-data")
    journal: str | None = None  # postgresql://...?schema=NAME or a SQLite path
    replay: Path | None = None
    replay_symbol: str = "BTCUSDT"
    maker: bool = True
    snapshot_every: int = 100_000
    snapshot_seconds: float = 600.0
    snapshot_keep: int = 3
    # Production: no auto-created demo key, no demo funds on keys, no demo-apply-money.
    production: bool = False
    # The event bus each durable batch of events is published on (issue #15): "" none (the
    # default: projections run in process as before), "memory", or nats://HOST:PORT with
    # `bus_stream` the venue's JetStream stream.
    bus: str = ""
    bus_stream: str = "PERPX_EVENTS"
    # Which part of the venue this process runs (issue #15): "all" (the default: the whole
    # exchange in one process), "projector" (history tables folded from `bus` into
    # `history`, a SQLite file or postgresql://...?schema=NAME of its own), "standby", or
    # "gateway" (the API only, commands to the writer at `command_socket`).
    role: str = "all"
    history: str | None = None
    # The command endpoint for API gateways in other processes (issue #15, item 4; default
    # off): a Unix socket path and/or a NATS URL (subject `perpx.<bus_stream>.commands`).
    command_socket: Path | None = None
    command_nats: str = ""
    # API gateway processes the writer starts on `port` (SO_REUSEPORT); 0: the writer serves
    # the API itself, in one process, as before.
    gateways: int = 0
    # API gateways on several machines share each key's rate limit through this NATS
    # (JetStream KV bucket `perpx_limits_<bus_stream>`, `api/sharedlimits.py`); "": those of one
    # data folder share a file, as before.
    shared_limits: str = ""
    # Projector processes the writer starts, restarts and stops (issue #15; needs `bus` on
    # NATS): each folds the history tables from the bus into tables of its own, by default
    # DATA/projector-K/history.db, or schema <journal's>_projector_K on a PostgreSQL journal.
    projectors: int = 0

    @property
    def writer_only(self) -> bool:
        """Whether the writer folds no read side: gateways serve, projector 0 keeps history.

        With both gateways and projectors (issue #15, item 1), nobody reads the writer's
        process: the gateways read projector 0's history tables, so the writer writes none.
        """
        return self.gateways > 0 and self.projectors > 0 and self.role in ("all", "standby")


@dataclass(frozen=True, slots=True)
class Config:
    """Every section of the file; a missing table keeps its defaults."""

    serve: ServeSettings = field(default_factory=ServeSettings)
    # The API's resource limits (body size, timeouts, connection caps, public throttle).
    limits: Limits = field(default_factory=Limits)
    # How long a signed request or a WebSocket auth may be replayed.
    auth: AuthLimits = field(default_factory=AuthLimits)
    # The configured halves of the venue's parameters, as core records: "collateral" from
    # [collateral], "portfolioMargin" from [portfolio_margin]; a table left out is absent
    # (the venue keeps its own). Not a TOML table itself.
    venue_params: dict[str, Any] = field(default_factory=dict, metadata={"table": False})


def load_config(path: str | Path) -> Config:
    """Read `path` (TOML) into a `Config`; raise `ConfigError` with a clear message."""
    where = str(path)
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as bad:
        raise ConfigError(f"{where}: {bad}") from None
    venue: dict[str, Any] = {}
    try:
        if "collateral" in document:
            venue["collateral"] = collateral_from_toml(document.pop("collateral"))
        if "portfolio_margin" in document:
            venue["portfolioMargin"] = pm_params_from_toml(document.pop("portfolio_margin"))
    except VenueConfigError as bad:
        raise ConfigError(f"{where}: {bad}") from None
    config: Config = _build(Config, document, where, "")
    return dataclasses.replace(config, venue_params=venue)


def _build(cls: type[Any], table: dict[str, Any], where: str, section: str) -> Any:
    """Make a `cls` from a TOML table: every key must be a field of the right type."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.metadata.get("table", True)]
    label = f"[{section}] " if section else ""
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            kind = "key" if section else "table"
            raise ConfigError(f"{where}: {label}unknown {kind} {key!r} "
                              f"(known: {', '.join(names + ([] if section else VENUE_TABLES))})")
        wanted = hints[key]
        if dataclasses.is_dataclass(wanted):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key!r} must be a table ([{key}])")
            values[key] = _build(typing.cast(type[Any], wanted), value, where, key)
        else:
            values[key] = _convert(wanted, value, f"{where}: {label}{key}")
    return cls(**values)


def _convert(wanted: Any, value: Any, label: str) -> Any:
    """Check (and for Path and float, convert) one value against a field's type."""
    options = typing.get_args(wanted) if isinstance(wanted, types.UnionType) else (wanted,)
    for option in options:
        if option is type(None):
            continue  # TOML has no null: an optional field is set by giving a value
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
        if option is Path and isinstance(value, str):
            return Path(value)
    names = " or ".join(_type_name(o) for o in options if o is not type(None))
    raise ConfigError(f"{label}: expected {names}, got {value!r}")


def _type_name(kind: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string",
            Path: "a path (string)"}.get(kind, getattr(kind, "__name__", str(kind)))
