"""Per-feature validation: what is wrong with each feature, and why.

Every check is vectorised over the layer (shapely 2, numpy). The result is a list of
:class:`Finding` with a kind from :data:`ERRORS` or :data:`WARNINGS` and a reason a
steward can act on. Errors stop a feature from being published (the ingest policy
decides whether that fails the ingest, repairs the feature or quarantines it);
warnings are reported only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from spatial import crs as crs_mod
from spatial.errors import InvalidInputError
from spatial.ingest.read import Field, Table

ERRORS = (
    "null_geometry",
    "unreadable_geometry",
    "empty_geometry",
    "non_finite",
    "invalid_geometry",
    "mixed_type",
    "dimension_mismatch",
    "outside_crs_area",
    "null_key",
    "duplicate_key",
    "overlap",
)
WARNINGS = ("sliver", "gap")
_FAMILY = {
    "Point": "Point",
    "MultiPoint": "Point",
    "LineString": "LineString",
    "LinearRing": "LineString",
    "MultiLineString": "LineString",
    "Polygon": "Polygon",
    "MultiPolygon": "Polygon",
}
_FAMILIES = ("Point", "LineString", "Polygon", "")
"""The geometry families by number ("": a collection, which fits none)."""
_MULTI = {"Point": "MultiPoint", "LineString": "MultiLineString", "Polygon": "MultiPolygon"}
_TYPE_NAMES = (
    "Point",
    "LineString",
    "LinearRing",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)
"""Geometry type names by shapely type id."""
_MULTI_TYPE_IDS = (4, 6)
"""The first and last multi type id (MultiPoint .. MultiPolygon)."""
_MAX_LISTED = 5


@dataclass(frozen=True)
class Finding:
    """One thing wrong with one feature."""

    row: int
    kind: str
    detail: str

    @property
    def severity(self) -> str:
        """``error`` or ``warning``."""
        return "error" if self.kind in ERRORS else "warning"


@dataclass
class Checked:
    """The layer's geometries as shapely objects, its column type, and the findings."""

    geoms: npt.NDArray[np.object_]
    family: str
    """Point, LineString or Polygon: the geometry family most features have."""
    multi: bool
    """True when single geometries are promoted to their multi type."""
    dims: str
    """'', 'Z', 'M' or 'ZM'."""
    findings: list[Finding] = field(default_factory=list)

    @property
    def column_type(self) -> str:
        """The PostGIS type modifier, e.g. ``MultiPolygonZ``."""
        base = _MULTI[self.family] if self.multi else self.family
        return base + self.dims

    def error_rows(self) -> npt.NDArray[np.int64]:
        """Rows with at least one error, sorted."""
        rows = {f.row for f in self.findings if f.severity == "error"}
        return np.array(sorted(rows), dtype=np.int64)

    def good_rows(self) -> npt.NDArray[np.int64]:
        """Rows without errors, sorted."""
        keep = np.ones(len(self.geoms), dtype=bool)
        keep[self.error_rows()] = False
        return np.flatnonzero(keep)


def check_features(table: Table, crs: crs_mod.CrsInfo, key: Field | None) -> Checked:
    """Run every per-feature check (topology is separate: :mod:`spatial.ingest.topology`).

    Raises:
        InvalidInputError: the layer has no features, no usable geometry at all, or most
            of it lies outside the CRS's area of use (the message names the likely cause).
    """
    n = len(table)
    if n == 0:
        msg = "the layer has no features; nothing to load"
        raise InvalidInputError(msg)
    findings: list[Finding] = []
    geoms = _parse(table.wkb, findings)
    present = ~shapely.is_missing(geoms)
    empty = present & shapely.is_empty(geoms)
    findings += [
        Finding(int(i), "empty_geometry", "the geometry is empty") for i in np.flatnonzero(empty)
    ]
    usable = present & ~empty
    usable &= ~_non_finite(geoms, usable, findings)
    if not usable.any():
        msg = "no feature has a usable geometry (all are null, empty or unreadable)"
        raise InvalidInputError(msg)
    family, multi = _family(geoms, usable, findings)
    dims = _dimensions(geoms, usable, findings)
    _area_of_use(geoms, usable, crs, findings)
    _validity(geoms, usable, findings)
    if key is not None:
        _keys(key, findings)
    return Checked(geoms=geoms, family=family, multi=multi, dims=dims, findings=findings)


