"""Parcel topology (overlaps, slivers, gaps), the background staging, and geometry
fidelity of what is loaded: against small fabrics whose problems are known exactly."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import pytest
import shapely
import shapely.affinity

from spatial import crs as crs_mod
from spatial.ingest import topology
from spatial.ingest.checks import Finding
from spatial.ingest.publish import Preload
from spatial.ingest.vector import IngestRejectedError, VectorSource, ingest_vector
from spatial.settings import Settings

X0, Y0 = 500_000.0, 2_530_000.0
"""A corner in EPSG:4546 (CGCS2000 / 3-degree Gauss-Kruger CM 111E), in metres."""
SIZE = 10.0
TOL = topology.Tolerances()


def _grid(n: int = 4) -> list[shapely.Polygon]:
    """An n x n fabric of 10 m parcels sharing their edges vertex for vertex."""
    return [
        shapely.box(X0 + i * SIZE, Y0 + j * SIZE, X0 + (i + 1) * SIZE, Y0 + (j + 1) * SIZE)
        for j in range(n)
        for i in range(n)
    ]


def _check(polys: list[shapely.Polygon], code: str = "EPSG:4546") -> list[Finding]:
    geoms = np.array(polys, dtype=object)
    keys: list[object] = [f"P{i}" for i in range(len(polys))]
    return topology.check(
        geoms, np.arange(len(polys)), keys, crs_mod.identify(code), topology.Tolerances()
    )


def _kinds(findings: list[Finding]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for f in findings:
        out.setdefault(f.kind, []).append(f.row)
    return {k: sorted(v) for k, v in out.items()}


def test_a_clean_fabric_has_no_findings_whatever_the_ring_orientation() -> None:
    polys = _grid()
    polys[5] = shapely.reverse(polys[5])  # clockwise shell, as Shapefiles store them
    assert _check(polys) == []
    # Only the parcels on the fabric's border have edges without a twin.
    suspects, border = topology._unmatched(np.array(polys, dtype=object))
    assert suspects.tolist() == [0, 1, 2, 3, 4, 7, 8, 11, 12, 13, 14, 15]
    assert len(border) == 16


def test_an_overlap_is_an_error_on_both_parcels_with_its_area() -> None:
    polys = _grid()
    # Parcel 5 reaches 1 m into parcel 6 (its right neighbour): 10 m².
    polys[5] = shapely.box(X0 + SIZE, Y0 + SIZE, X0 + 3 * SIZE + 1 - SIZE, Y0 + 2 * SIZE)
    findings = _check(polys)
    assert _kinds(findings) == {"overlap": [5, 6]}
    assert {f.detail for f in findings} == {
        "overlaps P6 (row 6) by 10 m²",
        "overlaps P5 (row 5) by 10 m²",
    }


def test_a_duplicated_parcel_overlaps_its_twin() -> None:
    # Inside the fabric, and alone with its copy (then every edge has exactly one
    # "twin", the copy's; only the orientation tells that both lie on the same side).
    alone = shapely.box(X0 + 100, Y0, X0 + 110, Y0 + 10)
    polys = [*_grid(), _grid()[5], alone, shapely.reverse(alone)]
    assert _kinds(_check(polys)) == {"overlap": [5, 16, 17, 18]}


def test_a_narrow_strip_is_a_sliver() -> None:
    polys = _grid()
    polys.append(shapely.box(X0 + 4 * SIZE, Y0, X0 + 4 * SIZE + 0.2, Y0 + SIZE))
    findings = _check(polys)
    assert _kinds(findings) == {"sliver": [16]}
    assert findings[0].detail == "a sliver: mean width 0.196 m, area 2 m²"


def test_a_narrow_hole_between_parcels_is_a_gap_and_a_road_is_not() -> None:
    polys = _grid()
    # Parcel 5's right edge moves 0.3 m left: a 0.3 m x 10 m gap next to parcel 6.
    polys[5] = shapely.box(X0 + SIZE, Y0 + SIZE, X0 + 2 * SIZE - 0.3, Y0 + 2 * SIZE)
    findings = _check(polys)
    assert set(_kinds(findings)) == {"gap"}
    assert 5 in _kinds(findings)["gap"] and 6 in _kinds(findings)["gap"]
    assert "borders a gap of 3 m² (mean width 0.291 m)" in findings[0].detail

    # A 5 m wide road between two blocks of parcels is not a gap.
    road = [*_grid(2), *(shapely.affinity.translate(p, 2 * SIZE + 5, 0) for p in _grid(2))]
    assert _check(road) == []


def test_rounding_noise_on_shared_edges_is_not_a_finding() -> None:
    polys = _grid()
    # A vertex 1 mm off its neighbour's edge: an "overlap" of 5 mm², a "gap" as thin.
    polys[5] = shapely.Polygon(
        [
            (X0 + SIZE, Y0 + SIZE),
            (X0 + 2 * SIZE + 0.001, Y0 + SIZE),
            (X0 + 2 * SIZE, Y0 + 2 * SIZE),
            (X0 + SIZE, Y0 + 2 * SIZE),
        ]
    )
    assert _check(polys) == []


def test_geographic_layers_are_measured_in_metres() -> None:
    # The same fabric in lon/lat (EPSG:4490): parcel 5 reaches ~1 m into parcel 6.
    deg = 10 / 111_320 / np.cos(np.radians(23.0))
    cells = [
        shapely.box(112 + i * deg, 23 + j * deg, 112 + (i + 1) * deg, 23 + (j + 1) * deg)
        for j in range(4)
        for i in range(4)
    ]
    cells[5] = shapely.box(112 + deg, 23 + deg, 112 + 2.1 * deg, 23 + 2 * deg)
    findings = _check(cells, "EPSG:4490")
    assert _kinds(findings) == {"overlap": [5, 6]}
    area = float(findings[0].detail.split(" by ")[1].split(" m²")[0])
    assert 9.0 < area < 11.0  # 1 m x ~10 m, whatever the degree sizes


# --- through the ingest, against the database ------------------------------------------


def _write(tmp_path: Path, polys: list[shapely.Geometry], keys: list[str] | None = None) -> Path:
    path = tmp_path / "fabric.gpkg"
    keys = keys or [f"P{i}" for i in range(len(polys))]
    gpd.GeoDataFrame({"code": keys}, geometry=polys, crs="EPSG:4546").to_file(path)
    return path


def _ingest(
    settings: Settings, path: Path, collection: str, **options: object
) -> dict[str, object]:
    source = VectorSource(path=path, collection_id=collection, title=collection, **options)  # type: ignore[arg-type]
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    return ingest_vector(url, source, settings, actor="pytest").report


def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(query).fetchall()]  # type: ignore[arg-type]


def test_an_overlapping_fabric_is_refused_and_quarantine_keeps_the_rest(
    tmp_path: Path, settings: Settings, database_url: str
) -> None:
    polys = _grid()
    polys[5] = shapely.box(X0 + SIZE, Y0 + SIZE, X0 + 2 * SIZE + 1, Y0 + 2 * SIZE)
    polys.append(shapely.box(X0 + 4 * SIZE, Y0, X0 + 4 * SIZE + 0.2, Y0 + SIZE))  # sliver
    path = _write(tmp_path, polys)

    with pytest.raises(IngestRejectedError, match=r"2 of 17 features have errors: 2 overlap"):
        _ingest(settings, path, "fabric_overlap", key="code")
    assert _rows(database_url, "SELECT to_regclass('layers.fabric_overlap')") == [(None,)]

    report = _ingest(settings, path, "fabric_overlap", key="code", on_invalid="quarantine")
    assert report["counts"] == {
        "errors": {"overlap": 2},
        "warnings": {"sliver": 1},
        "features_with_errors": 2,
        "repaired": 0,
    }
    assert report["features_loaded"] == 15 and report["features_quarantined"] == 2
    assert report["staged_while_checking"] is True  # refused rows deleted from the staging
    loaded = _rows(database_url, "SELECT code FROM layers.fabric_overlap ORDER BY fid")
    assert [r[0] for r in loaded] == [f"P{i}" for i in range(17) if i not in {5, 6}]
    assert sorted(
        r[0]
        for r in _rows(
            database_url,
            "SELECT key FROM platform.quarantine WHERE collection_id = 'fabric_overlap'",
        )
    ) == ["P5", "P6"]


def test_duplicate_keys_fall_back_to_staging_after_the_checks(
    tmp_path: Path, settings: Settings, database_url: str
) -> None:
    # The background staging's unique key index fails on the duplicate; the checks
    # quarantine both rows and the layer is staged again without them.
    keys = [f"P{i}" for i in range(16)]
    keys[3] = "P2"
    report = _ingest(
        settings,
        _write(tmp_path, _grid(), keys),
        "fabric_dupes",
        key="code",
        on_invalid="quarantine",
    )
    assert report["counts"]["errors"] == {"duplicate_key": 2}  # type: ignore[index]
    assert report["staged_while_checking"] is False
    loaded = _rows(database_url, "SELECT fid, code FROM layers.fabric_dupes ORDER BY fid")
    assert loaded == [(i + 1, f"P{i}") for i in range(16) if i not in {2, 3}]
    assert not _rows(database_url, "SELECT relname FROM pg_class WHERE relname LIKE '\\_stage\\_%'")


def test_geometries_are_loaded_exactly_as_read(
    tmp_path: Path, settings: Settings, database_url: str
) -> None:
    # Polygons and multipolygons mixed (the column becomes MultiPolygon), with Z.
    polys: list[shapely.Geometry] = [shapely.force_3d(p, 7.25 + i) for i, p in enumerate(_grid(2))]
    polys[1] = shapely.MultiPolygon([polys[1]])
    polys[3] = shapely.force_3d(
        shapely.Polygon(
            [
                (X0 + SIZE, Y0 + SIZE),
                (X0 + 2 * SIZE, Y0 + SIZE),
                (X0 + 2 * SIZE, Y0 + 2 * SIZE + 1e-7),
            ]
        ),
        1.0,
    )
    report = _ingest(settings, _write(tmp_path, polys), "fabric_exact")
    assert report["geometry_type"] == "MultiPolygonZ"
    rows = _rows(
        database_url,
        "SELECT ST_AsBinary(geom), ST_SRID(geom) FROM layers.fabric_exact ORDER BY fid",
    )
    for (wkb, srid), want in zip(rows, polys, strict=True):
        got = shapely.from_wkb(bytes(wkb))  # type: ignore[arg-type]
        assert srid == 4546
        assert got.geom_type == "MultiPolygon" and got.has_z
        assert np.array_equal(
            shapely.get_coordinates(got, include_z=True),
            shapely.get_coordinates(want, include_z=True),
        )


def test_the_checks_may_end_after_the_background_staging_failed(
    tmp_path: Path, settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of the test above, made certain: the background staging has failed (its
    savepoint aborted the transaction) before the checks end. Nothing may query the
    connection in between; the layer is staged again after the checks, as always."""
    started = Preload.__enter__

    def finished_first(self: Preload) -> Preload:
        started(self)
        self._thread.join()  # the staging ends (here: fails on the duplicate) first
        return self

    monkeypatch.setattr(Preload, "__enter__", finished_first)
    keys = [f"P{i}" for i in range(16)]
    keys[3] = "P2"
    report = _ingest(settings, _write(tmp_path, _grid(), keys), "fabric_dupes_late",
                     key="code", on_invalid="quarantine")  # fmt: skip
    assert report["counts"]["errors"] == {"duplicate_key": 2}  # type: ignore[index]
    assert report["staged_while_checking"] is False
    loaded = _rows(database_url, "SELECT code FROM layers.fabric_dupes_late ORDER BY fid")
    assert loaded == [(f"P{i}",) for i in range(16) if i not in {2, 3}]
