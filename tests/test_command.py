"""Emergency command over HTTP on the small city of ``tests/networkcase.py`` (network
``cmd_roads``): incidents reported, units ranked by road ETA (stale, unplaced and cut-off
units excluded with why), dispatched (one of two dispatchers claiming a unit at once
wins), turned on scene by their own fixes (an event, a webhook, the live stream), freed
when the incident closes; and refused clearly to those who may not, or with bad input.

The incident lies on 一路 (H1, local, 30 km/h) at x=1200; fire engine E1 waits 300 m west
of it on the same road, E2 on 二路 (H2) at x=1900, 1 km north; police P1 at x=1100.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from networkcase import SETTINGS, lonlat
from networkcase import ingest as ingest_roads
from support import TESTS, LiveServer, Receiver, admin_key, until
from websockets.sync.client import connect

from api import create_app
from spatial import accounts
from spatial.command import dispatch
from spatial.db import engine
from spatial.gps import store, webhooks
from spatial.gps.fix import Fix
from spatial.network import build as nb
from spatial.settings import CommandSettings, GpsSettings, Settings

NETWORK = "cmd_roads"
LOCAL, ARTERIAL = 30 / 3.6, 50 / 3.6
GPS = GpsSettings()
UNITS = {  # device: (unit kind, position in the drawing, fix age in seconds or None)
    "cmd-e1": ("cmd-engine", (900, 2), 60),
    "cmd-e2": ("cmd-engine", (1900, 1003), 5),
    "cmd-p1": ("cmd-police", (1100, -2), 5),
    "cmd-stale": ("cmd-engine", (1000, 2), 3600),
    "cmd-nofix": ("cmd-engine", None, None),
    "cmd-far": ("cmd-engine", (1000, 2500), 5),
    "cmd-island": ("cmd-engine", (900, 1302), 5),
}
SCENE = (1200, 4)


@pytest.fixture(scope="module")
def keys(database_url: str) -> dict[str, str]:
    """API keys of an editor and a viewer of the emergency department (created by the
    migration), and of another department's editor."""
    with engine(database_url) as eng, eng.begin() as conn:
        accounts.add_department(conn, TESTS, "cmd_water", "cmd_water")
        made = {}
        for user, dept, role in (("cmd_editor", "emergency", "editor"),
                                 ("cmd_viewer", "emergency", "viewer"),
                                 ("cmd_other", "cmd_water", "editor")):  # fmt: skip
            accounts.add_user(conn, TESTS, user, roles=(role,), department=dept, service=True)
            made[user] = accounts.create_key(conn, TESTS, user, name="tests")
    made["admin"] = admin_key(database_url)
    return made


@pytest.fixture(scope="module")
def server(
    settings: Settings, database_url: str, keys: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:  # fmt: skip
    """The API routing units on cmd_roads, with the units placed."""
    record = ingest_roads(settings, tmp_path_factory.mktemp("command"), NETWORK, public=True)
    with psycopg.connect(database_url) as conn:
        nb.build(conn, record, SETTINGS)
        for device in UNITS:
            store.add_device(conn, device, department="emergency")
        conn.commit()
    ours = settings.model_copy(
        update={"command": CommandSettings(network=NETWORK, stale_after_s=600, on_scene_m=50)}
    )
    with LiveServer(create_app(ours)) as live:
        with httpx.Client(base_url=live.url, timeout=60) as client:
            for device, (kind, _, _) in UNITS.items():
                put = client.put(
                    f"/units/{device}", json={"kind": kind}, headers=_as(keys["cmd_editor"])
                )
                assert put.status_code == 200, put.text
        with psycopg.connect(database_url, autocommit=True) as conn:
            for device, (_, where, age) in UNITS.items():
                if where is not None and age is not None:
                    _store(conn, device, where, age)
        yield live


def _store(
    conn: psycopg.Connection[Any], device: str, where: tuple[float, float], age_s: float
) -> None:
    lon, lat = lonlat(*where)
    when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_s)
    done = store.store(conn, [Fix(time=when, lon=lon, lat=lat, device=device)], source="test",
                       settings=GPS)  # fmt: skip
    assert done.stored == 1, done.rejects


