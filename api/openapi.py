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
    for item in converted.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if parameter.get("in") != "query":
                    continue
                parameter["style"], parameter["explode"] = "form", False
                if parameter.get("name") == "bbox":
                    parameter["schema"] = dict(_BBOX)
    return converted


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
