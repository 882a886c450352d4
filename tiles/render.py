"""Map images: the collections and subsystem maps drawn by Mapnik with the web maps' styles.

The one renderer of the platform (WMS, WMTS, OGC API - Maps and printing call it):

- :func:`resolve` turns a layer name (a collection, a subsystem map, or one layer of a map,
  ``{subsystem}:{layer}``) and a style id into :class:`Drawable` layers, through the
  caller's view: what they may not read does not exist (404);
- :func:`render` draws them into a :class:`Frame` (any EPSG CRS PROJ knows, PNG, JPEG,
  vector PDF or SVG). The vector layers' features come from **one SQL statement** per
  image (:mod:`tiles.render_sql`), built on :func:`spatial.features.table_rows` so the
  caller's row filters apply (the one place access is decided, :mod:`layers.access`):
  PostGIS selects the features
  meeting the frame through the spatial index, drops those smaller than a pixel,
  carries them into the frame's CRS (an affine map fitted to the frame when it is exact
  to 1/16 pixel, as the vector tiles do, else ``ST_Transform``), clips the ones larger
  than the frame, simplifies to the pixel, and writes each layer as one GeoJSON document
  (only the attributes its style reads, coordinates rounded to 1/8 pixel). Mapnik's
  ``geojson`` datasource parses it (C++), with no reprojection: the data is in the map's
  CRS already. A ``postgis`` datasource would open its own connections outside the
  platform's pool, replicas and statement timeouts, and see every row;
- imagery and elevation are rendered by the platform's raster engines (rio-tiler, the
  mosaic of :mod:`tiles.raster`, the hillshade of :mod:`spatial.terrain`) onto the frame's
  grid and handed to Mapnik as an image under the vector layers, so PDF and SVG get them
  too;
- styles come from :mod:`layers.styles` (the subsystem YAML's MapLibre fragments turned
  into rules): the Mapnik ``Map`` of a set of drawables is built from XML once and kept
  in a small pool (one per concurrent render), so a request only sets datasources;
- Mapnik renders on a worker thread (it releases the GIL while it draws).
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, cast
from xml.sax.saxutils import escape

import numpy as np
import psycopg
from psycopg import sql

from layers import styles
from layers.access import View
from layers.collections import RasterCollection, TileLayer
from layers.subsystems import MapLayer, Render, Subsystems, is_elevation
from spatial import imagery, mosaic, rasterstore
from spatial.catalog import Kind
from spatial.errors import InvalidInputError, NotFoundError
from spatial.features import is_vector_layer
from tiles import render_raster, render_sql
from tiles.render_mapnik import mapnik

MAX_SIDE = 8192
"""The largest image side (pixels, or points for PDF/SVG): print frames at 300 dpi."""
MAX_SERVED = 4096
"""The largest width or height a map service answers (WMS GetMap, OGC API - Maps)."""
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "pdf": "application/pdf",
               "svg": "image/svg+xml"}  # fmt: skip
RASTER_STYLES: dict[str, tuple[str, Render]] = {
    "truecolor": ("True colour", Render(bands=["red", "green", "blue"])),
    "ndvi": ("NDVI", Render(expression="ndvi", rescale="-1,1", colormap="rdylgn")),
    "ndwi": ("NDWI", Render(expression="ndwi", rescale="-1,1", colormap="blues")),
}
"""Imagery's styles (the web maps' render presets)."""
HILLSHADE = "hillshade"
"""An elevation collection's style."""


@dataclass(frozen=True)
class Drawable:
    """One layer to draw, bottom first."""

    collection: str
    kind: Literal["vector", "raster"]
    title: str
    layer: MapLayer | None
    """The subsystem layer whose style draws it (raster: whose ``render`` it shows); None:
    the default (by geometry type; imagery in true colour, elevation as hillshade)."""
    opacity: float = 1.0


@dataclass(frozen=True)
class Frame:
    """The image asked for."""

    bbox: tuple[float, float, float, float]
    """minx, miny, maxx, maxy in ``crs``, x = easting/longitude."""
    crs: int
    width: int
    """Pixels (pdf/svg: points, 1/72 in)."""
    height: int
    format: Literal["png", "jpeg", "pdf", "svg"] = "png"
    transparent: bool = True
    background: str | None = None
    """``#rrggbb``."""
    datetime: str | None = None
    """Imagery: the mosaic as seen then."""
    scale_factor: float = 1.0
    """Symbol sizes times this (print at 300 dpi: about 300/90.7)."""