@pytest.fixture
def api(server: LiveServer, keys: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60,
                      headers=_as(keys["cmd_editor"])) as client:  # fmt: skip
        yield client


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _report(api: httpx.Client, where: tuple[float, float] = SCENE, **extra: Any) -> str:
    lon, lat = lonlat(*where)
    body = {"kind": "fire", "level": 2, "address": "一路 1200号", "lon": lon, "lat": lat, **extra}
    answer = api.post("/incidents", json=body)
    assert answer.status_code == 201, answer.text
    feature = answer.json()
    assert feature["properties"]["status"] == "reported"
    assert answer.headers["location"].endswith(f"/incidents/{feature['properties']['incident_id']}")
    return str(feature["properties"]["incident_id"])


def _unit(api: httpx.Client, device: str) -> dict[str, Any]:
    found: dict[str, Any] = next(u for u in api.get("/units").json() if u["unit"] == device)
    return found


def test_candidates_are_ranked_by_road_time_and_the_others_excluded_with_why(
    api: httpx.Client,
) -> None:
    incident = _report(api)
    answer = api.post(f"/incidents/{incident}/candidates", json={"kinds": ["cmd-engine"]})
    assert answer.status_code == 200, answer.text
    said = answer.json()
    ranked = [c["unit"] for c in said["candidates"]]
    assert ranked == ["cmd-e1", "cmd-e2"]
    first, second = said["candidates"]
    # E1: 298 m east along 一路 (local); the incident is 2 m off the road, E1 too.
    assert first["seconds"] == pytest.approx(300 / LOCAL, rel=0.02)
    assert first["roads"] == ["一路"] and first["route"]["type"] == "LineString"
    assert first["rank"] == 1 and 60 <= first["fix_age_s"] < 600
    # E2 goes west on 二路 to 中街 (V2), south to 一路, east to the incident.
    assert second["seconds"] == pytest.approx(900 / ARTERIAL + 1000 / LOCAL + 200 / LOCAL, rel=0.02)
    assert second["roads"] == ["二路", "中街", "一路"]
    why = {e["unit"]: e["reason"] for e in said["excluded"]}
    assert set(why) == {"cmd-stale", "cmd-nofix", "cmd-far", "cmd-island"}  # of this kind
    assert why["cmd-stale"].startswith("its latest fix is 6")  # 60 minutes and a little
    assert why["cmd-stale"].endswith(" min old (stale after 10 min)")
    assert why["cmd-nofix"] == "no fix yet"
    assert "m from the nearest road" in why["cmd-far"]
    assert "no road leads" in why["cmd-island"]
    # Of both kinds, the police car (100 m away) comes first.
    kinds = {"kinds": ["cmd-engine", "cmd-police"], "limit": 1}
    every = api.post(f"/incidents/{incident}/candidates", json=kinds).json()
    assert [c["unit"] for c in every["candidates"]] == ["cmd-p1"] and every["more"] == 2
    api.post(f"/incidents/{incident}/close")


