"""The client's sensor calls against the demo city on a live server: ``Client.stations``,
``Client.readings``, ``Client.alarms`` and ``Client.acknowledge``, with the figures checked
against the platform's own answers (``/alarms/status``, ``/sta/v1.1``) and the demo's data
(:mod:`spatial.sta.demo`: two gauges above warning, one of them above danger; the stone
industry park's air heavily polluted; hourly readings of the last 48 hours).

The demo's alarms are not acknowledged here (other tests and the maps see them): the
department ``cs_air`` makes its own station over SensorThings, as a field system would,
with an AQI datastream whose readings raise a ``heavy`` alarm, and acknowledges that one.
Its readings are a month ago, away from the demo's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from support import TESTS, LiveServer, until

from spatial import Client, accounts
from spatial.client import sensors
from spatial.db import engine
from spatial.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    SpatialError,
    UnauthorizedError,
)
from spatial.sta import demo

HIGH = {"YF-SW-02": "danger", "YF-SW-05": "warning"}
"""The demo's gauges above their warning level, and their level."""
POLLUTED = demo.POLLUTED
HOURS = demo.HOURS
OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


@pytest.fixture(scope="module")
def anon(demo_api: LiveServer) -> Iterator[Client]:
    with Client(demo_api.url, token="") as c:
        yield c


@pytest.fixture(scope="module")
def keys(demo_url: str) -> dict[str, str]:
    """API keys of an editor of ``cs_air`` and of a viewer of ``cs_other``."""
    made = {}
    with engine(demo_url) as eng, eng.begin() as conn:
        for dept, user, role in (("cs_air", "cs_air_editor", "editor"),
                                 ("cs_other", "cs_other_viewer", "viewer")):  # fmt: skip
            accounts.add_department(conn, TESTS, dept, f"Client sensors {dept}")
            accounts.add_user(conn, TESTS, user, roles=(role,), department=dept, service=True)
            made[dept] = accounts.create_key(conn, TESTS, user, name="tests")
    return made


def _signed_in(url: str, key: str) -> Client:
    """A client of the key, once the server knows the key."""
    c = Client(url, token=key)
    until(lambda: _answers(c), what="the new key accepted")
    return c


def _answers(c: Client) -> bool:
    try:
        c.request("GET", "/sta/v1.1/Things", params={"$top": "1"})
    except SpatialError:
        return False
    return True


@pytest.fixture(scope="module")
def editor(demo_api: LiveServer, keys: dict[str, str]) -> Iterator[Client]:
    with _signed_in(demo_api.url, keys["cs_air"]) as c:
        yield c


@pytest.fixture(scope="module")
def other(demo_api: LiveServer, keys: dict[str, str]) -> Iterator[Client]:
    with _signed_in(demo_api.url, keys["cs_other"]) as c:
        yield c


@pytest.fixture(scope="module")
def own(editor: Client) -> dict[str, Any]:
    """``cs_air``'s station (no collection), its AQI datastream and the hours of its
    readings, in one DataArray (judged by the latest): light, medium, heavy (an alarm)."""
    body = {
        "name": "cs 测试空气站", "description": "the client tests' air station",
        "Locations": [{"name": "cs site", "description": "roof", "encodingType":
                       "application/geo+json",
                       "location": {"type": "Point", "coordinates": [112.03, 22.91]}}],
        "Datastreams": [{
            "name": "cs AQI", "description": "AQI", "observationType": OM,
            "unitOfMeasurement": {"name": "AQI", "symbol": "AQI",
                                  "definition": "urn:spatial:unit:aqi"},
            "ObservedProperty": {"name": "AQI", "definition": "urn:cs:aqi",
                                 "description": "air quality index"},
            "Sensor": {"name": "cs analyser", "description": "-",
                       "encodingType": "text/plain", "metadata": "-"},
        }],
    }  # fmt: skip
    made = editor.request("POST", "/sta/v1.1/Things", json=body)
    thing = made.json()["@iot.id"] if made.content else int(
        made.headers["location"].rsplit("(", 1)[1].rstrip(")"))  # fmt: skip
    streams = editor.request("GET", f"/sta/v1.1/Things({thing})/Datastreams").json()["value"]
    (datastream,) = [d["@iot.id"] for d in streams]
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).replace(
        minute=0, second=0, microsecond=0)  # fmt: skip
    times = [start + dt.timedelta(hours=h) for h in range(3)]
    values = [120.0, 180.0, 250.0]
    array = [{"Datastream": {"@iot.id": datastream}, "components": ["phenomenonTime", "result"],
              "dataArray": [[t.isoformat().replace("+00:00", "Z"), v]
                            for t, v in zip(times, values, strict=True)]}]  # fmt: skip
    done = editor.request("POST", "/sta/v1.1/CreateObservations", json=array).json()
    assert not [x for x in done if str(x).startswith("error")], done
    return {"thing": thing, "datastream": datastream, "times": times, "values": values}


