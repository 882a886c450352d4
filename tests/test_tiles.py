"""Vector tiles over real HTTP: decoded with mapbox_vector_tile and GDAL, compared with
SQL on the source and, through pyproj, with the source geometries, in every tile matrix
set; the cache's ETags, 304s and gzip; and a cache that follows edits tile by tile."""

from __future__ import annotations

import gzip
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import mapbox_vector_tile
import morecantile
import numpy as np
import psycopg
import pyproj
import pytest
import shapely
import shapely.geometry
from pmtiles.reader import MmapSource, Reader
from support import LiveServer, ingest_cadastre, run_cli, wait_for_collection

from api import create_app
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings, TilesSettings
from tiles.tms import SRID, TILE_MATRIX_SETS

COLLECTION = "tile_parcels"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> gpd.GeoDataFrame:
    frame: gpd.GeoDataFrame = ingest_cadastre(
        tmp_path_factory.mktemp("tiles"), settings, COLLECTION, "宗地 (tiles)"
    )
    return frame


@pytest.fixture(scope="module")
def api(live_api: LiveServer, source: gpd.GeoDataFrame) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_api.url, timeout=60) as client:
        wait_for_collection(client, COLLECTION)
        yield client


def _tile_of(tms_id: str, lon: float, lat: float, z: int) -> tuple[int, int, int]:
    t = TILE_MATRIX_SETS[tms_id].tile(lon, lat, z)
    return z, t.y, t.x


def _decode(data: bytes) -> dict[str, Any]:
    decoded: dict[str, Any] = mapbox_vector_tile.decode(data)
    return decoded


def _sql_ids(url: str, tms_id: str, z: int, row: int, col: int, *, buffer: int = 64) -> set[int]:
    """Parcels whose geometry, in the set's CRS, meets the tile with a buffer of ``buffer``
    4096ths of its width."""
    tms = TILE_MATRIX_SETS[tms_id]
    b = tms.xy_bounds(morecantile.Tile(x=col, y=row, z=z))
    pad = (b.right - b.left) * buffer / 4096
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT fid FROM layers.{COLLECTION} WHERE ST_Intersects(ST_Transform(geom, %s), "  # noqa: S608
            "ST_MakeEnvelope(%s, %s, %s, %s, %s))",
            (SRID[tms_id], b.left - pad, b.bottom - pad, b.right + pad, b.top + pad, SRID[tms_id]),
        ).fetchall()
    return {int(r[0]) for r in rows}


