"""The demo city's sensors: its station collections as SensorThings Things, datastreams on
them, and the last 48 hours of readings, so the water and environment maps and the alarms
show something.

- every water gauge (``water_gauges``) reads its water level (m), every third one also
  the rainfall (mm per hour); a storm passed over the city about six hours ago, the
  rivers rose after it, and two gauges are above their warning level, one of them above
  danger;
- every air station (``env_stations``, kind ``air``) reads the AQI and PM2.5; the stone
  industry park's air turned heavily polluted in the last hours.

The readings are hourly and deterministic (a seeded generator; only their times follow
the clock: the last one is at the current hour). They go in through the observation
store (:func:`spatial.sta.observations.store`), so their alarms are raised as any
reading's. Loading again adds only the hours since the last reading of each datastream.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from spatial.settings import Settings
from spatial.sta import rules, things
from spatial.sta.observations import Reading, store

HOURS = 48
"""Hours of readings a new datastream gets."""
SEED = 26
OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
DEPARTMENTS = {"water": ("水利", "Water resources"),
               "environment": ("生态环境", "Environmental protection")}  # fmt: skip
"""The departments whose datastreams the demo's are (made when missing)."""
HIGH_GAUGES = {"YF-SW-02": 1.3, "YF-SW-05": 0.4}
"""Gauges whose water ends this far (m) above their warning level (danger is 1 m above)."""
RAIN_EVERY = 3
"""Every third gauge has a rain gauge."""
POLLUTED = "YF-AQ-07"
"""The station whose air turns heavily polluted."""
SILENT = {"maintenance": 6, "offline": 30}
"""A station of this status stopped reading this many hours ago."""


@dataclass(frozen=True)
class Kind:
    """An observed property, its unit and the sensor that reads it."""

    property: str
    definition: str
    unit: dict[str, str]
    sensor: str
    department: str


WATER_LEVEL = Kind(
    "Water level", "urn:spatial:observed-property:water-level",
    {"name": "metre", "symbol": "m", "definition": "http://qudt.org/vocab/unit/M"},
    "雷达水位计 Radar water level gauge", "water",
)  # fmt: skip
RAINFALL = Kind(
    "Rainfall", "urn:spatial:observed-property:rainfall",
    {"name": "millimetre", "symbol": "mm", "definition": "http://qudt.org/vocab/unit/MilliM"},
    "翻斗式雨量计 Tipping-bucket rain gauge", "water",
)  # fmt: skip
AQI = Kind(
    "AQI", "urn:spatial:observed-property:aqi-hj633",
    {"name": "air quality index (HJ 633-2012)", "symbol": "AQI",
     "definition": "urn:spatial:unit:aqi"},
    "空气质量自动监测仪 Air quality analyser", "environment",
)  # fmt: skip
PM25 = Kind(
    "PM2.5", "urn:spatial:observed-property:pm25",
    {"name": "microgram per cubic metre", "symbol": "μg/m³",
     "definition": "http://qudt.org/vocab/unit/MicroGM-PER-M3"},
    "空气质量自动监测仪 Air quality analyser", "environment",
)  # fmt: skip

AQI_BREAKS = (0, 50, 100, 150, 200, 300, 400, 500)
PM25_BREAKS = (0, 35, 75, 115, 150, 250, 350, 500)
"""HJ 633-2012: the IAQI breakpoints and PM2.5's (24 h mean, μg/m³) that match them."""


def load(
    conn: psycopg.Connection[Any], settings: Settings, *, now: dt.datetime | None = None
) -> int:
    """Link the stations as Things, make the datastreams, store the readings missing.

    The connection must not be in a transaction (each step has its own).

    Returns:
        How many readings were stored.
    """
    rules.install(conn)
    for department, (name, name_en) in DEPARTMENTS.items():
        conn.execute("INSERT INTO platform.departments (id, name, name_en) VALUES (%s, %s, %s) "
                     "ON CONFLICT (id) DO NOTHING", (department, name, name_en))  # fmt: skip
    things.link(conn, "water_gauges", name_field="name")
    things.link(conn, "env_stations", name_field="name")
    hour = (now or dt.datetime.now(dt.UTC)).replace(minute=0, second=0, microsecond=0)
    series = _water(conn) + _air(conn)
    readings: list[Reading] = []
    for stream, values, silent in series:
        datastream, last = _datastream(conn, *stream)
        readings += _readings(datastream, last, hour, values, silent)
    return store(conn, readings, settings=settings.sta, now=hour).stored


