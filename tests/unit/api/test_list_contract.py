"""`perpx list-contract`: an operator lists a contract on a running venue (issue #16 item 2).

The command goes over the writer's command socket, as a gateway's commands do; once it is
durable, instruments-info shows the contract on the writer's API and on a gateway that
follows the journal. Listing it again is refused (exit 1, Bybit's code for a duplicate).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from perpx.api.app import RestApp, create_app
from perpx.api.keys import KeyStore
from perpx.cli import app as cli
from perpx.instruments import load_instruments
from perpx.roles.gateway import GatewayService
from perpx.service import ExchangeService
from perpx.store import open_history, open_journal
from perpx.transport import CommandEndpoint, UnixWriterClient
from support.rest import ok_result

NOW = 1_700_000_000_000
SYMBOL = "BTCUSDT-26MAR27"
runner = CliRunner()


async def _info(app: RestApp) -> list[dict[str, Any]]:
    query = f"category=linear&symbol={SYMBOL}"
    status, body, _ = await app.dispatcher("GET", "/v5/market/instruments-info",
                                           query.encode(), {})
    assert status == 200, body
    found: list[dict[str, Any]] = ok_result(body)["list"]
    return found


def test_a_contract_listed_on_the_command_socket_shows_on_the_writer_and_a_gateway(
        tmp_path: Path) -> None:
    async def run() -> None:
        location = str(tmp_path / "journal.db")
        socket = tmp_path / "writer.sock"
        service = ExchangeService(load_instruments(), open_journal(location),
                                  history=open_history(location), clock=lambda: NOW,
                                  maker=False, feed_interval_s=3600)
        endpoint = CommandEndpoint(service.submit, service.stopped.is_set,
                                   durable_seq=lambda: service.sequencer.durable_seq,
                                   fund=service.fund_for_gateway)
        await endpoint.start_unix(socket)
        gateway = GatewayService(load_instruments(), location, UnixWriterClient(socket),
                                 open_history(location), clock=lambda: NOW)
        await gateway.start()
        keys = KeyStore(None)
        writer_api, gateway_api = create_app(service, keys), create_app(gateway, keys)
        assert isinstance(writer_api, RestApp) and isinstance(gateway_api, RestApp)
        try:
            assert await _info(writer_api) == [] and await _info(gateway_api) == []
            args = ["list-contract", "--symbol", SYMBOL, "--command-socket", str(socket)]
            first = await asyncio.to_thread(runner.invoke, cli, args)
            assert first.exit_code == 0, first.output
            assert f"listed {SYMBOL} at seq" in first.output
            [item] = await _info(writer_api)
            assert (item["symbol"], item["contractType"], item["status"]) == (
                SYMBOL, "LinearFutures", "Trading")
            for _ in range(500):  # the gateway follows the journal
                if await _info(gateway_api):
                    break
                await asyncio.sleep(0.01)
            assert await _info(gateway_api) == [item]
            again = await asyncio.to_thread(runner.invoke, cli, args)
            assert again.exit_code == 1
            assert f"refused {SYMBOL}: retCode" in again.output
        finally:
            await gateway.close()
            await endpoint.close()
            await service.close()

    asyncio.run(run())


def test_list_contract_reads_a_bybit_item_and_needs_one_writer_address(
        tmp_path: Path) -> None:
    path = tmp_path / "item.json"
    path.write_text(json.dumps({"instruments": []}), "utf-8")
    neither = runner.invoke(cli, ["list-contract", "--item", str(path)])
    assert neither.exit_code == 2 and "command-socket" in neither.output
    nobody = runner.invoke(cli, ["list-contract", "--symbol", SYMBOL, "--command-socket",
                                 str(tmp_path / "none.sock")])
    assert nobody.exit_code == 2 and "no writer" in nobody.output
