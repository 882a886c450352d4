// The search tool (see maps.js): one box at the top of the panel for 地名 place names, 编号
// IDs and 坐标 coordinates. The platform is offline (no geocoder): names come from the map's
// own layers, each searched on its configured ``search`` attributes through the features API
// (a CQL2 filter, case-insensitive substring match), a few features per layer, the layers in
// parallel. Coordinates typed as decimal degrees (112.0 22.9; 22.9N 112.0E) or DMS
// (112°00'00"E 22°54'00"N) give a "go to" result first.
//
// Choosing a result fits the map to the feature, highlights it, shows the layer if it was
// hidden (through the layer switcher, which stays in step) and opens its attributes.
//
// The box is an ARIA combobox over a listbox of options grouped by layer. For tests and
// scripts the section carries data-state (idle, pending, done) and data-query (the text of
// the results shown), and data-chosen ("layer/id" or "point") once the map has arrived;
// each option carries data-layer and data-id (or data-lon and data-lat).

import { t } from './i18n.js';
import {
  element, getJSON, popupContent, say, section,
} from './common.js';

const DEBOUNCE_MS = 250;
const MIN_CHARS = 2;
const MAX_CHARS = 100;
const PER_LAYER = 5;
const POINT_ZOOM = 16;
const HIGHLIGHT = 'search-highlight';
const HIGHLIGHT_LAYERS = [
  {
    id: 'search-highlight-fill', type: 'fill', source: HIGHLIGHT,
    filter: ['match', ['geometry-type'], ['Polygon', 'MultiPolygon'], true, false],
    paint: { 'fill-color': '#ffd43b', 'fill-opacity': 0.3 },
  },
  {
    id: 'search-highlight-casing', type: 'line', source: HIGHLIGHT,
    filter: ['match', ['geometry-type'], ['Point', 'MultiPoint'], false, true],
    layout: { 'line-cap': 'round', 'line-join': 'round' },
    paint: { 'line-color': '#ffffff', 'line-width': 7, 'line-opacity': 0.9 },
  },
  {
    id: 'search-highlight-line', type: 'line', source: HIGHLIGHT,
    filter: ['match', ['geometry-type'], ['Point', 'MultiPoint'], false, true],
    layout: { 'line-cap': 'round', 'line-join': 'round' },
    paint: { 'line-color': '#f08c00', 'line-width': 3.5 },
  },
  {
    id: 'search-highlight-point', type: 'circle', source: HIGHLIGHT,
    filter: ['match', ['geometry-type'], ['Point', 'MultiPoint'], true, false],
    paint: {
      'circle-radius': 12, 'circle-color': 'rgba(255, 212, 59, 0.35)',
      'circle-stroke-color': '#f08c00', 'circle-stroke-width': 3,
    },
  },
];
const EMPTY = { type: 'FeatureCollection', features: [] };

// -- requests ---------------------------------------------------------------------------------

/** A CQL2 text string literal: quotes doubled. */
function literal(text) {
  return `'${text.replaceAll("'", "''")}'`;
}

/** The text as a LIKE pattern matching itself only. The platform's filters (spatial/
 * filters.py) become PostgreSQL's LIKE, whose escape character is the backslash (the cql2
 * parser passes it through): escape it first, then the wildcards. The browser tests check
 * that a typed ``_`` matches no other character. */
function escapeLike(text) {
  return text.replaceAll('\\', '\\\\').replaceAll('%', '\\%').replaceAll('_', '\\_');
}

/** A property name as a CQL2 text identifier (double quotes, doubled inside). */
function property(name) {
  return `"${name.replaceAll('"', '""')}"`;
}

/** How each search attribute can be matched, from the collection's queryables: text by a
 * case-insensitive LIKE, numbers by equality (when the text is a number), others not. */
function kindsOf(queryables, names) {
  const props = queryables?.properties || {};
  const kinds = {};
  for (const name of names) {
    const schema = props[name];
    const types = [].concat(schema?.type ?? 'string');
    if (types.includes('string') && !['date', 'date-time', 'time'].includes(schema?.format)) {
      kinds[name] = 'text';
    } else if (types.includes('integer') || types.includes('number')) {
      kinds[name] = types.includes('integer') ? 'integer' : 'number';
    }
  }
  return kinds;
}

