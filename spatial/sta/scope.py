"""Who may read which SensorThings entities: the platform's access policy applied in SQL.

A Thing made from a station collection (``water_gauges``) is readable by whoever may read
that feature of the collection: the collection's grants and row filters decide, as for its
features, tiles and live stream. Any other Thing is its department's: readable by that
department's signed-in members and by admins. What hangs off a Thing (its Locations,
HistoricalLocations, Datastreams and their Observations) is readable with it; a Sensor,
an ObservedProperty or a FeatureOfInterest is readable by its department and wherever a
readable Datastream uses it.

The conditions are composed SQL over an entity set's alias ``e``, values bound as literals
quoted by the driver (as :class:`spatial.features.Rows` are): they are built per request
from the caller's view (:meth:`layers.access.View.sta_scope`).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from spatial.features import Rows


@dataclass(frozen=True)
class Restricted:
    """A station collection the caller may read only some rows of."""

    collection: str
    schema: str
    table: str
    key: str
    """The collection's key attribute (what ``sta.things.feature_key`` holds)."""
    rows: Rows


@dataclass(frozen=True)
class Scope:
    """What one caller may read of the SensorThings entities."""

    admin: bool = False
    department: str | None = None
    """The caller's department (None: anonymous, or no department)."""
    full: tuple[str, ...] = ()
    """Station collections the caller may read every row of."""
    restricted: tuple[Restricted, ...] = ()

    def things(self, alias: str) -> sql.Composable:
        """The condition on a Thing (the row ``alias`` of ``sta.things``)."""
        if self.admin:
            return sql.SQL("TRUE")
        t = sql.Identifier(alias)
        parts: list[sql.Composable] = []
        if self.department is not None:
            parts.append(sql.SQL("{}.department = {}").format(t, sql.Literal(self.department)))
        if self.full:
            parts.append(sql.SQL("{}.collection = ANY({})").format(t, sql.Literal(list(self.full))))
        for r in self.restricted:
            parts.append(
                sql.SQL(
                    "({t}.collection = {c} AND EXISTS (SELECT 1 FROM {table} t "
                    "WHERE t.{key}::text = {t}.feature_key AND ({rows})))"
                ).format(
                    t=t,
                    c=sql.Literal(r.collection),
                    table=sql.Identifier(r.schema, r.table),
                    key=sql.Identifier(r.key),
                    rows=r.rows.condition,
                )
            )
        if not parts:
            return sql.SQL("FALSE")
        return sql.SQL("({})").format(sql.SQL(" OR ").join(parts))

    def datastreams(self, alias: str) -> sql.Composable:
        """The condition on a Datastream (the row ``alias`` of ``sta.datastreams``)."""
        if self.admin:
            return sql.SQL("TRUE")
        return sql.SQL(
            "EXISTS (SELECT 1 FROM sta.things st WHERE st.id = {}.thing_id AND {})"
        ).format(sql.Identifier(alias), self.things("st"))

    def entity(self, entity_set: str, alias: str = "e") -> sql.Composable:  # noqa: PLR0911 - a case per set
        """The condition on a row of ``entity_set`` (a name of
        :data:`spatial.sta.entities.SETS`)."""
        if self.admin:
            return sql.SQL("TRUE")
        e = sql.Identifier(alias)
        own = (
            sql.SQL("{}.department = {}").format(e, sql.Literal(self.department))
            if self.department is not None else sql.SQL("FALSE")
        )  # fmt: skip
        used = sql.SQL(
            "EXISTS (SELECT 1 FROM sta.datastreams sd WHERE sd.{} = {}.id AND {})"
        )  # fmt: skip
        match entity_set:
            case "Things":
                return self.things(alias)
            case "Datastreams":
                return self.datastreams(alias)
            case "Observations":
                return sql.SQL(
                    "EXISTS (SELECT 1 FROM sta.datastreams sd WHERE sd.id = {}.datastream_id "
                    "AND {})"
                ).format(e, self.datastreams("sd"))
            case "Locations":
                return sql.SQL(
                    "({} OR EXISTS (SELECT 1 FROM sta.things_locations sl "
                    "JOIN sta.things lt ON lt.id = sl.thing_id "
                    "WHERE sl.location_id = {}.id AND {}))"
                ).format(own, e, self.things("lt"))
            case "HistoricalLocations":
                return sql.SQL(
                    "EXISTS (SELECT 1 FROM sta.things ht WHERE ht.id = {}.thing_id AND {})"
                ).format(e, self.things("ht"))
            case "Sensors":
                return sql.SQL("({} OR {})").format(
                    own, used.format(sql.Identifier("sensor_id"), e, self.datastreams("sd"))
                )
            case "ObservedProperties":
                return sql.SQL("({} OR {})").format(
                    own, used.format(sql.Identifier("observed_property_id"), e,
                                     self.datastreams("sd")))  # fmt: skip
            case "FeaturesOfInterest":
                return sql.SQL(
                    "({} OR EXISTS (SELECT 1 FROM sta.things_locations fl "
                    "JOIN sta.things ft ON ft.id = fl.thing_id "
                    "WHERE fl.location_id = {}.location_id AND {}))"
                ).format(own, e, self.things("ft"))
        msg = f"no entity set {entity_set!r}"
        raise ValueError(msg)
