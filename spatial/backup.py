"""Backup and restore: the database and the raster store, consistent at one point in time.

A backup is one uncompressed ``.tar`` file (the dump and the COGs are compressed already)::

    database.dump    pg_dump --format=custom of the platform database
    rasters/...      every raster file the catalog references, under the store's layout
    manifest.json    versions, counts, and the size and sha256 of every member

Consistency: one REPEATABLE READ transaction exports its snapshot
(``pg_export_snapshot()``); ``pg_dump --snapshot`` dumps exactly what that transaction
sees, and the same transaction lists the raster files the catalog references and
counts the features. While the files are copied the transaction holds ``FOR SHARE``
locks on the raster collections' catalog rows, so a raster ingest that would replace
(and then delete) a referenced file waits at its publish step until the backup ends.
Raster files are never modified in place (each ingest writes a new version folder).

The raster paths in ``rs.items`` are relative to the raster store (``<data_dir>/rasters``
or a bucket, :mod:`spatial.rasterstore`), so a restore into another data folder or bucket
needs no rewriting; an object store's files are downloaded into the archive one by one,
and uploaded on restore (objects the archive does not hold are deleted afterwards).

A restore is audited in the restored database (a ``restore`` row naming the archive and
its manifest's sha256, in the restore's transaction). A forced restore replaces the audit
log too (the schemas are dropped whole, which its append-only triggers do not stop), so
it first keeps that log in a new archive beside the restored one (:func:`keep_audit_log`):
the log is the evidence of who changed what, and backups are where evidence is kept and
copied away from the database's disk. The restore then refuses to go on if a row was
added to the log after it was kept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import secrets
import shutil
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import psycopg
from psycopg import sql

from spatial import rasterstore
from spatial.audit import Actor
from spatial.db import clients, redact
from spatial.errors import (
    ConflictError,
    InvalidInputError,
    SpatialError,
)
from spatial.settings import Settings

FORMAT = 1
"""Version of the archive layout (``manifest.json`` ``format``)."""
DUMP = "database.dump"
MANIFEST = "manifest.json"
STORE = "rasters"
AUDIT_LOG = "audit_log.jsonl"
"""The member of a kept audit log's archive that holds its rows, one JSON object a line."""
_CHUNK = 1 << 20
_SERIALIZATION_RETRIES = 3


def _fetch(store: rasterstore.RasterStore, rel: str, target: Path) -> Path:
    """A referenced raster file as a local path (downloaded to ``target`` from a bucket).

    Raises:
        InvalidInputError: the file is missing from the store.
    """
    if store.root is not None:
        source = store.root / rel
        if not source.is_file():
            msg = f"the catalog references {source}, which does not exist"
            raise InvalidInputError(msg)
        return source
    if store.size(rel) is None:
        msg = f"the catalog references {store.describe()}/{rel}, which does not exist"
        raise InvalidInputError(msg)
    store.download(rel, target)
    return target


class RestoreMismatchError(SpatialError):
    """The restored database or store does not match the archive's manifest."""


@dataclass(frozen=True)
class KeptLog:
    """The audit log of a database as :func:`keep_audit_log` saved it."""

    rows: int
    last_id: int
    """The highest row id (0 for an empty log)."""
    path: Path | None = None
    """The archive that holds it (None when the log was empty: nothing to keep)."""
    sha256: str | None = None
    """The sha256 of its :data:`AUDIT_LOG` member."""


