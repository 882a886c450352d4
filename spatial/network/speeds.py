"""Travel speeds of road classes, read from a YAML file such as ``layers/networks/roads.yaml``::

default: 30        # km/h of a class the file does not name (and of roads without one)
classes:
  expressway: 80
  arterial: 50
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spatial.errors import InvalidInputError

MAX_KMH = 300.0
"""Faster than any road vehicle: a typo (a speed in m/h, say) rather than a speed."""


@dataclass(frozen=True)
class Speeds:
    """km/h per road class, and the speed of any other class."""

    default: float
    classes: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The speeds as stored with the network (``net.networks.settings``)."""
        return {"default": self.default, "classes": dict(self.classes)}

    @classmethod
    def parse(cls, data: Any, source: str = "the speeds") -> Speeds:
        """Speeds from the mapping of a YAML file (or of a request body).

        Raises:
            InvalidInputError: not a mapping with ``default`` and ``classes``, an unknown
                key, or a speed that is not a number in (0, 300] km/h.
        """
        if not isinstance(data, dict):
            msg = f"{source}: expected a mapping with 'default' and 'classes' (km/h)"
            raise InvalidInputError(msg)
        unknown = sorted(set(data) - {"default", "classes"})
        if unknown:
            listed = ", ".join(map(str, unknown))
            msg = f"{source}: unknown key(s) {listed}; expected 'default' and 'classes'"
            raise InvalidInputError(msg)
        if "default" not in data:
            msg = f"{source}: 'default' (the km/h of a class not listed) is missing"
            raise InvalidInputError(msg)
        classes = data.get("classes") or {}
        if not isinstance(classes, dict):
            msg = f"{source}: 'classes' must map each road class to its km/h"
            raise InvalidInputError(msg)
        return cls(
            default=_kmh(data["default"], f"{source}: default"),
            classes={str(k): _kmh(v, f"{source}: class {k!r}") for k, v in classes.items()},
        )

    @classmethod
    def load(cls, path: Path) -> Speeds:
        """The speeds file at ``path``.

        Raises:
            InvalidInputError: the file is missing, is not YAML, or holds bad speeds.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"cannot read the speeds file {path}: {exc.strerror or exc}"
            raise InvalidInputError(msg) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            msg = f"{path} is not valid YAML: {exc}"
            raise InvalidInputError(msg) from None
        return cls.parse(data, str(path))


def _kmh(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"{where}: {value!r} is not a speed in km/h"
        raise InvalidInputError(msg)
    if not 0 < value <= MAX_KMH:
        msg = f"{where}: {value} km/h is outside (0, {MAX_KMH:g}]"
        raise InvalidInputError(msg)
    return float(value)
