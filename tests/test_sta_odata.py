"""SensorThings OData query options: parsing, limits, hostile input, and compiled filters
run on PostGIS to prove their semantics."""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from spatial.errors import InvalidInputError
from spatial.features import Params
from spatial.sta import odata
from spatial.sta.odata import (
    Binary,
    Call,
    Column,
    Expand,
    Literal,
    Path,
    Unary,
    compile_filter,
    parse_expand,
    parse_filter,
    parse_orderby,
    parse_select,
    parse_top_skip,
)

COLUMNS: dict[str, odata.Kind] = {
    "id": "number",
    "name": "text",
    "n": "number",
    "phenomenonTime": "time",
    "location": "geometry",
    "result": "json",
    "ok": "boolean",
}


def resolve(path: list[str]) -> Column:
    if path == ["Datastream", "Thing", "name"]:
        return Column(sql.Identifier("thing_name"), "text")
    if len(path) == 1 and path[0] in COLUMNS:
        return Column(sql.Identifier(path[0]), COLUMNS[path[0]])
    msg = f"unknown property {'/'.join(path)!r}"
    raise InvalidInputError(msg)


def compiled(text: str) -> tuple[str, Params]:
    params = Params()
    return compile_filter(parse_filter(text), resolve, params).as_string(None), params


# --- parsing ---------------------------------------------------------------------------


def test_precedence_follows_odata() -> None:
    tree = parse_filter("a eq 1 or b eq 2 and not c")
    assert isinstance(tree, Binary) and tree.op == "or"
    assert isinstance(tree.right, Binary) and tree.right.op == "and"
    assert isinstance(tree.right.right, Unary) and tree.right.right.op == "not"
    arithmetic = parse_filter("n add 2 mul 3 gt 7")
    assert isinstance(arithmetic, Binary) and arithmetic.op == "gt"
    assert isinstance(arithmetic.left, Binary) and arithmetic.left.op == "add"
    assert isinstance(arithmetic.left.right, Binary) and arithmetic.left.right.op == "mul"
    left_to_right = parse_filter("n sub 1 sub 2")
    assert isinstance(left_to_right, Binary) and isinstance(left_to_right.left, Binary)


def test_literals_and_paths() -> None:
    tree = parse_filter("Datastream/Thing/name eq 'it''s'")
    assert isinstance(tree, Binary)
    assert tree.left == Path(("Datastream", "Thing", "name"), 1)
    assert tree.right == Literal("it's", "text", 26)
    time = parse_filter("phenomenonTime gt 2024-01-01T08:00:00+02:00")
    assert isinstance(time, Binary) and isinstance(time.right, Literal)
    assert time.right.value == dt.datetime(2024, 1, 1, 6, tzinfo=dt.UTC)
    geo = parse_filter("st_within(location, geography'POLYGON((0 0, 1 0, 1 1, 0 0))')")
    assert isinstance(geo, Call) and geo.name == "st_within"
    assert isinstance(geo.args[1], Literal) and geo.args[1].kind == "geometry"
    negative = parse_filter("n gt -1.5e2")
    assert isinstance(negative, Binary) and negative.right == Literal(Decimal("-150"), "number", 6)
    assert parse_filter("true") == Literal(True, "boolean", 1)
    assert isinstance(parse_filter("geo.distance(location, geometry'SRID=4326;POINT(1 2)') lt 5"),
                      Binary)  # fmt: skip


