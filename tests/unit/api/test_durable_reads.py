"""Reads are durable-consistent (issue #15): a read after an acknowledged write sees it, and no
read (REST or a private stream row) shows a command that is not yet durable.

The first two hold for the writer's own API and for an API gateway (`perpx.roles.gateway`:
commands over the command socket, reads from its follower of the SQLite journal), alike.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from perpx.api.app import RestApp, create_app, service_hub
from perpx.api.keys import ApiKey, KeyStore
from perpx.convert import to_ticks
from perpx.core.commands import Command, Deposit, IndexPrice, ListInstrument, PlaceOrder
from perpx.core.enums import OrderType, Side, TriggerDirection
from perpx.core.events import ConditionalOrderAccepted, Event, Executed, OrderAccepted
from perpx.core.instruments import spec_record
from perpx.durable import ReadTimeout, Watermark
from perpx.instruments import FUTURES_TABLE, load_instruments
from perpx.readmodels.books import BookChanges
from perpx.roles.gateway import POLL_S, GatewayService
from perpx.service import ExchangeService
from perpx.store import open_history
from perpx.store.records import Projection
from perpx.transport import CommandEndpoint, UnixWriterClient
from perpx.venue import Venue
from support.journals import Held, HeldJournal, HeldSqliteJournal
from support.rest import btc_order, ok_result, post, signed_headers

NOW = 1_700_000_000_000
# A bid far below the market, for another account's orders that never fill.
LOW_BID = to_ticks(load_instruments()[0], "30000")


def _headers(key: ApiKey, payload: str) -> dict[str, str]:
    return signed_headers(key, payload, NOW)


async def _get(app: RestApp, key: ApiKey | None, path: str, query: str) -> bytes:
    status, body, _ = await app.dispatcher("GET", path, query.encode(),
                                           _headers(key, query) if key else {})
    assert status == 200, body
    return body


async def _post(app: RestApp, key: ApiKey, path: str, params: dict[str, Any]) -> Any:
    return await post(app, key, path, params, NOW)


def _setup(journal: HeldJournal) -> tuple[ExchangeService, RestApp, ApiKey, ApiKey]:
    keys = KeyStore(None)
    alice = keys.create(demo_funds="100000", rate_limit=100_000)
    bob = keys.create(demo_funds="100000", rate_limit=100_000)
    service = ExchangeService(load_instruments(), journal, clock=lambda: NOW, maker=False,
                              feed_interval_s=3600)
    app = create_app(service, keys)
    assert isinstance(app, RestApp)
    return service, app, alice, bob


@dataclass
class Served:
    """The writer's service, and the API under test over the venue its reads come from."""

    service: ExchangeService  # the writer
    reads: Venue  # the writer itself, or the gateway
    app: RestApp
    alice: ApiKey
    bob: ApiKey
    journal: Held
    endpoint: CommandEndpoint | None = None

    async def close(self) -> None:
        if self.reads is not self.service:
            await self.reads.close()
        if self.endpoint is not None:
            await self.endpoint.close()
        await self.service.close()


async def _serve(through: str, tmp_path: Path, delay_s: float = 0.0,
                 poll_s: float = POLL_S) -> Served:
    """The API of the writer itself, or of a gateway in front of it (same keys, clock).

    `poll_s`: how often the gateway's follower reads the journal unasked.
    """
    if through == "writer":
        journal = HeldJournal(delay_s)
        service, app, alice, bob = _setup(journal)
        return Served(service, service, app, alice, bob, journal)
    keys = KeyStore(None)
    alice = keys.create(demo_funds="100000", rate_limit=100_000)
    bob = keys.create(demo_funds="100000", rate_limit=100_000)
    location = str(tmp_path / "journal.db")
    held = HeldSqliteJournal(location, delay_s)
    service = ExchangeService(load_instruments(), held, history=open_history(location),
                              clock=lambda: NOW, maker=False, feed_interval_s=3600)
    endpoint = CommandEndpoint(service.submit, service.stopped.is_set,
                               durable_seq=lambda: service.sequencer.durable_seq,
                               fund=service.fund_for_gateway,
                               submit_entries=service.submit_entries)
    await endpoint.start_unix(tmp_path / "writer.sock")
    gateway = GatewayService(load_instruments(), location,
                             UnixWriterClient(tmp_path / "writer.sock"), open_history(location),
                             clock=lambda: NOW, poll_s=poll_s)
    await gateway.start()
    app = create_app(gateway, keys)
    assert isinstance(app, RestApp)
    return Served(service, gateway, app, alice, bob, held, endpoint)


