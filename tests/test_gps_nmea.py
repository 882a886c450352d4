"""The NMEA 0183 decoder: gpsd's regression logs, pynmea2's sentences, the demo fleet, junk.

No database is needed. Shared data lives under ``SHARED_DATA/gps`` (see ``conftest.py``);
tests that need it are skipped, with the path, when it is absent. The demo fleet is built
into a temporary folder with :func:`spatial.samples.build`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import string
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SHARED_DATA

from spatial.gps.fix import REASONS, Fix
from spatial.gps.nmea import KNOTS, Decoder, decode
from spatial.samples import build
from spatial.samples import gps as fleet_gen
from spatial.samples.gps import sentence

GPS_DATA = SHARED_DATA / "gps"
GPSD = GPS_DATA / "gpsd"
PYNMEA2 = ("pynmea2_test_sentences.nmea", "pynmea2_examples_data.log")
START = dt.date(2000, 1, 1)
"""Any date, for sentences tested alone (a GGA has no date of its own)."""

GPSD_TPVS = {
    # log: TPV reports with lat/lon in its .chk (all are matched, except as noted)
    "GPSmap-76S.log": 2,  # simulator mode: RMC status V, GGA quality 8 -> no_fix
    "beidou-bd.log": 9,  # GN + BD talkers, one line with a space before "$"
    "beidou-gb.log": 3,  # GP/GN/GB talkers, position from GGA and RMC (GNS also decoded)
    "bu353-glonass.log": 9,
    "bu353s4.log": 27,
    "garmin-geko201.log": 3,  # simulator mode, like GPSmap-76S
    "haicom-305N.log": 134,
    "iTrek.log": 36,
    "mt3339.log": 32,
    "sirfstarv-nmea.log": 62,  # GPGGA and GLGGA in each epoch
    "skytraq-dgps.log": 101,
    "telit-he910.log": 190,
    "ublox-lea-5h.log": 26,
    "ublox-zed-f9p-nmea.log": 35,
}
SIMULATOR = {"GPSmap-76S.log", "garmin-geko201.log"}
TIME_FIELD = {"GGA": 1, "RMC": 1, "GNS": 1, "ZDA": 1, "GLL": 5}


def _needs(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.exists(), reason=f"shared test data not present at {path}")


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="latin-1").splitlines()


# -- 1. gpsd's regression logs ---------------------------------------------------------


@dataclass(frozen=True)
class Tpv:
    """A gpsd TPV report with a position, and what the input said around it."""

    tod: dt.time | None
    report: dict[str, Any]
    rmc_date: dt.date | None
    receiver_speed: bool


def _tod(text: str) -> dt.time:
    fraction = text[7:] if len(text) > 6 else ""
    micro = int(fraction.ljust(6, "0")[:6])
    return dt.time(int(text[:2]), int(text[2:4]), int(text[4:6]), micro)


def _rmc_date(text: str) -> dt.date:
    year = int(text[4:])
    return dt.date(year + (1900 if year >= 80 else 2000), int(text[2:4]), int(text[:2]))


def _tpvs(chk: Path) -> Iterator[Tpv]:
    """TPVs with lat/lon from a .chk file (the input sentences echoed between JSON lines)."""
    tod: dt.time | None = None
    rmc_date: dt.date | None = None
    receiver_speed = False
    for line in _lines(chk):
        if line.startswith("$"):
            fields = line[1:].split("*")[0].split(",")
            kind = fields[0][2:]
            at = TIME_FIELD.get(kind, 0)
            if at and len(fields) > at and fields[at]:
                if _tod(fields[at]) != tod:
                    receiver_speed = False
                tod = _tod(fields[at])
            if kind in ("RMC", "VTG"):
                receiver_speed = True
            if kind == "RMC" and len(fields) > 9 and fields[9]:
                rmc_date = _rmc_date(fields[9])
        elif line.startswith("{"):
            report = json.loads(line)
            if report.get("class") == "TPV" and "lat" in report and "lon" in report:
                when = report.get("time")
                own = dt.time.fromisoformat(when[11:-1]) if isinstance(when, str) else tod
                yield Tpv(own, report, rmc_date, receiver_speed)


def _agrees(fix: Fix, tpv: Tpv) -> bool:
    r = tpv.report
    checks = [abs(fix.lat - r["lat"]) <= 1e-6, abs(fix.lon - r["lon"]) <= 1e-6]
    if tpv.receiver_speed and fix.speed is not None and "speed" in r:
        checks.append(abs(fix.speed - r["speed"]) <= 0.01)
    if tpv.receiver_speed and fix.course is not None and "track" in r:
        checks.append(abs(fix.course - r["track"]) <= 0.01)
    alt = r.get("altMSL", r.get("alt"))
    if alt is not None and fix.altitude is not None:
        checks.append(abs(fix.altitude - alt) <= 1e-3)
    return all(checks)


@_needs(GPSD)
@pytest.mark.parametrize("name", sorted(GPSD_TPVS))
def test_gpsd_regression_logs(name: str) -> None:
    """Every TPV with a position that gpsd reports is one of our fixes.

    Matching is by UTC time of day, because gpsd's dates are not the receiver's: in
    regression mode it applies its GPS-week-rollover and build-date logic, so an RMC
    date of 311214 comes out as 2034-08-16 and 080407 as 2026-11-22. Full timestamps are
    compared only where gpsd's date agrees with the RMC date in the input; our date must
    always be the RMC date. A TPV without ``time`` (gpsd reports a GGA before it knows
    the date, which comes with the RMC later in the same second) takes the time of the
    sentence just before it in the .chk; the decoder merges that GGA with the RMC.

    gpsd fills ``speed`` with its own estimate from successive positions in epochs where
    the receiver has sent no RMC/VTG yet; only speeds and tracks the receiver reported
    are compared (0.01 m/s, 0.01°), positions always (1e-6°), altitude MSL when both
    have one. At least 95 % of the TPVs of each file must match; the two Garmin logs
    are recorded in simulator mode (RMC status V, GGA quality 8), which the decoder
    rejects as ``no_fix``, so each of their TPVs must instead have a ``no_fix`` epoch.
    """
    log = GPSD / name
    decoded = decode(_lines(log))
    assert decode(_lines(log), start_date=START).fixes == decoded.fixes  # no GGA-only start
    by_tod: dict[dt.time, list[Fix]] = {}
    for fix in decoded.fixes:
        by_tod.setdefault(fix.time.time(), []).append(fix)
    tpvs = list(_tpvs(log.with_suffix(".log.chk")))
    assert len(tpvs) == GPSD_TPVS[name]
    matched, full_dates, unmatched = 0, 0, []
    for tpv in tpvs:
        candidates = by_tod.get(tpv.tod, []) if tpv.tod is not None else []
        fix = next((f for f in candidates if _agrees(f, tpv)), None)
        if fix is None:
            unmatched.append(tpv)
            continue
        matched += 1
        if tpv.rmc_date is not None and "time" in tpv.report:
            assert fix.time.date() == tpv.rmc_date
            gpsd_time = dt.datetime.fromisoformat(str(tpv.report["time"]))
            if gpsd_time.date() == tpv.rmc_date:
                full_dates += 1
                assert abs(fix.time - gpsd_time) < dt.timedelta(milliseconds=1)
    print(f"{name}: {matched}/{len(tpvs)} TPVs matched, {full_dates} full dates compared")
    if name in SIMULATOR:
        assert matched == 0
        assert not decoded.fixes
        voids = [r.detail for r in decoded.rejects if r.reason == "no_fix"]
        for tpv in unmatched:
            assert tpv.tod is not None
            at = f" at {tpv.tod.isoformat()}: "
            assert any(at in v and "RMC status V" in v for v in voids), at
    else:
        assert matched >= math.ceil(0.95 * len(tpvs)), [t.report for t in unmatched[:3]]
    assert {r.reason for r in decoded.rejects} <= {"malformed", "no_fix"}
    comments = sum(line.startswith("#") for line in _lines(log))
    assert decoded.counts().get("malformed", 0) >= comments


@_needs(GPSD)
def test_beidou_talkers() -> None:
    """The BeiDou logs (BD/GB talkers beside GN/GP) decode; the talker is kept."""
    bd = decode(_lines(GPSD / "beidou-bd.log"))
    gb = decode(_lines(GPSD / "beidou-gb.log"))
    assert len(bd.fixes) == 5
    assert len(gb.fixes) == 2
    assert {f.attributes["talker"] for f in bd.fixes + gb.fixes} <= {"GN", "GP"}
    sentences = {s for f in bd.fixes for s in f.attributes["sentences"]}
    assert {"GNGGA", "GNRMC", "BDGSA", "GPGSA"} <= sentences
    first = bd.fixes[0]
    assert first.time == dt.datetime(2015, 2, 25, 7, 41, 55, 799000, tzinfo=dt.UTC)
    assert first.attributes["fix_mode"] == 3


# -- 2. pynmea2's sentences ----------------------------------------------------------


@pytest.mark.parametrize("name", PYNMEA2)
def test_pynmea2_files_are_accounted_for(name: str) -> None:
    """Every line is decoded, ignored (a valid sentence of another type) or rejected."""
    path = GPS_DATA / name
    if not path.exists():
        pytest.skip(f"shared test data not present at {path}")
    lines = _lines(path)
    decoder = Decoder(start_date=START)
    for line in lines:
        decoder.feed(line)
    decoder.flush()
    assert sum(decoder.lines.values()) == len(lines)
    line_rejects = [r for r in decoder.rejects if r.reason in ("malformed", "checksum")]
    assert decoder.lines["rejected"] == len(line_rejects)
    assert all(r.reason in REASONS and r.line for r in decoder.rejects)


def _one(line: str, start_date: dt.date | None = START) -> Fix:
    decoded = decode([line], start_date=start_date)
    assert not decoded.rejects, decoded.rejects
    assert len(decoded.fixes) == 1
    return decoded.fixes[0]


@_needs(GPS_DATA / PYNMEA2[0])
def test_pynmea2_known_sentences() -> None:
    """A few sentences of the file, checked by hand."""
    lines = set(_lines(GPS_DATA / PYNMEA2[0]))
    rmc = "$GPRMC,225446,A,4916.45,N,12311.12,W,000.5,054.7,191194,020.3,E*68"
    gga = "$GPGGA,184353.07,1929.045,S,02410.506,E,1,04,2.6,100.00,M,-33.9,M,,0000*6D"
    gll = "$GPGLL,4916.45,N,12311.12,W,225444,A,*1D"
    cut = "$GPRMC,172142.00,A,4805.30256324,N,11629.09084774,W,0.D"
    assert {rmc, gga, gll, cut} <= lines

    fix = _one(rmc, start_date=None)
    assert fix.time == dt.datetime(1994, 11, 19, 22, 54, 46, tzinfo=dt.UTC)
    assert fix.lat == pytest.approx(49 + 16.45 / 60, abs=1e-9)
    assert fix.lon == pytest.approx(-(123 + 11.12 / 60), abs=1e-9)
    assert fix.speed == pytest.approx(0.5 * 0.514444, abs=1e-6)
    assert fix.course == 54.7

    fix = _one(gga)
    assert fix.time == dt.datetime(2000, 1, 1, 18, 43, 53, 70000, tzinfo=dt.UTC)
    assert (fix.lat, fix.lon) == pytest.approx((-(19 + 29.045 / 60), 24 + 10.506 / 60))
    assert (fix.altitude, fix.hdop, fix.satellites) == (100.0, 2.6, 4)
    assert fix.attributes["geoid_separation"] == -33.9

    fix = _one(gll)
    assert fix.time.time() == dt.time(22, 54, 44)
    assert (fix.lat, fix.lon) == pytest.approx((49 + 16.45 / 60, -(123 + 11.12 / 60)))

    truncated = decode([cut])
    assert truncated.counts() == {"malformed": 1}
    assert "without a checksum" in truncated.rejects[0].detail


def test_rmc_status_and_mode() -> None:
    """Status V or mode N: no fix; an empty status: malformed; mode S (simulator): a fix."""
    body = "GPRMC,123519.00,{},4807.038,N,01131.000,E,,,230394,,,{}"
    cases = {("A", ""): None, ("A", "S"): None, ("V", "A"): "no_fix", ("A", "N"): "no_fix"}
    cases[("", "A")] = "malformed"
    for (status, mode), reason in cases.items():
        decoded = decode([sentence(body.format(status, mode))])
        assert [r.reason for r in decoded.rejects] == ([reason] if reason else [])
        assert len(decoded.fixes) == (0 if reason else 1)


# -- 3. the demo fleet ---------------------------------------------------------------


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo samples, built into a fresh folder."""
    return build(tmp_path_factory.mktemp("samples")).out_dir


