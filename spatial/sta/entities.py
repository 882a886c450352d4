"""The SensorThings 1.1 data model as the tables of schema ``sta`` hold it (migration 0017).

Each entity set names its table, its properties (how each is read into JSON, and what a
``$filter`` or ``$orderby`` compares) and its navigation properties (how two sets are
related). :mod:`spatial.sta.query` builds every read from these; writes
(:mod:`spatial.sta.write`) use the same names.

A property's SQL is over the alias ``e`` of its own table; a time is read as
``timestamptz`` and written out in UTC with ``Z``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from spatial.sta.odata import Kind

VERSION = "v1.1"


@dataclass(frozen=True)
class Prop:
    """A property of an entity.

    Attributes:
        name: its name in the API.
        read: the SQL (over ``e``) of its value in a response (of an interval, its start).
        kind: what it is in a ``$filter`` (None: it cannot be filtered or ordered on).
        compare: the SQL a ``$filter``/``$orderby`` uses [default: ``read``].
        form: how the value read is written out (``time``: an instant in UTC; ``interval``:
            two columns ``start/end``; ``plain``: as it is).
    """

    name: str
    read: str
    kind: Kind | None
    compare: str | None = None
    form: Literal["plain", "time", "interval"] = "plain"
    end: str = ""
    """The SQL of an interval's end."""

    @property
    def where(self) -> str:
        """The SQL a filter or an ordering compares."""
        return self.compare or self.read


@dataclass(frozen=True)
class Nav:
    """A navigation property: from one entity set to another.

    Attributes:
        name: its name in the API (``Datastreams``, ``Thing``).
        target: the entity set it leads to.
        many: a collection (or a single entity).
        how: ``child``: the target's column ``column`` holds the source's id;
            ``parent``: the source's column ``column`` holds the target's id;
            ``link``: the table ``table`` pairs them (``column`` the source's id there,
            ``other`` the target's).
    """

    name: str
    target: str
    many: bool
    how: Literal["child", "parent", "link"]
    column: str
    table: str = ""
    other: str = ""


@dataclass(frozen=True)
class EntitySet:
    """An entity set: its table and its properties."""

    name: str
    table: str
    props: tuple[Prop, ...]
    navs: tuple[Nav, ...]
    singular: str
    required: tuple[str, ...] = field(default=())
    """The properties a create must give (SensorThings 1.1, the tables' NOT NULLs)."""

    def prop(self, name: str) -> Prop | None:
        """The property of that name, if any."""
        return next((p for p in self.props if p.name == name), None)

    def nav(self, name: str) -> Nav | None:
        """The navigation property of that name, if any."""
        return next((n for n in self.navs if n.name == name), None)


def _common(*extra: Prop) -> tuple[Prop, ...]:
    return (
        Prop("@iot.id", "e.id", "number"),
        Prop("name", "e.name", "text"),
        Prop("description", "e.description", "text"),
        *extra,
        Prop("properties", "e.properties", "json"),
    )


_GEOJSON = "ST_AsGeoJSON(e.geom, 9)::jsonb"
_RESULT = "coalesce(to_jsonb(e.result_number), e.result_json)"

