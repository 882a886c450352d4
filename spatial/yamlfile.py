"""Configuration files in YAML (the maps' subsystems, the alarm rules): read whole, or
refused with a message naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from spatial.errors import ConfigurationError


def mapping(path: Path, what: str, expected: str) -> dict[str, Any]:
    """The mapping the YAML file ``path`` holds.

    Args:
        what: what the file is, for messages ("alarm rules").
        expected: what the mapping should hold, for the message when it is not one.

    Raises:
        ConfigurationError: unreadable, not YAML, or not a mapping.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        msg = f"{what} {path}: cannot be read as YAML: {exc}"
        raise ConfigurationError(msg) from exc
    if not isinstance(data, dict):
        msg = f"{what} {path}: expected {expected}"
        raise ConfigurationError(msg)
    return data
