"""The GPS benchmark's reference fleet (seeded) and its requests: every device's fix at
every step, as CSV batch bodies, COPY chunks and OsmAnd URLs (``benchmarks/gps.py`` times
them; the fleet is described there)."""

from __future__ import annotations

import datetime as dt
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from features import EXTENT
from ingest import BenchmarkError

from spatial.gps import store

SEED = 20_261_201
DEVICES, STEPS = 500, 400
SMOKE_DEVICES, SMOKE_STEPS = 100, 100
INTERVAL_S = 5
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
"""The first fix's time (every fix must be in the past for the store's checks)."""
MAX_MS = 25.0
"""Top speed: 90 km/h."""
LIMIT_KMH = 100.0
"""No step of the fleet may imply more (checked after rounding the coordinates)."""
MARGIN = 0.004
"""Degrees kept from the extent's edges (devices turn back there)."""
M_PER_DEG = 111_320.0
STOP_CHANCE = 0.01
"""Chance per step that a moving device stops (for 6-60 steps)."""
FENCES = 20
DWELL_S = 120

BATCH_STEPS = 4
"""Fixes of each device per batch request: 4 x 500 devices = 2,000 rows."""
CSV_HEADER = "device,time,lat,lon,speed,course"


@dataclass(frozen=True)
class Fleet:
    """Every device's fix at every step: arrays of shape (steps, devices)."""

    devices: list[str]
    seconds: npt.NDArray[np.int64]
    """Unix seconds."""
    lon: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]
    speed: npt.NDArray[np.float64]
    """m/s."""
    course: npt.NDArray[np.float64]

    @property
    def count(self) -> int:
        """The number of positions."""
        return int(self.seconds.size)

    @property
    def steps(self) -> int:
        """Fixes per device."""
        return int(self.seconds.shape[0])


def build_fleet(devices: int = DEVICES, steps: int = STEPS) -> Fleet:
    """The seeded fleet; every step is checked to stay under LIMIT_KMH."""
    rng = np.random.default_rng(SEED)
    west, south = EXTENT[0] + MARGIN, EXTENT[1] + MARGIN
    east, north = EXTENT[2] - MARGIN, EXTENT[3] - MARGIN
    lon, lat = rng.uniform(west, east, devices), rng.uniform(south, north, devices)
    heading = rng.uniform(0, 360, devices)
    cruise = rng.uniform(6, 20, devices)  # each device's usual speed, 22-72 km/h
    speed = cruise * rng.uniform(0.5, 1.0, devices)
    stopped = np.zeros(devices, dtype=np.int64)
    offset = rng.integers(0, INTERVAL_S, devices)
    shape = (steps, devices)
    out = {name: np.empty(shape) for name in ("lon", "lat", "speed", "course")}
    for step in range(steps):
        out["lon"][step], out["lat"][step] = lon, lat
        out["speed"][step], out["course"][step] = speed, heading % 360
        starting = (stopped == 0) & (rng.random(devices) < STOP_CHANCE)
        stopped = np.where(starting, rng.integers(6, 61, devices), np.maximum(stopped - 1, 0))
        speed = np.clip(speed + 0.15 * (cruise - speed) + rng.normal(0, 1.2, devices), 0, MAX_MS)
        speed = np.where(stopped > 0, 0.0, speed)
        heading = heading + rng.normal(0, 10, devices)
        metres, angle = speed * INTERVAL_S, np.radians(heading)
        lat_next = lat + metres * np.cos(angle) / M_PER_DEG
        lon_next = lon + metres * np.sin(angle) / (M_PER_DEG * np.cos(np.radians(lat)))
        # Turn back at the edges: mirror the position and the heading.
        for low, high, axis in ((west, east, "x"), (south, north, "y")):
            value = lon_next if axis == "x" else lat_next
            out_low, out_high = value < low, value > high
            value = np.where(out_low, 2 * low - value, np.where(out_high, 2 * high - value, value))
            flipped = -heading if axis == "x" else 180 - heading
            heading = np.where(out_low | out_high, flipped, heading)
            if axis == "x":
                lon_next = value
            else:
                lat_next = value
        lon, lat = lon_next, lat_next
    seconds = (
        int(START.timestamp()) + offset[np.newaxis, :] + INTERVAL_S * np.arange(steps)[:, None]
    )
    fleet = Fleet(
        devices=[f"bench-{i:04d}" for i in range(devices)], seconds=seconds.astype(np.int64),
        lon=np.round(out["lon"], 6), lat=np.round(out["lat"], 6),
        speed=np.round(out["speed"], 2), course=np.round(out["course"], 1),
    )  # fmt: skip
    fastest = fastest_kmh(fleet)
    if fastest >= LIMIT_KMH:
        msg = f"the fleet moves at {fastest:.0f} km/h somewhere (limit {LIMIT_KMH:g})"
        raise BenchmarkError(msg)
    return fleet


