"""Properties of uploaded archives (hypothesis): whatever a zip holds, extracting it either
writes only inside its folder or refuses it with InvalidInputError and leaves the folder
empty; it never raises anything else.

The zips are built byte for byte by :mod:`zipfile` from generated members: names with
``..``, absolute paths, drive letters, back-slashes, empty and dot names, names too long
for the file system, the same name as a file and as a folder, symbolic links, folders,
and contents; some archives are then damaged (bytes flipped or cut).
"""

from __future__ import annotations

import io
import stat
import tempfile
import warnings
import zipfile
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from spatial.errors import InvalidInputError
from spatial.ingest.files import extract
from spatial.settings import IngestSettings

LIMITS = IngestSettings(max_archive_members=20, max_uncompressed_mb=1)

_PART = st.one_of(
    st.sampled_from(
        [
            "..",
            ".",
            "",
            "a",
            "b.shp",
            "C:",
            "\\..\\x",
            "x" * 300,
            "宗地.dbf",
            "a\\b",
            " ",
            "~",
            "$HOME",
            "%2e%2e",
        ]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
)
NAMES = st.lists(_PART, min_size=1, max_size=4).map("/".join) | st.sampled_from(
    ["/etc/passwd", "../../evil.shp", "a/../../b", "a/", "a", "a/b"]
)
MEMBER = st.tuples(
    NAMES,
    st.sampled_from(["file", "dir", "link"]),
    st.binary(max_size=64) | st.none(),  # None: 2 MB of zeros, past the limit of 1 MiB
    st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
)


def _zip(members: list[tuple[str, str, bytes | None, int]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as zf:
        warnings.simplefilter("ignore")  # a name twice is one of the cases
        for name, kind, data, method in members:
            # (zipfile cannot write an empty name: "." stands for the root instead.)
            info = zipfile.ZipInfo((name or ".") + ("/" if kind == "dir" else ""))
            info.compress_type = method
            if kind == "link":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            content = b"\0" * 2_000_000 if data is None else data
            zf.writestr(info, b"" if kind == "dir" else content)
    return buffer.getvalue()


def _damaged(data: bytes, how: str, at: float) -> bytes:
    cut = int(len(data) * at)
    if how == "cut":
        return data[:cut]
    if how == "flip" and data:
        i = min(cut, len(data) - 1)
        return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
    return data


@settings(derandomize=True, max_examples=300, deadline=None, database=None)
@given(
    members=st.lists(MEMBER, min_size=1, max_size=6),
    how=st.sampled_from(["none", "none", "cut", "flip"]),
    at=st.floats(0, 1),
)
@example(members=[("x" * 300, "file", b"long", zipfile.ZIP_STORED)], how="none", at=0.0)
@example(members=[("a", "file", b"f", 0), ("a", "dir", b"", 0)], how="none", at=0.0)
@example(members=[("a", "dir", b"", 0), ("a", "file", b"f", 0)], how="none", at=0.0)
@example(members=[(".", "file", b"dot", zipfile.ZIP_STORED)], how="none", at=0.0)
@example(members=[("a", "file", b"x" * 64, zipfile.ZIP_DEFLATED)], how="flip", at=0.1)
@example(members=[("宗地.dbf", "file", b"x", zipfile.ZIP_STORED)], how="flip", at=0.735)
def test_an_archive_extracts_inside_its_folder_or_is_refused(
    members: list[tuple[str, str, bytes | None, int]], how: str, at: float
) -> None:
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        archive, dest = root / "upload.zip", root / "out"
        archive.write_bytes(_damaged(_zip(members), how, at))
        dest.mkdir()
        try:
            extract(archive, dest, LIMITS)
        except InvalidInputError as exc:
            assert "upload.zip" in str(exc)  # the message names the file
            assert list(dest.iterdir()) == []  # nothing left of a refused archive
            return
        written = [p for p in root.rglob("*") if p not in (archive, dest)]
        assert all(p.resolve().is_relative_to(dest.resolve()) for p in written)
        assert not any(p.is_symlink() for p in written)
        assert sum(p.stat().st_size for p in written if p.is_file()) <= 2**20