Series = tuple[tuple[int, str, Kind], Callable[[np.ndarray], np.ndarray], int]
"""(thing, datastream name, kind), the values at hours before now, hours silent."""


def _water(conn: psycopg.Connection[Any]) -> list[Series]:
    """The gauges' water levels and some gauges' rainfall."""
    rows = conn.execute(
        "SELECT t.id, t.name, t.feature_key, g.status, "
        "sta.feature_number('water_gauges', t.feature_key, 'warning_level_m') "
        "FROM sta.things t JOIN layers.water_gauges g ON g.gauge_id::text = t.feature_key "
        "WHERE t.collection = 'water_gauges' AND NOT t.retired ORDER BY t.feature_key"
    ).fetchall()  # fmt: skip
    generator = np.random.default_rng(SEED)
    found: list[Series] = []
    for n, (thing, name, key, status, warning) in enumerate(rows):
        below = float(generator.uniform(1.2, 2.4))
        rise = float(generator.uniform(0.3, 0.8))
        noise = generator.normal(0.0, 0.015, HOURS + 1)
        end = HIGH_GAUGES.get(key)
        if end is not None:
            below, rise = 1.6, 1.6 + end
        base = (warning or 50.0) - below

        def level(h: np.ndarray, base: float = base, rise: float = rise,
                  noise: np.ndarray = noise) -> np.ndarray:  # fmt: skip
            # The river rises a few hours after the storm (about 6 h ago) and stays up; at
            # the last hour it is ``rise`` above its base.
            risen = _sigmoid(h, 4.0, 1.5) / _sigmoid(np.zeros(1), 4.0, 1.5)
            return np.asarray(np.round(base + rise * risen + noise[h], 2))

        silent = SILENT.get(status, 0)
        found.append(((thing, f"{name} 水位 Water level", WATER_LEVEL), level, silent))
        if n % RAIN_EVERY == 0:
            peak = float(generator.uniform(5.0, 9.0))

            def rain(h: np.ndarray, peak: float = peak) -> np.ndarray:
                storm = peak * np.exp(-(((h - 6.0) / 2.5) ** 2))
                return np.asarray(np.round(np.where(storm < 0.2, 0.0, storm), 1))

            found.append(((thing, f"{name} 雨量 Rainfall", RAINFALL), rain, silent))
    return found


def _air(conn: psycopg.Connection[Any]) -> list[Series]:
    """The air stations' AQI, and PM2.5 to match."""
    rows = conn.execute(
        "SELECT t.id, t.name, t.feature_key, s.status FROM sta.things t "
        "JOIN layers.env_stations s ON s.station_id::text = t.feature_key "
        "WHERE t.collection = 'env_stations' AND NOT t.retired AND s.kind = 'air' "
        "ORDER BY t.feature_key"
    ).fetchall()  # fmt: skip
    generator = np.random.default_rng(SEED + 1)
    found: list[Series] = []
    for thing, name, key, status in rows:
        base = float(generator.uniform(35.0, 80.0))
        noise = generator.normal(0.0, 4.0, HOURS + 1)
        episode = 175.0 if key == POLLUTED else 0.0

        def aqi(h: np.ndarray, base: float = base, noise: np.ndarray = noise,
                episode: float = episode) -> np.ndarray:  # fmt: skip
            daily = 15.0 * np.sin((h + 6.0) / 24.0 * 2 * math.pi)  # worst in the morning
            smog = episode * _sigmoid(h, 8.0, 2.0)
            return np.asarray(np.clip(np.round(base + daily + smog + noise[h]), 5, 500))

        def pm25(h: np.ndarray, aqi: Callable[[np.ndarray], np.ndarray] = aqi) -> np.ndarray:
            return np.asarray(np.round(np.interp(aqi(h), AQI_BREAKS, PM25_BREAKS), 1))

        silent = SILENT.get(status, 0)
        found.append(((thing, f"{name} AQI", AQI), aqi, silent))
        found.append(((thing, f"{name} PM2.5", PM25), pm25, silent))
    return found