def test_fleet_nmea(samples: Path) -> None:
    """The deliberate junk of fleet.nmea is rejected exactly; every RMC A is a fix.

    The README counts 12 no-fix *sentences* (3 seconds x RMC V + GGA 0 x 2 vehicles);
    the decoder merges each second into one epoch, so that is 6 ``no_fix`` rejects.
    """
    lines = (samples / "gps" / "fleet.nmea").read_bytes().splitlines(keepends=True)
    decoded = decode(lines)
    assert decoded.counts() == {
        "no_fix": fleet_gen.NMEA_NO_FIX // 2,
        "checksum": fleet_gen.NMEA_BAD_CHECKSUM,
        "malformed": fleet_gen.NMEA_TRUNCATED,
    }
    for reject in decoded.rejects:
        if reject.reason == "no_fix":
            assert "RMC status V" in reject.detail
            assert "GGA quality 0" in reject.detail
    rmc_a = set()
    for raw in lines:
        line = raw.decode("ascii").strip()
        fields = line[1:].split(",")
        intact = "*" in line and sentence(line[1:].split("*")[0]) == line
        if intact and fields[0].endswith("RMC") and fields[2] == "A":
            rmc_a.add((fields[0][:2], fields[1]))
    assert len(decoded.fixes) == len(rmc_a)
    talkers = Counter(f.attributes["talker"] for f in decoded.fixes)
    assert talkers == Counter(t for t, _ in rmc_a)
    assert set(talkers) == {"GN", "BD"}
    fire = [f for f in decoded.fixes if f.attributes["talker"] == "BD"]
    assert {f.attributes["sentences"] for f in fire} == {("BDRMC", "GBGGA")}