THROUGH = pytest.mark.parametrize("through", ["writer", "gateway"])


def _count_catch_up_waits(reads: Venue) -> list[int]:
    """Return the list that records the account of each `caught_up` wait `reads` makes."""
    waits: list[int] = []
    wait = reads.caught_up

    async def counted(account_id: int) -> None:
        waits.append(account_id)
        await wait(account_id)

    reads.caught_up = counted  # type: ignore[method-assign]
    return waits


def _reads(alice: ApiKey, bob: ApiKey) -> list[tuple[ApiKey | None, str, str]]:
    positions = "category=linear&symbol=BTCUSDT"
    return [
        (None, "/v5/market/orderbook", "category=linear&symbol=BTCUSDT&limit=50"),
        (None, "/v5/market/tickers", "category=linear&symbol=BTCUSDT"),
        (None, "/v5/market/recent-trade", "category=linear&symbol=BTCUSDT"),
        (None, "/v5/market/insurance", ""),
        (alice, "/v5/position/list", positions), (bob, "/v5/position/list", positions),
        (alice, "/v5/account/wallet-balance", "accountType=UNIFIED"),
        (bob, "/v5/account/wallet-balance", "accountType=UNIFIED"),
        (alice, "/v5/order/realtime", positions), (bob, "/v5/order/realtime", positions),
        (alice, "/v5/account/info", ""),
    ]


@THROUGH
def test_no_read_shows_a_command_that_is_not_yet_durable(through: str, tmp_path: Path) -> None:
    async def run() -> None:
        served = await _serve(through, tmp_path)
        service, app, alice, bob, journal = (served.service, served.app, served.alice,
                                             served.bob, served.journal)
        await service.step()  # index and mark prices
        reads = _reads(alice, bob)
        for key in (alice, bob):  # the first signed request funds the key
            await _get(app, key, "/v5/account/wallet-balance", "accountType=UNIFIED")
        before = [await _get(app, *read) for read in reads]
        durable = service.sequencer.durable_seq
        journal.hold()
        # Bob rests a sell, Alice buys half of it: applied by the writer, not durable.
        sell = asyncio.ensure_future(_post(app, bob, "/v5/order/create",
                                           btc_order("Sell", "0.02", "65000")))
        buy = asyncio.ensure_future(_post(app, alice, "/v5/order/create",
                                          btc_order("Buy", "0.01")))
        while service.engine.last_seq < durable + 2:
            await asyncio.sleep(0.001)
        # The gap is real: the writer's engine holds the fill, the journal does not.
        assert service.sequencer.durable_seq == durable
        held = service.engine.clearing.account(alice.account_id)
        assert held is not None and held.positions[("BTCUSDT", 0)].size_lots > 0
        assert service.engine.books["BTCUSDT"].best_ask() is not None
        for _ in range(3):
            during = [await _get(app, *read) for read in reads]
            assert during == before, [r[1] for r, a, b in zip(reads, during, before, strict=True)
                                      if a != b]
            await asyncio.sleep(0.01)
        assert not sell.done() and not buy.done()  # not acknowledged either
        journal.release()
        placed = await sell
        await buy
        after = [await _get(app, *read) for read in reads]
        changed = {read[1] for read, old, new in zip(reads, before, after, strict=True)
                   if old != new}
        assert changed >= {"/v5/market/orderbook", "/v5/market/recent-trade",
                           "/v5/position/list", "/v5/account/wallet-balance",
                           "/v5/order/realtime", "/v5/market/tickers"}
        book = ok_result(after[0])
        assert book["a"] == [["65000.00", "0.010"]] and book["u"] == durable + 2
        open_orders = ok_result(after[9])["list"]
        assert [o["orderId"] for o in open_orders] == [placed["orderId"]]
        assert ok_result(after[4])["list"][0]["size"] == "0.010"
        await served.close()

    asyncio.run(run())


