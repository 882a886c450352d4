"""The web pages' assets, for users with no internet: built once, at install time.

pygeoapi's HTML templates load Bootstrap, Leaflet and Swagger UI from CDNs. ``build``
fetches those npm packages (pinned, integrity-checked by npm) into ``var/web/vendor``
and writes a copy of every template that names a CDN, with the CDN URLs pointing at this
server's ``/vendor`` instead. pygeoapi renders from that folder first, so its pages load
nothing from outside. Nothing is downloaded while the server runs.

Run it with ``python -m api.web`` (``make install`` does).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pygeoapi

from spatial.settings import project_root

WEB_DIR = project_root() / "var" / "web"
"""Vendored packages in ``vendor/``, offline templates in ``templates/``."""
PYGEOAPI_TEMPLATES = Path(pygeoapi.__file__).parent / "templates"
PYGEOAPI_STATIC = Path(pygeoapi.__file__).parent / "static"

PACKAGES = {
    "bootstrap": "5.3.8",
    "leaflet": "1.9.4",
    "leaflet.markercluster": "1.5.3",
    "swagger-ui-dist": "5.35.0",
    # The web maps (/maps/{subsystem}): ES modules only since v6 (maplibre-gl.mjs, whose
    # worker, maplibre-gl-worker.mjs, loads from its own URL: no blob: worker for the CSP).
    "maplibre-gl": "6.17.0",
    # The monitoring maps' charts of readings (api/static/maps/monitor.js): uPlot, an ES
    # module (dist/uPlot.esm.js) drawing on a canvas, with no dependency and no eval.
    "uplot": "1.6.32",
    # OpenLayers, for pages built on the platform's WMTS and WMS (tests/test_wmts.py).
    "ol": "10.11.0",
    # What folium's maps load (spatial.viz points them here): jQuery, Font Awesome and
    # awesome-markers at folium's own versions; Bootstrap 3 only for its Glyphicons font,
    # folium's default marker icon set (see GLYPHICONS).
    "jquery": "3.7.1",
    "@fortawesome/fontawesome-free": "6.2.0",
    "leaflet.awesome-markers": "2.0.5",
    "bootstrap3": "npm:bootstrap@3.4.1",
}
"""The npm packages the served pages use, at the versions vendored (an ``npm:`` alias
vendors a second major version under its own name)."""
GLYPHICONS = "bootstrap3/dist/css/glyphicons.css"
"""The Glyphicons rules cut out of Bootstrap 3 (its full CSS would fight Bootstrap 5)."""
_GLYPHICON_RULE = re.compile(r"(?:@font-face\s*|\.glyphicon\b[^{}]*)\{[^{}]*\}")

_CDN = re.compile(
    r"https://(?:unpkg\.com|cdn\.jsdelivr\.net/npm)/(?P<pkg>@?[\w.\-]+)(?:@[\w.\-]+)?/"
)
_CDNJS = re.compile(r"https://cdnjs\.cloudflare\.com/ajax/libs/(?P<pkg>[\w.\-]+)/[\w.\-]+/")
_DROPPED = re.compile(
    r"<!--\[if lt IE 9\]>.*?<!\[endif\]-->|<link [^>]*fonts\.googleapis\.com[^>]*>", re.S
)
"""Old-IE shims and web fonts: the pages work without them."""
_EXTERNAL = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)=["'](https?:)?//""", re.I)
LOCAL = "{{ config['server']['url'] }}/vendor/"


def offline(text: str) -> str:
    """A template's text with each CDN URL turned into this server's ``/vendor`` URL."""
    text = _DROPPED.sub("", text)
    text = _CDNJS.sub(lambda m: f"{LOCAL}{m['pkg']}/dist/", text)
    return _CDN.sub(lambda m: f"{LOCAL}{m['pkg']}/", text)


def external_assets(text: str) -> list[str]:
    """The script and stylesheet tags of a page (or template) that load from elsewhere."""
    return [m.group(0) for m in _EXTERNAL.finditer(text)]


