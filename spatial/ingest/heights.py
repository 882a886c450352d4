"""The heights an RPC scene is orthorectified with: an elevation collection's items.

The collection is ``--dem`` or the only elevation collection of the catalog (what
``spatial ingest raster --kind elevation`` records as ``spatial:kind``). Its items under
the scene's footprint are read as their native COGs where the raster store keeps them: one
item when it covers the scene, else a mosaic of the items (a VRT in the job's work folder,
newest on top, at the finest item's resolution; the items must share a CRS). At most
:data:`MAX_OUTSIDE` of the footprint may lie beyond the DEM: those pixels, like DEM cells
without data, take the DEM's mean height. Each refusal says what is missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import shapely
from rasterio.crs import CRS
from sqlalchemy import text

from spatial import rasterstore
from spatial.db import engine
from spatial.errors import InvalidInputError
from spatial.ingest.orthorectify import Dem, RpcScene
from spatial.settings import Settings

MAX_OUTSIDE = 0.02
"""Share of a scene's footprint that may lie beyond the DEM (it gets the mean height)."""
MAX_ITEMS = 64
"""DEM items one mosaic may hold."""

_ELEVATION = text(  # the collection kind `--kind elevation` records (spatial.ingest.raster)
    "SELECT id FROM platform.collections WHERE kind = 'raster' AND "
    "('elevation' IN (properties->>'spatial:kind', properties->>'raster_kind', "
    "properties->>'kind') OR 'elevation' = ANY(keywords)) ORDER BY id"
)
_ITEMS = text(
    "SELECT id, data_path, properties, ST_AsText(geom) FROM rs.items "
    "WHERE collection_id = :cid AND ST_Intersects(geom, ST_GeomFromText(:footprint, 4326)) "
    "ORDER BY datetime, id"
)


@dataclass(frozen=True)
class _Item:
    id: str
    data_path: str
    properties: dict[str, Any]
    footprint: Any


def elevation_collections(url: str) -> list[str]:
    """The ids of the elevation collections in the catalog."""
    with engine(url) as eng, eng.connect() as conn:
        return [row[0] for row in conn.execute(_ELEVATION)]


def choose_dem(
    url: str, dem: str | None, scene: RpcScene, settings: Settings, *, work: Path | None = None
) -> Dem:
    """The heights for a scene: of ``dem`` (a collection id) or the only elevation
    collection. A mosaic of several items is written into ``work`` (without it, only
    checked).

    Raises:
        InvalidInputError: no elevation collection (or several, and no ``--dem``), an
            unknown or non-elevation ``--dem``, a scene outside the DEM, DEM items in
            different CRSs.
    """
    collection = _collection(url, dem, scene.path.name)
    with engine(url) as eng, eng.connect() as conn:
        rows = conn.execute(_ITEMS, {"cid": collection, "footprint": scene.footprint.wkt})
        items = [_Item(r[0], r[1], r[2] or {}, shapely.from_wkt(r[3])) for r in rows]
    box = ", ".join(f"{v:.3f}" for v in scene.footprint.bounds)
    if not items:
        raise InvalidInputError(
            f"{scene.path.name}: the scene (lon/lat {box}) lies outside the DEM {collection}; "
            "ingest elevation covering it (--kind elevation), or name another DEM with --dem"
        )
    area = scene.footprint.area
    best = max(reversed(items), key=lambda i: _share(i.footprint, scene.footprint, area))
    if _share(best.footprint, scene.footprint, area) >= 1 - MAX_OUTSIDE:
        return _single(collection, best, settings)
    covered = _share(shapely.union_all([i.footprint for i in items]), scene.footprint, area)
    if covered < 1 - MAX_OUTSIDE:
        extent = shapely.union_all([i.footprint for i in items]).bounds
        raise InvalidInputError(
            f"{scene.path.name}: {100 * (1 - covered):.0f}% of the scene (lon/lat {box}) lies "
            f"outside the DEM {collection} (lon/lat {', '.join(f'{v:.3f}' for v in extent)}); "
            f"at most {100 * MAX_OUTSIDE:g}% may: ingest elevation covering the scene"
        )
    return _mosaic(collection, items, settings, scene.path, work)


