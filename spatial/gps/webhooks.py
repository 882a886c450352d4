"""Webhooks: geofence events, arrivals on scene and sensor alarms POSTed, signed, to other
systems.

A webhook is a receiver's URL, a secret and optional filters (fences, event kinds, a
department). :func:`deliver_due` sends each active webhook the events recorded after its
cursor (``last_event_id``), oldest first, in batches: a ``POST`` of
``{"events": [...]}`` signed ``X-Spatial-Signature: sha256=<HMAC-SHA256 of the body>``.
A 2xx moves the cursor past the batch; anything else (an error status, a redirect, no
answer within the timeout) leaves it where it was, records the error and waits before the
next attempt, twice as long after each failure in a row. Delivery is at least once and in
order: a receiver sees an event again only when its answer was lost, and tells by the
event ``id``.

Several API workers deliver at once: each batch is sent while its webhook's row is locked
(``FOR UPDATE SKIP LOCKED``), so a webhook is in one worker's hands at a time and a slow
receiver holds up no other webhook. Event ids follow commit order (migration 0010), so the
cursor never passes an event that commits late.

Adding and removing a webhook are audited (``webhook-add``, ``webhook-remove``) in the
transaction that makes the change, whoever calls them (the API or a command). The row
names the webhook by id and its URL by scheme, host and port only: receivers often carry
their own credential in the URL's path or query, and the secret is never recorded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg.rows import dict_row

import spatial
from spatial.audit import Actor, record
from spatial.errors import InvalidInputError, NotFoundError

KINDS = ("enter", "exit", "dwell", "on-scene", "alarm-raised", "alarm-cleared")
"""Geofence events, units arriving on scene (:mod:`spatial.command.dispatch`), and sensor
alarms raised and cleared (:mod:`spatial.sta.alarms`)."""
SIGNATURE_HEADER = "X-Spatial-Signature"
DELIVERY_HEADER = "X-Spatial-Delivery"
MAX_URL = 2000


@dataclass(frozen=True)
class Webhook:
    """A registered webhook and its delivery state (never its secret)."""

    id: int
    url: str
    fence_ids: tuple[int, ...] | None
    kinds: tuple[str, ...] | None
    department: str | None
    active: bool
    created_at: dt.datetime
    last_event_id: int
    failures: int
    last_error: str | None
    last_attempt_at: dt.datetime | None
    next_attempt_at: dt.datetime
    delivered_at: dt.datetime | None


@dataclass(frozen=True)
class Backoff:
    """How long a failing webhook waits before its next attempt."""

    first_s: float = 5.0
    """Seconds after the first failure; each further failure in a row doubles it..."""
    longest_s: float = 3600.0
    """...up to this."""

    def after(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failures in a row."""
        return float(min(self.first_s * 2 ** min(failures - 1, 30), self.longest_s))


@dataclass(frozen=True)
class DeliveryOptions:
    """How webhooks are delivered."""

    batch: int = 100
    """Events in one POST."""
    timeout_s: float = 5.0
    """Seconds to connect, send and get the answer's status."""
    max_batches: int = 10
    """Batches one webhook gets in a run (a long backlog then waits for the next run,
    behind the other webhooks)."""
    backoff: Backoff = field(default_factory=Backoff)


def check_url(url: str) -> str:
    """A webhook URL as given, if it is one.

    Raises:
        InvalidInputError: not http(s), no host, credentials in it, or malformed.
    """
    if not url or len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
        msg = f"webhook URL {url[:100]!r}: give an http:// or https:// URL without spaces"
        raise InvalidInputError(msg)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        msg = f"webhook URL {url!r}: not a URL ({exc})"
        raise InvalidInputError(msg) from None
    if parts.scheme not in {"http", "https"}:
        msg = f"webhook URL {url!r}: only http:// and https:// URLs are delivered to"
        raise InvalidInputError(msg)
    if not parts.hostname:
        msg = f"webhook URL {url!r}: names no host"
        raise InvalidInputError(msg)
    if parts.username is not None or parts.password is not None:
        msg = (f"webhook URL {url!r}: must not hold credentials (user:password@); the "
               "receiver checks the X-Spatial-Signature of each delivery instead")  # fmt: skip
        raise InvalidInputError(msg)
    return url


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what the audit log records of a webhook's URL."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port is not None else "")


