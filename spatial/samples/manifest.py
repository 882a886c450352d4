"""The output list, ``MANIFEST.json`` and the up-to-date check (standard library only).

This module is imported by ``spatial.samples`` itself, so checking that a sample folder
is current does not load numpy, GDAL or shapely.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from spatial.samples.constants import GENERATOR_VERSION, SEED

MANIFEST = "MANIFEST.json"

OUTPUTS = (
    "parcels_2025.zip",
    "parcels_2026.zip",
    "parcel_changes.csv",
    "districts.geojson",
    "planning_zones.geojson",
    "network.gpkg",
    "flood_zones.geojson",
    "water_gauges.csv",
    "env_stations.geojson",
    "facilities.gpkg",
    "scene_2025.tif",
    "scene_2026.tif",
    "dem.tif",
    "gps/fleet.nmea",
    "gps/fleet.gpx",
    "gps/osmand_requests.log",
    "construction.gpkg",
    "utilities.gpkg",
    "forestry.gpkg",
    "agriculture.gpkg",
)
"""Every generated file (relative POSIX paths), in build order."""


@dataclass(frozen=True)
class BuildResult:
    """What ``build`` did.

    Attributes:
        out_dir: the folder holding the samples.
        rebuilt: False when the folder was already up to date and nothing was written.
        files: relative path -> sha256 hex digest, for every generated file.
    """

    out_dir: Path
    rebuilt: bool
    files: dict[str, str]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes.

    Args:
        path: the file.

    Returns:
        The digest.
    """
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_text(out_dir: Path) -> tuple[str, dict[str, str]]:
    """Render ``MANIFEST.json`` for the files now in a folder.

    Args:
        out_dir: the sample folder with every file of ``OUTPUTS``.

    Returns:
        The manifest text (sorted keys, two-space indent, final newline) and the digests.
    """
    files: dict[str, dict[str, object]] = {}
    digests: dict[str, str] = {}
    for name in OUTPUTS:
        path = out_dir / name
        digests[name] = sha256_file(path)
        files[name] = {"sha256": digests[name], "size": path.stat().st_size}
    document = {"generator_version": GENERATOR_VERSION, "seed": SEED, "files": files}
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n", digests


def _listed(out_dir: Path) -> dict[str, object] | None:
    """The ``files`` member of a manifest written by this generator version, or None."""
    try:
        document = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    if document.get("generator_version") != GENERATOR_VERSION or document.get("seed") != SEED:
        return None
    listed = document.get("files")
    if not isinstance(listed, dict) or sorted(listed) != sorted(OUTPUTS):
        return None
    return listed


def current_files(out_dir: Path) -> dict[str, str] | None:
    """The digests of a sample folder if it is complete and current, else None.

    Current means: ``MANIFEST.json`` names this generator version and seed, lists exactly
    the files of ``OUTPUTS``, and every one of them exists with the listed size and sha256.

    Args:
        out_dir: the sample folder.

    Returns:
        Relative path -> sha256, or None when a build is needed.
    """
    listed = _listed(out_dir)
    if listed is None:
        return None
    digests: dict[str, str] = {}
    for name in OUTPUTS:
        entry, path = listed[name], out_dir / name
        if not isinstance(entry, dict) or not path.is_file():
            return None
        if path.stat().st_size != entry.get("size") or sha256_file(path) != entry.get("sha256"):
            return None
        digests[name] = str(entry["sha256"])
    return digests
