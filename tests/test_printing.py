"""Printed maps and reports (``POST /maps/{subsystem}/print``) against the demo city.

Over real HTTP, each PDF read back with pypdf: an A3 landscape land map at 1:10,000 with
three parcels selected is one map sheet and a table page; its page is 1190.55 x 841.89 pt;
its text (Chinese in the embedded font) holds the title, the department, the date, "1:10,000",
every legend label of the layers shown, the graticule's labels and the selected parcels'
rows; the map frame is the renderer's vector drawing (a Form XObject of paths filled in the
parcels' YAML colours, no image), placed where the layout says, and true to scale: its width
in points times the scale is the geodesic ground width of the bbox it shows (within 1 %).
A process result printed as a report (A4 portrait, 595.28 x 841.89 pt) lists the rows it was
given with their totals and draws its zone, which the frame (at a round scale) contains.
Bad bodies are 400s whose messages name the field; a map's restricted layer is refused to a
caller who may not read it (and absent from the default print) and printed for one who may;
a grant's row filter applies to the selected features; closed maps are 401/403.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import httpx
import pytest
import shapely
from pypdf import PdfReader
from pypdf.generic import ContentStream
from pyproj import Geod, Transformer
from support import TESTS, LiveServer

from api import create_app
from layers import subsystems
from spatial import accounts
from spatial.db import engine
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import MapsSettings, Settings
from tiles.printing import CHINA

POINT_M = 0.0254 / 72
MIDDLE = (112.0, 22.9)
SECRET = "pr_secret"
TEST_MAP = """
id: pr_depts
title: 打印测试 Print test
extent: [111.9497, 22.8582, 112.0503, 22.9417]
access: public
layers:
  - {id: secret, collection: pr_secret, kind: vector, title: Secret layer,
     style: [{type: fill, paint: {fill-color: "#ff0000"}}], popup: [code],
     legend: [{label: Secret patches, color: "#ff0000"}]}
  - {id: districts, collection: districts, kind: vector, title: Districts,
     style: [{type: line, paint: {line-color: "#000000"}}],
     legend: [{label: District line, color: "#000000", symbol: line}]}
"""
CLOSED_MAP = """
id: pr_closed
title: 仅限部门 Department A only
extent: [111.9497, 22.8582, 112.0503, 22.9417]
access: {departments: [pr_a]}
layers:
  - {id: districts, collection: districts, kind: vector, title: Districts,
     style: [{type: line, paint: {line-color: "#000000"}}]}
"""
PATHS = {b"m", b"l", b"c", b"re", b"h"}
PAINTS = {b"f", b"f*", b"B", b"B*", b"S", b"s", b"b", b"b*"}


@pytest.fixture(scope="module")
def callers(demo_url: str, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``pr_secret`` (two patches: department pr_a reads both, pr_b only S1) and the keys of a
    viewer of each department."""
    path = tmp_path_factory.mktemp("print-secret") / "secret.gpkg"
    gpd.GeoDataFrame(
        {"code": ["S1", "S2"]},
        geometry=[shapely.box(111.999, 22.899, 112.001, 22.901),
                  shapely.box(112.002, 22.899, 112.004, 22.901)],
        crs="EPSG:4490",
    ).to_file(path)  # fmt: skip
    ingest_vector(demo_url, VectorSource(path=path, collection_id=SECRET, title=SECRET, key="code"),
                  settings, actor="pytest")  # fmt: skip
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    with engine(demo_url) as eng, eng.begin() as conn:
        for dept in ("pr_a", "pr_b"):
            accounts.add_department(conn, TESTS, dept, f"Print {dept}")
            accounts.add_user(conn, TESTS, f"{dept}_viewer", roles=("viewer",), department=dept,
                              service=True)  # fmt: skip
            headers[dept] = {"X-API-Key": accounts.create_key(conn, TESTS, f"{dept}_viewer")}
        accounts.add_grant(conn, TESTS, SECRET, "department:pr_a", "read")
        accounts.add_grant(conn, TESTS, SECRET, "department:pr_b", "read", row_filter="code = 'S1'")
    return headers


