"""The GPS issue's must-show: a device crossing a demo flood-zone polygon produces enter and
exit events that a WebSocket client receives.

The demo city is loaded into the session database (its flood-risk zones become geofences),
the live API runs on loopback, a WebSocket client follows a test device on ``/gps/live``,
and the device reports OsmAnd fixes over HTTP along a straight line that starts outside
the main river's high-risk zone, crosses it and leaves it again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from gpsnet import crossing, flood_fence
from support import LiveServer
from websockets.sync.client import connect

from spatial.gps.store import add_device

DEVICE = "flood-probe-1"
ZONE = "YF-FZ-01"
"""南山河高风险洪泛区: the main river's high-risk zone (10-year flood)."""
STEP_DEG = 0.0002
"""Latitude between fixes (about 22 m; every 2 s that is 40 km/h, far below a jump)."""
CLEAR_DEG = 0.0003
"""The line runs on this far (about 30 m) beyond the zone at either end."""
EDGE_DEG = 0.00001
"""Fixes closer than this (about 1 m) to the zone's edge are left out: inside or outside
is then beyond doubt."""


@pytest.fixture(scope="module")
def demo(demo_url: str) -> str:
    """The session database with the demo city loaded, and the probe device."""
    database_url = demo_url
    with psycopg.connect(database_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM gps.devices WHERE id = %s", (DEVICE,)).fetchone() is None:
            add_device(conn, DEVICE, name="Flood probe")
    return database_url


@pytest.fixture(scope="module")
def api(demo: str, live_api: LiveServer) -> Iterator[httpx.Client]:
    """A client of the live API (started after the demo's fences exist)."""
    with httpx.Client(base_url=live_api.url, timeout=30) as client:
        yield client


def _events(ws: Any, fence: int, count: int, seconds: float = 20.0) -> list[dict[str, Any]]:
    """The first ``count`` events of ``fence`` the stream sends (waiting ``seconds`` at most)."""
    deadline = time.monotonic() + seconds
    seen: list[dict[str, Any]] = []
    while len(seen) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"events of fence {fence} seen on the stream: {seen}"
        said = json.loads(ws.recv(timeout=left))
        if said.get("type") == "event" and said["fence"] == fence:
            seen.append(said)
    return seen


def test_crossing_a_demo_flood_zone_is_pushed_to_websocket_clients(
    api: httpx.Client, live_api: LiveServer, admin_auth: dict[str, str], demo: str
) -> None:
    fence, name, zone = flood_fence(demo, ZONE)
    assert name == "南山河高风险洪泛区"
    fixes = crossing(zone, step=STEP_DEG, clear=CLEAR_DEG, edge=EDGE_DEG)
    assert not fixes[0][2] and not fixes[-1][2] and any(into for *_, into in fixes)
    first_in = next(i for i, (*_, into) in enumerate(fixes) if into)
    first_out = next(i for i, (*_, into) in enumerate(fixes) if i > first_in and not into)
    start = int(time.time()) - 3600  # an hour ago: in the past, and newer than any other run
    stamps = [start + 2 * i for i in range(len(fixes))]
    url = "ws" + live_api.url.removeprefix("http") + f"/gps/live?device={DEVICE}"
    with connect(url, additional_headers=admin_auth, open_timeout=10) as ws:
        for (lon, lat, _), stamp in zip(fixes, stamps, strict=True):
            answer = api.get("/gps/osmand", params={
                "id": DEVICE, "lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "timestamp": stamp,
                "speed": 21.6})  # fmt: skip
            assert answer.status_code == 200, answer.text
        enter, leave = _events(ws, fence, 2)
    assert (enter["kind"], leave["kind"]) == ("enter", "exit")
    assert enter["device"] == leave["device"] == DEVICE
    assert (enter["lon"], enter["lat"]) == pytest.approx(fixes[first_in][:2])
    assert (leave["lon"], leave["lat"]) == pytest.approx(fixes[first_out][:2])
    with psycopg.connect(demo) as conn:
        stored = conn.execute(
            "SELECT kind, extract(epoch FROM time)::bigint FROM gps.events "
            "WHERE device_id = %s AND fence_id = %s ORDER BY time",
            (DEVICE, fence),
        ).fetchall()
    assert [tuple(r) for r in stored] == [
        ("enter", stamps[first_in]),
        ("exit", stamps[first_out]),
    ]
