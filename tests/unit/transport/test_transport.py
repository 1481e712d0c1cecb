"""The command path (issue #15, item 4): a real service behind both transports."""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import msgspec
import pytest

from perpx.convert import to_ticks
from perpx.core.commands import CancelAllOrders, Command, Deposit, PlaceOrder
from perpx.core.enums import OrderType, Side
from perpx.core.events import BalanceChanged, OrderAccepted
from perpx.instruments import load_instruments
from perpx.service import ExchangeService, open_service_journal
from perpx.store.journal import Journal
from perpx.transport import (
    CommandEndpoint,
    NatsWriterClient,
    OutcomeUnknown,
    Refused,
    UnixWriterClient,
    WriterClient,
    WriterUnavailable,
)
from perpx.transport.wire import HEADER, REFUSED, frame
from support.journals import HeldJournal, HeldSqliteJournal

SPECS = load_instruments()
BTC = next(spec for spec in SPECS if spec.symbol == "BTCUSDT")
ACCOUNT = 7001


def order(price: str = "60000", link: str = "") -> PlaceOrder:
    return PlaceOrder(0, 0, ACCOUNT, "BTCUSDT", Side.BUY, OrderType.LIMIT, 1,
                      to_ticks(BTC, price), order_link_id=link)


class Garbage(msgspec.Struct, frozen=True, tag=True):
    """Tagged like a command but none (not a subclass: that would join the codec's union)."""

    seq: int
    ts_ms: int
    coin: str


def sqlite_service(tmp_path: Path) -> ExchangeService:
    return ExchangeService(SPECS, open_service_journal(tmp_path), maker=False)


def journaled(journal: Journal) -> list[Command]:
    return list(journal.read(1))


Body = Callable[[WriterClient], Awaitable[None]]


class Run(Protocol):
    def __call__(self, service: ExchangeService, body: Body,
                 endpoint: CommandEndpoint | None = None) -> Awaitable[None]: ...


async def over_unix(service: ExchangeService, body: Body,
                    path: Path, endpoint: CommandEndpoint | None = None) -> None:
    endpoint = endpoint or CommandEndpoint(service.submit, service.stopped.is_set)
    await endpoint.start_unix(path)
    client = UnixWriterClient(path, timeout_s=5)
    try:
        await body(client)
    finally:
        await client.close()
        await endpoint.close()


async def over_nats(service: ExchangeService, body: Body,
                    url: str, venue: str, endpoint: CommandEndpoint | None = None) -> None:
    endpoint = endpoint or CommandEndpoint(service.submit, service.stopped.is_set)
    await endpoint.start_nats(url, venue)
    client = NatsWriterClient(url, venue, timeout_s=5)
    try:
        await body(client)
    finally:
        await client.close()
        await endpoint.close()


@pytest.fixture(params=["unix", "nats"])
def transport(request: pytest.FixtureRequest, tmp_path: Path) -> Run:
    """Run a body against a client of the endpoint, over each transport."""
    if request.param == "unix":
        def unix(service: ExchangeService, body: Body,
                 endpoint: CommandEndpoint | None = None) -> Awaitable[None]:
            return over_unix(service, body, tmp_path / "writer.sock", endpoint)
        return unix
    request.applymarker(pytest.mark.service)
    url = request.getfixturevalue("nats_url")
    venue = f"TEST{uuid.uuid4().hex[:10].upper()}"

    def nats(service: ExchangeService, body: Body,
             endpoint: CommandEndpoint | None = None) -> Awaitable[None]:
        return over_nats(service, body, url, venue, endpoint)
    return nats


