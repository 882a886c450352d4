"""Raster ingest: files to COGs and STAC items of a raster collection, all or nothing.

For each scene (a file, or a folder of band files, :mod:`spatial.ingest.scenes`):

1. every file is checked (:mod:`spatial.ingest.raster_checks`) before anything is written;
2. the files become COGs in a new folder of the raster store,
   ``<data_dir>/rasters/<collection>/<item>/<version>/``: the native COG (one per band
   file of a multi-file scene, stacked by a VRT), and the WebMercatorQuad display COG
   for map tiles (:mod:`spatial.ingest.cog`); every output passes ``rio cogeo validate``;
   for an object store (:mod:`spatial.rasterstore`) the folder is a local staging one,
   uploaded before step 3;
3. one transaction writes the items (``rs.items``), the collection's catalog entry
   (extent, time span, bands) and the audit row.

A failure at any step removes the new folders and leaves the catalog as it was; a
replaced item's old folder is removed only after the commit.
"""

from __future__ import annotations

import datetime as dt
import errno
import getpass
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import rasterio
import shapely
from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from spatial import changes, rasterstore, subsystems
from spatial.audit import Actor, audit
from spatial.catalog import CollectionRecord, Kind, upsert_collection
from spatial.db import engine
from spatial.errors import InvalidInputError, StorageFullError
from spatial.ingest import cog, jobs, prepare
from spatial.ingest.publish import check_collection_id
from spatial.ingest.raster_checks import Limits, check_file
from spatial.ingest.scenes import SENSORS, Scene, describe, scene_files
from spatial.ingest.vector import sha256, visibility
from spatial.settings import Settings

ProgressFn = Callable[[float, str], None]
STORE = "rasters"
"""The raster store: ``<data_dir>/rasters``."""
COG_MEDIA = "image/tiff; application=geotiff; profile=cloud-optimized"
KINDS = ("imagery", "elevation")
"""What a raster collection holds (``--kind``): imagery (any bands), or elevation (one
band of heights in metres: terrain tiles, hillshade, slope and aspect, :mod:`tiles.terrain`).
Recorded as the collection's and its items' ``spatial:kind``; a collection holds one kind."""
_ITEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class RasterSource:
    """What to ingest: scene paths (each a file or a folder of band files) and options."""

    paths: tuple[Path, ...]
    collection_id: str
    title: str | None = None
    item_id: str | None = None
    """The item id of a single scene [default: from the product or file name]."""
    datetime: dt.datetime | None = None
    """Acquisition time [default: from the files' metadata]."""
    sensor: str | None = None
    """A sensor of :data:`spatial.ingest.scenes.SENSORS` (band names and wavelengths)."""
    bands: tuple[str, ...] = ()
    """Band names in order, overriding the files' own."""
    subsystems: tuple[str, ...] = ()
    description: str | None = None
    public: bool | None = None
    department: str | None = None
    source_name: str | None = None
    subdataset: str | None = None
    """The variable of a NetCDF or HDF5 file to ingest (:mod:`spatial.ingest.containers`)."""
    dem: str | None = None
    """The elevation collection RPC scenes are orthorectified with [default: the only one]
    (:mod:`spatial.ingest.orthorectify`)."""
    kind: str = "imagery"
    """One of :data:`KINDS`."""


@dataclass(frozen=True)
class RasterOutcome:
    """A finished raster ingest."""

    job_id: str
    record: CollectionRecord
    items: list[dict[str, Any]]
    report: dict[str, Any]


def store_root(settings: Settings) -> Path:
    """The folder raster files are stored under (the staging folder's parent when the
    store is an object store: :mod:`spatial.rasterstore`)."""
    return rasterstore.of(settings).root or settings.data_dir / STORE


