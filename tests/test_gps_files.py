"""GPS batch files (``spatial.gps.files``): GPX against gpxpy, the demo fleet, CSV and
GeoJSON round trips with bad rows, and hostile XML.

No database is needed. The gpxpy comparison reads the shared GPX files (skipped when
``shared/data/gps/gpx`` is absent); the fleet test builds the demo samples once.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import SHARED_DATA

from spatial.errors import InvalidInputError, TooLargeError
from spatial.gps.files import read, read_csv, read_geojson
from spatial.gps.fix import Decoded, Fix
from spatial.gps.gpx import read_gpx
from spatial.samples import build

GPX_DIR = SHARED_DATA / "gps" / "gpx"
UTC = dt.UTC
T0 = dt.datetime(2026, 3, 1, tzinfo=UTC)
FLEET = ["YF-AMB-01", "YF-FIRE-01", "YF-AMB-02", "YF-FIRE-02", "YF-WATER-01", "YF-ENV-01"]
GPX11 = (
    '<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1" '
    'xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v2">'
)
T = TypeVar("T")

# A few fixes to write out and read back: full, sparse, and near the edges of the globe.
FIXES = [
    Fix(
        time=T0,
        lon=112.0123456,
        lat=22.9012345,
        device="YF-AMB-01",
        altitude=45.5,
        speed=12.5,
        course=270.0,
        hdop=0.9,
        satellites=12,
        accuracy=3.5,
        attributes={"battery": "87"},
    ),
    Fix(
        time=T0 + dt.timedelta(seconds=1.5),
        lon=-73.9857,
        lat=40.7484,
        device="云浮-02",
        attributes={"battery": "12"},
    ),
    Fix(
        time=T0 + dt.timedelta(seconds=3),
        lon=179.9999,
        lat=-89.5,
        device="edge",
        altitude=-12.25,
        speed=0.0,
        course=0.0,
        satellites=0,
        attributes={"battery": "5"},
    ),
]


def _within(seconds: float, call: Callable[[], T]) -> T:
    """Run ``call`` in a daemon thread; fail (instead of hanging) if it takes too long."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001  (handed back to the test below)
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _reasons(decoded: Decoded) -> list[tuple[str, int | None]]:
    return [(r.reason, r.line) for r in decoded.rejects]


# --- GPX against gpxpy ------------------------------------------------------------------


def _shared_gpx() -> list[Any]:
    files = sorted(GPX_DIR.glob("*.gpx"))
    if not files:
        reason = f"the shared GPX files are not under {GPX_DIR}"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="absent")]
    return [pytest.param(path, id=path.name) for path in files]


def _utc(time: dt.datetime) -> dt.datetime:
    return time.replace(tzinfo=UTC) if time.tzinfo is None else time.astimezone(UTC)


@pytest.mark.parametrize("path", _shared_gpx())
def test_gpx_matches_gpxpy(path: Path) -> None:
    gpxpy = pytest.importorskip("gpxpy", reason="gpxpy (a dev dependency) is not installed")
    with path.open(encoding="utf-8") as handle:
        reference = gpxpy.parse(handle)
    expected = {
        "track": [p for t in reference.tracks for s in t.segments for p in s.points],
        "route": [p for r in reference.routes for p in r.points],
        "waypoint": list(reference.waypoints),
    }
    element = {"track": "trkpt", "route": "rtept", "waypoint": "wpt"}
    decoded = read(path)
    assert set(decoded.counts()) <= {"no_time"}
    for kind, points in expected.items():
        timed = [p for p in points if p.time is not None]
        ours = [f for f in decoded.fixes if f.attributes["kind"] == kind]
        untimed = [r for r in decoded.rejects if r.detail.startswith(f"{element[kind]}:")]
        assert len(ours) == len(timed), kind
        assert len(untimed) == len(points) - len(timed), kind
        if not timed:
            continue
        for mine, theirs in ((ours[0], timed[0]), (ours[-1], timed[-1])):
            assert (mine.lat, mine.lon) == (theirs.latitude, theirs.longitude)
            assert mine.time == _utc(theirs.time)
            assert mine.altitude == theirs.elevation


# --- the demo fleet ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet_gpx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``gps/fleet.gpx`` of a fresh build of the demo samples."""
    out = tmp_path_factory.mktemp("samples")
    build(out)
    return out / "gps" / "fleet.gpx"


