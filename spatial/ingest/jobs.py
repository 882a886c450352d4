"""Ingest jobs: one row per ingest in ``platform.ingest_jobs``, with progress and report.

Job rows are written on their own autocommit connection, outside the ingest's
transaction, so progress is visible while the ingest runs and a failed ingest (whose
transaction rolls back) still leaves its job marked failed with the reason.

A job's state is final only after all its cleanup: :func:`run` removes what the job owns
(an upload, temporary files) before it writes ``succeeded`` or ``failed``, so whoever
reads the final state finds nothing of the job left behind.

A running job holds an advisory lock (:data:`LOCK`) on a connection of its own. When the
process running it dies (killed, out of memory, its machine gone), PostgreSQL closes that
connection, rolls the ingest's transaction back and frees the lock: :data:`REAP` then
marks the job failed, at the API's start and whenever the job is read.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from spatial.errors import NotFoundError, SpatialError

T = TypeVar("T")

LOCK = "SELECT {}(hashtext('spatial.job'), hashtext(%s))"
"""The advisory lock a running job holds (format in ``pg_advisory_lock``, ``..._unlock``)."""
REAP = (
    "UPDATE platform.ingest_jobs SET state = 'failed', finished_at = now(), "
    "message = 'interrupted: the worker that ran it stopped; run it again' "
    "WHERE (state = 'running' OR (state = 'queued' AND kind = 'process' AND %(id)s::uuid IS NULL)) "
    "AND (%(id)s::uuid IS NULL OR id = %(id)s::uuid) "
    "AND pg_try_advisory_xact_lock(hashtext('spatial.job'), hashtext(id::text)) "
    "RETURNING id::text"
)
"""Mark failed the jobs (``%(id)s``, or every one with None) no live worker holds: the
running ones, and with None (a worker's start) queued process jobs too (an API worker
runs those itself). Queued ingests wait in an API worker's queue without a lock and are
left alone."""

_MIN_INTERVAL_S = 0.5
"""Progress is written at most this often (a 200k-row load would otherwise write 100s)."""


@dataclass(frozen=True)
class Job:
    """An ingest job as stored."""

    id: str
    kind: str
    collection_id: str | None
    state: str
    progress: float
    message: str | None
    source: str | None
    options: dict[str, Any]
    report: dict[str, Any]
    created_by: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        out: dict[str, Any] = dict(self.__dict__)
        for name in ("created_at", "started_at", "finished_at"):
            value = out[name]
            out[name] = value.isoformat() if value else None
        return out


def create(
    url: str,
    *,
    kind: str,
    collection_id: str | None,
    source: str,
    options: dict[str, Any],
    created_by: str,
) -> str:
    """A new queued job; returns its id."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO platform.ingest_jobs (kind, collection_id, source, options, created_by) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id::text",
            (kind, collection_id, source, Jsonb(options), created_by),
        ).fetchone()
    if row is None:  # pragma: no cover - INSERT ... RETURNING always returns the row
        msg = "the job was not created"
        raise RuntimeError(msg)
    return str(row[0])


INSERT = (
    "INSERT INTO platform.ingest_jobs (id, kind, collection_id, source, options, created_by) "
    "VALUES (%s::uuid, %s, %s, %s, %s, %s)"
)
"""A job with an id chosen beforehand (a process job: its worker takes :data:`LOCK` first,
so no worker's :data:`REAP` can find it queued and unlocked)."""


SELECT_JOB = (
    "SELECT id::text AS id, kind, collection_id, state, progress, message, source, options, "
    "report, created_by, created_at, started_at, finished_at "
    "FROM platform.ingest_jobs WHERE id = %s::uuid"
)
"""One job by id (for sync and async connections alike; rows as dicts)."""


def job_uuid(job_id: str) -> str:
    """The id in canonical form.

    Raises:
        NotFoundError: not a job id at all.
    """
    try:
        return str(uuid.UUID(job_id))
    except ValueError:
        msg = f"ingest job {job_id!r} does not exist"
        raise NotFoundError(msg) from None


