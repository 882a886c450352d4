"""Every write of the ``spatial`` command line is audited: each ``spatial gps`` command that
changes something, run for real, leaves its row in ``platform.audit_log`` (its action, the
actor ``cli:<OS user>``, the ids it touched, never a token or a secret), a refused one
leaves none; and ``spatial restore --force`` keeps the audit log it replaces (read back
here row by row) and records itself in the restored one.

The module works in databases of its own: retention drops partitions and a restore
replaces a whole database, which no other module must see.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr
from support import create_database, drop_database, run_cli

from spatial import backup
from spatial.db import migrate
from spatial.errors import DatabaseUnavailableError
from spatial.gps import store
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import DatabaseSettings, Settings

ACTOR = f"cli:{getpass.getuser()}"
"""Who the commands run as (the subprocess inherits this process's user)."""


@pytest.fixture(scope="module")
def url(server_url: str) -> Iterator[str]:
    """This module's own database, migrated, with a department."""
    own = create_database(server_url)
    try:
        migrate.upgrade(own)
        with psycopg.connect(own, autocommit=True) as conn:
            conn.execute("INSERT INTO platform.departments (id, name) VALUES ('ca_fire', 'Fire')")
        yield own
    finally:
        drop_database(server_url, own)


def _env(url: str, **more: str) -> dict[str, str]:
    return {"SPATIAL_DATABASE_URL": url, "SPATIAL_ENVIRONMENT": "test", "COLUMNS": "200", **more}


def _rows(url: str, action: str) -> list[dict[str, Any]]:
    """The audit rows of an action, oldest first, as JSON objects (every column)."""
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT row_to_json(a)::text FROM platform.audit_log a WHERE action = %s ORDER BY id",
            (action,),
        ).fetchall()
    return [json.loads(r[0]) for r in found]


def _said(done: Any) -> str:
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split())


def test_device_add_and_remove(url: str) -> None:
    said = _said(run_cli("gps", "device", "add", "ca-van", "--department", "ca_fire",
                         "--kind", "boat", **_env(url)))  # fmt: skip
    token = said.split("token (shown once):")[1].split()[0]
    (added,) = _rows(url, "device-add")
    assert (added["actor"], added["feature_ids"]) == (ACTOR, ["ca-van"])
    assert added["details"] == {"department": "ca_fire", "kind": "boat"}
    assert token not in json.dumps(added)
    again = run_cli("gps", "device", "add", "ca-van", **_env(url))
    assert again.returncode == 1 and "already registered" in again.stderr
    assert len(_rows(url, "device-add")) == 1  # a refused change leaves no row

    _said(run_cli("gps", "device", "remove", "ca-van", **_env(url)))
    (removed,) = _rows(url, "device-remove")
    assert (removed["actor"], removed["feature_ids"]) == (ACTOR, ["ca-van"])
    gone = run_cli("gps", "device", "remove", "ca-van", **_env(url))
    assert gone.returncode == 1 and "not registered" in gone.stderr
    assert len(_rows(url, "device-remove")) == 1


def test_fence_import_and_remove(url: str, settings: Settings, tmp_path: Path) -> None:
    zones = tmp_path / "ca_zones.geojson"
    square = [[[100.0, 40.0], [100.1, 40.0], [100.1, 40.1], [100.0, 40.1], [100.0, 40.0]]]
    zones.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"zone": f"ca-{n}"},
         "geometry": {"type": "Polygon",
                      "coordinates": [[[x + n, y] for x, y in square[0]]]}}
        for n in range(2)]}))  # fmt: skip
    ingest_vector(url, VectorSource(zones, "ca_zones", "CLI audit zones", key="zone"), settings)
    said = _said(run_cli("gps", "fence", "import", "ca_zones", "--name-field", "zone",
                         "--dwell", "60", **_env(url)))  # fmt: skip
    assert "2 fence(s) from ca_zones" in said
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT id FROM gps.fences WHERE source_collection = 'ca_zones' ORDER BY id"
        ).fetchall()
    ids = [r[0] for r in found]
    assert len(ids) == 2
    (imported,) = _rows(url, "fence-import")
    assert (imported["actor"], imported["feature_ids"]) == (ACTOR, [str(i) for i in ids])
    assert imported["details"] == {"collection": "ca_zones", "fences": 2, "retired": [],
                                   "name_field": "zone", "dwell_s": 60}  # fmt: skip

    said = _said(run_cli("gps", "fence", "remove", str(ids[0]), **_env(url)))
    assert f"removed fence {ids[0]}" in said
    (removed,) = _rows(url, "fence-remove")
    assert (removed["actor"], removed["feature_ids"]) == (ACTOR, [str(ids[0])])
    assert removed["details"] == {"id": ids[0], "name": "ca-0", "collection": "ca_zones"}
    gone = run_cli("gps", "fence", "remove", str(ids[0]), **_env(url))
    assert gone.returncode == 1 and f"fence {ids[0]} does not exist" in gone.stderr
    assert len(_rows(url, "fence-remove")) == 1