def add_webhook(
    conn: psycopg.Connection[Any], url: str, *, secret: str | None = None,
    fence_ids: Sequence[int] = (), kinds: Sequence[str] = (), department: str | None = None,
    actor: Actor | None = None,
) -> tuple[int, str]:  # fmt: skip
    """Register a webhook, audited as ``webhook-add``; it gets the events recorded from now
    on. Returns its id and its secret (generated when none is given; shown once by the
    callers).

    Args:
        actor: who registers it [default: the OS user, :meth:`Actor.local`].

    Raises:
        InvalidInputError: a bad URL, a short secret, an unknown fence, kind or department.
    """
    check_url(url)
    if secret is None:
        secret = secrets.token_hex(32)
    elif len(secret) < 16:
        raise InvalidInputError("a webhook secret has at least 16 characters")
    bad = sorted(set(kinds) - set(KINDS))
    if bad:
        msg = f"event kind {bad[0]!r}: use {', '.join(KINDS)}"
        raise InvalidInputError(msg)
    fences = sorted(set(fence_ids))
    if fences:
        found = {r[0] for r in conn.execute(
            "SELECT id FROM gps.fences WHERE id = ANY(%s)", (fences,))}  # fmt: skip
        missing = [str(f) for f in fences if f not in found]
        if missing:
            msg = f"fence {', '.join(missing)} does not exist (spatial gps fence list)"
            raise InvalidInputError(msg)
    if department is not None and conn.execute(
        "SELECT 1 FROM platform.departments WHERE id = %s", (department,)
    ).fetchone() is None:  # fmt: skip
        msg = f"department {department!r} does not exist (spatial user department add)"
        raise InvalidInputError(msg)
    kinds = sorted(set(kinds))
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO gps.webhooks (url, secret, fence_ids, kinds, department) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (url, secret, fences or None, kinds or None, department),
        ).fetchone()
        assert row is not None  # noqa: S101 - INSERT ... RETURNING
        webhook_id = int(row[0])
        record(conn, actor or Actor.local(), "webhook-add", feature_ids=[str(webhook_id)],
               details={"id": webhook_id, "origin": origin(url), "fences": fences,
                        "kinds": kinds, "department": department})  # fmt: skip
    return webhook_id, secret


def list_webhooks(conn: psycopg.Connection[Any]) -> list[Webhook]:
    """Every webhook with its delivery state, by id."""
    rows = conn.execute(
        "SELECT id, url, fence_ids, kinds, department, active, created_at, last_event_id, "
        "failures, last_error, last_attempt_at, next_attempt_at, delivered_at "
        "FROM gps.webhooks ORDER BY id"
    ).fetchall()
    return [
        Webhook(r[0], r[1], None if r[2] is None else tuple(r[2]),
                None if r[3] is None else tuple(r[3]), *r[4:])
        for r in rows
    ]  # fmt: skip


def remove_webhook(
    conn: psycopg.Connection[Any], webhook_id: int, *, actor: Actor | None = None
) -> None:
    """Delete a webhook (a delivery under way finishes first), audited as
    ``webhook-remove``.

    Args:
        actor: who removes it [default: the OS user, :meth:`Actor.local`].

    Raises:
        NotFoundError: no such webhook.
    """
    with conn.transaction():
        row = conn.execute("DELETE FROM gps.webhooks WHERE id = %s RETURNING url",
                           (webhook_id,)).fetchone()  # fmt: skip
        if row is None:
            msg = f"webhook {webhook_id} does not exist"
            raise NotFoundError(msg)
        record(conn, actor or Actor.local(), "webhook-remove", feature_ids=[str(webhook_id)],
               details={"id": webhook_id, "origin": origin(row[0])})  # fmt: skip


