"""The bytes of the command path, shared by both transports, and what a failure means.

A request is one core command in the journal's own encoding (`perpx.store.codec`, format byte
then msgpack); the writer replaces its `seq` and `ts_ms`, as the sequencer always does. A
command may be preceded by a byte ``REQ`` (never a codec's format byte) and its 16-byte
request id (`perpx.store.journal.new_request_id`, drawn by the gateway where the request
entered), which the writer journals beside it: a gateway that lost the answer resends the
same bytes, and the writer answers a request id it already holds with the recorded outcome
instead of applying the command twice. A reply is a status byte, then:

- ``OK``: the command's entry exactly as the event bus carries it (`perpx.bus.codec`): an
  `EventBatch` of the one `Durable` (seq, time, events). A command that emitted no event
  (a `Tick`, a cancel-all with nothing open) is durable too: it is answered with the
  writer's durable seq when it was acknowledged (at or past its own seq), so a gateway that
  waits for its reads to pass the reply's seq sees everything durable before the answer;
- ``MANY``-requests (a first byte ``MANY``, never a codec's format byte) carry a batch's
  commands (a msgpack array of command requests as above, each with its request id), to be
  applied in their order with nothing between them (`ExchangeService.submit_all`); the
  ``OK`` reply is a msgpack array of each command's ``OK`` reply, any other reply is the
  whole batch's. Resent whole with the same ids, the writer answers the journaled ones from
  its window and applies the rest, still in order;
- ``FUNDED``-requests (a first byte ``FUND``, never a codec's format byte) ask the writer to
  credit an API key's demo funds once (`ExchangeService.ensure_funded`), so that two
  gateways seeing a new key at once cannot both fund it; the reply is ``OK`` as above, with
  no events and the durable seq;
- ``REFUSED``: a UTF-8 reason; the command was not sequenced (unreadable, or the writer had
  already stopped), so nothing changed;
- ``FAILED``: a UTF-8 reason; the writer failed while holding the command (journal failure,
  broken invariant): it may or may not be in the journal.
- ``LOST``: a UTF-8 reason; the request id was journaled once, but this writer could not
  tell its events (`perpx.sequencer.OutcomeNotKept`: the replay that recomputes the events of
  a command older than the writer's snapshot failed): applied exactly once, outcome to be
  looked up.

On the Unix socket each message is a frame: a 4-byte big-endian length of the rest, an
8-byte request id (the client's, echoed so that many requests share a connection), then the
request or the reply. On NATS the message body is the request or reply itself (NATS pairs
them through the reply inbox).

What a gateway may do after a failure (`docs/architecture.md`, "The command path"):
`NotSequenced` is safe to retry, at this writer or at the leader the leader record names;
`OutcomeUnknown` is safe to retry only with the same request id (the writer answers a
journaled one from its window; without an id a resend could be a second order, and an order
link id protects only while the first order is still open, see
`perpx.core.orders.rules.check_order_link_id`). `OutcomeLost` is final: the command was
applied once and its answer is gone, so the gateway tells its caller to look.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import msgspec

from perpx.bus.codec import BatchCodec, Durable
from perpx.core.commands import Command
from perpx.core.events import Event
from perpx.store.codec import CodecError, CommandCodec

OK = 0
REFUSED = 1
FAILED = 2
LOST = 3
FUND = 0xF0  # first byte of a demo-funding request (command bodies start with 1, 2 or 3)
REQ = 0xF1  # first byte of a command with its request id
MANY = 0xF2  # first byte of a batch's commands
REQUEST_ID_BYTES = 16

HEADER = struct.Struct(">IQ")  # frame length (of what follows it), request id
LENGTH = struct.Struct(">I")
MAX_FRAME = 1 << 20  # a command is ~100 bytes; anything near this is not a request
_OK = bytes([OK])


class WriterError(RuntimeError):
    """The writer did not answer a command with its events."""


class NotSequenced(WriterError):
    """The command certainly was not sequenced: retrying it is safe."""


class WriterUnavailable(NotSequenced):
    """No writer to send to (no socket, connection refused, no NATS responder)."""


class Refused(NotSequenced):
    """The writer read the request and refused it before sequencing (see the reason)."""


class OutcomeUnknown(WriterError):
    """The command reached the writer (or may have) and no answer came: it may be journaled.

    Resend it only with the same request id (the writer then answers a journaled one with
    its recorded outcome); without one, report the unknown outcome or look for its effect.
    """


class OutcomeLost(OutcomeUnknown):
    """The command was journaled once, and the writer holding it no longer has its answer.

    Final: resending cannot bring the answer back; the caller must look for the effect.
    """


def command_subject(venue: str) -> str:
    """Return the NATS subject a venue's writer answers commands on."""
    return f"perpx.{venue}.commands"


