"""Helpers every OGC API router shares: parameters, formats, base URL, HTML frame."""

from __future__ import annotations

import html
from typing import Any

from fastapi import Query, Request

from spatial.errors import (
    InvalidInputError,
    NotAcceptableError,
    NotFoundError,
    TooLargeError,
    UnsupportedMediaTypeError,
)


def text_param(description: str, alias: str | None = None) -> Any:
    """A documented query parameter, read as text and validated by the route itself (so
    that a bad value is a 400 with an OGC exception body naming the parameter)."""
    return Query(None, description=description, alias=alias)


F_PARAM = text_param("Response format: json (GeoJSON) or html; items also csv, fgb, gpkg.")
CRS_PARAM = text_param("CRS of the response geometries (a CRS URI, see the collection's crs list).")
PROPERTIES_PARAM = text_param("Comma-separated properties to return.")
SKIP_PARAM = text_param("true: features without geometry.", alias="skipGeometry")
AS_OF_PARAM = text_param(
    "The collection as it was at this moment (an RFC 3339 date-time, or a date: its first "
    "moment, UTC): its edition then. Features replaced since have negative ids.",
    alias="as-of",
)


def base_url(request: Request) -> str:
    public = request.app.state.settings.server.public_url
    return (public or str(request.base_url)).rstrip("/")


def response_format(request: Request, allowed: tuple[str, ...] = ("json", "html")) -> str:
    """The response format: ``f``, else the Accept header (a format when asked first).

    Raises:
        InvalidInputError: ``f`` names a format the resource does not offer.
        NotAcceptableError: the Accept header names only types it does not offer (406).
    """
    f = request.query_params.get("f")
    if f is not None:
        f = {"geojson": "json", "application/geo+json": "json", "application/json": "json"}.get(
            f, f
        )
        if f not in allowed:
            msg = f"f={request.query_params['f']!r} is not offered; use one of {', '.join(allowed)}"
            raise InvalidInputError(msg)
        return f
    header = request.headers.get("accept", "").strip()
    accepted = [part.split(";")[0].strip().lower() for part in header.split(",") if part.strip()]
    offered = {t for t, f in _BY_TYPE.items() if f in allowed}
    if accepted and not any(t.endswith("/*") or t in offered for t in accepted):
        msg = f"cannot answer in {header!r}; this resource offers {', '.join(sorted(offered))}"
        raise NotAcceptableError(msg)
    first = accepted[0] if accepted else ""
    return _BY_TYPE[first] if _BY_TYPE.get(first) in allowed else "json"


_BY_TYPE = {
    "application/json": "json",
    "application/geo+json": "json",
    "application/schema+json": "json",
    "text/html": "html",
    "text/csv": "csv",
    "application/flatgeobuf": "fgb",
    "application/geopackage+sqlite3": "gpkg",
}
"""Media types by the response format that serves them."""


def check_parameters(request: Request, allowed: frozenset[str]) -> None:
    """Refuse parameters the API does not define (/req/core/query-param-unknown)."""
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed))
        msg = f"unknown query parameter {unknown[0]!r}; this resource takes: {takes}"
        raise InvalidInputError(msg)


def html_page(title: str, content: str) -> str:
    """A minimal page (no external scripts or styles: users are offline)."""
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:.3rem .8rem;text-align:left}}</style></head>
<body><h1>{html.escape(title)}</h1>{content}</body></html>"""


async def read_body(request: Request, media_types: set[str], limit: int, what: str) -> bytes:
    """A request body of one of ``media_types``, at most ``limit`` bytes, counted as read.

    Raises:
        UnsupportedMediaTypeError: another content type (415).
        TooLargeError: larger than the limit, declared or counted (413).
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in media_types:
        expected = " or ".join(sorted(media_types))
        msg = f"send {what} as {expected}, not {media or 'no content type'}"
        raise UnsupportedMediaTypeError(msg)
    too_large = f"{what} may be at most {limit // 2**20} MiB"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLargeError(too_large)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLargeError(too_large)
    return bytes(body)


def feature_number(collection_id: str, feature_id: str) -> int:
    """A feature id from a path (a feature that cannot exist is a 404, not a 400).

    Raises:
        NotFoundError: not an integer of at most 18 digits.
    """
    digits = feature_id.removeprefix("-")  # negative: a past version (as-of)
    if not digits.isdigit() or len(digits) > 18:
        msg = f"collection {collection_id!r} has no feature {feature_id!r}"
        raise NotFoundError(msg)
    return int(feature_id)
