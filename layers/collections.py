"""The collections as one caller sees them: one class per kind, each with its operations.

A caller's :class:`~layers.access.View` hands out these objects with the caller's row
restriction already applied (:attr:`Collection.rows`), so an operation can only reach
the rows the caller may see. The classes run their SQL through the core functions of
:mod:`spatial` on the open connection they are given; they hold no connection and no
state beyond the catalog entry.

- :class:`VectorCollection`: features (a GeoJSON page, one feature, files), past editions
  and the changes between them, edits, and the description of its vector tile layer;
- :class:`GpsView`: a read-only vector collection over the GPS schema (positions move all
  the time, so its tiles do not trust the catalog's extent);
- :class:`RasterCollection`: its scenes under a box and in a time window (what map tiles,
  value tiles and coverages are made of, :mod:`tiles.raster`).

A new kind is a new class here, registered in :data:`KINDS` under a new
:class:`~spatial.catalog.Kind`.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, ClassVar

import psycopg
from psycopg.rows import dict_row

from spatial import edits, exports, mosaic, rasterstore
from spatial import features as feats
from spatial.audit import Actor
from spatial.catalog import CollectionRecord, Kind
from spatial.errors import ForbiddenError, InvalidInputError, NotFoundError
from spatial.features import ItemsQuery, LayerSchema, Rows, ServingCrs
from spatial.ingest import history

Conn = psycopg.AsyncConnection[Any]
CHANGE_KINDS = frozenset({"added", "removed", "geometry", "attributes"})


class Collection(ABC):
    """A catalog entry as one caller may read it."""

    kind: ClassVar[Kind]

    def __init__(self, record: CollectionRecord, rows: Rows | None = None) -> None:
        """The collection of ``record``, seen through ``rows`` (None: every row)."""
        self.record = record
        self.rows = rows

    @property
    def id(self) -> str:
        """The collection's id."""
        return self.record.id

    @property
    def title(self) -> str:
        """Its title."""
        return self.record.title

    @property
    def version(self) -> int:
        """The catalog version (bumped by every re-registration)."""
        return self.record.version


@dataclass(frozen=True)
class TileLayer:
    """A vector collection as a layer of vector tiles (:mod:`tiles.mvt` renders it)."""

    layer: LayerSchema
    bbox: tuple[float, float, float, float] | None
    """The data's lon/lat extent (from the catalog); no tile outside it reads the table."""
    points: bool = False
    """Point layers keep every feature (no minimum size)."""
    properties: tuple[str, ...] | None = None
    """The attributes carried (all when None)."""

    @property
    def name(self) -> str:
        """The MVT layer's name: the collection id."""
        return self.layer.id


@dataclass(frozen=True)
class FeaturePage:
    """A page of features as PostGIS wrote them, and what frames it."""

    features: str
    """The page's GeoJSON Feature texts, joined by commas."""
    returned: int
    matched: int | None
    """How many features match (None: not known)."""
    estimated: bool
    """Whether ``matched`` is the planner's estimate (beyond :data:`feats.COUNT_CAP`)."""
    last: int | None
    """The largest feature id of the page (the next page's ``after``)."""


