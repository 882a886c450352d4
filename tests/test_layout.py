"""Import arrows point one way (api -> tiles -> layers -> spatial); nothing runs on import."""

from __future__ import annotations

import ast
import subprocess
import sys
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
