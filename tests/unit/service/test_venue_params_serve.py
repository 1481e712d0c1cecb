"""`perpx serve --config` with [collateral] and [portfolio_margin] (issue #17).

The configured parameters are checked when the file is read (a bad table: exit 2 before
anything is opened) and put in force by one journaled `SetVenueParams` at start, only when
the recovered venue's differ; a restart from snapshot + journal keeps them, and a full
replay of the journal (what a follower, a standby, `perpx replay` and `perpx audit` do)
reaches the same state hash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from perpx.api import server
from perpx.api.keys import KeyStore
from perpx.cli import app
from perpx.config import ConfigError, load_config
from perpx.core.account.collateral import default_collateral
from perpx.core.account.portfolio import PmParams
from perpx.core.account.venue import venue_params_record
from perpx.core.commands import SetVenueParams
from perpx.instruments import served_instruments
from perpx.service import ExchangeService
from perpx.store import open_history, open_journal, open_snapshots
from perpx.store.replay import replay_journal
from perpx.venue_config import venue_params_toml

runner = CliRunner()
SPECS = served_instruments()


def configured_toml() -> str:
    """The defaults as `perpx venue-params` prints them, with BTC at 0.98 and USDT 0.9995."""
    text = venue_params_toml(venue_params_record(default_collateral(), PmParams()))
    text = text.replace('usdt_rate = "1"', 'usdt_rate = "0.9995"')
    text = text.replace('[collateral.coins.BTC]\ntiers = [{ min_qty = "0", max_qty = "", '
                        'ratio = "0.95" }]',
                        '[collateral.coins.BTC]\ntiers = [{ min_qty = "0", max_qty = "10", '
                        'ratio = "0.98" }, { min_qty = "10", max_qty = "", ratio = "0.95" }]')
    assert text.count("0.98") == 1 and "0.9995" in text
    return text.replace('risk_factor = "0.006"', 'risk_factor = "0.007"')


def venue_commands(location: str) -> list[SetVenueParams]:
    journal = open_journal(location, readonly=True)
    try:
        return [c for c in journal.read() if isinstance(c, SetVenueParams)]
    finally:
        journal.close()


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[ExchangeService]:
    """Run `perpx serve` up to the service's start (which journals the parameters), then stop."""
    services: list[ExchangeService] = []

    async def fake_serve(service: ExchangeService, keys: KeyStore, host: str, port: int,
                         ready: Callable[[int], None], **_: Any) -> None:
        await service.start()  # as the app's lifespan does, before the first request
        services.append(service)
        ready(port)
        await service.close()

    monkeypatch.setattr(server, "serve", fake_serve)
    return services


def _serve(*args: str) -> Result:
    return runner.invoke(app, ["serve", "--port", "0", "--no-maker", *args],
                         env={"COLUMNS": "400"})


def test_the_tables_print_back_as_read_and_the_defaults_print_alone(tmp_path: Path) -> None:
    config = tmp_path / "perpx.toml"
    config.write_text(configured_toml())
    printed = runner.invoke(app, ["venue-params", "--config", str(config)])
    assert printed.exit_code == 0 and printed.output == configured_toml()
    defaults = runner.invoke(app, ["venue-params"])
    assert defaults.exit_code == 0 and 'ratio = "0.95"' in defaults.output
    config.write_text(defaults.output)
    assert load_config(config).venue_params == venue_params_record(default_collateral(),
                                                                   PmParams())


def test_serve_journals_the_configured_params_once_and_a_restart_keeps_them(
        tmp_path: Path, started: list[ExchangeService]) -> None:
    config = tmp_path / "perpx.toml"
    data = tmp_path / "venue"
    config.write_text(f'[serve]\ndata = "{data}"\n' + configured_toml())
    wanted = load_config(config).venue_params
    assert set(wanted) == {"collateral", "portfolioMargin"}
    result = _serve("--config", str(config))
    assert result.exit_code == 0, result.output
    location = str(data / "journal.db")
    commands = venue_commands(location)
    assert len(commands) == 1 and commands[0].record == wanted
    engine = started[-1].engine
    assert engine.current_venue_params() == wanted
    assert engine.clearing.collateral.usdt_rate_e8 == 99_950_000
    assert engine.clearing.pm_params.risk_factor == 700_000
    # Served again with the same file: nothing to change, nothing journaled.
    assert _serve("--config", str(config)).exit_code == 0
    assert len(venue_commands(location)) == 1
    assert started[-1].engine.current_venue_params() == wanted
    # `perpx venue-params --journal` prints what is in force there, the file's tables.
    shown = runner.invoke(app, ["venue-params", "--journal", location])
    assert shown.exit_code == 0 and 'usdt_rate = "0.9995"' in shown.output
    assert 'ratio = "0.98"' in shown.output and 'risk_factor = "0.007"' in shown.output
    # Only [portfolio_margin] configured: the collateral set before is kept.
    pm_only = configured_toml().split("[portfolio_margin]")[1]
    config.write_text(f'[serve]\ndata = "{data}"\n[portfolio_margin]{pm_only}'
                      .replace('risk_factor = "0.007"', 'risk_factor = "0.008"'))
    assert _serve("--config", str(config)).exit_code == 0
    commands = venue_commands(location)
    assert len(commands) == 2
    assert commands[1].record["collateral"] == wanted["collateral"]
    assert commands[1].record["portfolioMargin"]["riskFactor"] == 800_000