@THROUGH
def test_a_read_after_an_acknowledged_write_sees_it_while_others_write(
        through: str, tmp_path: Path) -> None:
    async def run() -> None:
        # Commits take a while: batches pile up.
        served = await _serve(through, tmp_path, delay_s=0.002)
        service, app, alice, bob = served.service, served.app, served.alice, served.bob
        await service.step()
        for key in (alice, bob):
            await _get(app, key, "/v5/account/wallet-balance", "accountType=UNIFIED")
        stop = asyncio.Event()

        async def noise() -> None:  # another account keeps the writer ahead of the journal
            await service.submit(Deposit(0, 0, 999, "USDT", 10**14))
            while not stop.is_set():
                await asyncio.gather(*(service.submit(PlaceOrder(
                    0, 0, 999, "BTCUSDT", Side.BUY, OrderType.LIMIT, 1, LOW_BID))
                    for _ in range(4)))

        noisy = asyncio.ensure_future(noise())
        gaps = 0
        wallet = b""
        for number in range(1, 31):
            sold = await _post(app, bob, "/v5/order/create", btc_order("Sell", "0.001", "65000"))
            gaps += service.engine.last_seq > service.durable.seq
            mine = ok_result(await _get(app, bob, "/v5/order/realtime",
                                      f"category=linear&orderId={sold['orderId']}"))
            assert [o["orderStatus"] for o in mine["list"]] == ["New"]
            book = ok_result(await _get(app, None, "/v5/market/orderbook",
                                      "category=linear&symbol=BTCUSDT"))
            assert book["a"][0] == ["65000.00", "0.001"]
            await _post(app, alice, "/v5/order/create", btc_order("Buy", "0.001"))
            gaps += service.engine.last_seq > service.durable.seq
            rows = ok_result(await _get(app, alice, "/v5/position/list",
                                      "category=linear&symbol=BTCUSDT"))["list"]
            assert rows[0]["size"] == f"{number / 1000:.3f}"
            now = await _get(app, alice, "/v5/account/wallet-balance", "accountType=UNIFIED")
            assert now != wallet  # the fill's fee moved the wallet
            wallet = now
            filled = ok_result(await _get(app, bob, "/v5/order/realtime",
                                        f"category=linear&orderId={sold['orderId']}"))
            assert [o["orderStatus"] for o in filled["list"]] == ["Filled"]
        stop.set()
        await noisy
        assert gaps > 0, "the writer was never ahead of the journal: the test proves nothing"
        await service.sequencer.drain()
        await served.reads.caught_up(alice.account_id)
        # Caught up, the follower is the writer's engine exactly (the same core, same commands).
        assert served.reads.durable.engine.state_hash() == service.engine.state_hash()
        await served.close()

    asyncio.run(run())


@THROUGH
def test_a_write_that_reads_only_its_contract_skips_the_catch_up_wait_and_a_read_waits(
        through: str, tmp_path: Path) -> None:
    """Create, amend and cancel skip `caught_up` (and a gateway's journal poll); reads wait.

    The gateway's follower polls only when asked here, so a write acknowledged elsewhere (a
    listing submitted to the writer directly) is surely not followed yet when the next
    request arrives: an order on that new contract must still be accepted, waiting as a read.
    """
    async def run() -> None:
        served = await _serve(through, tmp_path, poll_s=3600.0)
        service, reads, app, alice = served.service, served.reads, served.app, served.alice
        await service.step()
        await _get(app, alice, "/v5/account/wallet-balance", "accountType=UNIFIED")
        waits = _count_catch_up_waits(reads)
        placed = await _post(app, alice, "/v5/order/create", btc_order("Buy", "0.001", "60000"))
        await _post(app, alice, "/v5/order/amend", {"category": "linear", "symbol": "BTCUSDT",
                                                   "orderId": placed["orderId"],
                                                   "price": "60001"})
        assert waits == []
        mine = ok_result(await _get(app, alice, "/v5/order/realtime",
                                    f"category=linear&orderId={placed['orderId']}"))
        assert [(o["orderStatus"], o["price"]) for o in mine["list"]] == [("New", "60001.00")]
        assert waits == [alice.account_id]  # a read waits
        await _post(app, alice, "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT",
                                                    "orderId": placed["orderId"]})
        assert len(waits) == 1  # cancel reads nothing before it submits either (below)

        future = load_instruments(FUTURES_TABLE)[0]
        await service.submit(ListInstrument(0, 0, spec_record(future)))
        await service.submit(IndexPrice(0, 0, future.symbol, 600_000))
        # In one process the listing is read at once; a gateway has not followed it yet.
        assert (future.symbol in reads.specs) == (through == "writer")
        order = dict(btc_order("Buy", "0.001", "59000"), symbol=future.symbol)
        listed = await _post(app, alice, "/v5/order/create", order)
        assert listed["orderId"]
        assert len(waits) == (1 if through == "writer" else 2)
        await served.close()

    asyncio.run(run())