def test_round_trip_answers_seq_and_events_once_durable(tmp_path: Path,
                                                         transport: Run) -> None:
    service = sqlite_service(tmp_path)

    async def body(client: WriterClient) -> None:
        seq, events = await client.submit(Deposit(0, 0, ACCOUNT, "USDT", 10**8 * 100_000))
        assert seq == 1 and isinstance(events[0], BalanceChanged)
        seq, events = await client.submit(order(link="first"))
        assert seq == 2
        assert isinstance(events[0], OrderAccepted) and events[0].order_link_id == "first"
        # Durable when answered: the journal holds it, and the events are the writer's own.
        assert service.sequencer.journal.last_seq() == 2
        assert service.acked_seq(ACCOUNT) == 2

    async def run() -> None:
        await transport(service, body)
        await service.close()

    asyncio.run(run())
    again = open_service_journal(tmp_path)
    assert [c.seq for c in journaled(again)] == [1, 2]
    again.close()


def writer_endpoint(service: ExchangeService) -> CommandEndpoint:
    """The endpoint as `perpx serve` opens it: durable seq for event-less replies, funding."""
    return CommandEndpoint(service.submit, service.stopped.is_set,
                           durable_seq=lambda: service.sequencer.durable_seq,
                           fund=service.fund_for_gateway, submit_entries=service.submit_entries)


def test_a_command_without_events_carries_the_seq_it_was_durable_at(
        tmp_path: Path, transport: Run) -> None:
    service = sqlite_service(tmp_path)

    async def body(client: WriterClient) -> None:
        seq, events = await client.submit(Deposit(0, 0, ACCOUNT, "USDT", 10**8 * 100_000))
        assert seq == 1 and events
        # Nothing open: a cancel-all changes nothing and emits no event, yet it is durable.
        seq, events = await client.submit(CancelAllOrders(0, 0, ACCOUNT, "BTCUSDT"))
        assert events == [] and seq >= 2
        assert service.sequencer.journal.last_seq() >= seq

    async def run() -> None:
        await transport(service, body, writer_endpoint(service))
        await service.close()

    asyncio.run(run())


def test_demo_funding_through_the_writer_credits_once(tmp_path: Path, transport: Run) -> None:
    service = sqlite_service(tmp_path)

    async def body(client: WriterClient) -> None:
        # Two gateways meet the new key at once: both ask, the writer funds once.
        seqs = await asyncio.gather(*(client.fund(ACCOUNT, "1000") for _ in range(5)))
        assert all(seq >= 1 for seq in seqs)
        deposits = [c for c in journaled(service.sequencer.journal)
                    if isinstance(c, Deposit) and c.account_id == ACCOUNT]
        assert len(deposits) == 1 and deposits[0].amount_atoms == 1000 * 10**8

    async def run() -> None:
        await transport(service, body, writer_endpoint(service))
        await service.close()

    asyncio.run(run())


def test_a_writer_without_funding_refuses_it(tmp_path: Path) -> None:
    service = sqlite_service(tmp_path)

    async def body(client: WriterClient) -> None:
        with pytest.raises(Refused):
            await client.fund(ACCOUNT, "1000")

    async def run() -> None:
        await over_unix(service, body, tmp_path / "w.sock")
        await service.close()

    asyncio.run(run())


def test_many_concurrent_requests_share_group_commits(tmp_path: Path, transport: Run) -> None:
    service = sqlite_service(tmp_path)
    count = 200

    async def body(client: WriterClient) -> None:
        await client.submit(Deposit(0, 0, ACCOUNT, "USDT", 10**8 * 10_000_000))
        batches = service.sequencer.batches
        answers = await asyncio.gather(*(client.submit(order(str(50_000 + i)))
                                         for i in range(count)))
        seqs = [seq for seq, _ in answers]
        assert sorted(seqs) == list(range(2, count + 2))
        for seq, events in answers:
            assert all(event.seq == seq for event in events)
            assert isinstance(events[0], OrderAccepted)
        assert service.sequencer.batches - batches < count  # group commit did its work

    async def run() -> None:
        await transport(service, body)
        await service.close()

    asyncio.run(run())


