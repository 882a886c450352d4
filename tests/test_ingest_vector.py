"""Vector ingest against the real PostGIS: the demo cadastre in two editions, real files
checked against ``ogrinfo``, the repair and quarantine policies, interrupted ingests."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg
import pyogrio
import pytest
import shapely
from conftest import SHARED_DATA
from psycopg import sql

from spatial import catalog, features, samples
from spatial.db import engine
from spatial.ingest import history
from spatial.ingest.vector import IngestRejectedError, VectorSource, ingest_vector
from spatial.settings import Settings

VECTORS = SHARED_DATA / "vectors"


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo files (both cadastre editions), built once for this module."""
    out = tmp_path_factory.mktemp("samples")
    samples.build(out)
    return out


def _ingest(
    settings: Settings, path: Path, collection: str, **options: object
) -> dict[str, object]:
    source = VectorSource(path=path, collection_id=collection, title=collection, **options)  # type: ignore[arg-type]
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    return ingest_vector(url, source, settings, actor="pytest").report


def _rows(url: str, query: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(query, params).fetchall()]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cadastre(
    sample_files: Path, settings: Settings, database_url: str
) -> Iterator[dict[str, object]]:
    """The 2025 cadastre ingested, then the 2026 edition over it; both reports."""
    first = _ingest(settings, sample_files / "parcels_2025.zip", "cadastre", key="DKBM")
    second = _ingest(settings, sample_files / "parcels_2026.zip", "cadastre", key="DKBM")
    yield {"first": first, "second": second, "url": database_url}


def _source(sample_files: Path, year: int) -> gpd.GeoDataFrame:
    return pyogrio.read_dataframe(f"/vsizip/{sample_files}/parcels_{year}.zip")


def test_first_edition_keeps_counts_chinese_text_and_projected_area(
    cadastre: dict[str, object], sample_files: Path
) -> None:
    first = cadastre["first"]
    assert isinstance(first, dict)
    src = _source(sample_files, 2025)
    assert first["features_read"] == first["features_loaded"] == len(src)
    assert first["crs"] == "EPSG:4546" and first["encoding"] == "GBK"
    assert first["edition"] == 1 and first["diff"] is None
    url = str(cadastre["url"])
    # Land-use names and holders arrive as Chinese text (GBK decoded), unchanged.
    expected = src.sort_values("DKBM")[["DKBM", "DLMC", "QLR"]].itertuples(index=False)
    as_of_1 = {key: props for key, (props, _geom) in _as_of(url, 1).items()}
    assert {k: (v["dlmc"], v["qlr"]) for k, v in as_of_1.items()} == {
        k: (n, q) for k, n, q in expected
    }
    assert any(v["dlmc"] == "耕地" for v in as_of_1.values())
    # Areas in the projected CRS (square metres) match the source geometry and TBMJ.
    area = dict(_rows(url, "SELECT dkbm, ST_Area(geom) FROM layers.cadastre"))
    src26 = _source(sample_files, 2026).set_index("DKBM")
    common = [k for k in src26.index if k in area][:500]
    assert common
    np.testing.assert_allclose(
        [area[k] for k in common], src26.loc[common].geometry.area.to_numpy(), rtol=1e-9
    )
    np.testing.assert_allclose(
        [area[k] for k in common], src26.loc[common, "TBMJ"].to_numpy(), atol=0.01
    )