@THROUGH
def test_stream_rows_are_built_from_the_durable_state_at_their_command(
        through: str, tmp_path: Path) -> None:
    async def run() -> None:
        served = await _serve(through, tmp_path, delay_s=0.002)
        service, reads, app = served.service, served.reads, served.app
        alice, bob = served.alice, served.bob
        await service.step()
        for key in (alice, bob):
            await _get(app, key, "/v5/account/wallet-balance", "accountType=UNIFIED")
        hub = service_hub(reads)
        assert hub.private.engine is reads.durable.engine and hub.private.adl is reads.adl
        seen: list[tuple[int, int, int]] = []
        rows: list[tuple[int, Any]] = []

        def listener(command: Command, events: list[Event], projection: Projection,
                     books: BookChanges, /) -> None:
            seen.append((command.seq, reads.durable.seq, service.engine.last_seq))
            if any(isinstance(e, Executed) and e.account_id == alice.account_id
                   for e in events):
                rows.append((command.seq, hub.private.position_row(alice.account_id,
                                                                   "BTCUSDT", 0)))

        reads.listen(listener)
        await asyncio.gather(*(_post(app, bob, "/v5/order/create",
                                     btc_order("Sell", "0.001", "65000")) for _ in range(10)))
        await asyncio.gather(*(_post(app, alice, "/v5/order/create", btc_order("Buy", "0.001"))
                               for _ in range(10)))
        assert all(seq == durable for seq, durable, _ in seen)
        assert any(live > seq for seq, _, live in seen), "never ahead: the test proves nothing"
        # Each fill's position row shows the position after that fill, at its seq.
        assert [(row["seq"], row["size"]) for _, row in rows] == [
            (seq, f"{n / 1000:.3f}") for n, (seq, _) in enumerate(rows, start=1)]
        await served.close()

    asyncio.run(run())


def test_a_reader_waits_for_the_seq_it_was_acknowledged_at() -> None:
    async def run() -> None:
        mark = Watermark(5)
        await mark.wait_for(5)  # passed: at once
        waiting = asyncio.ensure_future(mark.wait_for(7, timeout=5))
        await asyncio.sleep(0.01)
        mark.advance(6)
        await asyncio.sleep(0.01)
        assert not waiting.done()
        mark.advance(8)
        await waiting
        with pytest.raises(ReadTimeout):
            await mark.wait_for(9, timeout=0.01)
        assert mark.seq == 8

        journal = HeldJournal()
        service = _setup(journal)[0]
        await service.step()
        journal.hold()
        pending = asyncio.ensure_future(service.submit(PlaceOrder(
            0, 0, 7, "BTCUSDT", Side.BUY, OrderType.LIMIT, 1, LOW_BID)))
        await asyncio.sleep(0.01)
        settled = asyncio.ensure_future(service.settled())
        await asyncio.sleep(0.02)
        assert not settled.done()  # the writer's state is not yet durable
        journal.release()
        await pending
        await settled
        assert service.durable.seq == service.engine.last_seq
        await service.close()

    asyncio.run(run())


async def _reply(app: RestApp, key: ApiKey, path: str, params: dict[str, Any]
                 ) -> dict[str, Any]:
    """POST a signed JSON body; return the reply's retCode, retMsg, result and retExtInfo."""
    payload = json.dumps(params)
    status, body, _ = await app.dispatcher("POST", path, payload.encode(),
                                           _headers(key, payload))
    assert status == 200, body
    reply = json.loads(body)
    return {name: reply[name] for name in ("retCode", "retMsg", "result", "retExtInfo")}


async def _answer(app: RestApp, key: ApiKey, path: str, params: dict[str, Any]
                  ) -> tuple[int, str, Any]:
    """POST a signed JSON body; return the reply's retCode, retMsg and result."""
    reply = await _reply(app, key, path, params)
    return reply["retCode"], reply["retMsg"], reply["result"]


async def _place(app: RestApp, key: ApiKey, order: dict[str, Any]) -> str:
    """Create `order` for `key`; return its order id."""
    return str((await _post(app, key, "/v5/order/create", order))["orderId"])


async def _serve_funded(through: str, tmp_path: Path) -> tuple[Served, list[int]]:
    """`_serve` with a follower that polls only when asked, both keys funded by a first read.

    Returns the served API and the list of accounts whose requests waited for catch-up from
    here on (`_count_catch_up_waits`).
    """
    served = await _serve(through, tmp_path, poll_s=3600.0)
    await served.service.step()
    for key in (served.alice, served.bob):
        await _get(served.app, key, "/v5/account/wallet-balance", "accountType=UNIFIED")
    return served, _count_catch_up_waits(served.reads)


