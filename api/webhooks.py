"""The webhook deliverer of each API worker (:mod:`spatial.gps.webhooks`).

Every few seconds, and as soon as the live stream's listener hears of new events
(:class:`api.live.Hub`), a worker delivers what is due, on threads with connections of the
app's thread pool (:meth:`api.db.Database.sync`). Workers share the work without talking
to each other: a webhook is locked while a batch is out, and a locked one is skipped.
Each worker runs a few delivery threads, so one slow or unreachable receiver costs at
most its timeout and holds up no other webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx

from spatial.gps.webhooks import DeliveryOptions, deliver_due

LOG = logging.getLogger(__name__)


async def run_webhooks(
    app: Any, every_s: float = 2.0, *, threads: int = 2, options: DeliveryOptions | None = None
) -> None:
    """Deliver due webhooks every ``every_s`` seconds, until cancelled."""
    options = options or DeliveryOptions()

    def work(client: httpx.Client) -> int:
        with app.state.db.sync() as conn:
            return deliver_due(conn, options=options, client=client)

    with contextlib.ExitStack() as stack:
        # A client (and its kept-alive connections) per thread.
        clients = [
            stack.enter_context(httpx.Client(timeout=options.timeout_s, follow_redirects=False))
            for _ in range(threads)
        ]
        recorded: asyncio.Event = app.state.live.events
        while True:
            # Every every_s seconds, or at once when events were recorded (api.live).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(recorded.wait(), every_s)
            recorded.clear()
            runs = await asyncio.gather(
                *(asyncio.to_thread(work, client) for client in clients), return_exceptions=True
            )
            for run in runs:
                if isinstance(run, asyncio.CancelledError):
                    raise run
                if isinstance(run, Exception):
                    LOG.warning("delivering webhooks failed; retrying", exc_info=run)
