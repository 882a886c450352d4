"""One table from domain errors to HTTP status, with an OGC exception body.

The body's ``description`` is in the language the request asks for (``lang=``, then
``Accept-Language``: :func:`spatial.i18n.negotiate`): the English message, or its Chinese from
:data:`spatial.i18n.MESSAGES` (the English kept, after the Chinese meaning of its ``code``,
when the message has no translation). The ``code`` and the status never change with the
language. The language is read when the answer is sent (:class:`ExceptionResponse`), so an
answer made where no request is at hand (the authentication middleware) follows it too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.datastructures import Headers, QueryParams
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

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
from spatial.i18n import EN, QUERY_PARAM, message, negotiate

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


class ExceptionResponse(JSONResponse):
    """An OGC exception body (``code``, ``description``) whose description is translated,
    when it is sent, into the language of the request it answers."""

    def __init__(
        self, code: str, description: str, status_code: int,
        headers: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.code, self.description = code, description
        super().__init__(
            {"code": code, "description": description}, status_code,
            {**(headers or {}), "Content-Language": EN},
        )  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lang = language(scope)
        if lang != EN:
            said = message(self.description, lang, self.code)
            self.body = self.render({"code": self.code, "description": said})
            self.headers["Content-Length"] = str(len(self.body))
            self.headers["Content-Language"] = lang
        await super().__call__(scope, receive, send)


def language(scope: Scope) -> str:
    """The language of the answer to a request: ``lang=``, else ``Accept-Language``."""
    if scope.get("type") != "http":
        return EN
    query = QueryParams(scope.get("query_string", b"").decode("latin-1"))
    return negotiate(query.get(QUERY_PARAM), Headers(scope=scope).get("accept-language"))


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
    return ExceptionResponse(code, str(exc), status, headers)


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
        return ExceptionResponse(
            "UnprocessableContent" if in_body else "InvalidParameterValue",
            f"{where}: {reason}",
            422 if in_body else 400,
        )

    async def http(_request: Request, exc: Exception) -> JSONResponse:
        status = getattr(exc, "status_code", 500)
        code = {404: "NotFound", 405: "MethodNotAllowed", 406: "NotAcceptable"}.get(
            status, "HTTPError"
        )
        return ExceptionResponse(
            code, str(getattr(exc, "detail", exc)), status, getattr(exc, "headers", None)
        )

    async def refused(_request: Request, exc: Exception) -> JSONResponse:
        # A value the checks let through but PostgreSQL could not take (out of range).
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ExceptionResponse("InvalidParameterValue", f"invalid value: {reason}", 400)

    async def unavailable(_request: Request, exc: Exception) -> JSONResponse:
        # Raised outside a request's pooled connection: pygeoapi's provider plugins.
        log.warning("database unavailable: %s", exc)
        return ExceptionResponse(
            "ServiceUnavailable", "the database is not reachable; try again shortly", 503,
            {"Retry-After": str(RETRY_AFTER_S)},
        )  # fmt: skip

    async def nested(_request: Request, _exc: Exception) -> JSONResponse:
        # Python's JSON reader (FastAPI's bodies too) and the geometry readers recurse per
        # level of nesting: a body nested thousands deep reaches the recursion limit.
        return ExceptionResponse(
            "InvalidParameterValue",
            "the request is nested too deeply to be read (JSON arrays or objects, or "
            "geometries, inside each other hundreds of levels deep)",
            400,
        )

    app.add_exception_handler(SpatialError, handle)
    app.add_exception_handler(RecursionError, nested)
    app.add_exception_handler(psycopg.OperationalError, unavailable)
    app.add_exception_handler(PoolTimeout, unavailable)
    app.add_exception_handler(psycopg.errors.DataError, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http)
