"""Read replicas with a real streaming replica: a primary embedded cluster of the test's
own (not the shared one) and a replica made by ``pg_basebackup -R``. Lag-tolerant reads
are served by the replica; a client that wrote reads its write (the primary) while the
replica's replay is paused; a replica too far behind, or down, is not read (no 5xx)."""

from __future__ import annotations

import math
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import psycopg
import pytest
import shapely
from pydantic import SecretStr
from support import LiveServer, admin_headers

from api import create_app
from api.replicas import CHECK_S, RETRY_S, WAL_COOKIE, WAL_HEADER
from spatial.db import EmbeddedCluster, migrate
from spatial.db.embedded import ClusterInfo
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import DatabaseSettings, EmbeddedSettings, Settings

pytestmark = pytest.mark.slow

LAYER = "replica_points"
ITEMS = f"/collections/{LAYER}/items"


@dataclass
class Pair:
    cluster: EmbeddedCluster
    info: ClusterInfo
    primary: str
    replica: str
    replica_data: Path
    replica_log: Path
    root: Path

    def replica_ctl(self, *args: str) -> None:
        done = self.cluster._run_pg(
            self.info, ["pg_ctl", "-D", str(self.replica_data), *args], check=False
        )
        assert done.returncode == 0, done.stderr + done.stdout + self.replica_log.read_text()


def _one(url: str, query: str, *params: object) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None