def test_second_edition_diff_matches_the_ground_truth(
    cadastre: dict[str, object], sample_files: Path
) -> None:
    second = cadastre["second"]
    assert isinstance(second, dict)
    with (sample_files / "parcel_changes.csv").open(encoding="utf-8") as f:
        truth = list(csv.DictReader(f))
    split_parents = {r["dkbm_2025"] for r in truth if r["kind"] == "split"}
    merged_old = {r["dkbm_2025"] for r in truth if r["kind"] == "merged"}
    removed = {r["dkbm_2025"] for r in truth if r["kind"] == "removed"}
    added = {r["dkbm_2026"] for r in truth if r["kind"] in {"split", "merged"}}
    reattributed = {r["dkbm_2025"] for r in truth if r["kind"] == "reattributed"}
    assert second["edition"] == 2
    assert second["diff"] == {
        "added": len(added),
        "removed": len(split_parents | merged_old | removed),
        "geometry_changed": 0,
        "attributes_changed": len(reattributed),
        "unchanged": second["features_loaded"] - len(added) - len(reattributed),
    }
    url = str(cadastre["url"])
    changes: dict[str, set[str]] = {}
    for key, change in _rows(
        url,
        "SELECT key, change FROM platform.feature_changes "
        "WHERE collection_id = 'cadastre' AND edition = 2",
    ):
        changes.setdefault(str(change), set()).add(str(key))
    assert changes["added"] == added
    assert changes["removed"] == split_parents | merged_old | removed
    assert changes["attributes"] == reattributed
    fields = {
        tuple(f)  # type: ignore[arg-type]
        for (f,) in _rows(
            url,
            "SELECT fields FROM platform.feature_changes "
            "WHERE collection_id = 'cadastre' AND change = 'attributes'",
        )
    }
    assert all("dlbm" in f for f in fields)


