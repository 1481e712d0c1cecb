"""Frames read together: a gateway's commands go to `submit_entries` as one group, in order.

The endpoint cuts every whole frame of one read and submits consecutive commands that carry a
request id together (`CommandEndpoint._frames`); anything else is answered alone, in its
place. What a client sees must not change: one reply per frame under its id, the commands
applied in the order they were sent, each answer the one `Wire.ok` gives.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_transport import ACCOUNT, order, sqlite_service, writer_endpoint

from perpx.bus.codec import Durable
from perpx.core.commands import Command, Deposit
from perpx.core.events import OrderAccepted
from perpx.store.journal import new_request_id
from perpx.transport.wire import FAILED, HEADER, LOST, OK, REFUSED, Wire, frame


async def _read_replies(reader: asyncio.StreamReader, count: int) -> dict[int, bytes]:
    replies: dict[int, bytes] = {}
    while len(replies) < count:
        length, request_id = HEADER.unpack(await reader.readexactly(HEADER.size))
        replies[request_id] = await reader.readexactly(length - 8)
    return replies


def test_frames_read_together_are_grouped_answered_alone_and_kept_in_order(
        tmp_path: Path) -> None:
    service = sqlite_service(tmp_path)
    endpoint = writer_endpoint(service)
    groups: list[int] = []  # commands per `submit_entries` call
    submit_entries = service.submit_entries

    async def counted(commands: list[Command], rids: list[bytes | None]) -> list[Durable]:
        groups.append(len(commands))
        return await submit_entries(commands, rids)

    endpoint._submit_entries = counted
    wire = Wire()
    path = tmp_path / "w.sock"

    async def run() -> None:
        await endpoint.start_unix(path)
        reader, writer = await asyncio.open_unix_connection(str(path))
        deposit = Deposit(0, 0, ACCOUNT, "USDT", 10**8 * 10_000_000)
        frames = [frame(1, wire.request(deposit, new_request_id()))]
        frames += [frame(2 + n, wire.request(order(str(50_000 + n)), new_request_id()))
                   for n in range(3)]
        frames.append(frame(5, Wire.fund_request(ACCOUNT + 1, "1000")))  # answered alone
        frames += [frame(6 + n, wire.request(order(str(51_000 + n)), new_request_id()))
                   for n in range(2)]
        frames.append(frame(8, bytes([0xF1]) + new_request_id() + b"\x01junk"))  # refused
        frames.append(frame(9, wire.request(order("52000"))))  # no request id: alone
        last = frame(10, wire.request(order("53000"), new_request_id()))
        data = b"".join(frames) + last[:7]
        writer.write(data)  # all but the last frame's tail in one write
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(last[7:])  # the rest of a frame cut across reads
        replies = await _read_replies(reader, 10)
        assert replies[8][0] == REFUSED
        answered = {rid: wire.reply(body) for rid, body in replies.items() if rid != 8}
        # The commands applied in the order sent (the funding request takes its own way to
        # the sequencer, `fund_for_gateway`, as it always did: its deposit is one of them).
        seqs = [answered[rid][0] for rid in (1, 2, 3, 4, 6, 7, 9, 10)]
        assert seqs == sorted(seqs) and len(set(seqs)) == 8
        funded = [c for c in service.sequencer.journal.read(1)
                  if isinstance(c, Deposit) and c.account_id == ACCOUNT + 1]
        assert len(funded) == 1 and funded[0].seq not in seqs
        for rid in (2, 3, 4, 6, 7, 9, 10):
            seq, events = answered[rid]
            assert isinstance(events[0], OrderAccepted) and events[0].seq == seq
            # The very bytes a command answered alone gets.
            assert replies[rid] == wire.ok(events, 0)
        writer.close()
        await endpoint.close()
        await service.close()
        assert endpoint.answered == 9 and endpoint.refused == 1

    asyncio.run(run())
    assert groups[:2] == [4, 2]  # the deposit and three orders, then two orders
    # Then the order without a request id, alone (`handle`), and the last order, when its
    # frame was whole.
    assert groups[2:] == [1, 1]


def test_a_lost_resend_in_a_group_costs_the_others_nothing(tmp_path: Path) -> None:
    """A group holding a resend whose outcome is gone: it is LOST, the rest are answered.

    The group is answered one by one after its `submit_entries` failed; the commands that call
    applied are answered from the window, so the journal holds each once.
    """
    service = sqlite_service(tmp_path)
    lost = new_request_id()
    # As a takeover from a later snapshot leaves it (past the journal: its replay fails).
    service.sequencer.remember(lost, 1000, None)
    endpoint = writer_endpoint(service)
    wire = Wire()
    path = tmp_path / "w.sock"

    async def run() -> None:
        await endpoint.start_unix(path)
        reader, writer = await asyncio.open_unix_connection(str(path))
        deposit = Deposit(0, 0, ACCOUNT, "USDT", 10**8 * 10_000_000)
        writer.write(frame(1, wire.request(deposit, new_request_id()))
                     + frame(2, wire.request(order(), lost))
                     + frame(3, wire.request(order("59000"), new_request_id())))
        replies = await _read_replies(reader, 3)
        assert replies[2][0] == LOST and b"seq 1000" in replies[2]
        assert replies[1][0] == OK and replies[3][0] == OK
        assert wire.reply(replies[1])[0] == 1 and wire.reply(replies[3])[0] == 2
        writer.close()
        await endpoint.close()
        assert service.sequencer.journal.last_seq() == 2 and service.fatal is None
        await service.close()

    asyncio.run(run())


def test_a_group_to_a_stopped_writer_is_refused_unread(tmp_path: Path) -> None:
    service = sqlite_service(tmp_path)
    endpoint = writer_endpoint(service)
    wire = Wire()
    path = tmp_path / "w.sock"

    async def run() -> None:
        await endpoint.start_unix(path)
        service.stopped.set()
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"".join(frame(n, wire.request(order(), new_request_id()))
                              for n in range(3)))
        replies = await _read_replies(reader, 3)
        assert all(reply[0] == REFUSED for reply in replies.values())
        assert FAILED not in {reply[0] for reply in replies.values()}
        writer.close()
        await endpoint.close()
        assert service.engine.last_seq == 0 and endpoint.refused == 3
        await service.close()

    asyncio.run(run())