@dataclass(frozen=True)
class LayerInfo:
    """A layer for capabilities and style lists."""

    name: str
    title: str
    abstract: str
    kind: Literal["vector", "raster", "map"]
    lonlat: tuple[float, float, float, float]
    styles: tuple[tuple[str, str], ...]
    """(style id, title); the first is the default."""
    queryable: bool
    children: tuple[str, ...] = ()


# -- names and styles -------------------------------------------------------------------------


def _not_found(name: str) -> NotFoundError:
    return NotFoundError(f"no layer {name!r} (a collection, a map, or map:layer)")


def collection_styles(view: View, maps: Subsystems, collection_id: str) -> list[
    tuple[str, str, MapLayer | None]
]:  # fmt: skip
    """The styles of a collection the caller may read: ``(id, title, layer)``, the default
    first. A vector collection's: ``default`` (the style of the first map, by id, that
    draws it; by geometry type when none does) and ``{map}:{layer}`` for each layer of a map
    the caller may open that draws it; imagery's ``truecolor``, ``ndvi``, ``ndwi``;
    elevation's ``hillshade``.

    Raises:
        NotFoundError: a collection the caller may not read.
    """
    record = view.get(collection_id)
    if record.kind == Kind.RASTER:
        if is_elevation(record):
            return [(HILLSHADE, "Hillshade", None)]
        return [(k, title, _raster_layer(record.id, k)) for k, (title, _) in RASTER_STYLES.items()]
    drawn = [
        (f"{s.id}:{layer.id}", f"{s.title}: {layer.title}", layer)
        for s in maps.openable(view.principal) for layer in s.layers
        if layer.collection == collection_id and layer.kind != "raster"
    ]  # fmt: skip
    default = drawn[0][2] if drawn else _default_layer(
        record.id, record.title, str(record.properties.get("geometry_type", ""))
    )  # fmt: skip
    return [("default", "Default", default), *drawn]


@lru_cache(maxsize=256)
def _default_layer(collection: str, title: str, geometry_type: str) -> MapLayer:
    return styles.default_layer(collection, title, geometry_type)


@lru_cache(maxsize=64)
def _raster_layer(collection: str, style: str) -> MapLayer:
    title, render_ = RASTER_STYLES[style]
    return MapLayer.model_validate({
        "id": style, "collection": collection, "kind": "raster", "title": title,
        "render": render_.model_dump(exclude_none=True), "style": [{"type": "raster"}],
    })  # fmt: skip


def resolve(view: View, maps: Subsystems, name: str, style: str | None = None) -> list[Drawable]:
    """The layers ``name`` draws: a collection (in ``style``), a subsystem map (its visible
    layers the caller may read, in the map's order) or ``{map}:{layer}``.

    Raises:
        NotFoundError: an unknown name, or one the caller may not read or open (the same
            message either way).
        InvalidInputError: an unknown style, naming the styles there are.
    """
    style = None if style in {None, "", "default"} else style
    if name in view.catalog.collections:
        known = collection_styles(view, maps, name)
        chosen = known[0] if style is None else next((k for k in known if k[0] == style), None)
        if chosen is None:
            ids = ", ".join(k[0] for k in known)
            msg = f"layer {name!r} has no style {style!r}; its styles are: {ids}"
            raise InvalidInputError(msg)
        record = view.get(name)
        kind: Literal["vector", "raster"] = "raster" if record.kind == Kind.RASTER else "vector"
        return [Drawable(name, kind, record.title, chosen[2])]
    sub_id, _, layer_id = name.partition(":")
    subsystem = maps.maps.get(sub_id)
    if subsystem is None or not subsystem.access.admits(view.principal):
        raise _not_found(name)
    if style is not None:
        msg = f"layer {name!r} has only the default style (its map's own)"
        raise InvalidInputError(msg)
    chosen_layers = [
        layer for layer in subsystem.layers
        if (layer.id == layer_id if layer_id else layer.visible) and _readable(view, layer)
    ]  # fmt: skip
    if layer_id and not chosen_layers:
        raise _not_found(name)
    return [
        Drawable(layer.collection, "raster" if layer.kind == "raster" else "vector",
                 layer.title, layer, layer.opacity)
        for layer in chosen_layers
    ]  # fmt: skip


