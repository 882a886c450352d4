"""A corpus of bad vector inputs for the ingest pipeline, built in code at test time.

Nothing binary is committed: each case's ``build`` writes its file(s) into an empty
directory and returns the path to hand to ingest. Good base layers are written with
pyogrio first (ten four-sided parcels near 112.0E 22.9N, CGCS2000) and the broken ones are
derived from them, mostly by byte surgery.

Two cases are hostile to any reader and must only be opened under a time and memory guard:
``zip_bomb`` (one member inflating to more than 2 GiB) and ``kml_billion_laughs``.

Run ``python tests/badinputs.py`` to build every case into a temporary directory and list
what was built.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from shapely.geometry import Point, Polygon, mapping

WGS = "EPSG:4490"  # CGCS2000 geographic
GK = "EPSG:4546"  # CGCS2000 / 3-degree Gauss-Kruger CM 111E (no zone prefix)
GK_ZONE38 = "EPSG:4526"  # CGCS2000 / 3-degree Gauss-Kruger zone 38 (x carries a 38 prefix)
ORIGIN = (112.0, 22.9)
STEP = 0.001  # degrees, about 100 m
N_PARCELS = 10
BOMB_SIZE = (2 << 30) + (32 << 20)  # what the zip bomb's member inflates to, > 2 GiB


@dataclass(frozen=True)
class BadInput:
    """One bad input: how to build it and what ingest is expected to say."""

    name: str
    build: Callable[[Path], Path]
    options: dict[str, object] = field(default_factory=dict)
    expect: str = ""
    why: str = ""


# --------------------------------------------------------------------------- good bases


def parcels(n: int = N_PARCELS) -> gpd.GeoDataFrame:
    """``n`` valid, slightly skewed four-sided parcels in EPSG:4490, five to a row."""
    geoms = []
    for i in range(n):
        x0, y0 = ORIGIN[0] + (i % 5) * STEP, ORIGIN[1] + (i // 5) * STEP
        skew = 0.0001 * (i % 3)
        geoms.append(
            Polygon(
                [(x0, y0), (x0 + STEP, y0), (x0 + STEP + skew, y0 + STEP), (x0 + skew, y0 + STEP)]
            )
        )
    return gpd.GeoDataFrame(
        {
            "dkbm": [f"44128310100100{i + 1:05d}" for i in range(n)],
            "dkmc": [f"东风村{i + 1}号地（水田）" for i in range(n)],
            "scmj": [round(1.5 + 0.25 * i, 2) for i in range(n)],
        },
        geometry=geoms,
        crs=WGS,
    )


def parcels_gk(n: int = N_PARCELS) -> gpd.GeoDataFrame:
    """The same parcels in Gauss-Kruger metres (EPSG:4546, x about 600 000, y about 2 533 000)."""
    return parcels(n).to_crs(GK)


def write_shp(d: Path, frame: gpd.GeoDataFrame | None = None, name: str = "parcels") -> Path:
    """A shapefile (.shp .shx .dbf .prj .cpg) of ``frame`` (default: the parcels)."""
    path = d / f"{name}.shp"
    pyogrio.write_dataframe(parcels() if frame is None else frame, path, encoding="UTF-8")
    return path


def write_gpkg(d: Path, frame: gpd.GeoDataFrame | None = None, layer: str = "parcels") -> Path:
    """A GeoPackage with one layer (default: the parcels)."""
    path = d / "parcels.gpkg"
    pyogrio.write_dataframe(parcels() if frame is None else frame, path, layer=layer)
    return path


def write_wkb_gpkg(d: Path, replace: dict[int, bytes]) -> Path:
    """The parcels as a GeoPackage, with the WKB of some rows replaced verbatim.

    Goes through ``pyogrio.raw.write`` so shapely never sees (and never rejects) the bytes.
    """
    frame = parcels()
    wkb = [replace.get(i, g) for i, g in enumerate(shapely.to_wkb(frame.geometry.array))]
    path = d / "parcels.gpkg"
    pyogrio.raw.write(
        path,
        geometry=np.array(wkb, dtype=object),
        field_data=[frame[c].to_numpy() for c in ("dkbm", "dkmc", "scmj")],
        fields=["dkbm", "dkmc", "scmj"],
        crs=WGS,
        driver="GPKG",
        geometry_type="Polygon",
        layer="parcels",
    )
    return path


def polygon_wkb(points: list[tuple[float, float]]) -> bytes:
    """Little-endian WKB of a one-ring polygon with exactly these points (no checks)."""
    head = struct.pack("<BIII", 1, 3, 1, len(points))
    return head + b"".join(struct.pack("<dd", x, y) for x, y in points)


def feature_collection(
    geometries: Sequence[Mapping[str, Any] | None], crs: str | None = None
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection with the parcels' attributes on the given geometries."""
    frame = parcels(len(geometries))
    features = [
        {
            "type": "Feature",
            "properties": {"dkbm": row.dkbm, "dkmc": row.dkmc, "scmj": row.scmj},
            "geometry": geom,
        }
        for row, geom in zip(frame.itertuples(), geometries, strict=True)
    ]
    out: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if crs:
        out["crs"] = {"type": "name", "properties": {"name": crs}}
    return out


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def parcel_geojson() -> list[dict[str, Any] | None]:
    return [dict(mapping(g)) for g in parcels().geometry]


