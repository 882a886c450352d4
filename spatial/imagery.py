"""Band math and styling of imagery: expressions, rescaling, colormaps, PNG.

An expression is arithmetic over band names, parsed with Python's ``ast`` and evaluated
with numpy on masked arrays: ``(nir-red)/(nir+red)``, ``(green-nir)/(green+nir)``,
``sqrt(b1*b2)``, ``where(nir > 0.3, 1, 0)``. Names are a band's name (``B4``), its STAC
common name (``red``), ``nir`` for a sensor's only near-infrared band (``nir08``), or
``b1``, ``b2``... by position. Several expressions separated by ``;`` give several
output bands. Nothing else is allowed (no attributes, no other calls), so an expression
can be wrong (a clear 400) but cannot run code. A pixel is masked when any band it uses
is nodata or the result is not finite (a division by zero).
"""

from __future__ import annotations

import ast
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from rio_tiler.colormap import cmap

from spatial.errors import InvalidInputError

Masked = np.ma.MaskedArray
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": np.ma.sqrt,
    "abs": np.ma.abs,
    "log": np.ma.log,
    "log10": np.ma.log10,
    "exp": np.ma.exp,
    "where": np.ma.where,
    "minimum": np.ma.minimum,
    "maximum": np.ma.maximum,
}
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: np.ma.add,
    ast.Sub: np.ma.subtract,
    ast.Mult: np.ma.multiply,
    ast.Div: np.ma.true_divide,
    ast.Pow: np.ma.power,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Gt: np.ma.greater,
    ast.GtE: np.ma.greater_equal,
    ast.Lt: np.ma.less,
    ast.LtE: np.ma.less_equal,
}
MAX_EXPRESSION = 500
"""Longest expression accepted, in characters."""
INDICES = {
    "ndvi": "(nir-red)/(nir+red)",
    "ndwi": "(green-nir)/(green+nir)",
}
"""Named indices, usable as ``expression=ndvi``."""


def band_names(bands: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Every name a band can be called by in an expression, to its 1-based number."""
    names: dict[str, int] = {}
    for number, band in enumerate(bands, start=1):
        names[f"b{number}"] = number
        for key in ("common_name", "name"):
            if band.get(key):
                names.setdefault(str(band[key]), number)
    nirs = [n for n in ("nir08", "nir09") if n in names]
    if "nir" not in names and nirs:
        names["nir"] = names[nirs[0]]
    return names


@dataclass(frozen=True)
class Expression:
    """Parsed band math: one tree per output band, and the bands it reads."""

    text: str
    trees: tuple[ast.expr, ...]
    bands: tuple[int, ...]
    """1-based band numbers read, in order."""
    names: Mapping[str, int]

    @classmethod
    def parse(cls, text: str, bands: Sequence[Mapping[str, Any]]) -> Expression:
        """Raises:
        InvalidInputError: unknown names, operators or functions, or bad syntax."""
        text = INDICES.get(text.strip().lower(), text.strip())
        if not text or len(text) > MAX_EXPRESSION:
            msg = f"expression: give 1 to {MAX_EXPRESSION} characters"
            raise InvalidInputError(msg)
        names = band_names(bands)
        trees, used = [], set[int]()
        for part in text.split(";"):
            try:
                tree = ast.parse(part.strip(), mode="eval").body
            except SyntaxError as exc:
                msg = f"expression {part.strip()!r} is not valid: {exc.msg}"
                raise InvalidInputError(msg) from None
            used |= _check(tree, names)
            trees.append(tree)
        return cls(text, tuple(trees), tuple(sorted(used)), names)

    def evaluate(self, arrays: Mapping[int, Masked]) -> Masked:
        """The expression's bands as a float32 masked array (bands, rows, cols)."""
        arrays = {k: np.ma.asarray(v, dtype="float64") for k, v in arrays.items()}
        with np.errstate(all="ignore"):
            out: list[Masked] = [
                np.ma.masked_invalid(np.ma.asarray(_eval(t, arrays, self.names), "float64"))
                for t in self.trees
            ]
        stacked = np.ma.stack([np.ma.array(o, copy=False) for o in out]).astype("float32")
        return np.ma.masked_invalid(stacked)


def _check(node: ast.AST, names: Mapping[str, int]) -> set[int]:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return set()
    if isinstance(node, ast.Name):
        if node.id not in names:
            known = ", ".join(sorted(names, key=lambda n: (n.startswith("b"), n)))
            msg = f"expression: no band named {node.id!r}; bands are {known}"
            raise InvalidInputError(msg)
        return {names[node.id]}
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _check(node.left, names) | _check(node.right, names)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return _check(node.operand, names)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        return _check(node.left, names) | _check(node.comparators[0], names)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and 1 <= len(node.args) <= 3
    ):
        return set().union(*(_check(a, names) for a in node.args))
    shown = ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__
    msg = (
        f"expression: {shown!r} is not allowed; use band names, numbers, + - * / **, "
        f"< <= > >=, and {', '.join(_FUNCTIONS)}"
    )
    raise InvalidInputError(msg)


