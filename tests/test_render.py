"""The renderer (:mod:`tiles.render`) called as WMS, WMTS and print call it: names and
styles resolved through the caller's view, vector PDF and SVG, imagery and hillshade under
the vector layers, the legend in the YAML's colours, refused frames."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import numpy as np
import psycopg
import pytest
from lxml import etree
from PIL import Image
from pypdf import PdfReader
from pyproj import Transformer

from layers import styles, subsystems
from layers.access import View, view
from layers.catalog import Catalog
from spatial import rasterstore
from spatial.access import ANONYMOUS, Directory
from spatial.db import engine
from spatial.errors import InvalidInputError, NotFoundError
from spatial.settings import Settings
from tiles import render

MAPS = subsystems.load()
CITY = (111.96, 22.87, 112.04, 22.93)
"""Most of the demo city (lon/lat)."""


@pytest.fixture(scope="module")
def anonymous(demo_url: str) -> View:
    with engine(demo_url) as eng, eng.begin() as conn:
        catalog, directory = Catalog.load(conn), Directory.load(conn)
    return view(ANONYMOUS, catalog, directory)


def _render(url: str, settings: Settings, seen: View, name: str, frame: render.Frame,
            *, style: str | None = None) -> bytes:  # fmt: skip
    drawables = render.resolve(seen, MAPS, name, style)

    async def run() -> bytes:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return await render.render(conn, seen, rasterstore.of(settings), drawables, frame)

    return asyncio.run(run())


def test_names_styles_and_layers(anonymous: View) -> None:
    land = render.resolve(anonymous, MAPS, "land")
    assert [d.collection for d in land] == ["parcels", "districts"]  # the visible layers
    assert land[0].opacity == 0.75 and land[0].layer is not None
    one = render.resolve(anonymous, MAPS, "land:imagery-ndvi")
    assert one[0].kind == "raster" and one[0].layer is not None
    assert render.resolve(anonymous, MAPS, "parcels", "planning:parcels-landuse")[0].layer
    with pytest.raises(NotFoundError) as unknown:
        render.resolve(anonymous, MAPS, "nope")
    with pytest.raises(NotFoundError) as closed:
        render.resolve(anonymous, MAPS, "gps_stops")  # not public: the same answer
    assert str(unknown.value).replace("nope", "X") == str(closed.value).replace("gps_stops", "X")
    with pytest.raises(InvalidInputError, match="truecolor, ndvi, ndwi"):
        render.resolve(anonymous, MAPS, "imagery", "infrared")
    listed = {info.name: info for info in render.layers(anonymous, MAPS)}
    assert "gps_stops" not in listed and listed["land"].kind == "map"
    assert "land:parcels-landuse" in listed["land"].children
    assert (
        listed["imagery"].styles[0][0] == "truecolor" and listed["dem"].styles[0][0] == "hillshade"
    )
    assert listed["parcels"].queryable and not listed["imagery"].queryable


def test_vector_pdf_and_svg(demo_url: str, settings: Settings, anonymous: View) -> None:
    frame = render.Frame(CITY, 4490, 400, 300, "pdf")
    pdf = _render(demo_url, settings, anonymous, "parcels", frame)
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    assert (float(page.mediabox.width), float(page.mediabox.height)) == (400, 300)
    content = page.get_contents().get_data().decode("latin-1")  # type: ignore[union-attr]
    assert "/Subtype /Image" not in pdf.decode("latin-1")  # vector paths, no raster inside
    assert "0.972549 0.941176 0.478431 rg" in content  # 01 cultivated land, #f8f07a
    zone = Transformer.from_crs(4490, 4546, always_xy=True).transform_bounds(*CITY)
    svg = _render(demo_url, settings, anonymous, "parcels", render.Frame(zone, 4546, 300, 300,
                                                                         "svg"))  # fmt: skip
    root = etree.fromstring(svg)
    fills = " ".join(root.xpath("//@fill") + root.xpath("//@style")).lower()
    assert "rgb(97.254902%, 94.117647%, 47.843137%)" in fills  # #f8f07a again


def test_imagery_and_hillshade_under_vectors(
    demo_url: str, settings: Settings, anonymous: View
) -> None:
    frame = render.Frame(CITY, 4490, 200, 150)
    for name, style in (("imagery", "ndvi"), ("imagery", None), ("dem", None)):
        made = _render(demo_url, settings, anonymous, name, frame, style=style)
        pixels = np.asarray(Image.open(io.BytesIO(made)).convert("RGBA"))
        assert pixels[..., 3].max() > 0 and len(np.unique(pixels.reshape(-1, 4), axis=0)) > 20


def test_the_legend_draws_the_yaml_colours(anonymous: View) -> None:
    land = render.resolve(anonymous, MAPS, "land")
    image = np.asarray(Image.open(io.BytesIO(render.legend(land))).convert("RGB"))
    colours = {tuple(int(c) for c in px) for px in image.reshape(-1, 3)}
    for entry in land[0].layer.legend if land[0].layer else []:
        hex_ = styles.colour(entry.color)[0]
        assert tuple(int(hex_[i : i + 2], 16) for i in (1, 3, 5)) in colours, entry.label
    assert Image.open(io.BytesIO(render.legend(land, "jpeg"))).format == "JPEG"


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (render.Frame((1, 1, 1, 2), 4326, 10, 10), "bbox"),
        (render.Frame(CITY, 4326, 0, 10), "width"),
        (render.Frame(CITY, 4326, 10, 99999), "height"),
        (render.Frame(CITY, 999999, 10, 10), "EPSG:999999"),
        (render.Frame(CITY, 4326, 10, 10, "gif"), "format"),  # type: ignore[arg-type]
        (render.Frame(CITY, 4326, 10, 10, background="blue-ish"), "colour"),
    ],
)
def test_frames_that_cannot_be_drawn(frame: render.Frame, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        render.check(frame)


def test_an_empty_frame_is_a_blank_image(
    demo_url: str, settings: Settings, anonymous: View
) -> None:
    frame: Any = render.Frame((100.0, 10.0, 100.01, 10.01), 4490, 32, 32)
    pixels = np.asarray(Image.open(io.BytesIO(_render(demo_url, settings, anonymous, "land",
                                                      frame))).convert("RGBA"))  # fmt: skip
    assert pixels.shape == (32, 32, 4) and pixels[..., 3].max() == 0