@dataclass
class Manifest:
    """What ``manifest.json`` records about one backup."""

    format: int
    created: str
    postgres_version: str
    postgis_version: str | None
    alembic_revision: str | None
    database: dict[str, Any]
    """``{"path", "size", "sha256"}`` of the dump."""
    collections: dict[str, dict[str, Any]]
    """Per collection: ``kind``, catalog ``feature_count`` and counted ``rows``."""
    gps_positions: int | None
    feature_history: int | None
    editions: int | None
    files: list[dict[str, Any]] = field(default_factory=list)
    """Every raster file: ``path`` (relative to the store), ``size``, ``sha256``."""
    seconds: float = 0.0
    """How long the backup (or the restore, in what :func:`restore` returns) took."""
    sha256: str = ""
    """The sha256 of ``manifest.json`` as the archive holds it (set when read)."""
    replaced_log: KeptLog | None = None
    """What a forced restore did with the audit log it replaced (set by :func:`restore`)."""

    @property
    def raster_bytes(self) -> int:
        """Total size of the raster files."""
        return sum(int(f["size"]) for f in self.files)

    def to_json(self) -> str:
        """The manifest as written into the archive."""
        data = {k: v for k, v in self.__dict__.items()
                if k not in {"seconds", "sha256", "replaced_log"}}  # fmt: skip
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Read ``manifest.json``.

        Raises:
            InvalidInputError: not a manifest of a format this version reads.
        """
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                msg = f"archive format {data.get('format')!r} is not {FORMAT}"
                raise InvalidInputError(msg)
            return cls(**data)
        except (ValueError, TypeError, AttributeError) as exc:
            msg = f"the archive's {MANIFEST} is not valid: {exc}"
            raise InvalidInputError(msg) from exc


# -- backup ----------------------------------------------------------------------------


def backup(url: str, settings: Settings, out: Path) -> Manifest:
    """Write a backup of the database at ``url`` and its raster store to ``out`` (a tar).

    The archive is written under a temporary name beside ``out`` and renamed at the end,
    so an interrupted backup leaves no file that looks like an archive.

    Raises:
        InvalidInputError: ``out`` exists, or its folder does not.
        DatabaseUnavailableError: pg_dump failed (its message is quoted).
    """
    clock = time.perf_counter()
    store = rasterstore.of(settings)
    out = Path(out)
    if out.exists():
        msg = f"{out} already exists; choose another name"
        raise InvalidInputError(msg)
    if not out.parent.is_dir():
        msg = f"folder {out.parent} does not exist"
        raise InvalidInputError(msg)
    partial = out.with_name(f".{out.name}.partial-{secrets.token_hex(4)}")
    dump_tmp = out.with_name(f".{out.name}.dump-{secrets.token_hex(4)}")
    fetched = out.with_name(f".{out.name}.raster-{secrets.token_hex(4)}")
    try:
        with _snapshot(url) as (conn, snapshot):
            _dump(url, snapshot, dump_tmp)
            manifest = _describe(conn)
            with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
                manifest.database = {"path": DUMP, **_add_file(tar, dump_tmp, DUMP)}
                dump_tmp.unlink()
                for rel in _raster_paths(conn):
                    source = _fetch(store, rel, fetched)
                    entry = _add_file(tar, source, f"{STORE}/{rel}")
                    fetched.unlink(missing_ok=True)
                    manifest.files.append({"path": rel, **entry})
                _add_bytes(tar, MANIFEST, manifest.to_json().encode())
            conn.rollback()
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        partial.rename(out)
    finally:
        partial.unlink(missing_ok=True)
        dump_tmp.unlink(missing_ok=True)
        fetched.unlink(missing_ok=True)
    manifest.seconds = time.perf_counter() - clock
    return manifest


@contextlib.contextmanager
def _snapshot(url: str) -> Iterator[tuple[psycopg.Connection, str]]:
    """A REPEATABLE READ transaction holding the raster catalog rows, and its snapshot."""
    for attempt in range(_SERIALIZATION_RETRIES):
        conn = psycopg.connect(url, connect_timeout=10)
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            try:
                row = conn.execute("SELECT pg_export_snapshot()").fetchone()
                if to_regclass(conn, "platform", "collections"):
                    conn.execute(
                        "SELECT id FROM platform.collections WHERE kind = 'raster' FOR SHARE"
                    )
            except psycopg.errors.SerializationFailure:
                if attempt + 1 == _SERIALIZATION_RETRIES:
                    raise
                continue  # a raster ingest committed meanwhile: take a newer snapshot
            yield conn, str(row[0]) if row else ""
            return
        finally:
            conn.close()


def _dump(url: str, snapshot: str, target: Path) -> None:
    argv = ["pg_dump", "--format=custom", f"--snapshot={snapshot}", "--no-password"]
    with target.open("wb") as handle:
        clients.run(url, argv, stdout=handle)
        os.fsync(handle.fileno())


def _describe(conn: psycopg.Connection) -> Manifest:
    """Versions and counts as the snapshot sees them (the files are added later)."""
    row = conn.execute(
        "SELECT current_setting('server_version'), "
        "(SELECT extversion FROM pg_extension WHERE extname = 'postgis')"
    ).fetchone() or (None, None)
    return Manifest(
        format=FORMAT,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        postgres_version=row[0],
        postgis_version=row[1],
        database={},
        **counts(conn),
    )


def counts(conn: psycopg.Connection) -> dict[str, Any]:
    """The alembic revision and the counts a manifest records, read through ``conn``."""
    revision = None
    if to_regclass(conn, "public", "alembic_version"):
        found = conn.execute("SELECT version_num FROM public.alembic_version").fetchone()
        revision = found[0] if found else None
    collections: dict[str, dict[str, Any]] = {}
    if to_regclass(conn, "platform", "collections"):
        rows = conn.execute(
            "SELECT id, kind, storage_schema, storage_table, feature_count "
            "FROM platform.collections ORDER BY id"
        ).fetchall()
        for cid, kind, schema, table, feature_count in rows:
            collections[cid] = {
                "kind": kind,
                "feature_count": feature_count,
                "rows": _rows(conn, cid, kind, schema, table),
            }
    return {
        "alembic_revision": revision,
        "collections": collections,
        "gps_positions": _count(conn, "gps", "positions"),
        "feature_history": _count(conn, "platform", "feature_history"),
        "editions": _count(conn, "platform", "editions"),
    }


def _rows(
    conn: psycopg.Connection, cid: str, kind: str, schema: str | None, table: str | None
) -> int | None:
    if not schema or not table or not to_regclass(conn, schema, table):
        return None
    if kind == "raster":  # rs.items holds every raster collection's items
        query = sql.SQL("SELECT count(*) FROM {} WHERE collection_id = %s").format(
            sql.Identifier(schema, table)
        )
        found = conn.execute(query, (cid,)).fetchone()
        return int(found[0]) if found else None
    return _count(conn, schema, table)


def _count(conn: psycopg.Connection, schema: str, table: str) -> int | None:
    if not to_regclass(conn, schema, table):
        return None
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
    found = conn.execute(query).fetchone()
    return int(found[0]) if found else None


def to_regclass(conn: psycopg.Connection, schema: str, table: str) -> bool:
    """Whether the relation ``schema.table`` exists."""
    name = sql.Identifier(schema, table).as_string(conn)
    found = conn.execute("SELECT to_regclass(%s::text)", (name,)).fetchone()
    return found is not None and found[0] is not None


def _raster_paths(conn: psycopg.Connection) -> list[str]:
    """Every file the raster items reference (data, display, asset hrefs), store-relative."""
    if not to_regclass(conn, "rs", "items"):
        return []
    rows = conn.execute(
        "SELECT data_path FROM rs.items UNION SELECT web_path FROM rs.items "
        "UNION SELECT a.value->>'href' FROM rs.items, jsonb_each(assets) AS a "
        "WHERE a.value ? 'href'"
    ).fetchall()
    paths = sorted({str(r[0]) for r in rows if r[0]})
    for rel in paths:
        _check_member(f"{STORE}/{rel}")
    return paths


def _add_file(tar: tarfile.TarFile, source: Path, name: str) -> dict[str, Any]:
    """Add ``source`` as ``name``, hashing it as it is read; its size and sha256."""
    stat = source.stat()
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), 0o644
    with source.open("rb") as handle:
        reader = _Hashing(handle)
        tar.addfile(info, reader)  # type: ignore[arg-type,unused-ignore]
    if reader.size != stat.st_size:
        msg = f"{source} changed while it was copied"
        raise InvalidInputError(msg)
    return {"size": stat.st_size, "sha256": reader.digest.hexdigest()}


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add ``data`` as the member ``name``."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


class _Hashing:
    """A reader that hashes what passes through it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.handle.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data


