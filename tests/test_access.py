"""Accounts, keys, tokens, grants and row filters against the real database: who sees
which collections and exactly which rows, through the same SQL the API runs."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator

import geopandas as gpd
import jwt
import psycopg
import psycopg.sql
import pytest
from support import cli_env, ingest_cadastre, run_cli

from layers import Catalog, VectorCollection, view
from spatial import accounts, features
from spatial.access import ADMIN, ANONYMOUS, READ, WRITE, Directory, Principal
from spatial.audit import Actor
from spatial.db import engine
from spatial.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    UnauthorizedError,
)
from spatial.settings import Settings
from tiles import mvt, tms

COLLECTION = "access_parcels"
ROOT = Actor(name="pytest-access")
SECRET = "a-test-secret-of-at-least-thirty-two-bytes"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def url(settings: Settings) -> str:
    return settings.database.url.get_secret_value()  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> gpd.GeoDataFrame:
    frame: gpd.GeoDataFrame = ingest_cadastre(
        tmp_path_factory.mktemp("access"), settings, COLLECTION, "宗地 (access)", public=False
    )
    return frame


@pytest.fixture(scope="module")
def people(url: str, source: gpd.GeoDataFrame) -> Iterator[dict[str, int]]:
    """Two departments; a viewer and an editor of A, a viewer of B, a steward of A, an
    admin; A reads the forest parcels only and its editors edit them; B reads nothing."""
    with engine(url) as eng, eng.begin() as conn:
        accounts.add_department(conn, ROOT, "acc_a", "Department A")
        accounts.add_department(conn, ROOT, "acc_b", "Department B")
        ids = {
            name: accounts.add_user(conn, ROOT, name, roles=roles, department=dept,
                                    password=PASSWORD)
            for name, roles, dept in (
                ("acc_viewer_a", ("viewer",), "acc_a"), ("acc_editor_a", ("editor",), "acc_a"),
                ("acc_viewer_b", ("viewer",), "acc_b"), ("acc_admin", ("admin",), None),
            )
        }  # fmt: skip
        accounts.add_grant(conn, ROOT, COLLECTION, "department:acc_a", "write",
                           row_filter="dlmc = '林地'")  # fmt: skip
    yield ids


def _directory(url: str) -> Directory:
    with engine(url) as eng, eng.connect() as conn:
        return Directory.load(conn)


def _catalog(url: str) -> Catalog:
    with engine(url) as eng, eng.connect() as conn:
        return Catalog.load(conn)


def _principal(directory: Directory, name: str) -> Principal:
    account = directory.by_username(name)
    assert account is not None
    return account.principal()


def _count(url: str, layer: features.LayerSchema) -> int:
    """Features of the layer a caller may read: the page statement's count of matches (or
    the catalog's count when nothing restricts it), checked against a plain count."""
    statement, params = features.page_statement(layer, features.ItemsQuery(limit=1))
    with psycopg.connect(url) as conn:
        row = conn.execute(statement, params).fetchone()
        total = conn.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {} t").format(features.source(layer))
        ).fetchone()
    assert row is not None and total is not None
    matched = int(row[2]) if row[2] is not None else layer.feature_count
    assert matched == total[0]
    return int(total[0])


def test_views_hide_collections_and_rows(url: str, source: gpd.GeoDataFrame,
                                         people: dict[str, int]) -> None:  # fmt: skip
    directory, catalog = _directory(url), _catalog(url)
    forests = int((source["DLMC"] == "林地").sum())
    assert 0 < forests < len(source)

    nobody = view(ANONYMOUS, catalog, directory)
    assert COLLECTION not in nobody.catalog.collections
    with pytest.raises(NotFoundError):
        nobody.get(COLLECTION)
    assert COLLECTION not in view(_principal(directory, "acc_viewer_b"), catalog, directory).rights

    viewer_a = view(_principal(directory, "acc_viewer_a"), catalog, directory)
    assert viewer_a.rights[COLLECTION].level == READ  # a viewer's role caps a write grant
    layer = viewer_a.features(COLLECTION).layer
    assert layer.restriction is not None
    assert _count(url, layer) == forests
    with pytest.raises(ForbiddenError):
        viewer_a.writable(COLLECTION)

    editor_a = view(_principal(directory, "acc_editor_a"), catalog, directory)
    assert editor_a.rights[COLLECTION].level == WRITE
    writable = editor_a.writable(COLLECTION).layer
    assert _count(url, writable) == forests
    with pytest.raises(ForbiddenError):
        editor_a.administrable(COLLECTION)

    admin = view(_principal(directory, "acc_admin"), catalog, directory)
    assert admin.rights[COLLECTION].level == ADMIN
    assert _count(url, admin.features(COLLECTION).layer) == len(source)


