"""``layers/floods.yaml``: the flood-extent process's defaults, what it lists as affected,
where the population comes from, and the gauges whose alarms run it.

The fields are described at the top of the shipped file; :func:`load` refuses a bad file
naming it and what is wrong. :class:`FloodSettings` (``SPATIAL_FLOOD_*``) says where the
file is and whether the API workers run the alarm triggers.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from spatial import yamlfile
from spatial.errors import ConfigurationError

SHIPPED = Path(__file__).resolve().parent.parent.parent / "layers" / "floods.yaml"
MAX_CLOSURE_HOURS = 24 * 14
"""The longest a flood's road closure lasts (a new reading or alarm makes a new one)."""
_ID = r"^[a-z][a-z0-9_]{0,62}$"


class FloodSettings(BaseSettings):
    """Where the flood configuration is and whether the alarm triggers run."""

    model_config = SettingsConfigDict(env_prefix="SPATIAL_FLOOD_", extra="ignore")

    config: Path | None = None
    """The floods YAML [default: the shipped ``layers/floods.yaml``]."""
    triggers: bool | None = None
    """Whether the API workers run the triggers [default: yes, except in the ``test``
    environment, where the demo's gauge above danger would close the demo's roads under
    every other test: a test runs them itself]."""
    every_s: float = Field(default=5.0, gt=0)
    """How often a worker looks for alarms to run a trigger for."""

    def runs_triggers(self, environment: str) -> bool:
        """Whether the triggers run in an instance of this environment."""
        return self.triggers if self.triggers is not None else environment != "test"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Affected(_Model):
    """A layer whose features inside the extent are listed."""

    collection: str = Field(pattern=_ID)
    title: str = Field(min_length=1, max_length=200)
    label: str | None = Field(default=None, max_length=63)
    """The property naming a feature [default: its key, or its number]."""
    measure: Literal["area_m2", "length_m"] | None = None
    """What is measured of each feature inside the extent (none: counted only)."""


class Districts(_Model):
    """The districts the population is counted by."""

    collection: str = Field(pattern=_ID)
    key: str = "code"
    name: str = "name"


class Population(_Model):
    """Where people live: a polygon layer with a number of residents per feature."""

    collection: str = Field(pattern=_ID)
    field: str = "residents"


class Trigger(_Model):
    """A gauge whose alarms at (or above) a level run the flood extent once each."""

    gauge: str = Field(min_length=1, max_length=100)
    at: str = Field(default="danger", min_length=1, max_length=40)
    """The alarm level (an alarm at a higher level runs it too)."""
    level: str | float | None = None
    """The water level flooded: a number, ``warning``, ``danger``, ``latest`` [default:
    the level of ``at``]."""
    close_roads: bool = False
    closure_hours: float = Field(default=12.0, gt=0, le=MAX_CLOSURE_HOURS)
    collection: str | None = Field(default=None, pattern=_ID)
    """Where the extent is written (the gauge's previous polygons replaced)."""


class Floods(_Model):
    """The whole file."""

    dem: str = Field(default="dem", pattern=_ID)
    gauges: str = Field(default="water_gauges", pattern=_ID)
    water_level: str = Field(default="Water level", min_length=1, max_length=200)
    """The observed property of the gauges' water-level datastreams."""
    rivers: str = Field(default="rivers", pattern=_ID)
    reach_m: float = Field(default=3000.0, gt=0, le=50_000)
    min_area_m2: float = Field(default=100.0, ge=0, le=1e7)
    network: str = Field(default="roads", min_length=1, max_length=63)
    districts: Districts | None = None
    population: Population | None = None
    affected: tuple[Affected, ...] = Field(default=(), max_length=50)
    triggers: tuple[Trigger, ...] = Field(default=(), max_length=200)

    @model_validator(mode="after")
    def _once(self) -> Floods:
        gauges = [(t.gauge, t.at) for t in self.triggers]
        twice = sorted({g for g in gauges if gauges.count(g) > 1})
        if twice:
            raise ValueError(f"the trigger of gauge {twice[0][0]!r} at {twice[0][1]!r} is "
                             "given twice")  # fmt: skip
        return self


def read(path: Path) -> Floods:
    """The configuration in ``path``.

    Raises:
        ConfigurationError: unreadable, or not a valid floods file (the message says where).
    """
    data = yamlfile.mapping(path, "flood configuration", "a mapping (dem, affected, ...)")
    try:
        return Floods.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        msg = f"flood configuration {path}: {where}: {first['msg']}"
        raise ConfigurationError(msg) from exc


@cache
def _cached(path: Path, stamp: float) -> Floods:
    return read(path)


def load(path: Path | None = None) -> Floods:
    """The configuration (``SPATIAL_FLOOD_CONFIG``, else the shipped file), read again
    when the file changed."""
    chosen = path or FloodSettings().config or SHIPPED
    try:
        stamp = chosen.stat().st_mtime
    except OSError as exc:
        msg = f"flood configuration {chosen}: {exc.strerror}"
        raise ConfigurationError(msg) from exc
    return _cached(chosen, stamp)