# -- restore ---------------------------------------------------------------------------


def restore(
    archive: Path, url: str, settings: Settings, *, force: bool = False,
    actor: Actor | None = None, keep_log_in: Path | None = None,
) -> Manifest:  # fmt: skip
    """Restore a backup into the database at ``url`` and ``settings.data_dir``.

    The archive is unpacked beside the store and every member checked against the
    manifest before the database or the store is touched. A forced restore then keeps
    the target's audit log (:func:`keep_audit_log`). The dump is restored in one
    transaction, which ends with the restore's own audit row; the raster store is then
    swapped in by a rename; finally the counts and the files are checked again against
    the manifest.

    Args:
        archive: a ``.tar`` written by :func:`backup`.
        url: the target database (it must be empty unless ``force``).
        settings: the target instance's settings (its ``data_dir`` receives the rasters).
        force: replace what the database and the store hold (every schema and
            extension of the database is dropped first, in the restore's transaction).
        actor: who restores, for the audit row [default: :meth:`Actor.local`].
        keep_log_in: the folder of the replaced audit log's archive [default: the
            restored archive's folder].

    Returns:
        The archive's manifest (``seconds``: how long the restore took; ``sha256``: its
        checksum; ``replaced_log``: where the replaced audit log was kept).

    Raises:
        InvalidInputError: the archive is missing, not a backup, or damaged; or the
            replaced audit log cannot be written to ``keep_log_in``.
        ConflictError: the database or the raster store is not empty and not ``force``.
        DatabaseUnavailableError: pg_restore failed (nothing of the dump was kept), or
            the audit log grew after it was kept (nothing was restored either).
        RestoreMismatchError: the restored data do not match the manifest.
    """
    clock = time.perf_counter()
    bucket = rasterstore.of(settings)
    store = bucket.root or settings.data_dir / STORE
    archive = Path(archive)
    if not archive.is_file():
        msg = f"{archive} does not exist or is not a file"
        raise InvalidInputError(msg)
    folder = Path(keep_log_in) if keep_log_in is not None else archive.resolve().parent
    if force and not folder.is_dir():
        msg = f"folder {folder} (for the audit log the restore replaces) does not exist"
        raise InvalidInputError(msg)
    if not force:
        _refuse_non_empty(url, bucket, store)
    parent = store.parent.parent  # beside the data folder, as a refused restore leaves none
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{store.parent.name}.restore-{secrets.token_hex(4)}"
    staging.mkdir(mode=0o700)
    try:
        manifest = _unpack(archive, staging)
        kept = keep_audit_log(url, folder, archive) if force else None
        manifest.replaced_log = kept
        with (staging / DUMP).open("rb") as handle:
            clients.restore_dump(
                url, handle, replace=force, first=None if kept is None else _unchanged(kept),
                last=_restore_row(manifest, archive, actor or Actor.local(), kept),
            )  # fmt: skip
        if bucket.is_s3:
            _upload_store(bucket, staging / STORE)
        else:
            _swap_store(staging / STORE, store)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _verify(manifest, url, bucket)
    manifest.seconds = time.perf_counter() - clock
    return manifest


