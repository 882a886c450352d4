"""SensorThings writes: create (with deep insert and links), update (PATCH, PUT, JSON
Patch) and delete of every entity set, and the DataArray batch of Observations.

- A body is read strictly: a property of another type, an unknown one, a missing required
  one (SensorThings 1.1), bad GeoJSON (or coordinates that are not lon/lat), a NUL
  character, or a link to an entity the caller cannot see is a 400 naming the property.
  A deep insert is one transaction: all of it is written, or nothing.
- A nested object carrying ``@iot.id`` is a link to that entity, whatever else it holds
  (clients send linked entities whole); one without is a new entity.
- Observations go through :func:`spatial.sta.observations.store` (the one path of every
  reading); a refused reading is a 400 (a DataArray answers ``"error ..."`` in its place
  and stores the rest), its reason counted in ``sta.rejects``.
- Who may write (:class:`Author`): a signed-in admin, or an editor or steward of the
  entity's department; a new entity is the caller's department's. A Thing from a station
  collection (and its Datastreams, Observations, HistoricalLocations) is writable by whoever
  may write that collection; its name, description and Location follow the collection
  (:mod:`spatial.sta.things`) and are not edited here (400), but Datastreams may be added.
- Every create, update and delete of an entity other than an Observation is audited
  (``sta-create``, ``sta-update``, ``sta-delete``, with the entity and its id).
- Deletes cascade as the data model says: a Thing takes its Datastreams and
  HistoricalLocations, a Sensor or an ObservedProperty its Datastreams, a Datastream or a
  FeatureOfInterest its Observations (deleted explicitly: the partitioned table has no
  foreign keys), a Location the HistoricalLocations left without one.
- A change to a Thing's Locations records a HistoricalLocation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from spatial.audit import Actor, record
from spatial.errors import (
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    TooLargeError,
    UnauthorizedError,
)
from spatial.settings import SensorThingsSettings
from spatial.sta import bodies, observations
from spatial.sta.entities import SETS
from spatial.sta.observations import Reading, Reject
from spatial.sta.scope import Scope

MAX_ENTITIES = 1_000
"""The most entities one deep insert may create (Observations included)."""
MAX_NESTING = 8
"""How deeply a deep insert may nest entities (a Thing's Datastream's Observation's
FeatureOfInterest is 3)."""
IGNORED = frozenset({"@iot.selfLink", "observedArea", "phenomenonTime", "resultTime"})
"""Properties a client may send back as it read them, which the server keeps itself (a
Datastream's time ranges and observed area come from its Observations)."""
_NAV_LINK = re.compile(r"[A-Za-z]+@iot\.navigationLink")


@dataclass(frozen=True)
class Author:
    """Who writes, and what they may write.

    Attributes:
        scope: what they may read (a link must name an entity they can see).
        actor: who the audit log records.
        signed_in: they presented a key or a token.
        department: their department (a new entity is its).
        admin: they hold the admin role.
        member: they are an editor or a steward (of their department's entities).
        collections: the station collections they may write.
    """

    scope: Scope
    actor: Actor
    signed_in: bool = False
    department: str | None = None
    admin: bool = False
    member: bool = False
    collections: frozenset[str] = frozenset()

    def may(self, department: str | None, collection: str | None) -> bool:
        """Whether they may write an entity of ``department`` (or from ``collection``)."""
        if self.admin:
            return True
        if collection is not None:
            return collection in self.collections
        return self.member and department is not None and department == self.department

    def need(self, what: str) -> None:
        """Refuse an anonymous caller, or one who may create nothing.

        Raises:
            UnauthorizedError: anonymous. ForbiddenError: not an admin, editor or steward.
        """
        if not self.signed_in:
            msg = f"{what} needs a key or a token (Authorization: Bearer ..., or Basic)"
            raise UnauthorizedError(msg)
        if not self.admin and not (self.member and self.department):
            msg = f"{self.actor.name} may not {what} (editors and stewards of a department may)"
            raise ForbiddenError(msg)


NAVS: dict[str, dict[str, str]] = {
    "Things": {"Locations": "many", "Datastreams": "new", "HistoricalLocations": "new"},
    "Locations": {"Things": "many"},
    "HistoricalLocations": {"Thing": "one", "Locations": "many"},
    "Sensors": {"Datastreams": "new"},
    "ObservedProperties": {"Datastreams": "new"},
    "Datastreams": {"Thing": "one", "Sensor": "one", "ObservedProperty": "one",
                    "Observations": "new"},
    "FeaturesOfInterest": {"Observations": "new"},
    "Observations": {"Datastream": "one", "FeatureOfInterest": "one"},
}  # fmt: skip
"""What a body may hold of each navigation property: ``one`` entity (new or a link),
``many`` (new or links), ``new`` entities only (linking would move them)."""
OBSERVATION = frozenset({"phenomenonTime", "resultTime", "result", "resultQuality",
                         "validTime", "parameters"})  # fmt: skip


# -- who may write what ------------------------------------------------------------------

_OWNER = {
    "Things": "SELECT e.department, e.collection, NULL FROM sta.things e",
    "Locations": "SELECT e.department, e.collection, NULL FROM sta.locations e",
    "HistoricalLocations": "SELECT t.department, t.collection, NULL "
    "FROM sta.historical_locations e JOIN sta.things t ON t.id = e.thing_id",
    "Datastreams": "SELECT t.department, t.collection, e.department "
    "FROM sta.datastreams e JOIN sta.things t ON t.id = e.thing_id",
    "Observations": "SELECT t.department, t.collection, d.department, d.id "
    "FROM sta.observations e JOIN sta.datastreams d ON d.id = e.datastream_id "
    "JOIN sta.things t ON t.id = d.thing_id",
    "Sensors": "SELECT e.department, NULL, NULL FROM sta.sensors e",
    "ObservedProperties": "SELECT e.department, NULL, NULL FROM sta.observed_properties e",
    "FeaturesOfInterest": "SELECT e.department, NULL, NULL FROM sta.features e",
}
"""Whose an entity is: (department, collection) of what decides (a Thing's for what hangs
off it), and the entity's own department (a Datastream's makers keep it writable)."""


@dataclass
class Job:
    """One write: its connection, author, limits, and what it made."""

    conn: psycopg.Connection[Any]
    author: Author
    settings: SensorThingsSettings
    made: int = 0
    rejects: list[Reject] = field(default_factory=list)


def _owner(job: Job, entity_set: str, entity_id: Any, *, write: bool, where: str | None
           ) -> tuple[Any, ...]:  # fmt: skip
    """(department, collection, own department, ...) of an entity the author can see; for
    ``write``, one they may write.

    Args:
        where: the property linking it (its absence is then a 400 naming it), or None for
            the entity a path names (404).

    Raises:
        NotFoundError, InvalidInputError: no such entity the author can see.
        ForbiddenError: they may not write it.
    """
    singular = SETS[entity_set].singular
    if type(entity_id) is not int or not 0 < entity_id < 2**63:
        shown = json.dumps(entity_id)[:40]
        raise InvalidInputError(f"{where or singular}: @iot.id {shown} is not an entity id")
    query = sql.SQL(_OWNER[entity_set]) + sql.SQL(" WHERE e.id = {} AND {}").format(
        sql.Literal(entity_id), job.author.scope.entity(entity_set, "e"))  # fmt: skip
    row = job.conn.execute(query).fetchone()
    if row is None:
        if where is None:
            raise NotFoundError(f"no {singular}({entity_id})")
        raise InvalidInputError(f"{where}: no {singular}({entity_id})")
    author = job.author
    if write and not (author.may(row[0], row[1]) or (row[2] and author.may(row[2], None))):
        msg = f"{author.actor.name} may not change {singular}({entity_id})"
        if row[1] is not None:
            msg += f" (it is a feature of {row[1]!r}: its writers may)"
        raise ForbiddenError(msg)
    return tuple(row)


def _audit(job: Job, verb: str, entity_set: str, entity_id: int, **details: Any) -> None:
    record(job.conn, job.author.actor, f"sta-{verb}", feature_ids=[f"{entity_set}({entity_id})"],
           details={"entity": entity_set, "id": entity_id, **details})  # fmt: skip


# -- create ------------------------------------------------------------------------------


def _ignored(entity_set: str, key: str) -> bool:
    return (key == "@iot.selfLink" or bool(_NAV_LINK.fullmatch(key))
            or (entity_set == "Datastreams" and key in IGNORED))  # fmt: skip


def _own(entity_set: str, body: dict[str, Any], where: str, *, full: bool
         ) -> dict[str, Any]:  # fmt: skip
    """The columns of an entity's own properties in ``body`` (all the required ones when
    ``full``: a create or a PUT).

    Raises:
        InvalidInputError: a property of the wrong type, unknown, or missing.
    """
    fields, navs = bodies.FIELDS[entity_set], NAVS[entity_set]
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key in fields:
            column, check = fields[key]
            if value is None and key not in bodies.DEFAULTS:
                raise InvalidInputError(f"{where}.{key} may not be null")
            values[column] = check(value, f"{where}.{key}")
        elif key not in navs and key != "@iot.id" and not _ignored(entity_set, key):
            known = ", ".join([*fields, *navs])
            raise InvalidInputError(f"{where}: unknown property {key[:60]!r} (known: {known})")
    if full:
        for key in SETS[entity_set].required:
            if key not in body and key in fields:
                if key in bodies.DEFAULTS:
                    values[fields[key][0]] = bodies.DEFAULTS[key]
                    continue
                raise InvalidInputError(f"{where}.{key} is required")
        for key, default in bodies.DEFAULTS.items():
            if key in fields and fields[key][0] not in values:
                values[fields[key][0]] = default
    return values


def _insert(job: Job, entity_set: str, values: dict[str, Any]) -> int:
    if entity_set != "HistoricalLocations":  # the one set without a department: its Thing's
        values = {**values, "department": job.author.department}
    marks = [sql.SQL("ST_GeomFromWKB({}, 4326)" if c == "geom" else "{}").format(
        sql.Placeholder(c)) for c in values]  # fmt: skip
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
        sql.Identifier("sta", SETS[entity_set].table),
        sql.SQL(", ").join(map(sql.Identifier, values)), sql.SQL(", ").join(marks))  # fmt: skip
    row = job.conn.execute(query, values).fetchone()
    assert row is not None  # noqa: S101 - INSERT ... RETURNING returns the row
    return int(row[0])