# --- stations ---------------------------------------------------------------------------


def test_stations_are_one_row_each_with_their_latest_readings(anon: Client) -> None:
    gauges = anon.stations("water_gauges")
    assert gauges.crs == "EPSG:4326" and set(gauges.geom_type) == {"Point"}
    assert gauges.columns[:4].tolist() == ["key", "thing", "name", "level"]
    assert gauges.columns[-1] == "geometry"
    for prop in ("Water level", "Rainfall"):
        at = gauges.columns.get_loc(prop)
        assert gauges.columns[at : at + 4].tolist() == [
            prop, f"{prop}_time", f"{prop}_level", f"{prop}_datastream"]  # fmt: skip
    assert gauges["key"].is_unique and gauges["key"].is_monotonic_increasing
    assert str(gauges["Water level_time"].dtype) == "datetime64[us, UTC]"
    assert gauges["Water level"].dtype == float
    assert gauges["Water level"].notna().all()  # every gauge reads its water level
    assert gauges["Rainfall"].notna().sum() == len(range(0, len(gauges), demo.RAIN_EVERY))

    # The demo's high gauges are at their level; no other gauge is above warning.
    levels = gauges.set_index("key")["level"]
    assert levels[list(HIGH)].tolist() == list(HIGH.values())
    assert levels.drop(list(HIGH)).isna().all()
    assert gauges.set_index("key").loc[list(HIGH), "Water level_level"].tolist() == list(
        HIGH.values())  # fmt: skip

    # The same figures as the platform's own answer, station by station.
    raw = anon.request("GET", "/alarms/status", params={"collection": "water_gauges"}).json()
    by_key = gauges.set_index("key")
    for feature in raw["features"]:
        row = by_key.loc[feature["id"]]
        assert row["thing"] == feature["properties"]["thing"]
        assert row["name"] == feature["properties"]["name"]
        assert row.geometry.coords[0] == pytest.approx(feature["geometry"]["coordinates"])
        for ds in feature["properties"]["datastreams"]:
            prop = ds["property"]
            assert row[prop] == pytest.approx(ds["value"])
            assert row[f"{prop}_time"] == pd.Timestamp(ds["time"])
            assert row[f"{prop}_datastream"] == ds["id"]

    # Every datastream in attrs, with its thresholds as {level: above}.
    streams = pd.DataFrame(gauges.attrs["datastreams"])
    assert gauges.attrs["collection"] == "water_gauges"
    assert len(streams) == sum(len(f["properties"]["datastreams"]) for f in raw["features"])
    high = streams[(streams["key"] == "YF-SW-02") & (streams["property"] == "Water level")]
    (thresholds,) = high["thresholds"].tolist()
    assert list(thresholds) == ["warning", "danger"]
    assert thresholds["danger"] == pytest.approx(thresholds["warning"] + 1.0)
    assert by_key.loc["YF-SW-02", "Water level"] > thresholds["danger"]
    assert high["unit"].tolist() == ["m"]
    rain = streams[streams["property"] == "Rainfall"]
    assert {w["rule"] for ws in rain["windows"] for w in ws} == {
        "water/rainfall-1h", "water/rainfall-24h"}  # fmt: skip


def test_air_stations_are_in_their_aqi_bands(anon: Client) -> None:
    stations = anon.stations("env_stations")
    air = stations[stations["key"].str.startswith("YF-AQ-")].set_index("key")
    assert {"AQI", "AQI_level", "PM2.5", "PM2.5_level"} <= set(stations.columns)
    assert air["AQI"].notna().all() and air["PM2.5"].notna().all()
    assert air.loc[POLLUTED, "level"] == "heavy" and air.loc[POLLUTED, "AQI"] > 200
    bands = {"good": (0, 50), "moderate": (50, 100), "light": (100, 150)}
    for key, row in air.drop(POLLUTED).iterrows():
        low, high = bands[row["AQI_level"]]
        assert low <= row["AQI"] <= high, key
    # The other stations (noise, water quality) read nothing: no value, no level.
    rest = stations[~stations["key"].str.startswith("YF-AQ-")]
    assert len(rest) > 0 and rest["AQI"].isna().all() and rest["level"].isna().all()


def test_stations_of_an_unknown_collection_are_not_found(anon: Client) -> None:
    with pytest.raises(NotFoundError, match="nowhere") as caught:
        anon.stations("nowhere")
    assert caught.value.status == 404  # type: ignore[attr-defined]


# --- readings ---------------------------------------------------------------------------