def _refuse_non_empty(url: str, bucket: rasterstore.RasterStore, store: Path) -> None:
    """Refuse a restore (without ``force``) into a database or store that holds anything.

    Raises:
        ConflictError: one of them is not empty.
    """
    with psycopg.connect(url, connect_timeout=10, autocommit=True) as conn:
        if not database_empty(conn):
            msg = "the target database is not empty (restore with --force to replace it)"
            raise ConflictError(msg)
    held = any(bucket.files()) if bucket.is_s3 else store.is_dir() and any(store.iterdir())
    if held:
        msg = (
            f"the raster store {bucket.describe()} is not empty "
            "(restore with --force to replace it)"
        )
        raise ConflictError(msg)


def keep_audit_log(url: str, folder: Path, archive: Path) -> KeptLog | None:
    """Save the audit log of the database at ``url`` before a restore replaces it.

    Every row (``row_to_json``, so every column, one JSON object a line, by id) goes into
    a new archive ``replaced-audit-log-<UTC time>.tar`` in ``folder``: the rows as
    :data:`AUDIT_LOG` and a ``manifest.json`` with their count, first and last id, size
    and sha256, the database (its password redacted) and the archive restored over it.
    The archive is written under a temporary name, synced and renamed; an existing file
    is never replaced. A restore that fails after this leaves the copy where it is (the
    rows it holds are then still in the database as well).

    Returns:
        The rows saved and where (``path`` None: the log was empty), or None when the
        database has no audit log.

    Raises:
        InvalidInputError: the archive cannot be written in ``folder``.
    """
    with psycopg.connect(url, connect_timeout=10) as conn:
        # The count, the last id and the rows, all of one snapshot.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        if not to_regclass(conn, "platform", "audit_log"):
            return None
        found = conn.execute("SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0) "
                             "FROM platform.audit_log").fetchone()  # fmt: skip
        rows, first_id, last_id = (int(v) for v in found or (0, 0, 0))
        if rows == 0:
            return KeptLog(0, 0)
        now = dt.datetime.now(dt.UTC)
        about = {
            "kind": "audit log replaced by a restore", "format": FORMAT,
            "saved": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "database": redact(url), "restored_archive": str(archive.resolve()),
            "rows": rows, "first_id": first_id, "last_id": last_id,
        }  # fmt: skip
        out: Path | None = None
        try:
            out = _reserve(folder, f"replaced-audit-log-{now:%Y%m%dT%H%M%SZ}")
            digest = _write_log(conn, out, about)
        except OSError as exc:
            if out is not None:
                out.unlink(missing_ok=True)
            msg = (f"cannot keep the audit log the restore replaces in {folder} ({exc}); "
                   "nothing was restored")  # fmt: skip
            raise InvalidInputError(msg) from None
    return KeptLog(rows, last_id, out, digest)