def _is_link(value: Any) -> bool:
    return isinstance(value, dict) and "@iot.id" in value


def _one(job: Job, target: str, value: Any, where: str, *, write: bool = False) -> int:
    """The id of a to-one navigation's entity: linked (it must exist and be seen, or be
    writable), or created."""
    if _is_link(value):
        _owner(job, target, value["@iot.id"], write=write, where=where)
        return int(value["@iot.id"])
    return _create(job, target, value, where)


def _many(job: Job, target: str, value: Any, where: str, *, links: bool,
          write: bool = False, parent: dict[str, int] | None = None) -> list[int]:  # fmt: skip
    if not isinstance(value, list):
        raise InvalidInputError(f"{where} must be an array, not {bodies.kind(value)}")
    ids = []
    for n, item in enumerate(value):
        if _is_link(item) and not links:
            msg = f"{where}[{n}]: an existing {SETS[target].singular} cannot be moved here"
            raise InvalidInputError(msg)
        if _is_link(item):
            _owner(job, target, item["@iot.id"], write=write, where=f"{where}[{n}]")
            ids.append(int(item["@iot.id"]))
        else:
            ids.append(_create(job, target, item, f"{where}[{n}]", parent))
    return ids


_PARENTS = {"Datastreams": {"Thing": ("thing_id", "Things", True),
                            "Sensor": ("sensor_id", "Sensors", False),
                            "ObservedProperty": ("observed_property_id", "ObservedProperties",
                                                 False)},
            "HistoricalLocations": {"Thing": ("thing_id", "Things", True)}}  # fmt: skip
