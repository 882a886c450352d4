"""A slow client on the live stream (``/gps/live``) does not stall the others (issue 11).

Two WebSocket clients subscribe on the real server: a fast one that reads all the time,
and a slow one that reads nothing (a 4 KiB receive buffer, ``max_queue=1`` and no
compression, which would shrink the repetitive messages to nothing, so its TCP
buffers fill, the server's send to it blocks and its queue in the server fills up). Rounds
of OsmAnd fixes, one per test device, go in concurrently; each round must reach the fast
client, every fix exactly once and in order per device, before the next is sent, while
the slow client still reads nothing. Every fix is answered 200 and ``/health/ready``
stays 200. The slow subscriber's queue never holds more than ``QUEUE`` messages. When the
slow client reads at last, it gets what was in the pipes, a ``dropped`` notice counting
exactly the messages it missed (:meth:`api.live.Subscriber.offer` drops the oldest), then
live messages again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import secrets
import socket
import time
from typing import Any

import httpx
import psycopg
from support import LiveServer
from websockets.asyncio.client import ClientConnection, connect

from api import live
from spatial.gps.store import add_device

DEVICES = 100
ROUNDS = 16
"""DEVICES x ROUNDS messages: well beyond a subscriber's queue (live.QUEUE, 1000)."""
NAME = "慢车" * 500
"""Device names of 1000 characters (6 kB of JSON escapes a message): the pipes to the slow
client (loopback TCP buffers grow to megabytes) fill after a few hundred messages."""
STEP_S = 10
WAIT_S = 60.0


class Reader:
    """Every message a client reads, in order."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def read(self, sock: ClientConnection) -> None:
        async for text in sock:
            self.messages.append(json.loads(text))

    def fixes(self, devices: set[str]) -> dict[str, list[dt.datetime]]:
        seen: dict[str, list[dt.datetime]] = {}
        for m in self.messages:
            if m["type"] == "position" and m["device"] in devices:
                seen.setdefault(m["device"], []).append(dt.datetime.fromisoformat(m["time"]))
        return seen

    def has(self, devices: set[str], count: int) -> bool:
        return sum(len(v) for v in self.fixes(devices).values()) >= count

    def reached(self, devices: set[str], when: dt.datetime) -> bool:
        seen = self.fixes(devices)
        return len(seen) == len(devices) and all(v[-1] == when for v in seen.values())

    def count(self) -> int:
        return sum(m["type"] != "dropped" for m in self.messages)

    def dropped(self) -> int:
        return sum(m["count"] for m in self.messages if m["type"] == "dropped")


async def until(check: Any, what: str, seconds: float = WAIT_S) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def test_slow_client_does_not_stall_the_fast_one(
    demo_api: LiveServer, demo_url: str, admin_auth: dict[str, str]
) -> None:
    tag = secrets.token_hex(3).upper()
    devices = [f"SLOW-{tag}-{n:03d}" for n in range(DEVICES)]
    with psycopg.connect(demo_url, autocommit=True) as conn:
        for device in devices:
            add_device(conn, device, name=NAME + device, kind="vehicle")
    key = admin_auth["Authorization"].removeprefix("Bearer ")
    app: Any = demo_api.server.config.app
    asyncio.run(_run(demo_api, app, key, devices))


async def _run(server: LiveServer, app: Any, key: str, devices: list[str]) -> None:
    uri = f"ws://127.0.0.1:{server.port}/gps/live?access_token={key}"
    wanted = set(devices)
    start = int(time.time()) - STEP_S * (ROUNDS + 2)
    times = [start + STEP_S * r for r in range(ROUNDS + 1)]
    fast, slow = Reader(), Reader()
    statuses: dict[int, int] = {}
    ready: dict[int, int] = {}
    deepest = [0]
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port))

    def subscribers() -> list[live.Subscriber]:
        with contextlib.suppress(RuntimeError):  # the set changed while copied
            return list(app.state.live.subscribers)
        return []

    async def sample() -> None:
        while True:
            for s in subscribers():
                deepest[0] = max(deepest[0], s.queue.qsize())
            await asyncio.sleep(0.01)

    async def health(client: httpx.AsyncClient) -> None:
        while True:
            answer = await client.get("/health/ready")
            ready[answer.status_code] = ready.get(answer.status_code, 0) + 1
            await asyncio.sleep(0.2)

    async def send(client: httpx.AsyncClient, device: str, n: int, when: int) -> None:
        lat, lon = 23.05 + n * 0.0005 + when % 1000 * 1e-6, 112.25
        answer = await client.get("/gps/osmand", params={
            "id": device, "lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "timestamp": when})  # fmt: skip
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

    limits = httpx.Limits(max_connections=16)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client,
        connect(uri, max_queue=None) as fast_sock,
        connect(uri, sock=raw, max_queue=1, compression=None) as slow_sock,
    ):
        background = [asyncio.create_task(sample()), asyncio.create_task(health(client)),
                      asyncio.create_task(fast.read(fast_sock))]  # fmt: skip
        try:
            await until(lambda: len(subscribers()) >= 2, "both subscriptions")
            await asyncio.sleep(1.0)  # each has its first snapshot of the latest positions
            for r, when in enumerate(times[:-1]):
                await asyncio.gather(*(send(client, d, n, when) for n, d in enumerate(devices)))
                what = f"round {r + 1} on the fast client while the slow one reads nothing"
                await until(lambda r=r: fast.has(wanted, DEVICES * (r + 1)), what)
            expected = [instant(t) for t in times[:-1]]
            assert fast.fixes(wanted) == dict.fromkeys(devices, expected)  # each once, in order
            assert statuses == {200: DEVICES * ROUNDS}
            assert deepest[0] >= live.QUEUE - 1, deepest[0]  # its queue filled, never beyond

            # the slow client reads at last: the backlog, the notice, then live messages
            background.append(asyncio.create_task(slow.read(slow_sock)))
            await until(lambda: slow.dropped() > 0, "the dropped notice")
            await asyncio.gather(*(send(client, d, n, times[-1]) for n, d in enumerate(devices)))
            last = instant(times[-1])
            for reader in (fast, slow):
                await until(lambda reader=reader: reader.reached(wanted, last), "the last round")
            await asyncio.sleep(0.5)  # nothing else is on its way
            notices = [n for n, m in enumerate(slow.messages) if m["type"] == "dropped"]
            assert len(notices) == 1, notices
            after = slow.messages[notices[0] + 1 :]
            assert after and all(m["type"] in {"position", "event"} for m in after)
            # what it read and what it was told it missed are what the fast client read
            assert slow.count() + slow.dropped() == fast.count()
            assert all(v == sorted(set(v)) for v in slow.fixes(wanted).values())
            assert fast.dropped() == 0
            assert deepest[0] <= live.QUEUE
            assert set(ready) == {200}, ready
        finally:
            for task in background:
                task.cancel()


def instant(unix: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix, dt.UTC)