def _write_log(conn: psycopg.Connection, out: Path, about: dict[str, Any]) -> str:
    """Write the audit log's rows and ``about`` them into the archive ``out`` (through a
    temporary file, synced, then renamed over it); returns the rows' sha256."""
    lines = out.with_name(f".{out.name}.jsonl-{secrets.token_hex(4)}")
    partial = out.with_name(f".{out.name}.partial-{secrets.token_hex(4)}")
    try:
        with lines.open("wb") as handle:
            query = "SELECT row_to_json(a)::text FROM platform.audit_log a ORDER BY a.id"
            for (line,) in conn.cursor().stream(query):
                handle.write(line.encode() + b"\n")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            entry = {"path": AUDIT_LOG, **_add_file(tar, lines, AUDIT_LOG)}
            data = json.dumps({**about, "log": entry}, indent=2, ensure_ascii=False)
            _add_bytes(tar, MANIFEST, data.encode() + b"\n")
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        partial.rename(out)
    finally:
        lines.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    return str(entry["sha256"])


def _reserve(folder: Path, stem: str) -> Path:
    """A new, empty file ``<stem>.tar`` in ``folder`` (``<stem>-2.tar``... when taken)."""
    for n in range(1, 100):
        path = folder / (f"{stem}.tar" if n == 1 else f"{stem}-{n}.tar")
        try:
            path.open("xb").close()
        except FileExistsError:
            continue
        return path
    msg = f"{folder} holds {stem}.tar and 98 more of that name"
    raise FileExistsError(msg)


def _unchanged(kept: KeptLog) -> sql.Composable:
    """Statements that lock the audit log (no row can be added until the restore commits
    and drops it) and refuse the restore when it holds rows the kept copy does not (the
    log is append-only: the same count and last id mean the same rows)."""
    return sql.SQL(
        "LOCK TABLE platform.audit_log IN ACCESS EXCLUSIVE MODE; "
        "DO $$BEGIN IF (SELECT count(*) FROM platform.audit_log) <> {rows} "
        "OR (SELECT coalesce(max(id), 0) FROM platform.audit_log) <> {last} THEN "
        "RAISE EXCEPTION 'the audit log grew after it was kept: nothing was restored; "
        "restore again'; END IF; END$$;"
    ).format(rows=sql.Literal(kept.rows), last=sql.Literal(kept.last_id))


def _restore_row(
    manifest: Manifest, archive: Path, actor: Actor, kept: KeptLog | None
) -> sql.Composable | None:
    """The restore's audit row, written in the restored database by the restore's own
    transaction. None when the archive predates the platform's schema (no migration, so
    no audit log to write to)."""
    if manifest.alembic_revision is None:
        return None
    details = {
        "archive": str(archive.resolve()), "manifest_sha256": manifest.sha256,
        "archive_created": manifest.created, "alembic_revision": manifest.alembic_revision,
        "replaced_log": str(kept.path) if kept is not None and kept.path else None,
        "replaced_log_sha256": kept.sha256 if kept is not None else None,
        "replaced_rows": kept.rows if kept is not None else 0,
    }  # fmt: skip
    return sql.SQL(
        "INSERT INTO platform.audit_log (actor, user_id, remote_addr, action, details) "
        "VALUES ({}, {}, CAST({} AS inet), 'restore', CAST({} AS jsonb));"
    ).format(sql.Literal(actor.name), sql.Literal(actor.user_id), sql.Literal(actor.address),
             sql.Literal(json.dumps(details, ensure_ascii=False)))  # fmt: skip