/** The words of a search: each must match one of a feature's search attributes. */
export function wordsOf(text) {
  return text.split(/\s+/).filter(Boolean).slice(0, 8);
}

/** The CQL2 text condition of one word: any attribute holds it. */
function wordFilter(kinds, word) {
  const pattern = literal(`%${escapeLike(word)}%`);
  const number = /^[+-]?\d{1,15}(\.\d{1,15})?$/.test(word) ? Number(word) : null;
  const terms = [];
  for (const [name, kind] of Object.entries(kinds)) {
    if (kind === 'text') terms.push(`CASEI(${property(name)}) LIKE CASEI(${pattern})`);
    else if (number !== null && (kind === 'number' || Number.isInteger(number))) {
      terms.push(`${property(name)} = ${number}`);
    }
  }
  return terms.length ? terms.join(' OR ') : null;
}

/** The CQL2 text filter of a search on a layer (every word, each in any attribute), or
 * null when nothing can match. */
export function searchFilter(kinds, text) {
  const each = wordsOf(text).map((word) => wordFilter(kinds, word));
  if (!each.length || each.includes(null)) return null;
  return each.length === 1 ? each[0] : each.map((f) => `(${f})`).join(' AND ');
}

// -- coordinates ------------------------------------------------------------------------------

const NUMBER = String.raw`(\d+(?:\.\d+)?)`;
const DMS = String.raw`${NUMBER}(?:\s*°(?:\s*${NUMBER}\s*'(?:\s*${NUMBER}\s*")?)?)?`;
const PART = new RegExp(String.raw`([NSEW])?\s*([+-])?${DMS}(?:\s*([NSEW]))?`, 'y');
const PREFIXED = new RegExp(String.raw`([NSEW])\s*()${DMS}()`, 'y'); // N22.9 E112.0
const SEPARATOR = /\s*[,;/]\s*|\s+/y;

function normalise(text) {
  return text.trim().toUpperCase()
    .replace(/[，、]/g, ',').replace(/；/g, ';')
    .replace(/[º˚]/g, '°').replace(/度/g, '°')
    .replace(/[′‘’]/g, "'").replace(/分/g, "'")
    .replace(/[″“”]|''/g, '"').replace(/秒/g, '"')
    .replace(/东经|东/g, 'E').replace(/西经|西/g, 'W')
    .replace(/北纬|北/g, 'N').replace(/南纬|南/g, 'S');
}

function part(text, at) {
  PART.lastIndex = at;
  let m = PART.exec(text);
  if (m && m[1] && m[6]) { // the letter after is the next part's
    PREFIXED.lastIndex = at;
    m = PREFIXED.exec(text);
    if (m) m.lastIndex = PREFIXED.lastIndex;
  } else if (m) m.lastIndex = PART.lastIndex;
  if (!m || m.index !== at || m[0] === '') return null;
  const [, before, sign, degrees, minutes, seconds, after] = m;
  if (before && (after || sign)) return null;
  if ((minutes && Number(minutes) >= 60) || (seconds && Number(seconds) >= 60)) return null;
  const letter = before || after || null;
  let value = Number(degrees) + Number(minutes || 0) / 60 + Number(seconds || 0) / 3600;
  if (sign === '-' || letter === 'S' || letter === 'W') value = -value;
  const marked = Boolean(letter) || /['"°]$/.test(m[0]);
  return { value, letter, end: m.lastIndex, marked };
}

/** Coordinates typed in the box as [lon, lat], or null. Decimal degrees or DMS, with or
 * without N/S/E/W (or 东经/北纬); unmarked pairs are lon, lat, unless only the first fits
 * a latitude and the second does not. */
export function parseCoordinates(text) {
  const s = normalise(text);
  const first = part(s, 0);
  if (!first) return null;
  SEPARATOR.lastIndex = first.end;
  let at = first.end;
  const gap = SEPARATOR.exec(s);
  if (gap && gap.index === first.end) at = SEPARATOR.lastIndex;
  else if (!first.marked) return null;
  const second = part(s, at);
  if (!second || s.slice(second.end).trim() !== '') return null;
  const axis = (p) => (p.letter === 'E' || p.letter === 'W' ? 'lon' : p.letter ? 'lat' : null);
  let [a, b] = [axis(first), axis(second)];
  if (a && a === b) return null;
  if (!a && !b) {
    const swapped = Math.abs(first.value) <= 90 && Math.abs(second.value) > 90;
    [a, b] = swapped ? ['lat', 'lon'] : ['lon', 'lat'];
  } else if (!a) a = b === 'lon' ? 'lat' : 'lon';
  else if (!b) b = a === 'lon' ? 'lat' : 'lon';
  const lon = a === 'lon' ? first.value : second.value;
  const lat = a === 'lat' ? first.value : second.value;
  if (Math.abs(lon) > 180 || Math.abs(lat) > 90) return null;
  return [lon, lat];
}

function formatPoint([lon, lat]) {
  const ew = `${Math.abs(lon).toFixed(6)}°${lon < 0 ? 'W' : 'E'}`;
  const ns = `${Math.abs(lat).toFixed(6)}°${lat < 0 ? 'S' : 'N'}`;
  return `${ew} ${ns}`;
}

// -- geometry ---------------------------------------------------------------------------------

function positions(geometry, out = []) {
  if (!geometry) return out;
  if (geometry.type === 'GeometryCollection') {
    for (const g of geometry.geometries) positions(g, out);
    return out;
  }
  const walk = (c) => {
    if (typeof c[0] === 'number') out.push(c);
    else for (const inner of c) walk(inner);
  };
  walk(geometry.coordinates);
  return out;
}

function bounds(geometry) {
  const all = positions(geometry);
  if (!all.length) return null;
  let [west, south, east, north] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [x, y] of all) {
    west = Math.min(west, x); east = Math.max(east, x);
    south = Math.min(south, y); north = Math.max(north, y);
  }
  return [west, south, east, north];
}

