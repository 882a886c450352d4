"""A corpus of bad rasters for the raster ingest, built in code at test time.

Nothing binary is committed: :func:`write_corpus` writes every case into its own
sub-folder of an empty directory, deterministically (rasterio, numpy and plain bytes; no
network, no files from elsewhere), and returns one :class:`BadRaster` per case. A case's
``path`` is one scene: a file, or a folder whose raster files are the bands of one scene.

``expect`` is a lower-case fragment that the refusal message must contain:

=======================  =================  ================================================
case                     expect             how it is made
=======================  =================  ================================================
empty_file               empty              scene.tif of 0 bytes
text_as_tif              plain text         UTF-8 prose named notes.tif
zip_as_tif               zip archive        a zip holding a valid GeoTIFF, named scene.tif
png_no_georef            not georeferenced  16 x 16 grey PNG from raw bytes, no world file
tif_no_crs               no crs             GeoTIFF with a north-up geotransform, no CRS
engineering_crs          unknown crs        GeoTIFF in a LOCAL_CS site grid (no authority)
unknown_projection       unknown crs        custom WKT with a made-up projection method
truncated_tif            truncated          first half of a 512 x 512 tiled DEFLATE GeoTIFF
corrupt_tile             corrupt            0xA5 over the middle of tile (1, 0) of four
corrupt_tile_among_many  corrupt            the same in tile (0, 1) of 1,024 16 x 16 tiles
huge_declared            too large          10^6 x 10^6 sparse tiled BigTIFF of 47 KB (bomb)
too_many_bands           bands              2,000 bands of 1 x 1 pixel
rotated                  rotated            geotransform with rotation and shear terms
zero_pixel_size          pixel size         geotransform with pixel width and height 0
nan_pixel_size           pixel size         geotransform with a NaN pixel width
outside_area_of_use      outside            EPSG:4326 with longitudes 500..600
nodata_out_of_range      nodata             uint8, GDAL_NODATA tag patched to -9999 (**)
nodata_fractional        nodata             uint8 with nodata 0.5
vrt_file                 vrt                a .vrt whose source is /etc/passwd
folder_mixed_crs         crs                folder: B01 in EPSG:32649, B02 in EPSG:4326
folder_mixed_nodata      nodata             folder: B01 nodata 0, B02 nodata 255
folder_no_rasters        no raster          folder with only a .txt and a .md5
empty_folder             no raster          an empty folder
truncated_jp2            truncated          first half of a four-tile JPEG 2000 (*)
=======================  =================  ================================================

(*) only when the rasterio wheel has the JP2OpenJPEG driver; otherwise it is left out.
(**) rasterio reports no nodata at all for it (``nodatavals`` hides values outside the
data type), while GDAL reads -9999 and copies it into any GeoTIFF or COG made from it.

Messages that would satisfy the table, for example: "notes.tif is not a GeoTIFF (it is
plain text)", "scene.tif is not a GeoTIFF (it is a zip archive)", "scene.tif has a
geotransform but no CRS", "unknown CRS 'site grid': it cannot be transformed to lon/lat",
"scene.tif is truncated or corrupted: ...", "VRT files are not accepted".

Run ``python tests/badrasters.py`` to build the corpus into a temporary directory and
print what rasterio makes of each case.
"""

from __future__ import annotations

import math
import struct
import sys
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.drivers import raster_driver_extensions
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine

WGS84 = "EPSG:4326"
UTM49 = "EPSG:32649"  # WGS 84 / UTM zone 49N, which holds 112E
STEP = 0.001  # degrees, about 100 m
NORTH_UP = Affine(STEP, 0.0, 112.0, 0.0, -STEP, 23.0)
"""A north-up grid with its top-left corner at 112E 23N (Guangdong)."""
SITE_GRID = Affine(1.0, 0.0, 1000.0, 0.0, -1.0, 2000.0)
"""Metres on a local grid (its origin is not 0: an origin of 0 is valid, but not the point)."""
HAS_JP2 = "JP2OpenJPEG" in raster_driver_extensions().values()

