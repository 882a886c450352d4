"""Vector ingest: any GDAL-readable file into a versioned ``layers`` table.

The steps, each in its own module:

1. :mod:`~spatial.ingest.files`: refuse unsafe or mislabelled input, extract archives;
2. :mod:`~spatial.ingest.read`: read the layer with GDAL into typed arrays;
3. :mod:`spatial.crs`: identify the CRS, check coordinates against its area of use;
4. :mod:`~spatial.ingest.checks` and :mod:`~spatial.ingest.topology`: find what is wrong
   with each feature, and apply the policy (``reject``, ``repair``, ``quarantine``);
5. :mod:`~spatial.ingest.publish`: stage, diff, swap and register in one transaction.

:func:`ingest_vector` runs them as an ingest job: the job row records progress and, at
the end, the JSON report (also on failure; the layer is then untouched).
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import shapely
from sqlalchemy import Connection, text

from spatial import crs as crs_mod
from spatial import subsystems
from spatial.audit import Actor
from spatial.catalog import CollectionRecord, Kind
from spatial.db import engine
from spatial.errors import InvalidInputError
from spatial.gps import fences
from spatial.ingest import checks, files, jobs, read, topology
from spatial.ingest.publish import Layer, Preload, Published, check_collection_id, publish
from spatial.network import build as network_build
from spatial.settings import Settings

Policy = Literal["reject", "repair", "quarantine"]
POLICIES: tuple[Policy, ...] = ("reject", "repair", "quarantine")
_LISTED = 1000
"""Findings listed one by one in a report (all are counted)."""
# Share of the progress bar each stage takes.
_STAGES = {"reading": (0.0, 0.25), "checking": (0.25, 0.45), "loading": (0.45, 0.9)}

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class VectorSource:
    """What to ingest and how."""

    path: Path
    collection_id: str
    title: str
    subsystems: tuple[str, ...] = ()
    layer: str | None = None
    crs: str | None = None
    """CRS to assume when the file has none, or to override it (``EPSG:4546``, WKT)."""
    encoding: str | None = None
    description: str | None = None
    key: str | None = None
    """Field that identifies a feature across editions (parcel number)."""
    checksum: str | None = None
    """sha256 of the source file (computed when not given)."""
    on_invalid: Policy = "reject"
    valid_from: dt.datetime | None = None
    """When this edition becomes valid [default: now]."""
    tolerances: topology.Tolerances = field(default_factory=topology.Tolerances)
    source_name: str | None = None
    """The name to record for the file (uploads are stored under a private name)."""
    editable: bool = False
    """Whether the features may be edited through the API (needs a key)."""
    public: bool | None = None
    """Whether everyone may read the collection [default: as it was; a new one is not]."""
    department: str | None = None
    """The department that owns the collection [default: as it was]."""


class IngestRejectedError(InvalidInputError):
    """The file was read but its features did not pass; ``report`` says why."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Outcome:
    """A finished ingest."""

    job_id: str
    record: CollectionRecord
    report: dict[str, Any]


def ingest_vector(
    url: str,
    source: VectorSource,
    settings: Settings,
    *,
    actor: str | Actor | None = None,
    job_id: str | None = None,
    on_progress: ProgressFn | None = None,
    cleanup: Callable[[], None] | None = None,
) -> Outcome:
    """Ingest a vector file as a job, all or nothing.

    Args:
        url: the database.
        source: the file and options.
        settings: limits and working directories.
        actor: who ingests, for the audit log [default: the OS user].
        job_id: an existing queued job to run (the API creates it first).
        on_progress: called with (fraction 0..1, what is happening).
        cleanup: removes what the job owns (an upload, say); the job runner calls it
            before it writes the job's final state (:func:`spatial.ingest.jobs.run`).

    Returns:
        The job id, the catalog entry and the report.

    Raises:
        InvalidInputError: the input was refused (``IngestRejectedError`` when features
            failed validation); the job is marked failed and nothing else changed.
    """
    who = Actor.of(actor, getpass.getuser())
    if job_id is None:
        validate_source(source, settings)
        job_id = jobs.create(
            url,
            kind="vector",
            collection_id=source.collection_id,
            source=source.source_name or source.path.name,
            options=_options(source),
            created_by=who.name,
        )
    report: dict[str, Any] = {"job_id": job_id, "collection": source.collection_id}

    def work(progress: ProgressFn) -> tuple[Published, str]:
        validate_source(source, settings)
        done = _run(
            url, source, settings, job_id=job_id, actor=who, report=report, progress=progress
        )
        return done, f"loaded {done.record.feature_count} features (edition {done.edition})"

    published = jobs.run(url, job_id, report, work, on_progress, cleanup=cleanup)
    return Outcome(job_id=job_id, record=published.record, report=report)