def test_restricted_tiles_hold_only_the_granted_rows(
    url: str, source: gpd.GeoDataFrame, people: dict[str, int]
) -> None:
    import mapbox_vector_tile  # noqa: PLC0415

    directory, catalog = _directory(url), _catalog(url)
    viewer_a = view(_principal(directory, "acc_viewer_a"), catalog, directory)
    record = viewer_a.get(COLLECTION)
    west, south, east, north = record.bbox or (0, 0, 0, 0)
    z = 12
    tile = tms.TILE_MATRIX_SETS["WebMercatorQuad"].tile((west + east) / 2, (south + north) / 2, z)
    address = tms.address("WebMercatorQuad", z, tile.y, tile.x, 22)
    seen = {}
    for who, restriction in (("all", None), ("a", viewer_a.rights[COLLECTION].read_rows)):
        statement = mvt.tile_statement([VectorCollection(record, restriction).tile_layer()],
                                       address, 100_000)  # fmt: skip
        assert statement is not None
        with psycopg.connect(url) as conn:
            row = conn.execute(*statement, binary=True).fetchone()
        assert row is not None
        decoded = mapbox_vector_tile.decode(bytes(row[0]))
        seen[who] = [f["properties"]["dlmc"] for f in decoded[COLLECTION]["features"]]
    assert set(seen["a"]) == {"林地"}
    assert len(seen["a"]) == seen["all"].count("林地") < len(seen["all"])


def test_keys_and_tokens(url: str, people: dict[str, int]) -> None:
    with engine(url) as eng, eng.begin() as conn:
        key = accounts.create_key(conn, ROOT, "acc_viewer_a", name="qgis")
        old = accounts.create_key(conn, ROOT, "acc_viewer_a", name="old")
        yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        expired = accounts.create_key(conn, ROOT, "acc_viewer_a", name="x", expires=yesterday)
        accounts.revoke_key(conn, ROOT, old.split("_")[1])
    directory = _directory(url)
    assert accounts.key_account(directory, key).username == "acc_viewer_a"
    prefix = key.split("_")[1]
    assert directory.keys[prefix].secret_sha256 != key.encode()  # only a hash is stored
    altered = key[:-1] + ("A" if key[-1] != "A" else "B")  # one character off
    for bad, reason in ((old, "revoked"), (expired, "expired"), (altered, "not valid"),
                        ("s3s_nope", "not valid")):  # fmt: skip
        with pytest.raises(UnauthorizedError, match=reason):
            accounts.key_account(directory, bad)

    account = directory.by_username("acc_viewer_a")
    assert account is not None
    assert accounts.check_password(account, PASSWORD)
    assert not accounts.check_password(account, PASSWORD + "!")
    assert not accounts.check_password(None, PASSWORD)
    token = accounts.issue_token(account, SECRET, 5)
    assert accounts.token_account(directory, token, SECRET).id == account.id
    with pytest.raises(UnauthorizedError, match="not valid"):
        accounts.token_account(directory, token, SECRET + "x")
    stale = accounts.issue_token(account, SECRET, -1)
    with pytest.raises(UnauthorizedError, match="expired"):
        accounts.token_account(directory, stale, SECRET)
    foreign = jwt.encode({"sub": str(account.id), "aud": "elsewhere", "ver": 1,
                          "exp": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)},
                         SECRET, algorithm="HS256")  # fmt: skip
    with pytest.raises(UnauthorizedError, match="audience"):
        accounts.token_account(directory, foreign, SECRET)
    # A new password revokes every token issued before it.
    with engine(url) as eng, eng.begin() as conn:
        accounts.set_password(conn, ROOT, "acc_viewer_a", PASSWORD + " again")
    with pytest.raises(UnauthorizedError, match="revoked"):
        accounts.token_account(_directory(url), token, SECRET)


