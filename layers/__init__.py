"""The catalog model: collections, each caller's view of them, and later subsystems and styles.

A :class:`Catalog` is an immutable snapshot of ``platform.collections``. Refresh is
explicit (:meth:`Catalog.load` again); :meth:`Catalog.register` returns a new catalog. A
:class:`View` is what one principal may see of a catalog (:mod:`layers.access`).
"""

from layers.access import View, view
from layers.catalog import Catalog

__all__ = ["Catalog", "View", "view"]
