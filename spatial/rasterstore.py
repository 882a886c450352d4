"""The raster store: a local folder or an S3-compatible bucket, one way to reach either.

``SPATIAL_RASTER_STORE`` is a folder (default ``<data_dir>/rasters``) or
``s3://bucket/prefix``; ``SPATIAL_S3_ENDPOINT_URL`` names a MinIO, Ceph or other
S3-compatible server (AWS itself without it). Credentials come from the standard
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_REGION`` variables.

Items reference files by paths relative to the store (``<collection>/<item>/<version>/
<file>``), so catalog rows are the same whichever store holds them. Readers open
:meth:`RasterStore.gdal_path`: the local file, or ``/vsis3/bucket/prefix/...``, which
GDAL reads by HTTP range requests inside :func:`reading` (a ``rasterio.Env`` with the
store's S3 options from the settings). A multi-file scene's VRT names its band COGs by
relative paths, which GDAL resolves beside the VRT on ``/vsis3/`` as on disk.

The ingest converts into a local staging folder and :meth:`RasterStore.publish` uploads
the finished version folders before the catalog transaction commits (deleting what it
uploaded if that fails); :meth:`RasterStore.remove` deletes a replaced version after it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from spatial.errors import InvalidInputError, StorageFullError
from spatial.settings import Settings

LOCAL = "rasters"
"""The default store: ``<data_dir>/rasters``."""
_MULTIPART = 64 * 2**20
"""Files larger than this are uploaded in parts (of this size)."""
GDAL_S3_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.vrt,.ovr,.msk",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "VSI_CACHE": "TRUE",
}
"""Reading COGs from S3 by range requests without listing the bucket."""


@dataclass(frozen=True)
class RasterStore:
    """Where raster files are: ``root`` (a local folder) or ``bucket`` and ``prefix``."""

    root: Path | None = None
    bucket: str = ""
    prefix: str = ""
    endpoint_url: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.root is None

    def describe(self) -> str:
        return str(self.root) if self.root is not None else f"s3://{self.bucket}/{self.prefix}"

    def key(self, rel: str | PurePosixPath) -> str:
        """The object key of a store-relative path (checked: no ``..`` nor absolute)."""
        parts = PurePosixPath(rel).parts
        if not parts or parts[0] == "/" or ".." in parts:
            msg = f"not a raster store path: {rel!s}"
            raise InvalidInputError(msg)
        return "/".join(p for p in (self.prefix, *parts) if p)

    def gdal_path(self, rel: str | PurePosixPath) -> Path:
        """What GDAL opens for a store-relative path."""
        if self.root is not None:
            return self.root / rel
        configure_gdal(self)
        return Path(f"/vsis3/{self.bucket}/{self.key(rel)}")

    @contextmanager
    def staging(self, data_dir: Path) -> Iterator[Path]:
        """The folder an ingest converts into: the store itself when local, else a
        temporary folder under ``data_dir`` (removed afterwards)."""
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            yield self.root
            return
        data_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".raster-staging-", dir=data_dir))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def check_room(self, needed: int) -> None:
        """Refuse before writing when a local store has less room than ``needed`` bytes
        (an object store is not checked).

        Raises:
            StorageFullError: too little free space.
        """
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        if shutil.disk_usage(self.root).free < needed:
            msg = (
                f"the raster store {self.root} has {shutil.disk_usage(self.root).free / 2**20:.1f}"
                " MiB free and this ingest needs "
                f"at least {needed / 2**20:.1f} MiB; nothing was written: free space, then "
                "ingest again"
            )
            raise StorageFullError(msg)

    def publish(self, staging: Path, folders: list[Path]) -> list[str]:
        """Upload the files of the version ``folders`` (under ``staging``) to the bucket;
        returns the keys written. A local store has them in place already. On failure the
        objects uploaded so far are deleted and the error raised."""
        if self.root is not None:
            return []
        from boto3.s3.transfer import TransferConfig  # noqa: PLC0415 - only for S3

        config = TransferConfig(multipart_threshold=_MULTIPART, multipart_chunksize=_MULTIPART)
        client = self.client()
        done: list[str] = []
        try:
            for folder in folders:
                for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                    key = self.key(path.relative_to(staging).as_posix())
                    client.upload_file(str(path), self.bucket, key, Config=config)
                    done.append(key)
        except BaseException:
            self._delete_keys(done)
            raise
        return done

    def remove(self, rel_folder: str | PurePosixPath) -> None:
        """Delete a version folder (all its files), e.g. a replaced version after commit."""
        if self.root is not None:
            folder = self.root / rel_folder
            shutil.rmtree(folder, ignore_errors=True)
            prune(folder.parent, self.root)
            return
        prefix = self.key(rel_folder) + "/"
        self._delete_keys([k for k, _ in self._list(prefix)])

    def delete_file(self, rel: str) -> None:
        """Delete one file of the store."""
        if self.root is not None:
            (self.root / rel).unlink(missing_ok=True)
        else:
            self._delete_keys([self.key(rel)])

    def _delete_keys(self, keys: list[str]) -> None:
        client = self.client()
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def _list(self, prefix: str) -> Iterator[tuple[str, int]]:
        pages = self.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                yield entry["Key"], int(entry["Size"])

    def files(self) -> Iterator[tuple[str, int]]:
        """Every file of the store: its store-relative path and size."""
        if self.root is not None:
            if self.root.is_dir():
                for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
                    yield path.relative_to(self.root).as_posix(), path.stat().st_size
            return
        base = f"{self.prefix}/" if self.prefix else ""
        for key, size in self._list(base):
            yield key[len(base) :], size

    def size(self, rel: str) -> int | None:
        """A file's size in bytes, or None when it is missing."""
        if self.root is not None:
            path = self.root / rel
            return path.stat().st_size if path.is_file() else None
        from botocore.exceptions import ClientError  # noqa: PLC0415 - only for S3

        try:
            head = self.client().head_object(Bucket=self.bucket, Key=self.key(rel))
        except ClientError:
            return None
        return int(head["ContentLength"])

    def read(self, rel: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes of a file from ``start`` to ``end`` (inclusive), in chunks."""
        if self.root is not None:
            with (self.root / rel).open("rb") as handle:
                handle.seek(start)
                left = None if end is None else end - start + 1
                while left is None or left > 0:
                    chunk = handle.read(2**20 if left is None else min(2**20, left))
                    if not chunk:
                        return
                    left = None if left is None else left - len(chunk)
                    yield chunk
            return
        span = f"bytes={start}-{'' if end is None else end}"
        body = self.client().get_object(Bucket=self.bucket, Key=self.key(rel), Range=span)["Body"]
        try:
            yield from body.iter_chunks(2**20)
        finally:
            body.close()

    def download(self, rel: str, target: Path) -> None:
        """Copy a file of the store to a local path."""
        if self.root is not None:
            shutil.copyfile(self.root / rel, target)
        else:
            self.client().download_file(self.bucket, self.key(rel), str(target))

    def client(self) -> Any:
        """A boto3 S3 client of the store (credentials from the AWS variables)."""
        return _client(self.endpoint_url, os.environ.get("AWS_REGION"))


@lru_cache(maxsize=8)
def _client(endpoint_url: str | None, region: str | None) -> Any:
    import boto3  # noqa: PLC0415 - only for S3 stores
    from botocore.config import Config  # noqa: PLC0415 - only for S3 stores

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(s3={"addressing_style": "path"} if endpoint_url else {}),
    )


def of(settings: Settings) -> RasterStore:
    """The raster store the settings name.

    Raises:
        InvalidInputError: a URL that is not ``s3://``, or one without a bucket or with
            ``..`` in its prefix.
    """
    location = settings.raster_store
    if location is None or "://" not in location:
        return RasterStore(root=Path(location) if location else settings.data_dir / LOCAL)
    parts = urlsplit(location)
    if parts.scheme != "s3":
        msg = f"SPATIAL_RASTER_STORE={location!r}: give a folder or s3://bucket/prefix"
        raise InvalidInputError(msg)
    if not parts.netloc:
        msg = f"SPATIAL_RASTER_STORE={location!r} names no bucket (s3://bucket/prefix)"
        raise InvalidInputError(msg)
    if ".." in parts.path.split("/"):
        msg = f"SPATIAL_RASTER_STORE={location!r}: the prefix may not hold '..'"
        raise InvalidInputError(msg)
    return RasterStore(
        bucket=parts.netloc,
        prefix=parts.path.strip("/"),
        endpoint_url=settings.s3_endpoint_url or None,
    )


def gdal_options(store: RasterStore) -> dict[str, str]:
    """GDAL configuration options that reach the store's bucket (rasterio refuses
    credentials as options: GDAL takes them from the AWS_* environment variables)."""
    options = dict(GDAL_S3_OPTIONS)
    if store.endpoint_url:
        endpoint = urlsplit(store.endpoint_url)
        options["AWS_S3_ENDPOINT"] = endpoint.netloc + endpoint.path.rstrip("/")
        options["AWS_VIRTUAL_HOSTING"] = "FALSE"
        options["AWS_HTTPS"] = "NO" if endpoint.scheme == "http" else "YES"
    if os.environ.get("AWS_REGION"):
        options["AWS_REGION"] = os.environ["AWS_REGION"]
    return options  # GDAL reads the credentials from the AWS_* environment itself


_OPTIONS: dict[str, str] = {}
"""The GDAL options of the object store this process reads (none for a local store)."""


def configure_gdal(store: RasterStore) -> None:
    """Remember the store's GDAL options for :func:`reading`."""
    if not _OPTIONS:
        _OPTIONS.update(gdal_options(store))


@contextmanager
def reading() -> Iterator[None]:
    """Where raster paths of :meth:`RasterStore.gdal_path` are opened: a ``rasterio.Env``
    with the object store's GDAL options (nothing for a local store)."""
    if not _OPTIONS:
        yield
        return
    import rasterio  # noqa: PLC0415 - GDAL: only a store with options (S3) needs it here

    with rasterio.Env(**_OPTIONS):
        yield


def prune(folder: Path, root: Path) -> None:
    """Remove empty folders from ``folder`` up to (not including) ``root``."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