def validate_source(source: VectorSource, settings: Settings) -> None:
    """Check the options that do not need the file.

    Raises:
        InvalidInputError: a bad collection id, policy, subsystem or valid-from.
    """
    check_collection_id(source.collection_id)
    if source.on_invalid not in POLICIES:
        msg = f"--on-invalid must be one of {', '.join(POLICIES)}, not {source.on_invalid!r}"
        raise InvalidInputError(msg)
    subsystems.check(source.subsystems, settings)
    if source.editable and not source.key:
        msg = "an editable collection needs a key (--key) to version its features"
        raise InvalidInputError(msg)
    if source.valid_from is not None and source.valid_from.tzinfo is None:
        msg = "valid-from needs a time zone (e.g. 2026-01-01T00:00:00+08:00)"
        raise InvalidInputError(msg)


def _options(source: VectorSource) -> dict[str, Any]:
    return {
        "title": source.title,
        "subsystems": list(source.subsystems),
        "layer": source.layer,
        "crs": source.crs,
        "encoding": source.encoding,
        "key": source.key,
        "on_invalid": source.on_invalid,
        "valid_from": source.valid_from.isoformat() if source.valid_from else None,
        "editable": source.editable,
    }


def _stage(progress: ProgressFn, name: str, done: float, message: str | None = None) -> None:
    start, end = _STAGES[name]
    progress(start + (end - start) * done, message or name)


def visibility(conn: Connection, source: Any, kind: str = "vector") -> dict[str, Any]:
    """Who may see the collection: as the source says (its ``collection_id``, ``public``
    and ``department``), else as it was (a new one: its owner's department only).

    Raises:
        InvalidInputError: the collection exists with data of another ``kind``, or an
            unknown department.
    """
    row = conn.execute(
        text("SELECT is_public, owner_department, kind FROM platform.collections WHERE id = :id"),
        {"id": source.collection_id},
    ).first()
    if row is not None and row[2] != kind:
        msg = f"collection {source.collection_id!r} holds {row[2]} data, not {kind} data"
        raise InvalidInputError(msg)
    public, department = (bool(row[0]), row[1]) if row else (False, None)
    known = conn.execute(
        text("SELECT 1 FROM platform.departments WHERE id = :id"), {"id": source.department}
    ).first()
    if source.department is not None and known is None:
        msg = f"department {source.department!r} does not exist (spatial user department add)"
        raise InvalidInputError(msg)
    return {
        "is_public": public if source.public is None else source.public,
        "owner_department": source.department or department,
    }


