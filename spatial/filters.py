"""CQL2 filters (OGC API - Features Part 3) compiled to SQL with bound values.

The text or JSON is parsed and normalised to CQL2-JSON by the ``cql2`` package (the
reference grammar); this module walks that JSON and builds a ``psycopg.sql`` condition
over the layer table ``t``:

- property names must be the layer's columns (or ``geometry``/``geom``, ``id``), and go
  into the SQL only as quoted identifiers;
- every literal is a bound placeholder, never text in the statement;
- only the operators and functions listed here exist; anything else is refused with a
  message that names it.

So a filter can be wrong (400, with the reason) but cannot change the statement.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import cql2
import shapely
import shapely.geometry
from psycopg import sql

from spatial.errors import InvalidInputError
from spatial.features import LayerSchema, Params, ServingCrs, iso_instant, serving_crs

GEOMETRY_NAMES = frozenset({"geometry", "geom"})
_NUMERIC = frozenset({"smallint", "integer", "bigint", "real", "double precision"})
_TEMPORAL = frozenset({"date", "timestamp"})
_COMPARE = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ARITHMETIC = {"+": "+", "-": "-", "*": "*", "/": "/"}
_SPATIAL = {
    "s_intersects": "ST_Intersects",
    "s_equals": "ST_Equals",
    "s_disjoint": "ST_Disjoint",
    "s_touches": "ST_Touches",
    "s_within": "ST_Within",
    "s_overlaps": "ST_Overlaps",
    "s_crosses": "ST_Crosses",
    "s_contains": "ST_Contains",
}
TEMPORAL_OPERATORS = ("t_after", "t_before", "t_disjoint", "t_during", "t_equals", "t_intersects")
OPERATORS = (
    "and", "or", "not", *_COMPARE, "like", "between", "in", "isNull", "casei",
    *_ARITHMETIC, *_SPATIAL, *TEMPORAL_OPERATORS,
)  # fmt: skip
"""Every operator and function a filter may use."""

MAX_NESTING = 12
"""How deeply a filter may nest (parentheses, ``NOT``, functions); deeper is refused
before parsing, since the CQL2 parser recurses on the C stack and the compiler in Python,
and the parser's time to refuse a wrong filter doubles with each level (benchmarks/fuzz.py
found 24 unclosed parentheses taking minutes)."""
_MAX_JSON_DEPTH = 2 * MAX_NESTING
"""The same limit in CQL2-JSON levels (an operation is an object and its ``args`` list)."""
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""What PostgreSQL text cannot hold: NUL, and lone surrogates."""
_TOKEN = re.compile(r"'(?:[^']|'')*'?|\"[^\"]*\"?|[A-Za-z_][A-Za-z0-9_]*|\S")

Scalar = tuple[sql.Composable, str]
"""An SQL expression and its kind: numeric, text, boolean, temporal, geometry or any."""


def parse(text: str, lang: str | None = None) -> dict[str, Any]:
    """CQL2 text (the default) or JSON, as normalised CQL2-JSON.

    Raises:
        InvalidInputError: not valid CQL2, with the parser's reason.
    """
    lang = (lang or "cql2-text").lower()
    if lang == "cql2-text" and _text_nesting(text) > MAX_NESTING:
        msg = f"filter is nested more than {MAX_NESTING} levels deep"
        raise InvalidInputError(msg)
    if lang == "cql2-text" and not _balanced(text):
        msg = "filter is not valid cql2-text: unbalanced parentheses"
        raise InvalidInputError(msg)
    try:
        if lang == "cql2-text":
            expr = cql2.parse_text(text)
        elif lang == "cql2-json":
            expr = cql2.parse_json(text)
        else:
            msg = f"filter-lang {lang!r} is not supported; use cql2-text or cql2-json"
            raise InvalidInputError(msg)
        tree: dict[str, Any] = expr.to_json()
    except InvalidInputError:
        raise
    # cql2 raises ParseError, ValidationError, ValueError, and a bare Exception when it cannot
    # write a geometry it read back (``POLYGON((112 23, 1 4 112 23))``: "processing geometry")
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300]
        msg = f"filter is not valid {lang}: {reason}"
        raise InvalidInputError(msg) from exc
    if _json_depth(tree) > _MAX_JSON_DEPTH:
        msg = f"filter is nested more than {MAX_NESTING} levels deep"
        raise InvalidInputError(msg)
    return tree