def test_the_reply_waits_for_the_journal(tmp_path: Path, transport: Run) -> None:
    journal = HeldJournal()
    service = ExchangeService(SPECS, journal, maker=False)

    async def body(client: WriterClient) -> None:
        await client.submit(Deposit(0, 0, ACCOUNT, "USDT", 10**8 * 100_000))
        journal.hold()
        pending = asyncio.ensure_future(client.submit(order()))
        while not journal.waiting.is_set():
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)
        # Applied by the writer's engine, not durable: no answer yet.
        assert service.engine.last_seq == 2 and journal.last_seq() == 1
        assert not pending.done()
        journal.release()
        seq, _ = await pending
        assert seq == 2 and journal.last_seq() == 2

    async def run() -> None:
        await transport(service, body)
        await service.close()

    asyncio.run(run())


def test_a_bad_body_is_refused_and_changes_nothing(tmp_path: Path, transport: Run) -> None:
    service = sqlite_service(tmp_path)

    async def body(client: WriterClient) -> None:
        with pytest.raises(Refused, match="corrupt command body"):
            await client.submit(Garbage(0, 0, "USDT"))  # type: ignore[arg-type]
        assert service.engine.last_seq == 0
        seq, _ = await client.submit(Deposit(0, 0, ACCOUNT, "USDT", 1))  # still serving
        assert seq == 1

    async def run() -> None:
        await transport(service, body)
        await service.close()

    asyncio.run(run())


def test_a_stopped_writer_refuses_unread(tmp_path: Path, transport: Run) -> None:
    service = sqlite_service(tmp_path)

    async def body(client: WriterClient) -> None:
        service.stopped.set()
        with pytest.raises(Refused, match="stopped"):
            await client.submit(Deposit(0, 0, ACCOUNT, "USDT", 1))
        assert service.engine.last_seq == 0

    async def run() -> None:
        await transport(service, body)
        await service.close()

    asyncio.run(run())


def test_bad_frames_on_the_socket(tmp_path: Path) -> None:
    service = sqlite_service(tmp_path)
    path = tmp_path / "writer.sock"

    async def run() -> None:
        endpoint = CommandEndpoint(service.submit, service.stopped.is_set)
        await endpoint.start_unix(path)
        reader, writer = await asyncio.open_unix_connection(str(path))
        # A well-framed request with junk in it: refused under its id, the connection lives.
        writer.write(frame(41, b"\x01\xff\x00junk"))
        head = await reader.readexactly(HEADER.size)
        length, request_id = HEADER.unpack(head)
        reply = await reader.readexactly(length - 8)
        assert request_id == 41 and reply[0] == REFUSED
        # A length no request has: refused under id 0, then the writer hangs up.
        writer.write(struct.pack(">I", 1 << 30))
        length, request_id = HEADER.unpack(await reader.readexactly(HEADER.size))
        reply = await reader.readexactly(length - 8)
        assert request_id == 0 and reply[0] == REFUSED and b"bad frame length" in reply
        assert await reader.read() == b""
        writer.close()
        assert service.engine.last_seq == 0 and service.sequencer.journal.last_seq() == 0
        assert endpoint.refused == 2
        await endpoint.close()
        assert not path.exists()
        await service.close()

    asyncio.run(run())


def test_no_writer_is_a_clear_not_sent(tmp_path: Path) -> None:
    async def run() -> None:
        client = UnixWriterClient(tmp_path / "nobody.sock", timeout_s=1)
        with pytest.raises(WriterUnavailable, match="not sent"):
            await client.submit(Deposit(0, 0, ACCOUNT, "USDT", 1))
        await client.close()

    asyncio.run(run())


@pytest.mark.service
def test_no_nats_responder_is_a_clear_not_delivered(nats_url: str) -> None:
    async def run() -> None:
        client = NatsWriterClient(nats_url, "NOBODY_HERE", timeout_s=2)
        with pytest.raises(WriterUnavailable, match="no writer answers"):
            await client.submit(Deposit(0, 0, ACCOUNT, "USDT", 1))
        await client.close()

    asyncio.run(run())


