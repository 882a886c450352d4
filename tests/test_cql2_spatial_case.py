"""CQL2 spatial functions, spatial literals, basic, case-insensitive and advanced comparisons
(the CQL2 1.0 conformance classes ``spatial-functions``, ``basic-spatial-functions-plus``,
``basic-cql2``, ``case-insensitive-comparison`` and ``advanced-comparison-operators``),
through the items API of a live server, in both encodings, each result compared with an
evaluation in Python.

The spatial layers (points, lines, polygons: a layer holds one geometry type) are drawn on
a grid of eighths of a degree, so every coordinate is exact and the cases are exact too:
polygons that share an edge or only a corner, overlap, lie inside one another or are
equal with their vertices in another order; lines along an edge, across, inside,
overlapping a part of another line; points on an edge, a corner, in a polygon's hole.
Each function's matches are the features shapely's predicate (GEOS, as PostGIS) says.

The words layer holds Latin, Greek, German and Chinese text that differs in case only,
text with the characters LIKE treats specially, NULLs and an empty string; its matches
are Python's: ``str.casefold`` (Unicode full case folding, as CQL2 asks of ``CASEI``), a
LIKE written as a regular expression, and three-valued logic for NULL.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cql2
import httpx
import psycopg
import pytest
import shapely
import shapely.geometry
from psycopg import sql
from support import LiveServer, wait_for_collection

from spatial import features, filters
from spatial.features import LayerSchema, Params
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

# -- the spatial layers --------------------------------------------------------------------


def _xy(x: float, y: float) -> tuple[float, float]:
    """A grid point (eighths of a degree from 112°E 22°N: exact as doubles)."""
    return 112 + x / 8, 22 + y / 8


def _box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.Polygon([_xy(x0, y0), _xy(x1, y0), _xy(x1, y1), _xy(x0, y1)])


def _line(*points: tuple[float, float]) -> shapely.LineString:
    return shapely.LineString([_xy(*p) for p in points])


def _point(x: float, y: float) -> shapely.Point:
    return shapely.Point(_xy(x, y))


HOLED = shapely.Polygon(_box(10, 0, 16, 6).exterior.coords, [_box(12, 2, 14, 4).exterior.coords])
POLYGONS = {
    "A": _box(0, 0, 4, 4),
    "A_again": shapely.Polygon([_xy(4, 4), _xy(4, 0), _xy(0, 0), _xy(0, 4)]),  # equals A
    "B": _box(4, 0, 8, 4),  # shares A's east edge
    "C": _box(2, 2, 6, 6),  # overlaps A and B
    "D": _box(1, 1, 2, 2),  # inside A
    "E": _box(8, 4, 9, 5),  # meets B at a corner
    "holed": HOLED,
    "far": _box(20, 20, 21, 21),
}
LINES = {
    "across": _line((-2, 2), (10, 2)),  # through A and B, along D's top edge
    "edge": _line((0, 4), (4, 4)),  # along A's top edge, ends at B's corner
    "inside": _line((1, 3), (3, 3)),  # in A, into C
    "corner": _line((-1, -1), (0, 0)),  # ends at A's corner
    "diagonal": _line((0, 0), (4, 4)),  # A's diagonal: ends on its boundary
    "overlap": _line((6, 2), (12, 2)),  # shares a part of "across"
    "vertical": _line((3, -1), (3, 5)),  # crosses "across"
    "far": _line((30, 30), (31, 31)),
}
POINTS = {
    "in_A": _point(1, 3),
    "on_edge": _point(4, 2),  # on the edge A and B share
    "corner": _point(0, 0),
    "in_D": _point(1.5, 1.5),
    "on_line": _point(5, 2),  # on "across"
    "in_hole": _point(13, 3),
    "far": _point(25, 25),
}
LAYERS = {"cql2_s_polygons": POLYGONS, "cql2_s_lines": LINES, "cql2_s_points": POINTS}

LITERALS: dict[str, Any] = {
    "POINT": _point(4, 2),
    "LINESTRING": _line((-2, 2), (10, 2)),
    "POLYGON": _box(0, 0, 4, 4),
    "POLYGON with a hole": HOLED,
    "MULTIPOINT": shapely.MultiPoint([_xy(0, 0), _xy(1, 3), _xy(13, 3)]),
    "MULTILINESTRING": shapely.MultiLineString([_line((0, 4), (4, 4)), _line((3, -1), (3, 5))]),
    "MULTIPOLYGON": shapely.MultiPolygon([_box(2, 2, 6, 6), _box(20, 20, 21, 21)]),
    "GEOMETRYCOLLECTION": shapely.GeometryCollection([_point(13, 3), _box(1, 1, 2, 2)]),
    "BBOX": _box(0, 0, 4, 4),
}
"""Every kind of spatial literal CQL2 has (``BBOX`` is written as one, the rest as WKT
in the text and GeoJSON in CQL2-JSON)."""

PREDICATES: dict[str, Callable[[Any, Any], bool]] = {
    "S_INTERSECTS": shapely.intersects,
    "S_EQUALS": shapely.equals,
    "S_DISJOINT": shapely.disjoint,
    "S_TOUCHES": shapely.touches,
    "S_WITHIN": shapely.within,
    "S_OVERLAPS": shapely.overlaps,
    "S_CROSSES": shapely.crosses,
    "S_CONTAINS": shapely.contains,
}


MIXED_COLLECTIONS = frozenset({"S_INTERSECTS", "S_DISJOINT"})
"""The functions compared with shapely on a collection of a point and a polygon. For the
others the boundary of such a collection is a matter of the GEOS version: shapely's GEOS
3.14 relates polygon D to the collection of D and a distant point as ``2F2F110F2`` (D's
interior outside the collection that holds it), PostGIS's GEOS 3.11 as ``2FFF1F0F2``."""


