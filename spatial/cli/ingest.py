"""``spatial ingest``: load files into the platform."""

from __future__ import annotations

import datetime as dt
import gc
import json
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from spatial.cli.common import console, err_console, friendly, progress_bar
from spatial.db import resolve_url
from spatial.settings import Settings

app = typer.Typer(help="Load vector files, rasters and GPS logs.", no_args_is_help=True)


class OnInvalid(StrEnum):
    """What to do with features that fail validation."""

    reject = "reject"
    repair = "repair"
    quarantine = "quarantine"


@app.command()
@friendly
def vector(
    path: Path = typer.Argument(..., exists=True, help="File, .zip, or .gdb folder to load."),
    collection: str = typer.Option(..., "--collection", help="Collection id (a-z, 0-9, _)."),
    title: str | None = typer.Option(None, help="Human title [default: the id]."),
    subsystem: list[str] = typer.Option(
        [], help="Subsystem(s) that show it (repeatable): a file of layers/subsystems/."
    ),
    crs: str | None = typer.Option(None, help="CRS when the file has none, e.g. EPSG:4546."),
    encoding: str | None = typer.Option(None, help="Attribute encoding, e.g. gbk."),
    key: str | None = typer.Option(None, help="Field identifying a feature across editions."),
    layer: str | None = typer.Option(None, help="Layer (or dataset inside an archive) to read."),
    on_invalid: OnInvalid = typer.Option(
        OnInvalid.reject, "--on-invalid", help="reject the file, repair geometries, or quarantine."
    ),
    valid_from: dt.datetime | None = typer.Option(
        None, "--valid-from", help="When this edition is valid from [default: now, UTC]."
    ),
    report: Path | None = typer.Option(None, help="Write the JSON report to this file."),
    editable: bool = typer.Option(
        False, "--editable", help="Allow feature edits through the API (needs --key)."
    ),
    public: bool | None = typer.Option(
        None, "--public/--private", help="Readable by everyone? [default: as it was; new: no]"
    ),
    department: str | None = typer.Option(None, help="The department that owns it."),
) -> None:
    """Load a vector file into a layer table (all or nothing) and register it in the catalog."""
    from spatial.ingest.vector import (  # noqa: PLC0415 - heavy imports, only for this command
        IngestRejectedError,
        VectorSource,
        ingest_vector,
    )

    gc.freeze()  # the modules just imported live as long as the process: keep them out of GC

    if valid_from is not None and valid_from.tzinfo is None:
        valid_from = valid_from.replace(tzinfo=dt.UTC)
    settings = Settings()
    source = VectorSource(
        path=path,
        collection_id=collection,
        title=title or collection,
        subsystems=tuple(subsystem),
        layer=layer,
        crs=crs,
        encoding=encoding,
        key=key,
        on_invalid=on_invalid.value,
        valid_from=valid_from,
        editable=editable,
        public=public,
        department=department,
    )
    url = resolve_url(settings)
    with progress_bar() as bar:
        task = bar.add_task(f"ingest {path.name}", total=100)

        def progress(fraction: float, message: str) -> None:
            bar.update(task, completed=round(fraction * 100), description=message)

        try:
            outcome = ingest_vector(url, source, settings, on_progress=progress)
        except IngestRejectedError as exc:
            bar.stop()
            _write_report(report, exc.report)
            _print_findings(exc.report)
            raise
    _write_report(report, outcome.report)
    _print_findings(outcome.report)
    record, rep = outcome.record, outcome.report
    console.print(
        f"[green]loaded[/] {record.feature_count} features into [bold]{record.id}[/] "
        f"(edition {rep['edition']}, version {record.version}, {record.crs}, "
        f"{rep['geometry_type']}); job {outcome.job_id}"
    )
    for note in rep.get("notes") or ():  # e.g. how a CRS without an EPSG code was transformed
        console.print(f"note: {note}", highlight=False)
    if rep.get("diff"):
        diff = rep["diff"]
        console.print(
            "changes: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in diff.items())
        )


def _write_report(path: Path | None, report: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str))
        console.print(f"report written to {path}")


def _print_findings(report: dict[str, Any]) -> None:
    counts = report.get("counts") or {}
    for severity in ("errors", "warnings"):
        for kind, n in (counts.get(severity) or {}).items():
            err_console.print(f"  {severity[:-1]}: {n} x {kind.replace('_', ' ')}", highlight=False)
    shown = Counter[str]()
    for f in report.get("findings", []):
        if shown[f["kind"]] >= 3:
            continue
        shown[f["kind"]] += 1
        who = f"key {f['key']}" if f.get("key") is not None else f"feature {f['fid']}"
        err_console.print(f"    {who}: {f['kind']}: {f['detail']}", highlight=False)