def _gpx_points(path: Path) -> dict[str, list[dict[str, float | dt.datetime]]]:
    ns = {
        "g": "http://www.topografix.com/GPX/1/1",
        "x": "http://www.garmin.com/xmlschemas/TrackPointExtension/v2",
    }
    tracks: dict[str, list[dict[str, float | dt.datetime]]] = {}
    for trk in ET.parse(path).getroot().iterfind("g:trk", ns):  # noqa: S314 (our own file)
        points = tracks.setdefault(trk.findtext("g:name", "", ns), [])
        for pt in trk.iterfind(".//g:trkpt", ns):
            points.append(
                {
                    "time": dt.datetime.fromisoformat(pt.findtext("g:time", "", ns)),
                    "lat": float(pt.attrib["lat"]),
                    "lon": float(pt.attrib["lon"]),
                    "ele": float(pt.findtext("g:ele", "", ns)),
                    "sat": float(pt.findtext("g:sat", "", ns)),
                    "hdop": float(pt.findtext("g:hdop", "", ns)),
                    "speed": float(pt.findtext(".//x:speed", "", ns)),
                    "course": float(pt.findtext(".//x:course", "", ns)),
                }
            )
    return tracks


def test_fleet_nmea_agrees_with_gpx(samples: Path) -> None:
    """The two NMEA vehicles decode to the fixes the GPX file holds for them."""
    fixes = decode((samples / "gps" / "fleet.nmea").read_text().splitlines()).fixes
    gpx = _gpx_points(samples / "gps" / "fleet.gpx")
    for device, talker in (("YF-AMB-01", "GN"), ("YF-FIRE-01", "BD")):
        ours = [f for f in fixes if f.attributes["talker"] == talker]
        theirs = gpx[device]
        assert [f.time for f in ours] == [p["time"] for p in theirs]
        for fix, point in zip(ours, theirs, strict=True):
            assert fix.lat == pytest.approx(point["lat"], abs=1e-6)
            assert fix.lon == pytest.approx(point["lon"], abs=1e-6)
            assert fix.speed == pytest.approx(point["speed"], abs=0.01)
            assert (fix.course, fix.altitude) == (point["course"], point["ele"])
            assert (fix.satellites, fix.hdop) == (point["sat"], point["hdop"])