def _unpack(archive: Path, staging: Path) -> Manifest:
    """Extract the archive into ``staging`` (hashing every member) and check it."""
    found: dict[str, dict[str, Any]] = {}
    manifest_raw, manifest_text = b"", None
    try:
        with tarfile.open(archive, "r:") as tar:
            for member in tar:
                name = _check_member(member.name)
                if member.isdir():
                    continue
                if not member.isfile():
                    msg = f"the archive holds {member.name!r}, which is not a regular file"
                    raise InvalidInputError(msg)
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - a regular file always has a reader
                    continue
                if name == MANIFEST:
                    manifest_raw = source.read(1 << 24)
                    manifest_text = manifest_raw.decode("utf-8")
                    continue
                target = staging / name
                target.parent.mkdir(parents=True, exist_ok=True)
                digest, size = hashlib.sha256(), 0
                with target.open("wb") as handle:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        handle.write(chunk)
                found[name] = {"size": size, "sha256": digest.hexdigest()}
    except (tarfile.TarError, OSError, UnicodeDecodeError, EOFError) as exc:
        msg = f"{archive} is not a readable backup archive: {exc}"
        raise InvalidInputError(msg) from exc
    if manifest_text is None:
        msg = f"{archive} is not a backup archive (it has no {MANIFEST})"
        raise InvalidInputError(msg)
    manifest = Manifest.from_json(manifest_text)
    manifest.sha256 = hashlib.sha256(manifest_raw).hexdigest()
    expected = {DUMP: manifest.database} | {f"{STORE}/{f['path']}": f for f in manifest.files}
    for name, entry in expected.items():
        got = found.pop(name, None)
        if got is None:
            msg = f"the archive is damaged: {name} is missing"
            raise InvalidInputError(msg)
        if got["size"] != entry.get("size") or got["sha256"] != entry.get("sha256"):
            msg = f"the archive is damaged: {name} does not match its checksum in {MANIFEST}"
            raise InvalidInputError(msg)
    if found:
        msg = f"the archive holds files its manifest does not list: {', '.join(sorted(found))}"
        raise InvalidInputError(msg)
    return manifest


def _check_member(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        msg = f"the archive holds an unsafe path: {name!r}"
        raise InvalidInputError(msg)
    if path.parts[0] not in {DUMP, MANIFEST, STORE} or (
        path.parts[0] != STORE and len(path.parts) > 1
    ):
        msg = f"the archive holds {name!r}, which no backup has"
        raise InvalidInputError(msg)
    return path.as_posix()


def database_empty(conn: psycopg.Connection) -> bool:
    """Whether the database holds no relation, function or type of its own (objects that
    belong to extensions, such as PostGIS's ``spatial_ref_sys``, do not count)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
        "AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%' "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
        "AND d.objid = c.oid AND d.deptype IN ('e', 'i', 'a')))"
    ).fetchone()
    return row is not None and not row[0]


def _swap_store(new: Path, store: Path) -> None:
    """Put the restored rasters at ``store``; an old store is removed afterwards."""
    new.mkdir(exist_ok=True)
    old = store.with_name(f".{STORE}.old-{secrets.token_hex(4)}")
    store.parent.mkdir(parents=True, exist_ok=True)
    if store.exists():
        store.rename(old)
    new.rename(store)
    shutil.rmtree(old, ignore_errors=True)


def _upload_store(bucket: rasterstore.RasterStore, new: Path) -> None:
    """Upload the restored rasters to an object store; objects it held before that the
    archive does not are deleted afterwards."""
    new.mkdir(exist_ok=True)
    before = {rel for rel, _size in bucket.files()}
    keep = set(bucket.publish(new, [new]))
    for rel in sorted(before):
        if bucket.key(rel) not in keep:
            bucket.delete_file(rel)


def _verify(manifest: Manifest, url: str, bucket: rasterstore.RasterStore) -> None:
    """Compare the restored database and store with the manifest."""
    with psycopg.connect(url, connect_timeout=10) as conn:
        got = counts(conn)
    problems = [
        f"{key}: archive {getattr(manifest, key)!r}, restored {value!r}"
        for key, value in got.items()
        if getattr(manifest, key) != value
    ]
    for entry in manifest.files:
        if bucket.root is None:
            digest = hashlib.sha256()
            if bucket.size(entry["path"]) is not None:
                for chunk in bucket.read(entry["path"]):
                    digest.update(chunk)
            same = digest.hexdigest() == entry["sha256"]
        else:
            path = bucket.root / entry["path"]
            same = path.is_file() and sha256_file(path) == entry["sha256"]
        if not same:
            problems.append(f"{STORE}/{entry['path']} differs from the archive")
    if problems:
        msg = "the restored data do not match the backup: " + "; ".join(problems[:10])
        raise RestoreMismatchError(msg)


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
