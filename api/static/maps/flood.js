// The flood extent panel of the map pages (maps.js installs it once the style has loaded), for
// a map whose configuration has ``flood`` (layers/subsystems.py: the water and emergency
// maps, for callers who may read the gauges).
//
// A water level at a gauge (its latest reading, its warning or danger level, or a level in
// metres), or a level at a seed point clicked on the map, is run through the flood-extent
// process (OGC API - Processes, synchronous: POST /processes/flood-extent/execution). The
// answer's extent is drawn (blue, under the lines and points) and zoomed to; what it covers
// is listed from its ``affected`` (parcels and their area, facilities, roads and their
// length, per collection: a row flies to its feature) and ``population`` (by district). A
// caller who may close roads (an admin, an editor or steward of the closing department)
// may have the run close the flooded roads for some hours: the closures made are listed,
// and drawn by the command panel's closures layer when the map has one (it is told by the
// window event spatial:closures), else by a layer of this panel's. A refused run shows the
// server's message in the panel.
//
// For the browser tests: #flood carries data-gauges (gauges read); .flood-result carries
// data-state (idle, running, done, failed), data-area (m²) and data-level; groups
// .flood-affected[data-collection][data-count] with li[data-id]; population
// tr[data-district][data-population]; closures li[data-closure]; .flood-error the message;
// button.seed data-seed (the clicked point, JSON).
// window.spatialFlood: result() (the last answer), run(inputs).

import { t } from './i18n.js';
import { base, element, getJSON, postJSON, say, section } from './common.js';
import { formatArea, formatLength, INSTRUCTIONS, sketch } from './draw.js';
import { button, clock, closeIn, collection, feature, labelled, legendBlock, pointOf } from './panel.js';

const EXTENT = 'flood-result';
const SEED = 'flood-seed';
const CLOSED = 'flood-closures';
const WATER = '#1c7ed6';
const EDGE = '#0b4f8a';
const CLOSED_COLOUR = '#c92a2a';
const SHOWN = 30; // rows listed per collection (the answer says when the server cut more)
const LEVELS = [
  ['latest', t('Latest reading')], ['warning', t('Warning level')],
  ['danger', t('Danger level')], ['custom', t('Level (m)')],
];

export function install({ map, config }) {
  if (!config.flood) return;
  const flood = new Flood(map, config);
  flood.start();
  window.spatialFlood = flood.hooks();
}

/** A measure as the answer gives it: an area or a length, or a count. */
function measured(kind, value) {
  if (value === null || value === undefined) return '';
  if (kind === 'area_m2') return formatArea(value);
  if (kind === 'length_m') return formatLength(value);
  return String(value);
}

/** The bounds of a FeatureCollection's coordinates, or null. */
function boundsOf(features) {
  let box = null;
  const walk = (c) => {
    if (typeof c[0] === 'number') {
      box = box ? [Math.min(box[0], c[0]), Math.min(box[1], c[1]), Math.max(box[2], c[0]), Math.max(box[3], c[1])]
        : [c[0], c[1], c[0], c[1]];
    } else {
      c.forEach(walk);
    }
  };
  for (const f of features) walk(f.geometry?.coordinates || []);
  return box;
}

class Flood {
  constructor(map, config) {
    this.map = map;
    this.config = config;
    this.f = config.flood;
    this.seed = null; // [lon, lat] clicked
    this.last = null;
  }

  hooks() {
    return { result: () => this.last, run: (inputs) => this.execute(inputs) };
  }

  start() {
    this.addLayers();
    this.build();
    this.loadGauges();
  }

