"""``spatial backup`` and ``spatial restore``: the demo city into a fresh cluster, compared
table by table and file by file; damaged archives and non-empty targets are refused."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from support import TESTS, run_cli, with_database

from spatial.backup import database_empty
from spatial.db import EmbeddedCluster
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import EmbeddedSettings, Settings

pytestmark = pytest.mark.slow

HISTORY = "backup_history"


def _points(path: Path, values: dict[str, int]) -> Path:
    features = [
        {
            "type": "Feature",
            "properties": {"code": code, "value": value},
            "geometry": {"type": "Point", "coordinates": [112.0 + i / 100, 22.9]},
        }
        for i, (code, value) in enumerate(values.items())
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


@pytest.fixture(scope="module")
def source(demo_url: str, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo city plus a keyed layer with two editions (so feature history is kept)."""
    folder = tmp_path_factory.mktemp("history")
    first = _points(folder / "v1.geojson", {"a": 1, "b": 2, "c": 3})
    second = _points(folder / "v2.geojson", {"a": 1, "b": 20, "d": 4})
    for path in (first, second):
        ingest_vector(demo_url, VectorSource(path, HISTORY, "History", key="code"), settings,
                      actor=TESTS.name)  # fmt: skip
    with psycopg.connect(demo_url) as conn:
        for table in ("gps.positions", "platform.feature_history", "platform.editions"):
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
            assert row is not None and row[0] > 0, f"the demo has no rows in {table}"
    return demo_url