@THROUGH
def test_cancel_skips_the_catch_up_wait_and_answers_with_the_ids_it_did_before(
        through: str, tmp_path: Path) -> None:
    """Cancel takes its answer's ids from its own outcome, so it no longer waits to read first.

    By link id, with an older closed order holding the same link (which a read of the
    projection after the cancel would find first), by id, a waiting conditional order, and
    the refusals (an unknown id, an order already cancelled, one already filled): the same
    answers the read before the submit gave.
    """
    async def run() -> None:
        served, waits = await _serve_funded(through, tmp_path)
        app, alice, bob = served.app, served.alice, served.bob
        btc = {"category": "linear", "symbol": "BTCUSDT"}

        async def place(order: dict[str, Any], key: ApiKey = alice) -> str:
            return await _place(app, key, order)

        async def cancel(**name: str) -> tuple[int, str, Any]:
            return await _answer(app, alice, "/v5/order/cancel", dict(btc, **name))

        first = await place(dict(btc_order("Buy", "0.001", "60000"), orderLinkId="same"))
        assert await cancel(orderLinkId="same") == (
            0, "OK", {"orderId": first, "orderLinkId": "same"})
        second = await place(dict(btc_order("Buy", "0.001", "60001"), orderLinkId="same"))
        assert await cancel(orderLinkId="same") == (
            0, "OK", {"orderId": second, "orderLinkId": "same"})
        third = await place(dict(btc_order("Buy", "0.001", "60002"), orderLinkId="by-id"))
        assert await cancel(orderId=third) == (
            0, "OK", {"orderId": third, "orderLinkId": "by-id"})
        waiting = await place(dict(btc_order("Buy", "0.001", "70000"), orderLinkId="stop",
                                   triggerPrice="71000", triggerDirection=1))
        assert await cancel(orderLinkId="stop") == (
            0, "OK", {"orderId": waiting, "orderLinkId": "stop"})
        await place(btc_order("Sell", "0.001", "65000"), bob)
        filled = await place(dict(btc_order("Buy", "0.001", "65000"), orderLinkId="filled"))
        missing = (110001, "Order does not exist", {})
        assert await cancel(orderId="123456789") == missing
        assert await cancel(orderLinkId="nobody") == missing
        assert await cancel(orderId=third) == missing
        assert await cancel(orderId=filled) == missing
        assert await cancel(orderLinkId="filled") == missing
        assert waits == []
        await served.close()

    asyncio.run(run())


def _batch_answer(*items: tuple[dict[str, str], int, str]) -> dict[str, Any]:
    """A batch's whole reply: each item's list entry, with its code and message."""
    return {"retCode": 0, "retMsg": "OK",
            "result": {"list": [dict(entry, category="linear") for entry, _, _ in items]},
            "retExtInfo": {"list": [{"code": code, "msg": msg} for _, code, msg in items]}}