LOCAL_CS = (
    'LOCAL_CS["site grid",LOCAL_DATUM["site datum",0],UNIT["metre",1],'
    'AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
)
MYSTERY_WKT = (
    'PROJCS["mystery grid",GEOGCS["mystery",DATUM["D_mystery",SPHEROID["mystery",6378000,300]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
    'PROJECTION["Mystery_Projection"],PARAMETER["foo",1],UNIT["metre",1]]'
)
VRT = """<VRTDataset rasterXSize="16" rasterYSize="16">
  <SRS>EPSG:4326</SRS>
  <GeoTransform>112.0, 0.001, 0.0, 23.0, 0.0, -0.001</GeoTransform>
  <VRTRasterBand dataType="Byte" band="1">
    <SimpleSource>
      <SourceFilename relativeToVRT="0">/etc/passwd</SourceFilename>
      <SourceBand>1</SourceBand>
    </SimpleSource>
  </VRTRasterBand>
</VRTDataset>
"""
GDAL_NODATA = 42113  # the TIFF tag GDAL keeps the nodata value in (ASCII)
ZIP_TIME = (2024, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class BadRaster:
    """One bad scene: its name, the path to ingest and a fragment the refusal must say."""

    name: str
    path: Path
    expect: str


# ------------------------------------------------------------------------------ helpers


def pattern(height: int, width: int, dtype: str = "uint8") -> np.ndarray:
    """Deterministic, compressible pixels (diagonal bands with a little texture)."""
    y, x = np.mgrid[0:height, 0:width]
    return ((x + 2 * y + (x * y) % 7) % 200 + 10).astype(dtype)


def geotiff(
    path: Path,
    data: np.ndarray | None = None,
    *,
    crs: str | None = WGS84,
    transform: Affine = NORTH_UP,
    **profile: Any,
) -> Path:
    """A GeoTIFF of ``data`` (bands, rows, columns; default one 16 x 16 band)."""
    pixels = pattern(16, 16)[np.newaxis] if data is None else data
    count, height, width = pixels.shape
    options: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": str(pixels.dtype),
        "crs": crs,
        "transform": transform,
        **profile,
    }
    with rasterio.open(path, "w", **options) as dst:
        dst.write(pixels)
    return path


def tiled(path: Path, size: int, block: int) -> Path:
    """A ``size`` x ``size`` GeoTIFF in ``block`` x ``block`` DEFLATE tiles."""
    return geotiff(
        path,
        pattern(size, size)[np.newaxis],
        tiled=True,
        blockxsize=block,
        blockysize=block,
        compress="deflate",
    )


def tile_span(path: Path, row: int, col: int) -> tuple[int, int]:
    """Byte offset and length of one tile of band 1, as GDAL's TIFF domain reports them."""
    with rasterio.open(path) as src:
        offset = src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1)
        length = src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1)
    return int(offset), int(length)


