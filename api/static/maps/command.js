// The command panel of the map pages (maps.js installs it once the style has loaded), for a
// map whose configuration has ``command`` (layers/subsystems.py: only for callers who may
// read the incidents): emergency command on the platform's /incidents and /units
// (api/routers/incidents.py).
//
// - Incidents: listed open first, newest first (the recently closed under them), drawn on
//   the map coloured by status; a new one reported (report.js: placed by a click on the
//   map, a typed coordinate or the map search's place).
// - One incident selected: the available units ranked by their road ETA (POST
//   /incidents/{id}/candidates), their routes drawn, the units left out listed with why
//   (a stale fix...); the chosen ones dispatched (a 409 from a dispatcher who was first is
//   shown as the server says it); the units sent, their routes and ETAs, followed live
//   until they are on scene; closing frees them.
// - Units: every unit's status, incident and the age of its fix.
// - Road closures (closures.js) and the stations' service areas (reach.js), parts of their
//   own; both read again when another tool made closures (the window event
//   spatial:closures, from flood.js).
//
// What changes is told on the live stream, which the live tool follows (live.js: one
// connection for the page, unfiltered): it hands on the incident messages ({"type":
// "incident", ...} to callers who may read the incidents) and every position (the panel
// keeps those of its units, for the distances left) as window events, says how its
// connection goes, and when messages may have been missed (a reconnection, messages
// dropped), after which the panel reads everything again. Without a stream (or refused)
// the panel polls.
//
// For the browser tests: #command carries data-stream (connecting, live, reconnecting,
// polling), data-incidents (lists read), data-selected; each incident's li data-incident
// and data-status; .command-incident data-incident and data-status; .command-candidates
// data-state (idle, loading, done, failed) with rows tr[data-unit][data-rank][data-seconds],
// excluded li[data-unit][data-reason]; .command-assignments tr[data-unit][data-state]
// (en-route, on-scene, released); units li[data-unit][data-status]; closures and service
// areas as closures.js and reach.js say.

import { LANG, t } from './i18n.js';
import { body, element, getJSON, postJSON, say, section } from './common.js';
import { Closures } from './closures.js';
import { distance, formatLength } from './draw.js';
import {
  button, clock, closeIn, collection, feature, legendBlock, LEVELS, STATUS,
} from './panel.js';
import { Reach } from './reach.js';
import { Report } from './report.js';

const UNIT_STATUS = {
  available: t('Available'), assigned: t('Assigned'), 'on-scene': t('On scene'),
  'off-duty': t('Off duty'),
};
const REASONS = [ // the server's reasons are English: in Chinese, a Chinese word first
  [/^no fix/, '无定位'], [/latest fix is/, '定位过旧'], [/from the nearest road/, '远离道路'],
  [/no road leads/, '无路可达'],
];
const RANK_COLOURS = ['#2f9e44', '#1c7ed6', '#ae3ec9', '#0c8599', '#e8590c'];
const ASSIGNED_COLOUR = '#c2255c';
const CLOSED_SHOWN = 20;
const REFRESH_MS = 250; // messages close together: one reading
const EVERY_MS = 30_000;
const POLL_MS = 15_000; // no live stream
const CONFIRM_MS = 4000;
const STREAM = {
  connecting: t('connecting'), live: t('live'), reconnecting: t('reconnecting'),
  polling: t('polling every {s} s', { s: POLL_MS / 1000 }),
};

// -- small helpers ------------------------------------------------------------------------------

const minutes = (seconds) => t('{n} min', { n: (seconds / 60).toFixed(1) });

function age(seconds) {
  if (seconds === null || seconds === undefined) return t('no fix');
  if (seconds < 90) return t('{n} s ago', { n: Math.round(seconds) });
  if (seconds < 5400) return t('{n} min ago', { n: Math.round(seconds / 60) });
  if (seconds < 172_800) return t('{n} h ago', { n: Math.round(seconds / 3600) });
  return t('{n} days ago', { n: Math.round(seconds / 86_400) });
}