def member(name: str) -> zipfile.ZipInfo:
    """A zip member with a fixed date (so archives are byte-for-byte reproducible)."""
    info = zipfile.ZipInfo(name, date_time=(2024, 5, 1, 12, 0, 0))
    info.external_attr = 0o644 << 16
    return info


def zip_shapefile(zf: zipfile.ZipFile, d: Path) -> None:
    """Add a good parcels shapefile (all sidecars) to an open zip, compressed as ``zf`` is."""
    src = d / "_src"
    src.mkdir()
    write_shp(src)
    for part in sorted(src.iterdir()):
        zf.writestr(member(part.name), part.read_bytes(), compress_type=zf.compression)
    shutil.rmtree(src)


def garbage(n: int, seed: bytes = b"badinputs") -> bytes:
    """``n`` deterministic pseudo-random bytes."""
    out = b""
    while len(out) < n:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return out[:n]


def truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def xy_swapped(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = frame.copy()
    out.geometry = shapely.transform(frame.geometry.array, lambda c: c[:, ::-1])
    return out


# --------------------------------------------------------------------------- shapefile


def b_shp_truncated(d: Path) -> Path:
    shp = write_shp(d)
    truncate(shp, 100 + (shp.stat().st_size - 100) // 2 + 7)  # mid-record, off any boundary
    return shp


def b_dbf_truncated(d: Path) -> Path:
    shp = write_shp(d)
    dbf = shp.with_suffix(".dbf")
    header_len, record_len = struct.unpack("<HH", dbf.read_bytes()[8:12])
    truncate(dbf, header_len + record_len * 4 + record_len // 2)  # 4.5 of 10 records
    return shp


def b_shp_header_garbage(d: Path) -> Path:
    shp = write_shp(d)
    shp.write_bytes(garbage(100) + shp.read_bytes()[100:])
    return shp


def b_shx_missing(d: Path) -> Path:
    shp = write_shp(d)
    shp.with_suffix(".shx").unlink()
    return shp


def b_dbf_missing(d: Path) -> Path:
    shp = write_shp(d)
    shp.with_suffix(".dbf").unlink()
    return shp


def b_prj_garbage(d: Path) -> Path:
    shp = write_shp(d)
    shp.with_suffix(".prj").write_text("Lorem ipsum dolor sit amet, 坐标系：不知道\n", "utf-8")
    return shp


def b_prj_missing(d: Path) -> Path:
    shp = write_shp(d)
    shp.with_suffix(".prj").unlink()
    return shp


def b_cpg_utf8_attrs_gbk(d: Path) -> Path:
    path = d / "parcels.shp"
    pyogrio.write_dataframe(parcels(), path, encoding="GBK")
    path.with_suffix(".cpg").write_text("UTF-8", "ascii")
    return path


def b_gbk_no_cpg(d: Path) -> Path:
    path = d / "parcels.shp"
    pyogrio.write_dataframe(parcels(), path, encoding="GBK")
    path.with_suffix(".cpg").unlink()  # LDID byte 29 of the .dbf is 0 too: no hint at all
    return path


def b_shp_empty(d: Path) -> Path:
    path = d / "parcels.shp"
    path.write_bytes(b"")
    return path


def b_shp_plain_text(d: Path) -> Path:
    path = d / "parcels.shp"
    path.write_text("地块清单\ndkbm,dkmc\n4412831010010000001,东风村1号地\n", "utf-8")
    return path


def b_shx_offsets_past_end(d: Path) -> Path:
    shp = write_shp(d)
    shx = shp.with_suffix(".shx")
    data = bytearray(shx.read_bytes())
    data[100 + 8 * 2 : 100 + 8 * 2 + 4] = struct.pack(">i", 0x3FFFFFF0)  # record 3, in words
    shx.write_bytes(bytes(data))
    return shp


def b_dbf_from_other_file(d: Path) -> Path:
    shp = write_shp(d)
    other = d / "other"
    other.mkdir()
    write_shp(other, parcels(6))
    shutil.move(other / "parcels.dbf", shp.with_suffix(".dbf"))
    shutil.rmtree(other)
    return shp


def b_shp_unclosed_ring(d: Path) -> Path:
    shp = write_shp(d)
    data = bytearray(shp.read_bytes())
    # first record: 8 header + 4 type + 32 bbox + 4 parts + 4 points + 4 part index
    n_points = struct.unpack("<i", data[100 + 8 + 36 + 4 : 100 + 8 + 36 + 8])[0]
    last = 100 + 8 + 44 + 4 + 16 * (n_points - 1)
    x = struct.unpack("<d", data[last : last + 8])[0]
    data[last : last + 8] = struct.pack("<d", x + STEP / 2)
    shp.write_bytes(bytes(data))
    return shp


def b_duplicate_key(d: Path) -> Path:
    frame = parcels()
    frame.loc[[3, 7], "dkbm"] = frame.loc[2, "dkbm"]
    return write_shp(d, frame)


def b_null_key(d: Path) -> Path:
    frame = parcels()
    frame["dkbm"] = frame["dkbm"].astype(object)
    frame.loc[[1, 6], "dkbm"] = None
    return write_gpkg(d, frame)


# --------------------------------------------------------------------------- coordinates


def b_latlon_swapped_gpkg(d: Path) -> Path:
    return write_gpkg(d, xy_swapped(parcels()))  # x = 22.9, y = 112.0, tagged EPSG:4490


def b_latlon_swapped_geojson(d: Path) -> Path:
    geoms = [dict(mapping(g)) for g in xy_swapped(parcels()).geometry]
    crs84 = "urn:ogc:def:crs:OGC:1.3:CRS84"
    return write_json(d / "parcels.geojson", feature_collection(geoms, crs84))


def b_gk_metres_tagged_4326(d: Path) -> Path:
    return write_gpkg(d, parcels_gk().set_crs("EPSG:4326", allow_override=True))


def b_gk_metres_tagged_4490(d: Path) -> Path:
    return write_shp(d, parcels_gk().set_crs(WGS, allow_override=True))


def b_gk_no_zone_prefix(d: Path) -> Path:
    frame = parcels().to_crs(GK_ZONE38)  # x about 38 295 000
    frame.geometry = shapely.transform(frame.geometry.array, lambda c: c - [38_000_000, 0])
    return write_gpkg(d, frame)


def b_nan_coordinates(d: Path) -> Path:
    x, y = ORIGIN
    ring = [(x, y), (float("nan"), y), (x + STEP, y + STEP), (x, y + STEP), (x, y)]
    return write_wkb_gpkg(d, {4: polygon_wkb(ring)})


def b_inf_coordinates(d: Path) -> Path:
    x, y = ORIGIN
    ring = [(x, y), (float("inf"), y), (x + STEP, float("-inf")), (x, y + STEP), (x, y)]
    return write_wkb_gpkg(d, {4: polygon_wkb(ring)})


def b_bowtie_polygon(d: Path) -> Path:
    x, y = ORIGIN[0], ORIGIN[1] + 2 * STEP
    ring = [(x, y), (x + STEP, y + STEP), (x + STEP, y), (x, y + STEP), (x, y)]
    return write_wkb_gpkg(d, {5: polygon_wkb(ring)})


def b_unclosed_ring_gpkg(d: Path) -> Path:
    x, y = ORIGIN
    ring = [(x, y), (x + STEP, y), (x + STEP, y + STEP), (x, y + STEP)]  # last != first
    return write_wkb_gpkg(d, {2: polygon_wkb(ring)})


def b_too_few_points_gpkg(d: Path) -> Path:
    x, y = ORIGIN
    return write_wkb_gpkg(d, {2: polygon_wkb([(x, y), (x + STEP, y), (x, y)])})


def b_empty_geometry(d: Path) -> Path:
    frame = parcels()
    frame.loc[[0, 9], "geometry"] = Polygon()
    return write_gpkg(d, frame)


# --------------------------------------------------------------------------- GeoPackage


def b_layer_not_found(d: Path) -> Path:
    path = write_gpkg(d)
    roads = gpd.GeoDataFrame(
        {"name": ["机耕路"]}, geometry=[shapely.LineString([ORIGIN, (112.005, 22.9)])], crs=WGS
    )
    pyogrio.write_dataframe(roads, path, layer="roads", append=True)
    return path


def b_png_as_gpkg(d: Path) -> Path:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )
    path = d / "parcels.gpkg"
    path.write_bytes(png)
    return path


def b_gpkg_truncated(d: Path) -> Path:
    path = write_gpkg(d)
    truncate(path, path.stat().st_size // 3)
    return path


# --------------------------------------------------------------------------- GeoJSON / text


def b_geojson_empty(d: Path) -> Path:
    path = d / "parcels.geojson"
    path.write_bytes(b"")
    return path


def b_geojson_zero_features(d: Path) -> Path:
    return write_json(d / "parcels.geojson", {"type": "FeatureCollection", "features": []})


def b_geojson_truncated(d: Path) -> Path:
    path = write_json(d / "parcels.geojson", feature_collection(parcel_geojson()))
    truncate(path, path.stat().st_size // 2)
    return path


def b_geojson_null_geometry(d: Path) -> Path:
    geoms = parcel_geojson()
    geoms[3] = None
    return write_json(d / "parcels.geojson", feature_collection(geoms))


def b_geojson_mixed_types(d: Path) -> Path:
    geoms = parcel_geojson()
    for i in (2, 5, 8):
        geoms[i] = dict(mapping(Point(ORIGIN[0] + i * STEP, ORIGIN[1])))
    return write_json(d / "parcels.geojson", feature_collection(geoms))


def b_geojson_unclosed_ring(d: Path) -> Path:
    geoms = parcel_geojson()
    x, y = ORIGIN
    geoms[1] = {"type": "Polygon", "coordinates": [[[x, y], [x + STEP, y], [x, y + STEP]]]}
    return write_json(d / "parcels.geojson", feature_collection(geoms))


def b_geojson_bogus_crs(d: Path) -> Path:
    data = feature_collection(parcel_geojson(), "urn:ogc:def:crs:EPSG::999999")
    return write_json(d / "parcels.geojson", data)


def b_geojson_string_coordinates(d: Path) -> Path:
    geoms = parcel_geojson()
    x, y = ORIGIN
    ring = [[str(x), str(y)], [str(x + STEP), str(y)], [str(x), str(y + STEP)], [str(x), str(y)]]
    geoms[0] = {"type": "Polygon", "coordinates": [ring]}
    return write_json(d / "parcels.geojson", feature_collection(geoms))


def b_html_as_geojson(d: Path) -> Path:
    path = d / "parcels.geojson"
    path.write_text(
        "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
        "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
        "</body></html>\n",
        "utf-8",
    )
    return path


# --------------------------------------------------------------------------- CSV


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def b_csv_no_geometry(d: Path) -> Path:
    frame = parcels()
    rows = [[r.dkbm, r.dkmc, str(r.scmj)] for r in frame.itertuples()]
    return write_csv(d / "parcels.csv", ["dkbm", "dkmc", "scmj"], rows)


def b_csv_invalid_wkt(d: Path) -> Path:
    frame = parcels()
    rows = [[g.wkt, r.dkbm] for g, r in zip(frame.geometry, frame.itertuples(), strict=True)]
    rows[2][0] = "POLYGON ((112.0 22.9, 112.001 22.9, 112.001"  # cut short
    rows[5][0] = "POLYGON ((abc def, ghi jkl))"
    rows[7][0] = "地块边界见附图"
    return write_csv(d / "parcels.csv", ["WKT", "dkbm"], rows)


def b_csv_lonlat_text(d: Path) -> Path:
    rows = [
        ["112.0005", "22.9005", "4412831010010000001"],
        ["N/A", "N/A", "4412831010010000002"],
        ["东经112度", "北纬22.9度", "4412831010010000003"],
        ["", "", "4412831010010000004"],
    ]
    return write_csv(d / "points.csv", ["lon", "lat", "dkbm"], rows)


# --------------------------------------------------------------------------- zip archives


def _deflate_repeat(prefix: bytes, pad: bytes, times: int, suffix: bytes) -> tuple[bytes, int]:
    """Raw deflate of prefix + pad * times + suffix, compressing ``pad`` only once.

    After a full flush the compressor starts afresh, so the block for ``pad`` can simply be
    repeated. Returns the stream and its CRC-32.
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = comp.compress(prefix) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(pad) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.compress(suffix) + comp.flush(zlib.Z_FINISH)
    crc = zlib.crc32(prefix)
    for _ in range(times):
        crc = zlib.crc32(pad, crc)
    return head + block * times + tail, zlib.crc32(suffix, crc)


def b_zip_bomb(d: Path) -> Path:
    """One GeoJSON member padded with whitespace to more than 2 GiB; the zip is about 2 MB.

    Written by hand (zip64) so that building takes about a second, not a 2 GiB deflate.
    """
    name = b"parcels.geojson"
    prefix, suffix = b'{"type": "FeatureCollection", "features": [', b"]}\n"
    pad = b" " * (16 << 20)
    times = (BOMB_SIZE - len(prefix) - len(suffix)) // len(pad)
    data, crc = _deflate_repeat(prefix, pad, times, suffix)
    size = len(prefix) + len(pad) * times + len(suffix)
    extra = struct.pack("<HHQQ", 1, 16, size, len(data))
    common = struct.pack("<HHHHHIII", 45, 0, 8, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF)
    local = b"PK\x03\x04" + common + struct.pack("<HH", len(name), len(extra)) + name + extra
    central = (
        b"PK\x01\x02"
        + struct.pack("<H", 45)
        + common
        + struct.pack("<HHHHHII", len(name), len(extra), 0, 0, 0, 0, 0)
        + name
        + extra
    )
    cd_offset = len(local) + len(data)
    eocd64_offset = cd_offset + len(central)
    eocd64 = b"PK\x06\x06" + struct.pack(
        "<QHHIIQQQQ", 44, 45, 45, 0, 0, 1, 1, len(central), cd_offset
    )
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, eocd64_offset, 1)
    eocd = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 1, 1, len(central), cd_offset, 0)
    path = d / "parcels.zip"
    path.write_bytes(local + data + central + eocd64 + locator + eocd)
    return path


def b_zip_many_members(d: Path) -> Path:
    path = d / "parcels.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zip_shapefile(zf, d)
        for i in range(10_001):
            zf.writestr(member(f"photos/{i:05d}.txt"), b"x")
    return path


def b_zip_slip(d: Path) -> Path:
    path = d / "parcels.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zip_shapefile(zf, d)
        zf.writestr(member("../../evil.shp"), garbage(200))
    return path


def b_zip_absolute_member(d: Path) -> Path:
    path = d / "parcels.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zip_shapefile(zf, d)
        zf.writestr(member("/tmp/evil.txt"), b"pwned\n")
    return path


def b_zip_symlink_member(d: Path) -> Path:
    path = d / "parcels.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zip_shapefile(zf, d)
        link = member("passwd.prj")
        link.create_system = 3  # unix, so external_attr carries the mode
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, b"/etc/passwd")
    return path


def b_zip_truncated(d: Path) -> Path:
    path = d / "parcels.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zip_shapefile(zf, d)
    truncate(path, path.stat().st_size * 3 // 5)
    return path


def b_zip_no_vector(d: Path) -> Path:
    path = d / "parcels.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member("说明.txt"), "地块数据请见附件\n".encode())
        zf.writestr(member("photo.jpg"), b"\xff\xd8\xff\xe0" + garbage(500))
    return path


# --------------------------------------------------------------------------- KML


def _kml(doctype: str, name: str) -> str:
    x, y = ORIGIN
    ring = " ".join(f"{px},{py}" for px, py in [(x, y), (x + STEP, y), (x, y + STEP), (x, y)])
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}\n'
        '<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Placemark>'
        f"<name>{name}</name><Polygon><outerBoundaryIs><LinearRing><coordinates>{ring}"
        "</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark></Document></kml>\n"
    )


def b_kml_billion_laughs(d: Path) -> Path:
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    doctype = "<!DOCTYPE kml [\n" + "\n".join(entities) + "\n]>"
    path = d / "parcels.kml"
    path.write_text(_kml(doctype, "&lol9;"), "utf-8")
    return path


def b_kml_xxe(d: Path) -> Path:
    doctype = '<!DOCTYPE kml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    path = d / "parcels.kml"
    path.write_text(_kml(doctype, "&xxe;"), "utf-8")
    return path


# --------------------------------------------------------------------------- the corpus


ERRORS = "features have errors: "
EXPECT = {
    "shp_truncated": ERRORS + "5 null geometry",
    "dbf_truncated": r"parcels\.dbf is truncated",
    "shp_header_garbage": r"parcels\.shp is not a Shapefile",
    "shx_missing": r"incomplete, \.shx missing",
    "dbf_missing": r"incomplete, \.dbf missing",
    "prj_garbage": "declares no coordinate reference system",
    "prj_missing": "declares no coordinate reference system.*--crs",
    "cpg_utf8_attrs_gbk": "not valid UTF-8 as parcels.cpg declares.*--encoding gb18030",
    "shp_empty": r"is empty \(0 bytes\)",
    "shp_plain_text": r"is not a Shapefile",
    "shx_offsets_past_end": ERRORS + "1 null geometry",
    "dbf_from_other_file": "6 records but the .shx indexes 10 shapes",
    "shp_unclosed_ring": ERRORS + "1 unreadable geometry",
    "duplicate_key": r"3 duplicate key",
    "null_key": r"2 null key",
    "latlon_swapped_gpkg": "latitude and longitude are swapped",
    "latlon_swapped_geojson": "latitude and longitude are swapped",
    "gk_metres_tagged_4326": "look like projected metres, not degrees",
    "gk_metres_tagged_4490": "look like projected metres, not degrees",
    "gk_no_zone_prefix": "expects eastings with the zone prefix .* EPSG:4547",
    "nan_coordinates": ERRORS + "1 non finite",
    "inf_coordinates": ERRORS + "1 non finite",
    "bowtie_polygon": ERRORS + "1 invalid geometry",
    "unclosed_ring_gpkg": ERRORS + "1 unreadable geometry",
    "too_few_points_gpkg": ERRORS + "1 invalid geometry",
    "empty_geometry": ERRORS + "2 empty geometry",
    "layer_not_found": "has no layer 'nope'; its layers are: parcels, roads",
    "png_as_gpkg": r"is not a GeoPackage \(it is a PNG image\)",
    "gpkg_truncated": "GDAL cannot read parcels.gpkg: .*malformed",
    "geojson_empty": r"is empty \(0 bytes\)",
    "geojson_zero_features": "no features; nothing to load",
    "geojson_truncated": "GDAL cannot read parcels.geojson: .*Unterminated",
    "geojson_null_geometry": ERRORS + "1 null geometry",
    "geojson_mixed_types": ERRORS + "3 mixed type",
    "geojson_unclosed_ring": ERRORS + "1 unreadable geometry",
    "geojson_bogus_crs": "EPSG::999999', which is unknown",
    "geojson_string_coordinates": ERRORS + "1 null geometry",
    "html_as_geojson": "is not GeoJSON \\(it is an HTML page",
    "csv_no_geometry": "has no geometry column",
    "csv_invalid_wkt": ERRORS + "3 null geometry",
    "csv_lonlat_text": ERRORS + "3 null geometry",
    "zip_bomb": "MiB of contents; the limit is 2,048 MiB",
    "zip_many_members": "holds 10,006 entries; the limit is 5,000",
    "zip_slip": "'../../evil.shp' points outside the archive",
    "zip_absolute_member": "'/tmp/evil.txt' points outside the archive",
    "zip_symlink_member": "is a symbolic link; links are refused",
    "zip_truncated": "is not a readable zip archive",
    "zip_no_vector": "holds no vector dataset",
    "kml_billion_laughs": "declares a DOCTYPE or XML entities",
    "kml_xxe": "declares a DOCTYPE or XML entities",
}
"""What the ingest must say about each case (a regular expression)."""


def _case(build: Callable[[Path], Path], why: str, **options: object) -> BadInput:
    name = build.__name__.removeprefix("b_")
    return BadInput(name=name, build=build, options=options, expect=EXPECT[name], why=why)


CASES: tuple[BadInput, ...] = (
    # shapefile
    _case(b_shp_truncated, ".shp cut in the middle of the geometry records"),
    _case(b_dbf_truncated, ".dbf cut after 4.5 of its 10 records"),
    _case(b_shp_header_garbage, "first 100 bytes (file header) of the .shp are garbage"),
    _case(b_shx_missing, "shapefile without its .shx index"),
    _case(b_dbf_missing, "shapefile without its .dbf attribute table"),
    _case(b_prj_garbage, ".prj holds random text, not WKT"),
    _case(b_prj_missing, "no .prj and no crs option: the CRS is unknown"),
    _case(b_cpg_utf8_attrs_gbk, ".cpg says UTF-8 but the .dbf text is GBK"),
    _case(b_shp_empty, "0-byte .shp with no sidecar files"),
    _case(b_shp_plain_text, "a text file named .shp"),
    _case(b_shx_offsets_past_end, ".shx offset of record 3 points far past the end of the .shp"),
    _case(b_dbf_from_other_file, ".dbf has 6 records, .shp has 10 (sidecar from another file)"),
    _case(b_shp_unclosed_ring, "first polygon's ring does not end where it starts"),
    _case(b_duplicate_key, "key field dkbm has the same value on three rows", key="dkbm"),
    _case(b_null_key, "key field dkbm is null on two rows", key="dkbm"),
    # coordinates and CRS
    _case(b_latlon_swapped_gpkg, "EPSG:4490 layer with x=lat, y=lon (y about 112 > 90)"),
    _case(b_latlon_swapped_geojson, "GeoJSON declared CRS84 with [lat, lon] order"),
    _case(b_gk_metres_tagged_4326, "EPSG:4326 layer holding Gauss-Kruger metres"),
    _case(b_gk_metres_tagged_4490, "shapefile whose .prj says EPSG:4490 over GK metres"),
    _case(b_gk_no_zone_prefix, "EPSG:4526 (zone 38, x=38xxxxxx) but x lacks the zone prefix"),
    _case(b_nan_coordinates, "one polygon has a NaN x coordinate"),
    _case(b_inf_coordinates, "one polygon has +inf and -inf coordinates"),
    _case(b_bowtie_polygon, "one self-intersecting (bow-tie) polygon among good ones"),
    _case(b_unclosed_ring_gpkg, "one polygon ring of four points that is not closed"),
    _case(b_too_few_points_gpkg, "one polygon ring of three points (needs four)"),
    _case(b_empty_geometry, "two features are POLYGON EMPTY"),
    # GeoPackage
    _case(b_layer_not_found, "asks for layer 'nope' in a GeoPackage without it", layer="nope"),
    _case(b_png_as_gpkg, "a PNG image named .gpkg"),
    _case(b_gpkg_truncated, "GeoPackage (SQLite) cut to a third of its size"),
    # GeoJSON and text
    _case(b_geojson_empty, "0-byte .geojson"),
    _case(b_geojson_zero_features, "valid GeoJSON FeatureCollection with no features"),
    _case(b_geojson_truncated, "GeoJSON cut in half: invalid JSON"),
    _case(b_geojson_null_geometry, "one feature has geometry null"),
    _case(b_geojson_mixed_types, "points and polygons in one layer"),
    _case(b_geojson_unclosed_ring, "one GeoJSON polygon ring of three points, not closed"),
    _case(b_geojson_bogus_crs, "GeoJSON crs member names EPSG:999999"),
    _case(b_geojson_string_coordinates, "one polygon's coordinates are JSON strings"),
    _case(b_html_as_geojson, "an HTML 502 error page saved as .geojson"),
    # CSV
    _case(b_csv_no_geometry, "CSV with attributes only, no WKT or lon/lat columns"),
    _case(b_csv_invalid_wkt, "CSV WKT column with three unparsable values", crs="EPSG:4490"),
    _case(b_csv_lonlat_text, "CSV lon/lat columns holding text and blanks", crs="EPSG:4490"),
    # zip
    _case(b_zip_bomb, "zip whose one member inflates to more than 2 GiB"),
    _case(b_zip_many_members, "zip with more than 10,000 members"),
    _case(b_zip_slip, "zip member named ../../evil.shp beside a good shapefile"),
    _case(b_zip_absolute_member, "zip member with absolute path /tmp/evil.txt"),
    _case(b_zip_symlink_member, "zip member that is a symlink to /etc/passwd"),
    _case(b_zip_truncated, "zip cut at 60%: no central directory"),
    _case(b_zip_no_vector, "zip with only a text file and a photo"),
    # XML
    _case(b_kml_billion_laughs, "KML with a nested-entity (billion laughs) XML bomb"),
    _case(b_kml_xxe, "KML with an external entity reading file:///etc/passwd"),
)

HOSTILE = frozenset({"zip_bomb", "kml_billion_laughs"})
"""Cases that must only be read under a time and memory guard."""


def build_all(root: Path) -> dict[str, Path]:
    """Build every case into its own subdirectory of ``root``; returns name -> input path."""
    out = {}
    for case in CASES:
        d = root / case.name
        d.mkdir()
        out[case.name] = case.build(d)
    return out


def _size(path: Path) -> int:
    siblings = [p for p in path.parent.iterdir() if p.is_file()] if path.exists() else []
    return sum(p.stat().st_size for p in siblings)


if __name__ == "__main__":
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in build_all(Path(tmp)).items():
            files = sorted(p.name for p in path.parent.iterdir())
            print(f"{name:28} {_size(path):>10,d} B  {path.name:18} {' '.join(files)}")
    print(f"{len(CASES)} cases")
