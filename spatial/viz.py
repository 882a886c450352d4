"""Folium maps of platform layers for notebooks, with nothing loaded from the internet.

``map(base_url, ["districts"], raster="imagery")`` returns a :class:`folium.Map` holding:

- each vector collection as GeoJSON read from the OGC API items endpoint (``bbox`` and
  ``limit`` passed on, ``next`` links followed; the token, when given, goes in an
  ``Authorization: Bearer`` header from Python and is never written into the HTML), drawn
  as SVG with a tooltip of its first attributes;
- each raster collection as an XYZ layer of the platform's imagery map tiles
  (``/collections/{id}/map/tiles/WebMercatorQuad/{z}/{y}/{x}``, with ``bands``,
  ``rescale``, ``colormap``, ``datetime``... passed through ``raster_params``);
- no basemap unless ``basemap`` names an XYZ URL (a government network has no internet),
  a layer switcher when there is more than one layer, and the view fitted to the layers.

Folium's page template loads Leaflet, jQuery, Bootstrap, Font Awesome, Glyphicons and
awesome-markers from CDNs. Every one of those links is rewritten when the map renders
(``save``, ``_repr_html_``, ``get_root().render()``), so plugins an analyst adds later are
covered too:

- by default to the platform's own ``/vendor/`` (npm packages vendored at install time by
  ``api.web``): the HTML stays small, the browser caches the files, and a notebook shows
  the map wherever the platform itself is reachable;
- with ``inline=True`` the files are fetched once from ``/vendor/`` and embedded (CSS
  fonts and images as ``data:`` URIs): one standalone HTML file to mail to a colleague,
  which needs the platform only for raster tiles.

A link with no vendored copy raises :class:`OfflineAssetError` naming it, rather than
leaving a map that silently stays blank offline.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import folium
import httpx
import shapely
from branca.element import CssLink, Element, Figure, JavascriptLink

from spatial.errors import SpatialError

__all__ = ["OfflineAssetError", "OfflineMap", "foreign_urls", "local_asset", "map"]

PAGE = 10_000
"""Features per items request (the server's largest page)."""
TILE_MATRIX_SET = "WebMercatorQuad"
PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")
VENDORED = frozenset({
    "leaflet", "jquery", "bootstrap", "bootstrap3", "@fortawesome/fontawesome-free",
    "leaflet.awesome-markers", "leaflet.markercluster",
})  # fmt: skip
"""npm packages the platform serves under ``/vendor/`` (``api.web.PACKAGES``)."""
_FIXED = {
    ("code.jquery.com", "/jquery-3.7.1.min.js"): "jquery/dist/jquery.min.js",
    ("netdna.bootstrapcdn.com", "/bootstrap/3.0.0/css/bootstrap-glyphicons.css"): (
        "bootstrap3/dist/css/glyphicons.css"
    ),
}
"""folium's links that no pattern below covers, by (host, path), and their vendored copy:
the map never loads them, :func:`local_asset` swaps them for the copy."""
_JSDELIVR = re.compile(
    r"https://cdn\.jsdelivr\.net/npm/(?P<pkg>(?:@[\w.\-]+/)?[\w.\-]+)@[\w.\-]+/(?P<path>.+)"
)
_CDNJS = re.compile(
    r"https://cdnjs\.cloudflare\.com/ajax/libs/(?P<pkg>[\w.\-]+)/[\w.\-]+/(?P<f>.+)"
)
LEAFLET_JS = "leaflet/dist/leaflet.js"
_ROTATE = "leaflet.awesome.rotate"
"""folium's own icon-rotation CSS (from GitHub): generated here instead."""
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(?P<ref>[^'")]+)\1\s*\)""")
_FONT_SRC = re.compile(r"src:\s*(?P<list>[^;{}]*)")
_URL = re.compile(r"""https?://[^\s"'<>)\\]+""")


class OfflineAssetError(SpatialError):
    """A map element loads a script or stylesheet the platform does not vendor."""


def local_asset(url: str) -> str | None:
    """The ``/vendor/``-relative path of a CDN asset folium uses, or ``None`` when the
    platform has no copy (``leaflet/dist/leaflet.js`` for jsDelivr's Leaflet)."""
    parts = urlsplit(url)
    if (parts.netloc, parts.path) in _FIXED:
        return _FIXED[(parts.netloc, parts.path)]
    if m := _JSDELIVR.fullmatch(url):
        return f"{m['pkg']}/{m['path']}" if m["pkg"] in VENDORED else None
    if m := _CDNJS.fullmatch(url):
        pkg = m["pkg"].lower()
        return f"{pkg}/dist/{m['f']}" if pkg in VENDORED else None
    return None


def foreign_urls(html: str, origin: str) -> list[str]:
    """Every ``http(s)://`` URL in ``html`` that is not on ``origin`` (scheme://host:port)."""
    home = urlsplit(origin)
    return [
        u
        for u in _URL.findall(html)
        if (urlsplit(u).scheme, urlsplit(u).netloc) != (home.scheme, home.netloc)
    ]


class _Raw(Element):
    """Markup written as it is (asset text must not pass through Jinja)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.html = html

    def render(self, **kwargs: Any) -> str:
        return self.html


class OfflineMap(folium.Map):
    """A :class:`folium.Map` whose scripts and styles come from the platform, not CDNs."""

    def __init__(
        self, base_url: str, *, inline: bool = False, client: httpx.Client | None = None, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.vendor = base_url.rstrip("/") + "/vendor/"
        self.inline = inline
        self._client = client
        self._assets: dict[str, str] = {}

    def render(self, **kwargs: Any) -> None:  # type: ignore[override]
        super().render(**kwargs)  # type: ignore[no-untyped-call]
        figure = self.get_root()
        if isinstance(figure, Figure):
            self._localise(figure.header._children)  # branca has no API for it

    def _localise(self, children: dict[str, Element]) -> None:
        for name, child in list(children.items()):
            if not isinstance(child, JavascriptLink | CssLink):
                continue
            url = str(child.url)
            if url.startswith(self.vendor):
                continue
            if _ROTATE in url:
                children[name] = _Raw(_rotation_css())
                continue
            path = local_asset(url)
            if path is None:
                msg = f"{name} loads {url}, which the platform does not serve from /vendor/"
                raise OfflineAssetError(msg)
            if not self.inline:
                child.url = self.vendor + path
            elif isinstance(child, CssLink):
                children[name] = _Raw(f"<style>{self._css(self.vendor + path)}</style>")
            else:
                text = self._fetch(self.vendor + path).decode()
                if path == LEAFLET_JS:
                    text += self._default_icons()
                text = text.replace("</script", "<\\/script")
                children[name] = _Raw(f"<script>{text}</script>")

    def _fetch(self, url: str) -> bytes:
        client = self._client or httpx.Client(timeout=60)
        try:
            response = client.get(url)
            response.raise_for_status()
            return response.content
        finally:
            if self._client is None:
                client.close()

    def _data_uri(self, url: str) -> str:
        kind = mimetypes.guess_type(url)[0] or "application/octet-stream"
        return f"data:{kind};base64,{base64.b64encode(self._fetch(url)).decode()}"

    def _default_icons(self) -> str:
        """Leaflet finds its marker images next to leaflet.css, which inline has not: give
        ``L.Icon.Default`` the images themselves."""
        images = self.vendor + "leaflet/dist/images/"
        urls = {
            "iconUrl": self._data_uri(images + "marker-icon.png"),
            "iconRetinaUrl": self._data_uri(images + "marker-icon-2x.png"),
            "shadowUrl": self._data_uri(images + "marker-shadow.png"),
        }
        return (
            "\n;L.Icon.Default.prototype._getIconUrl = function (name) {"
            " return L.Icon.prototype._getIconUrl.call(this, name); };"
            f"\nL.Icon.Default.mergeOptions({json.dumps(urls)});\n"
        )

    def _css(self, url: str) -> str:
        """A stylesheet with each ``url(...)`` it uses embedded as a ``data:`` URI."""
        if url not in self._assets:

            def embed(m: re.Match[str]) -> str:
                ref = m["ref"]
                if ref.startswith("data:"):
                    return m.group(0)
                target = urljoin(url, ref).split("#")[0].split("?")[0]
                return f'url("{self._data_uri(target)}")'

            css = _FONT_SRC.sub(_woff2_only, self._fetch(url).decode())
            self._assets[url] = _CSS_URL.sub(embed, css)
        return self._assets[url]


def _woff2_only(m: re.Match[str]) -> str:
    # Every browser that runs Leaflet reads WOFF2: embedding the TTF/EOT/SVG copies too
    # would triple the file.
    sources = [s for s in m["list"].split(",") if ".woff2" in s]
    return f"src:{','.join(sources)}" if sources else m.group(0)


def _rotation_css() -> str:
    # folium gives an Icon the class fa-rotate-<angle>; its own CSS sits on GitHub.
    rules = "".join(f".fa-rotate-{a}{{transform:rotate({a}deg)}}" for a in range(360))
    return f"<style>{rules}</style>"


def map(  # noqa: A001 (the issue names the API spatial.viz.map)
    base_url: str,
    collections: Sequence[str] = (),
    *,
    token: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    limit: int = 5000,
    raster: str | Sequence[str] | None = None,
    raster_params: Mapping[str, str] | None = None,
    basemap: str | None = None,
    basemap_attribution: str = "basemap",
    inline: bool = False,
    client: httpx.Client | None = None,
    **map_options: Any,
) -> folium.Map:
    """A folium map of platform collections that renders without internet.

    Args:
        base_url: The platform's URL, e.g. ``http://127.0.0.1:8000``.
        collections: Vector collection ids, drawn in order (first at the bottom).
        token: A bearer token or API key for restricted collections.
        bbox: ``(west, south, east, north)`` in CRS84 to read vector features within;
            also the initial view when given.
        limit: At most this many features per vector collection.
        raster: Raster collection id(s), shown as tiles beneath the vectors.
        raster_params: Query parameters for the raster tiles (``bands``, ``rescale``,
            ``colormap``, ``expression``, ``datetime``).
        basemap: An XYZ URL template for a basemap; none by default (offline).
        basemap_attribution: Its attribution text.
        inline: Embed folium's scripts and styles so the HTML file stands alone.
        client: An ``httpx.Client`` to reuse (its headers are kept).
        **map_options: Passed to :class:`folium.Map` (``zoom_start``, ``width``...).

    Returns:
        The map; ``save("map.html")`` it or show it in a notebook cell.
    """
    base = base_url.rstrip("/")
    rasters = [raster] if isinstance(raster, str) else list(raster or ())
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    own = client is None
    http = client or httpx.Client(timeout=120)
    try:
        figure = OfflineMap(base, inline=inline, client=client, tiles=None, **map_options)
        if basemap:
            folium.TileLayer(basemap, attr=basemap_attribution, name="basemap").add_to(figure)
        extent: list[tuple[float, float, float, float]] = []
        for cid in rasters:
            meta = _get(http, f"{base}/collections/{cid}", headers, {})
            tiles = f"{base}/collections/{cid}/map/tiles/{TILE_MATRIX_SET}/{{z}}/{{y}}/{{x}}"
            if raster_params:
                tiles += "?" + urlencode(dict(raster_params))
            title = str(meta.get("title") or cid)
            folium.TileLayer(tiles, attr=title, name=title, overlay=True).add_to(figure)
            extent += [tuple(b) for b in meta.get("extent", {}).get("spatial", {}).get("bbox", [])]
        for index, cid in enumerate(collections):
            meta = _get(http, f"{base}/collections/{cid}", headers, {})
            features = _features(http, base=base, cid=cid, headers=headers, bbox=bbox, limit=limit)
            collection = {"type": "FeatureCollection", "features": features}
            colour = PALETTE[index % len(PALETTE)]
            fields = list((features[0].get("properties") or {}) if features else {})[:6]
            layer = folium.GeoJson(
                collection,
                name=str(meta.get("title") or cid),
                style_function=lambda _f, c=colour: {"color": c, "weight": 1.5, "fillOpacity": 0.2},
                tooltip=folium.GeoJsonTooltip(fields=fields) if fields else None,
            )
            layer.add_to(figure)
            shapes = [shapely.geometry.shape(f["geometry"]) for f in features if f["geometry"]]
            if shapes:
                extent.append(tuple(shapely.GeometryCollection(shapes).bounds))
    finally:
        if own:
            http.close()
    if len(rasters) + len(collections) + bool(basemap) > 1:
        folium.LayerControl(collapsed=False).add_to(figure)
    view = [bbox] if bbox else extent
    if view:
        west, south = min(b[0] for b in view), min(b[1] for b in view)
        east, north = max(b[2] for b in view), max(b[3] for b in view)
        figure.fit_bounds([[south, west], [north, east]])
    return figure


def _get(
    http: httpx.Client, url: str, headers: Mapping[str, str], params: Mapping[str, Any]
) -> dict[str, Any]:
    # (no params at all on a next link: httpx would replace the link's query with them)
    response = http.get(url, headers=dict(headers), params=dict(params) if params else None)
    if response.is_error:  # say what the platform said (an OGC exception body)
        try:
            said = str(response.json().get("description", ""))
        except ValueError:
            said = response.text[:200]
        msg = f"GET {response.url} answered {response.status_code}: {said}"
        raise httpx.HTTPStatusError(msg, request=response.request, response=response)
    body: dict[str, Any] = response.json()
    return body


def _features(
    http: httpx.Client,
    *,
    base: str,
    cid: str,
    headers: Mapping[str, str],
    bbox: tuple[float, float, float, float] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` features of ``cid`` in CRS84, following the ``next`` links."""
    params: dict[str, Any] = {"f": "json", "limit": min(limit, PAGE)}
    if bbox:
        params["bbox"] = ",".join(str(v) for v in bbox)
    url: str | None = f"{base}/collections/{cid}/items"
    features: list[dict[str, Any]] = []
    matched = None
    while url and len(features) < limit:
        page = _get(http, url, headers, params)
        matched = page.get("numberMatched") if matched is None else matched
        features += page.get("features", [])
        url = next((x["href"] for x in page.get("links", []) if x.get("rel") == "next"), None)
        params = {}  # the next link carries them
    if len(features) > limit or url:
        warnings.warn(
            f"{cid}: the map shows the first {limit} of {matched or 'more'} features; "
            "pass a larger limit= or a bbox=",
            stacklevel=3,
        )
    return features[:limit]
