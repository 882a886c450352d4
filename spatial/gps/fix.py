"""What every GPS decoder produces: fixes, and the reasons input was rejected.

A decoder (NMEA 0183, OsmAnd/Traccar HTTP, OwnTracks JSON, GPX, CSV, GeoJSON) turns bytes
into :class:`Decoded`: the fixes it could read and a :class:`Reject` for everything it
could not, each with a reason from :data:`REASONS`. Decoders never raise on bad input
and never store anything; validation against the device's history (jumps, duplicates,
clock skew) and storage happen afterwards, the same for every source.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEVICE_ID = "[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,63}"
"""What a device id may be, whole (``re.fullmatch``): the registry refuses anything else,
and a fix naming another id is ``malformed``."""

REASONS = (
    "malformed",  # not a sentence/record of the protocol, or a field that does not parse
    "checksum",  # an NMEA checksum that does not match
    "no_fix",  # the receiver says it has no fix (RMC status V, GGA quality 0)
    "low_quality",  # a fix too poor to keep (e.g. HDOP above the limit)
    "zero_position",  # exactly (0, 0): a receiver's default, not a place
    "out_of_range",  # latitude beyond ±90 or longitude beyond ±180
    "no_time",  # no usable timestamp (e.g. GGA before any date is known)
    "future",  # a timestamp further in the future than the allowed clock skew
    "jump",  # implied speed from the previous fix above the configured maximum
    "duplicate",  # the same device and time as a stored fix (idempotent: not an error)
    "unknown_device",  # a device that is not registered (and auto-registration is off)
)
"""Every reason a fix or a piece of input is rejected, counted per device."""


@dataclass(slots=True)
class Fix:
    """One position of one device at one instant.

    Not frozen: a batch makes thousands, and a frozen dataclass costs five times as much
    to build. Nothing changes a fix after its decoder made it."""

    time: dt.datetime
    """UTC, timezone-aware."""
    lon: float
    lat: float
    device: str | None = None
    """The device id when the input names it (OsmAnd ``id``, OwnTracks topic, GPX track)."""
    altitude: float | None = None
    """Metres above mean sea level."""
    speed: float | None = None
    """Metres per second."""
    course: float | None = None
    """Degrees clockwise from true north."""
    hdop: float | None = None
    satellites: int | None = None
    accuracy: float | None = None
    """Horizontal accuracy in metres, when the device reports one."""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    """Anything else the device sent (battery, ignition, ...)."""


@dataclass(frozen=True)
class Reject:
    """Input that did not become a fix, and why."""

    reason: str
    """One of :data:`REASONS`."""
    detail: str
    line: int | None = None
    """1-based line (or record) number in the input, when it has lines."""
    device: str | None = None


@dataclass
class Decoded:
    """What a decoder read: fixes in input order, and rejects."""

    fixes: list[Fix] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Rejects by reason."""
        return dict(Counter(r.reason for r in self.rejects))