def sign(secret: str, body: bytes) -> str:
    """The ``X-Spatial-Signature`` of a body: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


_DUE = """
SELECT id FROM gps.webhooks
WHERE active AND next_attempt_at <= now() AND last_event_id < gps.last_event_id()
ORDER BY next_attempt_at, id
"""

_CLAIM = """
SELECT url, secret, fence_ids, kinds, department, last_event_id, failures FROM gps.webhooks
WHERE id = %s AND active AND next_attempt_at <= now() FOR UPDATE SKIP LOCKED
"""

# The newest event and the next batch in one statement (one snapshot): when the batch is
# not full, nothing between the cursor and the newest event is left for this webhook.
_BATCH = """
SELECT n.newest, b.* FROM (SELECT gps.last_event_id() AS newest) n
LEFT JOIN LATERAL (
    SELECT e.id, e.kind, e.time, e.device_id AS device, d.name AS device_name,
           coalesce(d.department, e.department) AS department, e.fence_id AS fence,
           f.name AS fence_name, e.incident, ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat,
           e.alarm_id AS alarm, a.datastream_id AS datastream, s.name AS datastream_name,
           s.thing_id AS thing, t.name AS thing_name, a.rule_id AS rule, a.subsystem, a.level,
           CASE e.kind WHEN 'alarm-cleared' THEN a.cleared_value ELSE a.raised_value END
               AS value, a.threshold
    FROM gps.events e LEFT JOIN gps.fences f ON f.id = e.fence_id
    LEFT JOIN gps.devices d ON d.id = e.device_id
    LEFT JOIN sta.alarms a ON a.id = e.alarm_id
    LEFT JOIN sta.datastreams s ON s.id = a.datastream_id
    LEFT JOIN sta.things t ON t.id = s.thing_id
    WHERE e.id > %(after)s
      AND (%(fences)s::bigint[] IS NULL OR e.fence_id = ANY(%(fences)s::bigint[]))
      AND (%(kinds)s::text[] IS NULL OR e.kind = ANY(%(kinds)s::text[]))
      AND (%(department)s::text IS NULL
           OR coalesce(d.department, e.department) = %(department)s::text)
    ORDER BY e.id LIMIT %(limit)s
) b ON true
"""


@dataclass(frozen=True)
class _Outcome:
    delivered: int = 0
    more: bool = False


def deliver_due(
    conn: psycopg.Connection[Any], *, options: DeliveryOptions | None = None,
    client: httpx.Client | None = None,
) -> int:  # fmt: skip
    """Deliver the new events of every webhook that is due (one attempt each; a failing
    one waits out its backoff). The connection must not be in a transaction; each batch
    is its own. Returns how many events were delivered."""
    options = options or DeliveryOptions()
    with conn.transaction():
        due = [r[0] for r in conn.execute(_DUE)]
    if not due:
        return 0
    total = 0
    with _http(client, options) as http:
        for webhook_id in due:
            for _ in range(options.max_batches):
                outcome = _deliver_batch(conn, webhook_id, http, options)
                total += outcome.delivered
                if not outcome.more:
                    break
    return total


@contextmanager
def _http(client: httpx.Client | None, options: DeliveryOptions) -> Iterator[httpx.Client]:
    if client is not None:
        yield client
        return
    with httpx.Client(timeout=options.timeout_s, follow_redirects=False) as own:
        yield own


def _deliver_batch(
    conn: psycopg.Connection[Any], webhook_id: int, http: httpx.Client, options: DeliveryOptions
) -> _Outcome:
    """One batch to one webhook, with its row locked until the outcome is recorded."""
    with conn.transaction():
        claimed = conn.execute(_CLAIM, (webhook_id,)).fetchone()
        if claimed is None:
            return _Outcome()  # another worker has it, it was removed, or it is not due
        url, secret, fences, kinds, department, after, failures = claimed
        cur = conn.cursor(row_factory=dict_row)
        rows = cur.execute(_BATCH, {"after": after, "fences": fences, "kinds": kinds,
                                    "department": department,
                                    "limit": options.batch}).fetchall()  # fmt: skip
        events = [_event(r) for r in rows if r["id"] is not None]
        full = len(events) == options.batch
        cursor = events[-1]["id"] if full else max(after, int(rows[0]["newest"]))
        if not events:
            conn.execute("UPDATE gps.webhooks SET last_event_id = %s WHERE id = %s",
                         (cursor, webhook_id))  # fmt: skip
            return _Outcome()
        error = _post(http, url, secret, webhook_id, events, timeout_s=options.timeout_s)
        if error is not None:
            wait = options.backoff.after(failures + 1)
            conn.execute(
                "UPDATE gps.webhooks SET failures = failures + 1, last_error = %s, "
                "last_attempt_at = now(), next_attempt_at = now() + make_interval(secs => %s) "
                "WHERE id = %s", (error, wait, webhook_id))  # fmt: skip
            return _Outcome()
        conn.execute(
            "UPDATE gps.webhooks SET last_event_id = %s, failures = 0, last_error = NULL, "
            "last_attempt_at = now(), delivered_at = now(), next_attempt_at = now() "
            "WHERE id = %s", (cursor, webhook_id))  # fmt: skip
        return _Outcome(len(events), more=full)


def _event(row: dict[str, Any]) -> dict[str, Any]:
    """An event as webhooks send it (the live stream's fields, with names and its id):
    a fence's, an arrival on scene with its ``incident``, or an alarm's."""
    if row["alarm"] is not None:
        return {
            "id": row["id"], "kind": row["kind"],
            "time": row["time"].astimezone(dt.UTC).isoformat(),
            "department": row["department"], "alarm": row["alarm"],
            "datastream": row["datastream"], "datastream_name": row["datastream_name"],
            "thing": row["thing"], "name": row["thing_name"], "rule": row["rule"],
            "subsystem": row["subsystem"], "level": row["level"], "value": row["value"],
            "threshold": row["threshold"], "lon": row["lon"], "lat": row["lat"],
        }  # fmt: skip
    said = {
        "id": row["id"], "kind": row["kind"],
        "time": row["time"].astimezone(dt.UTC).isoformat(), "device": row["device"],
        "device_name": row["device_name"], "department": row["department"],
        "fence": row["fence"], "fence_name": row["fence_name"], "lon": row["lon"],
        "lat": row["lat"],
    }  # fmt: skip
    if row["incident"] is not None:
        said["incident"] = row["incident"]
    return said


def _post(
    http: httpx.Client, url: str, secret: str, webhook_id: int, events: list[dict[str, Any]],
    *, timeout_s: float,
) -> str | None:  # fmt: skip
    """POST a batch; None when the receiver took it (2xx), else what went wrong. The
    answer's body is never read (a receiver cannot make us download anything)."""
    body = json.dumps({"events": events}, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"spatial/{spatial.__version__} (webhooks)",
        SIGNATURE_HEADER: sign(secret, body),
        # The same batch sent again carries the same id.
        DELIVERY_HEADER: f"{webhook_id}-{events[0]['id']}-{events[-1]['id']}",
    }
    try:
        with http.stream("POST", url, content=body, headers=headers, timeout=timeout_s) as got:
            status = got.status_code
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:500] if str(exc) else type(exc).__name__
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed; give the final URL"
    return f"HTTP {status}"