class VectorCollection(Collection):
    """A vector layer: a table of typed columns and a geometry, with editions."""

    kind = Kind.VECTOR

    def __init__(
        self,
        record: CollectionRecord,
        rows: Rows | None = None,
        layer: LayerSchema | None = None,
    ) -> None:
        """The layer of ``record`` seen through ``rows`` (``layer``: a schema already
        made, e.g. of a past edition)."""
        super().__init__(record, rows)
        self.layer = layer or LayerSchema.of(record, restriction=rows)

    @property
    def fields(self) -> Mapping[str, str]:
        """Attribute columns and their PostgreSQL types, in table order."""
        return self.layer.fields

    async def at(self, conn: Conn, when: dt.datetime | None) -> VectorCollection:
        """The collection as it was at ``when`` (its edition then); itself for None or
        when that is the latest edition.

        Raises:
            InvalidInputError: before its first edition, or a collection without editions.
        """
        if when is None:
            return self
        cur = await conn.execute(history.EDITION_AT, {"cid": self.id, "when": when})
        edition = history.past_edition(self.id, when, await cur.fetchone())
        if edition is None:
            return self
        return type(self)(self.record, self.rows, replace(self.layer, edition=edition))

    async def features(self, conn: Conn, q: ItemsQuery) -> FeaturePage:
        """A page of features, built by PostGIS, with the number matched: exact from the
        catalog without a filter, counted up to :data:`feats.COUNT_CAP`, else the
        planner's estimate."""
        statement, params = feats.page_statement(self.layer, q)
        cur = await conn.execute(statement, params)
        row = await cur.fetchone()
        text, returned, counted, last = row if row else ("", 0, None, None)
        if not feats.needs_count(self.layer, q):
            return FeaturePage(text, returned, self.layer.feature_count, False, last)
        if counted is not None and counted <= feats.COUNT_CAP:
            return FeaturePage(text, returned, counted, False, last)
        statement, params = feats.estimate_statement(self.layer, q)
        cur = await conn.execute(statement, params)
        plan = await cur.fetchone()
        estimate = max(feats.plan_rows(plan[0]) if plan else 0, counted or 0)
        return FeaturePage(text, returned, estimate, True, last)

    async def feature(self, conn: Conn, fid: int, q: ItemsQuery) -> tuple[str, str]:
        """One feature's GeoJSON text and its ETag.

        Raises:
            NotFoundError: no such feature among the caller's rows.
        """
        statement, params = feats.item_statement(self.layer, fid, q)
        cur = await conn.execute(statement, params)
        row = await cur.fetchone()
        if row is None:
            msg = f"collection {self.id!r} has no feature {fid}"
            raise NotFoundError(msg)
        return str(row[0]), str(row[1])

    async def export(self, conn: Conn, q: ItemsQuery, fmt: str) -> bytes:
        """The page of ``q`` as a file: ``csv``, ``fgb`` or ``gpkg``."""
        return await exports.export(conn, self.layer, q, fmt)

    def tile_layer(self, properties: tuple[str, ...] | None = None) -> TileLayer:
        """The collection as a vector tile layer carrying ``properties`` (all: None)."""
        kind = str(self.record.properties.get("geometry_type", "")).lower()
        return TileLayer(self.layer, self._tile_bbox(), "point" in kind, properties)

    def _tile_bbox(self) -> tuple[float, float, float, float] | None:
        return self.record.bbox

    async def editions(self, conn: Conn) -> list[dict[str, Any]]:
        """Every edition in order, each with its valid-from time, source and counts.

        Raises:
            NotFoundError: the collection keeps no editions.
        """
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(history.EDITIONS, (self.id,))
            rows: list[dict[str, Any]] = await cur.fetchall()
        if not rows:
            msg = f"collection {self.id!r} has no editions"
            raise NotFoundError(msg)
        for row in rows:
            row["valid_from"] = row["valid_from"].isoformat()
            row["recorded_at"] = row["recorded_at"].isoformat()
        return rows

    async def changes(
        self, conn: Conn, *, start: int | None, end: int | None, change: str | None,
        limit: int, offset: int,
    ) -> dict[str, Any]:  # fmt: skip
        """The changes the editions after ``start`` up to ``end`` made, by key, in order:
        ``{"from", "to", "counts", "numberMatched", "changes"}``.

        Raises:
            ForbiddenError: the caller may read only some rows (changes name every row's key).
            InvalidInputError: editions out of order or range, or an unknown kind of change.
        """
        if self.rows is not None:
            msg = (
                f"the changes of {self.id!r} name features of every row, and your access "
                "covers only some of its rows"
            )
            raise ForbiddenError(msg)
        latest = (await self.editions(conn))[-1]["edition"]
        end = latest if end is None else end
        start = max(end - 1, 0) if start is None else start
        if end > latest or start >= end:
            msg = f"need from < to <= {latest} (the latest edition); got from={start}, to={end}"
            raise InvalidInputError(msg)
        if change is not None and change not in CHANGE_KINDS:
            msg = f"change must be one of {', '.join(sorted(CHANGE_KINDS))}"
            raise InvalidInputError(msg)
        values = {"cid": self.id, "from": start, "to": end, "kind": change,
                  "limit": limit, "offset": offset}  # fmt: skip
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(history.CHANGE_COUNTS, values)
            counts = {r["change"]: r["n"] for r in await cur.fetchall()}
            await cur.execute(history.CHANGES, values)
            found = await cur.fetchall()
        return {"from": start, "to": end, "counts": counts,
                "numberMatched": sum(counts.values()), "changes": found}  # fmt: skip

    def editable(self) -> edits.Editable:
        """What an edit of this collection needs (its rows: those the caller may write).

        Raises:
            InvalidInputError: not editable, or without a key.
        """
        return edits.Editable.of(self.record, self.layer)

    async def create(
        self, conn: Conn, feature: dict[str, Any], crs: ServingCrs, actor: Actor
    ) -> edits.Edited:
        """Add a feature (Part 4); audited, one edition."""
        return await edits.create(conn, self.editable(), feature, crs=crs, actor=actor)

    async def replace(
        self, conn: Conn, fid: int, feature: dict[str, Any], *, crs: ServingCrs,
        actor: Actor, if_match: str | None, partial: bool,
    ) -> edits.Edited:  # fmt: skip
        """Replace (``partial``: update) a feature; audited, one edition."""
        return await edits.replace(conn, self.editable(), fid, feature, crs=crs, actor=actor,
                                   if_match=if_match, partial=partial)  # fmt: skip

    async def delete(
        self, conn: Conn, fid: int, *, actor: Actor, if_match: str | None
    ) -> edits.Edited:
        """Remove a feature (its last version stays in the history); audited."""
        return await edits.delete(conn, self.editable(), fid, actor=actor, if_match=if_match)