def templates_dir(web_dir: Path = WEB_DIR) -> Path:
    return web_dir / "templates"


def vendor_dir(web_dir: Path = WEB_DIR) -> Path:
    return web_dir / "vendor"


def is_built(web_dir: Path = WEB_DIR) -> bool:
    return (web_dir / ".built").is_file()


def build_templates(web_dir: Path = WEB_DIR) -> list[Path]:
    """Write offline copies of the pygeoapi templates that name a CDN; the rest are read
    from pygeoapi itself. Returns the written paths."""
    out = templates_dir(web_dir)
    shutil.rmtree(out, ignore_errors=True)
    written = []
    for source in sorted(PYGEOAPI_TEMPLATES.rglob("*.html")):
        text = source.read_text(encoding="utf-8")
        changed = offline(text)
        if changed == text:
            continue
        target = out / source.relative_to(PYGEOAPI_TEMPLATES)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(changed, encoding="utf-8")
        written.append(target)
    return written


def vendor(web_dir: Path = WEB_DIR) -> None:
    """Fetch :data:`PACKAGES` from the npm registry into ``vendor/<package>/``."""
    target = vendor_dir(web_dir)
    with tempfile.TemporaryDirectory() as tmp:
        specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
        done = subprocess.run(
            ["npm", "pack", "--silent", "--pack-destination", tmp, *specs],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            msg = f"npm pack {' '.join(specs)} failed: {done.stderr.strip()[-2000:]}"
            raise RuntimeError(msg)
        tarballs = [Path(tmp) / line for line in done.stdout.split()]
        staged = Path(tmp) / "vendor"
        staged.mkdir()
        for name, tarball in zip(PACKAGES, tarballs, strict=True):
            with tarfile.open(tarball) as tar:
                tar.extractall(Path(tmp) / "unpacked" / name, filter="data")
            (staged / name).parent.mkdir(parents=True, exist_ok=True)  # @scope/
            (Path(tmp) / "unpacked" / name / "package").rename(staged / name)
        _write_glyphicons(staged)
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged, target)


def _write_glyphicons(vendored: Path) -> None:
    source = (vendored / GLYPHICONS).with_name("bootstrap.css").read_text(encoding="utf-8")
    rules = [
        m.group(0)
        for m in _GLYPHICON_RULE.finditer(source)
        if not m.group(0).startswith("@font-face") or "Glyphicons Halflings" in m.group(0)
    ]
    if len(rules) < 100:
        msg = f"found only {len(rules)} Glyphicons rules in Bootstrap 3's CSS"
        raise RuntimeError(msg)
    (vendored / GLYPHICONS).write_text("\n".join(rules) + "\n", encoding="utf-8")


def build(web_dir: Path = WEB_DIR) -> None:
    """Vendor the packages (when their versions changed) and write the templates."""
    stamp = web_dir / ".built"
    wanted = " ".join(f"{n}@{v}" for n, v in PACKAGES.items()) + f" pygeoapi@{pygeoapi.__version__}"
    if stamp.is_file() and stamp.read_text() == wanted:
        stamp.touch()  # current: tell make so
        return
    stamp.unlink(missing_ok=True)
    vendor(web_dir)
    written = build_templates(web_dir)
    left = [(p, tag) for p in written for tag in external_assets(p.read_text(encoding="utf-8"))]
    if left:
        raise RuntimeError(f"templates still load from outside: {left[:3]}")
    stamp.write_text(wanted)
    sys.stdout.write(
        f"web assets: {len(PACKAGES)} npm packages in {vendor_dir(web_dir)}, "
        f"{len(written)} offline templates in {templates_dir(web_dir)}\n"
    )


if __name__ == "__main__":
    try:
        build()
    except (RuntimeError, OSError) as exc:
        sys.exit(f"building the web assets failed: {exc}")
