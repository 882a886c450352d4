"""Running processes for the API: what a process may reach as its caller, and jobs.

- :class:`Context` is what a process reads (:data:`spatial.processes.Lookup`): the
  collections as the caller's view hands them out (their rows only), the raster store,
  and :meth:`Context.publish`, which writes a result back as a new collection for callers
  who may ingest.
- :func:`start` runs a process as a job (``Prefer: respond-async``): a task of the worker
  that accepted it, its row in ``platform.ingest_jobs`` (kind ``process``: the inputs in
  ``options``, the outputs in ``report``) written after its advisory lock is taken and
  finished before the lock goes, so any worker can answer for it and no starting worker
  takes it for an orphan (:func:`recover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import shutil
import uuid
from pathlib import Path
from typing import Any

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api import catalog
from api.db import Database
from api.deps import actor_of
from layers import VectorCollection, View
from spatial import analysis, processes, rasterstore
from spatial.catalog import CollectionRecord
from spatial.errors import ForbiddenError, InvalidInputError, SpatialError
from spatial.features import LayerSchema
from spatial.ingest import jobs
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.network import closures

STATUS = {
    "queued": "accepted",
    "running": "running",
    "succeeded": "successful",
    "failed": "failed",
    "cancelled": "dismissed",
}
"""A job's state as OGC API - Processes names it."""


class Context:
    """What a process may reach, as the caller sees it (:data:`spatial.processes.Lookup`)."""

    def __init__(self, request: Request, seen: View) -> None:
        """The context of one execution request."""
        self.request = request
        self.seen = seen
        self.data_dir = request.app.state.settings.data_dir
        self.rasters = rasterstore.of(request.app.state.settings)

    def __call__(self, collection_id: str) -> LayerSchema:
        """A collection with features, with the caller's rows.

        Raises:
            NotFoundError: the caller cannot read it.
            InvalidInputError: it has no features (a process input names the wrong kind).
        """
        found = self.seen.collection(collection_id)
        if not isinstance(found, VectorCollection):
            msg = f"collection {collection_id!r} is not a vector layer (it is {found.kind} data)"
            raise InvalidInputError(msg)
        return found.layer

    def raster(self, collection_id: str) -> CollectionRecord:
        """Imagery the caller may read whole."""
        return self.seen.raster(collection_id).record

    def may_close_roads(self) -> None:
        """Refuse a caller who may not close roads (as ``/network/closures`` does).

        Raises:
            ForbiddenError: an anonymous caller, or not of the department that closes roads.
        """
        department = self.request.app.state.settings.network.closures_department
        if self.seen.principal.anonymous:
            msg = f"closing roads is for the {department} department's editors: sign in"
            raise ForbiddenError(msg)
        self.seen.member_of(department, "road closures")

    async def close_roads(
        self, network: str, reason: str, wkt: str, expires_at: dt.datetime
    ) -> closures.Closure:
        """Close the roads of ``network`` in a polygon (WKT, CRS84) as the caller (audited)."""
        self.may_close_roads()
        settings, actor = self.request.app.state.settings.network, actor_of(self.request)

        def work(conn: Any) -> closures.Closure:
            return closures.add_closure(
                conn, network, reason, wkt, expires_at=expires_at,
                max_days=settings.max_closure_days, actor=actor,
            )  # fmt: skip

        made: closures.Closure = await self.request.app.state.db.run(work)
        return made

    async def publish(self, frame: Any, collection_id: str, title: str) -> str:
        """Write a result back as a new vector collection (for callers who may ingest).

        Its ingest job ends once the temporary file is gone and this worker's catalog
        lists the collection (the job runner's cleanup, before the final state)."""
        department = self.seen.may_ingest(collection_id)
        app = self.request.app
        actor = actor_of(self.request)

        def work() -> str:
            temp = analysis.temp_folder()

            def cleanup() -> None:
                shutil.rmtree(temp.name, ignore_errors=True)
                catalog.refresh_quietly(app)

            with temp:  # removes it too when the ingest is refused before its job exists
                path = analysis.write_gpkg(frame, Path(temp.name), collection_id)
                source = VectorSource(
                    path=path, collection_id=collection_id, title=title,
                    department=department, source_name=f"{title}.gpkg",
                )  # fmt: skip
                outcome = ingest_vector(app.state.url, source, app.state.settings,
                                        actor=actor, cleanup=cleanup)  # fmt: skip
            return outcome.record.id

        return str(await run_in_threadpool(work))


async def recover(db: Database) -> int:
    """Mark failed the jobs whose worker stopped (:data:`spatial.ingest.jobs.REAP`);
    returns how many. A job is left alone while any worker holds its lock."""
    async with db.connection() as conn:
        return await jobs.reap_all(conn)


async def start(
    request: Request, process: processes.Process, inputs: dict[str, Any], seen: View
) -> str:
    """Start ``process`` as a job of this worker; its id, once its row exists."""
    app = request.app
    # The task creates the job, holding its lock from before the row exists: a worker
    # starting meanwhile (recover) never finds it queued and unlocked, so never fails it.
    created: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    lookup = Context(request, seen)
    task = asyncio.create_task(
        _run(app, process, lookup, inputs, created=created, created_by=seen.principal.username)
    )
    job_id = await created
    tasks: dict[str, asyncio.Task[None]] = app.state.process_tasks
    tasks[job_id] = task
    task.add_done_callback(lambda _: tasks.pop(job_id, None))
    return job_id


async def _run(
    app: Any, process: processes.Process, lookup: processes.Lookup, inputs: dict[str, Any],
    *, created: asyncio.Future[str], created_by: str,
) -> None:  # fmt: skip
    """Create the job (its id set on ``created``, or the reason it could not be) and run it."""
    job_id = str(uuid.uuid4())
    tracker = jobs.Tracker(app.state.url, job_id)
    try:
        async with app.state.db.connection() as conn:
            await jobs.lock(conn, job_id)
            await jobs.insert(conn, job_id, "process", source=process.id, options=inputs,
                              created_by=created_by)  # fmt: skip
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
                    await jobs.lock(conn, job_id, held=False)
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


def document(base: str, row: dict[str, Any]) -> dict[str, Any]:
    """A job's status document (OGC API - Processes ``statusInfo``)."""
    url = f"{base}/jobs/{row['id']}"
    status = STATUS[row["state"]]
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