def _spatial(function: str, geometry: Any, name: str, *, literal_first: bool = False
             ) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """``function(geometry, literal)`` (or the literal first) as CQL2 text and CQL2-JSON."""
    if name == "BBOX":
        west, south, east, north = geometry.bounds
        text = f"BBOX({west},{south},{east},{north})"
        document: Any = {"bbox": [west, south, east, north]}
    else:
        text = shapely.to_wkt(geometry, rounding_precision=-1)
        document = json.loads(json.dumps(shapely.geometry.mapping(geometry)))
    args_text = [text, "geometry"] if literal_first else ["geometry", text]
    args_json = [document, {"property": "geometry"}]
    if not literal_first:
        args_json.reverse()
    return f"{function}({', '.join(args_text)})", {"op": function.lower(), "args": args_json}


def _ingest(
    settings: Settings, folder: Path, collection: str, rows: list[tuple[dict[str, Any], Any]]
) -> None:
    """A GeoJSON file of ``(properties, geometry)`` ingested as ``collection``."""
    path = folder / f"{collection}.geojson"
    features = [
        {"type": "Feature", "properties": properties,
         "geometry": None if geometry is None else shapely.geometry.mapping(geometry)}
        for properties, geometry in rows
    ]  # fmt: skip
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    source = VectorSource(path=path, collection_id=collection, title=collection, public=True)
    ingest_vector(url, source, settings, actor="pytest")


# -- the words layer -----------------------------------------------------------------------

WORDS: dict[str, str | None] = {
    "w1": "Straße", "w2": "STRASSE", "w3": "strasse",  # ß folds to ss
    "w4": "ΟΔΟΣ", "w5": "Οδος", "w6": "οδοσ",  # final sigma folds to σ (CQL2's own example)
    "w7": "École", "w8": "ÉCOLE", "w9": "ecole",  # no accent folding
    "w10": "København", "w11": "KØBENHAVN",
    "w12": "İstanbul", "w13": "istanbul",  # İ folds to i and a combining dot
    "w14": "ﬁnal", "w15": "FINAL",  # a ligature folds to two letters
    "w16": "云浮市", "w17": "云浮市 Yunfu", "w18": "YUNFU 云浮", "w19": "广东 GuangDong",
    "w20": "100%", "w21": "100 percent", "w22": "a_b", "w23": "axb", "w24": "back\\slash",
    "w25": "", "w26": None,
}  # fmt: skip