/** A point inside a polygon's rings: the middle of the widest inside stretch of the
 * horizontal line through the middle of its bounds. */
function insidePoint(rings) {
  const [, south, , north] = bounds({ type: 'Polygon', coordinates: rings });
  const y = (south + north) / 2;
  const xs = [];
  for (const ring of rings) {
    for (let i = 0; i < ring.length - 1; i += 1) {
      const [[x1, y1], [x2, y2]] = [ring[i], ring[i + 1]];
      if ((y1 > y) !== (y2 > y)) xs.push(x1 + ((y - y1) * (x2 - x1)) / (y2 - y1));
    }
  }
  xs.sort((p, q) => p - q);
  let best = null;
  for (let i = 0; i + 1 < xs.length; i += 2) {
    if (!best || xs[i + 1] - xs[i] > best[1] - best[0]) best = [xs[i], xs[i + 1]];
  }
  return best ? [(best[0] + best[1]) / 2, y] : rings[0][0];
}

/** Where the popup of a feature points: the point, the middle vertex of a line, a point
 * inside the largest polygon. */
function anchor(geometry) {
  const middle = (line) => line[Math.floor(line.length / 2)];
  const size = (rings) => {
    const [west, south, east, north] = bounds({ type: 'Polygon', coordinates: rings });
    return (east - west) * (north - south);
  };
  switch (geometry.type) {
    case 'Point': return geometry.coordinates;
    case 'MultiPoint': return geometry.coordinates[0];
    case 'LineString': return middle(geometry.coordinates);
    case 'MultiLineString': return middle([...geometry.coordinates].sort((p, q) => q.length - p.length)[0]);
    case 'Polygon': return insidePoint(geometry.coordinates);
    case 'MultiPolygon': return insidePoint([...geometry.coordinates].sort((p, q) => size(q) - size(p))[0]);
    default: {
      const [west, south, east, north] = bounds(geometry);
      return [(west + east) / 2, (south + north) / 2];
    }
  }
}

// -- the results ------------------------------------------------------------------------------

function shown(value) {
  return value === undefined || value === null ? '' : String(value);
}

function holds(value, query) {
  const lower = value.toLowerCase();
  return wordsOf(query).some((word) => lower.includes(word.toLowerCase()));
}

/** The text with every case-insensitive occurrence of the query's words marked. */
function marked(text, query) {
  const lower = text.toLowerCase();
  if (lower.length !== text.length) return [text]; // case folding moved the offsets
  const hit = new Array(text.length).fill(false);
  for (const word of wordsOf(query.toLowerCase())) {
    for (let at = lower.indexOf(word); at >= 0; at = lower.indexOf(word, at + 1)) {
      hit.fill(true, at, at + word.length);
    }
  }
  const parts = [];
  for (let i = 0; i < text.length;) {
    let j = i;
    while (j < text.length && hit[j] === hit[i]) j += 1;
    const piece = text.slice(i, j);
    parts.push(hit[i] ? element('mark', { textContent: piece }) : piece);
    i = j;
  }
  return parts;
}