def _run(
    url: str,
    source: VectorSource,
    settings: Settings,
    *,
    job_id: str,
    actor: Actor,
    report: dict[str, Any],
    progress: ProgressFn,
) -> Published:
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    # hashlib releases the GIL: the checksum is computed while GDAL reads.
    pool = ThreadPoolExecutor(1, thread_name_prefix="ingest-sha256")
    checksum = pool.submit(lambda: source.checksum or sha256(source.path))
    pool.shutdown(wait=False)
    _stage(progress, "reading", 0.0, f"reading {source.source_name or source.path.name}")
    work_root = settings.var_dir / "ingest"
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_root, prefix="job-") as work:
        dataset = files.prepare(
            source.path,
            Path(work),
            settings.ingest,
            layer=source.layer,
            encoding=source.encoding,
        )
        table = read.read(dataset)
    report.update(
        {
            "source": source.source_name or source.path.name,
            "format": table.driver,
            "layer": table.layer,
            "encoding": dataset.encoding or table.encoding,
            "features_read": len(table),
            "notes": list(dataset.notes),
            "gdal_warnings": table.warnings,
        }
    )
    timings["read"] = time.perf_counter() - clock
    clock = time.perf_counter()
    table, info, srid = _crs(source, table, report)
    timings["crs"] = time.perf_counter() - clock
    key = table.field_named(source.key) if source.key else None
    valid_from = source.valid_from or dt.datetime.now(dt.UTC)
    with engine(url) as eng, eng.begin() as conn:
        # Read before the background staging starts: a failure of its own (a duplicate key)
        # aborts the transaction until Preload.take rolls back to its savepoint, so nothing
        # may query the connection while it runs.
        seen = visibility(conn, source)
        with Preload(conn, table, srid=srid, key=key.column if key else None,
                     job_id=job_id) as preload:  # fmt: skip
            _stage(progress, "checking", 0.0, "checking features")
            clock = time.perf_counter()
            checked, repaired, quarantine = _check(
                source, table, info, key, report=report, progress=progress
            )
            timings["check"] = time.perf_counter() - clock
            clock = time.perf_counter()
            layer = Layer(
                collection_id=source.collection_id,
                table=table,
                rows=checked.good_rows(),
                column_type=checked.column_type,
                srid=srid,
                multi=checked.multi,
                geoms=checked.geoms,
                repaired=frozenset(repaired),
                key=key.column if key else None,
                record=CollectionRecord(
                    id=source.collection_id,
                    title=source.title,
                    kind=Kind.VECTOR,
                    description=source.description,
                    subsystems=source.subsystems,
                    **seen,
                    properties={
                        "source": source.source_name or source.path.name,
                        "checksum": checksum.result(),
                        "encoding": report["encoding"],
                        "editable": source.editable,
                    },
                ),
            )
            published = publish(
                conn,
                layer,
                job_id=job_id,
                actor=actor,
                valid_from=valid_from,
                quarantine=quarantine,
                preload=preload,
                on_progress=lambda stage, done: _stage(progress, "loading", done, stage),
            )
    timings["load"] = time.perf_counter() - clock
    report.update(
        {
            "features_loaded": len(layer.rows),
            "features_quarantined": len(quarantine),
            "geometry_type": checked.column_type,
            "edition": published.edition,
            "version": published.record.version,
            "valid_from": valid_from.isoformat(),
            "diff": published.diff.as_dict() if published.diff else None,
            "staged_while_checking": published.preloaded,
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
        }
    )
    # The road networks built from this collection follow it (rebuilt whole), and so do
    # the geofences made of its polygons.
    report["networks"] = network_build.follow(url, source.collection_id, actor)
    report["fences"] = fences.follow(url, source.collection_id, actor)
    return published


def _check(
    source: VectorSource,
    table: read.Table,
    info: crs_mod.CrsInfo,
    key: read.Field | None,
    *,
    report: dict[str, Any],
    progress: ProgressFn,
) -> tuple[checks.Checked, list[int], list[tuple[int, list[dict[str, str]]]]]:
    """Check every feature and apply the policy.

    Returns:
        The checked layer, the repaired rows, and the rows to quarantine with reasons.

    Raises:
        IngestRejectedError: features have errors and the policy does not quarantine them,
            or no feature is left.
    """
    checked = checks.check_features(table, info, key)
    repaired: list[int] = []
    if source.on_invalid == "repair":
        repaired, _ = checks.repair(checked)
    if key is not None and checked.family == "Polygon":
        _stage(progress, "checking", 0.5, "checking parcel topology")
        checked.findings += topology.check(
            checked.geoms, checked.good_rows(), key.values, info, source.tolerances
        )
    errors = checked.error_rows()
    _summarise(report, checked, table=table, key=key, repaired=repaired, policy=source.on_invalid)
    if len(errors) and source.on_invalid != "quarantine":
        kinds = Counter(f.kind for f in checked.findings if f.severity == "error")
        summary = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in kinds.most_common())
        hint = (
            " (use --on-invalid quarantine to load the rest)"
            if source.on_invalid == "repair"
            else " (use --on-invalid repair or quarantine)"
        )
        msg = (
            f"{len(errors)} of {len(table)} features have errors: {summary}; "
            f"nothing was loaded{hint}"
        )
        raise IngestRejectedError(msg, report)
    if len(errors) == len(table):
        msg = f"all {len(table)} features have errors; nothing was loaded"
        raise IngestRejectedError(msg, report)
    quarantine = _quarantine_rows(checked, errors) if source.on_invalid == "quarantine" else []
    return checked, repaired, quarantine