SETS: dict[str, EntitySet] = {
    s.name: s
    for s in (
        EntitySet(
            "Things", "things",
            (*_common()[:-1],
             Prop("properties", "CASE WHEN e.collection IS NULL THEN e.properties ELSE "
                  "coalesce(e.properties, '{}') || jsonb_build_object('collection', "
                  "e.collection, 'key', e.feature_key, 'retired', e.retired) END", "json")),
            (Nav("Locations", "Locations", True, "link", "thing_id", "things_locations",
                 "location_id"),
             Nav("HistoricalLocations", "HistoricalLocations", True, "child", "thing_id"),
             Nav("Datastreams", "Datastreams", True, "child", "thing_id")),
            "Thing", ("name", "description"),
        ),
        EntitySet(
            "Locations", "locations",
            _common(Prop("encodingType", "e.encoding_type", "text"),
                    Prop("location", _GEOJSON, "geometry", "e.geom")),
            (Nav("Things", "Things", True, "link", "location_id", "things_locations",
                 "thing_id"),
             Nav("HistoricalLocations", "HistoricalLocations", True, "link", "location_id",
                 "historical_locations_locations", "historical_location_id")),
            "Location", ("name", "description", "encodingType", "location"),
        ),
        EntitySet(
            "HistoricalLocations", "historical_locations",
            (Prop("@iot.id", "e.id", "number"), Prop("time", "e.time", "time", form="time")),
            (Nav("Thing", "Things", False, "parent", "thing_id"),
             Nav("Locations", "Locations", True, "link", "historical_location_id",
                 "historical_locations_locations", "location_id")),
            "HistoricalLocation", ("time",),
        ),
        EntitySet(
            "Sensors", "sensors",
            _common(Prop("encodingType", "e.encoding_type", "text"),
                    Prop("metadata", "e.metadata", "text")),
            (Nav("Datastreams", "Datastreams", True, "child", "sensor_id"),),
            "Sensor", ("name", "description", "encodingType", "metadata"),
        ),
        EntitySet(
            "ObservedProperties", "observed_properties",
            (Prop("@iot.id", "e.id", "number"), Prop("name", "e.name", "text"),
             Prop("definition", "e.definition", "text"),
             Prop("description", "e.description", "text"),
             Prop("properties", "e.properties", "json")),
            (Nav("Datastreams", "Datastreams", True, "child", "observed_property_id"),),
            "ObservedProperty", ("name", "definition", "description"),
        ),
        EntitySet(
            "Datastreams", "datastreams",
            _common(Prop("unitOfMeasurement", "e.unit", "json"),
                    Prop("observationType", "e.observation_type", "text"),
                    Prop("observedArea", "ST_AsGeoJSON(e.observed_area, 9)::jsonb", "geometry",
                         "e.observed_area"),
                    Prop("phenomenonTime", "e.phenomenon_first", "time", form="interval",
                         end="e.phenomenon_last"),
                    Prop("resultTime", "e.result_first", "time", form="interval",
                         end="e.result_last")),
            (Nav("Thing", "Things", False, "parent", "thing_id"),
             Nav("Sensor", "Sensors", False, "parent", "sensor_id"),
             Nav("ObservedProperty", "ObservedProperties", False, "parent",
                 "observed_property_id"),
             Nav("Observations", "Observations", True, "child", "datastream_id")),
            "Datastream",
            ("name", "description", "unitOfMeasurement", "observationType"),
        ),
        EntitySet(
            "Observations", "observations",
            (Prop("@iot.id", "e.id", "number"),
             Prop("phenomenonTime", "e.phenomenon_start", "time", form="interval",
                  end="e.phenomenon_end"),
             Prop("resultTime", "e.result_time", "time", form="time"),
             Prop("result", _RESULT, "json"),
             Prop("resultQuality", "e.result_quality", "json"),
             Prop("validTime", "e.valid_start", "time", form="interval", end="e.valid_end"),
             Prop("parameters", "e.parameters", "json")),
            (Nav("Datastream", "Datastreams", False, "parent", "datastream_id"),
             Nav("FeatureOfInterest", "FeaturesOfInterest", False, "parent", "feature_id")),
            "Observation", ("result",),
        ),
        EntitySet(
            "FeaturesOfInterest", "features",
            _common(Prop("encodingType", "e.encoding_type", "text"),
                    Prop("feature", _GEOJSON, "geometry", "e.geom")),
            (Nav("Observations", "Observations", True, "child", "feature_id"),),
            "FeatureOfInterest", ("name", "description", "encodingType", "feature"),
        ),
    )
}  # fmt: skip
"""The entity sets of SensorThings 1.1 (MultiDatastreams are not offered)."""

BY_SINGULAR = {s.singular: s for s in SETS.values()}


def self_link(base: str, entity_set: str, entity_id: int) -> str:
    """An entity's ``@iot.selfLink``: ``<base>/<EntitySet>(<id>)`` (``base`` is the
    service root, e.g. ``http://host/sta/v1.1``)."""
    return f"{base}/{entity_set}({entity_id})"
