"""Road networks over HTTP: built by the stewards of their roads (``/network/networks``),
and standing road closures (``/network/closures``): added and lifted by the
department that closes roads (here ``nc_command``), audited, honoured by every route
until they expire, and refused clearly to anyone else or with bad input; on the small
city of ``tests/networkcase.py`` (network ``nc_roads``, readable by everyone)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from networkcase import SETTINGS, lonlat
from networkcase import ingest as ingest_roads
from support import TESTS, LiveServer

from api import create_app
from spatial import accounts
from spatial.db import engine
from spatial.network import build as nb
from spatial.settings import NetworkSettings, Settings

NETWORK = "nc_roads"
WEST_STREET = [[list(lonlat(x, y)) for x, y in
                ((-20, 400), (20, 400), (20, 600), (-20, 600), (-20, 400))]]  # fmt: skip
LOCAL, ARTERIAL = 30 / 3.6, 50 / 3.6


@pytest.fixture(scope="module")
def keys(settings: Settings, database_url: str) -> dict[str, str]:
    """API keys of an editor and a viewer of nc_command, and an editor of nc_water."""
    with engine(database_url) as eng, eng.begin() as conn:
        made = {}
        for dept in ("nc_command", "nc_water"):
            accounts.add_department(conn, TESTS, dept, dept)
        for user, dept, role in (("nc_cmd_editor", "nc_command", "editor"),
                                 ("nc_cmd_viewer", "nc_command", "viewer"),
                                 ("nc_water_editor", "nc_water", "editor")):  # fmt: skip
            accounts.add_user(conn, TESTS, user, roles=(role,), department=dept, service=True)
            made[user] = accounts.create_key(conn, TESTS, user, name="tests")
    return made


@pytest.fixture(scope="module")
def api(
    settings: Settings, database_url: str, keys: dict[str, str], admin_auth: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[httpx.Client]:  # fmt: skip
    """The API with nc_command as the department that closes roads."""
    record = ingest_roads(settings, tmp_path_factory.mktemp("closures"), NETWORK, public=True)
    with psycopg.connect(database_url) as conn:
        nb.build(conn, record, SETTINGS)
    ours = settings.model_copy(
        update={"network": NetworkSettings(closures_department="nc_command")}
    )
    with (
        LiveServer(create_app(ours)) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        yield client


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _seconds(api: httpx.Client) -> float:
    inputs = {"network": NETWORK, "from": list(lonlat(100, -5)), "to": list(lonlat(1900, 1005))}
    answer = api.post("/processes/route/execution", json={"inputs": inputs})
    assert answer.status_code == 200, answer.text
    return float(answer.json()["route"]["properties"]["seconds"])


def _closure(expires: dt.timedelta = dt.timedelta(hours=2), **extra: Any) -> dict[str, Any]:
    until = dt.datetime.now(dt.UTC) + expires
    return {"network": NETWORK, "reason": "水管爆裂 burst main", "expires_at": until.isoformat(),
            "geometry": {"type": "Polygon", "coordinates": WEST_STREET}, **extra}  # fmt: skip


def test_a_closure_is_honoured_until_lifted_and_audited(
    api: httpx.Client, keys: dict[str, str], database_url: str
) -> None:
    direct = 100 / LOCAL + 1000 / LOCAL + 1900 / ARTERIAL
    assert _seconds(api) == pytest.approx(direct, rel=1e-3)
    made = api.post("/network/closures", json=_closure(), headers=_as(keys["nc_cmd_editor"]))
    assert made.status_code == 201, made.text
    closure = made.json()
    assert closure["type"] == "Feature" and closure["properties"]["active"] is True
    assert closure["properties"]["created_by"] == "nc_cmd_editor"
    assert _seconds(api) == pytest.approx(900 / LOCAL + 1000 / LOCAL + 900 / ARTERIAL, rel=1e-3)
    listed = api.get("/network/closures", params={"network": NETWORK}).json()["features"]
    assert [c["id"] for c in listed] == [closure["id"]]
    lifted = api.delete(f"/network/closures/{closure['id']}", headers=_as(keys["nc_cmd_editor"]))
    assert lifted.status_code == 200, lifted.text
    assert _seconds(api) == pytest.approx(direct, rel=1e-3)
    again = api.delete(f"/network/closures/{closure['id']}", headers=_as(keys["nc_cmd_editor"]))
    assert again.status_code == 404
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT action, actor, details->>'reason' FROM platform.audit_log "
            "WHERE action LIKE 'network.closure.%%' AND feature_ids = ARRAY[%s] ORDER BY id",
            (str(closure["id"]),),
        ).fetchall()
    assert rows == [("network.closure.add", "nc_cmd_editor", "水管爆裂 burst main"),
                    ("network.closure.remove", "nc_cmd_editor", "水管爆裂 burst main")]  # fmt: skip


def test_only_the_closing_department_may_close_roads(
    api: httpx.Client, keys: dict[str, str]
) -> None:
    anonymous = api.post("/network/closures", json=_closure())
    water = api.post("/network/closures", json=_closure(), headers=_as(keys["nc_water_editor"]))
    viewer = api.post("/network/closures", json=_closure(), headers=_as(keys["nc_cmd_viewer"]))
    assert anonymous.status_code == 401
    assert water.status_code == 403 and "editors and stewards of nc_command" in water.text
    assert viewer.status_code == 403
    assert api.get("/network/closures", params={"network": NETWORK}).json()["features"] == []


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"expires": dt.timedelta(hours=-1)}, 400, "before it would start or now"),
        ({"expires": dt.timedelta(days=400)}, 400, "lasts at most 366 days"),
        ({"reason": "  "}, 400, "needs a reason"),
        ({"network": "nowhere"}, 404, "no network 'nowhere'"),
        ({"geometry": {"type": "Point", "coordinates": [112, 23]}}, 400, "must be a polygon"),
        ({"expires_at": "2026-12-31T18:00:00"}, 400, "need a time zone"),
    ],
)
def test_bad_closures_are_refused_and_leave_nothing(
    api: httpx.Client, keys: dict[str, str], change: dict[str, Any], status: int, message: str
) -> None:
    body = _closure(change.pop("expires", dt.timedelta(hours=2)), **change)
    answer = api.post("/network/closures", json=body, headers=_as(keys["nc_cmd_editor"]))
    assert answer.status_code == status, answer.text
    assert message in answer.text
    assert api.get("/network/closures", params={"network": NETWORK}).json()["features"] == []


def test_expired_closures_are_listed_only_when_asked(
    api: httpx.Client, keys: dict[str, str], database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO net.closures (network, reason, geom, geom_native, starts_at, "
            "expires_at, created_by) VALUES (%s, 'old works', ST_MakeEnvelope(0, 0, 1, 1, 4326), "
            "ST_MakeEnvelope(0, 0, 1, 1, 4546), now() - interval '2 days', "
            "now() - interval '1 day', 'pytest')",
            (NETWORK,),
        )
    try:
        current = api.get("/network/closures", params={"network": NETWORK}).json()["features"]
        every = api.get("/network/closures", params={"network": NETWORK, "active": "false"})
        assert current == []
        assert [c["properties"]["reason"] for c in every.json()["features"]] == ["old works"]
        assert every.json()["features"][0]["properties"]["active"] is False
    finally:
        with psycopg.connect(database_url) as conn:
            conn.execute("DELETE FROM net.closures WHERE network = %s", (NETWORK,))
    assert api.get("/network/closures", params={"network": "nowhere"}).status_code == 404


def test_stewards_build_networks_over_http(
    api: httpx.Client, keys: dict[str, str], admin_auth: dict[str, str]
) -> None:
    speeds = {"default": 20, "classes": {"arterial": 50, "local": 30}}
    body = {"collection": NETWORK, "network": "nc_copy", "speeds": speeds,
            "oneway_field": "oneway", "level_field": "level"}  # fmt: skip
    built = api.post("/network/networks", json=body, headers=admin_auth)
    assert built.status_code == 201, built.text
    report = built.json()
    assert report["network"] == "nc_copy" and report["edges"] == 14 and report["pieces"] == 4
    assert report["default_speed_classes"] == {"bridge": 1, "track": 1}
    listed = {n["id"]: n for n in api.get("/network/networks").json()}
    assert {"nc_roads", "nc_copy"} <= set(listed)
    assert listed["nc_copy"]["report"]["edges"] == 14
    assert listed["nc_copy"]["settings"]["fields"]["oneway"] == "oneway"
    editor = api.post("/network/networks", json=body, headers=_as(keys["nc_cmd_editor"]))
    anonymous = api.post("/network/networks", json=body)
    bad_speed = api.post("/network/networks", json={**body, "speeds": {"default": -5}},
                         headers=admin_auth)  # fmt: skip
    bad_field = api.post("/network/networks", json={**body, "speed_field": "kind"},
                         headers=admin_auth)  # fmt: skip
    assert editor.status_code == 403 and anonymous.status_code == 401
    assert bad_speed.status_code == 400 and "outside (0, 300]" in bad_speed.text
    assert bad_field.status_code == 400 and "has no property 'kind'" in bad_field.text
