"""The analysts' routing calls on :class:`spatial.Client` (the ``route`` process)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import geopandas as gpd


def _lonlat(value: Any, name: str) -> list[float]:
    """A point as ``[lon, lat]``: a shapely point (anything with ``x`` and ``y``) or a pair."""
    if hasattr(value, "x") and hasattr(value, "y"):
        return [float(value.x), float(value.y)]
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        return [float(value[0]), float(value[1])]
    msg = f"{name} must be a point or (lon, lat), not {value!r}"
    raise TypeError(msg)


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
            "network": network, "from": _lonlat(start, "start"), "to": _lonlat(end, "end"),
            "via": [_lonlat(p, f"via[{i}]") for i, p in enumerate(via)],
            "barriers": list(barriers),
        }  # fmt: skip
        if max_snap_distance is not None:
            inputs["max_snap_distance"] = max_snap_distance
        feature = self.process("route", asynchronous=False, **inputs)["route"]
        return gpd.GeoDataFrame.from_features([feature], crs="EPSG:4326")