  /** The extent under the first style layer that is not an area or an image. */
  addLayers() {
    const below = this.config.layers.flatMap((l) => l.maplibre)
      .find((s) => !['fill', 'raster', 'background', 'heatmap'].includes(s.type))?.id;
    const map = this.map;
    map.addSource(EXTENT, { type: 'geojson', data: collection() });
    map.addLayer({ id: EXTENT, type: 'fill', source: EXTENT, paint: { 'fill-color': WATER, 'fill-opacity': 0.45 } }, below);
    map.addLayer({ id: `${EXTENT}-line`, type: 'line', source: EXTENT, paint: { 'line-color': EDGE, 'line-width': 1.2 } }, below);
    if (!this.config.command) {
      map.addSource(CLOSED, { type: 'geojson', data: collection() });
      map.addLayer({ id: CLOSED, type: 'line', source: CLOSED,
        paint: { 'line-color': CLOSED_COLOUR, 'line-width': 2, 'line-dasharray': [2, 1] } });
    }
    map.addSource(SEED, { type: 'geojson', data: collection() });
    map.addLayer({ id: SEED, type: 'circle', source: SEED, paint: {
      'circle-radius': 6, 'circle-color': WATER, 'circle-stroke-color': '#ffffff', 'circle-stroke-width': 2 } });
  }

  build() {
    this.root = section('flood');
    this.root.dataset.gauges = '0';
    this.gauge = element('select', { name: 'gauge' }, element('option', { value: '', textContent: t('loading…') }));
    this.gauge.addEventListener('change', () => { if (this.gauge.value) this.setSeed(null); });
    this.level = element('select', { name: 'level' },
      ...LEVELS.map(([value, text]) => element('option', { value, textContent: text })));
    this.metres = element('input', { name: 'metres', type: 'number', step: '0.01', placeholder: t('m'), disabled: true });
    this.level.addEventListener('change', () => { this.metres.disabled = this.level.value !== 'custom'; });
    this.seedButton = button(t('Click a seed point'), () => this.pickSeed(), { className: 'seed' });
    this.hint = element('p', { className: 'hint' });
    const parts = [labelled(t('Gauge'), this.gauge), labelled(t('Water level'), this.level),
      labelled(t('Level, m'), this.metres), element('div', { className: 'buttons' }, this.seedButton), this.hint];
    if (this.f.closable) {
      this.close = element('input', { type: 'checkbox', name: 'close_roads' });
      this.hours = element('select', { name: 'closure_hours' },
        ...this.f.hours.map((h, n) => element('option', { value: String(h), textContent: t('{n} hours', { n: h }), selected: n === 0 })));
      parts.push(element('label', { className: 'close' }, this.close, ` ${t('Close the flooded roads')}`),
        labelled(t('For'), this.hours));
    }
    this.runButton = button(t('Run'), () => this.run(), { className: 'run' });
    parts.push(element('div', { className: 'buttons' }, this.runButton));
    this.result = element('div', { className: 'flood-result' });
    this.result.dataset.state = 'idle';
    this.root.append(element('h2', { textContent: t('Flood extent analysis') }),
      element('div', { className: 'flood-form' }, ...parts), this.result);
  }

  /** The extent's legend, added with the first extent drawn. */
  addLegend() {
    if (document.querySelector(`#legend [data-layer="${EXTENT}"]`)) return;
    const closed = this.config.command ? [] : [[t('Closed roads'), CLOSED_COLOUR, 'line']];
    document.querySelector('#legend div')?.append(legendBlock(EXTENT, t('Flood extent'),
      [[t('Flooded'), WATER, 'fill'], ...closed]));
    document.getElementById('legend').hidden = false;
  }

  async loadGauges() {
    try {
      const found = await getJSON(`${this.f.gauges}?${new URLSearchParams({ f: 'json', limit: '1000' })}`);
      const options = found.features.map((g) => {
        const key = this.f.key ? g.properties[this.f.key] : g.id;
        const name = g.properties.name;
        return element('option', { value: String(key), textContent: name ? `${name} (${key})` : String(key) });
      }).sort((a, b) => a.value.localeCompare(b.value));
      this.gauge.replaceChildren(element('option', { value: '', textContent: t('— choose —') }), ...options);
      this.root.dataset.gauges = String(options.length);
    } catch (error) {
      say(`${t('Gauges')}: ${error.message}`, true);
    }
  }