function reason(text) {
  const found = REASONS.find(([pattern]) => pattern.test(text));
  return found && LANG === 'zh-CN' ? `${found[1]} · ${text}` : text;
}

function badge(status, labels = null) {
  const span = element('span', { className: `badge status-${status}`, textContent: (labels || {})[status] || STATUS[status]?.label || status });
  span.dataset.status = status;
  return span;
}

// -- the panel ----------------------------------------------------------------------------------

export function install({ map, maplibregl, config }) {
  if (!config.command) return;
  new Command(map, maplibregl, config).start();
}

class Command {
  constructor(map, maplibregl, config) {
    this.map = map;
    this.maplibregl = maplibregl;
    this.config = config;
    this.c = config.command;
    this.kinds = new Map(this.c.kinds.map((k) => [k.id, k]));
    this.incidents = [];
    this.closedCount = 0;
    this.selected = null; // incident id
    this.detail = null; // GET /incidents/{id}
    this.candidates = null; // the last ranking of the selected incident
    this.units = [];
    this.unitIds = new Set();
    this.positions = new Map(); // unit -> [lon, lat] (live)
    this.reach = this.c.service_areas ? new Reach(map, config) : null;
    this.closures = new Closures(map, this.c, { changed: () => this.reach?.closuresChanged() });
    this.polling = 0;
    this.timers = {};
    this.reads = 0;
    this.asked = { incidents: 0, units: 0 }; // an older answer does not overwrite a newer one
  }

  start() {
    this.addLayers();
    this.build();
    this.reach?.addSwitch();
    this.legend();
    this.refreshAll();
    setInterval(() => { // the fixes' ages; closures are not on the live stream
      this.loadUnits();
      this.closures.load();
    }, EVERY_MS);
    // Closures made elsewhere on the page (flood.js: a flood extent that closed roads).
    window.addEventListener('spatial:closures', () => {
      this.closures.load().then(() => this.reach?.closuresChanged());
    });
    if (this.c.live) this.listen();
    else this.showStream('polling');
  }

  /** What the live tool (live.js) hands on from the page's connection to the stream. */
  listen() {
    const on = (name, handler) => window.addEventListener(`spatial:${name}`, (event) => handler(event.detail));
    on('incident', (message) => this.told(message));
    on('position', (message) => this.moved(message));
    on('missed', () => this.refreshAll());
    on('live', ({ state }) => this.showStream(state));
    // (the live tool may have been installed first: its state so far)
    this.showStream(window.spatialLive?.state || 'connecting');
  }

  // -- map layers

