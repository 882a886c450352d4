"""The map page's Print button (api/static/maps/print.js) in a real browser, on the demo city.

A headless Chromium (tests/browser.py: nothing but loopback reachable) opens the land map,
picks two parcels with 选择要素, opens 打印 Print, chooses A3 portrait at 1:5,000 and makes
the PDF: the download is a PDF of an A3 portrait page titled as typed, at 1:5,000, listing
the two parcels picked (their ids as the tiles carry them) and centred where the map is.
Then a land-use summary of a drawn area is printed with 打印报告 Print report: the report's
table holds the rows the page shows, and the zone fits the page. Screenshot
``map-print`` goes to ``var/test-screenshots/``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import shapely
from browser import WAIT_MS, browser_page, open_map, requires_chromium
from pypdf import PdfReader
from support import LiveServer

MIDDLE = (112.0, 22.9)
"""The middle of the demo city [111.9497, 22.8582, 112.0503, 22.9417]."""
A3 = (841.89, 1190.55)


def _click(page: Any, lon: float, lat: float) -> None:
    x, y = page.evaluate(f"(() => {{ const p = spatialMap.project([{lon}, {lat}]); "
                         f"return [p.x, p.y]; }})()")  # fmt: skip
    page.locator("#map canvas").click(position={"x": x, "y": y})


def _pdf(download: Any) -> PdfReader:
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"%PDF-")
    return PdfReader(io.BytesIO(data))


def _printed(page: Any, click: str) -> PdfReader:
    with page.expect_download(timeout=WAIT_MS) as saved:
        page.click(click)
    page.locator("#print[data-state='done']").wait_for(state="attached", timeout=WAIT_MS)
    assert saved.value.suggested_filename.startswith("land-")
    return _pdf(saved.value)


def _parcels(api: LiveServer) -> list[dict[str, Any]]:
    """Two parcels near the middle: id, DKBM and a point inside each."""
    x, y = MIDDLE
    found = httpx.get(f"{api.url}/collections/parcels/items", timeout=60,
                      params={"bbox": f"{x - 0.004},{y - 0.004},{x + 0.004},{y}", "limit": 40,
                              "f": "json"}).json()["features"]  # fmt: skip
    large = sorted(found, key=lambda f: -shapely.geometry.shape(f["geometry"]).area)[:2]
    return [{"id": f["id"], "dkbm": f["properties"]["dkbm"],
             "at": shapely.geometry.shape(f["geometry"]).representative_point().coords[0]}
            for f in large]  # fmt: skip


@requires_chromium
def test_print_the_land_map_and_a_report_from_the_page(demo_api: LiveServer) -> None:
    parcels = _parcels(demo_api)
    with browser_page(width=1200, height=800) as seen:
        page = open_map(seen, f"{demo_api.url}/maps/land")
        page.evaluate(f"spatialMap.jumpTo({{center: {list(MIDDLE)}, zoom: 15}})")
        page.locator("body[data-state='drawn']").wait_for(state="attached")
        page.wait_for_load_state("networkidle")
        page.click("#print button[data-print='open']")
        page.click("#print button.pick")
        for parcel in parcels:
            _click(page, *parcel["at"])
        assert page.locator("#print").get_attribute("data-selected") == "2"
        page.fill("#print input[name='title']", "宗地打印测试 Parcel print test")
        page.select_option("#print select[name='paper']", "A3")
        page.select_option("#print select[name='orientation']", "portrait")
        page.select_option("#print select[name='scale']", "5000")
        pdf = _printed(page, "#print button.go")
        asked = json.loads(page.locator("#print").get_attribute("data-request"))
        first = pdf.pages[0]
        assert (round(float(first.mediabox.width), 2), round(float(first.mediabox.height), 2)) == A3
        text = "\n".join(p.extract_text() for p in pdf.pages)
        assert "宗地打印测试 Parcel print test" in text and "1:5,000" in text
        assert asked["scale"] == 5000 and "parcels-landuse" in asked["layers"]
        assert abs(asked["center"][0] - MIDDLE[0]) < 1e-3
        assert asked["selected"] == {"collection": "parcels", "ids": [p["id"] for p in parcels]}
        table = pdf.pages[1].extract_text()
        assert all(p["dkbm"] in table for p in parcels), table

        page.click("#analyse button[data-process='intersect-summarise']")
        x, y = MIDDLE
        for corner in ((x - 0.004, y - 0.003), (x + 0.004, y - 0.003), (x + 0.004, y + 0.003),
                       (x - 0.004, y + 0.003)):  # fmt: skip
            _click(page, *corner)
        page.keyboard.press("Enter")
        page.locator("#analyse .result[data-state='done'] [data-print='report']").wait_for(
            timeout=WAIT_MS
        )
        shown = page.eval_on_selector_all(
            "#analyse table[data-output='summary'] tbody tr",
            "rows => rows.map(r => r.cells[0].dataset.value)",
        )
        report = _printed(page, "#analyse [data-print='report']")
        asked = json.loads(page.locator("#print").get_attribute("data-request"))
        assert asked["report"]["process"] == "intersect-summarise" and "bbox" in asked
        tables = "\n".join(p.extract_text() for p in report.pages[1:])
        assert "合计 Total" in tables
        assert all(json.loads(value) in tables for value in shown), (shown, tables)
        seen.screenshot("map-print")
        seen.assert_clean()
