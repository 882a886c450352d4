"""Ingest: vector files (now), rasters and GPS (later issues) into the platform."""