/** Best first: an exact match, then a prefix, then anywhere; then shorter values. */
function rank(layer, feature, query) {
  const q = query.toLowerCase();
  let best = 4;
  for (const name of layer.search) {
    const value = shown(feature.properties?.[name]).toLowerCase();
    const length = Math.min(value.length, 999) / 1000;
    if (value === q) best = Math.min(best, 0 + length);
    else if (value.startsWith(q)) best = Math.min(best, 1 + length);
    else if (value.includes(q)) best = Math.min(best, 2 + length);
    else if (value && holds(value, q)) best = Math.min(best, 3 + length);
  }
  return best;
}

// -- the list (an ARIA listbox under the combobox) --------------------------------------------

/** The listbox's options: each an ``li`` and what choosing it does; one is active. */
class Listbox {
  constructor(input, list) {
    this.input = input;
    this.list = list;
    this.options = [];
    this.active = -1;
    this.groups = 0;
  }

  reset() {
    this.options = [];
    this.active = -1;
  }

  open(yes) {
    this.list.hidden = !yes;
    this.input.setAttribute('aria-expanded', String(yes));
    if (!yes) this.activate(-1);
  }

  activate(n) {
    this.options.forEach(({ li }, i) => li.setAttribute('aria-selected', String(i === n)));
    this.active = n;
    if (n < 0) {
      this.input.removeAttribute('aria-activedescendant');
      return;
    }
    this.input.setAttribute('aria-activedescendant', this.options[n].li.id);
    this.options[n].li.scrollIntoView({ block: 'nearest' });
  }

  /** Down (1) or up (-1), round the end; opens a closed list. */
  step(by) {
    const n = this.options.length;
    if (this.list.hidden) this.open(true);
    this.activate(this.active < 0 ? (by > 0 ? 0 : n - 1) : (this.active + by + n) % n);
  }

  pick(n) {
    const chosen = this.options[n];
    if (!chosen) return;
    this.open(false);
    chosen.choose();
  }

  option(choose, ...content) {
    const n = this.options.length;
    const li = element('li', { id: `search-option-${n}`, className: 'search-option' }, ...content);
    li.setAttribute('role', 'option');
    li.setAttribute('aria-selected', 'false');
    li.addEventListener('mousedown', (event) => event.preventDefault()); // keep the focus
    const at = () => this.options.findIndex((o) => o.li === li);
    li.addEventListener('click', () => this.pick(at()));
    li.addEventListener('mousemove', () => { if (this.active !== at()) this.activate(at()); });
    this.options.push({ li, choose });
    return li;
  }

  /** The options in the order the list shows them (groups are sorted after they are made). */
  follow() {
    const ahead = Node.DOCUMENT_POSITION_FOLLOWING;
    this.options.sort((p, q) => (p.li.compareDocumentPosition(q.li) & ahead ? -1 : 1));
    this.options.forEach(({ li }, i) => { li.id = `search-option-${i}`; });
  }

  group(title, layerId, ...items) {
    this.groups += 1;
    const heading = element('div', {
      className: 'search-group-title', id: `search-group-${this.groups}`, textContent: title,
    });
    heading.setAttribute('role', 'presentation');
    const ul = element('ul', {}, ...items);
    ul.setAttribute('role', 'presentation');
    const block = element('div', { className: 'search-group' }, heading, ul);
    block.setAttribute('role', 'group');
    block.setAttribute('aria-labelledby', heading.id);
    if (layerId) block.dataset.layer = layerId;
    return block;
  }
}

function message(className, text) {
  const line = element('div', { className, textContent: text });
  line.setAttribute('role', 'presentation');
  return line;
}

/** A feature's option: its first search value, the other values that match, and two more
 * popup attributes to tell like names apart. */
