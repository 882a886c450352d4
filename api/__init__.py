"""The FastAPI application: OGC API, tiles, receivers, web maps.

``create_app(settings)`` builds the app; nothing happens at import time.
"""

from api.app import create_app

__all__ = ["create_app"]
