// The analyse tool (see maps.js): a button per process the map offers (config.processes).
// An offer with ``draw`` has the user sketch a polygon or a point first (draw.js), which goes
// in its ``geometry_input``; the others run at once with their inputs as configured. The
// request is OGC API - Processes execution: synchronous (the outputs in the answer), or, for
// imagery processes, asynchronous (Prefer: respond-async; 201 and a job, followed until it
// succeeds or fails, its progress shown). The outputs are shown as tables (array outputs one
// row an element), their geometries drawn on the map, and offered for download as JSON,
// GeoJSON (when there are features) and CSV (per table).

import { t } from './i18n.js';
import {
  base, download, element, getJSON, postJSON, say, section, stamp,
} from './common.js';
import { current, formatArea, formatLength, INSTRUCTIONS, sketch } from './draw.js';

const INPUT = 'analyse-input';
const RESULT = 'analyse-result';
const POLL_MS = 750;
const MAX_FETCHED = 50; // nearest: the features fetched to be drawn
const MAX_ROWS = 200; // rows shown per table; the downloads have them all
const EMPTY = { type: 'FeatureCollection', features: [] };

function ensureLayers(map) {
  if (map.getSource(RESULT)) return;
  map.addSource(RESULT, { type: 'geojson', data: EMPTY });
  map.addSource(INPUT, { type: 'geojson', data: EMPTY });
  const polygonal = ['match', ['geometry-type'], ['Polygon', 'MultiPolygon'], true, false];
  const linear = ['match', ['geometry-type'], ['LineString', 'MultiLineString', 'Polygon', 'MultiPolygon'], true, false];
  const pointlike = ['match', ['geometry-type'], ['Point', 'MultiPoint'], true, false];
  map.addLayer({ id: 'analyse-result-fill', type: 'fill', source: RESULT, filter: polygonal,
    paint: { 'fill-color': '#7048e8', 'fill-opacity': 0.3 } });
  map.addLayer({ id: 'analyse-result-line', type: 'line', source: RESULT, filter: linear,
    paint: { 'line-color': '#5f3dc4', 'line-width': 2 } });
  map.addLayer({ id: 'analyse-result-point', type: 'circle', source: RESULT, filter: pointlike,
    paint: { 'circle-radius': 8, 'circle-color': '#7048e8', 'circle-stroke-color': '#ffffff', 'circle-stroke-width': 2 } });
  map.addLayer({ id: 'analyse-input-fill', type: 'fill', source: INPUT, filter: polygonal,
    paint: { 'fill-color': '#1971c2', 'fill-opacity': 0.08 } });
  map.addLayer({ id: 'analyse-input-line', type: 'line', source: INPUT, filter: linear,
    paint: { 'line-color': '#1971c2', 'line-width': 2.5, 'line-dasharray': [3, 2] } });
  map.addLayer({ id: 'analyse-input-point', type: 'circle', source: INPUT, filter: pointlike,
    paint: { 'circle-radius': 6, 'circle-color': '#1971c2', 'circle-stroke-color': '#ffffff', 'circle-stroke-width': 2 } });
}

// -- outputs as tables, features and files -----------------------------------------------------

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isGeometry = (v) => isObject(v) && typeof v.type === 'string' && ('coordinates' in v || 'geometries' in v);
const isFeature = (v) => isObject(v) && v.type === 'Feature';
const isCollection = (v) => isObject(v) && v.type === 'FeatureCollection' && Array.isArray(v.features);

/** A row of a table: a feature's properties, or an object with nested objects spread. */
function flatten(item) {
  if (isFeature(item)) return { ...(item.id !== undefined ? { id: item.id } : {}), ...(item.properties || {}) };
  const row = {};
  for (const [key, value] of Object.entries(item)) {
    if (isGeometry(value)) continue;
    if (isObject(value)) {
      for (const [inner, v] of Object.entries(value)) row[inner in item || inner in row ? `${key}.${inner}` : inner] = v;
    } else {
      row[key] = value;
    }
  }
  return row;
}

/** The tabular outputs (``{name, columns, rows}``) and the single values. */
function tablesOf(outputs) {
  const tables = [];
  const values = {};
  for (const [name, value] of Object.entries(outputs)) {
    let items = null;
    if (Array.isArray(value) && value.every(isObject)) items = value;
    else if (isCollection(value)) items = value.features;
    if (items) {
      const rows = items.map(flatten);
      const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
      tables.push({ name, columns, rows });
    } else if (!isObject(value) && !Array.isArray(value)) {
      values[name] = value;
    }
  }
  return { tables, values };
}

