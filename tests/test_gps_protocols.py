"""The HTTP protocols of phone trackers: OsmAnd / Traccar Client and OwnTracks.

Three kinds of evidence: Traccar's own test requests (``traccar_osmand_requests.txt`` in
the shared data, each with Traccar's expectation), the demo fleet's request log from
``spatial.samples`` (compared with the GPX of the same build), and hand-written
OwnTracks messages. Seeded junk checks that nothing raises. No database is needed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import SHARED_DATA

from spatial.gps.fix import REASONS, Decoded, Fix
from spatial.gps.osmand import KNOT, decode_json, decode_query, decode_request, parse_query
from spatial.gps.owntracks import decode_owntracks
from spatial.samples import build
from spatial.samples import gps as sample_gps

TRACCAR_SAMPLES = SHARED_DATA / "gps" / "traccar_osmand_requests.txt"
RECEIVED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
GPX_NS = {
    "g": "http://www.topografix.com/GPX/1/1",
    "x": "http://www.garmin.com/xmlschemas/TrackPointExtension/v2",
}
FLEET = ("YF-AMB-01", "YF-FIRE-01", "YF-AMB-02", "YF-FIRE-02", "YF-WATER-01", "YF-ENV-01")
START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)  # 2026-03-01T08:00:00+08:00


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _sane(decoded: Decoded) -> None:
    """What every decoder result must satisfy, whatever the input."""
    assert isinstance(decoded, Decoded)
    for reject in decoded.rejects:
        assert reject.reason in REASONS
        assert isinstance(reject.detail, str)
    for fix in decoded.fixes:
        assert isinstance(fix, Fix)
        assert fix.time.utcoffset() == dt.timedelta(0)
        assert -90 <= fix.lat <= 90 and -180 <= fix.lon <= 180
        assert (fix.lat, fix.lon) != (0, 0)
        assert fix.device
        for value in (fix.speed, fix.course, fix.altitude, fix.accuracy, fix.hdop):
            assert value is None or math.isfinite(value)
        json.dumps(dict(fix.attributes), allow_nan=False)  # storable as jsonb


def _one_fix(decoded: Decoded) -> Fix:
    _sane(decoded)
    assert decoded.rejects == [], decoded.rejects
    assert len(decoded.fixes) == 1
    return decoded.fixes[0]


def _one_reject(decoded: Decoded, reason: str, device: str | None = None) -> str:
    _sane(decoded)
    assert decoded.fixes == []
    assert [(r.reason, r.device) for r in decoded.rejects] == [(reason, device)], decoded.rejects
    return decoded.rejects[0].detail


# --- Traccar's own test requests --------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One request of Traccar's OsmAnd decoder test and what Traccar expects of it."""

    expect: str
    method: str
    target: str
    body: bytes

    def decode(self, received: dt.datetime | None = RECEIVED) -> Decoded:
        kind = "application/json" if self.body else None
        return decode_request(self.target, self.body, content_type=kind, received=received)


def _traccar_samples() -> list[Sample]:
    samples = []
    for line in TRACCAR_SAMPLES.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            expect, method, target, *body = line.split(maxsplit=3)
            samples.append(Sample(expect, method, target, body[0].encode() if body else b""))
    return samples


