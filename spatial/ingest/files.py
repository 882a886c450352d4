"""Open what a steward hands over: check that it is safe and find the dataset in it.

Nothing here trusts the file. Archives are extracted by us, member by member, counting
the bytes actually written (a zip bomb's headers lie), refusing absolute paths, ``..``
and links. XML formats are refused when they declare entities (billion laughs, external
entities). A file whose first bytes do not match its extension is named for what it is.
Shapefile attribute encodings are checked against the bytes, so a wrong ``.cpg`` is an
error with a suggestion rather than silent mojibake.
"""

from __future__ import annotations

import codecs
import contextlib
import re
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pyproj import CRS
from pyproj.exceptions import CRSError

from spatial.errors import InvalidInputError
from spatial.settings import IngestSettings

# Extensions GDAL opens as vector datasets, in the order a member is preferred.
DATASET_SUFFIXES = (
    ".gdb",
    ".gpkg",
    ".shp",
    ".fgb",
    ".geojson",
    ".json",
    ".geojsonl",
    ".geojsons",
    ".kml",
    ".gml",
    ".gpx",
    ".csv",
)
ARCHIVE_SUFFIXES = (".zip", ".kmz")
XML_SUFFIXES = (".kml", ".gml", ".gpx")
_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"fgb\x03", "a FlatGeobuf file"),
)
_HTML = re.compile(rb"^\s*(<!doctype html|<html)", re.I)
_ENTITY = re.compile(rb"<!(DOCTYPE|ENTITY)", re.I)
_GEOJSON_CRS = re.compile(rb'"crs"\s*:\s*\{[^{}]*"properties"\s*:\s*\{[^{}]*"name"\s*:\s*"([^"]+)"')
_CHUNK = 1 << 20
_SAMPLE = 1 << 20


@dataclass(frozen=True)
class Dataset:
    """A dataset ready for GDAL, with what was learnt while opening it."""

    path: Path
    layer: str | None
    encoding: str | None
    """Attribute encoding to decode with (None: let GDAL decide)."""
    notes: tuple[str, ...] = ()


def prepare(
    path: Path, workdir: Path, limits: IngestSettings, *, layer: str | None, encoding: str | None
) -> Dataset:
    """Check ``path``, extract it if it is an archive, and find the one dataset to read.

    Args:
        path: the file (or ``.gdb`` directory) as given.
        workdir: an empty private directory for extracted members.
        limits: the archive limits.
        layer: the layer (or, inside an archive, the dataset name) to read.
        encoding: the attribute encoding the user declared.

    Raises:
        InvalidInputError: the file is missing, empty, unsafe, of another kind than its
            name says, or holds no (or several) datasets.
    """
    if not path.exists():
        msg = f"{path} does not exist"
        raise InvalidInputError(msg)
    if path.is_dir():
        if path.suffix.lower() == ".gdb":
            return Dataset(path, layer, encoding)
        msg = f"{path} is a directory; give a file, a .zip or a .gdb folder"
        raise InvalidInputError(msg)
    if path.stat().st_size == 0:
        msg = f"{path.name} is empty (0 bytes)"
        raise InvalidInputError(msg)
    head = path.read_bytes()[:64] if path.stat().st_size < 64 else _head(path)
    notes: list[str] = []
    if path.suffix.lower() in ARCHIVE_SUFFIXES or head.startswith(b"PK\x03\x04"):
        if not head.startswith(b"PK"):
            msg = f"{path.name} is not a zip archive{what(head)}"
            raise InvalidInputError(msg)
        extract(path, workdir, limits)
        path, layer = _choose(workdir, layer, path.name)
        notes.append(f"read {path.relative_to(workdir)} from the archive")
        if path.is_dir():
            return Dataset(path, layer, encoding, tuple(notes))
        head = _head(path)
        if path.stat().st_size == 0:
            msg = f"{path.name} in the archive is empty (0 bytes)"
            raise InvalidInputError(msg)
    _check_kind(path, head)
    if path.suffix.lower() == ".shp":
        encoding = _shapefile(path, encoding, notes)
    return Dataset(path, layer, encoding, tuple(notes))