def test_readings_of_a_demo_datastream_are_hourly_in_order(anon: Client) -> None:
    gauges = anon.stations("water_gauges").set_index("key")
    ds = int(gauges.loc["YF-SW-02", "Water level_datastream"])
    level = anon.readings(ds)
    assert level.columns.tolist() == ["result"] and level["result"].dtype == float
    assert level.index.name == "time" and str(level.index.dtype) == "datetime64[us, UTC]"
    # The last 48 hours, both ends included: 49 hourly readings, oldest first.
    assert len(level) == HOURS + 1
    assert level.index.is_monotonic_increasing and level.index.is_unique
    assert (level.index.to_series().diff().dropna() == pd.Timedelta(hours=1)).all()
    latest = gauges.loc["YF-SW-02"]
    assert level.index[-1] == latest["Water level_time"]
    assert level["result"].iloc[-1] == pytest.approx(latest["Water level"])
    assert level.index[-1] - level.index[0] == pd.Timedelta(hours=HOURS)
    assert level.attrs == {"datastream": ds, "name": "南山河高峰桥水位站 水位 Water level",
                           "property": "Water level", "unit": "m",
                           "thing": int(latest["thing"]), "station": latest["name"],
                           "key": "YF-SW-02"}  # fmt: skip

    # The same as the SensorThings answer.
    asked = {"$orderby": "phenomenonTime asc", "$top": "1000"}
    raw = anon.request("GET", f"/sta/v1.1/Datastreams({ds})/Observations", params=asked).json()
    assert level["result"].tolist() == [o["result"] for o in raw["value"]]

    # A window: start and end included, naive meaning UTC, text alike.
    end = level.index[-1]
    last_day = anon.readings(ds, start=end - pd.Timedelta(hours=23), end=end)
    assert len(last_day) == 24 and last_day.index[0] == end - pd.Timedelta(hours=23)
    naive = anon.readings(ds, start=(end - pd.Timedelta(hours=47)).tz_localize(None))
    assert len(naive) == HOURS
    text = anon.readings(ds, end=(level.index[0] + pd.Timedelta(hours=2)).isoformat())
    assert text.index.tolist() == level.index[:3].tolist()
    assert anon.readings(ds, start=end + pd.Timedelta(hours=1)).empty


