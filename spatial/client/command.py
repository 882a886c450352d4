"""The analysts' emergency command on :class:`spatial.Client`: incidents and units
(``/incidents``, ``/units``: :mod:`api.routers.incidents`).

Report an incident, rank the units by their road travel time to it, dispatch some, follow
it, close it. The answers come as GeoDataFrames (EPSG:4326); what an answer says beside
its rows (the units left out of a ranking and why, the incident's assignments) is in the
frame's ``attrs`` as plain JSON values (lists of dicts), which pandas copies and compares
safely when the frame is sliced or concatenated: ``pd.DataFrame(frame.attrs["excluded"])``
makes a table of them.

Only those who may edit the incidents (the ``emergency`` department's editors, admins)
report, rank, dispatch and close; those who may read them read an incident and the units.
The incidents are private: to anyone else they do not exist (``NotFoundError``; when the
client is anonymous its message says to sign in), and a reader who tries to change one
gets ``ForbiddenError``. A unit that is not available, or an incident that is closed, is
a conflict: ``ConflictError`` (HTTP 409), with the server's message naming the units.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import pandas as pd

from spatial.client.errors import located
from spatial.client.routes import geoframe, lonlat
from spatial.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    import geopandas as gpd
    import httpx

CANDIDATE_COLUMNS = ("rank", "unit", "name", "kind", "seconds", "minutes", "eta", "metres",
                     "roads", "fix_time", "fix_age_s")  # fmt: skip
"""A ranked candidate's columns, in order (then its route line)."""
UNIT_COLUMNS = ("unit", "name", "kind", "department", "status", "incident", "since",
                "fix_time", "fix_age_s", "stale")  # fmt: skip
"""A unit's columns, in order (then its latest fix)."""
ASSIGNMENT_COLUMNS = ("unit", "seconds", "minutes", "metres", "eta")
"""A dispatched unit's columns, in order (then its route line)."""
_TIMES = ("eta", "fix_time", "since", "reported_at", "closed_at", "dispatched_at",
          "arrived_at", "released_at")  # fmt: skip


class _Requests(Protocol):
    token: str | None

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> httpx.Response: ...


def _asked(client: _Requests, method: str, path: str, **kwargs: Any) -> Any:
    """The answer's JSON. The incidents are private: to an anonymous caller the platform
    answers 404 as if they did not exist, so that error says to sign in."""
    try:
        return client.request(method, path, **kwargs).json()
    except NotFoundError as exc:
        if client.token:
            raise
        hint = (f"{exc} (the incidents are the emergency department's: sign in with an API "
                "key, Client(token=...) or $SPATIAL_TOKEN)")  # fmt: skip
        raise located(NotFoundError(hint), 404, getattr(exc, "url", path)) from exc


def _path(incident: str) -> str:
    if not isinstance(incident, str) or not incident:
        msg = f"an incident is named by its id (e.g. 'INC-20250601-00001'), not {incident!r}"
        raise TypeError(msg)
    return f"/incidents/{quote(incident, safe='')}"


def _names(value: str | Iterable[str], name: str) -> list[str]:
    """One name or several (a list, a pandas Series) as a list."""
    names = [value] if isinstance(value, str) else [str(v) for v in value]
    if not names:
        msg = f"{name} names nothing"
        raise InvalidInputError(msg)
    return names