def _crs(
    source: VectorSource, table: read.Table, report: dict[str, Any]
) -> tuple[read.Table, crs_mod.CrsInfo, int]:
    """Identify the layer's CRS; carry a CRS without EPSG code to one that has one.

    Returns:
        The table (its WKB untouched when the CRS has an EPSG code), the CRS it is in and
        that CRS's EPSG code.

    Raises:
        InvalidInputError: no CRS, one PROJ cannot read or transform, or coordinates that
            lie outside its area of use (with the likely cause).
    """
    if source.crs:
        info = crs_mod.identify(source.crs)
    elif table.crs_text:
        info = crs_mod.identify(table.crs_text)
    else:
        msg = (
            f"{source.source_name or source.path.name} declares no coordinate reference system "
            "(a Shapefile needs its .prj; a CSV never has one); give it with --crs, "
            "e.g. --crs EPSG:4546"
        )
        raise InvalidInputError(msg)
    if info.epsg is not None:
        srid = info.epsg
    else:
        reprojection, table = _reproject(table, info)
        report["notes"] = [*report.get("notes", []), reprojection.note()]
        report["transformation"] = reprojection.as_report()
        info, srid = reprojection.target, reprojection.srid
    report["crs"] = info.code
    report["crs_name"] = info.name
    report["crs_identified_by"] = None if "transformation" in report else info.identified_by
    return table, info, srid


def _reproject(table: read.Table, crs: crs_mod.CrsInfo) -> tuple[crs_mod.Reprojection, read.Table]:
    """The layer carried from a CRS without EPSG code into its storage CRS.

    Its area of use is checked first, on the source coordinates, so the refusal names the
    likely cause as it does for an identified CRS.

    Raises:
        InvalidInputError: most features lie outside the CRS's area of use, or PROJ cannot
            transform some point.
    """
    with np.errstate(invalid="ignore"):  # NaN coordinates are the checks' to report
        geoms = shapely.from_wkb(table.wkb, on_invalid="ignore")
        bounds = shapely.bounds(geoms[~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)])
    bounds = bounds[np.isfinite(bounds).all(axis=1)]
    cx, cy, outside = crs_mod.mostly_inside(crs, bounds)
    lon, lat = crs_mod.to_lonlat(crs, cx[~outside], cy[~outside])
    extent = (
        (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
        if len(lon)
        else crs.area
    )
    reprojection = crs_mod.reprojection(crs, extent)

    def carry(
        x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        tx, ty = reprojection.transform(x, y)
        failed = ~(np.isfinite(tx) & np.isfinite(ty))
        if failed.any():
            first = int(np.flatnonzero(failed)[0])
            msg = (
                f"PROJ cannot transform {int(failed.sum())} of {len(x)} points from "
                f"{crs.label} to {reprojection.target.label} (the first at "
                f"x={x[first]:.6g}, y={y[first]:.6g})"
            )
            raise InvalidInputError(msg)
        return tx, ty

    return reprojection, read.transform_xy(table, carry)


def _summarise(
    report: dict[str, Any],
    checked: checks.Checked,
    *,
    table: read.Table,
    key: read.Field | None,
    repaired: list[int],
    policy: Policy,
) -> None:
    counts = Counter(f.kind for f in checked.findings)
    error_rows = set(checked.error_rows().tolist())
    action = {"reject": "rejected", "repair": "rejected", "quarantine": "quarantined"}[policy]
    listed = []
    for f in sorted(checked.findings, key=lambda f: (f.severity != "error", f.row))[:_LISTED]:
        listed.append(
            {
                "row": f.row,
                "fid": int(table.fids[f.row]),
                "key": None if key is None else _plain(key.values[f.row]),
                "kind": f.kind,
                "severity": f.severity,
                "detail": f.detail,
                "action": action if f.row in error_rows else "none",
            }
        )
    report.update(
        {
            "policy": policy,
            "geometry_type": checked.column_type,
            "counts": {
                "errors": dict(sorted((k, v) for k, v in counts.items() if k in checks.ERRORS)),
                "warnings": dict(sorted((k, v) for k, v in counts.items() if k in checks.WARNINGS)),
                "features_with_errors": len(error_rows),
                "repaired": len(repaired),
            },
            "repaired_rows": repaired[:_LISTED],
            "findings": listed,
            "findings_truncated": len(checked.findings) > _LISTED,
        }
    )


def _quarantine_rows(
    checked: checks.Checked, errors: np.ndarray[Any, Any]
) -> list[tuple[int, list[dict[str, str]]]]:
    reasons: dict[int, list[dict[str, str]]] = {int(r): [] for r in errors}
    for f in checked.findings:
        if f.row in reasons:
            reasons[f.row].append({"kind": f.kind, "detail": f.detail})
    return sorted(reasons.items())


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def sha256(path: Path) -> str | None:
    """Hex sha256 of a file (None for a directory such as a ``.gdb``)."""
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
