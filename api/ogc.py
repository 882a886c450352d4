"""Helpers every OGC API router shares: documented parameters, formats, base URL, bodies."""

from __future__ import annotations

from typing import Any

from fastapi import Query, Request
from starlette.requests import HTTPConnection

from spatial.errors import (
    InvalidInputError,
    NotAcceptableError,
    TooLargeError,
    UnsupportedMediaTypeError,
)


def text_param(description: str, alias: str | None = None) -> Any:
    """A documented query parameter, read as text and validated by the route itself (so
    that a bad value is a 400 with an OGC exception body naming the parameter)."""
    return Query(None, description=description, alias=alias)


F_PARAM = text_param("Response format: json (GeoJSON) or html; items also csv, fgb, gpkg.")
CRS_PARAM = text_param("CRS of the response geometries (a CRS URI, see the collection's crs list).")


def base_url(request: HTTPConnection) -> str:
    public = request.app.state.settings.server.public_url
    return (public or str(request.base_url)).rstrip("/")


def response_format(request: HTTPConnection, allowed: tuple[str, ...] = ("json", "html")) -> str:
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


def check_parameters(request: HTTPConnection, allowed: frozenset[str]) -> None:
    """Refuse parameters the API does not define (/req/core/query-param-unknown).

    ``lang`` is taken everywhere: it chooses the language of error messages as well as of
    pages (:mod:`spatial.i18n`), and any answer may be an error."""
    unknown = sorted(set(request.query_params) - allowed - {"lang"})
    if unknown:
        takes = ", ".join(sorted(allowed))
        msg = f"unknown query parameter {unknown[0]!r}; this resource takes: {takes}"
        raise InvalidInputError(msg)


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
