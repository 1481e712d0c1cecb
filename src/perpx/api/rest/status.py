"""GET /perpx/status: the state of the service, read-only and public (a perpx extension).

Bybit's `/v5/system/status` answers maintenance windows only; an operator (and the web page's
operator view) also wants the journal's position, how far reads trail it and how many clients
are connected. The answer holds counts only, nothing of any account or address, so it is
public like the market endpoints (same per-address throttle); the path is outside `/v5` so no
client mistakes it for Bybit's. Operators who would rather not publish their connection count
block `/perpx/` at their proxy (docs/security.md).
"""

from __future__ import annotations

import time
from typing import Any

from perpx.api.context import Access, Context, Endpoint

PATH = "/perpx/status"


async def status(ctx: Context) -> dict[str, Any]:
    """Return the journal seq, the durable (readable) seq, their gap and the connection counts.

    `seq` is the last command the writer sequenced (in a gateway: the last it has read, so
    its lag is how far its follower trails what it knows), `durableSeq` the last one reads
    show, `journalLag` the commands in between (journaled or being journaled, not yet
    readable). `processes` lists the processes `perpx serve` supervises for this venue
    (``{"projectors": {count, restarts, list}}``; empty when none). `connections` counts
    this process's open HTTP and WebSocket connections, `wsSessions` its WebSocket
    sessions by endpoint (public, private, trade).
    """
    service = ctx.service
    seq = service.engine.last_seq
    durable = service.durable.seq
    server = ctx.server
    guard = server.connections if server is not None else None
    sessions = dict(server.sessions) if server is not None else {}
    report = getattr(service, "process_status", None)  # a gateway's venue has none
    return {"seq": str(seq), "durableSeq": str(durable), "journalLag": str(max(0, seq - durable)),
            "connections": "" if guard is None else str(guard.open),
            "connectionsRefused": "" if guard is None else str(guard.refused),
            "wsSessions": {kind: str(sessions.get(kind, 0))
                           for kind in ("public", "private", "trade")},
            "uptimeMs": "" if server is None else
            str(int((time.monotonic() - server.started_s) * 1000)),
            "processes": report() if report is not None else {},
            "demo": service.demo, "stopped": service.stopped.is_set()}


ROUTES = [Endpoint("GET", PATH, status, Access.PUBLIC)]
