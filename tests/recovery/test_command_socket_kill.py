"""kill -9 of a `perpx serve --command-socket` writer with commands in flight on the socket.

Every command the client saw answered is in the journal (the reply came after durable); every
other one failed with a clear error that says whether it may have been journaled, and none
was resent by the client.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from perpx.convert import to_ticks
from perpx.core.commands import Deposit, PlaceOrder
from perpx.core.enums import OrderType, Side
from perpx.instruments import load_instruments
from perpx.store import open_journal
from perpx.transport import NotSequenced, OutcomeUnknown, UnixWriterClient
from support.serving import Server

ACCOUNT = 9001


def test_kill9_with_commands_in_flight_on_the_socket(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sock = tmp_path / "writer.sock"
    server = Server(data, None, extra=("--command-socket", str(sock)))
    assert any(f"commands: unix://{sock}" in line for line in server.output)
    spec = next(s for s in load_instruments() if s.symbol == "BTCUSDT")
    answered: list[int] = []
    unknown: list[str] = []
    not_sent: list[str] = []

    async def run() -> None:
        client = UnixWriterClient(sock, timeout_s=10)
        seq, _ = await client.submit(Deposit(0, 0, ACCOUNT, "USDT", 10**8 * 10_000_000))
        answered.append(seq)

        async def one(i: int) -> None:
            command = PlaceOrder(0, 0, ACCOUNT, "BTCUSDT", Side.BUY, OrderType.LIMIT, 1,
                                 to_ticks(spec, str(40_000 + i)), order_link_id=f"k{i}")
            try:
                seq, events = await client.submit(command)
            except OutcomeUnknown as failure:
                unknown.append(str(failure))
            except NotSequenced as failure:
                not_sent.append(str(failure))
            else:
                assert events[0].seq == seq
                answered.append(seq)

        async def killer() -> None:
            while len(answered) < 40:
                await asyncio.sleep(0.001)
            server.kill()

        tasks = [asyncio.ensure_future(one(i)) for i in range(2000)]
        await asyncio.gather(killer(), *tasks)
        await client.close()

    asyncio.run(run())
    assert len(answered) >= 40 and unknown, (len(answered), len(unknown), len(not_sent))
    assert all("may have been journaled" in why for why in unknown)
    assert len(answered) + len(unknown) + len(not_sent) == 2001
    journal = open_journal(str(data / "journal.db"), readonly=True)
    try:
        journaled = {command.seq for command in journal.read(1)}
    finally:
        journal.close()
    assert set(answered) <= journaled  # no acknowledged command is lost
    # Some in-flight commands were journaled without an answer: why a resend is unsafe.
    assert len(journaled) >= len(answered)