# Per sample, in file order: device, lat, lon, time (None: the time of receipt), and the
# other values Traccar's request carries that the fix must show.
TRACCAR_EXPECTED: list[tuple[str, str | None, float, float, str | None, dict[str, Any]]] = [
    ("NOTNULL", "123456", 0, 0, None, {}),
    ("NULL", None, 0, 0, None, {}),
    (
        "POSITION",
        "902064",
        42.06288,
        -88.23412,
        "2016-01-27T18:55:47",
        {"hdop": 6.0, "altitude": 224.0, "speed": 0.0},
    ),
    ("POSITION", "902064", 42.06288, -88.23412, "2015-09-12T14:38:06.579", {"hdop": 6.0}),
    ("POSITION", "353861053849681", 49.60688, 6.15788, "2014-06-04T09:10:11", {"altitude": 384.7}),
    (
        "POSITION",
        "123456",
        60.0,
        30.0,
        "2013-08-22T13:14:27",
        {"speed": 0.0, "course": 0.0, "altitude": 0.0, "hdop": 0.0},
    ),
    ("POSITION", "123456", 60.0, 30.0, "2013-08-22T13:14:27", {"speed": None}),
    ("POSITION", "123456", 60.0, 30.0, None, {"course": 0.0, "vacc": 0.0, "hacc": 0.0}),
    ("POSITION", "861001000719969", 41.666667, -0.883333, None, {"battery": 87.0}),
    ("POSITION", "123456", 60.0, 30.0, "2013-08-22T13:14:27", {}),
    (
        "POSITION",
        "123456789012345",
        40.7232948571,
        -74.0061408571,
        "2017-09-07T05:56:50",
        {"speed": 40 * KNOT, "course": 7.19889788244, "ignition": True, "rpm": 933.0},
    ),
    (
        "POSITION",
        "48241179",
        37.4219983,
        -122.084,
        "2025-06-15T13:45:12.862",
        {"speed": 0.0, "course": None, "accuracy": 5.0, "altitude": 5.0, "battery": 100},
    ),
    (
        "POSITION",
        "658765",
        37.785834,
        -122.406417,
        "2025-05-09T04:11:30.579",
        {"speed": None, "course": None, "mock": True, "motion": False},
    ),
    (
        "POSITION",
        "8737767034",
        -6.1148096,
        106.6837015,
        "2021-07-21T08:06:34.444",
        {"speed": 18.67, "course": 63.0, "accuracy": 3.8, "battery": 79, "activity": "still"},
    ),
]

needs_traccar_samples = pytest.mark.skipif(
    not TRACCAR_SAMPLES.is_file(), reason=f"shared test data not present at {TRACCAR_SAMPLES}"
)


@needs_traccar_samples
def test_traccar_sample_file_is_the_one_described() -> None:
    samples = _traccar_samples()
    assert [s.expect for s in samples] == [e[0] for e in TRACCAR_EXPECTED]
    assert {s.method for s in samples} == {"GET", "POST"}


@needs_traccar_samples
@pytest.mark.parametrize("index", range(len(TRACCAR_EXPECTED)))
def test_traccar_sample(index: int) -> None:
    """Each request as Traccar's test expects: a position, nothing, or no crash."""
    samples = _traccar_samples()
    if index >= len(samples):
        pytest.fail(f"the sample file has only {len(samples)} requests")
    sample = samples[index]
    expect, device, lat, lon, time, values = TRACCAR_EXPECTED[index]
    decoded = sample.decode()
    if expect == "NULL":
        assert _one_reject(decoded, "malformed") == "no device id (id or deviceid)"
        return
    if expect == "NOTNULL":
        detail = _one_reject(decoded, "no_fix", device)
        assert "2 cell, 2 wifi" in detail
        return
    fix = _one_fix(decoded)
    assert (fix.device, fix.lat, fix.lon) == (device, pytest.approx(lat), pytest.approx(lon))
    assert fix.time == (RECEIVED if time is None else _utc(time))
    for name, value in values.items():
        actual = getattr(fix, name) if hasattr(fix, name) else fix.attributes[name]
        assert actual == (value if value is None else pytest.approx(value)), name


@needs_traccar_samples
def test_traccar_samples_without_timestamp_need_a_receipt_time() -> None:
    """Traccar stamps these with the server clock; the decoder asks for it instead."""
    samples = _traccar_samples()
    for sample, expected in zip(samples, TRACCAR_EXPECTED, strict=True):
        if expected[0] == "POSITION" and expected[4] is None:
            _one_reject(sample.decode(received=None), "no_time", expected[1])


