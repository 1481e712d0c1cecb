"""The insurance fund's history (issue #18): one row per change, durable, resumable, public.

`perpx.readmodels.insurance` turns the fund's `BalanceChanged` events into rows of the
history's ``insurance`` table; ``GET /perpx/insurance/history`` reads them. A liquidation
whose takeover closes against a bid above the bankruptcy price pays the fund; the rows
outlive a restart that starts from a snapshot and replays only the journal's tail, and the
changes after it follow on.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from perpx.api.app import RestApp, create_app
from perpx.api.keys import ApiKey, KeyStore
from perpx.convert import to_ticks
from perpx.core.account.accounts import INSURANCE_FUND_ID
from perpx.core.commands import Deposit, IndexPrice, MarkPrice, SetMarginMode
from perpx.core.enums import BalanceReason, MarginMode
from perpx.core.events import BalanceChanged
from perpx.instruments import load_instruments
from perpx.readmodels.insurance import fund_changes
from perpx.roles.gateway import GatewayService
from perpx.service import ExchangeService
from perpx.store import open_history, open_journal, open_snapshots
from perpx.transport import CommandEndpoint, UnixWriterClient
from support.rest import btc_order, post, signed_headers

NOW = 1_700_000_000_000
BTC = load_instruments()[0]


def test_fund_changes_are_the_funds_balance_changes_numbered_within_their_command() -> None:
    def change(account: int, coin: str, delta: int, balance: int) -> BalanceChanged:
        return BalanceChanged(7, NOW, account, coin, delta, balance, BalanceReason.LIQUIDATION,
                              "BTCUSDT")

    rows = fund_changes([change(1001, "USDT", -5, 95), change(INSURANCE_FUND_ID, "USDT", 5, 5),
                         change(-1, "USDT", 1, 1), change(INSURANCE_FUND_ID, "USDC", -2, 8)])
    assert [(r.seq, r.n, r.coin, r.change_atoms, r.balance_atoms, r.reason) for r in rows] == [
        (7, 0, "USDT", 5, 5, "LIQUIDATION"), (7, 1, "USDC", -2, 8, "LIQUIDATION")]


async def _get(app: RestApp, path: str, query: str = "") -> dict[str, Any]:
    status, body, _ = await app.dispatcher("GET", path, query.encode(), {})
    assert status == 200, body
    reply: dict[str, Any] = json.loads(body)
    return reply


def _service(where: str) -> ExchangeService:
    return ExchangeService(load_instruments(), open_journal(where),
                           history=open_history(where), snapshots=open_snapshots(where),
                           snapshot_every=3, clock=lambda: NOW, maker=False,
                           feed_interval_s=3600)


async def _liquidate(service: ExchangeService, app: RestApp, long: ApiKey,
                     other: ApiKey) -> None:
    """An isolated 10x long of 1 BTC at 50,000 taken over at 45,200 (a bid rests at 45,100)."""
    async def prices(price: str) -> None:
        ticks = to_ticks(BTC, price)
        await service.submit(IndexPrice(0, 0, "BTCUSDT", ticks))
        await service.submit(MarkPrice(0, 0, "BTCUSDT", ticks))

    for key in (long, other):  # the first signed request funds the key
        await app.dispatcher("GET", "/v5/account/info", b"", signed_headers(key, "", NOW))
    await prices("50000")
    await service.submit(SetMarginMode(0, 0, long.account_id, MarginMode.ISOLATED))
    await post(app, other, "/v5/order/create", btc_order("Sell", "1", "50000"), NOW)
    await post(app, other, "/v5/order/create", btc_order("Buy", "1", "45100"), NOW)
    await post(app, long, "/v5/order/create", btc_order("Buy", "1"), NOW)
    await prices("45200")
    await service.settled()


def test_the_funds_history_is_served_and_survives_a_restart_from_a_snapshot(
        location: str) -> None:
    """On both backends (SQLite's ``history.db``, the journal's PostgreSQL schema)."""
    keys = KeyStore(None)
    made = [keys.create(demo_funds="10000", rate_limit=100_000),
            keys.create(demo_funds="1000000", rate_limit=100_000),
            keys.create(demo_funds="10000", rate_limit=100_000)]

    async def first() -> list[dict[str, Any]]:
        service = _service(location)
        app = create_app(service, keys)
        assert isinstance(app, RestApp)
        await service.start()
        await _liquidate(service, app, made[0], made[1])
        rows = (await _get(app, "/perpx/insurance/history"))["result"]
        fund = (await _get(app, "/v5/market/insurance", "coin=USDT"))["result"]["list"][0]
        # Newest first; the newest row's balance is the fund's balance now.
        assert rows["list"] and rows["list"][0]["balance"] == fund["balance"] != "0"
        assert {r["reason"] for r in rows["list"]} <= {"LIQUIDATION", "TRADE"}
        assert all(r["coin"] == "USDT" and r["symbol"] == "BTCUSDT" for r in rows["list"])
        # Filters: another coin, a window before it all, a limit.
        assert (await _get(app, "/perpx/insurance/history", "coin=USDC"))["result"]["list"] == []
        assert (await _get(app, "/perpx/insurance/history",
                           f"endTime={NOW - 1}"))["result"]["list"] == []
        assert len((await _get(app, "/perpx/insurance/history",
                               "limit=1"))["result"]["list"]) == 1
        assert (await _get(app, "/perpx/insurance/history", "limit=0"))["retCode"] == 10001
        await service.close()
        listed: list[dict[str, Any]] = rows["list"]
        return listed

    async def second(before: list[dict[str, Any]]) -> None:
        service = _service(location)
        app = create_app(service, keys)
        assert isinstance(app, RestApp)
        # Started from a snapshot and its read side: only the journal's tail was replayed.
        assert service.recovery.snapshot_seq > 0 and service.recovery.rejected == []
        assert service.recovery.replayed < service.engine.last_seq
        await service.start()
        again = (await _get(app, "/perpx/insurance/history"))["result"]["list"]
        assert again == before  # nothing lost, nothing twice
        await _liquidate(service, app, made[2], made[1])
        after = (await _get(app, "/perpx/insurance/history"))["result"]["list"]
        assert after[len(after) - len(before):] == before
        assert len(after) > len(before) and int(after[0]["seq"]) > int(before[0]["seq"])
        fund = (await _get(app, "/v5/market/insurance", "coin=USDT"))["result"]["list"][0]
        assert after[0]["balance"] == fund["balance"]
        await service.close()

    asyncio.run(second(asyncio.run(first())))


def test_a_gateway_serves_the_funds_history_from_the_writers_tables(tmp_path: Path) -> None:
    """A gateway reads the writer's ``insurance`` table (`History.run` waits for its seq)."""
    async def run() -> None:
        journal = str(tmp_path / "journal.db")
        socket = tmp_path / "writer.sock"
        service = ExchangeService(load_instruments(), open_journal(journal),
                                  history=open_history(journal), clock=lambda: NOW,
                                  maker=False, feed_interval_s=3600)
        endpoint = CommandEndpoint(service.submit, service.stopped.is_set,
                                   durable_seq=lambda: service.sequencer.durable_seq,
                                   fund=service.fund_for_gateway)
        await endpoint.start_unix(socket)
        gateway = GatewayService(load_instruments(), journal, UnixWriterClient(socket),
                                 open_history(journal), clock=lambda: NOW)
        await gateway.start()
        app = create_app(gateway, KeyStore(None))
        assert isinstance(app, RestApp)
        try:
            # The operator tops the fund up (a deposit to system account -2).
            await service.submit(Deposit(0, 0, INSURANCE_FUND_ID, "USDT", 2_000 * 10**8))
            rows: list[dict[str, Any]] = []
            for _ in range(500):  # the gateway follows the journal
                rows = (await _get(app, "/perpx/insurance/history"))["result"]["list"]
                if rows:
                    break
                await asyncio.sleep(0.01)
            assert [(r["coin"], r["change"], r["balance"], r["reason"]) for r in rows] == [
                ("USDT", "2000", "2000", "DEPOSIT")]
        finally:
            await gateway.close()
            await endpoint.close()
            await service.close()

    asyncio.run(run())
