"""Webhooks of geofence events, delivered to real HTTP receivers on loopback.

Fixes are stored through :func:`spatial.gps.store.store` across drawn fences; the events
they make reach the receivers signed, in order and once each (also with several
deliverers at once), through the filters; a receiver that fails gets them again after
its backoff, the cursor staying put meanwhile; an unreachable or silent receiver holds up
no other; bad webhooks are refused with clear messages; the ``spatial gps webhook``
commands; and the API's own background task delivering what its receivers stored.

The module has its own database: the API that other modules start delivers every
webhook of the session database, and would race these tests' deliveries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr
from support import (
    TESTS,
    Got,
    LiveServer,
    Receiver,
    admin_headers,
    create_database,
    drop_database,
    run_cli,
    until,
)

from spatial import accounts
from spatial.db import engine, migrate
from spatial.errors import InvalidInputError, NotFoundError
from spatial.gps import fences, store, webhooks
from spatial.gps.fix import Fix
from spatial.settings import DatabaseSettings, GpsSettings, Settings

T0 = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
GPS = GpsSettings()
SECRET = "wh-test-secret-0123456789"
WEST = {"type": "Polygon", "coordinates": [[[112.0, 22.9], [112.01, 22.9], [112.01, 22.91],
                                            [112.0, 22.91], [112.0, 22.9]]]}  # fmt: skip
EAST = {"type": "Polygon", "coordinates": [[[112.02, 22.9], [112.03, 22.9], [112.03, 22.91],
                                            [112.02, 22.91], [112.02, 22.9]]]}  # fmt: skip
ROAD = (111.995, 112.005, 112.015, 112.025, 112.035)
"""Longitudes along 22.905°N: before, in the west fence, between, in the east one, after
(fixes 30 s apart: about 60 km/h)."""


# -- helpers -----------------------------------------------------------------------------


def _signed(got: Got, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(got.headers["X-Spatial-Signature"], expected)


def _drive(
    conn: psycopg.Connection[Any], device: str, start: dt.datetime, road: tuple[float, ...] = ROAD
) -> None:
    """Store a device's fixes along the road, each in its own store (its own events)."""
    for n, lon in enumerate(road):
        fix = Fix(time=start + dt.timedelta(seconds=30 * n), lon=lon, lat=22.905, device=device)
        done = store.store(conn, [fix], source="test", settings=GPS, now=NOW)
        assert done.stored == 1, done.rejects


def _events(conn: psycopg.Connection[Any], after: int, where: str = "true") -> list[dict[str, Any]]:
    """The events after an id as the database has them (``where`` over ``e``, ``d``)."""
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(
        "SELECT e.id, e.kind, e.device_id AS device, d.name AS device_name, d.department, "  # noqa: S608 - test-made conditions
        "e.fence_id AS fence, f.name AS fence_name, e.time FROM gps.events e "
        "JOIN gps.fences f ON f.id = e.fence_id LEFT JOIN gps.devices d ON d.id = e.device_id "
        f"WHERE e.id > %s AND {where} ORDER BY e.id", (after,)).fetchall()  # fmt: skip


def _ids(events: list[dict[str, Any]]) -> list[int]:
    return [int(e["id"]) for e in events]