def test_retention(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT gps.ensure_month('2001-01-01T00:00:00Z')")
    said = _said(run_cli("gps", "retention", "--older-than", "3650d", **_env(url)))
    assert "dropped 1 partition(s): positions_200101" in said
    (row,) = _rows(url, "positions-retention")
    assert row["actor"] == ACTOR
    assert row["details"]["dropped"] == ["positions_200101"]
    assert row["details"]["older_than_s"] == 3650 * 86_400


def test_webhook_add_and_remove(url: str) -> None:
    secret = "ca-secret-0123456789abcdef"
    hook = "https://hooks.example.org:8443/services/PATH-TOKEN?key=QUERY-TOKEN"
    said = _said(run_cli("gps", "webhook", "add", hook, "--secret", secret, "--kind", "enter",
                         "--department", "ca_fire", **_env(url)))  # fmt: skip
    webhook_id = int(re.search(r"webhook (\d+)", said).group(1))  # type: ignore[union-attr]
    (added,) = _rows(url, "webhook-add")
    assert (added["actor"], added["feature_ids"]) == (ACTOR, [str(webhook_id)])
    assert added["details"] == {
        "id": webhook_id, "origin": "https://hooks.example.org:8443", "fences": [],
        "kinds": ["enter"], "department": "ca_fire",
    }  # fmt: skip
    text = json.dumps(added)
    assert secret not in text and "PATH-TOKEN" not in text and "QUERY-TOKEN" not in text

    said = _said(run_cli("gps", "webhook", "remove", str(webhook_id), **_env(url)))
    (removed,) = _rows(url, "webhook-remove")
    assert (removed["actor"], removed["feature_ids"]) == (ACTOR, [str(webhook_id)])
    assert "PATH-TOKEN" not in json.dumps(removed)
    gone = run_cli("gps", "webhook", "remove", str(webhook_id), **_env(url))
    assert gone.returncode == 1 and "does not exist" in gone.stderr
    assert len(_rows(url, "webhook-remove")) == 1


# -- restore --force ---------------------------------------------------------------------


@pytest.fixture
def restored_over(server_url: str) -> Iterator[str]:
    """A migrated database of this test's own, to back up and restore over."""
    own = create_database(server_url)
    try:
        migrate.upgrade(own)
        yield own
    finally:
        drop_database(server_url, own)


def _manifest_sha256(archive: Path) -> str:
    with tarfile.open(archive) as tar:
        return hashlib.sha256(tar.extractfile("manifest.json").read()).hexdigest()  # type: ignore[union-attr]


def test_restore_force_keeps_the_log_it_replaces_and_records_itself(
    restored_over: str, tmp_path: Path
) -> None:
    url = restored_over
    env = _env(url, SPATIAL_DATA_DIR=str(tmp_path / "data"))
    _said(run_cli("gps", "device", "add", "ca-before", **env))
    backups = tmp_path / "backups"
    backups.mkdir()
    archive = backups / "small.tar"
    _said(run_cli("backup", str(archive), **env))
    _said(run_cli("gps", "device", "add", "ca-after", **env))  # only in the log replaced
    with psycopg.connect(url) as conn:
        count = conn.execute("SELECT count(*) FROM platform.audit_log").fetchone()
        known = conn.execute(
            "SELECT row_to_json(a)::text FROM platform.audit_log a "
            "WHERE 'ca-after' = ANY(feature_ids)"
        ).fetchone()
    assert count is not None and count[0] >= 2 and known is not None

    said = _said(run_cli("restore", str(archive), "--force", **env))
    (kept_path,) = [p for p in backups.iterdir() if p != archive]
    assert re.fullmatch(r"replaced-audit-log-\d{8}T\d{6}Z\.tar", kept_path.name)
    assert f"replaced audit log ({count[0]} rows) kept in {kept_path}" in said

    # The kept log, read back: every row, the known one unchanged, its checksum right.
    with tarfile.open(kept_path) as tar:
        about = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        data = tar.extractfile("audit_log.jsonl").read()  # type: ignore[union-attr]
    lines = [json.loads(line) for line in data.decode().splitlines()]
    assert len(lines) == about["rows"] == count[0]
    assert json.loads(known[0]) in lines
    assert about["log"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert about["restored_archive"] == str(archive.resolve())
    assert [r["id"] for r in lines] == sorted(r["id"] for r in lines)

    # The restored log: the archive's rows and the restore's own, not the replaced ones.
    with psycopg.connect(url) as conn:
        devices = {r[0] for r in conn.execute("SELECT id FROM gps.devices")}
    assert devices == {"ca-before"}
    assert [r["feature_ids"] for r in _rows(url, "device-add")] == [["ca-before"]]
    (restore,) = _rows(url, "restore")
    assert restore["actor"] == ACTOR
    details = restore["details"]
    assert details["archive"] == str(archive.resolve())
    assert details["manifest_sha256"] == _manifest_sha256(archive)
    assert details["replaced_log"] == str(kept_path)
    assert details["replaced_log_sha256"] == about["log"]["sha256"]
    assert details["replaced_rows"] == count[0]
    with psycopg.connect(url) as conn:
        last = conn.execute("SELECT max(id) FROM platform.audit_log").fetchone()
    assert last == (restore["id"],)


def test_a_row_added_after_the_log_was_kept_stops_the_restore(
    restored_over: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that lands between keeping the log and replacing the database would be lost:
    the restore's transaction finds it and restores nothing."""
    url = restored_over
    own = Settings(environment="test", var_dir=tmp_path / "var", data_dir=tmp_path / "data",
                   database=DatabaseSettings(url=SecretStr(url)))  # fmt: skip
    with psycopg.connect(url, autocommit=True) as conn:
        store.add_device(conn, "ca-early")
    archive = tmp_path / "small.tar"
    backup.backup(url, own, archive)
    keep = backup.keep_audit_log

    def keep_then_write(*args: Any) -> backup.KeptLog | None:
        kept = keep(*args)
        with psycopg.connect(url, autocommit=True) as conn:
            store.add_device(conn, "ca-late")
        return kept

    monkeypatch.setattr(backup, "keep_audit_log", keep_then_write)
    with pytest.raises(DatabaseUnavailableError, match="the audit log grew after it was kept"):
        backup.restore(archive, url, own, force=True)
    with psycopg.connect(url) as conn:
        devices = {r[0] for r in conn.execute("SELECT id FROM gps.devices")}
    assert devices == {"ca-early", "ca-late"}
    assert [r["feature_ids"] for r in _rows(url, "device-add")] == [["ca-early"], ["ca-late"]]
    assert _rows(url, "restore") == []


def test_readings_retention(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT sta.ensure_month('2001-02-01T00:00:00Z')")
    said = _said(run_cli("sta", "retention", "--older-than", "3650d", **_env(url)))
    assert "dropped 1 partition(s): observations_200102" in said
    (row,) = _rows(url, "observations-retention")
    assert row["actor"] == ACTOR and row["details"]["dropped"] == ["observations_200102"]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('sta.observations_200102')").fetchone() == (None,)
