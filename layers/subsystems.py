"""The web maps' subsystems (planning, water, land...): definitions as data, and each
caller's resolved map.

A subsystem is one YAML file in ``layers/subsystems/`` (or ``SPATIAL_MAPS_SUBSYSTEMS_DIR``):
its title, default extent, who may open it, the collections it shows with their MapLibre
style fragments, legend, popup and search attributes, and the processes it offers. A new
subsystem is a new file. :func:`load` validates every file (a bad one is refused with its
file and field named: the app does not start on a half-read set of maps), and
:func:`resolve` turns one subsystem into the map a principal may see: only the layers
whose collections their :class:`~layers.access.View` holds, so the page never asks for a
restricted layer's tiles.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from layers.access import View
from spatial import yamlfile
from spatial.access import WRITE, Principal
from spatial.catalog import CollectionRecord, Kind
from spatial.errors import ConfigurationError, ForbiddenError, NotFoundError, UnauthorizedError
from spatial.flood.config import MAX_CLOSURE_HOURS
from spatial.network.reach import MAX_BANDS, MAX_MINUTES
from spatial.network.routing import MAX_POINTS
from spatial.processes import PROCESSES
from spatial.subsystems import SHIPPED
from spatial.terrain import is_elevation as _holds_elevation

SUBSYSTEMS_DIR = SHIPPED
"""The shipped definitions (:data:`spatial.subsystems.SHIPPED`)."""
"""The shipped definitions."""
TMS = "WebMercatorQuad"
"""The tile matrix set of every map source: MapLibre draws in Web Mercator."""

_COMMON_PAINT = {"fill": ("fill-",), "line": ("line-",), "circle": ("circle-",),
                 "symbol": ("icon-", "text-"), "raster": ("raster-",), "heatmap": ("heatmap-",),
                 "fill-extrusion": ("fill-extrusion-",)}  # fmt: skip
"""MapLibre paint property prefixes by layer type."""
_LAYOUT = {
    "fill": {"fill-sort-key"},
    "line": {"line-cap", "line-join", "line-miter-limit", "line-round-limit", "line-sort-key"},
    "circle": {"circle-sort-key"},
    "symbol": None,  # symbol-*, icon-* and text-*: checked by prefix
    "raster": set(),
    "heatmap": set(),
    "fill-extrusion": set(),
}
KIND_TYPES = {
    "vector": frozenset({"fill", "line", "circle", "symbol", "heatmap", "fill-extrusion"}),
    "gps": frozenset({"line", "circle", "symbol", "heatmap"}),
    "raster": frozenset({"raster"}),
}
"""The MapLibre layer types that can draw each kind of collection."""
COLLECTION_INPUTS = frozenset({"collection", "zones", "raster", "parcels"})
"""Process inputs that name a collection (the caller must be able to read it)."""
_COLOUR = r"^(#[0-9a-fA-F]{3,8}|rgba?\([0-9., ]+\))$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fragment(_Model):
    """One MapLibre style layer without its id and source (filled in by :func:`resolve`)."""

    type: Literal["fill", "line", "circle", "symbol", "raster", "heatmap", "fill-extrusion"]
    paint: dict[str, Any] = Field(default_factory=dict)
    layout: dict[str, Any] = Field(default_factory=dict)
    filter: list[Any] | None = None
    minzoom: float | None = Field(default=None, ge=0, le=24)
    maxzoom: float | None = Field(default=None, ge=0, le=24)

    @model_validator(mode="after")
    def _keys_fit_the_type(self) -> Fragment:
        prefixes = _COMMON_PAINT[self.type]
        bad = [k for k in self.paint if not k.startswith(prefixes)
               or (self.type == "fill" and k.startswith("fill-extrusion-"))]  # fmt: skip
        if bad:
            msg = (
                f"paint {bad} do not apply to a {self.type} layer (expected {'/'.join(prefixes)}*)"
            )
            raise ValueError(msg)
        allowed = _LAYOUT[self.type]
        layout = [k for k in self.layout if k != "visibility"]
        if allowed is None:
            wrong = [k for k in layout if not k.startswith(("symbol-", "icon-", "text-"))]
        else:
            wrong = [k for k in layout if k not in allowed]
        if wrong:
            msg = f"layout {wrong} do not apply to a {self.type} layer"
            raise ValueError(msg)
        return self


class LegendEntry(_Model):
    """One line of the legend: a swatch and its label."""

    label: str = Field(min_length=1)
    color: str = Field(pattern=_COLOUR)
    symbol: Literal["fill", "line", "circle", "raster"] = "fill"


class Render(_Model):
    """What an imagery layer draws (the map tile endpoint's parameters)."""

    bands: list[str] | None = None
    expression: str | None = None
    rescale: str | None = None
    colormap: str | None = None

    @model_validator(mode="after")
    def _bands_or_expression(self) -> Render:
        if (self.bands is None) == (self.expression is None):
            raise ValueError("give bands (1 or 3) or an expression, exactly one")
        if self.bands is not None and len(self.bands) not in {1, 3}:
            raise ValueError("bands: a map shows 1 band (grey or a colormap) or 3 (RGB)")
        return self

    def query(self) -> dict[str, str]:
        """The tile URL's query parameters."""
        values = {"bands": ",".join(self.bands) if self.bands else None,
                  "expression": self.expression, "rescale": self.rescale,
                  "colormap": self.colormap}  # fmt: skip
        return {k: v for k, v in values.items() if v is not None}


class DateChoice(_Model):
    """An entry of an imagery layer's date picker: the mosaic as seen at ``datetime``."""

    label: str
    datetime: str


class MapLayer(_Model):
    """One collection on the map."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    collection: str
    kind: Literal["vector", "raster", "gps"]
    title: str
    visible: bool = True
    opacity: float = Field(default=1.0, ge=0, le=1)
    source: Literal["tiles", "geojson"] = "tiles"
    """Vector tiles, or the features as one GeoJSON document (small, live layers)."""
    style: list[Fragment] = Field(min_length=1)
    legend: list[LegendEntry] = Field(default_factory=list)
    popup: list[str] = Field(default_factory=list)
    search: list[str] = Field(default_factory=list)
    render: Render | None = None
    datetimes: list[DateChoice] = Field(default_factory=list)
    """Imagery only: the date picker's choices, the first one shown first."""

    @model_validator(mode="after")
    def _fits_its_kind(self) -> MapLayer:
        wrong = [f.type for f in self.style if f.type not in KIND_TYPES[self.kind]]
        if wrong:
            msg = f"style types {wrong} cannot draw {self.kind} data"
            raise ValueError(msg)
        if (self.kind == "raster") != (self.render is not None):
            raise ValueError("render: required for raster layers, and only for them")
        if self.kind == "raster" and (self.source != "tiles" or self.popup or self.search):
            raise ValueError("raster layers are tiles without popup or search attributes")
        if self.datetimes and self.kind != "raster":
            raise ValueError("datetimes: only raster layers have a date picker")
        return self


class ProcessOffer(_Model):
    """A process the map offers, with inputs filled in (the drawn shape goes in
    ``geometry_input``)."""

    id: str
    title: str
    description: str = ""
    draw: Literal["polygon", "point"] | None = None
    geometry_input: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _exists(self) -> ProcessOffer:
        process = PROCESSES.get(self.id)
        if process is None:
            msg = f"no process {self.id!r}; known: {', '.join(sorted(PROCESSES))}"
            raise ValueError(msg)
        named = [*self.inputs, *([self.geometry_input] if self.geometry_input else [])]
        unknown = [n for n in named if n not in process.inputs]
        if unknown:
            msg = f"process {self.id!r} has no inputs {unknown}; it has {sorted(process.inputs)}"
            raise ValueError(msg)
        if (self.draw is None) != (self.geometry_input is None):
            raise ValueError("draw and geometry_input go together")
        return self

    @property
    def collections(self) -> set[str]:
        """The collections the offer reads."""
        return {str(v) for k, v in self.inputs.items() if k in COLLECTION_INPUTS}


class IncidentKind(_Model):
    """A kind of incident the command panel offers, and the unit kinds ranked for it."""

    id: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")
    label: str = Field(min_length=1)
    units: list[str] = Field(default_factory=list)
    """Unit kinds (``fire-engine``, ``ambulance``...) proposed for it; all when empty."""


class Command(_Model):
    """The emergency command panel (api/static/maps/command.js): incidents, units and
    their dispatch, road closures, and the service areas of the stations."""

    network: str = Field(default="roads", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$")
    """The road network whose closures the panel lists and draws, and whose service
    areas it computes."""
    stations: str | None = "fire_stations"
    """The point collection whose service areas the panel draws (None: no such layer);
    at most :data:`~spatial.network.routing.MAX_POINTS` of its points are used."""
    minutes: list[float] = Field(default_factory=lambda: [5.0, 10.0, 15.0])
    """The service areas' bands."""
    kinds: list[IncidentKind] = Field(default_factory=list)
    """The incident kinds offered (free text when none)."""

    @field_validator("minutes")
    @classmethod
    def _bands(cls, minutes: list[float]) -> list[float]:
        if not 1 <= len(minutes) <= MAX_BANDS or not all(0 < m <= MAX_MINUTES for m in minutes):
            msg = f"1 to {MAX_BANDS} bands of more than 0 and at most {MAX_MINUTES:g} minutes"
            raise ValueError(msg)
        return sorted(set(minutes))

    @field_validator("kinds")
    @classmethod
    def _unique_kinds(cls, kinds: list[IncidentKind]) -> list[IncidentKind]:
        ids = [k.id for k in kinds]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            msg = f"incident kinds {twice} are listed more than once"
            raise ValueError(msg)
        return kinds


class MonitorLevel(_Model):
    """A level of a station's latest reading (an alarm level or a band of the alarm
    thresholds, or ``normal``: a reading below them all) and its colour on the map."""

    id: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")
    label: str = Field(min_length=1)
    color: str = Field(pattern=_COLOUR)


class Monitor(_Model):
    """A map's monitored stations (api/static/maps/monitor.js): one layer's features
    coloured by the level of their latest reading (``GET /alarms/status``), a chart of a
    station's readings with its thresholds, and the active alarms listed live."""

    layer: str
    """The id of the map's vector layer of the stations (a collection whose features are
    SensorThings Things)."""
    title: str = Field(min_length=1)
    """The legend's and the panel's heading."""
    levels: list[MonitorLevel] = Field(min_length=1)
    """The levels drawn, least severe first (a station with no reading keeps the layer's
    own style)."""
    property: str | None = Field(default=None, min_length=1)
    """The observed property whose level colours a station (e.g. ``AQI``; any case); None:
    the worst level of all its datastreams."""

    @field_validator("levels")
    @classmethod
    def _unique_levels(cls, levels: list[MonitorLevel]) -> list[MonitorLevel]:
        ids = [level.id for level in levels]
        if len(set(ids)) != len(ids):
            msg = f"levels {sorted({i for i in ids if ids.count(i) > 1})} are listed twice"
            raise ValueError(msg)
        return levels


class Terrain(_Model):
    """The map's elevation (api/static/maps/terrain.js): a 3D terrain toggle (MapLibre's
    ``setTerrain`` on the collection's Terrarium tiles) and a hillshade toggle (the
    collection's hillshade map tiles under the vector layers). Callers who may not read
    the collection, or a collection that is not elevation, get neither."""

    collection: str = Field(min_length=1)
    """An elevation collection (``spatial ingest raster --kind elevation``)."""
    exaggeration: float = Field(default=1.5, gt=0, le=10)
    """The vertical exaggeration of the 3D terrain."""
    pitch: float = Field(default=60, ge=0, le=60)
    """The map's tilt when the terrain is switched on (MapLibre's default maximum is 60)."""
    azimuth: float | None = Field(default=None, ge=0, le=360)
    """The hillshade's sun direction, degrees clockwise from north (the server's default
    when None); ``altitude`` its height above the horizon, ``z_factor`` a vertical scale."""
    altitude: float | None = Field(default=None, ge=0, le=90)
    z_factor: float | None = Field(default=None, gt=0, le=100)
    opacity: float = Field(default=0.6, ge=0, le=1)
    """The hillshade layer's opacity."""

    def hillshade_query(self) -> dict[str, str]:
        """The hillshade tile URL's query parameters (those given)."""
        values = {"azimuth": self.azimuth, "altitude": self.altitude, "z_factor": self.z_factor}
        return {k: f"{v:g}" for k, v in values.items() if v is not None}


class Flood(_Model):
    """The flood extent panel (api/static/maps/flood.js): a water level at a gauge (or a
    clicked seed point and a level) run through the ``flood-extent`` process, the extent
    drawn and what it covers listed; callers who may close roads may have it close them."""

    gauges: str = Field(default="water_gauges", min_length=1)
    """The point collection of the gauges (their key is the process's ``gauge``)."""
    process: str = "flood-extent"
    dem: str | None = Field(default=None, min_length=1)
    """The elevation collection flooded [default: the process's, ``layers/floods.yaml``]."""
    network: str = Field(default="roads", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$")
    """The road network whose closures a run makes and the panel draws."""
    hours: list[float] = Field(default_factory=lambda: [6.0, 24.0, 72.0], min_length=1)
    """The closure durations offered (hours), the first one chosen first."""

    @model_validator(mode="after")
    def _process_fits(self) -> Flood:
        process = PROCESSES.get(self.process)
        if process is None:
            msg = f"no process {self.process!r}; known: {', '.join(sorted(PROCESSES))}"
            raise ValueError(msg)
        missing = sorted({"gauge", "level", "seed", "close_roads"} - set(process.inputs))
        if missing:
            msg = f"process {self.process!r} has no inputs {missing}: it is not a flood extent"
            raise ValueError(msg)
        return self

    @field_validator("hours")
    @classmethod
    def _durations(cls, hours: list[float]) -> list[float]:
        if not all(0.1 <= h <= MAX_CLOSURE_HOURS for h in hours):
            msg = f"each from 0.1 to {MAX_CLOSURE_HOURS} hours (the process's limits)"
            raise ValueError(msg)
        return hours


FLOOD_EXTENT = "flood_extent"
"""The standing collection alarm-triggered flood extents are written to (absent in a
database where none was made: its layer is then left out like any unreadable one)."""
INCIDENTS = "incidents"
"""The collection of the command panel's incidents (migration 0015): a caller who may
not read it gets no panel."""


class Access(_Model):
    """Who may open a map: everyone (``public``), or signed-in callers of these
    departments or roles (admins always)."""

    public: bool = False
    departments: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)

    def admits(self, who: Principal) -> bool:
        """Whether ``who`` may open the map."""
        if self.public or who.admin:
            return True
        if who.anonymous:
            return False
        return who.department in self.departments or bool(who.roles & set(self.roles))


class Subsystem(_Model):
    """One map: a subsystem's definition file."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    title: str
    description: str = ""
    extent: tuple[float, float, float, float]
    """Default view: west, south, east, north in lon/lat (CRS84)."""
    basemap: bool = True
    """Whether the configured basemap (``SPATIAL_SERVER_BASEMAP_URL``, none by default) is
    drawn under this map."""
    access: Access
    live: bool = False
    """Whether the map follows vehicles on the live stream (``/gps/live``)."""
    layers: list[MapLayer] = Field(min_length=1)
    processes: list[ProcessOffer] = Field(default_factory=list)
    command: Command | None = None
    """The emergency command panel (``true`` for its defaults), shown to callers who may
    read the incidents."""
    monitor: Monitor | None = None
    """Stations coloured by their latest readings, shown to callers who may read them."""
    terrain: Terrain | None = None
    """3D terrain and hillshade toggles, for callers who may read the elevation."""
    flood: Flood | None = None
    """The flood extent panel, for callers who may read the gauges."""

    @field_validator("access", mode="before")
    @classmethod
    def _public_shorthand(cls, value: Any) -> Any:
        return {"public": True} if value == "public" else value

    @field_validator("command", mode="before")
    @classmethod
    def _command_shorthand(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    @field_validator("extent")
    @classmethod
    def _lonlat_box(cls, box: tuple[float, float, float, float]) -> tuple[float, ...]:
        west, south, east, north = box
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            msg = "expected west, south, east, north in lon/lat with west < east, south < north"
            raise ValueError(msg)
        return box

    @model_validator(mode="after")
    def _unique_layers(self) -> Subsystem:
        ids = [layer.id for layer in self.layers]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            msg = f"layer ids {twice} are used more than once"
            raise ValueError(msg)
        if self.monitor is not None:
            kinds = {layer.id: layer.kind for layer in self.layers}
            if kinds.get(self.monitor.layer) != "vector":
                msg = f"monitor.layer {self.monitor.layer!r} is not a vector layer of this map"
                raise ValueError(msg)
        return self

    def check_open(self, who: Principal) -> None:
        """Refuse a caller who may not open this map.

        Raises:
            UnauthorizedError: an anonymous caller, on a map that needs signing in.
            ForbiddenError: a signed-in caller outside its departments and roles.
        """
        if self.access.admits(who):
            return
        if who.anonymous:
            msg = f"map {self.id!r} needs a key or a token (Authorization: Bearer ...)"
            raise UnauthorizedError(msg)
        msg = f"{who.username} may not open map {self.id!r}"
        raise ForbiddenError(msg)


@dataclass(frozen=True)
class Subsystems:
    """Every map by id; never changes under a reader."""

    maps: Mapping[str, Subsystem] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, subsystem_id: str) -> Subsystem:
        """The map with that id.

        Raises:
            NotFoundError: no such map.
        """
        try:
            return self.maps[subsystem_id]
        except KeyError:
            msg = f"map {subsystem_id!r} does not exist"
            raise NotFoundError(msg) from None

    def openable(self, who: Principal) -> list[Subsystem]:
        """The maps ``who`` may open, in id order."""
        return [s for s in self if s.access.admits(who)]

    def __iter__(self) -> Iterator[Subsystem]:
        return iter(sorted(self.maps.values(), key=lambda s: s.id))

    def __len__(self) -> int:
        return len(self.maps)


def load(directory: Path | None = None) -> Subsystems:
    """Read and validate every ``*.yaml`` file of ``directory`` (the shipped ones by default).

    Raises:
        ConfigurationError: a file that is not YAML or does not fit, naming the file and the
            field; a file whose ``id`` is not its name; no file at all.
    """
    folder = directory or SUBSYSTEMS_DIR
    files = sorted(folder.glob("*.yaml"))
    if not files:
        msg = f"no subsystem definitions (*.yaml) in {folder}"
        raise ConfigurationError(msg)
    found: dict[str, Subsystem] = {}
    for path in files:
        found[path.stem] = _read(path)
    return Subsystems(MappingProxyType(found))


def _read(path: Path) -> Subsystem:
    data = yamlfile.mapping(path, "subsystem definition", "a mapping of fields")
    try:
        subsystem = Subsystem.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
        )
        msg = f"subsystem definition {path}: {problems}"
        raise ConfigurationError(msg) from None
    if subsystem.id != path.stem:
        msg = f"subsystem definition {path}: id {subsystem.id!r} differs from the file name"
        raise ConfigurationError(msg)
    return subsystem


def resolve(
    subsystem: Subsystem, seen: View, base: str, *, basemap: Mapping[str, str] | None = None,
    max_zoom: int = 22, closures_department: str = "emergency",
) -> dict[str, Any]:  # fmt: skip
    """The map as the caller may see it: the configuration a MapLibre page is built from.

    Args:
        subsystem: the definition.
        seen: the caller's view of the catalog; layers and processes reading a collection
            outside it are left out (not greyed: their tiles must never be asked for).
        base: the API's base URL (no trailing slash).
        basemap: the configured basemap (``url``, ``attribution``), if any.
        max_zoom: the deepest tile the server makes.
        closures_department: the department whose editors and stewards close roads
            (``SPATIAL_NETWORK_CLOSURES_DEPARTMENT``): the flood panel offers them to.

    Raises:
        UnauthorizedError, ForbiddenError: the caller may not open the map.
    """
    subsystem.check_open(seen.principal)
    readable = seen.catalog.collections
    sources: dict[str, dict[str, Any]] = {}
    layers: list[dict[str, Any]] = []
    for layer in subsystem.layers:
        record = readable.get(layer.collection)
        if record is None or record.kind != layer.kind:
            continue
        fields = record.properties.get("fields") if record.kind == Kind.VECTOR else None
        sources[layer.id] = _source(layer, base, record.bbox, max_zoom, fields)
        layers.append(_layer(layer, base))
    processes = [
        {"id": p.id, "title": p.title, "description": p.description, "draw": p.draw,
         "geometry_input": p.geometry_input, "inputs": p.inputs,
         "execution": f"{base}/processes/{p.id}/execution"}
        for p in subsystem.processes if p.collections <= readable.keys()
    ]  # fmt: skip
    live = None
    if subsystem.live and "gps_latest" in readable:
        live = {"url": "ws" + base.removeprefix("http") + "/gps/live", "collection": "gps_latest"}
    command = None
    if subsystem.command is not None and INCIDENTS in readable:
        command = _command(subsystem.command, seen, base, live)
    shown = {layer["id"]: layer for layer in layers}
    monitor = None
    if subsystem.monitor is not None and subsystem.monitor.layer in shown:
        stations = shown[subsystem.monitor.layer]
        monitor = _monitor(subsystem.monitor, stations, seen, base, live)
        levels = [{"label": level.label, "color": level.color, "symbol": "circle"}
                  for level in subsystem.monitor.levels]  # fmt: skip
        stations["legend"] = [*levels, *stations["legend"]]
    return {
        "id": subsystem.id,
        "title": subsystem.title,
        "description": subsystem.description,
        "extent": list(subsystem.extent),
        "crs": "OGC:CRS84",
        "basemap": dict(basemap) if basemap and subsystem.basemap else None,
        "sources": sources,
        "layers": layers,
        "processes": processes,
        "live": live,
        "command": command,
        "monitor": monitor,
        "terrain": _terrain(subsystem.terrain, seen, base, max_zoom),
        "flood": _flood(subsystem.flood, seen, base, shown, closures_department),
        "links": [{"rel": "self", "type": "application/json",
                   "href": f"{base}/maps/{subsystem.id}/config"}],
    }  # fmt: skip


def _command(
    command: Command, seen: View, base: str, live: Mapping[str, str] | None
) -> dict[str, Any]:
    """The command panel's configuration: its endpoints, whether the caller may edit the
    incidents (report, dispatch, close), and the service areas' stations when readable."""
    readable = seen.catalog.collections
    access = seen.rights[INCIDENTS]
    areas = None
    if command.stations is not None and command.stations in readable:
        areas = {"execution": f"{base}/processes/service-area/execution",
                 "points": f"{base}/collections/{command.stations}/items",
                 "collection": command.stations, "minutes": command.minutes,
                 "most": MAX_POINTS}  # fmt: skip
    return {
        "incidents": f"{base}/incidents",
        "items": f"{base}/collections/{INCIDENTS}/items",
        "units": f"{base}/units",
        "closures": f"{base}/network/closures",
        "network": command.network,
        "editable": access.level >= WRITE and not seen.principal.anonymous,
        "kinds": [k.model_dump() for k in command.kinds],
        "service_areas": areas,
        "live": live["url"] if live else None,
    }


def _monitor(
    monitor: Monitor, layer: Mapping[str, Any], seen: View, base: str,
    live: Mapping[str, str] | None,
) -> dict[str, Any]:  # fmt: skip
    """The monitoring panel's configuration: the stations' layer and key attribute (the
    alarms name a station by its key, the tiles by their feature id), its levels, and the
    endpoints of the stations' status, the alarms and the readings (SensorThings)."""
    collection = layer["collection"]
    key = seen.catalog.collections[collection].properties.get("key")
    return {
        "layer": layer["id"], "collection": collection, "key": key, "title": monitor.title,
        "levels": [level.model_dump() for level in monitor.levels],
        "property": monitor.property,
        "status": f"{base}/alarms/status?{urlencode({'collection': collection})}",
        "alarms": f"{base}/alarms", "sta": f"{base}/sta/v1.1",
        "live": live["url"] if live else None,
    }  # fmt: skip


def is_elevation(record: CollectionRecord) -> bool:
    """Whether a collection is an elevation model (``--kind elevation``: terrain and
    hillshade tiles; :func:`spatial.terrain.is_elevation`)."""
    return record.kind == Kind.RASTER and _holds_elevation(record)


def _terrain(
    terrain: Terrain | None, seen: View, base: str, max_zoom: int
) -> dict[str, Any] | None:
    """The terrain toggles' configuration: the Terrarium TileJSON for MapLibre's
    ``raster-dem`` source and the hillshade tiles; None when the caller may not read the
    collection or it is not an elevation model."""
    record = seen.catalog.collections.get(terrain.collection) if terrain else None
    if terrain is None or record is None or not is_elevation(record):
        return None
    cid = terrain.collection
    query = urlencode(terrain.hillshade_query())
    tiles = f"{base}/collections/{cid}/styles/hillshade/map/tiles/{TMS}/{{z}}/{{y}}/{{x}}"
    if query:
        tiles += f"?{query}"
    hillshade: dict[str, Any] = {"type": "raster", "tiles": [tiles], "tileSize": 256,
                                 "maxzoom": max_zoom}  # fmt: skip
    if record.bbox is not None:
        hillshade["bounds"] = list(record.bbox)
    return {
        "collection": cid, "title": record.title,
        "tilejson": f"{base}/collections/{cid}/terrain/tilejson",
        "encoding": "terrarium", "exaggeration": terrain.exaggeration, "pitch": terrain.pitch,
        "hillshade": hillshade, "opacity": terrain.opacity,
    }  # fmt: skip


def _flood(
    flood: Flood | None, seen: View, base: str, shown: Mapping[str, Mapping[str, Any]],
    closers: str,
) -> dict[str, Any] | None:  # fmt: skip
    """The flood panel's configuration: the process, the gauges (their key attribute
    names them to the process), whether the caller may close roads (an admin, or an
    editor or steward of the department that closes them), the closures' endpoint, and the
    map's standing flood extent layer if it shows one; None when the caller may not read
    the gauges (or the map's DEM)."""
    readable = seen.catalog.collections
    if flood is None or flood.gauges not in readable or (flood.dem and flood.dem not in readable):
        return None
    try:
        seen.member_of(closers, "road closures")  # what /network/closures and the process ask
        closable = True
    except (UnauthorizedError, ForbiddenError):
        closable = False
    standing = next((i for i, layer in shown.items() if layer["collection"] == FLOOD_EXTENT), None)
    return {
        "execution": f"{base}/processes/{flood.process}/execution",
        "gauges": f"{base}/collections/{flood.gauges}/items", "collection": flood.gauges,
        "key": readable[flood.gauges].properties.get("key"),
        "closable": closable, "hours": flood.hours, "network": flood.network,
        "closures": f"{base}/network/closures", "layer": standing, "dem": flood.dem,
    }  # fmt: skip


def _source(
    layer: MapLayer, base: str, bbox: tuple[float, float, float, float] | None, max_zoom: int,
    fields: Mapping[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The MapLibre source of a layer. Vector tiles of a layer whose ``fields`` are known
    carry only the attributes its style uses (``properties=``), and the feature ids: a
    parcel tile with its land-use code alone is a fraction of the bytes, and a click reads
    the feature's attributes from the features API."""
    cid = layer.collection
    source: dict[str, Any]
    if layer.kind == "raster":
        query = layer.render.query() if layer.render else {}
        if layer.datetimes:
            query["datetime"] = layer.datetimes[0].datetime
        url = f"{base}/collections/{cid}/map/tiles/{TMS}/{{z}}/{{y}}/{{x}}?{urlencode(query)}"
        source = {"type": "raster", "tiles": [url], "tileSize": 256, "maxzoom": max_zoom}
    elif layer.source == "geojson":
        source = {"type": "geojson", "data": f"{base}/collections/{cid}/items?f=json&limit=10000"}
    else:
        url = f"{base}/collections/{cid}/tiles/{TMS}/{{z}}/{{y}}/{{x}}"
        used = sorted(_attributes(layer) & set(fields or ()))
        if used:
            url += "?" + urlencode({"properties": ",".join(used)})
        source = {"type": "vector", "tiles": [url], "minzoom": 0, "maxzoom": max_zoom}
    if bbox is not None and source["type"] != "geojson":
        source["bounds"] = list(bbox)
    return source


def _attributes(layer: MapLayer) -> set[str]:
    """The attributes a layer's style reads (``["get", name]`` in paint, layout and filter);
    a popup reads the rest from the features API on a click."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, list):
            if len(value) >= 2 and value[0] == "get" and isinstance(value[1], str):
                found.add(value[1])
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    for fragment in layer.style:
        walk([fragment.paint, fragment.layout, fragment.filter])
    return found


def _layer(layer: MapLayer, base: str) -> dict[str, Any]:
    """A layer's entry: what the layer switcher, legend, popups and search need, and its
    MapLibre style layers (the first is ``layer.id``, further ones ``<id>-<n>``)."""
    styles = []
    for n, fragment in enumerate(layer.style):
        entry: dict[str, Any] = {"id": layer.id if n == 0 else f"{layer.id}-{n}",
                                 "type": fragment.type, "source": layer.id}  # fmt: skip
        if layer.kind != "raster" and layer.source == "tiles":
            entry["source-layer"] = layer.collection
        paint = dict(fragment.paint)
        opacity = f"{fragment.type}-opacity"
        if fragment.type in {"fill", "line", "circle", "raster", "heatmap", "fill-extrusion"}:
            paint.setdefault(opacity, layer.opacity)
        entry["paint"] = paint
        entry["layout"] = {**fragment.layout, "visibility": "visible" if layer.visible else "none"}
        if fragment.filter is not None:
            entry["filter"] = fragment.filter
        for bound in ("minzoom", "maxzoom"):
            if getattr(fragment, bound) is not None:
                entry[bound] = getattr(fragment, bound)
        styles.append(entry)
    out: dict[str, Any] = {
        "id": layer.id, "collection": layer.collection, "kind": layer.kind,
        "title": layer.title, "visible": layer.visible, "opacity": layer.opacity,
        "source": layer.id, "legend": [e.model_dump() for e in layer.legend],
        "popup": layer.popup, "search": layer.search, "maplibre": styles,
    }  # fmt: skip
    if layer.kind == "raster" and layer.render is not None:
        out["render"] = layer.render.query()
        out["datetimes"] = [d.model_dump() for d in layer.datetimes]
    else:
        out["items"] = f"{base}/collections/{layer.collection}/items"
    return out
