"""SensorThings reads: a resource path and its query options made into SQL, and the rows
made into the entities' JSON.

One statement per level: the entities asked for (a page of them, ``$top`` + 1 rows so
the next link is known), then for each ``$expand`` the related entities of the whole page
at once (``LATERAL`` per parent, so ``$top``/``$orderby`` apply per parent and use the
index of the relation). The newest observation of each datastream
(``Datastreams?$expand=Observations($top=1;$orderby=phenomenonTime desc)``) is read from
``sta.latest``. Every read is restricted by the caller's :class:`spatial.sta.scope.Scope`.

Paging is by ``$skip`` (OData's way; the next link carries it). ``$count=true`` counts
the rows matching the filter.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from spatial.errors import InvalidInputError, NotFoundError
from spatial.features import Params
from spatial.sta import odata
from spatial.sta.entities import SETS, EntitySet, Nav, Prop, self_link
from spatial.sta.scope import Scope

MAX_IDS = 2**63 - 1
_SEGMENT = re.compile(r"([A-Za-z]+)(?:\((\d{1,40})\))?")


@dataclass(frozen=True)
class Step:
    """One segment of a resource path: an entity set (reached through ``via``), and an
    entity of it when an id is given."""

    set: EntitySet
    id: int | None = None
    via: Nav | None = None


@dataclass(frozen=True)
class Resource:
    """A parsed resource path: ``Things(1)/Datastreams``, ``Observations(5)/result/$value``."""

    steps: tuple[Step, ...]
    prop: str | None = None
    value: bool = False
    ref: bool = False

    @property
    def last(self) -> Step:
        return self.steps[-1]

    @property
    def single(self) -> bool:
        """Whether it names one entity (an id, or a to-one navigation)."""
        last = self.last
        return last.id is not None or (last.via is not None and not last.via.many)


def parse_path(path: str) -> Resource:
    """The resource of ``path`` (what follows the service root).

    Raises:
        NotFoundError: no such entity set, navigation or property.
        InvalidInputError: a malformed segment.
    """
    parts = [p for p in path.strip("/").split("/") if p]
    steps: list[Step] = []
    for n, part in enumerate(parts):
        if part in {"$value", "$ref"}:
            return _ending(steps, parts, n)
        found = _SEGMENT.fullmatch(part)
        if found is None:
            msg = f"{part[:60]!r} is not an entity set, a navigation or a property"
            raise InvalidInputError(msg)
        name, ident = found.group(1), found.group(2)
        number = int(ident) if ident is not None else None
        if number is not None and number > MAX_IDS:
            raise NotFoundError(f"no {name}({ident})")
        if not steps:
            if name not in SETS:
                raise NotFoundError(f"no entity set {name!r}: {', '.join(SETS)}")
            steps.append(Step(SETS[name], number))
            continue
        previous = steps[-1]
        nav = previous.set.nav(name)
        if previous.id is None and (previous.via is None or previous.via.many):
            msg = f"{name}: name one {previous.set.singular} before navigating from it"
            raise InvalidInputError(msg)
        if nav is None:
            if number is None and _prop(previous.set, name) is not None and n >= len(parts) - 2:
                rest = parts[n + 1 :]
                if rest and rest != ["$value"]:
                    raise NotFoundError(f"nothing under the property {name!r}")
                return Resource(tuple(steps), name, value=bool(rest))
            raise NotFoundError(f"{previous.set.singular} has no {name!r}")
        if number is not None and not nav.many:
            raise InvalidInputError(f"{name} is a single entity: no id after it")
        steps.append(Step(SETS[nav.target], number, nav))
    if not steps:
        raise NotFoundError("no entity set named")
    return Resource(tuple(steps))


def _ending(steps: list[Step], parts: list[str], n: int) -> Resource:
    if parts[n] == "$ref" and steps and n == len(parts) - 1:
        return Resource(tuple(steps), ref=True)
    raise NotFoundError(f"{'/'.join(parts)[:100]!r}: $value follows a property, $ref ends a path")


def _prop(entity_set: EntitySet, name: str) -> Prop | None:
    return entity_set.prop("@iot.id" if name == "id" else name)


@dataclass
class Options:
    """The query options of one level (the request's, or an ``$expand`` item's)."""

    select: list[str] | None = None
    filter: odata.Node | None = None
    orderby: str | None = None
    top: int = 100
    skip: int = 0
    count: bool = False
    expand: list[tuple[Nav, Options]] = field(default_factory=list)
    given: dict[str, str] = field(default_factory=dict)
    """The options as given (for the next link)."""


def options(
    entity_set: EntitySet, given: Mapping[str, str], *, default_top: int, max_top: int
) -> Options:
    """The query options of a level, checked.

    Raises:
        InvalidInputError: a malformed or unknown option, a path that does not exist.
    """
    unknown = sorted(k for k in given if k.startswith("$") and k not in odata.EXPAND_OPTIONS)
    if unknown:
        known = ", ".join(sorted(odata.EXPAND_OPTIONS))
        raise InvalidInputError(f"unknown query option {unknown[0]!r} (options: {known})")
    found = Options(top=default_top, given=dict(given))
    if "$select" in given:
        found.select = odata.parse_select(given["$select"])
        for name in found.select:
            plain = name.removeprefix("@iot.").replace("selfLink", "id")
            if _prop(entity_set, plain) is None and entity_set.nav(name) is None:
                raise InvalidInputError(f"$select: {entity_set.singular} has no {name!r}")
    if "$filter" in given:
        found.filter = odata.parse_filter(given["$filter"])
        odata.compile_filter(found.filter, resolver(entity_set), Params())  # check it now
    if "$orderby" in given:
        odata.parse_orderby(given["$orderby"], resolver(entity_set))
        found.orderby = given["$orderby"]
    if "$top" in given:
        found.top = min(odata.parse_top_skip(given["$top"], "$top", MAX_IDS), max_top)
    if "$skip" in given:
        found.skip = odata.parse_top_skip(given["$skip"], "$skip", 10**9)
    if "$count" in given:
        if given["$count"] not in {"true", "false"}:
            raise InvalidInputError(f"$count: true or false, not {given['$count'][:20]!r}")
        found.count = given["$count"] == "true"
    if "$expand" in given:
        found.expand = _expansions(entity_set, odata.parse_expand(given["$expand"]),
                                   default_top=default_top, max_top=max_top)  # fmt: skip
    return found


def _expansions(
    entity_set: EntitySet, items: list[odata.Expand], *, default_top: int, max_top: int
) -> list[tuple[Nav, Options]]:
    """``$expand`` items as (navigation, options); ``A/B`` is ``A($expand=B)``."""
    grouped: dict[str, tuple[Nav, dict[str, str], list[str]]] = {}
    for item in items:
        head, rest = item.path[0], item.path[1:]
        nav = entity_set.nav(head)
        if nav is None:
            raise InvalidInputError(f"$expand: {entity_set.singular} has no {head!r}")
        _, opts, nested = grouped.setdefault(head, (nav, {}, []))
        if rest:
            inner = "/".join(rest)
            if item.options:
                inner += "(" + ";".join(f"{k}={v}" for k, v in item.options.items()) + ")"
            nested.append(inner)
        else:
            for k, v in item.options.items():
                if k == "$expand":
                    nested.append(v)
                elif k in opts:
                    raise InvalidInputError(f"$expand: {k} given twice for {head}")
                else:
                    opts[k] = v
    found = []
    for nav, opts, nested in grouped.values():
        if nested:
            opts["$expand"] = ",".join(nested)
        found.append((nav, options(SETS[nav.target], opts, default_top=default_top,
                                   max_top=max_top)))  # fmt: skip
    return found


def resolver(entity_set: EntitySet) -> Any:
    """The ``resolve`` of :func:`spatial.sta.odata.compile_filter` for ``entity_set``."""

    def resolve(parts: list[str]) -> odata.Column:
        return _column(entity_set, parts, "e", 0)

    return resolve


def _at(text: str, alias: str) -> sql.Composable:
    """A property's SQL (over ``e``) over another alias (the texts are this module's own)."""
    return sql.SQL(re.sub(r"\be\.", f"{alias}.", text))


def _column(entity_set: EntitySet, parts: list[str], alias: str, depth: int) -> odata.Column:
    head = parts[0]
    nav = entity_set.nav(head)
    if nav is not None and nav.how == "parent" and parts[1:] == ["id"]:
        key = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(nav.column))
        return odata.Column(key, "number", bigint=True)
    if nav is not None and len(parts) > 1:
        if nav.many:
            msg = f"{'/'.join(parts)}: a filter cannot go through the collection {head}"
            raise InvalidInputError(msg)
        target = SETS[nav.target]
        inner = f"a{depth + 1}"
        column = _column(target, parts[1:], inner, depth + 1)
        return odata.Column(
            sql.SQL("(SELECT {} FROM {} {} WHERE {}.id = {}.{})").format(
                column.sql, sql.Identifier("sta", target.table), sql.Identifier(inner),
                sql.Identifier(inner), sql.Identifier(alias), sql.Identifier(nav.column)),
            column.kind,
        )  # fmt: skip
    prop = _prop(entity_set, head)
    if prop is None or prop.kind is None:
        raise InvalidInputError(f"{entity_set.singular} has no property {'/'.join(parts)!r}")
    if len(parts) > 1:
        if prop.kind != "json":
            raise InvalidInputError(f"{head} has no member {parts[1]!r}")
        return odata.Column(
            sql.SQL("({} #> {})").format(_at(prop.where, alias), sql.Literal(parts[1:])), "json"
        )
    return odata.Column(_at(prop.where, alias), prop.kind, prop.name == "@iot.id")


@dataclass
class _Plan:
    """The columns of one level's statement."""

    props: list[Prop]
    links: list[str]
    """Navigation names whose ``@iot.navigationLink`` is written."""
    keys: list[str]
    """Columns of the source needed by to-one expansions (``thing_id``)."""

    def columns(self, alias: str = "e") -> sql.Composable:
        cols: list[sql.Composable] = [sql.SQL("{}.id AS _id").format(sql.Identifier(alias))]
        for n, prop in enumerate(self.props):
            if prop.name == "@iot.id":
                continue
            for k, part in enumerate([prop.read, prop.end] if prop.end else [prop.read]):
                cols.append(sql.SQL("{} AS {}").format(_at(part, alias),
                                                       sql.Identifier(f"c{n}_{k}")))  # fmt: skip
        for key in self.keys:
            cols.append(
                sql.SQL("{}.{} AS {}").format(
                    sql.Identifier(alias), sql.Identifier(key), sql.Identifier(f"k_{key}")
                )
            )
        return sql.SQL(", ").join(cols)


