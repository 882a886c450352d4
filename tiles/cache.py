"""The tile cache: in memory with a size bound, plus an optional shared disk tier, and
invalidated by the data itself.

Every change to a collection's features (an ingest, an edit, a deletion) sends
``NOTIFY spatial_tiles`` with the collection and the lon/lat box of what changed
(:mod:`spatial.changes`), in the same transaction. Each API worker listens and drops the
tiles of that collection whose area meets the box; tiles elsewhere keep their entries.
A render that started before a change is not stored after it (a generation counter per
collection), so a cached tile never outlives the data it was cut from.

The disk tier (a SQLite file any number of workers and ``spatial tiles seed`` share) is
read on a memory miss and written on a render; the same notifications delete from it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

Box = tuple[float, float, float, float]
Key = tuple[str, str, int, int, int, str]
"""(scope, tile matrix set, z, row, col, properties): a scope is a collection id or
``maps/<subsystem>``; properties are the selected attributes joined by commas."""


@dataclass(frozen=True)
class CachedTile:
    data: bytes
    """The MVT bytes, not compressed (empty for a tile with no feature)."""
    lonlat: Box
    versions: tuple[tuple[str, int], ...]
    """The catalog version of each collection in the tile when it was rendered."""
    etag: str = field(default="")
    gzipped: bytes | None = None
    """The same bytes gzipped, once a client accepting gzip asked for the tile (compressed
    once, then kept: :meth:`TileCache.add_gzip`), else None."""

    @property
    def collections(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.versions)

    @property
    def size(self) -> int:
        """What the tile holds in memory, roughly."""
        return len(self.data) + len(self.gzipped or b"") + 200

    @classmethod
    def of(
        cls, data: bytes, lonlat: Box, versions: dict[str, int], gzipped: bytes | None = None
    ) -> CachedTile:
        # CRC-32 and length: a change of a tile's bytes changes it (barring a 1 in 4
        # billion coincidence), at a tenth of a cryptographic hash's cost per request.
        etag = f"{zlib.crc32(data):08x}{len(data):x}"
        return cls(data=data, lonlat=lonlat, versions=tuple(sorted(versions.items())),
                   etag=etag, gzipped=gzipped)  # fmt: skip


def _meets(a: Box, b: Box) -> bool:
    return not (a[2] < b[0] or a[0] > b[2] or a[3] < b[1] or a[1] > b[3])


class TileCache:
    """Tiles by :data:`Key`, least recently used first out past ``max_bytes``."""

    def __init__(self, max_bytes: int, disk: Path | None = None) -> None:
        self.max_bytes = max_bytes
        self._tiles: OrderedDict[Key, CachedTile] = OrderedDict()
        self._bytes = 0
        self._generations: dict[str, int] = {}
        self._changed: dict[str | None, float] = {}
        """When each collection (None: all) was last invalidated, on the monotonic clock."""
        self._lock = threading.Lock()
        self.disk = DiskTier(disk) if disk is not None else None
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._tiles)

    def get(self, key: Key) -> CachedTile | None:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
                self.hits += 1
                return tile
        found = self.disk.get(key) if self.disk is not None else None
        if found is not None:
            self._remember(key, found)
            self.hits += 1
            return found
        self.misses += 1
        return None

    def generation(self, collections: Iterable[str]) -> tuple[int, ...]:
        """Where the collections' invalidations stand (take it before a render)."""
        with self._lock:
            return tuple(self._generations.get(c, 0) for c in sorted(collections))

    def changed_within(self, collections: Iterable[str], seconds: float) -> bool:
        """Whether any of the collections was invalidated in the last ``seconds`` (a read
        replica may not have replayed the change yet: api.routers.tiles)."""
        since = time.monotonic() - seconds
        changed = self._changed
        return any(changed.get(c, 0.0) > since for c in (None, *collections))

    def put(self, key: Key, tile: CachedTile, generation: tuple[int, ...]) -> bool:
        """Keep a rendered tile, unless its data changed since the render began."""
        if self.generation(tile.collections) != generation:
            return False
        self._remember(key, tile)
        if self.disk is not None:
            self.disk.put(key, tile)
        return True

    def add_gzip(self, key: Key, tile: CachedTile, gzipped: bytes) -> CachedTile:
        """Keep the gzipped form of a cached tile beside it (made the first time a client
        asked for it); returns the tile with it. A tile replaced or dropped meanwhile is
        left as it is."""
        with_gzip = replace(tile, gzipped=gzipped)
        with self._lock:
            if self._tiles.get(key) is not tile:
                return with_gzip
            self._tiles[key] = with_gzip
            self._bytes += len(gzipped)
        if self.disk is not None:
            self.disk.put(key, with_gzip)
        return with_gzip

    def _remember(self, key: Key, tile: CachedTile) -> None:
        size = tile.size
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._tiles.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._tiles[key] = tile
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._tiles.popitem(last=False)
                self._bytes -= dropped.size

    def resume(self, versions: dict[str, int]) -> None:
        """After a time without notifications (a start, a lost connection): forget the
        memory tier, and keep of the disk tier only tiles of collections still at the
        version they were rendered at."""
        self.invalidate_memory()
        if self.disk is not None:
            self.disk.retain(versions)

    def invalidate_memory(self) -> None:
        with self._lock:
            self._tiles.clear()
            self._bytes = 0
            for name in self._generations:
                self._generations[name] += 1

    def invalidate(self, collection: str | None, boxes: list[Box] | None) -> int:
        """Drop the tiles of ``collection`` (every one when None) meeting any of ``boxes``
        (all of them when None). Returns how many entries went from memory."""
        with self._lock:
            self._changed[collection] = time.monotonic()
            if collection is None:
                gone = len(self._tiles)
                self._tiles.clear()
                self._bytes = 0
                for name in self._generations:
                    self._generations[name] += 1
            else:
                self._generations[collection] = self._generations.get(collection, 0) + 1
                doomed = [
                    k for k, t in self._tiles.items()
                    if collection in t.collections
                    and (boxes is None or any(_meets(t.lonlat, b) for b in boxes))
                ]  # fmt: skip
                for k in doomed:
                    self._bytes -= self._tiles.pop(k).size
                gone = len(doomed)
        if self.disk is not None:
            self.disk.invalidate(collection, boxes)
        return gone