function resultContent(layer, feature, query) {
  const props = feature.properties || {};
  const label = layer.search.map((name) => shown(props[name])).find(Boolean) || `#${feature.id}`;
  const details = [];
  for (const name of layer.search) {
    const value = shown(props[name]);
    if (!value || value === label || !holds(value, query)) continue;
    details.push(element('span', { className: 'search-attr' },
      element('span', { className: 'search-name', textContent: `${name} ` }), ...marked(value, query)));
  }
  for (const name of layer.popup.filter((p) => !layer.search.includes(p)).slice(0, 2)) {
    const value = shown(props[name]);
    if (value) details.push(element('span', { className: 'search-extra', textContent: value }));
  }
  return {
    label,
    content: [element('span', { className: 'search-label' }, ...marked(label, query)),
      element('span', { className: 'search-details' }, ...details)],
    title: layer.search.map((name) => `${name}: ${shown(props[name]) || '—'}`).join('\n'),
  };
}

// -- the tool ---------------------------------------------------------------------------------

class SearchTool {
  constructor({ map, maplibregl, config }) {
    this.map = map;
    this.maplibregl = maplibregl;
    this.layers = [...config.layers].reverse() // the switcher's order: top layer first
      .filter((layer) => layer.kind !== 'raster' && layer.items && layer.search?.length);
    this.queryables = new Map(); // collection -> Promise of its search kinds
    this.timer = null;
    this.controller = null;
    this.pending = '';
    this.pickFirst = false;
    this.complained = false;
    this.popup = null;
    this.marker = null;
    this.arrivals = 0;
    this.build();
  }

  build() {
    const hint = t('Search places, IDs or coordinates');
    this.panel = section('search');
    this.input = element('input', {
      type: 'search', id: 'search-box', className: 'search-box', autocomplete: 'off',
      spellcheck: false, placeholder: hint, maxLength: MAX_CHARS,
    });
    this.list = element('div', { id: 'search-list', className: 'search-list', hidden: true });
    this.note = element('p', { className: 'search-note' });
    this.note.setAttribute('aria-live', 'polite');
    const attributes = {
      role: 'combobox', 'aria-label': hint, 'aria-autocomplete': 'list',
      'aria-expanded': 'false', 'aria-controls': this.list.id,
    };
    for (const [name, value] of Object.entries(attributes)) this.input.setAttribute(name, value);
    this.list.setAttribute('role', 'listbox');
    this.list.setAttribute('aria-label', t('Search results'));
    this.listbox = new Listbox(this.input, this.list);
    const field = element('div', { className: 'search-field' }, this.input, this.list);
    this.panel.replaceChildren(field, this.note);
    this.panel.dataset.state = 'idle';
    this.input.addEventListener('input', () => this.typed());
    this.input.addEventListener('keydown', (event) => this.key(event));
    this.input.addEventListener('focus', () => {
      if (this.list.children.length && this.panel.dataset.state === 'done') this.listbox.open(true);
    });
    this.input.addEventListener('blur', () => this.listbox.open(false));
  }

  // -- typing and keys

  typed() {
    clearTimeout(this.timer);
    this.controller?.abort();
    const query = this.input.value.trim().replace(/\p{Cc}/gu, '').slice(0, MAX_CHARS);
    this.pickFirst = false;
    if ([...query].length < MIN_CHARS) {
      if (!query) this.unmark(); // a cleared box clears the map's marks too
      this.listbox.reset();
      this.list.replaceChildren();
      this.listbox.open(false);
      this.note.textContent = '';
      this.panel.dataset.state = 'idle';
      this.list.removeAttribute('aria-busy');
      delete this.panel.dataset.query;
      return;
    }
    this.panel.dataset.state = 'pending';
    this.list.setAttribute('aria-busy', 'true'); // the results shown are the last text's
    this.pending = query;
    this.timer = setTimeout(() => this.run(query), DEBOUNCE_MS);
  }