  /** The service areas (under the configured layers), the closures, then the panel's own
   * layers on top. */
  addLayers() {
    const { map } = this;
    this.reach?.addLayers();
    this.closures.addLayers();
    for (const id of ['command-routes', 'command-units', 'command-incidents']) {
      map.addSource(id, { type: 'geojson', data: collection() });
    }
    map.addLayer({ id: 'command-routes-casing', type: 'line', source: 'command-routes',
      filter: ['==', ['get', 'role'], 'assigned'], layout: { 'line-cap': 'round', 'line-join': 'round' },
      paint: { 'line-color': '#ffffff', 'line-width': 8 } });
    map.addLayer({ id: 'command-routes-assigned', type: 'line', source: 'command-routes',
      filter: ['==', ['get', 'role'], 'assigned'], layout: { 'line-cap': 'round', 'line-join': 'round' },
      paint: { 'line-color': ['get', 'colour'], 'line-width': 5 } });
    map.addLayer({ id: 'command-routes', type: 'line', source: 'command-routes',
      filter: ['==', ['get', 'role'], 'candidate'], layout: { 'line-join': 'round' },
      paint: { 'line-color': ['get', 'colour'], 'line-width': 4, 'line-dasharray': [2, 1.2] } });
    map.addLayer({ id: 'command-units', type: 'circle', source: 'command-units',
      paint: { 'circle-radius': 11, 'circle-color': 'rgba(0, 0, 0, 0)', 'circle-stroke-width': 3,
        'circle-stroke-color': ['get', 'colour'] } });
    map.addLayer({ id: 'command-incidents', type: 'circle', source: 'command-incidents',
      paint: {
        'circle-radius': ['case', ['get', 'selected'], 11, ['==', ['get', 'status'], 'closed'], 5, 8],
        'circle-color': ['match', ['get', 'status'], ...Object.entries(STATUS).flatMap(([k, v]) => [k, v.colour]), '#495057'],
        'circle-stroke-color': ['case', ['get', 'selected'], '#000000', '#ffffff'],
        'circle-stroke-width': ['case', ['get', 'selected'], 3, 2],
      } });
    map.on('click', 'command-incidents', (event) => {
      if (body.dataset.tool) return; // drawing: clicks are points
      const id = event.features?.[0]?.properties?.incident_id;
      if (id) this.select(id);
    });
    map.on('mouseenter', 'command-incidents', () => { map.getCanvas().style.cursor = 'pointer'; });
    map.on('mouseleave', 'command-incidents', () => { map.getCanvas().style.cursor = ''; });
  }

  drawIncidents() {
    const features = this.incidents.filter((f) => f.geometry).map((f) => feature(f.geometry,
      { ...f.properties, selected: f.properties.incident_id === this.selected }));
    this.map.getSource('command-incidents')?.setData(collection(features));
  }

  /** The candidates' routes and places, and the routes and live places of the units sent. */
  drawRoutes() {
    const routes = [];
    const units = [];
    for (const c of this.candidates?.candidates || []) {
      const colour = RANK_COLOURS[(c.rank - 1) % RANK_COLOURS.length];
      if (c.route) routes.push(feature(c.route, { role: 'candidate', unit: c.unit, rank: c.rank, colour }));
      if (c.position) units.push(feature({ type: 'Point', coordinates: c.position }, { role: 'candidate', unit: c.unit, colour }));
    }
    for (const a of this.detail?.assignments || []) {
      if (a.released_at) continue;
      if (a.route) routes.push(feature(a.route, { role: 'assigned', unit: a.unit, colour: ASSIGNED_COLOUR }));
      const at = this.positions.get(a.unit);
      if (at) units.push(feature({ type: 'Point', coordinates: at }, { role: 'assigned', unit: a.unit, colour: ASSIGNED_COLOUR }));
    }
    this.map.getSource('command-routes')?.setData(collection(routes));
    this.map.getSource('command-units')?.setData(collection(units));
  }

  // -- the panel's parts

  build() {
    this.root = section('command');
    this.streamText = element('span', { className: 'text' });
    this.streamLine = element('p', { className: 'command-stream' }, element('span', { className: 'dot' }), this.streamText);
    this.incidentCount = element('span', { className: 'count' });
    this.openList = element('ol', { className: 'command-incidents' });
    this.closedList = element('ol', { className: 'command-incidents closed' });
    this.closedSummary = element('summary');
    this.closedBlock = element('details', { className: 'command-closed' }, this.closedSummary, this.closedList);
    this.detailBox = element('div', { className: 'command-incident', hidden: true });
    this.unitCount = element('span', { className: 'count' });
    this.unitList = element('ul', { className: 'command-units' });
    const parts = [element('h2', { textContent: t('Command') }), this.streamLine];
    if (this.c.editable) {
      this.report = new Report(this.map, this.maplibregl, this.c, {
        kinds: this.kinds, root: this.root, reported: (id) => this.reported(id),
      });
      parts.push(...this.report.parts());
    }
    parts.push(
      element('h3', {}, `${t('Incidents')} `, this.incidentCount), this.openList, this.closedBlock,
      this.detailBox,
      element('h3', {}, `${t('Units')} `, this.unitCount), this.unitList,
      ...this.closures.parts(),
    );
    this.root.replaceChildren(...parts);
    this.root.dataset.incidents = '0';
  }

