"""HTTP Basic credentials (what SensorThings clients such as frost-sta-client send): a user
name and password, checked as ``POST /auth/token`` checks them (a failure counted), or an
API key as the password; anything else is a 401 with ``WWW-Authenticate``."""

from __future__ import annotations

import base64

import httpx
import psycopg
import pytest
from support import TESTS, LiveServer, until

from spatial import accounts
from spatial.db import engine
from spatial.settings import Settings

PASSWORD = "basic-Password-0123"


def _basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


@pytest.fixture(scope="module")
def key(database_url: str) -> str:
    """A user ``sb_user`` with a password, and an API key of ``sb_service``."""
    with engine(database_url) as eng, eng.begin() as conn:
        accounts.add_department(conn, TESTS, "sb_dept", "Basic")
        accounts.add_user(conn, TESTS, "sb_user", roles=("editor",), department="sb_dept",
                          password=PASSWORD)  # fmt: skip
        accounts.add_user(conn, TESTS, "sb_service", roles=("viewer",), service=True)
        return accounts.create_key(conn, TESTS, "sb_service", name="tests")


def _me(server: LiveServer, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{server.url}/auth/me", headers=headers, timeout=30)


def test_basic_with_a_user_s_password(live_api: LiveServer, key: str) -> None:
    who = until(lambda: _me(live_api, _basic("sb_user", PASSWORD)),
                lambda r: r.status_code == 200, "sb_user on the server", seconds=15)  # fmt: skip
    assert who.json()["username"] == "sb_user" and who.json()["department"] == "sb_dept"
    again = _me(live_api, _basic("sb_user", PASSWORD))  # taken again without a new hash
    assert again.status_code == 200 and again.json()["username"] == "sb_user"


def test_basic_with_an_api_key_as_the_password(live_api: LiveServer, key: str) -> None:
    who = until(
        lambda: _me(live_api, _basic("anything", key)),
        lambda r: r.status_code == 200,
        "sb_service's key on the server",
        seconds=15,
    )
    assert who.json()["username"] == "sb_service"
    assert _me(live_api, _basic("", key)).json()["username"] == "sb_service"


def test_wrong_basic_credentials_are_a_401_and_counted(
    live_api: LiveServer, key: str, settings: Settings
) -> None:
    url = settings.database.url.get_secret_value()  # type: ignore[union-attr]
    until(lambda: _me(live_api, _basic("sb_user", PASSWORD)).status_code, lambda s: s == 200,
          "sb_user on the server", seconds=15)  # fmt: skip
    wrong = {
        "password": _basic("sb_user", "not-the-password"),
        "key": _basic("sb_user", key[:-4] + "AAAA"),
        "no colon": {"Authorization": "Basic " + base64.b64encode(b"sb_user").decode()},
        "not base64": {"Authorization": "Basic %%%"},
    }
    for what, headers in wrong.items():
        answer = _me(live_api, headers)
        assert answer.status_code == 401, (what, answer.text)
        assert "www-authenticate" in answer.headers, what
    with psycopg.connect(url) as conn:
        counted = conn.execute(
            "SELECT kind, count(*) FROM platform.auth_failures WHERE subject = 'sb_user' "
            "OR subject = %s GROUP BY kind ORDER BY kind", (key.strip()[:12],)
        ).fetchall()  # fmt: skip
    assert counted == [("key", 1), ("password", 1)]
