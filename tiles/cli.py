"""``spatial tiles``: seed the shared tile cache, clear it, export tiles for offline use.

Registered with the ``spatial`` command through the ``spatial.commands`` entry point, so
that the command tree grows without ``spatial`` importing the tile engine.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import psycopg
import typer

from spatial import changes
from spatial.catalog import CollectionRecord, Kind
from spatial.cli.common import console, friendly, progress_bar
from spatial.db import engine, resolve_url
from spatial.errors import InvalidInputError, NotFoundError
from spatial.settings import Settings
from tiles.cache import CachedTile, DiskTier

app = typer.Typer(
    help="Vector tiles: seed the shared cache, clear it, export PMTiles.", no_args_is_help=True
)
cache_app = typer.Typer(help="The tile cache of every API worker.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _zooms(text: str) -> range:
    """``12`` or ``12-16``."""
    try:
        low, _, high = text.partition("-")
        zooms = range(int(low), int(high or low) + 1)
    except ValueError:
        msg = f"zoom {text!r} is not a level (12) or a range (12-16)"
        raise InvalidInputError(msg) from None
    if not zooms or zooms.start < 0 or zooms.stop > 25:
        msg = f"zoom {text!r} must be within 0-24, low to high"
        raise InvalidInputError(msg)
    return zooms


def _bbox(text: str | None, record: CollectionRecord) -> tuple[float, float, float, float]:
    if text is None:
        if record.bbox is None:
            msg = f"collection {record.id!r} has no extent; give --bbox"
            raise InvalidInputError(msg)
        return record.bbox
    from spatial.features import parse_bbox  # noqa: PLC0415 - pyproj

    return parse_bbox(text)


def _record(url: str, collection_id: str) -> CollectionRecord:
    from spatial.catalog import get_collection  # noqa: PLC0415 - SQLAlchemy, when run

    with engine(url) as eng, eng.connect() as conn:
        record = get_collection(conn, collection_id)
    if record.kind != Kind.VECTOR:
        msg = f"collection {collection_id!r} is {record.kind} data and has no vector tiles"
        raise NotFoundError(msg)
    return record


BBOX_HELP = "west,south,east,north [default: the data's extent]."


def _tiles(
    url: str, record: CollectionRecord, tms_id: str, zooms: range, bbox: tuple[float, ...],
    settings: Settings,
) -> Iterator[tuple[tuple[int, int, int], tuple[float, float, float, float], bytes]]:  # fmt: skip
    """((z, row, col), lon/lat bounds, MVT bytes) of every tile covering ``bbox``."""
    from layers.collections import VectorCollection  # noqa: PLC0415 - pyogrio, GDAL
    from tiles import mvt, tms  # noqa: PLC0415 - morecantile

    layer = VectorCollection(record).tile_layer()
    cap = settings.tiles.max_features
    addresses = tms.tiles_covering(tms_id, (bbox[0], bbox[1], bbox[2], bbox[3]), zooms)
    with progress_bar() as bar, psycopg.connect(url, autocommit=True) as conn:
        task = bar.add_task(f"rendering {record.id}", total=len(addresses))
        for z, row, col in addresses:
            tile = tms.address(tms_id, z, row, col, settings.tiles.max_zoom)
            yield (z, row, col), tile.lonlat, mvt.render(conn, [layer], tile, cap)
            bar.advance(task)


@app.command()
@friendly
def seed(
    collection: str = typer.Argument(..., help="The collection to render."),
    zoom: str = typer.Option("10-15", help="A zoom level or range, e.g. 12-16."),
    tms_id: str = typer.Option("WebMercatorQuad", "--tms", help="The tile matrix set."),
    bbox: str | None = typer.Option(None, help=BBOX_HELP),
) -> None:
    """Render tiles into the shared disk tier (SPATIAL_TILES_DISK_CACHE_DIR), where every API
    worker finds them."""

    settings = Settings()
    if settings.tiles.disk_cache_dir is None:
        msg = "seeding fills the shared disk tier: set SPATIAL_TILES_DISK_CACHE_DIR first"
        raise InvalidInputError(msg)
    url = resolve_url(settings)
    record = _record(url, collection)
    disk = DiskTier(settings.tiles.disk_cache_dir)
    written = empty = 0
    box = _bbox(bbox, record)
    for (z, row, col), lonlat, data in _tiles(url, record, tms_id, _zooms(zoom), box, settings):
        tile = CachedTile.of(data, lonlat, {collection: record.version})
        disk.put((collection, tms_id, z, row, col, ""), tile)
        written += 1
        empty += not data
    console.print(
        f"[green]seeded[/] {written} tiles of {collection} ({empty} empty) in {disk.path}"
    )


@cache_app.command("clear")
@friendly
def clear(
    collection: str | None = typer.Argument(None, help="Only this collection's tiles."),
) -> None:
    """Empty the cache of every running API worker (and the disk tier)."""
    settings = Settings()
    with psycopg.connect(resolve_url(settings), autocommit=True) as conn:
        conn.execute(*changes.everything(collection))
    if settings.tiles.disk_cache_dir is not None:
        DiskTier(settings.tiles.disk_cache_dir).invalidate(collection, None)
    console.print(f"[green]cleared[/] the tile cache of {collection or 'every collection'}")


@app.command()
@friendly
def export(
    collection: str = typer.Argument(..., help="The collection to export."),
    out: Path = typer.Argument(..., help="The PMTiles file to write."),
    zoom: str = typer.Option("10-15", help="A zoom level or range, e.g. 12-16."),
    bbox: str | None = typer.Option(None, help=BBOX_HELP),
) -> None:
    """Write a PMTiles archive (WebMercatorQuad, gzip-compressed MVT) for offline maps."""
    from pmtiles.tile import Compression, TileType, zxy_to_tileid  # noqa: PLC0415 - exports only
    from pmtiles.writer import Writer  # noqa: PLC0415 - exports only

    if not out.parent.is_dir():
        msg = f"{out.parent} is not a folder; the archive cannot be written there"
        raise InvalidInputError(msg)
    settings = Settings()
    url = resolve_url(settings)
    record = _record(url, collection)
    zooms = _zooms(zoom)
    box = _bbox(bbox, record)
    entries = [
        (zxy_to_tileid(z, col, row), gzip.compress(data, compresslevel=6))
        for (z, row, col), _, data in _tiles(url, record, "WebMercatorQuad", zooms, box, settings)
        if data
    ]
    entries.sort()
    e7 = [round(v * 10_000_000) for v in box]
    header = {
        "tile_type": TileType.MVT, "tile_compression": Compression.GZIP,
        "min_zoom": zooms.start, "max_zoom": zooms.stop - 1,
        "min_lon_e7": e7[0], "min_lat_e7": e7[1], "max_lon_e7": e7[2], "max_lat_e7": e7[3],
        "center_zoom": zooms.start, "center_lon_e7": (e7[0] + e7[2]) // 2,
        "center_lat_e7": (e7[1] + e7[3]) // 2,
    }  # fmt: skip
    fields = dict.fromkeys(record.properties.get("fields", {}), "String")
    metadata = {"name": record.title, "attribution": record.title,
                "vector_layers": [{"id": collection, "fields": fields}]}  # fmt: skip
    partial = out.with_name(out.name + ".partial")
    try:  # the archive appears whole or not at all
        with partial.open("wb") as f:
            writer = Writer(f)  # type: ignore[no-untyped-call]
            for tileid, data in entries:
                writer.write_tile(tileid, data)  # type: ignore[no-untyped-call]
            writer.finalize(header, metadata)  # type: ignore[no-untyped-call]
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    console.print(f"[green]exported[/] {len(entries)} tiles of {collection} to {out}")