@THROUGH
def test_batches_and_cancel_all_skip_the_catch_up_wait_and_answer_as_they_did(
        through: str, tmp_path: Path) -> None:
    """The batches and cancel-all take their answers from their outcomes (`_named_ids`).

    Each item is applied in request order (a duplicate link refused after its first use, an
    amend to the price an earlier item set, a cancel of an order an earlier item cancelled),
    by id and by link (an older closed order holding the same link), waiting conditional
    orders, the item-level codes, and cancel-all by symbol, base coin and settle coin, with
    orders and with none: the same answers as when they read before they submitted. Only
    cancel-all finding nothing to cancel waits (once), by symbol or by coin.
    """
    async def run() -> None:
        served, waits = await _serve_funded(through, tmp_path)
        app, alice, bob = served.app, served.alice, served.bob
        btc = {"category": "linear", "symbol": "BTCUSDT"}

        async def place(order: dict[str, Any], key: ApiKey = alice) -> str:
            return await _place(app, key, order)

        async def batch(kind: str, *items: dict[str, Any]) -> dict[str, Any]:
            return await _reply(app, alice, f"/v5/order/{kind}-batch",
                                {"category": "linear", "request": list(items)})

        stop = dict(btc_order("Buy", "0.001", "70000"), triggerPrice="71000",
                    triggerDirection=1)
        created = await batch(
            "create", dict(btc_order("Buy", "0.001", "60000"), orderLinkId="b1"),
            dict(btc_order("Buy", "0.001", "60001"), orderLinkId="b1"),
            dict(stop, orderLinkId="b3"),
            dict(btc_order("Up", "0.001", "60002"), orderLinkId="b4"),
            dict(btc_order("Buy", "0.001", "60003"), orderLinkId="b5"))
        ids = [entry["orderId"] for entry in created["result"]["list"]]
        b1, b3, b5 = ids[0], ids[2], ids[4]
        assert all((b1, b3, b5)) and len({b1, b3, b5}) == 3
        at = str(NOW)
        assert created == _batch_answer(
            ({"symbol": "BTCUSDT", "orderId": b1, "orderLinkId": "b1", "createAt": at}, 0,
             "OK"),
            ({"symbol": "BTCUSDT", "orderId": "", "orderLinkId": "b1", "createAt": ""},
             110072, "OrderLinkedID is duplicate"),
            ({"symbol": "BTCUSDT", "orderId": b3, "orderLinkId": "b3", "createAt": at}, 0,
             "OK"),
            ({"symbol": "BTCUSDT", "orderId": "", "orderLinkId": "b4", "createAt": ""},
             10001, "params error: side invalid"),
            ({"symbol": "BTCUSDT", "orderId": b5, "orderLinkId": "b5", "createAt": at}, 0,
             "OK"))
        # An older closed order holds the link "same" the open one holds too.
        old = await place(dict(btc_order("Buy", "0.001", "59000"), orderLinkId="same"))
        await _post(app, alice, "/v5/order/cancel", dict(btc, orderId=old))
        same = await place(dict(btc_order("Buy", "0.001", "59001"), orderLinkId="same"))
        await place(btc_order("Sell", "0.001", "65000"), bob)
        filled = await place(dict(btc_order("Buy", "0.001", "65000"), orderLinkId="filled"))
        ok = (0, "OK")
        unknown = (110001, "Order does not exist")
        amended = await batch(
            "amend", dict(btc, orderId=b1, price="60010"),
            dict(btc, orderLinkId="b3", triggerPrice="71500"),
            dict(btc, orderLinkId="same", qty="0.002"),
            dict(btc, orderLinkId="b1", price="60010"),
            dict(btc, orderId="123456789", price="60000"),
            dict(btc, orderId=filled, price="64000"),
            dict(btc, orderLinkId="nobody", price="60000"))
        assert amended == _batch_answer(
            ({"symbol": "BTCUSDT", "orderId": b1, "orderLinkId": "b1"}, *ok),
            ({"symbol": "BTCUSDT", "orderId": b3, "orderLinkId": "b3"}, *ok),
            ({"symbol": "BTCUSDT", "orderId": same, "orderLinkId": "same"}, *ok),
            ({"symbol": "BTCUSDT", "orderId": "", "orderLinkId": "b1"}, 10001,
             "order not modified"),
            ({"symbol": "BTCUSDT", "orderId": "123456789", "orderLinkId": ""}, *unknown),
            ({"symbol": "BTCUSDT", "orderId": filled, "orderLinkId": ""}, *unknown),
            ({"symbol": "BTCUSDT", "orderId": "", "orderLinkId": "nobody"}, *unknown))
        cancelled = await batch(
            "cancel", dict(btc, orderLinkId="same"), dict(btc, orderId=b1),
            dict(btc, orderLinkId="b3"), dict(btc, orderId=b1),
            dict(btc, orderId=filled), dict(btc, orderLinkId="nobody"),
            dict(btc, orderId="x1"))
        assert cancelled == _batch_answer(
            ({"symbol": "BTCUSDT", "orderId": same, "orderLinkId": "same"}, *ok),
            ({"symbol": "BTCUSDT", "orderId": b1, "orderLinkId": "b1"}, *ok),
            ({"symbol": "BTCUSDT", "orderId": b3, "orderLinkId": "b3"}, *ok),
            ({"symbol": "BTCUSDT", "orderId": b1, "orderLinkId": ""}, *unknown),
            ({"symbol": "BTCUSDT", "orderId": filled, "orderLinkId": ""}, *unknown),
            ({"symbol": "BTCUSDT", "orderId": "", "orderLinkId": "nobody"}, *unknown),
            ({"symbol": "BTCUSDT", "orderId": "x1", "orderLinkId": ""}, *unknown))
        assert waits == []

        async def cancel_all(**how: str) -> dict[str, Any]:
            return await _reply(app, alice, "/v5/order/cancel-all", dict(category="linear",
                                                                         **how))

        def listed(*orders: tuple[str, str]) -> dict[str, Any]:
            return {"retCode": 0, "retMsg": "OK", "retExtInfo": {},
                    "result": {"list": [{"orderId": order_id, "orderLinkId": link}
                                        for order_id, link in orders], "success": "1"}}

        # b5 rests; a waiting stop and an unlinked order join it; the resting go first.
        waiting = await place(dict(stop, orderLinkId="w"))
        plain = await place(btc_order("Buy", "0.001", "58000"))
        assert await cancel_all(symbol="BTCUSDT") == listed((b5, "b5"), (plain, ""),
                                                            (waiting, "w"))
        assert waits == []
        assert await cancel_all(symbol="BTCUSDT") == listed()
        assert waits == [alice.account_id]  # nothing to cancel: drawn from state, once
        eth = await place(dict(btc_order("Buy", "0.01", "1000"), symbol="ETHUSDT",
                               orderLinkId="e"))
        btc_order_id = await place(dict(btc_order("Buy", "0.001", "58000"), orderLinkId="c"))
        assert await cancel_all(baseCoin="ETH") == listed((eth, "e"))
        assert len(waits) == 1  # by coin, with something to cancel: no wait either
        assert await cancel_all(settleCoin="USDT") == listed((btc_order_id, "c"))
        assert len(waits) == 1
        assert await cancel_all(settleCoin="USDT") == listed()
        assert len(waits) == 2
        await served.close()

    asyncio.run(run())


