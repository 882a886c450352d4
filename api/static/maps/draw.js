// A small sketch tool shared by measure.js and analyse.js: click to add a vertex; double-click,
// click the first vertex (a polygon) or press Enter to finish; Backspace takes back the last
// vertex; Escape cancels. The sketch is drawn on top of the map from a GeoJSON source of its
// own. One sketch at a time: starting one cancels the one under way.
//
// Also the geodesic measures of a drawn shape on the CGCS2000 ellipsoid (GRS 80: CGCS2000
// and WGS 84 differ by 0.1 mm in the semi-minor axis): Vincenty's inverse for lengths, and
// for areas the spherical excess on the authalic sphere (areas kept exactly by the authalic
// latitude; the edges drawn as great circles there differ from geodesics by far less than
// 0.01 % of the area at city scale).

import { t } from './i18n.js';
import { body } from './common.js';

const SOURCE = 'sketch';
const LAYERS = ['sketch-fill', 'sketch-line', 'sketch-vertex'];
const CLOSE_PX = 10; // a click this close to the first vertex closes a polygon
const SAME_PX = 4; // a click this close to the last vertex adds nothing (a double-click's)

export const INSTRUCTIONS = {
  line: t('Click to add points; double-click or Enter to finish, Backspace undoes, Escape cancels.'),
  polygon: t('Click to add corners; double-click, click the first corner or Enter to close, Backspace undoes, Escape cancels.'),
  point: t('Click the map to place the point; Escape cancels.'),
};

let active = null;

/** The sketch under way, if any: ``{mode, cancel}``. */
export function current() {
  return active;
}

