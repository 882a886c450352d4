"""HTTP answers to the platform's typed errors (:mod:`spatial.errors`).

Each error raised by the client carries the server's message (the ``description`` of
the OGC exception body) and two attributes: ``status`` (the HTTP status, or None when no
answer came) and ``url`` (the request's URL).
"""

from __future__ import annotations

from typing import Any

import httpx

from spatial.errors import (
    ConflictError,
    DatabaseUnavailableError,
    ForbiddenError,
    InvalidInputError,
    NotAcceptableError,
    NotFoundError,
    PreconditionFailedError,
    ServerError,
    SpatialError,
    StorageFullError,
    TooLargeError,
    TooManyRequestsError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)

BY_STATUS: dict[int, type[SpatialError]] = {
    400: InvalidInputError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    406: NotAcceptableError,
    409: ConflictError,
    412: PreconditionFailedError,
    413: TooLargeError,
    415: UnsupportedMediaTypeError,
    422: InvalidInputError,
    429: TooManyRequestsError,
    503: DatabaseUnavailableError,
    507: StorageFullError,
}
"""The error class of each HTTP status; other 4xx are InvalidInputError, other 5xx
ServerError."""


class ServerUnreachableError(ServerError, ConnectionError):
    """No answer: the server is down, the URL is wrong, or it did not answer in time.

    Both a :class:`spatial.errors.ServerError` and a built-in :class:`ConnectionError`.
    """


def located(error: SpatialError, status: int | None, url: str) -> SpatialError:
    """The error with its ``status`` and ``url`` attributes set."""
    error.status = status  # type: ignore[attr-defined]
    error.url = url  # type: ignore[attr-defined]
    return error


def message_of(response: httpx.Response) -> str:
    """What the server said: the OGC exception's ``description``, else the body's text."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("description"):
        return str(body["description"])
    if isinstance(body, dict) and body.get("detail"):
        return str(body["detail"])
    text = response.text.strip()
    return text[:500] if text else response.reason_phrase


def error_for(response: httpx.Response) -> SpatialError:
    """The typed error of a failed answer."""
    status = response.status_code
    said = message_of(response)
    cls = BY_STATUS.get(status, InvalidInputError if status < 500 else ServerError)
    url = str(response.request.url)
    if cls is TooManyRequestsError:
        after = response.headers.get("retry-after", "")
        error: SpatialError = TooManyRequestsError(said, int(after) if after.isdigit() else 1)
    else:
        error = cls(said)
    return located(error, status, url)