@needs_traccar_samples
def test_traccar_cell_and_wifi_readings_are_kept_with_a_position() -> None:
    target = _traccar_samples()[0].target + "&lat=60.5&lon=30.5"
    fix = _one_fix(decode_request(target, received=RECEIVED))
    assert fix.attributes["cell"] == [
        {"mcc": 257, "mnc": 2, "lac": 16, "cid": 2224},
        {"mcc": 257, "mnc": 2, "lac": 16, "cid": 2223, "rssi": -90},
    ]
    assert fix.attributes["wifi"] == [
        {"mac": "00:14:22:01:23:45", "rssi": -80},
        {"mac": "00:1C:B3:09:85:15", "rssi": -70},
    ]


# --- the query form by hand -----------------------------------------------------------------


def test_query_as_mapping_and_as_pairs() -> None:
    params = {"deviceid": "car-7", "lat": "22.9", "lon": "112.0", "timestamp": "1772323200"}
    by_map = _one_fix(decode_query(params))
    by_pairs = _one_fix(decode_query(list(params.items())))
    assert by_map == by_pairs
    assert by_map.time == START and by_map.device == "car-7"


def test_form_body_when_the_target_has_no_query() -> None:
    body = b"id=car-7&lat=22.9&lon=112.0&timestamp=2026-03-01+00%3A00%3A00"
    fix = _one_fix(decode_request("/", body))
    assert fix.time == START


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("1772323200", "2026-03-01T00:00:00"),
        ("1772323200123", "2026-03-01T00:00:00.123"),
        ("2026-03-01T08:00:00+08:00", "2026-03-01T00:00:00"),
        ("2026-03-01T00:00:00.5Z", "2026-03-01T00:00:00.5"),
        ("2026-03-01T00:00:00", "2026-03-01T00:00:00"),
        ("2026-03-01 00:00:00", "2026-03-01T00:00:00"),
        ("2026-03-01 00:00:00.25", "2026-03-01T00:00:00.25"),
    ],
)
def test_timestamp_forms(stamp: str, expected: str) -> None:
    fix = _one_fix(decode_query({"id": "a", "lat": "1", "lon": "2", "timestamp": stamp}))
    assert fix.time == _utc(expected)


def test_speed_is_knots_and_other_fields() -> None:
    query = (
        "id=a&lat=1&lon=2&timestamp=1&speed=10&heading=-1&accuracy=4.5&hdop=0.9&batt=55"
        "&charge=true&driverUniqueId=D-1&notificationToken=secret&odd=text&flag=false&n=3"
    )
    fix = _one_fix(decode_query(parse_query(query)))
    assert fix.speed == pytest.approx(5.144444, abs=1e-6)
    assert fix.course is None  # -1: unknown
    assert (fix.accuracy, fix.hdop) == (4.5, 0.9)
    assert fix.attributes == {
        "battery": 55.0,
        "charging": True,
        "driver": "D-1",
        "odd": "text",
        "flag": False,
        "n": 3.0,
    }


