"""An immutable snapshot of the platform catalog."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sqlalchemy import Connection

from spatial.catalog import CollectionRecord, list_collections
from spatial.errors import NotFoundError


@dataclass(frozen=True)
class Catalog:
    """Collections by id. Never changes under a reader: changes produce a new Catalog."""

    collections: Mapping[str, CollectionRecord] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def load(cls, conn: Connection) -> Catalog:
        """Read the whole catalog from the database."""
        return cls(MappingProxyType({c.id: c for c in list_collections(conn)}))

    def get(self, collection_id: str) -> CollectionRecord:
        """The collection with that id.

        Raises:
            NotFoundError: no such collection.
        """
        try:
            return self.collections[collection_id]
        except KeyError:
            msg = f"collection {collection_id!r} does not exist"
            raise NotFoundError(msg) from None

    def register(self, record: CollectionRecord, *, replace: bool = False) -> Catalog:
        """A new catalog with ``record`` added.

        Raises:
            ValueError: the id exists and ``replace`` is False.
        """
        if record.id in self.collections and not replace:
            msg = f"collection {record.id!r} is already registered"
            raise ValueError(msg)
        return Catalog(MappingProxyType({**self.collections, record.id: record}))

    def of_kind(self, kind: str) -> list[CollectionRecord]:
        """Collections of one kind (vector, raster, gps), ordered by id."""
        return [c for c in self if c.kind == kind]

    def __iter__(self) -> Iterator[CollectionRecord]:
        return iter(sorted(self.collections.values(), key=lambda c: c.id))

    def __len__(self) -> int:
        return len(self.collections)