@pytest.fixture(scope="module")
def archive(source: str, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("backup") / "city.tar"
    done = run_cli("backup", str(out), SPATIAL_DATABASE_URL=source,
                   SPATIAL_DATA_DIR=str(settings.data_dir))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "backup written" in done.stdout and "GPS positions" in done.stdout
    assert out.is_file()
    assert not [p for p in out.parent.iterdir() if p != out], "temporary files were left"
    return out


@pytest.fixture(scope="module")
def fresh_cluster() -> Iterator[tuple[Path, str]]:
    """A brand-new embedded cluster in a temporary folder; stopped at the end."""
    root = Path(tempfile.mkdtemp(prefix="spatial-test-"))
    root.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    cluster = EmbeddedCluster(root / "var", EmbeddedSettings())
    try:
        info = cluster.ensure_running()
        yield root, info.url("postgres")
    finally:
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def _new_database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


def _restore(archive: Path, url: str, data_dir: Path, *extra: str) -> Any:
    return run_cli("restore", str(archive), *extra, SPATIAL_DATABASE_URL=url,
                   SPATIAL_DATA_DIR=str(data_dir))  # fmt: skip


@pytest.fixture(scope="module")
def restored(archive: Path, fresh_cluster: tuple[Path, str]) -> tuple[str, Path, Any]:
    root, server = fresh_cluster
    url = _new_database(server, "restored")
    data_dir = root / "data-restored"
    done = _restore(archive, url, data_dir)
    return url, data_dir, done


def _snapshot(url: str, store: Path) -> dict[str, Any]:
    """Everything the comparison looks at, read independently of spatial.backup."""
    with psycopg.connect(url) as conn:
        catalog = conn.execute(
            "SELECT id, kind, feature_count, storage_schema, storage_table "
            "FROM platform.collections ORDER BY id"
        ).fetchall()
        rows = {}
        for cid, kind, _count, schema, table in catalog:
            if kind == "vector":
                query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            elif kind == "raster":
                query = sql.SQL("SELECT count(*) FROM rs.items WHERE collection_id = {}").format(
                    sql.Literal(cid)
                )
            else:
                continue
            found = conn.execute(query).fetchone()
            rows[cid] = found[0] if found else None

        def one(query: str) -> Any:
            found = conn.execute(query).fetchone()
            return found[0] if found else None

        paths = {
            r[0]
            for r in conn.execute(
                "SELECT data_path FROM rs.items UNION SELECT web_path FROM rs.items "
                "UNION SELECT a.value->>'href' FROM rs.items, jsonb_each(assets) a"
            )
        }
        return {
            "catalog": [c[:3] for c in catalog],
            "rows": rows,
            "gps": one("SELECT count(*) FROM gps.positions"),
            "history": one("SELECT count(*) FROM platform.feature_history"),
            "history_keys": conn.execute(
                "SELECT key, edition_from, edition_to, properties FROM platform.feature_history "
                "WHERE collection_id = %s ORDER BY key",
                (HISTORY,),
            ).fetchall(),
            "editions": one("SELECT count(*) FROM platform.editions"),
            "revision": one("SELECT version_num FROM alembic_version"),
            "files": {p: _sha256(store / "rasters" / p) for p in paths},
        }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_restore_into_a_fresh_cluster_gives_the_same_platform(
    source: str, settings: Settings, restored: tuple[str, Path, Any]
) -> None:
    url, data_dir, done = restored
    assert done.returncode == 0, done.stderr
    assert "counts and checksums verified" in done.stdout
    before = _snapshot(source, settings.data_dir)
    after = _snapshot(url, data_dir)
    assert before["catalog"] == after["catalog"]
    assert before["rows"] == after["rows"]
    assert before["rows"]["parcels"] > 10_000 and before["rows"]["imagery"] == 2
    assert before["gps"] == after["gps"] > 0
    assert before["history"] == after["history"] > 0
    assert before["history_keys"] == after["history_keys"] != []
    assert before["editions"] == after["editions"]
    assert before["revision"] == after["revision"] is not None
    assert before["files"] == after["files"]
    assert any(p.endswith(".tif") for p in after["files"])
    # The restored store holds exactly the referenced files, nothing else.
    stored = {
        p.relative_to(data_dir / "rasters").as_posix()
        for p in (data_dir / "rasters").rglob("*")
        if p.is_file()
    }
    assert stored == set(after["files"])
    assert sorted(p.name for p in data_dir.parent.iterdir() if p.name.startswith(".")) == []


def test_the_archive_lists_what_it_holds(archive: Path) -> None:
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert names[0] == "database.dump" and names[-1] == "manifest.json"
    assert manifest["format"] == 1
    assert manifest["postgis_version"].startswith("3.")
    assert manifest["collections"]["parcels"]["rows"] > 10_000
    assert manifest["collections"][HISTORY]["rows"] == 3
    assert manifest["gps_positions"] > 0 and manifest["feature_history"] > 0
    assert {f"rasters/{f['path']}" for f in manifest["files"]} == set(names[1:-1])


def test_a_non_empty_database_is_refused_without_force(
    archive: Path, restored: tuple[str, Path, Any], tmp_path: Path
) -> None:
    url, _data_dir, _ = restored
    done = _restore(archive, url, tmp_path / "data")
    assert done.returncode == 1
    assert "not empty" in done.stderr and "--force" in done.stderr
    assert not (tmp_path / "data").exists()


def test_force_restores_over_a_restored_platform(
    archive: Path, restored: tuple[str, Path, Any]
) -> None:
    url, data_dir, _ = restored
    done = _restore(archive, url, data_dir, "--force")
    assert done.returncode == 0, done.stderr
    assert "counts and checksums verified" in done.stdout


def _rewrite(archive: Path, out: Path, change: str) -> Path:
    """A copy of the archive with one member damaged."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for member in src:
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if change == "raster" and member.name.endswith(".tif"):
                data = bytes([data[0] ^ 0xFF]) + data[1:]
                change = "done"
            elif change == "dump" and member.name == "database.dump":
                data = data[: len(data) // 2]
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return out


@pytest.mark.parametrize("damage", ["raster", "dump", "truncated"])
def test_a_damaged_archive_is_refused_before_anything_is_written(
    archive: Path, fresh_cluster: tuple[Path, str], tmp_path: Path, damage: str
) -> None:
    _root, server = fresh_cluster
    bad = tmp_path / "bad.tar"
    if damage == "truncated":
        bad.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    else:
        _rewrite(archive, bad, damage)
    url = _new_database(server, f"damaged_{damage}")
    data_dir = tmp_path / "target" / "data"
    done = _restore(bad, url, data_dir)
    assert done.returncode == 1
    assert "damaged" in done.stderr or "not a readable backup" in done.stderr, done.stderr
    with psycopg.connect(url) as conn:
        assert database_empty(conn)
    assert not data_dir.exists()
    assert list((tmp_path / "target").iterdir()) == []  # the staging folder is gone


def test_a_failed_backup_leaves_nothing_that_looks_like_an_archive(
    source: str, settings: Settings, tmp_path: Path
) -> None:
    from spatial.backup import backup  # noqa: PLC0415
    from spatial.errors import InvalidInputError  # noqa: PLC0415

    out = tmp_path / "out" / "city.tar"
    out.parent.mkdir()
    elsewhere = settings.model_copy(update={"data_dir": tmp_path / "no-rasters"})
    with pytest.raises(InvalidInputError, match="which does not exist"):
        backup(source, elsewhere, out)  # the COGs are not in this data folder
    assert list(out.parent.iterdir()) == []