def _readable(view: View, layer: MapLayer) -> bool:
    record = view.catalog.collections.get(layer.collection)
    if record is None:
        return False
    if layer.kind == "raster":
        return record.kind == Kind.RASTER and view.rights[record.id].read_rows is None
    return is_vector_layer(record)


def layers(view: View, maps: Subsystems) -> list[LayerInfo]:
    """Every layer the caller may see: the collections they may read (vector and raster),
    then the maps they may open, each followed by its ``{map}:{layer}`` layers."""
    out: list[LayerInfo] = []
    world = (-180.0, -90.0, 180.0, 90.0)
    for record in view.catalog:
        if record.kind == Kind.RASTER:
            if view.rights[record.id].read_rows is not None:
                continue
            kind: Literal["vector", "raster", "map"] = "raster"
        elif is_vector_layer(record):
            kind = "vector"
        else:
            continue
        found = collection_styles(view, maps, record.id)
        out.append(LayerInfo(record.id, record.title, record.description or "", kind,
                             record.bbox or world, tuple((k, t) for k, t, _ in found),
                             kind == "vector"))  # fmt: skip
    for subsystem in maps.openable(view.principal):
        members = [layer for layer in subsystem.layers if _readable(view, layer)]
        names = tuple(f"{subsystem.id}:{layer.id}" for layer in members)
        out.append(LayerInfo(subsystem.id, subsystem.title, subsystem.description, "map",
                             subsystem.extent, (("default", "Default"),), True, names))  # fmt: skip
        for layer, child in zip(members, names, strict=True):
            record = view.catalog.collections[layer.collection]
            out.append(LayerInfo(child, layer.title, record.title,
                                 "raster" if layer.kind == "raster" else "vector",
                                 record.bbox or subsystem.extent, (("default", "Default"),),
                                 layer.kind != "raster"))  # fmt: skip
    return out


# -- the frame --------------------------------------------------------------------------------


_crs = render_sql.crs_of
_transformer = render_sql.transformer
Box = render_sql.Box


def check(frame: Frame) -> None:
    """Refuse a frame that cannot be drawn.

    Raises:
        InvalidInputError: an empty or inverted bbox, a size outside 1..:data:`MAX_SIDE`,
            an unknown CRS or format, a background that is not ``#rrggbb``.
    """
    minx, miny, maxx, maxy = frame.bbox
    if not all(math.isfinite(v) for v in frame.bbox) or minx >= maxx or miny >= maxy:
        msg = f"bbox {list(frame.bbox)} must have minx < maxx and miny < maxy"
        raise InvalidInputError(msg)
    for name, value in (("width", frame.width), ("height", frame.height)):
        if not 1 <= value <= MAX_SIDE:
            msg = f"{name} must be from 1 to {MAX_SIDE}, not {value}"
            raise InvalidInputError(msg)
    if frame.format not in MEDIA_TYPES:
        msg = f"format {frame.format!r} is not drawn; use one of {', '.join(MEDIA_TYPES)}"
        raise InvalidInputError(msg)
    if frame.background is not None:
        try:
            styles.colour(frame.background)
        except styles.StyleError:
            msg = f"background {frame.background!r} is not a colour (give #rrggbb)"
            raise InvalidInputError(msg) from None
    _crs(frame.crs)


def lonlat_of(frame: Frame) -> tuple[float, float, float, float]:
    """The frame's lon/lat bounds."""
    return render_sql.lonlat_of(frame.bbox, frame.crs)


# -- Mapnik maps ------------------------------------------------------------------------------

_POOL: dict[tuple[Any, ...], list[mapnik.Map]] = {}
_KEEP: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_LOCK = threading.Lock()
POOL_SIZE = 4
"""Idle Mapnik maps kept per set of drawables and CRS."""


def _style_key(drawables: Sequence[Drawable], srid: int) -> tuple[Any, ...]:
    return (srid, *((d.kind, d.collection, id(d.layer), d.opacity) for d in drawables))