def fastest_kmh(fleet: Fleet) -> float:
    """The highest speed between consecutive fixes, by the store's haversine."""
    p1, p2 = np.radians(fleet.lat[:-1]), np.radians(fleet.lat[1:])
    dl = np.radians(fleet.lon[1:] - fleet.lon[:-1])
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    metres = 2 * store.EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a)))
    return float((metres / INTERVAL_S).max() * 3.6) if metres.size else 0.0


def fence_squares(count: int = FENCES) -> list[dict[str, Any]]:
    """Seeded squares of 0.02-0.04° inside the extent, as GeoJSON polygons."""
    rng = np.random.default_rng(SEED + 1)
    squares = []
    for _ in range(count):
        side = float(rng.uniform(0.02, 0.04))
        x = float(rng.uniform(EXTENT[0], EXTENT[2] - side))
        y = float(rng.uniform(EXTENT[1], EXTENT[3] - side))
        ring = [[x, y], [x + side, y], [x + side, y + side], [x, y + side], [x, y]]
        squares.append({"type": "Polygon", "coordinates": [[[round(a, 6), round(b, 6)]
                                                             for a, b in ring]]})  # fmt: skip
    return squares


def fleet_rows(
    fleet: Fleet, steps: range, devices: range | None = None
) -> Iterator[tuple[Any, ...]]:
    """(device, seconds, lon, lat, speed, course) of the steps, each step's devices in turn."""
    for step in steps:
        for d in devices if devices is not None else range(len(fleet.devices)):
            yield (fleet.devices[d], int(fleet.seconds[step, d]), float(fleet.lon[step, d]),
                   float(fleet.lat[step, d]), float(fleet.speed[step, d]),
                   float(fleet.course[step, d]))  # fmt: skip


def _chunks(fleet: Fleet) -> list[range]:
    return [range(s, min(s + BATCH_STEPS, fleet.steps)) for s in range(0, fleet.steps, BATCH_STEPS)]


def csv_batches(fleet: Fleet) -> list[bytes]:
    """The fleet as CSV request bodies, BATCH_STEPS fixes of every device each."""
    stamp = _stamps("%Y-%m-%dT%H:%M:%SZ")
    bodies = []
    for steps in _chunks(fleet):
        lines = [CSV_HEADER]
        lines.extend(
            f"{device},{stamp(s)},{lat:.6f},{lon:.6f},{speed:.2f},{course:.1f}"
            for device, s, lon, lat, speed, course in fleet_rows(fleet, steps)
        )
        bodies.append(("\n".join(lines) + "\n").encode())
    return bodies


def copy_chunks(fleet: Fleet) -> list[bytes]:
    """The same rows as COPY text, one chunk per batch (geometry as hex EWKB)."""
    stamp = _stamps("%Y-%m-%d %H:%M:%S+00")
    point = struct.Struct("<BIIdd")
    chunks = []
    for steps in _chunks(fleet):
        chunks.append("".join(
            f"{device}\t{stamp(s)}\t{point.pack(1, 0x20000001, 4326, lon, lat).hex()}\t"
            f"{speed:.2f}\t{course:.1f}\tbatch\n"
            for device, s, lon, lat, speed, course in fleet_rows(fleet, steps)
        ).encode())  # fmt: skip
    return chunks


def _stamps(pattern: str) -> Any:
    cache: dict[int, str] = {}

    def stamp(seconds: int) -> str:
        if seconds not in cache:
            cache[seconds] = time.strftime(pattern, time.gmtime(seconds))
        return cache[seconds]

    return stamp


def osmand_path(device: str, seconds: int, lon: float, lat: float) -> str:
    return f"/gps/osmand?id={device}&lat={lat:.6f}&lon={lon:.6f}&timestamp={seconds}"


def osmand_paths(fleet: Fleet) -> tuple[list[str], int]:
    """Every fix as an OsmAnd URL: the first half of the devices in time order, then the
    second half; and where the second half starts (wrk's second thread starts there)."""
    half = len(fleet.devices) // 2
    paths: list[str] = []
    for group in (range(half), range(half, len(fleet.devices))):
        rows = fleet_rows(fleet, range(fleet.steps), group)
        paths.extend(osmand_path(d, s, lon, lat) for d, s, lon, lat, _, _ in rows)
    return paths, half * fleet.steps
