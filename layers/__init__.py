"""The catalog model: collections, and later subsystems, styles and grants.

A :class:`Catalog` is an immutable snapshot of ``platform.collections``. Refresh is
explicit (:meth:`Catalog.load` again); :meth:`Catalog.register` returns a new catalog.
"""

from layers.catalog import Catalog

__all__ = ["Catalog"]