class Wire:
    """Encode and decode requests and replies; one per connection or task."""

    def __init__(self) -> None:
        self.commands = CommandCodec()
        self.batches = BatchCodec()

    def request(self, command: Command, request_id: bytes | None = None) -> bytes:
        """Return the request body of `command`, with its request id if it has one."""
        if request_id is None:
            return self.commands.encode(command)
        if len(request_id) != REQUEST_ID_BYTES:
            raise ValueError(f"a request id is {REQUEST_ID_BYTES} bytes")
        return bytes([REQ]) + request_id + self.commands.encode(command)

    def command(self, body: bytes) -> tuple[Command, bytes | None]:
        """Return the command in a request body and its request id (None if it has none).

        Raise `CodecError` if there is no command.
        """
        if body and body[0] == REQ:
            if len(body) <= 1 + REQUEST_ID_BYTES:
                raise CodecError("request id without a command")
            start = 1 + REQUEST_ID_BYTES
            return self.commands.decode(body[start:]), bytes(body[1:start])
        return self.commands.decode(body), None

    def requests(self, commands: Sequence[Command], request_ids: Sequence[bytes]) -> bytes:
        """Return the request body of a batch's `commands`, each with its request id."""
        return bytes([MANY]) + msgspec.msgpack.encode(
            [self.request(command, rid) for command, rid in zip(commands, request_ids,
                                                                strict=True)])

    def many(self, body: bytes) -> list[tuple[Command, bytes | None]] | None:
        """Return the commands of a batch request and their ids; None for another request.

        Raise `CodecError` if the batch is unreadable.
        """
        if not body or body[0] != MANY:
            return None
        try:
            items = msgspec.msgpack.decode(body[1:], type=list[bytes])
        except (msgspec.DecodeError, msgspec.ValidationError) as bad:
            raise CodecError(f"unreadable batch request: {bad}") from None
        if not items:
            raise CodecError("a batch request without commands")
        return [self.command(item) for item in items]

    def ok_all(self, entries: list[Durable], durable_seq: int = 0) -> bytes:
        """Return the reply of a durable batch: each command's `ok_entry`."""
        return bytes([OK]) + msgspec.msgpack.encode(
            [self.ok_entry(entry, durable_seq) for entry in entries])

    def replies(self, body: bytes) -> list[tuple[int, list[Event]]]:
        """Return each command's (seq, events) of a batch's OK reply; raise as `reply` does."""
        if not body or body[0] != OK:
            self.reply(body)  # raises the error it means
            raise OutcomeUnknown("a batch reply with a command's answer")
        try:
            items = msgspec.msgpack.decode(body[1:], type=list[bytes])
        except (msgspec.DecodeError, msgspec.ValidationError) as bad:
            raise OutcomeUnknown(f"unreadable batch reply from the writer: {bad}") from bad
        return [self.reply(item) for item in items]

    def ok(self, events: list[Event], durable_seq: int = 0) -> bytes:
        """Return the reply of a durable command that emitted `events` (`ok_entry`)."""
        return self.ok_entry(Durable.from_events(events), durable_seq)

    def ok_entry(self, entry: Durable, durable_seq: int = 0) -> bytes:
        """Return the reply of a durable command from its entry.

        The entry's msgpack is made once and kept on it (`BatchCodec.body`): the writer's
        entry of a command (`Sequencer.submit_all`) is the one its bus batch splices too.
        Every event of a command carries the command's seq and time, as its entry does; a
        command without one is answered with `durable_seq`, the writer's durable seq when it
        was acknowledged.
        """
        if not entry.events:
            entry = Durable(durable_seq, 0, [])
        return _OK + self.batches.encode_entry(entry)

    @staticmethod
    def fund_request(account_id: int, demo_funds: str) -> bytes:
        """Return the request to credit `account_id` its key's `demo_funds` once."""
        return bytes([FUND]) + msgspec.msgpack.encode((account_id, demo_funds))

    @staticmethod
    def funding(body: bytes) -> tuple[int, str] | None:
        """Return (account, demo funds) of a funding request; None for a command's body."""
        if not body or body[0] != FUND:
            return None
        try:
            account_id, demo_funds = msgspec.msgpack.decode(body[1:], type=tuple[int, str])
        except (msgspec.DecodeError, msgspec.ValidationError) as bad:
            raise CodecError(f"unreadable funding request: {bad}") from None
        return account_id, demo_funds

    @staticmethod
    def error(status: int, reason: str) -> bytes:
        """Return a REFUSED, FAILED or LOST reply."""
        return bytes([status]) + reason.encode("utf-8", "replace")

    def reply(self, body: bytes) -> tuple[int, list[Event]]:
        """Return (seq, events) of an OK reply; raise the `WriterError` another one means."""
        if not body:
            raise OutcomeUnknown("empty reply from the writer")
        status = body[0]
        if status == OK:
            try:
                entry = self.batches.decode(body[1:]).entries[0]
            except CodecError as bad:
                raise OutcomeUnknown(f"unreadable reply from the writer: {bad}") from bad
            return entry.seq, entry.events
        reason = bytes(body[1:]).decode("utf-8", "replace")
        if status == REFUSED:
            raise Refused(f"the writer refused the command: {reason}")
        if status == FAILED:
            raise OutcomeUnknown(f"the writer failed holding the command: {reason}")
        if status == LOST:
            raise OutcomeLost(reason)
        raise OutcomeUnknown(f"unknown reply status {status} from the writer")


def frame(request_id: int, body: bytes) -> bytes:
    """Return `body` framed for the socket under `request_id`."""
    return HEADER.pack(8 + len(body), request_id) + body
