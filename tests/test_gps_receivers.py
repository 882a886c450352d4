"""The GPS receivers over real HTTP on the live API: every OsmAnd request of Traccar's own
tests answered as Traccar answers it, the demo fleet's OsmAnd log replayed into the store
(duplicates harmless), OwnTracks HTTP, junk requests, refused fixes counted."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import mapbox_vector_tile
import morecantile
import psycopg
import pytest
from conftest import SHARED_DATA
from support import LiveServer
from websockets.sync.client import connect

from spatial import samples
from spatial.gps import fences
from spatial.gps.store import add_device

SAMPLES = SHARED_DATA / "gps" / "traccar_osmand_requests.txt"
TRACCAR_DEVICES = ("123456", "902064", "353861053849681", "861001000719969",
                   "123456789012345", "48241179", "658765", "8737767034")  # fmt: skip
FLEET = ("YF-AMB-01", "YF-FIRE-01", "YF-AMB-02", "YF-FIRE-02", "YF-WATER-01", "YF-ENV-01")
SYNTHETIC = ("rx-zero", "rx-boat", "rx-fire", "rx-far")
"""Devices of the hand-made fixes below (the fleet's own tracks stay untouched)."""


@pytest.fixture(scope="module")
def api(live_api: LiveServer, database_url: str) -> Iterator[httpx.Client]:
    """A client of the live API, with the GPS collections private (as they are until
    granted; the demo, loaded by another module, opens them) for the module."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for device in (*TRACCAR_DEVICES, *FLEET, *SYNTHETIC, "owner/phone"):
            if (
                conn.execute("SELECT 1 FROM gps.devices WHERE id = %s", (device,)).fetchone()
                is None
            ):
                add_device(conn, device)
        opened = [r[0] for r in conn.execute(
            "UPDATE platform.collections SET is_public = false WHERE kind = 'gps' AND is_public "
            "RETURNING id")]  # fmt: skip
    with httpx.Client(base_url=live_api.url, timeout=30) as client:
        deadline = time.monotonic() + 10
        while client.get("/collections/gps_latest").status_code != 404:
            assert time.monotonic() < deadline, "the API kept gps_latest public"
            time.sleep(0.1)
        yield client
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE platform.collections SET is_public = true WHERE id = ANY(%s)",
                     (opened,))  # fmt: skip


def _count(database_url: str, device: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM gps.positions WHERE device_id = %s",
                           (device,)).fetchone()  # fmt: skip
    return int(row[0]) if row else 0


def _samples() -> list[tuple[str, str, str, str]]:
    """(expectation, method, path-and-query, body) of each Traccar sample."""
    if not SAMPLES.exists():
        pytest.skip(f"the Traccar OsmAnd samples are not at {SAMPLES}")
    out = []
    for line in SAMPLES.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        expect, method, rest = line.split(None, 2)
        target, _, body = rest.partition(" ")
        out.append((expect, method, target, body))
    return out


def test_every_traccar_sample_is_answered_as_traccar_does(
    api: httpx.Client, database_url: str
) -> None:
    samples_ = _samples()
    assert len(samples_) == 14
    for expect, method, target, body in samples_:
        path = "/gps/osmand" + target[1:]
        if method == "GET":
            answer = api.get(path)
        else:
            answer = api.post(path, content=body.encode(),
                              headers={"Content-Type": "application/json"})  # fmt: skip
        if expect == "NULL":
            assert answer.status_code == 400, (target, answer.text)
            assert "device id" in answer.text
        else:
            assert answer.status_code == 200, (target, answer.text)
    # Every POSITION sample became a stored position of its device.
    with psycopg.connect(database_url) as conn:
        stored = dict(conn.execute(
            "SELECT device_id, count(*) FROM gps.positions WHERE device_id = ANY(%s) "
            "GROUP BY device_id", (list(TRACCAR_DEVICES),)).fetchall())  # fmt: skip
    assert stored["902064"] == 2 and stored["48241179"] == 1 and stored["8737767034"] == 1
    # 11 positions: three of 123456 share one timestamp (stored once, the others are
    # harmless duplicates); its sample without a timestamp takes the arrival time.
    assert stored["123456"] == 2
    assert sum(stored.values()) == 10
    with psycopg.connect(database_url) as conn:
        latest = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM gps.latest WHERE device_id = '123456789012345'"
        ).fetchone()
    assert latest == pytest.approx((-74.0061408571, 40.7232948571))


def test_the_demo_fleet_log_replays_into_the_store(
    api: httpx.Client, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("gps-samples")
    samples.build(folder)
    lines = (folder / "gps" / "osmand_requests.log").read_text(encoding="ascii").splitlines()
    statuses: dict[int, int] = {}
    for line in lines[:600]:
        target = line.split()[1] if line.startswith(("GET ", "POST ")) else line
        query = target.split("?", 1)[1] if "?" in target else target
        answer = api.get("/gps/osmand?" + query)
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    assert set(statuses) <= {200, 400}
    before = {d: _count(database_url, d) for d in FLEET}
    assert sum(before.values()) >= 590
    # Sending the same requests again stores nothing new (a resend is harmless).
    for line in lines[:50]:
        target = line.split()[1] if line.startswith(("GET ", "POST ")) else line
        api.get("/gps/osmand?" + (target.split("?", 1)[1] if "?" in target else target))
    assert {d: _count(database_url, d) for d in FLEET} == before


def test_owntracks_http(api: httpx.Client, database_url: str) -> None:
    message = {"_type": "location", "lat": 22.91, "lon": 112.03, "tst": 1772323200,
               "acc": 8, "vel": 36, "batt": 77, "tid": "ph"}  # fmt: skip
    headers = {"X-Limit-U": "owner", "X-Limit-D": "phone"}
    answer = api.post("/gps/owntracks", json=message, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == []
    assert _count(database_url, "owner/phone") == 1
    unknown = api.post("/gps/owntracks", json=message, headers={"X-Limit-U": "x", "X-Limit-D": "y"})
    assert unknown.status_code == 400 and "not registered" in unknown.json()["description"]
    other = api.post("/gps/owntracks", json={"_type": "lwt", "tst": 1772323200}, headers=headers)
    assert other.status_code == 200  # not a position: nothing to store, nothing wrong


@pytest.mark.parametrize(
    "path",
    ["/gps/osmand", "/gps/osmand?id=YF-AMB-01&lat=abc&lon=1",
     "/gps/osmand?id=nosuch&lat=22.9&lon=112&timestamp=1772323200",
     "/gps/osmand?id=YF-AMB-01&lat=%00%ff&lon=1e999"],
)  # fmt: skip
def test_junk_requests_are_400_and_the_receiver_stays_up(api: httpx.Client, path: str) -> None:
    answer = api.get(path)
    assert answer.status_code == 400, answer.text
    assert answer.text.strip()
    assert api.get("/health").status_code == 200


def test_a_refused_fix_is_acknowledged_and_counted(api: httpx.Client, database_url: str) -> None:
    zero = api.get("/gps/osmand", params={"id": "rx-zero", "lat": 0, "lon": 0,
                                         "timestamp": 1772323300})  # fmt: skip
    assert zero.status_code == 200  # junk the client should not send again
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count FROM gps.rejects WHERE device_id = 'rx-zero' "
                           "AND reason = 'zero_position'").fetchone()  # fmt: skip
    assert row is not None and row[0] >= 1


def test_gps_collections_are_features_and_tiles(
    api: httpx.Client, admin_auth: dict[str, str], database_url: str
) -> None:
    assert api.post("/gps/osmand", params={"id": "rx-boat", "lat": 22.915, "lon": 112.035,
                                          "timestamp": 1772323500}).status_code == 200  # fmt: skip
    assert api.get("/collections/gps_latest/items").status_code == 404  # private until granted
    latest = api.get("/collections/gps_latest/items", headers=admin_auth,
                     params={"device_id": "rx-boat"}).json()  # fmt: skip
    assert [f["properties"]["device_id"] for f in latest["features"]] == ["rx-boat"]
    assert latest["features"][0]["geometry"]["coordinates"] == pytest.approx([112.035, 22.915])
    window = api.get("/collections/gps_positions/items", headers=admin_auth, params={
        "bbox": "112.03,22.91,112.04,22.92", "datetime": "2026-03-01T00:05:00Z",
        "device_id": "rx-boat"}).json()  # fmt: skip
    assert [f["properties"]["time"][:19] for f in window["features"]] == ["2026-03-01T00:05:00"]
    one = window["features"][0]["id"]
    assert api.get(f"/collections/gps_positions/items/{one}", headers=admin_auth).status_code == 200
    where = morecantile.tms.get("WebMercatorQuad").tile(112.035, 22.915, 14)
    tile = api.get(f"/collections/gps_positions/tiles/WebMercatorQuad/14/{where.y}/{where.x}",
                   headers=admin_auth)  # fmt: skip
    assert tile.status_code == 200, tile.text
    decoded = mapbox_vector_tile.decode(tile.content)
    devices = {f["properties"]["device_id"] for f in decoded["gps_positions"]["features"]}
    assert "rx-boat" in devices
    empty = (
        b'{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
        b'{"a": 1}, "geometry": {"type": "Point", "coordinates": [112.0, 22.9]}}]}'
    )
    job = api.post("/ingest/vector", headers=admin_auth, data={"collection": "gps_latest"},
                   files={"file": ("x.geojson", empty, "application/geo+json")})  # fmt: skip
    assert job.status_code == 202, job.text
    deadline = time.monotonic() + 30
    while (state := api.get(job.headers["location"], headers=admin_auth).json())["state"] in {
        "queued", "running"}:  # fmt: skip
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert state["state"] == "failed" and "holds gps data" in state["message"]


def _ws(url: str, path: str, headers: dict[str, str] | None = None) -> Any:
    return connect("ws" + url.removeprefix("http") + path, additional_headers=headers,
                   open_timeout=10)  # fmt: skip


def _next_position(ws: Any, device: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no position of {device} on the stream"
        message = json.loads(ws.recv(timeout=left))
        if message.get("type") == "position" and message["device"] == device:
            return message


def test_the_live_stream_pushes_positions_to_whom_may_see_them(
    live_api: LiveServer, api: httpx.Client, admin_auth: dict[str, str]
) -> None:
    key = admin_auth["Authorization"].removeprefix("Bearer ")
    with (
        _ws(live_api.url, "/gps/live?device=rx-fire", admin_auth) as fire,
        _ws(live_api.url, f"/gps/live?bbox=112.0,22.9,112.01,22.91&access_token={key}") as box,
        _ws(live_api.url, "/live") as anonymous,  # may not read gps_latest: alarms only
    ):
        # The latest position first, if any; then what arrives.
        for t, lon in ((1772323600, 112.005), (1772323610, 112.0052)):
            answer = api.get("/gps/osmand", params={"id": "rx-fire", "lat": 22.905,
                                                   "lon": lon, "timestamp": t})  # fmt: skip
            assert answer.status_code == 200, answer.text
        api.get("/gps/osmand", params={"id": "rx-far", "lat": 22.95, "lon": 112.2,
                                       "timestamp": 1772323620})  # fmt: skip
        # The stream sends a device that moved twice before it read the positions once, at
        # its newest position: wait for that one, however many came before it.
        deadline = time.monotonic() + 10
        while _next_position(fire, "rx-fire")["lon"] != pytest.approx(112.0052):
            assert time.monotonic() < deadline, "the newest position of rx-fire never came"
        inside = _next_position(box, "rx-fire")
        assert 112.0 <= inside["lon"] <= 112.01
        with pytest.raises(TimeoutError):  # rx-far is outside the box
            _next_position(box, "rx-far", timeout=1.5)
        with pytest.raises(TimeoutError):  # told at once with the others: nothing came
            _next_position(anonymous, "rx-fire", timeout=1.5)


def test_geofence_events_reach_the_live_stream(
    live_api: LiveServer, api: httpx.Client, admin_auth: dict[str, str], database_url: str
) -> None:
    square = {"type": "Polygon", "coordinates": [[[112.05, 22.95], [112.06, 22.95],
                                                  [112.06, 22.96], [112.05, 22.96],
                                                  [112.05, 22.95]]]}  # fmt: skip
    with psycopg.connect(database_url, autocommit=True) as conn:
        fence = fences.add_fence(conn, "rx-flood-zone", square)
    try:
        with _ws(live_api.url, "/gps/live?device=rx-boat", admin_auth) as ws:
            for t, lon in ((1772330000, 112.045), (1772330030, 112.055), (1772330060, 112.065)):
                answer = api.get("/gps/osmand", params={"id": "rx-boat", "lat": 22.955,
                                                       "lon": lon, "timestamp": t})  # fmt: skip
                assert answer.status_code == 200, answer.text
            kinds = []
            deadline = time.monotonic() + 10
            while len(kinds) < 2:
                assert time.monotonic() < deadline, f"events seen: {kinds}"
                said = json.loads(ws.recv(timeout=deadline - time.monotonic()))
                if said["type"] == "event" and said["fence"] == fence:
                    assert said["device"] == "rx-boat"
                    kinds.append(said["kind"])
            assert kinds == ["enter", "exit"]
        events = api.get("/collections/gps_events/items", headers=admin_auth,
                         params={"device_id": "rx-boat"}).json()  # fmt: skip
        mine = [f for f in events["features"] if f["properties"]["fence_id"] == fence]
        assert sorted(f["properties"]["kind"] for f in mine) == ["enter", "exit"]
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            fences.remove_fence(conn, fence)


def test_batches_of_many_devices(api: httpx.Client, admin_auth: dict[str, str]) -> None:
    csv = ("device,time,lat,lon,speed\n"
           "rx-zero,2026-03-02T00:00:00Z,22.91,112.03,3.5\n"
           "rx-far,2026-03-02T00:00:00Z,22.92,112.04,\n"
           "rx-far,2026-03-02T00:00:05Z,95,112.04,\n"
           "nosuch,2026-03-02T00:00:00Z,22.92,112.04,\n")  # fmt: skip
    headers = {**admin_auth, "Content-Type": "text/csv"}
    done = api.post("/gps/batch", content=csv.encode(), headers=headers)
    assert done.status_code == 200, done.text
    assert done.json()["stored"] == 2
    assert done.json()["rejected"] == {"out_of_range": 1, "unknown_device": 1}
    again = api.post("/gps/batch", content=csv.encode(), headers=headers).json()
    assert (again["stored"], again["duplicates"]) == (0, 2)
    assert api.post("/gps/batch", content=csv.encode(),
                    headers={"Content-Type": "text/csv"}).status_code == 401  # fmt: skip
    wrong = api.post("/gps/batch", content=b"x", headers={**admin_auth, "Content-Type": "text/xml"})
    assert wrong.status_code == 400 and "text/csv" in wrong.json()["description"]


def test_the_device_registry_api(api: httpx.Client, admin_auth: dict[str, str],
                                 database_url: str) -> None:  # fmt: skip
    assert api.get("/gps/devices").status_code == 401
    made = api.post("/gps/devices", headers=admin_auth, json={"id": "rx-api-1", "name": "Boat"})
    assert made.status_code == 201, made.text
    assert len(made.json()["token"]) >= 32
    again = api.post("/gps/devices", headers=admin_auth, json={"id": "rx-api-1"})
    assert again.status_code == 400 and "already registered" in again.json()["description"]
    bad = api.post("/gps/devices", headers=admin_auth, json={"id": "no spaces!"})
    assert bad.status_code == 400 and "device id" in bad.json()["description"]
    listed = api.get("/gps/devices", headers=admin_auth).json()
    assert {"id": "rx-api-1", "name": "Boat", "department": None, "kind": "vehicle",
            "active": True} in listed  # fmt: skip
    assert api.delete("/gps/devices/rx-api-1", headers=admin_auth).status_code == 200
    assert api.delete("/gps/devices/rx-api-1", headers=admin_auth).status_code == 404
    with psycopg.connect(database_url) as conn:
        actions = [r[0] for r in conn.execute(
            "SELECT action FROM platform.audit_log WHERE 'rx-api-1' = ANY(feature_ids) "
            "ORDER BY id").fetchall()]  # fmt: skip
    assert actions == ["device-add", "device-remove"]


def test_tokens_in_urls_stay_out_of_the_access_log(live_api: LiveServer) -> None:
    import logging  # noqa: PLC0415

    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/gps/live?device=a&access_token=s3s_1234_secret", "1.1", 101),
        None,
    )  # fmt: skip
    for log_filter in logging.getLogger("uvicorn.access").filters:
        log_filter.filter(record)
    said = record.getMessage()
    assert "secret" not in said and "access_token=***" in said