def test_fleet_gpx(fleet_gpx: Path) -> None:
    decoded = read(fleet_gpx)
    assert decoded.rejects == []
    assert len(decoded.fixes) == 4766
    assert list(dict.fromkeys(f.device for f in decoded.fixes)) == FLEET
    text = fleet_gpx.read_text(encoding="utf-8")
    # Speeds and courses as written, read here without any XML parser.
    speeds = [float(v) for v in re.findall(r"<gpxtpx:speed>([^<]*)<", text)]
    courses = [float(v) for v in re.findall(r"<gpxtpx:course>([^<]*)<", text)]
    assert [f.speed for f in decoded.fixes] == speeds
    assert [f.course for f in decoded.fixes] == courses
    for device in FLEET:
        track = [f for f in decoded.fixes if f.device == device]
        assert track[0].time == T0
        assert all(a.time < b.time for a, b in itertools.pairwise(track))
        assert {f.attributes["track_name"] for f in track} == {device}
        assert {f.attributes["segment"] for f in track} == {1}
    for fix in decoded.fixes:
        assert fix.attributes["kind"] == "track"
        assert fix.attributes["type"]
        assert fix.altitude is not None and fix.hdop is not None
        assert fix.satellites is not None and fix.satellites > 0
        assert 30.0 <= fix.speed * 3.6 <= 70.0  # type: ignore[operator]
        assert 111.9 < fix.lon < 112.1 and 22.8 < fix.lat < 23.0


def test_fleet_device_override(fleet_gpx: Path) -> None:
    decoded = read(fleet_gpx, device="truck-7")
    assert {f.device for f in decoded.fixes} == {"truck-7"}
    assert len({f.attributes["track_name"] for f in decoded.fixes}) == 6


# --- GPX details ------------------------------------------------------------------------


def test_gpx_fields_and_rejects() -> None:
    doc = "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            GPX11,
            (
                '<wpt lat="22.9" lon="112.0"><time>2026-03-01T08:00:00+08:00</time>'
                "<name>Base</name><type>depot</type></wpt>"
            ),
            (
                '<rte><name>R1</name><rtept lat="22.91" lon="112.01">'
                "<time>2026-03-01T00:00:01Z</time></rtept></rte>"
            ),
            "<trk><type>ambulance</type><trkseg>",
            (
                '<trkpt lat="22.92" lon="112.02"><ele>41.5</ele><time>2026-03-01T00:00:02Z</time>'
                "<sat>9</sat><hdop>0.8</hdop><type>stop</type><extensions><gpxtpx:TrackPointExtension>"
                "<gpxtpx:hr>80</gpxtpx:hr><gpxtpx:speed>13.9</gpxtpx:speed>"
                "<gpxtpx:course>91.5</gpxtpx:course></gpxtpx:TrackPointExtension></extensions>"
                "</trkpt>"
            ),
            "</trkseg><trkseg>",
            '<trkpt lat="95" lon="112.0"><time>2026-03-01T00:00:03Z</time></trkpt>',
            '<trkpt lat="north" lon="112.0"><time>2026-03-01T00:00:04Z</time></trkpt>',
            '<trkpt lat="22.93" lon="112.03"><time>yesterday</time></trkpt>',
            '<trkpt lat="22.93" lon="112.03"><time>2026-03-01T00:00:05</time></trkpt>',
            (
                '<trkpt lat="22.94" lon="112.04"><ele>high</ele><time>2026-03-01T00:00:06Z</time>'
                "</trkpt>"
            ),
            '<trkpt lat="22.94" lon="112.04"></trkpt>',
            "</trkseg><name>YF-AMB-09</name></trk>",  # a name after the points
            "</gpx>",
        ]
    ).encode()
    decoded = read_gpx(doc)
    wpt, rtept, first, last = decoded.fixes
    assert wpt.time == T0 and wpt.device is None
    assert wpt.attributes == {"kind": "waypoint", "name": "Base", "type": "depot"}
    assert rtept.device == "R1" and rtept.attributes["route"] == 1
    assert first == Fix(
        time=T0 + dt.timedelta(seconds=2),
        lon=112.02,
        lat=22.92,
        device="YF-AMB-09",
        altitude=41.5,
        speed=13.9,
        course=91.5,
        hdop=0.8,
        satellites=9,
        attributes={
            "kind": "track",
            "track": 1,
            "track_name": "YF-AMB-09",
            "segment": 1,
            "type": "ambulance",
            "point_type": "stop",
            "hr": "80",
        },
    )
    assert last.time == T0 + dt.timedelta(seconds=5)  # no offset: UTC
    assert last.attributes["segment"] == 2
    assert _reasons(decoded) == [
        ("out_of_range", 8),
        ("malformed", 9),
        ("malformed", 10),
        ("malformed", 12),
        ("no_time", 13),
    ]
    assert {r.device for r in decoded.rejects} == {"YF-AMB-09"}
    assert read_gpx(doc, device="X").rejects[0].device == "X"


