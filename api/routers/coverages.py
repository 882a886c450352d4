"""Imagery through OGC API - Coverages.

- ``/collections/{id}/coverage`` (and ``/collections/{id}/items/{item}/coverage`` for one
  scene): a float32 GeoTIFF of the mosaic (latest scene on top) over ``subset``
  (``Lat(..:..),Lon(..:..)`` in CRS84 or ``subset-crs``, ``E(..:..),N(..:..)`` in the
  coverage's CRS, ``time(..:..)``) or ``bbox`` (``bbox-crs``) and ``datetime``, with the
  bands of ``properties`` or an ``expression``, at the native resolution or ``width`` /
  ``height`` / ``scale-size``, or the native cells divided by ``scale-factor`` /
  ``scale-axes``. :mod:`spatial.coverages` says what each parameter means;
- ``/collections/{id}/coverage/domainset`` and ``.../rangetype``: the coverage's grid and
  bands as CIS 1.1 JSON (:mod:`tiles.coverage`).

Every read goes through the caller's view of the catalog: a collection they may not read
is a 404.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from api import params
from api.deps import caller, database
from api.params import Param, Params
from api.routing import Router
from spatial import coverages
from tiles import coverage as covers
from tiles import raster

router = Router(tags=["Coverages"])
COVERAGE = Params((
    Param("subset", 'Trims or slices axes: Lat(22.9:23.0),Lon(112.0:112.1) (CRS84, or '
          'subset-crs); E(lo:hi),N(lo:hi) in the coverage\'s CRS (see its domain set); '
          'time("2025-01-01":"2025-12-31") mosaics the scenes of an interval, '
          'time("2025-06-01") is the mosaic as seen then; * is an open end. Repeatable.',
          {"type": "array", "items": {"type": "string"}}),
    Param("subset-crs", "CRS of the subset's spatial axes (a URI or safe CURIE): CRS84 by "
          "default for Lat/Lon; E/N without it are in the coverage's CRS."),
    Param("bbox", "minx,miny,maxx,maxy in bbox-crs (CRS84 by default); not with a spatial "
          "subset."),
    Param("bbox-crs", "CRS of bbox (a URI or safe CURIE)."),
    Param("datetime", "The mosaic as seen then (an instant), or of an interval's scenes; "
          "not with subset=time(...)."),
    Param("properties", "Bands by name, comma-separated (all by default)."),
    Param("expression", "Band math instead of bands, e.g. (nir-red)/(nir+red), or ndvi."),
    Param("width", "Cells across (default: the native resolution).",
          {"type": "integer", "minimum": 1, "maximum": coverages.MAX_SIZE}),
    Param("height", "Cells down (default: the native resolution).",
          {"type": "integer", "minimum": 1, "maximum": coverages.MAX_SIZE}),
    Param("scale-size", "Cells per axis, e.g. E(256),N(256); not with width/height."),
    Param("scaleSize", "As scale-size (the spelling GDAL's OGCAPI driver sends)."),
    Param("scale-factor", "Divides the native cells of every axis, e.g. 2 for half as many "
          "across and down; not with a size or scale-axes.",
          {"type": "number"}),
    Param("scaleFactor", "As scale-factor.", {"type": "number"}),
    Param("scale-axes", "Divides the native cells of the axes named, e.g. E(2),N(4); an axis "
          "not named keeps its cells."),
    Param("scaleAxes", "As scale-axes."),
    Param("f", "tif (the default): a float32 GeoTIFF, nodata NaN."),
))  # fmt: skip
"""A coverage subset's parameters."""
DESCRIPTION = Params((Param("f", "json (the default): CIS 1.1 JSON."),))
"""A domain set's or range type's parameters."""
_TIFFS = {"tif": raster.TIFF, "tiff": raster.TIFF, "geotiff": raster.TIFF, "gtiff": raster.TIFF}
_TIFF_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"content": {raster.TIFF: {}}}}
_JSON = {"json": "application/json"}


@router.fast_get(
    "/collections/{collection_id}/coverage", params=COVERAGE,
    summary="A coverage subset (GeoTIFF)", responses=_TIFF_RESPONSE,
)  # fmt: skip
async def coverage(request: Request) -> Response:
    """The mosaic of the scenes (latest on top) over the subset, as a float32 GeoTIFF in
    the coverage's grid (its domain set) or, for a ``bbox`` or an interval ``subset``,
    in the newest scene's CRS at its resolution (or the size asked)."""
    return await _coverage(request, None)


@router.fast_get(
    "/collections/{collection_id}/items/{item_id}/coverage", params=COVERAGE,
    summary="One scene's coverage subset (GeoTIFF)", responses=_TIFF_RESPONSE,
)  # fmt: skip
async def item_coverage(request: Request) -> Response:
    """One scene over the subset, as :func:`coverage`."""
    return await _coverage(request, str(request.path_params["item_id"]))


async def _coverage(request: Request, item_id: str | None) -> Response:
    COVERAGE.check(request)
    collection_id = str(request.path_params["collection_id"])
    found = caller(request).raster(collection_id)
    params.image_format(request, _TIFFS)
    asked = _asked(request)
    style = params.style(request, "properties")
    store = request.app.state.tile_service.store
    async with database(request).read_connection(request) as conn:
        made = await covers.plan(conn, store, found, asked, item_id=item_id)
    data = await covers.render(made, style)
    name = Path(item_id or collection_id).name
    return Response(
        data,
        media_type=raster.TIFF,
        headers={"Content-Disposition": f'attachment; filename="{name}.tif"'},
    )


def _asked(request: Request) -> coverages.Asked:
    """The request's domain parameters (empty values count as absent)."""
    q = request.query_params

    def many(*names: str) -> list[str]:
        return [v for name in names for v in q.getlist(name) if v.strip()]

    return coverages.parse_request(
        subset=many("subset"), subset_crs=q.get("subset-crs") or None,
        bbox=q.get("bbox") or None, bbox_crs=q.get("bbox-crs") or None,
        datetime=q.get("datetime") or None, width=q.get("width"), height=q.get("height"),
        scale_size=many("scale-size", "scaleSize"),
        scale_factor=next(iter(many("scale-factor", "scaleFactor")), None),
        scale_axes=many("scale-axes", "scaleAxes"),
    )  # fmt: skip


@router.fast_get(
    "/collections/{collection_id}/coverage/domainset", params=DESCRIPTION,
    summary="The coverage's domain set (CIS JSON)",
)  # fmt: skip
async def domainset(request: Request) -> Response:
    """The grid of the collection's mosaic: the newest scene's CRS and resolution over
    every scene's extent, and the scenes' times when there are several."""
    DESCRIPTION.check(request)
    params.image_format(request, _JSON)
    found = caller(request).raster(str(request.path_params["collection_id"]))
    async with database(request).read_connection(request) as conn:
        body = await covers.domain_of(conn, found)
    return JSONResponse(body)


@router.fast_get(
    "/collections/{collection_id}/coverage/rangetype", params=DESCRIPTION,
    summary="The coverage's range type (CIS JSON)",
)  # fmt: skip
async def rangetype(request: Request) -> Response:
    """The bands: name, data type, nodata and unit of each."""
    DESCRIPTION.check(request)
    params.image_format(request, _JSON)
    found = caller(request).raster(str(request.path_params["collection_id"]))
    return JSONResponse(covers.range_of(found))
