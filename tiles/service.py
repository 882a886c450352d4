"""The tile service: vector and raster tiles through one cache, one ETag, one invalidation.

Every tile the platform serves (MVT of a collection or of a subsystem, map and value tiles
of imagery) goes through :meth:`TileService.vector` or :meth:`TileService.raster`:

- one cache (:class:`~tiles.cache.TileCache`: memory, and the shared disk tier when
  configured, read and written on a thread so the event loop never waits on the disk);
- one ETag (the tile's CRC-32 and length, :class:`~tiles.cache.CachedTile`), so one rule
  for ``If-None-Match`` in the API (:func:`api.tiling.respond`);
- gzip where it helps: an MVT tile is compressed the first time a client accepting gzip
  asks for it, and the compressed form is kept beside it in the cache (:meth:`gzipped`);
  PNG, WebP, JPEG and DEFLATE GeoTIFF are not compressed again;
- one invalidation path: every change to a collection's data, vector or raster, sends
  ``NOTIFY spatial_tiles`` with the area it touched (:mod:`spatial.changes`), and each
  worker drops the cached tiles of that collection meeting it (:mod:`api.catalog`). A
  render that began before a change is not kept after it (the cache's generations).

A new tile kind is a method here that renders bytes for a :class:`~tiles.cache.Key` and
hands them to :meth:`TileService._serve`: vector tiles, raster tiles, terrain tiles and
map tiles drawn by the map renderer (:meth:`TileService.map_tile`, the WMTS's).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import psycopg

from layers.access import View
from layers.collections import RasterCollection, TileLayer
from spatial import rasterstore
from spatial.mosaic import TimeWindow
from spatial.settings import Settings
from tiles import mvt, raster, render, terrain
from tiles.cache import CachedTile, Key, TileCache
from tiles.tms import TileAddress

MVT = "application/vnd.mapbox-vector-tile"
Connect = Callable[[bool], AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]]
"""Lends a connection for a render; the flag asks for the primary (no replica)."""
GZIP_MIN_BYTES = 512
"""Smaller tiles are sent as they are: gzip's header and the work would cost more."""
GZIP_INLINE_BYTES = 65_536
"""Larger tiles are compressed on a thread, not on the event loop."""


@dataclass(frozen=True)
class Tile:
    """A tile to send: its bytes (empty: no data there), ETag and media type."""

    cached: CachedTile
    media_type: str
    hit: bool
    key: Key
    compressible: bool
    """Whether gzip helps (MVT; not the image formats, compressed already)."""

    @property
    def data(self) -> bytes:
        """The tile as rendered (empty for a tile with nothing in it)."""
        return self.cached.data

    @property
    def gzips(self) -> bool:
        """Whether the tile is worth sending gzipped."""
        return self.compressible and len(self.cached.data) >= GZIP_MIN_BYTES

    @property
    def etag(self) -> str:
        """The tile's ETag (quoted)."""
        return f'"{self.cached.etag}"'