"""The to-one navigations a row holds: (column, entity set, must be writable)."""


def _create(job: Job, entity_set: str, body: Any, where: str,
            parent: dict[str, int] | None = None) -> int:  # fmt: skip
    """Create an entity (and what it holds); its id."""
    if not isinstance(body, dict):
        raise InvalidInputError(f"{where} must be a JSON object, not {bodies.kind(body)}")
    job.made += 1
    if job.made > MAX_ENTITIES:
        raise TooLargeError(f"a create may make at most {MAX_ENTITIES} entities")
    if entity_set == "Observations":
        return _observation(job, body, where, parent or {})
    values = _own(entity_set, body, where, full=True)
    for name, (column, target, write) in _PARENTS.get(entity_set, {}).items():
        if parent and column in parent:
            if name in body:
                raise InvalidInputError(f"{where}.{name} is given by the path already")
            values[column] = parent[column]
        elif name not in body:
            raise InvalidInputError(f"{where}.{name} is required")
        else:
            values[column] = _one(job, target, body[name], f"{where}.{name}", write=write)
    if entity_set == "HistoricalLocations" and "time" not in values:
        raise InvalidInputError(f"{where}.time is required")
    new = _insert(job, entity_set, values)
    _audit(job, "create", entity_set, new)
    _children(job, entity_set, new, body, where)
    return new