@pytest.mark.parametrize(
    ("query", "reason", "device", "detail"),
    [
        ("lat=1&lon=2&timestamp=1", "malformed", None, "no device id"),
        ("id=&lat=1&lon=2&timestamp=1", "malformed", None, "no device id"),
        ("id=a&lat=abc&lon=2&timestamp=1", "malformed", "a", "lat='abc' is not a number"),
        ("id=a&lat=nan&lon=2&timestamp=1", "malformed", "a", "not a number"),
        ("id=a&lat=1e999&lon=2&timestamp=1", "malformed", "a", "not a finite number"),
        ("id=a&lat=1_0&lon=2&timestamp=1", "malformed", "a", "not a number"),
        ("id=a&lat=1&lon=2&timestamp=yesterday", "malformed", "a", "not a date"),
        ("id=a&lat=1&lon=2&timestamp=99999999999999999999", "malformed", "a", "not a date"),
        ("id=a&lat=1&lon=2&timestamp=9999999999999999", "malformed", "a", "out of range"),
        ("id=a&location=1&timestamp=1", "malformed", "a", "not 'lat,lon'"),
        ("id=a&lat=1&lon=2&timestamp=1&cell=1,2,3", "malformed", "a", "mcc,mnc"),
        ("id=a&lat=1&lon=2&timestamp=1&wifi=00-11", "malformed", "a", "mac,rssi"),
        ("id=a&lat=1&lon=2&timestamp=1&speed=fast", "malformed", "a", "speed="),
        ("id=a&lat=1&timestamp=1", "malformed", "a", "lat without lon"),
        ("id=a&timestamp=1&batt=50", "no_fix", "a", "no position in the request"),
        ("id=a&lat=1&lon=2&timestamp=1&valid=false", "no_fix", "a", "not valid"),
        ("id=a&lat=1&lon=2&timestamp=1&valid=0", "no_fix", "a", "not valid"),
        ("id=a&lat=0&lon=0&timestamp=1", "zero_position", "a", "(0, 0)"),
        ("id=a&lat=91&lon=2&timestamp=1", "out_of_range", "a", "off the globe"),
        ("id=a&lat=1&lon=-180.5&timestamp=1", "out_of_range", "a", "off the globe"),
        ("id=a&lat=1&lon=2", "no_time", "a", "no timestamp"),
        ("id=a&lat=1&lon=2&timestamp=", "no_time", "a", "no timestamp"),
    ],
)
def test_query_rejects(query: str, reason: str, device: str | None, detail: str) -> None:
    assert detail in _one_reject(decode_query(parse_query(query)), reason, device)


def test_valid_true_and_one_and_empty_fields_count_as_absent() -> None:
    for valid in ("true", "TRUE", "1"):
        _one_fix(
            decode_query({"id": "a", "lat": "1", "lon": "2", "timestamp": "1", "valid": valid})
        )
    fix = _one_fix(decode_query(parse_query("id=a&lat=1&lon=2&timestamp=1&speed=&altitude=")))
    assert (fix.speed, fix.altitude) == (None, None)


def test_repeated_parameters_last_wins() -> None:
    fix = _one_fix(decode_query(parse_query("id=a&id=b&lat=1&lat=3&lon=2&timestamp=1")))
    assert (fix.device, fix.lat) == ("b", 3.0)


# --- the JSON form by hand ------------------------------------------------------------------


def _body(location: Any, device: Any = "phone-1") -> bytes:
    return json.dumps({"device_id": device, "location": location}).encode()


LOCATION = {
    "timestamp": "2026-03-01T00:00:00.000Z",
    "coords": {"latitude": 22.9, "longitude": 112.0, "speed": 10, "heading": 90},
    "extras": {"alarm": "sos", "trip": 7, "nested": {"no": 1}},
    "battery": {"level": 0.29, "is_charging": True},
    "odometer": 1234.5,
}


def test_json_location_fields() -> None:
    fix = _one_fix(decode_json(_body(LOCATION)))
    assert (fix.device, fix.time, fix.speed, fix.course) == ("phone-1", START, 10.0, 90.0)
    assert (fix.accuracy, fix.altitude) == (None, None)  # absent: unknown, not an error
    assert fix.attributes == {
        "alarm": "sos",
        "trip": 7,
        "battery": 29,
        "charging": True,
        "odometer": 1234.5,
    }


def test_json_numeric_device_and_batch_array() -> None:
    later = {**LOCATION, "timestamp": "2026-03-01T00:00:05Z"}
    broken = {**LOCATION, "coords": {"latitude": "22.9", "longitude": 112.0}}
    decoded = decode_json(_body([LOCATION, later, broken, "junk"], device=42))
    _sane(decoded)
    assert [f.time for f in decoded.fixes] == [START, START + dt.timedelta(seconds=5)]
    assert {f.device for f in decoded.fixes} == {"42"}
    assert [(r.reason, r.line, r.device) for r in decoded.rejects] == [
        ("malformed", 3, "42"),
        ("malformed", 4, "42"),
    ]


