"""Alarm rules: ``layers/alarms/<subsystem>.yaml`` read, checked and synced into the database.

One file per subsystem (named as its map: ``water.yaml``, ``environment.yaml``) holds its
rules; the fields are described at the top of the shipped ``water.yaml``. :func:`load`
checks every file and refuses a bad one naming the file, the rule and what is wrong.

:func:`sync` writes the rules into ``sta.alarm_rules`` and ``sta.alarm_levels``: each API
worker syncs at its start, and the demo loader when it loads the city. The rules live in
the database rather than in each process's memory so that an evaluation is one SQL
statement whatever process stores the readings (an API worker, the MQTT bridge, a
command) and all of them apply the same rules the moment they change, without each
reading the files (a process started from another checkout cannot disagree with the
others). A sync that changes the rules re-evaluates every datastream they concern, so
alarms follow a changed threshold (or clear when their rule is removed) without waiting
for the next reading. It also writes each rule's ``valid`` range into the ``properties``
of the datastreams it picks (``range: [min, max]``), which the observation store checks
readings against; new datastreams get it from a trigger (migration 0018).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from spatial import yamlfile
from spatial.errors import ConfigurationError
from spatial.sta.alarms import Event, evaluate

SHIPPED = Path(__file__).resolve().parent.parent.parent / "layers" / "alarms"
"""The shipped rules (package data of ``layers``)."""
_NAME = r"^[a-z][a-z0-9-]{0,39}$"
_WINDOW = re.compile(r"^\s*(\d+)\s*(min|h|d)\s*$")
_UNITS = {"min": 60, "h": 3600, "d": 86400}
MAX_WINDOW = dt.timedelta(days=31)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LevelIn(_Model):
    """One level of a rule as written in the YAML."""

    level: str = Field(pattern=_NAME)
    above: float | None = None
    attribute: str | None = Field(default=None, min_length=1, max_length=63)
    offset: float = 0.0
    alarm: bool = True

    @model_validator(mode="after")
    def _one_threshold(self) -> LevelIn:
        if self.above is not None and self.attribute is not None:
            msg = "give either 'above' (a fixed value) or 'attribute' (the feature's), not both"
            raise ValueError(msg)
        if self.offset and self.attribute is None:
            raise ValueError("'offset' is added to an 'attribute': give the attribute")
        return self


class RuleIn(_Model):
    """One rule as written in the YAML."""

    id: str = Field(pattern=_NAME)
    title: str = Field(min_length=1, max_length=200)
    observed_property: str = Field(min_length=1, max_length=200)
    collection: str | None = Field(default=None, min_length=1, max_length=63)
    window: str | None = None
    valid: tuple[float | None, float | None] | None = None
    levels: list[LevelIn] = Field(min_length=1, max_length=20)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            window(value)
        return value

    @model_validator(mode="after")
    def _levels(self) -> RuleIn:
        names = [lv.level for lv in self.levels]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"level {twice[0]!r} is given twice")
        for n, lv in enumerate(self.levels[1:], start=1):
            if lv.above is None and lv.attribute is None:
                msg = (f"level {lv.level!r} has no threshold ('above' or 'attribute'): only "
                       "the first level may have none (the band every reading is in)")  # fmt: skip
                raise ValueError(msg)
            if self.levels[n - 1].alarm and not lv.alarm:
                msg = (f"level {lv.level!r} is no alarm but the level below it is: levels "
                       "go up in severity")  # fmt: skip
                raise ValueError(msg)
        fixed = [(lv.level, lv.above) for lv in self.levels if lv.above is not None]
        for (low, a), (high, b) in itertools.pairwise(fixed):
            if b <= a:
                msg = f"level {high!r} starts above {b:g}, not above level {low!r} ({a:g})"
                raise ValueError(msg)
        if self.valid is not None:
            low_v, high_v = self.valid
            if low_v is not None and high_v is not None and low_v > high_v:
                raise ValueError(f"valid range [{low_v:g}, {high_v:g}]: min is above max")
        return self


class FileIn(_Model):
    """A subsystem's rules file."""

    rules: list[RuleIn] = Field(max_length=200)


def window(text: str) -> dt.timedelta:
    """A window as written in a rule: ``30min``, ``1h``, ``24h``, ``2d``.

    Raises:
        ValueError: not one of those forms, zero, or longer than 31 days.
    """
    found = _WINDOW.match(text)
    if found is None:
        msg = f"window {text!r}: write a whole number and min, h or d (e.g. 1h, 24h)"
        raise ValueError(msg)
    span = dt.timedelta(seconds=int(found[1]) * _UNITS[found[2]])
    if not dt.timedelta(0) < span <= MAX_WINDOW:
        raise ValueError(f"window {text!r}: from 1 min to {MAX_WINDOW.days} d")
    return span