def _children(job: Job, entity_set: str, new: int, body: dict[str, Any], where: str) -> None:
    """The to-many navigations of a new entity: new entities made under it, links."""
    conn = job.conn
    for name, how in NAVS[entity_set].items():
        if name not in body or how == "one":
            continue
        nav = SETS[entity_set].nav(name)
        assert nav is not None  # noqa: S101 - NAVS names navigations of entities.SETS
        at = f"{where}.{name}"
        if nav.how == "child":
            _many(job, nav.target, body[name], at, links=False, parent={nav.column: new})
        elif entity_set == "Things":  # Locations
            located = _many(job, "Locations", body[name], at, links=True)
            _locate(job, new, located)
        elif entity_set == "Locations":  # Things
            for thing in _many(job, "Things", body[name], at, links=True, write=True):
                conn.execute("INSERT INTO sta.things_locations VALUES (%s, %s) "
                             "ON CONFLICT DO NOTHING", (thing, new))  # fmt: skip
                _history(job, thing)
        else:  # a HistoricalLocation's Locations
            for location in _many(job, "Locations", body[name], at, links=True):
                conn.execute("INSERT INTO sta.historical_locations_locations VALUES (%s, %s) "
                             "ON CONFLICT DO NOTHING", (new, location))  # fmt: skip


def _locate(job: Job, thing: int, locations: Sequence[int]) -> None:
    """Make ``locations`` the Thing's Locations, recording a HistoricalLocation."""
    job.conn.execute("DELETE FROM sta.things_locations WHERE thing_id = %s", (thing,))
    job.conn.execute("INSERT INTO sta.things_locations SELECT %s, unnest(%s::bigint[]) "
                     "ON CONFLICT DO NOTHING", (thing, list(locations)))  # fmt: skip
    _history(job, thing)


def _history(job: Job, thing: int) -> None:
    """A HistoricalLocation of the Thing at its Locations now."""
    job.conn.execute(
        "WITH h AS (INSERT INTO sta.historical_locations (thing_id) VALUES (%(t)s) "
        "RETURNING id) INSERT INTO sta.historical_locations_locations "
        "SELECT h.id, tl.location_id FROM h, sta.things_locations tl WHERE tl.thing_id = %(t)s",
        {"t": thing},
    )  # fmt: skip


