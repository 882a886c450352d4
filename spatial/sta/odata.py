"""OData query options of the SensorThings API 1.1: ``$filter`` compiled to SQL with bound
values, and ``$orderby``, ``$select``, ``$top``/``$skip`` and nested ``$expand``.

Written by hand: ``odata-query`` has neither SensorThings' ``substringof`` and ``st_*``
functions nor nested ``$expand`` options. As in :mod:`spatial.filters`:

- a property path goes into SQL only as what the caller's ``resolve`` makes of it (the
  caller quotes identifiers), and an unknown path is refused there;
- every literal is a bound placeholder, never text in the statement;
- only the operators and functions listed here exist; the rest is refused with the
  character position (counted from 1) and what was expected there;
- text, nesting and node count are bounded, so hostile input costs little.

Operator precedence is OData 4.01's: unary (``-``, ``not``) over ``mul div mod`` over
``add sub`` over ``gt ge lt le`` over ``eq ne`` over ``and`` over ``or``, each left to right.
So ``not a eq b`` is ``(not a) eq b``: write ``not (a eq b)``.

Semantics: arithmetic is PostgreSQL ``numeric`` (``div`` is exact division, ``mod`` has
the sign of the dividend); a divisor of zero makes the value NULL. A comparison with the
literal ``null`` is ``IS [NOT] NULL`` (ordering with null is false, as OData says); a NULL
otherwise never matches. Times are ``timestamptz``; a datetime literal must carry ``Z`` or
an offset. Geometry literals are WGS 84 (``ST_GeomFromText(wkt, 4326)``); ``geo.distance``
and ``geo.length`` are metres on the spheroid. String positions (``indexof``,
``substring``) count from 0. A ``json`` column (jsonb, e.g. an observation's result)
compared with a number, text or boolean matches only where it holds one of that type.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal as TypingLiteral

import shapely
import shapely.errors
from psycopg import sql

from spatial.errors import InvalidInputError
from spatial.features import Params

Kind = TypingLiteral["text", "number", "time", "boolean", "geometry", "json"]

MAX_TEXT = 4000
"""The longest ``$filter`` (and ``$expand``, ``$orderby``, ``$select``) in characters."""
MAX_NESTING = 12
"""How deeply a filter may nest parentheses, function calls and unary operators."""
MAX_NODES = 200
"""How many operators, functions, properties and literals a filter may hold (this also
bounds the digits its ``numeric`` arithmetic can reach, far below PostgreSQL's limit)."""
MAX_VERTICES = 10_000
"""The most vertices a geometry literal may have."""
MAX_PATH = 8
"""The most segments of a property path (``Datastream/Thing/name`` has 3)."""
MAX_EXPAND_LEVELS = 3
"""How deeply ``$expand`` may nest ``$expand`` options (``Datastreams($expand=Observations)``
is 2 levels)."""
MAX_ITEMS = 50
"""The most items of ``$select``, ``$orderby`` or one ``$expand`` list."""
EXPAND_OPTIONS = frozenset({"$select", "$expand", "$filter", "$orderby", "$top", "$skip", "$count"})


@dataclass(frozen=True)
class Column:
    """What ``resolve`` makes of a property path: an SQL expression and its kind."""

    sql: sql.Composable
    kind: Kind
    bigint: bool = False
    """A ``bigint`` column (an id): compared with a whole number as ``bigint``, so that its
    index serves ``id eq 5``."""


@dataclass(frozen=True)
class Literal:
    """A number (Decimal), text, boolean, None, time (aware datetime) or geometry (WKT)."""

    value: object
    kind: TypingLiteral["number", "text", "boolean", "null", "time", "geometry"]
    pos: int


@dataclass(frozen=True)
class Path:
    parts: tuple[str, ...]
    pos: int


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Unary:
    op: str  # "not" or "-"
    operand: Node
    pos: int


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node
    pos: int


Node = Literal | Path | Call | Unary | Binary

_PRECEDENCE = {
    "or": 1, "and": 2, "eq": 3, "ne": 3, "gt": 4, "ge": 4, "lt": 4, "le": 4,
    "add": 5, "sub": 5, "mul": 6, "div": 6, "mod": 6,
}  # fmt: skip
_COMPARE = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_SPATIAL = ("within", "intersects", "contains", "disjoint", "touches", "overlaps", "crosses")
# substr() wants integers and refuses a negative length: positions are clamped instead
_INT1, _INT2 = (f"LEAST(GREATEST(trunc({{{i}}}), 0), 2147483646)::integer" for i in (1, 2))
_SUBSTRING_TO_END = f"substr({{0}}, {_INT1} + 1)"
_TWO_TEXTS: tuple[Kind, ...] = ("text", "text")
_TWO_GEOMETRIES: tuple[Kind, ...] = ("geometry", "geometry")
_FUNCTIONS: dict[str, tuple[tuple[Kind, ...], Kind, str]] = {
    "substringof": (_TWO_TEXTS, "boolean", "(strpos({1}, {0}) > 0)"),
    "startswith": (_TWO_TEXTS, "boolean", "starts_with({0}, {1})"),
    "endswith": (_TWO_TEXTS, "boolean", "(right({0}, char_length({1})) = {1})"),
    "length": (("text",), "number", "char_length({0})"),
    "tolower": (("text",), "text", "lower({0})"),
    "toupper": (("text",), "text", "upper({0})"),
    "trim": (("text",), "text", "btrim({0})"),
    "concat": (_TWO_TEXTS, "text", "({0} || {1})"),
    "indexof": (_TWO_TEXTS, "number", "(strpos({0}, {1}) - 1)"),
    "substring": (("text", "number", "number"), "text", f"substr({{0}}, {_INT1} + 1, {_INT2})"),
    **{
        unit: (("time",), "number", f"floor(EXTRACT({unit} FROM ({{0}} AT TIME ZONE 'UTC')))")
        for unit in ("year", "month", "day", "hour", "minute", "second")
    },
    "now": ((), "time", "now()"),
    "round": (("number",), "number", "round(({0})::numeric)"),
    "floor": (("number",), "number", "floor(({0})::numeric)"),
    "ceiling": (("number",), "number", "ceiling(({0})::numeric)"),
    "geo.distance": (_TWO_GEOMETRIES, "number", "ST_Distance(({0})::geography, ({1})::geography)"),
    "geo.intersects": (_TWO_GEOMETRIES, "boolean", "ST_Intersects({0}, {1})"),
    "geo.length": (("geometry",), "number", "ST_Length(({0})::geography)"),
    **{f"st_{name}": (_TWO_GEOMETRIES, "boolean", f"ST_{name.title()}({{0}}, {{1}})")
       for name in (*_SPATIAL, "equals")},
}  # fmt: skip
"""Each function's argument kinds, result kind and SQL (``{0}`` its first argument)."""
FUNCTIONS = tuple(_FUNCTIONS)
_OPERATORS: dict[str, tuple[tuple[Kind, ...], Kind, str]] = {
    "not": (("boolean",), "boolean", "(NOT {0})"),
    "-": (("number",), "number", "(- ({0})::numeric)"),
    "and": (("boolean", "boolean"), "boolean", "({0} AND {1})"),
    "or": (("boolean", "boolean"), "boolean", "({0} OR {1})"),
    "add": (("number", "number"), "number", "(({0})::numeric + ({1})::numeric)"),
    "sub": (("number", "number"), "number", "(({0})::numeric - ({1})::numeric)"),
    "mul": (("number", "number"), "number", "(({0})::numeric * ({1})::numeric)"),
    # a divisor of zero makes the value NULL (no match) rather than an error
    "div": (("number", "number"), "number", "(({0})::numeric / NULLIF(({1})::numeric, 0))"),
    "mod": (("number", "number"), "number", "mod(({0})::numeric, NULLIF(({1})::numeric, 0))"),
}
"""The operators other than comparisons, as :data:`_FUNCTIONS`."""

_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<time>[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})?)"
    r"|(?P<number>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<string>'(?:[^']|'')*')"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"|(?P<punct>[(),/-])"
)
_GEO_PREFIX = frozenset({"geography", "geometry"})
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_PATH = re.compile(rf"{_NAME}(?:/{_NAME})*")


