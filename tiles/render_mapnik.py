"""Mapnik, imported once for the renderer (:mod:`tiles.render`, :mod:`tiles.render_legend`)
without changing what PROJ and GDAL read from the environment, and the Chinese font
registered.

Mapnik's wheel points ``PROJ_LIB`` and ``GDAL_DATA`` at its own folders (which hold no
``proj.db``) when they are unset; rasterio, pyproj and GDAL read them too. They are put
back as they were: Mapnik never reprojects here (the data arrives in the map's CRS, which
is given as a PROJ string, :func:`tiles.render.proj_string`).
"""

from __future__ import annotations

import os
from pathlib import Path

_SAVED = {k: os.environ.get(k) for k in ("PROJ_LIB", "PROJ_DATA", "GDAL_DATA")}
import mapnik as mapnik  # noqa: E402, PLC0414 - after the environment is saved; re-exported

for _key, _value in _SAVED.items():
    if _value is None:
        os.environ.pop(_key, None)

FONT_DIR = "/usr/share/fonts/truetype/wqy/"
FONT = "WenQuanYi Micro Hei Regular"
"""The Chinese font (Debian's ``fonts-wqy-microhei``, installed by scripts/sysdeps.sh)."""
if Path(FONT_DIR).is_dir():  # pragma: no branch - installed by scripts/sysdeps.sh
    mapnik.register_fonts(FONT_DIR)