def reading(body: Any, where: str, datastream: Any, feature: Any) -> Reading:
    """An Observation's body as a :class:`Reading` (its values checked by the store).

    Raises:
        InvalidInputError: not an object, an unknown property, no result.
    """
    if not isinstance(body, dict):
        raise InvalidInputError(f"{where} must be a JSON object, not {bodies.kind(body)}")
    for key in body:
        if key not in OBSERVATION and key not in NAVS["Observations"] and key != "@iot.id" \
                and not _ignored("Observations", key):  # fmt: skip
            known = ", ".join([*sorted(OBSERVATION), *NAVS["Observations"]])
            raise InvalidInputError(f"{where}: unknown property {key[:60]!r} (known: {known})")
    if "result" not in body:
        raise InvalidInputError(f"{where}.result is required")
    return Reading(datastream, body.get("phenomenonTime"), body["result"],
                   body.get("resultTime"), body.get("resultQuality"), body.get("validTime"),
                   body.get("parameters"), feature)  # fmt: skip


def _observation(job: Job, body: dict[str, Any], where: str, parent: dict[str, int]) -> int:
    if "datastream_id" in parent:
        if "Datastream" in body:
            raise InvalidInputError(f"{where}.Datastream is given by the path already")
        datastream = parent["datastream_id"]
    elif "Datastream" not in body:
        raise InvalidInputError(f"{where}.Datastream is required")
    else:
        datastream = _one(job, "Datastreams", body["Datastream"], f"{where}.Datastream",
                          write=True)  # fmt: skip
    feature: int | None = parent.get("feature_id")
    if "FeatureOfInterest" in body:
        if feature is not None:
            raise InvalidInputError(f"{where}.FeatureOfInterest is given by the path already")
        feature = _one(job, "FeaturesOfInterest", body["FeatureOfInterest"],
                       f"{where}.FeatureOfInterest")  # fmt: skip
    stored = observations.store(job.conn, [reading(body, where, datastream, feature)],
                                settings=job.settings)  # fmt: skip
    new = stored.ids[0]
    if new is None:
        job.rejects.extend(stored.rejects)
        raise InvalidInputError(f"{where}: {stored.error(0) or 'refused'}")
    return new


def create(
    conn: psycopg.Connection[Any], author: Author, entity_set: str, body: Any, *,
    settings: SensorThingsSettings, parent: tuple[str, int, str] | None = None,
) -> int:  # fmt: skip
    """Create an entity with what its body holds (deep insert), in one transaction; its id.

    Args:
        entity_set: a name of :data:`spatial.sta.entities.SETS`.
        parent: the entity a navigation path names and how the new one hangs off it
            (``("Things", 5, "Datastreams")`` for ``Things(5)/Datastreams``).

    Raises:
        InvalidInputError: a bad body (nothing is written; refused readings are counted).
        NotFoundError: the path's parent does not exist for the author.
        UnauthorizedError, ForbiddenError: the author may not write it.
    """
    author.need(f"create {entity_set}")
    job = Job(conn, author, settings)
    where = SETS[entity_set].singular
    if _entities(body) > MAX_ENTITIES:
        raise TooLargeError(f"a create may make at most {MAX_ENTITIES} entities")
    if isinstance(body, dict) and "@iot.id" in body:
        raise InvalidInputError(f"{where}.@iot.id: the server gives new entities their ids")
    try:
        with conn.transaction():
            if parent is None:
                return _create(job, entity_set, body, where)
            return _nested(job, parent, body, where)
    except InvalidInputError:
        if job.rejects:  # the write was rolled back; its refused readings still count
            with conn.transaction():
                observations.count_rejects(conn, job.rejects)
        raise


def _entities(body: Any, depth: int = 0) -> int:
    """How many entities a body holds (navigation properties are capitalised).

    Raises:
        InvalidInputError: entities nested more than :data:`MAX_NESTING` deep.
    """
    if depth > MAX_NESTING:
        raise InvalidInputError(f"entities nested more than {MAX_NESTING} deep")
    if not isinstance(body, dict):
        return 1
    count = 1
    for key, value in body.items():
        if key[:1].isupper():
            for item in value if isinstance(value, list) else [value]:
                count += _entities(item, depth + 1)
    return count


