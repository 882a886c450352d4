"""Test fixtures: a real PostGIS, a fresh database per session, real servers on loopback.

The server is the one the platform itself would use: the embedded cluster under
``var/`` (started on demand), or ``SPATIAL_DATABASE_URL`` when set. Each session creates
its own database ``spatial_test_<random>``, migrates it, and drops it at the end; no
test touches a database it did not create.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from support import LiveServer, admin_headers, create_database, drop_database, with_database

from spatial.db import migrate, resolve_url
from spatial.settings import DatabaseSettings, Settings

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def server_url() -> str:
    """URL of the PostGIS server under test (its maintenance database ``postgres``)."""
    return with_database(resolve_url(Settings()), "postgres")


@pytest.fixture
def empty_database(server_url: str) -> Iterator[str]:
    """A brand-new database with nothing in it, dropped after the test."""
    url = create_database(server_url)
    try:
        yield url
    finally:
        drop_database(server_url, url)


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """The session's own database, migrated to head."""
    url = create_database(server_url)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        drop_database(server_url, url)


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for an instance using the session database and private var/data dirs."""
    var = tmp_path_factory.mktemp("var")
    return Settings(
        environment="test",
        var_dir=var,
        data_dir=var / "data",
        database=DatabaseSettings(url=SecretStr(database_url)),
    )


@pytest.fixture(scope="session")
def demo_url(database_url: str, settings: Settings,
             tmp_path_factory: pytest.TempPathFactory) -> str:  # fmt: skip
    """The session database with the demo city loaded (a no-op when a module loaded it
    already), its scenes in the session's data folder."""
    from spatial import samples  # noqa: PLC0415
    from spatial.demo import load_demo  # noqa: PLC0415

    folder = samples.build(tmp_path_factory.mktemp("demo-samples")).out_dir
    load_demo(database_url, settings, folder)
    return database_url


@pytest.fixture(scope="session")
def demo_api(demo_url: str, settings: Settings) -> Iterator[LiveServer]:
    """The platform API on a real HTTP port, started after the demo city is loaded, with the
    shipped maps (the map tools' browser tests share it)."""
    from api import create_app  # noqa: PLC0415

    with LiveServer(create_app(settings)) as server:
        yield server


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temporary directory that an unprivileged account can reach (for clusters)."""
    path = Path(tempfile.mkdtemp(prefix="spatial-test-"))
    path.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def live_api(settings: Settings, admin_auth: dict[str, str]) -> Iterator[LiveServer]:
    """The platform API on a real HTTP port, against the session database (the admin's
    key exists before it starts, so no test waits for the key to reach the server)."""
    from api import create_app  # noqa: PLC0415

    with LiveServer(create_app(settings)) as server:
        yield server


@pytest.fixture(scope="session")
def admin_auth(settings: Settings) -> dict[str, str]:
    """Headers acting as ``pytest_admin`` (the admin role) on the session database."""
    return admin_headers(settings.database.url.get_secret_value())  # type: ignore[union-attr]