@dataclass(frozen=True)
class Level:
    """A level of a rule (rank 1 is the lowest)."""

    rank: int
    level: str
    above: float | None
    attribute: str | None
    offset: float
    alarm: bool


@dataclass(frozen=True)
class Rule:
    """A rule as synced into ``sta.alarm_rules``."""

    subsystem: str
    rule: str
    title: str
    observed_property: str
    collection: str | None
    window: dt.timedelta | None
    valid: tuple[float | None, float | None] | None
    levels: tuple[Level, ...]
    position: int

    @property
    def id(self) -> str:
        """``<subsystem>/<rule>``."""
        return f"{self.subsystem}/{self.rule}"


def load(directory: Path | None = None) -> tuple[Rule, ...]:
    """Read and check every ``*.yaml`` file of ``directory`` (the shipped rules by default).

    Raises:
        ConfigurationError: a file that is not YAML or does not fit, naming the file, the
            rule and the field; a rule id given twice in a file.
    """
    folder = directory or SHIPPED
    rules: list[Rule] = []
    for path in sorted(folder.glob("*.yaml")):
        rules.extend(read(path))
    return tuple(rules)


def read(path: Path) -> tuple[Rule, ...]:
    """The rules of one file (its subsystem is the file's name).

    Raises:
        ConfigurationError: as :func:`load`.
    """
    if re.fullmatch(_NAME, path.stem) is None:
        msg = f"alarm rules {path}: the file's name is a subsystem id (lowercase, e.g. water)"
        raise ConfigurationError(msg)
    data = yamlfile.mapping(path, "alarm rules", "a mapping with 'rules' (a list of rules)")
    try:
        parsed = FileIn.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(_problems(path, data, exc)) from None
    ids = [r.id for r in parsed.rules]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        msg = f"alarm rules {path}: rule {twice[0]!r} is given twice"
        raise ConfigurationError(msg)
    return tuple(_rule(path.stem, n, r) for n, r in enumerate(parsed.rules))


def _problems(path: Path, data: dict[str, Any], exc: ValidationError) -> str:
    """What is wrong, each problem named by its rule (its id when it has one) and field."""
    said = []
    rules = data.get("rules")
    for error in exc.errors():
        loc = list(error["loc"])
        where = ".".join(str(p) for p in loc) or "(file)"
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            given = rules[loc[1]] if isinstance(rules, list) and loc[1] < len(rules) else None
            name = given.get("id") if isinstance(given, dict) else None
            rule = f"rule {name!r}" if isinstance(name, str) else f"rule {loc[1] + 1}"
            where = f"{rule}: " + (".".join(str(p) for p in loc[2:]) or "(rule)")
        message = str(error["msg"]).removeprefix("Value error, ")
        said.append(f"{where}: {message}")
    return f"alarm rules {path}: " + "; ".join(said)


def _rule(subsystem: str, position: int, given: RuleIn) -> Rule:
    levels = tuple(
        Level(n, lv.level, lv.above, lv.attribute, lv.offset, lv.alarm)
        for n, lv in enumerate(given.levels, start=1)
    )
    span = window(given.window) if given.window is not None else None
    return Rule(subsystem, given.id, given.title, given.observed_property, given.collection,
                span, given.valid, levels, position)  # fmt: skip


@dataclass(frozen=True)
class Synced:
    """What a sync did."""

    changed: bool
    """Whether the rules in the database changed."""
    rules: int
    ranged: int
    """Datastreams whose ``properties.range`` was set or changed."""
    events: tuple[Event, ...]
    """Alarms raised and cleared by re-evaluating after a change."""


_RULES = """
SELECT r.id, r.subsystem, r.rule, r.title, r.property, r.collection, r."window",
       r.valid_min, r.valid_max, r.position,
       coalesce((SELECT array_agg(ARRAY[lv.rank::text, lv.level, lv.above::text, lv.attribute,
                                        lv."offset"::text, lv.alarm::text] ORDER BY lv.rank)
                 FROM sta.alarm_levels lv WHERE lv.rule_id = r.id), '{}')
FROM sta.alarm_rules r ORDER BY r.id
"""