function ensureLayers(map) {
  if (!map.getSource(SOURCE)) {
    map.addSource(SOURCE, { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
    map.addLayer({
      id: 'sketch-fill', type: 'fill', source: SOURCE, filter: ['==', ['geometry-type'], 'Polygon'],
      paint: { 'fill-color': '#1971c2', 'fill-opacity': 0.15 },
    });
    map.addLayer({
      id: 'sketch-line', type: 'line', source: SOURCE, filter: ['!=', ['geometry-type'], 'Point'],
      layout: { 'line-cap': 'round', 'line-join': 'round' },
      paint: { 'line-color': '#1971c2', 'line-width': 2.5, 'line-dasharray': [2, 1] },
    });
    map.addLayer({
      id: 'sketch-vertex', type: 'circle', source: SOURCE, filter: ['==', ['geometry-type'], 'Point'],
      paint: {
        'circle-radius': ['case', ['get', 'first'], 6, 4],
        'circle-color': ['case', ['get', 'first'], '#ffd43b', '#ffffff'],
        'circle-stroke-color': '#1971c2', 'circle-stroke-width': 2,
      },
    });
  }
  for (const id of LAYERS) map.moveLayer(id); // on top of anything added since
}

function setSketch(map, features) {
  map.getSource(SOURCE)?.setData({ type: 'FeatureCollection', features });
}

/** The finished geometry of ``vertices`` (lon/lat pairs) for ``mode``, or null if too few. */
export function geometryOf(mode, vertices) {
  if (mode === 'point') return vertices.length ? { type: 'Point', coordinates: vertices[0] } : null;
  if (mode === 'line') return vertices.length >= 2 ? { type: 'LineString', coordinates: vertices } : null;
  if (vertices.length < 3) return null;
  return { type: 'Polygon', coordinates: [[...vertices, vertices[0]]] };
}

/**
 * Sketch a shape on ``map``.
 *
 * @param map the MapLibre map.
 * @param mode 'line', 'polygon' or 'point'.
 * @param options ``tool``: the name set as ``body.dataset.tool`` while drawing;
 *   ``onChange(coordinates, pointer)``: called as the sketch or the pointer moves, with the
 *   vertices and the pointer's position (lon/lat pairs; pointer null when off the map).
 * @returns ``{done, cancel}``: ``done`` a Promise of the finished GeoJSON geometry, or of
 *   null when cancelled; ``cancel()`` ends the sketch.
 */
export function sketch(map, mode, { tool = 'draw', onChange = () => {} } = {}) {
  active?.cancel();
  ensureLayers(map);
  const vertices = [];
  let pointer = null;
  let finish;
  const done = new Promise((resolve) => { finish = resolve; });
  const zoomOnDoubleClick = map.doubleClickZoom.isEnabled();
  map.doubleClickZoom.disable();
  body.dataset.tool = tool;

  const render = () => {
    const path = pointer && mode !== 'point' ? [...vertices, pointer] : [...vertices];
    const features = vertices.map((c, n) => ({
      type: 'Feature', properties: { first: n === 0 && mode === 'polygon' && vertices.length >= 3 },
      geometry: { type: 'Point', coordinates: c },
    }));
    if (mode === 'polygon' && path.length >= 3) {
      features.unshift({ type: 'Feature', properties: {}, geometry: { type: 'Polygon', coordinates: [[...path, path[0]]] } });
    } else if (path.length >= 2) {
      features.unshift({ type: 'Feature', properties: {}, geometry: { type: 'LineString', coordinates: path } });
    }
    setSketch(map, features);
    onChange(vertices, pointer);
  };

  const px = (lonlat) => map.project(lonlat);
  const near = (a, b, limit) => {
    const p = px(a);
    const q = px(b);
    return Math.hypot(p.x - q.x, p.y - q.y) <= limit;
  };

  const end = (geometry) => {
    map.off('click', onClick);
    map.off('dblclick', onDoubleClick);
    map.off('mousemove', onMove);
    map.getCanvasContainer().removeEventListener('mouseleave', onLeave);
    document.removeEventListener('keydown', onKey, true);
    setSketch(map, []);
    if (zoomOnDoubleClick) setTimeout(() => map.doubleClickZoom.enable(), 350); // after this dblclick
    if (body.dataset.tool === tool) delete body.dataset.tool;
    if (active === handle) active = null;
    finish(geometry);
  };

  const complete = () => {
    const geometry = geometryOf(mode, vertices);
    if (geometry) end(geometry);
  };

  function onClick(event) {
    const at = [event.lngLat.lng, event.lngLat.lat];
    if (mode === 'point') {
      vertices.push(at);
      complete();
      return;
    }
    if (mode === 'polygon' && vertices.length >= 3 && near(at, vertices[0], CLOSE_PX)) {
      complete();
      return;
    }
    if (vertices.length && near(at, vertices[vertices.length - 1], SAME_PX)) return;
    vertices.push(at);
    pointer = at;
    render();
  }

  function onDoubleClick(event) {
    event.preventDefault();
    complete();
  }

  function onMove(event) {
    pointer = [event.lngLat.lng, event.lngLat.lat];
    render();
  }

  function onLeave() {
    pointer = null;
    render();
  }

  function onKey(event) {
    const typing = event.target instanceof HTMLElement && event.target.closest('input, textarea, select');
    if (typing) return;
    if (event.key === 'Escape') {
      event.preventDefault();
      end(null);
    } else if (event.key === 'Enter') {
      event.preventDefault();
      complete();
    } else if (event.key === 'Backspace') {
      event.preventDefault();
      vertices.pop();
      render();
    }
  }

  map.on('click', onClick);
  map.on('dblclick', onDoubleClick);
  map.on('mousemove', onMove);
  map.getCanvasContainer().addEventListener('mouseleave', onLeave);
  document.addEventListener('keydown', onKey, true);
  const handle = { mode, tool, done, cancel: () => end(null) };
  active = handle;
  render();
  return handle;
}

// -- geodesy on the CGCS2000 / GRS 80 ellipsoid ------------------------------------------------

const A = 6378137.0;
const F = 1 / 298.257222101;
const B = A * (1 - F);
const E2 = F * (2 - F);
const E = Math.sqrt(E2);
const RAD = Math.PI / 180;

/** The geodesic distance in metres between two lon/lat points (Vincenty's inverse; a
 * spherical fallback for nearly antipodal points, where it does not converge). */
export function distance([lon1, lat1], [lon2, lat2]) {
  const L = (lon2 - lon1) * RAD;
  const U1 = Math.atan((1 - F) * Math.tan(lat1 * RAD));
  const U2 = Math.atan((1 - F) * Math.tan(lat2 * RAD));
  const sinU1 = Math.sin(U1);
  const cosU1 = Math.cos(U1);
  const sinU2 = Math.sin(U2);
  const cosU2 = Math.cos(U2);
  let lambda = L;
  for (let n = 0; n < 200; n++) {
    const sinL = Math.sin(lambda);
    const cosL = Math.cos(lambda);
    const sinSigma = Math.hypot(cosU2 * sinL, cosU1 * sinU2 - sinU1 * cosU2 * cosL);
    if (sinSigma === 0) return 0;
    const cosSigma = sinU1 * sinU2 + cosU1 * cosU2 * cosL;
    const sigma = Math.atan2(sinSigma, cosSigma);
    const sinAlpha = (cosU1 * cosU2 * sinL) / sinSigma;
    const cos2Alpha = 1 - sinAlpha * sinAlpha;
    const cos2SigmaM = cos2Alpha === 0 ? 0 : cosSigma - (2 * sinU1 * sinU2) / cos2Alpha;
    const C = (F / 16) * cos2Alpha * (4 + F * (4 - 3 * cos2Alpha));
    const previous = lambda;
    lambda = L + (1 - C) * F * sinAlpha
      * (sigma + C * sinSigma * (cos2SigmaM + C * cosSigma * (-1 + 2 * cos2SigmaM * cos2SigmaM)));
    if (Math.abs(lambda - previous) < 1e-12) {
      const u2 = (cos2Alpha * (A * A - B * B)) / (B * B);
      const bigA = 1 + (u2 / 16384) * (4096 + u2 * (-768 + u2 * (320 - 175 * u2)));
      const bigB = (u2 / 1024) * (256 + u2 * (-128 + u2 * (74 - 47 * u2)));
      const deltaSigma = bigB * sinSigma * (cos2SigmaM + (bigB / 4) * (cosSigma * (-1 + 2 * cos2SigmaM * cos2SigmaM)
        - (bigB / 6) * cos2SigmaM * (-3 + 4 * sinSigma * sinSigma) * (-3 + 4 * cos2SigmaM * cos2SigmaM)));
      return B * bigA * (sigma - deltaSigma);
    }
  }
  const h = Math.sin(((lat2 - lat1) * RAD) / 2) ** 2
    + Math.cos(lat1 * RAD) * Math.cos(lat2 * RAD) * Math.sin(L / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** The geodesic length in metres of a path of lon/lat points. */
export function length(coordinates) {
  let total = 0;
  for (let n = 1; n < coordinates.length; n++) total += distance(coordinates[n - 1], coordinates[n]);
  return total;
}

function q(phi) {
  const s = Math.sin(phi);
  return (1 - E2) * (s / (1 - E2 * s * s) - (1 / (2 * E)) * Math.log((1 - E * s) / (1 + E * s)));
}

const QP = q(Math.PI / 2);
const AUTHALIC_RADIUS = A * Math.sqrt(QP / 2);

/** The authalic latitude (radians) of a geodetic latitude in degrees. */
function authalic(lat) {
  return Math.asin(Math.max(-1, Math.min(1, q(lat * RAD) / QP)));
}

/** The area in square metres of a ring of lon/lat points (closed or not), unsigned. */
function ringArea(ring) {
  const points = ring.length > 1 && ring[0][0] === ring[ring.length - 1][0]
    && ring[0][1] === ring[ring.length - 1][1] ? ring.slice(0, -1) : ring;
  if (points.length < 3) return 0;
  let excess = 0;
  for (let n = 0; n < points.length; n++) {
    const [lon1, lat1] = points[n];
    const [lon2, lat2] = points[(n + 1) % points.length];
    let dLon = (lon2 - lon1) * RAD;
    if (dLon > Math.PI) dLon -= 2 * Math.PI;
    if (dLon < -Math.PI) dLon += 2 * Math.PI;
    const t1 = Math.tan(authalic(lat1) / 2);
    const t2 = Math.tan(authalic(lat2) / 2);
    // The signed excess of the quadrilateral between the edge and the equator.
    excess += 2 * Math.atan2(Math.tan(dLon / 2) * (t1 + t2), 1 + t1 * t2);
  }
  return Math.abs(excess) * AUTHALIC_RADIUS * AUTHALIC_RADIUS;
}

/** The geodesic area in square metres of a GeoJSON Polygon or MultiPolygon (holes out). */
export function area(geometry) {
  const polygons = geometry.type === 'Polygon' ? [geometry.coordinates] : geometry.type === 'MultiPolygon' ? geometry.coordinates : [];
  let total = 0;
  for (const rings of polygons) {
    rings.forEach((ring, n) => { total += (n === 0 ? 1 : -1) * ringArea(ring); });
  }
  return total;
}

/** The perimeter in metres of a GeoJSON Polygon's outer ring. */
export function perimeter(geometry) {
  return geometry.type === 'Polygon' ? length(geometry.coordinates[0]) : 0;
}

// -- numbers for people ------------------------------------------------------------------------

const decimals = (value, digits) => value.toLocaleString('zh-CN', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** A length: metres under a kilometre, else kilometres. */
export function formatLength(metres) {
  return metres < 1000 ? `${decimals(metres, 1)} ${t('m')}` : `${decimals(metres / 1000, 3)} ${t('km')}`;
}

/** An area in m², hectares (公顷) and km². */
export function formatArea(squareMetres) {
  const parts = [`${decimals(squareMetres, squareMetres < 100 ? 1 : 0)} m²`, `${decimals(squareMetres / 1e4, 4)} ${t('ha')}`];
  if (squareMetres >= 1e5) parts.push(`${decimals(squareMetres / 1e6, 4)} km²`);
  return parts.join(' · ');
}