  /** Click a seed point: the level is then a height in metres. */
  async pickSeed() {
    this.hint.textContent = INSTRUCTIONS.point;
    this.seedButton.setAttribute('aria-pressed', 'true');
    const geometry = await sketch(this.map, 'point', { tool: 'flood' }).done;
    this.seedButton.setAttribute('aria-pressed', 'false');
    this.hint.textContent = '';
    if (!geometry) return;
    this.setSeed(geometry.coordinates);
    this.gauge.value = '';
    this.level.value = 'custom';
    this.metres.disabled = false;
    this.metres.focus();
  }

  setSeed(at) {
    this.seed = at;
    this.map.getSource(SEED).setData(collection(at ? [feature({ type: 'Point', coordinates: at }, {})] : []));
    this.seedButton.textContent = at ? `${t('Seed')} ${at[0].toFixed(5)}, ${at[1].toFixed(5)}` : t('Click a seed point');
    this.seedButton.dataset.seed = at ? JSON.stringify(at) : '';
  }

  /** The process's inputs from the form, or null (what is missing said). */
  inputs() {
    const inputs = this.f.dem ? { dem: this.f.dem } : {};
    const custom = this.level.value === 'custom';
    const metres = Number.parseFloat(this.metres.value);
    if (custom && !Number.isFinite(metres)) return this.missing(t('Give the level in metres'), this.metres);
    if (this.gauge.value) {
      inputs.gauge = this.gauge.value;
      if (custom) inputs.level = metres;
      else if (this.level.value !== 'latest') inputs.level = this.level.value;
    } else if (this.seed) {
      if (!custom) return this.missing(t('A seed point needs a level in metres'), this.metres);
      Object.assign(inputs, { seed: { type: 'Point', coordinates: this.seed }, level: metres });
    } else {
      return this.missing(t('Choose a gauge or click a seed point'), this.gauge);
    }
    if (this.close?.checked) Object.assign(inputs, { close_roads: true, closure_hours: Number(this.hours.value) });
    return inputs;
  }

  missing(text, control) {
    say(text, true);
    control.focus();
    return null;
  }

  async run() {
    const inputs = this.inputs();
    if (inputs) await this.execute(inputs);
  }

  async execute(inputs) {
    this.result.dataset.state = 'running';
    this.result.replaceChildren(element('p', { className: 'hint', textContent: t('Running…') }));
    this.runButton.disabled = true;
    say(`${t('Flood extent')}: ${t('running…')}`);
    try {
      const answer = (await postJSON(this.f.execution, { inputs })).body;
      this.last = answer;
      this.show(answer);
      say(`${t('Flooded')}: ${formatArea(answer.area_m2)}`);
    } catch (error) {
      this.last = null;
      this.map.getSource(EXTENT).setData(collection());
      this.result.dataset.state = 'failed';
      this.result.replaceChildren(element('p', { className: 'flood-error problem', textContent: error.message }));
      say(`${t('Flood extent refused')}: ${error.message}`, true);
    } finally {
      this.runButton.disabled = false;
    }
  }

  show(answer) {
    const features = answer.extent?.features || [];
    this.map.getSource(EXTENT).setData(collection(features));
    this.addLegend();
    if (answer.seed) { // where the water comes from (a gauge's river cell), not a seed to run again
      this.map.getSource(SEED).setData(collection([feature({ type: 'Point', coordinates: answer.seed }, {})]));
    }
    const box = boundsOf(features);
    if (box) this.map.fitBounds([[box[0], box[1]], [box[2], box[3]]], { padding: 40, maxZoom: 16 });
    const head = element('p', { className: 'flood-summary' },
      element('strong', { textContent: `${formatArea(answer.area_m2)}` }),
      ` · ${t('level')} ${Number(answer.level).toFixed(2)} m${answer.gauge ? ` · ${answer.gauge}` : ''}`,
      element('span', { className: 'about', textContent: ` · ${answer.method || ''} · ${answer.dem || ''}` }));
    const groups = (answer.affected || []).map((group) => this.group(group));
    this.result.replaceChildren(head, ...groups, this.population(answer.population),
      ...this.closures(answer.closures || []));
    Object.assign(this.result.dataset, { state: 'done', area: String(answer.area_m2), level: String(answer.level) });
    if (answer.closures?.length) this.closuresMade(answer.closures);
  }