# -- 4. junk -------------------------------------------------------------------------


def _stream(epochs: int, seed: int = 7) -> list[str]:
    """A receiver's output: RMC, GGA, VTG, GSA, GSV each second, crossing midnight."""
    generator = np.random.default_rng(seed)
    start = dt.datetime(2025, 12, 31, 23, 59, 30, tzinfo=dt.UTC)
    lines = []
    for k in range(epochs):
        t = start + dt.timedelta(seconds=k)
        clock, date = t.strftime("%H%M%S.00"), t.strftime("%d%m%y")
        lat = f"{2254 + generator.uniform(0, 1):.5f},N"
        lon = f"{11200 + generator.uniform(0, 1):010.5f},E"
        knots, course = generator.uniform(0, 40), generator.uniform(0, 360)
        lines += [
            sentence(f"GNRMC,{clock},A,{lat},{lon},{knots:.2f},{course:.1f},{date},,,A"),
            sentence(
                f"GNGGA,{clock},{lat},{lon},1,12,0.9,{generator.uniform(0, 99):.1f},M,-4.8,M,,"
            ),
            sentence(f"GNVTG,{course:.1f},T,,M,{knots:.2f},N,{knots * 1.852:.2f},K,A"),
            sentence("GNGSA,A,3,01,02,03,04,,,,,,,,,1.5,0.9,1.2"),
            sentence("GPGSV,1,1,04,01,40,083,46,02,17,308,41,03,07,344,39,04,22,228,45"),
        ]
    return lines


