"""Sending a tile: the one HTTP rule for vector and raster tiles alike.

The tile comes from :class:`tiles.service.TileService` (cache or render); here it gets
its ``ETag`` (``If-None-Match`` answered 304), ``Cache-Control: no-cache`` (clients and
proxies revalidate, so an edit shows at once), 204 for a tile with no data, and gzip when
gzip helps (MVT) and the client accepts it (``Vary: Accept-Encoding``; the compressed
form is made once and kept in the cache, :meth:`tiles.service.TileService.gzipped`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tiles.service import Tile, TileService


async def respond(request: Request, tile: Tile) -> Response:
    """The HTTP response for ``tile``."""
    headers = {"ETag": tile.etag, "Cache-Control": "no-cache",
               "X-Tile-Cache": "hit" if tile.hit else "miss"}  # fmt: skip
    if tile.compressible:
        headers["Vary"] = "Accept-Encoding"
    asked = request.headers.get("if-none-match")
    if asked and tile.etag in {t.strip() for t in asked.split(",")}:
        return Response(status_code=304, headers=headers)
    if not tile.data:
        return Response(status_code=204, headers=headers)
    body = tile.data
    if tile.gzips and "gzip" in request.headers.get("accept-encoding", ""):
        service: TileService = request.app.state.tile_service
        body = await service.gzipped(tile)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=tile.media_type, headers=headers)