@pytest.mark.parametrize(
    ("body", "reason", "device", "detail"),
    [
        (b"", "malformed", None, "not JSON"),
        (b"\xff\xfe\x00garbage", "malformed", None, "not JSON"),
        (b"[1, 2]", "malformed", None, "not an object"),
        (_body(LOCATION, device=None), "malformed", None, "no device id"),
        (_body(LOCATION, device=True), "malformed", None, "no device id"),
        (_body(None), "malformed", "phone-1", "no location object"),
        (_body({"timestamp": "2026-03-01T00:00:00Z"}), "no_fix", "phone-1", "without coords"),
        (_body({**LOCATION, "timestamp": 5}), "malformed", "phone-1", "timestamp is not text"),
        (_body({**LOCATION, "timestamp": "soon"}), "malformed", "phone-1", "not a date"),
        (_body({**LOCATION, "coords": [1, 2]}), "malformed", "phone-1", "not an object"),
        (_body({**LOCATION, "coords": {"latitude": 1}}), "malformed", "phone-1", "longitude"),
        (
            _body({**LOCATION, "coords": {"latitude": True, "longitude": 1}}),
            "malformed",
            "phone-1",
            "not a number",
        ),
        (
            _body({**LOCATION, "coords": {"latitude": 10**400, "longitude": 1}}),
            "malformed",
            "phone-1",
            "out of range",
        ),
        (
            b'{"device_id":"p","location":{"coords":{"latitude":NaN,"longitude":1}}}',
            "malformed",
            None,
            "not JSON",
        ),
        (
            b'{"device_id":"p","location":{"coords":{"latitude":1e999,"longitude":1}}}',
            "malformed",
            "p",
            "not a finite number",
        ),
        (
            _body({"coords": {"latitude": 95, "longitude": 1}, "timestamp": "2026-03-01T00:00Z"}),
            "out_of_range",
            "phone-1",
            "off the globe",
        ),
        (
            _body({"coords": {"latitude": 1, "longitude": 1}}),
            "no_time",
            "phone-1",
            "no timestamp",
        ),
    ],
)
def test_json_rejects(body: bytes, reason: str, device: str | None, detail: str) -> None:
    assert detail in _one_reject(decode_json(body), reason, device)


def test_json_content_type_selects_the_json_form() -> None:
    body = _body(LOCATION)
    kind = "application/json; charset=utf-8"
    assert _one_fix(decode_request("/", body, content_type=kind)).device == "phone-1"
    # the same body read as a form names no device
    _one_reject(decode_request("/", body, content_type="text/plain"), "malformed")


# --- the demo fleet's request log -----------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    """The decoded demo request log and the GPX track counts of the same build."""

    lines: list[str]
    decoded: list[Decoded]
    gpx_points: dict[str, int]
    first_gpx_speed: dict[str, float]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    out = build(tmp_path_factory.mktemp("samples")).out_dir
    lines = (out / "gps" / "osmand_requests.log").read_text(encoding="ascii").splitlines()
    decoded = []
    for line in lines:
        method, _, target = line.partition(" ")
        assert method == "GET"
        decoded.append(decode_request(target))
    root = ET.parse(out / "gps" / "fleet.gpx").getroot()  # noqa: S314 (our own file)
    points: dict[str, int] = {}
    speeds: dict[str, float] = {}
    for track in root.findall("g:trk", GPX_NS):
        name = track.findtext("g:name", namespaces=GPX_NS) or ""
        trackpoints = track.findall("g:trkseg/g:trkpt", GPX_NS)
        points[name] = len(trackpoints)
        path = "g:extensions/x:TrackPointExtension/x:speed"
        speeds[name] = float(trackpoints[0].findtext(path, namespaces=GPX_NS) or "nan")
    return Fleet(lines, decoded, points, speeds)


