"""OGC API - Processes: the process list, descriptions, execution, and jobs.

Execution is synchronous by default (the outputs in the response) and asynchronous with
``Prefer: respond-async`` (201, ``Location: /jobs/{id}``). Jobs are rows of
``platform.ingest_jobs`` (kind ``process``: the inputs in ``options``, the outputs in
``report``), so any worker can answer for any job; an asynchronous run is a task of the
worker that accepted it, and ``DELETE /jobs/{id}`` dismisses it (cancels it if it runs
there, and drops its results). A job whose worker stopped is marked failed by the next
worker to start (:func:`api.process_jobs.recover`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api import process_jobs
from api.deps import Caller, Conn
from api.engine import Engine
from api.ogc import F_PARAM, base_url, check_parameters, read_body, response_format
from layers import View
from spatial import jsonbody, processes
from spatial.errors import InvalidInputError, NotFoundError
from spatial.ingest import jobs

router = APIRouter(tags=["Processes"])
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
async def execute(process_id: str, request: Request, seen: Caller, conn: Conn) -> Response:
    """Run a process: the outputs now, or with ``Prefer: respond-async`` a job to follow.
    It reads the collections as the caller sees them (their rows only)."""
    process = _process(process_id)
    inputs = await _inputs(request)
    if "respond-async" not in request.headers.get("prefer", ""):
        outputs = await process.run(conn, process_jobs.Context(request, seen), inputs)
        return JSONResponse(outputs)
    job_id = await process_jobs.start(request, process, inputs, seen)
    body = await _status(request, conn, job_id, seen)
    return JSONResponse(body, status_code=201, headers={"Location": body["links"][0]["href"]})


async def _job(conn: Any, job_id: str, seen: View) -> dict[str, Any]:
    """A process job of the caller's (an admin's: anyone's); others do not exist for them."""
    row = await jobs.read(conn, job_id, kind="process")
    if row is None or not (seen.principal.admin or row["created_by"] == seen.principal.username):
        msg = f"job {job_id!r} does not exist"
        raise NotFoundError(msg)
    return row


async def _status(request: Request, conn: Any, job_id: str, seen: View) -> dict[str, Any]:
    return process_jobs.document(base_url(request), await _job(conn, job_id, seen))


@router.get("/jobs", summary="Process jobs", response_model=None)
async def job_list(request: Request, seen: Caller, conn: Conn, f: str | None = F_PARAM) -> Response:
    """The caller's latest 100 process jobs, newest first (an admin's: everyone's; HTML:
    pygeoapi's page)."""
    check_parameters(request, frozenset({"f", "lang"}))
    mine = None if seen.principal.admin else seen.principal.username
    rows = await jobs.recent(conn, "process", mine)
    base = base_url(request)
    body = {
        "jobs": [process_jobs.document(base, r) for r in rows],
        "links": [{"rel": "self", "type": "application/json", "href": f"{base}/jobs"}],
    }
    if response_format(request) == "html":
        return await _answer(request, {"jobs": body, "links": body["links"]}, "jobs/index.html")
    return JSONResponse(body)


@router.get("/jobs/{job_id}", summary="A job's status", response_model=None)
async def job_status(
    job_id: str, request: Request, seen: Caller, conn: Conn, f: str | None = F_PARAM
) -> Response:
    """Where a job is: accepted, running, successful, failed or dismissed."""
    check_parameters(request, frozenset({"f", "lang"}))
    body = await _status(request, conn, job_id, seen)
    if response_format(request) == "html":
        return await _answer(request, {"jobs": body, "links": body["links"]}, "jobs/job.html")
    return JSONResponse(body)


@router.get("/jobs/{job_id}/results", summary="A job's results")
async def job_results(job_id: str, seen: Caller, conn: Conn) -> dict[str, Any]:
    """The outputs of a successful job."""
    row = await _job(conn, job_id, seen)
    if row["state"] != "succeeded":
        msg = f"job {job_id} has no results: it is {process_jobs.STATUS[row['state']]}"
        raise NotFoundError(msg)
    outputs: dict[str, Any] = row["report"].get("outputs", {})
    return outputs


@router.delete("/jobs/{job_id}", summary="Dismiss a job")
async def dismiss(job_id: str, request: Request, seen: Caller, conn: Conn) -> dict[str, Any]:
    """Cancel a job (if it runs here) and drop its results."""
    row = await _job(conn, job_id, seen)
    task = request.app.state.process_tasks.get(row["id"])
    if task is not None:
        task.cancel()
    await jobs.dismiss(conn, row["id"])
    return await _status(request, conn, job_id, seen)
