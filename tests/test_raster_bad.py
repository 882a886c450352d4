"""The bad-raster corpus (``badrasters.py``): each scene is refused with a clear message,
before anything is written: no catalog row, no item, no files in the raster store and no
temporary files under the data directory. A refusal into an existing collection leaves
the collection and its item as they were."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from badrasters import CASES, BadRaster, available, write_corpus
from conftest import SHARED_DATA
from support import LiveServer

from spatial.errors import ConflictError, InvalidInputError
from spatial.ingest.raster import RasterSource, ingest_raster
from spatial.settings import Settings

GOOD = SHARED_DATA / "rasters" / "rasterio_RGB.byte.tif"
VICTIM = "raster_victim"
WHEN = dt.datetime(2024, 5, 3, 2, 30, tzinfo=dt.UTC)
"""Every scene gets an acquisition time, so that a missing one is never the refusal."""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BadRaster]:
    """Every case this machine can build, by name."""
    return {case.name: case for case in write_corpus(tmp_path_factory.mktemp("badrasters"))}


def _case(corpus: dict[str, BadRaster], name: str) -> BadRaster:
    if not available(name):
        pytest.skip(f"{name}: rasterio has no JP2OpenJPEG driver here")
    return corpus[name]


def _entries(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root``: files with size and mtime, directories as (-1, 0)
    (a directory's mtime moves when a temporary file comes and goes)."""
    out: dict[str, tuple[int, int]] = {}
    for path in root.rglob("*") if root.exists() else ():
        stat = path.stat()
        is_dir = path.is_dir()
        out[str(path.relative_to(root))] = (-1, 0) if is_dir else (stat.st_size, stat.st_mtime_ns)
    return out


def _changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> str:
    added = sorted(set(after) - set(before))
    changed = sorted(k for k in before if after.get(k) != before[k])
    return f"added {added}; changed or removed {changed}"


def _assert_nothing_new(root: Path, before: dict[str, tuple[int, int]], collection: str) -> None:
    """Nothing under ``root`` was added, changed or removed, except (empty) folders of the
    collection's store."""
    after = _entries(root)
    allowed = {"rasters", f"rasters/{collection}"}
    kept = {k: v for k, v in after.items() if k not in allowed or k in before}
    assert kept == before, f"under {root}: {_changes(before, kept)}"
    store = root / "rasters" / collection
    assert not store.exists() or not any(store.iterdir()), f"{store} is not empty"


def _rows(url: str, collection: str) -> tuple[list[Any], list[Any]]:
    """The catalog row and the item rows of a collection, every column."""
    with psycopg.connect(url) as conn:
        collections = conn.execute(
            "SELECT to_jsonb(c) FROM platform.collections AS c WHERE c.id = %s", (collection,)
        ).fetchall()
        items = conn.execute(
            "SELECT to_jsonb(i) FROM rs.items AS i WHERE i.collection_id = %s ORDER BY i.id",
            (collection,),
        ).fetchall()
    return collections, items


def _store(settings: Settings, collection: str) -> dict[str, str]:
    """Every file of a collection's raster store with its SHA-256."""
    root = settings.data_dir / "rasters" / collection
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _source(case: BadRaster, collection: str, item_id: str | None = None) -> RasterSource:
    return RasterSource(
        paths=(case.path,),
        collection_id=collection,
        title=f"bad raster {case.name}",
        item_id=item_id,
        datetime=WHEN,
    )


def test_the_corpus_is_big_enough(corpus: dict[str, BadRaster]) -> None:
    assert len(CASES) >= 18 and len(corpus) >= 18
    for case in corpus.values():
        assert case.expect and case.expect == case.expect.lower(), case.name
        assert case.path.exists() and case.path.parent.name == case.name, case.name


@pytest.mark.parametrize("name", list(CASES))
def test_bad_raster_is_refused_and_leaves_nothing(
    name: str, corpus: dict[str, BadRaster], settings: Settings, database_url: str
) -> None:
    case = _case(corpus, name)
    collection = f"bad_{name}"
    before = _entries(settings.data_dir)
    with pytest.raises(InvalidInputError) as err:
        ingest_raster(database_url, _source(case, collection), settings)
    message = str(err.value)
    assert case.expect in message.lower(), f"{name}: {message}"
    assert _rows(database_url, collection) == ([], [])
    _assert_nothing_new(settings.data_dir, before, collection)


@pytest.fixture(scope="module")
def victim(settings: Settings, database_url: str) -> str:
    """A raster collection with one good item, loaded before the bad re-imports."""
    source = RasterSource(
        paths=(GOOD,), collection_id=VICTIM, title="victim", item_id="good", datetime=WHEN
    )
    ingest_raster(database_url, source, settings)
    collections, items = _rows(database_url, VICTIM)
    assert len(collections) == 1 and len(items) == 1
    return database_url


@pytest.mark.skipif(not GOOD.is_file(), reason=f"shared test data not present at {GOOD}")
@pytest.mark.parametrize(
    ("name", "item_id"),
    [(name, None) for name in CASES]
    + [(name, "good") for name in ("text_as_tif", "corrupt_tile_among_many", "folder_mixed_crs")],
)
def test_a_refusal_leaves_the_collection_alone(
    name: str, item_id: str | None, corpus: dict[str, BadRaster], settings: Settings, victim: str
) -> None:
    case = _case(corpus, name)
    rows, files = _rows(victim, VICTIM), _store(settings, VICTIM)
    before = _entries(settings.data_dir)
    # Replacing the good item may be refused as a conflict before the file is looked at.
    expected = InvalidInputError if item_id is None else (InvalidInputError, ConflictError)
    with pytest.raises(expected) as err:
        ingest_raster(victim, _source(case, VICTIM, item_id), settings)
    if isinstance(err.value, InvalidInputError):
        assert case.expect in str(err.value).lower(), f"{name}: {err.value}"
    assert _rows(victim, VICTIM) == rows
    assert _store(settings, VICTIM) == files
    after = _entries(settings.data_dir)
    assert after == before, _changes(before, after)


def test_upload_of_a_bad_raster_is_a_400(
    live_api: LiveServer,
    admin_auth: dict[str, str],
    corpus: dict[str, BadRaster],
    settings: Settings,
    database_url: str,
) -> None:
    case = corpus["text_as_tif"]
    collection = "bad_upload_raster"
    data_before, uploads_before = _entries(settings.data_dir), _entries(settings.var_dir / "ingest")
    with (
        httpx.Client(base_url=live_api.url, timeout=30, headers=admin_auth) as client,
        case.path.open("rb") as f,
    ):
        # The collection goes both ways: the route may read it from the query or the form.
        response = client.post(
            "/ingest/raster",
            params={"collection": collection},
            files={"file": (case.path.name, f, "application/octet-stream")},
            data={"collection": collection, "datetime": WHEN.isoformat()},
        )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "InvalidParameterValue", body
    assert case.expect in body["description"].lower(), body
    assert _rows(database_url, collection) == ([], [])
    _assert_nothing_new(settings.data_dir, data_before, collection)
    left = set(_entries(settings.var_dir / "ingest")) - set(uploads_before) - {"uploads"}
    assert not left, f"uploads left behind: {sorted(left)}"
