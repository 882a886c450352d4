"""Who each request is, how much they may ask, and signing in.

:class:`Guard` runs before any route: it reads ``Authorization: Bearer <token or key>``,
``Authorization: Basic`` (a user name and password, or an API key as the password: what
SensorThings clients send) or ``X-API-Key``, finds the principal in the worker's access
snapshot (:class:`spatial.access.Directory`, kept current by :mod:`api.catalog`), refuses bad
credentials with 401, callers over their rate with 429, and anonymous callers with 401
when anonymous access is off. It puts the principal on the request's state; every route
then reads through the principal's view of the catalog (:func:`api.deps.caller`), the one place
where access is decided (:mod:`spatial.access`). It also adds security headers.

``POST /auth/token`` signs in with a user name and password (the OAuth 2 password grant)
and answers a bearer token. Failed sign-ins and unknown keys are counted in the database,
so every worker sees them, and an address or user name with too many in the window is
answered 429 with ``Retry-After`` without a password being checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import time
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes

import jwt
import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import caller, client_address
from api.errors import error_response
from spatial import accounts, jsonbody
from spatial.access import ANONYMOUS, Account, Directory, Principal
from spatial.errors import (
    DatabaseUnavailableError,
    InvalidInputError,
    SpatialError,
    TooLargeError,
    TooManyRequestsError,
    UnauthorizedError,
)
from spatial.settings import Settings

router = APIRouter(tags=["Sign in"])
OPEN_PATHS = frozenset({"/auth/token", "/favicon.ico"})
"""Paths anonymous callers reach even when anonymous access is off (signing in; the icon,
which holds no data)."""
PROBES = frozenset({"/health", "/health/live", "/health/ready"})
"""Health probes: open with anonymous access off too (load balancers carry no credentials)."""
SHELL_PREFIXES = ("/vendor/", "/maps/_static/")
"""The web pages' own files (scripts, styles, fonts), which hold no data: reachable by
anonymous callers when anonymous access is off, so a page can offer signing in."""


def is_shell(path: str) -> bool:
    """Whether ``path`` is a web page's shell or file rather than data: ``/maps/`` and
    ``/maps/{subsystem}`` (their data comes from routes that check the caller), and the
    files under :data:`SHELL_PREFIXES`."""
    if path.startswith(SHELL_PREFIXES) or path == "/maps/":
        return True
    rest = path.removeprefix("/maps/")
    return rest not in {path, "subsystems"} and "/" not in rest


_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})
_SIGN_IN_BYTES = 16_384
"""A sign-in is a user name and a password: a larger body is refused unread (413)."""


class Guard:
    """ASGI middleware: the principal of each request, rate limits, security headers."""

    def __init__(self, app: ASGIApp, platform: Any) -> None:
        """Guard ``app`` (the routes) of ``platform`` (its ``state`` holds the snapshots)."""
        self.app = app
        self.platform = platform
        self.windows: dict[str, tuple[int, int]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Identify the caller, or answer the refusal."""
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        secured = _with_headers(send, self.platform.state.settings)
        try:
            _check_utf8(scope)
            address = client_address(scope)
            principal = await identify(self.platform.state, headers, address)
            settings: Settings = self.platform.state.settings
            closed = principal.anonymous and not settings.auth.anonymous
            path = scope["path"]
            if closed and path not in OPEN_PATHS and path not in PROBES and not is_shell(path):
                msg = "this platform needs a key or a token (anonymous access is off)"
                raise UnauthorizedError(msg)
            self._count(principal, address, settings.auth.rate_per_minute)
        except SpatialError as exc:
            await error_response(exc)(scope, receive, secured)
            return
        scope.setdefault("state", {})["principal"] = principal
        if scope["method"] not in _BODILESS:
            limit = _body_limit(scope, self.platform.state.settings)
            if limit is not None:
                declared = headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    await error_response(_too_large(limit))(scope, receive, secured)
                    return
                receive = _counted(receive, limit)
        await self.app(scope, receive, secured)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Identify a WebSocket caller by its headers, or by ``access_token`` in the query
        (browsers cannot set headers on a WebSocket); a refusal closes it (HTTP 403)."""
        raw = list(scope.get("headers", []))
        token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("access_token")
        if token:
            raw = [(k, v) for k, v in raw if k.lower() != b"authorization"]
            raw.append((b"authorization", f"Bearer {token[0]}".encode("latin-1")))
        try:
            principal = await identify(self.platform.state, Headers(raw=raw), client_address(scope))
            settings: Settings = self.platform.state.settings
            if principal.anonymous and not settings.auth.anonymous:
                msg = "this platform needs a key or a token (anonymous access is off)"
                raise UnauthorizedError(msg)
        except SpatialError as exc:
            await send({"type": "websocket.close", "code": 1008, "reason": str(exc)[:120]})
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _count(self, principal: Principal, address: str | None, rate: int) -> None:
        """A fixed one-minute window per user (or address) in this worker."""
        if rate <= 0:
            return
        who = f"user:{principal.user_id}" if not principal.anonymous else f"addr:{address}"
        minute = int(time.time() // 60)
        start, count = self.windows.get(who, (minute, 0))
        if start != minute:
            start, count = minute, 0
        if count >= rate:
            wait = 60 - int(time.time() % 60)
            msg = f"more than {rate} requests a minute; slow down"
            raise TooManyRequestsError(msg, wait)
        self.windows[who] = (start, count + 1)
        if len(self.windows) > 100_000:
            self.windows = {k: v for k, v in self.windows.items() if v[0] == minute}


def _check_utf8(scope: Scope) -> None:
    """Refuse a path or query whose percent-escapes are not UTF-8 (they would be read as
    replacement characters and silently match nothing). The OsmAnd receiver reads its raw
    query itself: a device's junk attribute must not cost its fix.

    Raises:
        InvalidInputError: they are not.
    """
    query = b"" if scope["path"] == "/gps/osmand" else scope["query_string"]
    for part, raw in (("path", scope.get("raw_path") or b""), ("query", query)):
        if b"%" not in raw:
            continue
        try:
            unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            msg = f"the {part} has percent-escapes that are not UTF-8 (byte {exc.start})"
            raise InvalidInputError(msg) from None


def _body_limit(scope: Scope, settings: Settings) -> int | None:
    """The most bytes of body the request may send: uploads count their own (their limit
    is SPATIAL_INGEST_MAX_UPLOAD_MB), a sign-in is small, everything else has
    SPATIAL_SERVER_MAX_BODY_MB."""
    path: str = scope["path"]
    if path.startswith("/ingest/"):
        return None
    if path in OPEN_PATHS:
        return _SIGN_IN_BYTES
    return int(settings.server.max_body_mb * 2**20)


def _too_large(limit: int) -> TooLargeError:
    size = f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit // 1024} KiB"
    return TooLargeError(f"the request body is larger than the limit of {size}")


def _counted(receive: Receive, limit: int) -> Receive:
    """``receive`` that refuses a body growing past ``limit`` (one sent without a length)."""
    total = 0

    async def counted() -> Message:
        nonlocal total
        message = await receive()
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > limit:
                raise _too_large(limit)
        return message

    return counted


async def identify(state: Any, headers: Headers, address: str | None) -> Principal:
    """The principal the request's credentials name (anonymous without any).

    Raises:
        UnauthorizedError: credentials that are not valid.
        TooManyRequestsError: the address failed too often lately.
    """
    directory: Directory = state.directory
    scheme, _, value = headers.get("authorization", "").partition(" ")
    value = value.strip()
    key = headers.get("x-api-key")
    if scheme.lower() == "bearer" and value.startswith(f"{accounts.KEY_PREFIX}_"):
        key = value
    if scheme.lower() == "basic" and value:
        username, password = _basic(value)
        if password.startswith(f"{accounts.KEY_PREFIX}_"):
            key = password  # Basic <anything>:<API key>
        else:
            return await _password(state, username, password, address)
    if key is not None:
        try:
            return accounts.key_account(directory, key).principal()
        except UnauthorizedError:
            # Guessing is answered 429 once the address failed too often (a valid key is
            # never slowed down: its secret is 256 random bits).
            try:
                await _failed(state, "key", key.strip()[:12], address)
                await _not_locked(state, None, address)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                # Raised in the middleware, past the app's handlers: a 503 here, or the
                # client's connection is reset. Without counting, no answer but "later".
                msg = "the database is not reachable to count failed keys; try again shortly"
                raise DatabaseUnavailableError(msg) from exc
            raise
    if scheme.lower() == "bearer" and value:
        settings: Settings = state.settings
        account: Account
        if settings.auth.oidc_issuer and _algorithm(value) != "HS256":
            account = await run_in_threadpool(_external_account, state, value)
        else:
            secret = settings.secret_key.get_secret_value()
            account = accounts.token_account(directory, value, secret)
        return account.principal()
    if scheme:
        msg = "use Authorization: Bearer <token or key>, Basic (user and password, or an API "
        msg += "key as the password), or X-API-Key: <key>"
        raise UnauthorizedError(msg)
    return ANONYMOUS


def _basic(value: str) -> tuple[str, str]:
    """The user name and password of ``Authorization: Basic <base64 of user:password>``.

    Raises:
        UnauthorizedError: not base64 of UTF-8 text with a colon.
    """
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    username, colon, password = decoded.partition(":")
    if not colon:
        msg = "Basic credentials are base64 of <user name>:<password or API key>"
        raise UnauthorizedError(msg)
    return username, password


_BASIC_SECONDS = 300
"""How long a user name and password checked over Basic are taken without hashing again
(clients send them with every request; each check costs a password hash's time)."""
_BASIC_KEPT = 1024


async def _password(state: Any, username: str, password: str, address: str | None) -> Principal:
    """The principal of a user name and password sent over Basic, checked as ``POST
    /auth/token`` checks them (failures counted, the name or address locked out after too
    many). A pair checked lately is taken again while the account and its password hash
    are unchanged.

    Raises:
        UnauthorizedError: a wrong pair. TooManyRequestsError: locked out.
    """
    directory: Directory = state.directory
    account = directory.by_username(username)
    seen: dict[bytes, tuple[str, float]] = getattr(state, "basic_checked", None) or {}
    state.basic_checked = seen
    digest = hashlib.sha256(f"{username}\0{password}".encode()).digest()
    hashed, until = seen.get(digest, (None, 0.0))
    fresh = hashed is not None and time.monotonic() < until
    if fresh and account is not None and account.active and hashed == account.password_hash:
        return account.principal()
    await _not_locked(state, username, address)
    if not await run_in_threadpool(accounts.check_password, account, password):
        await _failed(state, "password", username, address)
        msg = "wrong user name or password"
        raise UnauthorizedError(msg)
    assert account is not None and account.password_hash is not None  # noqa: S101 - checked
    if len(seen) >= _BASIC_KEPT:
        seen.clear()
    seen[digest] = (account.password_hash, time.monotonic() + _BASIC_SECONDS)
    return account.principal()


def _algorithm(token: str) -> str | None:
    try:
        return str(jwt.get_unverified_header(token).get("alg"))
    except jwt.InvalidTokenError:
        return None


def _external_account(state: Any, token: str) -> Account:
    """The platform account an external issuer's token names (its username claim).

    Raises:
        UnauthorizedError: a token the issuer did not sign, for another audience,
            expired, or naming no active platform user.
    """
    auth = state.settings.auth
    if not auth.oidc_jwks_url:
        msg = "external tokens are not configured (SPATIAL_AUTH_OIDC_JWKS_URL)"
        raise UnauthorizedError(msg)
    try:
        signing = state.jwks.get_signing_key_from_jwt(token)
    except (jwt.InvalidTokenError, jwt.PyJWKClientError) as exc:
        msg = f"the bearer token is not valid ({exc})"
        raise UnauthorizedError(msg) from exc
    claims = accounts.claims_of(token, signing.key, algorithms=("RS256", "ES256", "PS256"),
                                audience=auth.oidc_audience, issuer=auth.oidc_issuer,
                                require=("exp", "iss"))  # fmt: skip
    name = str(claims.get(auth.oidc_username_claim, ""))
    directory: Directory = state.directory
    account = directory.by_username(name)
    if account is None or not account.active:
        msg = f"{name or 'the token'} is not an active user of this platform"
        raise UnauthorizedError(msg)
    return account


# -- failures ---------------------------------------------------------------------------------


async def _failed(state: Any, kind: str, subject: str, address: str | None) -> None:
    """Record a failure (seen by every worker)."""

    def write() -> None:
        with state.db.transaction() as conn:
            accounts.record_failure(conn, kind, subject, address)

    await run_in_threadpool(write)


async def _not_locked(state: Any, subject: str | None, address: str | None) -> None:
    """Raise TooManyRequestsError while the user name or the address has failed too often
    within the window; ``Retry-After`` says when its oldest counted failure expires."""
    auth = state.settings.auth

    def counts() -> tuple[int, int, float, float]:
        with state.db.transaction() as conn:
            return accounts.recent_failures(conn, subject, address, auth.failure_window_s)

    by_subject, by_address, age_subject, age_address = await run_in_threadpool(counts)
    if subject is not None and by_subject >= auth.failures:
        wait = max(1, math.ceil(auth.failure_window_s - age_subject))
        msg = f"too many failed sign-ins for {subject!r}; try again in {wait} s"
        raise TooManyRequestsError(msg, wait)
    if address is not None and by_address >= auth.address_failures:
        wait = max(1, math.ceil(auth.failure_window_s - age_address))
        msg = f"too many failed sign-ins or keys from {address}; try again in {wait} s"
        raise TooManyRequestsError(msg, wait)


# -- routes -----------------------------------------------------------------------------------


@router.post("/auth/token", summary="Sign in: a bearer token for a user name and password")
async def token(request: Request) -> JSONResponse:
    """The OAuth 2 password grant (``application/x-www-form-urlencoded`` or JSON with
    ``username`` and ``password``): ``{"access_token", "token_type", "expires_in"}``."""
    username, password = await _credentials(request)
    address = client_address(request.scope)
    state = request.app.state
    await _not_locked(state, username, address)
    account = state.directory.by_username(username)
    if not await run_in_threadpool(accounts.check_password, account, password):
        await _failed(state, "password", username, address)
        msg = "wrong user name or password"
        raise UnauthorizedError(msg)
    settings: Settings = state.settings
    minutes = settings.auth.token_minutes
    issued = accounts.issue_token(account, settings.secret_key.get_secret_value(), minutes)
    return JSONResponse(
        {"access_token": issued, "token_type": "Bearer", "expires_in": minutes * 60},
        headers={"Cache-Control": "no-store"},
    )


@router.get("/auth/me", summary="Who the credentials name, and what they may read")
async def me(request: Request) -> dict[str, Any]:
    """The principal, with each collection they may read and their level there."""
    seen = caller(request)
    p = seen.principal
    levels = {1: "read", 2: "write", 3: "admin"}
    return {
        "username": p.username, "anonymous": p.anonymous, "department": p.department,
        "roles": sorted(p.roles), "service": p.service,
        "collections": {cid: {"privilege": levels[a.level], "rows": "some" if a.read_rows
                              else "all"} for cid, a in seen.rights.items()},
    }  # fmt: skip


async def _credentials(request: Request) -> tuple[str, str]:
    body = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    values: dict[str, Any]
    if kind == "application/json":
        values = jsonbody.loads(body, "the body")
        if not isinstance(values, dict):
            msg = "the body is a JSON object with username and password"
            raise InvalidInputError(msg)
    else:
        form = await request.form()
        values = {k: form.get(k) for k in ("username", "password", "grant_type")}
    grant = values.get("grant_type")
    if grant not in {None, "password"}:
        msg = f"grant_type {grant!r} is not offered; use password"
        raise InvalidInputError(msg)
    username, password = values.get("username"), values.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        msg = "give username and password"
        raise InvalidInputError(msg)
    return username, password


# -- headers ----------------------------------------------------------------------------------


_COMMON = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def _csp(settings: Settings) -> str:
    basemap = settings.server.basemap_url
    origin = ""
    if basemap.startswith(("http://", "https://")):
        origin = " " + "/".join(basemap.split("/")[:3]).replace("{s}.", "*.")
    return (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
        f"'unsafe-inline'; img-src 'self' data: blob:{origin}; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    )


_COMMON_RAW = [(k.lower().encode(), v.encode()) for k, v in _COMMON.items()]


def _with_headers(send: Send, settings: Settings) -> Send:
    """``send`` adding the security headers to the response (raw header pairs: this runs
    for every tile, so it does not parse the headers it extends)."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            raw: list[tuple[bytes, bytes]] = list(message.get("headers", []))
            raw += _COMMON_RAW
            kind = next((v for k, v in raw if k == b"content-type"), b"")
            if kind.startswith(b"text/html"):
                raw += [(b"content-security-policy", _csp(settings).encode()),
                        (b"x-frame-options", b"DENY")]  # fmt: skip
            message = {**message, "headers": raw}
        await send(message)

    return wrapped