def validate_source(source: RasterSource, settings: Settings) -> None:
    """Check the options that need no file.

    Raises:
        InvalidInputError: a bad collection or item id, sensor or subsystem.
    """
    check_collection_id(source.collection_id)
    if not source.paths:
        raise InvalidInputError("give at least one raster file or scene folder")
    if source.item_id is not None:
        if len(source.paths) != 1:
            raise InvalidInputError("--item names one scene; give one path with it")
        if not _ITEM.match(source.item_id):
            msg = f"item id {source.item_id!r}: use letters, digits, _ . - (at most 128)"
            raise InvalidInputError(msg)
    if source.sensor is not None and source.sensor not in SENSORS:
        msg = f"unknown sensor {source.sensor!r}; known: {', '.join(SENSORS)}"
        raise InvalidInputError(msg)
    subsystems.check(source.subsystems, settings)
    if source.subdataset is not None and not source.subdataset.strip():
        raise InvalidInputError("--subdataset is empty: name a variable of the file")
    if source.dem is not None:
        check_collection_id(source.dem)
    if source.kind not in KINDS:
        raise InvalidInputError(f"--kind {source.kind!r}: use one of {', '.join(KINDS)}")
    if source.kind == "elevation" and (source.sensor is not None or len(source.bands) > 1):
        msg = "--kind elevation: one band of heights, so no --sensor and at most one --bands name"
        raise InvalidInputError(msg)


def check_scene(
    path: Path, settings: Settings, source: RasterSource | None = None, url: str | None = None
) -> None:
    """Check the files of one scene path (what the ingest checks first), writing nothing.

    Raises:
        InvalidInputError: a file is refused.
    """
    limits = Limits(
        max_bands=settings.ingest.max_raster_bands, max_gigabytes=settings.ingest.max_raster_gb
    )
    if source is not None and prepare.check(path, source, settings, url=url):
        return  # NetCDF/HDF5 or RPC files: checked again once made into GeoTIFFs
    for f in scene_files(path):
        check_file(f, limits)


def ingest_raster(
    url: str,
    source: RasterSource,
    settings: Settings,
    *,
    actor: str | Actor | None = None,
    job_id: str | None = None,
    on_progress: ProgressFn | None = None,
    cleanup: Callable[[], None] | None = None,
) -> RasterOutcome:
    """Ingest raster scenes into a collection as a job, all or nothing.

    ``cleanup`` removes what the job owns (an upload, say); the job runner calls it
    before it writes the job's final state (:func:`spatial.ingest.jobs.run`).

    Raises:
        InvalidInputError: a file or option was refused; the job is marked failed and
            nothing else changed.
        StorageFullError: the store's disk is full (or would be); likewise.
    """
    who = Actor.of(actor, f"cli:{getpass.getuser()}")
    if job_id is None:
        validate_source(source, settings)
        job_id = jobs.create(
            url,
            kind="raster",
            collection_id=source.collection_id,
            source=source.source_name or ", ".join(p.name for p in source.paths),
            options=_options(source),
            created_by=who.name,
        )
    report: dict[str, Any] = {"job_id": job_id, "collection": source.collection_id}

    def work(progress: ProgressFn) -> tuple[tuple[CollectionRecord, list[dict[str, Any]]], str]:
        validate_source(source, settings)
        try:
            done = _run(
                url, source, settings, job_id=job_id, actor=who, report=report, progress=progress
            )
        finally:
            prepare.discard(settings, job_id)
        return done, f"loaded {len(done[1])} scene(s) into {done[0].id}"

    record, items = jobs.run(url, job_id, report, work, on_progress, cleanup=cleanup)
    return RasterOutcome(job_id=job_id, record=record, items=items, report=report)


def _options(source: RasterSource) -> dict[str, Any]:
    return {
        "item": source.item_id,
        "datetime": source.datetime.isoformat() if source.datetime else None,
        "sensor": source.sensor,
        "bands": list(source.bands),
        "subsystems": list(source.subsystems),
        "public": source.public,
        "department": source.department,
        "subdataset": source.subdataset,
        "dem": source.dem,
        "kind": source.kind,
    }