@pytest.mark.parametrize("tms_id", list(TILE_MATRIX_SETS))
@pytest.mark.parametrize("z", [12, 14, 16])
def test_tiles_hold_what_sql_finds_with_the_source_geometry(
    api: httpx.Client, source: gpd.GeoDataFrame, database_url: str, tms_id: str, z: int
) -> None:
    parcel = source.iloc[321]
    lon, lat = gpd.GeoSeries([parcel.geometry.centroid], crs=4546).to_crs(4326).iloc[0].coords[0]
    z, row, col = _tile_of(tms_id, lon, lat, z)
    response = api.get(f"/collections/{COLLECTION}/tiles/{tms_id}/{z}/{row}/{col}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    layer = _decode(response.content)[COLLECTION]
    ids = {f["id"] for f in layer["features"]}
    # Every parcel in the tile is there; so is every other one within its buffer, but
    # one that only grazes the buffer's edge may vanish when snapped to the tile grid.
    assert _sql_ids(database_url, tms_id, z, row, col, buffer=0) <= ids
    within = _sql_ids(database_url, tms_id, z, row, col)
    assert ids <= within and len(within - ids) <= max(1, len(within) // 200)
    # Attributes as stored; the geometry back in EPSG:4546 within a tile unit of the source.
    by_key = {f["properties"]["dkbm"]: f for f in layer["features"]}
    feature = by_key[parcel["DKBM"]]
    assert feature["properties"]["dlmc"] == parcel["DLMC"]
    assert feature["properties"]["tbmj"] == pytest.approx(parcel["TBMJ"])
    tms = TILE_MATRIX_SETS[tms_id]
    b = tms.xy_bounds(morecantile.Tile(x=col, y=row, z=z))
    unit = (b.right - b.left) / 4096
    to_source = pyproj.Transformer.from_crs(SRID[tms_id], 4546, always_xy=True)

    def back(xy: Any) -> Any:
        x = b.left + xy[:, 0] * unit
        y = b.bottom + xy[:, 1] * unit  # decoded with y up from the tile's bottom
        return np.column_stack(to_source.transform(x, y))

    served = shapely.transform(shapely.geometry.shape(feature["geometry"]), back)
    metres = unit * (1 if SRID[tms_id] == 3857 else 111_320)
    assert shapely.hausdorff_distance(served, parcel.geometry) < 2 * metres + 0.01


def test_gdal_reads_a_tile(api: httpx.Client, source: gpd.GeoDataFrame, tmp_path: Path) -> None:
    lon, lat = (
        gpd.GeoSeries([source.geometry.iloc[5].centroid], crs=4546).to_crs(4326).iloc[0].coords[0]
    )
    z, row, col = _tile_of("WebMercatorQuad", lon, lat, 15)
    data = api.get(f"/collections/{COLLECTION}/tiles/WebMercatorQuad/{z}/{row}/{col}").content
    path = tmp_path / "tile.mvt"
    path.write_bytes(data)
    done = subprocess.run(
        ["ogrinfo", "-ro", "-so", "-oo", f"Z={z}", "-oo", f"X={col}", "-oo", f"Y={row}",
         f"MVT:{path}", COLLECTION],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    count = int(done.stdout.split("Feature Count: ")[1].split()[0])
    assert count == len(_decode(data)[COLLECTION]["features"]) > 0


def test_etag_304_gzip_empty_and_out_of_range(api: httpx.Client, source: gpd.GeoDataFrame) -> None:
    lon, lat = (
        gpd.GeoSeries([source.geometry.iloc[9].centroid], crs=4546).to_crs(4326).iloc[0].coords[0]
    )
    z, row, col = _tile_of("WebMercatorQuad", lon, lat, 15)
    path = f"/collections/{COLLECTION}/tiles/WebMercatorQuad/{z}/{row}/{col}"
    first = api.get(path)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = api.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag and not again.content
    assert again.headers["x-tile-cache"] == "hit"
    zipped = api.get(path, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == first.content
    only = api.get(path, params={"properties": "dkbm"})
    assert {k for f in _decode(only.content)[COLLECTION]["features"] for k in f["properties"]} == {
        "dkbm"
    }
    assert api.get(path, params={"properties": "nosuch"}).status_code == 400
    empty = api.get(f"/collections/{COLLECTION}/tiles/WebMercatorQuad/15/0/0")
    assert empty.status_code == 204 and empty.headers["etag"]
    beyond = api.get(f"/collections/{COLLECTION}/tiles/WebMercatorQuad/23/0/0")
    assert beyond.status_code == 404 and "range" in beyond.json()["description"]
    outside = api.get(f"/collections/{COLLECTION}/tiles/WebMercatorQuad/3/8/0")
    assert outside.status_code == 404 and "outside" in outside.json()["description"]
    cgcs = api.get(f"/collections/{COLLECTION}/tiles/CGCS2000Quad/0/0/2")
    assert cgcs.status_code == 404  # zoom 0 of CGCS2000Quad has 2 columns


def test_tileset_metadata_and_tilejson(api: httpx.Client) -> None:
    sets = api.get("/tileMatrixSets").json()["tileMatrixSets"]
    assert {s["id"] for s in sets} == {"WebMercatorQuad", "WorldCRS84Quad", "CGCS2000Quad"}
    cgcs = api.get("/tileMatrixSets/CGCS2000Quad").json()
    assert cgcs["crs"].endswith("/EPSG/0/4490") and len(cgcs["tileMatrices"]) == 25
    assert cgcs["tileMatrices"][0]["matrixWidth"] == 2
    tileset = api.get(f"/collections/{COLLECTION}/tiles/WebMercatorQuad").json()
    item = next(link for link in tileset["links"] if link["rel"] == "item")
    assert item["href"].endswith("/{tileMatrix}/{tileRow}/{tileCol}")
    tilejson = api.get(f"/collections/{COLLECTION}/tiles/WebMercatorQuad?f=tilejson").json()
    assert tilejson["tiles"][0].endswith("/{z}/{y}/{x}")
    assert tilejson["vector_layers"][0]["id"] == COLLECTION
    assert "dkbm" in tilejson["vector_layers"][0]["fields"]
    links = api.get(f"/collections/{COLLECTION}").json()["links"]
    assert any(link["href"].endswith(f"/collections/{COLLECTION}/tiles") for link in links)


def _cell(x0: float, y0: float, size: float = 40) -> shapely.Polygon:
    return shapely.box(x0, y0, x0 + size, y0 + size)


@pytest.fixture(scope="module")
def editable(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """A server over an editable layer in two clusters 20 km apart,
    both in the subsystem ``emergency`` with a second layer."""
    folder = tmp_path_factory.mktemp("tile_edits")
    near = [_cell(600_000 + 50 * i, 2_540_000) for i in range(4)]
    far = [_cell(620_000 + 50 * i, 2_560_000) for i in range(4)]
    gpd.GeoDataFrame(
        {"code": [f"C{i}" for i in range(8)], "use": ["old"] * 8},
        geometry=near + far, crs="EPSG:4546",
    ).to_file(folder / "cells.gpkg")  # fmt: skip
    gpd.GeoDataFrame(
        {"name": ["hq"]}, geometry=[shapely.Point(600_020, 2_540_020)], crs="EPSG:4546"
    ).to_file(folder / "points.gpkg")
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    for cid, file, key, editable_ in (("tile_cells", "cells.gpkg", "code", True),
                                      ("tile_posts", "points.gpkg", None, False)):  # fmt: skip
        source = VectorSource(
            path=folder / file, collection_id=cid, title=cid, key=key, editable=editable_,
            subsystems=("emergency",), public=True,
        )  # fmt: skip
        ingest_vector(url, source, settings, actor="pytest")
    with (
        LiveServer(create_app(settings)) as live,
        httpx.Client(base_url=live.url, timeout=30) as http,
    ):
        wait_for_collection(http, "tile_cells")
        yield http


def _lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = pyproj.Transformer.from_crs(4546, 4326, always_xy=True).transform(x, y)
    return lon, lat


def test_an_edit_drops_the_tiles_it_touches_and_only_those(
    editable: httpx.Client, admin_auth: dict[str, str]
) -> None:
    near = "/collections/tile_cells/tiles/WebMercatorQuad/{}/{}/{}".format(
        *_tile_of("WebMercatorQuad", *_lonlat(600_020, 2_540_020), 16)
    )
    far = "/collections/tile_cells/tiles/WebMercatorQuad/{}/{}/{}".format(
        *_tile_of("WebMercatorQuad", *_lonlat(620_020, 2_560_020), 16)
    )
    for path in (near, far):
        assert editable.get(path).headers["x-tile-cache"] == "miss"
        assert editable.get(path).headers["x-tile-cache"] == "hit"
    before = _decode(editable.get(near).content)["tile_cells"]["features"]
    target = next(f for f in before if f["properties"]["code"] == "C0")
    patched = editable.patch(
        f"/collections/tile_cells/items/{target['id']}",
        json={"type": "Feature", "properties": {"use": "new"}},
        headers={**admin_auth, "Content-Type": "application/geo+json"},
    )
    assert patched.status_code == 200, patched.text
    deadline = time.monotonic() + 10
    while True:  # the notification reaches the worker shortly after the commit
        response = editable.get(near)
        uses = {f["properties"]["code"]: f["properties"]["use"]
                for f in _decode(response.content)["tile_cells"]["features"]}  # fmt: skip
        if uses["C0"] == "new":
            break
        assert time.monotonic() < deadline, "the cached tile still shows the old parcel"
        time.sleep(0.1)
    assert editable.get(far).headers["x-tile-cache"] == "hit"  # far away: kept


def test_a_subsystem_tile_holds_each_of_its_layers(editable: httpx.Client) -> None:
    z, row, col = _tile_of("WebMercatorQuad", *_lonlat(600_020, 2_540_020), 16)
    response = editable.get(f"/maps/emergency/tiles/WebMercatorQuad/{z}/{row}/{col}")
    assert response.status_code == 200
    layers = _decode(response.content)
    assert {"tile_cells", "tile_posts"} <= set(layers)
    assert [f["properties"]["name"] for f in layers["tile_posts"]["features"]] == ["hq"]
    assert editable.get("/maps/nosuch/tiles/WebMercatorQuad/0/0/0").status_code == 404
    tilejson = editable.get("/maps/emergency/tiles/WebMercatorQuad?f=tilejson").json()
    assert {v["id"] for v in tilejson["vector_layers"]} >= {"tile_cells", "tile_posts"}


def test_seed_clear_and_export_from_the_command_line(
    editable: httpx.Client, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    disk = tmp_path / "tile-cache"
    own = settings.model_copy(
        update={"tiles": TilesSettings(disk_cache_dir=disk), "database": settings.database}
    )
    env = {"SPATIAL_DATABASE_URL": database_url, "SPATIAL_TILES_DISK_CACHE_DIR": str(disk)}
    box = "111.95,22.94,111.99,22.98"  # around the near cluster
    seeded = run_cli("tiles", "seed", "tile_cells", "--zoom", "14-16", "--bbox", box, **env)
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded" in seeded.stdout
    z, row, col = _tile_of("WebMercatorQuad", *_lonlat(600_020, 2_540_020), 16)
    path = f"/collections/tile_cells/tiles/WebMercatorQuad/{z}/{row}/{col}"
    with LiveServer(create_app(own)) as live, httpx.Client(base_url=live.url) as client:
        wait_for_collection(client, "tile_cells")
        first = client.get(path)
        assert first.status_code == 200 and first.headers["x-tile-cache"] == "hit"  # seeded
        assert first.content == editable.get(path).content
        cleared = run_cli("tiles", "cache", "clear", "tile_cells", **env)
        assert cleared.returncode == 0, cleared.stderr
        deadline = time.monotonic() + 10
        while client.get(path).headers["x-tile-cache"] == "hit":  # every worker was told
            assert time.monotonic() < deadline, "the worker kept its cached tile"
            time.sleep(0.1)
    out = tmp_path / "cells.pmtiles"
    exported = run_cli("tiles", "export", "tile_cells", str(out), "--zoom", "14-16", **env)
    assert exported.returncode == 0, exported.stderr
    with out.open("rb") as f:
        reader = Reader(MmapSource(f))
        assert reader.header()["max_zoom"] == 16
        data = gzip.decompress(reader.get(z, col, row))
    assert data == editable.get(path).content
    bad = run_cli("tiles", "seed", "tile_cells", "--zoom", "9-x", **env)
    assert bad.returncode != 0 and "zoom" in (bad.stdout + bad.stderr)


def test_conformance_declares_tiles(api: httpx.Client) -> None:
    conforms = api.get("/conformance").json()["conformsTo"]
    for cls in ("core", "tileset", "tilesets-list", "geodata-tilesets", "mvt"):
        assert f"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/{cls}" in conforms


def test_a_reimport_drops_only_the_tiles_of_what_changed(
    editable: httpx.Client, settings: Settings, tmp_path: Path
) -> None:
    """A new edition of tile_posts moves its point 20 km: the tiles at both places go, a
    tile of the same layer elsewhere stays."""
    z = 16
    old = "/collections/tile_posts/tiles/WebMercatorQuad/{}/{}/{}".format(
        *_tile_of("WebMercatorQuad", *_lonlat(600_020, 2_540_020), z)
    )
    new = "/collections/tile_posts/tiles/WebMercatorQuad/{}/{}/{}".format(
        *_tile_of("WebMercatorQuad", *_lonlat(620_020, 2_560_020), z)
    )
    elsewhere = "/collections/tile_posts/tiles/WebMercatorQuad/{}/{}/{}".format(
        *_tile_of("WebMercatorQuad", *_lonlat(610_020, 2_550_020), z)
    )
    for path in (old, new, elsewhere):
        editable.get(path)
        assert editable.get(path).headers["x-tile-cache"] == "hit"
    assert editable.get(new).status_code == 204 and editable.get(old).status_code == 200
    path = tmp_path / "points.gpkg"
    gpd.GeoDataFrame(
        {"name": ["hq"]}, geometry=[shapely.Point(620_020, 2_560_020)], crs="EPSG:4546"
    ).to_file(path)
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    source = VectorSource(path=path, collection_id="tile_posts", title="tile_posts",
                          subsystems=("emergency",))  # fmt: skip
    ingest_vector(url, source, settings, actor="pytest")
    deadline = time.monotonic() + 10
    while editable.get(old).status_code != 204:  # the point left this tile
        assert time.monotonic() < deadline, "the old tile still shows the moved point"
        time.sleep(0.1)
    assert editable.get(new).status_code == 200  # and arrived in this one
    assert editable.get(elsewhere).headers["x-tile-cache"] == "hit"


def test_the_tile_commands_refuse_what_they_cannot_do(
    editable: httpx.Client, database_url: str, tmp_path: Path
) -> None:
    env = {"SPATIAL_DATABASE_URL": database_url}
    huge = run_cli("tiles", "export", "tile_cells", str(tmp_path / "a.pmtiles"), "--zoom", "0-24",
                   "--bbox", "100,10,130,50", **env)  # fmt: skip
    assert huge.returncode != 0 and "narrow the zoom range" in _said(huge)
    nowhere = run_cli("tiles", "export", "tile_cells", str(tmp_path / "no" / "a.pmtiles"), **env)
    assert nowhere.returncode != 0 and "not a folder" in _said(nowhere)
    missing = run_cli("tiles", "export", "nosuch", str(tmp_path / "b.pmtiles"), **env)
    assert missing.returncode != 0 and "does not exist" in _said(missing)
    unset = run_cli("tiles", "seed", "tile_cells", **env)
    assert unset.returncode != 0 and "SPATIAL_TILES_DISK_CACHE_DIR" in _said(unset)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def _said(done: subprocess.CompletedProcess[str]) -> str:
    """What a command printed, its lines (wrapped to the terminal) joined again."""
    return " ".join((done.stdout + done.stderr).split())