  group(group) {
    const total = measured(group.measure, group.total);
    const rows = group.features.slice(0, SHOWN).map((f) => {
      const go = button(f.label || String(f.id), () => this.goTo(group.collection, f.id), { className: 'go' });
      const about = [f.district, measured(group.measure, f.measure)].filter(Boolean).join(' · ');
      const row = element('li', {}, go, element('span', { className: 'about', textContent: about }));
      row.dataset.id = String(f.id);
      return row;
    });
    const cut = group.truncated || group.features.length > SHOWN;
    if (cut) rows.push(element('li', { className: 'more', textContent: `… ${t('of {n}', { n: group.count })}` }));
    if (!rows.length) rows.push(element('li', { className: 'empty', textContent: t('None') }));
    const block = element('div', { className: 'flood-affected' },
      element('h3', {}, `${group.title} `, element('span', { className: 'count', textContent: `${group.count}${total ? ` · ${total}` : ''}` })),
      element('ul', {}, ...rows));
    Object.assign(block.dataset, { collection: group.collection, count: String(group.count) });
    return block;
  }

  population(population) {
    if (!population) return element('div');
    const rows = (population.by_district || []).map((d) => {
      const row = element('tr', {}, element('td', { textContent: d.name || d.district }),
        element('td', { className: 'number', textContent: Math.round(d.population).toLocaleString('zh-CN') }));
      Object.assign(row.dataset, { district: String(d.district), population: String(d.population) });
      return row;
    });
    const total = element('tr', { className: 'total' }, element('th', { textContent: t('Total') }),
      element('th', { className: 'number', textContent: Math.round(population.total || 0).toLocaleString('zh-CN') }));
    const block = element('div', { className: 'flood-population' },
      element('h3', { textContent: t('Population affected') }),
      element('table', {}, element('tbody', {}, ...rows, total)));
    block.dataset.total = String(population.total);
    return block;
  }

  closures(made) {
    if (!made.length) return [];
    const rows = made.map((c) => {
      const row = element('li', {}, element('span', { textContent: c.reason }),
        element('span', { className: 'about', textContent: ` · ${t('until {time}', { time: clock(c.expires_at) })}` }));
      row.dataset.closure = String(c.id);
      return row;
    });
    const list = element('div', { className: 'flood-closures' },
      element('h3', { textContent: `${t('Roads closed')} ${made.length}` }), element('ul', {}, ...rows));
    return [list];
  }

  /** The command panel redraws its closures; without one, this panel draws those made. */
  async closuresMade(made) {
    window.dispatchEvent(new CustomEvent('spatial:closures', { detail: { network: this.f.network } }));
    if (this.config.command) return;
    try {
      const found = await getJSON(`${this.f.closures}?${new URLSearchParams({ network: this.f.network })}`);
      const ids = new Set(made.map((c) => String(c.id)));
      this.map.getSource(CLOSED).setData(collection(found.features.filter((f) => ids.has(String(f.id)))));
    } catch (error) {
      say(`${t('Closures')}: ${error.message}`, true);
    }
  }

  async goTo(cid, id) {
    try {
      const found = await getJSON(`${base}/collections/${encodeURIComponent(cid)}/items/${encodeURIComponent(id)}?f=json`);
      const at = pointOf(found.geometry);
      if (at) closeIn(this.map, at, 16);
    } catch (error) {
      say(error.message, true);
    }
  }
}
