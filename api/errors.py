"""One table from domain errors to HTTP status, with an OGC exception body."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from spatial.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
    SpatialError,
    TooLargeError,
)

STATUS: dict[type[SpatialError], tuple[int, str]] = {
    TooLargeError: (413, "PayloadTooLarge"),  # before its base class: the first match wins
    InvalidInputError: (400, "InvalidParameterValue"),
    NotFoundError: (404, "NotFound"),
    DatabaseUnavailableError: (503, "ServiceUnavailable"),
    ConfigurationError: (500, "ServerError"),
}


def register(app: FastAPI) -> None:
    """Install the handler that maps every :class:`SpatialError` through :data:`STATUS`."""

    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        status, code = next(
            (v for cls, v in STATUS.items() if isinstance(exc, cls)), (500, "ServerError")
        )
        return JSONResponse({"code": code, "description": str(exc)}, status_code=status)

    app.add_exception_handler(SpatialError, handle)
