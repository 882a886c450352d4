"""The analysts' sensor calls on :class:`spatial.Client`: stations and their latest
readings, a datastream's readings over time, and the alarms (``/alarms``,
``/sta/v1.1``: :mod:`api.routers.alarms`, :mod:`api.routers.sta`).

The stations are the Things of a station collection (``water_gauges``, ``env_stations``):
:meth:`Sensors.stations` gives one row per station with the latest value, time and level
of each observed property, :meth:`Sensors.readings` a datastream's observations as a time
series (UTC), :meth:`Sensors.alarms` the alarms raised by the thresholds of
``layers/alarms/*.yaml``, and :meth:`Sensors.acknowledge` records that you saw one.

What an answer says beside its rows is in the frame's ``attrs`` as plain JSON values
(lists of dicts), as for the command calls: ``pd.DataFrame(frame.attrs["datastreams"])``
makes a table of them.

Who sees a station, its readings and its alarms is who may read its feature (the
collection's readers, with their row filters) and the members of its datastreams'
department; acknowledging takes a signed-in member of that department or an admin.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from spatial.client.routes import geoframe
from spatial.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    import geopandas as gpd
    import httpx

STA = "/sta/v1.1"
"""The SensorThings service root."""
READINGS_PAGE = 10_000
"""Observations per request of :meth:`Sensors.readings` (the server's ``$top`` maximum)."""
MAX_ALARMS = 1000
"""Alarms in one answer of ``GET /alarms`` (the server's maximum)."""
STATION_COLUMNS = ("key", "thing", "name", "level")
"""A station's first columns (then its observed properties', then its point)."""
SUFFIXES = ("_time", "_level", "_datastream")
"""Beside each observed property's latest value: its time, level and datastream."""
ALARM_COLUMNS = ("id", "level", "state", "name", "feature_key", "collection", "property",
                 "raised_at", "raised_value", "threshold", "unit", "cleared_at",
                 "cleared_value", "acknowledged_by", "acknowledged_at", "subsystem", "rule",
                 "department", "thing", "datastream", "datastream_name")  # fmt: skip
"""An alarm's columns, in order."""
_ALARM_TIMES = ("raised_at", "cleared_at", "acknowledged_at")


class _Requests(Protocol):
    def request(self, method: str, path_or_url: str, **kwargs: Any) -> httpx.Response: ...

    def _bar(self, total: float | None, description: str, *, big: bool) -> Any: ...


def _utc(value: Any, name: str) -> pd.Timestamp:
    """A moment as a UTC timestamp: a datetime or pandas Timestamp (naive meaning UTC), a
    date (its first moment, UTC) or ISO 8601 text."""
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        msg = f"{name} must be a datetime, a date or ISO 8601 text, not {value!r}"
        raise InvalidInputError(msg) from exc
    if pd.isna(stamp):
        msg = f"{name} must be a moment, not {value!r}"
        raise InvalidInputError(msg)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _literal(stamp: pd.Timestamp) -> str:
    """An OData ``DateTimeOffset`` literal (UTC, microseconds)."""
    return str(stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def _quoted(text: str) -> str:
    """An OData string literal."""
    return "'" + text.replace("'", "''") + "'"


def _times(values: pd.Series) -> pd.Series:
    """ISO 8601 text (or None) as UTC timestamps, in microseconds."""
    return pd.to_datetime(values, utc=True, format="ISO8601").dt.as_unit("us")


def _thresholds(levels: list[dict[str, Any]] | None) -> dict[str, float | None]:
    """A rule's levels as ``{level: above}``, from the lowest (None: the floor band)."""
    return {str(x["level"]): x.get("above") for x in levels or []}


def _station_rows(
    features: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """The status features as station features with a column set per observed property,
    their datastreams as dicts, and the properties in order of appearance."""
    stations: list[dict[str, Any]] = []
    streams: list[dict[str, Any]] = []
    properties: list[str] = []
    for feature in features:
        said = feature.get("properties") or {}
        row: dict[str, Any] = {"key": feature.get("id"), "thing": said.get("thing"),
                               "name": said.get("name"), "level": said.get("level")}  # fmt: skip
        for ds in said.get("datastreams") or []:
            prop = str(ds.get("property"))
            streams.append({
                "key": row["key"], "thing": row["thing"], "station": row["name"],
                "datastream": ds.get("id"), "name": ds.get("name"), "property": prop,
                "unit": ds.get("unit"), "value": ds.get("value"), "time": ds.get("time"),
                "level": ds.get("level"), "thresholds": _thresholds(ds.get("thresholds")),
                "windows": [{**w, "thresholds": _thresholds(w.get("thresholds"))}
                            for w in ds.get("windows") or []],
            })  # fmt: skip
            if prop not in properties:
                properties.append(prop)
            if prop in row:  # a second datastream of the property: in attrs only
                continue
            row[prop] = ds.get("value")
            row.update({f"{prop}_time": ds.get("time"), f"{prop}_level": ds.get("level"),
                        f"{prop}_datastream": ds.get("id")})  # fmt: skip
        stations.append({"type": "Feature", "geometry": feature.get("geometry"),
                         "properties": row})  # fmt: skip
    return stations, streams, properties


class Sensors:
    """Sensor stations, readings and alarms; mixed into :class:`spatial.Client`."""

    def stations(self: _Requests, collection: str) -> gpd.GeoDataFrame:
        """The stations of a station collection with their latest readings
        (``GET /alarms/status``), one row per station (EPSG:4326 points), sorted by key.

        The columns: ``key`` (the station's feature key, e.g. ``YF-SW-02``), ``thing``
        (its SensorThings id), ``name``, ``level`` (its worst level now: an alarm level
        before a band, then the higher; None when every reading is below every
        threshold or it has no reading), then for each observed property (e.g.
        ``Water level``, ``Rainfall``; ``AQI``, ``PM2.5``), in order of appearance: the
        latest value (a column named as the property), ``<property>_time`` (UTC),
        ``<property>_level`` and ``<property>_datastream`` (its id, for
        :meth:`readings`). A station without a datastream of a property has NaN/None
        there.

        ``attrs["datastreams"]`` lists every datastream (also a second one of a property
        on the same station), as dicts: ``key``, ``thing``, ``station``,
        ``datastream``, ``name``, ``property``, ``unit``, ``value``, ``time`` (ISO 8601
        text), ``level``, ``thresholds`` (``{level: above}`` from the lowest: the level
        starts strictly above that value, None for the band every reading is in) and
        ``windows`` (the rules on sums over a window: ``rule``, ``hours``, ``value``,
        ``level``, ``thresholds``). ``attrs["collection"]`` names the collection.

        Args:
            collection: A station collection, e.g. ``"water_gauges"`` or
                ``"env_stations"``.

        Raises:
            NotFoundError: no such collection, or not one you may read.

        Example:
            >>> gauges = c.stations("water_gauges")
            >>> gauges[["key", "name", "level", "Water level", "Water level_time"]]
            >>> streams = pd.DataFrame(gauges.attrs["datastreams"])
            >>> streams.loc[streams.key == "YF-SW-02", "thresholds"].iloc[0]
            {'warning': 61.55, 'danger': 62.55}
        """
        answer = self.request("GET", "/alarms/status", params={"collection": collection}).json()
        features, streams, properties = _station_rows(answer.get("features") or [])
        columns = [*STATION_COLUMNS,
                   *(f"{p}{s}" for p in properties for s in ("", *SUFFIXES))]  # fmt: skip
        frame = geoframe(features, columns)
        for column in ("level", *(f"{p}_level" for p in properties)):
            frame[column] = frame[column].astype("str")  # text, NaN where none
        for prop in properties:
            frame[prop] = pd.to_numeric(frame[prop], errors="coerce")
            frame[f"{prop}_time"] = _times(frame[f"{prop}_time"])
            frame[f"{prop}_datastream"] = frame[f"{prop}_datastream"].astype("Int64")
        frame["thing"] = frame["thing"].astype("Int64")
        frame.attrs["collection"] = collection
        frame.attrs["datastreams"] = streams
        return frame

    def readings(
        self: _Requests, datastream: int | str, start: Any = None, end: Any = None, *,
        property: str | None = None,  # noqa: A002 - the observed property, as STA names it
    ) -> pd.DataFrame:  # fmt: skip
        """The readings (observations) of a datastream, oldest first, from the
        SensorThings API (``/sta/v1.1/Datastreams({id})/Observations``, filtered on
        ``phenomenonTime``, 10,000 a request following ``@iot.nextLink``).

        Args:
            datastream: The datastream's id (e.g. a ``<property>_datastream`` of
                :meth:`stations`), or a station: its feature key (``"YF-SW-02"``) or its
                Thing's name, with ``property`` when it has several datastreams.
            start: The first moment (included): a datetime or Timestamp (naive meaning
                UTC), a date (its first moment, UTC) or ISO 8601 text [default: the
                first reading].
            end: The last moment (included), as ``start`` [default: the latest reading].
            property: With a station: the observed property of the datastream, e.g.
                ``"Water level"`` (its name, any case, or its definition URI).

        Returns:
            A DataFrame indexed by ``time`` (the phenomenon time, UTC; the start of an
            interval) with the ``result`` column (numbers as floats). ``attrs``:
            ``datastream`` (the id), ``name``, ``property``, ``unit`` (its symbol),
            ``thing``, ``station`` (the Thing's name) and ``key`` (its feature key, when
            it is a station of a collection).

        Raises:
            NotFoundError: no such datastream or station, or not one you may read.
            InvalidInputError: a station with several datastreams and no ``property``,
                or none of that property; ``start``/``end`` that are not moments, or
                ``start`` after ``end``.

        Example:
            >>> level = c.readings("YF-SW-02", property="Water level",
            ...                    start=pd.Timestamp.now("UTC") - pd.Timedelta("24h"))
            >>> level["result"].plot(title=f"{level.attrs['station']} ({level.attrs['unit']})")
        """
        first = None if start is None else _utc(start, "start")
        last = None if end is None else _utc(end, "end")
        if first is not None and last is not None and first > last:
            msg = f"start {first.isoformat()} is after end {last.isoformat()}"
            raise InvalidInputError(msg)
        meta = _datastream(self, datastream, property)
        clauses = [f"phenomenonTime {op} {_literal(t)}"
                   for op, t in (("ge", first), ("le", last)) if t is not None]  # fmt: skip
        params = {"$orderby": "phenomenonTime asc", "$top": str(READINGS_PAGE),
                  "$select": "phenomenonTime,result", "$count": "true"}  # fmt: skip
        if clauses:
            params["$filter"] = " and ".join(clauses)
        path = f"{STA}/Datastreams({meta['datastream']})/Observations"
        page = self.request("GET", path, params=params).json()
        total = page.get("@iot.count")
        bar = self._bar(total, str(meta["name"]), big=(total or 0) > READINGS_PAGE)
        times: list[str] = []
        results: list[Any] = []
        try:
            while True:
                rows = page.get("value") or []
                times += [str(o["phenomenonTime"]).split("/", 1)[0] for o in rows]
                results += [o.get("result") for o in rows]
                bar.update(len(rows))
                url = page.get("@iot.nextLink")
                if not url:
                    break
                page = self.request("GET", url).json()  # the link has the query
        finally:
            bar.close()
        index = pd.DatetimeIndex(_times(pd.Series(times, dtype=object)), name="time")
        column = pd.Series(results, index=index, dtype=object)
        numeric = pd.to_numeric(column, errors="coerce")
        ok = column.isna() | numeric.notna()
        frame = pd.DataFrame({"result": numeric.astype(float) if ok.all() else column})
        frame.attrs.update(meta)
        return frame

    def alarms(
        self: _Requests, state: str | None = "active", subsystem: str | None = None,
        collection: str | None = None, level: str | None = None, since: Any = None,
    ) -> pd.DataFrame:  # fmt: skip
        """The alarms you may see (``GET /alarms``), active first, then newest first.

        One row per alarm: ``id`` (to :meth:`acknowledge`), ``level``, ``state``
        (``active`` or ``cleared``), ``name`` (the station), ``feature_key``,
        ``collection``, ``property``, ``raised_at`` (UTC), ``raised_value`` (the
        measure that raised it), ``threshold`` (its level's), ``unit``, ``cleared_at``,
        ``cleared_value``, ``acknowledged_by``, ``acknowledged_at``, ``subsystem``
        (``water``, ``environment``), ``rule`` (``<subsystem>/<rule id>``),
        ``department``, ``thing``, ``datastream`` (its id, for :meth:`readings`),
        ``datastream_name``. An alarm keeps its level for its life: an escalation clears
        it and raises another.

        Args:
            state: ``"active"``, ``"cleared"``, or None for both.
            subsystem: Only this subsystem's, e.g. ``"water"``.
            collection: Only those of this collection's stations, e.g.
                ``"water_gauges"``.
            level: Only those of this level, e.g. ``"danger"``.
            since: Cleared alarms raised or cleared since this moment (as
                :meth:`readings`' ``start``) [default: the last 24 hours]; active ones
                are always listed.

        Raises:
            InvalidInputError: an unknown state, or ``since`` not a moment.

        Example:
            >>> active = c.alarms(subsystem="water")
            >>> active[["id", "name", "level", "raised_value", "threshold", "raised_at"]]
        """
        params = {"state": state, "subsystem": subsystem, "collection": collection,
                  "level": level, "limit": MAX_ALARMS,
                  "since": None if since is None else _utc(since, "since").isoformat()}  # fmt: skip
        answer = self.request("GET", "/alarms", params={k: v for k, v in params.items()
                                                         if v is not None}).json()  # fmt: skip
        rows = answer.get("alarms") or []
        more = [k for k in (rows[0] if rows else {}) if k not in ALARM_COLUMNS]  # a newer server's
        frame = pd.DataFrame(rows, columns=pd.Index([*ALARM_COLUMNS, *more]))
        for column in _ALARM_TIMES:
            frame[column] = _times(frame[column])
        for column in ("raised_value", "threshold", "cleared_value"):
            frame[column] = pd.to_numeric(frame[column]).astype(float)
        for column in ("id", "thing", "datastream"):
            frame[column] = frame[column].astype("int64")
        texts = [c for c in ALARM_COLUMNS if c not in {*_ALARM_TIMES, "id", "thing",
                 "datastream", "raised_value", "threshold", "cleared_value"}]  # fmt: skip
        for column in texts:
            frame[column] = frame[column].astype("str")  # NaN where none
        return frame

    def acknowledge(self: _Requests, alarm_id: int) -> dict[str, Any]:
        """Acknowledge an alarm (``POST /alarms/{id}/acknowledge``): record that you saw
        it, once (audited as ``alarm-acknowledge``). Active and cleared alarms alike.

        Args:
            alarm_id: The alarm's id (the ``id`` column of :meth:`alarms`).

        Returns:
            The alarm as :meth:`alarms` lists it (times as ISO 8601 text), with
            ``acknowledged_by`` and ``acknowledged_at``.

        Raises:
            ConflictError: it was acknowledged already (HTTP 409; the message says by whom
                and when).
            UnauthorizedError: you are anonymous (sign in with a token).
            ForbiddenError: you are not a member of the datastream's department (nor an
                admin).
            NotFoundError: no such alarm, or not one you may see.
            TypeError: ``alarm_id`` is not an integer.

        Example:
            >>> first = c.alarms(level="danger")["id"].iloc[0]
            >>> c.acknowledge(first)["acknowledged_at"]
        """
        try:
            number = operator.index(alarm_id)
        except TypeError:
            msg = f"an alarm is named by its id (an integer), not {alarm_id!r}"
            raise TypeError(msg) from None
        done: dict[str, Any] = self.request("POST", f"/alarms/{number}/acknowledge").json()
        return done


_DATASTREAM_QUERY = {"$select": "id,name,unitOfMeasurement",
                     "$expand": "ObservedProperty($select=name,definition),"
                                "Thing($select=id,name,properties)"}  # fmt: skip


def _datastream(client: _Requests, datastream: int | str, prop: str | None) -> dict[str, Any]:
    """The datastream's id, name, property, unit and station (``readings``' ``attrs``)."""
    if isinstance(datastream, str):
        return _of_station(client, datastream, prop)
    try:
        number = operator.index(datastream)
    except TypeError:
        msg = ("a datastream is named by its id (an integer) or its station's key or name "
               f"(text), not {datastream!r}")  # fmt: skip
        raise TypeError(msg) from None
    found = client.request("GET", f"{STA}/Datastreams({number})", params=_DATASTREAM_QUERY)
    answer = found.json()
    return _meta(answer, answer.get("Thing") or {})


def _of_station(client: _Requests, station: str, prop: str | None) -> dict[str, Any]:
    """The datastream of a station (by feature key or Thing name) of a property."""
    params = {
        "$filter": f"properties/key eq {_quoted(station)} or name eq {_quoted(station)}",
        "$select": "id,name,properties",
        "$expand": ("Datastreams($select=id,name,unitOfMeasurement;$orderby=id;"
                    "$expand=ObservedProperty($select=name,definition))"),
    }  # fmt: skip
    things = client.request("GET", f"{STA}/Things", params=params).json().get("value") or []
    if not things:
        raise NotFoundError(f"no station {station!r} (a feature key or a Thing's name)")
    if len(things) > 1:
        named = ", ".join(f"Things({t['@iot.id']}) {t.get('name')!r}" for t in things)
        msg = f"{station!r} names several stations ({named}): give a datastream id"
        raise InvalidInputError(msg)
    thing = things[0]
    streams = thing.get("Datastreams") or []
    if prop is not None:
        wanted = prop.casefold()
        streams = [d for d in streams
                   if str((d.get("ObservedProperty") or {}).get("name", "")).casefold() == wanted
                   or (d.get("ObservedProperty") or {}).get("definition") == prop]  # fmt: skip
    if len(streams) == 1:
        return _meta(streams[0], thing)
    had = sorted({str((d.get("ObservedProperty") or {}).get("name"))
                  for d in thing.get("Datastreams") or []})  # fmt: skip
    if not streams:
        which = f"no datastream of {prop!r}" if prop is not None else "no datastream"
        msg = f"station {station!r} has {which} (it has: {', '.join(had) or 'none'})"
        raise InvalidInputError(msg)
    if prop is None:
        msg = (f"station {station!r} has several datastreams: give property= one of "
               f"{', '.join(map(repr, had))}")  # fmt: skip
    else:
        ids = ", ".join(str(d["@iot.id"]) for d in streams)
        msg = f"station {station!r} has several datastreams of {prop!r} ({ids}): give its id"
    raise InvalidInputError(msg)


def _meta(ds: Mapping[str, Any], thing: Mapping[str, Any]) -> dict[str, Any]:
    said = thing.get("properties") or {}
    return {
        "datastream": ds.get("@iot.id"), "name": ds.get("name"),
        "property": (ds.get("ObservedProperty") or {}).get("name"),
        "unit": (ds.get("unitOfMeasurement") or {}).get("symbol"),
        "thing": thing.get("@iot.id"), "station": thing.get("name"),
        "key": said.get("key") if isinstance(said, Mapping) else None,
    }  # fmt: skip
