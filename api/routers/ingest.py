"""Uploads: ``POST /ingest/vector`` and ``POST /ingest/raster`` start an ingest job;
``GET /ingest/jobs/{id}`` follows it.

The upload is written to a private directory under ``var/ingest/uploads`` while its
size is counted (the request is refused as soon as it passes the limit), a job row is
created, and the ingest runs on a single background worker: one heavy ingest at a time,
so uploads never starve the API of its two cores. The job row carries progress while
it runs and the JSON report at the end; rejected features can be downloaded as GeoJSON.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api import catalog
from api.deps import Conn, actor_of, caller, database
from spatial.audit import Actor
from spatial.errors import (
    InvalidInputError,
    SpatialError,
    TooLargeError,
)
from spatial.ingest import jobs
from spatial.ingest.raster import RasterSource, check_scene, ingest_raster
from spatial.ingest.raster import validate_source as validate_raster
from spatial.ingest.vector import VectorSource, ingest_vector, validate_source
from spatial.settings import Settings

router = APIRouter(prefix="/ingest", tags=["Ingest"])
log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_SIDECARS = {".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".xml", ".csvt"}


def executor() -> ThreadPoolExecutor:
    """The worker that runs ingest jobs one at a time."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest")


@router.post("/vector", status_code=202, summary="Upload a vector file and start its ingest")
async def upload_vector(
    request: Request,
    file: Annotated[list[UploadFile], File(description="The file, a .zip, or a Shapefile's parts")],
    collection: Annotated[str, Form(description="Collection id (a-z, 0-9, _)")],
    title: Annotated[str | None, Form()] = None,
    subsystem: Annotated[list[str] | None, Form()] = None,
    crs: Annotated[str | None, Form()] = None,
    encoding: Annotated[str | None, Form()] = None,
    key: Annotated[str | None, Form()] = None,
    layer: Annotated[str | None, Form()] = None,
    on_invalid: Annotated[Literal["reject", "repair", "quarantine"], Form()] = "reject",
    valid_from: Annotated[dt.datetime | None, Form()] = None,
    editable: Annotated[bool, Form(description="Allow feature edits (needs a key)")] = False,
    public: Annotated[bool | None, Form(description="Readable by everyone?")] = None,
) -> JSONResponse:
    """Store the upload, create an ingest job and start it; answer 202 with the job.

    A steward ingests into their department's collections (a new one becomes theirs), an
    admin into any; nobody else may."""
    department, actor, settings, limit, folder = _upload(request, collection)
    try:
        main, name = await _store(file, folder, limit, settings)
        source = VectorSource(
            path=main,
            collection_id=collection,
            title=title or collection,
            subsystems=tuple(subsystem or ()),
            layer=layer,
            crs=crs,
            encoding=encoding,
            key=key,
            on_invalid=on_invalid,
            valid_from=valid_from,
            source_name=name,
            editable=editable,
            public=public,
            department=department,
        )
        validate_source(source, settings)
        job_id = await run_in_threadpool(
            jobs.create,
            request.app.state.url,
            kind="vector",
            collection_id=collection,
            source=name,
            options={"collection": collection, "key": key, "on_invalid": on_invalid},
            created_by=actor.name,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    _submit(request.app, source, job_id, folder, actor)
    async with database(request).connection() as conn:
        job = await _job(request, conn, job_id)
    location = str(request.url_for("get_job", job_id=job_id))
    return JSONResponse(job, status_code=202, headers={"Location": location})


@router.post("/raster", status_code=202, summary="Upload a raster scene and start its ingest")
async def upload_raster(
    request: Request,
    file: Annotated[
        list[UploadFile],
        File(description="One raster file, or one scene's band files (and a Landsat *_MTL.txt)"),
    ],
    collection: Annotated[str, Form(description="Collection id (a-z, 0-9, _)")],
    title: Annotated[str | None, Form()] = None,
    item: Annotated[str | None, Form(description="Item id [default: from the files]")] = None,
    datetime: Annotated[dt.datetime | None, Form(description="Acquisition time")] = None,
    sensor: Annotated[str | None, Form()] = None,
    bands: Annotated[str | None, Form(description="Band names in order, comma-separated")] = None,
    subsystem: Annotated[list[str] | None, Form()] = None,
    public: Annotated[bool | None, Form(description="Readable by everyone?")] = None,
    subdataset: Annotated[
        str | None, Form(description="The variable of a NetCDF file or dataset of an HDF5 file")
    ] = None,
    dem: Annotated[
        str | None, Form(description="Elevation collection to orthorectify RPC scenes with")
    ] = None,
    kind: Annotated[str, Form(description="imagery, or elevation (one band of heights)")] = (
        "imagery"
    ),
) -> JSONResponse:
    """Store the upload, check every file (a refusal is a 400 with the reason, and
    nothing is kept), then convert and catalog it as a job; answer 202 with the job."""
    department, actor, settings, limit, folder = _upload(request, collection)
    try:
        scene_dir = folder / _safe_name(Path(item or (file[0].filename or "scene")).stem)
        names = await _store_all(file, scene_dir, limit, settings)
        path = scene_dir / names[0] if len(names) == 1 else scene_dir
        source = RasterSource(
            paths=(path,), collection_id=collection, title=title, item_id=item,
            datetime=datetime, sensor=sensor,
            bands=tuple(b.strip() for b in bands.split(",")) if bands else (),
            subsystems=tuple(subsystem or ()), public=public, department=department,
            source_name=", ".join(names), subdataset=subdataset, dem=dem, kind=kind,
        )  # fmt: skip
        validate_raster(source, settings)
        await run_in_threadpool(check_scene, path, settings, source, request.app.state.url)
        job_id = await run_in_threadpool(
            jobs.create, request.app.state.url, kind="raster", collection_id=collection,
            source=source.source_name or path.name, options={"collection": collection},
            created_by=actor.name,
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    _submit(request.app, source, job_id, folder, actor)
    async with database(request).connection() as conn:
        job = await _job(request, conn, job_id)
    location = str(request.url_for("get_job", job_id=job_id))
    return JSONResponse(job, status_code=202, headers={"Location": location})


async def _store_all(
    uploads: list[UploadFile], folder: Path, limit: int, settings: Settings
) -> list[str]:
    """Write every part to ``folder`` counting bytes; return their names."""
    if not uploads:
        raise InvalidInputError("no file in the upload")
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    names = []
    for upload in uploads:
        target = folder / _safe_name(upload.filename or "upload")
        with target.open("wb") as out:
            while chunk := await upload.read(_CHUNK):
                total += len(chunk)
                if total > limit:
                    raise TooLargeError(_too_large(settings))
                out.write(chunk)
        names.append(target.name)
    return names


async def _store(
    uploads: list[UploadFile], folder: Path, limit: int, settings: Settings
) -> tuple[Path, str]:
    """Write the parts to ``folder`` counting bytes; return the file to read and its name."""
    stored = [folder / name for name in await _store_all(uploads, folder, limit, settings)]
    if len(stored) == 1:
        return stored[0], stored[0].name
    mains = [p for p in stored if p.suffix.lower() not in _SIDECARS]
    if len(mains) != 1:
        names = ", ".join(p.name for p in mains) or "only sidecar files"
        msg = (
            f"several files were uploaded ({names}); "
            "send one file, a .zip, or one Shapefile's parts"
        )
        raise InvalidInputError(msg)
    return mains[0], mains[0].name


def _safe_name(name: str) -> str:
    """The file's base name with anything unusual replaced (no paths, no hidden files)."""
    base = re.split(r"[\\/]", name)[-1]
    base = re.sub(r"[^\w.\-]", "_", base).lstrip(".") or "upload"
    return base[:200]


def _upload(request: Request, collection: str) -> tuple[str | None, Actor, Settings, int, Path]:
    """Who may upload into ``collection`` (:func:`may_ingest`), the size limit (a declared
    length over it is refused at once) and a new private folder for the parts."""
    department = may_ingest(request, collection)
    settings: Settings = request.app.state.settings
    limit = settings.ingest.max_upload_mb * 1024 * 1024
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLargeError(_too_large(settings))
    folder = settings.var_dir / "ingest" / "uploads" / uuid.uuid4().hex
    return department, actor_of(request), settings, limit, folder


def _too_large(settings: Settings) -> str:
    return f"the upload is larger than the limit of {settings.ingest.max_upload_mb:,} MiB"


def may_ingest(request: Request, collection: str) -> str | None:
    """The department a new collection will belong to (None: keep the owner), for a
    caller who may ingest into it (:meth:`layers.View.may_ingest`)."""
    return caller(request).may_ingest(collection)


def _submit(
    app: Any, source: VectorSource | RasterSource, job_id: str, folder: Path, actor: Actor
) -> None:
    """Queue the job on the ingest worker. A job still queued when the API stops is
    dropped (its row stays "queued"); its upload goes all the same."""

    def dropped(future: Future[None]) -> None:
        if future.cancelled():
            shutil.rmtree(folder, ignore_errors=True)

    app.state.ingest_executor.submit(
        _run_job, app, source, job_id, folder, actor
    ).add_done_callback(dropped)


def _run_job(
    app: Any, source: VectorSource | RasterSource, job_id: str, folder: Path, actor: Actor
) -> None:
    """Run one ingest on the worker thread; errors are recorded on the job, not raised.

    The upload folder is the job's: the job runner removes it, and this worker's catalog
    is read again, before the job's final state is written. A client that reads
    ``succeeded`` or ``failed`` finds the upload gone and the collection known here."""

    def cleanup() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        catalog.refresh_quietly(app)

    url, settings = app.state.url, app.state.settings
    try:
        if isinstance(source, RasterSource):
            ingest_raster(url, source, settings, actor=actor, job_id=job_id, cleanup=cleanup)
        else:
            ingest_vector(url, source, settings, actor=actor, job_id=job_id, cleanup=cleanup)
    except SpatialError:
        pass  # the job row holds the message and the report


async def _job(request: Request, conn: Any, job_id: str) -> dict[str, Any]:
    """A job of the caller's (an admin's: anyone's); others do not exist for them."""
    row = await jobs.read(conn, job_id, reap=True)  # a dead worker's job is marked failed
    who = caller(request).principal
    if row is not None and not (who.admin or row["created_by"] == who.username):
        row = None
    job = jobs.from_row(row, job_id).as_dict()
    return _with_links(job, str(request.base_url).rstrip("/"))


def _with_links(job: dict[str, Any], base: str) -> dict[str, Any]:
    links = [{"rel": "self", "type": "application/json", "href": f"{base}/ingest/jobs/{job['id']}"}]
    if job["report"].get("features_quarantined"):
        links.append(
            {
                "rel": "quarantine",
                "type": "application/geo+json",
                "href": f"{base}/ingest/jobs/{job['id']}/quarantine",
            }
        )
    if job["state"] == "succeeded" and job["collection_id"]:
        links.append(
            {
                "rel": "changes",
                "type": "application/json",
                "href": f"{base}/collections/{job['collection_id']}/changes",
            }
        )
    job["links"] = links
    return job


@router.get("/jobs/{job_id}", name="get_job", summary="An ingest job: state, progress, report")
async def get_job(request: Request, job_id: str, conn: Conn) -> dict[str, Any]:
    """The job as stored, with links to its quarantine and the changes it made."""
    return await _job(request, conn, job_id)


@router.get(
    "/jobs/{job_id}/quarantine",
    summary="Features an ingest kept aside, with their reasons, as GeoJSON",
    response_class=Response,
)
async def quarantine(request: Request, job_id: str, conn: Conn) -> Response:
    """A GeoJSON FeatureCollection (lon/lat) built by PostGIS; reasons are in ``_reasons``."""
    await _job(request, conn, job_id)  # 404 for an unknown job
    body = await jobs.quarantine(conn, job_id)
    return Response(
        body,
        media_type="application/geo+json",
        headers={"Content-Disposition": f'attachment; filename="quarantine-{job_id}.geojson"'},
    )