def test_gpx10_speed_and_course() -> None:
    doc = (
        b'<gpx version="1.0" xmlns="http://www.topografix.com/GPX/1/0"><trk><name>car</name>'
        b'<trkseg><trkpt lat="52.33" lon="5.54"><time>2009-03-02T14:05:52Z</time>'
        b"<course>45.5</course><speed>2.5</speed></trkpt></trkseg></trk></gpx>"
    )
    (fix,) = read_gpx(doc).fixes
    assert (fix.device, fix.speed, fix.course) == ("car", 2.5, 45.5)


def test_gpx_encodings_and_sniffing(tmp_path: Path) -> None:
    doc = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>'
        f'{GPX11}<trk><name>Café</name><trkseg><trkpt lat="1" lon="2">'
        "<time>2026-03-01T00:00:00Z</time></trkpt></trkseg></trk></gpx>"
    )
    path = tmp_path / "export.txt"  # no telling suffix: sniffed
    path.write_bytes(doc.encode("latin-1"))
    assert read(path).fixes[0].device == "Café"


# --- CSV --------------------------------------------------------------------------------


def _csv_value(value: object) -> str:
    return "" if value is None else str(value)


def test_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    header = ["Device_ID", "Timestamp", "Latitude", "Lng", "Ele", "Speed", "Bearing"]
    header += ["HDOP", "Sat", "Accuracy", "battery"]
    with path.open("w", encoding="utf-8-sig", newline="") as handle:  # with a BOM
        writer = csv.writer(handle)
        writer.writerow(header)
        for number, fix in enumerate(FIXES):
            # ISO 8601 for some rows, Unix seconds for others.
            stamp = fix.time.isoformat() if number % 2 == 0 else str(fix.time.timestamp())
            values = [fix.device, stamp, fix.lat, fix.lon, fix.altitude, fix.speed, fix.course]
            values += [fix.hdop, fix.satellites, fix.accuracy, fix.attributes["battery"]]
            writer.writerow([_csv_value(v) for v in values])
    assert read(path) == Decoded(fixes=FIXES)
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text(path.read_text(encoding="utf-8-sig").replace(",", ";"))
    assert read(semicolons).fixes == FIXES


def test_csv_bad_rows() -> None:
    text = "\n".join(
        [
            "device,time,lat,lon,speed,note",
            "d1,2026-03-01T00:00:00Z,22.9,112.0,1.5,ok",
            "d1,2026-03-01T00:00:01Z,22.9,112.0,fast,",
            "d1,,22.9,112.0,1.5,",
            "d1,2026-03-01T00:00:02Z,95,112.0,1.5,",
            "",
            'd1,2026-03-01T00:00:03Z,22.9,112.0,1.5,"two',
            'lines"',
            "d1,2026-03-01T00:00:04Z,22.9,112.0",
            "d1,2026-03-01T00:00:05Z,0,0,1.5,",
            "d1,2026-03-01T00:00:06Z,22.9.1,112.0,1.5,",
        ]
    )
    decoded = read_csv(text.encode())
    assert [f.time for f in decoded.fixes] == [T0, T0 + dt.timedelta(seconds=3)]
    assert decoded.fixes[0].attributes == {"note": "ok"}
    assert decoded.fixes[1].attributes == {"note": "two\nlines"}
    assert _reasons(decoded) == [
        ("malformed", 3),
        ("no_time", 4),
        ("out_of_range", 5),
        ("malformed", 9),
        ("zero_position", 10),
        ("malformed", 11),
    ]
    assert {r.device for r in decoded.rejects} == {"d1"}
    assert "speed 'fast'" in decoded.rejects[0].detail


def test_csv_unix_time_as_text() -> None:
    text = "ID,Timestamp,Lat,Lon\nd2,1772323200,22.9,112.0\nd2,abc,22.9,112.0\n"
    decoded = read_csv(text.encode(), device="override")
    assert [(f.device, f.time) for f in decoded.fixes] == [("override", T0)]
    (reject,) = decoded.rejects
    assert (reject.reason, reject.line, reject.device) == ("malformed", 3, "override")
    assert "'abc'" in reject.detail


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no header"),
        (b"device,time,lon\nd,2026-03-01T00:00:00Z,1\n", "latitude"),
        (b"device,time,lat,lon\n\xff\xfe,1,2,3\n", "not UTF-8"),
    ],
)
def test_csv_unreadable(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        read_csv(data)


# --- GeoJSON ----------------------------------------------------------------------------


def _feature(fix: Fix, *, unix: bool) -> dict[str, Any]:
    coordinates = [fix.lon, fix.lat] + ([fix.altitude] if fix.altitude is not None else [])
    properties = {
        "device_id": fix.device,
        "time": fix.time.timestamp() if unix else fix.time.isoformat(),
        "speed": fix.speed,
        "course": fix.course,
        "hdop": fix.hdop,
        "satellites": fix.satellites,
        "accuracy": fix.accuracy,
        **fix.attributes,
    }
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": coordinates},
        "properties": properties,
    }