def _parse(wkb: npt.NDArray[np.object_], findings: list[Finding]) -> npt.NDArray[np.object_]:
    with np.errstate(invalid="ignore"):  # NaN coordinates are reported as non_finite below
        geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    nulls = np.equal(wkb, None)  # type: ignore[call-overload]
    findings += [
        Finding(int(i), "null_geometry", "the feature has no geometry")
        for i in np.flatnonzero(nulls)
    ]
    for i in np.flatnonzero(~nulls & shapely.is_missing(geoms)):
        try:
            shapely.from_wkb(wkb[i])
        except shapely.errors.GEOSException as exc:
            reason = str(exc)
        else:  # pragma: no cover - parsed on its own but not in the batch
            reason = "unreadable"
        findings.append(
            Finding(int(i), "unreadable_geometry", f"cannot parse the geometry: {reason}")
        )
    return np.asarray(geoms, dtype=object)


def _non_finite(
    geoms: npt.NDArray[np.object_], usable: npt.NDArray[np.bool_], findings: list[Finding]
) -> npt.NDArray[np.bool_]:
    bad = np.zeros(len(geoms), dtype=bool)
    candidates = geoms[usable]
    has_z = shapely.has_z(candidates)
    # The common case first: every coordinate finite, found without per-vertex indexes.
    if np.isfinite(shapely.get_coordinates(candidates)).all() and (
        not has_z.any()
        or np.isfinite(shapely.get_coordinates(candidates[has_z], include_z=True)).all()
    ):
        return bad
    coords, index = shapely.get_coordinates(candidates, include_z=True, return_index=True)
    finite = np.isfinite(coords[:, :2]).all(axis=1)
    # A 2D geometry reads back with NaN z: only x and y must be finite, and z when present.
    finite &= ~has_z[index] | np.isfinite(coords[:, 2])
    bad[np.flatnonzero(usable)[index[~finite]]] = True
    findings += [
        Finding(int(i), "non_finite", "coordinates hold NaN or infinite values")
        for i in np.flatnonzero(bad)
    ]
    return bad


def _family(
    geoms: npt.NDArray[np.object_], usable: npt.NDArray[np.bool_], findings: list[Finding]
) -> tuple[str, bool]:
    types = shapely.get_type_id(geoms)  # -1 (missing), 0..7 in the order of _TYPE_NAMES
    family_of_type = np.array([_FAMILIES.index(_FAMILY.get(t, "")) for t in _TYPE_NAMES])
    families = np.where(types >= 0, family_of_type[types], -1)
    counts = np.bincount(families[usable & (families >= 0)], minlength=len(_FAMILIES))
    if not counts.any():
        msg = "the layer holds only geometry collections; split them into points, lines or polygons"
        raise InvalidInputError(msg)
    common = int(counts.argmax())
    family = _FAMILIES[common]
    for i in np.flatnonzero(usable & (families != common)):
        findings.append(
            Finding(
                int(i), "mixed_type", f"a {_TYPE_NAMES[types[i]]} in a layer of {family} geometries"
            )
        )
    same = usable & (families == common)
    multi = bool(np.any((types[same] >= _MULTI_TYPE_IDS[0]) & (types[same] <= _MULTI_TYPE_IDS[1])))
    return str(family), multi


def _dimensions(
    geoms: npt.NDArray[np.object_], usable: npt.NDArray[np.bool_], findings: list[Finding]
) -> str:
    code = shapely.has_z(geoms) + 2 * shapely.has_m(geoms).astype(np.int8)
    names = ("", "Z", "M", "ZM")
    common = int(np.bincount(code[usable], minlength=4).argmax())
    dims = names[common]
    for i in np.flatnonzero(usable & (code != common)):
        have = names[code[i]] or "2D"
        findings.append(
            Finding(
                int(i), "dimension_mismatch", f"coordinates are {have}; the layer is {dims or '2D'}"
            )
        )
    return dims


