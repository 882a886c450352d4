"""pgRouting in the platform database: the migration creates it, ``spatial db status``
reports it, and a server that lacks an extension is told which package to install."""

from __future__ import annotations

import psycopg
import pytest

from spatial.db import extensions
from spatial.errors import ConfigurationError

SQUARE = (
    "SELECT * FROM (VALUES (1, 1, 2, 1.0, 1.0), (2, 2, 3, 1.0, 1.0), (3, 1, 3, 5.0, 5.0)) "
    "AS e(id, source, target, cost, reverse_cost)"
)
"""Three edges: 1-2 and 2-3 cost 1 each, the direct 1-3 costs 5."""


def test_the_migrated_database_routes_with_pgrouting(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        found = extensions.versions(conn)
        rows = conn.execute(
            "SELECT node, agg_cost FROM pgr_dijkstra(%s, 1, 3) ORDER BY seq", (SQUARE,)
        ).fetchall()
    assert found.pgrouting is not None and found.pgrouting.startswith("3.")
    assert found.postgis is not None and found.postgis.startswith("3.")
    assert [node for node, _ in rows] == [1, 2, 3]
    assert rows[-1][1] == pytest.approx(2.0)


def test_a_missing_extension_names_the_package_for_this_server(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        major = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
        extensions.require(conn, "pgrouting")  # present: no complaint
        with pytest.raises(ConfigurationError) as caught:
            extensions.require(conn, "no_such_routing")
        package = extensions.package(conn, "pgrouting")
    assert major is not None
    assert package == f"postgresql-{major[0]}-pgrouting"
    message = str(caught.value)
    assert "no no_such_routing extension" in message
    assert f"install the package postgresql-{major[0]}-no_such_routing" in message
    assert "spatial db migrate" in message