def _nested(job: Job, parent: tuple[str, int, str], body: Any, where: str) -> int:
    """Create under the entity a path names (``Things(5)/Datastreams``)."""
    owner_set, owner_id, name = parent
    nav = SETS[owner_set].nav(name)
    if nav is None or not nav.many or (nav.how != "child" and (owner_set, name) != (
            "Things", "Locations")):  # fmt: skip
        raise InvalidInputError(f"{owner_set}({owner_id})/{name}: nothing can be created there")
    _owner(job, owner_set, owner_id, write=owner_set in {"Things", "Datastreams"}, where=None)
    if nav.how == "child":
        return _create(job, nav.target, body, where, {nav.column: owner_id})
    _thing_editable(job, owner_id, {"Locations"})
    location = _create(job, "Locations", body, where)
    job.conn.execute("INSERT INTO sta.things_locations VALUES (%s, %s)", (owner_id, location))
    _history(job, owner_id)
    return location


def _thing_editable(job: Job, thing: int, keys: set[str]) -> None:
    """Refuse changing what a Thing from a collection takes from its feature.

    Raises:
        InvalidInputError: naming the collection.
    """
    row = job.conn.execute("SELECT collection FROM sta.things WHERE id = %s", (thing,)).fetchone()
    taken = keys & {"name", "description", "Locations"}
    if row is not None and row[0] is not None and taken:
        msg = (f"Thing({thing}) is a feature of the collection {row[0]!r}: its "
               f"{', '.join(sorted(taken))} come from there (edit the feature)")  # fmt: skip
        raise InvalidInputError(msg)


# -- update ------------------------------------------------------------------------------


def update(
    conn: psycopg.Connection[Any], author: Author, entity_set: str, entity_id: int, body: Any,
    *, settings: SensorThingsSettings, how: str = "merge",
) -> None:  # fmt: skip
    """Change an entity, in one transaction.

    Args:
        how: ``merge`` (PATCH: the properties given replace theirs; ``properties`` is
            merged as a JSON Merge Patch, RFC 7396, a null removing a key), ``replace``
            (PUT: the whole entity; what is left out is reset) or ``json-patch`` (a JSON
            Patch, RFC 6902, on the entity's own properties).

    Raises:
        InvalidInputError: a bad body (nothing is changed).
        NotFoundError: no such entity for the author. ForbiddenError: not theirs to write.
    """
    author.need(f"change {entity_set}")
    job = Job(conn, author, settings)
    where = f"{SETS[entity_set].singular}({entity_id})"
    try:
        with conn.transaction():
            owner = _owner(job, entity_set, entity_id, write=True, where=None)
            current = _current(job, entity_set, entity_id)
            merge = how == "merge"
            if how == "json-patch":
                body = bodies.patched(current, body, where)
            if not isinstance(body, dict):
                raise InvalidInputError(f"{where}: the body must be a JSON object")
            if body.get("@iot.id", entity_id) != entity_id:
                raise InvalidInputError(f"{where}.@iot.id: an entity's id cannot change")
            if entity_set == "Observations":
                _change_observation(job, entity_id, datastream=owner[3], current=current,
                                    body=body, merge=merge, where=where)  # fmt: skip
            else:
                _change(job, entity_set, entity_id, owner=owner, current=current, body=body,
                        how=how, where=where)  # fmt: skip
    except InvalidInputError:
        if job.rejects:  # the write was rolled back; its refused readings still count
            with conn.transaction():
                observations.count_rejects(conn, job.rejects)
        raise