  /** The stream's state (the live tool's); refused, or no stream: polling instead. */
  showStream(state) {
    const name = state === 'refused' ? 'polling' : state;
    this.root.dataset.stream = name;
    this.streamLine.dataset.state = name;
    this.streamText.textContent = STREAM[name] || name;
    if (name === 'polling' && !this.polling) this.polling = setInterval(() => this.refreshAll(), POLL_MS);
  }

  /** A new incident reported (report.js): listed, selected and its units ranked. */
  async reported(id) {
    await this.loadIncidents();
    await this.select(id, { rank: true });
  }

  // -- reading

  refreshAll() {
    this.loadIncidents();
    this.loadUnits();
    this.closures.load();
    if (this.selected) this.loadDetail();
  }

  /** Read again soon (messages come in bursts: one reading for them all). */
  soon(what) {
    clearTimeout(this.timers[what]);
    this.timers[what] = setTimeout(() => {
      if (what === 'incidents') this.loadIncidents();
      else if (what === 'units') this.loadUnits();
      else if (what === 'detail' && this.selected) this.loadDetail();
    }, REFRESH_MS);
  }

  told(message) {
    if (message.type === 'incident') {
      this.soon('incidents');
      if (['dispatch', 'on-scene', 'changed', 'deleted'].includes(message.kind)) this.soon('units');
      if (message.incident === this.selected) this.soon('detail');
    }
  }

  /** A vehicle's new place (the stream sends every vehicle's): the units' kept, and the
   * units sent to the selected incident redrawn with their distance left. */
  moved(message) {
    if (!this.unitIds.has(message.device) || !Number.isFinite(message.lon) || !Number.isFinite(message.lat)) return;
    this.positions.set(message.device, [message.lon, message.lat]);
    if ((this.detail?.assignments || []).some((a) => a.unit === message.device && !a.released_at)) {
      this.showDistances();
      this.drawRoutes();
    }
  }

  async loadIncidents() {
    const query = (filter, extra) => `${this.c.items}?${new URLSearchParams({
      f: 'json', filter, 'filter-lang': 'cql2-text', sortby: '-reported_at', ...extra })}`;
    const ticket = ++this.asked.incidents;
    try {
      const [open, closed] = await Promise.all([
        getJSON(query("status <> 'closed'", { limit: '1000' })),
        getJSON(query("status = 'closed'", { limit: String(CLOSED_SHOWN) })),
      ]);
      if (ticket !== this.asked.incidents) return;
      this.incidents = [...open.features, ...closed.features];
      this.closedCount = closed.numberMatched ?? closed.features.length;
      this.listIncidents(open.features, closed.features);
      this.drawIncidents();
      this.reads += 1;
      this.root.dataset.incidents = String(this.reads);
    } catch (error) {
      say(`${t('incidents')}: ${error.message}`, true);
    }
  }

  listIncidents(open, closed) {
    this.openList.replaceChildren(...open.map((f) => this.incidentRow(f)));
    if (!open.length) this.openList.append(element('li', { className: 'empty', textContent: t('No open incidents') }));
    this.closedList.replaceChildren(...closed.map((f) => this.incidentRow(f)));
    this.closedSummary.textContent = `${t('Closed')} (${this.closedCount}${this.closedCount > closed.length ? t(', {n} latest shown', { n: closed.length }) : ''})`;
    this.closedBlock.hidden = !closed.length;
    this.incidentCount.textContent = String(open.length);
  }

