"""OGC SensorThings API 1.1 writes at ``/sta/v1.1``: create (``POST`` to an entity set or
under an entity: ``Datastreams(5)/Observations``, ``Things(1)/Datastreams``), update
(``PATCH``, JSON Patch with ``application/json-patch+json``, ``PUT``), delete, and the
DataArray batch ``POST /sta/v1.1/CreateObservations``. :mod:`spatial.sta.write` does the
work on a thread, in one transaction per request; reads are :mod:`api.routers.sta`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import ActorDep, Caller, database
from api.routers import sta
from layers import View
from spatial import jsonbody
from spatial.access import WRITE
from spatial.audit import Actor
from spatial.errors import InvalidInputError, NotFoundError, UnsupportedMediaTypeError
from spatial.sta import dataarray, query, write
from spatial.sta.entities import VERSION, self_link

router = APIRouter(prefix=f"/sta/{VERSION}", tags=["SensorThings"])


_JSON = {"application/json", "application/geo+json", ""}
_PATCH = "application/json-patch+json"
_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object"}},
    _PATCH: {"schema": {"type": "array", "items": {"type": "object"}}}}}}  # fmt: skip
_ARRAY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "array", "items": {"type": "object", "properties": {
        "Datastream": {"type": "object"}, "components": {"type": "array"},
        "dataArray": {"type": "array"}}}}}}}}  # fmt: skip


def author(view: View, actor: Actor) -> write.Author:
    """Who writes, from the caller's view: their read scope, department and rights."""
    who = view.principal
    return write.Author(
        scope=view.sta_scope(), actor=actor, signed_in=not who.anonymous,
        department=who.department, admin=who.admin,
        member=bool({"editor", "steward"} & who.roles),
        collections=frozenset(c for c, a in view.rights.items() if a.level >= WRITE),
    )  # fmt: skip


async def _body(request: Request, *, patch: bool = False) -> tuple[Any, str]:
    """The JSON body, and ``json-patch`` or ``json`` for its kind.

    Raises:
        UnsupportedMediaTypeError: neither JSON nor (for PATCH) a JSON Patch.
        InvalidInputError: not JSON.
    """
    kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if patch and kind == _PATCH:
        return jsonbody.loads(await request.body(), "the JSON Patch"), "json-patch"
    if kind not in _JSON and not kind.endswith("+json"):
        accepted = "application/json" + (f" or {_PATCH}" if patch else "")
        raise UnsupportedMediaTypeError(f"send {accepted}, not {kind!r}")
    return jsonbody.loads(await request.body(), "the body"), "json"


def _entity(path: str) -> tuple[str, int]:
    """The entity set and id a path names (``Things(5)``).

    Raises:
        InvalidInputError: a path naming anything else.
    """
    resource = query.parse_path(path)
    step = resource.last
    if len(resource.steps) != 1 or step.id is None or resource.prop or resource.ref:
        msg = f"{path[:100]!r}: name one entity by its id, as in Things(5)"
        raise InvalidInputError(msg)
    return step.set.name, step.id


async def _answer(request: Request, view: View, entity_set: str, entity_id: int,
                  status: int) -> Response:  # fmt: skip
    """The entity as the reads answer it (with ``Location`` on a create)."""
    base = sta.root(request)
    link = self_link(base, entity_set, entity_id)
    async with database(request).connection() as conn:
        try:
            found = await query.entity(conn, view.sta_scope(), entity_set, entity_id, base)
        except NotFoundError:  # written, but not readable by its writer (a grant's rows)
            found = {"@iot.id": entity_id, "@iot.selfLink": link}
    headers = {"Location": link} if status == 201 else None
    return sta.answer(found, status, headers)


@router.post("/CreateObservations", status_code=201, openapi_extra=_ARRAY,
             summary="Create Observations in the DataArray form")  # fmt: skip
async def create_observations(request: Request, view: Caller, actor: ActorDep) -> Response:
    """A JSON array of ``{"Datastream": {"@iot.id": n}, "components": [...], "dataArray":
    [[...], ...]}``; answers the new Observations' selfLinks in order, ``"error ..."`` in
    place of each refused reading (the others are stored)."""
    body, _ = await _body(request)
    who = author(view, actor)
    settings, base = request.app.state.settings.sta, sta.root(request)
    links = await database(request).run(
        lambda conn: dataarray.data_array(conn, who, body, settings=settings, base=base)
    )
    return sta.answer(links, 201)


@router.post("/{path:path}", status_code=201, openapi_extra=_BODY,
             summary="Create a SensorThings entity (deep insert, links)")  # fmt: skip
async def create(path: str, request: Request, view: Caller, actor: ActorDep) -> Response:
    """``POST /Things``, ``/Datastreams(5)/Observations``: the new entity, ``Location``
    its selfLink."""
    resource = query.parse_path(path)
    if resource.prop or resource.ref or resource.last.id is not None or len(
            resource.steps) > 2:  # fmt: skip
        raise InvalidInputError(f"{path[:100]!r}: create in an entity set, or under an entity")
    parent = None
    if len(resource.steps) == 2:
        first, nav = resource.steps[0], resource.last.via
        assert first.id is not None and nav is not None  # noqa: S101 - parse_path's shape
        parent = (first.set.name, first.id, nav.name)
    entity_set = resource.last.set.name
    body, _ = await _body(request)
    who, settings = author(view, actor), request.app.state.settings.sta
    new = await database(request).run(lambda conn: write.create(
        conn, who, entity_set, body, settings=settings, parent=parent))  # fmt: skip
    return await _answer(request, view, entity_set, new, 201)


async def _update(path: str, request: Request, view: View, actor: Actor, how: str) -> Response:
    entity_set, entity_id = _entity(path)
    body, kind = await _body(request, patch=how == "merge")
    who, settings = author(view, actor), request.app.state.settings.sta
    mode = "json-patch" if kind == "json-patch" else how
    await database(request).run(lambda conn: write.update(
        conn, who, entity_set, entity_id, body, settings=settings, how=mode))  # fmt: skip
    return await _answer(request, view, entity_set, entity_id, 200)


@router.patch("/{path:path}", openapi_extra=_BODY, summary="Update a SensorThings entity")
async def patch(path: str, request: Request, view: Caller, actor: ActorDep) -> Response:
    """The properties given replace the entity's (``properties`` merged as a JSON Merge
    Patch); ``application/json-patch+json``: a JSON Patch of its properties."""
    return await _update(path, request, view, actor, "merge")


@router.put("/{path:path}", openapi_extra=_BODY, summary="Replace a SensorThings entity")
async def put(path: str, request: Request, view: Caller, actor: ActorDep) -> Response:
    """The whole entity: what the body leaves out is reset."""
    return await _update(path, request, view, actor, "replace")


@router.delete(
    "/{path:path}",
    response_class=Response,
    summary="Delete a SensorThings entity",
    responses={200: {"description": "Deleted (an empty body)", "content": {}}},
)
async def remove(path: str, request: Request, view: Caller, actor: ActorDep) -> Response:
    """The entity and what the data model deletes with it."""
    entity_set, entity_id = _entity(path)
    who, settings = author(view, actor), request.app.state.settings.sta
    await database(request).run(lambda conn: write.delete(
        conn, who, entity_set, entity_id, settings=settings))  # fmt: skip
    return Response(status_code=200)
