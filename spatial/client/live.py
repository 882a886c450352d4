"""The live GPS stream (``/gps/live``, a WebSocket) as a Python iterator."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from spatial.client.errors import ServerUnreachableError, located
from spatial.errors import (
    ForbiddenError,
    InvalidInputError,
    ServerError,
    SpatialError,
    UnauthorizedError,
)

_CLOSE_ERRORS: dict[int, type[SpatialError]] = {1003: InvalidInputError, 1008: ForbiddenError}
"""WebSocket close codes the server uses for a refusal, and the error each means."""


class LiveStream:
    """Positions (and geofence events) as the platform receives them; made by
    :meth:`spatial.Client.live`.

    Iterate it for dicts (``{"type": "position", "device", "name", "kind", "department",
    "time", "lon", "lat", "speed", "course"}`` and ``{"type": "event", "device", "fence",
    "kind", "time", "lon", "lat", ...}``); the first messages are the latest position of
    every device that matches. Iteration ends when no message comes within ``timeout``
    seconds (never, when it is None) or when the server closes the stream. Use it in a
    ``with`` block, or call :meth:`close`, to hang up.
    """

    def __init__(self, url: str, *, events: bool, timeout: float | None, open_timeout: float):
        self.url = url.split("?", maxsplit=1)[0]
        self.events = events
        self.timeout = timeout
        try:
            # Entered at once (not in a with block: the stream is the context manager).
            self._ws: ClientConnection = connect(url, open_timeout=open_timeout).__enter__()
        except InvalidStatus as exc:
            status = exc.response.status_code
            cls = {401: UnauthorizedError, 403: ForbiddenError}.get(status, ServerError)
            msg = f"{self.url} refused the live stream (HTTP {status})"
            if status == 403:
                msg += ": you may not read gps_latest (or a filter was malformed)"
            raise located(cls(msg), status, self.url) from exc
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            msg = f"cannot open the live stream at {self.url}: {exc}"
            raise located(ServerUnreachableError(msg), None, self.url) from exc

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        while True:
            try:
                text = self._ws.recv(timeout=self.timeout)
            except TimeoutError:
                self.close()
                raise StopIteration from None
            except ConnectionClosed as exc:
                self._closed(exc)
                raise StopIteration from None
            message: dict[str, Any] = json.loads(text)
            kind = message.get("type")
            if kind == "dropped":
                warnings.warn(
                    f"the live stream dropped {message.get('count')} messages: "
                    "this client read too slowly",
                    stacklevel=2,
                )
                continue
            if kind == "event" and not self.events:
                continue
            return message

    def _closed(self, exc: ConnectionClosed) -> None:
        """Raise the refusal a close stands for (a normal close just ends the stream)."""
        frame = exc.rcvd
        if frame is not None and frame.code in _CLOSE_ERRORS:
            error = _CLOSE_ERRORS[frame.code](f"{self.url}: {frame.reason}")
            raise located(error, frame.code, self.url) from None

    def close(self) -> None:
        """Hang up."""
        self._ws.close()

    def __enter__(self) -> LiveStream:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