def from_row(row: dict[str, Any] | None, job_id: str) -> Job:
    """A :class:`Job` from a :data:`SELECT_JOB` row.

    Raises:
        NotFoundError: no row.
    """
    if row is None:
        msg = f"ingest job {job_id!r} does not exist"
        raise NotFoundError(msg)
    return Job(**row)


def get(conn: psycopg.Connection[Any], job_id: str) -> Job:
    """One job.

    Raises:
        NotFoundError: no job has that id.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(SELECT_JOB, (job_uuid(job_id),)).fetchone()
    return from_row(row, job_id)


class Tracker:
    """Writes a running job's state and progress (throttled) on its own connection."""

    def __init__(self, url: str, job_id: str) -> None:
        self.url = url
        self.job_id = job_id
        self._last = 0.0

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql, params)

    def start(self) -> None:
        """Mark the job running."""
        self._write(
            "UPDATE platform.ingest_jobs SET state = 'running', started_at = now(), "
            "message = 'starting' WHERE id = %s::uuid",
            (self.job_id,),
        )

    def progress(self, fraction: float, message: str, *, force: bool = False) -> None:
        """Record progress (at most every half second unless forced)."""
        now = time.monotonic()
        if not force and now - self._last < _MIN_INTERVAL_S:
            return
        self._last = now
        self._write(
            "UPDATE platform.ingest_jobs SET progress = %s, message = %s "
            "WHERE id = %s::uuid AND state = 'running'",
            (max(0.0, min(1.0, fraction)), message, self.job_id),
        )

    def finish(self, *, ok: bool, message: str, report: dict[str, Any]) -> None:
        """Mark the job succeeded or failed, with its report."""
        self._write(
            "UPDATE platform.ingest_jobs SET state = %s, progress = CASE WHEN %s THEN 1 "
            "ELSE progress END, message = %s, report = %s, finished_at = now() "
            "WHERE id = %s::uuid",
            ("succeeded" if ok else "failed", ok, message, Jsonb(report), self.job_id),
        )


def run(
    url: str,
    job_id: str,
    report: dict[str, Any],
    work: Callable[[Callable[[float, str], None]], tuple[T, str]],
    on_progress: Callable[[float, str], None] | None = None,
    *,
    cleanup: Callable[[], None] | None = None,
) -> T:
    """Run an ingest as job ``job_id``: mark it running, pass ``work`` a progress callback
    (recorded on the job and forwarded to ``on_progress``), and record how it ended with
    ``report``. ``work`` returns its result and the job's closing message.

    ``cleanup`` removes what the job owns (its upload, temporary files) and must not
    raise. It runs once ``work`` has ended, successfully or not, and before the job's
    final state is written: whoever reads ``succeeded`` or ``failed`` finds it done. It
    also runs when the job could not even start.

    Raises:
        Whatever ``work`` raised, after marking the job failed with the reason (a refused
        input's message, "interrupted", or the internal error).
    """
    tracker = Tracker(url, job_id)
    started = False
    try:
        with psycopg.connect(url, autocommit=True) as holder:
            holder.execute(LOCK.format("pg_advisory_lock"), (job_id,))
            tracker.start()
            started = True
            return _work(tracker, report, work, on_progress, cleanup)
    finally:
        if not started and cleanup is not None:
            cleanup()


def _work(
    tracker: Tracker,
    report: dict[str, Any],
    work: Callable[[Callable[[float, str], None]], tuple[T, str]],
    on_progress: Callable[[float, str], None] | None,
    cleanup: Callable[[], None] | None,
) -> T:
    def progress(fraction: float, message: str) -> None:
        tracker.progress(fraction, message)
        if on_progress:
            on_progress(fraction, message)

    try:
        try:
            result, message = work(progress)
        finally:
            if cleanup is not None:
                cleanup()
    except SpatialError as exc:  # refused input, a full store...: its message says why
        report.setdefault("error", str(exc))
        report.update(getattr(exc, "report", {}))
        tracker.finish(ok=False, message=str(exc), report=report)
        raise
    except BaseException as exc:
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"internal error: {exc!r}"
        report["error"] = reason
        tracker.finish(ok=False, message=reason, report=report)
        raise
    tracker.finish(ok=True, message=message, report=report)
    if on_progress:
        on_progress(1.0, "done")
    return result