def extract(archive: Path, dest: Path, limits: IngestSettings) -> None:
    """Extract ``archive`` into ``dest`` under the member-count and size limits; a refused
    archive leaves ``dest`` empty.

    Raises:
        InvalidInputError: a broken or encrypted archive, too many members, too many bytes,
            a member that would land outside ``dest`` (absolute, ``..``, link), or one the
            file system cannot hold (a name too long, a file and a folder of one name).
    """
    try:
        _extract(archive, dest, limits)
    except InvalidInputError:
        _empty(dest)
        raise
    except (
        zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, zlib.error,
        ValueError,  # a name flagged UTF-8 that is not (UnicodeDecodeError)
    ) as exc:  # fmt: skip
        _empty(dest)
        msg = f"{archive.name} is not a readable zip archive: {exc}"
        raise InvalidInputError(msg) from exc
    except RuntimeError as exc:  # zipfile raises it for encrypted members
        _empty(dest)
        msg = f"{archive.name} cannot be extracted: {exc}"
        raise InvalidInputError(msg) from exc
    except OSError as exc:
        _empty(dest)
        name = Path(exc.filename).name[:60] if exc.filename else "a member"
        msg = f"{archive.name}: {name!r} cannot be extracted ({exc.strerror or exc}); refused"
        raise InvalidInputError(msg) from exc


