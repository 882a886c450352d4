"""Property tests (hypothesis) of the query parameter parsers: ``bbox``, ``datetime``,
``crs``, ``as-of`` and CQL2 filters.

Arbitrary text is either read or refused with ``InvalidInputError``, never another
exception; generated valid values read back as themselves; and whatever a parser accepts
PostgreSQL accepts too: every generated CQL2 filter is refused or compiles and runs on a
real layer, and every accepted date-time casts to ``timestamptz``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from spatial import catalog, features, filters
from spatial.db import engine
from spatial.errors import InvalidInputError
from spatial.features import ItemsQuery, LayerSchema, Params
from spatial.ingest.history import parse_as_of
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

FAST = settings(derandomize=True, max_examples=250, deadline=None, database=None)
DB = settings(derandomize=True, max_examples=250, deadline=None, database=None)

JUNK = ("NaN", "nan", "inf", "-Infinity", "1e999", "9" * 5000, "0x1A", "1_0", "\x00", "\ud800",
        "", ",", "/", "..", "١٢", "-0", "1e-400", "T", "Z", "+14:00", "EPSG:")  # fmt: skip
junk = st.one_of(
    st.text(),
    st.lists(st.sampled_from(JUNK) | st.text(max_size=6), max_size=8).map(",".join),
    st.lists(st.sampled_from(JUNK) | st.text(max_size=6), max_size=4).map("/".join),
)
near_dates = st.from_regex(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[Tt ][0-9]{1,2}(?::[0-9]{2}){0,2}(?:[.,][0-9]{0,12})?"
    r"(?:[Zz]|[+-][0-9]{2}:?[0-9]{0,2}(?::[0-9]{2})?)?)?|-?[0-9]{4}-W[0-9]{2}(?:-[0-9])?",
    fullmatch=True,
)
aware = st.builds(
    lambda t, minutes: t.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes))),
    st.datetimes(dt.datetime(1, 1, 2), dt.datetime(9999, 12, 30)),
    st.integers(-14 * 60, 14 * 60),
)


# -- bbox, crs -----------------------------------------------------------------------------


@FAST
@given(junk)
@example("1,2,3," + "9" * 5000)
def test_bbox_reads_or_refuses(text: str) -> None:
    try:
        box = features.parse_bbox(text)
    except InvalidInputError as error:
        assert "bbox" in str(error)
    else:
        assert len(box) == 4 and all(math.isfinite(v) for v in box) and box[1] <= box[3]


finite = st.floats(allow_nan=False, allow_infinity=False)


@FAST
@given(st.lists(finite, min_size=6, max_size=6))
def test_bbox_round_trip(values: list[float]) -> None:
    x0, y0, x1, y1, z0, z1 = values
    ymin, ymax = sorted((y0, y1))
    assert features.parse_bbox(",".join(map(repr, (x0, ymin, x1, ymax)))) == (x0, ymin, x1, ymax)
    six = ",".join(map(repr, (x0, ymin, z0, x1, ymax, z1)))
    assert features.parse_bbox(six) == (x0, ymin, x1, ymax)
    if ymin < ymax:
        with pytest.raises(InvalidInputError, match="above the upper bound"):
            features.parse_bbox(",".join(map(repr, (x0, ymax, x1, ymin))))


@FAST
@given(junk | st.from_regex(r"(?:EPSG:|http://www.opengis.net/def/crs/EPSG/0/)\d{1,12}"))
@example("EPSG:" + "9" * 5000)
@example("http://www.opengis.net/def/crs/EPSG/0/" + "4" * 4400)
def test_crs_reads_or_refuses(text: str) -> None:
    try:
        crs = features.serving_crs(text)
    except InvalidInputError as error:
        assert "crs" in str(error)
    else:
        assert crs.srid == 4326 or crs.srid in features.SERVED_EPSG


@FAST
@given(st.sampled_from(features.SERVED_EPSG), st.sampled_from(("EPSG:{}", "[epsg:{}]", " {} ")))
def test_crs_round_trip(code: int, form: str) -> None:
    uri = form.format(code) if "{} " not in form else features.storage_crs_uri(code)
    crs = features.serving_crs(uri)
    assert (crs.srid, crs.uri) == (code, features.storage_crs_uri(code))
    assert crs.flip == (code != 3857)


# -- datetime, as-of -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def connection(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn


@DB
@given(junk | near_dates)
@example("2024-W01-1")
@example("2024-05-01T08")
@example("0001-01-01T00:00:00+14:00")
@example("9999-12-31T23:59:59-14:00")
@example("2024-05-01T08:00:00,5")
def test_datetime_reads_what_postgresql_reads(
    connection: psycopg.Connection[Any], text: str
) -> None:
    try:
        span = features.parse_datetime(text)
    except InvalidInputError as error:
        assert "datetime" in str(error)
        return
    if span is None:
        assert not text.strip()
        return
    for end in span:
        if end is not None:  # a database error here would be a 500 of the items API
            connection.execute("SELECT %s::timestamptz", (end,))


@FAST
@given(aware, aware, st.sampled_from(("{a}", "{a}/{b}", "../{b}", "{a}/..", "/{b}", "{a}/")))
def test_datetime_round_trip(a: dt.datetime, b: dt.datetime, form: str) -> None:
    text = form.format(a=a.isoformat(), b=b.isoformat())
    start, end = features.parse_datetime(text) or (None, None)
    if "/" not in form:
        assert start == end == a.isoformat()
    else:
        assert start == (a.isoformat() if "{a}" in form else None)
        assert end == (b.isoformat() if "{b}" in form else None)
    assert dt.datetime.fromisoformat(start or end or "") in (a, b)


@FAST
@given(junk | near_dates)
@example("0001-01-01T00:00:00+01:00")
def test_as_of_reads_or_refuses(text: str) -> None:
    try:
        when = parse_as_of(text)
    except InvalidInputError as error:
        assert "as-of" in str(error)
    else:
        assert when.tzinfo is not None
        when.astimezone(dt.UTC)  # an instant PostgreSQL and Python can hold


@FAST
@given(aware, st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31)))
def test_as_of_round_trip(when: dt.datetime, naive: dt.datetime) -> None:
    assert parse_as_of(when.isoformat()) == when
    assert parse_as_of(when.isoformat().replace("+00:00", "Z")) == when
    assert parse_as_of(naive.isoformat()) == naive.replace(tzinfo=dt.UTC)
    assert parse_as_of(naive.date().isoformat()) == dt.datetime.combine(
        naive.date(), dt.time(), dt.UTC
    )


# -- CQL2 on a real layer ----------------------------------------------------------------


@pytest.fixture(scope="module")
def layer(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> LayerSchema:
    """A small layer with text, numeric, integer and date properties."""
    import geopandas as gpd  # noqa: PLC0415
    import shapely  # noqa: PLC0415

    path = tmp_path_factory.mktemp("properties") / "props.gpkg"
    gpd.GeoDataFrame(
        {
            "name": ["甲", "it's", None],
            "area": [1.5, 20.0, 300.25],
            "n": [1, -7, 2**40],
            "built": ["2020-01-01", "2021-06-30", None],
        },
        geometry=[shapely.box(112 + i / 100, 23, 112.005 + i / 100, 23.005) for i in range(3)],
        crs="EPSG:4490",
    ).astype({"built": "datetime64[ms]"}).to_file(path)
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    ingest_vector(url, VectorSource(path=path, collection_id="props", title="props"), settings)
    with engine(url) as eng, eng.connect() as conn:
        record = catalog.get_collection(conn, "props")
    return LayerSchema.of(record)


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


properties = st.sampled_from(("name", "area", "n", "built", "id", "missing", '"name"'))
numbers = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    finite.map(repr),
    st.sampled_from(("9" * 400, "1e400", "-1e400", "1e-400", "0", "-0.0", ".5")),
)
dates = st.one_of(
    st.dates().map(lambda d: f"DATE('{d.isoformat()}')"),
    aware.map(lambda t: f"TIMESTAMP('{t.isoformat()}')"),
    near_dates.map(lambda t: f"TIMESTAMP('{t}')"),
)
literals = st.one_of(st.text().map(quoted), numbers, dates, st.sampled_from(("TRUE", "NULL")))
operands = properties | literals
coordinates = st.floats(-200, 200, allow_nan=False) | st.sampled_from((1e300, -1e400, 90.0))
comparisons = st.one_of(
    st.tuples(operands, st.sampled_from(("=", "<>", "<", "<=", ">", ">=")), operands).map(" ".join),
    st.tuples(properties, st.text().map(quoted)).map(lambda a: f"{a[0]} LIKE {a[1]}"),
    st.tuples(properties, st.text().map(quoted)).map(lambda a: f"{a[0]} LIKE CASEI({a[1]})"),
    st.tuples(properties, literals, literals).map(lambda a: f"{a[0]} BETWEEN {a[1]} AND {a[2]}"),
    st.tuples(properties, st.lists(literals, min_size=1, max_size=4)).map(
        lambda a: f"{a[0]} IN ({', '.join(a[1])})"
    ),
    st.tuples(properties, st.booleans()).map(lambda a: f"{a[0]} IS {'NOT ' * a[1]}NULL"),
    st.tuples(coordinates, coordinates).map(
        lambda a: f"S_INTERSECTS(geometry, POINT({a[0]} {a[1]}))"
    ),
    st.tuples(coordinates, coordinates).map(
        lambda a: f"S_WITHIN(geometry, BBOX({a[0]}, {a[1]}, {a[0] + 1}, {a[1] + 1}))"
    ),
)
cql2_texts = st.recursive(
    comparisons,
    lambda inner: st.one_of(
        inner.map(lambda c: f"NOT ({c})"),
        inner.map(lambda c: f"({c})"),
        st.tuples(inner, st.sampled_from(("AND", "OR")), inner).map(" ".join),
    ),
    max_leaves=6,
)


def run(
    connection: psycopg.Connection[Any], layer: LayerSchema, tree: Any
) -> tuple[str, int, int | None, int | None] | None:
    """The filter compiled and run as the items API runs it; None when it is refused."""
    params = Params()
    try:
        where = filters.compile_filter(tree, layer, params)
    except InvalidInputError as error:
        assert str(error).startswith(("filter", "collection"))
        return None
    statement, bound = features.page_statement(layer, ItemsQuery(where=where, params=params))
    row = connection.execute(statement, bound).fetchone()  # a database error fails the test
    assert row is not None
    return row


@DB
@given(cql2_texts)
@example("name = 'x\x00y'")
@example("n = " + "9" * 400)
@example("S_INTERSECTS(geometry, POINT(1e400 0))")
@example("S_WITHIN(geometry, BBOX(name, 1.0, 2, 2.0))")
@example("S_WITHIN(geometry, BBOX(-1e400, 1, 2, 2))")
@example("built > TIMESTAMP('2024-W01-1T00:00:00Z')")
@example("built > DATE('0001-01-01') AND built < TIMESTAMP('9999-12-31T23:00:00-14:00')")
def test_cql2_text_is_refused_or_runs(
    connection: psycopg.Connection[Any], layer: LayerSchema, text: str
) -> None:
    try:
        tree = filters.parse(text)
    except InvalidInputError as error:
        assert "filter" in str(error)
        return
    row = run(connection, layer, tree)
    if row is not None:
        assert 0 <= row[1] <= 3 and row[2] == row[1]


def rounded(tree: Any) -> Any:
    """The tree with its numbers to 12 digits: the cql2 package reads CQL2-JSON numbers
    with a last digit off (3.1193019415222696e+50 becomes ...692e+50)."""
    if isinstance(tree, dict):
        return {k: rounded(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [rounded(v) for v in tree]
    if isinstance(tree, float):
        return float(f"{tree:.12g}")
    return tree


@DB
@given(cql2_texts)
def test_cql2_json_of_the_text_runs_the_same(
    connection: psycopg.Connection[Any], layer: LayerSchema, text: str
) -> None:
    try:
        tree = filters.parse(text)
    except InvalidInputError:
        return
    try:
        document = json.dumps(tree, allow_nan=False, ensure_ascii=False)
    except ValueError:  # 1e400 in the text: an infinity JSON cannot write
        return
    again = filters.parse(document, "cql2-json")
    assert rounded(again) == rounded(tree)
    assert run(connection, layer, again) == run(connection, layer, tree)


@DB
@given(st.lists(st.tuples(properties, junk | numbers), min_size=1, max_size=3))
@example([("n", "9" * 400)])
@example([("name", "\x00")])
@example([("name", "\ud800")])
@example([("area", "1e400")])
def test_equalities_are_refused_or_run(
    connection: psycopg.Connection[Any], layer: LayerSchema, pairs: list[tuple[str, str]]
) -> None:
    try:
        conditions = filters.equalities(layer, pairs)
    except InvalidInputError as error:
        assert "holds numbers" in str(error) or "has no property" in str(error)
        return
    assert len(conditions) == len(pairs)
    row = run(connection, layer, {"op": "and", "args": conditions})
    if row is not None and pairs[0] == ("name", "甲"):
        assert row[1] == 1


@FAST
@given(junk, st.sampled_from((None, "cql2-text", "cql2-json", "CQL2-JSON", "xml")))
@example("[" * 5000 + "]" * 5000, "cql2-json")
@example('{"op":"not","args":[' * 5000 + "true" + "]}" * 5000, "cql2-json")
# found by benchmarks/fuzz.py: a bare Exception of cql2, minutes to refuse open parentheses
@example("S_INTERSECTS(geometry, POLYGON((112 23, 113 23, 113 24,1 22,1 4 112 23)))", None)
@example("(" * 24 + "\x00built >" + "(" * 24 + " DATE('(", None)
@example("(" * 12 + "n = 1 AND" + ")" * 12, None)
def test_cql2_garbage_is_refused(text: str, lang: str | None) -> None:
    try:
        filters.parse(text, lang)
    except InvalidInputError as error:
        assert "filter" in str(error)


@pytest.mark.parametrize(
    "text",
    [
        "NOT (" * 5000 + "n = 1" + ")" * 5000,
        "NOT " * 5000 + "n = 1",
        "(" * 5000 + "n = 1" + ")" * 5000,
        "n = " + "(" * 5000 + "1" + ")" * 5000,
        "n = " + "- " * 5000 + "1",
        "n = " + " + ".join(["1"] * 5000),
        "S_INTERSECTS(geometry, GEOMETRYCOLLECTION(" * 3000 + "POINT(1 2)" + "))" * 3000,
    ],
    ids=["not-parens", "not-not", "parens", "arithmetic-parens", "signs", "sum", "collections"],
)
def test_cql2_text_nested_too_deep_is_refused(text: str) -> None:
    """Once a segmentation fault of the CQL2 parser (its recursion on the C stack)."""
    with pytest.raises(InvalidInputError, match=r"nested|not valid"):
        filters.parse(text)


def test_cql2_nesting_within_the_limit_runs(
    connection: psycopg.Connection[Any], layer: LayerSchema
) -> None:
    depth = filters.MAX_NESTING // 2
    tree = filters.parse("NOT (" * depth + "n = 1" + ")" * depth)
    assert run(connection, layer, tree) is not None
    tree = filters.parse('{"op":"not","args":[' * depth + "true" + "]}" * depth, "cql2-json")
    assert run(connection, layer, tree) is not None
