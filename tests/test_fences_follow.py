"""Geofences that follow their layers, and fences over HTTP (``/gps/fences``).

The collection ``ff_zones`` (three squares keyed ``zone``, editable, of the department
``ff_water``) is made into fences by its steward over HTTP; a Part 4 edit of a zone is
followed by the API's workers, a removed zone retires its fence, and a re-import that
renumbers the features keeps each fence (by key) with its id. Stewards of another
department neither see nor remove them; drawing and removing are audited.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from support import TESTS, LiveServer, until

from spatial import accounts
from spatial.db import engine
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

ZONES = {"Z1": ("一号区", 112.30), "Z2": ("二号区", 112.32), "Z3": ("三号区", 112.34)}


def _square(lon: float, lat: float = 22.70, size: float = 0.01) -> dict[str, Any]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def _write(path: Path, zones: dict[str, tuple[str, float]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"zone": z, "name": n}, "geometry": _square(lon)}
        for z, (n, lon) in zones.items()
    ]}), encoding="utf-8")  # fmt: skip
    return path


@pytest.fixture(scope="module")
def keys(database_url: str) -> dict[str, str]:
    """Keys of a steward of ff_water (which owns ff_zones) and of ff_other."""
    with engine(database_url) as eng, eng.begin() as conn:
        made = {}
        for dept in ("ff_water", "ff_other"):
            accounts.add_department(conn, TESTS, dept, dept)
            user = f"{dept}_steward"
            accounts.add_user(conn, TESTS, user, roles=("steward",), department=dept, service=True)
            made[dept] = accounts.create_key(conn, TESTS, user, name="tests")
    return made


@pytest.fixture(scope="module")
def zones(
    settings: Settings, keys: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("fences")
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    source = VectorSource(_write(folder / "zones.geojson", ZONES), "ff_zones", "Zones",
                          key="zone", editable=True, department="ff_water")  # fmt: skip
    ingest_vector(url, source, settings, actor="pytest")
    return folder


@pytest.fixture
def api(live_api: LiveServer, keys: dict[str, str]) -> Iterator[httpx.Client]:
    steward = {"Authorization": f"Bearer {keys['ff_water']}"}
    with httpx.Client(base_url=live_api.url, timeout=60, headers=steward) as client:
        yield client


def _fences(api: httpx.Client, active: str = "true") -> dict[str, dict[str, Any]]:
    answer = api.get("/gps/fences", params={"active": active})
    assert answer.status_code == 200, answer.text
    return {f["properties"]["key"]: f for f in answer.json()["features"]
            if f["properties"]["collection"] == "ff_zones"}  # fmt: skip


def test_fences_follow_edits_and_reimports(
    api: httpx.Client, zones: Path, settings: Settings, keys: dict[str, str], database_url: str
) -> None:
    made = api.post("/gps/fences/import", json={"collection": "ff_zones", "name_field": "name"})
    assert made.status_code == 201 and made.json()["fences"] == 3, made.text
    first = _fences(api)
    assert {k: f["properties"]["name"] for k, f in first.items()} == {
        "Z1": "一号区", "Z2": "二号区", "Z3": "三号区"}  # fmt: skip
    assert {f["properties"]["department"] for f in first.values()} == {"ff_water"}
    (source,) = [s for s in api.get("/gps/fences/sources").json() if s["collection"] == "ff_zones"]
    assert source["collection_version"] == source["current_version"]
    # Another department's steward neither sees them nor removes them.
    other = {"Authorization": f"Bearer {keys['ff_other']}"}
    assert "Z1" not in {f["properties"]["key"] for f in
                        api.get("/gps/fences", headers=other).json()["features"]}  # fmt: skip
    refused = api.delete(f"/gps/fences/{first['Z1']['id']}", headers=other)
    assert refused.status_code == 403, refused.text

    # An edit through the API: the workers remake the fence (same id, new name and place).
    items = api.get("/collections/ff_zones/items", params={"zone": "Z2"}).json()["features"]
    fid = items[0]["id"]
    moved = {"type": "Feature", "properties": {"name": "二号区（扩）"},
             "geometry": _square(112.32, size=0.02)}  # fmt: skip
    assert api.patch(f"/collections/ff_zones/items/{fid}", json=moved).status_code == 200
    z2 = until(lambda: _fences(api)["Z2"], lambda f: f["properties"]["name"] == "二号区（扩）",
               "the edited zone's fence")  # fmt: skip
    assert z2["id"] == first["Z2"]["id"]
    assert max(p[0] for p in z2["geometry"]["coordinates"][0][0]) == pytest.approx(112.34)
    # A removed zone retires its fence (kept, with its events, inactive).
    z3 = next(f for f in api.get("/collections/ff_zones/items").json()["features"]
              if f["properties"]["zone"] == "Z3")  # fmt: skip
    assert api.delete(f"/collections/ff_zones/items/{z3['id']}").status_code == 204
    until(lambda: _fences(api), lambda now: "Z3" not in now, "the removed zone's fence retired")
    assert not _fences(api, "false")["Z3"]["properties"]["active"]

    # A re-import in another order (features renumbered) with a new zone: the job follows.
    again = {"Z4": ("四号区", 112.36), "Z2": ("二号区", 112.32), "Z1": ("一号区", 112.30)}
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    done = ingest_vector(url, VectorSource(_write(zones / "zones2.geojson", again), "ff_zones",
                                           "Zones", key="zone", editable=True),
                         settings, actor="pytest")  # fmt: skip
    assert done.report["fences"] == [{"collection": "ff_zones", "fences": 3}]
    now = _fences(api)
    assert set(now) == {"Z1", "Z2", "Z4"}
    assert now["Z1"]["id"] == first["Z1"]["id"] and now["Z2"]["id"] == first["Z2"]["id"]
    assert now["Z2"]["properties"]["name"] == "二号区"  # as the file says again
    with psycopg.connect(database_url) as conn:
        actors = {a for (a,) in conn.execute(
            "SELECT actor FROM platform.audit_log WHERE action = 'fence-import' "
            "AND details->>'collection' = 'ff_zones'")}  # fmt: skip
    assert {"ff_water_steward", "pytest"} <= actors

    # Stop following: the fences go.
    stopped = api.delete("/gps/fences/sources/ff_zones")
    assert stopped.status_code == 200 and stopped.json()["removed"] == 4
    assert _fences(api, "false") == {}
    assert api.delete("/gps/fences/sources/ff_zones").status_code == 404


def test_drawn_fences_belong_to_their_department(
    api: httpx.Client, live_api: LiveServer, keys: dict[str, str], database_url: str
) -> None:
    body = {"name": "ff 临时管控区", "geometry": _square(112.40), "dwell_s": 60}
    with httpx.Client(base_url=live_api.url, timeout=60) as anonymous:
        assert anonymous.post("/gps/fences", json=body).status_code == 401
        assert anonymous.get("/gps/fences").status_code == 401
    drawn = api.post("/gps/fences", json=body)
    assert drawn.status_code == 201 and drawn.json()["department"] == "ff_water", drawn.text
    fence = drawn.json()["id"]
    listed = {f["id"]: f for f in api.get("/gps/fences").json()["features"]}
    assert listed[fence]["properties"]["dwell_s"] == 60
    other = {"Authorization": f"Bearer {keys['ff_other']}"}
    assert api.delete(f"/gps/fences/{fence}", headers=other).status_code == 403
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    bad = api.post("/gps/fences", json={"name": "x", "geometry": bowtie})
    assert bad.status_code == 400 and "valid polygon" in bad.text
    assert api.delete(f"/gps/fences/{fence}").status_code == 200
    assert api.delete(f"/gps/fences/{fence}").status_code == 404
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT actor, details FROM platform.audit_log WHERE action = 'fence-add' "
            "AND feature_ids = %s", ([str(fence)],)).fetchone()  # fmt: skip
    assert row is not None and row[0] == "ff_water_steward"
    assert row[1]["department"] == "ff_water"
