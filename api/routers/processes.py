"""OGC API - Processes: the process list, descriptions, execution, and jobs.

Execution is synchronous by default (the outputs in the response) and asynchronous with
``Prefer: respond-async`` (201, ``Location: /jobs/{id}``). Jobs are rows of
``platform.ingest_jobs`` (kind ``process``: the inputs in ``options``, the outputs in
``report``), so any worker can answer for any job; an asynchronous run is a task of the
worker that accepted it, and ``DELETE /jobs/{id}`` dismisses it (cancels it if it runs
there, and drops its results). A job whose worker stopped is marked failed by the next
worker to start (:func:`recover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from starlette.concurrency import run_in_threadpool

from api.auth import actor_of, view_of
from api.deps import Conn, ViewDep
from api.engine import Engine
from api.ogc import F_PARAM, base_url, check_parameters, read_body, response_format
from api.routers.ingest import may_ingest
from api.routers.rasters import raster_collection
from layers import View
from spatial import analysis, jsonbody, processes, rasterstore
from spatial.catalog import CollectionRecord
from spatial.errors import (
    InvalidInputError,
    NotFoundError,
    SpatialError,
)
from spatial.features import LayerSchema
from spatial.ingest import jobs
from spatial.ingest.vector import VectorSource, ingest_vector

router = APIRouter(tags=["Processes"])
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss",
]
_STATUS = {
    "queued": "accepted",
    "running": "running",
    "succeeded": "successful",
    "failed": "failed",
    "cancelled": "dismissed",
}
_MAX_BODY = 16 * 2**20


def _process(process_id: str) -> processes.Process:
    try:
        return processes.PROCESSES[process_id]
    except KeyError:
        msg = f"process {process_id!r} does not exist; see /processes"
        raise NotFoundError(msg) from None


@router.get("/processes", summary="The processes", response_model=None)
async def process_list(request: Request, f: str | None = F_PARAM) -> Response:
    """Every process the platform runs (HTML: pygeoapi's page)."""
    check_parameters(request, frozenset({"f", "lang"}))
    base = base_url(request)
    body = {
        "processes": [p.summary(base) for p in processes.PROCESSES.values()],
        "links": [{"rel": "self", "type": "application/json", "href": f"{base}/processes"}],
    }
    return await _answer(request, body, "processes/index.html")


@router.get("/processes/{process_id}", summary="One process", response_model=None)
async def process_description(
    process_id: str, request: Request, f: str | None = F_PARAM
) -> Response:
    """A process's inputs and outputs (HTML: pygeoapi's page)."""
    check_parameters(request, frozenset({"f", "lang"}))
    return await _answer(request, _process(process_id).describe(base_url(request)),
                         "processes/process.html")  # fmt: skip


async def _answer(request: Request, body: dict[str, Any], template: str) -> Response:
    """The document as JSON, or shown in one of pygeoapi's pages."""
    if response_format(request) == "html":
        engine: Engine = request.app.state.engine
        now = dt.datetime.now(dt.UTC).isoformat()
        return await engine.render(request, template, {**body, "now": now})
    return JSONResponse(body)


async def _inputs(request: Request) -> dict[str, Any]:
    body = await read_body(request, {"application/json"}, _MAX_BODY, "an execution request")
    document = jsonbody.loads(body, "the body")
    inputs = document.get("inputs") if isinstance(document, dict) else None
    if not isinstance(inputs, dict):
        msg = 'the body must be {"inputs": {...}}'
        raise InvalidInputError(msg)
    return inputs


_EXECUTE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "properties": {"inputs": {"type": "object", "additionalProperties": True}},
            }
        }
    },
}


@router.post(
    "/processes/{process_id}/execution",
    summary="Run a process",
    response_model=None,
    openapi_extra={"requestBody": _EXECUTE_BODY},
)
async def execute(process_id: str, request: Request, seen: ViewDep, conn: Conn) -> Response:
    """Run a process: the outputs now, or with ``Prefer: respond-async`` a job to follow.
    It reads the collections as the caller sees them (their rows only)."""
    process = _process(process_id)
    inputs = await _inputs(request)

    lookup = Context(request, seen)

    if "respond-async" not in request.headers.get("prefer", ""):
        outputs = await process.run(conn, lookup, inputs)
        return JSONResponse(outputs)
    # The task creates the job, holding its lock from before the row exists: a worker
    # starting meanwhile (recover) never finds it queued and unlocked, so never fails it.
    created: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        _run(request.app, process, lookup, inputs, created, seen.principal.username)
    )
    job_id = await created
    tasks: dict[str, asyncio.Task[None]] = request.app.state.process_tasks
    tasks[job_id] = task
    task.add_done_callback(lambda _: tasks.pop(job_id, None))
    body = await _status(request, conn, job_id)
    return JSONResponse(body, status_code=201, headers={"Location": body["links"][0]["href"]})


