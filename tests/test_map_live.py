"""The emergency map's live tool (api/static/maps/live.js) in a real browser, on the demo city.

A headless Chromium opens the emergency map signed in (the token goes to ``/gps/live`` as
``access_token``). A test vehicle reports OsmAnd fixes over HTTP along a north-south line
across the main river's high-risk flood zone YF-FZ-01 (a demo geofence), as
tests/test_gps_flood.py does: the vehicle appears on the map, its point in the ``vehicles``
GeoJSON source follows the fixes, and the ``enter`` and ``exit`` events of the zone are
listed (newest first, with the fence's name); clicking one flies there and pulses. Then the
connection is lost: a short loss is retried by itself; during a longer one the vehicle
crosses the zone again, and on reconnecting the page catches up with the position and the
events it missed; a notice of dropped messages makes it read the vehicles again. The other
tools of the page (the command panel) are told, as window events, the positions, the
incident messages, the connection's state and when messages may have been missed; an
arrival on scene (no fence) is not listed as a geofence event.
Screenshot: ``var/test-screenshots/map-emergency-live.png``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from browser import WAIT_MS, BrowserPage, browser_page, is_local, open_map, requires_chromium
from gpsnet import crossing, flood_fence
from support import LiveServer, until

from spatial.gps.store import add_device

DEVICE = "YF-AMB-LIVE"
"""A test ambulance (``-AMB-``: drawn in the ambulances' red)."""
ZONE = "YF-FZ-01"
"""南山河高风险洪泛区: the main river's high-risk zone (10-year flood)."""
STEP_DEG = 0.0004
"""Latitude between fixes (about 44 m; STEP_S apart that is 40 km/h, far below a jump)."""
STEP_S = 4
CLEAR_DEG = 0.0006
"""The line runs on this far (about 65 m) beyond the zone at either end."""
EDGE_DEG = 0.00002
"""Fixes closer than this (about 2 m) to the zone's edge are left out."""
DEMO_FLEET = frozenset({"YF-AMB-01", "YF-AMB-02", "YF-ENV-01", "YF-FIRE-01", "YF-FIRE-02",
                        "YF-WATER-01"})  # fmt: skip
"""The demo's vehicles (``spatial.samples``): their fixes are months old."""
SPEED_KNOTS = 21.6
"""40 km/h, as OsmAnd sends it."""
NEAR_DEG = 1e-5
WAIT_S = 30.0


@dataclass
class Probe:
    """The test vehicle: sends fixes with increasing times (never older than the last sent,
    so a later test's fixes are newer than an earlier one's)."""

    client: httpx.Client
    last: int = 0

    def send(self, fixes: list[tuple[float, float]]) -> None:
        now = int(time.time())
        start = max(self.last + STEP_S, now - STEP_S * (len(fixes) - 1))
        for n, (lon, lat) in enumerate(fixes):
            self.last = start + STEP_S * n
            answer = self.client.get("/gps/osmand", params={
                "id": DEVICE, "lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "timestamp": self.last,
                "speed": SPEED_KNOTS})  # fmt: skip
            assert answer.status_code == 200, answer.text


@dataclass(frozen=True)
class Zone:
    fence: int
    name: str
    fixes: list[tuple[float, float, bool]]
    """South to north across the zone: lon, lat, inside."""


@pytest.fixture(scope="module")
def zone(demo_url: str) -> Zone:
    """The fence made of flood zone ZONE, a straight crossing of it, and the test vehicle."""
    with psycopg.connect(demo_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM gps.devices WHERE id = %s", (DEVICE,)).fetchone() is None:
            add_device(conn, DEVICE, name="应急测试车 Live probe", kind="vehicle")
    fence, name, polygon = flood_fence(demo_url, ZONE)
    return Zone(fence, name, crossing(polygon, step=STEP_DEG, clear=CLEAR_DEG, edge=EDGE_DEG))


@pytest.fixture(scope="module")
def probe(demo_api: LiveServer) -> Iterator[Probe]:
    with httpx.Client(base_url=demo_api.url, timeout=30) as client:
        yield Probe(client)


@pytest.fixture(scope="module")
def token(admin_auth: dict[str, str]) -> str:
    """The admin's key, used as the page's token (a bearer key signs in as a token does)."""
    return admin_auth["Authorization"].removeprefix("Bearer ")


def _open(seen: BrowserPage, url: str, token: str, sockets: list[str] | None = None) -> Any:
    """The emergency map, drawn and following the live stream (the URLs of the WebSockets
    it opens added to ``sockets``: Playwright reports them apart from requests)."""
    if sockets is not None:
        seen.page.on("websocket", lambda ws: sockets.append(ws.url))  # type: ignore[attr-defined]
    page = open_map(seen, f"{url}/maps/emergency", token)
    page.locator("#live[data-state='live']").wait_for(state="attached", timeout=WAIT_MS)
    return page


def _in_source(page: Any) -> list[list[float]]:
    """The test vehicle's points in the map's ``vehicles`` source."""
    found: list[list[float]] = page.evaluate(
        """async (device) => (await spatialMap.getSource('vehicles').getData()).features
            .filter((f) => f.properties.device_id === device)
            .map((f) => f.geometry.coordinates)""",
        DEVICE,
    )
    return found


def _at(lon: float, lat: float) -> Callable[[list[list[float]]], bool]:
    def near(points: list[list[float]]) -> bool:
        return len(points) == 1 and (
            abs(points[0][0] - lon) <= NEAR_DEG and abs(points[0][1] - lat) <= NEAR_DEG
        )

    return near


def _drawn(page: Any) -> bool:
    """Whether the map draws the test vehicle."""
    shown: bool = page.evaluate(
        """(device) => spatialMap.queryRenderedFeatures({ layers: ['vehicles'] })
            .some((f) => f.properties.device_id === device)""",
        DEVICE,
    )
    return shown


def _in_view(page: Any) -> bool:
    """Whether the test vehicle's newest place is inside the map's view, away from its edges."""
    inside: bool = page.evaluate(
        """(device) => {
            const { x, y } = spatialMap.project(spatialLive.vehicle(device).to);
            const { width, height } = spatialMap.getCanvas().getBoundingClientRect();
            return x > width * 0.1 && x < width * 0.9 && y > height * 0.1 && y < height * 0.9;
        }""",
        DEVICE,
    )
    return inside


def _stale(page: Any) -> dict[str, bool]:
    """Each listed vehicle: whether it is greyed, checked against its last fix's time (more
    than five minutes ago) in the list and on the map."""
    rows: list[list[Any]] = page.eval_on_selector_all(
        "#live .live-vehicles li",
        """rows => rows.map((li) => [li.dataset.device, li.classList.contains('stale'),
            Date.now() - Date.parse(li.dataset.time) > 5 * 60 * 1000,
            spatialLive.vehicle(li.dataset.device).stale])""",
    )
    assert all(greyed == old == marked for _, greyed, old, marked in rows), rows
    return {device: greyed for device, greyed, *_ in rows}


def _data(page: Any, name: str) -> int:
    return int(page.locator("#live").get_attribute(f"data-{name}") or 0)


def _events(page: Any, fence: int, after: int = 0) -> list[tuple[str, str | None]]:
    """The listed events of the test vehicle in ``fence`` later than ``after`` (Unix time),
    top first: kind, fence name."""
    found: list[list[Any]] = page.eval_on_selector_all(
        f"#live li[data-device='{DEVICE}'][data-fence='{fence}']",
        "items => items.map((li) => [li.dataset.kind, li.dataset.fenceName || null,"
        " Number(li.dataset.time)])",
    )
    return [(kind, name) for kind, name, ms in found if ms > after * 1000]


@requires_chromium
def test_a_vehicle_crossing_a_flood_zone_moves_on_the_map_and_its_events_are_listed(
    demo_api: LiveServer, probe: Probe, zone: Zone, token: str
) -> None:
    fixes = [(lon, lat) for lon, lat, _ in zone.fixes]
    with browser_page(width=1200, height=850) as seen:
        sockets: list[str] = []
        page = _open(seen, demo_api.url, token, sockets)
        assert "live" in page.locator("#live .live-status").inner_text()
        assert sockets and all(is_local(u) and "access_token=" in u for u in sockets), sockets
        page.locator("#live .live-vehicles li").first.wait_for(timeout=WAIT_MS)
        applied = _data(page, "positions")

        probe.send(fixes[:1])
        until(lambda: _in_source(page), _at(*fixes[0]), "the first fix in the source")
        until(lambda: _drawn(page), bool, "the vehicle drawn on the map")
        row = page.locator(f"#live .live-vehicles li[data-device='{DEVICE}']")
        row.wait_for(timeout=WAIT_MS)
        assert "40 km/h" in row.inner_text() and "Live probe" in row.inner_text()
        # (the demo fleet's fixes are months old: greyed; the map draws them grey)
        # (other tests of the session may have sent fresh fixes of their own devices)
        greyed = _stale(page)
        fleet = {d: g for d, g in greyed.items() if d in DEMO_FLEET}
        assert greyed[DEVICE] is False and len(fleet) == len(DEMO_FLEET), greyed
        assert all(fleet.values()), greyed
        paint = page.evaluate("() => spatialMap.getPaintProperty('vehicles', 'circle-color')")
        assert paint[:3] == ["case", ["==", ["get", "stale"], True], "#adb5bd"], paint
        row.locator("button.follow").click()
        page.locator(f"#live[data-follow='{DEVICE}']").wait_for(state="attached")
        # close in (about 0.5 m a pixel): the crossing runs far beyond the view
        page.evaluate("(c) => spatialMap.jumpTo({ center: c, zoom: 18 })", fixes[0])

        probe.send(fixes[1:])
        until(lambda: _in_source(page), _at(*fixes[-1]), "the last fix in the source")
        until(lambda: _in_view(page), bool, "the followed vehicle in view")
        assert _data(page, "positions") >= applied + 2
        events = until(
            lambda: _events(page, zone.fence),
            lambda found: found == [("exit", zone.name), ("enter", zone.name)],
            "the zone's enter and exit events, newest first, named",
        )
        assert events and _data(page, "events") >= 2
        assert page.locator("#live h3 .count").last.inner_text() == str(_data(page, "events"))

        first_in = next(n for n, (*_, inside) in enumerate(zone.fixes) if inside)
        page.evaluate("(c) => spatialMap.jumpTo({ center: c, zoom: 15 })", fixes[-1])
        enter = page.locator(
            f"#live li[data-device='{DEVICE}'][data-kind='enter'][data-fence='{zone.fence}']"
        )
        enter.locator("button").click()
        page.locator(".live-pulse.enter").first.wait_for(state="attached", timeout=WAIT_MS)
        page.locator("#live[data-follow='']").wait_for(state="attached")  # looking elsewhere
        lon, lat = fixes[first_in]
        until(
            lambda: page.evaluate("() => spatialMap.getCenter().toArray()"),
            lambda centre: abs(centre[0] - lon) < 1e-4 and abs(centre[1] - lat) < 1e-4,
            "the map flown to the enter event",
        )
        assert "live" in page.locator("#live .live-status").inner_text()
        seen.screenshot("map-emergency-live")
        seen.assert_clean()


@requires_chromium
def test_after_a_lost_connection_the_page_reconnects_and_catches_up(
    demo_api: LiveServer, probe: Probe, zone: Zone, token: str
) -> None:
    there = [(lon, lat) for lon, lat, _ in zone.fixes]
    back = there[::-1]
    with browser_page() as seen:
        page = _open(seen, demo_api.url, token)
        page.evaluate(TOLD)
        probe.send(there[-1:])  # (north of the zone, wherever an earlier test left it)
        until(lambda: _in_source(page), _at(*there[-1]), "the vehicle north of the zone")
        fetched = _data(page, "refetches")

        page.evaluate("() => spatialLive.interrupt()")  # a short loss: retried by itself
        page.locator("#live[data-reconnects='1'][data-state='live']").wait_for(
            state="attached", timeout=WAIT_MS
        )
        until(lambda: _data(page, "refetches"), lambda n: n > fetched, "a refetch")
        assert ["position", DEVICE] in _told(page, "position")
        told = _told(page, "live", "missed")[-3:]
        assert told == [["live", "reconnecting"], ["live", "live"], ["missed", "reconnected"]], told
        probe.send(back[:1])
        until(lambda: _in_source(page), _at(*back[0]), "a fix after the reconnection")

        page.evaluate("() => spatialLive.hold()")  # a longer loss: the vehicle crosses back
        page.locator("#live[data-state='reconnecting']").wait_for(state="attached", timeout=WAIT_MS)
        since = probe.last
        probe.send(back[1:])
        time.sleep(1.0)
        assert _at(*back[0])(_in_source(page)), "a position arrived while disconnected"
        assert not _events(page, zone.fence, since), "an event arrived while disconnected"

        page.evaluate("() => spatialLive.release()")
        page.locator("#live[data-reconnects='2'][data-state='live']").wait_for(
            state="attached", timeout=WAIT_MS
        )
        until(lambda: _in_source(page), _at(*back[-1]), "the position missed, caught up")
        until(
            lambda: _events(page, zone.fence, since),
            lambda found: found == [("exit", zone.name), ("enter", zone.name)],
            "the events missed, caught up, newest first",
        )

        fetched = _data(page, "refetches")  # the server dropped messages for a slow client:
        page.evaluate("() => spatialLive.receive(JSON.stringify({type: 'dropped', count: 3}))")
        until(lambda: _data(page, "refetches"), lambda n: n > fetched, "a refetch on drops")
        assert page.locator("#live[data-state='live']").count() == 1
        assert _told(page, "live", "missed")[-1] == ["missed", "dropped"]

        # incident messages are handed on; an arrival on scene is no geofence event
        page.evaluate("""() => spatialLive.receive(JSON.stringify(
            {type: 'incident', kind: 'changed', incident: 'INC-LIVE-1'}))""")
        assert _told(page, "incident") == [["incident", "INC-LIVE-1"]]
        listed = _data(page, "events")
        page.evaluate(
            """([device, lon, lat]) => spatialLive.receive(JSON.stringify({type: 'event', device,
                kind: 'on-scene', fence: null, incident: 'INC-LIVE-1', lon, lat,
                time: new Date().toISOString()}))""",
            [DEVICE, *back[-1]],
        )
        time.sleep(0.5)
        assert _data(page, "events") == listed
        assert page.locator("#live li[data-kind='on-scene']").count() == 0
        assert not [u for u in seen.requests if "fence_id=0" in u or "fence_id=NaN" in u]
        # the catch-up asked for geofence events only (gps_events holds arrivals too)
        caught = [
            u for u in seen.requests if "/collections/gps_events/items" in u and "datetime=" in u
        ]
        assert caught and all("filter=kind+IN" in u for u in caught), caught
        seen.assert_clean()


TOLD = """() => {
    window.told = [];
    for (const name of ['position', 'incident', 'live', 'missed']) {
        window.addEventListener(`spatial:${name}`, ({ detail }) => told.push([name,
            detail.device || detail.incident || detail.state || detail.reason]));
    }
}"""
"""Record what the live tool tells the page's other tools (window events)."""


def _told(page: Any, *names: str) -> list[list[str]]:
    """What the live tool told of ``names``, oldest first: [name, what it was about]."""
    found: list[list[str]] = page.evaluate(
        "(names) => told.filter(([name]) => names.includes(name))", list(names)
    )
    return found