def test_compiled_sql_binds_every_literal() -> None:
    text, params = compiled("name eq 'x'') or 1=1 --' and substringof('a', name)")
    assert "1=1" not in text and "--" not in text
    assert "x') or 1=1 --" in params.values()
    text, params = compiled("location eq null or n ne null")
    assert '("location") IS NULL' in text and '("n") IS NOT NULL' in text and not params
    text, params = compiled("st_within(location, geography'POINT(1 2)')")
    assert 'ST_Within(("location"), ST_GeomFromText(%(p0)s, 4326))' in text
    assert params == {"p0": "POINT (1 2)"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(name eq 'a' and", "at 17, expected a value, property or function but found the end"),
        ("(name eq 'a'", "expected ')' but found the end of the filter"),
        ("name eq 'a')", "at 12, expected an operator or the end but found ')'"),
        ("substringof('a' and name)", "substringof takes 2 arguments, not 1"),
        ("(n eq 1 and (n eq 2)", "expected ')'"),
        ("(" * 10_000 + "n" + ")" * 10_000, "longer than 4000 characters"),
        ("(" * 1_000 + "n eq 1" + ")" * 1_000, "nested more than 12 levels deep"),
        ("not " * 900 + "ok", "nested more than 12 levels deep"),
        ("- " * 100 + "n gt 1", "nested more than 12 levels deep"),
        (" or ".join(["n eq 1"] * 100), "more than 200 operators"),
        ("n eq " + "9" * 50, "out of range"),
        ("n eq 1e999", "out of range"),
        ("n eq 1e-999", "out of range"),
        ("drop_table(name)", "unknown function 'drop_table'"),
        ("pg_sleep(10) eq 1", "unknown function 'pg_sleep'"),
        ("name eq 'x') or 1=1 --'", "at 18, unexpected character '='"),
        ("name eq 'x'; DROP TABLE t", "unexpected character ';'"),
        ("name eq 'unterminated", "at 9, the string is not terminated"),
        ('name eq "x"', "unexpected character '\"'"),
        ("st_within(location, geography'POLYGON((0 0, 1 1')", "not valid WKT"),
        ("st_within(location, geography'POINT EMPTY')", "the geometry is empty"),
        ("st_within(location, geography'POINT(1 nan)')", "not finite"),
        ("st_within(location, geography'SRID=3857;POINT(1 2)')", "SRID 4326"),
        ("st_within(location)", "st_within takes 2 arguments, not 1"),
        ("substring(name)", "substring takes 2 or 3 arguments, not 1"),
        ("now(1) gt phenomenonTime", "now takes 0 arguments, not 1"),
        ("length(name, name) eq 1", "length takes 1 arguments, not 2"),
        ("phenomenonTime gt 2024-01-01T00:00:00", "has no zone; add Z or an offset"),
        ("phenomenonTime gt 2024-01-01", "is a date; write a datetime"),
        ("phenomenonTime gt 2024-13-01T00:00:00Z", "is not a valid datetime"),
        ("phenomenonTime gt 0001-01-01T00:00:00+01:00", "is not a valid datetime"),
        ("name eq 'a\x00b'", "NUL"),
        ("", "$filter: empty"),
        ("name eq", "at 8, expected a value"),
        ("eq eq 1", "at 1, expected a value"),
        ("Datastream/", "expected a property name after '/'"),
        ("a/b/c/d/e/f/g/h/i eq 1", "at most 8 segments"),
        ("name eq 1 2", "expected an operator or the end but found '2'"),
        ("geo.nothing(location)", "unknown function 'geo.nothing'"),
        ("a.b eq 1", "found 'a.b'"),
    ],
)
def test_hostile_filters_are_refused_with_reasons(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_filter(text)
    assert message in str(caught.value)
    assert str(caught.value).startswith("$filter: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name eq 5", "cannot compare text (name) with a number (the literal '5') using eq"),
        ("n gt 'x'", "cannot compare a number (n) with text"),
        ("phenomenonTime gt 'yesterday'", "cannot compare a time"),
        ("location eq geography'POINT(1 2)'", "compared with st_equals, not eq"),
        ("name add 1 eq 2", "add needs a number, not text (name)"),
        ("not name", "not needs a condition, not text (name)"),
        ("not name eq 'x'", "not needs a condition"),
        ("st_within(name, location)", "st_within needs a geometry, not text (name)"),
        ("year(name) eq 2024", "year needs a time"),
        ("n add 1", "the filter must be a condition, not a number value"),
        ("nope eq 1", "unknown property 'nope'"),
        ("Datastream/Thing/nope eq 'x'", "unknown property 'Datastream/Thing/nope'"),
        ("ok and n", "and needs a condition, not a number (n)"),
        ("substringof('a' eq 'b', name)", "substringof needs text, not a condition"),
    ],
)
def test_type_errors_are_messages_not_sql(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compiled(text)


def test_geometry_vertex_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(odata, "MAX_TEXT", 1_000_000)
    ring = ", ".join(f"{i % 90} {i % 45}" for i in range(10_001))
    with pytest.raises(InvalidInputError, match="more than 10000 vertices"):
        parse_filter(f"st_within(location, geography'LINESTRING({ring})')")


def test_largest_filter_compiles() -> None:
    """A filter at the node limit compiles and renders (no recursion trouble)."""
    text = " or ".join(["n eq 1"] * 50)
    assert "OR" in compiled(text)[0]
    deep = "(" * 11 + "n eq 1" + ")" * 11
    assert compiled(deep)[0] == '((("n"))::numeric = (%(p0)s::numeric)::numeric)'


def test_fuzzed_text_raises_only_invalid_input() -> None:
    """Shuffled fragments of filters never raise anything but InvalidInputError."""
    import random  # noqa: PLC0415

    fragments = [
        "(", ")", ",", "/", "-", "'", "''", "eq", "and", "or", "not", "add", "mul", "div",
        "name", "n", "1", "1.5e3", "'x'", "null", "true", "2024-01-01T00:00:00Z",
        "substringof(", "st_within(", "geography'POINT(1 2)'", "geography'", "round(", " ",
        "location", "result", "Datastream/Thing/name", "now()", "substring(",
    ]  # fmt: skip
    chance = random.Random(26)  # noqa: S311 (a fixed sequence, not a secret)
    for _ in range(3000):
        text = " ".join(chance.choice(fragments) for _ in range(chance.randint(1, 12)))
        with contextlib.suppress(InvalidInputError):
            compiled(text)


# --- the other options -----------------------------------------------------------------


def test_orderby() -> None:
    order = parse_orderby("phenomenonTime desc, name,  n   asc", resolve).as_string(None)
    assert order == '"phenomenonTime" DESC NULLS LAST, "name" ASC NULLS FIRST, "n" ASC NULLS FIRST'
    for text, message in [
        ("name sideways", "expected a property path and asc or desc"),
        ("name,,n", "without empty items"),
        ("nope", "unknown property"),
        ("location", "cannot order by the geometry"),
        ("name; DROP TABLE x", "expected a property path"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            parse_orderby(text, resolve)


def test_select() -> None:
    assert parse_select("id, name,name ,@iot.id") == ["id", "name", "@iot.id"]
    for text in ["", "name,", "na me", "name)", "a/b", ",".join(["a"] * 51)]:
        with pytest.raises(InvalidInputError, match=r"\$select"):
            parse_select(text)


def test_top_skip() -> None:
    assert parse_top_skip("10", "$top", 1000) == 10
    assert parse_top_skip("0", "$skip", 1000) == 0
    for value, message in [
        ("1001", "at most 1000"),
        ("-1", "whole number"),
        ("1.5", "whole number"),
        ("", "whole number"),
        ("٣", "whole number"),
        ("9" * 400, "whole number"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            parse_top_skip(value, "$top", 1000)


def test_expand_nested_options() -> None:
    text = (
        "Datastreams($select=id,name;$expand=Observations($top=1;$orderby=phenomenonTime desc)),"
        "Locations, Datastream/Sensor($filter=substringof('a;b),', name))"
    )
    assert parse_expand(text) == [
        Expand(
            ["Datastreams"],
            {
                "$select": "id,name",
                "$expand": "Observations($top=1;$orderby=phenomenonTime desc)",
            },
        ),
        Expand(["Locations"], {}),
        Expand(["Datastream", "Sensor"], {"$filter": "substringof('a;b),', name)"}),
    ]
    nested = parse_expand(parse_expand(text)[0].options["$expand"])
    assert nested == [Expand(["Observations"], {"$top": "1", "$orderby": "phenomenonTime desc"})]
    assert parse_expand("A($expand=B($expand=C))")[0].options == {"$expand": "B($expand=C)"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A($expand=B($expand=C($expand=D)))", "nested more than 3 levels deep"),
        ("A(", "expected ')'"),
        ("A)", "')' without its '('"),
        ("A($top=1", "expected ')'"),
        ("A($top=1))", "')' without its '('"),
        ("A($filter=name eq 'x)", "a string is not terminated"),
        ("A($drop=1)", "unknown or malformed option '$drop=1'"),
        ("A($top=1;$top=2)", "repeated option '$top=2'"),
        ("A(top)", "unknown or malformed option 'top'"),
        ("A($filter=name eq)", "$filter: at 8, expected a value"),
        ("A($select=a b)", "$select: expected a property name"),
        ("A(x)B", "expected ')' after the options of A"),
        ("A b", "expected a navigation path"),
        (",", "expected a navigation path"),
        ("A" + "($expand=A" * 2000 + ")" * 2000, "longer than 4000 characters"),
        ("(" * 1000 + ")" * 1000, "expected a navigation path"),
    ],
)
def test_hostile_expand(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_expand(text)
    assert message in str(caught.value)


# --- semantics on PostGIS --------------------------------------------------------------


@pytest.fixture(scope="module")
def conn(database_url: str) -> psycopg.Connection:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE obs (id integer, name text, thing_name text, n double precision,"
            ' "phenomenonTime" timestamptz, location geometry(Point, 4326), result jsonb,'
            " ok boolean)"
        )
        conn.execute(
            "INSERT INTO obs VALUES"
            " (1, 'Alpha', 'river', 1, '2024-01-01T00:00:00Z', 'SRID=4326;POINT(0.5 0.5)',"
            "  '3.5', true),"
            " (2, 'beta', 'lake', 2, '2024-01-01T02:00:00Z', 'SRID=4326;POINT(5 5)',"
            "  '\"high\"', false),"
            " (3, 'it''s', 'river', NULL, NULL, NULL, NULL, NULL),"
            " (4, 'gamma', 'sea', 1e300, '2023-06-30T23:59:59Z', 'SRID=4326;POINT(0.2 0.8)',"
            "  '7', true)"
        )
        yield conn


def matched(conn: psycopg.Connection, text: str) -> list[int]:
    params = Params()
    condition = compile_filter(parse_filter(text), resolve, params)
    query = sql.SQL("SELECT id FROM obs WHERE {} ORDER BY id").format(condition)
    return [row[0] for row in conn.execute(query, params).fetchall()]


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("n eq 1 or n eq 2 and name eq 'nope'", [1]),
        ("(n eq 1 or n eq 2) and name eq 'beta'", [2]),
        ("n add 1 mul 2 eq 5", []),
        ("n add 1 mul 2 eq 4", [2]),
        ("(n add 1) mul 2 eq 4", [1]),
        ("n sub 1 sub 1 eq 0", [2]),
        ("n div 0 eq 1 or n mod 0 eq 1", []),
        ("n mul 1e300 mul 1e300 gt 1", [1, 2, 4]),
        ("-n lt -1", [2, 4]),
        ("not (n eq 1)", [2, 4]),
        ("substringof('ph', name)", [1]),
        ("substringof('''', name)", [3]),
        ("startswith(name, 'be') or endswith(name, 'ma')", [2, 4]),
        ("tolower(name) eq 'alpha' and length(name) eq 5", [1]),
        ("indexof(name, 'lph') eq 1", [1]),
        ("substring(name, 1, 2) eq 'lp'", [1]),
        ("substring(name, 3) eq 'ha'", [1]),
        ("substring(name, -5, -1) eq ''", [1, 2, 3, 4]),
        ("concat(name, '!') eq 'beta!'", [2]),
        ("Datastream/Thing/name eq 'river'", [1, 3]),
        ("st_within(location, geography'POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))')", [1, 4]),
        ("st_intersects(location, geography'POLYGON((0 0, 1 0, 1 1, 0 0))')", [1]),
        ("geo.distance(location, geography'POINT(0.5 0.5)') lt 1000", [1]),
        ("phenomenonTime gt 2024-01-01T01:00:00+02:00", [1, 2]),
        ("phenomenonTime ge 2024-01-01T03:00:00+01:00", [2]),
        ("phenomenonTime lt 2024-01-01T00:00:00Z", [4]),
        ("year(phenomenonTime) eq 2023 and hour(phenomenonTime) eq 23", [4]),
        ("phenomenonTime lt now()", [1, 2, 4]),
        ("n eq null", [3]),
        ("n ne null", [1, 2, 4]),
        ("n gt null", []),
        ("ok eq true", [1, 4]),
        ("ok", [1, 4]),
        ("result gt 3", [1, 4]),
        ("result eq 'high'", [2]),
        ("round(result) eq 4", [1]),
        ("name eq 'x'') or 1=1 --'", []),
    ],
)
def test_semantics_on_postgis(conn: psycopg.Connection, text: str, ids: list[int]) -> None:
    assert matched(conn, text) == ids