class Context:
    """What a process may reach, as the caller sees it (:data:`spatial.processes.Lookup`)."""

    def __init__(self, request: Request, seen: View) -> None:
        self.request = request
        self.seen = seen
        self.data_dir = request.app.state.settings.data_dir
        self.rasters = rasterstore.of(request.app.state.settings)

    def __call__(self, collection_id: str) -> LayerSchema:
        return self.seen.layer(self.seen.get(collection_id))

    def raster(self, collection_id: str) -> CollectionRecord:
        return raster_collection(self.seen, collection_id)

    async def publish(self, frame: Any, collection_id: str, title: str) -> str:
        """Write a result back as a new vector collection (stewards and admins)."""
        department = may_ingest(self.request, collection_id)
        app = self.request.app
        source_actor = actor_of(self.request)

        def work() -> str:
            from api.app import load_catalog  # noqa: PLC0415 - avoids an import cycle

            with analysis.temp_folder() as folder:
                path = analysis.write_gpkg(frame, Path(folder), collection_id)
                source = VectorSource(
                    path=path,
                    collection_id=collection_id,
                    title=title,
                    department=department,
                    source_name=f"{title}.gpkg",
                )
                outcome = ingest_vector(app.state.url, source, app.state.settings,
                                        actor=source_actor)  # fmt: skip
            app.state.catalog = load_catalog(app.state.url)
            return outcome.record.id

        return str(await run_in_threadpool(work))


async def recover(pool: Any) -> int:
    """Mark failed the jobs whose worker stopped (:data:`spatial.ingest.jobs.REAP`);
    returns how many. A job is left alone while any worker holds its lock."""
    async with pool.connection() as conn:
        cur = await conn.execute(jobs.REAP, {"id": None})
        return len(await cur.fetchall())


async def _run(
    app: Any, process: processes.Process, lookup: processes.Lookup, inputs: dict[str, Any],
    created: asyncio.Future[str], created_by: str,
) -> None:  # fmt: skip
    """Create the job (its id set on ``created``, or the reason it could not be) and run it."""
    job_id = str(uuid.uuid4())
    tracker = jobs.Tracker(app.state.url, job_id)
    try:
        async with app.state.pool.connection() as conn:
            await conn.execute(jobs.LOCK.format("pg_advisory_lock"), (job_id,))
            await conn.execute(jobs.INSERT, (job_id, "process", None, process.id,
                                             Jsonb(inputs), created_by))  # fmt: skip
            created.set_result(job_id)
            try:
                await run_in_threadpool(tracker.start)
                try:
                    outputs = await process.run(conn, lookup, inputs)
                except Exception as exc:  # noqa: BLE001 - recorded on the job, never lost
                    message = (
                        str(exc) if isinstance(exc, SpatialError) else f"internal error: {exc!r}"
                    )
                    await run_in_threadpool(tracker.finish, ok=False, message=message, report={})
                else:
                    # Recorded before the lock goes: unlocked and still running, a starting
                    # worker would take it for an orphan.
                    await run_in_threadpool(tracker.finish, ok=True, message="done",
                                            report={"outputs": outputs})  # fmt: skip
            finally:
                # A cancelled query can leave the connection unusable: the pool then closes
                # it, which releases the lock as well.
                with contextlib.suppress(psycopg.Error):
                    await conn.execute(jobs.LOCK.format("pg_advisory_unlock"), (job_id,))
    except asyncio.CancelledError:
        if not created.done():
            created.cancel()
        raise
    except Exception as exc:  # noqa: BLE001 - recorded on the job, never lost
        if not created.done():  # no job yet (no connection, say): the request fails
            created.set_exception(exc)
            return
        await run_in_threadpool(
            tracker.finish, ok=False, message=f"internal error: {exc!r}", report={}
        )


