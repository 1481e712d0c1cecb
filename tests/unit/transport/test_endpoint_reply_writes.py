"""The replies of one group commit leave the socket together, each still its own frame."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_transport import ACCOUNT, order, sqlite_service

from perpx.core.commands import Deposit
from perpx.core.events import OrderAccepted
from perpx.transport import CommandEndpoint, UnixWriterClient


def test_replies_answered_in_one_turn_share_one_write(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    service = sqlite_service(tmp_path)
    endpoint = CommandEndpoint(service.submit, service.stopped.is_set)
    writes: list[int] = []  # frames per write
    send = CommandEndpoint._send_replies

    def counted(self: CommandEndpoint, writer: asyncio.StreamWriter) -> None:
        writes.append(len(self._replies.get(writer, [])))
        send(self, writer)

    monkeypatch.setattr(CommandEndpoint, "_send_replies", counted)
    count = 100

    async def run() -> None:
        await endpoint.start_unix(tmp_path / "w.sock")
        client = UnixWriterClient(tmp_path / "w.sock", timeout_s=5)
        try:
            await client.submit(Deposit(0, 0, ACCOUNT, "USDT", 10**8 * 10_000_000))
            writes.clear()
            answers = await asyncio.gather(*(client.submit(order(str(50_000 + i)))
                                             for i in range(count)))
        finally:
            await client.close()
            await endpoint.close()
            await service.close()
        # Each request has its own answer (the client pairs frames by request id).
        assert sorted(seq for seq, _ in answers) == list(range(2, count + 2))
        for seq, events in answers:
            assert isinstance(events[0], OrderAccepted) and events[0].seq == seq

    asyncio.run(run())
    assert sum(writes) == count
    assert len(writes) < count  # a group commit's replies went out in one write
    assert not endpoint._replies