def _collection(url: str, dem: str | None, name: str) -> str:
    known = elevation_collections(url)
    if dem is None:
        if not known:
            raise InvalidInputError(
                f"{name} is georeferenced by RPCs only and needs a DEM to be orthorectified, "
                "but the catalog has no elevation collection: ingest one first (spatial "
                "ingest raster dem.tif --collection dem --kind elevation), or name one "
                "with --dem"
            )
        if len(known) > 1:
            raise InvalidInputError(
                f"{name}: several elevation collections ({', '.join(known)}); choose the "
                "DEM to orthorectify with --dem"
            )
        return known[0]
    if dem not in known:
        listed = ", ".join(known) or "none (ingest one with --kind elevation)"
        raise InvalidInputError(
            f"--dem {dem}: not an elevation collection of the catalog; elevation "
            f"collections: {listed}"
        )
    return dem


def _share(cover: Any, footprint: Any, area: float) -> float:
    return float(shapely.intersection(cover, footprint).area / area) if area > 0 else 0.0


def _mean(item: _Item) -> float:
    stats = (item.properties.get("raster:bands") or [{}])[0].get("statistics") or {}
    return float(stats.get("mean", 0.0))


def _crs(item: _Item) -> CRS:
    wkt = item.properties.get("proj:wkt2") or item.properties.get("proj:code") or "EPSG:4326"
    return CRS.from_user_input(wkt)


def _single(collection: str, item: _Item, settings: Settings) -> Dem:
    store = rasterstore.of(settings)
    return Dem(
        collection=collection,
        item=item.id,
        gdal_path=str(store.gdal_path(item.data_path)),
        crs_wkt=_crs(item).to_wkt(),
        mean=_mean(item),
        coverage=1.0,
    )


def _mosaic(
    collection: str, items: list[_Item], settings: Settings, scene: Path, work: Path | None
) -> Dem:
    """The items as one VRT (later items drawn over earlier ones: newest on top)."""
    name = scene.name
    if len(items) > MAX_ITEMS:
        raise InvalidInputError(
            f"{name}: the scene lies over {len(items)} items of the DEM {collection}, more "
            f"than the {MAX_ITEMS} one orthorectification reads; ingest a coarser DEM"
        )
    crs = {_crs(i).to_wkt() for i in items}
    if len(crs) > 1:
        raise InvalidInputError(
            f"{name}: the items of the DEM {collection} under the scene "
            f"({', '.join(i.id for i in items)}) are in different CRSs; ingest them in one"
        )
    label = "+".join(i.id for i in items)
    mean = sum(_mean(i) for i in items) / len(items)
    target = None if work is None else work / f"{scene.stem}.dem.vrt"
    path = "" if target is None else str(_write_vrt(items, settings, crs.pop(), target))
    return Dem(collection, label, path, _crs(items[0]).to_wkt(), mean, 1.0)


def _write_vrt(items: list[_Item], settings: Settings, wkt: str, target: Path) -> Path:
    store = rasterstore.of(settings)
    grids = []
    for item in items:
        a, _, c, _, e, f = (item.properties.get("proj:transform") or [])[:6]
        height, width = item.properties["proj:shape"]
        grids.append((item, float(a), float(c), float(e), float(f), int(width), int(height)))
    res = min(abs(g[1]) for g in grids)
    left = min(g[2] for g in grids)
    top = max(g[4] for g in grids)
    right = max(g[2] + g[1] * g[5] for g in grids)
    bottom = min(g[4] + g[3] * g[6] for g in grids)
    cols, rows = math.ceil((right - left) / res - 1e-9), math.ceil((top - bottom) / res - 1e-9)
    bands = grids[0][0].properties.get("raster:bands") or [{}]
    nodata = bands[0].get("nodata")
    fill = -32768.0 if nodata is None else float(nodata)
    sources = []
    for item, a, c, e, f, width, height in grids:
        source = escape(str(store.gdal_path(item.data_path)))
        sources.append(
            "<ComplexSource>"
            f'<SourceFilename relativeToVRT="0">{source}</SourceFilename>'
            "<SourceBand>1</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>'
            f'<DstRect xOff="{(c - left) / res!r}" yOff="{(top - f) / res!r}" '
            f'xSize="{width * abs(a) / res!r}" ySize="{height * abs(e) / res!r}"/>'
            + (f"<NODATA>{nodata!r}</NODATA>" if nodata is not None else "")
            + "</ComplexSource>"
        )
    document = (
        f'<VRTDataset rasterXSize="{cols}" rasterYSize="{rows}">'
        f"<SRS>{escape(wkt)}</SRS>"
        f"<GeoTransform>{left!r}, {res!r}, 0, {top!r}, 0, {-res!r}</GeoTransform>"
        f'<VRTRasterBand dataType="Float32" band="1">'
        f"<NoDataValue>{fill!r}</NoDataValue>{''.join(sources)}</VRTRasterBand>"
        "</VRTDataset>"
    )
    target.write_text(document, encoding="utf-8")
    return target