def _flip(line: str, generator: np.random.Generator) -> str:
    at = int(generator.integers(len(line)))
    new = line[at]
    while new == line[at]:
        new = string.printable[int(generator.integers(len(string.printable) - 6))]
    return line[:at] + new + line[at + 1 :]


def test_junk_never_raises_and_hides_nothing() -> None:
    """Random bytes, printable garbage and damaged copies between good sentences."""
    clean = _stream(120)
    expected = decode(clean).fixes
    assert len(expected) == 120
    assert expected[-1].time.date() == dt.date(2026, 1, 1)
    generator = np.random.default_rng(20250630)
    noisy: list[str | bytes] = []
    for line in clean:
        noisy.append(line)
        for _ in range(int(generator.integers(0, 3))):
            kind = int(generator.integers(4))
            if kind == 0:
                noisy.append(generator.bytes(int(generator.integers(1, 120))))
            elif kind == 1:
                chars = generator.choice(list(string.printable), int(generator.integers(1, 90)))
                noisy.append("".join(chars))
            elif kind == 2:
                noisy.append(_flip(line, generator))
            else:
                noisy.append(line[: int(generator.integers(1, len(line) - 3))])
    decoder = Decoder()
    fixes = [fix for line in noisy for fix in decoder.feed(line)] + decoder.flush()
    assert fixes == expected
    assert {r.reason for r in decoder.rejects} <= {"malformed", "checksum"}
    assert decoder.lines["decoded"] >= 4 * 120
    assert decoder.lines["rejected"] == len(decoder.rejects)


def test_binary_and_non_nmea_lines() -> None:
    """Each kind of non-sentence is one ``malformed`` reject, with its line number."""
    junk: list[str | bytes] = [
        "# gpsd log comment",
        '{"class":"TPV","mode":3}',
        b"\x00\xff\xb5b\x01\x07$\x00",
        "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M",  # cut, no checksum
        "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*4Z",
        "$gpgga,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",
        "$GPGGA,123519,48o7.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",
        "$GPGGA,256519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",
        "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,nan,M,46.9,M,,",
        "$GPGGA,123519,4807.038,N,01131.000,E,1," + "9" * 5000 + ",0.9,545.4,M,46.9,M,,",
        "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,310294,003.1,W",  # 31 Feb
    ]
    decoded = decode(junk)
    assert [r.reason for r in decoded.rejects] == ["malformed"] * len(junk)
    assert [r.line for r in decoded.rejects] == list(range(1, len(junk) + 1))


