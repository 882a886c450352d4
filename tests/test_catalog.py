"""The catalog repository and the immutable Catalog snapshot."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from layers import Catalog
from spatial.catalog import (
    CollectionRecord,
    delete_collection,
    get_collection,
    list_collections,
    upsert_collection,
)
from spatial.db import sqlalchemy_url
from spatial.errors import NotFoundError

BOX = "POLYGON((112 22.85, 112.27 22.85, 112.27 23.12, 112 23.12, 112 22.85))"


@pytest.fixture
def conn(database_url: str) -> Iterator[Connection]:
    """A connection whose work is rolled back after the test."""
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    with engine.connect() as connection:
        tx = connection.begin()
        yield connection
        tx.rollback()
    engine.dispose()


def test_upsert_get_list_delete(conn: Connection) -> None:
    rec = CollectionRecord(
        id="rivers_test",
        title="河流",
        kind="vector",
        subsystems=("water", "environment"),
        crs="EPSG:4490",
        srid=4490,
        properties={"key": "river_id"},
    )
    stored = upsert_collection(conn, rec, footprint_wkt=BOX)
    assert stored.version == 1
    assert stored.title == "河流"
    assert stored.subsystems == ("water", "environment")
    assert stored.bbox == pytest.approx((112.0, 22.85, 112.27, 23.12))
    assert stored.properties == {"key": "river_id"}

    again = upsert_collection(
        conn, CollectionRecord(id="rivers_test", title="Rivers", kind="vector")
    )
    assert again.version == 2
    assert again.title == "Rivers"
    assert again.bbox is None
    assert [c.id for c in list_collections(conn)].count("rivers_test") == 1

    delete_collection(conn, "rivers_test")
    with pytest.raises(NotFoundError, match="rivers_test"):
        get_collection(conn, "rivers_test")
    with pytest.raises(NotFoundError):
        delete_collection(conn, "rivers_test")


def test_catalog_snapshot_is_immutable(conn: Connection) -> None:
    upsert_collection(conn, CollectionRecord(id="a_layer", title="A", kind="vector"))
    upsert_collection(conn, CollectionRecord(id="b_scene", title="B", kind="raster"))
    catalog = Catalog.load(conn)
    rasters = [c.id for c in catalog.of_kind("raster")]  # other modules may add theirs
    assert "b_scene" in rasters and "a_layer" not in rasters
    assert all(c.kind == "raster" for c in catalog.of_kind("raster"))
    assert catalog.get("a_layer").title == "A"
    with pytest.raises(NotFoundError):
        catalog.get("missing")
    with pytest.raises(ValueError, match="already registered"):
        catalog.register(CollectionRecord(id="a_layer", title="A2", kind="vector"))
    newer = catalog.register(
        CollectionRecord(id="a_layer", title="A2", kind="vector"), replace=True
    )
    assert newer.get("a_layer").title == "A2"
    assert catalog.get("a_layer").title == "A"
    with pytest.raises(TypeError):
        catalog.collections["x"] = catalog.get("a_layer")  # type: ignore[index]