def _plan(entity_set: EntitySet, opts: Options) -> _Plan:
    if opts.select is None:
        props = list(entity_set.props)
        links = [n.name for n in entity_set.navs]
    else:
        names = [s.removeprefix("@iot.") for s in opts.select]
        props = [p for p in entity_set.props if p.name in names
                 or (p.name == "@iot.id" and ("id" in names or "selfLink" in names))]  # fmt: skip
        links = [n.name for n in entity_set.navs if n.name in names]
    keys = [nav.column for nav, _ in opts.expand if nav.how == "parent"]
    return _Plan(props, links, keys)


def _when(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _entity(row: dict[str, Any], entity_set: EntitySet, plan: _Plan, base: str) -> dict[str, Any]:
    link = self_link(base, entity_set.name, row["_id"])
    out: dict[str, Any] = {}
    for n, prop in enumerate(plan.props):
        if prop.name == "@iot.id":
            out["@iot.id"] = row["_id"]
            out["@iot.selfLink"] = link
        elif prop.form == "time":
            out[prop.name] = _when(row[f"c{n}_0"])
        elif prop.form == "interval":
            start, end = row[f"c{n}_0"], row[f"c{n}_1"]
            always = entity_set.name == "Datastreams" or prop.name == "validTime"
            if start is None:
                out[prop.name] = None
            elif end is None and not always:
                out[prop.name] = _when(start)
            else:
                out[prop.name] = f"{_when(start)}/{_when(end or start)}"
        elif (value := row[f"c{n}_0"]) is not None or prop.name != "properties":
            out[prop.name] = value  # properties absent when none (as FROST: clients expect)
    for name in plan.links:
        out[f"{name}@iot.navigationLink"] = f"{link}/{name}"
    return out


@dataclass(frozen=True)
class Page:
    """What a read answers: entities, and for a collection its count and next link."""

    value: list[dict[str, Any]]
    count: int | None = None
    more: bool = False


async def read(
    conn: psycopg.AsyncConnection[Any], scope: Scope, resource: Resource, opts: Options,
    base: str,
) -> Page:  # fmt: skip
    """The entities of ``resource`` (a page of a collection, or the one entity), expanded.

    Raises:
        NotFoundError: the first entity of the path, or a single entity asked for, does
            not exist or is not the caller's to read.
    """
    first = resource.steps[0]
    if first.id is not None and len(resource.steps) > 1:
        await _must_see(conn, scope, first.set, first.id)
    target = resource.last.set
    params = Params()
    where = [_path(resource.steps, params)]
    if not _derived(resource):
        where.append(scope.entity(target.name))
    if opts.filter is not None:
        where.append(odata.compile_filter(opts.filter, resolver(target), params))
    condition = sql.SQL(" AND ").join(where)
    plan = _plan(target, opts)
    order = _order(target, opts)
    single = resource.single
    limit = 1 if single else opts.top + 1
    statement = sql.SQL("SELECT {} FROM {} e WHERE {} ORDER BY {} LIMIT {} OFFSET {}").format(
        plan.columns(), sql.Identifier("sta", target.table), condition, order,
        sql.Literal(limit), sql.Literal(0 if single else opts.skip))  # fmt: skip
    async with conn.cursor(row_factory=dict_row) as cur:
        rows = await (await cur.execute(statement, params)).fetchall()
        count = None
        if opts.count and not single:
            counted = await cur.execute(
                sql.SQL("SELECT count(*) AS n FROM {} e WHERE {}").format(
                    sql.Identifier("sta", target.table), condition), params)  # fmt: skip
            count = int((await counted.fetchone() or {"n": 0})["n"])
    if single and not rows:
        raise NotFoundError(f"no such {target.singular}")
    more = not single and len(rows) > opts.top
    rows = rows[: opts.top] if not single else rows
    value = [_entity(r, target, plan, base) for r in rows]
    await _Expander(conn, scope, base).expand(target, opts, rows, value)
    return Page(value, count, more)


async def _must_see(
    conn: psycopg.AsyncConnection[Any], scope: Scope, entity_set: EntitySet, entity_id: int
) -> None:
    found = await conn.execute(
        sql.SQL("SELECT 1 FROM {} e WHERE e.id = %s AND {}").format(
            sql.Identifier("sta", entity_set.table), scope.entity(entity_set.name)),
        (entity_id,),
    )  # fmt: skip
    if await found.fetchone() is None:
        raise NotFoundError(f"no {entity_set.name}({entity_id})")


_DERIVED = {("Datastreams", "Observations"), ("Things", "Datastreams"),
            ("Things", "HistoricalLocations")}  # fmt: skip
"""Navigations whose targets are readable exactly when their source is: a path starting
at an entity the caller may read needs no further check along them."""


def _derived(resource: Resource) -> bool:
    steps = resource.steps
    if len(steps) < 2 or steps[0].id is None:
        return False
    return all(s.via is not None and (p.set.name, s.set.name) in _DERIVED
               for p, s in itertools.pairwise(steps))  # fmt: skip


def _path(steps: tuple[Step, ...], params: Params) -> sql.Composable:
    """The condition on the last step's rows (alias ``e``) that the path sets."""
    ids: sql.Composable | None = None  # the SQL of the previous step's ids
    condition: sql.Composable = sql.SQL("TRUE")
    for n, step in enumerate(steps):
        parts: list[sql.Composable] = []
        if step.via is not None and ids is not None:
            parts.append(_related(step.via, steps[n - 1].set, ids))
        if step.id is not None:
            parts.append(sql.SQL("e.id = {}").format(params.bind(step.id)))
        condition = sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")
        ids = sql.SQL("SELECT e.id FROM {} e WHERE {}").format(
            sql.Identifier("sta", step.set.table), condition)  # fmt: skip
    return condition


def _related(nav: Nav, source: EntitySet, ids: sql.Composable) -> sql.Composable:
    """The condition on a target row ``e`` of ``nav`` from the sources ``ids``."""
    if nav.how == "child":
        return sql.SQL("e.{} IN ({})").format(sql.Identifier(nav.column), ids)
    if nav.how == "parent":
        return sql.SQL("e.id IN (SELECT s.{} FROM {} s WHERE s.id IN ({}))").format(
            sql.Identifier(nav.column), sql.Identifier("sta", source.table), ids)  # fmt: skip
    return sql.SQL("e.id IN (SELECT j.{} FROM {} j WHERE j.{} IN ({}))").format(
        sql.Identifier(nav.other), sql.Identifier("sta", nav.table), sql.Identifier(nav.column),
        ids)  # fmt: skip


def _order(entity_set: EntitySet, opts: Options) -> sql.Composable:
    if opts.orderby is None:
        return sql.SQL("e.id")
    return sql.SQL("{}, e.id").format(odata.parse_orderby(opts.orderby, resolver(entity_set)))


def _latest(nav: Nav, opts: Options) -> bool:
    """Whether an expansion asks for each datastream's newest observation only."""
    order = " ".join((opts.orderby or "").split())
    return (nav.name == "Observations" and nav.how == "child" and opts.top == 1
            and opts.skip == 0 and opts.filter is None and not opts.count
            and order == "phenomenonTime desc" and nav.column == "datastream_id")  # fmt: skip


@dataclass(frozen=True)
class _Expander:
    """Reads the expansions of a page, level by level."""

    conn: psycopg.AsyncConnection[Any]
    scope: Scope
    base: str

    async def expand(
        self, source: EntitySet, opts: Options, rows: list[dict[str, Any]],
        value: list[dict[str, Any]],
    ) -> None:  # fmt: skip
        """Put each expansion of ``opts`` into the entities ``value`` (of ``rows``)."""
        if not rows:
            return
        for nav, inner in opts.expand:
            target = SETS[nav.target]
            plan = _plan(target, inner)
            if nav.how == "parent":
                await self.expand_one(nav, inner, rows, value)
                continue
            got = await self.children(source, nav, inner, [r["_id"] for r in rows])
            children = [_entity(r, target, plan, self.base) for r in got]
            await self.expand(target, inner, got, children)
            by_parent: dict[int, list[dict[str, Any]]] = {}
            for row, child in zip(got, children, strict=True):
                by_parent.setdefault(row["_parent"], []).append(child)
            counts = await self.counts(source, nav, inner, rows) if inner.count else {}
            for row, entity in zip(rows, value, strict=True):
                mine = by_parent.get(row["_id"], [])
                entity[nav.name] = mine[: inner.top]
                if inner.count:
                    entity[f"{nav.name}@iot.count"] = counts.get(row["_id"], 0)
                if len(mine) > inner.top:
                    entity[f"{nav.name}@iot.nextLink"] = next_link(
                        f"{self_link(self.base, source.name, row['_id'])}/{nav.name}", inner.given,
                        inner.skip + inner.top)  # fmt: skip

    async def expand_one(
        self, nav: Nav, inner: Options, rows: list[dict[str, Any]], value: list[dict[str, Any]]
    ) -> None:
        target = SETS[nav.target]
        plan = _plan(target, inner)
        wanted = sorted({r[f"k_{nav.column}"] for r in rows if r[f"k_{nav.column}"] is not None})
        params = Params()
        where = [
            sql.SQL("e.id = ANY({})").format(params.bind(wanted)),
            self.scope.entity(target.name),
        ]
        if inner.filter is not None:
            where.append(odata.compile_filter(inner.filter, resolver(target), params))
        statement = sql.SQL("SELECT {} FROM {} e WHERE {}").format(
            plan.columns(), sql.Identifier("sta", target.table), sql.SQL(" AND ").join(where)
        )
        async with self.conn.cursor(row_factory=dict_row) as cur:
            got = await (await cur.execute(statement, params)).fetchall()
        entities = [_entity(r, target, plan, self.base) for r in got]
        await self.expand(target, inner, got, entities)
        found = {r["_id"]: e for r, e in zip(got, entities, strict=True)}
        for row, entity in zip(rows, value, strict=True):
            hit = found.get(row[f"k_{nav.column}"])
            if hit is not None:
                entity[nav.name] = hit

    @staticmethod
    def child_condition(nav: Nav, parent: sql.Composable) -> tuple[sql.Composable, sql.Composable]:
        """The join (if any) and the condition relating a child row ``e`` to ``parent``."""
        if nav.how == "child":
            return sql.SQL(""), sql.SQL("e.{} = {}").format(sql.Identifier(nav.column), parent)
        join = sql.SQL("JOIN {} j ON j.{} = e.id").format(
            sql.Identifier("sta", nav.table), sql.Identifier(nav.other)
        )
        return join, sql.SQL("j.{} = {}").format(sql.Identifier(nav.column), parent)

    def related(self, source: EntitySet, nav: Nav, inner: Options, params: Params) -> tuple[
            sql.Composable, sql.Composable]:  # fmt: skip
        """The join and the condition of the rows of ``nav`` related to the parent ``p.pid``
        that the caller may read and the expansion's filter keeps."""
        target = SETS[nav.target]
        join, related = self.child_condition(nav, sql.SQL("p.pid"))
        where = [related]
        if (source.name, target.name) not in _DERIVED:
            where.append(self.scope.entity(target.name))
        if inner.filter is not None:
            where.append(odata.compile_filter(inner.filter, resolver(target), params))
        return join, sql.SQL(" AND ").join(where)

    async def children(
        self, source: EntitySet, nav: Nav, inner: Options, parents: list[int]
    ) -> list[dict[str, Any]]:
        """The related rows of every parent (``_parent`` says whose), ``$top`` + 1 each."""
        target = SETS[nav.target]
        plan = _plan(target, inner)
        params = Params()
        ids = params.bind(parents)
        if _latest(nav, inner):
            statement = sql.SQL(
                "SELECT e.datastream_id AS _parent, {} FROM sta.latest e "
                "WHERE e.datastream_id = ANY({})"
            ).format(plan.columns(), ids)
        else:
            join, where = self.related(source, nav, inner, params)
            statement = sql.SQL(
                "SELECT p.pid AS _parent, x.* FROM unnest({}::bigint[]) p(pid) CROSS JOIN LATERAL "
                "(SELECT {} FROM {} e {} WHERE {} ORDER BY {} LIMIT {} OFFSET {}) x"
            ).format(ids, plan.columns(), sql.Identifier("sta", target.table), join,
                     where, _order(target, inner),
                     sql.Literal(inner.top + 1), sql.Literal(inner.skip))  # fmt: skip
        async with self.conn.cursor(row_factory=dict_row) as cur:
            return await (await cur.execute(statement, params)).fetchall()

    async def counts(
        self, source: EntitySet, nav: Nav, inner: Options, rows: list[dict[str, Any]]
    ) -> dict[int, int]:
        target = SETS[nav.target]
        params = Params()
        ids = params.bind([r["_id"] for r in rows])
        join, where = self.related(source, nav, inner, params)
        statement = sql.SQL(
            "SELECT p.pid, (SELECT count(*) FROM {} e {} WHERE {}) FROM unnest({}::bigint[]) p(pid)"
        ).format(sql.Identifier("sta", target.table), join, where, ids)
        found = await self.conn.execute(statement, params)
        return {pid: int(n) for pid, n in await found.fetchall()}


def next_link(url: str, given: Mapping[str, str], skip: int) -> str:
    """``url`` with the options ``given`` and ``$skip`` set to ``skip``."""
    query = {k: v for k, v in given.items() if k != "$skip"}
    query["$skip"] = str(skip)
    text = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    return f"{url}?{text}"


def columns(entity_set: str) -> sql.Composable:
    """The columns (over the alias ``e``) the reads select of an entity of ``entity_set``,
    for :func:`as_entity` (whoever reads entities by other means: the MQTT updates)."""
    return _plan(SETS[entity_set], Options()).columns()


def as_entity(row: dict[str, Any], entity_set: str, base: str) -> dict[str, Any]:
    """A row of :func:`columns` as the API answers the entity."""
    found = SETS[entity_set]
    return _entity(row, found, _plan(found, Options()), base)


async def entity(
    conn: psycopg.AsyncConnection[Any], scope: Scope, entity_set: str, entity_id: int, base: str
) -> dict[str, Any]:
    """One entity as the API answers it (what a create returns).

    Raises:
        NotFoundError: none of that id the caller may read.
    """
    found = SETS[entity_set]
    page = await read(conn, scope, Resource((Step(found, entity_id),)),
                      Options(top=1), base)  # fmt: skip
    return page.value[0]
