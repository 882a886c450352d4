"""Fixed parameters of the demo city: version, seed, reference systems and dates.

Everything the generator produces derives from these values; nothing reads the clock.
Standard library only, so that ``spatial.samples`` imports cheaply.
"""

from __future__ import annotations

import datetime as dt

GENERATOR_VERSION = "1.4.0"
"""Bumped whenever any output byte changes."""

SEED = 20250630
"""Root seed; every random stream is ``numpy.random.default_rng([SEED, stream, sub])``."""

CRS_PROJECTED = 4546
"""CGCS2000 / 3-degree Gauss-Kruger CM 111E (no zone prefix in the false easting)."""

CRS_GEOGRAPHIC = 4490
"""CGCS2000 geographic (longitude/latitude written in that order, as GIS files do)."""

CENTRE_LONLAT = (112.0, 22.9)
"""Yunfu, Guangdong: the centre of the demo city."""

FILE_DATE = "2025-06-30"
"""Date stamped into file headers (Shapefile DBF, GeoPackage, zip entries)."""

GPKG_CURRENT_DATE = "2025-06-30T00:00:00Z"
"""Value of GDAL's ``OGR_CURRENT_DATE`` while GeoPackages are written."""

ZIP_DATE_TIME = (2025, 6, 30, 0, 0, 0)
"""Timestamp of every zip member."""

GPS_START = dt.datetime(2026, 3, 1, 0, 0, 0, tzinfo=dt.UTC)
"""Fleet start: 2026-03-01T08:00:00+08:00, written as UTC."""