async def _job(conn: Any, job_id: str, seen: View) -> dict[str, Any]:
    """A process job of the caller's (an admin's: anyone's)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(jobs.SELECT_JOB + " AND kind = 'process'", (jobs.job_uuid(job_id),))
        row = await cur.fetchone()
    if row is None or not (seen.principal.admin or row["created_by"] == seen.principal.username):
        msg = f"job {job_id!r} does not exist"
        raise NotFoundError(msg)
    return dict(row)


async def _status(request: Request, conn: Any, job_id: str) -> dict[str, Any]:
    return _document(base_url(request), await _job(conn, job_id, view_of(request)))


def _document(base: str, row: dict[str, Any]) -> dict[str, Any]:
    url = f"{base}/jobs/{row['id']}"
    status = _STATUS[row["state"]]
    links = [{"rel": "self", "type": "application/json", "href": url}]
    if status == "successful":
        links.append({"rel": "http://www.opengis.net/def/rel/ogc/1.0/results",
                      "type": "application/json", "href": f"{url}/results"})  # fmt: skip
    stamp = {k: (row[k].isoformat() if row[k] else None)
             for k in ("created_at", "started_at", "finished_at")}  # fmt: skip
    return {
        "jobID": row["id"],
        "processID": row["source"],
        "type": "process",
        "status": status,
        "message": row["message"],
        "progress": round(float(row["progress"]) * 100),
        "created": stamp["created_at"],
        "started": stamp["started_at"],
        "finished": stamp["finished_at"],
        "links": links,
    }


@router.get("/jobs", summary="Process jobs", response_model=None)
async def job_list(
    request: Request, seen: ViewDep, conn: Conn, f: str | None = F_PARAM
) -> Response:
    """The caller's latest 100 process jobs, newest first (an admin's: everyone's; HTML:
    pygeoapi's page)."""
    check_parameters(request, frozenset({"f", "lang"}))
    mine = None if seen.principal.admin else seen.principal.username
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            jobs.SELECT_JOB.split(" WHERE ")[0]
            + " WHERE kind = 'process' AND (%s::text IS NULL OR created_by = %s) "
            "ORDER BY created_at DESC LIMIT 100",
            (mine, mine),
        )
        rows = await cur.fetchall()
    base = base_url(request)
    body = {
        "jobs": [_document(base, dict(r)) for r in rows],
        "links": [{"rel": "self", "type": "application/json", "href": f"{base}/jobs"}],
    }
    if response_format(request) == "html":
        return await _answer(request, {"jobs": body, "links": body["links"]}, "jobs/index.html")
    return JSONResponse(body)


@router.get("/jobs/{job_id}", summary="A job's status", response_model=None)
async def job_status(
    job_id: str, request: Request, conn: Conn, f: str | None = F_PARAM
) -> Response:
    """Where a job is: accepted, running, successful, failed or dismissed."""
    check_parameters(request, frozenset({"f", "lang"}))
    body = await _status(request, conn, job_id)
    if response_format(request) == "html":
        return await _answer(request, {"jobs": body, "links": body["links"]}, "jobs/job.html")
    return JSONResponse(body)


@router.get("/jobs/{job_id}/results", summary="A job's results")
async def job_results(job_id: str, seen: ViewDep, conn: Conn) -> dict[str, Any]:
    """The outputs of a successful job."""
    row = await _job(conn, job_id, seen)
    if row["state"] != "succeeded":
        msg = f"job {job_id} has no results: it is {_STATUS[row['state']]}"
        raise NotFoundError(msg)
    outputs: dict[str, Any] = row["report"].get("outputs", {})
    return outputs


@router.delete("/jobs/{job_id}", summary="Dismiss a job")
async def dismiss(job_id: str, request: Request, seen: ViewDep, conn: Conn) -> dict[str, Any]:
    """Cancel a job (if it runs here) and drop its results."""
    row = await _job(conn, job_id, seen)
    task = request.app.state.process_tasks.get(row["id"])
    if task is not None:
        task.cancel()
    await conn.execute(
        "UPDATE platform.ingest_jobs SET state = 'cancelled', report = %s, "
        "message = 'dismissed', finished_at = coalesce(finished_at, now()) WHERE id = %s::uuid",
        (Jsonb({}), row["id"]),
    )
    return await _status(request, conn, job_id)
