"""The analysts' Python client of the 3S platform: ``from spatial import Client``.

It speaks only the platform's public HTTP API (OGC API - Features and Processes, the
catalog's records, STAC, ``/gps`` and ``/ingest``), so what it does any other system can
do. See :class:`Client`.
"""

from spatial.client.core import Client
from spatial.client.errors import ServerUnreachableError
from spatial.client.live import LiveStream

__all__ = ["Client", "LiveStream", "ServerUnreachableError"]
