"""The bad-input corpus (``badinputs.py``): each file gets a clear error or report, the
job is marked failed, and the database is left exactly as it was."""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import psycopg
import pyogrio
import pytest
import shapely
from badinputs import CASES, BadInput

from spatial.errors import InvalidInputError
from spatial.ingest.vector import VectorSource, ingest_vector
from spatial.settings import Settings

VICTIM = "victim"


@pytest.fixture(scope="module")
def victim(settings: Settings, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A collection loaded before the corpus runs; every bad re-import targets it."""
    folder = tmp_path_factory.mktemp("victim")
    cells = [shapely.box(112.0 + i * 0.001, 22.9, 112.001 + i * 0.001, 22.901) for i in range(4)]
    frame = gpd.GeoDataFrame({"dkbm": ["a", "b", "c", "d"]}, geometry=cells, crs="EPSG:4490")
    pyogrio.write_dataframe(frame, folder / "good.gpkg")
    source = VectorSource(folder / "good.gpkg", VICTIM, "victim", key="dkbm")
    ingest_vector(database_url, source, settings)
    return database_url


def _snapshot(url: str) -> tuple[object, ...]:
    """Everything an ingest may write, except the jobs table (a failed job is expected)."""
    with psycopg.connect(url) as conn:
        return tuple(
            conn.execute(query).fetchall()  # type: ignore[arg-type]
            for query in (
                "SELECT fid, dkbm, ST_AsEWKB(geom) FROM layers.victim ORDER BY fid",
                (
                    "SELECT id, version, feature_count, properties, updated_at "
                    "FROM platform.collections ORDER BY id"
                ),
                (
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'layers' ORDER BY 1"
                ),
                "SELECT collection_id, edition FROM platform.editions ORDER BY 1, 2",
                "SELECT count(*) FROM platform.feature_history",
                "SELECT count(*) FROM platform.feature_changes",
                "SELECT count(*) FROM platform.quarantine",
                "SELECT count(*) FROM platform.audit_log",
            )
        )


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)
    assert all(c.expect for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(
    case: BadInput, tmp_path: Path, settings: Settings, victim: str
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    path = case.build(folder)
    before = _snapshot(victim)
    options = {k: v for k, v in case.options.items() if k != "collection"}
    source = VectorSource(path=path, collection_id=VICTIM, title=VICTIM, **options)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError) as err:
        ingest_vector(victim, source, settings)
    message = str(err.value)
    assert re.search(case.expect, message), f"{case.name}: {message}"
    assert _snapshot(victim) == before
    with psycopg.connect(victim) as conn:
        state, stored = conn.execute(
            "SELECT state, message FROM platform.ingest_jobs WHERE collection_id = %s "
            "ORDER BY created_at DESC LIMIT 1",
            (VICTIM,),
        ).fetchone()  # type: ignore[misc]
    assert (state, stored) == ("failed", message)
