"""QGIS reads the platform: Debian's QGIS 3.22 (``python3-qgis``), headless, runs
``tests/qgis_client.py`` once for the module against the live demo server, loading the
parcels through OGC API - Features (provider ``OAPIF``) and as vector tiles, the imagery
through WMTS (WebMercatorQuad and Tianditu's ``c``), the ``land`` map through WMS, and the
parcels styled by the platform's SLD 1.1; each rendered by QGIS to a PNG, decoded here.

The parcels' land-use colours come from the platform's own style (the MapLibre document's
``match`` list); fills drawn at the style's opacity over white are those colours blended.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyproj
import pytest
from PIL import Image
from support import LiveServer

PYTHON = Path("/usr/bin/python3")
CLIENT = Path(__file__).resolve().parent / "qgis_client.py"
STYLE = "land:parcels-landuse"
BBOX = (111.99, 22.89, 112.01, 22.91)
FILTER = ("dlbm LIKE '01%'", "\"dlbm\" LIKE '01%'")
"""The filter as CQL2 text for the API, and as QGIS's expression."""


@pytest.fixture(scope="module")
def api(demo_api: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_api.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def qgis(
    api: httpx.Client, demo_api: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path]:
    """One QGIS process for the module: what it said (result.json) and its images' folder."""
    probe = subprocess.run([PYTHON, "-c", "import qgis.core"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("QGIS's Python bindings (python3-qgis) are not installed")
    out = tmp_path_factory.mktemp("qgis")
    w, s, e, n = api.get("/collections/parcels").json()["extent"]["spatial"]["bbox"][0]
    to_3857 = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)
    plan = {
        "base": demo_api.url, "out": str(out), "bbox": BBOX, "filter": FILTER[1], "style": STYLE,
        "near": [*to_3857.transform(*BBOX[:2]), *to_3857.transform(*BBOX[2:])],
        "extent": [*to_3857.transform(w, s), *to_3857.transform(e, n)],
        "extent_4490": [w, s, e, n],
    }  # fmt: skip
    (out / "plan.json").write_text(json.dumps(plan))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(out), "QT_QPA_PLATFORM": "offscreen",
           "XDG_RUNTIME_DIR": str(out), "LANG": "C.UTF-8"}  # fmt: skip
    done = subprocess.run([PYTHON, CLIENT, out / "plan.json"], capture_output=True, text=True,
                          env=env, timeout=180, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    return result, out


def _step(qgis: tuple[dict[str, Any], Path], name: str) -> dict[str, Any]:
    found: dict[str, Any] = qgis[0][name]
    assert "exception" not in found, found.get("exception")
    assert found["valid"] if "valid" in found else found["loaded"], found
    assert not found["render"]["errors"], found["render"]
    return found


def _pixels(qgis: tuple[dict[str, Any], Path], step: dict[str, Any]) -> np.ndarray:
    """The rendered image's RGB pixels, one row each."""
    with Image.open(qgis[1] / step["render"]["png"]) as image:
        return np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)


def _landuse(api: httpx.Client) -> tuple[dict[str, str], float]:
    """The land-use classes' colours (``01``: ``#f8f07a``, ...) and their fill opacity, from
    the platform's MapLibre style."""
    style = api.get(f"/collections/parcels/styles/{STYLE}", params={"f": "mapbox"}).json()
    fill = next(layer for layer in style["layers"] if layer["type"] == "fill")
    _, _, *pairs = fill["paint"]["fill-color"]
    return dict(zip(pairs[0:-1:2], pairs[1:-1:2], strict=True)), fill["paint"]["fill-opacity"]


def _rgb(color: str, opacity: float = 1.0) -> np.ndarray:
    """``#rrggbb`` drawn at ``opacity`` over white."""
    rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
    return np.round(rgb * opacity + 255 * (1 - opacity)).astype(int)


def _classes_seen(pixels: np.ndarray, colors: dict[str, str], opacity: float) -> set[str]:
    """The classes whose colour covers at least 0.2 % of the image (within 2 levels)."""
    seen = set()
    for key, color in colors.items():
        near = (np.abs(pixels - _rgb(color, opacity)) <= 2).all(axis=1)
        if near.mean() >= 0.002:
            seen.add(key)
    return seen


def _matched(api: httpx.Client, **params: Any) -> int:
    body = api.get("/collections/parcels/items", params={"limit": 1, **params}).json()
    return int(body["numberMatched"])


def test_qgis_reads_every_parcel_a_bbox_and_a_filter_through_oapif(
    api: httpx.Client, qgis: tuple[dict[str, Any], Path]
) -> None:
    found = qgis[0]["oapif"]
    assert found["valid"] and found["crs"] == "EPSG:4326", found
    total = _matched(api)
    assert found["reported"] == found["read"] == found["distinct_keys"] == total > 10_000
    assert {"dkbm", "dlbm", "dlmc", "tbmj"} <= set(found["fields"])
    assert found["in_bbox"] == _matched(api, bbox=",".join(map(str, BBOX))) > 100
    assert found["filtered"] == _matched(api, filter=FILTER[0]) > 100
    pixels = _pixels(qgis, _step(qgis, "oapif"))
    assert (pixels != 255).any(axis=1).mean() > 0.3  # drawn, in QGIS's default symbol


def test_qgis_loads_the_platforms_sld_and_draws_the_land_use_colours(
    api: httpx.Client, qgis: tuple[dict[str, Any], Path]
) -> None:
    styled = _step(qgis, "sld")
    colors, _ = _landuse(api)
    assert styled["renderer"] == "RuleRenderer"
    rules = {r["filter"]: r["colors"] for r in styled["rules"]}
    for key, color in colors.items():  # the SLD's rules, as QGIS read them
        assert rules[f"dlbm LIKE '{key}%'"] == [color], (key, rules)
    seen = _classes_seen(_pixels(qgis, styled), colors, 1.0)  # the SLD fills are opaque
    assert len(seen) >= 6 and {"01", "05", "07"} <= seen, seen  # the town centre's classes


def test_qgis_draws_the_parcels_vector_tiles(
    api: httpx.Client, qgis: tuple[dict[str, Any], Path]
) -> None:
    """The XYZ template of the WebMercatorQuad tileset, styled from the MapLibre document
    (its land-use fills recreated: QGIS 3.22's converter cannot read their expression)."""
    tiles = _step(qgis, "vectortile")
    assert tiles["crs"] == "EPSG:3857" and tiles["converted"]
    colors, opacity = _landuse(api)
    assert {s["color"] for s in tiles["styles"]} >= set(colors.values())
    seen = _classes_seen(_pixels(qgis, tiles), colors, opacity)
    assert len(seen) >= 6 and {"01", "03", "07"} <= seen, seen


def test_qgis_draws_the_imagery_through_wmts_in_both_tile_matrix_sets(
    qgis: tuple[dict[str, Any], Path],
) -> None:
    for name, crs in (("wmts", "EPSG:3857"), ("wmts_c", "EPSG:4490")):
        step = _step(qgis, name)
        assert step["crs"] == crs and "tileMatrixSet=" in step["uri"]
        pixels = _pixels(qgis, step)
        assert (pixels != 255).any(axis=1).mean() > 0.5, name
        assert len(np.unique(pixels, axis=0)) > 5_000, name  # imagery, not a flat fill


def test_qgis_draws_the_land_map_through_wms(
    api: httpx.Client, qgis: tuple[dict[str, Any], Path]
) -> None:
    """The ``land`` subsystem as one WMS layer: its parcels in their land-use colours, drawn
    by the server at the style's opacity."""
    step = _step(qgis, "wms")
    assert step["crs"] == "EPSG:3857" and "layers=land" in step["uri"]
    colors, opacity = _landuse(api)
    seen = _classes_seen(_pixels(qgis, step), colors, opacity)
    assert len(seen) >= 6 and {"01", "03", "07"} <= seen, seen