class TileService:
    """Renders tiles on a cache miss and serves them from the cache otherwise."""

    def __init__(self, cache: TileCache, settings: Settings) -> None:
        """A service over ``cache`` with the tile settings (zoom limit, feature cap,
        gzip) and the raster store of ``settings``."""
        self.cache = cache
        self.settings = settings.tiles
        self.store = rasterstore.of(settings)

    async def vector(
        self, layers: Sequence[TileLayer], versions: dict[str, int], scope: str,
        tile: TileAddress, connect: Connect, *, replica_window: float | None = None,
    ) -> Tile:  # fmt: skip
        """An MVT tile of ``layers`` (one MVT layer each), cached under ``scope`` (who sees
        the same rows of the same layers shares it). ``versions``: the catalog version of
        each collection. A tile of a collection that changed within ``replica_window``
        seconds is cut on the primary (a replica may not have replayed the change, and
        its stale tile would be cached)."""
        props = ",".join(layers[0].properties or ()) if len(layers) == 1 else ""
        key: Key = (scope, tile.tms, tile.z, tile.row, tile.col, props)
        names = [tl.name for tl in layers]

        async def render() -> bytes:
            statement = mvt.tile_statement(layers, tile, self.settings.max_features)
            if statement is None:
                return b""
            primary = replica_window is not None and self.cache.changed_within(
                names, replica_window
            )
            async with connect(primary) as conn:
                # Binary results: the bytes as they are, not hex text to decode.
                cur = await conn.execute(*statement, binary=True)
                row = await cur.fetchone()
            return bytes(row[0]) if row and row[0] else b""

        return await self._serve(key, tile, versions, render, MVT, compress=self.settings.gzip)

    async def raster(
        self, collection: RasterCollection, tile: TileAddress, style: raster.Style,
        connect: Connect, *, fmt: str, values: bool, item_id: str | None, when: TimeWindow,
        query: str,
    ) -> Tile:  # fmt: skip
        """A map tile (``fmt`` of :data:`tiles.raster.MAP_FORMATS`) or, with ``values``, a
        value tile (float32 GeoTIFF) of the collection's mosaic (or its one item
        ``item_id``), cached under the query that asked for it (``query``)."""
        scope = f"raster|{collection.id}|{item_id or ''}|{values}|{query}"
        key: Key = (scope, tile.tms, tile.z, tile.row, tile.col, "")
        where = (tile.tms, tile.z, tile.col, tile.row)

        async def render() -> bytes:
            async with connect(False) as conn:
                scenes = await collection.scenes(
                    conn, self.store, item_id=item_id, lonlat=tile.lonlat, when=when
                )
            if values:
                data = await asyncio.to_thread(raster.value_tile, scenes, style, where)
            else:
                data = await asyncio.to_thread(raster.map_tile, scenes, style, where, fmt)
            return data or b""

        media = raster.TIFF if values else raster.MAP_FORMATS[fmt]
        versions = {collection.id: collection.version}
        return await self._serve(key, tile, versions, render, media, compress=False)

    async def terrain_tile(
        self, collection: RasterCollection, tile: TileAddress, connect: Connect, *,
        shading: terrain.Shading | None,
    ) -> Tile:  # fmt: skip
        """A terrain tile of an elevation collection: the heights in Terrarium encoding, or
        with ``shading`` a hillshade (both PNG, :mod:`tiles.terrain`)."""
        what = f"hillshade|{shading.key}" if shading is not None else "terrarium"
        key: Key = (f"terrain|{collection.id}|{what}", tile.tms, tile.z, tile.row, tile.col, "")
        where = (tile.tms, tile.z, tile.col, tile.row)

        async def render() -> bytes:
            async with connect(False) as conn:
                scenes = await collection.scenes(conn, self.store, lonlat=tile.lonlat)
            if shading is None:
                data = await asyncio.to_thread(terrain.terrarium_tile, scenes, where)
            else:
                data = await asyncio.to_thread(terrain.hillshade_tile, scenes, where, shading)
            return data or b""

        versions = {collection.id: collection.version}
        return await self._serve(key, tile, versions, render, "image/png", compress=False)

    async def map_tile(
        self, view: View, drawables: Sequence[render.Drawable], tile: TileAddress,
        connect: Connect, *, scope: str, fmt: str,
    ) -> Tile:  # fmt: skip
        """A 256 x 256 tile of ``drawables`` drawn by the map renderer (:mod:`tiles.render`,
        the caller's rows), PNG (transparent) or JPEG; ``scope`` names the layer and style.

        One tile a render: metatiles (GeoWebCache's 4 x 4 blocks, cut and cached) were
        built and measured slower here (benchmarks/classic.py: 17-25 against 58-90 tiles/s
        at z14): each worker has its own memory cache, so each rendered the block again,
        and a 1024 x 1024 render holds a render thread for 0.23 s while single tiles run
        side by side."""
        versions = {d.collection: view.collection(d.collection).version for d in drawables}
        scope = f"map|{scope}|{fmt}|{view.fingerprint(versions)}"
        key: Key = (scope, tile.tms, tile.z, tile.row, tile.col, "")
        frame = render.Frame(bbox=tile.bounds, crs=tile.srid, width=256, height=256,
                             format="jpeg" if fmt == "jpeg" else "png")  # fmt: skip

        async def draw() -> bytes:
            async with connect(False) as conn:
                return await render.render(conn, view, self.store, drawables, frame)

        media = render.MEDIA_TYPES[frame.format]
        return await self._serve(key, tile, versions, draw, media, compress=False)

    async def _serve(
        self, key: Key, tile: TileAddress, versions: dict[str, int],
        render: Callable[[], Awaitable[bytes]], media_type: str, *, compress: bool,
    ) -> Tile:  # fmt: skip
        """The cached tile of ``key``, or a new render of it, kept unless its data changed
        while it was rendered."""
        cache = self.cache
        found = await asyncio.to_thread(cache.get, key) if cache.disk else cache.get(key)
        if found is not None:
            return Tile(found, media_type, hit=True, key=key, compressible=compress)
        generation = cache.generation(versions)
        made = CachedTile.of(await render(), tile.lonlat, versions)
        if cache.disk:
            await asyncio.to_thread(cache.put, key, made, generation)
        else:
            cache.put(key, made, generation)
        return Tile(made, media_type, hit=False, key=key, compressible=compress)

    async def gzipped(self, tile: Tile) -> bytes:
        """The tile's bytes gzipped: compressed the first time (on a thread when large) and
        kept in the cache beside the tile, so later clients get them as they are."""
        if tile.cached.gzipped is not None:
            return tile.cached.gzipped
        data = tile.cached.data
        if len(data) <= GZIP_INLINE_BYTES:
            zipped = gzip.compress(data, compresslevel=5)
        else:
            zipped = await asyncio.to_thread(gzip.compress, data, 5)
        if self.cache.disk:
            await asyncio.to_thread(self.cache.add_gzip, tile.key, tile.cached, zipped)
        else:
            self.cache.add_gzip(tile.key, tile.cached, zipped)
        return zipped
