// What the command panel's modules share (command.js; report.js, a new incident;
// closures.js, the road closures; reach.js, the stations' service areas): the incidents'
// statuses and levels, server times, buttons and fields, a point of a geometry, GeoJSON
// wrappers and the legend's blocks. The requests and the DOM builder are common.js's.

import { t } from './i18n.js';
import { element } from './common.js';

export const STATUS = {
  reported: { label: t('Reported'), colour: '#e03131' },
  dispatched: { label: t('Dispatched'), colour: '#f08c00' },
  'on-scene': { label: t('Arrived'), colour: '#1971c2' },
  closed: { label: t('Closed'), colour: '#868e96' },
};
export const LEVELS = { 1: `1 ${t('Most severe')}`, 2: `2 ${t('Major')}`, 3: `3 ${t('Serious')}`, 4: `4 ${t('Minor')}` };

/** Milliseconds of a server time; a timestamp without a zone is UTC (the incidents'). */
export function ms(text) {
  if (!text) return NaN;
  return Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(text) ? text : `${text}Z`);
}

/** A local time of day to the minute, with the date when it is not today's. */
export function clock(text) {
  const t = ms(text);
  if (Number.isNaN(t)) return '—';
  const date = new Date(t);
  const options = { hour: '2-digit', minute: '2-digit', hour12: false };
  if (date.toDateString() !== new Date().toDateString()) Object.assign(options, { month: '2-digit', day: '2-digit' });
  return date.toLocaleString('zh-CN', options);
}

export function button(text, onClick, props = {}) {
  const made = element('button', { type: 'button', textContent: text, ...props });
  made.addEventListener('click', onClick);
  return made;
}

export function labelled(text, control) {
  return element('label', { className: 'field' }, element('span', { textContent: text }), control);
}

/** A point of a geometry to go to or put an incident at: a point, a line's middle vertex,
 * the middle of a polygon's bounds. */
export function pointOf(geometry) {
  if (!geometry) return null;
  const flat = [];
  const walk = (c) => { if (typeof c[0] === 'number') flat.push(c); else c.forEach(walk); };
  walk(geometry.coordinates || []);
  if (!flat.length) return null;
  if (geometry.type.endsWith('Point')) return flat[0];
  if (geometry.type.endsWith('LineString')) return flat[Math.floor(flat.length / 2)];
  const xs = flat.map((c) => c[0]);
  const ys = flat.map((c) => c[1]);
  return [(Math.min(...xs) + Math.max(...xs)) / 2, (Math.min(...ys) + Math.max(...ys)) / 2];
}

/** Fly to a place, closing in to ``zoom`` when the map shows less. */
export function closeIn(map, at, zoom = 15) {
  map.flyTo({ center: at, zoom: Math.max(map.getZoom(), zoom) });
}

export const feature = (geometry, properties) => ({ type: 'Feature', geometry, properties });
export const collection = (features = []) => ({ type: 'FeatureCollection', features });

/** A block of the legend: its title and entries [label, colour, symbol]; greyed when off. */
export function legendBlock(layer, title, entries, off = false) {
  const items = entries.map(([label, colour, symbol]) => {
    const swatch = element('span', { className: `swatch ${symbol}` });
    swatch.style.setProperty('--colour', colour);
    return element('li', {}, swatch, element('span', { textContent: label }));
  });
  const made = element('div', { className: off ? 'off' : '' }, element('h3', { textContent: title }), element('ul', {}, ...items));
  made.dataset.layer = layer;
  return made;
}
