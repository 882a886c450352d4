"""Keeping each worker's catalog snapshot and tile cache current.

Every change to ``platform.collections`` sends ``NOTIFY spatial_catalog`` when it
commits (migration 0003). Each worker listens on its own connection and, on a
notification, reads the catalog again and swaps the snapshot on ``app.state`` (readers
keep the one they started with). A lost connection is re-opened and the catalog
re-read, since notifications sent meanwhile are gone. On the ``spatial_tiles`` channel
(:mod:`spatial.changes`) the worker drops the cached tiles a change touched; on
``spatial_access`` (migration 0005) it reloads accounts, keys and grants.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.concurrency import run_in_threadpool

from api.db import Database
from layers import Catalog
from spatial import changes
from spatial.access import Directory

CHANNEL = "spatial_catalog"
ACCESS = "spatial_access"
_RETRY_S = 1.0
log = logging.getLogger(__name__)


def load_catalog(db: Database) -> Catalog:
    """Read the catalog (a cold path: start-up, reloads; on a thread)."""
    with db.transaction() as conn:
        return Catalog.load(conn)


def load_directory(db: Database) -> Directory:
    """Read accounts, keys and grants (start-up, reloads; on a thread)."""
    with db.transaction() as conn:
        return Directory.load(conn)


def refresh(app: Any) -> None:
    """Read the catalog again now (on a thread), after a change this worker made: the
    notification that every worker gets may come a moment later."""
    app.state.catalog = load_catalog(app.state.db)


def refresh_quietly(app: Any) -> None:
    """:func:`refresh` for a job's cleanup: never raises (the job's outcome stands, and a
    database that does not answer is the listener's to catch up with)."""
    try:
        refresh(app)
    except Exception:
        log.warning("could not read the catalog again after a job", exc_info=True)


async def follow(app: Any) -> None:
    """Reload ``app.state.catalog`` on every catalog change (noting in
    ``app.state.appeared`` when each new collection appeared), and ``app.state.directory``
    on every change to accounts and grants, and drop the cached tiles a data change
    touched, until cancelled."""
    db: Database = app.state.db
    while True:
        try:
            async with db.listen(CHANNEL, changes.CHANNEL, ACCESS) as conn:
                # Changes made before LISTEN took effect are in this read; tiles cached
                # while no one listened may be stale.
                app.state.catalog = await run_in_threadpool(load_catalog, db)
                app.state.directory = await run_in_threadpool(load_directory, db)
                versions = {c.id: c.version for c in app.state.catalog}
                await run_in_threadpool(app.state.tiles.resume, versions)
                async for note in conn.notifies():
                    if note.channel == CHANNEL:
                        known = {c.id for c in app.state.catalog}
                        app.state.catalog = await run_in_threadpool(load_catalog, db)
                        now = time.monotonic()
                        for record in app.state.catalog:
                            if record.id not in known:  # a read replica may lack its table
                                app.state.appeared[record.id] = now
                        continue
                    if note.channel == ACCESS:
                        app.state.directory = await run_in_threadpool(load_directory, db)
                        continue
                    change = changes.parse(note.payload)
                    if change is not None:
                        collection, box = change
                        await run_in_threadpool(app.state.tiles.invalidate, collection, box)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("catalog listener lost its connection; retrying", exc_info=True)
            await asyncio.sleep(_RETRY_S)
