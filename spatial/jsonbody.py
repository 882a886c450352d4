"""JSON from requests, read strictly: standard JSON only.

Python's reader also takes ``NaN``, ``Infinity`` and numbers past a double's range (as
infinity), none of which are JSON, and recurses once per level of nesting. Every body and
parameter the platform parses as JSON goes through :func:`loads`, which refuses all of
these with a message saying what was wrong.
"""

from __future__ import annotations

import json
import math
from typing import Any

from spatial.errors import InvalidInputError


def loads(data: bytes | str, what: str) -> Any:
    """The JSON value of ``data`` (``what`` names it in messages: "the body").

    Raises:
        InvalidInputError: not UTF-8, not JSON, a non-standard constant, a number out of
            range, or nesting too deep to read.
    """
    try:
        return json.loads(data, parse_constant=_constant, parse_float=_float)
    except RecursionError:
        msg = f"{what} is JSON nested too deeply to be read"
        raise InvalidInputError(msg) from None
    except UnicodeDecodeError as exc:
        msg = f"{what} is not UTF-8 text: {exc.reason} at byte {exc.start}"
        raise InvalidInputError(msg) from None
    except ValueError as exc:  # JSONDecodeError, and int() past 4,300 digits
        msg = f"{what} is not JSON: {exc}"
        raise InvalidInputError(msg) from None


def _constant(name: str) -> float:
    msg = f"{name} is not a JSON number (JSON has no NaN or infinity)"
    raise InvalidInputError(msg)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        msg = f"the number {text[:40]} is out of range"
        raise InvalidInputError(msg)
    return value