def test_fleet_log_every_line_decodes(fleet: Fleet) -> None:
    assert len(fleet.lines) == 4_776  # data-samples/README.md
    for decoded in fleet.decoded:
        _sane(decoded)
        assert len(decoded.fixes) + len(decoded.rejects) == 1
    fixes = [f for d in fleet.decoded for f in d.fixes]
    assert len(fixes) == 4_776 - len(sample_gps.OSMAND_JUNK)
    assert all(START <= f.time <= START + dt.timedelta(minutes=30) for f in fixes)
    assert all(f.hdop is not None and "battery" in f.attributes for f in fixes)


def test_fleet_log_junk_lines_are_the_five_rejects(fleet: Fleet) -> None:
    rejected = {
        line: (d.rejects[0].reason, d.rejects[0].device)
        for line, d in zip(fleet.lines, fleet.decoded, strict=True)
        if d.rejects
    }
    no_id, bad_number, truncated, favicon, swapped = sample_gps.OSMAND_JUNK
    assert rejected == {
        no_id: ("malformed", None),
        bad_number: ("malformed", "YF-AMB-02"),
        truncated: ("malformed", "YF-WATER-01"),
        favicon: ("malformed", None),
        swapped: ("out_of_range", "YF-ENV-01"),
    }


def test_fleet_log_devices_and_counts(fleet: Fleet) -> None:
    fixes = [f for d in fleet.decoded for f in d.fixes]
    per_device = Counter(f.device for f in fixes)
    unique = Counter(device for device, _ in {(f.device, f.time) for f in fixes})
    assert set(per_device) == set(FLEET)
    # README: 5 requests repeated later (client retries); 4,766 distinct fixes as in the GPX
    assert sum(per_device.values()) - sum(unique.values()) == sample_gps.OSMAND_DUPLICATES
    assert sum(unique.values()) == 4_766
    assert dict(unique) == fleet.gpx_points
    # README: YF-AMB-01 reports every 1 s and YF-FIRE-01 every 2 s, for 30 minutes
    assert unique["YF-AMB-01"] == 30 * 60 + 1
    assert unique["YF-FIRE-01"] == 30 * 30 + 1


def test_fleet_log_speed_knots_to_metres_per_second(fleet: Fleet) -> None:
    first = fleet.lines[0]
    assert first.startswith("GET /?id=YF-AMB-01&") and "&speed=27.8&" in first
    fix = fleet.decoded[0].fixes[0]
    assert fix.speed == pytest.approx(27.8 * 1852 / 3600)  # 14.30 m/s
    # the log rounds knots to 0.1, i.e. within 0.026 m/s of the GPX's m/s
    assert fix.speed == pytest.approx(fleet.first_gpx_speed["YF-AMB-01"], abs=0.03)
    assert 30 <= fix.speed * 3.6 <= 70


# --- OwnTracks ------------------------------------------------------------------------------


def _ot(message: Any) -> bytes:
    return json.dumps(message).encode()


OT_LOCATION = {
    "_type": "location",
    "lat": 22.9,
    "lon": 112.0,
    "tst": 1772323200,
    "acc": 12,
    "alt": 58,
    "vel": 61,
    "cog": 271,
    "batt": 87,
    "bs": 2,
    "tid": "JJ",
    "t": "u",
    "conn": "m",
    "inregions": ["home"],
    "vac": 4,
    "image": "aGVsbG8=",
    "nested": {"x": 1},
}


