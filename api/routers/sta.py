"""OGC SensorThings API 1.1 reads at ``/sta/v1.1``: the service root, entity sets, entities,
navigation, properties (``/$value``), references (``/$ref``) and the query options
(:mod:`spatial.sta.query`). Creates, updates and deletes are :mod:`api.routers.sta_write`.

Who may read what is the caller's :meth:`layers.access.View.sta_scope`.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import Caller, ReadConn
from api.ogc import base_url
from spatial.errors import InvalidInputError
from spatial.sta import query
from spatial.sta.entities import SETS, VERSION

router = APIRouter(prefix=f"/sta/{VERSION}", tags=["SensorThings"])

_SPEC = "http://www.opengis.net/spec/iot_sensing/1.1/req"
CONFORMANCE = tuple(f"{_SPEC}/{c}" for c in (
    "datamodel", "resource-path/resource-path-to-entities", "request-data",
    "create-update-delete", "data-array/data-array",
))  # fmt: skip
"""The conformance classes implemented: the reads here, the creates, updates, deletes and
the data array in :mod:`api.routers.sta_write` (batch requests and MultiDatastreams are
not)."""
MQTT_CONFORMANCE = (
    f"{_SPEC}/create-observations-via-mqtt/observations-creation",
    f"{_SPEC}/receive-updates-via-mqtt/receive-updates",
)
"""Declared when a broker is configured (``SPATIAL_STA_MQTT_URL``) for the bridge
``spatial sta mqtt`` (:mod:`spatial.sta.mqtt`)."""


def root(request: Request) -> str:
    """The service root's URL as clients see it."""
    return f"{base_url(request)}/sta/{VERSION}"


def answer(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (UTF-8, compact)."""
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status, headers, media_type="application/json")


@router.get("", summary="SensorThings service root")
@router.get("/", include_in_schema=False)
async def service_root(request: Request) -> Response:
    """The entity sets and the conformance classes implemented."""
    base = root(request)
    broker = request.app.state.settings.sta.mqtt_url
    settings: dict[str, Any] = {
        "conformance": [*CONFORMANCE, *(MQTT_CONFORMANCE if broker else ())]
    }
    for name in MQTT_CONFORMANCE if broker else ():
        settings[name] = {"endpoints": [broker]}
    return answer({
        "value": [{"name": name, "url": f"{base}/{name}"} for name in SETS],
        "serverSettings": settings,
    })  # fmt: skip


def _given(request: Request) -> dict[str, str]:
    given: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if not key.startswith("$"):
            continue
        if key in given:
            raise InvalidInputError(f"{key} given twice")
        given[key] = value
    return given


@router.get("/{path:path}", summary="SensorThings entities, navigation and properties")
async def read(path: str, request: Request, view: Caller, conn: ReadConn) -> Response:
    """``Things``, ``Datastreams(5)/Observations?$filter=...``, ``Things(1)/name/$value``:
    with ``$filter``, ``$select``, ``$expand``, ``$orderby``, ``$top``, ``$skip`` and
    ``$count``; a page ends with ``@iot.nextLink`` when there is more."""
    resource = query.parse_path(path)
    settings = request.app.state.settings.sta
    opts = query.options(resource.last.set, _given(request), default_top=settings.default_top,
                         max_top=settings.max_top)  # fmt: skip
    base = root(request)
    page = await query.read(conn, view.sta_scope(), resource, opts, base)
    if resource.ref:
        links = [{"@iot.selfLink": e["@iot.selfLink"]} for e in page.value]
        return answer(links[0] if resource.single else {"value": links})
    if resource.prop is not None:
        name = "@iot.id" if resource.prop == "id" else resource.prop
        value = page.value[0].get(name)
        if resource.value:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            return Response(text, media_type="text/plain; charset=utf-8")
        return answer({resource.prop: value})
    if resource.single:
        return answer(page.value[0])
    document: dict[str, Any] = {}
    if page.count is not None:
        document["@iot.count"] = page.count
    document["value"] = page.value
    if page.more:
        document["@iot.nextLink"] = query.next_link(
            f"{base}/{path.strip('/')}", opts.given, opts.skip + opts.top
        )
    return answer(document)