def _run(
    url: str,
    source: RasterSource,
    settings: Settings,
    *,
    job_id: str,
    actor: Actor,
    report: dict[str, Any],
    progress: ProgressFn,
) -> tuple[CollectionRecord, list[dict[str, Any]]]:
    clock = time.perf_counter()
    limits = Limits(
        max_bands=settings.ingest.max_raster_bands,
        max_gigabytes=settings.ingest.max_raster_gb,
    )
    scenes = _scenes(url, source, settings, limits, job_id=job_id, progress=progress)
    checked = time.perf_counter() - clock
    store = rasterstore.of(settings)
    needed = sum(f.stat().st_size for p in source.paths for f in scene_files(p))
    store.check_room(needed)
    version = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.UUID(job_id).hex[:8]}"
    made: list[Path] = []
    with store.staging(settings.data_dir) as root:
        try:
            items = []
            for n, scene in enumerate(scenes):
                folder = root / source.collection_id / scene.item_id / version
                made.append(folder)
                share = 0.2 + 0.7 * n / len(scenes)
                items.append(
                    _convert(
                        scene,
                        folder,
                        root,
                        kind=source.kind,
                        progress=progress,
                        start=share,
                        share=0.7 / len(scenes),
                    )
                )
            if store.is_s3:
                progress(0.9, f"uploading to {store.describe()}")
                store.publish(root, made)
            progress(0.92, "writing the catalog")
            with engine(url) as eng, eng.begin() as conn:
                old = _publish(conn, source, items, actor, job_id)
                record = _collection(conn, source)
        except BaseException as exc:
            # GDAL reports a short write on stderr and goes on: the next step then fails to
            # read what was written. A failure with less room left than the inputs take is
            # the disk's, not the input's.
            full = _no_space(exc) or shutil.disk_usage(root).free < needed
            for folder in made:
                shutil.rmtree(folder, ignore_errors=True)
                rasterstore.prune(folder.parent, root)
                if store.is_s3:
                    store.remove(folder.relative_to(root).as_posix())
            if full:
                msg = (
                    f"the raster store {root} ran out of disk space while writing "
                    f"({_free(root)} free); nothing was kept: free space, then ingest again"
                )
                raise StorageFullError(msg) from exc
            raise
        kept = {folder.relative_to(root) for folder in made}
    for path in old:
        if path.parent not in kept:
            store.remove(path.parent.as_posix())
    report.update(
        {
            "items": [item["id"] for item in items],
            "timings_s": {
                "check": round(checked, 3),
                "total": round(time.perf_counter() - clock, 3),
            },
            "scenes": [
                {
                    "id": item["id"],
                    "datetime": item["properties"]["datetime"],
                    "bands": [b["name"] for b in item["properties"]["eo:bands"]],
                    "files": item["_files"],
                }
                for item in items
            ],
        }
    )
    for item in items:
        item.pop("_files", None)
    return record, items


def _scenes(
    url: str,
    source: RasterSource,
    settings: Settings,
    limits: Limits,
    *,
    job_id: str,
    progress: ProgressFn,
) -> list[Scene]:
    """Each scene path made readable (:mod:`spatial.ingest.prepare`), checked and
    described."""
    scenes: list[Scene] = []
    for n, given in enumerate(source.paths):
        progress(0.2 * n / len(source.paths), f"checking {given.name}")
        path, made = prepare.prepare(given, source, settings, url=url, job_id=job_id)
        files = [check_file(f, limits) for f in scene_files(path)]
        if len({d for f in files for d in f.dtypes}) > 1:
            msg = f"{path.name}: the bands have different data types; convert them to one first"
            raise InvalidInputError(msg)
        scenes.append(
            describe(
                path,
                files,
                item_id=source.item_id,
                when=source.datetime,
                sensor=source.sensor,
                band_names=source.bands,
                undated=_written(path) if source.kind == "elevation" else None,
            )
        )
        if made:  # how the scene was made readable (subdataset, orthorectification)
            scenes[-1].properties.update(made)
    ids = [s.item_id for s in scenes]
    if len(set(ids)) != len(ids):
        msg = f"two scenes would get the same item id ({', '.join(ids)}); ingest them separately"
        raise InvalidInputError(msg)
    return scenes


