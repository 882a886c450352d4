"""Import arrows point one way (api -> tiles -> layers -> spatial); nothing runs on import."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spatial.settings import DEV_SECRET, Settings

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "spatial": {"layers", "tiles", "api", "fastapi", "starlette"},
    "layers": {"tiles", "api", "fastapi", "starlette"},
    "tiles": {"api", "fastapi", "starlette"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_arrows(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    offenders = {
        str(f.relative_to(ROOT)): sorted(_imports(f) & FORBIDDEN[package])
        for f in files
        if _imports(f) & FORBIDDEN[package]
    }
    assert offenders == {}


def test_nothing_happens_at_import_time(tmp_path: Path) -> None:
    # Importing every package with an unreachable database must neither fail nor connect.
    code = "import spatial, spatial.cli, spatial.db, layers, tiles, api, api.main; print('ok')"
    env = {
        "PATH": "/usr/bin:/bin",
        "SPATIAL_DATABASE_URL": "postgresql://x@127.0.0.1:1/x",
        "SPATIAL_VAR_DIR": str(tmp_path / "var"),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    assert not (tmp_path / "var").exists()


def test_default_secret_refused_in_production() -> None:
    with pytest.raises(ValueError, match="SPATIAL_SECRET_KEY"):
        Settings(environment="production")
    with pytest.raises(ValueError, match="32 characters"):
        Settings(environment="production", secret_key="too-short-a-secret")
    real = "a-real-secret-of-thirty-two-bytes-or-more"
    assert Settings(environment="production", secret_key=real).environment == "production"
    assert Settings().secret_key.get_secret_value() == DEV_SECRET


def test_settings_read_the_spatial_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPATIAL_SERVER_PORT", "8123")
    monkeypatch.setenv("SPATIAL_DATABASE_URL", "postgresql://u:p@db.example/x")
    settings = Settings()
    assert settings.server.port == 8123
    assert settings.uses_embedded is False


PACKAGES = ("spatial", "layers", "tiles", "api")
SCRIPTS = ("benchmarks", "tests", "scripts")
"""Python that is not a package of the platform (held to the same module size)."""
_REASON = re.compile(r"#\s*noqa: PLC0415 - (?P<why>\S.*)$")


def _modules() -> dict[str, Path]:
    """Every module of our packages by dotted name (packages by their ``__init__``)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue  # Alembic loads these by path, never by import
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[ast.stmt, str]]:
    """(statement, module of ours it imports) for every import in ``path``, wherever it is
    (a function-level import dodging a circle is still a circle)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                package = package if path.name == "__init__.py" else package[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([node.module] if node.module else [])])
            # ``from a import b`` imports the module a.b when there is one, else a.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                     for a in node.names]  # fmt: skip
        else:
            continue
        for name in names:
            target = name
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                yield node, target


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                part.append(top)
                if top == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    known = _modules()
    graph = {m: {target for _, target in _imported(m, p, known)} for m, p in known.items()}
    assert _cycles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_function_level_imports_say_why() -> None:
    # Only to defer a heavy or optional dependency, each with its reason; never to dodge
    # an import circle (test_no_import_circles finds those).
    unexplained = []
    for path in _modules().values():
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    why = _REASON.search(lines[node.lineno - 1])
                    if why is None or "cycle" in why["why"] or "circle" in why["why"]:
                        unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert unexplained == []


_SQL = re.compile(r"SELECT|INSERT|UPDATE|DELETE FROM")


def test_routes_are_thin() -> None:
    # A route parses, calls the model and formats: its SQL lives in spatial/ (and layers/),
    # and no route function grows past 60 lines.
    routers = sorted((ROOT / "api" / "routers").glob("*.py"))
    with_sql = [f"{p.name}:{n}" for p in routers
                for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                if _SQL.search(line)]  # fmt: skip
    assert with_sql == []
    long = []
    for path in routers:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 60:
                    long.append(f"{path.name}:{node.name} ({length} lines)")
    assert long == []


def test_modules_stay_small() -> None:
    """Every module of ours, the tests' and benchmarks' included, stays under 800 lines."""
    big = [f"{p.relative_to(ROOT)} ({n} lines)" for package in (*PACKAGES, *SCRIPTS)
           for p in sorted((ROOT / package).rglob("*.py"))
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 800]  # fmt: skip
    assert big == []