def _accepted_id(events: list[Event]) -> str:
    """The order id an order placed at the writer directly was accepted with."""
    return next(str(event.order_id) for event in events
                if isinstance(event, (OrderAccepted, ConditionalOrderAccepted)))


def _listed(*orders: tuple[str, str]) -> dict[str, Any]:
    """Cancel-all's whole reply listing these (order id, link id)."""
    return {"retCode": 0, "retMsg": "OK", "retExtInfo": {},
            "result": {"list": [{"orderId": order_id, "orderLinkId": link}
                                for order_id, link in orders], "success": "1"}}


@THROUGH
def test_cancel_all_by_coin_skips_the_catch_up_wait_and_answers_as_it_did(
        through: str, tmp_path: Path) -> None:
    """Cancel-all by base or settle coin answers as when it waited first, and waits only for
    nothing to cancel (where the venue shows none of the account's orders at first).

    Resting, unlinked and waiting orders; several symbols (listed in the contracts' order,
    not the order placed); with nothing open; `orderFilter`; orders the venue did not show
    yet (placed at the writer directly: a gateway's follower polls only when asked here),
    among others it shows and alone; a contract listed at the writer and not yet followed.
    The replies pass unchanged on the code that waited first (74a3443); only the count of
    catch-up waits per request (last) differs: there every request by coin waited.
    """
    async def run() -> None:
        served, waits = await _serve_funded(through, tmp_path)
        service, app, alice = served.service, served.app, served.alice
        counts: list[int] = []

        async def place(order: dict[str, Any]) -> str:
            return await _place(app, alice, order)

        async def at_writer(symbol: str, price: str, link: str) -> str:
            return _accepted_id(await service.submit(PlaceOrder(
                0, 0, alice.account_id, symbol, Side.BUY, OrderType.LIMIT, 1,
                to_ticks(service.specs[symbol], price), order_link_id=link)))

        async def cancel_all(**how: str) -> dict[str, Any]:
            before = len(waits)
            reply = await _reply(app, alice, "/v5/order/cancel-all",
                                 dict(category="linear", **how))
            counts.append(len(waits) - before)
            return reply

        stop = dict(btc_order("Buy", "0.001", "70000"), triggerPrice="71000",
                    triggerDirection=1)
        waiting = await place(dict(stop, orderLinkId="w"))
        resting = await place(dict(btc_order("Buy", "0.001", "58000"), orderLinkId="r"))
        eth = await place(dict(btc_order("Buy", "0.01", "1000"), symbol="ETHUSDT",
                               orderLinkId="e"))
        assert await cancel_all(baseCoin="BTC") == _listed((resting, "r"), (waiting, "w"))
        sol = await place(dict(btc_order("Buy", "0.1", "100"), symbol="SOLUSDT",
                               orderLinkId="s"))
        unlinked = await place(btc_order("Buy", "0.001", "58000"))
        assert await cancel_all(settleCoin="USDT") == _listed(
            (unlinked, ""), (eth, "e"), (sol, "s"))
        assert await cancel_all(baseCoin="ETH") == _listed()
        assert await cancel_all(settleCoin="USDT") == _listed()
        waiting = await place(dict(stop, orderLinkId="w2"))
        resting = await place(dict(btc_order("Buy", "0.001", "58000"), orderLinkId="r2"))
        assert await cancel_all(settleCoin="USDT", orderFilter="StopOrder") == _listed(
            (waiting, "w2"))
        assert await cancel_all(settleCoin="USDT", orderFilter="StopOrder") == _listed()
        unseen = await at_writer("ETHUSDT", "1000", "u")
        assert await cancel_all(settleCoin="USDT") == _listed((resting, "r2"), (unseen, "u"))
        unseen = await at_writer("SOLUSDT", "100", "u2")
        assert await cancel_all(settleCoin="USDT") == _listed((unseen, "u2"))

        future = load_instruments(FUTURES_TABLE)[0]
        await service.submit(ListInstrument(0, 0, spec_record(future)))
        await service.submit(IndexPrice(0, 0, future.symbol, 600_000))
        assert (future.symbol in served.reads.specs) == (through == "writer")
        listed_since = await at_writer(future.symbol, "50000", "f")
        resting = await place(dict(btc_order("Buy", "0.001", "58000"), orderLinkId="r3"))
        assert await cancel_all(baseCoin="BTC") == _listed((resting, "r3"), (listed_since, "f"))
        listed_since = await at_writer(future.symbol, "50000", "f2")
        assert await cancel_all(baseCoin="BTC") == _listed((listed_since, "f2"))
        refused = await cancel_all(symbol="NOPE")  # names a contract: the dispatcher waits
        assert (refused["retCode"], refused["retMsg"]) == (10001, "params error: symbol invalid")
        # Nothing to cancel where the venue shows nothing (a gateway's follower had not read
        # the orders placed at the writer alone): the handler's own wait, once.
        lagging = 1 if through == "gateway" else 0
        assert counts == [0, 0, 1, 1, 0, 0, 0, lagging, 0, lagging, 1]
        await served.close()

    asyncio.run(run())