@lru_cache(maxsize=64)
def proj_string(srid: int) -> str:
    """The CRS as a PROJ string (Mapnik's PROJ has no database to look EPSG codes up)."""
    with warnings.catch_warnings():  # "you will likely lose information": not what Mapnik uses
        warnings.simplefilter("ignore", UserWarning)
        return str(_crs(srid).to_proj4())


def map_xml(drawables: Sequence[Drawable], srid: int, layers_: Sequence[MapLayer | None]) -> str:
    """The Mapnik XML of a map of ``drawables`` (their styled layers ``layers_``): one
    Mapnik layer per drawable, named ``d0``, ``d1``... (bottom first), no datasource."""
    srs = escape(proj_string(srid), {'"': "&quot;"})
    out = [f'<Map srs="{srs}" background-color="transparent">']
    body: list[str] = []
    for i, (drawable, layer) in enumerate(zip(drawables, layers_, strict=True)):
        names = []
        if drawable.kind == "raster":
            name = f"d{i}r"
            opacity = f' opacity="{drawable.opacity}"' if drawable.opacity < 1 else ""
            out.append(f'<Style name="{name}"><Rule><RasterSymbolizer{opacity} '
                       'scaling="near"/></Rule></Style>')  # fmt: skip
            names.append(name)
        elif layer is not None:
            for j, group in enumerate(styles.rules(layer, drawable.opacity)):
                if group.rules:
                    name = f"d{i}g{j}"
                    out.append(styles.mapnik_style(name, group))
                    names.append(name)
        style_names = "".join(f"<StyleName>{n}</StyleName>" for n in names)
        body.append(f'<Layer name="d{i}" srs="{srs}">{style_names}</Layer>')
    out.extend(body)
    out.append("</Map>")
    return "".join(out)


def _styled(drawable: Drawable, view: View) -> MapLayer | None:
    if drawable.layer is not None or drawable.kind == "raster":
        return drawable.layer
    record = view.get(drawable.collection)
    return _default_layer(record.id, record.title, str(record.properties.get("geometry_type", "")))


def _lend(key: tuple[Any, ...], xml: str, keep: tuple[Any, ...]) -> mapnik.Map:
    with _LOCK:
        idle = _POOL.get(key)
        if idle:
            return idle.pop()
        _KEEP[key] = keep  # the layers stay alive: their ids are part of the key
    made = mapnik.Map(256, 256)
    mapnik.load_map_from_string(made, xml)
    return made


def _give_back(key: tuple[Any, ...], made: mapnik.Map) -> None:
    for layer in made.layers:
        layer.datasource = _EMPTY
    with _LOCK:
        idle = _POOL.setdefault(key, [])
        if len(idle) < POOL_SIZE:
            idle.append(made)


_EMPTY = mapnik.MemoryDatasource()
"""Nothing to draw (Mapnik's GeoJSON reader refuses a collection of no features)."""


# -- rendering --------------------------------------------------------------------------------


async def render(
    conn: psycopg.AsyncConnection[Any], view: View, store: rasterstore.RasterStore,
    drawables: Sequence[Drawable], frame: Frame,
) -> bytes:  # fmt: skip
    """The image of ``drawables`` in ``frame`` (bytes of ``frame.format``), the caller's
    rows only; a frame with no data is a blank (transparent) image.

    Raises:
        InvalidInputError: a frame that cannot be drawn (:func:`check`).
        NotFoundError: a drawable the caller may not read.
    """
    check(frame)
    styled = [_styled(d, view) for d in drawables]
    vectors: list[tuple[int, TileLayer, render_sql.Columns]] = []
    rasters: dict[int, tuple[list[mosaic.Scene], bool]] = {}
    lonlat = lonlat_of(frame)
    when = mosaic.window(frame.datetime) if frame.datetime else (None, None)
    for i, (drawable, layer) in enumerate(zip(drawables, styled, strict=True)):
        if drawable.kind == "vector":
            found = view.features(drawable.collection)
            read = sorted(c for c in styles.columns(layer) if c[0] in found.fields) if layer else []
            vectors.append((i, found.tile_layer(), tuple(read)))
        else:
            collection: RasterCollection = view.raster(drawable.collection)
            scenes = await collection.scenes(conn, store, lonlat=lonlat, when=when)
            rasters[i] = (scenes, is_elevation(collection.record))
    texts: dict[int, str] = {}
    grid = render_raster.Grid(frame.bbox, frame.crs, frame.width, frame.height)
    statement = render_sql.vector_statement([(tl, props) for _, tl, props in vectors], grid)
    if statement is not None:
        text, values, used = statement
        cur = await conn.execute(cast(sql.Composed, text), values)
        row = await cur.fetchone()
        for column, index in enumerate(used):
            if row is not None and row[column] and not row[column].endswith("[]}"):
                texts[vectors[index][0]] = str(row[column])
    return await asyncio.to_thread(_draw, drawables, styled, frame, texts, rasters)