  incidentRow(f) {
    const p = f.properties;
    const chosen = p.incident_id === this.selected;
    const pick = element('button', { type: 'button', className: 'pick' },
      element('span', { className: 'line' }, badge(p.status), ' ', element('b', { textContent: p.incident_id })),
      element('span', { className: 'line about', textContent:
        `${this.kinds.get(p.kind)?.label || p.kind || '—'} · ${p.level ? t('level {n}', { n: p.level }) : ''} · ${clock(p.reported_at)}` }),
      element('span', { className: 'line address', textContent: p.address || '' }));
    pick.setAttribute('aria-pressed', String(chosen));
    pick.addEventListener('click', () => this.select(p.incident_id));
    const row = element('li', { className: chosen ? 'selected' : '' }, pick);
    Object.assign(row.dataset, { incident: p.incident_id, status: p.status });
    return row;
  }

  async loadUnits() {
    const ticket = ++this.asked.units;
    try {
      const units = await getJSON(this.c.units);
      if (ticket !== this.asked.units) return;
      this.units = units;
    } catch (error) {
      say(`${t('units')}: ${error.message}`, true);
      return;
    }
    this.unitIds = new Set(this.units.map((u) => u.unit));
    for (const u of this.units) {
      if (Number.isFinite(u.lon)) this.positions.set(u.unit, [u.lon, u.lat]);
    }
    this.listUnits();
    this.markTaken();
  }

  listUnits() {
    const rows = this.units.map((u) => {
      const go = button(u.unit, () => {
        const at = this.positions.get(u.unit);
        if (at) closeIn(this.map, at);
      }, { className: 'go', title: t('Show on the map'), disabled: !this.positions.has(u.unit) });
      const row = element('li', { className: u.stale ? 'stale' : '' },
        element('div', {}, go, ' ', element('span', { className: 'name', textContent: u.name && u.name !== u.unit ? u.name : '' }),
          ' ', badge(u.status, UNIT_STATUS)),
        element('div', { className: 'about', textContent:
          `${u.kind} · ${u.incident ? `${u.incident} · ` : ''}${t('fix')} ${age(u.fix_age_s)}` }));
      Object.assign(row.dataset, { unit: u.unit, status: u.status, stale: String(Boolean(u.stale)) });
      return row;
    });
    this.unitList.replaceChildren(...rows);
    this.unitCount.textContent = String(rows.length);
  }

  // -- one incident

  async select(id, { rank = false } = {}) {
    if (this.selected !== id) {
      this.selected = id;
      this.candidates = null;
      this.detail = null;
    }
    this.root.dataset.selected = id;
    for (const row of this.root.querySelectorAll('.command-incidents li[data-incident]')) {
      const chosen = row.dataset.incident === id;
      row.classList.toggle('selected', chosen);
      row.querySelector('button.pick')?.setAttribute('aria-pressed', String(chosen));
    }
    this.drawIncidents();
    await this.loadDetail();
    const at = this.detail?.geometry?.coordinates;
    if (at && !this.map.getBounds().contains(at)) closeIn(this.map, at, 14);
    if (rank && this.detail?.properties?.status !== 'closed') await this.rank();
  }

  async loadDetail() {
    const id = this.selected;
    try {
      const found = await getJSON(`${this.c.incidents}/${encodeURIComponent(id)}`);
      if (id !== this.selected) return;
      this.detail = found;
    } catch (error) {
      say(`${id}: ${error.message}`, true);
      if (error.status === 404) {
        this.selected = null;
        this.detail = null;
        this.detailBox.hidden = true;
        delete this.root.dataset.selected;
      }
      return;
    }
    if (this.detail.properties.status === 'closed') this.candidates = null;
    this.showDetail();
    this.drawRoutes();
  }

