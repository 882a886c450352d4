"""The inputs of a process (OGC API - Processes), checked: what is missing or of the wrong
kind is an :class:`~spatial.errors.InvalidInputError` naming the input."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from spatial.errors import InvalidInputError


def required(inputs: Mapping[str, Any], name: str) -> Any:
    """The input ``name``, which must be given (and not null)."""
    if name not in inputs or inputs[name] is None:
        msg = f"input {name!r} is required"
        raise InvalidInputError(msg)
    return inputs[name]


def number(
    inputs: Mapping[str, Any], name: str, low: float, high: float, default: float | None = None
) -> float:
    """A number from ``low`` to ``high``; ``default`` when absent (required when None)."""
    value = inputs.get(name, default)
    if value is None:
        return float(required(inputs, name))
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        msg = f"input {name!r} must be a number from {low:g} to {high:g}, not {json.dumps(value)}"
        raise InvalidInputError(msg)
    return float(value)


def text(inputs: Mapping[str, Any], name: str, default: str | None = None) -> str | None:
    """A non-empty string, or ``default`` when absent."""
    value = inputs.get(name, default)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        msg = f"input {name!r} must be a non-empty string"
        raise InvalidInputError(msg)
    return value
