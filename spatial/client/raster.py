"""Imagery for the analysts' client: a coverage subset as an ``xarray.DataArray``.

:func:`read_raster` (behind ``Client.raster``) speaks the public API only:

- ``/collections/{id}`` tells imagery (a coverage link) from vector data;
- the STAC items (``/stac/collections/{id}/items``, ``/stac/search?ids=``) give the
  scenes a read will use, their dates and their grid (``proj:code``, ``proj:transform``);
- ``/collections/{id}/coverage`` (a mosaic, latest scene on top) or
  ``/collections/{id}/items/{item}/coverage`` (one scene) returns a float32 GeoTIFF,
  nodata NaN, with the bands picked by ``properties`` or computed by ``expression``
  (the server evaluates band math, ``ndvi``/``ndwi`` included).

The box is widened to whole pixels of the newest scene's grid and asked in that CRS with
an explicit ``width``/``height``, so at the native resolution the values are the
source's pixels (not resampled) and at another ``resolution`` the pixels are exactly that
size, aligned on the same grid. The coverage endpoint has no output ``crs``: another
``crs`` is reached by reprojecting the downloaded array with rioxarray (nearest
neighbour, so values stay source values), ``resolution`` then being in that CRS's
units. The server refuses subsets over its pixel limit with a 400 that names the size;
it surfaces as :class:`~spatial.errors.InvalidInputError`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import quote

import httpx
import numpy as np
import rasterio
import rasterio.warp
import rioxarray  # noqa: F401 - registers the ``.rio`` accessor
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import MemoryFile

from spatial.client.frames import check_bbox
from spatial.errors import InvalidInputError, NotFoundError

__all__ = ["read_raster"]

COVERAGE_REL = "http://www.opengis.net/def/rel/ogc/1.0/coverage"
LONLAT = "OGC:CRS84"
TIFF = "image/tiff; application=geotiff"
MAX_SCENES = 32
"""Scenes listed for a mosaic (the server stacks at most as many)."""
_EPS = 1e-6
"""Slack, in pixels, when snapping a box to the grid (float noise from reprojection)."""

Box = tuple[float, float, float, float]
When = str | dt.date | tuple[str | dt.date | None, str | dt.date | None]


class _Client(Protocol):
    """What :func:`read_raster` needs of :class:`spatial.Client`."""

    url: str

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> httpx.Response: ...


@dataclass(frozen=True)
class _Scene:
    """A STAC item as far as a read needs it."""

    collection: str
    id: str
    datetime: str | None
    crs: CRS | None
    code: str | None
    transform: Affine | None
    bounds: Box | None

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> _Scene:
        props = doc.get("properties") or {}
        code = props.get("proj:code") or (
            f"EPSG:{props['proj:epsg']}" if props.get("proj:epsg") else None
        )
        crs = None
        if code or props.get("proj:wkt2"):
            try:
                crs = CRS.from_user_input(code or props["proj:wkt2"])
            except rasterio.errors.CRSError:
                code = None  # a CRS this client cannot read: the server's grid as it comes
        values = props.get("proj:transform")
        transform = Affine(*values[:6]) if values and len(values) >= 6 else None
        if transform is not None and (transform.b or transform.d):
            transform = None  # a rotated grid: no snapping, the server's grid as it comes
        box = props.get("proj:bbox")
        return cls(
            collection=str(doc.get("collection") or ""),
            id=str(doc["id"]),
            datetime=props.get("datetime"),
            crs=crs,
            code=code,
            transform=transform,
            bounds=(float(box[0]), float(box[1]), float(box[2]), float(box[3]))
            if box and len(box) >= 4
            else None,
        )


def read_raster(
    client: _Client,
    collection_or_item: str | Any,
    *,
    bbox: Sequence[float] | None = None,
    bands: str | Sequence[str] | None = None,
    expression: str | None = None,
    crs: Any = None,
    resolution: float | tuple[float, float] | None = None,
    datetime: When | None = None,
    bbox_crs: Any = None,
) -> xr.DataArray:
    """Imagery as a ``DataArray``: one scene, or a collection's mosaic (latest on top).

    Args:
        client: a :class:`spatial.Client` (its ``request`` raises the typed errors).
        collection_or_item: a collection id (``"imagery"``), ``"collection/item"``, a bare
            item id (found with a STAC search), or a STAC item (``pystac.Item`` or its
            dict).
        bbox: ``(minx, miny, maxx, maxy)`` in ``bbox_crs`` (lon/lat by default); the
            whole newest scene when omitted. Widened to whole pixels of the grid.
        bands: band names (a list, or ``"red,nir"``); all bands when omitted.
        expression: band math evaluated by the server, e.g. ``"ndvi"``, ``"ndwi"``,
            ``"(nir-red)/(nir+red)"``; several separated by ``;``. Not with ``bands``.
        crs: the output CRS (``"EPSG:4326"``, an EPSG number, a pyproj/rasterio CRS); the
            scene's own when omitted. Another CRS is reprojected client-side (nearest).
        resolution: pixel size in the output CRS's units (metres for the demo scenes),
            one number or ``(x, y)``; the native resolution when omitted.
        datetime: for a collection, which scenes: an instant (``"2025-12-31"``, a
            ``date``/``datetime``) means "as seen then" (the newest at or before it);
            ``"start/end"`` or a ``(start, end)`` pair, the scenes inside it.
        bbox_crs: the CRS of ``bbox`` (default CRS84, lon/lat).

    Returns:
        dims ``(band, y, x)``, or ``(y, x)`` for a single expression; ``x``/``y`` at pixel
        centres; the CRS written with rioxarray and in ``attrs["crs"]`` (WKT);
        ``attrs["transform"]`` (6 affine numbers); nodata NaN (``_FillValue``); and
        ``attrs`` ``collection``, ``item`` (the scene read, or the newest of a mosaic),
        ``items`` (the scenes of a mosaic, newest first), ``datetime``, ``source``.

    Raises:
        NotFoundError: no such collection, item or matching scene for the caller.
        InvalidInputError: bad arguments (a box in the wrong order, unknown band,
            malformed expression, a vector collection, a subset over the server's limit),
            with the server's message where it said why.
    """
    box = check_bbox(bbox)
    wanted = _bands(bands)
    if wanted and expression is not None:
        raise InvalidInputError("give bands or an expression, not both")
    if expression is not None and (not isinstance(expression, str) or not expression.strip()):
        raise InvalidInputError("expression must be a non-empty text, e.g. 'ndvi'")
    res = _resolution(resolution)
    out_crs = _crs(crs, "crs") if crs is not None else None
    box_crs = _crs(bbox_crs, "bbox_crs") if bbox_crs is not None else CRS.from_user_input(LONLAT)
    collection, item = _resolve(client, collection_or_item)
    if item is not None and datetime is not None:
        msg = f"datetime picks the scenes of a collection; {item!r} is one scene (drop datetime)"
        raise InvalidInputError(msg)
    when = _datetime(datetime)
    scenes = _scenes(client, collection, item, box=box, box_crs=box_crs, when=when)
    if not scenes and when is not None:
        where = f" over bbox {box}" if box is not None else ""
        msg = f"no scene of {collection!r} matches datetime {when!r}{where}"
        raise NotFoundError(msg)
    grid = scenes[0] if scenes else None
    reproject = out_crs is not None and (grid is None or grid.crs is None or out_crs != grid.crs)
    snapped = _snap(grid, box, box_crs, None if reproject else res)
    params = _query(snapped, box, box_crs, bands=wanted, expression=expression, when=when)
    # No grid in the STAC metadata to plan a width/height on: resample what comes.
    resample = res is not None and not reproject and snapped is None
    path = f"/collections/{quote(collection, safe='')}"
    path += f"/items/{quote(item, safe='')}/coverage" if item else "/coverage"
    response = client.request("GET", path, params=params, headers={"Accept": TIFF})
    array = _decode(response.content, expression)
    if resample:
        array = _rio(array).reproject(
            _rio(array).crs, resolution=res, resampling=Resampling.nearest, nodata=np.nan
        )
    if reproject and out_crs is not None:
        array = _rio(array).reproject(
            out_crs, resolution=res, resampling=Resampling.nearest, nodata=np.nan
        )
        if box is not None:
            array = _clip(array, box, box_crs)
    source = str(response.url)
    return _describe(array, collection, item, scenes=scenes, expression=expression, source=source)


def _bands(bands: str | Sequence[str] | None) -> tuple[str, ...]:
    if bands is None:
        return ()
    names = bands.split(",") if isinstance(bands, str) else list(bands)
    if not all(isinstance(b, str) for b in names):
        msg = f"bands must be band names (text), not {bands!r}"
        raise InvalidInputError(msg)
    wanted = tuple(b.strip() for b in names if b.strip())
    if not wanted:
        raise InvalidInputError("bands: name at least one band, or omit it for all")
    return wanted


def _resolution(resolution: float | tuple[float, float] | None) -> tuple[float, float] | None:
    if resolution is None:
        return None
    pair = (resolution, resolution) if isinstance(resolution, int | float) else tuple(resolution)
    try:
        values = (float(pair[0]), float(pair[1])) if len(pair) == 2 else None
    except (TypeError, ValueError):
        values = None
    if values is None or not all(math.isfinite(v) and v > 0 for v in values):
        msg = f"resolution {resolution!r} must be a positive pixel size, or (x, y) sizes"
        raise InvalidInputError(msg)
    return values


def _crs(value: Any, name: str) -> CRS:
    try:
        return CRS.from_user_input(value)
    except (rasterio.errors.CRSError, TypeError, ValueError) as exc:
        msg = f"{name} {value!r} is not a CRS: {exc}"
        raise InvalidInputError(msg) from None


def _crs_param(crs: CRS) -> str:
    """How the API names a CRS (``OGC:CRS84`` for lon/lat, else ``EPSG:n`` or WKT)."""
    if crs == CRS.from_user_input(LONLAT):
        return LONLAT
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def _datetime(value: When | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, tuple):
        if len(value) != 2:
            msg = f"datetime {value!r}: give an instant or a (start, end) pair"
            raise InvalidInputError(msg)
        start, end = (_instant(v) if v is not None else ".." for v in value)
        return f"{start}/{end}"
    if isinstance(value, str):
        if not value.strip():
            raise InvalidInputError("datetime is empty; give an instant or start/end")
        return value.strip()
    return _instant(value)


def _instant(value: str | dt.date) -> str:
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and value.strip():
        return value.strip()
    msg = f"datetime {value!r} must be an ISO 8601 text, a date or a datetime"
    raise InvalidInputError(msg)


def _resolve(client: _Client, target: str | Any) -> tuple[str, str | None]:
    """``(collection, item or None)``, checked to be imagery the caller may read."""
    if isinstance(target, Mapping):
        collection, item = target.get("collection"), target.get("id")
    elif not isinstance(target, str):
        collection = getattr(target, "collection_id", None)
        item = getattr(target, "id", None)
    elif "/" in target.strip("/"):
        collection, item = target.strip("/").split("/", 1)
    else:
        collection, item = target.strip(), None
    if not isinstance(collection, str) or not collection or (item is not None and not item):
        msg = f"{target!r} names no collection: give 'collection' or 'collection/item'"
        raise InvalidInputError(msg)
    try:
        doc = client.request("GET", f"/collections/{quote(collection, safe='')}").json()
    except NotFoundError:
        if item is not None:
            raise
        found = _find_item(client, collection)
        if found is None:
            raise
        return found
    links = doc.get("links") or []
    if not any(link.get("rel") == COVERAGE_REL for link in links):
        kind = doc.get("itemType") or "not imagery"
        msg = (
            f"collection {collection!r} is {kind} data, not imagery: "
            "read it with Client.read, or give an imagery collection"
        )
        raise InvalidInputError(msg)
    return collection, item


def _find_item(client: _Client, item: str) -> tuple[str, str] | None:
    """The collection of a bare item id, if exactly one readable collection has it."""
    page = client.request("GET", "/stac/search", params={"ids": item, "limit": 2}).json()
    found = [(str(f.get("collection")), str(f["id"])) for f in page.get("features") or []]
    if len(found) > 1:
        where = ", ".join(f"{c}/{i}" for c, i in found)
        msg = f"item {item!r} is in several collections ({where}); name it as 'collection/item'"
        raise InvalidInputError(msg)
    return found[0] if found else None


def _scenes(
    client: _Client,
    collection: str,
    item: str | None,
    *,
    box: Box | None,
    box_crs: CRS,
    when: str | None,
) -> list[_Scene]:
    """The scenes the read will use, newest first (their grid and dates)."""
    base = f"/stac/collections/{quote(collection, safe='')}/items"
    if item is not None:
        doc = client.request("GET", f"{base}/{quote(item, safe='')}").json()
        return [_Scene.of(doc)]
    params: dict[str, str | int] = {"limit": MAX_SCENES}
    if box is not None:
        try:
            lonlat = rasterio.warp.transform_bounds(box_crs, "EPSG:4326", *box, densify_pts=21)
        except (rasterio.errors.CRSError, ValueError):
            lonlat = None
        if lonlat is not None and all(math.isfinite(v) for v in lonlat):
            params["bbox"] = _join(lonlat)
    if when is not None:
        # The coverage reads an instant as "the newest scene at or before it".
        params["datetime"] = when if "/" in when else f"../{when}"
    page = client.request("GET", base, params=params).json()
    return [_Scene.of(f) for f in page.get("features") or []]


def _snap(
    grid: _Scene | None, box: Box | None, box_crs: CRS, res: tuple[float, float] | None
) -> tuple[Box, int, int, str] | None:
    """The box in the grid's CRS, widened to whole pixels of ``res`` on the grid's origin,
    with its size in pixels and the CRS as the API names it; None without a grid."""
    if grid is None or grid.crs is None or grid.transform is None or grid.code is None:
        return None
    t = grid.transform
    rx, ry = res or (abs(t.a), abs(t.e))
    if box is None:
        if grid.bounds is None:
            return None
        w, s, e, n = grid.bounds
    else:
        try:
            w, s, e, n = rasterio.warp.transform_bounds(box_crs, grid.crs, *box, densify_pts=21)
        except (rasterio.errors.CRSError, ValueError):
            return None
        if not all(math.isfinite(v) for v in (w, s, e, n)):
            return None
    x0, y0 = t.c, t.f
    left = math.floor((w - x0) / rx + _EPS)
    right = max(math.ceil((e - x0) / rx - _EPS), left + 1)
    top = math.floor((y0 - n) / ry + _EPS)
    bottom = max(math.ceil((y0 - s) / ry - _EPS), top + 1)
    snapped = (x0 + left * rx, y0 - bottom * ry, x0 + right * rx, y0 - top * ry)
    return snapped, right - left, bottom - top, grid.code


def _query(
    snapped: tuple[Box, int, int, str] | None,
    box: Box | None,
    box_crs: CRS,
    *,
    bands: Sequence[str],
    expression: str | None,
    when: str | None,
) -> dict[str, str]:
    """The coverage request's parameters."""
    params = {"f": "tif"}
    if bands:
        params["properties"] = ",".join(bands)
    if expression is not None:
        params["expression"] = expression.strip()
    if when is not None:
        params["datetime"] = when
    if snapped is not None:
        (w, s, e, n), width, height, code = snapped
        params.update({"bbox": _join((w, s, e, n)), "bbox-crs": code})
        params.update(width=str(width), height=str(height))
    elif box is not None:
        params.update({"bbox": _join(box), "bbox-crs": _crs_param(box_crs)})
    return params


def _join(values: Sequence[float]) -> str:
    return ",".join(repr(float(v)) for v in values)


def _decode(data: bytes, expression: str | None) -> xr.DataArray:
    """The GeoTIFF as a DataArray: (band, y, x), or (y, x) for a single expression."""
    with MemoryFile(data) as memory, memory.open() as src:
        values = src.read(masked=False).astype("float32", copy=False)
        if src.nodata is not None and not math.isnan(src.nodata):
            values[values == src.nodata] = np.nan
        names = [d or f"b{i}" for i, d in enumerate(src.descriptions, start=1)]
        crs, transform = src.crs, src.transform
    _, height, width = values.shape
    xs = transform.c + (np.arange(width) + 0.5) * transform.a
    ys = transform.f + (np.arange(height) + 0.5) * transform.e
    array = xr.DataArray(values, dims=("band", "y", "x"), coords={"band": names, "y": ys, "x": xs})
    if expression is not None and len(names) == 1:
        array = array.isel(band=0, drop=True)
    rio = _rio(array)
    array = rio.write_crs(crs)
    array = _rio(array).write_transform(transform)
    return cast(xr.DataArray, _rio(array).write_nodata(np.nan, encoded=False))


def _rio(array: xr.DataArray) -> Any:
    """The rioxarray accessor (untyped)."""
    return cast(Any, array).rio


def _clip(array: xr.DataArray, box: Box, box_crs: CRS) -> xr.DataArray:
    """The reprojected array cut to the asked box (kept whole if the cut fails)."""
    try:
        return cast(xr.DataArray, _rio(array).clip_box(*box, crs=box_crs))
    except Exception:  # noqa: BLE001 - rioxarray raises several kinds; the uncut array is right
        return array


def _describe(
    array: xr.DataArray,
    collection: str,
    item: str | None,
    *,
    scenes: Sequence[_Scene],
    expression: str | None,
    source: str,
) -> xr.DataArray:
    rio = _rio(array)
    top = scenes[0] if scenes else None
    array.attrs.update(
        {
            "crs": rio.crs.to_wkt(),
            "transform": tuple(float(v) for v in tuple(rio.transform())[:6]),
            "collection": collection,
            "item": item or (top.id if top else ""),
            "items": tuple(s.id for s in scenes) if item is None else (item,),
            "datetime": (top.datetime if top else None) or "",
            "source": source,
        }
    )
    if expression is not None:
        array.attrs["expression"] = expression.strip()
    array.name = expression.strip() if expression is not None else (item or collection)
    return array
