"""Each caller's view of the catalog: the collections they may read, their rights, and the
rows their grants leave them.

The one place where access is decided, with the rules and the accounts of
:mod:`spatial.access`. Every read path takes its collections from a :class:`View` and its
layer tables through :func:`spatial.features.source`, which applies the row restriction,
so a feature outside a caller's grants is in no page, tile, export or process result; a
collection they may not read does not exist for them (404).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from layers.catalog import Catalog
from spatial import features
from spatial.access import (
    ADMIN,
    LEVELS,
    READ,
    WRITE,
    Directory,
    Grant,
    Principal,
    grant_rows,
)
from spatial.catalog import CollectionRecord
from spatial.errors import ForbiddenError, UnauthorizedError


@dataclass(frozen=True)
class Access:
    """What one principal holds on one collection."""

    level: int
    read_rows: str | None = None
    """SQL condition over ``t`` limiting the rows read, or None for every row."""
    write_rows: str | None = None
    """The same for rows written (only meaningful with ``level >= WRITE``)."""


@dataclass(frozen=True)
class View:
    """A principal's view of the catalog: only what they may read, with their rights."""

    principal: Principal
    catalog: Catalog
    rights: Mapping[str, Access]

    def get(self, collection_id: str) -> CollectionRecord:
        """A collection the principal may read.

        Raises:
            NotFoundError: no such collection, or one the principal may not read (the
                same answer: a collection they cannot read does not exist for them).
        """
        return self.catalog.get(collection_id)

    def layer(self, record: CollectionRecord) -> features.LayerSchema:
        """The layer's schema with the principal's row restriction."""
        return features.LayerSchema.of(record, restriction=self.rights[record.id].read_rows)

    def writable(self, collection_id: str) -> tuple[CollectionRecord, features.LayerSchema]:
        """A collection the principal may edit, with the rows they may write.

        Raises:
            NotFoundError: the principal cannot read it.
            UnauthorizedError: an anonymous caller (who may read it).
            ForbiddenError: they can read it but not write.
        """
        record = self.get(collection_id)
        access = self.rights[collection_id]
        self._signed_in(f"editing {collection_id!r}")
        if access.level < WRITE:
            msg = f"{self.principal.username} may read collection {collection_id!r} but not edit it"
            raise ForbiddenError(msg)
        return record, features.LayerSchema.of(record, restriction=access.write_rows)

    def administrable(self, collection_id: str) -> CollectionRecord:
        """A collection the principal administers (ingest into, grant on, delete).

        Raises:
            NotFoundError: the principal cannot read it.
            ForbiddenError: they can read it but not administer it.
        """
        record = self.get(collection_id)
        self._signed_in(f"administering {collection_id!r}")
        if self.rights[collection_id].level < ADMIN:
            msg = f"{self.principal.username} may not administer collection {collection_id!r}"
            raise ForbiddenError(msg)
        return record

    def _signed_in(self, what: str) -> None:
        if self.principal.anonymous:
            msg = f"{what} needs a key or a token (Authorization: Bearer ...)"
            raise UnauthorizedError(msg)

    def fingerprint(self, records: Iterable[CollectionRecord]) -> str:
        """What distinguishes this view's rows of ``records`` from an unrestricted one's
        (empty when nothing is restricted): part of a cached tile's key."""
        parts = [f"{r.id}:{self.rights[r.id].read_rows}" for r in records
                 if self.rights[r.id].read_rows is not None]  # fmt: skip
        return "|".join(parts)


def view(who: Principal, catalog: Catalog, directory: Directory) -> View:
    """The principal's view of ``catalog``."""
    rights: dict[str, Access] = {}
    for record in catalog:
        access = _access(who, record, directory.grants.get(record.id, ()))
        if access is not None:
            rights[record.id] = access
    visible = Catalog(MappingProxyType({k: catalog.collections[k] for k in rights}))
    return View(who, visible, MappingProxyType(rights))


def _access(who: Principal, record: CollectionRecord, grants: Iterable[Grant]) -> Access | None:
    if who.admin:
        return Access(ADMIN)
    entries: list[tuple[int, str | None]] = []
    if record.is_public:
        entries.append((READ, None))
    if "steward" in who.roles and who.department and record.owner_department == who.department:
        entries.append((ADMIN, None))
    for grant in grants:
        if grant.applies_to(who):
            entries.append((min(LEVELS[grant.privilege], who.cap), grant_rows(grant, record)))
    if not entries:
        return None
    level = max(level for level, _ in entries)
    return Access(level, _union(e for e in entries), _union(e for e in entries if e[0] >= WRITE))


def _union(entries: Iterable[tuple[int, str | None]]) -> str | None:
    conditions: list[str] = []
    for _, condition in entries:
        if condition is None:
            return None
        conditions.append(condition)
    if not conditions:
        return "FALSE"
    return " OR ".join(f"({c})" for c in dict.fromkeys(conditions))