def test_a_restart_from_a_snapshot_and_a_full_replay_keep_the_params(tmp_path: Path) -> None:
    location = str(tmp_path / "journal.db")
    config = tmp_path / "perpx.toml"
    config.write_text(configured_toml())
    wanted = load_config(config).venue_params

    async def run() -> str:
        service = ExchangeService(SPECS, open_journal(location), history=open_history(location),
                                  snapshots=open_snapshots(location), snapshot_every=1,
                                  maker=False, feed_interval_s=3600, venue_params=wanted)
        await service.start()
        assert service.engine.venue_params == wanted
        await service.ensure_funded(5001, "100000")
        assert service.snapshotter is not None
        await asyncio.to_thread(service.snapshotter.wait, 30.0)
        state = service.engine.state_hash()
        # The writer's durable follower (what the API reads) replayed the command too.
        assert service.durable.seq == service.engine.last_seq
        assert service.durable.engine.state_hash() == state
        await service.close()
        return state

    written = asyncio.run(run())
    again = ExchangeService(SPECS, open_journal(location), history=open_history(location),
                            maker=False, snapshots=open_snapshots(location))
    assert again.recovery.snapshot_seq > 0 and not again.recovery.rejected
    assert again.engine.current_venue_params() == wanted
    assert again.engine.state_hash() == written
    again.sequencer.journal.close()
    source = open_journal(location, readonly=True)
    report = replay_journal(SPECS, source)
    source.close()
    assert report.engine.state_hash() == written
    assert report.engine.current_venue_params() == wanted


@pytest.mark.parametrize(("table", "message"), [
    ('[collateral.coins.BTC]\ntiers = [{ min_qty = "0", max_qty = "", ratio = "1.5" }]',
     "ratio must be at least 0, at most 100000000"),
    ('[collateral.coins.BTC]\ntiers = [{ min_qty = "0", max_qty = "", ratio = 0.95 }]',
     "expected a decimal string"),
    ('[collateral.coins.BTC]\ntiers = [{ min_qty = "0", max_qty = "5", ratio = "0.9" }]',
     "the last tier must be unbounded"),
    ('[collateral.coins.BTC]\ntiers = [{ min_qty = "0", max_qty = "", ratio = "0.9" }]\n'
     "colour = 1", "unknown key 'colour'"),
    ('[collateral.coins.BTC]\ntiers = [{ min_qty = "0", max_qty = "", ratio = "0.9" }]\n'
     'hourly_borrow_rate = "0.0000000000000000001"', "more than 18 decimals"),
])
def test_a_bad_table_is_refused_at_start(tmp_path: Path, table: str, message: str,
                                         started: list[ExchangeService]) -> None:
    text = configured_toml()
    start = text.index("[collateral.coins.BTC]")
    end = text.index("[collateral.coins.ETH]")
    btc = text[start:end]
    lines = dict(line.split(" = ", 1) for line in btc.splitlines()[1:] if " = " in line)
    new = table.splitlines()
    keys = {line.split(" = ", 1)[0] for line in new[1:] if " = " in line}
    kept = [f"{key} = {value}" for key, value in lines.items() if key not in keys]
    config = tmp_path / "perpx.toml"
    data = tmp_path / "venue"
    config.write_text(f'[serve]\ndata = "{data}"\n' + text[:start]
                      + "\n".join([*new, *kept]) + "\n\n" + text[end:])
    with pytest.raises(ConfigError, match=message):
        load_config(config)
    result = _serve("--config", str(config))
    assert result.exit_code == 2 and "[collateral" in result.output
    assert not started and not data.exists()  # refused before anything was opened


def test_a_missing_coin_key_or_usdt_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "perpx.toml"
    config.write_text('[collateral]\nusdt_rate = "1"\nconversion_fee_rate = "0"\n'
                      '[collateral.coins.BTC]\ntiers = []\n')
    with pytest.raises(ConfigError, match="missing switchable"):
        load_config(config)
    text = configured_toml()
    start, end = text.index("[collateral.coins.USDT]"), text.index("[portfolio_margin]")
    config.write_text(text[:start] + text[end:])
    with pytest.raises(ConfigError, match="USDT must be a coin"):
        load_config(config)
    config.write_text(text.replace('shock_base = "INDEX"', 'shock_base = "LAST"'))
    with pytest.raises(ConfigError, match="shockBase must be INDEX or MARK"):
        load_config(config)
