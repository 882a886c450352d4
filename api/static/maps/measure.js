// The measure tool (see maps.js): 测距 a geodesic length, 测面 a geodesic area (and its
// perimeter), computed in the browser on the CGCS2000 ellipsoid (draw.js). The readout
// follows the pointer while drawing; each finished measure stays on the map, labelled,
// until 清除 Clear.

import { t } from './i18n.js';
import { element, section } from './common.js';
import {
  area, current, formatArea, formatLength, INSTRUCTIONS, length, perimeter, sketch,
} from './draw.js';

const SOURCE = 'measure';

function ensureLayers(map) {
  if (map.getSource(SOURCE)) return;
  map.addSource(SOURCE, { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
  map.addLayer({
    id: 'measure-fill', type: 'fill', source: SOURCE, filter: ['==', ['geometry-type'], 'Polygon'],
    paint: { 'fill-color': '#e8590c', 'fill-opacity': 0.15 },
  });
  map.addLayer({
    id: 'measure-line', type: 'line', source: SOURCE,
    layout: { 'line-cap': 'round', 'line-join': 'round' },
    paint: { 'line-color': '#e8590c', 'line-width': 2.5 },
  });
}

/** The readout of a shape: text, and the figures as data attributes. */
function readout(geometry) {
  if (geometry.type === 'LineString') {
    const metres = length(geometry.coordinates);
    return { text: `${t('Length')} ${formatLength(metres)}`, short: formatLength(metres), data: { metres } };
  }
  const squareMetres = area(geometry);
  const around = perimeter(geometry);
  return {
    text: `${t('Area')} ${formatArea(squareMetres)}${t('; ')}${t('Perimeter')} ${formatLength(around)}`,
    short: formatArea(squareMetres),
    data: { squareMetres, metres: around },
  };
}

function label(maplibregl, text, className) {
  const box = element('div', { className: `measure-label ${className}`, textContent: text });
  return new maplibregl.Marker({ element: box, anchor: 'left', offset: [10, 0] });
}

export function install({ map, maplibregl }) {
  const panel = section('measure');
  const distanceButton = element('button', { type: 'button', textContent: t('Measure a distance') });
  distanceButton.dataset.mode = 'line';
  const areaButton = element('button', { type: 'button', textContent: t('Measure an area') });
  areaButton.dataset.mode = 'polygon';
  const clearButton = element('button', { type: 'button', textContent: t('Clear'), className: 'clear' });
  const hint = element('p', { className: 'hint', hidden: true });
  const value = element('output', { className: 'value', textContent: '—' });
  value.dataset.state = 'idle';
  panel.replaceChildren(
    element('h2', { textContent: t('Measure') }),
    element('div', { className: 'buttons' }, distanceButton, areaButton, clearButton),
    hint, value,
  );
  ensureLayers(map);
  const finished = [];
  const labels = [];
  let live = null;

  const show = (geometry, state) => {
    for (const key of ['metres', 'squareMetres', 'geometry']) delete value.dataset[key];
    value.dataset.state = state;
    if (!geometry) {
      value.textContent = '—';
      return null;
    }
    const shown = readout(geometry);
    value.textContent = shown.text;
    if (shown.data.metres !== undefined) value.dataset.metres = shown.data.metres.toFixed(3);
    if (shown.data.squareMetres !== undefined) value.dataset.squareMetres = shown.data.squareMetres.toFixed(3);
    value.dataset.geometry = JSON.stringify(geometry);
    return shown;
  };

  const stopLive = () => {
    live?.remove();
    live = null;
  };

  const start = async (mode, button) => {
    if (current()?.tool === 'measure' && button.classList.contains('active')) {
      current().cancel(); // a second press of the same button stops
      return;
    }
    for (const b of [distanceButton, areaButton]) b.classList.toggle('active', b === button);
    hint.textContent = INSTRUCTIONS[mode];
    hint.hidden = false;
    const onChange = (vertices, pointer) => {
      const path = pointer ? [...vertices, pointer] : vertices;
      const geometry = mode === 'line'
        ? (path.length >= 2 ? { type: 'LineString', coordinates: path } : null)
        : (path.length >= 3 ? { type: 'Polygon', coordinates: [[...path, path[0]]] } : null);
      const shown = show(geometry, 'drawing');
      if (shown && pointer) {
        if (!live) live = label(maplibregl, '', 'live').setLngLat(pointer).addTo(map);
        live.setLngLat(pointer);
        live.getElement().textContent = shown.short;
      } else {
        stopLive();
      }
    };
    const handle = sketch(map, mode, { tool: 'measure', onChange });
    const geometry = await handle.done;
    stopLive();
    button.classList.remove('active');
    hint.hidden = true;
    if (!geometry) {
      show(null, 'idle');
      return;
    }
    const shown = show(geometry, 'done');
    finished.push({ type: 'Feature', properties: {}, geometry });
    map.getSource(SOURCE).setData({ type: 'FeatureCollection', features: finished });
    const ring = geometry.type === 'Polygon' ? geometry.coordinates[0] : geometry.coordinates;
    const at = geometry.type === 'Polygon' ? centre(ring) : ring[ring.length - 1];
    labels.push(label(maplibregl, shown.short, 'final').setLngLat(at).addTo(map));
  };

  distanceButton.addEventListener('click', () => start('line', distanceButton));
  areaButton.addEventListener('click', () => start('polygon', areaButton));
  clearButton.addEventListener('click', () => {
    if (current()?.tool === 'measure') current().cancel();
    finished.length = 0;
    map.getSource(SOURCE).setData({ type: 'FeatureCollection', features: [] });
    for (const marker of labels.splice(0)) marker.remove();
    show(null, 'idle');
  });
}

/** Where to label a polygon: the mean of its corners (inside for the usual shapes). */
function centre(ring) {
  const corners = ring.slice(0, -1);
  const lon = corners.reduce((s, c) => s + c[0], 0) / corners.length;
  const lat = corners.reduce((s, c) => s + c[1], 0) / corners.length;
  return [lon, lat];
}
