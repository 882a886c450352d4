"""OGC API - Features Part 4: create, replace, update and delete features.

Writes need a key or a token of a user granted write on the collection (only the rows of
their grant, :mod:`spatial.access`), and a collection ingested as editable.
``ETag``/``If-Match`` guard against lost updates: an edit naming a version that is no
longer current gets 412 and changes nothing.
The work, the history and the audit record are in :mod:`spatial.edits`.
"""

from __future__ import annotations

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from api.deps import ActorDep, Caller, Conn
from api.ogc import CRS_PARAM, read_body
from api.params import feature_id as feature_number
from spatial import edits, features

router = APIRouter(tags=["Features: edits"])
_JSON_TYPES = {"application/json", "application/geo+json"}


async def _feature(request: Request) -> dict[str, object]:
    limit = request.app.state.settings.server.max_edit_mb * 2**20
    return edits.parse_feature(await read_body(request, _JSON_TYPES, limit, "a feature edit"))


def _crs(request: Request) -> features.ServingCrs:
    """The CRS of the body's geometry: ``Content-Crs`` (Part 2), else ``crs``, else CRS84."""
    header = request.headers.get("content-crs", "").strip().strip("<>")
    return features.serving_crs(header or request.query_params.get("crs"))


def _done(edited: edits.Edited, status: int, location: str | None = None) -> Response:
    headers = {"OGC-Collection-Version": str(edited.version)}
    if edited.etag:
        headers["ETag"] = f'"{edited.etag}"'
    if location:
        headers["Location"] = location
    return Response(status_code=status, headers=headers)


@router.post("/collections/{collection_id}/items", status_code=201, summary="Add a feature")
async def create(
    collection_id: str,
    request: Request,
    seen: Caller,
    actor: ActorDep,
    conn: Conn,
    crs: str | None = CRS_PARAM,
) -> Response:
    """Add a GeoJSON Feature; 201 with its Location and ETag."""
    target = seen.writable(collection_id)
    target.editable()  # refused before the body is read
    edited = await target.create(conn, await _feature(request), _crs(request), actor)
    location = str(request.url_for("item", collection_id=collection_id, feature_id=str(edited.fid)))
    return _done(edited, 201, location)


async def _replace(
    collection_id: str, feature_id: str, request: Request, seen: Caller, actor: ActorDep,
    conn: Conn, *, partial: bool,
) -> Response:  # fmt: skip
    target = seen.writable(collection_id)
    target.editable()  # refused before the body is read
    edited = await target.replace(
        conn, feature_number(collection_id, feature_id), await _feature(request),
        crs=_crs(request), actor=actor, if_match=request.headers.get("if-match"),
        partial=partial,
    )  # fmt: skip
    return _done(edited, 200)


@router.put("/collections/{collection_id}/items/{feature_id}", summary="Replace a feature")
async def replace(
    collection_id: str, feature_id: str, request: Request, seen: Caller, actor: ActorDep,
    conn: Conn, crs: str | None = CRS_PARAM,
    if_match: str | None = Header(None, alias="If-Match"),
) -> Response:  # fmt: skip
    """Replace a feature with a GeoJSON Feature (its key cannot change)."""
    return await _replace(collection_id, feature_id, request, seen, actor, conn, partial=False)


@router.patch("/collections/{collection_id}/items/{feature_id}", summary="Update a feature")
async def update(
    collection_id: str, feature_id: str, request: Request, seen: Caller, actor: ActorDep,
    conn: Conn, crs: str | None = CRS_PARAM,
    if_match: str | None = Header(None, alias="If-Match"),
) -> Response:  # fmt: skip
    """Change the properties (and the geometry, if given) that the body names."""
    return await _replace(collection_id, feature_id, request, seen, actor, conn, partial=True)


@router.delete(
    "/collections/{collection_id}/items/{feature_id}", status_code=204, summary="Delete a feature"
)
async def delete(
    collection_id: str, feature_id: str, request: Request, seen: Caller, actor: ActorDep,
    conn: Conn, if_match: str | None = Header(None, alias="If-Match"),
) -> Response:  # fmt: skip
    """Remove a feature; its last version stays in the history."""
    target = seen.writable(collection_id)
    edited = await target.delete(
        conn, feature_number(collection_id, feature_id), actor=actor,
        if_match=request.headers.get("if-match"),
    )  # fmt: skip
    return _done(edited, 204)
