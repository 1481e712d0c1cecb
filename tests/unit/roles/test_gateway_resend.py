"""A gateway's resends (issue #15): what may have reached a dead leader goes again, exactly.

`GatewayService._to_writer` is exercised on its own against scripted writer answers: a
command whose outcome is unknown is resent (with the same request id, which its caller
closes over) until a writer answers, for `leader_wait_s` from that failure; a lost answer
(`OutcomeLost`) is final. The whole path, with a real kill -9, is
`tests/recovery/test_gateway_failover.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from perpx.roles.gateway import GatewayService
from perpx.transport import OutcomeLost, OutcomeUnknown, WriterUnavailable


@dataclass
class _Gateway:
    """The fields `_to_writer` reads."""

    leader_wait_s: float = 0.5
    fatal: BaseException | None = None
    resends: int = 0
    sent: list[int] = field(default_factory=list)


def _script(gateway: _Gateway, answers: list[BaseException | int]
            ) -> Callable[[], Awaitable[int]]:
    async def send() -> int:
        answer = answers[min(len(gateway.sent), len(answers) - 1)]
        gateway.sent.append(len(gateway.sent))
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return send


def _run(gateway: _Gateway, send: Callable[[], Awaitable[int]]) -> int:
    return asyncio.run(GatewayService._to_writer(gateway, send))  # type: ignore[arg-type]


def test_an_unknown_outcome_is_resent_until_the_new_leader_answers() -> None:
    gateway = _Gateway()
    send = _script(gateway, [OutcomeUnknown("leader died"), WriterUnavailable("no one yet"),
                             WriterUnavailable("no one yet"), 42])
    assert _run(gateway, send) == 42
    assert len(gateway.sent) == 4 and gateway.resends == 1


def test_an_unknown_outcome_is_reported_when_no_leader_answers_in_time() -> None:
    gateway = _Gateway(leader_wait_s=0.2)
    send = _script(gateway, [OutcomeUnknown("leader died"), OutcomeUnknown("again")])
    with pytest.raises(OutcomeUnknown):
        _run(gateway, send)
    assert len(gateway.sent) >= 2


def test_a_lost_answer_is_final() -> None:
    gateway = _Gateway()
    send = _script(gateway, [OutcomeLost("journaled at seq 5, answer gone"), 42])
    with pytest.raises(OutcomeLost):
        _run(gateway, send)
    assert len(gateway.sent) == 1


def test_a_resend_that_finds_no_writer_in_time_stays_unknown_not_nothing_done() -> None:
    # The first attempt may be journaled: "the writer is unavailable, nothing was done"
    # would be a lie, whatever the resends met.
    gateway = _Gateway(leader_wait_s=0.2)
    send = _script(gateway, [OutcomeUnknown("leader died"), WriterUnavailable("no one")])
    with pytest.raises(OutcomeUnknown, match="resend"):
        _run(gateway, send)


def test_a_command_that_never_reached_a_writer_is_nothing_done() -> None:
    gateway = _Gateway(leader_wait_s=0.1)
    send = _script(gateway, [WriterUnavailable("no one")])
    with pytest.raises(WriterUnavailable):
        _run(gateway, send)
