"""Importing GPS files: NMEA logs, GPX, CSV and GeoJSON batches, through the same checks
and store as the receivers (:mod:`spatial.gps.store`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from spatial.errors import InvalidInputError
from spatial.gps import files, nmea
from spatial.gps.fix import Decoded, Fix
from spatial.gps.store import Stored, store
from spatial.settings import GpsSettings

NMEA_SUFFIXES = frozenset({".nmea", ".log", ".txt", ".gps"})
BATCH = 50_000
"""Fixes stored per transaction (a long log is not one huge transaction)."""


def decode_file(path: Path, device: str | None) -> Decoded:
    """The fixes and rejects of a GPS file, by its kind.

    Raises:
        InvalidInputError: an NMEA log without ``device`` (NMEA sentences name no device),
            or a file that cannot be read at all.
    """
    if not path.is_file():
        msg = f"{path.name}: not a file"
        raise InvalidInputError(msg)
    if path.suffix.lower() in NMEA_SUFFIXES:
        if device is None:
            msg = f"{path.name}: NMEA sentences name no device; give it with --device"
            raise InvalidInputError(msg)
        with path.open("rb") as f:
            return nmea.decode(f, device=device)
    return files.read(path, device=device)


def import_file(
    conn: psycopg.Connection[Any], path: Path, *, device: str | None, settings: GpsSettings
) -> Stored:
    """Decode a file and store its fixes (in batches of :data:`BATCH`, each all or nothing)."""
    decoded = decode_file(path, device)
    total = Stored(rejects=list(decoded.rejects))
    fixes: list[Fix] = decoded.fixes
    for start in range(0, max(len(fixes), 1), BATCH):
        part = store(conn, fixes[start : start + BATCH], source=f"file:{path.name}",
                     settings=settings, rejects=total.rejects if start == 0 else ())  # fmt: skip
        total.stored += part.stored
        total.duplicates += part.duplicates
        total.devices |= part.devices
        if start:
            total.rejects.extend(part.rejects)
        else:
            total.rejects = part.rejects
    return total