def test_geojson_round_trip(tmp_path: Path) -> None:
    collection = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
        "features": [_feature(f, unix=n == 1) for n, f in enumerate(FIXES)],
    }
    path = tmp_path / "batch.geojson"
    path.write_text(json.dumps(collection, ensure_ascii=False), encoding="utf-8")
    assert read(path) == Decoded(fixes=FIXES)
    single = tmp_path / "one.json"
    single.write_text(json.dumps(_feature(FIXES[0], unix=True)), encoding="utf-8")
    assert read(single).fixes == FIXES[:1]


def test_geojson_bad_features() -> None:
    good = _feature(FIXES[0], unix=False)
    line = {**good, "geometry": {"type": "LineString", "coordinates": [[1, 2], [3, 4]]}}
    north = {**good, "geometry": {"type": "Point", "coordinates": [112.0, 95.0]}}
    untimed = {**good, "properties": {"device": "d3"}}
    text_time = {**good, "properties": {"device": "d4", "timestamp": "abc"}}
    letters = {**good, "geometry": {"type": "Point", "coordinates": ["a", 22.9]}}
    features = [good, line, north, untimed, text_time, letters, 5, {**good, "geometry": None}]
    data = json.dumps({"type": "FeatureCollection", "features": features}).encode()
    decoded = read_geojson(data)
    assert decoded.fixes == FIXES[:1]
    assert _reasons(decoded) == [
        ("malformed", 2),
        ("out_of_range", 3),
        ("no_time", 4),
        ("malformed", 5),
        ("malformed", 6),
        ("malformed", 7),
        ("malformed", 8),
    ]
    assert [r.device for r in decoded.rejects][:4] == ["YF-AMB-01", "YF-AMB-01", "d3", "d4"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{", "not JSON"),
        ('{"type": "Point", "coordinates": [1, 2]}', "FeatureCollection or a Feature"),
        ("[1, 2]", "FeatureCollection or a Feature"),
        (
            (
                '{"type": "FeatureCollection", "features": [], '
                '"crs": {"type": "name", "properties": {"name": "EPSG:3857"}}}'
            ),
            "CRS84",
        ),
        ("[" * 100_000 + "]" * 100_000, "JSON"),
    ],
)
def test_geojson_unreadable(doc: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        read_geojson(doc.encode())


# --- hostile and broken XML -------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE gpx [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1">
<trk><name>&lol9;</name><trkseg><trkpt lat="1" lon="2"><time>2026-03-01T00:00:00Z</time>
</trkpt></trkseg></trk></gpx>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE gpx [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1">
<wpt lat="1" lon="2"><time>2026-03-01T00:00:00Z</time><name>&xxe;</name></wpt></gpx>
"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE gpx SYSTEM "http://127.0.0.1:9/evil.dtd">
<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"></gpx>
"""


@pytest.mark.parametrize(
    ("doc", "encoding"),
    [
        (BILLION_LAUGHS, "utf-8"),
        (BILLION_LAUGHS.replace('"1.0"?>', '"1.0" encoding="UTF-16"?>', 1), "utf-16"),
        (EXTERNAL_ENTITY, "utf-8"),
        (EXTERNAL_DTD, "utf-8"),
    ],
    ids=["billion-laughs", "billion-laughs-utf16", "external-entity", "external-dtd"],
)
def test_hostile_xml_refused(tmp_path: Path, doc: str, encoding: str) -> None:
    path = tmp_path / "hostile.gpx"
    path.write_bytes(doc.encode(encoding))
    with pytest.raises(InvalidInputError, match="DOCTYPE") as caught:
        _within(5, lambda: read(path))
    assert "hostile.gpx" in str(caught.value)
    assert "root:" not in str(caught.value)


def test_undeclared_entity_is_a_reject() -> None:
    doc = (
        f'{GPX11}<wpt lat="1" lon="2"><time>2026-03-01T00:00:00Z</time></wpt>\n'
        '<wpt lat="1" lon="2"><time>2026-03-01T00:00:00Z</time><name>&xxe;</name></wpt></gpx>'
    )
    decoded = read_gpx(doc.encode())
    assert len(decoded.fixes) == 1
    assert _reasons(decoded) == [("malformed", 2)]
    assert "undefined entity" in decoded.rejects[0].detail


def _fleet_doc(points: int) -> str:
    lines = [GPX11, "<trk><name>cut</name><trkseg>"]
    for k in range(points):
        lines.append(
            f'<trkpt lat="22.9{k}" lon="112.0{k}"><ele>4{k}</ele>'
            f"<time>2026-03-01T00:00:0{k}Z</time></trkpt>"
        )
    return "\n".join([*lines, "</trkseg></trk></gpx>"])


def test_truncated_gpx(tmp_path: Path) -> None:
    doc = _fleet_doc(5)
    path = tmp_path / "cut.gpx"
    path.write_text(doc[: doc.index("<time>2026-03-01T00:00:03Z") + 10], encoding="utf-8")
    decoded = _within(5, lambda: read(path))
    assert [f.device for f in decoded.fixes] == ["cut"] * 3
    (reject,) = decoded.rejects
    assert (reject.reason, reject.line, reject.device) == ("malformed", 6, "cut")
    assert "line 6" in reject.detail


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not an XML document"),
        (b"<?xml version=", "not an XML document"),
        (b"GPX? no.", "not an XML document"),
        (b'<kml xmlns="http://www.opengis.net/kml/2.2"></kml>', "not <gpx>"),
    ],
)
def test_gpx_unreadable(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        read_gpx(data)


def test_size_limits(tmp_path: Path) -> None:
    doc = _fleet_doc(5).encode()
    path = tmp_path / "fleet.gpx"
    path.write_bytes(doc)
    assert len(read(path, max_bytes=len(doc)).fixes) == 5
    with pytest.raises(TooLargeError, match="limit"):
        read(path, max_bytes=len(doc) - 1)
    with pytest.raises(TooLargeError):
        read_gpx(doc, max_bytes=100)
    # A sparse 3 GiB file: refused from its size, without reading it.
    huge = tmp_path / "huge.gpx"
    with huge.open("wb") as handle:
        handle.truncate(3 * 1024**3)
    with pytest.raises(TooLargeError, match=r"huge\.gpx"):
        _within(5, lambda: read(huge))


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot read"):
        read(tmp_path / "missing.gpx")
    with pytest.raises(InvalidInputError, match="cannot read"):
        read(tmp_path)


def test_the_quick_csv_path_reads_as_the_careful_one() -> None:
    """Every row the quick path takes gives the fix the careful path gives; rows it leaves
    include every shape it does not know (and those go the careful way)."""
    import random  # noqa: PLC0415

    from spatial.gps import files, records  # noqa: PLC0415

    cells = {
        "lat": ["22.9", " 22.9", "22.9 ", "-90", "90.0001", "0", "nan", "inf", "1_0", "", "x",
                "2.29e1", "  "],
        "lon": ["112.1", "0", "-180", "180.5", "1e400", "112,1", "", "+112.1"],
        "time": ["2026-03-02T08:00:00Z", "2026-03-02T08:00:00+08:00", "2026-03-02T08:00:00",
                 "2026-03-02t08:00:00", " 2026-03-02T08:00:00Z", "2026-03-02 08:00:00",
                 "1772438400", "2026-03-02", "2026-02-30T08:00:00Z", "", "T"],
        "speed": ["", "3.5", " ", "-1", "1_0", "nan", "abc"],
        "sat": ["", "7", "007", "7.0", "-1", "²", "٣", " 7"],
        "device": ["", "  ", "car-1", " car-2 "],
        "note": ["", " ", "hello"],
    }  # fmt: skip
    header = list(cells)
    columns = files._Columns.of(header)
    rng = random.Random(20261129)  # noqa: S311 - a repeatable sample, not a secret
    quick = careful_only = 0
    for _ in range(20000):
        row = [rng.choice(cells[name]) for name in header]
        fix = files._plain_row(columns, row, None)
        values, attributes = files._split_fields(zip(header, row, strict=True))
        try:
            expected = records.make_fix(values, device=records.device_name(values.get("device")),
                                       attributes=attributes, unix=True)  # fmt: skip
        except records.RecordError:
            expected = None
        if fix is None:
            careful_only += 1
            continue
        quick += 1
        assert fix == expected, row
    assert quick > 100 and careful_only > 100