def _current(job: Job, entity_set: str, entity_id: int) -> dict[str, Any]:
    """An entity's own properties as JSON (what a JSON Patch applies to)."""
    if entity_set == "Observations":
        columns = ["phenomenonTime", "resultTime", "result", "resultQuality", "validTime",
                   "parameters", "FeatureOfInterest"]  # fmt: skip
        query = sql.SQL(
            "SELECT CASE WHEN phenomenon_end IS NULL THEN to_jsonb(phenomenon_start) "
            "ELSE to_jsonb(phenomenon_start::text || '/' || phenomenon_end::text) END, "
            "to_jsonb(result_time), coalesce(to_jsonb(result_number), result_json), "
            "result_quality, CASE WHEN valid_start IS NULL THEN NULL ELSE "
            "to_jsonb(valid_start::text || '/' || valid_end::text) END, parameters, "
            "jsonb_build_object('@iot.id', feature_id) FROM sta.observations WHERE id = {}"
        ).format(sql.Literal(entity_id))  # fmt: skip
    else:
        fields = bodies.FIELDS[entity_set]
        columns = list(fields)
        query = sql.SQL("SELECT {} FROM {} WHERE id = {}").format(
            sql.SQL(", ").join(
                sql.SQL("ST_AsGeoJSON(geom, 9)::jsonb" if c == "geom" else "to_jsonb({})")
                .format(sql.Identifier(c)) for c, _ in fields.values()),
            sql.Identifier("sta", SETS[entity_set].table), sql.Literal(entity_id))  # fmt: skip
    row = job.conn.execute(query).fetchone()
    if row is None:
        raise NotFoundError(f"no {SETS[entity_set].singular}({entity_id})")
    return dict(zip(columns, row, strict=True))


def _change(
    job: Job, entity_set: str, entity_id: int, *, owner: tuple[Any, ...],
    current: dict[str, Any], body: dict[str, Any], how: str, where: str,
) -> None:  # fmt: skip
    """Update an entity other than an Observation."""
    if owner[1] is not None and entity_set in {"Things", "Locations"}:
        changed = {k for k, v in body.items() if k in current and current[k] != v}
        taken = sorted(changed & _FOLLOWED | {"Locations"} & set(body))
        if taken:
            msg = (f"{where} is a feature of the collection {owner[1]!r}: its "
                   f"{', '.join(taken)} come from there (edit the feature)")  # fmt: skip
            raise InvalidInputError(msg)
    values = _own(entity_set, body, where, full=how == "replace")
    given = body.get("properties")
    if how == "merge" and isinstance(given, dict):
        values["properties"] = Jsonb(bodies.merge(current.get("properties"), given))
    for name, (column, target, write) in _PARENTS.get(entity_set, {}).items():
        if name in body:
            values[column] = _one(job, target, body[name], f"{where}.{name}", write=write)
    for name in set(body) & set(NAVS[entity_set]) - set(_PARENTS.get(entity_set, {})):
        if (entity_set, name) != ("Things", "Locations"):
            msg = f"{where}.{name}: change those entities themselves, or create them under it"
            raise InvalidInputError(msg)
        _locate(job, entity_id, _many(job, "Locations", body[name], f"{where}.{name}",
                                      links=True))  # fmt: skip
    if values:
        assignments = [sql.SQL("{} = " + ("ST_GeomFromWKB({}, 4326)" if c == "geom" else "{}"))
                       .format(sql.Identifier(c), sql.Placeholder(c)) for c in values]  # fmt: skip
        job.conn.execute(sql.SQL("UPDATE {} SET {} WHERE id = {}").format(
            sql.Identifier("sta", SETS[entity_set].table), sql.SQL(", ").join(assignments),
            sql.Literal(entity_id)), values)  # fmt: skip
    if "geom" in values and entity_set == "Locations":
        _moved(job, entity_id)
    _audit(job, "update", entity_set, entity_id, fields=sorted(set(body) - {"@iot.id"}))


_FOLLOWED = frozenset({"name", "description", "location", "encodingType"})
"""What a Thing or Location of a station collection takes from its feature."""


def _moved(job: Job, location: int) -> None:
    """A Location moved: the FeatureOfInterest made of it moves, and its Things get a
    HistoricalLocation."""
    job.conn.execute("UPDATE sta.features f SET geom = l.geom FROM sta.locations l "
                     "WHERE l.id = %s AND f.location_id = l.id", (location,))  # fmt: skip
    things = job.conn.execute("SELECT thing_id FROM sta.things_locations WHERE location_id = %s",
                              (location,)).fetchall()  # fmt: skip
    for (thing,) in things:
        _history(job, thing)


