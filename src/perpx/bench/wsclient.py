"""A cheap WebSocket subscriber for `perpx bench ws --client-processes K`: it counts frames.

`python -m perpx.bench.wsclient URL COUNT FIRST TOPIC...` opens COUNT connections to URL
(from loopback source addresses 127.0.0.{2 + (FIRST + i) // PER_ADDRESS}), subscribes each
to the topics and prints "ready" once every subscription is acknowledged. It then reads
commands on stdin: "start" marks the counts (answers "started"), "stop" prints one JSON line
{"counts": [frames per connection since the mark], "cut_off": connections the server
closed} and ends.

Each connection is a bare asyncio protocol that reads the frame headers and skips the
payloads (server frames are unmasked: a header gives the length), with no JSON decoding
and no per-frame task: what it costs per frame is a few slices, so the figure measures the
server and not the subscribers (a `websockets` client costs about as much per frame as the
server does). Pings are answered, so a run may last longer than the server's keepalive.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from typing import cast
from urllib.parse import urlsplit

from websockets.frames import Frame, Opcode

from perpx.api.server import run

PER_ADDRESS = 250  # under the server's cap of connections per address
CONNECT_AT_ONCE = 50  # handshakes in flight (the listen backlog is finite)


class Counter(asyncio.Protocol):
    """One subscriber: handshake, subscribe, then count data frames."""

    def __init__(self, request: bytes, subscribe: bytes) -> None:
        self.request = request
        self.subscribe = subscribe
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.upgraded = False
        self.frames = 0
        self.skip = 0  # payload bytes of the current frame still to come
        self.partial = b""  # the start of a frame header cut by a read
        self.acked = asyncio.get_running_loop().create_future()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the handshake."""
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        """Finish the handshake, then count the frames in `data`."""
        if not self.upgraded:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 101"):
                self._fail(ConnectionError(self.head[:200].decode(errors="replace")))
                return
            self.upgraded = True
            data = self.head[end + 4:]
            self.head = b""
            assert self.transport is not None
            self.transport.write(self.subscribe)
        if self.partial:
            data = self.partial + data
            self.partial = b""
        n = len(data)
        pos = self.skip
        if pos >= n:
            self.skip = pos - n
            return
        count = 0
        while pos + 2 <= n:
            length = data[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if pos + 4 > n:
                    break
                length = int.from_bytes(data[pos + 2:pos + 4], "big")
                head = 4
            elif length == 127:
                if pos + 10 > n:
                    break
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
                head = 10
            opcode = data[pos] & 0x0F
            if opcode == 1 or opcode == 2:
                count += 1
            elif opcode == 9 and pos + head + length <= n:  # a ping: answer it
                pong = Frame(Opcode.PONG, data[pos + head:pos + head + length])
                assert self.transport is not None
                self.transport.write(pong.serialize(mask=True))
            elif opcode == 8:
                self.closed = True
            pos += head + length
        if pos > n:
            self.skip = pos - n
        else:
            self.skip = 0
            self.partial = data[pos:]
        if count:
            self.frames += count
            if not self.acked.done():
                self.acked.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        """Count a connection the server ended."""
        self.closed = True
        self._fail(exc or ConnectionError("closed before the subscription was acknowledged"))

    def _fail(self, exc: Exception) -> None:
        if not self.acked.done():
            self.acked.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


async def _main(url: str, count: int, first: int, topics: list[str]) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    subscribe = Frame(Opcode.TEXT, json.dumps({"op": "subscribe", "args": topics}).encode()
                      ).serialize(mask=True)
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def open_one(i: int) -> Counter:
        async with gate:
            for attempt in range(50):  # a gateway may still be starting
                try:
                    _t, counter = await loop.create_connection(
                        lambda: Counter(request, subscribe), host, port,
                        local_addr=(f"127.0.0.{2 + (first + i) // PER_ADDRESS}", 0))
                    await asyncio.wait_for(counter.acked, 30)
                    return counter
                except OSError:
                    await asyncio.sleep(0.1 * (attempt + 1))
            raise RuntimeError(f"no server answers {url}")

    counters = await asyncio.gather(*(open_one(i) for i in range(count)))
    print("ready", flush=True)
    marks = [0] * count
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() == "start":
            marks = [c.frames for c in counters]
            print("started", flush=True)
        elif line.strip() in ("stop", ""):
            counts = [c.frames - mark for c, mark in zip(counters, marks, strict=True)]
            cut_off = sum(1 for c in counters if c.closed)
            print(json.dumps({"counts": counts, "cut_off": cut_off}), flush=True)
            for c in counters:
                if c.transport is not None:
                    c.transport.abort()
            return


if __name__ == "__main__":
    run(_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]))