def _empty(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def _extract(archive: Path, dest: Path, limits: IngestSettings) -> None:
    max_bytes = limits.max_uncompressed_mb * 1024 * 1024
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        if len(members) > limits.max_archive_members:
            msg = (
                f"{archive.name} holds {len(members):,} entries; the limit is "
                f"{limits.max_archive_members:,}"
            )
            raise InvalidInputError(msg)
        declared = sum(m.file_size for m in members)
        if declared > max_bytes:
            msg = (
                f"{archive.name} declares {declared / 2**20:,.0f} MiB of contents; the limit "
                f"is {limits.max_uncompressed_mb:,} MiB (zip bomb?)"
            )
            raise InvalidInputError(msg)
        written = 0
        root = dest.resolve()
        for member in members:
            name = _member_name(member)
            target = _safe_target(root, name, archive.name)
            if name.endswith(("/", "\\")) or target == root:  # a folder (or the root)
                target.mkdir(parents=True, exist_ok=True)
                continue
            if stat.S_ISLNK(member.external_attr >> 16):
                msg = f"{archive.name}: member {name!r} is a symbolic link; links are refused"
                raise InvalidInputError(msg)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, target.open("wb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > max_bytes:
                        msg = (
                            f"{archive.name} expands to more than "
                            f"{limits.max_uncompressed_mb:,} MiB; refused (zip bomb?)"
                        )
                        raise InvalidInputError(msg)
                    out.write(chunk)


def _member_name(member: zipfile.ZipInfo) -> str:
    """The member's name; legacy (non-UTF-8) Chinese names are re-decoded as GBK."""
    name = member.filename
    if not member.flag_bits & 0x800:
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            name = name.encode("cp437").decode("gbk")
    return name


def _safe_target(root: Path, name: str, archive: str) -> Path:
    posix = PurePosixPath(name.replace("\\", "/"))
    if (
        posix.is_absolute()
        or ".." in posix.parts
        or re.match(r"^[A-Za-z]:", name)
        or "\x00" in name
    ):
        msg = f"{archive}: member {name!r} points outside the archive; refused"
        raise InvalidInputError(msg)
    target = (root / posix).resolve()
    if not target.is_relative_to(root):
        msg = f"{archive}: member {name!r} points outside the archive; refused"
        raise InvalidInputError(msg)
    return target


def _choose(root: Path, layer: str | None, archive: str) -> tuple[Path, str | None]:
    """The one dataset inside an extracted archive (and the layer left to choose in it)."""
    found: list[Path] = []
    for candidate in sorted(root.rglob("*")):
        rel = candidate.relative_to(root)
        if any(part.startswith((".", "__MACOSX")) for part in rel.parts):
            continue
        if any(parent.suffix.lower() == ".gdb" for parent in rel.parents):
            continue
        suffix = candidate.suffix.lower()
        if (suffix == ".gdb" and candidate.is_dir()) or (
            suffix in DATASET_SUFFIXES and suffix != ".gdb" and candidate.is_file()
        ):
            found.append(candidate)
    if not found:
        names = ", ".join(sorted(p.name for p in root.rglob("*") if p.is_file())[:10]) or "nothing"
        msg = f"{archive} holds no vector dataset (found: {names})"
        raise InvalidInputError(msg)
    if len(found) == 1:
        return found[0], layer
    named = [p for p in found if layer is not None and p.stem == layer]
    if len(named) == 1:
        return named[0], None
    found.sort(key=lambda p: DATASET_SUFFIXES.index(p.suffix.lower()))
    listing = ", ".join(str(p.relative_to(root)) for p in found[:10])
    msg = f"{archive} holds several datasets ({listing}); choose one with --layer NAME"
    raise InvalidInputError(msg)


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(_SAMPLE)


def what(head: bytes) -> str:
    """What a file looks like from its first bytes, as " (it is a zip archive)"."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return f" (it is {kind})"
    if _HTML.match(head):
        return " (it is an HTML page, perhaps an error page saved by a browser)"
    if head[:512].isascii() and b"\x00" not in head[:512]:
        return " (it is plain text)"
    return f" (it starts with bytes {head[:8].hex(' ')})"


def _check_kind(path: Path, head: bytes) -> None:
    """Refuse a file whose first bytes contradict its extension, or unsafe XML."""
    suffix = path.suffix.lower()
    expected = {
        ".gpkg": (b"SQLite format 3\x00",),
        ".fgb": (b"fgb\x03",),
        ".shp": (b"\x00\x00\x27\x0a",),
    }.get(suffix)
    if expected is not None and not head.startswith(expected):
        kind = {".gpkg": "GeoPackage", ".fgb": "FlatGeobuf", ".shp": "Shapefile"}[suffix]
        msg = f"{path.name} is not a {kind}{what(head)}"
        raise InvalidInputError(msg)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n\x1e")
    if suffix in {".geojson", ".json", ".geojsonl", ".geojsons"}:
        if not text.startswith((b"{", b"[")):
            msg = f"{path.name} is not GeoJSON{what(head)}"
            raise InvalidInputError(msg)
        _check_geojson_crs(path, head)
    if suffix in XML_SUFFIXES:
        if not text.startswith(b"<") or _HTML.match(text):
            msg = f"{path.name} is not {suffix[1:].upper()}{what(head)}"
            raise InvalidInputError(msg)
        if _ENTITY.search(head):
            msg = (
                f"{path.name} declares a DOCTYPE or XML entities; entity expansion is refused "
                "for safety (billion laughs, external entities)"
            )
            raise InvalidInputError(msg)
    if suffix == ".csv" and (b"\x00" in head[:4096] or _HTML.match(head)):
        msg = f"{path.name} is not a CSV text file{what(head)}"
        raise InvalidInputError(msg)


def _check_geojson_crs(path: Path, head: bytes) -> None:
    """GDAL silently falls back to WGS 84 for a ``crs`` member it cannot read; we refuse."""
    found = _GEOJSON_CRS.search(head)
    if found is None:
        return
    name = found.group(1).decode(errors="replace")
    try:
        CRS.from_user_input(name)
    except CRSError:
        msg = f"{path.name} declares the coordinate reference system {name!r}, which is unknown"
        raise InvalidInputError(msg) from None


def _sidecar(path: Path, ext: str) -> Path | None:
    for candidate in (path.with_suffix(ext), path.with_suffix(ext.upper())):
        if candidate.is_file():
            return candidate
    return None


def _shapefile(path: Path, encoding: str | None, notes: list[str]) -> str | None:
    """Check a Shapefile's companions and settle its attribute encoding."""
    dbf, shx = _sidecar(path, ".dbf"), _sidecar(path, ".shx")
    missing = [ext for ext in (".shx", ".dbf") if _sidecar(path, ext) is None]
    if missing or dbf is None or shx is None:
        msg = (
            f"{path.name}: the Shapefile is incomplete, {' and '.join(missing)} "
            "missing (a Shapefile needs .shp, .shx and .dbf, and a .prj for its CRS)"
        )
        raise InvalidInputError(msg)
    _check_dbf(path, dbf, shx)
    cpg = _sidecar(path, ".cpg")
    declared, origin = encoding, "--encoding"
    if declared is None and cpg is not None:
        declared = cpg.read_text(errors="replace").strip() or None
        origin = cpg.name
    sample = _dbf_text_sample(dbf)
    if declared is None:
        if sample.isascii():
            return None
        guess = _guess(sample)
        if guess is None:
            msg = (
                f"{path.name}: cannot tell the attribute encoding (no .cpg; the text is neither "
                "UTF-8 nor GB18030); give it with --encoding"
            )
            raise InvalidInputError(msg)
        notes.append(f"attribute encoding {guess} guessed from the data (no .cpg)")
        return guess
    codec = _codec(declared)
    if codec is None:
        return declared
    bad = _bad_offset(sample, codec)
    if bad is not None:
        guess = _guess(sample)
        hint = f"; it reads as {guess}: pass --encoding {guess.lower()}" if guess else ""
        msg = (
            f"{path.name}: the attributes are not valid {declared} as {origin} declares "
            f"(byte 0x{sample[bad]:02x} at offset {bad}){hint}"
        )
        raise InvalidInputError(msg)
    return declared


def _check_dbf(shp: Path, dbf: Path, shx: Path) -> None:
    """The .dbf must be whole and hold one record per shape (GDAL reads short ones silently)."""
    with dbf.open("rb") as f:
        header = f.read(32)
    if len(header) < 32:
        msg = f"{dbf.name} is truncated ({len(header)} bytes; not even a header)"
        raise InvalidInputError(msg)
    records = int.from_bytes(header[4:8], "little")
    header_len = int.from_bytes(header[8:10], "little")
    record_len = int.from_bytes(header[10:12], "little")
    expected = header_len + records * record_len
    size = dbf.stat().st_size
    if size < expected:
        msg = f"{dbf.name} is truncated: {size:,} bytes, its header describes {expected:,}"
        raise InvalidInputError(msg)
    shapes = (shx.stat().st_size - 100) // 8
    if shapes != records:
        msg = (
            f"{shp.name}: the .dbf holds {records:,} records but the .shx indexes {shapes:,} "
            "shapes; the files do not belong together"
        )
        raise InvalidInputError(msg)


def _dbf_text_sample(dbf: Path) -> bytes:
    """Up to 1 MiB of the DBF's records (the header's field names are ASCII by rule)."""
    with dbf.open("rb") as f:
        header = f.read(32)
        if len(header) < 32:
            return b""
        header_len = int.from_bytes(header[8:10], "little")
        f.seek(header_len)
        return f.read(_SAMPLE)


def _bad_offset(sample: bytes, codec: str) -> int | None:
    """Where ``sample`` stops decoding as ``codec`` (a character cut at the end is fine)."""
    try:
        sample.decode(codec)
    except UnicodeDecodeError as exc:
        return None if exc.start >= len(sample) - 4 and len(sample) == _SAMPLE else exc.start
    return None


def _guess(sample: bytes) -> str | None:
    for codec in ("utf-8", "gb18030"):
        if _bad_offset(sample, codec) is None:
            return "UTF-8" if codec == "utf-8" else "GB18030"
    return None


def _codec(name: str) -> str | None:
    """Python's codec for a ``.cpg`` / ``--encoding`` value, None when Python lacks it."""
    text = name.strip().upper().replace("ANSI ", "").replace("CP", "")
    if text.isdigit():
        text = {"65001": "utf-8", "936": "gbk", "54936": "gb18030"}.get(text, f"cp{text}")
    try:
        return codecs.lookup(text).name
    except LookupError:
        return None
