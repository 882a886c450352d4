"""Tile engines (vector tiles from PostGIS, raster tiles from COGs, tile matrix sets).

Filled by the tile engine issue; may import ``spatial`` and ``layers``, never ``api``.
"""