_RANGES = """
UPDATE sta.datastreams d
SET properties = coalesce(d.properties, '{}'::jsonb) || jsonb_build_object('range', m.range)
FROM (
    SELECT DISTINCT ON (d.id) d.id, jsonb_build_array(r.valid_min, r.valid_max) AS range
    FROM sta.datastreams d
    JOIN sta.observed_properties p ON p.id = d.observed_property_id
    JOIN sta.things t ON t.id = d.thing_id
    JOIN sta.alarm_rules r ON (lower(r.property) = lower(p.name) OR r.property = p.definition)
                          AND (r.collection IS NULL OR r.collection = t.collection)
    WHERE r.valid_min IS NOT NULL OR r.valid_max IS NOT NULL
    ORDER BY d.id, r.subsystem, r.position
) m
WHERE d.id = m.id AND d.properties -> 'range' IS DISTINCT FROM m.range
"""

_CONCERNED = """
SELECT d.id FROM sta.datastreams d
JOIN sta.observed_properties p ON p.id = d.observed_property_id
JOIN sta.things t ON t.id = d.thing_id
WHERE EXISTS (SELECT 1 FROM sta.alarm_rules r
              WHERE (lower(r.property) = lower(p.name) OR r.property = p.definition)
                AND (r.collection IS NULL OR r.collection = t.collection))
UNION SELECT datastream_id FROM sta.alarms WHERE state = 'active'
"""


def _stored(rule: Rule) -> tuple[Any, ...]:
    """A rule as :data:`_RULES` reads it back."""
    low, high = rule.valid or (None, None)
    levels = [[str(lv.rank), lv.level, _num(lv.above), lv.attribute, _num(lv.offset),
               str(lv.alarm).lower()] for lv in rule.levels]  # fmt: skip
    return (rule.id, rule.subsystem, rule.rule, rule.title, rule.observed_property,
            rule.collection, rule.window, low, high, rule.position, levels)  # fmt: skip


def _num(value: float | str | None) -> str | None:
    return None if value is None else str(float(value))


def _read_back(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """The rules in the database, in the form of :func:`_stored` (numbers of the levels as
    Python writes them, so that unchanged rules compare equal)."""
    found = []
    for *rule, levels in conn.execute(_RULES):
        said = [[rank, name, _num(above), attribute, _num(offset), alarm]
                for rank, name, above, attribute, offset, alarm in levels]  # fmt: skip
        found.append((*rule, said))
    return found


def sync(conn: psycopg.Connection[Any], rules: tuple[Rule, ...]) -> Synced:
    """Make the rules in the database these (in one transaction; workers that sync at
    once take turns), set the datastreams' plausible ranges, and when the rules changed
    re-evaluate the datastreams they concern (or concerned)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('spatial.sta.alarm_rules'))")
        wanted = sorted((_stored(r) for r in rules), key=lambda r: str(r[0]))
        changed = _read_back(conn) != wanted
        if changed:
            _write(conn, rules)
        concerned = [r[0] for r in conn.execute(_CONCERNED)] if changed else []
        # The datastreams locked first, in id order, as the observation store locks them:
        # a store under way and this sync wait for each other, never deadlock.
        conn.execute("SELECT 1 FROM sta.datastreams WHERE id = ANY(%s) ORDER BY id "
                     "FOR NO KEY UPDATE", (concerned,))  # fmt: skip
        ranged = conn.execute(_RANGES).rowcount
        events = evaluate(conn, concerned)
    return Synced(changed, len(rules), max(ranged, 0), tuple(events))


def _write(conn: psycopg.Connection[Any], rules: tuple[Rule, ...]) -> None:
    conn.execute("DELETE FROM sta.alarm_rules WHERE NOT id = ANY(%s)", ([r.id for r in rules],))
    conn.execute("DELETE FROM sta.alarm_levels")
    for r in rules:
        low, high = r.valid or (None, None)
        conn.execute(
            "INSERT INTO sta.alarm_rules (id, subsystem, rule, title, property, collection, "
            '"window", valid_min, valid_max, position) '
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
            "title = excluded.title, property = excluded.property, "
            'collection = excluded.collection, "window" = excluded."window", '
            "valid_min = excluded.valid_min, valid_max = excluded.valid_max, "
            "position = excluded.position",
            (r.id, r.subsystem, r.rule, r.title, r.observed_property, r.collection, r.window,
             low, high, r.position),
        )  # fmt: skip
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO sta.alarm_levels (rule_id, rank, level, above, attribute, "
                '"offset", alarm) VALUES (%s, %s, %s, %s, %s, %s, %s)',
                [(r.id, lv.rank, lv.level, lv.above, lv.attribute, lv.offset, lv.alarm)
                 for lv in r.levels],
            )  # fmt: skip


def install(conn: psycopg.Connection[Any], directory: Path | None = None) -> Synced:
    """Load the rules of ``directory`` (the shipped ones by default) and sync them.

    Raises:
        ConfigurationError: a bad rules file (nothing is synced).
    """
    return sync(conn, load(directory))