def _row(i: int, label: str) -> dict[str, Any]:
    """Numbers, a date, a timestamp and a boolean beside each word (some NULL)."""
    return {
        "label": label,
        "name": WORDS[label],
        "n": None if i % 7 == 6 else i % 9 - 2,
        "x": None if i % 5 == 4 else (i - 10) * 0.75,
        "day": None if i % 4 == 3 else f"2022-04-{14 + i % 4:02d}",
        "at": None if i % 6 == 5 else f"2022-04-16T10:1{i % 3}:19Z",
        "flag": None if i % 8 == 7 else i % 2 == 0,
    }


ROWS = {label: _row(i, label) for i, label in enumerate(WORDS)}


@pytest.fixture(scope="module")
def api(
    live_api: LiveServer, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """The live API once the four layers are in its catalog."""
    folder = tmp_path_factory.mktemp("cql2_spatial_case")
    for collection, zoo in LAYERS.items():
        _ingest(settings, folder, collection, [({"label": k}, g) for k, g in zoo.items()])
    words = [(row, _point(i % 10, i // 10)) for i, row in enumerate(ROWS.values())]
    _ingest(settings, folder, "cql2_words", words)
    with httpx.Client(base_url=live_api.url, timeout=60) as client:
        for collection in (*LAYERS, "cql2_words"):
            wait_for_collection(client, collection)
        yield client


def _labels(api: httpx.Client, collection: str, text: str, document: Any) -> set[str]:
    """The labels the items API matches with the filter as CQL2 text and as CQL2-JSON,
    which must be the same."""
    found = []
    for params in (
        {"filter": text},
        {"filter": json.dumps(document, ensure_ascii=False), "filter-lang": "cql2-json"},
    ):
        response = api.get(f"/collections/{collection}/items", params={"limit": 1000, **params})
        assert response.status_code == 200, (params, response.text)
        page = response.json()
        assert page["numberMatched"] == len(page["features"]), params
        found.append({f["properties"]["label"] for f in page["features"]})
    assert found[0] == found[1], (text, document)
    return found[0]


# -- spatial functions ---------------------------------------------------------------------


def test_the_zoo_has_every_relation() -> None:
    """The layers are built for the cases: each function matches something and misses
    something on them, so no function's test passes by matching nothing or everything."""
    for function, predicate in PREDICATES.items():
        results = {
            predicate(geometry, literal)
            for zoo in LAYERS.values()
            for geometry in zoo.values()
            for literal in LITERALS.values()
        }
        assert results == {True, False}, function


@pytest.mark.parametrize("collection", list(LAYERS))
@pytest.mark.parametrize("function", list(PREDICATES))
def test_every_spatial_function_with_every_literal(
    api: httpx.Client, function: str, collection: str
) -> None:
    """``function(geometry, literal)`` matches what shapely's predicate says, for every
    kind of literal, in both encodings."""
    predicate, zoo = PREDICATES[function], LAYERS[collection]
    for name, literal in LITERALS.items():
        if name == "GEOMETRYCOLLECTION" and function not in MIXED_COLLECTIONS:
            continue
        expected = {label for label, geometry in zoo.items() if predicate(geometry, literal)}
        assert _labels(api, collection, *_spatial(function, literal, name)) == expected, name


@pytest.mark.parametrize("function", list(PREDICATES))
def test_a_literal_first_swaps_the_relation(api: httpx.Client, function: str) -> None:
    """``S_WITHIN(literal, geometry)`` is ``literal`` within the feature, and so on."""
    predicate = PREDICATES[function]
    for collection, zoo in LAYERS.items():
        for name in ("POLYGON", "LINESTRING", "POINT"):
            literal = LITERALS[name]
            expected = {label for label, geometry in zoo.items() if predicate(literal, geometry)}
            query = _spatial(function, literal, name, literal_first=True)
            assert _labels(api, collection, *query) == expected, (collection, name)


def test_the_standards_spatial_literal_examples(api: httpx.Client) -> None:
    """Literals written as CQL2's examples write them: ``MULTIPOINT`` without inner
    parentheses, keywords in lower case, a three-dimensional ``BBOX`` (its heights
    ignored: the layer is flat)."""
    a = POLYGONS["A"]
    cases = {
        "S_INTERSECTS(geometry, MULTIPOINT({} {}, {} {}))".format(*_xy(0, 0), *_xy(13, 3)): (
            shapely.MultiPoint([_xy(0, 0), _xy(13, 3)])
        ),
        "s_intersects(geometry, point({} {}))".format(*_xy(1.5, 1.5)): _point(1.5, 1.5),
        "S_INTERSECTS(geometry, BBOX({},{},-10,{},{},10))".format(*_xy(0, 0), *_xy(4, 4)): a,
    }
    for text, literal in cases.items():
        document = cql2.parse_text(text).to_json()
        for collection, zoo in LAYERS.items():
            expected = {k for k, g in zoo.items() if shapely.intersects(g, literal)}
            assert _labels(api, collection, text, document) == expected, (collection, text)


# -- case-insensitive and advanced comparisons ---------------------------------------------

Value = Any
"""A row's value, or None (NULL)."""


def _casei(value: str | None) -> str | None:
    return None if value is None else value.casefold()


def _like(value: str | None, pattern: str) -> bool | None:
    """CQL2 LIKE: ``%`` any run of characters, ``_`` one, ``\\`` escapes the next."""
    if value is None:
        return None
    wildcards = {"%": ".*", "_": "."}
    regex = "".join(
        re.escape(m[1]) if m[1] else wildcards.get(m[0], re.escape(m[0]))
        for m in re.finditer(r"\\(.)|.", pattern, re.DOTALL)
    )
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _not(value: bool | None) -> bool | None:
    return None if value is None else not value


def _eq(value: Value, *others: Value) -> bool | None:
    """``value IN (others)`` (``=`` with one): NULL when the value is NULL."""
    return None if value is None else value in others


def _between(value: float | None, low: float, high: float) -> bool | None:
    return None if value is None else low <= value <= high


Oracle = Callable[[dict[str, Any]], bool | None]


def _day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _on(row: dict[str, Any]) -> dt.date | None:
    return None if row["day"] is None else _day(row["day"])


def _at(row: dict[str, Any]) -> dt.datetime | None:
    return None if row["at"] is None else dt.datetime.fromisoformat(row["at"])


CASEI: list[tuple[str, Oracle]] = [
    ("CASEI(name) = casei('STRASSE')", lambda r: _eq(_casei(r["name"]), "strasse")),
    ("CASEI(name) = casei('Straße')", lambda r: _eq(_casei(r["name"]), "strasse")),
    ("CASEI(name) = casei('Οδος')", lambda r: _eq(_casei(r["name"]), "οδοσ")),
    ("CASEI(name) = casei('école')", lambda r: _eq(_casei(r["name"]), "école")),
    ("CASEI(name) = casei('københavn')", lambda r: _eq(_casei(r["name"]), "københavn")),
    ("CASEI(name) = casei('İSTANBUL')", lambda r: _eq(_casei(r["name"]), "i̇stanbul")),
    ("CASEI(name) = casei('Final')", lambda r: _eq(_casei(r["name"]), "final")),
    ("CASEI(name) = casei('云浮市')", lambda r: _eq(_casei(r["name"]), "云浮市")),
    ("CASEI(name) = 'strasse'", lambda r: _eq(_casei(r["name"]), "strasse")),
    ("casei('Yunfu 云浮') = CASEI(name)", lambda r: _eq(_casei(r["name"]), "yunfu 云浮")),
    ("CASEI(name) <> casei('FINAL')", lambda r: _not(_eq(_casei(r["name"]), "final"))),
    ("CASEI(name) <> casei('ΟΔΟΣ')", lambda r: _not(_eq(_casei(r["name"]), "οδοσ"))),
    ("CASEI(name) LIKE casei('%YUNFU%')", lambda r: _like(_casei(r["name"]), "%yunfu%")),
    ("CASEI(name) LIKE casei('stra%e')", lambda r: _like(_casei(r["name"]), "stra%e")),
    ("CASEI(name) LIKE casei('云浮%')", lambda r: _like(_casei(r["name"]), "云浮%")),
    ("CASEI(name) LIKE casei('广东 g_angdong')",
     lambda r: _like(_casei(r["name"]), "广东 g_angdong")),
    ("CASEI(name) LIKE casei('%Ø%')", lambda r: _like(_casei(r["name"]), "%ø%")),
    ("CASEI(name) NOT LIKE casei('%A%')", lambda r: _not(_like(_casei(r["name"]), "%a%"))),
    ("CASEI(name) IN (casei('KØBENHAVN'), casei('İstanbul'), casei('yunfu 云浮'), casei('x'))",
     lambda r: _eq(_casei(r["name"]), "københavn", "i̇stanbul", "yunfu 云浮")),
    ("CASEI(name) NOT IN (casei('Straße'), casei('οδος'))",
     lambda r: _not(_eq(_casei(r["name"]), "strasse", "οδοσ"))),
    ("CASEI(CASEI(name)) = casei(casei('STRASSE'))", lambda r: _eq(_casei(r["name"]), "strasse")),
]  # fmt: skip
"""CASEI with =, <>, LIKE and IN, and what Python's case folding makes of each."""

ADVANCED: list[tuple[str, Oracle]] = [
    # the patterns of CQL2's abstract test (A.8): '%' and '%%' agree, '_%' and '' do not
    ("name LIKE '%'", lambda r: _like(r["name"], "%")),
    ("name LIKE '%%'", lambda r: _like(r["name"], "%")),
    ("name LIKE '_%'", lambda r: _like(r["name"], "_%")),
    ("name LIKE ''", lambda r: _like(r["name"], "")),
    ("name LIKE 'Stra_e'", lambda r: _like(r["name"], "Stra_e")),  # ß is one character
    ("name LIKE '云浮_'", lambda r: _like(r["name"], "云浮_")),
    ("name LIKE '%浮%'", lambda r: _like(r["name"], "%浮%")),
    ("name LIKE 'a_b'", lambda r: _like(r["name"], "a_b")),
    ("name LIKE 'a\\_b'", lambda r: _like(r["name"], "a\\_b")),  # an escaped wildcard
    ("name LIKE '100\\%'", lambda r: _like(r["name"], "100\\%")),
    ("name LIKE '100%'", lambda r: _like(r["name"], "100%")),
    ("name LIKE 'back\\\\slash'", lambda r: _like(r["name"], "back\\\\slash")),
    ("name LIKE 'STRASSE'", lambda r: _like(r["name"], "STRASSE")),  # LIKE keeps case
    ("name NOT LIKE '%a%'", lambda r: _not(_like(r["name"], "%a%"))),
    ("NOT name LIKE 'S%'", lambda r: _not(_like(r["name"], "S%"))),
    ("n BETWEEN 0 AND 3", lambda r: _between(r["n"], 0, 3)),
    ("n NOT BETWEEN 0 AND 3", lambda r: _not(_between(r["n"], 0, 3))),
    ("n BETWEEN 3 AND 0", lambda r: _between(r["n"], 3, 0)),  # an empty range
    ("x BETWEEN -1.5 AND 2.25", lambda r: _between(r["x"], -1.5, 2.25)),
    ("x NOT BETWEEN -1.5 AND 2.25", lambda r: _not(_between(r["x"], -1.5, 2.25))),
    ("n BETWEEN x AND 4", lambda r: None if r["x"] is None else _between(r["n"], r["x"], 4)),
    ("n IN (-2, 0, 3, 99)", lambda r: _eq(r["n"], -2, 0, 3, 99)),
    ("n NOT IN (-2, 0, 3, 99)", lambda r: _not(_eq(r["n"], -2, 0, 3, 99))),
    ("x IN (-7.5, 0.75, 3)", lambda r: _eq(r["x"], -7.5, 0.75, 3)),
    ("name IN ('Straße', 'strasse', '云浮市', '', 'nope')",
     lambda r: _eq(r["name"], "Straße", "strasse", "云浮市", "")),
    ("name NOT IN ('Straße', 'strasse', '云浮市', '', 'nope')",
     lambda r: _not(_eq(r["name"], "Straße", "strasse", "云浮市", ""))),
    ("day IN (DATE('2022-04-14'), DATE('2022-04-16'))",
     lambda r: _eq(_on(r), _day("2022-04-14"), _day("2022-04-16"))),
    ("day NOT IN (DATE('2022-04-14'), DATE('2022-04-16'))",
     lambda r: _not(_eq(_on(r), _day("2022-04-14"), _day("2022-04-16")))),
    ("at IN (TIMESTAMP('2022-04-16T10:11:19Z'))",
     lambda r: _eq(_at(r), dt.datetime(2022, 4, 16, 10, 11, 19, tzinfo=dt.UTC))),
    ("at NOT IN (TIMESTAMP('2022-04-16T10:11:19Z'))",
     lambda r: _not(_eq(_at(r), dt.datetime(2022, 4, 16, 10, 11, 19, tzinfo=dt.UTC)))),
    ("flag IN (true)", lambda r: _eq(r["flag"], True)),
    ("flag NOT IN (false)", lambda r: _not(_eq(r["flag"], False))),
]  # fmt: skip
"""LIKE with wildcards and escapes, BETWEEN and IN with their negations on numbers, text,
dates, timestamps and booleans, and what Python makes of each."""


COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "<>": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


def _cmp(value: Any, op: str, other: Any) -> bool | None:
    return None if value is None else bool(COMPARISONS[op](value, other))


def _and(*values: bool | None) -> bool | None:
    if False in values:
        return False
    return None if None in values else True


def _or(*values: bool | None) -> bool | None:
    if True in values:
        return True
    return None if None in values else False


APRIL_16 = dt.datetime(2022, 4, 16, 10, 11, 19, tzinfo=dt.UTC)
BASIC: list[tuple[str, Oracle]] = [
    ("name = 'Straße'", lambda r: _cmp(r["name"], "=", "Straße")),
    ("name <> 'Straße'", lambda r: _cmp(r["name"], "<>", "Straße")),
    ("name < 'a'", lambda r: _cmp(r["name"], "<", "a")),  # code point order
    ("name >= 'ÉCOLE'", lambda r: _cmp(r["name"], ">=", "ÉCOLE")),
    ("name = ''", lambda r: _cmp(r["name"], "=", "")),
    ("n = 3", lambda r: _cmp(r["n"], "=", 3)),
    ("n <> 3", lambda r: _cmp(r["n"], "<>", 3)),
    ("n < 0", lambda r: _cmp(r["n"], "<", 0)),
    ("n <= 0", lambda r: _cmp(r["n"], "<=", 0)),
    ("n > 4", lambda r: _cmp(r["n"], ">", 4)),
    ("n >= 4", lambda r: _cmp(r["n"], ">=", 4)),
    ("x > -1.5", lambda r: _cmp(r["x"], ">", -1.5)),
    ("x = 0.75", lambda r: _cmp(r["x"], "=", 0.75)),
    ("day = DATE('2022-04-16')", lambda r: _cmp(_on(r), "=", _day("2022-04-16"))),
    ("day > DATE('2022-04-15')", lambda r: _cmp(_on(r), ">", _day("2022-04-15"))),
    ("day <= DATE('2022-04-15')", lambda r: _cmp(_on(r), "<=", _day("2022-04-15"))),
    ("at = TIMESTAMP('2022-04-16T10:11:19Z')", lambda r: _cmp(_at(r), "=", APRIL_16)),
    ("at < TIMESTAMP('2022-04-16T10:11:19Z')", lambda r: _cmp(_at(r), "<", APRIL_16)),
    ("at >= TIMESTAMP('2022-04-16T10:11:19Z')", lambda r: _cmp(_at(r), ">=", APRIL_16)),
    ("flag = true", lambda r: _cmp(r["flag"], "=", True)),
    ("flag <> TRUE", lambda r: _cmp(r["flag"], "<>", True)),
    ("flag = false", lambda r: _cmp(r["flag"], "=", False)),
    ("name IS NULL", lambda r: r["name"] is None),
    ("name IS NOT NULL", lambda r: r["name"] is not None),
    ("n IS NULL OR flag IS NULL", lambda r: r["n"] is None or r["flag"] is None),
    ("NOT (n > 2)", lambda r: _not(_cmp(r["n"], ">", 2))),
    ("n > 2 AND flag = true", lambda r: _and(_cmp(r["n"], ">", 2), _cmp(r["flag"], "=", True))),
    ("n > 2 OR name = 'ecole'", lambda r: _or(_cmp(r["n"], ">", 2), _cmp(r["name"], "=", "ecole"))),
    ("n > 2 OR FALSE", lambda r: _cmp(r["n"], ">", 2)),
    ("TRUE AND n < 1", lambda r: _cmp(r["n"], "<", 1)),
    # CQL2's abstract test "logical": (NOT p1 AND p2) OR (p3 AND NOT p4) OR NOT (p1 AND p4)
    (("(NOT n > 0 AND flag = true) OR (x < 0 AND NOT day = DATE('2022-04-14')) "
      "OR NOT (n > 0 AND day = DATE('2022-04-14'))"),
     lambda r: _or(
         _and(_not(_cmp(r["n"], ">", 0)), _cmp(r["flag"], "=", True)),
         _and(_cmp(r["x"], "<", 0), _not(_cmp(_on(r), "=", _day("2022-04-14")))),
         _not(_and(_cmp(r["n"], ">", 0), _cmp(_on(r), "=", _day("2022-04-14")))),
     )),
]  # fmt: skip
"""Basic CQL2: the six comparisons on text, numbers, dates, timestamps and booleans, IS
NULL, AND, OR, NOT and the boolean literals, and what Python makes of each (NULL as
unknown)."""


def _expected(oracle: Oracle) -> set[str]:
    return {label for label, row in ROWS.items() if oracle(row) is True}


@pytest.mark.parametrize(("text", "oracle"), BASIC, ids=[c[0] for c in BASIC])
def test_basic_cql2(api: httpx.Client, text: str, oracle: Oracle) -> None:
    expected = _expected(oracle)
    assert 0 < len(expected) < len(ROWS)
    assert _labels(api, "cql2_words", text, cql2.parse_text(text).to_json()) == expected


@pytest.mark.parametrize(("text", "oracle"), CASEI, ids=[c[0] for c in CASEI])
def test_casei(api: httpx.Client, text: str, oracle: Oracle) -> None:
    expected = _expected(oracle)
    assert 0 < len(expected) < len(ROWS)
    assert _labels(api, "cql2_words", text, cql2.parse_text(text).to_json()) == expected


@pytest.mark.parametrize(("text", "oracle"), ADVANCED, ids=[c[0] for c in ADVANCED])
def test_advanced_comparison(api: httpx.Client, text: str, oracle: Oracle) -> None:
    expected = _expected(oracle)
    assert 0 < len(expected) < len(ROWS) or text == "n BETWEEN 3 AND 0"
    assert _labels(api, "cql2_words", text, cql2.parse_text(text).to_json()) == expected


def _cased() -> list[str]:
    """Every character that has a case or folds to something else."""
    every = (chr(cp) for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF)
    return [c for c in every if c.casefold() != c or c.upper() != c or c.lower() != c]


def test_casei_folds_every_character_as_unicode_does(database_url: str) -> None:
    """On this server, CASEI makes each cased character equal to its full case folding
    (Python's ``str.casefold``) and no other: it is PostgreSQL's ``lower()``, which folds
    one character to one by the server's C library, plus what that misses."""
    chars = _cased()
    pairs = [  # characters whose lowercase begins alike but that fold apart (İ and i)
        (c, c.lower()[0]) for c in chars if c.lower()[0].casefold() != c.casefold()
    ]
    assert ("İ", "i") in pairs
    layer = LayerSchema(id="casei_chars", schema="pg_temp", table="casei_chars", srid=4326,
                        fields={"ch": "text", "other": "text", "k": "text"})  # fmt: skip
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE casei_chars AS SELECT row_number() OVER () AS fid, ch, other, "
            "k, NULL::geometry AS geom FROM unnest(%s::text[], %s::text[], %s::text[]) "
            "AS u(ch, other, k)",
            (
                chars + [a for a, _ in pairs],
                [c.casefold() for c in chars] + [b for _, b in pairs],
                ["fold"] * len(chars) + ["apart"] * len(pairs),
            ),
        )

        def matched(text: str) -> list[tuple[str, str, str]]:
            params = Params()
            where = filters.compile_filter(filters.parse(text), layer, params)
            statement = sql.SQL("SELECT t.ch, t.other, t.k FROM {} t WHERE {}").format(
                features.source(layer), where
            )
            return [tuple(row) for row in conn.execute(statement, params).fetchall()]

        assert matched("k = 'fold' AND NOT CASEI(ch) = CASEI(other)") == []
        assert matched("k = 'apart' AND CASEI(ch) = CASEI(other)") == []
        assert len(matched("k = 'fold'")) == len(chars) > 2000


def test_null_matches_neither_a_comparison_nor_its_negation(api: httpx.Client) -> None:
    """The NULL name, number and flag are in no result of a predicate or of its NOT."""
    for text in ("CASEI(name) LIKE '%'", "n BETWEEN -100 AND 100", "flag IN (true, false)"):
        matched = _labels(api, "cql2_words", text, cql2.parse_text(text).to_json())
        negated = _labels(api, "cql2_words", f"NOT ({text})",
                          cql2.parse_text(f"NOT ({text})").to_json())  # fmt: skip
        column = re.findall(r"\b(name|n|flag)\b", text)[0]
        nulls = {label for label, row in ROWS.items() if row[column] is None}
        assert nulls and not negated
        assert matched == set(ROWS) - nulls


def test_the_standards_examples_as_written_in_json(api: httpx.Client) -> None:
    """CQL2-JSON written by hand, as CQL2's examples do (not produced by the parser)."""
    document: dict[str, Any] = {
        "op": "in",
        "args": [
            {"op": "casei", "args": [{"property": "name"}]},
            [{"op": "casei", "args": ["Οδος"]}, {"op": "casei", "args": ["Straße"]}],
        ],
    }
    text = "CASEI(name) IN (CASEI('Οδος'), CASEI('Straße'))"
    assert _labels(api, "cql2_words", text, document) == {"w1", "w2", "w3", "w4", "w5", "w6"}
    document = {"op": "like", "args": [{"property": "name"}, "100\\%"]}
    assert _labels(api, "cql2_words", "name LIKE '100\\%'", document) == {"w20"}
    document = {"op": "between", "args": [{"property": "n"}, 0, 3]}
    assert _labels(api, "cql2_words", "n BETWEEN 0 AND 3", document) == _expected(
        lambda r: _between(r["n"], 0, 3)
    )


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"op": "like", "args": [{"property": "name"}, "%\\"]}, "ends with the escape"),
        ({"op": "like", "args": [{"property": "name"}, {"op": "casei", "args": ["a\\\\\\"]}]},
         "ends with the escape"),
        ({"op": "like", "args": [{"property": "n"}, "1%"]}, "like needs a text property"),
        ({"op": "between", "args": [{"property": "n"}, 1]}, "between takes three arguments"),
        ({"op": "in", "args": [{"property": "n"}, []]}, "in needs a non-empty list"),
        ({"op": "in", "args": [{"property": "n"}, ["a"]]}, "cannot compare"),
        ({"op": "=", "args": [{"op": "casei", "args": [{"property": "n"}]}, "1"]},
         "casei needs text"),
    ],
)  # fmt: skip
def test_mistyped_comparisons_are_400_with_the_reason(
    api: httpx.Client, document: Any, reason: str
) -> None:
    response = api.get(
        "/collections/cql2_words/items",
        params={"filter": json.dumps(document), "filter-lang": "cql2-json"},
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "InvalidParameterValue" and reason in body["description"]
