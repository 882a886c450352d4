"""Routers, one per OGC API part or platform concern."""