def _eval(node: ast.AST, arrays: Mapping[int, Masked], names: Mapping[str, int]) -> Any:
    if isinstance(node, ast.Constant):
        return float(node.value)  # type: ignore[arg-type]
    if isinstance(node, ast.Name):
        return arrays[names[node.id]]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](
            _eval(node.left, arrays, names), _eval(node.right, arrays, names)
        )
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, arrays, names)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Compare):
        op = _COMPARE[type(node.ops[0])]
        return op(_eval(node.left, arrays, names), _eval(node.comparators[0], arrays, names))
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)  # noqa: S101 - _check
    return _FUNCTIONS[node.func.id](*(_eval(a, arrays, names) for a in node.args))


def rescale_ranges(text: str | None, count: int) -> list[tuple[float, float]] | None:
    """``min,max`` ranges per output band from ``rescale=-1,1`` (one range for all bands,
    or one per band separated by ``;``).

    Raises:
        InvalidInputError: not numbers, or min not below max.
    """
    if not text:
        return None
    ranges = []
    for part in text.split(";"):
        try:
            low, high = (float(v) for v in part.split(","))
        except ValueError:
            msg = f"rescale {part!r}: give min,max, e.g. rescale=-1,1"
            raise InvalidInputError(msg) from None
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            msg = f"rescale {part!r}: min must be below max"
            raise InvalidInputError(msg)
        ranges.append((low, high))
    if len(ranges) == 1:
        return ranges * count
    if len(ranges) != count:
        msg = f"rescale gives {len(ranges)} ranges for {count} bands"
        raise InvalidInputError(msg)
    return ranges


@cache
def colormap(name: str) -> npt.NDArray[np.uint8]:
    """A 256 x 4 RGBA lookup table of a named colormap (matplotlib's names, ``rdylgn``).

    Raises:
        InvalidInputError: an unknown name.
    """
    if name.lower() not in cmap.list():
        msg = f"colormap {name!r} is unknown; use e.g. rdylgn, viridis, greys, blues, terrain"
        raise InvalidInputError(msg)
    table: dict[int, tuple[int, int, int, int]] = dict(cmap.get(name.lower()))  # type: ignore[arg-type]
    return np.array([table.get(i, (0, 0, 0, 0)) for i in range(256)], dtype=np.uint8)


def to_bytes(data: Masked, ranges: list[tuple[float, float]] | None) -> Masked:
    """Scale each band to 0..255 (by ``ranges``, else as is) as uint8, keeping the mask."""
    values: Masked = np.ma.asarray(data, dtype="float32")
    if ranges is not None:
        low = np.array([r[0] for r in ranges], "float32")[:, None, None]
        high = np.array([r[1] for r in ranges], "float32")[:, None, None]
        values = (values - low) * (255.0 / (high - low))
    scaled = np.clip(np.ma.filled(values, 0), 0, 255).round().astype(np.uint8)
    return np.ma.MaskedArray(scaled, mask=np.ma.getmaskarray(values))


def rgba(data: Masked, lut: npt.NDArray[np.uint8] | None) -> npt.NDArray[np.uint8]:
    """Rows x cols x 4 pixels of 1 (grey or colormapped) or 3 (RGB) byte bands; masked
    pixels transparent."""
    mask = np.ma.getmaskarray(data).any(axis=0)
    bands = np.ma.getdata(data)
    if bands.shape[0] == 1 and lut is not None:
        out = lut[bands[0]].copy()
    else:
        out = np.empty((*bands.shape[1:], 4), np.uint8)
        picked = bands[:3] if bands.shape[0] >= 3 else np.repeat(bands[:1], 3, axis=0)
        out[..., :3] = np.moveaxis(picked, 0, -1)
        out[..., 3] = 255
    out[mask, 3] = 0
    return np.asarray(out, dtype=np.uint8)


def png(pixels: npt.NDArray[np.uint8], level: int = 2) -> bytes:
    """An RGBA PNG (no filter, zlib ``level``): a few milliseconds for a 256 x 256 tile,
    where GDAL's PNG driver takes about 20."""
    height, width, _ = pixels.shape
    raw = np.empty((height, width * 4 + 1), np.uint8)
    raw[:, 0] = 0
    raw[:, 1:] = pixels.reshape(height, width * 4)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(raw.tobytes(), level)),
            chunk(b"IEND", b""),
        )
    )
