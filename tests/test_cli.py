"""The command line: help everywhere, status of the embedded cluster, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support import cli_env

from spatial.settings import Settings

SPATIAL = [sys.executable, "-m", "spatial.cli"]
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
    ["samples"],
    ["samples", "build"],
    ["samples", "load"],
    ["ingest"],
    ["ingest", "vector"],
    ["gps"],
    ["user"],
]


@pytest.mark.parametrize("args", GROUPS, ids=lambda a: " ".join(a) or "spatial")
def test_help_everywhere(args: list[str]) -> None:
    out = subprocess.run(
        [*SPATIAL, *args, "--help"], capture_output=True, text=True, check=False, env=cli_env()
    )
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout


def test_status_reports_the_embedded_cluster_with_postgis_3() -> None:
    if not Settings().uses_embedded:
        pytest.skip("SPATIAL_DATABASE_URL is set: this run uses an external server")
    out = subprocess.run(
        [*SPATIAL, "db", "status", "--json"],
        capture_output=True,
        text=True,
        check=False,
        env=cli_env(),
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["mode"] == "embedded"
    assert report["running"] is True
    assert report["postgis_version"].startswith("3.")
    assert report["url"].startswith("postgresql://") and "***" in report["url"]


def test_bad_database_url_gives_a_message_not_a_traceback() -> None:
    env = cli_env(SPATIAL_DATABASE_URL="postgresql://nobody:x@127.0.0.1:1/none")
    out = subprocess.run(
        [*SPATIAL, "db", "migrate"], capture_output=True, text=True, check=False, env=env
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "127.0.0.1" in out.stderr


def test_ingest_rejects_a_bad_collection_id(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "x.geojson"
    src.write_text('{"type":"FeatureCollection","features":[]}')
    out = subprocess.run(
        [*SPATIAL, "ingest", "vector", str(src), "--collection", "Bad;Id"],
        capture_output=True,
        text=True,
        check=False,
        env=cli_env(),
    )
    assert out.returncode == 1
    assert "collection id" in out.stderr
