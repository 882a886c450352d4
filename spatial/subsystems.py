"""Which subsystems exist: one YAML file each in the subsystems folder.

The files in ``layers/subsystems/`` (or ``SPATIAL_MAPS_SUBSYSTEMS_DIR``) are the one
source of the subsystems' names: a collection may be tagged with a subsystem only if its
file exists, and a new file is all a new department's map takes (:mod:`layers.subsystems`
reads their contents; this module only needs their names, so the core can check an ingest's
``--subsystem`` without the map model).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from spatial.errors import InvalidInputError
from spatial.settings import Settings

SHIPPED = Path(__file__).resolve().parent.parent / "layers" / "subsystems"
"""The shipped definitions (package data of ``layers``, installed beside ``spatial``)."""


def folder(settings: Settings) -> Path:
    """Where the subsystem definitions are."""
    return settings.maps.subsystems_dir or SHIPPED


def ids(settings: Settings) -> tuple[str, ...]:
    """The subsystems that exist: the names of the ``*.yaml`` files, sorted."""
    return tuple(sorted(p.stem for p in folder(settings).glob("*.yaml")))


def check(names: Iterable[str], settings: Settings) -> None:
    """Refuse a subsystem that has no definition.

    Raises:
        InvalidInputError: naming the unknown one and those that exist.
    """
    known = ids(settings)
    unknown = sorted(set(names) - set(known))
    if unknown:
        msg = (
            f"unknown subsystem {', '.join(map(repr, unknown))}; the subsystems are "
            f"{', '.join(known) or 'none'} (one file each in {folder(settings)})"
        )
        raise InvalidInputError(msg)