  /** The incident, the controls and candidates (kept as they are, ticks and all, when the
   * same incident is read again), and the units sent. */
  showDetail() {
    const p = this.detail.properties;
    const box = this.detailBox;
    const editable = this.c.editable && p.status !== 'closed';
    const again = !box.hidden && box.dataset.incident === p.incident_id;
    box.hidden = false;
    Object.assign(box.dataset, { incident: p.incident_id, status: p.status });
    const head = [
      element('h3', {}, element('span', { textContent: `${p.incident_id} ` }), badge(p.status)),
      element('p', { className: 'about', textContent:
        `${this.kinds.get(p.kind)?.label || p.kind || '—'} · ${LEVELS[p.level] || p.level || '—'}` }),
    ];
    if (p.address) head.push(element('p', { className: 'address', textContent: p.address }));
    if (p.description) head.push(element('p', { className: 'description', textContent: p.description }));
    head.push(element('p', { className: 'about', textContent:
      `${t('reported {time}', { time: clock(p.reported_at) })}${p.closed_at ? ` · ${t('closed {time}', { time: clock(p.closed_at) })}` : ''}` }));
    if (!again || !editable || !this.controls) {
      this.controls = null;
      if (editable) {
        this.kindBoxes = this.unitKindBoxes(p.kind);
        const close = button(t('Close'), () => this.close(close), { className: 'close-incident' });
        const rank = button(t('Rank units'), () => this.rank(), { className: 'rank' });
        this.controls = element('div', {}, this.kindBoxes, element('div', { className: 'buttons' }, rank, close));
      }
      this.candidateBox = element('div', { className: 'command-candidates' });
      this.candidateBox.dataset.state = 'idle';
    }
    box.replaceChildren(element('div', {}, ...head), ...(this.controls ? [this.controls] : []),
      this.candidateBox, this.assignments());
  }

  /** The unit kinds to rank, ticked as the incident's kind asks (all when it says none). */
  unitKindBoxes(kind) {
    const known = [...new Set(this.units.map((u) => u.kind))].sort();
    const wanted = this.kinds.get(kind)?.units || [];
    const ticked = wanted.some((k) => known.includes(k)) ? wanted : known;
    const boxes = known.map((k) => element('label', {},
      element('input', { type: 'checkbox', value: k, checked: ticked.includes(k) }), ` ${k}`));
    return element('fieldset', { className: 'unit-kinds' }, element('legend', { textContent: t('Unit kinds') }), ...boxes);
  }

  async rank() {
    const id = this.selected;
    const box = this.candidateBox;
    const all = [...(this.kindBoxes?.querySelectorAll('input') || [])];
    const kinds = all.filter((b) => b.checked).map((b) => b.value);
    if (all.length && !kinds.length) {
      say(t('Tick at least one unit kind'), true);
      return;
    }
    box.dataset.state = 'loading';
    box.replaceChildren(element('p', { className: 'running', textContent: t('Ranking by road…') }));
    try {
      const payload = { limit: 5, ...(kinds.length && kinds.length < all.length ? { kinds } : {}) };
      const answer = await postJSON(`${this.c.incidents}/${encodeURIComponent(id)}/candidates`, payload);
      if (id !== this.selected) return;
      this.candidates = answer.body;
      this.showCandidates();
      this.drawRoutes();
      say(`${id}: ${t('{n} units ranked', { n: answer.body.candidates.length })}`);
    } catch (error) {
      if (id !== this.selected) return;
      box.dataset.state = 'failed';
      box.replaceChildren(element('p', { className: 'problem', textContent: error.message }));
      say(`${t('Ranking failed')}: ${error.message}`, true);
    }
  }