def _text_nesting(text: str) -> int:
    """An upper bound of how deeply CQL2 text nests: open parentheses, each with the prefix
    operators (``NOT``, signs) before it, and the prefix operators of the innermost one."""
    stack: list[int] = []
    depth = run = 0
    deepest = 0
    for match in _TOKEN.finditer(text):
        piece = match.group()
        if piece == "(":
            stack.append(run + 1)
            depth, run = depth + run + 1, 0
        elif piece == ")":
            depth, run = depth - (stack.pop() if stack else 0), 0
        elif piece.upper() == "NOT" or piece in {"-", "+"}:
            run += 1
        else:
            run = 0
        deepest = max(deepest, depth + run)
    return deepest


def _balanced(text: str) -> bool:
    """Whether the parentheses outside quotes pair up (the parser takes exponential time
    to refuse a filter that leaves some open)."""
    depth = 0
    for match in _TOKEN.finditer(text):
        piece = match.group()
        depth += 1 if piece == "(" else -1 if piece == ")" else 0
        if depth < 0:
            return False
    return depth == 0


def _json_depth(tree: Any) -> int:
    """How many objects and lists deep a parsed filter goes (without recursion)."""
    deepest, todo = 0, [(tree, 1)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, dict):
            node = list(node.values())
        elif not isinstance(node, list):
            continue
        deepest = max(deepest, depth)
        todo.extend((item, depth + 1) for item in node)
    return deepest


