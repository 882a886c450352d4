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

Temporal functions (all 15 of CQL2, over instants and intervals) are compiled by
:mod:`spatial.cql2_temporal`, which says how. Arithmetic (``+ - * / % div ^``, CQL2's
*Arithmetic Expressions*, with the precedence the ``cql2`` parser gives the text: ``^``
first, then ``* / % div``, then ``+ -``, left to right) is computed as PostgreSQL
``numeric``, so no sum, product or power of a row's values can overflow into an error:

- ``/`` is exact division, ``div`` the quotient truncated towards zero, ``%`` the
  remainder with the sign of the dividend (PostgreSQL's ``div`` and ``mod``);
- dividing by zero: a literal zero (``n / 0``) is refused with the reason; a divisor that
  is zero in a row (``n / (m - 1)``) makes the expression NULL, so that row does not match
  (CQL2 says a NULL operand makes the expression NULL; the same holds here);
- ``x ^ y`` is NULL (no match) where it has no real value (a negative ``x`` to a
  fractional ``y``, zero to a negative ``y``) or would lie beyond 10^±1000;
- a filter whose arithmetic could exceed the digits ``numeric`` holds (a product of
  hundreds of columns) is refused before it runs.

The side compared with arithmetic is compared as ``numeric`` too.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import Any, NamedTuple

import cql2
import shapely
import shapely.geometry
from psycopg import sql

from spatial import cql2_temporal
from spatial.cql2_temporal import show
from spatial.errors import InvalidInputError
from spatial.features import LayerSchema, Params, ServingCrs, iso_instant, serving_crs

GEOMETRY_NAMES = frozenset({"geometry", "geom"})
_NUMERIC = frozenset({"smallint", "integer", "bigint", "real", "double precision"})
_TEMPORAL = frozenset({"date", "timestamp"})
_COMPARE = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ARITHMETIC = ("+", "-", "*", "/", "%", "div", "^")
_DIVISIONS = frozenset({"/", "%", "div"})
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
TEMPORAL_OPERATORS = cql2_temporal.FUNCTIONS
OPERATORS = (
    "and", "or", "not", *_COMPARE, "like", "between", "in", "isNull", "casei",
    *_ARITHMETIC, *_SPATIAL, *TEMPORAL_OPERATORS,
)  # fmt: skip
"""Every operator and function a filter may use."""

_DIGITS = {
    "smallint": (5, 0),
    "integer": (10, 0),
    "bigint": (19, 0),
    "real": (39, 60),
    "double precision": (309, 340),
}
"""The most digits before and after the point a numeric column's value has as ``numeric``
(``double precision`` reaches 1.8e308, and 4.9e-324 has 338 decimals)."""
_MAX_SCALE = 16383
"""The most decimals a ``numeric`` keeps (it rounds the rest)."""
MAX_DIGITS = 100_000
"""Arithmetic that could reach more digits before the point is refused: PostgreSQL's
``numeric`` raises an error past 131,072."""
POWER_DIGITS = 1000
"""``x ^ y`` beyond 10^±this is NULL (no match), so that no power overflows ``numeric``."""
MAX_TERMS = 5000
"""How many operands the SQL of one arithmetic expression may name: ``x ^ y`` names its
operands several times (to test them before the power), so nested powers multiply."""
_POWER = (
    "(CASE WHEN {x} = 0 THEN CASE WHEN {y} > 0 THEN 0::numeric WHEN {y} = 0 THEN 1::numeric END"
    " WHEN {x} < 0 AND {y} <> trunc({y}) THEN NULL"
    " WHEN abs({y}) * abs(log(abs({x}))) <= {limit} THEN power({x}, {y}) END)"
)
"""``x ^ y`` where it is a real number within 10^±:data:`POWER_DIGITS`, else NULL."""

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


class _Number(NamedTuple):
    """An arithmetic operand or result, as SQL of type ``numeric``."""

    sql: sql.Composable
    digits: int
    """The most digits its value can have before the point."""
    scale: int
    """The most digits after the point (so ``1 / x`` has at most ``scale + 1`` before)."""
    terms: int
    """How many operands the SQL names."""


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
            msg = f"filter: expected a condition, found {show(node)}"
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
        temporal = cql2_temporal.canonical(op)
        if temporal is not None:
            return cql2_temporal.compile_function(temporal, args, self.layer, self.params)
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
        """Two comparable expressions; a literal takes the kind of the other side, and the
        side compared with arithmetic is ``numeric``."""
        if _arithmetic(left, right):
            a, b = (self._number(v, op, compared=True).sql for v in (left, right))
            return a, b
        a, kind_a = self.scalar(left)
        b, kind_b = self.scalar(right, like=kind_a)
        if kind_a == "any":
            a, kind_a = self.scalar(left, like=kind_b)
        if "any" not in {kind_a, kind_b} and kind_a != kind_b:
            msg = f"filter: cannot compare {kind_a} {show(left)} with {kind_b} {show(right)} ({op})"
            raise InvalidInputError(msg)
        return a, b

    def _like(self, args: list[Any]) -> sql.Composable:
        left, pattern = self._two(args, "like")
        a, kind = self.scalar(left)
        if kind not in {"text", "any"}:
            msg = f"filter: like needs a text property, not {kind} {show(left)}"
            raise InvalidInputError(msg)
        lower = isinstance(pattern, dict) and pattern.get("op") == "casei"
        p, _ = self.scalar(pattern, like="text")
        if not (isinstance(pattern, str) or lower):
            msg = f"filter: the pattern of like must be a string, not {show(pattern)}"
            raise InvalidInputError(msg)
        text = pattern
        while isinstance(text, dict) and text.get("op") == "casei" and text.get("args"):
            text = text["args"][0]
        # PostgreSQL refuses such a pattern only when a value's match reaches its end
        if isinstance(text, str) and re.search(r"(?<!\\)(\\\\)*\\$", text):
            msg = (
                f"filter: the pattern of like {show(text)} ends with the escape character "
                "(a backslash; write two for a backslash itself)"
            )
            raise InvalidInputError(msg)
        return sql.SQL("({} LIKE {})").format(a, p)

    def _between(self, args: list[Any]) -> sql.Composable:
        if len(args) != 3:
            msg = f"filter: between takes three arguments, not {len(args)}"
            raise InvalidInputError(msg)
        if _arithmetic(*args):
            a, low, high = (self._number(v, "between", compared=True).sql for v in args)
            return sql.SQL("({} BETWEEN {} AND {})").format(a, low, high)
        a, low = self._pair(args[0], args[1], "between")
        _, high = self._pair(args[0], args[2], "between")
        return sql.SQL("({} BETWEEN {} AND {})").format(a, low, high)

    def _in(self, args: list[Any]) -> sql.Composable:
        left, values = self._two(args, "in")
        if not isinstance(values, list) or not values:
            msg = f"filter: in needs a non-empty list, not {show(values)}"
            raise InvalidInputError(msg)
        if _arithmetic(left, *values):
            a, *rest = (self._number(v, "in", compared=True).sql for v in (left, *values))
            return sql.SQL("({} IN ({}))").format(a, sql.SQL(", ").join(rest))
        a, kind = self.scalar(left)
        items = [self.scalar(v, like=kind) for v in values]
        for (_, k), v in zip(items, values, strict=True):
            if "any" not in {kind, k} and k != kind:
                msg = f"filter: cannot compare {kind} {show(left)} with {k} {show(v)} (in)"
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
            argument = self._one(args, op)
            inner, kind = self.scalar(argument, like="text")
            if kind not in {"text", "any"}:
                msg = f"filter: casei needs text, not {kind} {show(args[0])}"
                raise InvalidInputError(msg)
            if isinstance(argument, dict) and argument.get("op") == "casei":
                return inner, "text"  # folded already (and each fold names its text thrice)
            return _casefold(inner), "text"
        if op in _ARITHMETIC:
            return self._arithmetic(op, args).sql, "numeric"
        msg = f"filter: unknown function {op!r}; the filter may use: {', '.join(OPERATORS)}"
        raise InvalidInputError(msg)

    def _arithmetic(self, op: str, args: list[Any]) -> _Number:
        """``a op b`` as ``numeric``, NULL where it divides by zero or has no real value."""
        left, right = self._two(args, op)
        a, b = self._number(left, op), self._number(right, op)
        if op in _DIVISIONS and _is_zero(right):
            msg = f"filter: division by zero in {show({'op': op, 'args': args})}"
            raise InvalidInputError(msg)
        divisor = sql.SQL("NULLIF({}, 0)").format(b.sql)
        expr: sql.Composable
        if op in {"+", "-", "*"}:
            expr = sql.SQL("({} {} {})").format(a.sql, sql.SQL(op), b.sql)
        elif op == "/":
            expr = sql.SQL("({} / {})").format(a.sql, divisor)
        elif op in {"%", "div"}:
            expr = sql.SQL("{}({}, {})").format(
                sql.SQL("mod" if op == "%" else "div"), a.sql, divisor
            )
        else:
            expr = sql.SQL(_POWER).format(x=a.sql, y=b.sql, limit=sql.Literal(POWER_DIGITS))
        digits, scale = _bounds(op, a, b)
        terms = 4 * a.terms + 6 * b.terms if op == "^" else a.terms + b.terms
        if digits > MAX_DIGITS:
            msg = (
                f"filter: the arithmetic {show({'op': op, 'args': args})} could exceed "
                f"{MAX_DIGITS} digits, more than the database computes with"
            )
            raise InvalidInputError(msg)
        if terms > MAX_TERMS:
            msg = f"filter: the arithmetic {show({'op': op, 'args': args})} is too large"
            raise InvalidInputError(msg)
        return _Number(expr, digits, scale, terms)

    def _number(self, node: Any, op: str, *, compared: bool = False) -> _Number:
        """An arithmetic operand (or, ``compared``, what arithmetic is compared with): a
        numeric property, a number, NULL or arithmetic."""
        if isinstance(node, dict) and node.get("op") in _ARITHMETIC:
            return self._arithmetic(node["op"], node.get("args", []))
        what = show(node)
        if isinstance(node, dict) and "property" in node:
            name = node["property"]
            expr, kind = self._property(name)
            pgtype = "bigint" if name == "id" else self.layer.fields.get(str(name), "")
            if kind == "numeric" and pgtype in _DIGITS:
                digits, scale = _DIGITS[pgtype]
                return _Number(sql.SQL("{}::numeric").format(expr), digits, scale, 1)
            what = f"the {kind} property {show(name)}"
        elif node is None:
            return _Number(sql.SQL("NULL::numeric"), 0, 0, 1)
        elif isinstance(node, int | float) and not isinstance(node, bool):
            value = _decimal(node)
            _, places, exponent = value.as_tuple()
            digits, scale = max(0, len(places) + int(exponent)), max(0, -int(exponent))
            return _Number(sql.SQL("{}::numeric").format(self.params.bind(value)), digits, scale, 1)
        elif isinstance(node, dict) and "op" in node:
            what = f"the expression {what}"
        elif isinstance(node, str):
            what = f"the text {what}"
        msg = (
            f"filter: cannot compare arithmetic with {what} ({op})"
            if compared
            else f"filter: {op} needs numbers, not {what}"
        )
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
                msg = f"filter: text cannot contain NUL or lone surrogates: {show(node)}"
                raise InvalidInputError(msg)
            kind = "temporal" if like == "temporal" else "text"
            if kind == "temporal":
                iso_instant(node, "filter:")
        cast = {"temporal": "timestamptz", "numeric": "double precision", "text": "text"}
        if kind == "boolean":
            return self.params.bind(value), kind
        if kind:
            return sql.SQL("{}::{}").format(self.params.bind(value), sql.SQL(cast[kind])), kind
        msg = f"filter: {show(node)} is not a value or property here"
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
                msg = f"filter: a bbox has 4 or 6 numbers, not {show(box)}"
                raise InvalidInputError(msg)
            xmin, ymin, xmax, ymax = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
            geojson = shapely.geometry.mapping(shapely.box(xmin, ymin, xmax, ymax))
        elif isinstance(node, dict) and "type" in node:
            geojson = node
        else:
            msg = f"filter: expected the geometry property and a geometry, found {show(node)}"
            raise InvalidInputError(msg)
        try:
            geometry = shapely.geometry.shape(geojson)
        except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException) as exc:
            msg = f"filter: malformed geometry {show(node)}: {exc}"
            raise InvalidInputError(msg) from exc
        if not all(math.isfinite(v) for v in shapely.get_coordinates(geometry).flat):
            msg = f"filter: the geometry {show(node)} has coordinates that are not finite numbers"
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


