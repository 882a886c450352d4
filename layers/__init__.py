"""The catalog model: collections, each caller's view of them, and subsystems.

A :class:`Catalog` is an immutable snapshot of ``platform.collections``. Refresh is
explicit (:meth:`Catalog.load` again); :meth:`Catalog.register` returns a new catalog. A
:class:`View` is what one principal may see of a catalog (:mod:`layers.access`); it hands
out collections as the classes of :mod:`layers.collections`, one per kind, with the
principal's rows applied.
"""

from layers.access import View, view
from layers.catalog import Catalog
from layers.collections import Collection, GpsView, RasterCollection, TileLayer, VectorCollection

__all__ = [
    "Catalog",
    "Collection",
    "GpsView",
    "RasterCollection",
    "TileLayer",
    "VectorCollection",
    "View",
    "view",
]