def _area_of_use(
    geoms: npt.NDArray[np.object_],
    usable: npt.NDArray[np.bool_],
    crs: crs_mod.CrsInfo,
    findings: list[Finding],
) -> None:
    rows = np.flatnonzero(usable)
    cx, cy, outside = crs_mod.mostly_inside(crs, shapely.bounds(geoms[rows]))
    for i, x, y in zip(rows[outside], cx[outside], cy[outside], strict=True):
        findings.append(
            Finding(
                int(i),
                "outside_crs_area",
                f"at x={x:.6g}, y={y:.6g}, outside the area of use of {crs.code}",
            )
        )


def _validity(
    geoms: npt.NDArray[np.object_], usable: npt.NDArray[np.bool_], findings: list[Finding]
) -> None:
    rows = np.flatnonzero(usable)
    valid = shapely.is_valid(geoms[rows])
    bad = rows[~valid]
    for i, reason in zip(bad, shapely.is_valid_reason(geoms[bad]), strict=True):
        findings.append(Finding(int(i), "invalid_geometry", str(reason)))


def _keys(key: Field, findings: list[Finding]) -> None:
    values = key.values
    counts = Counter(values)
    # Blank: NULL, or text that is empty or all white space (which starts with a space).
    blank = {
        v
        for v in counts
        if v is None or (isinstance(v, str) and (not v or v[0].isspace()) and not v.strip())
    }
    duplicated = {v for v, n in counts.items() if n > 1} - blank
    if not blank and not duplicated:
        return
    rows_of: dict[Any, list[int]] = {}
    for i, value in enumerate(values):
        if value in blank:
            findings.append(Finding(i, "null_key", f"{key.source} is empty"))
        elif value in duplicated:
            rows_of.setdefault(value, []).append(i)
    for value, rows in rows_of.items():
        for i in rows:
            others = [str(r) for r in rows if r != i][:_MAX_LISTED]
            findings.append(
                Finding(
                    i,
                    "duplicate_key",
                    f"{key.source} {value!r} is also used by row {', '.join(others)}",
                )
            )


def repair(checked: Checked) -> tuple[list[int], list[Finding]]:
    """Make invalid geometries valid, keeping the layer's geometry family.

    Returns:
        The rows repaired, and the findings that remain (an invalid geometry whose repair
        changes its family, e.g. a polygon that collapses to a line, stays an error).
    """
    repaired: list[int] = []
    remaining: list[Finding] = []
    for f in checked.findings:
        if f.kind != "invalid_geometry":
            remaining.append(f)
            continue
        fixed = _keep_family(
            shapely.make_valid(checked.geoms[f.row], method="structure"), checked.family
        )
        if fixed is None:
            remaining.append(
                Finding(f.row, f.kind, f"{f.detail}; repair leaves no {checked.family}")
            )
            continue
        checked.geoms[f.row] = fixed
        repaired.append(f.row)
    checked.findings = remaining
    if repaired and not checked.multi:
        types = shapely.get_type_id(checked.geoms[np.array(repaired)])
        checked.multi = bool(np.any(types >= 4))
    return repaired, remaining


def _keep_family(geom: Any, family: str) -> Any:
    parts = shapely.get_parts(geom)
    parts = parts[[_FAMILY.get(p.geom_type) == family for p in parts]]
    parts = parts[~shapely.is_empty(parts)] if len(parts) else parts
    if len(parts) == 0:
        return None
    if len(parts) == 1:
        return parts[0]
    return (
        shapely.multipolygons(parts)
        if family == "Polygon"
        else (
            shapely.multilinestrings(parts)
            if family == "LineString"
            else shapely.multipoints(parts)
        )
    )