@cache
def _case_folding() -> tuple[str, str, tuple[tuple[str, str], ...], str]:
    """What PostgreSQL's ``lower()`` needs beside it to fold case as CASEI must (Unicode
    full case folding, as Python's ``str.casefold``): ``lower()`` maps one character to
    one, as lowercase, so ``ß`` stays (folded: ``ss``), final ``ς`` stays (``σ``), ``İ``
    loses its dot (``i̇``), ``ﬁ`` stays (``fi``). Computed once, on first use (a pass over
    every code point takes a third of a second).

    Returns:
        The characters ``translate()`` maps one to one and what to; the characters that
        fold to several, with their folding; a regular expression matching any of them.
    """
    single: list[tuple[str, str]] = []
    several: list[tuple[str, str]] = []
    for char in map(chr, range(sys.maxunicode + 1)):
        folded, lowered = char.casefold(), char.lower()
        if len(lowered) != 1 or folded.lower() != lowered:
            (single if len(folded) == 1 else several).append((char, folded))
    sources = "".join(c for c, _ in single)
    targets = "".join(f for _, f in single)
    return sources, targets, tuple(several), f"[{sources}{''.join(c for c, _ in several)}]"


def _casefold(text: sql.Composable) -> sql.Composable:
    """``text`` case-folded in SQL: ``lower()``, after mapping what it would not fold as
    full case folding does (only in a value holding such a character: the common case
    costs what ``lower()`` does). Equal under this when their case foldings are equal."""
    sources, targets, several, special = _case_folding()
    folded = sql.SQL("translate({}, {}, {})").format(
        text, sql.Literal(sources), sql.Literal(targets)
    )
    for char, replacement in several:
        folded = sql.SQL("replace({}, {}, {})").format(
            folded, sql.Literal(char), sql.Literal(replacement)
        )
    return sql.SQL(
        "(CASE WHEN {text} ~ {special} THEN lower({folded}) ELSE lower({text}) END)"
    ).format(text=text, special=sql.Literal(special), folded=folded)


