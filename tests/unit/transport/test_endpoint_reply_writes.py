"""The replies of one group commit leave the socket together, each still its own frame."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_transport import ACCOUNT, order, sqlite_service

from perpx.core.commands import Deposit
from perpx.core.events import OrderAccepted
from perpx.transport import CommandEndpoint, UnixWriterClient
from perpx.transport.wire import frame, frame_pieces


def test_replies_answered_in_one_turn_share_one_write(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    service = sqlite_service(tmp_path)
    endpoint = CommandEndpoint(service.submit, service.stopped.is_set)
    writes: list[int] = []  # frames per write
    send = CommandEndpoint._send_replies

    def counted(self: CommandEndpoint, writer: asyncio.StreamWriter) -> None:
        writes.append(len(self._replies.get(writer, [])) // 2)  # a header and a body each
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


@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=300)), max_size=5))
def test_frame_pieces_joined_are_the_frames(replies: list[tuple[int, bytes]]) -> None:
    ids, bodies = [rid for rid, _ in replies], [body for _, body in replies]
    assert b"".join(frame_pieces(ids, bodies)) == b"".join(map(frame, ids, bodies))