def _written(path: Path) -> dt.datetime:
    """When a file was last written (the time of a DEM that carries none)."""
    return dt.datetime.fromtimestamp(int(path.stat().st_mtime), dt.UTC)


def _free(root: Path) -> str:
    return f"{shutil.disk_usage(root).free / 2**20:.1f} MiB"


def _no_space(exc: BaseException) -> bool:
    """Whether writing failed for want of disk space (Python's or GDAL's error)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in {errno.ENOSPC, errno.EDQUOT}:
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _convert(
    scene: Scene,
    folder: Path,
    root: Path,
    *,
    kind: str = "imagery",
    progress: ProgressFn,
    start: float,
    share: float,
) -> dict[str, Any]:
    """Write the COGs of one scene into ``folder``; return its STAC item (hrefs relative
    to the store).

    An elevation scene (``kind``) must be one numeric band; its display COG keeps the
    heights as they are (the same data type, resampled bilinearly, never scaled to bytes)
    so terrain tiles encode metres."""
    if kind == "elevation":
        _check_elevation(scene)
    folder.mkdir(parents=True)
    first = scene.files[0]
    dtype, nodata = first.dtypes[0], first.nodata
    categorical = any(f.has_colormap for f in scene.files)
    assets: dict[str, dict[str, Any]] = {}
    steps = len(scene.files) + 1
    if len(scene.files) == 1:
        progress(start, f"{scene.item_id}: converting to COG")
        data = folder / f"{scene.item_id}.tif"
        _cog_of(scene, 0, data, categorical=categorical)
        assets["data"] = _asset(data, root, "data", scene, [b.name for b in scene.bands])
    else:
        parts = []
        for i, info in enumerate(scene.files):
            progress(start + share * i / steps, f"{scene.item_id}: converting {info.path.name}")
            names = [b.name for b in scene.bands if b.file == i]
            target = folder / f"{names[0] if len(names) == 1 else info.path.stem}.tif"
            _cog_of(scene, i, target, categorical=categorical)
            parts.append((i, target))
            assets[target.stem] = _asset(target, root, "data", scene, names)
        bands = [
            cog.VrtBand(dict(parts)[b.file], b.index, b.name, b.common_name, b.wavelength)
            for b in scene.bands
        ]
        data = folder / f"{scene.item_id}.vrt"
        data.write_text(
            cog.band_vrt(
                bands, crs_wkt=first.crs_wkt, dtype=dtype, nodata=nodata, relative_to=folder
            )
        )
    progress(start + share * (steps - 1) / steps, f"{scene.item_id}: display COG")
    web = folder / f"{scene.item_id}.web.tif"
    cog.to_web_cog(data, web, categorical=categorical, name=scene.item_id)
    assets["display"] = _asset(web, root, "visual", scene, [b.name for b in scene.bands])
    assets["display"]["title"] = "Display copy on the WebMercatorQuad grid (map tiles)"
    for asset in assets.values():
        problems = cog.validate(root / asset["href"])
        if problems:
            msg = f"{scene.item_id}: the COG written is not valid: {'; '.join(problems)}"
            raise InvalidInputError(msg)
    item = _item(scene, data=data, web=web, root=root, assets=assets, statistics=_statistics(data))
    item["properties"]["spatial:kind"] = kind
    if kind == "elevation":
        item["properties"]["raster:bands"][0]["unit"] = "m"
    return item


def _check_elevation(scene: Scene) -> None:
    """Refuse a scene that is not one numeric band of heights."""
    names = [b.name for b in scene.bands]
    if len(names) != 1:
        msg = (
            f"{scene.item_id}: --kind elevation takes one band of heights, this scene has "
            f"{len(names)} ({', '.join(names)}): give a single-band DEM (gdal_translate -b 1)"
        )
        raise InvalidInputError(msg)
    dtype = np.dtype(scene.files[0].dtypes[0])
    if dtype.kind not in "iuf" or any(f.has_colormap for f in scene.files):
        what = "a colour table (classes)" if dtype.kind in "iuf" else f"{dtype} values"
        msg = f"{scene.item_id}: --kind elevation takes numeric heights, this band has {what}"
        raise InvalidInputError(msg)


def _statistics(data: Path) -> list[dict[str, float]]:
    """Per band: minimum, maximum, mean, standard deviation, share of valid pixels and the
    2nd and 98th percentiles (the default stretch of map tiles), from an overview of at
    most 1024 pixels a side."""
    with rasterio.open(data) as src:
        shrink = max(1.0, max(src.width, src.height) / 1024)
        shape = (src.count, max(1, round(src.height / shrink)), max(1, round(src.width / shrink)))
        values = src.read(out_shape=shape, masked=True)
    out = []
    for band in values:
        valid = band.compressed().astype("float64")
        if valid.size == 0:
            out.append({"valid_percent": 0.0})
            continue
        p2, p98 = np.percentile(valid, [2, 98])
        out.append(
            {
                "minimum": float(valid.min()),
                "maximum": float(valid.max()),
                "mean": round(float(valid.mean()), 4),
                "stddev": round(float(valid.std()), 4),
                "valid_percent": round(100.0 * valid.size / band.size, 3),
                "percentile_2": float(p2),
                "percentile_98": float(p98),
            }
        )
    return out


def _cog_of(scene: Scene, i: int, target: Path, *, categorical: bool) -> None:
    """The native COG of file ``i`` of a scene, its bands named (through a VRT)."""
    info = scene.files[i]
    dtype, nodata, folder = info.dtypes[0], info.nodata, target.parent
    bands = [
        cog.VrtBand(info.path, b.index, b.name, b.common_name, b.wavelength)
        for b in scene.bands
        if b.file == i
    ]
    wrapper = folder / f".{target.stem}.source.vrt"
    tags = {k: v for k, v in info.tags.items() if k not in {"AREA_OR_POINT", "OVERVIEW_RESAMPLING"}}
    tags["ACQUISITION_DATETIME"] = scene.datetime.astimezone(dt.UTC).isoformat()
    if scene.sensor:
        tags["SENSOR"] = scene.sensor
    wrapper.write_text(
        cog.band_vrt(bands, crs_wkt=info.crs_wkt, dtype=dtype, nodata=nodata, metadata=tags)
    )
    try:
        cog.to_cog(wrapper, target, categorical=categorical, name=info.path.name)
    finally:
        wrapper.unlink(missing_ok=True)


def _asset(path: Path, root: Path, role: str, scene: Scene, names: list[str]) -> dict[str, Any]:
    return {
        "href": path.relative_to(root).as_posix(),
        "type": COG_MEDIA,
        "roles": [role],
        "eo:bands": [_eo(b) for b in scene.bands if b.name in names],
        "file:size": path.stat().st_size,
    }


def _eo(band: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": band.name}
    if band.common_name:
        entry["common_name"] = band.common_name
    if band.wavelength is not None:
        entry["center_wavelength"] = band.wavelength
    return entry


def _item(
    scene: Scene,
    *,
    data: Path,
    web: Path,
    root: Path,
    assets: dict[str, Any],
    statistics: list[dict[str, float]],
) -> dict[str, Any]:
    first = scene.files[0]
    finest = min(scene.files, key=lambda f: f.resolution[0])
    crs = pyproj.CRS.from_wkt(first.crs_wkt)
    footprint = _footprint(scene, crs)
    gsd = finest.resolution[0] if crs.is_projected else None
    properties: dict[str, Any] = {
        "datetime": scene.datetime.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        **scene.properties,
        "eo:bands": [_eo(b) for b in scene.bands],
        "raster:bands": [
            {
                "data_type": first.dtypes[0],
                "nodata": first.nodata,
                "spatial_resolution": scene.files[b.file].resolution[0],
                **({"scale": s} if (s := scene.files[b.file].scales[b.index - 1]) != 1 else {}),
                **({"offset": o} if (o := scene.files[b.file].offsets[b.index - 1]) != 0 else {}),
                "statistics": stats,
            }
            for b, stats in zip(scene.bands, statistics, strict=True)
        ],
        "proj:code": first.crs_code,
        "proj:shape": [finest.height, finest.width],
        "proj:transform": list(finest.transform),
        "proj:bbox": list(finest.bounds),
    }
    if first.crs_code is None:
        properties["proj:wkt2"] = first.crs_wkt
    if gsd is not None:
        properties["gsd"] = round(gsd, 3)
    if scene.sensor:
        properties["sensor"] = scene.sensor
    if len(scene.files) == 1:
        properties["spatial:source_sha256"] = sha256(scene.files[0].path)
    return {
        "id": scene.item_id,
        "geometry": shapely.geometry.mapping(footprint),
        "bbox": list(footprint.bounds),
        "properties": properties,
        "assets": assets,
        "_data": data.relative_to(root).as_posix(),
        "_web": web.relative_to(root).as_posix(),
        "_files": [f.path.name for f in scene.files],
    }


def _footprint(scene: Scene, crs: pyproj.CRS) -> shapely.Polygon:
    """The scene's outline in lon/lat (the union of its files' bounds, edges densified)."""
    to_lonlat = pyproj.Transformer.from_crs(crs, "OGC:CRS84", always_xy=True)
    w = min(f.bounds[0] for f in scene.files)
    s = min(f.bounds[1] for f in scene.files)
    e = max(f.bounds[2] for f in scene.files)
    n = max(f.bounds[3] for f in scene.files)
    steps = np.linspace(0.0, 1.0, 21)
    xs = np.concatenate([w + (e - w) * steps, np.full(21, e), e - (e - w) * steps, np.full(21, w)])
    ys = np.concatenate([np.full(21, s), s + (n - s) * steps, np.full(21, n), n - (n - s) * steps])
    lon, lat = to_lonlat.transform(xs, ys)
    ring = shapely.Polygon(np.column_stack([np.clip(lon, -180, 180), np.clip(lat, -90, 90)]))
    return shapely.simplify(shapely.make_valid(ring), 1e-7)


_UPSERT_ITEM = text(
    "INSERT INTO rs.items (collection_id, id, datetime, geom, properties, assets, data_path, "
    "web_path) VALUES (:cid, :id, :datetime, "
    "ST_Multi(ST_CollectionExtract(ST_GeomFromGeoJSON(:geometry), 3)), :properties, "
    ":assets, :data, :web) "
    "ON CONFLICT (collection_id, id) DO UPDATE SET datetime = excluded.datetime, "
    "geom = excluded.geom, properties = excluded.properties, assets = excluded.assets, "
    "data_path = excluded.data_path, web_path = excluded.web_path, updated_at = now()"
).bindparams(bindparam("properties", type_=JSONB), bindparam("assets", type_=JSONB))


_BOXES = text(
    "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM rs.items "
    "WHERE collection_id = :cid AND id = ANY(:ids)"
)
"""The lon/lat boxes of some items (what their tiles cover)."""


def _publish(
    conn: Connection,
    source: RasterSource,
    items: list[dict[str, Any]],
    actor: Actor,
    job_id: str,
) -> list[Path]:
    """Write the items (and a first catalog entry); return the data paths they replace."""
    existing = conn.execute(
        text(
            "SELECT kind, coalesce(properties->>'spatial:kind', 'imagery') "
            "FROM platform.collections WHERE id = :id FOR UPDATE"
        ),
        {"id": source.collection_id},
    ).first()
    if existing is not None and existing[0] != "raster":
        msg = f"collection {source.collection_id!r} holds {existing[0]} data, not rasters"
        raise InvalidInputError(msg)
    if existing is not None and existing[1] != source.kind:
        msg = (
            f"collection {source.collection_id!r} holds {existing[1]}, not {source.kind}: "
            f"a collection holds one kind; ingest into another collection"
            + (" (or give --kind elevation)" if existing[1] == "elevation" else "")
        )
        raise InvalidInputError(msg)
    if existing is None:
        _collection(conn, source)
    ids = [i["id"] for i in items]
    old = conn.execute(
        text("SELECT data_path FROM rs.items WHERE collection_id = :cid AND id = ANY(:ids)"),
        {"cid": source.collection_id, "ids": ids},
    ).all()
    boxes = [tuple(b) for b in conn.execute(_BOXES, {"cid": source.collection_id, "ids": ids})]
    for item in items:
        conn.execute(
            _UPSERT_ITEM,
            {
                "cid": source.collection_id,
                "id": item["id"],
                "datetime": dt.datetime.fromisoformat(item["properties"]["datetime"]),
                "geometry": json.dumps(item["geometry"]),
                "properties": item["properties"],
                "assets": item["assets"],
                "data": item.pop("_data"),
                "web": item.pop("_web"),
            },
        )
    # The map and value tiles under the old and the new footprints are dropped by every
    # worker, as a vector ingest's are (one invalidation path, spatial.changes).
    boxes += [tuple(b) for b in conn.execute(_BOXES, {"cid": source.collection_id, "ids": ids})]
    payload = json.dumps({"collection": source.collection_id, "boxes": boxes[: changes.MAX_BOXES]})
    if len(boxes) > changes.MAX_BOXES:  # many scenes at once: all of the collection
        payload = changes.everything_payload(source.collection_id)
    conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                 {"channel": changes.CHANNEL, "payload": payload})  # fmt: skip
    audit(
        conn,
        actor,
        "ingest",
        collection_id=source.collection_id,
        details={
            "job_id": job_id,
            "kind": "raster",
            "items": [i["id"] for i in items],
            "replaced": len(old),
        },
    )
    return [Path(row[0]) for row in old]


def _collection(conn: Connection, source: RasterSource) -> CollectionRecord:
    """(Re)write the collection's catalog entry from its items."""
    row = conn.execute(
        text(
            "SELECT count(*), min(datetime), max(datetime), "
            "ST_AsText(ST_Multi(ST_Union(geom))), "
            "(SELECT properties FROM rs.items WHERE collection_id = :cid "
            " ORDER BY datetime DESC, id LIMIT 1), "
            "array_agg(DISTINCT properties->>'proj:code') "
            "FROM rs.items WHERE collection_id = :cid"
        ),
        {"cid": source.collection_id},
    ).one()
    count, first, last, footprint, latest, codes = row
    current = conn.execute(
        text("SELECT title, description, subsystems FROM platform.collections WHERE id = :id"),
        {"id": source.collection_id},
    ).first()
    latest = latest or {}
    codes = [c for c in (codes or []) if c]
    record = CollectionRecord(
        id=source.collection_id,
        title=source.title or (current[0] if current else source.collection_id),
        kind=Kind.RASTER,
        description=source.description or (current[1] if current else None),
        subsystems=source.subsystems or (tuple(current[2]) if current else ()),
        keywords=(source.kind, "raster"),
        storage_schema="rs",
        storage_table="items",
        storage_path=f"{STORE}/{source.collection_id}",
        crs=codes[0] if len(codes) == 1 else None,
        temporal_start=first,
        temporal_end=last,
        feature_count=count,
        properties={
            "bands": latest.get("eo:bands", []),
            "raster:bands": latest.get("raster:bands", []),
            "sensor": latest.get("sensor"),
            "gsd": latest.get("gsd"),
            "proj:shape": latest.get("proj:shape"),
            "resolution": abs((latest.get("proj:transform") or [0.0])[0]),
            "spatial:kind": source.kind,
        },
        **visibility(conn, source, "raster"),
    )
    return upsert_collection(conn, record, footprint)