def test_any_past_edition_can_be_queried(cadastre: dict[str, object], sample_files: Path) -> None:
    url = str(cadastre["url"])
    for edition, year in ((1, 2025), (2, 2026)):
        src = _source(sample_files, year).set_index("DKBM")
        rows = _as_of(url, edition)
        assert set(rows) == set(src.index)
        for key in list(rows)[:: max(1, len(rows) // 300)]:
            props, geom = rows[key]
            assert shapely.equals_exact(
                shapely.normalize(geom), shapely.normalize(src.loc[key].geometry), tolerance=0
            ) or shapely.equals(geom, src.loc[key].geometry)
            assert props["dlbm"] == src.loc[key, "DLBM"]
    valid = [
        v for (v,) in _rows(
            url,
            "SELECT valid_from FROM platform.editions "
            "WHERE collection_id = 'cadastre' ORDER BY edition",
        )
    ]  # fmt: skip
    with psycopg.connect(url) as conn:
        for when, edition in ((valid[0], 1), (valid[1], None)):  # None: the latest
            row = conn.execute(history.EDITION_AT, {"cid": "cadastre", "when": when}).fetchone()
            assert history.past_edition("cadastre", when, row) == edition  # type: ignore[arg-type]


def _as_of(url: str, edition: int) -> dict[str, tuple[dict[str, Any], shapely.Geometry]]:
    """The cadastre as of an edition, read as the items API reads it (by key)."""
    with engine(url) as eng, eng.connect() as conn:
        record = catalog.get_collection(conn, "cadastre")
    layer = replace(features.LayerSchema.of(record), edition=edition)
    query = sql.SQL("SELECT to_jsonb(t) - 'geom' - 'fid', ST_AsBinary(t.geom) FROM {} t").format(
        features.source(layer)
    )
    with psycopg.connect(url) as conn:
        return {p["dkbm"]: (p, shapely.from_wkb(bytes(g))) for p, g in conn.execute(query)}


def test_ingest_is_registered_and_audited(cadastre: dict[str, object]) -> None:
    url = str(cadastre["url"])
    ((count, version, srid, props, xmin, ymin),) = _rows(
        url,
        "SELECT feature_count, version, srid, properties, ST_XMin(footprint), ST_YMin(footprint) "
        "FROM platform.collections WHERE id = 'cadastre'",
    )
    second = cadastre["second"]
    assert isinstance(second, dict) and isinstance(props, dict)
    assert count == second["features_loaded"] and version == 2 and srid == 4546
    assert (
        props["key"] == "dkbm"
        and props["edition"] == 2
        and props["fields"]["tbmj"] == "double precision"
    )
    assert 111.9 < float(xmin) < 112.1 and 22.8 < float(ymin) < 23.0  # type: ignore[arg-type]
    audit = _rows(
        url,
        "SELECT action, version_before, version_after, details->>'edition', "
        "cardinality(feature_ids) "
        "FROM platform.audit_log WHERE collection_id = 'cadastre' ORDER BY id",
    )
    assert [a[:4] for a in audit] == [("ingest", None, 1, "1"), ("ingest", 1, 2, "2")]
    assert audit[1][4] == sum(
        v
        for k, v in second["diff"].items()
        if k in {"added", "removed", "attributes_changed"}  # type: ignore[union-attr]
    )
    jobs = _rows(
        url, "SELECT state, progress FROM platform.ingest_jobs WHERE collection_id = 'cadastre'"
    )
    assert jobs == [("succeeded", 1.0), ("succeeded", 1.0)]


def _ogrinfo(path: Path) -> list[shapely.Geometry]:
    """The geometries ``ogrinfo`` (the system's GDAL) prints for a file, in FID order."""
    out = subprocess.run(
        ["ogrinfo", "-al", "-q", "-fields=NO", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wkt = [
        line.strip()
        for line in out.splitlines()
        if re.match(r"^  (MULTI)?(POINT|POLYGON|LINESTRING)", line)
    ]
    return list(shapely.from_wkt(wkt))


@pytest.mark.skipif(not VECTORS.is_dir(), reason=f"shared test data not present at {VECTORS}")
@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="ogrinfo (gdal-bin) is not installed")
@pytest.mark.parametrize(
    "name",
    [
        "fiona_coutwildrnp/coutwildrnp.shp",
        "earthpy_colorado-counties.geojson",
        "pygeoapi_ne_110m_lakes.geojson",
        "pygeoapi_dutch_addresses_4326.gpkg",
    ],
)
def test_real_files_match_ogrinfo(name: str, settings: Settings, database_url: str) -> None:
    path = VECTORS / name
    collection = "real_" + re.sub(r"[^a-z0-9]", "_", path.stem.lower())[:40]
    report = _ingest(settings, path, collection)
    expected = _ogrinfo(path)
    assert report["features_loaded"] == len(expected)
    stored = [
        shapely.from_wkb(bytes(w))  # type: ignore[arg-type]
        for (w,) in _rows(
            database_url,
            f'SELECT ST_AsBinary(geom) FROM layers."{collection}" ORDER BY fid',  # noqa: S608
        )
    ]
    assert len(stored) == len(expected)
    for got, printed in zip(stored, expected, strict=True):
        # ogrinfo prints 15 significant digits; the stored geometry is the exact source.
        want = shapely.force_2d(printed)
        if got.geom_type.startswith("Multi") and not want.geom_type.startswith("Multi"):
            want = type(got)([want])
        assert shapely.equals_exact(got, want, tolerance=1e-9)


def _bowtie_layer(folder: Path) -> Path:
    cells = [shapely.box(112.0 + i * 0.001, 22.9, 112.001 + i * 0.001, 22.901) for i in range(5)]
    cells[2] = shapely.Polygon(
        [(112.002, 22.9), (112.003, 22.901), (112.003, 22.9), (112.002, 22.901)]
    )
    frame = gpd.GeoDataFrame(
        {"code": [f"P{i}" for i in range(5)], "name": ["宗地"] * 5}, geometry=cells, crs="EPSG:4490"
    )
    path = folder / "bowtie.gpkg"
    pyogrio.write_dataframe(frame, path)
    return path


def _state(url: str, collection: str) -> tuple[object, ...]:
    return (
        _rows(
            url, "SELECT version, feature_count FROM platform.collections WHERE id = %s", collection
        ),
        _rows(url, "SELECT count(*) FROM platform.editions WHERE collection_id = %s", collection),
        _rows(url, "SELECT to_regclass(%s) IS NOT NULL", f"layers.{collection}"),
    )


def test_reject_repair_and_quarantine(
    tmp_path: Path, settings: Settings, database_url: str
) -> None:
    path = _bowtie_layer(tmp_path)
    before = _state(database_url, "bowtie")
    with pytest.raises(
        IngestRejectedError, match=r"1 of 5 features have errors: 1 invalid geometry"
    ) as err:
        _ingest(settings, path, "bowtie", key="code")
    assert err.value.report["findings"][0]["key"] == "P2"
    assert "Self-intersection" in err.value.report["findings"][0]["detail"]
    assert _state(database_url, "bowtie") == before
    assert _rows(
        database_url, "SELECT state FROM platform.ingest_jobs WHERE collection_id='bowtie'"
    ) == [("failed",)]

    repaired = _ingest(settings, path, "bowtie", key="code", on_invalid="repair")
    assert repaired["features_loaded"] == 5 and repaired["counts"]["repaired"] == 1  # type: ignore[index]
    ((valid, kind),) = _rows(
        database_url,
        "SELECT ST_IsValid(geom), GeometryType(geom) FROM layers.bowtie WHERE code = 'P2'",
    )
    assert valid is True and kind == "MULTIPOLYGON"

    quarantined = _ingest(settings, path, "bowtie_q", key="code", on_invalid="quarantine")
    assert quarantined["features_loaded"] == 4 and quarantined["features_quarantined"] == 1
    ((key, reasons, name),) = _rows(
        database_url,
        "SELECT key, reasons, properties->>'name' FROM platform.quarantine "
        "WHERE collection_id = 'bowtie_q'",
    )
    assert key == "P2" and name == "宗地"
    assert reasons[0]["kind"] == "invalid_geometry"  # type: ignore[index]


def test_interrupted_ingest_leaves_the_previous_edition(
    tmp_path: Path, settings: Settings, database_url: str
) -> None:
    path = _bowtie_layer(tmp_path)
    _ingest(settings, path, "interrupted", key="code", on_invalid="repair")
    before = _rows(database_url, "SELECT * FROM layers.interrupted ORDER BY fid")
    state = _state(database_url, "interrupted")

    def stop(fraction: float, message: str) -> None:
        if message == "loading" and fraction > 0.5:
            raise KeyboardInterrupt

    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    source = VectorSource(
        path=path, collection_id="interrupted", title="x", key="code", on_invalid="repair"
    )
    with pytest.raises(KeyboardInterrupt):
        ingest_vector(url, source, settings, on_progress=stop)
    assert _rows(database_url, "SELECT * FROM layers.interrupted ORDER BY fid") == before
    assert _state(database_url, "interrupted") == state
    assert _rows(
        database_url,
        "SELECT state, message FROM platform.ingest_jobs "
        "WHERE collection_id = 'interrupted' ORDER BY created_at",
    )[-1] == ("failed", "interrupted")
    assert not _rows(
        database_url, "SELECT relname FROM pg_class WHERE relname LIKE '\\_stage\\_%%'"
    )


def test_zipped_shapefile_with_a_chinese_member_name(tmp_path: Path, settings: Settings) -> None:
    cells = [shapely.box(500000 + i * 50, 2530000, 500050 + i * 50, 2530050) for i in range(3)]
    frame = gpd.GeoDataFrame({"名称": ["一", "二", "三"]}, geometry=cells, crs="EPSG:4546")
    folder = tmp_path / "shp"
    folder.mkdir()
    pyogrio.write_dataframe(frame, folder / "宗地.shp", encoding="GBK")
    archive = tmp_path / "parcels.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in folder.iterdir():
            info = zipfile.ZipInfo(part.name.encode("gbk").decode("cp437"))
            zf.writestr(info, part.read_bytes())
    report = _ingest(settings, archive, "zh_member")
    assert report["features_loaded"] == 3 and report["encoding"] == "GBK"
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    assert [r[0] for r in _rows(url, "SELECT 名称 FROM layers.zh_member ORDER BY fid")] == [
        "一",
        "二",
        "三",
    ]


def test_undeclared_gbk_attributes_are_recognised(tmp_path: Path, settings: Settings) -> None:
    from badinputs import b_gbk_no_cpg  # noqa: PLC0415 - the corpus builder of this file

    report = _ingest(settings, b_gbk_no_cpg(tmp_path), "gbk_guess")
    assert report["encoding"] == "GB18030"
    assert any("guessed" in note for note in report["notes"])  # type: ignore[union-attr]
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    names = [r[0] for r in _rows(url, "SELECT dkmc FROM layers.gbk_guess ORDER BY fid")]
    assert all(re.search(r"[\u4e00-\u9fff]", str(n)) for n in names)