def test_writer_gone_mid_request_is_an_unknown_outcome(tmp_path: Path, transport: Run) -> None:
    """The writer dies holding the command: the client says so, and never resends it."""
    journal = HeldJournal()
    service = ExchangeService(SPECS, journal, maker=False)
    endpoint = CommandEndpoint(service.submit, service.stopped.is_set)

    async def body(client: WriterClient) -> None:
        if isinstance(client, NatsWriterClient):
            client.timeout_s = 1.0  # NATS tells a silent writer only by the timeout
        journal.hold()
        pending = asyncio.ensure_future(client.submit(Deposit(0, 0, ACCOUNT, "USDT", 1)))
        while not journal.waiting.is_set():
            await asyncio.sleep(0.005)
        await endpoint.abort()  # what the socket and NATS see of a kill -9
        with pytest.raises(OutcomeUnknown, match="may have been journaled"):
            await pending
        journal.release()

    async def run() -> None:
        await transport(service, body, endpoint)
        await service.sequencer.drain()
        # The command was journaled after all: exactly what a blind resend would double.
        assert journal.last_seq() == 1
        await service.close()

    asyncio.run(run())


async def _commit_unanswered(writer: ExchangeService, endpoint: CommandEndpoint,
                             journal: HeldSqliteJournal, client: UnixWriterClient,
                             rid: bytes) -> int:
    """Send order "exact" with `rid`, drop its reply once it is being committed (as a kill -9
    after the commit would), let the commit land; return the order's seq."""
    journal.hold()
    pending = asyncio.ensure_future(client.submit(order(link="exact"), rid))
    while not journal.waiting.is_set():
        await asyncio.sleep(0.005)
    await endpoint.abort()  # the reply never leaves
    with pytest.raises(OutcomeUnknown):
        await pending
    journal.release()
    await writer.sequencer.drain()  # the commit lands: the order is journaled
    return int(journal.last_seq())


def test_a_command_resent_to_the_next_writer_with_its_request_id_is_answered_exactly(
        tmp_path: Path) -> None:
    """The writer dies after journaling the command, before answering; the next one
    (recovered from the journal, as a standby taking over) answers the resend with the
    same events and applies nothing twice."""
    from perpx.store import open_journal
    from perpx.store.journal import new_request_id
    from support.journals import HeldSqliteJournal

    location = str(tmp_path / "journal.db")
    socket_path = tmp_path / "writer.sock"
    rid = new_request_id()
    journal = HeldSqliteJournal(location)
    first = ExchangeService(SPECS, journal, maker=False)
    endpoint = CommandEndpoint(first.submit, first.stopped.is_set)

    async def run() -> None:
        await first.submit(Deposit(0, 0, ACCOUNT, "USDT", 10**15))
        await endpoint.start_unix(socket_path)
        client = UnixWriterClient(socket_path, timeout_s=5)
        seq = await _commit_unanswered(first, endpoint, journal, client, rid)
        await first.close()
        await endpoint.close()
        # The next writer: rebuilt from the journal, its window refilled from the tail.
        second = ExchangeService(SPECS, open_journal(location), maker=False)
        again = CommandEndpoint(second.submit, second.stopped.is_set)
        await again.start_unix(socket_path)
        try:
            answer_seq, events = await client.submit(order(link="exact"), rid)
            assert answer_seq == seq and isinstance(events[0], OrderAccepted)
            assert second.engine.last_seq == seq and second.sequencer.resent == 1
        finally:
            await client.close()
            await again.close()
            await second.close()

    asyncio.run(run())
    reader = open_journal(location, readonly=True)
    places = [c for c in journaled(reader) if isinstance(c, PlaceOrder)]
    reader.close()
    assert [p.order_link_id for p in places] == ["exact"]