@pytest.fixture(scope="module")
def api(
    settings: Settings, callers: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """The live API with the shipped maps and the two test maps."""
    folder = tmp_path_factory.mktemp("print-maps")
    for path in subsystems.SUBSYSTEMS_DIR.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    (folder / "pr_depts.yaml").write_text(TEST_MAP, encoding="utf-8")
    (folder / "pr_closed.yaml").write_text(CLOSED_MAP, encoding="utf-8")
    ours = settings.model_copy(update={"maps": MapsSettings(subsystems_dir=folder)})
    with LiveServer(create_app(ours)) as live, httpx.Client(base_url=live.url, timeout=120) as c:
        yield c


def _print(api: httpx.Client, subsystem: str, body: Any, headers: Any = None) -> PdfReader:
    answer = api.post(f"/maps/{subsystem}/print", json=body, headers=headers or {})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    return PdfReader(io.BytesIO(answer.content))


def _text(pdf: PdfReader, pages: slice = slice(None)) -> str:
    return "\n".join(page.extract_text() for page in pdf.pages[pages])


def _flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _ops(stream: Any, pdf: PdfReader) -> list[tuple[list[Any], bytes]]:
    return [(list(operands), op) for operands, op in ContentStream(stream, pdf).operations]


def _colour(hex_colour: str) -> tuple[float, float, float]:
    return tuple(int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def _has_colour(ops: list[tuple[list[Any], bytes]], operator: bytes, hex_colour: str) -> bool:
    want = _colour(hex_colour)
    return any(op == operator and len(args) == 3
               and all(abs(float(a) - w) < 2e-3 for a, w in zip(args, want, strict=True))
               for args, op in ops)  # fmt: skip


def _size(pdf: PdfReader, n: int = 0) -> tuple[float, float]:
    box = pdf.pages[n].mediabox
    return round(float(box.width), 2), round(float(box.height), 2)


def _info(pdf: PdfReader, key: str) -> str:
    assert pdf.metadata is not None
    return str(pdf.metadata[f"/{key}"])


def _map_form(pdf: PdfReader) -> Any:
    return pdf.pages[0]["/Resources"]["/XObject"]["/Map"].get_object()


def _parcels(api: httpx.Client, n: int) -> list[dict[str, Any]]:
    x, y = MIDDLE
    found = api.get("/collections/parcels/items", params={
        "bbox": f"{x - 0.003},{y - 0.003},{x + 0.003},{y + 0.003}", "limit": n, "f": "json",
    }).json()["features"]  # fmt: skip
    assert len(found) == n
    return list(found)


def _dates() -> set[str]:
    return {f"{dt.datetime.now(CHINA):%Y-%m-%d}"}


def test_an_a3_land_map_at_10000_with_selected_parcels(api: httpx.Client) -> None:
    parcels = _parcels(api, 3)
    days = _dates()
    pdf = _print(api, "land", {
        "paper": "A3", "orientation": "landscape", "scale": 10000, "center": list(MIDDLE),
        "title": "宗地利用现状图 Land use sheet",
        "selected": {"collection": "parcels", "ids": [p["id"] for p in parcels]},
    })  # fmt: skip
    days |= _dates()
    assert len(pdf.pages) == 2 and _size(pdf) == (1190.55, 841.89) and _size(pdf, 1) == _size(pdf)
    sheet = _text(pdf, slice(0, 1))
    assert "宗地利用现状图 Land use sheet" in sheet
    assert "部门 Department: 自然资源 Land resources" in sheet
    assert "1:10,000" in sheet and any(day in sheet for day in days)
    assert re.search(r"11[12]°\d\d′\d\d″E", sheet) and re.search(r"22°5\d′\d\d″N", sheet)
    config = api.get("/maps/land/config").json()
    shown = [layer for layer in config["layers"] if layer["visible"]]
    labels = [entry["label"] for layer in shown for entry in layer["legend"]]
    assert labels and all(_flat(label) in _flat(sheet) for label in labels)
    assert "真彩色" not in sheet  # the imagery is not shown by default
    table = _text(pdf, slice(1, None))
    for parcel in parcels:
        assert parcel["properties"]["dkbm"] in table and parcel["properties"]["qlr"] in table
    assert _info(pdf, "SpatialCRS") == "EPSG:4546"  # the centre's 3-degree zone, CM 111E
    fonts = [f.get_object() for f in pdf.pages[0]["/Resources"]["/Font"].values()]
    assert any("WenQuanYiMicroHei" in f["/BaseFont"] and "/ToUnicode" in f
               and "/FontFile2" in f["/FontDescriptor"] for f in fonts)  # embedded  # fmt: skip

    # The map frame: the renderer's vector page, a form of paths in the parcels' colours.
    form = _map_form(pdf)
    ops = _ops(form, pdf)
    assert sum(op in PATHS for _, op in ops) > 500 and sum(op in PAINTS for _, op in ops) > 100
    assert _has_colour(ops, b"rg", "#f8f07a") and _has_colour(ops, b"rg", "#e6475a")
    assert "/Image" not in str(form["/Resources"].get("/XObject", {}))
    page_ops = _ops(pdf.pages[0].get_contents(), pdf)
    placed = next(i for i, (args, op) in enumerate(page_ops) if op == b"Do" and args == ["/Map"])
    a, _, _, d, x, y = (float(v) for v in page_ops[placed - 1][0])
    width_pt, height_pt = float(form["/BBox"][2]) * a, float(form["/BBox"][3]) * d
    frame = [float(v) for v in _info(pdf, "SpatialFrame").split(",")]
    assert frame == pytest.approx([x, y, width_pt, height_pt], abs=1e-3)
    assert _has_colour(page_ops, b"RG", "#f08c00")  # the selection, drawn over the map

    # True to scale: the frame's width on paper times 10,000 is the ground it shows.
    minx, miny, maxx, maxy = (float(v) for v in _info(pdf, "SpatialBBox").split(","))
    lons, lats = Transformer.from_crs(4546, 4490, always_xy=True).transform(
        [minx, maxx, minx, maxx], [miny, miny, maxy, maxy]
    )
    geod = Geod(ellps="GRS80")
    ground_w = geod.inv(lons[0], lats[0], lons[1], lats[1])[2]
    ground_h = geod.inv(lons[0], lats[0], lons[2], lats[2])[2]
    assert width_pt * POINT_M * 10000 == pytest.approx(ground_w, rel=0.01)
    assert height_pt * POINT_M * 10000 == pytest.approx(ground_h, rel=0.01)
    assert (sum(lons) / 4, sum(lats) / 4) == pytest.approx(MIDDLE, abs=1e-4)


def test_a_process_result_printed_as_a_report(api: httpx.Client) -> None:
    x, y = MIDDLE
    zone = {"type": "Polygon", "coordinates": [[[x - 0.006, y - 0.004], [x + 0.006, y - 0.004],
            [x + 0.006, y + 0.004], [x - 0.006, y + 0.004], [x - 0.006, y - 0.004]]]}  # fmt: skip
    inputs = {"collection": "parcels", "group_by": "dlmc"}
    ran = api.post("/processes/intersect-summarise/execution",
                   json={"inputs": {**inputs, "geometry": zone}})  # fmt: skip
    rows = ran.json()["summary"]
    assert len(rows) >= 3
    pdf = _print(api, "land", {
        "paper": "A4", "orientation": "portrait",
        "report": {"title": "地类面积统计 Land use inside a drawn area",
                   "process": "intersect-summarise", "inputs": inputs,
                   "columns": ["value", "count", "area_m2"], "rows": rows, "geometry": zone},
    })  # fmt: skip
    assert _size(pdf) == (595.28, 841.89) and len(pdf.pages) >= 2
    assert "地类面积统计 Land use inside a drawn area" in _text(pdf, slice(0, 1))
    table = _text(pdf, slice(1, None))
    assert "过程 Process: 地类面积统计 Land use inside a drawn area (intersect-summarise)" in table
    assert "group_by = dlmc" in table and "合计 Total" in table
    assert all(row["value"] in table for row in rows)
    assert f"{sum(r['count'] for r in rows):,}" in table
    total = sum(r["area_m2"] for r in rows)
    assert _flat(f"{total:,.1f} m² ({total / 1e4:,.4f} ha)") in _flat(table)
    scale = float(_info(pdf, "SpatialScale"))
    assert scale / 10 ** int(f"{scale:e}".split("e")[1]) in {1, 2, 2.5, 5}  # a round scale
    minx, miny, maxx, maxy = (float(v) for v in _info(pdf, "SpatialBBox").split(","))
    xs, ys = Transformer.from_crs(4490, 4546, always_xy=True).transform(
        [x - 0.006, x + 0.006], [y - 0.004, y + 0.004]
    )
    assert minx < xs[0] < xs[1] < maxx and miny < ys[0] < ys[1] < maxy
    assert _has_colour(_ops(pdf.pages[0].get_contents(), pdf), b"RG", "#1971c2")  # the zone


def test_imagery_prints_as_an_image_under_vector_parcels(api: httpx.Client) -> None:
    pdf = _print(api, "land", {
        "paper": "A4", "scale": 2000, "center": list(MIDDLE), "datetime": "2026-12-31",
        "layers": ["imagery-truecolor", "parcels-landuse"],
    })  # fmt: skip
    form = _map_form(pdf)
    assert "/Image" in str([x.get_object().get("/Subtype") for x in
                            form["/Resources"]["/XObject"].values()])  # fmt: skip
    assert _has_colour(_ops(form, pdf), b"rg", "#f5a35c") or _has_colour(
        _ops(form, pdf), b"rg", "#e6475a")  # fmt: skip
    assert "影像日期 Imagery as of 2026-12-31" in _text(pdf, slice(0, 1))


BAD = [
    ({"paper": "A5"}, "paper: Input should be 'A4' or 'A3'"),
    ({"orientation": "diagonal"}, "orientation"),
    ({"scale": 0}, "scale 1:0 is out of range"),
    ({"scale": 1e12}, "out of range"),
    ({"scale": 500000}, "km of ground; at most 40 km"),
    ({"center": [300, 22.9]}, "center [300.0, 22.9] must be lon, lat"),
    ({"center": [112, 22.9], "bbox": [111.9, 22.8, 112.1, 23.0]}, "center or bbox, not both"),
    ({"bbox": [112.1, 22.8, 111.9, 23.0]}, "west < east"),
    ({"layers": ["parcels-landuse", "nope"]}, "layers ['nope'] are not layers of map 'land'"),
    ({"layers": []}, "layers: List should have at least 1 item"),
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ({"crs": "EPSG:4326"}, "drawn in metres"),
    ({"crs": 4554}, "central meridian at 135E"),
    ({"datetime": "yesterday"}, "not an RFC 3339 date"),
    ({"selected": {"collection": "roads", "ids": [1]}}, "'roads' is not a collection of map"),
    ({"selected": {"collection": "parcels", "ids": [10**9]}}, "are not features of 'parcels'"),
    ({"selected": {"collection": "parcels", "ids": []}}, "selected.ids"),
    ({"report": {"title": "x", "process": "nearest", "columns": ["a"]}},
     "'nearest' is not a process map 'land' offers"),
    ({"report": {"title": "x", "process": "intersect-summarise", "columns": ["a"],
                 "rows": [{"b": 1}]}}, "rows[0] has values of columns not in"),
    ({"report": {"title": "x", "process": "intersect-summarise", "columns": ["a"],
                 "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 1], [1, 0],
                                                                  [0, 0]]]}}}, "not a valid"),
]  # fmt: skip


