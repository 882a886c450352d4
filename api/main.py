"""Entry point for ASGI servers: ``uvicorn api.main:app_factory --factory``."""

from fastapi import FastAPI

from api.app import create_app
from spatial.settings import Settings


def app_factory() -> FastAPI:
    """Build the app from the environment's ``SPATIAL_*`` settings."""
    return create_app(Settings())