  key(event) {
    const { listbox } = this;
    const has = listbox.options.length > 0;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      if (!has) return;
      event.preventDefault();
      listbox.step(event.key === 'ArrowDown' ? 1 : -1);
    } else if (event.key === 'Enter') {
      if (this.panel.dataset.state === 'pending') { // Enter before the results came: the first
        event.preventDefault();
        this.pickFirst = true;
        clearTimeout(this.timer);
        this.run(this.pending);
        return;
      }
      if (!has || this.list.hidden) return;
      event.preventDefault();
      listbox.pick(listbox.active >= 0 ? listbox.active : 0);
    } else if (event.key === 'Escape') {
      if (this.list.hidden) return; // then the search box's own Escape: clear the text
      event.preventDefault();
      listbox.open(false);
    }
  }

  run(query) {
    this.search(query).then((answered) => {
      if (!answered) return; // a later search took over
      if (this.pickFirst && this.listbox.options.length) this.listbox.pick(0);
      this.pickFirst = false;
    }).catch((error) => {
      if (error.name === 'AbortError') return;
      this.complain(error.message);
      this.list.removeAttribute('aria-busy');
      this.panel.dataset.state = 'done';
    });
  }

  complain(text) {
    if (text) {
      say(text, true);
      this.complained = true;
    } else if (this.complained) {
      say('');
      this.complained = false;
    }
  }

  // -- searching

  kinds(layer) {
    if (!this.queryables.has(layer.collection)) {
      const url = `${layer.items.replace(/\/items$/, '/queryables')}?f=json`;
      this.queryables.set(layer.collection, getJSON(url)
        .then((schema) => kindsOf(schema, layer.search))
        .catch(() => kindsOf(null, layer.search))); // types unknown: try them as text
    }
    return this.queryables.get(layer.collection);
  }

  async searchLayer(layer, query, signal) {
    const filter = searchFilter(await this.kinds(layer), query);
    if (filter === null) return { features: [], matched: 0 };
    const url = new URL(layer.items);
    url.searchParams.set('filter', filter);
    url.searchParams.set('filter-lang', 'cql2-text');
    url.searchParams.set('limit', String(PER_LAYER));
    url.searchParams.set('f', 'json');
    const found = await getJSON(url.toString(), { signal });
    const features = (found.features || [])
      .map((f, i) => [rank(layer, f, query), i, f])
      .sort((p, q) => p[0] - q[0] || p[1] - q[1])
      .map(([, , f]) => f);
    return { features, matched: found.numberMatched ?? features.length };
  }

  /** Search every layer at once and list the results; false if a later search took over. */
  async search(query) {
    this.controller?.abort();
    this.controller = new AbortController();
    const { signal } = this.controller;
    const outcomes = await Promise.allSettled(
      this.layers.map((layer) => this.searchLayer(layer, query, signal)),
    );
    if (signal.aborted) return false;
    this.render(query, parseCoordinates(query), outcomes);
    return true;
  }

  render(query, point, outcomes) {
    const { listbox } = this;
    listbox.reset();
    const blocks = [];
    if (point) {
      const li = listbox.option(() => this.choosePoint(point),
        element('span', { className: 'search-label', textContent: t('Go to {point}', { point: formatPoint(point) }) }));
      Object.assign(li.dataset, { kind: 'point', lon: String(point[0]), lat: String(point[1]) });
      blocks.push(listbox.group(t('Coordinates'), null, li));
    }
    const problems = [];
    const found = []; // [order, block]: the best matches first, place layers before GPS ones
    let count = point ? 1 : 0;
    outcomes.forEach((outcome, n) => {
      const layer = this.layers[n];
      if (outcome.status === 'rejected') {
        if (outcome.reason?.name === 'AbortError') return;
        const reason = outcome.reason?.message || String(outcome.reason);
        problems.push(`${layer.title}: ${reason}`);
        const line = message('search-error', `${t('Error')}: ${reason}`);
        blocks.push(listbox.group(layer.title, layer.id, line));
        return;
      }
      const { features, matched } = outcome.value;
      if (!features.length) return;
      count += features.length;
      const items = features.map((feature) => {
        const { label, content, title } = resultContent(layer, feature, query);
        const li = listbox.option(() => this.chooseFeature(layer, feature, label), ...content);
        Object.assign(li.dataset, { layer: layer.id, id: String(feature.id) });
        li.title = title;
        return li;
      });
      const heading = matched > features.length
        ? `${layer.title} (${features.length}/${matched})` : layer.title;
      const best = Math.min(...features.map((f) => rank(layer, f, query)));
      found.push([[Math.floor(best), layer.kind === 'gps' ? 1 : 0, n], listbox.group(heading, layer.id, ...items)]);
    });
    found.sort(([p], [q]) => p[0] - q[0] || p[1] - q[1] || p[2] - q[2]);
    blocks.push(...found.map(([, block]) => block));
    if (!blocks.length) blocks.push(message('search-empty', t('No results')));
    this.list.replaceChildren(...blocks);
    listbox.follow();
    this.complain(problems.join('; '));
    const none = problems.length ? t('Search failed') : t('No results');
    this.note.textContent = count ? t('{n} results', { n: count }) : none;
    this.panel.dataset.query = query;
    this.panel.dataset.state = 'done';
    this.list.removeAttribute('aria-busy');
    listbox.open(document.activeElement === this.input);
  }

  // -- choosing

  /** Mark the section "chosen" once the camera has stopped (tests wait for it). */
  arrive(tag) {
    delete this.panel.dataset.chosen;
    this.arrivals += 1;
    const ticket = this.arrivals;
    const finish = () => {
      if (ticket === this.arrivals) this.panel.dataset.chosen = tag; // not an earlier choice's
    };
    this.map.once('moveend', finish);
    setTimeout(finish, 4000); // no move at all (already there)
  }

  highlight(feature) {
    const { map } = this;
    if (!map.getSource(HIGHLIGHT)) map.addSource(HIGHLIGHT, { type: 'geojson', data: EMPTY });
    for (const style of HIGHLIGHT_LAYERS) {
      if (map.getLayer(style.id)) map.moveLayer(style.id); // back above later tools' layers
      else map.addLayer(style);
    }
    map.getSource(HIGHLIGHT).setData(feature || EMPTY);
  }

  /** Show a hidden layer through its switcher box, so the box and the legend agree. */
  showLayer(layer) {
    const { map } = this;
    const styles = layer.maplibre.map((s) => s.id).filter((id) => map.getLayer(id));
    if (!styles.some((id) => map.getLayoutProperty(id, 'visibility') === 'none')) return;
    const row = document.querySelector(`#layers li[data-layer="${CSS.escape(layer.id)}"]`);
    const box = row?.querySelector('input[type=checkbox]');
    if (box && !box.checked) box.click();
    for (const id of styles) {
      if (map.getLayoutProperty(id, 'visibility') === 'none') {
        map.setLayoutProperty(id, 'visibility', 'visible'); // no switcher row: still shown
      }
    }
  }

  forget() {
    this.marker?.remove();
    this.marker = null;
    this.popup?.remove();
    this.popup = null;
  }

  unmark() {
    this.forget();
    if (this.map.getSource(HIGHLIGHT)) this.highlight(null);
    delete this.panel.dataset.chosen;
  }

  chooseFeature(layer, feature, label) {
    const { map } = this;
    this.input.value = label;
    this.forget();
    this.showLayer(layer);
    if (!feature.geometry) {
      this.highlight(null);
      this.complain(`${layer.title} ${label}: ${t('no geometry')}`);
      return;
    }
    this.highlight(feature);
    this.arrive(`${layer.id}/${feature.id}`);
    const [west, south, east, north] = bounds(feature.geometry);
    if (west === east && south === north) map.flyTo({ center: [west, south], zoom: POINT_ZOOM });
    else map.fitBounds([[west, south], [east, north]], { padding: 60, maxZoom: 17 });
    const content = popupContent(layer, feature.properties || {});
    content.dataset.source = 'search';
    this.popup = new this.maplibregl.Popup({ maxWidth: '380px', focusAfterOpen: false })
      .setLngLat(anchor(feature.geometry))
      .setDOMContent(content)
      .addTo(map);
    this.popup.on('close', () => map.getSource(HIGHLIGHT)?.setData(EMPTY)); // the highlight goes too
  }

  choosePoint(point) {
    const text = formatPoint(point);
    this.input.value = text;
    this.forget();
    if (this.map.getSource(HIGHLIGHT)) this.highlight(null);
    this.arrive('point');
    const content = element('div', { className: 'search-point', textContent: `CGCS2000 ${text}` });
    this.marker = new this.maplibregl.Marker({ color: '#f08c00' })
      .setLngLat(point)
      .setPopup(new this.maplibregl.Popup({ offset: 30, focusAfterOpen: false }).setDOMContent(content))
      .addTo(this.map);
    this.marker.getElement().classList.add('search-marker');
    this.map.flyTo({ center: point, zoom: Math.max(this.map.getZoom(), POINT_ZOOM - 2) });
    this.marker.togglePopup();
  }
}

export function install(context) {
  return new SearchTool(context);
}