def test_owntracks_location_from_an_mqtt_topic() -> None:
    fix = _one_fix(decode_owntracks(_ot(OT_LOCATION), topic="owntracks/jane/phone"))
    assert (fix.device, fix.time, fix.lat, fix.lon) == ("jane/phone", START, 22.9, 112.0)
    assert fix.speed == pytest.approx(61 / 3.6)  # km/h → m/s: 16.94
    assert (fix.accuracy, fix.altitude, fix.course) == (12, 58, 271)
    assert fix.attributes == {
        "battery": 87,
        "battery_status": 2,
        "charging": True,
        "tid": "JJ",
        "trigger": "u",
        "connection": "m",
        "inregions": ["home"],
        "vac": 4,
    }


@pytest.mark.parametrize(
    ("message", "kwargs", "device"),
    [
        (OT_LOCATION, {"user": "jane", "device": "phone"}, "jane/phone"),
        (OT_LOCATION, {"user": "jane"}, "jane/JJ"),
        ({**OT_LOCATION, "topic": "owntracks/joe/tab"}, {}, "joe/tab"),
        ({**OT_LOCATION, "topic": "owntracks/joe/tab"}, {"topic": "owntracks/a/b/x"}, "a/b"),
        (OT_LOCATION, {}, "JJ"),
    ],
)
def test_owntracks_device_id(message: Any, kwargs: dict[str, str], device: str) -> None:
    assert _one_fix(decode_owntracks(_ot(message), **kwargs)).device == device


@pytest.mark.parametrize(
    "message",
    [
        {"_type": "transition", "event": "enter", "lat": 22.9, "lon": 112.0, "tst": 1, "tid": "JJ"},
        {"_type": "lwt", "tst": 1772323200},
        {"_type": "waypoint", "desc": "home", "lat": 22.9, "lon": 112.0, "rad": 50, "tst": 1},
        {"_type": "card", "name": "Jane"},
        {"_type": "cmd", "action": "reportLocation"},
        {"_type": "status", "android": {}},
    ],
)
def test_owntracks_other_types_decode_to_nothing(message: Any) -> None:
    decoded = decode_owntracks(_ot(message), topic="owntracks/jane/phone")
    assert (decoded.fixes, decoded.rejects) == ([], [])


def test_owntracks_empty_payload_is_nothing() -> None:
    decoded = decode_owntracks(b"  ", topic="owntracks/jane/phone")
    assert (decoded.fixes, decoded.rejects) == ([], [])


@pytest.mark.parametrize(
    ("payload", "reason", "device", "detail"),
    [
        (b"\x00\x9f junk \xff", "malformed", None, "not JSON"),
        (b"{not json", "malformed", None, "not JSON"),
        (b'"location"', "malformed", None, "JSON object"),
        (_ot({"lat": 1, "lon": 2}), "malformed", None, "no _type"),
        (_ot({"_type": 5}), "malformed", None, "no _type"),
        (_ot({"_type": "encrypted", "data": "AAAA"}), "malformed", "jane/phone", "encrypted"),
        (
            _ot({k: v for k, v in OT_LOCATION.items() if k != "lat"}),
            "malformed",
            "jane/phone",
            "lat",
        ),
        (_ot({**OT_LOCATION, "lat": "22.9"}), "malformed", "jane/phone", "lat is not a number"),
        (_ot({**OT_LOCATION, "vel": "fast"}), "malformed", "jane/phone", "vel is not a number"),
        (_ot({**OT_LOCATION, "tst": True}), "malformed", "jane/phone", "tst is not a number"),
        (_ot({**OT_LOCATION, "tst": 10**30}), "malformed", "jane/phone", "out of range"),
        (_ot({**OT_LOCATION, "lat": 0, "lon": 0}), "zero_position", "jane/phone", "(0, 0)"),
        (_ot({**OT_LOCATION, "lon": 200}), "out_of_range", "jane/phone", "off the globe"),
        (_ot({k: v for k, v in OT_LOCATION.items() if k != "tst"}), "no_time", "jane/phone", "tst"),
    ],
)
def test_owntracks_rejects(payload: bytes, reason: str, device: str | None, detail: str) -> None:
    decoded = decode_owntracks(payload, topic="owntracks/jane/phone")
    assert detail in _one_reject(decoded, reason, device)