def _newest(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(max(id), 0) FROM gps.events").fetchone()
    assert row is not None
    return int(row[0])


def _state(conn: psycopg.Connection[Any], webhook_id: int) -> dict[str, Any]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    row = cur.execute(
        "SELECT last_event_id, failures, last_error, last_attempt_at, next_attempt_at, "
        "delivered_at FROM gps.webhooks WHERE id = %s", (webhook_id,)).fetchone()  # fmt: skip
    assert row is not None
    return row


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def url(server_url: str) -> Iterator[str]:
    """This module's own database, migrated, with two fences and a department."""
    own = create_database(server_url)
    try:
        migrate.upgrade(own)
        with psycopg.connect(own, autocommit=True) as conn:
            # 'water' is one of the shipped maps' departments (migration 0019).
            conn.execute("INSERT INTO platform.departments (id, name) VALUES ('water', "
                         "'Water'), ('fire', 'Fire') ON CONFLICT (id) DO NOTHING")  # fmt: skip
        yield own
    finally:
        drop_database(server_url, own)


@pytest.fixture(scope="module")
def fence_ids(url: str) -> tuple[int, int]:
    """The west and the east fence."""
    with psycopg.connect(url, autocommit=True) as conn:
        return fences.add_fence(conn, "wh-west", WEST), fences.add_fence(conn, "wh-east", EAST)


@pytest.fixture
def conn(url: str, fence_ids: tuple[int, int]) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(url, autocommit=True) as connection:
        yield connection
        connection.execute("DELETE FROM gps.webhooks")


# -- delivery ----------------------------------------------------------------------------


def test_events_arrive_signed_in_order_and_once(
    conn: psycopg.Connection[Any], fence_ids: tuple[int, int]
) -> None:
    store.add_device(conn, "wh-car", name="Patrol car 1", department="fire")
    _drive(conn, "wh-car", T0)  # history: before the webhook, never sent
    with Receiver() as receiver:
        webhook_id, secret = webhooks.add_webhook(conn, receiver.url, secret=SECRET)
        assert secret == SECRET
        start = _newest(conn)
        assert _state(conn, webhook_id)["last_event_id"] == start > 0
        _drive(conn, "wh-car", T0 + dt.timedelta(hours=1))
        expected = _events(conn, start)
        assert [e["kind"] for e in expected] == ["enter", "exit", "enter", "exit"]
        assert webhooks.deliver_due(conn) == 4
        assert len(receiver.got) == 1
        got = receiver.got[0]
        assert _signed(got, SECRET) and not _signed(got, SECRET + "x")
        assert got.headers["Content-Type"] == "application/json"
        delivery = f"{webhook_id}-{expected[0]['id']}-{expected[-1]['id']}"
        assert got.headers["X-Spatial-Delivery"] == delivery
        first = got.events[0]
        assert first == {
            "id": expected[0]["id"], "kind": "enter",
            "time": expected[0]["time"].astimezone(dt.UTC).isoformat(),
            "device": "wh-car", "device_name": "Patrol car 1", "department": "fire",
            "fence": fence_ids[0], "fence_name": "wh-west", "lon": 112.005, "lat": 22.905,
        }  # fmt: skip
        assert _ids(got.events) == _ids(expected)
        assert [e["fence_name"] for e in got.events] == ["wh-west", "wh-west", "wh-east",
                                                         "wh-east"]  # fmt: skip
        assert webhooks.deliver_due(conn) == 0 and len(receiver.got) == 1  # nothing new
        state = _state(conn, webhook_id)
        assert state["last_event_id"] == expected[-1]["id"] and state["failures"] == 0
        assert state["delivered_at"] is not None

        # A backlog goes in batches, oldest first, each event once.
        before = _newest(conn)
        _drive(conn, "wh-car", T0 + dt.timedelta(hours=2))
        _drive(conn, "wh-car", T0 + dt.timedelta(hours=3))
        backlog = _events(conn, before)
        small = webhooks.DeliveryOptions(batch=3)
        assert webhooks.deliver_due(conn, options=small) == 8
        sizes = [len(g.events) for g in receiver.got[1:]]
        assert sizes == [3, 3, 2]
        assert all(_signed(g, SECRET) for g in receiver.got)
        assert _ids(receiver.accepted()) == _ids(expected) + _ids(backlog)


def test_several_deliverers_at_once_send_each_event_once(
    conn: psycopg.Connection[Any], url: str
) -> None:
    """Four threads, each with its own connection, deliver one slow receiver's webhook
    in batches of one, over and over: the row lock hands each batch to one of them."""
    store.add_device(conn, "wh-bus")
    with Receiver(delay=0.05) as receiver:
        webhook_id, _ = webhooks.add_webhook(conn, receiver.url, secret=SECRET)
        start = _newest(conn)
        for hour in range(3):
            _drive(conn, "wh-bus", T0 + dt.timedelta(hours=hour))
        expected = _ids(_events(conn, start))
        assert len(expected) == 12
        one = webhooks.DeliveryOptions(batch=1, max_batches=2)
        delivered: list[int] = []
        failures: list[Exception] = []
        deadline = time.monotonic() + 30

        def deliver() -> None:
            try:
                with psycopg.connect(url, autocommit=True) as own:
                    while _state(own, webhook_id)["last_event_id"] < expected[-1]:
                        assert time.monotonic() < deadline, "the deliverers did not catch up"
                        delivered.append(webhooks.deliver_due(own, options=one))
            except Exception as exc:  # noqa: BLE001 - reported below, in the test's thread
                failures.append(exc)

        threads = [threading.Thread(target=deliver) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures
        assert sum(delivered) == 12
        assert sum(1 for n in delivered if n == 0) > 0  # some runs found the webhook taken
        assert _ids(receiver.accepted()) == expected  # in order, each once
        assert len(receiver.got) == 12


def test_an_event_that_commits_late_is_not_skipped(
    conn: psycopg.Connection[Any], url: str, fence_ids: tuple[int, int]
) -> None:
    """A transaction records an event and lingers; a store that records events meanwhile
    waits for it (migration 0010), so the cursor cannot pass the lingering event."""
    store.add_device(conn, "wh-slow")
    store.add_device(conn, "wh-fast")
    with Receiver() as receiver:
        webhooks.add_webhook(conn, receiver.url)
        start = _newest(conn)
        failures: list[Exception] = []

        def fast() -> None:
            try:
                with psycopg.connect(url, autocommit=True) as own:
                    _drive(own, "wh-fast", T0)
            except Exception as exc:  # noqa: BLE001 - reported below, in the test's thread
                failures.append(exc)

        with psycopg.connect(url) as slow:  # not autocommit: the transaction stays open
            slow.execute(
                "INSERT INTO gps.events (device_id, fence_id, kind, time, geom) VALUES "
                "('wh-slow', %s, 'enter', %s, ST_SetSRID(ST_MakePoint(112.005, 22.905), 4326))",
                (fence_ids[0], T0),
            )
            thread = threading.Thread(target=fast)
            thread.start()
            until(lambda: conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchone() == (1,))  # fmt: skip
            assert webhooks.deliver_due(conn) == 0 and receiver.got == []
            slow.commit()
        thread.join(timeout=30)
        assert not failures
        assert webhooks.deliver_due(conn) == 5
        accepted = receiver.accepted()
        assert _ids(accepted) == _ids(_events(conn, start))
        assert [e["device"] for e in accepted] == ["wh-slow"] + ["wh-fast"] * 4


def test_filters_by_fence_kind_and_department(
    conn: psycopg.Connection[Any], fence_ids: tuple[int, int]
) -> None:
    west, east = fence_ids
    store.add_device(conn, "wh-pump", department="water")
    store.add_device(conn, "wh-truck", department="fire")
    with Receiver() as r_west, Receiver() as r_exit, Receiver() as r_water, Receiver() as r_all:
        webhooks.add_webhook(conn, r_west.url, fence_ids=[west])
        webhooks.add_webhook(conn, r_exit.url, kinds=["exit"], fence_ids=[west, east])
        water, _ = webhooks.add_webhook(conn, r_water.url, department="water")
        webhooks.add_webhook(conn, r_all.url)
        start = _newest(conn)
        _drive(conn, "wh-truck", T0)
        # Nothing for the water department's receiver: its cursor moves on all the same.
        webhooks.deliver_due(conn)
        assert r_water.got == [] and _state(conn, water)["last_event_id"] == _newest(conn)
        _drive(conn, "wh-pump", T0)
        webhooks.deliver_due(conn)
        assert _ids(r_west.accepted()) == _ids(_events(conn, start, f"e.fence_id = {west}"))
        assert _ids(r_exit.accepted()) == _ids(_events(conn, start, "e.kind = 'exit'"))
        assert _ids(r_water.accepted()) == _ids(
            _events(conn, start, "d.department = 'water'"))  # fmt: skip
        assert _ids(r_all.accepted()) == _ids(_events(conn, start))
        assert len(r_west.accepted()) == 4 and len(r_exit.accepted()) == 4
        assert {e["device"] for e in r_water.accepted()} == {"wh-pump"}


def test_a_failing_receiver_gets_the_events_after_its_backoff(
    conn: psycopg.Connection[Any],
) -> None:
    store.add_device(conn, "wh-van")
    patient = webhooks.DeliveryOptions(backoff=webhooks.Backoff(first_s=60, longest_s=600))
    with Receiver(statuses=[500, 503]) as receiver:
        webhook_id, _ = webhooks.add_webhook(conn, receiver.url, secret=SECRET)
        start = _newest(conn)
        _drive(conn, "wh-van", T0)
        expected = _ids(_events(conn, start))

        assert webhooks.deliver_due(conn, options=patient) == 0
        state = _state(conn, webhook_id)
        assert (state["last_event_id"], state["failures"], state["last_error"]) == (
            start, 1, "HTTP 500")  # fmt: skip
        assert state["next_attempt_at"] - state["last_attempt_at"] == dt.timedelta(seconds=60)
        # Not due yet: no attempt.
        assert webhooks.deliver_due(conn, options=patient) == 0 and len(receiver.got) == 1

        def later() -> None:  # the backoff has passed
            conn.execute("UPDATE gps.webhooks SET next_attempt_at = now() WHERE id = %s",
                         (webhook_id,))  # fmt: skip

        later()
        assert webhooks.deliver_due(conn, options=patient) == 0
        state = _state(conn, webhook_id)
        assert (state["last_event_id"], state["failures"], state["last_error"]) == (
            start, 2, "HTTP 503")  # fmt: skip
        assert state["next_attempt_at"] - state["last_attempt_at"] == dt.timedelta(seconds=120)
        later()
        assert webhooks.deliver_due(conn, options=patient) == len(expected) == 4
        state = _state(conn, webhook_id)
        assert (state["last_event_id"], state["failures"], state["last_error"]) == (
            expected[-1], 0, None)  # fmt: skip
        assert [g.status for g in receiver.got] == [500, 503, 200]
        # The same batch each time, signed the same, with the same delivery id.
        assert len({g.body for g in receiver.got}) == 1
        assert len({g.headers["X-Spatial-Delivery"] for g in receiver.got}) == 1
        assert _ids(receiver.accepted()) == expected


def test_an_unreachable_or_silent_receiver_holds_up_no_other(
    conn: psycopg.Connection[Any],
) -> None:
    store.add_device(conn, "wh-boat")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"  # bound, not listening
    with socket.socket() as silent, Receiver() as good:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections queue, no answer ever comes
        mute = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        refused_id, _ = webhooks.add_webhook(conn, refused)
        mute_id, _ = webhooks.add_webhook(conn, mute)
        webhooks.add_webhook(conn, good.url)
        start = _newest(conn)
        _drive(conn, "wh-boat", T0)
        quick = webhooks.DeliveryOptions(timeout_s=0.5)
        began = time.monotonic()
        assert webhooks.deliver_due(conn, options=quick) == 4
        assert time.monotonic() - began < 10
        assert _ids(good.accepted()) == _ids(_events(conn, start))
        for webhook_id, error in ((refused_id, "ConnectError"), (mute_id, "ReadTimeout")):
            state = _state(conn, webhook_id)
            assert state["last_event_id"] == start and state["failures"] == 1
            assert state["last_error"].startswith(error), state["last_error"]
        listed = {w.id: w for w in webhooks.list_webhooks(conn)}
        assert listed[refused_id].last_error.startswith("ConnectError")  # type: ignore[union-attr]


def test_redirects_are_failures(conn: psycopg.Connection[Any]) -> None:
    store.add_device(conn, "wh-jeep")
    with Receiver(statuses=[308]) as receiver:
        webhook_id, _ = webhooks.add_webhook(conn, receiver.url)
        _drive(conn, "wh-jeep", T0)
        assert webhooks.deliver_due(conn) == 0
        assert "redirects are not followed" in _state(conn, webhook_id)["last_error"]


# -- registration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("ftp://example.org/hook", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("example.org/hook", "only http:// and https://"),
        ("https://user:pw@example.org/hook", "must not hold credentials"),
        ("https://token@example.org/hook", "must not hold credentials"),
        ("http:///hook", "names no host"),
        ("http://example.org:99999/hook", "not a URL"),
        ("http://exa mple.org/", "without spaces"),
        ("", "without spaces"),
    ],
)
def test_bad_urls_are_refused(conn: psycopg.Connection[Any], address: str, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        webhooks.add_webhook(conn, address)


def test_bad_filters_and_secrets_are_refused(
    conn: psycopg.Connection[Any], fence_ids: tuple[int, int]
) -> None:
    hook = "https://example.org/hook"
    for options, words in (
        ({"secret": "short"}, "at least 16 characters"),
        ({"kinds": ["enter", "arrive"]}, "event kind 'arrive'"),
        ({"fence_ids": [fence_ids[0], 987654]}, "fence 987654 does not exist"),
        ({"department": "nosuch"}, "department 'nosuch' does not exist"),
    ):
        with pytest.raises(InvalidInputError, match=words):
            webhooks.add_webhook(conn, hook, **options)  # type: ignore[arg-type]
    assert webhooks.list_webhooks(conn) == []
    with pytest.raises(NotFoundError, match="webhook 987654 does not exist"):
        webhooks.remove_webhook(conn, 987654)
    # The table holds the same rules for rows written around this module.
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO gps.webhooks (url, secret) VALUES ('ftp://x/', %s)", (SECRET,))


def test_the_webhook_commands(url: str, fence_ids: tuple[int, int]) -> None:
    env = {"SPATIAL_DATABASE_URL": url, "SPATIAL_ENVIRONMENT": "test", "COLUMNS": "200"}
    made = run_cli("gps", "webhook", "add", "https://example.org/hook", "--fence",
                   str(fence_ids[0]), "--kind", "enter", "--kind", "exit", "--department",
                   "water", **env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    said = " ".join(made.stdout.split())
    assert "secret (shown once):" in said
    secret = said.split("secret (shown once):")[1].split()[0]
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id, secret, fence_ids, kinds, department FROM gps.webhooks"
                           ).fetchone()  # fmt: skip
    assert row is not None and row[1:] == (secret, [fence_ids[0]], ["enter", "exit"], "water")
    assert len(secret) == 64
    given = run_cli("gps", "webhook", "add", "http://127.0.0.1:9/x", "--secret", SECRET, **env)
    assert given.returncode == 0 and SECRET not in given.stdout  # a given secret is not echoed
    listed = run_cli("gps", "webhook", "list", **env)
    assert listed.returncode == 0, listed.stderr
    assert "https://example.org/hook" in listed.stdout
    assert f"fence {fence_ids[0]}; enter,exit; water" in listed.stdout
    assert secret not in listed.stdout and SECRET not in listed.stdout
    removed = run_cli("gps", "webhook", "remove", str(row[0]), **env)
    assert removed.returncode == 0 and f"removed webhook {row[0]}" in removed.stdout
    again = run_cli("gps", "webhook", "remove", str(row[0]), **env)
    assert again.returncode == 1 and f"webhook {row[0]} does not exist" in again.stderr
    bad = run_cli("gps", "webhook", "add", "ftp://example.org/", **env)
    assert bad.returncode == 1 and "only http:// and https://" in bad.stderr
    assert "Traceback" not in bad.stderr
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM gps.webhooks")


# -- the API -----------------------------------------------------------------------------


def test_the_api_manages_webhooks_and_its_task_delivers(
    url: str, settings: Settings, fence_ids: tuple[int, int]
) -> None:
    """Admins register webhooks over HTTP; fixes sent to the OsmAnd receiver become events
    that the API's background task delivers, signed, without anyone asking."""
    admin = admin_headers(url)
    with engine(url) as eng, eng.begin() as sa:
        accounts.add_user(sa, TESTS, "wh_viewer", roles=("viewer",), service=True)
        viewer = {"Authorization": f"Bearer {accounts.create_key(sa, TESTS, 'wh_viewer')}"}
    with psycopg.connect(url, autocommit=True) as conn:
        store.add_device(conn, "wh-ambulance", department="fire")
    own = settings.model_copy(update={"database": DatabaseSettings(url=SecretStr(url))})
    from api import create_app  # noqa: PLC0415

    with (
        Receiver() as receiver,
        LiveServer(create_app(own)) as live,
        httpx.Client(base_url=live.url, timeout=30) as api,
    ):
        body = {"url": receiver.url, "fences": [fence_ids[1]], "kinds": ["enter"]}
        assert api.post("/gps/webhooks", json=body).status_code == 401
        assert api.post("/gps/webhooks", json=body, headers=viewer).status_code == 403
        assert api.get("/gps/webhooks", headers=viewer).status_code == 403
        bad = api.post("/gps/webhooks", json={"url": "ftp://x/"}, headers=admin)
        assert bad.status_code == 400 and "http://" in bad.json()["description"]
        made = api.post("/gps/webhooks", json=body, headers=admin)
        assert made.status_code == 201, made.text
        webhook_id, secret = made.json()["id"], made.json()["secret"]
        listed = api.get("/gps/webhooks", headers=admin).json()
        mine = next(w for w in listed if w["id"] == webhook_id)
        assert mine["fence_ids"] == [fence_ids[1]] and mine["kinds"] == ["enter"]
        assert "secret" not in mine and secret not in json.dumps(listed)

        start = int(T0.timestamp()) + 86_400
        for n, lon in enumerate(ROAD):
            fix = {"id": "wh-ambulance", "lat": 22.905, "lon": lon, "timestamp": start + 30 * n}
            sent = api.get("/gps/osmand", params=fix)
            assert sent.status_code == 200, sent.text
        until(lambda: len(receiver.accepted()) >= 1)
        got = receiver.got[0]
        assert _signed(got, secret)
        assert [(e["device"], e["kind"], e["fence"]) for e in got.events] == [
            ("wh-ambulance", "enter", fence_ids[1])]  # fmt: skip

        def cursor() -> int:
            listed = api.get("/gps/webhooks", headers=admin).json()
            return int(next(w for w in listed if w["id"] == webhook_id)["last_event_id"])

        until(lambda: cursor() >= got.events[0]["id"])

        assert api.delete(f"/gps/webhooks/{webhook_id}", headers=admin).status_code == 200
        gone = api.delete(f"/gps/webhooks/{webhook_id}", headers=admin)
        assert gone.status_code == 404 and "does not exist" in gone.json()["description"]
    # The module's other tests add webhooks too (each audited): these are the API's rows.
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT action, actor FROM platform.audit_log "
                            "WHERE action LIKE 'webhook-%%' AND %s = ANY(feature_ids) ORDER BY id",
                            (str(webhook_id),)).fetchall()  # fmt: skip
    assert rows == [("webhook-add", "pytest_admin"), ("webhook-remove", "pytest_admin")]