def test_candidates_honour_the_road_closures(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The routes of the best are searched around them first (the API runs in this
    # process): with no margin, E2's way round by 西街 leaves that box, and is found again
    # on the whole network.
    monkeypatch.setattr(dispatch, "NEAR_M", 0.0)
    incident = _report(api)
    # 中街 (V2) closed: E2 comes down 西街 (V1) instead, 东街 being one-way northwards.
    ring = [lonlat(x, y) for x, y in ((980, 400), (1020, 400), (1020, 600), (980, 600),
                                      (980, 400))]  # fmt: skip
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    closure = api.post("/network/closures", json={
        "network": NETWORK, "reason": "路面塌陷 road collapsed", "expires_at": expires,
        "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
    })  # fmt: skip
    assert closure.status_code == 201, closure.text
    try:
        said = api.post(f"/incidents/{incident}/candidates", json={"kinds": ["cmd-engine"]})
        assert said.status_code == 200, said.text
        e1, e2 = said.json()["candidates"]
        assert e1["unit"] == "cmd-e1" and e1["seconds"] == pytest.approx(300 / LOCAL, rel=0.02)
        assert e2["roads"] == ["二路", "西街", "一路"]
        assert e2["seconds"] == pytest.approx(1900 / ARTERIAL + 2200 / LOCAL, rel=0.02)
    finally:
        assert api.delete(f"/network/closures/{closure.json()['id']}").status_code == 200
    again = api.post(f"/incidents/{incident}/candidates", json={"kinds": ["cmd-engine"]})
    assert again.json()["candidates"][1]["roads"] == ["二路", "中街", "一路"]
    api.post(f"/incidents/{incident}/close")


def test_dispatch_arrival_and_closing(
    api: httpx.Client, server: LiveServer, keys: dict[str, str], database_url: str
) -> None:
    incident = _report(api)
    heard: list[dict[str, Any]] = []
    ready = threading.Event()

    def listen() -> None:
        url = server.url.replace("http://", "ws://") + "/gps/live?device=none"
        with connect(url, additional_headers=_as(keys["admin"]), open_timeout=10) as ws:
            ready.set()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                h.get("kind") == "on-scene" for h in heard
            ):
                try:
                    heard.append(json.loads(ws.recv(timeout=1)))
                except TimeoutError:
                    continue

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(10)
    with Receiver() as receiver, psycopg.connect(database_url, autocommit=True) as conn:
        hook, _ = webhooks.add_webhook(conn, receiver.url, kinds=["on-scene"], actor=TESTS)
        sent = api.post(f"/incidents/{incident}/dispatch", json={"units": ["cmd-e1"]})
        assert sent.status_code == 200, sent.text
        done = sent.json()
        assert done["status"] == "dispatched"
        (assigned,) = done["assignments"]
        assert assigned["seconds"] == pytest.approx(300 / LOCAL, rel=0.02)
        assert assigned["route"]["type"] == "LineString" and assigned["eta"]
        e1 = _unit(api, "cmd-e1")
        assert e1["status"] == "assigned" and e1["incident"] == incident
        # Not a candidate any more, nor dispatchable elsewhere.
        other = _report(api, (100, 2))
        again = api.post(f"/incidents/{other}/dispatch", json={"units": ["cmd-e1"]})
        assert (
            again.status_code == 409 and f"cmd-e1 is assigned (incident {incident})" in again.text
        )
        # E1 drives east: 150 m short it is still on its way; within 50 m it is on scene.
        _store(conn, "cmd-e1", (1050, 2), 30)
        _store(conn, "cmd-e1", (1180, 3), 10)
        until(lambda: _unit(api, "cmd-e1")["status"] == "on-scene")
        described = api.get(f"/incidents/{incident}").json()
        assert described["properties"]["status"] == "on-scene"
        assert described["properties"]["units"] == "cmd-e1"
        (row,) = described["assignments"]
        assert row["arrived_at"] and row["released_at"] is None and row["roads"] == ["一路"]
        delivered = until(receiver.accepted, seconds=30)
        assert delivered[0]["kind"] == "on-scene" and delivered[0]["incident"] == incident
        assert delivered[0]["device"] == "cmd-e1" and delivered[0]["fence"] is None
        webhooks.remove_webhook(conn, hook, actor=TESTS)
        listener.join(30)
        kinds = [(h.get("type"), h.get("kind")) for h in heard if h.get("incident") == incident]
        assert ("incident", "dispatch") in kinds and ("incident", "on-scene") in kinds
        # Closing frees the unit; a closed incident no longer changes.
        closed = api.post(f"/incidents/{incident}/close")
        assert closed.status_code == 200 and closed.json()["freed"] == ["cmd-e1"]
        e1 = _unit(api, "cmd-e1")
        assert e1["status"] == "available" and e1["incident"] is None
        assert api.post(f"/incidents/{incident}/close").status_code == 409
        api.post(f"/incidents/{other}/close")


def test_two_dispatchers_claiming_one_unit_at_once_one_wins(
    api: httpx.Client, server: LiveServer, keys: dict[str, str]
) -> None:
    first, second = _report(api), _report(api)
    answers: list[httpx.Response] = []
    start = threading.Barrier(2)

    def claim(incident: str) -> None:
        with httpx.Client(base_url=server.url, timeout=60, headers=_as(keys["cmd_editor"])) as c:
            start.wait()
            answers.append(c.post(f"/incidents/{incident}/dispatch", json={"units": ["cmd-e2"]}))

    threads = [threading.Thread(target=claim, args=(i,)) for i in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    lost = next(a for a in answers if a.status_code == 409)
    assert "not dispatched: cmd-e2 is assigned" in lost.json()["description"]
    for incident in (first, second):
        api.post(f"/incidents/{incident}/close")


def test_part4_edits_keep_the_rules(api: httpx.Client) -> None:
    incident = _report(api)
    found = api.get(f"/incidents/{incident}").json()
    path = f"/collections/incidents/items/{found['id']}"
    # The assigned units are the dispatch's: an edit does not write them.
    patched = api.patch(path, json={"type": "Feature", "properties": {"units": "x", "level": 1}})
    assert patched.status_code == 200, patched.text
    now = api.get(f"/incidents/{incident}").json()["properties"]
    assert now["units"] is None and now["level"] == 1
    backwards = api.patch(path, json={"type": "Feature", "properties": {"status": "bogus"}})
    assert backwards.status_code == 400 and "status 'bogus'" in backwards.text
    closing = api.patch(path, json={"type": "Feature", "properties": {"status": "closed"}})
    assert closing.status_code == 200
    reopened = api.patch(path, json={"type": "Feature", "properties": {"status": "reported"}})
    assert reopened.status_code == 400 and "is closed" in reopened.text


def test_who_may_command(server: LiveServer, keys: dict[str, str]) -> None:
    lon, lat = lonlat(*SCENE)
    body = {"kind": "fire", "lon": lon, "lat": lat}
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.post("/incidents", json=body).status_code in {401, 404}
        assert c.post("/incidents", json=body, headers=_as(keys["cmd_other"])).status_code == 404
        viewer = c.post("/incidents", json=body, headers=_as(keys["cmd_viewer"]))
        assert viewer.status_code == 403, viewer.text
        assert c.get("/units", headers=_as(keys["cmd_viewer"])).status_code == 200
        assert c.get("/collections/incidents").status_code == 404  # private


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"kind": "fire"}, "body.lon: Field required"),
        ({"kind": "fire", "lon": 200, "lat": 0}, "'lon' and 'lat'"),
        ({"kind": "", "lon": 112, "lat": 22}, "'kind' is required"),
        ({"kind": "fire", "lon": 112, "lat": 22, "level": 9}, "'level' is 1"),
    ],
)
def test_bad_reports_are_refused(api: httpx.Client, body: dict[str, Any], words: str) -> None:
    answer = api.post("/incidents", json=body)
    assert answer.status_code in {400, 422} and words in answer.text, answer.text


def test_bad_dispatches_are_refused(api: httpx.Client) -> None:
    incident = _report(api)
    for units, words in (([], "non-empty list"), (["cmd-p1", "cmd-p1"], "each once"),
                         (["nobody"], "nobody is not a unit")):  # fmt: skip
        answer = api.post(f"/incidents/{incident}/dispatch", json={"units": units})
        assert answer.status_code in {400, 409} and words in answer.text, answer.text
    assert api.post("/incidents/INC-none/dispatch", json={"units": ["cmd-p1"]}).status_code == 404
    far = _report(api, (3000, 2000))
    answer = api.post(f"/incidents/{far}/candidates", json={})
    assert answer.status_code == 400 and "from the nearest road" in answer.text
    bad = api.put("/units/cmd-p1", json={"status": "assigned"})
    assert bad.status_code == 400 and "come from the dispatch" in bad.text
    for made in (incident, far):
        api.post(f"/incidents/{made}/close")