def test_bad_bodies_are_refused_naming_the_field(api: httpx.Client) -> None:
    for fields, message in BAD:
        centred = {} if "bbox" in fields else {"center": list(MIDDLE)}
        body = {"scale": 10000, **centred, **fields}
        answer = api.post("/maps/land/print", json=body)
        assert answer.status_code == 400, (fields, answer.text)
        assert message in answer.json()["description"], (fields, answer.json())
    for content, kind, status in ((b"[1, 2]", "application/json", 400),
                                  (b"{not json", "application/json", 400),
                                  (b"{}", "text/plain", 415)):  # fmt: skip
        answer = api.post("/maps/land/print", content=content, headers={"Content-Type": kind})
        assert answer.status_code == status, answer.text
    assert api.post("/maps/no-such-map/print", json={}).status_code == 404


def test_a_restricted_layer_and_row_filters_apply_to_prints(
    api: httpx.Client, callers: Any
) -> None:
    body = {"paper": "A4", "scale": 5000, "center": list(MIDDLE)}
    refused = api.post("/maps/pr_depts/print", json={**body, "layers": ["secret", "districts"]})
    assert refused.status_code == 400
    assert refused.json()["description"].endswith("its layers: districts")
    public = _text(_print(api, "pr_depts", body))
    assert "District line" in public and "Secret" not in public
    mine = _print(api, "pr_depts", {**body, "layers": ["secret", "districts"]}, callers["pr_a"])
    assert "Secret patches" in _text(mine)
    assert _has_colour(_ops(_map_form(mine), mine), b"rg", "#ff0000")

    patches = api.get(f"/collections/{SECRET}/items", params={"f": "json"},
                      headers=callers["pr_a"]).json()["features"]  # fmt: skip
    fid = {f["properties"]["code"]: f["id"] for f in patches}
    chosen = {"collection": SECRET, "ids": [fid["S2"]]}
    for who in ("anonymous", "pr_b"):  # pr_b reads S1 only
        answer = api.post("/maps/pr_depts/print", json={**body, "selected": chosen},
                          headers=callers[who])  # fmt: skip
        assert answer.status_code == 400, who
    mine_only = {**body, "selected": {"collection": SECRET, "ids": [fid["S1"]]}}
    listed = _print(api, "pr_depts", mine_only, callers["pr_b"])
    assert "S1" in _text(listed, slice(1, None))
    assert api.post("/maps/pr_closed/print", json=body).status_code == 401
    assert api.post("/maps/pr_closed/print", json=body, headers=callers["pr_b"]).status_code == 403
    assert api.post("/maps/pr_closed/print", json=body, headers=callers["pr_a"]).status_code == 200
