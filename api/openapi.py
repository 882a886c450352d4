"""The OpenAPI document as OpenAPI 3.0, which OGC API clients and validators expect.

FastAPI writes OpenAPI 3.1. Two 3.1 constructs occur in this API: an optional value
written ``anyOf: [X, {type: null}]`` (in 3.0: ``X`` with ``nullable: true``) and an
uploaded file, ``contentMediaType`` (in 3.0: ``format: binary``).
"""

from __future__ import annotations

from typing import Any

VERSION = "3.0.3"


_BBOX = {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}


def as_openapi_30(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of a FastAPI OpenAPI 3.1 document, rewritten as 3.0.

    Query parameters are declared the way OGC API - Features defines them (``style: form``,
    ``explode: false``; ``bbox`` an array of 4 or 6 numbers): the routes read them as the
    comma-separated text that definition describes.
    """
    converted: dict[str, Any] = _convert(document)
    converted["openapi"] = VERSION
    schemas = converted.setdefault("components", {}).setdefault("schemas", {})
    schemas["Exception"] = _EXCEPTION
    for path, item in converted.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            _declare_responses(path, method, operation)
            for parameter in operation.get("parameters", []):
                if parameter.get("in") != "query":
                    continue
                parameter["style"], parameter["explode"] = "form", False
                if parameter.get("name") == "bbox":
                    parameter["schema"] = dict(_BBOX)
    return converted


_EXCEPTION = {
    "type": "object",
    "description": "An OGC API exception (api.errors)",
    "required": ["code", "description"],
    "properties": {"code": {"type": "string"}, "description": {"type": "string"}},
}
_ERRORS = {
    "400": "Bad request: a parameter or the body is invalid",
    "401": "Unauthenticated: no valid key or token, and the resource is not public",
    "403": "Forbidden: the caller may not do this",
    "404": "Not found",
    "406": "Not acceptable: no offered format fits the Accept header",
    "429": "Too many requests (see Retry-After)",
    "503": "The database is unavailable (see Retry-After)",
}
_WRITE_ERRORS = {
    "409": "Conflict with the current state",
    "412": "Precondition failed: If-Match does not match the current ETag",
    "413": "Payload too large",
    "415": "Unsupported media type",
    "422": "Unprocessable content: the body was read but does not fit",
    "507": "Insufficient storage",
}


_GEOJSON = "application/geo+json"
_SCHEMA_JSON = "application/schema+json"
_OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
_TEXT = "text/plain; charset=utf-8"
_MEDIA: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    # (method, path): {status: media types the route sends besides HTML}
    ("get", "/collections/{collection_id}/items"): {"200": (
        _GEOJSON, "text/csv; charset=utf-8", "application/flatgeobuf",
        "application/geopackage+sqlite3")},
    ("get", "/collections/{collection_id}/items/{feature_id}"): {"200": (_GEOJSON,)},
    ("get", "/collections/{collection_id}/queryables"): {"200": (_SCHEMA_JSON,)},
    ("get", "/collections/{collection_id}/schema"): {"200": (_SCHEMA_JSON,)},
    ("get", "/stac/queryables"): {"200": (_SCHEMA_JSON,)},
    ("get", "/stac/search"): {"200": (_GEOJSON,)},
    ("post", "/stac/search"): {"200": (_GEOJSON,)},
    ("get", "/stac/collections/{collection_id}/items"): {"200": (_GEOJSON,)},
    ("get", "/stac/collections/{collection_id}/items/{item_id}"): {"200": (_GEOJSON,)},
    ("get", "/stac/collections/{collection_id}/items/{item_id}/assets/{key}"): {
        "200": ("image/tiff",)},
    ("get", "/openapi"): {"200": (_OPENAPI,)},
    ("get", "/api"): {"200": (_OPENAPI,)},
    ("get", "/metrics"): {"200": ("text/plain; version=0.0.4; charset=utf-8",)},
    # OsmAnd and Traccar Client read a plain-text answer, errors too (api.routers.gps).
    ("get", "/gps/osmand"): {"200": (_TEXT,), "400": (_TEXT,)},
    ("post", "/gps/osmand"): {"200": (_TEXT,), "400": (_TEXT,)},
}  # fmt: skip
"""Media types of responses that FastAPI cannot see (the routes build their Response)."""
_ASYNC_JOB = {
    "description": "With ``Prefer: respond-async``: the job created (its URL in Location)",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


def _declare_responses(path: str, method: str, operation: dict[str, Any]) -> None:
    """Declare every error status the platform answers (:mod:`api.errors`), with the OGC
    exception body, and the media types the routes really send (:data:`_MEDIA`)."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's validation error: api.errors answers 400 or 422
    if path == "/processes/{process_id}/execution":
        responses.setdefault("201", _ASYNC_JOB)
    errors = _ERRORS | (_WRITE_ERRORS if method != "get" else {})
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Exception"}}}
    for status, description in errors.items():
        responses.setdefault(status, {"description": description, "content": body})
    for status, media in _MEDIA.get((method, path), {}).items():
        content = responses[status].setdefault("content", {})
        content.pop("application/json", None)
        for media_type in media:
            content.setdefault(media_type, {"schema": {}})
    offers_html = any(p.get("name") == "f" for p in operation.get("parameters", []))
    ok = responses.get("200", {}).get("content")
    if offers_html and ok is not None:  # ``f=html``: pygeoapi's page, or the route's own
        ok.setdefault("text/html", {"schema": {"type": "string"}})


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        merged = {k: v for k, v in node.items() if k != "anyOf"}
        if len(rest) == 1:
            merged.update(rest[0])
        else:
            merged["anyOf"] = rest
        merged["nullable"] = True
        return _convert(merged)
    if "contentMediaType" in node:
        node = {k: v for k, v in node.items() if k != "contentMediaType"} | {"format": "binary"}
    return {key: _convert(value) for key, value in node.items()}