def test_refusals_say_what_is_wrong(url: str, people: dict[str, int]) -> None:
    cases = (
        (lambda c: accounts.add_user(c, ROOT, "acc_viewer_a", roles=("viewer",),
                                     password=PASSWORD), ConflictError, "already exists"),
        (lambda c: accounts.add_user(c, ROOT, "acc_x", roles=("king",), password=PASSWORD),
         InvalidInputError, "unknown role"),
        (lambda c: accounts.add_user(c, ROOT, "acc_y", roles=("viewer",), password="short"),
         InvalidInputError, "at least"),
        (lambda c: accounts.add_user(c, ROOT, "Bad Name", roles=("viewer",), password=PASSWORD),
         InvalidInputError, "lower-case"),
        (lambda c: accounts.add_grant(c, ROOT, COLLECTION, "department:nowhere", "read"),
         NotFoundError, "department"),
        (lambda c: accounts.add_grant(c, ROOT, COLLECTION, "everyone", "read"),
         InvalidInputError, "grantee"),
        (lambda c: accounts.add_grant(c, ROOT, COLLECTION, "public", "own"),
         InvalidInputError, "privilege"),
        (lambda c: accounts.add_grant(c, ROOT, COLLECTION, "public", "read",
                                      row_filter="nosuch = 1"), InvalidInputError, "nosuch"),
        (lambda c: accounts.add_grant(c, ROOT, COLLECTION, "public", "read",
                                      area_wkt="POINT (1 2)"), InvalidInputError, "polygon"),
        (lambda c: accounts.revoke_key(c, ROOT, "00000000"), NotFoundError, "no active key"),
    )  # fmt: skip
    for work, error, words in cases:
        with engine(url) as eng, eng.begin() as conn, pytest.raises(error, match=words):
            work(conn)
    # Nothing of the refused work was written.
    names = {a.username for a in _directory(url).accounts.values()}
    assert not {"acc_x", "acc_y"} & names


def test_every_account_change_is_audited(url: str, people: dict[str, int]) -> None:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT action, details FROM platform.audit_log WHERE actor = %s ORDER BY id",
            (ROOT.name,),
        ).fetchall()
    actions = [r[0] for r in rows]
    assert actions[:2] == ["department.add", "department.add"]
    assert actions.count("user.add") == 4
    assert "grant.add" in actions
    assert all("password" not in str(details).lower() or a == "user.password"
               for a, details in rows)  # fmt: skip


def test_cli_manages_users_keys_and_grants(url: str, people: dict[str, int]) -> None:
    env = {"SPATIAL_DATABASE_URL": url}
    added = subprocess.run(
        [sys.executable, "-m", "spatial.cli", "user", "add", "acc_cli", "--role", "editor",
         "--department", "acc_b", "--password-stdin"],
        input=PASSWORD + "\n", env=cli_env(**env), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    key = run_cli("user", "key", "create", "acc_cli", "--name", "ci", **env)
    assert key.returncode == 0, key.stderr
    assert accounts.key_account(_directory(url), key.stdout.strip()).username == "acc_cli"
    granted = run_cli("user", "grant", "add", COLLECTION, "user:acc_cli", "--privilege",
                      "read", "--filter", "dlmc = '耕地'", **env)  # fmt: skip
    assert granted.returncode == 0, granted.stderr
    listed = run_cli("user", "grant", "list", COLLECTION, "--json", **env)
    assert "acc_cli" in listed.stdout and "耕地" in listed.stdout
    refused = run_cli("user", "grant", "add", COLLECTION, "user:acc_cli", "--privilege", "own",
                      **env)  # fmt: skip
    assert refused.returncode == 1
    assert "privilege 'own'" in refused.stderr
    assert "Traceback" not in refused.stderr
    users = run_cli("user", "list", "--json", **env)
    assert '"acc_cli"' in users.stdout and "password" not in users.stdout