  showCandidates() {
    const { candidates, excluded, more } = this.candidates;
    const box = this.candidateBox;
    const parts = [element('h4', { textContent: t('Units by road ETA') })];
    if (candidates.length) {
      const rows = candidates.map((c, n) => {
        const tick = element('input', { type: 'checkbox', checked: n === 0, value: c.unit });
        tick.setAttribute('aria-label', t('dispatch {unit}', { unit: c.unit }));
        const swatch = element('span', { className: 'swatch line' });
        swatch.style.setProperty('--colour', RANK_COLOURS[(c.rank - 1) % RANK_COLOURS.length]);
        const row = element('tr', {},
          element('td', {}, tick),
          element('td', { className: 'number', textContent: String(c.rank) }),
          element('td', {}, swatch, ' ', element('b', { textContent: c.unit }), element('br'),
            element('small', { textContent: `${c.kind} · ${t('fix')} ${age(c.fix_age_s)}` })),
          element('td', { className: 'number', textContent: minutes(c.seconds) }),
          element('td', { className: 'number', textContent: c.metres === null ? '—' : formatLength(c.metres) }));
        const via = c.roads?.length ? t('via {roads}', { roads: c.roads.join(' → ') }) : '';
        row.title = via;
        Object.assign(row.dataset, { unit: c.unit, rank: String(c.rank), seconds: String(c.seconds), via });
        return row;
      });
      const head = element('tr', {}, ...[t('Send'), '#', t('Unit'), t('ETA'), t('Distance')]
        .map((name) => element('th', { scope: 'col', textContent: name })));
      parts.push(element('table', {}, element('thead', {}, head), element('tbody', {}, ...rows)));
      if (more) parts.push(element('p', { className: 'about', textContent: t('{n} more units further away', { n: more }) }));
      const send = button(t('Dispatch'), () => this.dispatch(send), { className: 'dispatch primary' });
      parts.push(element('div', { className: 'buttons' }, send));
    } else {
      parts.push(element('p', { className: 'empty', textContent: t('No unit can be sent') }));
    }
    if (excluded.length) {
      const items = excluded.map((e) => {
        const li = element('li', {}, element('b', { textContent: e.unit }), ` ${e.kind} · `,
          element('span', { className: 'reason', textContent: reason(e.reason) }));
        Object.assign(li.dataset, { unit: e.unit, reason: e.reason });
        return li;
      });
      parts.push(element('h4', { textContent: `${t('Left out')} (${excluded.length})` }),
        element('ul', { className: 'excluded' }, ...items));
    }
    box.replaceChildren(...parts);
    box.dataset.state = 'done';
    this.markTaken();
  }

  /** Candidates another dispatch took meanwhile: greyed, not ticked. */
  markTaken() {
    if (!this.candidateBox) return;
    const status = new Map(this.units.map((u) => [u.unit, u.status]));
    for (const row of this.candidateBox.querySelectorAll('tr[data-unit]')) {
      const taken = status.has(row.dataset.unit) && status.get(row.dataset.unit) !== 'available';
      row.classList.toggle('taken', taken);
      row.title = taken ? `${t('taken')} (${UNIT_STATUS[status.get(row.dataset.unit)] || ''})` : row.dataset.via;
    }
  }

  async dispatch(send) {
    const id = this.selected;
    const units = [...this.candidateBox.querySelectorAll('tbody input:checked')].map((b) => b.value);
    if (!units.length) {
      say(t('Tick the units to send'), true);
      return;
    }
    send.disabled = true;
    try {
      const answer = await postJSON(`${this.c.incidents}/${encodeURIComponent(id)}/dispatch`, { units });
      say(`${t('Dispatched')} ${units.join(', ')} → ${id} (${answer.body.status})`);
      this.candidates = null; // taken: a new ranking for more
      this.candidateBox.replaceChildren();
      this.candidateBox.dataset.state = 'idle';
      await Promise.all([this.loadDetail(), this.loadIncidents(), this.loadUnits()]);
    } catch (error) {
      send.disabled = false;
      say(`${t('Not dispatched')}: ${error.message}`, true);
      const problem = element('p', { className: 'problem', textContent: error.message });
      problem.dataset.status = String(error.status || '');
      this.candidateBox.prepend(problem);
      if (error.status === 409) this.loadUnits(); // whoever was first: their units greyed
    }
  }