/** The features of the outputs that carry geometries. */
function featuresOf(outputs) {
  const found = [];
  for (const [name, value] of Object.entries(outputs)) {
    if (isGeometry(value)) found.push({ type: 'Feature', properties: { output: name }, geometry: value });
    else if (isCollection(value)) found.push(...value.features.filter((f) => f.geometry));
    else if (Array.isArray(value)) {
      for (const item of value) {
        if (isFeature(item) && item.geometry) found.push(item);
        else if (isObject(item) && isGeometry(item.geometry)) {
          const { geometry, ...properties } = item;
          found.push({ type: 'Feature', properties: flatten(properties), geometry });
        }
      }
    }
  }
  return found;
}

/** Features named by id in the outputs but sent without geometry (``nearest``): fetched
 * from the collection the offer read, the output row's values kept. */
async function fetchNamed(offer, outputs) {
  const collection = offer.inputs.collection;
  const rows = Array.isArray(outputs.features) ? outputs.features : [];
  const named = rows.filter((r) => isObject(r) && r.id !== undefined && !r.geometry).slice(0, MAX_FETCHED);
  if (!collection || !named.length) return [];
  const url = (id) => `${base}/collections/${encodeURIComponent(collection)}/items/${encodeURIComponent(id)}?f=json`;
  const got = await Promise.all(named.map((row) => getJSON(url(row.id)).then(
    (feature) => ({ type: 'Feature', id: row.id, properties: flatten(row), geometry: feature.geometry }),
  )));
  return got.filter((f) => f.geometry);
}

const AREA = /(^|_)m2$/;
const decimals = (value, digits) => value.toLocaleString('zh-CN', { maximumFractionDigits: digits });

function format(column, value) {
  if (typeof value !== 'number') return value === null || value === undefined ? '—' : String(value);
  if (AREA.test(column)) return formatArea(value);
  if (/(^|_)m$/.test(column)) return formatLength(value);
  if (Number.isInteger(value)) return value.toLocaleString('zh-CN');
  return value.toLocaleString('zh-CN', { maximumFractionDigits: 4 });
}

function tableElement({ name, columns, rows }) {
  const head = element('tr', {}, ...columns.map((c) => element('th', { textContent: c, scope: 'col' })));
  const lines = rows.slice(0, MAX_ROWS).map((row) => {
    const cells = columns.map((c) => {
      const cell = element('td', { textContent: format(c, row[c]) });
      if (typeof row[c] === 'number' && AREA.test(c)) { // m² over hectares: the panel is narrow
        cell.replaceChildren(`${decimals(row[c], 1)} m²`, element('br'),
          element('small', { textContent: `${decimals(row[c] / 1e4, 4)} ${t('ha')}` }));
      }
      cell.dataset.column = c;
      cell.dataset.value = JSON.stringify(row[c] ?? null);
      if (typeof row[c] === 'number') cell.className = 'number';
      return cell;
    });
    return element('tr', {}, ...cells);
  });
  const summed = columns.filter((c) => (c === 'count' || AREA.test(c)) && rows.some((r) => typeof r[c] === 'number'));
  const foot = [];
  if (summed.length && rows.length > 1) { // totals of counts and areas (sums of means mean nothing)
    const totals = columns.map((c, n) => {
      if (!summed.includes(c)) return element('th', { textContent: n === 0 ? t('Total') : '' });
      const total = rows.reduce((sum, r) => sum + (typeof r[c] === 'number' ? r[c] : 0), 0);
      const cell = element('td', { className: 'number', textContent: format(c, total) });
      if (AREA.test(c)) {
        cell.replaceChildren(`${decimals(total, 1)} m²`, element('br'),
          element('small', { textContent: `${decimals(total / 1e4, 4)} ${t('ha')}` }));
      }
      cell.dataset.column = c;
      cell.dataset.value = JSON.stringify(total);
      return cell;
    });
    foot.push(element('tfoot', {}, element('tr', {}, ...totals)));
  }
  const more = rows.length > MAX_ROWS ? t(', first {n} shown', { n: MAX_ROWS }) : '';
  const table = element('table', {},
    element('caption', { textContent: `${name} (${rows.length}${more})` }),
    element('thead', {}, head), element('tbody', {}, ...lines), ...foot);
  table.dataset.output = name;
  return element('div', { className: 'scroll' }, table);
}

