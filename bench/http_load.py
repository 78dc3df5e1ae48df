"""An open-loop HTTP/1.1 GET load on loopback that costs the client almost nothing.

Request i is due at start + i / rate and its latency is measured from that time, so a stalled
server cannot hide its queueing. Requests take one of a fixed set of keep-alive connections
from a FIFO queue (O(1) per request). httpx's async pool was not usable here: with requests
queued for a connection its assignment pass is O(queued x connections) per event (httpcore
1.0.9, encode/httpcore#1035), so a client that fell behind for a moment spent more CPU per
request the further behind it was and never caught up, which the benchmark then reported as
server latency (p99 40 s with every server-side request time under 50 ms).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Callable

Check = Callable[[int, bytes], bool]  # (status, body) -> the response is a good one


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def get(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(
            (
                int(v)
                for k, _, v in (line.partition(":") for line in lines[1:])
                if k.lower() == "content-length"
            ),
            None,
        )
        if length is None:
            raise ValueError("response without Content-Length")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def open_loop(
    host: str, port: int, paths: list[str], rate: float, check: Check,
    connections: int = 64, timeout_s: float = 10.0,
) -> LoadResult:  # fmt: skip
    """GET each path at its scheduled time over at most `connections` keep-alive connections."""
    result = LoadResult()
    idle: asyncio.Queue[_Connection | None] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(None)  # a slot: connect on first use

    async def one(due: float, path: str) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        conn = await idle.get()
        try:
            if conn is None:
                conn = _Connection(*await asyncio.open_connection(host, port))
            request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
            status, body = await asyncio.wait_for(conn.get(request), timeout_s)
            if not check(status, body):
                result.errors += 1
        except (
            TimeoutError,
            OSError,
            ValueError,
            KeyError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            result.errors += 1
            if conn is not None:
                conn.close()
            conn = None  # the slot reconnects on its next use
        finally:
            idle.put_nowait(conn)
        result.latencies_ms.append((time.perf_counter() - due) * 1000)

    start = time.perf_counter() + 0.2
    await asyncio.gather(*(one(start + i / rate, path) for i, path in enumerate(paths)))
    result.wall_s = time.perf_counter() - start
    while not idle.empty():
        if (conn := idle.get_nowait()) is not None:
            conn.close()
    return result


def has_windows(status: int, body: bytes) -> bool:
    """A counts response with at least one window."""
    return status == 200 and bool(json.loads(body)["windows"])