@dataclass(frozen=True)
class _Token:
    kind: str  # time number string word punct end
    text: str
    pos: int  # from 1


def _show(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the filter"
    return repr(token.text if len(token.text) <= 40 else token.text[:37] + "...")


def _fail(pos: int, message: str) -> InvalidInputError:
    return InvalidInputError(f"$filter: at {pos}, {message}")


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            if text[at] == "'":
                raise _fail(at + 1, "the string is not terminated (expected a closing ')")
            raise _fail(at + 1, f"unexpected character {text[at]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match.group(), at + 1))
        at = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def parse_filter(text: str) -> Node:
    """A SensorThings ``$filter`` as a small tree (see the module docstring).

    Raises:
        InvalidInputError: not a filter, with the position and what was expected there;
            or beyond a limit (length, nesting, size).
    """
    if len(text) > MAX_TEXT:
        msg = f"$filter: longer than {MAX_TEXT} characters"
        raise InvalidInputError(msg)
    if not text.strip():
        msg = "$filter: empty"
        raise InvalidInputError(msg)
    return _Parser(_tokens(text)).parse()


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.at = 0
        self.depth = 0
        self.nodes = 0

    def parse(self) -> Node:
        node = self.expression(1)
        token = self.peek()
        if token.kind != "end":
            raise _fail(token.pos, f"expected an operator or the end but found {_show(token)}")
        return node

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.at += 1
        return token

    def expect(self, text: str) -> _Token:
        token = self.take()
        if token.text != text or token.kind not in {"punct", "word"}:
            raise _fail(token.pos, f"expected {text!r} but found {_show(token)}")
        return token

    def count(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            msg = f"$filter: more than {MAX_NODES} operators, functions and values"
            raise InvalidInputError(msg)

    def nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise _fail(pos, f"nested more than {MAX_NESTING} levels deep")

    def expression(self, least: int) -> Node:
        left = self.unary()
        while True:
            token = self.peek()
            level = _PRECEDENCE.get(token.text, 0) if token.kind == "word" else 0
            if level < least:
                return left
            self.take()
            right = self.expression(level + 1)
            self.count()
            left = Binary(token.text, left, right, token.pos)

    def unary(self) -> Node:
        token = self.peek()
        if (token.kind, token.text) in {("word", "not"), ("punct", "-")}:
            self.take()
            following = self.peek()
            if token.text == "-" and following.kind == "number" and following.pos == token.pos + 1:
                self.take()
                self.count()
                return Literal(-_number(following), "number", token.pos)
            self.nest(token.pos)
            operand = self.unary()
            self.depth -= 1
            self.count()
            return Unary(token.text, operand, token.pos)
        return self.primary()

    def primary(self) -> Node:
        token = self.take()
        self.count()
        if token.kind == "punct" and token.text == "(":
            self.nest(token.pos)
            inner = self.expression(1)
            self.expect(")")
            self.depth -= 1
            return inner
        if token.kind == "number":
            return Literal(_number(token), "number", token.pos)
        if token.kind == "string":
            return Literal(_string(token), "text", token.pos)
        if token.kind == "time":
            return Literal(_time(token), "time", token.pos)
        if token.kind == "word":
            return self.word(token)
        raise _fail(token.pos, f"expected a value, property or function but found {_show(token)}")

    def word(self, token: _Token) -> Node:
        constants = {"true": True, "false": False, "null": None}
        if token.text in constants:
            value = constants[token.text]
            return Literal(value, "null" if value is None else "boolean", token.pos)
        following = self.peek()
        adjacent = following.pos == token.pos + len(token.text)
        if token.text in _GEO_PREFIX and following.kind == "string" and adjacent:
            self.take()
            return Literal(_geometry(following), "geometry", token.pos)
        if following.text == "(" and following.kind == "punct":
            return self.call(token)
        if token.text in _PRECEDENCE or token.text == "not" or "." in token.text:
            raise _fail(
                token.pos, f"expected a value, property or function but found {_show(token)}"
            )
        parts = [token.text]
        while self.peek().text == "/" and self.peek().kind == "punct":
            self.take()
            part = self.take()
            if part.kind != "word" or "." in part.text:
                raise _fail(part.pos, f"expected a property name after '/' but found {_show(part)}")
            parts.append(part.text)
            if len(parts) > MAX_PATH:
                raise _fail(part.pos, f"a property path has at most {MAX_PATH} segments")
        return Path(tuple(parts), token.pos)

    def call(self, token: _Token) -> Node:
        if token.text not in _FUNCTIONS:
            known = ", ".join(FUNCTIONS)
            raise _fail(token.pos, f"unknown function {token.text!r}; the functions are: {known}")
        self.nest(token.pos)
        self.expect("(")
        args: list[Node] = []
        if not (self.peek().kind == "punct" and self.peek().text == ")"):
            args.append(self.expression(1))
            while self.peek().kind == "punct" and self.peek().text == ",":
                self.take()
                args.append(self.expression(1))
        closing = self.peek()
        if not (closing.kind == "punct" and closing.text == ")"):
            raise _fail(closing.pos, f"expected ',' or ')' but found {_show(closing)}")
        self.take()
        self.depth -= 1
        kinds = _FUNCTIONS[token.text][0]
        fewest = len(kinds) - (token.text == "substring")
        if not fewest <= len(args) <= len(kinds):
            wanted = f"{fewest} or {len(kinds)}" if fewest != len(kinds) else str(len(kinds))
            raise _fail(token.pos, f"{token.text} takes {wanted} arguments, not {len(args)}")
        return Call(token.text, tuple(args), token.pos)


def _number(token: _Token) -> Decimal:
    value = Decimal(token.text)
    if len(token.text) > 40 or (value != 0 and not -308 <= value.adjusted() <= 308):
        raise _fail(token.pos, f"the number {_show(token)} is out of range")
    return value


def _string(token: _Token) -> str:
    value = token.text[1:-1].replace("''", "'")
    if _UNSTORABLE.search(value):
        raise _fail(token.pos, "text cannot contain NUL or lone surrogates")
    return value


def _time(token: _Token) -> dt.datetime:
    if "T" not in token.text:
        raise _fail(
            token.pos, f"{_show(token)} is a date; write a datetime such as {token.text}T00:00:00Z"
        )
    if not token.text.endswith("Z") and token.text[-6] not in "+-":
        raise _fail(
            token.pos, f"the datetime {_show(token)} has no zone; add Z or an offset such as +02:00"
        )
    try:
        value = dt.datetime.fromisoformat(token.text)
        value.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise _fail(token.pos, f"{_show(token)} is not a valid datetime") from None
    return value


def _geometry(token: _Token) -> str:
    wkt = token.text[1:-1].replace("''", "'")
    srid, _, rest = wkt.partition(";")
    if rest:
        if srid.strip().upper() != "SRID=4326":
            raise _fail(token.pos, "geometry literals are in SRID 4326 (WGS 84) only")
        wkt = rest
    try:
        geometry = shapely.from_wkt(wkt)
    except (shapely.errors.ShapelyError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise _fail(token.pos, f"the geometry is not valid WKT: {reason}") from None
    if geometry is None or geometry.is_empty:
        raise _fail(token.pos, "the geometry is empty")
    coordinates = shapely.get_coordinates(geometry)
    if len(coordinates) > MAX_VERTICES:
        raise _fail(token.pos, f"the geometry has more than {MAX_VERTICES} vertices")
    if not all(math.isfinite(v) for v in coordinates.flat):
        raise _fail(token.pos, "the geometry has coordinates that are not finite numbers")
    return str(geometry.wkt)


@dataclass(frozen=True)
class _Expr:
    sql: sql.Composable
    kind: Kind | TypingLiteral["null"]
    bigint: bool = False
    whole: int | None = None
    """A number literal's value when it is a whole number that fits a ``bigint``."""


def compile_filter(
    node: Node, resolve: Callable[[list[str]], Column], params: Params
) -> sql.Composable:
    """The SQL condition of a parsed ``$filter``.

    Args:
        node: from :func:`parse_filter`.
        resolve: a property path's column; raises InvalidInputError for an unknown one.
        params: where literal values are bound.

    Raises:
        InvalidInputError: an unknown property, values of different kinds compared, an
            operator or function given the wrong kind, or a filter that is not a condition.
    """
    expr = _Compiler(resolve, params).compile(node)
    if expr.kind != "boolean":
        raise _fail(node.pos, f"the filter must be a condition, not a {expr.kind} value")
    return expr.sql


class _Compiler:
    def __init__(self, resolve: Callable[[list[str]], Column], params: Params) -> None:
        self.resolve = resolve
        self.params = params

    def compile(self, node: Node) -> _Expr:
        if isinstance(node, Literal):
            return self.literal(node)
        if isinstance(node, Path):
            column = self.resolve(list(node.parts))
            return _Expr(sql.SQL("({})").format(column.sql), column.kind, column.bigint)
        if isinstance(node, Binary) and node.op in _COMPARE:
            return self.compare(node)
        if isinstance(node, Call):
            name, args = node.name, node.args
            kinds, result, template = _FUNCTIONS[name]
            if name == "substring" and len(args) == 2:
                template = _SUBSTRING_TO_END
        else:
            name = node.op
            args = (node.operand,) if isinstance(node, Unary) else (node.left, node.right)
            kinds, result, template = _OPERATORS[name]
        values = [self.operand(a, k, name) for a, k in zip(args, kinds, strict=False)]
        return _Expr(sql.SQL(template).format(*values), result)

    def literal(self, node: Literal) -> _Expr:
        if node.kind == "null":
            return _Expr(sql.SQL("NULL"), "null")
        if node.kind == "geometry":
            return _Expr(
                sql.SQL("ST_GeomFromText({}, 4326)").format(self.params.bind(node.value)),
                "geometry",
            )
        cast = {"number": "numeric", "text": "text", "boolean": "boolean", "time": "timestamptz"}
        placeholder = self.params.bind(node.value)
        whole = None
        if isinstance(node.value, Decimal) and node.value == node.value.to_integral_value() \
                and -(2**63) <= node.value < 2**63:  # fmt: skip
            whole = int(node.value)
        expr = sql.SQL("{}::{}").format(placeholder, sql.SQL(cast[node.kind]))
        return _Expr(expr, node.kind, whole=whole)

    def operand(self, node: Node, want: Kind, what: str) -> sql.Composable:
        """``node`` as an SQL value of kind ``want`` (null and json fit any)."""
        expr = self.compile(node)
        if expr.kind == want:
            return expr.sql
        if expr.kind == "null":
            return sql.SQL("NULL::{}").format(sql.SQL(_SQL_TYPES[want]))
        if expr.kind == "json" and want in _JSON_TYPES:
            return _from_json(expr.sql, want)
        raise _fail(node.pos, f"{what} needs {_A[want]}, not {_A[expr.kind]} ({_describe(node)})")

    def compare(self, node: Binary) -> _Expr:
        a, b = self.compile(node.left), self.compile(node.right)
        if "null" in {a.kind, b.kind}:
            if a.kind == b.kind == "null":
                return _Expr(
                    sql.SQL("TRUE" if node.op in {"eq", "ge", "le"} else "FALSE"), "boolean"
                )
            other = b if a.kind == "null" else a
            if node.op in {"eq", "ne"}:
                test = "({} IS NULL)" if node.op == "eq" else "({} IS NOT NULL)"
                return _Expr(sql.SQL(test).format(other.sql), "boolean")
            return _Expr(sql.SQL("FALSE"), "boolean")  # OData: ordering with null is false
        if a.kind == "json" and b.kind in _JSON_TYPES:
            a = _Expr(_from_json(a.sql, b.kind), b.kind)
        elif b.kind == "json" and a.kind in _JSON_TYPES:
            b = _Expr(_from_json(b.sql, a.kind), a.kind)
        if a.kind != b.kind:
            raise _fail(
                node.pos,
                f"cannot compare {_A[a.kind]} ({_describe(node.left)}) with "
                f"{_A[b.kind]} ({_describe(node.right)}) using {node.op}",
            )
        if a.kind == "geometry":
            raise _fail(node.pos, f"geometries are compared with st_equals, not {node.op}")
        left, right = a.sql, b.sql
        if a.bigint and b.whole is not None:
            right = sql.SQL("{}::bigint").format(self.params.bind(b.whole))
        elif b.bigint and a.whole is not None:
            left = sql.SQL("{}::bigint").format(self.params.bind(a.whole))
        elif a.kind == "number":  # both as numeric, so no value overflows a cast to double
            left, right = (sql.SQL("({})::numeric").format(s) for s in (left, right))
        return _Expr(
            sql.SQL("({} {} {})").format(left, sql.SQL(_COMPARE[node.op]), right), "boolean"
        )


_SQL_TYPES = {
    "text": "text", "number": "numeric", "time": "timestamptz", "boolean": "boolean",
    "geometry": "geometry", "json": "jsonb",
}  # fmt: skip
_JSON_TYPES = {"text": "string", "number": "number", "boolean": "boolean"}
_A = {
    "text": "text", "number": "a number", "time": "a time", "boolean": "a condition",
    "geometry": "a geometry", "json": "a JSON value", "null": "null",
}  # fmt: skip


def _from_json(value: sql.Composable, want: str) -> sql.Composable:
    """A jsonb value as ``want`` where it holds that JSON type, else NULL."""
    return sql.SQL("(CASE WHEN jsonb_typeof({v}) = {t} THEN ({v} #>> '{{}}')::{c} END)").format(
        v=value, t=sql.Literal(_JSON_TYPES[want]), c=sql.SQL(_SQL_TYPES[want])
    )


def _describe(node: Node) -> str:
    if isinstance(node, Path):
        return "/".join(node.parts)
    if isinstance(node, Literal):
        return "the literal " + ("null" if node.value is None else repr(str(node.value))[:40])
    if isinstance(node, Call):
        return f"{node.name}(...)"
    return f"the {node.op} at {node.pos}"


def parse_orderby(text: str, resolve: Callable[[list[str]], Column]) -> sql.Composable:
    """``$orderby``: comma-separated ``path [asc|desc]``, as SQL (null first when ascending,
    as OData orders it).

    Raises:
        InvalidInputError: not a list of paths, an unknown path, or a geometry.
    """
    items = _items(text, "$orderby")
    orders: list[sql.Composable] = []
    for item in items:
        path, _, direction = item.partition(" ")
        direction = direction.strip().lower() or "asc"  # clients send DESC too
        if not _PATH.fullmatch(path) or direction not in {"asc", "desc"}:
            msg = f"$orderby: expected a property path and asc or desc, not {item[:60]!r}"
            raise InvalidInputError(msg)
        column = resolve(path.split("/"))
        if column.kind == "geometry":
            msg = f"$orderby: cannot order by the geometry {path!r}"
            raise InvalidInputError(msg)
        order = "ASC NULLS FIRST" if direction == "asc" else "DESC NULLS LAST"
        orders.append(sql.SQL("{} {}").format(column.sql, sql.SQL(order)))
    return sql.SQL(", ").join(orders)


def parse_select(text: str) -> list[str]:
    """``$select``: property names (and ``@iot.id``, ``@iot.selfLink``), once each, in order.

    Raises:
        InvalidInputError: empty, or not a list of names.
    """
    names: list[str] = []
    for item in _items(text, "$select"):
        if not re.fullmatch(rf"(?:@iot\.)?{_NAME}", item):
            msg = f"$select: expected a property name, not {item[:60]!r}"
            raise InvalidInputError(msg)
        if item not in names:
            names.append(item)
    return names


def _items(text: str, option: str) -> list[str]:
    if len(text) > MAX_TEXT:
        msg = f"{option}: longer than {MAX_TEXT} characters"
        raise InvalidInputError(msg)
    items = [" ".join(item.split()) for item in text.split(",")]
    if "" in items:
        msg = f"{option}: expected a comma-separated list without empty items, not {text[:60]!r}"
        raise InvalidInputError(msg)
    if len(items) > MAX_ITEMS:
        msg = f"{option}: more than {MAX_ITEMS} items"
        raise InvalidInputError(msg)
    return items


def parse_top_skip(value: str, name: str, maximum: int) -> int:
    """``$top`` or ``$skip`` (``name``): a whole number from 0 to ``maximum``.

    Raises:
        InvalidInputError: not such a number.
    """
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        msg = f"{name}: expected a whole number from 0 to {maximum}, not {value[:40]!r}"
        raise InvalidInputError(msg)
    if int(text) > maximum:
        msg = f"{name}: at most {maximum}, not {int(text)}"
        raise InvalidInputError(msg)
    return int(text)


@dataclass(frozen=True)
class Expand:
    """One ``$expand`` item: a navigation path and its options (``$select`` to its text;
    a nested ``$expand`` has been checked and is parsed again with :func:`parse_expand`)."""

    path: list[str]
    options: dict[str, str] = field(default_factory=dict)


def parse_expand(text: str) -> list[Expand]:
    """``$expand``: comma-separated paths, each with options in parentheses separated by
    semicolons: ``Datastreams($select=id,name;$expand=Observations($top=1))``.

    ``$filter``, ``$select`` and nested ``$expand`` options are checked here; the caller
    reads ``$top``, ``$skip`` and ``$orderby`` with the functions above.

    Raises:
        InvalidInputError: not of that form, with the position; nested more than
            :data:`MAX_EXPAND_LEVELS` levels; an unknown or repeated option.
    """
    if len(text) > MAX_TEXT:
        msg = f"$expand: longer than {MAX_TEXT} characters"
        raise InvalidInputError(msg)
    return _expand(text, 0, 1)


def _expand(text: str, offset: int, level: int) -> list[Expand]:
    if level > MAX_EXPAND_LEVELS:
        msg = f"$expand: at {offset + 1}, nested more than {MAX_EXPAND_LEVELS} levels deep"
        raise InvalidInputError(msg)
    items = _split(text, ",", offset)
    if len(items) > MAX_ITEMS:
        msg = f"$expand: more than {MAX_ITEMS} items"
        raise InvalidInputError(msg)
    result = []
    for start, item in items:
        head, paren, body = item.partition("(")
        path = head.strip()
        if not _PATH.fullmatch(path):
            msg = f"$expand: at {start + 1}, expected a navigation path, not {head[:60]!r}"
            raise InvalidInputError(msg)
        options: dict[str, str] = {}
        if paren:
            if not body.rstrip().endswith(")"):
                msg = (
                    f"$expand: at {start + len(item) + 1}, expected ')' after the options of {path}"
                )
                raise InvalidInputError(msg)
            inner = body.rstrip()[:-1]
            inner_at = start + len(head) + 1
            for at, option in _split(inner, ";", inner_at):
                name, equals, value = option.strip().partition("=")
                if not equals or name not in EXPAND_OPTIONS or name in options:
                    what = "repeated" if name in options else "unknown or malformed"
                    known = ", ".join(sorted(EXPAND_OPTIONS))
                    shown = option.strip()[:60]
                    msg = f"$expand: at {at + 1}, {what} option {shown!r} (options: {known})"
                    raise InvalidInputError(msg)
                options[name] = value.strip()
                if name == "$expand":
                    _expand(value, at + len(name) + 1, level + 1)
                elif name == "$filter":
                    parse_filter(value)
                elif name == "$select":
                    parse_select(value)
        result.append(Expand(path.split("/"), options))
    return result


def _split(text: str, separator: str, offset: int) -> list[tuple[int, str]]:
    """``text`` cut at ``separator`` outside parentheses and quotes, each piece with its
    offset in the whole option."""
    pieces: list[tuple[int, str]] = []
    depth, quoted, start = 0, False, 0
    for at, char in enumerate(text):
        if char == "'":
            quoted = not quoted  # '' inside a string closes and reopens it: the same
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                msg = f"$expand: at {offset + at + 1}, ')' without its '('"
                raise InvalidInputError(msg)
        elif char == separator and depth == 0:
            pieces.append((offset + start, text[start:at]))
            start = at + 1
    if quoted or depth:
        what = "a string is not terminated" if quoted else "expected ')'"
        msg = f"$expand: at {offset + len(text) + 1}, {what}"
        raise InvalidInputError(msg)
    pieces.append((offset + start, text[start:]))
    return pieces
