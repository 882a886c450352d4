"""Property tests (hypothesis) of the GPS decoders: NMEA 0183, OsmAnd / Traccar (query,
form and JSON), OwnTracks JSON and GPX.

Two properties for each: arbitrary input never raises anything but the decoder's
documented refusal (a ``Reject``; for GPX also ``InvalidInputError``), and a valid message
built from generated values decodes to those values, within the format's precision.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from functools import reduce
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

from hypothesis import example, given, settings
from hypothesis import strategies as st

from spatial.errors import InvalidInputError
from spatial.gps import nmea, osmand, owntracks
from spatial.gps.fix import REASONS, Decoded
from spatial.gps.gpx import read_gpx

FAST = settings(derandomize=True, max_examples=300, deadline=None, database=None)
TRIPS = settings(derandomize=True, max_examples=200, deadline=None, database=None)

JUNK_WORDS = ("NaN", "nan", "inf", "-Infinity", "1e999", "9" * 400, "0x1A", "1_0", "\x00",
              "\ud800", "", ",", "*", "$", "1" * 5000, "-0", "１２", "1e-400")  # fmt: skip
junk_text = st.one_of(
    st.text(),
    st.lists(st.sampled_from(JUNK_WORDS) | st.text(max_size=8), max_size=20).map(",".join),
)
junk_bytes = st.one_of(st.binary(), junk_text.map(lambda t: t.encode("utf-8", "surrogatepass")))

latitudes = st.floats(-89.999, 89.999, allow_nan=False).filter(lambda v: abs(v) > 1e-6)
longitudes = st.floats(-179.999, 179.999, allow_nan=False).filter(lambda v: abs(v) > 1e-6)
instants = st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2079, 12, 31)).map(
    lambda t: t.replace(tzinfo=dt.UTC)
)
seconds = instants.map(lambda t: t.replace(microsecond=0))
speeds = st.floats(0, 300, allow_nan=False)
devices = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,20}", fullmatch=True)


def assert_sane(decoded: Decoded) -> None:
    """What every decoder promises, whatever its input."""
    assert isinstance(decoded, Decoded)
    for reject in decoded.rejects:
        assert reject.reason in REASONS and reject.detail
    for fix in decoded.fixes:
        assert math.isfinite(fix.lat) and math.isfinite(fix.lon)
        assert -90 <= fix.lat <= 90 and -180 <= fix.lon <= 180
        assert fix.time.tzinfo is not None


# -- NMEA 0183 ---------------------------------------------------------------------------


def checksum(body: str) -> str:
    return f"${body}*{reduce(lambda a, c: a ^ ord(c), body, 0):02X}"


TYPES = ("GPRMC", "GNGGA", "GPGLL", "GNGNS", "GPVTG", "GPGSA", "GPZDA", "PGRME", "GPGSV")
field_junk = st.sampled_from(JUNK_WORDS) | st.from_regex(r"[0-9.NSEWAV+-]{0,12}", fullmatch=True)
# Sentences of the right types and valid checksums, with junk fields, reach the parsers.
checked_junk = st.builds(
    lambda kind, fields: checksum(",".join([kind, *fields])).replace("\ud800", "?"),
    st.sampled_from(TYPES),
    st.lists(field_junk, max_size=20),
)


@FAST
@given(st.lists(junk_text | junk_bytes | checked_junk, max_size=12), st.none() | st.dates())
@example(["$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"], None)
@example([checksum("GPRMC,235959,A,0000." + "9" * 400 + ",N,1,E,,,311299,,")], None)
# found by benchmarks/fuzz.py: a longitude of 310 degrees, a ZDA month of 100 digits
@example([checksum("GPRMC,123519.00,A,4807.038,N,31011.000,E,022.4,084.4,230394,003.1,W,A")], None)
@example([checksum("GPZDA,201530.00,04," + "5" * 100 + ",2002,00,00")], None)
def test_nmea_never_raises(lines: list[str | bytes], start: dt.date | None) -> None:
    decoded = nmea.decode(lines, start_date=start)
    assert_sane(decoded)
    blank = sum(not line.strip() for line in lines)
    assert len(decoded.fixes) <= len(lines) - blank


def _ddmm(value: float, width: int, hemispheres: str) -> tuple[str, str]:
    minutes_total = round(abs(value) * 60, 6)
    degrees, minutes = divmod(minutes_total, 60)
    return f"{int(degrees):0{width}d}{minutes:09.6f}", hemispheres[value < 0]


@TRIPS
@given(
    lat=latitudes,
    lon=longitudes,
    when=instants,
    knots=speeds,
    course=st.floats(0, 359.9),
    satellites=st.integers(4, 30),
)
def test_nmea_rmc_and_gga_round_trip(
    *, lat: float, lon: float, when: dt.datetime, knots: float, course: float, satellites: int
) -> None:
    when = when.replace(microsecond=when.microsecond // 10_000 * 10_000)
    hhmmss = when.strftime("%H%M%S") + f".{when.microsecond // 10_000:02d}"
    la, ns = _ddmm(lat, 2, "NS")
    lo, ew = _ddmm(lon, 3, "EW")
    rmc = f"GPRMC,{hhmmss},A,{la},{ns},{lo},{ew},{knots:.3f},{course:.1f},{when:%d%m%y},,,A"
    gga = f"GNGGA,{hhmmss},{la},{ns},{lo},{ew},1,{satellites:02d},0.9,12.5,M,46.9,M,,"
    decoded = nmea.decode([checksum(rmc), checksum(gga)])
    assert decoded.rejects == []
    (fix,) = decoded.fixes
    assert fix.time == when
    assert math.isclose(fix.lat, lat, abs_tol=1e-7) and math.isclose(fix.lon, lon, abs_tol=1e-7)
    assert fix.speed is not None and math.isclose(fix.speed, knots * nmea.KNOTS, abs_tol=1e-3)
    assert fix.course is not None and math.isclose(fix.course, course, abs_tol=0.06)
    assert fix.satellites == satellites and fix.altitude == 12.5 and fix.hdop == 0.9
    assert fix.attributes["sentences"] == ("GPRMC", "GNGGA")


# -- OsmAnd / Traccar ---------------------------------------------------------------------

KEYS = ("id", "deviceid", "timestamp", "lat", "lon", "location", "cell", "wifi", "speed",
        "bearing", "altitude", "accuracy", "hdop", "batt", "charge", "valid", "x")  # fmt: skip
pairs = st.lists(st.tuples(st.sampled_from(KEYS) | st.text(max_size=5), junk_text), max_size=12)
CONTENT = (None, "application/json", "application/x-www-form-urlencoded", "text/plain", ";")


def json_junk() -> st.SearchStrategy[bytes]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    values = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from([*KEYS, "coords", "location", "device_id",
                                                        "latitude", "longitude", "_type", "tst",
                                                        "extras", "battery"]), inner, max_size=5),
        max_leaves=12,
    )  # fmt: skip
    return values.map(lambda v: json.dumps(v, allow_nan=True).encode())


@FAST
@given(pairs, junk_text, junk_bytes | json_junk(), st.sampled_from(CONTENT))
@example([("id", "x"), ("timestamp", "9" * 19), ("lat", "1"), ("lon", "2")], "", b"", None)
@example([], "/?id=a&lat=1e999&lon=2", b'{"device_id":1,"location":[1e999]}', "application/json")
@example([("id", "a"), ("lat", "1"), ("lon", "2"), ("x", "\x1e3.05")], "", b"", None)  # fuzz.py
def test_osmand_never_raises(
    params: list[tuple[str, str]], target: str, body: bytes, content_type: str | None
) -> None:
    assert_sane(osmand.decode_query(params))
    assert_sane(osmand.decode_query(dict(params), received=dt.datetime(2026, 1, 1)))
    assert_sane(osmand.decode_request(target, body, content_type=content_type))
    assert_sane(osmand.decode_json(body))
    assert_sane(osmand.decode_request("/?" + urlencode(params, errors="surrogatepass"), b""))


@TRIPS
@given(
    device=devices,
    lat=latitudes,
    lon=longitudes,
    when=seconds,
    knots=speeds,
    course=st.floats(0, 359),
    iso=st.booleans(),
)
def test_osmand_query_round_trip(
    *,
    device: str,
    lat: float,
    lon: float,
    when: dt.datetime,
    knots: float,
    course: float,
    iso: bool,
) -> None:
    unix = int(when.timestamp())
    # Traccar reads a number from 2**31 - 1 (2038) on as milliseconds
    stamp = when.isoformat() if iso else str(unix if unix < 2**31 - 1 else unix * 1000)
    query = {"id": device, "timestamp": stamp, "lat": repr(lat), "lon": repr(lon),
             "speed": repr(knots), "bearing": repr(course), "batt": "87.5"}  # fmt: skip
    decoded = osmand.decode_request("/?" + urlencode(query))
    assert decoded.rejects == []
    (fix,) = decoded.fixes
    assert (fix.device, fix.lat, fix.lon, fix.time, fix.course) == (device, lat, lon, when, course)
    assert fix.speed is not None and math.isclose(fix.speed, knots * osmand.KNOT)
    assert fix.attributes == {"battery": 87.5}
    # the same as a form body
    assert osmand.decode_request("/", urlencode(query).encode()).fixes == [fix]


@TRIPS
@given(
    device=devices,
    lat=latitudes,
    lon=longitudes,
    when=seconds,
    speed=speeds,
    altitude=st.floats(-1000, 9000),
)
def test_osmand_json_round_trip(
    *, device: str, lat: float, lon: float, when: dt.datetime, speed: float, altitude: float
) -> None:
    coords = {"latitude": lat, "longitude": lon, "speed": speed, "altitude": altitude}
    location = {"timestamp": when.isoformat(), "coords": coords, "is_moving": True}
    body = json.dumps({"device_id": device, "location": [location, location]}).encode()
    decoded = osmand.decode_request("/", body, content_type="application/json")
    assert decoded.rejects == [] and len(decoded.fixes) == 2
    fix = decoded.fixes[0]
    assert (fix.device, fix.lat, fix.lon, fix.time) == (device, lat, lon, when)
    assert (fix.speed, fix.altitude, fix.attributes) == (speed, altitude, {"motion": True})


# -- OwnTracks ---------------------------------------------------------------------------


@FAST
@given(junk_bytes | json_junk(), st.none() | junk_text, st.none() | junk_text)
@example(b'{"_type":"location","lat":1,"lon":2,"tst":1e300,"tid":"x"}', None, None)
@example(b'{"_type":"location","lat":1,"lon":2,"tst":-1e11}', "owntracks/a/b", None)
def test_owntracks_never_raises(payload: bytes, topic: str | None, user: str | None) -> None:
    decoded = owntracks.decode_owntracks(payload, topic=topic, user=user, device="phone")
    assert_sane(decoded)
    assert len(decoded.fixes) + len(decoded.rejects) <= 1


@TRIPS
@given(
    user=devices,
    phone=devices,
    lat=latitudes,
    lon=longitudes,
    when=seconds,
    kmh=st.floats(0, 400),
    battery=st.integers(0, 100),
)
def test_owntracks_round_trip(
    *, user: str, phone: str, lat: float, lon: float, when: dt.datetime, kmh: float, battery: int
) -> None:
    message = {"_type": "location", "lat": lat, "lon": lon, "tst": int(when.timestamp()),
               "vel": kmh, "acc": 5, "batt": battery, "bs": 2, "t": "u", "tid": "ph"}  # fmt: skip
    payload = json.dumps(message).encode()
    decoded = owntracks.decode_owntracks(payload, topic=f"owntracks/{user}/{phone}")
    assert decoded.rejects == []
    (fix,) = decoded.fixes
    assert (fix.device, fix.lat, fix.lon, fix.time) == (f"{user}/{phone}", lat, lon, when)
    assert fix.speed is not None and math.isclose(fix.speed, kmh / 3.6)
    assert fix.accuracy == 5
    assert fix.attributes == {"battery": battery, "battery_status": 2, "charging": True,
                              "trigger": "u", "tid": "ph"}  # fmt: skip


# -- GPX ---------------------------------------------------------------------------------

GPX_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<gpx version="1.1" creator="t" xmlns="http://www.topografix.com/GPX/1/1">\n'


@FAST
@given(junk_bytes, st.integers(0, 400), junk_text)
@example(b"<gpx><trk><trkseg><trkpt lat='1e999' lon='2'><time>x</time></trkpt>", 0, "")
@example(b'<?xml version="1.0" encoding="UTF-4"?><gpx/>', 0, "")  # found by benchmarks/fuzz.py
@example(b'<?xml version="1.0" encoding="shift_jis"?><gpx/>', 0, "")
def test_gpx_never_raises_but_refuses(data: bytes, cut: int, insert: str) -> None:
    valid = (GPX_HEAD + '<trk><name>a</name><trkseg><trkpt lat="1" lon="2"><ele>3</ele>'
             "<time>2026-01-01T00:00:00Z</time></trkpt></trkseg></trk></gpx>").encode()  # fmt: skip
    mangled = valid[:cut] + insert.encode("utf-8", "surrogatepass") + valid[cut:]
    for document in (data, mangled, valid[:cut], b"<gpx>" + data):
        try:
            decoded = read_gpx(document)
        except InvalidInputError as error:
            assert str(error)
        else:
            assert_sane(decoded)


point_names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)


@TRIPS
@given(
    st.lists(st.tuples(latitudes, longitudes, seconds, st.floats(-400, 9000)), min_size=1,
             max_size=8),
    point_names.filter(lambda n: n.strip() == n),
)  # fmt: skip
def test_gpx_round_trip(points: list[tuple[float, float, dt.datetime, float]], name: str) -> None:
    body = "".join(
        f"<trkpt lat={quoteattr(repr(lat))} lon={quoteattr(repr(lon))}><ele>{ele!r}</ele>"
        f"<time>{when:%Y-%m-%dT%H:%M:%SZ}</time><name>{escape(name)}</name></trkpt>"
        for lat, lon, when, ele in points
    )
    document = f"{GPX_HEAD}<trk><name>{escape(name)}</name><trkseg>{body}</trkseg></trk></gpx>"
    decoded = read_gpx(document.encode())
    assert decoded.rejects == []
    got = [(f.lat, f.lon, f.time, f.altitude, f.device) for f in decoded.fixes]
    assert got == [(lat, lon, when, ele, name) for lat, lon, when, ele in points]
    assert all(f.attributes["name"] == name and f.attributes["kind"] == "track"
               for f in decoded.fixes)  # fmt: skip
