"""The 3S platform's core library.

Settings, the database (embedded PostGIS cluster, migrations, connections), the
catalog repository, demo data and the ``spatial`` command line. Nothing here imports
FastAPI, and nothing happens at import time. ``from spatial import Client`` gives the
analysts' HTTP client (:mod:`spatial.client`), imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spatial.client import Client

__version__ = "0.1.0"
__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> Any:
    # The client pulls in pandas, geopandas and httpx: only when it is asked for.
    if name == "Client":
        from spatial.client import Client  # noqa: PLC0415 - pandas, geopandas, httpx

        return Client
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted([*globals(), "Client"])
