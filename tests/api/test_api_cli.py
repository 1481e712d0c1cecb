from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from perpx.api import server
from perpx.api.auth import AuthLimits
from perpx.api.keys import DEMO_KEY_FILE, KeyStore
from perpx.api.limits import Limits
from perpx.api.ratelimit import Limiter
from perpx.bench.api import bench_api
from perpx.cli import app
from perpx.service import ExchangeService

runner = CliRunner()


def test_keys_commands(tmp_path: Path) -> None:
    made = runner.invoke(app, ["keys", "create", "--json", "--read-only", "--demo-funds",
                               "100000", "--data", str(tmp_path)])
    assert made.exit_code == 0, made.output
    key = json.loads(made.output)
    assert set(key) == {"api_key", "api_secret", "account_id"}
    listed = runner.invoke(app, ["keys", "list", "--json", "--data", str(tmp_path)])
    (row,) = json.loads(listed.output)
    assert row["read_only"] and row["api_key"] == key["api_key"]
    assert key["api_secret"] not in listed.output
    assert runner.invoke(app, ["keys", "revoke", key["api_key"], "--data",
                               str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", key["api_key"], "--data",
                               str(tmp_path)]).exit_code == 1


def test_bench_api_runs_end_to_end() -> None:
    lines: list[str] = []
    result = bench_api(clients=2, seconds=0.5, ws_subscribers=2, echo=lines.append)
    assert json.loads(lines[-1]) == result
    assert result["orders_per_s"] > 0 and result["order_retcodes"] == {
        "0": sum(result["order_retcodes"].values())}
    assert result["baseline_time_req_per_s"] > 0 and result["client_ceiling_req_per_s"] > 0
    assert result["ws_msgs_per_s"] > 0


# -- issue #12 item 8: demo money only in demo mode; the demo secret shown once -------------


SERVED_LIMITS: list[tuple[Limits | None, AuthLimits | None]] = []


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[ExchangeService]:
    """Run `perpx serve` up to serving: setup is real, the server answers at once."""
    started: list[ExchangeService] = []

    async def fake_serve(service: ExchangeService, keys: KeyStore, host: str, port: int,
                         ready: Callable[[int], None], limits: Limits | None = None,
                         auth_limits: AuthLimits | None = None,
                         rate_limiter: Limiter | None = None) -> None:
        started.append(service)
        SERVED_LIMITS.append((limits, auth_limits))
        ready(port)
        # As the real server does when it stops: the journal's writer lock is let go, so the
        # next `perpx serve` on the same data folder can open it.
        await service.close()

    monkeypatch.setattr(server, "serve", fake_serve)
    return started


def _serve(*args: str) -> Result:
    # Wide enough that rich's error box does not wrap the messages checked.
    return runner.invoke(app, ["serve", "--port", "0", "--no-maker", *args],
                         env={"COLUMNS": "400"})


def test_production_creates_no_demo_key_and_credits_nothing(
        tmp_path: Path, served: list[ExchangeService]) -> None:
    """Item 8: nothing turned the demo key or demo funds off on main."""
    data = tmp_path / "prod"
    result = _serve("--production", "--data", str(data))
    assert result.exit_code == 0, result.output
    assert "production mode" in result.output and "demo API key" not in result.output
    assert not served[-1].demo
    assert KeyStore(data).list() == [] and not (data / DEMO_KEY_FILE).exists()
    config = tmp_path / "perpx.toml"
    config.write_text(f'[serve]\nproduction = true\ndata = "{tmp_path / "cfg"}"\n')
    assert _serve("--config", str(config)).exit_code == 0 and not served[-1].demo
    assert KeyStore(tmp_path / "cfg").list() == []
    # An option given on the command line wins over the file.
    assert _serve("--config", str(config), "--demo").exit_code == 0 and served[-1].demo


def test_a_mistyped_config_key_is_an_error(tmp_path: Path) -> None:
    """Item 8: `prodution = true` must not leave a server in demo mode without a word."""
    config = tmp_path / "perpx.toml"
    config.write_text("[serve]\nprodution = true\n")
    result = _serve("--config", str(config))
    assert result.exit_code == 2 and "unknown key 'prodution'" in result.output
    config.write_text('[serve]\nport = "80"\n')
    assert "expected an integer" in _serve("--config", str(config)).output
    config.write_text("[servr]\n")
    assert "unknown table 'servr'" in _serve("--config", str(config)).output
    assert "no such file" in _serve("--config", str(tmp_path / "none.toml")).output


def test_the_demo_secret_is_shown_once_and_kept_in_a_private_file(
        tmp_path: Path, served: list[ExchangeService]) -> None:
    """Item 8: on main the demo secret was printed on every start and keys.db was 0644."""
    data = tmp_path / "new" / "data"
    first = _serve("--data", str(data))
    assert first.exit_code == 0, first.output
    kept = json.loads((data / DEMO_KEY_FILE).read_text())
    assert kept["api_secret"] in first.output and "shown once" in first.output
    again = _serve("--data", str(data))
    assert again.exit_code == 0 and kept["api_key"] in again.output
    assert kept["api_secret"] not in again.output and str(data / DEMO_KEY_FILE) in again.output
    assert served[-1].demo
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    keys = KeyStore(data)  # the -wal and -shm files exist while the store is open
    keys.create()
    for name in ("keys.db", "keys.db-wal", "keys.db-shm", "server.key", DEMO_KEY_FILE):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    keys.close()


def test_key_files_of_an_older_data_folder_are_made_private(tmp_path: Path) -> None:
    """Item 8: a keys.db left 0644 by an older perpx is tightened when opened."""
    KeyStore(tmp_path).close()
    for name in ("keys.db", "server.key"):
        os.chmod(tmp_path / name, 0o644)
    KeyStore(tmp_path).close()
    for name in ("keys.db", "server.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_the_config_file_sets_the_api_limits_and_the_banner_names_the_streams(
        tmp_path: Path, served: list[ExchangeService]) -> None:
    """#12 items 4 and 9 are configurable; #13 C6: the banner shows the WebSocket URLs."""
    config = tmp_path / "perpx.toml"
    config.write_text(f'[serve]\ndata = "{tmp_path / "d"}"\n[limits]\nmax_body_bytes = 4096\n'
                      "max_connections_per_address = 7\n[auth]\nmax_recv_window_ms = 9000\n")
    result = _serve("--config", str(config))
    assert result.exit_code == 0, result.output
    limits, auth = SERVED_LIMITS[-1]
    assert limits == Limits(max_body_bytes=4096, max_connections_per_address=7)
    assert auth == AuthLimits(max_recv_window_ms=9000)
    for path in ("/v5/public/linear", "/v5/public/inverse", "/v5/private", "/v5/trade"):
        assert f"ws://127.0.0.1:0{path}" in result.output
    config.write_text("[limits]\nmax_body = 1\n")
    assert "unknown key 'max_body'" in _serve("--config", str(config)).output
