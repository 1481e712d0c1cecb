"""The command path between API gateways and the writer (issue #15, item 4).

A gateway hands the writer an encoded core command and gets back, once the command is
durable, its seq and its events. The writer side (`CommandEndpoint`) submits each command
through the service's own `submit`, so sequencing, group commit and the reply-after-durable
are exactly those of the in-process API. Two transports carry the same bytes
(`perpx.transport.wire`): a Unix domain socket (`UnixWriterClient`) and NATS request/reply
(`NatsWriterClient`); `docs/decisions.md` says which gateways use and why.

Failures are told apart by what a gateway may do next (`perpx.transport.wire`):
`NotSequenced` (the command certainly was not sequenced: retrying it, here or at a new
leader, is safe) and `OutcomeUnknown` (it may be journaled: resend it only with the same
request id, which the writer journals and answers from its window of recent ones).
"""

from __future__ import annotations

from perpx.transport.client import NatsWriterClient, UnixWriterClient, WriterClient
from perpx.transport.endpoint import CommandEndpoint, Submit
from perpx.transport.wire import (
    NotSequenced,
    OutcomeLost,
    OutcomeUnknown,
    Refused,
    WriterError,
    WriterUnavailable,
    command_subject,
)

__all__ = [
    "CommandEndpoint",
    "NatsWriterClient",
    "NotSequenced",
    "OutcomeLost",
    "OutcomeUnknown",
    "Refused",
    "Submit",
    "UnixWriterClient",
    "WriterClient",
    "WriterError",
    "WriterUnavailable",
    "command_subject",
]