@app.command()
@friendly
def raster(
    paths: list[Path] = typer.Argument(
        ..., exists=True, help="Scenes: raster files, or folders of one scene's band files."
    ),
    collection: str = typer.Option(..., "--collection", help="Collection id (a-z, 0-9, _)."),
    datetime_: dt.datetime | None = typer.Option(
        None, "--datetime", help="Acquisition time [default: from the files' metadata]."
    ),
    sensor: str | None = typer.Option(
        None, help="Sensor of the band table: landsat8, landsat7, sentinel2, demo-4band."
    ),
    bands: str | None = typer.Option(None, help="Band names in order, e.g. red,green,blue,nir."),
    item: str | None = typer.Option(None, help="Item id of a single scene [default: its name]."),
    title: str | None = typer.Option(None, help="Human title of the collection."),
    subsystem: list[str] = typer.Option(
        [], help="Subsystem(s) that show it (repeatable): a file of layers/subsystems/."
    ),
    public: bool | None = typer.Option(
        None, "--public/--private", help="Readable by everyone? [default: as it was; new: no]"
    ),
    department: str | None = typer.Option(None, help="The department that owns it."),
    subdataset: str | None = typer.Option(
        None, help="The variable of a NetCDF file, or the dataset path of an HDF5 file."
    ),
    dem: str | None = typer.Option(
        None, help="Elevation collection to orthorectify RPC scenes with [default: the only one]."
    ),
    kind: str = typer.Option(
        "imagery", help="imagery, or elevation (a DEM: one band of heights in metres)."
    ),
) -> None:
    """Convert rasters to COGs and catalog them as STAC items of a raster collection.

    NetCDF/HDF5: one variable (--subdataset). RPC images (Gaofen, ZY-3): orthorectified (--dem)."""
    from spatial.ingest.raster import (  # noqa: PLC0415 - heavy imports, only for this command
        RasterSource,
        ingest_raster,
    )

    settings = Settings()
    source = RasterSource(
        paths=tuple(paths),
        collection_id=collection,
        title=title,
        item_id=item,
        datetime=datetime_,
        sensor=sensor,
        bands=tuple(b.strip() for b in bands.split(",")) if bands else (),
        subsystems=tuple(subsystem),
        public=public,
        department=department,
        subdataset=subdataset,
        dem=dem,
        kind=kind,
    )
    url = resolve_url(settings)
    with progress_bar() as bar:
        task = bar.add_task("ingest rasters", total=100)

        def progress(fraction: float, message: str) -> None:
            bar.update(task, completed=round(fraction * 100), description=message)

        outcome = ingest_raster(url, source, settings, on_progress=progress)
    for entry in outcome.report["scenes"]:
        console.print(
            f"[green]loaded[/] scene [bold]{entry['id']}[/] ({entry['datetime']}, bands "
            f"{', '.join(entry['bands'])}) into [bold]{outcome.record.id}[/]"
        )
    console.print(
        f"{outcome.record.id}: {outcome.record.feature_count} scene(s), version "
        f"{outcome.record.version}; job {outcome.job_id}"
    )


@app.command()
@friendly
def gps(
    path: Path = typer.Argument(..., exists=True, help="An NMEA log, GPX, CSV or GeoJSON file."),
    device: str | None = typer.Option(
        None, "--device", help="The device of every fix (needed for NMEA logs)."
    ),
) -> None:
    """Import a GPS file: decode, check (counted rejects) and store its fixes."""
    import psycopg  # noqa: PLC0415 - keep `spatial --help` fast

    from spatial.gps.imports import import_file  # noqa: PLC0415 - keep `spatial --help` fast

    settings = Settings()
    with psycopg.connect(resolve_url(settings), autocommit=True) as conn:
        done = import_file(conn, path, device=device, settings=settings.gps)
    console.print(
        f"[green]stored[/] {done.stored} fixes of {', '.join(sorted(done.devices)) or 'no device'}"
        f" from {path.name}; {done.duplicates} already stored"
    )
    for reason, n in sorted(done.counts().items()):
        if reason != "duplicate":
            err_console.print(f"  rejected: {n} x {reason.replace('_', ' ')}", highlight=False)