def _wait(check: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


def _caught_up(pair: Pair) -> None:
    lsn = _one(pair.primary, "SELECT pg_current_wal_lsn()::text")
    _wait(
        lambda: _one(pair.replica, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", lsn),
        "the replica did not catch up",
    )


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """A primary cluster with a migrated database and a streaming replica of it."""
    root = Path(tempfile.mkdtemp(prefix="spatial-replica-"))
    root.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    cluster = EmbeddedCluster(root / "primary", EmbeddedSettings())
    pair: Pair | None = None
    try:
        info = cluster.ensure_running()
        primary = info.url()
        # initdb's defaults stream: wal_level replica, ten WAL senders, and pg_hba lets the
        # local socket replicate (trust, like its other local connections).
        assert _one(primary, "SHOW wal_level") == "replica"
        assert int(_one(primary, "SHOW max_wal_senders")) > 0
        migrate.upgrade(primary)
        base = root / "replica"
        base.mkdir(mode=0o700)
        sock = base / "run"
        sock.mkdir(mode=0o700)
        log = base / "postgresql.log"
        log.touch()
        if info.os_user:
            import pwd  # noqa: PLC0415

            user = pwd.getpwnam(info.os_user)
            for path in (base, sock, log):
                shutil.chown(path, user.pw_uid, user.pw_gid)
        data = base / "data"
        port = _free_port()
        cluster._run_pg(
            info,
            ["pg_basebackup", "-h", info.socket_dir, "-p", str(info.port), "-U", info.superuser,
             "-D", str(data), "-R", "-X", "stream", "-c", "fast"],
        )  # fmt: skip
        with (data / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"port = {port}\nunix_socket_directories = '{sock}'\nhot_standby = on\n")
        replica = primary.replace(f"host={info.socket_dir}", f"host={sock}").replace(
            f"port={info.port}", f"port={port}"
        )
        pair = Pair(cluster, info, primary, replica, data, log, root)
        pair.replica_ctl("-l", str(log), "-w", "start")
        assert _one(replica, "SELECT pg_is_in_recovery()") is True
        yield pair
    finally:
        if pair is not None:
            cluster._run_pg(
                info, ["pg_ctl", "-D", str(pair.replica_data), "-m", "immediate", "-w", "stop"],
                check=False,
            )  # fmt: skip
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    from support import free_port  # noqa: PLC0415

    return free_port()


def _settings(pair: Pair, max_lag_s: float) -> Settings:
    var = pair.root / f"var-{max_lag_s}"
    return Settings(
        environment="test",
        var_dir=var,
        data_dir=var / "data",
        database=DatabaseSettings(
            url=SecretStr(pair.primary),
            replica_urls=[SecretStr(pair.replica)],
            replica_max_lag_s=max_lag_s,
        ),
    )


@pytest.fixture(scope="module")
def api(pair: Pair) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    """The API on the primary with the replica (60 s of lag tolerated), an editable layer
    of three points, and an admin's headers."""
    settings = _settings(pair, 60)
    folder = pair.root / "layer"
    folder.mkdir()
    frame = gpd.GeoDataFrame(
        {"code": ["P1", "P2", "P3"]},
        geometry=[
            shapely.Point(112.0, 22.9),
            shapely.Point(112.01, 22.9),
            shapely.Point(112.02, 22.98),
        ],
        crs="EPSG:4326",
    )
    frame.to_file(folder / "points.gpkg")
    ingest_vector(pair.primary, VectorSource(path=folder / "points.gpkg", collection_id=LAYER,
                                             title=LAYER, key="code", editable=True, public=True),
                  settings, actor="pytest")  # fmt: skip
    auth = admin_headers(pair.primary)
    _caught_up(pair)
    with LiveServer(create_app(settings)) as server:
        yield server, auth


def _codes(base: str, **headers: str) -> set[str]:
    # A fresh client each time: no cookie of an earlier write.
    with httpx.Client(base_url=base, timeout=30) as http:
        page = http.get(ITEMS, params={"limit": 100}, headers=headers)
    assert page.status_code == 200, page.text
    return {f["properties"]["code"] for f in page.json()["features"]}


def _pause(pair: Pair) -> None:
    _one(pair.replica, "SELECT pg_wal_replay_pause()")


def _resume(pair: Pair) -> None:
    _one(pair.replica, "SELECT pg_wal_replay_resume()")
    _caught_up(pair)


def _create(
    http: httpx.Client, auth: dict[str, str], code: str, x: float, y: float = 22.95
) -> httpx.Response:
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
               "properties": {"code": code}}  # fmt: skip
    created = http.post(ITEMS, json=feature,
                        headers={**auth, "Content-Type": "application/geo+json"})  # fmt: skip
    assert created.status_code == 201, created.text
    return created


def test_reads_are_served_by_the_replica(
    pair: Pair, api: tuple[LiveServer, dict[str, str]]
) -> None:
    server, auth = api
    assert _codes(server.url) == {"P1", "P2", "P3"}
    assert _serving(pair) >= 1, "the API holds no connection to the replica"
    _pause(pair)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as writer:
            created = _create(writer, auth, "A1", 112.1)
        assert created.headers[WAL_HEADER]
        # An anonymous reader (no write position) sees the replica's older state.
        assert _codes(server.url) == {"P1", "P2", "P3"}
        assert "A1" in _codes(server.url, **{WAL_HEADER: created.headers[WAL_HEADER]})
    finally:
        _resume(pair)
    assert "A1" in _codes(server.url)


def test_read_after_write(pair: Pair, api: tuple[LiveServer, dict[str, str]]) -> None:
    server, auth = api
    _pause(pair)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as editor:
            created = _create(editor, auth, "B1", 112.2)
            lsn = created.headers[WAL_HEADER]
            assert editor.cookies.get(WAL_COOKIE) == lsn, "browsers get the position as a cookie"
            # The editor (its cookie) reads its write: from the primary.
            read = editor.get(created.headers["location"])
            assert read.status_code == 200, read.text
            assert read.json()["properties"]["code"] == "B1"
            page = editor.get(ITEMS, params={"limit": 100})
            assert "B1" in {f["properties"]["code"] for f in page.json()["features"]}
        # So does any client sending the header.
        assert "B1" in _codes(server.url, **{WAL_HEADER: lsn})
        # The replica still lacks it, and serves those without the position.
        assert "B1" not in _codes(server.url)
        missing = httpx.get(created.headers["location"], timeout=30)
        assert missing.status_code == 404
        assert _one(pair.replica, "SELECT pg_get_wal_replay_pause_state()") != "not paused"
    finally:
        _resume(pair)
    # Replayed: the replica serves the write, to readers with the position too.
    assert "B1" in _codes(server.url)
    _pause(pair)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as other:
            _create(other, auth, "B2", 112.3)
        # The old position is replayed: the replica answers (without B2, not yet replayed).
        codes = _codes(server.url, **{WAL_HEADER: lsn})
        assert "B1" in codes and "B2" not in codes
    finally:
        _resume(pair)


def test_a_collection_newer_than_the_replica_is_read_on_the_primary(
    pair: Pair, api: tuple[LiveServer, dict[str, str]]
) -> None:
    """A collection made while the replica does not replay: its table is not there yet, so
    its pages come from the primary (not a 500 from the replica)."""
    server, _ = api
    folder = pair.root / "fresh"
    folder.mkdir()
    gpd.GeoDataFrame(
        {"code": ["N1"]}, geometry=[shapely.Point(112.05, 22.95)], crs="EPSG:4326"
    ).to_file(folder / "fresh.gpkg")
    _pause(pair)
    try:
        ingest_vector(pair.primary, VectorSource(path=folder / "fresh.gpkg",
                                                 collection_id="fresh_points", title="fresh",
                                                 public=True),
                      _settings(pair, 60), actor="pytest")  # fmt: skip
        assert _one(pair.replica, "SELECT to_regclass('layers.fresh_points')") is None
        with httpx.Client(base_url=server.url, timeout=30) as http:
            _wait(lambda: http.get("/collections/fresh_points").status_code == 200,
                  "the new collection in the catalog")  # fmt: skip
            page = http.get("/collections/fresh_points/items")
        assert page.status_code == 200, page.text
        assert [f["properties"]["code"] for f in page.json()["features"]] == ["N1"]
    finally:
        _resume(pair)


def test_a_replica_too_far_behind_is_not_read(
    pair: Pair, api: tuple[LiveServer, dict[str, str]]
) -> None:
    server, auth = api
    with LiveServer(create_app(_settings(pair, 1.0))) as strict:
        assert "C1" not in _codes(strict.url)
        _pause(pair)
        try:
            with httpx.Client(base_url=server.url, timeout=30) as writer:
                _create(writer, auth, "C1", 112.4)
            time.sleep(2.5)  # the last replayed commit is now older than a second
            assert "C1" in _codes(strict.url), "a lagging replica was read"
            assert "C1" not in _codes(server.url), "60 s of lag are tolerated"
        finally:
            _resume(pair)


def test_a_replica_down_falls_back_to_the_primary(
    pair: Pair, api: tuple[LiveServer, dict[str, str]]
) -> None:
    server, auth = api
    pair.replica_ctl("-m", "fast", "-w", "stop")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as writer:
            _create(writer, auth, "D1", 112.5)
        for _ in range(5):
            assert "D1" in _codes(server.url)
        tile = httpx.get(f"{server.url}/collections/{LAYER}/tiles/WebMercatorQuad/0/0/0",
                         timeout=30)  # fmt: skip
        assert tile.status_code in {200, 204}
    finally:
        pair.replica_ctl("-l", str(pair.replica_log), "-w", "start")
    _caught_up(pair)
    assert "D1" in _codes(server.url)
    # The replica's pool reconnects, and reads go to it again.
    _wait(lambda: _serving(pair) >= 1, "the API did not reconnect to the replica", 60)
    time.sleep(RETRY_S + CHECK_S)
    _pause(pair)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as writer:
            _create(writer, auth, "D2", 112.55)
        assert "D2" not in _codes(server.url)
    finally:
        _resume(pair)


def _serving(pair: Pair) -> int:
    """The API's connections to the replica."""
    count: int = _one(
        pair.replica,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'spatial-api-replica'",
    )
    return count


def _tile_of(lon: float, lat: float, z: int) -> str:
    n = 2**z
    col = int((lon + 180) / 360 * n)
    row = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return f"/collections/{LAYER}/tiles/WebMercatorQuad/{z}/{row}/{col}"


def test_a_changed_tile_is_not_cut_from_a_replica_behind(
    pair: Pair, api: tuple[LiveServer, dict[str, str]]
) -> None:
    server, auth = api
    # Inside the layer's extent (tiles are cut only there), in a tile of its own.
    path = _tile_of(112.015, 22.94, 16)
    assert httpx.get(server.url + path, timeout=30).status_code == 204  # cached empty
    _pause(pair)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as writer:
            _create(writer, auth, "E1", 112.015, 22.94)
        assert "E1" not in _codes(server.url), "the replica serves the items"
        # The invalidation reaches the worker; the tile is cut again, on the primary (the
        # replica has not replayed the point: an empty tile would be cached).
        _wait(lambda: httpx.get(server.url + path, timeout=30).status_code == 200,
              "the changed tile was cut from the replica", 10)  # fmt: skip
    finally:
        _resume(pair)