@THROUGH
@pytest.mark.parametrize("how", ["symbol", "settleCoin"])
def test_cancel_all_of_more_orders_than_the_projection_keeps_closed_answers_every_link(
        through: str, how: str, tmp_path: Path) -> None:
    """Cancel-all of 510 orders answers each one's link id, though the projection keeps 500.

    The projector keeps an account's newest 500 closed orders (`RECENT_CLOSED_PER_ACCOUNT`),
    so once the cancel is folded the first ten it cancelled are no longer there. Through a
    gateway whose follower has not read the orders placed at the writer directly (it
    showed one order, so the cancel did not wait to catch up), their link ids were answered
    empty: the answer must name every link whatever the projection still holds.
    """
    async def run() -> None:
        served, waits = await _serve_funded(through, tmp_path)
        service, app, alice = served.service, served.app, served.alice
        btc, eth = service.specs["BTCUSDT"], service.specs["ETHUSDT"]
        seen = await _place(app, alice, dict(btc_order("Buy", "0.001", "30000"),
                                             orderLinkId="seen"))
        # At the writer, unseen by the gateway's follower: 499 resting and 10 waiting orders
        # on BTCUSDT (one symbol holds at most 500 and 10), or 299 on BTCUSDT, 210 on ETHUSDT.
        places: list[PlaceOrder] = []
        if how == "symbol":
            places += [PlaceOrder(0, 0, alice.account_id, "BTCUSDT", Side.BUY, OrderType.LIMIT,
                                  1, LOW_BID - n, order_link_id=f"r{n}") for n in range(499)]
            places += [PlaceOrder(0, 0, alice.account_id, "BTCUSDT", Side.BUY, OrderType.LIMIT,
                                  1, to_ticks(btc, "70000"), order_link_id=f"w{n}",
                                  trigger_price_ticks=to_ticks(btc, "71000") + n,
                                  trigger_direction=TriggerDirection.RISING)
                       for n in range(10)]
        else:
            places += [PlaceOrder(0, 0, alice.account_id, "BTCUSDT", Side.BUY, OrderType.LIMIT,
                                  1, LOW_BID - n, order_link_id=f"r{n}") for n in range(299)]
            places += [PlaceOrder(0, 0, alice.account_id, "ETHUSDT", Side.BUY, OrderType.LIMIT,
                                  1, to_ticks(eth, "1000") - n, order_link_id=f"e{n}")
                       for n in range(210)]
        outcomes = await service.submit_all(places)
        ids = [_accepted_id(events) for events in outcomes]
        links = [place.order_link_id for place in places]
        reply = await _reply(app, alice, "/v5/order/cancel-all",
                             {"category": "linear", how: "BTCUSDT" if how == "symbol"
                              else "USDT"})
        assert reply["retCode"] == 0, reply
        answered = [(entry["orderId"], entry["orderLinkId"])
                    for entry in reply["result"]["list"]]
        # The resting first (placed order), then the waiting; symbol by symbol.
        assert answered == [(seen, "seen"), *zip(ids, links, strict=True)]
        assert waits == []
        await served.close()

    asyncio.run(run())