def test_a_resend_older_than_the_next_writers_snapshot_is_answered_byte_for_byte(
        tmp_path: Path) -> None:
    """As above, but a snapshot is stored after the commit and before the resend: the next
    writer starts from it, so the command is not in the tail it replays. Its events are
    recomputed by replay from the snapshot before it; the reply is the very bytes the first
    writer would have sent, and nothing is applied twice."""
    from perpx.core.events import Event
    from perpx.store import open_history, open_journal, open_snapshots
    from perpx.store.journal import new_request_id
    from perpx.transport.wire import Wire
    from support.journals import HeldSqliteJournal

    location = str(tmp_path / "journal.db")
    socket_path = tmp_path / "writer.sock"
    rid = new_request_id()
    journal = HeldSqliteJournal(location)
    first = ExchangeService(SPECS, journal, maker=False, history=open_history(location),
                            snapshots=open_snapshots(location), snapshot_every=1)
    endpoint = CommandEndpoint(first.submit, first.stopped.is_set)
    answered: dict[int, list[Event]] = {}  # what the first writer made of each command
    first.sequencer.subscribe(lambda command, events: answered.setdefault(command.seq, events))

    async def run() -> None:
        await first.submit(Deposit(0, 0, ACCOUNT, "USDT", 10**15))
        assert first.snapshotter is not None
        await asyncio.to_thread(first.snapshotter.wait, 30.0)  # a snapshot before the order
        await endpoint.start_unix(socket_path)
        client = UnixWriterClient(socket_path, timeout_s=5)
        seq = await _commit_unanswered(first, endpoint, journal, client, rid)
        await asyncio.to_thread(first.snapshotter.wait, 30.0)  # and a snapshot after it
        await first.close()
        await endpoint.close()
        second = ExchangeService(SPECS, open_journal(location), maker=False,
                                 history=open_history(location),
                                 snapshots=open_snapshots(location))
        assert second.recovery.snapshot_seq == seq and second.recovery.replayed == 0
        assert second.sequencer.recorded(rid) == seq
        again = CommandEndpoint(second.submit, second.stopped.is_set)
        await again.start_unix(socket_path)
        try:
            answer_seq, events = await client.submit(order(link="exact"), rid)
            assert answer_seq == seq and isinstance(events[0], OrderAccepted)
            wire = Wire()
            assert wire.ok(events) == wire.ok(answered[seq])
            assert second.sequencer.recomputed == 1 and second.sequencer.resent == 1
            assert second.engine.last_seq == seq and second.sequencer.journal.last_seq() == seq
        finally:
            await client.close()
            await again.close()
            await second.close()

    asyncio.run(run())
    reader = open_journal(location, readonly=True)
    places = [c for c in journaled(reader) if isinstance(c, PlaceOrder)]
    reader.close()
    assert [p.order_link_id for p in places] == ["exact"]


def test_serve_opens_the_endpoint_only_when_asked_and_refuses_during_shutdown(
        tmp_path: Path) -> None:
    from perpx.cli import open_endpoint
    from perpx.config import ServeSettings

    service = sqlite_service(tmp_path)
    path = tmp_path / "serve.sock"

    async def run() -> None:
        assert await open_endpoint(ServeSettings(), service) is None  # default: off
        endpoint = await open_endpoint(ServeSettings(command_socket=path), service)
        assert endpoint is not None and path.is_socket()
        client = UnixWriterClient(path)
        assert (await client.submit(Deposit(0, 0, ACCOUNT, "USDT", 1)))[0] == 1
        await service.close()  # a shutdown: the sequencer closes before the endpoint
        with pytest.raises(Refused, match="stopped"):
            await client.submit(Deposit(0, 0, ACCOUNT, "USDT", 1))
        assert service.fatal is None  # a shutdown, not a failure
        await client.close()
        await endpoint.close()

    asyncio.run(run())


# -- request ids (issue #15: exact retries) ---------------------------------------------------