def equalities(layer: LayerSchema, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """``property=value`` query parameters as CQL2-JSON equalities, each value read as its
    column's type (OGC API - Features Part 3, queryables as query parameters).

    Raises:
        InvalidInputError: an unknown property, or a value its column cannot hold.
    """
    conditions = []
    for name, text in pairs:
        pgtype = layer.fields.get(layer.column(name))
        value: Any = text
        try:
            if pgtype in {"smallint", "integer", "bigint"}:
                value = int(text)
            elif pgtype in {"real", "double precision"}:
                value = float(text)
                if not math.isfinite(value):
                    raise ValueError(text)
        except ValueError:
            msg = f"{name} holds numbers; {text!r} is not one"
            raise InvalidInputError(msg) from None
        if pgtype == "boolean":
            if text.lower() not in {"true", "false"}:
                msg = f"{name} is true or false, not {text!r}"
                raise InvalidInputError(msg)
            value = text.lower() == "true"
        conditions.append({"op": "=", "args": [{"property": name}, value]})
    return conditions


def compile_filter(
    tree: Any, layer: LayerSchema, params: Params, crs: ServingCrs | None = None
) -> sql.Composable:
    """The SQL condition of a parsed filter.

    Args:
        tree: CQL2-JSON (from :func:`parse`).
        layer: the layer the filter applies to (its columns and SRID).
        params: where literal values are bound.
        crs: the CRS of geometry literals (``filter-crs``; default CRS84).

    Raises:
        InvalidInputError: an unknown property, operator or function, a comparison of
            values of different kinds, or a malformed geometry.
    """
    return _Compiler(layer, params, crs or serving_crs(None)).condition(tree)


class _Compiler:
    def __init__(self, layer: LayerSchema, params: Params, crs: ServingCrs) -> None:
        self.layer = layer
        self.params = params
        self.crs = crs

    def condition(self, node: Any) -> sql.Composable:
        if isinstance(node, bool):
            return sql.SQL("TRUE" if node else "FALSE")
        if not isinstance(node, dict) or "op" not in node:
            msg = f"filter: expected a condition, found {_show(node)}"
            raise InvalidInputError(msg)
        op, args = node["op"], node.get("args", [])
        handler: Callable[[list[Any]], sql.Composable] | None = {
            "and": lambda a: self._join(a, "AND"),
            "or": lambda a: self._join(a, "OR"),
            "not": lambda a: sql.SQL("NOT ({})").format(self.condition(self._one(a, op))),
            "like": self._like,
            "between": self._between,
            "in": self._in,
            "isNull": lambda a: sql.SQL("({} IS NULL)").format(self.scalar(self._one(a, op))[0]),
        }.get(op)
        if handler is not None:
            return handler(args)
        if op in _COMPARE:
            return self._compare(_COMPARE[op], args)
        if op in _SPATIAL:
            return self._spatial(_SPATIAL[op], args)
        if op in TEMPORAL_OPERATORS:
            return self._temporal(op, args)
        allowed = ", ".join(OPERATORS)
        msg = f"filter: unknown operator or function {op!r}; the filter may use: {allowed}"
        raise InvalidInputError(msg)

    @staticmethod
    def _one(args: list[Any], op: str) -> Any:
        if len(args) != 1:
            msg = f"filter: {op} takes one argument, not {len(args)}"
            raise InvalidInputError(msg)
        return args[0]

    @staticmethod
    def _two(args: list[Any], op: str) -> tuple[Any, Any]:
        if len(args) != 2:
            msg = f"filter: {op} takes two arguments, not {len(args)}"
            raise InvalidInputError(msg)
        return args[0], args[1]

    def _join(self, args: list[Any], word: str) -> sql.Composable:
        if not args:
            msg = f"filter: {word.lower()} needs arguments"
            raise InvalidInputError(msg)
        return sql.SQL("({})").format(sql.SQL(f" {word} ").join(self.condition(a) for a in args))

    def _compare(self, op: str, args: list[Any]) -> sql.Composable:
        left, right = self._two(args, op)
        a, b = self._pair(left, right, op)
        return sql.SQL("({} {} {})").format(a, sql.SQL(op), b)

    def _pair(self, left: Any, right: Any, op: str) -> tuple[sql.Composable, sql.Composable]:
        """Two comparable expressions; a literal takes the kind of the other side."""
        a, kind_a = self.scalar(left)
        b, kind_b = self.scalar(right, like=kind_a)
        if kind_a == "any":
            a, kind_a = self.scalar(left, like=kind_b)
        if "any" not in {kind_a, kind_b} and kind_a != kind_b:
            msg = (
                f"filter: cannot compare {kind_a} {_show(left)} with {kind_b} {_show(right)} ({op})"
            )
            raise InvalidInputError(msg)
        return a, b

    def _like(self, args: list[Any]) -> sql.Composable:
        left, pattern = self._two(args, "like")
        a, kind = self.scalar(left)
        if kind not in {"text", "any"}:
            msg = f"filter: like needs a text property, not {kind} {_show(left)}"
            raise InvalidInputError(msg)
        lower = isinstance(pattern, dict) and pattern.get("op") == "casei"
        p, _ = self.scalar(pattern, like="text")
        if not (isinstance(pattern, str) or lower):
            msg = f"filter: the pattern of like must be a string, not {_show(pattern)}"
            raise InvalidInputError(msg)
        return sql.SQL("({} LIKE {})").format(a, p)

    def _between(self, args: list[Any]) -> sql.Composable:
        if len(args) != 3:
            msg = f"filter: between takes three arguments, not {len(args)}"
            raise InvalidInputError(msg)
        a, low = self._pair(args[0], args[1], "between")
        _, high = self._pair(args[0], args[2], "between")
        return sql.SQL("({} BETWEEN {} AND {})").format(a, low, high)

    def _in(self, args: list[Any]) -> sql.Composable:
        left, values = self._two(args, "in")
        if not isinstance(values, list) or not values:
            msg = f"filter: in needs a non-empty list, not {_show(values)}"
            raise InvalidInputError(msg)
        a, kind = self.scalar(left)
        items = [self.scalar(v, like=kind) for v in values]
        for (_, k), v in zip(items, values, strict=True):
            if "any" not in {kind, k} and k != kind:
                msg = f"filter: cannot compare {kind} {_show(left)} with {k} {_show(v)} (in)"
                raise InvalidInputError(msg)
        return sql.SQL("({} IN ({}))").format(a, sql.SQL(", ").join(e for e, _ in items))

    def scalar(self, node: Any, like: str = "any") -> Scalar:
        """A property, a literal or a function of them; ``like`` types a bare literal."""
        if isinstance(node, dict) and "property" in node:
            return self._property(node["property"])
        if isinstance(node, dict) and "op" in node:
            return self._function(node["op"], node.get("args", []))
        return self._literal(node, like)

    def _function(self, op: str, args: list[Any]) -> Scalar:
        if op == "casei":
            inner, kind = self.scalar(self._one(args, op), like="text")
            if kind not in {"text", "any"}:
                msg = f"filter: casei needs text, not {kind} {_show(args[0])}"
                raise InvalidInputError(msg)
            return sql.SQL("lower({})").format(inner), "text"
        if op in _ARITHMETIC:
            left, right = self._two(args, op)
            a, b = self._pair(left, right, op)
            return sql.SQL("({} {} {})").format(a, sql.SQL(_ARITHMETIC[op]), b), "numeric"
        msg = f"filter: unknown function {op!r}; the filter may use: {', '.join(OPERATORS)}"
        raise InvalidInputError(msg)

    def _literal(self, node: Any, like: str) -> Scalar:
        value: Any = node
        kind = ""
        if isinstance(node, dict) and ("date" in node or "timestamp" in node):
            value = iso_instant(str(node.get("date") or node.get("timestamp")), "filter:")
            kind = "temporal"
        elif isinstance(node, bool):
            kind = "boolean"
        elif isinstance(node, (int, float)):
            try:
                value, kind = float(node), "numeric"
            except OverflowError:
                value = math.inf
            if not math.isfinite(value):
                msg = f"filter: the number {str(node)[:40]} is out of range (or not a number)"
                raise InvalidInputError(msg)
        elif isinstance(node, str):
            if _UNSTORABLE.search(node):
                msg = f"filter: text cannot contain NUL or lone surrogates: {_show(node)}"
                raise InvalidInputError(msg)
            kind = "temporal" if like == "temporal" else "text"
            if kind == "temporal":
                iso_instant(node, "filter:")
        cast = {"temporal": "timestamptz", "numeric": "double precision", "text": "text"}
        if kind == "boolean":
            return self.params.bind(value), kind
        if kind:
            return sql.SQL("{}::{}").format(self.params.bind(value), sql.SQL(cast[kind])), kind
        msg = f"filter: {_show(node)} is not a value or property here"
        raise InvalidInputError(msg)

    def _property(self, name: Any) -> Scalar:
        if name == "id":
            return sql.SQL("t.fid"), self.layer.key_kind
        if name in GEOMETRY_NAMES:
            return sql.SQL("t.geom"), "geometry"
        column = self.layer.column(str(name))
        pgtype = self.layer.fields[column]
        kind = (
            "numeric"
            if pgtype in _NUMERIC
            else "temporal"
            if pgtype in _TEMPORAL
            else "boolean"
            if pgtype == "boolean"
            else "text"
            if pgtype == "text"
            else "other"
        )
        return sql.SQL("t.{}").format(sql.Identifier(column)), kind

    def _geometry(self, node: Any) -> sql.Composable:
        if isinstance(node, dict) and "bbox" in node:
            box = node["bbox"]
            if (
                not isinstance(box, list)
                or len(box) not in {4, 6}
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
            ):
                msg = f"filter: a bbox has 4 or 6 numbers, not {_show(box)}"
                raise InvalidInputError(msg)
            xmin, ymin, xmax, ymax = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
            geojson = shapely.geometry.mapping(shapely.box(xmin, ymin, xmax, ymax))
        elif isinstance(node, dict) and "type" in node:
            geojson = node
        else:
            msg = f"filter: expected the geometry property and a geometry, found {_show(node)}"
            raise InvalidInputError(msg)
        try:
            geometry = shapely.geometry.shape(geojson)
        except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException) as exc:
            msg = f"filter: malformed geometry {_show(node)}: {exc}"
            raise InvalidInputError(msg) from exc
        if not all(math.isfinite(v) for v in shapely.get_coordinates(geometry).flat):
            msg = f"filter: the geometry {_show(node)} has coordinates that are not finite numbers"
            raise InvalidInputError(msg)
        if self.crs.flip:
            geometry = shapely.transform(geometry, lambda xy: xy[:, ::-1])
        literal: sql.Composable = sql.SQL("ST_GeomFromText({}, {})").format(
            self.params.bind(geometry.wkt), self.params.bind(self.crs.srid)
        )
        if self.crs.srid != self.layer.srid:
            literal = sql.SQL("ST_Transform({}, {})").format(
                literal, self.params.bind(self.layer.srid)
            )
        return literal

    def _spatial(self, function: str, args: list[Any]) -> sql.Composable:
        left, right = self._two(args, function)
        if isinstance(left, dict) and left.get("property") in GEOMETRY_NAMES:
            return sql.SQL("{}(t.geom, {})").format(sql.SQL(function), self._geometry(right))
        if isinstance(right, dict) and right.get("property") in GEOMETRY_NAMES:
            return sql.SQL("{}({}, t.geom)").format(sql.SQL(function), self._geometry(left))
        msg = f"filter: {function} compares the geometry property with a geometry"
        raise InvalidInputError(msg)

    def _temporal(self, op: str, args: list[Any]) -> sql.Composable:
        left, right = self._two(args, op)
        value, kind = self.scalar(left)
        if kind not in {"temporal", "any"}:
            msg = f"filter: {op} needs a date or time property, not {kind} {_show(left)}"
            raise InvalidInputError(msg)
        if op == "t_during" and not (isinstance(right, dict) and "interval" in right):
            msg = "filter: t_during needs an interval"
            raise InvalidInputError(msg)
        start, end = self._instant_or_interval(right)
        template = {
            "t_after": "({v} > {end})",
            "t_before": "({v} < {start})",
            "t_equals": "({v} = {start} AND {v} = {end})",
            "t_during": "({v} > {start} AND {v} < {end})",
            "t_intersects": "({v} BETWEEN {start} AND {end})",
            "t_disjoint": "NOT ({v} BETWEEN {start} AND {end})",
        }[op]
        return sql.SQL(template).format(v=value, start=start, end=end)

    def _instant_or_interval(self, node: Any) -> tuple[sql.Composable, sql.Composable]:
        """(start, end); open ends are -infinity and infinity, an instant is both."""

        def instant(value: Any) -> sql.Composable | None:
            if isinstance(value, dict):
                value = value.get("date") or value.get("timestamp")
            if value in {None, ".."}:
                return None
            if not isinstance(value, str):
                msg = f"filter: {_show(value)} is not a date or timestamp"
                raise InvalidInputError(msg)
            return sql.SQL("{}::timestamptz").format(
                self.params.bind(iso_instant(value, "filter:"))
            )

        if isinstance(node, dict) and "interval" in node:
            ends = node["interval"]
            if not isinstance(ends, list) or len(ends) != 2:
                msg = f"filter: an interval has two ends, not {_show(ends)}"
                raise InvalidInputError(msg)
            start, end = instant(ends[0]), instant(ends[1])
            low = start or sql.SQL("'-infinity'::timestamptz")
            high = end or sql.SQL("'infinity'::timestamptz")
            return low, high
        point = instant(node)
        if point is None:
            msg = f"filter: expected a date, timestamp or interval, found {_show(node)}"
            raise InvalidInputError(msg)
        return point, point


def _show(node: Any) -> str:
    text = json.dumps(node, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
