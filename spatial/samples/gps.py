"""A small fleet driving the grid roads for half an hour: NMEA 0183, GPX 1.1 and OsmAnd logs.

Six vehicles start at 2026-03-01T08:00:00+08:00 (00:00:00 UTC), each from its base
(hospital, fire station or a fixed depot), and drive a random route along the interior
grid roads at 30-70 km/h (faster on arterials, slower in turns), reporting every 1-5 s.
Reported positions carry ~2.5 m of noise.

``fleet.nmea`` holds two vehicles, one after the other, told apart by their talker IDs:
YF-AMB-01 with ``$GNRMC``/``$GNGGA`` and YF-FIRE-01 with ``$BDRMC``/``$GBGGA``. Deliberate
junk: 3 seconds without a fix before each vehicle's first fix (``RMC`` status ``V`` and
``GGA`` quality 0, valid checksums), one corrupted copy of a sentence with a wrong checksum
and one truncated sentence per vehicle.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod
from shapely.geometry import LineString

from spatial.samples.constants import GPS_START
from spatial.samples.grid import BLOCK_SIZE, BLOCKS_X, BLOCKS_Y, Grid
from spatial.samples.network import grid_road_class
from spatial.samples.streams import STREAM_GPS, rng

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DURATION_S = 1800
KNOTS_PER_MS = 3600.0 / 1852.0
GEOID_SEPARATION_M = -4.8
CLASS_SPEED_KMH = {"arterial": 58.0, "secondary": 48.0, "local": 38.0}
TURN_SPEED_KMH = 31.0
MIN_SPEED_KMH, MAX_SPEED_KMH = 30.0, 70.0
GPX_CREATOR = "spatial.samples 1.0.0"
"""The GPX ``creator``: the generator version that first wrote this fleet. Fixed, not
``GENERATOR_VERSION``, so a version bump for another file leaves fleet.gpx byte-identical;
change it together with the tracks."""
REPORTED_SPEED_MS = (8.34, 19.44)
"""Reported speeds stay within 30-70 km/h after rounding to 0.01 m/s."""

NMEA_BAD_CHECKSUM = 2
"""Sentences in fleet.nmea whose checksum does not match (corrupted copies)."""
NMEA_TRUNCATED = 2
"""Sentences in fleet.nmea cut off before the checksum."""
NMEA_NO_FIX = 12
"""Sentences in fleet.nmea without a fix (per vehicle 3 RMC status V and 3 GGA quality 0)."""
OSMAND_DUPLICATES = 5
"""Requests in osmand_requests.log sent twice (a client retrying)."""
OSMAND_JUNK = (
    "GET /?timestamp=1772323500&lat=22.900000&lon=112.000000",
    "GET /?id=YF-AMB-02&lat=abc&lon=112.010000&timestamp=1772323800",
    "GET /?id=YF-WATER-01&lat=22.91",
    "GET /favicon.ico",
    "GET /?id=YF-ENV-01&lat=122.900000&lon=22.900000&timestamp=1772324400",
)
"""Requests that must be rejected: no id, bad number, truncated, not a report, swapped axes."""


@dataclass(frozen=True)
class Vehicle:
    """One device of the fleet."""

    device_id: str
    kind: str
    base: tuple[float, float]
    interval_s: tuple[int, int]
    pace: float
    talkers: tuple[str, str] | None = None


@dataclass(frozen=True)
class Track:
    """The fixes of one vehicle (positions already include receiver noise)."""

    vehicle: Vehicle
    seconds: IntArray
    lon: FloatArray
    lat: FloatArray
    speed_ms: FloatArray
    course: FloatArray
    ele: FloatArray
    hdop: FloatArray
    sats: IntArray
    battery: IntArray

    def unix(self, k: int) -> int:
        """Unix time of fix k."""
        return int(GPS_START.timestamp()) + int(self.seconds[k])


def fleet(hospitals: FloatArray, fire_stations: FloatArray, grid: Grid) -> list[Vehicle]:
    """The six vehicles, based at the first hospitals and fire stations and two depots.

    Args:
        hospitals: (N, 2) hospital positions in EPSG:4546.
        fire_stations: (N, 2) fire-station positions in EPSG:4546.
        grid: the city frame.

    Returns:
        Vehicles in device-id order of the files.
    """
    depot = (grid.x0 + 0.62 * grid.width, grid.y0 + 0.40 * grid.height)
    env = (grid.x0 + 0.30 * grid.width, grid.y0 + 0.72 * grid.height)
    h, f = hospitals, fire_stations
    return [
        Vehicle("YF-AMB-01", "ambulance", (h[0, 0], h[0, 1]), (1, 1), 1.1, ("GN", "GN")),
        Vehicle("YF-FIRE-01", "fire engine", (f[0, 0], f[0, 1]), (2, 2), 1.05, ("BD", "GB")),
        Vehicle("YF-AMB-02", "ambulance", (h[1, 0], h[1, 1]), (1, 5), 1.1),
        Vehicle("YF-FIRE-02", "fire engine", (f[1, 0], f[1, 1]), (2, 5), 1.0),
        Vehicle("YF-WATER-01", "water patrol", depot, (2, 5), 0.9),
        Vehicle("YF-ENV-01", "environment monitoring van", env, (3, 5), 0.85),
    ]


def _route(
    grid: Grid, start: tuple[float, float], generator: np.random.Generator
) -> tuple[LineString, list[float]]:
    """A random walk over the interior road crossings, long enough for the drive.

    Returns the route line and the target speed (m/s) of each of its edges.
    """
    a = min(max(round((start[0] - grid.x0) / BLOCK_SIZE), 1), BLOCKS_X - 1)
    b = min(max(round((start[1] - grid.y0) / BLOCK_SIZE), 1), BLOCKS_Y - 1)
    nodes = [(a, b)]
    heading = (1, 0)
    length = 0.0
    speeds: list[float] = []
    while length < MAX_SPEED_KMH / 3.6 * DURATION_S + BLOCK_SIZE:
        options = [
            (heading, 4.0),
            ((-heading[1], heading[0]), 1.0),
            ((heading[1], -heading[0]), 1.0),
        ]
        options = [
            (d, w)
            for d, w in options
            if 1 <= a + d[0] <= BLOCKS_X - 1 and 1 <= b + d[1] <= BLOCKS_Y - 1
        ]
        if not options:
            options = [((-heading[0], -heading[1]), 1.0)]
        weights = np.array([w for _, w in options])
        heading = options[int(generator.choice(len(options), p=weights / weights.sum()))][0]
        cls = grid_road_class(a) if heading[0] == 0 else grid_road_class(b)
        a, b = a + heading[0], b + heading[1]
        nodes.append((a, b))
        speeds.append(CLASS_SPEED_KMH[cls] / 3.6)
        length += BLOCK_SIZE
    coords = [(grid.x0 + p * BLOCK_SIZE, grid.y0 + q * BLOCK_SIZE) for p, q in nodes]
    return LineString(coords), speeds


def _drive(
    route: LineString, speeds: list[float], pace: float, generator: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Distance along the route and speed (m/s) for every second of the drive."""
    coords = shapely.get_coordinates(route)
    turns = [
        k * BLOCK_SIZE
        for k in range(1, len(coords) - 1)
        if not np.allclose(coords[k] - coords[k - 1], coords[k + 1] - coords[k])
    ]
    turn_at = np.array(turns or [-1e9])
    lo, hi = MIN_SPEED_KMH / 3.6, MAX_SPEED_KMH / 3.6
    s, v = 0.0, float(np.clip(speeds[0] * pace * 0.8, lo, hi))
    distance, speed = np.zeros(DURATION_S + 1), np.zeros(DURATION_S + 1)
    for t in range(DURATION_S + 1):
        distance[t], speed[t] = s, v
        edge = min(int(s // BLOCK_SIZE), len(speeds) - 1)
        target = speeds[edge] * pace
        if np.min(np.abs(turn_at - s - v * 3)) < 45.0:
            target = TURN_SPEED_KMH / 3.6
        v = float(np.clip(v + 0.25 * (target - v) + generator.normal(0.0, 0.35), lo, hi))
        s += v
    return distance, speed


def simulate(vehicle: Vehicle, grid: Grid, index: int) -> Track:
    """Drive one vehicle for half an hour.

    Args:
        vehicle: the device.
        grid: the city frame.
        index: position of the vehicle in the fleet (selects its random stream).

    Returns:
        Its fixes.
    """
    generator = rng(STREAM_GPS, 1 + index)
    route, speeds = _route(grid, vehicle.base, generator)
    distance, speed = _drive(route, speeds, vehicle.pace, generator)
    lo, hi = vehicle.interval_s
    steps = generator.integers(lo, hi + 1, DURATION_S + 1)
    seconds = np.cumsum(np.concatenate([[0], steps]))
    seconds = seconds[seconds <= DURATION_S].astype(np.int64)
    s = distance[seconds]
    here = shapely.get_coordinates(shapely.line_interpolate_point(route, s))
    ahead = shapely.get_coordinates(shapely.line_interpolate_point(route, s + 5.0))
    noisy = here + generator.normal(0.0, 2.5, here.shape)
    lon, lat = grid.lonlat(noisy[:, 0], noisy[:, 1])
    lon0, lat0 = grid.lonlat(here[:, 0], here[:, 1])
    lon1, lat1 = grid.lonlat(ahead[:, 0], ahead[:, 1])
    azimuth, _, _ = Geod(ellps="GRS80").inv(lon0, lat0, lon1, lat1)
    n = len(seconds)
    return Track(
        vehicle=vehicle,
        seconds=seconds,
        lon=lon,
        lat=lat,
        speed_ms=np.clip(
            np.round(speed[seconds] + generator.normal(0.0, 0.15, n), 2),
            REPORTED_SPEED_MS[0],
            REPORTED_SPEED_MS[1],
        ),
        course=np.asarray(np.round(np.mod(azimuth, 360.0), 1), dtype=np.float64),
        ele=np.round(
            grid.elevation(here[:, 0], here[:, 1]) + 1.5 + generator.normal(0.0, 1.0, n), 1
        ),
        hdop=np.round(generator.uniform(0.6, 1.4, n), 1),
        sats=generator.integers(12, 25, n).astype(np.int64),
        battery=np.rint(97.0 - 7.0 * seconds / DURATION_S - generator.uniform(0, 2)).astype(
            np.int64
        ),
    )


def _checksum(body: str) -> str:
    value = 0
    for char in body.encode("ascii"):
        value ^= char
    return f"{value:02X}"


def sentence(body: str) -> str:
    """Frame an NMEA body as ``$body*hh``.

    Args:
        body: the sentence between ``$`` and ``*``.

    Returns:
        The full sentence with its checksum.
    """
    return f"${body}*{_checksum(body)}"


def _angle(value: float, degree_digits: int, hemispheres: str) -> str:
    """``ddmm.mmmmm,H`` (latitude) or ``dddmm.mmmmm,H`` (longitude)."""
    scaled = round(abs(value) * 60 * 100_000)
    degrees, minutes = divmod(scaled, 60 * 100_000)
    hemi = hemispheres[0] if value >= 0 else hemispheres[1]
    return f"{degrees:0{degree_digits}d}{minutes // 100_000:02d}.{minutes % 100_000:05d},{hemi}"


def _clock(unix: int) -> tuple[str, str]:
    """``hhmmss.00`` and ``ddmmyy`` in UTC."""
    day, second = divmod(unix, 86400)
    hh, rest = divmod(second, 3600)
    mm, ss = divmod(rest, 60)
    date = np.datetime64(day, "D").astype(object)
    return f"{hh:02d}{mm:02d}{ss:02d}.00", f"{date.day:02d}{date.month:02d}{date.year % 100:02d}"


def _nmea_vehicle(track: Track, corrupt_at: int, truncate_at: int) -> list[str]:
    rmc, gga = track.vehicle.talkers or ("GN", "GN")
    lines: list[str] = []
    for k in (3, 2, 1):
        clock, date = _clock(track.unix(0) - k)
        lines.append(sentence(f"{rmc}RMC,{clock},V,,,,,,,{date},,,N"))
        lines.append(sentence(f"{gga}GGA,{clock},,,,,0,00,99.99,,,,,,"))
    for k in range(len(track.seconds)):
        clock, date = _clock(track.unix(k))
        lat, lon = _angle(float(track.lat[k]), 2, "NS"), _angle(float(track.lon[k]), 3, "EW")
        knots = float(track.speed_ms[k]) * KNOTS_PER_MS
        first = sentence(
            f"{rmc}RMC,{clock},A,{lat},{lon},{knots:.2f},{track.course[k]:.1f},{date},,,A"
        )
        second = sentence(
            f"{gga}GGA,{clock},{lat},{lon},1,{int(track.sats[k]):02d},"
            f"{track.hdop[k]:.1f},{track.ele[k]:.1f},M,{GEOID_SEPARATION_M:.1f},M,,"
        )
        lines += [first, second]
        if k == corrupt_at:
            lines.append(_corrupt(first))
        if k == truncate_at:
            lines.append(second[: len(second) // 2])
    return lines


def _corrupt(line: str) -> str:
    """Change one digit of the time field and keep the old checksum (line noise)."""
    at = line.index(",") + 4
    digit = str((int(line[at]) + 1) % 10)
    return line[:at] + digit + line[at + 1 :]


def nmea_text(tracks: list[Track]) -> str:
    """The NMEA stream of the vehicles that have talker IDs (CRLF line ends).

    Args:
        tracks: all tracks; those without talkers are skipped.

    Returns:
        The file text.
    """
    lines: list[str] = []
    with_talkers = [t for t in tracks if t.vehicle.talkers]
    for n, track in enumerate(with_talkers):
        lines += _nmea_vehicle(track, corrupt_at=100 + 150 * n, truncate_at=400 + 200 * n)
    return "".join(line + "\r\n" for line in lines)


def _iso(unix: int) -> str:
    day, second = divmod(unix, 86400)
    date = np.datetime64(day, "D")
    return f"{date}T{second // 3600:02d}:{second % 3600 // 60:02d}:{second % 60:02d}Z"


def gpx_text(tracks: list[Track]) -> str:
    """A GPX 1.1 document with one ``<trk>`` per vehicle (speed/course as Garmin extensions).

    Args:
        tracks: the fleet's tracks.

    Returns:
        The document text.
    """
    start = int(GPS_START.timestamp())
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        (
            f'<gpx version="1.1" creator="{GPX_CREATOR}" '
            'xmlns="http://www.topografix.com/GPX/1/1" '
            'xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v2" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:schemaLocation="http://www.topografix.com/GPX/1/1 '
            'http://www.topografix.com/GPX/1/1/gpx.xsd">'
        ),
        (
            f"  <metadata><name>云浮演示车队 Yunfu demo fleet</name><time>{_iso(start)}</time>"
            "</metadata>"
        ),
    ]
    for track in tracks:
        v = track.vehicle
        out.append(
            f"  <trk><name>{escape(v.device_id)}</name><type>{escape(v.kind)}</type><trkseg>"
        )
        for k in range(len(track.seconds)):
            out.append(
                f'    <trkpt lat="{track.lat[k]:.7f}" lon="{track.lon[k]:.7f}">'
                f"<ele>{track.ele[k]:.1f}</ele><time>{_iso(track.unix(k))}</time>"
                f"<sat>{int(track.sats[k])}</sat><hdop>{track.hdop[k]:.1f}</hdop>"
                "<extensions><gpxtpx:TrackPointExtension>"
                f"<gpxtpx:speed>{track.speed_ms[k]:.2f}</gpxtpx:speed>"
                f"<gpxtpx:course>{track.course[k]:.1f}</gpxtpx:course>"
                "</gpxtpx:TrackPointExtension></extensions></trkpt>"
            )
        out.append("  </trkseg></trk>")
    out.append("</gpx>")
    return "\n".join(out) + "\n"


def osmand_text(tracks: list[Track]) -> str:
    """One OsmAnd/Traccar-client request line per fix (speed in knots), all vehicles by time.

    A few requests are repeated later (client retries, ``OSMAND_DUPLICATES``) and the
    ``OSMAND_JUNK`` lines are spread through the log.

    Args:
        tracks: the fleet's tracks.

    Returns:
        The log text.
    """
    entries: list[tuple[int, str, str]] = []
    for track in tracks:
        v = track.vehicle
        for k in range(len(track.seconds)):
            knots = float(track.speed_ms[k]) * KNOTS_PER_MS
            line = (
                f"GET /?id={v.device_id}&lat={track.lat[k]:.6f}&lon={track.lon[k]:.6f}"
                f"&timestamp={track.unix(k)}&speed={knots:.1f}&bearing={track.course[k]:.1f}"
                f"&altitude={track.ele[k]:.1f}&hdop={track.hdop[k]:.1f}"
                f"&batt={int(track.battery[k])}"
            )
            entries.append((track.unix(k), v.device_id, line))
    generator = rng(STREAM_GPS, 99)
    for k in np.sort(generator.choice(len(entries), OSMAND_DUPLICATES, replace=False)):
        unix, device, line = entries[int(k)]
        entries.append((unix + int(generator.integers(5, 90)), device, line))
    entries.sort()
    lines = [line for _, _, line in entries]
    step = len(lines) // (len(OSMAND_JUNK) + 1)
    for n, junk in enumerate(OSMAND_JUNK, start=1):
        lines.insert(n * step + n - 1, junk)
    return "".join(line + "\n" for line in lines)
