"""Every package the runtime code imports is a declared runtime dependency, and every
declared runtime dependency is imported (or listed in :data:`LOADED_BY_NAME` with why).

The runtime code is every ``.py`` file of ``spatial/``, ``layers/``, ``tiles/`` and
``api/``; its imports are read with :mod:`ast` (module level and inside functions alike,
and ``importlib.import_module("name")`` with a literal name). Each top-level name that is
neither of the standard library nor one of our packages is mapped to the distribution that
provides it (:func:`importlib.metadata.packages_distributions`) and compared with
``pyproject.toml``'s ``[project].dependencies``, names normalised as PEP 503 says. A
requirement with extras (``psycopg[binary,pool]``) declares its distribution and what
those extras bring (``psycopg-pool``).
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ("spatial", "layers", "tiles", "api")
"""Our packages: the runtime code, and names that are never a dependency."""

LOADED_BY_NAME: dict[str, str] = {
    "matplotlib": "the analyst client's rasters and frames plot through xarray and geopandas "
    "(`.plot()`), which import matplotlib only when called",
    "pyarrow": "pyogrio's read_arrow (spatial/ingest/read.py streams layers as Arrow) imports "
    "it only when called",
    "python-multipart": "FastAPI imports it (`python_multipart`) only when a route reads a "
    "form or an upload (api/routers/ingest.py)",
}
"""Declared runtime dependencies that no file imports, and why each is still needed."""


def imports_of(source: str, filename: str = "<source>") -> Iterator[str]:
    """The top-level names of the absolute imports in ``source``, wherever they are."""
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            yield node.args[0].value.split(".")[0]


def third_party_imports() -> dict[str, set[str]]:
    """Top-level name: the runtime files importing it (standard library and ours left out)."""
    found: dict[str, set[str]] = {}
    for package in RUNTIME:
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in imports_of(path.read_text(encoding="utf-8"), str(path)):
                if name in sys.stdlib_module_names or name in RUNTIME:
                    continue
                found.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    return found


def _extra_brings(requirement: Requirement) -> set[str]:
    """What the requirement's extras add (``psycopg[pool]`` brings ``psycopg-pool``)."""
    brought: set[str] = set()
    for line in importlib.metadata.requires(requirement.name) or []:
        needed = Requirement(line)
        for extra in requirement.extras:
            if needed.marker is not None and needed.marker.evaluate({"extra": extra}):
                brought.add(canonicalize_name(needed.name))
    return brought


def declared() -> dict[str, set[str]]:
    """Each runtime requirement (normalised name): the distributions it declares."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    out: dict[str, set[str]] = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        out[name] = {name} | _extra_brings(requirement)
    return out


def test_the_import_walker_sees_every_kind_of_import() -> None:
    source = """
import os, numpy.linalg as la
from shapely.geometry import Point
from . import sibling
from .sub import thing
from spatial import errors

def later():
    import rasterio  # a deferred import counts like any other
    from pyproj import CRS
    return importlib.import_module("yaml"), importlib.import_module(".rel", "x")

if TYPE_CHECKING:
    from pandas import DataFrame
"""
    assert sorted(set(imports_of(source))) == [
        "numpy", "os", "pandas", "pyproj", "rasterio", "shapely", "spatial", "yaml"]  # fmt: skip


def test_extras_declare_what_they_bring() -> None:
    assert "psycopg-pool" in _extra_brings(Requirement("psycopg[binary,pool]>=3.2"))
    assert _extra_brings(Requirement("psycopg>=3.2")) == set()


def test_every_imported_package_is_a_declared_runtime_dependency() -> None:
    provides = importlib.metadata.packages_distributions()
    covered = set().union(*declared().values())
    missing, unknown = [], []
    for name, files in sorted(third_party_imports().items()):
        where = ", ".join(sorted(files)[:3]) + (" …" if len(files) > 3 else "")
        dists = {canonicalize_name(d) for d in provides.get(name, [])}
        if not dists:
            unknown.append(f"{name} (imported by {where}): no installed distribution has it")
        elif not dists & covered:
            missing.append(f"{' or '.join(sorted(dists))} (import {name}, in {where})")
    assert not unknown, "\n".join(unknown)
    assert not missing, (
        "imported by the runtime code but not in pyproject.toml's [project].dependencies:\n"
        + "\n".join(missing)
    )


def test_every_declared_runtime_dependency_is_imported_or_says_why_not() -> None:
    provides = importlib.metadata.packages_distributions()
    imported = {
        canonicalize_name(d) for name in third_party_imports() for d in provides.get(name, [])
    }
    unused = sorted(
        name
        for name, brings in declared().items()
        if not brings & imported and name not in LOADED_BY_NAME
    )
    assert not unused, (
        "declared in [project].dependencies but imported by no file of "
        f"{', '.join(RUNTIME)} (add it to LOADED_BY_NAME with the reason, or drop it): {unused}"
    )
    stale = sorted(
        name for name in LOADED_BY_NAME if name not in declared() or declared()[name] & imported
    )
    assert not stale, f"LOADED_BY_NAME entries that are imported or not declared: {stale}"
