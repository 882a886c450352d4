"""Routes declared once, for the hot paths too.

A map view asks for dozens of tiles and a client pages through items: for those, FastAPI's
request handling (parameter validation, dependency solving) was a tenth of a tile's CPU
and a third of a page's. :meth:`Router.fast_get` declares such a route once: a plain
Starlette route, matched before FastAPI's routes, serves it, and the same endpoint is
registered with FastAPI (which then matches only what the plain route does not, e.g. a
zoom that is not a number, for the endpoint to refuse) so that the OpenAPI document
describes it, its query parameters taken from the one :class:`~api.params.Params` the
endpoint parses. The app puts every router's :attr:`Router.fast` routes first.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.params import Params

Endpoint = Callable[[Request], Awaitable[Response]]
_PATH_PARAM = re.compile(r"{(\w+)(?::(\w+))?}")
_TYPES = {"int": {"type": "integer"}, None: {"type": "string"}}


class Router(APIRouter):
    """An APIRouter that also holds plain routes for its hot GET endpoints."""

    def __init__(self, **kwargs: Any) -> None:
        """As :class:`fastapi.APIRouter`."""
        super().__init__(**kwargs)
        self.fast: list[Route] = []
        """The plain routes, for the app to put before every other route."""

    def fast_get(
        self, path: str, *, params: Params, summary: str, description: str | None = None,
        responses: dict[int | str, dict[str, Any]] | None = None, name: str | None = None,
    ) -> Callable[[Endpoint], Endpoint]:  # fmt: skip
        """Declare a hot GET endpoint ``async def endpoint(request) -> Response``.

        Args:
            path: the path, with Starlette convertors where a part must be a number
                (``{z:int}``); the documented path has none.
            params: the query parameters the endpoint reads (:mod:`api.params`).
            summary: its summary in the OpenAPI document.
            description: its description there (default: the endpoint's docstring).
            responses: extra responses for the document (e.g. ``204``, media types).
            name: the route's name (for ``url_for``).
        """

        def register(endpoint: Endpoint) -> Endpoint:
            parameters = [
                {"name": n, "in": "path", "required": True, "schema": _TYPES.get(t, _TYPES[None])}
                for n, t in _PATH_PARAM.findall(path)
            ] + params.openapi()  # fmt: skip
            self.add_api_route(
                _PATH_PARAM.sub(r"{\1}", path), endpoint, methods=["GET"], summary=summary,
                description=description, response_model=None, responses=responses,
                openapi_extra={"parameters": parameters}, name=name,
            )  # fmt: skip
            self.fast.append(Route(self.prefix + path, endpoint, methods=["GET"], name=name))
            return endpoint

        return register
