"""One table from domain errors to HTTP status, with an OGC exception body."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException

from spatial.errors import (
    ConfigurationError,
    ConflictError,
    DatabaseUnavailableError,
    ForbiddenError,
    InvalidInputError,
    NotAcceptableError,
    NotFoundError,
    PreconditionFailedError,
    SpatialError,
    StorageFullError,
    TooLargeError,
    TooManyRequestsError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5
"""What a 503 for an unreachable database tells clients to wait, in seconds."""

STATUS: dict[type[SpatialError], tuple[int, str]] = {
    TooLargeError: (413, "PayloadTooLarge"),  # before its base class: the first match wins
    UnsupportedMediaTypeError: (415, "UnsupportedMediaType"),
    NotAcceptableError: (406, "NotAcceptable"),
    InvalidInputError: (400, "InvalidParameterValue"),
    NotFoundError: (404, "NotFound"),
    UnauthorizedError: (401, "Unauthorized"),
    ForbiddenError: (403, "Forbidden"),
    TooManyRequestsError: (429, "TooManyRequests"),
    PreconditionFailedError: (412, "PreconditionFailed"),
    ConflictError: (409, "Conflict"),
    DatabaseUnavailableError: (503, "ServiceUnavailable"),
    StorageFullError: (507, "InsufficientStorage"),
    ConfigurationError: (500, "ServerError"),
}


def error_response(exc: Exception) -> JSONResponse:
    """The answer to a domain error: its status from :data:`STATUS` and an OGC body."""
    status, code = next(
        (v for cls, v in STATUS.items() if isinstance(exc, cls)), (500, "ServerError")
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, TooManyRequestsError):
        headers = {"Retry-After": str(exc.retry_after)}
    elif isinstance(exc, DatabaseUnavailableError):
        headers = {"Retry-After": str(RETRY_AFTER_S)}
    return JSONResponse(
        {"code": code, "description": str(exc)}, status_code=status, headers=headers
    )


def register(app: FastAPI) -> None:
    """Install the handlers: every :class:`SpatialError` through :data:`STATUS`, request
    validation errors as 400, and Starlette's own (unknown path 404, wrong method 405)
    with the same OGC exception body."""

    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        errors: list[dict[str, Any]] = (
            list(exc.errors()) if isinstance(exc, RequestValidationError) else []
        )
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else "request"
        reason = errors[0]["msg"] if errors else str(exc)
        # A bad parameter is a 400; a request body that was read but does not fit is a 422.
        in_body = bool(errors) and errors[0]["loc"][0] == "body"
        return JSONResponse(
            {
                "code": "UnprocessableContent" if in_body else "InvalidParameterValue",
                "description": f"{where}: {reason}",
            },
            status_code=422 if in_body else 400,
        )

    async def http(_request: Request, exc: Exception) -> JSONResponse:
        status = getattr(exc, "status_code", 500)
        code = {404: "NotFound", 405: "MethodNotAllowed", 406: "NotAcceptable"}.get(
            status, "HTTPError"
        )
        return JSONResponse(
            {"code": code, "description": str(getattr(exc, "detail", exc))},
            status_code=status,
            headers=getattr(exc, "headers", None),
        )

    async def refused(_request: Request, exc: Exception) -> JSONResponse:
        # A value the checks let through but PostgreSQL could not take (out of range).
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return JSONResponse(
            {"code": "InvalidParameterValue", "description": f"invalid value: {reason}"},
            status_code=400,
        )

    async def unavailable(_request: Request, exc: Exception) -> JSONResponse:
        # Raised outside a request's pooled connection: pygeoapi's provider plugins.
        log.warning("database unavailable: %s", exc)
        return JSONResponse(
            {"code": "ServiceUnavailable",
             "description": "the database is not reachable; try again shortly"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )  # fmt: skip

    async def nested(_request: Request, _exc: Exception) -> JSONResponse:
        # Python's JSON reader (FastAPI's bodies too) and the geometry readers recurse per
        # level of nesting: a body nested thousands deep reaches the recursion limit.
        return JSONResponse(
            {"code": "InvalidParameterValue",
             "description": "the request is nested too deeply to be read (JSON arrays or "
                            "objects, or geometries, inside each other hundreds of levels deep)"},
            status_code=400,
        )  # fmt: skip

    app.add_exception_handler(SpatialError, handle)
    app.add_exception_handler(RecursionError, nested)
    app.add_exception_handler(psycopg.OperationalError, unavailable)
    app.add_exception_handler(PoolTimeout, unavailable)
    app.add_exception_handler(psycopg.errors.DataError, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http)
