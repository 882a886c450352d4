"""The GPS receivers over real HTTP on the live API: every OsmAnd request of Traccar's own
tests answered as Traccar answers it, the demo fleet's OsmAnd log replayed into the store
(duplicates harmless), OwnTracks HTTP, junk requests, refused fixes counted."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest
from conftest import SHARED_DATA
from support import LiveServer

from spatial import samples
from spatial.gps.store import add_device

SAMPLES = SHARED_DATA / "gps" / "traccar_osmand_requests.txt"
TRACCAR_DEVICES = ("123456", "902064", "353861053849681", "861001000719969",
                   "123456789012345", "48241179", "658765", "8737767034")  # fmt: skip
FLEET = ("YF-AMB-01", "YF-FIRE-01", "YF-AMB-02", "YF-FIRE-02", "YF-WATER-01", "YF-ENV-01")


@pytest.fixture(scope="module")
def api(live_api: LiveServer, database_url: str) -> Iterator[httpx.Client]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for device in (*TRACCAR_DEVICES, *FLEET, "owner/phone"):
            if (
                conn.execute("SELECT 1 FROM gps.devices WHERE id = %s", (device,)).fetchone()
                is None
            ):
                add_device(conn, device)
    with httpx.Client(base_url=live_api.url, timeout=30) as client:
        yield client


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
    zero = api.get("/gps/osmand", params={"id": "YF-ENV-01", "lat": 0, "lon": 0,
                                         "timestamp": 1772323300})  # fmt: skip
    assert zero.status_code == 200  # junk the client should not send again
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count FROM gps.rejects WHERE device_id = 'YF-ENV-01' "
                           "AND reason = 'zero_position'").fetchone()  # fmt: skip
    assert row is not None and row[0] >= 1