class DiskTier:
    """Tiles in one SQLite file (WAL, so workers and the seeding command share it)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "tiles.sqlite"
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS tiles (key TEXT PRIMARY KEY, collections TEXT, "
                "versions TEXT, w REAL, s REAL, e REAL, n REAL, etag TEXT, data BLOB, gz BLOB)"
            )
            columns = {row[1] for row in conn.execute("PRAGMA table_info(tiles)")}
            if "gz" not in columns:  # a cache written before tiles were kept gzipped
                conn.execute("ALTER TABLE tiles ADD COLUMN gz BLOB")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._local.conn = conn
        return conn

    @staticmethod
    def _key(key: Key) -> str:
        return "/".join(str(part) for part in key)

    def get(self, key: Key) -> CachedTile | None:
        row = (
            self._conn()
            .execute(
                "SELECT versions, w, s, e, n, etag, data, gz FROM tiles WHERE key = ?",
                (self._key(key),),
            )
            .fetchone()
        )
        if row is None:
            return None
        versions = tuple((str(k), int(v)) for k, v in json.loads(row[0]))
        return CachedTile(data=row[6], lonlat=(row[1], row[2], row[3], row[4]),
                          versions=versions, etag=row[5], gzipped=row[7])  # fmt: skip

    def put(self, key: Key, tile: CachedTile) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO tiles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self._key(key), "|" + "|".join(sorted(tile.collections)) + "|",
             json.dumps(tile.versions), *tile.lonlat, tile.etag, tile.data, tile.gzipped),
        )  # fmt: skip

    def invalidate(self, collection: str | None, boxes: list[Box] | None) -> None:
        conn = self._conn()
        if collection is None:
            conn.execute("DELETE FROM tiles")
        elif boxes is None:
            conn.execute("DELETE FROM tiles WHERE instr(collections, ?) > 0", (f"|{collection}|",))
        else:
            conn.executemany(
                "DELETE FROM tiles WHERE instr(collections, ?) > 0 "
                "AND NOT (e < ? OR w > ? OR n < ? OR s > ?)",
                [(f"|{collection}|", b[0], b[2], b[1], b[3]) for b in boxes],
            )

    def retain(self, versions: dict[str, int]) -> None:
        """Delete the tiles of collections that are gone or at another version now."""
        conn = self._conn()
        stale = [
            key for key, recorded in conn.execute("SELECT key, versions FROM tiles")
            if any(versions.get(name) != version for name, version in json.loads(recorded))
        ]  # fmt: skip
        conn.executemany("DELETE FROM tiles WHERE key = ?", [(k,) for k in stale])

    def count(self) -> int:
        row = self._conn().execute("SELECT count(*) FROM tiles").fetchone()
        return int(row[0]) if row else 0