function csvOf({ columns, rows }) {
  const quote = (v) => {
    const text = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
    return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const lines = [columns.map(quote).join(','), ...rows.map((r) => columns.map((c) => quote(r[c])).join(','))];
  return `\ufeff${lines.join('\r\n')}\r\n`; // the BOM: spreadsheets then read the Chinese text as UTF-8
}

function save(name, type, text) {
  download(new Blob([text], { type }), name);
}

function boundsOf(features) {
  let box = null;
  const walk = (c) => {
    if (typeof c[0] === 'number') {
      box = box ? [Math.min(box[0], c[0]), Math.min(box[1], c[1]), Math.max(box[2], c[0]), Math.max(box[3], c[1])] : [c[0], c[1], c[0], c[1]];
    } else {
      c.forEach(walk);
    }
  };
  for (const f of features) {
    if (f.geometry?.coordinates) walk(f.geometry.coordinates);
    for (const g of f.geometry?.geometries || []) walk(g.coordinates);
  }
  return box;
}

// -- running a process -------------------------------------------------------------------------

const sleep = (ms) => new Promise((done) => { setTimeout(done, ms); });

/** Run an offer with ``inputs``: the outputs, following the job when the server made one.
 * ``progress(percent, message)`` is told how a job goes. */
async function execute(offer, inputs, progress) {
  // Imagery processes can take a while: run them as a job, whose progress can be shown.
  const asynchronous = 'raster' in offer.inputs;
  const answer = await postJSON(offer.execution, { inputs }, asynchronous ? { Prefer: 'respond-async' } : {});
  if (answer.status !== 201) return answer.body;
  const location = answer.headers.get('Location') || answer.body.links?.[0]?.href;
  let job = answer.body;
  for (;;) {
    progress(job.progress ?? 0, job.status);
    if (job.status === 'successful') break;
    if (job.status === 'failed' || job.status === 'dismissed') {
      throw new Error(job.message || `job ${job.status}`);
    }
    await sleep(POLL_MS);
    job = await getJSON(location);
  }
  const results = job.links?.find((l) => l.rel.endsWith('/results'))?.href || `${location}/results`;
  return getJSON(results);
}

export function install({ map, config }) {
  const offers = config.processes || [];
  if (!offers.length) return;
  const panel = section('analyse');
  ensureLayers(map);
  const buttons = offers.map((offer, n) => {
    const button = element('button', {
      type: 'button', textContent: offer.title, title: offer.description || offer.title,
    });
    button.dataset.process = offer.id;
    button.dataset.offer = String(n);
    if (offer.draw) button.dataset.draw = offer.draw;
    return button;
  });
  const hint = element('p', { className: 'hint', hidden: true });
  const cancel = element('button', { type: 'button', textContent: t('Cancel'), className: 'cancel', hidden: true });
  const clear = element('button', { type: 'button', textContent: t('Clear'), className: 'clear' });
  const result = element('div', { className: 'result' });
  result.dataset.state = 'idle';
  panel.replaceChildren(
    element('h2', { textContent: t('Analyse') }),
    element('div', { className: 'buttons offers' }, ...buttons),
    hint, element('div', { className: 'buttons' }, cancel, clear), result,
  );
  let running = false;
  let runs = 0; // a newer press of a button supersedes a sketch under way
  let drawn = [];

  const setState = (state, offer) => {
    result.dataset.state = state;
    if (offer) result.dataset.process = offer.id;
    for (const b of buttons) b.disabled = running;
  };

  const reset = () => {
    map.getSource(RESULT).setData(EMPTY);
    map.getSource(INPUT).setData(EMPTY);
    result.replaceChildren();
    for (const key of ['process', 'features', 'geometry']) delete result.dataset[key];
    setState('idle');
  };

  const fail = (offer, message) => {
    say(`${offer.title}: ${message}`, true);
    result.replaceChildren(element('p', { className: 'problem', textContent: message }));
    setState('failed', offer);
  };

  const show = async (offer, outputs) => {
    const { tables, values } = tablesOf(outputs);
    let features = featuresOf(outputs);
    if (!features.length) {
      try {
        features = await fetchNamed(offer, outputs);
      } catch (error) {
        say(`${offer.title}: ${error.message}`, true);
      }
    }
    map.getSource(RESULT).setData({ type: 'FeatureCollection', features });
    result.dataset.features = String(features.length);
    const parts = [element('h3', { textContent: offer.title })];
    const scalars = Object.entries(values);
    if (scalars.length) {
      const rows = scalars.map(([k, v]) => {
        const cell = element('td', { textContent: format(k, v) });
        cell.dataset.value = JSON.stringify(v);
        cell.dataset.column = k;
        return element('tr', {}, element('th', { textContent: k, scope: 'row' }), cell);
      });
      parts.push(element('table', { className: 'values' }, element('tbody', {}, ...rows)));
    }
    for (const table of tables) parts.push(tableElement(table));
    if (!tables.length && !scalars.length && !features.length) parts.push(element('p', { textContent: t('No result') }));
    const name = `${offer.id}-${stamp()}`;
    const saves = [element('button', { type: 'button', textContent: t('Download {what}', { what: 'JSON' }) })];
    saves[0].dataset.download = 'json';
    saves[0].addEventListener('click', () => save(`${name}.json`, 'application/json', JSON.stringify(outputs, null, 2)));
    if (features.length) {
      const button = element('button', { type: 'button', textContent: t('Download {what}', { what: 'GeoJSON' }) });
      button.dataset.download = 'geojson';
      button.addEventListener('click', () => save(`${name}.geojson`, 'application/geo+json',
        JSON.stringify({ type: 'FeatureCollection', features }, null, 2)));
      saves.push(button);
    }
    for (const table of tables) {
      const button = element('button', { type: 'button', textContent: t('Download {what}', { what: `CSV ${table.name}` }) });
      button.dataset.download = 'csv';
      button.dataset.output = table.name;
      button.addEventListener('click', () => save(`${name}-${table.name}.csv`, 'text/csv', csvOf(table)));
      saves.push(button);
    }
    parts.push(element('div', { className: 'buttons downloads' }, ...saves));
    result.replaceChildren(...parts);
    const box = boundsOf([...features, ...drawn]);
    if (box) {
      const view = map.getBounds();
      const inside = view.contains([box[0], box[1]]) && view.contains([box[2], box[3]]);
      if (!inside) map.fitBounds([[box[0], box[1]], [box[2], box[3]]], { padding: 40, maxZoom: 16 });
    }
  };

  const run = async (offer) => {
    if (running) return;
    let inputs = { ...offer.inputs };
    const ticket = ++runs;
    reset();
    drawn = [];
    if (offer.draw) {
      hint.textContent = INSTRUCTIONS[offer.draw];
      hint.hidden = false;
      cancel.hidden = false;
      setState('drawing', offer);
      const geometry = await sketch(map, offer.draw, { tool: 'analyse' }).done;
      if (ticket !== runs) return;
      hint.hidden = true;
      cancel.hidden = true;
      if (!geometry) {
        setState('idle');
        return;
      }
      drawn = [{ type: 'Feature', properties: {}, geometry }];
      map.getSource(INPUT).setData({ type: 'FeatureCollection', features: drawn });
      result.dataset.geometry = JSON.stringify(geometry);
      inputs = { ...inputs, [offer.geometry_input]: offer.draw === 'point' ? geometry.coordinates : geometry };
    }
    running = true;
    const bar = element('progress', { max: 100 });
    const note = element('span', { textContent: t('Running…') });
    result.replaceChildren(element('p', { className: 'running' }, note, ' ', bar));
    setState('running', offer);
    say(`${offer.title}: ${t('running…')}`);
    try {
      const outputs = await execute(offer, inputs, (percent, status) => {
        bar.value = percent;
        note.textContent = `${status} ${percent}%`;
      });
      await show(offer, outputs);
      running = false;
      setState('done', offer);
      say(`${offer.title}: ${t('done')}`);
    } catch (error) {
      running = false;
      fail(offer, error.message);
    }
  };

  buttons.forEach((button, n) => button.addEventListener('click', () => run(offers[n])));
  cancel.addEventListener('click', () => { if (current()?.tool === 'analyse') current().cancel(); });
  clear.addEventListener('click', () => {
    if (current()?.tool === 'analyse') current().cancel();
    if (!running) {
      reset();
      say('');
    }
  });
}
