"""The analysts' routing calls on :class:`spatial.Client`: the ``route``, ``service-area``
and ``closest-facility`` processes (:mod:`spatial.network.processes`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import geopandas as gpd


def lonlat(value: Any, name: str) -> list[float]:
    """A point as ``[lon, lat]``: a shapely point (anything with ``x`` and ``y``) or a pair."""
    if hasattr(value, "x") and hasattr(value, "y"):
        return [float(value.x), float(value.y)]
    if _pair(value):
        return [float(value[0]), float(value[1])]
    msg = f"{name} must be a point or (lon, lat), not {value!r}"
    raise TypeError(msg)


def _pair(value: Any) -> bool:
    return (
        isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )  # fmt: skip


def _many(value: Any, name: str) -> list[list[float]]:
    """One point or several, as ``[[lon, lat], ...]``: a point, a pair, a multipoint, a
    GeoSeries or GeoDataFrame of points, or a sequence of points or pairs."""
    if (hasattr(value, "x") and hasattr(value, "y")) or _pair(value):
        return [lonlat(value, name)]
    parts = getattr(value, "geometry", value)  # a GeoDataFrame's points
    parts = getattr(parts, "geoms", parts)  # a multipoint's
    if isinstance(parts, str) or not hasattr(parts, "__iter__"):
        msg = f"{name} must be a point, (lon, lat) or a list of them, not {value!r}"
        raise TypeError(msg)
    return [lonlat(p, f"{name}[{i}]") for i, p in enumerate(parts)]


def geoframe(
    features: list[dict[str, Any]], first: Sequence[str], last: Sequence[str] = ()
) -> gpd.GeoDataFrame:
    """Features as a GeoDataFrame (EPSG:4326): the ``first`` columns, the others, the
    ``last``, then the geometry; all of them even when there is no feature."""
    import geopandas as gpd  # noqa: PLC0415 - optional heavy dependency, as in Client.read

    frame = gpd.GeoDataFrame.from_features(features, crs="EPSG:4326")
    for column in [*first, *last]:
        if column not in frame.columns:
            frame[column] = None
    rest = [c for c in frame.columns if c not in {*first, *last, "geometry"}]
    return frame[[*first, *rest, *last, "geometry"]]


class _Runs(Protocol):
    def process(
        self, name: str, /, *, asynchronous: bool | None = None, **inputs: Any
    ) -> dict[str, Any]: ...


class Routing:
    """Routes by road; mixed into :class:`spatial.Client`."""

    def route(
        self: _Runs, network: str, start: Any, end: Any, *, via: Sequence[Any] = (),
        barriers: Sequence[Any] = (), max_snap_distance: float | None = None,
    ) -> gpd.GeoDataFrame:  # fmt: skip
        """The fastest route by road, as a one-row GeoDataFrame (EPSG:4326) with
        ``length_m``, ``seconds``, ``minutes`` and ``roads`` (the names in order).

        Args:
            network: A road network (``spatial network build``), e.g. ``"roads"``.
            start, end: Points as shapely points or ``(lon, lat)``.
            via: Points to pass, in order.
            barriers: Polygons to avoid (shapely, GeoJSON, Features named by ``name``), or
                ``{"collection": "flood_zones", "filter": "risk = 'high'"}``.
            max_snap_distance: Metres from a point to its road [default: the server's, 500].

        Raises:
            InvalidInputError: a point too far from the roads, no path (the message says
                why), or bad inputs.
            NotFoundError: no such network, or one built from roads you may not read.

        Example:
            >>> c.route("roads", (111.96, 22.87), (112.04, 22.93)).explore()
        """
        import geopandas as gpd  # noqa: PLC0415 - optional heavy dependency, as in Client.read

        inputs: dict[str, Any] = {
            "network": network, "from": lonlat(start, "start"), "to": lonlat(end, "end"),
            "via": [lonlat(p, f"via[{i}]") for i, p in enumerate(via)],
            "barriers": list(barriers),
        }  # fmt: skip
        if max_snap_distance is not None:
            inputs["max_snap_distance"] = max_snap_distance
        feature = self.process("route", asynchronous=False, **inputs)["route"]
        return gpd.GeoDataFrame.from_features([feature], crs="EPSG:4326")

    def service_area(
        self: _Runs, network: str, points: Any, minutes: Sequence[float] = (5, 10, 15), *,
        barriers: Sequence[Any] = (), max_snap_distance: float | None = None,
    ) -> gpd.GeoDataFrame:  # fmt: skip
        """The areas reached by road within each band of minutes (the ``service-area``
        process), as a GeoDataFrame (EPSG:4326) of one polygon per band, the largest
        first (drawn in order, the nearer bands lie on top): ``minutes``, ``segments``
        (pieces of road reached) and ``km`` (their length).

        Each band is the concave hull of the roads reached from the nearest of
        ``points`` within its minutes, wholly or in part, at the roads' speeds; a band
        that reaches no road is left out.

        Args:
            network: A road network, e.g. ``"roads"``.
            points: Where from: a point (shapely or ``(lon, lat)``) or several (a list,
                a multipoint, a GeoDataFrame of points), e.g. every fire station.
            minutes: The bands, more than 0 and at most 180 minutes, at most 10 of them.
            barriers: Polygons to avoid, as in :meth:`route`.
            max_snap_distance: Metres from a point to its road [default: the server's, 500].

        Raises:
            InvalidInputError: a point too far from the roads, bad bands or inputs.
            NotFoundError: no such network, or one built from roads you may not read.

        Example:
            >>> stations = c.read("fire_stations")
            >>> areas = c.service_area("roads", stations, minutes=(5, 10, 15))
            >>> areas.explore(column="minutes", cmap="YlOrRd_r")
        """
        inputs: dict[str, Any] = {
            "network": network, "points": _many(points, "points"),
            "minutes": [float(m) for m in minutes], "barriers": list(barriers),
        }  # fmt: skip
        if max_snap_distance is not None:
            inputs["max_snap_distance"] = max_snap_distance
        answer = self.process("service-area", asynchronous=False, **inputs)["areas"]
        return geoframe(answer.get("features") or [], ("minutes", "segments", "km"))

    def closest_facility(
        self: _Runs, network: str, point: Any, collection: str, *, k: int = 3,
        filter: str | None = None,  # noqa: A002 - the OGC name, as in Client.read
        direction: str = "to-facility", barriers: Sequence[Any] = (),
        max_snap_distance: float | None = None,
    ) -> gpd.GeoDataFrame:  # fmt: skip
        """The ``k`` features of a collection nearest a point by travel time on the
        roads (the ``closest-facility`` process), nearest first, each with its route:
        a GeoDataFrame (EPSG:4326) of route lines with ``rank``, ``facility`` (the
        feature's id), the feature's properties, ``seconds``, ``minutes``, ``length_m``
        (metres of road) and ``roads`` (the names in order).

        Facilities farther than ``max_snap_distance`` from every road, or that no road
        leads to, are left out, so fewer than ``k`` may come back.

        Args:
            network: A road network, e.g. ``"roads"``.
            point: The incident (shapely or ``(lon, lat)``).
            collection: The facilities (points, or polygons by a point on them), e.g.
                ``"hospitals"``; at most 2,000 after the filter.
            k: How many, 1 to 50.
            filter: A CQL2 text filter on the facilities, e.g. ``"beds >= 100"``.
            direction: ``"to-facility"`` (from the point to each, e.g. a patient to a
                hospital) or ``"from-facility"`` (from each to the point, e.g. a fire
                engine to a fire); on one-way streets the two differ.
            barriers: Polygons to avoid, as in :meth:`route`.
            max_snap_distance: Metres from a point to its road [default: the server's, 500].

        Raises:
            InvalidInputError: the point too far from the roads, no facility reachable
                (the message says why), a bad filter or inputs.
            NotFoundError: no such network or collection, or one you may not read.

        Example:
            >>> nearest = c.closest_facility("roads", (111.995, 22.905), "hospitals", k=3)
            >>> nearest[["rank", "name", "minutes", "length_m"]]
        """
        inputs: dict[str, Any] = {
            "network": network, "point": lonlat(point, "point"), "collection": collection,
            "k": k, "direction": direction, "barriers": list(barriers),
        }  # fmt: skip
        if filter is not None:
            inputs["filter"] = filter
        if max_snap_distance is not None:
            inputs["max_snap_distance"] = max_snap_distance
        answer = self.process("closest-facility", asynchronous=False, **inputs)["facilities"]
        return geoframe(answer.get("features") or [], ("rank", "facility"),
                      ("seconds", "minutes", "length_m", "roads"))  # fmt: skip