# -- 5. incremental decoding ----------------------------------------------------------


def test_decoder_matches_decode() -> None:
    """Feeding lines one by one (or several per call) gives what ``decode`` gives."""
    lines = [line + "\r\n" for line in _stream(30)]
    once = decode(lines, device="dev-1")
    decoder = Decoder(device="dev-1")
    fixes = []
    for line in lines:
        fixes += decoder.feed(line)
    assert len(fixes) == 29  # the last epoch waits for the next one, or for flush
    fixes += decoder.flush()
    assert fixes == once.fixes
    assert all(f.device == "dev-1" for f in fixes)
    chunked = Decoder(device="dev-1")
    half = len(lines) // 2
    fixes = chunked.feed("".join(lines[:half])) + chunked.feed("".join(lines[half:]))
    assert fixes + chunked.flush() == once.fixes
    assert chunked.lines == Counter(decoded=4 * 30, ignored=30)


def test_feed_takes_whole_lines() -> None:
    """A line split across two ``feed`` calls is two bad lines: framing is the caller's."""
    line = sentence("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
    decoder = Decoder(start_date=START)
    assert decoder.feed(line[:30]) == []
    assert decoder.feed(line[30:]) == []
    assert decoder.flush() == []
    assert [r.reason for r in decoder.pop_rejects()] == ["malformed", "malformed"]
    assert decoder.rejects == []
    assert decoder.feed(line) == []
    assert len(decoder.flush()) == 1


def test_decode_accepts_text_and_bytes() -> None:
    """One string or bytes object is split into lines, not iterated by character."""
    text = "\r\n".join(_stream(3))
    assert len(decode(text).fixes) == 3
    assert len(decode(text.encode()).fixes) == 3


# -- details ---------------------------------------------------------------------------


@pytest.mark.parametrize("talker", ["GP", "GN", "GL", "GA", "BD", "GB", "QZ", "GI"])
def test_any_talker(talker: str) -> None:
    fix = _one(sentence(f"{talker}GGA,000001,2254.0000,N,11200.0000,E,1,08,0.9,5.0,M,,M,,"))
    assert fix.attributes["talker"] == talker
    assert (fix.lat, fix.lon) == pytest.approx((22 + 54 / 60, 112.0))


def test_epoch_merge() -> None:
    """GGA + RMC + VTG + GSA of one second are one fix; RMC's speed beats VTG's."""
    lines = [
        sentence("GPGGA,120000.50,2254.0000,S,11200.0000,W,2,09,1.1,12.5,M,-4.8,M,,"),
        sentence("GLGGA,120000.50,2254.0000,S,11200.0000,W,1,03,1.1,12.5,M,-4.8,M,,"),
        sentence("GPGSA,A,3,01,02,,,,,,,,,,,2.0,1.0,1.7"),
        sentence("GPRMC,120000.50,A,2254.0000,S,11200.0000,W,10.00,45.0,010325,,,D"),
        sentence("GPVTG,46.0,T,,M,11.00,N,20.37,K,D"),
        sentence("GPGGA,120001.50,2254.0000,S,11200.0000,W,2,09,1.1,12.5,M,-4.8,M,,"),
    ]
    first, second = decode(lines).fixes
    assert first.time == dt.datetime(2025, 3, 1, 12, 0, 0, 500000, tzinfo=dt.UTC)
    assert second.time == first.time + dt.timedelta(seconds=1)
    assert (first.lat, first.lon) == pytest.approx((-(22 + 54 / 60), -112.0))
    assert first.speed == pytest.approx(10 * KNOTS)
    assert first.speed == pytest.approx(5.14444, abs=1e-5)
    assert (first.course, first.altitude, first.hdop, first.satellites) == (45.0, 12.5, 1.1, 9)
    assert first.attributes["quality"] == 2
    assert first.attributes["fix_mode"] == 3
    assert (first.attributes["pdop"], first.attributes["vdop"]) == (2.0, 1.7)
    assert first.attributes["sentences"] == ("GPGGA", "GLGGA", "GPGSA", "GPRMC", "GPVTG")
    assert second.speed is None


def test_dates() -> None:
    """RMC dates (80-99 -> 19yy), GGA after midnight without RMC, ZDA's four-digit year."""
    fix = _one(sentence("GPRMC,000000,A,0000.0000,N,00000.0000,E,,,010180,,"))
    assert (fix.time.year, fix.lat, fix.lon) == (1980, 0.0, 0.0)  # (0, 0) is decoded
    assert _one(sentence("GPRMC,000000,A,0000.0000,N,00000.0000,E,,,311279,,")).time.year == 2079
    lines = [
        sentence("GPRMC,235959,A,2254.0000,N,11200.0000,E,,,311299,,"),
        sentence("GPGGA,000000,2254.0000,N,11200.0000,E,1,08,0.9,5.0,M,,M,,"),
        sentence("GPGGA,000001,2254.0000,N,11200.0000,E,1,08,0.9,5.0,M,,M,,"),
        sentence("GPZDA,000002,15,06,2031,00,00"),
        sentence("GPGGA,000002,2254.0000,N,11200.0000,E,1,08,0.9,5.0,M,,M,,"),
    ]
    times = [f.time for f in decode(lines).fixes]
    assert [t.date() for t in times] == [dt.date(1999, 12, 31)] + [dt.date(2000, 1, 1)] * 2 + [
        dt.date(2031, 6, 15)
    ]
    no_date = decode([lines[1]])
    assert no_date.counts() == {"no_time": 1}
    assert _one(lines[1], start_date=dt.date(2024, 2, 29)).time.date() == dt.date(2024, 2, 29)


def test_no_fix_is_one_reject_per_epoch() -> None:
    lines = [
        sentence("GPGGA,000001,,,,,0,00,99.99,,,,,,"),
        sentence("GPRMC,000001,V,,,,,,,010125,,,N"),
        sentence("GPGSA,A,1,,,,,,,,,,,,,99.9,99.9,99.9"),
        sentence("GPGGA,,,,,,0,00,99.99,,,,,,"),  # no time yet: each repetition is an epoch
        sentence("GPGGA,,,,,,0,00,99.99,,,,,,"),
    ]
    decoded = decode(lines, device="x")
    assert decoded.counts() == {"no_fix": 3}
    assert [r.line for r in decoded.rejects] == [1, 4, 5]
    assert {r.device for r in decoded.rejects} == {"x"}


def test_checksums_and_framing() -> None:
    body = "GPGGA,123520,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
    good = sentence(body)
    assert good.endswith("*4D")
    variants = [
        good,
        good[:-1] + "d",  # lower-case hex digits
        "xx\x00junk" + good + "\r\n",  # leading junk and CRLF
        "$" + body,  # no checksum, all fields
        "$" + body + "*",  # a bare star (Garmin does this)
    ]
    for line in variants:
        assert _one(line).lat == pytest.approx(48 + 7.038 / 60)
    wrong = good[:-2] + ("00" if good[-2:] != "00" else "01")
    assert decode([wrong]).counts() == {"checksum": 1}
    ais = sentence("AIVDM,1,1,,A,13aEOK?P00PD2wVMdLDRhgvL289?,0").replace("$", "!")
    decoder = Decoder()
    decoder.feed(ais)
    decoder.feed(ais[:-1] + ("0" if ais[-1] != "0" else "1"))
    decoder.feed(sentence("GPGSV,1,1,01,01,40,083,46"))
    decoder.feed(sentence("PGRME,15.0,M,45.0,M,25.0,M"))
    decoder.feed("   ")
    assert decoder.lines == Counter(ignored=3, rejected=1, blank=1)
    assert [r.reason for r in decoder.rejects] == ["checksum"]
    assert decoder.sentences == Counter(VDM=1, GSV=1, PGRM=1)