def _typed(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Timestamps as UTC ``datetime64``; minutes beside seconds."""
    for column in _TIMES:
        if column in frame.columns:
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    if "minutes" in frame.columns and "seconds" in frame.columns:
        frame["minutes"] = (pd.to_numeric(frame["seconds"]) / 60).round(2)
    return frame


def _lines(rows: Sequence[dict[str, Any]], line: str) -> list[dict[str, Any]]:
    """Answer rows as GeoJSON Features, their ``line`` (a GeoJSON geometry or None) the
    geometry."""
    return [
        {"type": "Feature", "geometry": row.get(line),
         "properties": {k: v for k, v in row.items() if k != line}}
        for row in rows
    ]  # fmt: skip


class Command:
    """Emergency command: incidents, units, dispatch; mixed into :class:`spatial.Client`."""

    def report_incident(
        self: _Requests, kind: str, point: Any, level: int = 3, address: str | None = None,
        description: str | None = None,
    ) -> str:  # fmt: skip
        """Report a new incident (``POST /incidents``); it is ``reported`` until units are
        dispatched to it.

        Args:
            kind: What happened, e.g. ``"fire"``, ``"traffic-accident"`` (at most 40
                characters).
            point: Where: a shapely point or ``(lon, lat)`` in degrees.
            level: How severe, 1 (most) to 4.
            address: The address as given by the caller.
            description: What the caller said.

        Returns:
            The new incident's id, ``INC-<UTC date>-<number>``.

        Raises:
            NotFoundError: anonymous, or not of the emergency department (the incidents
                are private). ForbiddenError: you may read them but not edit them.
            InvalidInputError: a bad level or kind (by the server).
            TypeError: ``point`` is not a point.

        Example:
            >>> inc = c.report_incident("fire", (111.995, 22.905), level=2,
            ...                         address="新城路 18号", description="厨房起火")
        """
        lon, lat = lonlat(point, "point")
        body = {"kind": kind, "lon": lon, "lat": lat, "level": level, "address": address,
                "description": description}  # fmt: skip
        answer = _asked(self, "POST", "/incidents",
                        json={k: v for k, v in body.items() if v is not None})  # fmt: skip
        return str(answer["properties"]["incident_id"])

    def incident(self: _Requests, id: str) -> gpd.GeoDataFrame:  # noqa: A002 - the incident's id
        """An incident (``GET /incidents/{id}``) as a one-row GeoDataFrame (its point):
        ``incident_id``, ``kind``, ``level``, ``address``, ``description``,
        ``reported_at``, ``status`` (``reported``, ``dispatched``, ``on-scene``,
        ``closed``), ``units`` (comma-separated), ``closed_at``.

        ``attrs["assignments"]`` lists every unit dispatched to it, in order, as dicts:
        ``unit``, ``name``, ``kind``, ``network``, ``seconds``, ``metres``, ``roads``,
        ``route`` (a GeoJSON line), ``dispatched_at``, ``eta``, ``dispatched_by``,
        ``arrived_at``, ``released_at`` (times as ISO 8601 text).

        Raises:
            NotFoundError: no such incident among those you may read.

        Example:
            >>> found = c.incident(inc)
            >>> found[["incident_id", "status", "units"]]
            >>> pd.DataFrame(found.attrs["assignments"])[["unit", "eta", "arrived_at"]]
        """
        feature = _asked(self, "GET", _path(id))
        assignments = feature.pop("assignments", [])
        frame = _typed(geoframe([feature], ("incident_id", "kind", "level", "status")))
        frame.attrs["assignments"] = assignments
        return frame

    def candidates(
        self: _Requests, incident: str, kinds: str | Sequence[str] | None = None,
        limit: int = 5,
    ) -> gpd.GeoDataFrame:  # fmt: skip
        """The available units ranked by road travel time from their latest fix to the
        incident (``POST /incidents/{id}/candidates``), the best first with their routes.

        A GeoDataFrame (EPSG:4326) of route lines: ``rank``, ``unit``, ``name``, ``kind``,
        ``seconds``, ``minutes``, ``eta`` (UTC, if it left now), ``metres``, ``roads``
        (the names in order), ``fix_time`` and ``fix_age_s`` (its latest fix).

        The units left out are in ``attrs["excluded"]``, dicts of ``unit``, ``name``,
        ``kind`` and ``reason``: no fix yet, a fix older than the server's limit
        (``attrs["stale_after_s"]``, 5 minutes by default), too far from the roads, or no
        road to the incident. Busy and off-duty units are not listed at all. Also in
        ``attrs``: ``incident``, ``network`` (routed on) and ``more`` (ranked units beyond
        ``limit``).

        Args:
            incident: The incident's id.
            kinds: Only units of these kinds, e.g. ``"fire-engine"`` or ``["ambulance"]``
                [default: every kind].
            limit: The best this many (the server gives at most 20).

        Raises:
            NotFoundError: no such incident (or you may not read the incidents).
            ForbiddenError: you may read the incidents but not edit them.
            ConflictError: the incident is closed (HTTP 409).
            InvalidInputError: the incident is too far from the roads.

        Example:
            >>> ranked = c.candidates(inc, kinds="fire-engine", limit=3)
            >>> ranked[["rank", "unit", "minutes", "metres", "eta"]]
            >>> pd.DataFrame(ranked.attrs["excluded"])
        """
        body: dict[str, Any] = {"limit": limit}
        if kinds is not None:
            body["kinds"] = _names(kinds, "kinds")
        answer = _asked(self, "POST", f"{_path(incident)}/candidates", json=body)
        rows = [{k: v for k, v in c.items() if k != "position"} for c in answer["candidates"]]
        frame = _typed(geoframe(_lines(rows, "route"), CANDIDATE_COLUMNS))
        frame.attrs.update({k: answer.get(k) for k in ("incident", "network", "stale_after_s")})
        frame.attrs["more"] = answer.get("more", 0)
        frame.attrs["excluded"] = answer.get("excluded", [])
        return frame

    def dispatch(self: _Requests, incident: str, units: str | Iterable[str]) -> gpd.GeoDataFrame:
        """Dispatch units to an incident (``POST /incidents/{id}/dispatch``), all or none:
        each one's route and ETA from its latest fix are stored, the units are
        ``assigned`` and the incident ``dispatched``.

        Args:
            incident: The incident's id.
            units: A unit's id, or several (a list, or a column of :meth:`candidates`).

        Returns:
            The assignments, one route line per unit (None when the unit has no fix or
            no road): ``unit``, ``seconds``, ``minutes``, ``metres``, ``eta`` (UTC);
            ``attrs``: ``incident`` and its ``status``.

        Raises:
            ConflictError: a unit is not available (another dispatcher took it first, it
                is off duty or serves another incident, or it is no unit), or the incident
                is closed (HTTP 409): nothing was dispatched; the message names the units.
            NotFoundError: no such incident (or you may not read the incidents).
            ForbiddenError: you may read the incidents but not edit them.
            InvalidInputError: no unit named, or more than the server's limit (20).

        Example:
            >>> c.dispatch(inc, ranked["unit"].head(2))
        """
        body = {"units": _names(units, "units")}
        answer = _asked(self, "POST", f"{_path(incident)}/dispatch", json=body)
        frame = _typed(geoframe(_lines(answer["assignments"], "route"), ASSIGNMENT_COLUMNS))
        frame.attrs.update({"incident": answer.get("incident"), "status": answer.get("status")})
        return frame

    def close_incident(self: _Requests, id: str) -> dict[str, Any]:  # noqa: A002 - as incident()
        """Close an incident (``POST /incidents/{id}/close``); its units are available
        again.

        Returns:
            ``{"incident": id, "status": "closed", "freed": [units]}``.

        Raises:
            ConflictError: it is closed already (HTTP 409).
            NotFoundError: no such incident (or you may not read the incidents).
            ForbiddenError: you may read the incidents but not edit them.

        Example:
            >>> c.close_incident(inc)["freed"]
        """
        closed: dict[str, Any] = _asked(self, "POST", f"{_path(id)}/close")
        return closed

    def units(self: _Requests, status: str | None = None) -> gpd.GeoDataFrame:
        """The dispatchable units (``GET /units``) at their latest fix (no geometry when
        they have none): ``unit``, ``name``, ``kind``, ``department``, ``status``
        (``available``, ``assigned``, ``on-scene``, ``off-duty``), ``incident`` (the one
        it serves), ``since`` (the status's), ``fix_time``, ``fix_age_s`` and ``stale``
        (no fix, or one older than the server's limit: not offered as a candidate).

        Args:
            status: Only the units of this status.

        Raises:
            NotFoundError: you may not read the incidents.
            InvalidInputError: no such status.

        Example:
            >>> c.units()[["unit", "kind", "status", "fix_age_s", "stale"]]
        """
        params = {"status": status} if status is not None else {}
        rows = _asked(self, "GET", "/units", params=params)
        features = [
            {"type": "Feature",
             "properties": {k: v for k, v in u.items() if k not in {"lon", "lat"}},
             "geometry": None if u.get("lon") is None else
                {"type": "Point", "coordinates": [u["lon"], u["lat"]]}}
            for u in rows
        ]  # fmt: skip
        return _typed(geoframe(features, UNIT_COLUMNS))