def test_readings_follow_the_next_links(anon: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = anon.readings("YF-SW-05", property="Water level")
    monkeypatch.setattr(sensors, "READINGS_PAGE", 10)  # 49 readings: five pages
    asked: list[str] = []
    request = anon.request

    def noted(method: str, path_or_url: str, **kwargs: Any) -> Any:
        asked.append(path_or_url)
        return request(method, path_or_url, **kwargs)

    monkeypatch.setattr(anon, "request", noted)
    paged = anon.readings("YF-SW-05", property="Water level")
    pd.testing.assert_frame_equal(paged, whole)
    pages = [u for u in asked if "Observations" in u]
    assert len(pages) == 5 and all("@iot" not in u for u in pages)
    assert all("$skip=" in u for u in pages[1:])


def test_readings_of_a_station_by_key_or_name(anon: Client) -> None:
    air = anon.stations("env_stations").set_index("key")
    by_key = anon.readings(POLLUTED, property="AQI")
    assert by_key.attrs["datastream"] == air.loc[POLLUTED, "AQI_datastream"]
    by_name = anon.readings(air.loc[POLLUTED, "name"], property="aqi")  # any case
    pd.testing.assert_frame_equal(by_name, by_key)
    assert by_key["result"].iloc[-1] > 200  # heavily polluted now
    assert by_key["result"].iloc[0] < 150  # not two days ago
    pm = anon.readings(POLLUTED, property="urn:spatial:observed-property:pm25")
    assert pm.attrs["property"] == "PM2.5" and pm.attrs["unit"] == "μg/m³"
    # A gauge reading only its water level needs no property.
    only = anon.readings("YF-SW-02")
    assert only.attrs["property"] == "Water level" and len(only) == HOURS + 1


def test_readings_errors(anon: Client) -> None:
    with pytest.raises(InvalidInputError, match="give property= one of 'Rainfall', 'Water"):
        anon.readings("YF-SW-01")  # a gauge with a rain gauge too
    with pytest.raises(InvalidInputError, match="no datastream of 'Salinity'"):
        anon.readings("YF-SW-01", property="Salinity")
    with pytest.raises(NotFoundError, match="no station 'YF-NOPE'"):
        anon.readings("YF-NOPE")
    with pytest.raises(NotFoundError) as caught:
        anon.readings(987654)
    assert caught.value.status == 404  # type: ignore[attr-defined]
    with pytest.raises(InvalidInputError, match="start must be"):
        anon.readings(1, start="yesterday-ish")
    with pytest.raises(InvalidInputError, match="is after end"):
        anon.readings(1, start="2026-12-02", end="2026-12-01")
    with pytest.raises(TypeError, match="a datastream is named"):
        anon.readings(1.5)  # type: ignore[arg-type]


def test_readings_are_private_where_their_station_is(
    anon: Client, editor: Client, other: Client, own: dict[str, Any]
) -> None:
    mine = editor.readings(own["datastream"])
    assert mine["result"].tolist() == own["values"]
    assert mine.index.tolist() == [pd.Timestamp(t) for t in own["times"]]
    assert mine.attrs["key"] is None and mine.attrs["station"] == "cs 测试空气站"
    for outsider in (anon, other):  # the station is cs_air's: no one else sees it
        with pytest.raises(NotFoundError):
            outsider.readings(own["datastream"])


# --- alarms -----------------------------------------------------------------------------


def test_alarms_lists_the_demos_active_alarms(anon: Client) -> None:
    active = anon.alarms()
    assert active.columns.tolist() == list(sensors.ALARM_COLUMNS)
    assert set(active["state"]) == {"active"}
    assert str(active["raised_at"].dtype) == "datetime64[us, UTC]"
    demo_rows = active[active["collection"].isin(["water_gauges", "env_stations"])]
    found = {(r.feature_key, r.property, r.level) for r in demo_rows.itertuples()}
    assert found >= {("YF-SW-02", "Water level", "danger"), ("YF-SW-05", "Water level", "warning"),
                     (POLLUTED, "AQI", "heavy"), (POLLUTED, "PM2.5", "heavy")}  # fmt: skip
    assert (demo_rows["raised_value"] > demo_rows["threshold"]).all()
    assert active["raised_at"].is_monotonic_decreasing or len(active) < 2

    water = anon.alarms(subsystem="water")
    assert set(water["feature_key"]) >= set(HIGH) and set(water["subsystem"]) == {"water"}
    air = anon.alarms(collection="env_stations")
    assert set(air["collection"]) == {"env_stations"} and POLLUTED in set(air["feature_key"])
    danger = anon.alarms(level="danger", collection="water_gauges")
    assert "YF-SW-02" in danger["feature_key"].tolist() and set(danger["level"]) == {"danger"}
    danger = danger[danger["feature_key"] == "YF-SW-02"]
    assert set(anon.alarms(state="cleared")["state"]) <= {"cleared"}
    both = anon.alarms(state=None)
    assert set(active["id"]) <= set(both["id"])
    # Each alarm's datastream is the station's, for readings().
    gauges = anon.stations("water_gauges").set_index("key")
    assert danger["datastream"].iloc[0] == gauges.loc["YF-SW-02", "Water level_datastream"]
    with pytest.raises(InvalidInputError, match="state 'open'"):
        anon.alarms(state="open")


def test_acknowledge_once(anon: Client, editor: Client, other: Client, own: dict[str, Any]) -> None:
    mine = editor.alarms(state=None, since=own["times"][0] - dt.timedelta(hours=1))
    mine = mine[mine["datastream"] == own["datastream"]]
    assert mine[["level", "state", "raised_value", "threshold"]].values.tolist() == [
        ["heavy", "active", 250.0, 200.0]]  # fmt: skip
    assert mine["raised_at"].iloc[0] == pd.Timestamp(own["times"][-1])
    assert mine["acknowledged_by"].isna().all()
    alarm = mine["id"].iloc[0]  # a numpy integer, as the frame gives it
    demo_alarm = anon.alarms(collection="water_gauges")["id"].iloc[0]
    with pytest.raises(UnauthorizedError, match="sign in"):
        anon.acknowledge(demo_alarm)
    with pytest.raises(ForbiddenError):  # another department's (the demo's, public)
        other.acknowledge(demo_alarm)
    with pytest.raises(NotFoundError):  # cs_air's station: not other's to see
        other.acknowledge(alarm)

    done = editor.acknowledge(alarm)
    assert done["id"] == alarm and done["acknowledged_by"] == "cs_air_editor"
    at = pd.Timestamp(done["acknowledged_at"])
    assert abs(pd.Timestamp.now(tz="UTC") - at) < pd.Timedelta(minutes=1)
    with pytest.raises(ConflictError, match="acknowledged by cs_air_editor") as caught:
        editor.acknowledge(alarm)
    assert caught.value.status == 409  # type: ignore[attr-defined]
    after = editor.alarms(state="active")
    row = after[after["id"] == alarm].iloc[0]
    assert row["acknowledged_by"] == "cs_air_editor" and row["acknowledged_at"] == at
    with pytest.raises(TypeError, match="an alarm is named by its id"):
        editor.acknowledge("1")  # type: ignore[arg-type]