class GpsView(VectorCollection):
    """A read-only view of the GPS schema (latest positions, tracks, stops, events)."""

    kind = Kind.GPS

    def _tile_bbox(self) -> tuple[float, float, float, float] | None:
        return None  # positions move all the time: the catalog's extent may lag behind


class RasterCollection(Collection):
    """Imagery: scenes with their COGs, read as a mosaic (latest on top)."""

    kind = Kind.RASTER

    async def scenes(
        self, conn: Conn, store: rasterstore.RasterStore, *, item_id: str | None = None,
        lonlat: tuple[float, float, float, float] | None = None,
        when: mosaic.TimeWindow = (None, None),
    ) -> list[mosaic.Scene]:  # fmt: skip
        """The scenes meeting ``lonlat`` in the time window, newest first (see
        :func:`spatial.mosaic.scenes`).

        Raises:
            NotFoundError: ``item_id`` names no item of the collection.
        """
        return await mosaic.scenes(conn, store, self.id, item_id=item_id, lonlat=lonlat,
                                   when=when)  # fmt: skip


KINDS: Mapping[Kind, type[Collection]] = MappingProxyType(
    {Kind.VECTOR: VectorCollection, Kind.GPS: GpsView, Kind.RASTER: RasterCollection}
)
"""The class of each kind of collection."""


def collection(record: CollectionRecord, rows: Rows | None = None) -> Collection:
    """The collection of ``record`` as its kind's class, seen through ``rows``."""
    cls = KINDS[record.kind]
    if issubclass(cls, VectorCollection) and not feats.is_vector_layer(record):
        msg = f"collection {record.id!r} has no table to read"
        raise NotFoundError(msg)
    return cls(record, rows)
