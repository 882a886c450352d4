"""Each caller's view of the catalog: the collections they may read, their rights, and the
rows their grants leave them.

The one place where access is decided, with the rules and the accounts of
:mod:`spatial.access`. Every read path takes its collections from a :class:`View`, which
hands them out as the classes of :mod:`layers.collections` with the caller's rows already
applied, so a feature outside a caller's grants is in no page, tile, export or process
result; a collection they may not read does not exist for them (404). The permission
checks (may read, may write, may ingest, steward of, admin) are the view's methods, and
:mod:`api.deps` offers them as dependencies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from layers.catalog import Catalog
from layers.collections import Collection, RasterCollection, VectorCollection, collection
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
from spatial.catalog import CollectionRecord, Kind
from spatial.errors import ForbiddenError, NotFoundError, UnauthorizedError
from spatial.features import Rows, is_vector_layer
from spatial.sta.scope import Restricted, Scope


@dataclass(frozen=True)
class Access:
    """What one principal holds on one collection."""

    level: int
    read_rows: Rows | None = None
    """The rows they may read, or None for every row."""
    write_rows: Rows | None = None
    """The rows they may write (only meaningful with ``level >= WRITE``)."""


@dataclass(frozen=True)
class View:
    """A principal's view of the catalog: only what they may read, with their rights."""

    principal: Principal
    catalog: Catalog
    rights: Mapping[str, Access]
    known: frozenset[str] = field(default_factory=frozenset)
    """Every collection id of the whole catalog (a new collection must not take one)."""

    def get(self, collection_id: str) -> CollectionRecord:
        """A collection the principal may read, as its catalog entry.

        Raises:
            NotFoundError: no such collection, or one the principal may not read (the
                same answer: a collection they cannot read does not exist for them).
        """
        return self.catalog.get(collection_id)

    def collection(self, collection_id: str) -> Collection:
        """A collection the principal may read, as its kind's class, with their rows.

        Raises:
            NotFoundError: as :meth:`get`.
        """
        return collection(self.get(collection_id), self.rights[collection_id].read_rows)

    def features(self, collection_id: str) -> VectorCollection:
        """A collection with features (a vector layer or a GPS view) the principal may read.

        Raises:
            NotFoundError: as :meth:`get`, or a collection without features (imagery).
        """
        found = self.collection(collection_id)
        if not isinstance(found, VectorCollection):
            msg = f"collection {collection_id!r} is {found.kind} data and has no features"
            raise NotFoundError(msg)
        return found

    def vectors(self, subsystem: str | None = None) -> list[VectorCollection]:
        """The collections with features the principal may read (of one subsystem)."""
        return [
            self.features(r.id) for r in self.catalog
            if is_vector_layer(r) and (subsystem is None or subsystem in r.subsystems)
        ]  # fmt: skip

    def raster(self, collection_id: str) -> RasterCollection:
        """Imagery the principal may read whole.

        Raises:
            NotFoundError: as :meth:`get`, or not imagery.
            ForbiddenError: a grant of some rows only (imagery is granted whole).
        """
        found = self.collection(collection_id)
        if not isinstance(found, RasterCollection):
            msg = f"collection {collection_id!r} is {found.kind} data, not imagery"
            raise NotFoundError(msg)
        if found.rows is not None:
            # Grants on imagery are whole collections (a row filter is refused when granted);
            # a restricted grant left from a vector collection of the same id reads nothing.
            msg = (
                f"your access to {collection_id!r} is restricted to rows; "
                "imagery needs a full grant"
            )
            raise ForbiddenError(msg)
        return found

    def rasters(self) -> list[RasterCollection]:
        """The imagery the principal may read whole."""
        return [
            self.raster(r.id) for r in self.catalog
            if r.kind == Kind.RASTER and self.rights[r.id].read_rows is None
        ]  # fmt: skip

    def writable(self, collection_id: str) -> VectorCollection:
        """May write: a collection the principal may edit, with the rows they may write.

        Raises:
            NotFoundError: the principal cannot read it, or it has no features.
            UnauthorizedError: an anonymous caller (who may read it).
            ForbiddenError: they can read it but not write.
        """
        found = self.features(collection_id)
        access = self.rights[collection_id]
        self.signed_in(f"editing {collection_id!r}")
        if access.level < WRITE:
            msg = f"{self.principal.username} may read collection {collection_id!r} but not edit it"
            raise ForbiddenError(msg)
        return type(found)(found.record, access.write_rows)

    def administrable(self, collection_id: str) -> CollectionRecord:
        """Steward of: a collection the principal administers (ingest into, grant on,
        delete): an admin's, or a steward's of the department that owns it.

        Raises:
            NotFoundError: the principal cannot read it.
            UnauthorizedError: an anonymous caller.
            ForbiddenError: they can read it but not administer it.
        """
        record = self.get(collection_id)
        self.signed_in(f"administering {collection_id!r}")
        if self.rights[collection_id].level < ADMIN:
            msg = f"{self.principal.username} may not administer collection {collection_id!r}"
            raise ForbiddenError(msg)
        return record

    def administered(self) -> list[str] | None:
        """The collections the principal administers (None: every one, an admin)."""
        if self.principal.admin:
            return None
        return [cid for cid, a in self.rights.items() if a.level >= ADMIN]

    def may_ingest(self, collection_id: str) -> str | None:
        """May ingest into ``collection_id``: the department a new collection will belong
        to (None: an existing one keeps its owner).

        Raises:
            UnauthorizedError: an anonymous caller.
            ForbiddenError: a caller who administers neither that collection nor, for a new
                one, their department's data.
        """
        who = self.signed_in("ingest (a steward's or an admin's key or token)")
        if collection_id in self.known:
            if collection_id not in self.rights or self.rights[collection_id].level < ADMIN:
                msg = f"{who.username} may not ingest into collection {collection_id!r}"
                raise ForbiddenError(msg)
            return None
        if who.admin:
            return who.department
        if "steward" not in who.roles or who.department is None:
            msg = f"{who.username} may not create collections (stewards and admins may)"
            raise ForbiddenError(msg)
        return who.department

    def signed_in(self, what: str) -> Principal:
        """The principal, who must have presented a key or a token.

        Raises:
            UnauthorizedError: an anonymous caller.
        """
        if self.principal.anonymous:
            msg = f"{what} needs a key or a token (Authorization: Bearer ...)"
            raise UnauthorizedError(msg)
        return self.principal

    def admin(self, what: str) -> Principal:
        """The principal, who must hold the admin role.

        Raises:
            UnauthorizedError: an anonymous caller. ForbiddenError: anyone else.
        """
        who = self.signed_in(f"{what} is for admins: it")
        if not who.admin:
            msg = f"{who.username} may not use {what} (admins may)"
            raise ForbiddenError(msg)
        return who

    def steward(self, what: str) -> Principal:
        """The principal, who must be a steward (of their department's data) or an admin.

        Raises:
            UnauthorizedError: an anonymous caller. ForbiddenError: anyone else.
        """
        who = self.signed_in(f"{what} is for stewards and admins: it")
        if not who.admin and "steward" not in who.roles:
            msg = f"{who.username} may not use {what} (stewards and admins may)"
            raise ForbiddenError(msg)
        return who

    def steward_of(self, department: str | None, what: str) -> Principal:
        """The principal, who must be an admin or a steward of ``department``.

        Raises:
            UnauthorizedError: an anonymous caller. ForbiddenError: anyone else.
        """
        who = self.steward(what)
        if not who.admin and department != who.department:
            msg = f"{who.username} may not manage {what} of another department"
            raise ForbiddenError(msg)
        return who

    def member_of(self, department: str, what: str) -> Principal:
        """The principal, who must be an admin, or an editor or steward of ``department``.

        Raises:
            UnauthorizedError: an anonymous caller. ForbiddenError: anyone else.
        """
        who = self.signed_in(f"{what} is for the {department} department: it")
        works = who.department == department and bool({"editor", "steward"} & who.roles)
        if not who.admin and not works:
            msg = f"{who.username} may not use {what} (editors and stewards of {department} may)"
            raise ForbiddenError(msg)
        return who

    def sees_fence(self, department: str | None, collection: str | None) -> bool:
        """May see a geofence: an admin; a signed-in member of the fence's department; or
        whoever may read the collection it was made of."""
        who = self.principal
        if who.admin:
            return True
        mine = not who.anonymous and department is not None and department == who.department
        return mine or (collection is not None and collection in self.rights)

    def sta_scope(self) -> Scope:
        """What the principal may read of the SensorThings entities
        (:mod:`spatial.sta.scope`): Things of the collections they read, with their rows,
        and their department's own."""
        who = self.principal
        if who.admin:
            return Scope(admin=True)
        full, restricted = [], []
        for cid, access in self.rights.items():
            record = self.catalog.get(cid)
            key = record.properties.get("key")
            if not is_vector_layer(record) or not key or record.storage_table is None:
                continue
            if access.read_rows is None:
                full.append(cid)
            else:
                restricted.append(
                    Restricted(
                        cid,
                        record.storage_schema or "layers",
                        record.storage_table,
                        key,
                        access.read_rows,
                    )
                )
        department = None if who.anonymous else who.department
        return Scope(False, department, tuple(full), tuple(restricted))

    def fingerprint(self, collections: Iterable[str]) -> str:
        """What distinguishes this view's rows of ``collections`` from an unrestricted
        one's (empty when nothing is restricted): part of a cached tile's key."""
        parts = [f"{c}:{rows.key}" for c in collections
                 if (rows := self.rights[c].read_rows) is not None]  # fmt: skip
        return "|".join(parts)


def view(who: Principal, catalog: Catalog, directory: Directory) -> View:
    """The principal's view of ``catalog``."""
    rights: dict[str, Access] = {}
    for record in catalog:
        access = _access(who, record, directory.grants.get(record.id, ()))
        if access is not None:
            rights[record.id] = access
    visible = Catalog(MappingProxyType({k: catalog.collections[k] for k in rights}))
    return View(who, visible, MappingProxyType(rights), frozenset(catalog.collections))


def _access(who: Principal, record: CollectionRecord, grants: Iterable[Grant]) -> Access | None:
    if who.admin:
        return Access(ADMIN)
    entries: list[tuple[int, Rows | None]] = []
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


def _union(entries: Iterable[tuple[int, Rows | None]]) -> Rows | None:
    """The rows of any entry: None (every row) when one has no restriction."""
    parts: list[Rows] = []
    for _, rows in entries:
        if rows is None:
            return None
        parts.append(rows)
    return Rows.any_of(parts)