def damage_tile(path: Path, row: int, col: int) -> Path:
    """Overwrite the middle quarter (64 bytes at most) of one compressed tile with 0xA5;
    the TIFF header and the other tiles stay valid."""
    offset, length = tile_span(path, row, col)
    if length < 64:
        msg = f"tile ({row}, {col}) of {path} is only {length} bytes; nothing to damage"
        raise RuntimeError(msg)
    data = bytearray(path.read_bytes())
    span = min(64, length // 4)
    start = offset + (length - span) // 2
    data[start : start + span] = b"\xa5" * span
    path.write_bytes(bytes(data))
    return path


def patch_ascii_tag(path: Path, tag: int, value: str) -> Path:
    """Give an ASCII tag of a classic little-endian TIFF's first IFD a new value.

    The new string is appended to the file and the IFD entry pointed at it, so the value
    may be longer than the old one. GDAL never sees it before it is read back.
    """
    data = bytearray(path.read_bytes())
    if data[:4] != b"II*\x00":
        msg = f"{path} is not a classic little-endian TIFF"
        raise RuntimeError(msg)
    (ifd,) = struct.unpack_from("<I", data, 4)
    (entries,) = struct.unpack_from("<H", data, ifd)
    for i in range(entries):
        entry = ifd + 2 + 12 * i
        found, kind = struct.unpack_from("<HH", data, entry)
        if found == tag:
            if kind != 2:  # ASCII
                msg = f"tag {tag} of {path} is of type {kind}, not ASCII"
                raise RuntimeError(msg)
            encoded = value.encode("ascii") + b"\x00"
            if len(data) % 2:  # TIFF values start on a word boundary
                data += b"\x00"
            struct.pack_into("<II", data, entry + 4, len(encoded), len(data))
            data += encoded
            path.write_bytes(bytes(data))
            return path
    msg = f"{path} has no tag {tag}"
    raise RuntimeError(msg)


def png_bytes(pixels: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG of ``pixels`` (rows, columns), written by hand."""
    height, width = pixels.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"".join(b"\x00" + row.astype(np.uint8).tobytes() for row in pixels)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------------- cases
# Each builder writes into an empty folder of its own and returns the scene to ingest.


def b_empty_file(d: Path) -> Path:
    path = d / "scene.tif"
    path.write_bytes(b"")
    return path


def b_text_as_tif(d: Path) -> Path:
    path = d / "notes.tif"
    path.write_text(
        "Field notes, 2024-05-03.\nThe orthophoto will be delivered next week.\n" * 20,
        encoding="utf-8",
    )
    return path


def b_zip_as_tif(d: Path) -> Path:
    inner = geotiff(d / "inner.tif")
    path = d / "scene.tif"
    with zipfile.ZipFile(path, "w") as archive:
        member = zipfile.ZipInfo("scene.tif", date_time=ZIP_TIME)
        member.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(member, inner.read_bytes())
    inner.unlink()
    return path


def b_png_no_georef(d: Path) -> Path:
    path = d / "photo.png"
    path.write_bytes(png_bytes(pattern(16, 16)))
    return path


def b_tif_no_crs(d: Path) -> Path:
    return geotiff(d / "scene.tif", crs=None)


def b_engineering_crs(d: Path) -> Path:
    return geotiff(d / "scene.tif", crs=LOCAL_CS, transform=SITE_GRID)


def b_unknown_projection(d: Path) -> Path:
    return geotiff(d / "scene.tif", crs=MYSTERY_WKT, transform=SITE_GRID)


def b_truncated_tif(d: Path) -> Path:
    # GDAL writes the IFD before the tiles, so the half that is left still opens.
    path = tiled(d / "scene.tif", 512, 256)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def b_corrupt_tile(d: Path) -> Path:
    return damage_tile(tiled(d / "scene.tif", 512, 256), row=1, col=0)


def b_corrupt_tile_among_many(d: Path) -> Path:
    # One bad tile of 1,024: a reader that checks only a sample of blocks may miss it.
    return damage_tile(tiled(d / "scene.tif", 512, 16), row=0, col=1)


def b_huge_declared(d: Path) -> Path:
    # Only the tile index is written (sparse_ok): 10^12 pixels declared in 47 KB.
    path = d / "scene.tif"
    side = 1_000_000
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=side,
        height=side,
        count=1,
        dtype="uint8",
        crs=WGS84,
        transform=Affine(100 / side, 0, 0.0, 0, -100 / side, 50.0),
        tiled=True,
        blockxsize=16384,
        blockysize=16384,
        compress="deflate",
        sparse_ok=True,
        bigtiff="yes",
    ):
        pass
    return path


def b_too_many_bands(d: Path) -> Path:
    bands = np.arange(2000, dtype=np.uint16).reshape(2000, 1, 1)
    return geotiff(d / "scene.tif", (bands % 256).astype("uint8"))


def b_rotated(d: Path) -> Path:
    return geotiff(d / "scene.tif", transform=Affine(STEP, 0.0005, 112.0, 0.0002, -STEP, 23.0))


def b_zero_pixel_size(d: Path) -> Path:
    return geotiff(d / "scene.tif", transform=Affine(0.0, 0.0, 112.0, 0.0, 0.0, 23.0))


def b_nan_pixel_size(d: Path) -> Path:
    return geotiff(d / "scene.tif", transform=Affine(math.nan, 0.0, 112.0, 0.0, -STEP, 23.0))


def b_outside_area_of_use(d: Path) -> Path:
    return geotiff(d / "scene.tif", transform=Affine(6.25, 0.0, 500.0, 0.0, -6.25, 10.0))


def b_nodata_out_of_range(d: Path) -> Path:
    # rasterio refuses to write -9999 as uint8 nodata, so the tag is patched afterwards.
    path = geotiff(d / "scene.tif", nodata=123)
    return patch_ascii_tag(path, GDAL_NODATA, "-9999")


def b_nodata_fractional(d: Path) -> Path:
    # In range, so rasterio writes it, but no uint8 pixel can ever equal 0.5.
    return geotiff(d / "scene.tif", nodata=0.5)


def b_vrt_file(d: Path) -> Path:
    path = d / "scene.vrt"
    path.write_text(VRT, encoding="utf-8")
    return path


def b_folder_mixed_crs(d: Path) -> Path:
    scene = d / "scene"
    scene.mkdir()
    # The same ground as B02 (112.0E 23.0N is x 602485, y 2543869 in UTM zone 49N).
    geotiff(scene / "B01.tif", crs=UTM49, transform=Affine(100.0, 0, 602500, 0, -100.0, 2543800))
    geotiff(scene / "B02.tif")
    return scene


def b_folder_mixed_nodata(d: Path) -> Path:
    scene = d / "scene"
    scene.mkdir()
    geotiff(scene / "B01.tif", nodata=0)
    geotiff(scene / "B02.tif", nodata=255)
    return scene


def b_folder_no_rasters(d: Path) -> Path:
    scene = d / "scene"
    scene.mkdir()
    (scene / "readme.txt").write_text("Band files were not delivered.\n", encoding="utf-8")
    (scene / "checksums.md5").write_text(
        "d41d8cd98f00b204e9800998ecf8427e  B01.tif\n", encoding="utf-8"
    )
    return scene


def b_empty_folder(d: Path) -> Path:
    scene = d / "scene"
    scene.mkdir()
    return scene


def b_truncated_jp2(d: Path) -> Path:
    path = d / "scene.jp2"
    with rasterio.open(
        path,
        "w",
        driver="JP2OpenJPEG",
        width=256,
        height=256,
        count=1,
        dtype="uint8",
        crs=WGS84,
        transform=NORTH_UP,
        quality=50,
        blockxsize=128,
        blockysize=128,
    ) as dst:
        dst.write(pattern(256, 256), 1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty_file": (b_empty_file, "empty"),
    "text_as_tif": (b_text_as_tif, "plain text"),
    "zip_as_tif": (b_zip_as_tif, "zip archive"),
    "png_no_georef": (b_png_no_georef, "not georeferenced"),
    "tif_no_crs": (b_tif_no_crs, "no crs"),
    "engineering_crs": (b_engineering_crs, "unknown crs"),
    "unknown_projection": (b_unknown_projection, "unknown crs"),
    "truncated_tif": (b_truncated_tif, "truncated"),
    "corrupt_tile": (b_corrupt_tile, "corrupt"),
    "corrupt_tile_among_many": (b_corrupt_tile_among_many, "corrupt"),
    "huge_declared": (b_huge_declared, "too large"),
    "too_many_bands": (b_too_many_bands, "bands"),
    "rotated": (b_rotated, "rotated"),
    "zero_pixel_size": (b_zero_pixel_size, "pixel size"),
    "nan_pixel_size": (b_nan_pixel_size, "pixel size"),
    "outside_area_of_use": (b_outside_area_of_use, "outside"),
    "nodata_out_of_range": (b_nodata_out_of_range, "nodata"),
    "nodata_fractional": (b_nodata_fractional, "nodata"),
    "vrt_file": (b_vrt_file, "vrt"),
    "folder_mixed_crs": (b_folder_mixed_crs, "crs"),
    "folder_mixed_nodata": (b_folder_mixed_nodata, "nodata"),
    "folder_no_rasters": (b_folder_no_rasters, "no raster"),
    "empty_folder": (b_empty_folder, "no raster"),
    "truncated_jp2": (b_truncated_jp2, "truncated"),
}
"""Every case: its builder and the fragment the refusal must contain."""
NEEDS_JP2 = frozenset({"truncated_jp2"})


def available(name: str) -> bool:
    """Whether this machine can build the case (JPEG 2000 needs the JP2OpenJPEG driver)."""
    return HAS_JP2 or name not in NEEDS_JP2


def write_corpus(folder: Path) -> list[BadRaster]:
    """Build every case this machine can build into ``folder/<name>/``.

    Args:
        folder: an existing directory; each case gets a new sub-folder of its name.

    Returns:
        The cases in the order of :data:`CASES`.
    """
    out = []
    for name, (build, expect) in CASES.items():
        if not available(name):
            continue
        home = folder / name
        home.mkdir()
        out.append(BadRaster(name=name, path=build(home), expect=expect))
    return out


def _describe(path: Path) -> str:
    """What rasterio makes of a file: where it fails, or what it reads."""
    if path.is_dir():
        return f"folder of {sorted(p.name for p in path.iterdir())}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                head = (
                    f"{src.driver} {src.width}x{src.height}x{src.count} {src.dtypes[0]} "
                    f"crs={src.crs.to_string()[:40] if src.crs else None} "
                    f"transform={tuple(round(v, 4) for v in src.transform[:6])} "
                    f"nodata={src.nodata}"
                )
                if src.width * src.height * src.count > 10_000_000:
                    return head + " (too large to read)"
                src.read()
    except Exception as exc:  # noqa: BLE001 - a report of whatever went wrong
        return f"refused: {type(exc).__name__}: {str(exc)[:120]}"
    return head + " (reads)"


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="badrasters-") as tmp:
        for case in write_corpus(Path(tmp)):
            size = case.path.stat().st_size if case.path.is_file() else 0
            sys.stdout.write(f"{case.name:25} {size:>8} B  {_describe(case.path)}\n")
