"""The DataArray form of creating Observations (SensorThings 1.1, 14.3): ``POST
/sta/v1.1/CreateObservations``, many readings of many datastreams in one request, stored
through :func:`spatial.sta.observations.store` in one transaction; a refused reading is
answered ``"error <reason>: ..."`` in its place and the others are stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from spatial.errors import ForbiddenError, InvalidInputError, TooLargeError
from spatial.settings import SensorThingsSettings
from spatial.sta import arrays, observations
from spatial.sta.observations import Reading, Reject
from spatial.sta.write import Author, Job

COMPONENTS = ("phenomenonTime", "result", "resultTime", "resultQuality", "validTime",
              "parameters", "FeatureOfInterest/id")  # fmt: skip
"""A DataArray's components, in the order of :class:`Reading`'s fields after the
datastream."""


@dataclass
class _Batch:
    """A DataArray's readings, where each answer goes, and its refusals."""

    readings: list[Reading] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def _array(item: Any, n: int) -> tuple[int, list[str], list[Any]]:
    """(datastream id, components, rows) of one DataArray entry.

    Raises:
        InvalidInputError: not the shape of SensorThings 1.1's DataArray.
    """
    where = f"the DataArray's entry {n}"
    if not isinstance(item, dict) or set(item) - {"Datastream", "components", "dataArray",
                                                 "dataArray@iot.count"}:  # fmt: skip
        msg = f"{where} must be an object with Datastream, components and dataArray"
        raise InvalidInputError(msg)
    link, components, rows = item.get("Datastream"), item.get("components"), item.get("dataArray")
    if not isinstance(link, dict) or type(link.get("@iot.id")) is not int:
        raise InvalidInputError(f'{where}: Datastream must be {{"@iot.id": <its id>}}')
    if not isinstance(components, list) or not all(c in COMPONENTS for c in components) \
            or len(set(components)) != len(components) or "result" not in components:  # fmt: skip
        msg = f"{where}: components are distinct names of {', '.join(COMPONENTS)}, with result"
        raise InvalidInputError(msg)
    if not isinstance(rows, list):
        raise InvalidInputError(f"{where}: dataArray must be an array of arrays")
    return int(link["@iot.id"]), components, rows


def _readings(batch: _Batch, datastream: int, components: list[str], rows: list[Any]) -> None:
    """Add one entry's rows to the batch; a row of the wrong shape is refused."""
    width = len(components)
    start = len(batch.answers)
    batch.answers.extend([""] * len(rows))
    if components == ["phenomenonTime", "result"] and all(
            type(r) is list and len(r) == 2 for r in rows):  # fmt: skip
        batch.readings.extend([Reading(datastream, r[0], r[1]) for r in rows])
        batch.positions.extend(range(start, start + len(rows)))
        return
    picks = [components.index(c) if c in components else None for c in COMPONENTS]
    for k, row in enumerate(rows):
        if type(row) is not list or len(row) != width:
            detail = f"a row of dataArray must be an array of {width} values"
            batch.rejects.append(Reject("malformed", detail, datastream))
            batch.answers[start + k] = f"error malformed: {detail}"
            continue
        batch.readings.append(Reading(datastream, *[None if p is None else row[p] for p in picks]))
        batch.positions.append(start + k)


def data_array(
    conn: psycopg.Connection[Any], author: Author, body: Any, *,
    settings: SensorThingsSettings, base: str,
) -> list[str]:  # fmt: skip
    """Create the Observations of a DataArray request (SensorThings 1.1, 14.3): each
    reading's selfLink, or ``"error <reason>: <why>"`` for one refused (the others are
    stored; the refusals counted in ``sta.rejects``).

    Raises:
        InvalidInputError: not a DataArray. TooLargeError: more than ``max_array`` readings.
        ForbiddenError: a Datastream the author may see but not write.
    """
    author.need("create Observations")
    if not isinstance(body, list):
        raise InvalidInputError("a DataArray request is a JSON array of DataArray entries")
    entries = [_array(item, n) for n, item in enumerate(body)]
    total = sum(len(rows) for _, _, rows in entries)
    if total > settings.max_array:
        raise TooLargeError(f"{total} readings: one request may carry {settings.max_array}")
    job = Job(conn, author, settings)
    batch = _Batch()
    hidden = _writable_datastreams(job, sorted({e[0] for e in entries}))
    for datastream, components, rows in entries:
        if datastream in hidden:
            detail = f"no Datastream({datastream})"
            batch.rejects.extend(Reject("unknown_datastream", detail) for _ in rows)
            batch.answers.extend([f"error unknown_datastream: {detail}"] * len(rows))
        else:
            _readings(batch, datastream, components, rows)
    if any("FeatureOfInterest/id" in components for _, components, _ in entries):
        _hidden_features(job, batch)
    stored = observations.store(conn, batch.readings, settings=settings, rejects=batch.rejects)
    why = {r.index: f"error {r.reason}: {r.detail}" for r in stored.rejects if r.index is not None}
    link = f"{base}/Observations("
    for k, (position, new) in enumerate(zip(batch.positions, stored.ids, strict=True)):
        batch.answers[position] = f"{link}{new})" if new is not None else why.get(k, "error")
    return batch.answers


def _writable_datastreams(job: Job, wanted: list[int]) -> set[int]:
    """The datastreams of ``wanted`` the author cannot see (one statement for them all:
    :func:`spatial.sta.write._owner`'s rule).

    Raises:
        ForbiddenError: one they may see but not write.
    """
    ids = [d for d in wanted if type(d) is int and 0 < d < 2**63]  # others are no entity
    query = sql.SQL(
        "SELECT e.id, t.department, t.collection, e.department FROM sta.datastreams e "
        "JOIN sta.things t ON t.id = e.thing_id WHERE e.id = ANY(%s) AND {}"
    ).format(job.author.scope.entity("Datastreams", "e"))
    author, seen = job.author, set()
    arrays.register(job.conn)
    for datastream, department, collection, own in job.conn.execute(query, (arrays.int8(ids),)):
        seen.add(datastream)
        if not (author.may(department, collection) or (own and author.may(own, None))):
            msg = f"{author.actor.name} may not change Datastream({datastream})"
            if collection is not None:
                msg += f" (it is a feature of {collection!r}: its writers may)"
            raise ForbiddenError(msg)
    return set(wanted) - seen


def _hidden_features(job: Job, batch: _Batch) -> None:
    """Readings naming a FeatureOfInterest the author cannot see name one that does not
    exist (the store refuses them)."""
    named = sorted({r.feature for r in batch.readings if type(r.feature) is int
                    and 0 < r.feature < 2**63})  # fmt: skip
    if not named:
        return
    scope = job.author.scope.entity("FeaturesOfInterest", "e")
    query = sql.SQL("SELECT e.id FROM sta.features e WHERE e.id = ANY({}) AND {}")
    seen = job.conn.execute(query.format(sql.Literal(named), scope)).fetchall()
    visible = {r[0] for r in seen}
    for r in batch.readings:
        if type(r.feature) is int and r.feature not in visible:
            r.feature = str(r.feature)  # not an id: refused as unknown_feature