def test_owntracks_location_without_any_device_name() -> None:
    message = {k: v for k, v in OT_LOCATION.items() if k != "tid"}
    assert "no device id" in _one_reject(decode_owntracks(_ot(message)), "malformed")


# --- junk never raises ----------------------------------------------------------------------

_FIELD_NAMES = ["id", "deviceid", "lat", "lon", "location", "timestamp", "speed", "bearing"]
_FIELD_NAMES += ["heading", "altitude", "accuracy", "hdop", "batt", "valid", "cell", "wifi"]

_NASTY = (
    "| |0|-1|1e999|-1e999|nan|NaN|inf|Infinity|1_0|0x10|٣|1,2|1,2,3,4,5,6|a,b|,|+|--1|.|1e"
    "|99999999999999999999|2147483647|-9223372036854775808|2026-02-30T00:00:00|1.5.5|%ZZ"
    "|2026-03-01 25:00:00|T|true|false|%00|\x00|é|90.0000001|22.9|112|1772323200"
)
NASTY_VALUES = _NASTY.split("|")
NASTY_KEYS = [*_FIELD_NAMES, "", "x", "notificationToken", "driverUniqueId"]


def test_random_queries_never_raise() -> None:
    rng = random.Random(20250630)  # noqa: S311 (seeded test data)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789&=%+,.-:T ?#;"
    for _ in range(3_000):
        if rng.random() < 0.3:
            query = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        else:
            pairs = [
                (rng.choice(NASTY_KEYS), rng.choice(NASTY_VALUES)) for _ in range(rng.randint(0, 8))
            ]
            if rng.random() < 0.7:
                pairs = [("id", "x"), ("lat", "22.9"), ("lon", "112"), *pairs]
            query = "&".join(f"{k}={v}" for k, v in pairs)
            _sane(decode_query(pairs, received=RECEIVED))
        _sane(decode_request("/?" + query))
        _sane(decode_request("/", query.encode()))


def test_random_bytes_never_raise() -> None:
    rng = random.Random(1772323200)  # noqa: S311 (seeded test data)
    for _ in range(2_000):
        data = rng.randbytes(rng.randint(0, 200))
        _sane(decode_json(data))
        _sane(decode_owntracks(data))
        _sane(decode_request("/", data))
        _sane(decode_request("/", data, content_type="application/json"))


def test_mutated_json_never_raises() -> None:
    """Valid messages with one value swapped for something of another type or size."""
    rng = random.Random(7)  # noqa: S311 (seeded test data)
    odd: list[Any] = [None, True, "x", "", -1, 0, 10**30, 1e308, -1e308, [], {}, [1], {"a": 1}]
    for _ in range(2_000):
        location = json.loads(json.dumps(LOCATION))
        target = rng.choice([location, location["coords"], location["battery"]])
        target[rng.choice([*target.keys(), "latitude", "level"])] = rng.choice(odd)
        _sane(decode_json(_body(location), received=RECEIVED))
        _sane(decode_json(_body([location, rng.choice(odd)], device=rng.choice(odd))))
        message = dict(OT_LOCATION)
        message[rng.choice([*message.keys(), "topic"])] = rng.choice(odd)
        _sane(decode_owntracks(_ot(message), user=rng.choice(["u", " ", ""])))


def test_hostile_json_never_raises() -> None:
    for payload in (
        b"[" * 100_000,
        b'{"a":' * 100_000,
        b"1" * 5_000,
        b'{"device_id":"p","location":{"coords":{"latitude":' + b"9" * 5_000 + b"}}}",
        b'{"_type":"location","lat":1,"lon":2,"tst":1e400}',
        '{"device_id":"\u00e9"}'.encode("utf-16"),
    ):
        _sane(decode_json(payload))
        _sane(decode_owntracks(payload))
