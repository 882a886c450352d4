"""The demo data set: a deterministic city around Yunfu, Guangdong (112.0°E, 22.9°N).

``build(out_dir)`` writes cadastral parcels in two editions (zipped GBK Shapefiles in
EPSG:4546) with the ground truth of their changes, districts, planning zones, roads and
rivers, flood-risk zones along the rivers, water gauges, environmental stations,
hospitals and fire stations, two 4-band scenes, a DEM, a GPS fleet (NMEA, GPX, OsmAnd
requests), the departments' data (buildings and projects, pipes and manholes, forest
sub-compartments, basic farmland and farmland plots), then ``MANIFEST.json``. Everything
derives from ``SEED`` and fixed dates, so two builds are byte-identical; nothing is
downloaded. See ``data-samples/README.md`` for the file-by-file description.

Importing this package is cheap: numpy, GDAL and shapely load only when a build runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from spatial.samples.constants import GENERATOR_VERSION, SEED
from spatial.samples.manifest import MANIFEST, OUTPUTS, BuildResult, current_files

__all__ = ["GENERATOR_VERSION", "MANIFEST", "OUTPUTS", "SEED", "BuildResult", "build"]


def build(
    out_dir: Path,
    *,
    force: bool = False,
    on_step: Callable[[str, int, int], None] | None = None,
) -> BuildResult:
    """Generate the demo files into a folder, unless they are already current.

    The folder is current when ``MANIFEST.json`` names this ``GENERATOR_VERSION`` and every
    listed file exists with its recorded sha256; then nothing is written. Otherwise every
    file is regenerated: each is written under ``out_dir/.build-tmp/`` and renamed into
    place, and ``MANIFEST.json`` is written last, so an interrupted build never leaves a
    half-written file under a final name nor a manifest that vouches for stale files.

    Args:
        out_dir: target folder (created if missing).
        force: regenerate even when the folder is current.
        on_step: progress callback ``(name, index, total)``, called before each output
            is produced; ``index`` counts from 0 and the last step is ``MANIFEST.json``
            (``total`` = 21). Not called when nothing needs doing.

    Returns:
        The folder, whether it was rebuilt, and the sha256 of every generated file.
    """
    out_dir = Path(out_dir)
    if not force:
        files = current_files(out_dir)
        if files is not None:
            return BuildResult(out_dir=out_dir, rebuilt=False, files=files)
    from spatial.samples.builder import build_all  # noqa: PLC0415 - numpy and GDAL, only to build

    return build_all(out_dir, on_step=on_step)