  async close(control) {
    if (control.dataset.confirm !== 'true') { // a second press closes
      control.dataset.confirm = 'true';
      control.textContent = t('Confirm closing?');
      setTimeout(() => {
        delete control.dataset.confirm;
        control.textContent = t('Close');
      }, CONFIRM_MS);
      return;
    }
    const id = this.selected;
    try {
      const answer = await postJSON(`${this.c.incidents}/${encodeURIComponent(id)}/close`, {});
      const freed = answer.body.freed || [];
      say(`${t('Closed')} ${id}${freed.length ? `; ${t('freed')} ${freed.join(', ')}` : ''}`);
      this.candidates = null;
      await Promise.all([this.loadDetail(), this.loadIncidents(), this.loadUnits()]);
    } catch (error) {
      say(`${t('Closing failed')}: ${error.message}`, true);
    }
  }

  /** The units sent: ETA, arrival, release; the distance left as their fixes come. */
  assignments() {
    const rows = (this.detail.assignments || []).map((a) => {
      const state = a.released_at ? 'released' : a.arrived_at ? 'on-scene' : 'en-route';
      const label = { released: t('released {time}', { time: clock(a.released_at) }), 'on-scene': t('on scene {time}', { time: clock(a.arrived_at) }),
        'en-route': t('en route') }[state];
      const follow = button(t('Follow'), () => this.follow(a.unit), { className: 'follow' });
      const row = element('tr', { className: state },
        element('td', {}, element('b', { textContent: a.unit }), element('br'), element('small', { textContent: a.kind || '' })),
        element('td', {}, a.eta ? `${clock(a.eta)}` : '—', element('br'),
          element('small', { textContent: a.seconds === null ? '' : minutes(a.seconds) })),
        element('td', {}, element('span', { className: `state ${state}`, textContent: label }), element('br'),
          element('small', { className: 'left' })),
        element('td', {}, state === 'released' ? '' : follow));
      Object.assign(row.dataset, { unit: a.unit, state });
      return row;
    });
    const box = element('div', { className: 'command-assignments' });
    if (rows.length) {
      const head = element('tr', {}, ...[t('Unit'), t('ETA'), t('State'), '']
        .map((name) => element('th', { scope: 'col', textContent: name })));
      box.append(element('h4', { textContent: t('Units sent') }),
        element('table', {}, element('thead', {}, head), element('tbody', {}, ...rows)));
    }
    this.assignmentBox = box;
    queueMicrotask(() => this.showDistances());
    return box;
  }

  showDistances() {
    const at = this.detail?.geometry?.coordinates;
    if (!at || !this.assignmentBox) return;
    for (const row of this.assignmentBox.querySelectorAll('tr[data-unit]')) {
      const where = this.positions.get(row.dataset.unit);
      const cell = row.querySelector('.left');
      if (!cell || !where || row.dataset.state === 'released') continue;
      cell.textContent = t('{distance} away', { distance: formatLength(distance(where, at)) });
    }
  }

  follow(unit) {
    const live = document.querySelector(`#live li[data-device="${CSS.escape(unit)}"] button.follow`);
    if (live && live.getAttribute('aria-pressed') !== 'true') {
      live.click(); // the live tool keeps it in view
      return;
    }
    const at = this.positions.get(unit);
    if (at) closeIn(this.map, at);
  }

  /** Legend blocks of the panel's layers, on top of the configured ones. */
  legend() {
    const holder = document.querySelector('#legend div');
    if (!holder) return;
    holder.prepend(
      legendBlock('command-incidents', t('Incidents'), Object.values(STATUS).map((s) => [s.label, s.colour, 'circle'])),
      legendBlock('command-routes', t('Routes'), [[t('Proposed, by rank'), RANK_COLOURS[0], 'line'],
        [t('Routes of the units sent'), ASSIGNED_COLOUR, 'line']]),
      this.closures.legend(),
      ...(this.reach ? [this.reach.legend()] : []),
    );
    document.getElementById('legend').hidden = false;
  }
}
