"""The client's emergency calls against the demo city on a live server (network ``roads``):
``Client.service_area`` and ``Client.closest_facility``, and the command API
(``report_incident``, ``incident``, ``candidates``, ``dispatch``, ``close_incident``,
``units``), with the figures checked against the platform's own routes and the data.

Four test fire engines of the emergency department: ``TCC-NEAR`` at 云城消防救援站 and
``TCC-FAR`` at 城东特勤消防站 report fresh fixes over the OsmAnd receiver, as field
devices do; ``TCC-NOFIX`` has none; ``TCC-OFFROAD`` reports from 25 km east of the city.
The demo's own units (``YF-FIRE-*``, ``YF-AMB-*``) have months-old fixes: stale. The
test units are removed at the end (their fixes stay, as a device's do), and every
incident opened here is closed.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import TypeVar

import httpx
import pandas as pd
import pytest
import shapely
from support import TESTS, LiveServer

from spatial import Client, accounts
from spatial.db import engine
from spatial.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    SpatialError,
)

T = TypeVar("T")
INCIDENT = (111.995, 22.905)
"""On 文明路西段, 180 m from the road (the notebook's traffic accident)."""
NEAR = (111.9951, 22.90407)
"""云城消防救援站."""
FAR = (112.01188, 22.8915)
"""城东特勤消防站."""
SECOND_HOSPITAL = (111.98515, 22.91012)
"""云浮市第二人民医院: the nearest hospital to the incident, across a high-risk flood zone."""
HIGH = {"collection": "flood_zones", "filter": "risk = 'high'"}
FIXES = {"TCC-NEAR": NEAR, "TCC-FAR": FAR, "TCC-NOFIX": None, "TCC-OFFROAD": (112.3, 22.9)}
DEMO_FIRE = ("YF-FIRE-01", "YF-FIRE-02")


def _eventually(probe: Callable[[], T], seconds: float = 15.0) -> T:
    """``probe()`` once it stops raising (the server follows access changes in seconds)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return probe()
        except (AssertionError, SpatialError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture(scope="module")
def admin(demo_api: LiveServer, admin_auth: dict[str, str]) -> Iterator[Client]:
    token = admin_auth["Authorization"].removeprefix("Bearer ")
    with Client(demo_api.url, token=token) as c:
        yield c


@pytest.fixture(scope="module")
def units(admin: Client) -> Iterator[dict[str, tuple[float, float] | None]]:
    """The test units, placed by their own fixes; removed at the end."""
    for device, where in FIXES.items():
        admin.request("POST", "/gps/devices", json={"id": device, "department": "emergency"})
        admin.request("PUT", f"/units/{device}", json={"kind": "fire-engine"})
        if where is not None:  # as OsmAnd sends it: no token, Unix seconds
            now = int(time.time())
            fix = httpx.get(f"{admin.url}/gps/osmand", params={
                "id": device, "lon": where[0], "lat": where[1], "timestamp": now})  # fmt: skip
            assert fix.status_code == 200 and fix.text == "OK", fix.text
    try:
        yield FIXES
    finally:
        for device in FIXES:
            admin.request("DELETE", f"/units/{device}")
            admin.request("DELETE", f"/gps/devices/{device}")


@pytest.fixture
def opened(admin: Client) -> Iterator[list[str]]:
    """The incidents a test opens, closed after it (those it closed itself are skipped)."""
    made: list[str] = []
    yield made
    for incident in made:
        if admin.incident(incident)["status"].iloc[0] != "closed":
            admin.close_incident(incident)


def _metres(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.to_crs(4546)


def test_service_area_bands_nest_and_grow(admin: Client) -> None:
    areas = admin.service_area("roads", NEAR, minutes=(2, 4, 6))
    assert list(areas.columns) == ["minutes", "segments", "km", "geometry"]
    assert areas.crs == "EPSG:4326" and set(areas.geom_type) == {"Polygon"}
    assert areas["minutes"].tolist() == [6.0, 4.0, 2.0]  # the largest first
    km, pieces = areas["km"].tolist(), areas["segments"].tolist()
    assert km[0] > km[1] > km[2] > 1 and pieces[0] > pieces[1] > pieces[2]
    shapes = _metres(areas).geometry.tolist()
    assert shapes[0].area > shapes[1].area > shapes[2].area
    for big, small in pairwise(shapes):
        assert small.difference(big).area < 1.0  # each band within the next
    # The same answer as the process asked by hand.
    raw = admin.process("service-area", network="roads", points=[list(NEAR)], minutes=[2, 4, 6])
    assert [f["properties"]["km"] for f in raw["areas"]["features"]] == km

    # From every fire station the city is reached farther; the flooded roads shrink it.
    stations = admin.read("fire_stations")
    every = admin.service_area("roads", stations, minutes=(2, 4, 6))
    assert all(a > b for a, b in zip(every["km"], km, strict=True))
    flooded = admin.service_area("roads", stations, minutes=(2, 4, 6), barriers=[HIGH])
    assert all(a < b for a, b in zip(flooded["km"], every["km"], strict=True))


def test_closest_facilities_are_the_routes_ranked_by_seconds(admin: Client) -> None:
    near = admin.closest_facility("roads", INCIDENT, "hospitals", k=5)
    assert near.columns[:2].tolist() == ["rank", "facility"]
    assert near.columns[-5:].tolist() == ["seconds", "minutes", "length_m", "roads", "geometry"]
    assert {"name", "beds", "facility_id"} <= set(near.columns)
    assert near["rank"].tolist() == [1, 2, 3, 4, 5]
    seconds = near["seconds"].tolist()
    assert seconds == sorted(seconds) and seconds[0] > 0
    assert near["minutes"].tolist() == [round(s / 60, 2) for s in seconds]
    assert near["name"].iloc[0] == "云浮市第二人民医院"
    hospitals = admin.read("hospitals").set_index("facility_id")
    for row in near.itertuples():
        # Each is the platform's own fastest route from the incident to that hospital.
        way = admin.route("roads", INCIDENT, hospitals.geometry[row.facility_id])
        assert row.seconds == pytest.approx(way["seconds"].iloc[0], abs=0.2)
        assert row.length_m == pytest.approx(way["length_m"].iloc[0], abs=1.0)
        assert row.roads == way["roads"].iloc[0] and row.geometry.geom_type == "LineString"

    # A filter keeps the ranking of the facilities it keeps.
    every = admin.closest_facility("roads", INCIDENT, "hospitals", k=50)
    big = admin.closest_facility("roads", INCIDENT, "hospitals", k=50, filter="beds >= 500")
    assert len(big) < len(every) and (big["beds"] >= 500).all()
    assert big["name"].tolist() == every.loc[every["beds"] >= 500, "name"].tolist()


def test_flooded_roads_are_avoided(admin: Client) -> None:
    zones = admin.read("flood_zones", filter="risk = 'high'", crs=4546).union_all()
    dry = admin.closest_facility("roads", INCIDENT, "hospitals", k=5)
    wet = admin.closest_facility("roads", INCIDENT, "hospitals", k=5, barriers=[HIGH])
    # The nearest hospital lies across a high-risk zone: with it closed, others come first.
    assert "云浮市第二人民医院" not in wet["name"].tolist()
    assert wet["name"].tolist() == [n for n in dry["name"] if n != "云浮市第二人民医院"] + [
        wet["name"].iloc[-1]
    ]
    crossed = _metres(dry).geometry.iloc[0].intersection(zones).length
    assert crossed > 10
    assert all(line.intersection(zones).length < 1.0 for line in _metres(wet).geometry)

    direct = admin.route("roads", NEAR, SECOND_HOSPITAL)
    around = admin.route("roads", NEAR, SECOND_HOSPITAL, barriers=[HIGH])
    assert around["seconds"].iloc[0] > 3 * direct["seconds"].iloc[0]
    assert _metres(around).geometry.iloc[0].intersection(zones).length < 1.0


@pytest.mark.usefixtures("units")
def test_command_chain(admin: Client, opened: list[str]) -> None:
    incident = admin.report_incident("fire", INCIDENT, level=2, address="文明路西段 18号",
                                     description="厨房起火")  # fmt: skip
    opened.append(incident)
    assert re.fullmatch(r"INC-\d{8}-\d{5}", incident)
    found = admin.incident(incident)
    assert len(found) == 1 and found.crs == "EPSG:4326"
    row = found.iloc[0]
    assert (row["incident_id"], row["kind"], row["level"], row["status"]) == (
        incident, "fire", 2, "reported")  # fmt: skip
    assert row["address"] == "文明路西段 18号" and row["description"] == "厨房起火"
    assert row.geometry.equals_exact(shapely.Point(INCIDENT), 1e-9)
    assert abs(pd.Timestamp.now(tz="UTC") - row["reported_at"]) < pd.Timedelta(minutes=1)
    assert found.attrs["assignments"] == []

    before = dt.datetime.now(dt.UTC)
    ranked = admin.candidates(incident, kinds="fire-engine")
    assert ranked.columns.tolist() == [
        "rank", "unit", "name", "kind", "seconds", "minutes", "eta", "metres", "roads",
        "fix_time", "fix_age_s", "geometry",
    ]  # fmt: skip
    assert ranked["unit"].tolist() == ["TCC-NEAR", "TCC-FAR"]
    assert ranked["rank"].tolist() == [1, 2] and set(ranked["kind"]) == {"fire-engine"}
    assert ranked["seconds"].is_monotonic_increasing
    assert (ranked["fix_age_s"] < 60).all()
    for candidate in ranked.itertuples():
        # The platform's own route from the unit's fix to the incident.
        way = admin.route("roads", FIXES[candidate.unit], INCIDENT)
        assert candidate.seconds == pytest.approx(way["seconds"].iloc[0], abs=0.2)
        assert candidate.metres == pytest.approx(way["length_m"].iloc[0], abs=1.0)
        assert candidate.roads == way["roads"].iloc[0]
        assert candidate.minutes == round(candidate.seconds / 60, 2)
        eta = before + dt.timedelta(seconds=candidate.seconds)
        assert abs(candidate.eta - eta) < dt.timedelta(seconds=30)
    excluded = {e["unit"]: e["reason"] for e in ranked.attrs["excluded"]}
    assert excluded["TCC-NOFIX"] == "no fix yet"
    assert re.fullmatch(r"it is [\d,]+ m from the nearest road", excluded["TCC-OFFROAD"])
    for demo in DEMO_FIRE:  # months old
        assert re.fullmatch(r"its latest fix is [\d,.]+ days old \(stale after 5 min\)",
                            excluded[demo])  # fmt: skip
    assert not any(unit.startswith("YF-AMB") for unit in excluded)  # of another kind
    assert ranked.attrs["incident"] == incident and ranked.attrs["network"] == "roads"
    assert ranked.attrs["stale_after_s"] == 300 and ranked.attrs["more"] == 0
    best = admin.candidates(incident, kinds=["fire-engine"], limit=1)
    assert best["unit"].tolist() == ["TCC-NEAR"] and best.attrs["more"] == 1

    sent = admin.dispatch(incident, ranked["unit"].head(1))
    assert sent["unit"].tolist() == ["TCC-NEAR"] and sent.attrs["status"] == "dispatched"
    assert sent["seconds"].iloc[0] == pytest.approx(ranked["seconds"].iloc[0], abs=0.2)
    assert sent.geometry.iloc[0].geom_type == "LineString"
    found = admin.incident(incident)
    assert found["status"].iloc[0] == "dispatched" and found["units"].iloc[0] == "TCC-NEAR"
    (assignment,) = found.attrs["assignments"]
    assert assignment["unit"] == "TCC-NEAR" and assignment["dispatched_by"] == "pytest_admin"
    assert assignment["route"]["type"] == "LineString" and assignment["released_at"] is None
    assert admin.units().set_index("unit").loc["TCC-NEAR", "status"] == "assigned"

    # Another incident cannot have it: 409, ConflictError, and nothing of it dispatched.
    other = admin.report_incident("traffic-accident", FAR, level=3)
    opened.append(other)
    assert admin.candidates(other, kinds="fire-engine")["unit"].tolist() == ["TCC-FAR"]
    taken = f"TCC-NEAR is assigned \\(incident {incident}\\)"
    with pytest.raises(ConflictError, match=taken) as caught:
        admin.dispatch(other, ["TCC-FAR", "TCC-NEAR"])
    assert caught.value.status == 409  # type: ignore[attr-defined]
    assert admin.incident(other)["status"].iloc[0] == "reported"
    assert admin.units().set_index("unit").loc["TCC-FAR", "status"] == "available"

    closed = admin.close_incident(incident)
    assert closed == {"incident": incident, "status": "closed", "freed": ["TCC-NEAR"]}
    assert admin.units().set_index("unit").loc["TCC-NEAR", "status"] == "available"
    assert admin.incident(incident).attrs["assignments"][0]["released_at"] is not None
    with pytest.raises(ConflictError, match="is closed"):
        admin.close_incident(incident)
    with pytest.raises(ConflictError, match="is closed"):
        admin.candidates(incident)


@pytest.mark.usefixtures("units")
def test_units_at_their_latest_fix(admin: Client) -> None:
    frame = admin.units()
    assert frame.columns.tolist() == [
        "unit", "name", "kind", "department", "status", "incident", "since", "fix_time",
        "fix_age_s", "stale", "geometry",
    ]  # fmt: skip
    assert str(frame["fix_time"].dtype) == "datetime64[us, UTC]"
    table = frame.set_index("unit")
    for demo in (*DEMO_FIRE, "YF-AMB-01", "YF-AMB-02"):
        assert table.loc[demo, "stale"] and table.loc[demo, "fix_age_s"] > 86_400
    assert table.loc["YF-AMB-01", "kind"] == "ambulance"
    near = table.loc["TCC-NEAR"]
    assert not near["stale"] and near["fix_age_s"] < 60
    assert near.geometry.equals_exact(shapely.Point(NEAR), 1e-9)
    assert near["department"] == "emergency" and near["status"] == "available"
    nofix = table.loc["TCC-NOFIX"]
    assert nofix["stale"] and pd.isna(nofix["fix_time"]) and nofix.geometry is None
    assert set(admin.units(status="available")["unit"]) >= set(FIXES)
    with pytest.raises(InvalidInputError, match="status 'parked'"):
        admin.units(status="parked")


@pytest.fixture(scope="module")
def viewer(demo_url: str, demo_api: LiveServer) -> Iterator[Client]:
    """A viewer of the emergency department: reads the incidents, changes none."""
    with engine(demo_url) as eng, eng.begin() as conn:
        accounts.add_user(conn, TESTS, "tcc_viewer", roles=("viewer",), department="emergency",
                          service=True)  # fmt: skip
        key = accounts.create_key(conn, TESTS, "tcc_viewer", name="tests")
    with Client(demo_api.url, token=key) as c:
        yield c


def test_who_may_command(admin: Client, viewer: Client, opened: list[str]) -> None:
    with Client(admin.url, token="") as anonymous:
        with pytest.raises(NotFoundError, match="sign in") as caught:
            anonymous.report_incident("fire", INCIDENT)
        assert caught.value.status == 404  # type: ignore[attr-defined]
        with pytest.raises(NotFoundError, match="sign in"):
            anonymous.units()
    assert "YF-FIRE-01" in _eventually(viewer.units)["unit"].tolist()
    incident = admin.report_incident("fire", INCIDENT)
    opened.append(incident)
    assert viewer.incident(incident)["status"].iloc[0] == "reported"
    with pytest.raises(ForbiddenError):
        viewer.report_incident("fire", INCIDENT)
    with pytest.raises(ForbiddenError):
        viewer.close_incident(incident)


def test_refusals(admin: Client, opened: list[str]) -> None:
    with pytest.raises(NotFoundError, match="no incident 'INC-19700101-00000'"):
        admin.incident("INC-19700101-00000")
    with pytest.raises(InvalidInputError, match="'level' is 1"):
        admin.report_incident("fire", INCIDENT, level=7)
    with pytest.raises(TypeError, match="point must be a point"):
        admin.report_incident("fire", "文明路")
    incident = admin.report_incident("fire", INCIDENT)
    opened.append(incident)
    with pytest.raises(InvalidInputError, match="units names nothing"):
        admin.dispatch(incident, [])
    with pytest.raises(ConflictError, match="NOBODY is not a unit"):
        admin.dispatch(incident, "NOBODY")
    with pytest.raises(InvalidInputError, match="minutes must be more than 0"):
        admin.service_area("roads", NEAR, minutes=(0, 5))
    with pytest.raises(NotFoundError):
        admin.closest_facility("roads", INCIDENT, "no_such_facilities")
