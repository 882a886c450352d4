"""The raster benchmark's limit: rio-tiler reading the platform's display COG, no server.

``PROCESSES`` processes (one a core, as the platform's uvicorn workers), each keeping the
COG open for the whole run (the platform opens it for every tile: the limit does less),
draw NDVI tiles as the platform draws them: the red and nir bands read by
``rio_tiler.io.Reader.tile``, NDVI, then ``spatial.imagery``'s rescale, colormap and PNG
encoder. ``rasters.py`` runs it between its servers' measures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from ingest import BenchmarkError, _say
from rio_tiler.io import Reader

from spatial import imagery

PROCESSES = 2
"""The machine's cores, and each server's uvicorn workers."""
STARTING = 120
"""Seconds the processes may take to start."""
WARM_UP = 3
"""Seconds of the same work before each measure (wrk's warm-up in ``features._wrk``)."""

Tile = tuple[int, int, int]
"""(z, row, col): OGC tileMatrix, tileRow, tileCol."""

_STATE: dict[str, Any] = {}
"""A limit process's state: the open display COG, its red and nir bands, the colormap."""


def _open(cog: str, bands: tuple[int, int], colormap: str) -> None:
    """Start a limit process: open the display COG once for the whole run (the platform
    opens it for every tile: the limit does less)."""
    _STATE["reader"] = Reader(cog)
    _STATE["bands"] = bands
    _STATE["lut"] = imagery.colormap(colormap)


def _ready(tile: Tile) -> int:
    """Draw a tile (its process is up, the COG open and read once); the process id."""
    draw(tile)
    return os.getpid()


def draw(tile: Tile) -> bytes:
    """One tile as the platform draws it: red and nir read by rio-tiler, NDVI, rescaled
    -1..1 and coloured by ``spatial.imagery``, encoded by its PNG encoder."""
    z, row, col = tile
    image = _STATE["reader"].tile(col, row, z, indexes=_STATE["bands"])
    red, nir = np.ma.asarray(image.array, dtype="float32")
    with np.errstate(all="ignore"):
        ndvi = np.ma.masked_invalid((nir - red) / (nir + red))
    scaled = imagery.to_bytes(ndvi[np.newaxis], [(-1.0, 1.0)])
    encoded: bytes = imagery.png(imagery.rgba(scaled, _STATE["lut"]))
    return encoded


def _run(tiles: list[Tile], first: int, warm_until: float, until: float) -> int:
    """Draw ``tiles`` in turn from ``first``: how many were done between the end of the
    warm-up and ``until`` (Unix times, the same clock in every process)."""
    done, number = 0, first
    while True:
        draw(tiles[number % len(tiles)])
        number += 1
        now = time.time()
        if now >= until:
            return done
        if now >= warm_until:
            done += 1


@contextmanager
def processes(
    cog: Path, bands: tuple[int, int], colormap: str, first: Tile
) -> Iterator[ProcessPoolExecutor]:
    """PROCESSES processes (spawned: no GDAL state forked), each with ``cog`` open, to
    draw ``bands`` (red, nir) with ``colormap``; each has drawn ``first`` once."""
    with ProcessPoolExecutor(
        PROCESSES, mp_context=get_context("spawn"), initializer=_open,
        initargs=(str(cog), bands, colormap),
    ) as pool:  # fmt: skip
        # The pool starts its processes as work comes; ask until each has drawn a tile.
        pids: set[int] = set()
        deadline = time.monotonic() + STARTING
        while len(pids) < PROCESSES:
            pids.update(pool.map(_ready, [first] * PROCESSES))
            if time.monotonic() > deadline:
                msg = f"only {len(pids)} of the limit's {PROCESSES} processes started"
                raise BenchmarkError(msg)
        _say(f"limit: {len(pids)} processes ready, each with {cog.name} open")
        yield pool


def rate(pool: ProcessPoolExecutor, tiles: list[Tile], duration: int) -> float:
    """Tiles per second of the limit's processes, each starting at its own share of the
    tiles, after WARM_UP seconds of the same work."""
    warm_until = time.time() + WARM_UP
    until = warm_until + duration
    share = len(tiles) // PROCESSES
    runs = [
        pool.submit(_run, tiles, number * share, warm_until, until) for number in range(PROCESSES)
    ]
    return sum(run.result() for run in runs) / duration
