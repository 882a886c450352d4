"""The GPS benchmark's WebSocket latencies (``benchmarks/gps.py`` runs them).

- :func:`steady`: single OsmAnd fixes sent at a steady rate by a loader while a WebSocket
  client subscribed to ``/gps/live`` in the same process records when each position
  arrives (matched by device and time): arrival minus send, in ms.
- :func:`watch` (inside the batch clients' process): a WebSocket client subscribed while
  the batches are POSTed; each position received is matched to the batch that carried it
  (by device and time), its latency the arrival minus the start of that batch's request.
  Under a heavy load the stream sends each moved device's newest position, not every fix
  (the live stream reads the latest positions once per notification), so about one
  position per device and batch arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
import numpy as np
from ingest import BenchmarkError, _say
from websockets.asyncio.client import connect as ws_connect

Fix = tuple[str, str, int]
"""An OsmAnd request path, its device and its Unix time."""


def percentiles(latencies: list[float]) -> dict[int, float]:
    """p50, p95 and p99."""
    return dict(zip((50, 95, 99), np.percentile(latencies, [50, 95, 99]).tolist(), strict=True))


def steady(
    clients: ProcessPoolExecutor, port: int, key: str, fixes: list[Fix], rate: int
) -> dict[str, Any]:
    """Send ``fixes`` at ``rate`` a second (the last one only afterwards); the latencies."""
    fixes, after = fixes[:-1], fixes[-1]
    live: dict[str, Any] = clients.submit(_steady_client, port, key, fixes, rate).result()
    # The closed WebSocket's handler waits on its queue without reading the socket, so it
    # only ends when it is sent something, and the server's shutdown waits for it: one
    # more fix wakes it up.
    httpx.get(f"http://127.0.0.1:{port}{after[0]}", timeout=60)
    bad = {k: v for k, v in live["statuses"].items() if k != 200}
    if bad or not live["latencies"]:
        msg = f"live: answers {live['statuses']}, {len(live['latencies'])} positions received"
        raise BenchmarkError(msg)
    live["ms"] = ms = percentiles(live["latencies"])
    _say(
        f"live: {len(live['latencies']):,} of {live['sent']:,} positions received at "
        f"{live['rate']:.0f} fixes/s; p50 {ms[50]:.1f} ms, p95 {ms[95]:.1f} ms, p99 "
        f"{ms[99]:.1f} ms; median answer to a fix {live['answer_ms']:.1f} ms"
    )
    return live


def _steady_client(port: int, key: str, fixes: list[Fix], rate: int) -> dict[str, Any]:
    return asyncio.run(_steady_load(port, key, fixes, rate))


def _arrival(text: str) -> tuple[str, int] | None:
    """(device, Unix time) of a position message."""
    said = json.loads(text)
    if said.get("type") != "position":
        return None
    return said["device"], int(dt.datetime.fromisoformat(said["time"]).timestamp())


async def _steady_load(port: int, key: str, fixes: list[Fix], asked: int) -> dict[str, Any]:
    sent: dict[tuple[str, int], float] = {}
    received: dict[tuple[str, int], float] = {}
    statuses: dict[int, int] = {}
    answers: list[float] = []
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    uri = f"ws://127.0.0.1:{port}/gps/live?access_token={key}"
    async with (
        ws_connect(uri, max_queue=None) as socket,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                          timeout=60) as client,
    ):  # fmt: skip

        async def listen() -> None:
            async for text in socket:
                now = time.perf_counter()
                if (fix := _arrival(str(text))) is not None:
                    received.setdefault(fix, now)

        async def send(path: str, fix: tuple[str, int]) -> None:
            sent[fix] = time.perf_counter()
            response = await client.get(path)
            answers.append(time.perf_counter() - sent[fix])
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        listener = asyncio.create_task(listen())
        await client.get("/conformance")  # open a connection before the clock
        await asyncio.sleep(1.0)  # the subscription is in place
        tasks = []
        started = time.perf_counter()
        for number, (path, device, seconds) in enumerate(fixes):
            delay = started + number / asked - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(path, (device, seconds))))
        rate = (len(fixes) - 1) / max(time.perf_counter() - started, 1e-9)
        await asyncio.gather(*tasks)
        deadline = time.perf_counter() + 5
        while len(received.keys() & sent.keys()) < len(sent) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        listener.cancel()
    latencies = [(received[k] - sent[k]) * 1000 for k in sent if k in received]
    return {"latencies": latencies, "sent": len(sent), "statuses": statuses,
            "rate": rate, "asked": asked,
            "answer_ms": statistics.median(answers) * 1000}  # fmt: skip


class Watch:
    """A WebSocket subscriber recording the positions it receives (for :func:`watch`)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, float]] = []
        self.last = time.perf_counter()

    async def listen(self, socket: Any) -> None:
        async for text in socket:
            self.last = time.perf_counter()
            if (fix := _arrival(str(text))) is not None:
                self.seen.append((*fix, self.last))

    async def settle(self, quiet_s: float = 1.0, limit_s: float = 10.0) -> None:
        """Wait until nothing arrived for ``quiet_s`` (at most ``limit_s``)."""
        deadline = time.perf_counter() + limit_s
        while time.perf_counter() - self.last < quiet_s and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def watch(port_url: str, key: str) -> Any:
    """Subscribe to ``/gps/live`` for the duration of the block; yields a :class:`Watch`."""
    uri = port_url.replace("http://", "ws://") + f"/gps/live?access_token={key}"
    seen = Watch()
    async with ws_connect(uri, max_queue=None) as socket:
        listener = asyncio.create_task(seen.listen(socket))
        await asyncio.sleep(1.0)  # the subscription is in place
        try:
            yield seen
            await seen.settle()
        finally:
            listener.cancel()