def _change_observation(job: Job, entity_id: int, *, datastream: int,
                        current: dict[str, Any], body: dict[str, Any], merge: bool,
                        where: str) -> None:  # fmt: skip
    if _is_link(body.get("Datastream")) and body["Datastream"]["@iot.id"] != datastream:
        raise InvalidInputError(f"{where}.Datastream: an Observation stays in its Datastream")
    given = {k: v for k, v in body.items() if k != "Datastream"}
    values = {**current, **given} if merge else dict(given)
    feature = None
    if "FeatureOfInterest" in values:
        feature = _one(job, "FeaturesOfInterest", values.pop("FeatureOfInterest"),
                       f"{where}.FeatureOfInterest")  # fmt: skip
    new = reading(values, where, datastream, feature)
    stored = observations.replace(job.conn, entity_id, new, settings=job.settings)
    if stored.ids[0] is None:
        job.rejects.extend(stored.rejects)
        raise InvalidInputError(f"{where}: {stored.error(0) or 'refused'}")


# -- delete ------------------------------------------------------------------------------

_STREAMS_OF = {"Things": "thing_id", "Sensors": "sensor_id",
               "ObservedProperties": "observed_property_id", "Datastreams": "id"}  # fmt: skip


def delete(conn: psycopg.Connection[Any], author: Author, entity_set: str, entity_id: int,
           *, settings: SensorThingsSettings) -> None:  # fmt: skip
    """Delete an entity and what the data model deletes with it, in one transaction.

    Raises:
        NotFoundError: no such entity for the author. ForbiddenError: not theirs to write.
        InvalidInputError: a Thing or Location of a station collection (it follows its
            feature).
    """
    author.need(f"delete {entity_set}")
    job = Job(conn, author, settings)
    where = f"{SETS[entity_set].singular}({entity_id})"
    with conn.transaction():
        owner = _owner(job, entity_set, entity_id, write=True, where=None)
        if owner[1] is not None and entity_set in {"Things", "Locations"}:
            msg = f"{where} is a feature of the collection {owner[1]!r}: delete the feature there"
            raise InvalidInputError(msg)
        table = sql.Identifier("sta", SETS[entity_set].table)
        if entity_set == "Observations":
            conn.execute("DELETE FROM sta.observations WHERE id = %s", (entity_id,))
            observations.refresh(conn, [owner[3]])
            return
        if entity_set in _STREAMS_OF:
            conn.execute(sql.SQL(
                "DELETE FROM sta.observations WHERE datastream_id = ANY(ARRAY("
                "SELECT id FROM sta.datastreams WHERE {} = {}))").format(
                sql.Identifier(_STREAMS_OF[entity_set]), sql.Literal(entity_id)))  # fmt: skip
        affected: list[int] = []
        if entity_set == "FeaturesOfInterest":
            rows = conn.execute("DELETE FROM sta.observations WHERE feature_id = %s "
                                "RETURNING datastream_id", (entity_id,)).fetchall()  # fmt: skip
            affected = sorted({r[0] for r in rows})
        histories = conn.execute(
            "SELECT historical_location_id FROM sta.historical_locations_locations "
            "WHERE location_id = %s", (entity_id if entity_set == "Locations" else -1,),
        ).fetchall()  # fmt: skip
        conn.execute(sql.SQL("DELETE FROM {} WHERE id = {}").format(table, sql.Literal(entity_id)))
        if histories:
            conn.execute(
                "DELETE FROM sta.historical_locations h WHERE h.id = ANY(%s) AND NOT EXISTS "
                "(SELECT 1 FROM sta.historical_locations_locations x "
                "WHERE x.historical_location_id = h.id)", ([r[0] for r in histories],),
            )  # fmt: skip
        if affected:
            observations.refresh(conn, affected)
        _audit(job, "delete", entity_set, entity_id)


# -- the DataArray batch -----------------------------------------------------------------
