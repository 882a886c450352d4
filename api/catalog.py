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
from collections.abc import Callable

import psycopg
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from layers import Catalog
from spatial import changes
from spatial.access import Directory

CHANNEL = "spatial_catalog"
ACCESS = "spatial_access"
_RETRY_S = 1.0
log = logging.getLogger(__name__)


async def follow(
    app: FastAPI, url: str, load: Callable[[str], Catalog], accounts: Callable[[str], Directory]
) -> None:
    """Reload ``app.state.catalog`` on every catalog change (noting in
    ``app.state.appeared`` when each new collection appeared), and ``app.state.directory``
    on every change to accounts and grants, until cancelled."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                url, autocommit=True, application_name="spatial-api-catalog"
            ) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                await conn.execute(f"LISTEN {changes.CHANNEL}")
                await conn.execute(f"LISTEN {ACCESS}")
                # Changes made before LISTEN took effect are in this read; tiles cached
                # while no one listened may be stale.
                app.state.catalog = await run_in_threadpool(load, url)
                app.state.directory = await run_in_threadpool(accounts, url)
                versions = {c.id: c.version for c in app.state.catalog}
                await run_in_threadpool(app.state.tiles.resume, versions)
                async for note in conn.notifies():
                    if note.channel == CHANNEL:
                        known = {c.id for c in app.state.catalog}
                        app.state.catalog = await run_in_threadpool(load, url)
                        now = time.monotonic()
                        for record in app.state.catalog:
                            if record.id not in known:  # a read replica may lack its table
                                app.state.appeared[record.id] = now
                        continue
                    if note.channel == ACCESS:
                        app.state.directory = await run_in_threadpool(accounts, url)
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