def _arithmetic(*nodes: Any) -> bool:
    """Whether any of the nodes is an arithmetic expression."""
    return any(isinstance(n, dict) and n.get("op") in _ARITHMETIC for n in nodes)


def _is_zero(node: Any) -> bool:
    return isinstance(node, int | float) and not isinstance(node, bool) and node == 0


def _decimal(node: int | float) -> Decimal:
    """A number of the filter, exactly (the shortest decimal that reads back as the float).

    Raises:
        InvalidInputError: not finite, or beyond the range of a double.
    """
    try:
        number = float(node)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        msg = f"filter: the number {str(node)[:40]} is out of range (or not a number)"
        raise InvalidInputError(msg)
    return Decimal(node) if isinstance(node, int) else Decimal(repr(number))


def _bounds(op: str, a: _Number, b: _Number) -> tuple[int, int]:
    """The most digits before and after the point of ``a op b`` (PostgreSQL's ``numeric``
    rounds a quotient or a power to at most 1000 decimals)."""
    if op in {"+", "-"}:
        return max(a.digits, b.digits) + 1, max(a.scale, b.scale)
    if op == "*":
        return a.digits + b.digits, min(a.scale + b.scale, _MAX_SCALE)
    if op == "/":
        return a.digits + b.scale + 1, 1000
    if op == "div":
        return a.digits + b.scale + 1, 0
    if op == "%":
        return b.digits, max(a.scale, b.scale)
    return POWER_DIGITS + 1, 1000