def test_a_request_id_rides_beside_the_command_and_unknown_bytes_are_refused() -> None:
    from perpx.store.codec import CodecError
    from perpx.store.journal import new_request_id
    from perpx.transport.wire import Wire

    wire = Wire()
    rid = new_request_id()
    assert wire.command(wire.request(order(), rid)) == (order(), rid)
    assert wire.command(wire.request(order())) == (order(), None)
    with pytest.raises(ValueError):
        wire.request(order(), b"short")
    with pytest.raises(CodecError):
        wire.command(wire.request(order(), rid)[:17])


def test_a_command_resent_with_its_request_id_is_journaled_once(transport: Run,
                                                                tmp_path: Path) -> None:
    from perpx.store.journal import new_request_id

    service = sqlite_service(tmp_path)
    rid = new_request_id()

    async def body(client: WriterClient) -> None:
        await client.submit(Deposit(0, 0, ACCOUNT, "USDT", 10**15))
        first = await client.submit(order(link="once"), rid)
        # The same request again (a gateway whose answer was lost): the first answer, again.
        assert await client.submit(order(link="once"), rid) == first
        assert isinstance(first[1][0], OrderAccepted)

    asyncio.run(transport(service, body))
    places = [c for c in journaled(service.sequencer.journal) if isinstance(c, PlaceOrder)]
    assert len(places) == 1
    ids = service.sequencer.journal.request_ids()
    assert [seq for seq, r in ids if r == rid] == [places[0].seq]
    assert len(ids) == 2  # the deposit came without one: the writer gave it its own


def test_a_request_whose_answer_is_gone_is_lost_not_resent(tmp_path: Path) -> None:
    from perpx.store.journal import new_request_id
    from perpx.transport import OutcomeLost

    service = sqlite_service(tmp_path)
    rid = new_request_id()
    service.sequencer.remember(rid, 1, None)  # as a takeover from a later snapshot leaves it

    async def body(client: WriterClient) -> None:
        with pytest.raises(OutcomeLost, match="seq 1"):
            await client.submit(order(), rid)

    asyncio.run(over_unix(service, body, tmp_path / "writer.sock"))
    assert service.fatal is None and service.engine.last_seq == 0


@pytest.mark.parametrize("together", [True, False])
def test_a_batch_is_applied_in_order_once_and_a_resend_applies_only_the_rest(
        tmp_path: Path, transport: Run, together: bool) -> None:
    """One request carries a batch; resent whole with the same ids, nothing applies twice.

    The resend names two commands already applied (sent alone, as a leader that died after
    journaling a prefix of the batch would hold them) and one not: those two are answered
    with their recorded events, the third is applied after them. An endpoint without
    `submit_all` (`together` False) submits a batch's commands in turn: the same answers.
    """
    service = sqlite_service(tmp_path)
    endpoint = (writer_endpoint(service) if together
                else CommandEndpoint(service.submit, service.stopped.is_set))
    ids = [uuid.uuid4().bytes for _ in range(3)]

    async def body(client: WriterClient) -> None:
        await client.submit(Deposit(0, 0, ACCOUNT, "USDT", 10**8 * 100_000))
        batches = service.sequencer.batches
        answers = await client.submit_all([order("60000", "a"), order("60000", "a"),
                                           order("60001", "b")], [uuid.uuid4().bytes
                                                                  for _ in range(3)])
        assert [seq for seq, _ in answers] == [2, 3, 4]
        assert isinstance(answers[0][1][0], OrderAccepted)
        assert not isinstance(answers[1][1][0], OrderAccepted)  # "a" taken by the first
        assert isinstance(answers[2][1][0], OrderAccepted)
        if together:
            assert service.sequencer.batches == batches + 1  # one group commit for all
        first = [await client.submit(order("59000", f"r{n}"), ids[n]) for n in range(2)]
        again = await client.submit_all([order("59000", f"r{n}") for n in range(3)], ids)
        assert again[:2] == first
        assert again[2][0] == first[1][0] + 1
        assert service.sequencer.journal.last_seq() == again[2][0]

    async def run() -> None:
        await transport(service, body, endpoint)
        await service.close()

    asyncio.run(run())