def _sigmoid(h: np.ndarray, middle: float, width: float) -> np.ndarray:
    """From 1 (recent hours) down to 0 (long ago), half way at ``middle`` hours ago."""
    return np.asarray(1 / (1 + np.exp((h - middle) / width)))


def _datastream(
    conn: psycopg.Connection[Any], thing: int, name: str, kind: Kind
) -> tuple[int, dt.datetime | None]:
    """The thing's datastream of this kind (made when missing) and its last reading's time."""
    with conn.transaction():
        sensor = _entity(conn, _SENSOR, (kind.sensor, kind.sensor, kind.department))
        prop = _entity(conn, _PROPERTY, (kind.property, kind.definition, kind.department))
        row = conn.execute(
            "SELECT id, phenomenon_last FROM sta.datastreams "
            "WHERE thing_id = %s AND observed_property_id = %s ORDER BY id LIMIT 1",
            (thing, prop),
        ).fetchone()
        if row is not None:
            return int(row[0]), row[1]
        made = conn.execute(
            "INSERT INTO sta.datastreams (name, description, observation_type, unit, thing_id, "
            "sensor_id, observed_property_id, department) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (name, f"{kind.property} ({kind.unit['symbol']})", OM_MEASUREMENT, Jsonb(kind.unit),
             thing, sensor, prop, kind.department),
        ).fetchone()  # fmt: skip
        assert made is not None  # noqa: S101 - INSERT ... RETURNING
        return int(made[0]), None


_SENSOR = """
WITH found AS (SELECT id FROM sta.sensors WHERE name = %(name)s ORDER BY id LIMIT 1),
made AS (
    INSERT INTO sta.sensors (name, description, encoding_type, metadata, department)
    SELECT %(name)s, %(name)s, 'text/plain', %(what)s, %(department)s
    WHERE NOT EXISTS (SELECT 1 FROM found) RETURNING id
)
SELECT id FROM found UNION ALL SELECT id FROM made
"""
_PROPERTY = """
WITH found AS (SELECT id FROM sta.observed_properties WHERE name = %(name)s ORDER BY id LIMIT 1),
made AS (
    INSERT INTO sta.observed_properties (name, definition, description, department)
    SELECT %(name)s, %(what)s, %(name)s, %(department)s
    WHERE NOT EXISTS (SELECT 1 FROM found) RETURNING id
)
SELECT id FROM found UNION ALL SELECT id FROM made
"""


def _entity(conn: psycopg.Connection[Any], statement: str, values: tuple[str, str, str]) -> int:
    """The demo's sensor or observed property of this name (made when missing)."""
    name, what, department = values
    row = conn.execute(statement, {"name": name, "what": what,
                                   "department": department}).fetchone()  # fmt: skip
    assert row is not None  # noqa: S101 - one of the two parts answers
    return int(row[0])


def _readings(
    datastream: int, last: dt.datetime | None, hour: dt.datetime,
    values: Callable[[np.ndarray], np.ndarray], silent: int,
) -> list[Reading]:  # fmt: skip
    """The hourly readings after ``last`` (the last 48 hours at most) up to ``hour`` less
    the hours the station has been silent."""
    hours = np.arange(HOURS, silent - 1, -1)
    times = [hour - dt.timedelta(hours=int(h)) for h in hours]
    keep = [i for i, t in enumerate(times) if last is None or t > last]
    if not keep:
        return []
    got = values(hours[keep])
    return [Reading(datastream, times[i].isoformat(), float(v))
            for i, v in zip(keep, got, strict=True)]  # fmt: skip