# -- the API's view of jobs (asynchronous connections) ---------------------------------------

AsyncConn = psycopg.AsyncConnection[Any]


async def read(
    conn: AsyncConn, job_id: str, *, kind: str | None = None, reap: bool = False
) -> dict[str, Any] | None:
    """One job as stored (None: no such job, or not of ``kind``); with ``reap``, a job
    whose worker died is first marked failed (:data:`REAP`).

    Raises:
        NotFoundError: not a job id at all.
    """
    uid = job_uuid(job_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        if reap:
            await cur.execute(REAP, {"id": uid})
        await cur.execute(SELECT_JOB, (uid,))
        row: dict[str, Any] | None = await cur.fetchone()
    return None if row is None or (kind is not None and row["kind"] != kind) else row


_RECENT = (
    SELECT_JOB.split(" WHERE ", maxsplit=1)[0]
    + " WHERE kind = %(kind)s AND (%(who)s::text IS NULL OR created_by = %(who)s) "
    "ORDER BY created_at DESC LIMIT %(limit)s"
)


async def recent(
    conn: AsyncConn, kind: str, created_by: str | None, limit: int = 100
) -> list[dict[str, Any]]:
    """The latest jobs of ``kind``, newest first (of ``created_by``; None: everyone's)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_RECENT, {"kind": kind, "who": created_by, "limit": limit})
        rows: list[dict[str, Any]] = await cur.fetchall()
    return rows


async def reap_all(conn: AsyncConn) -> int:
    """Mark failed every job no live worker holds (a worker's start); how many."""
    cur = await conn.execute(REAP, {"id": None})
    return len(await cur.fetchall())


async def lock(conn: AsyncConn, job_id: str, *, held: bool = True) -> None:
    """Take (``held``) or release a job's advisory lock (:data:`LOCK`) on ``conn``."""
    await conn.execute(LOCK.format("pg_advisory_lock" if held else "pg_advisory_unlock"),
                       (job_id,))  # fmt: skip


async def insert(
    conn: AsyncConn, job_id: str, kind: str, *, source: str, options: dict[str, Any],
    created_by: str,
) -> None:  # fmt: skip
    """Record a job with an id chosen beforehand (:data:`INSERT`; take its lock first)."""
    await conn.execute(INSERT, (job_id, kind, None, source, Jsonb(options), created_by))


_DISMISS = (
    "UPDATE platform.ingest_jobs SET state = 'cancelled', report = %s, "
    "message = 'dismissed', finished_at = coalesce(finished_at, now()) WHERE id = %s::uuid"
)


async def dismiss(conn: AsyncConn, job_id: str) -> None:
    """Mark a job cancelled and drop its results."""
    await conn.execute(_DISMISS, (Jsonb({}), job_id))


_QUARANTINE = """
    SELECT json_build_object(
        'type', 'FeatureCollection',
        'features', coalesce(json_agg(json_build_object(
            'type', 'Feature',
            'id', q.id,
            'geometry', ST_AsGeoJSON(platform.try_transform(q.geom, 4326))::json,
            'properties', q.properties || jsonb_build_object(
                '_reasons', q.reasons, '_source_fid', q.source_fid, '_key', q.key))
            ORDER BY q.id), '[]'::json))::text
    FROM platform.quarantine q WHERE q.job_id = %s::uuid
"""


async def quarantine(conn: AsyncConn, job_id: str) -> str:
    """The features a job kept aside, with their reasons, as GeoJSON text (lon/lat) built
    by PostGIS."""
    cur = await conn.execute(_QUARANTINE, (job_uuid(job_id),))
    row = await cur.fetchone()
    return str(row[0]) if row and row[0] else '{"type":"FeatureCollection","features":[]}'
