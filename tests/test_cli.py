"""The command line: help everywhere, status of the embedded cluster, clear errors."""

from __future__ import annotations

import json

import pytest
from support import run_cli

from spatial.settings import Settings

GROUPS = [
    [],
    ["db"],
    ["db", "up"],
    ["db", "down"],
    ["db", "status"],
    ["db", "url"],
    ["db", "migrate"],
    ["db", "psql"],
    ["serve"],
    ["backup"],
    ["restore"],
    ["samples"],
    ["samples", "build"],
    ["samples", "load"],
    ["ingest"],
    ["ingest", "vector"],
    ["gps"],
    ["user"],
    ["tiles"],
    ["tiles", "seed"],
    ["tiles", "export"],
    ["tiles", "cache"],
    ["tiles", "cache", "clear"],
]


@pytest.mark.parametrize("args", GROUPS, ids=lambda a: " ".join(a) or "spatial")
def test_help_everywhere(args: list[str]) -> None:
    out = run_cli(*args, "--help")
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout


def test_status_reports_the_embedded_cluster_with_postgis_3_and_pgrouting() -> None:
    if not Settings().uses_embedded:
        pytest.skip("SPATIAL_DATABASE_URL is set: this run uses an external server")
    out = run_cli("db", "status", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["mode"] == "embedded"
    assert report["running"] is True
    assert report["postgis_version"].startswith("3.")
    assert report["pgrouting_version"].startswith("3.")
    assert report["url"].startswith("postgresql://") and "***" in report["url"]


def test_bad_database_url_gives_a_message_not_a_traceback() -> None:
    env = {"SPATIAL_DATABASE_URL": "postgresql://nobody:x@127.0.0.1:1/none"}
    out = run_cli("db", "migrate", **env)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "127.0.0.1" in out.stderr


def test_ingest_rejects_a_bad_collection_id(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "x.geojson"
    src.write_text('{"type":"FeatureCollection","features":[]}')
    out = run_cli("ingest", "vector", str(src), "--collection", "Bad;Id")
    assert out.returncode == 1
    assert "collection id" in out.stderr