def _draw(
    drawables: Sequence[Drawable], styled: Sequence[MapLayer | None], frame: Frame,
    texts: dict[int, str], rasters: dict[int, tuple[list[mosaic.Scene], bool]],
) -> bytes:  # fmt: skip
    key = _style_key(drawables, frame.crs)
    made = _lend(key, map_xml(drawables, frame.crs, styled), tuple(styled))
    files: list[str] = []
    try:
        for i, layer in enumerate(made.layers):
            if i in rasters:
                scenes, elevation = rasters[i]
                grid = render_raster.Grid(frame.bbox, frame.crs, frame.width, frame.height)
                layer_render = styled[i].render if styled[i] is not None else None  # type: ignore[union-attr]
                pixels = (render_raster.pixels(scenes, layer_render, grid, elevation)
                          if scenes else None)  # fmt: skip
                if pixels is None:
                    layer.datasource = _EMPTY
                    continue
                handle, path = tempfile.mkstemp(suffix=".png", prefix="3s-render-")
                with os.fdopen(handle, "wb") as out:
                    out.write(imagery.png(pixels, level=1))
                files.append(path)
                minx, miny, maxx, maxy = _local(frame.bbox, frame.bbox)
                layer.datasource = mapnik.Datasource(type="raster", file=path, lox=minx, loy=miny,
                                                     hix=maxx, hiy=maxy)  # fmt: skip
            else:
                text = texts.get(i)
                layer.datasource = (mapnik.Datasource(type="geojson", inline=text)
                                    if text else _EMPTY)  # fmt: skip
        return _output(made, frame)
    finally:
        _give_back(key, made)
        for path in files:
            Path(path).unlink()


def _local(box: Box, frame_bbox: Box) -> Box:
    """``box`` in the coordinates the data is written in: from the frame's lower left."""
    ox, oy = frame_bbox[0], frame_bbox[1]
    return box[0] - ox, box[1] - oy, box[2] - ox, box[3] - oy


def _output(made: mapnik.Map, frame: Frame) -> bytes:
    made.resize(frame.width, frame.height)
    background = frame.background
    if background is None and (frame.format == "jpeg" or not frame.transparent):
        background = "#ffffff"
    made.background = mapnik.Color(background) if background else mapnik.Color(0, 0, 0, 0)
    made.zoom_to_box(mapnik.Box2d(*_local(frame.bbox, frame.bbox)))
    if frame.format in {"pdf", "svg"}:
        handle, path = tempfile.mkstemp(suffix=f".{frame.format}", prefix="3s-render-")
        os.close(handle)
        try:
            mapnik.render_to_file(made, path, frame.format, frame.scale_factor)
            return Path(path).read_bytes()
        finally:
            Path(path).unlink()
    image = mapnik.Image(frame.width, frame.height)
    mapnik.render(made, image, frame.scale_factor)
    if frame.format == "jpeg":
        return bytes(image.to_string("jpeg90"))
    # Mapnik's own PNG writer filters every row: three times the time of zlib alone
    pixels = np.frombuffer(image.to_string(), dtype=np.uint8)
    return imagery.png(pixels.reshape(frame.height, frame.width, 4), level=2)


def legend(drawables: Sequence[Drawable], fmt: Literal["png", "jpeg"] = "png") -> bytes:
    """The legend of ``drawables`` (top layer first): each one's title and entries, the
    swatches drawn by Mapnik with the layer's symbolizers, the labels in the Chinese font
    (:mod:`tiles.render_legend`)."""
    from tiles import render_legend  # noqa: PLC0415 - it imports Mapnik through this module

    shown = [(d.title, d.layer) for d in reversed(drawables)]
    return render_legend.legend_image(shown, fmt)
