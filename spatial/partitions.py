"""Month partitions of time-series tables (GPS positions, sensor readings): retention.

``gps.positions`` and ``sta.observations`` are partitioned by month of their time
(``gps.ensure_month``, ``sta.ensure_month`` make a month's partition, named
``<table>_YYYYMM``); retention drops whole months, so it costs a ``DROP TABLE`` each and
never a scan.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from psycopg import sql

from spatial.audit import Actor, record

_PARTS = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace
WHERE n.nspname = %s AND p.relname = %s ORDER BY c.relname
"""


def retention(
    conn: psycopg.Connection[Any], schema: str, table: str, older_than: dt.timedelta, *,
    action: str, now: dt.datetime | None = None, actor: Actor | None = None,
) -> list[str]:  # fmt: skip
    """Drop the month partitions of ``schema.table`` that end before ``now - older_than``
    (whole partitions only: a month partly inside the window stays); returns their names.

    Each run is audited as ``action`` (with the partitions it dropped, none included), so
    the log shows the policy was applied and what it removed.

    Args:
        actor: who applies it [default: the OS user, :meth:`Actor.local`].
    """
    cutoff = (now or dt.datetime.now(dt.UTC)) - older_than
    parts = conn.execute(_PARTS, (schema, table)).fetchall()
    dropped = []
    with conn.transaction():
        for (name,) in parts:
            year, month = int(name[-6:-2]), int(name[-2:])
            end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)
            if end <= cutoff:
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, name)))
                dropped.append(name)
        record(conn, actor or Actor.local(), action,
               details={"older_than_s": older_than.total_seconds(),
                        "cutoff": cutoff.isoformat(), "dropped": dropped})  # fmt: skip
    return dropped
