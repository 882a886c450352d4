"""Independent, reproducible random streams (one per part of the city)."""

from __future__ import annotations

import numpy as np

from spatial.samples.constants import SEED

# Stream numbers for independent random generators (stable even if steps are reordered).
STREAM_GRID = 1
STREAM_LANDUSE = 2
STREAM_NAMES = 3
STREAM_EDITION = 4
STREAM_POI = 5
STREAM_SCENE_2025 = 6
STREAM_SCENE_2026 = 7
STREAM_GPS = 8
STREAM_ZONES = 9
# The departments beyond the first five (construction, utilities, forestry, agriculture).
STREAM_CONSTRUCTION = 21
STREAM_UTILITIES = 22
STREAM_FORESTRY = 23
STREAM_AGRICULTURE = 24
# The demo DEM's relief (spatial.samples.terrain).
STREAM_TERRAIN = 31


def rng(stream: int, substream: int = 0) -> np.random.Generator:
    """Return the deterministic random generator of one stream.

    Args:
        stream: one of the ``STREAM_*`` constants.
        substream: an independent sequence within the stream (e.g. one per vehicle).

    Returns:
        A fresh ``numpy.random.Generator`` seeded from ``[SEED, stream, substream]``.
    """
    return np.random.default_rng([SEED, stream, substream])
