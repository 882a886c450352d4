"""Scenes as satellites deliver them, made into plain georeferenced rasters before the
raster ingest checks them.

The raster ingest (:mod:`spatial.ingest.raster`) hands each scene path here first:

- a NetCDF or HDF5 file: the variable ``--subdataset`` names is copied into a GeoTIFF
  (:mod:`spatial.ingest.containers`);
- a file georeferenced by RPCs only (Gaofen, ZY-3): orthorectified
  (:mod:`spatial.ingest.orthorectify`) with the DEM of an elevation collection
  (:mod:`spatial.ingest.heights`);
- anything else is left as it is.

What is made goes into the job's work folder, ``<data_dir>/.raster-work-<job id>``
(:func:`discard` removes it when the job ends, whatever the outcome), under the source's
own name, so the item id is the one the source would have given. A scene folder with
such files is mirrored there: its prepared files, and links to the others.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Protocol

from spatial.errors import InvalidInputError
from spatial.ingest import containers, heights, orthorectify
from spatial.settings import Settings


class Options(Protocol):
    """What a source says about such files (:class:`spatial.ingest.raster.RasterSource`)."""

    @property
    def subdataset(self) -> str | None: ...

    @property
    def dem(self) -> str | None: ...


_WORK = ".raster-work-"


def work_folder(settings: Settings, job_id: str) -> Path:
    """The job's work folder (not created here)."""
    return settings.data_dir / f"{_WORK}{job_id}"


def discard(settings: Settings, job_id: str) -> None:
    """Remove the job's work folder, if any."""
    shutil.rmtree(work_folder(settings, job_id), ignore_errors=True)


def prepare(
    path: Path, source: Options, settings: Settings, *, url: str, job_id: str
) -> tuple[Path, dict[str, Any]]:
    """The path to ingest for a scene path, and STAC properties to add to its item.

    Raises:
        InvalidInputError: what :func:`spatial.ingest.containers.extract` and
            :mod:`spatial.ingest.orthorectify` refuse, or ``--subdataset`` given for a
            file that is no container.
    """
    files = [path] if not path.is_dir() else sorted(p for p in path.iterdir() if p.is_file())
    special = [f for f in files if _special(f, source)]
    if not special:
        return path, {}
    out = work_folder(settings, job_id) / f"{len(list(_made(settings, job_id)))}"
    if not path.is_dir():
        out.mkdir(parents=True)
        return _prepare_file(path, source, settings, url=url, out=out)
    mirror = out / path.name
    mirror.mkdir(parents=True)
    properties: dict[str, Any] = {}
    for f in files:
        if f in special:
            _, extra = _prepare_file(f, source, settings, url=url, out=mirror)
            properties.update(extra)
        elif not _rpc_sidecar(f):  # the RPCs would follow the orthorectified image
            (mirror / f.name).symlink_to(f.resolve())
    return mirror, properties


def _rpc_sidecar(path: Path) -> bool:
    return path.suffix.lower() == ".rpb" or path.name.lower().endswith("_rpc.txt")


def _made(settings: Settings, job_id: str) -> list[Path]:
    folder = work_folder(settings, job_id)
    return list(folder.iterdir()) if folder.is_dir() else []


def _special(path: Path, source: Options) -> bool:
    if containers.kind_of(path) is not None:
        return True
    if source.subdataset is not None:
        msg = (
            f"--subdataset {source.subdataset}: {path.name} is not a NetCDF or HDF5 file; "
            "give --subdataset only with those"
        )
        raise InvalidInputError(msg)
    return orthorectify.rpc_only(path)


def _prepare_file(
    path: Path, source: Options, settings: Settings, *, url: str, out: Path
) -> tuple[Path, dict[str, Any]]:
    if containers.kind_of(path) is not None:
        variable = containers.choose(path, source.subdataset).name
        short = variable.rsplit("/", 1)[-1]
        suffix = "" if source.subdataset is None else "_" + re.sub(r"\W", "_", short)
        done = containers.extract(path, source.subdataset, out / f"{path.stem}{suffix}.tif")
        return done.path, done.properties
    scene = orthorectify.read_scene(path)
    dem = heights.choose_dem(url, source.dem, scene, settings, work=out)
    target = out / f"{path.stem}.tif"
    return target, orthorectify.orthorectify(scene, dem, target)


def check(path: Path, source: Options, settings: Settings, *, url: str | None) -> bool:
    """Check a scene path's container or RPC files without converting them (what an
    upload is refused for at once); True when the path holds such files (the usual
    checks then run on what :func:`prepare` makes, in the job).

    Raises:
        InvalidInputError: as :func:`prepare` would.
    """
    files = [path] if not path.is_dir() else sorted(p for p in path.iterdir() if p.is_file())
    special = [f for f in files if _special(f, source)]
    for f in special:
        if containers.kind_of(f) is not None:
            entry = containers.choose(f, source.subdataset)
            containers.georeferenced(f, entry)
        else:
            scene = orthorectify.read_scene(f)
            if url is not None:
                heights.choose_dem(url, source.dem, scene, settings)
    return bool(special)
