// The command panel of the map pages (maps.js installs it once the style has loaded), for a
// map whose configuration has ``command`` (layers/subsystems.py: only for callers who may
// read the incidents): emergency command on the platform's /incidents, /units and
// /network/closures (api/routers/incidents.py, api/routers/network.py).
//
// - Incidents: listed open first, newest first (the recently closed under them), drawn on
//   the map coloured by status. A new one is placed by a click on the map (the "new
//   incident" mode), a typed coordinate ("lon, lat", or as the search box takes them) or
//   the place last chosen with the map's search, then reported (POST /incidents).
// - One incident selected: the available units ranked by their road ETA (POST
//   /incidents/{id}/candidates), their routes drawn, the units left out listed with why
//   (a stale fix...); the chosen ones dispatched (a 409 from a dispatcher who was first is
//   shown as the server says it); the units sent, their routes and ETAs, followed live
//   until they are on scene; closing frees them.
// - Units: every unit's status, incident and the age of its fix.
// - Road closures: listed and drawn; drawn as a polygon (draw.js) with a reason and a
//   duration, lifted.
// - The service areas of the stations (the service-area process, bands of minutes): a layer
//   of the switcher, with its legend, computed when first shown and again after a closure.
//
// What changes is told on the live stream (/gps/live: {"type": "incident", ...} to callers
// who may read the incidents). The panel keeps a connection of its own, filtered to the
// units serving open incidents (their positions, for the distances left), reconnecting
// with a backoff and reading everything again after a loss; without a stream it polls.
//
// For the browser tests: #command carries data-stream (connecting, live, reconnecting,
// polling), data-incidents (lists read), data-selected; each incident's li data-incident
// and data-status; .command-incident data-incident and data-status; .command-candidates
// data-state (idle, loading, done, failed) with rows tr[data-unit][data-rank][data-seconds],
// excluded li[data-unit][data-reason]; .command-assignments tr[data-unit][data-state]
// (en-route, on-scene, released); units li[data-unit][data-status]; closures
// li[data-closure]; the service areas' switcher row data-state and data-features.

import { authorization, body, element, getJSON, postJSON, say, section, token } from './common.js';
import { current, distance, formatLength, INSTRUCTIONS, sketch } from './draw.js';
import { parseCoordinates } from './search.js';

const STATUS = {
  reported: { label: '已上报 Reported', colour: '#e03131' },
  dispatched: { label: '已派遣 Dispatched', colour: '#f08c00' },
  'on-scene': { label: '已到场 On scene', colour: '#1971c2' },
  closed: { label: '已结案 Closed', colour: '#868e96' },
};
const UNIT_STATUS = {
  available: '待命 Available', assigned: '已派遣 Assigned', 'on-scene': '到场 On scene',
  'off-duty': '休班 Off duty',
};
const LEVELS = { 1: '1 特别重大 Most severe', 2: '2 重大 Major', 3: '3 较大 Serious', 4: '4 一般 Minor' };
const REASONS = [ // the server's reasons are English: a Chinese word first
  [/^no fix/, '无定位'], [/latest fix is/, '定位过旧'], [/from the nearest road/, '远离道路'],
  [/no road leads/, '无路可达'],
];
const RANK_COLOURS = ['#2f9e44', '#1c7ed6', '#ae3ec9', '#0c8599', '#e8590c'];
const ASSIGNED_COLOUR = '#c2255c';
const CLOSURE_COLOUR = '#c92a2a';
const BAND_COLOURS = ['#2b8a3e', '#94d82d', '#fab005', '#fd7e14', '#e03131', '#ae3ec9'];
const DURATIONS = [[1, '1 小时 hour'], [4, '4 小时 hours'], [12, '12 小时 hours'],
  [24, '1 天 day'], [72, '3 天 days']];
const CLOSED_SHOWN = 20;
const REFRESH_MS = 250; // messages close together: one reading
const EVERY_MS = 30_000;
const POLL_MS = 15_000; // no live stream
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;
const NO_DEVICE = '-'; // no device has this id: incident messages only
const CONFIRM_MS = 4000;
const EMPTY = { type: 'FeatureCollection', features: [] };
const SOURCES = ['command-areas', 'command-closures', 'command-routes', 'command-units', 'command-incidents'];

// -- small helpers ------------------------------------------------------------------------------

/** Milliseconds of a server time; a timestamp without a zone is UTC (the incidents'). */
function ms(text) {
  if (!text) return NaN;
  return Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(text) ? text : `${text}Z`);
}

function clock(text) {
  const t = ms(text);
  if (Number.isNaN(t)) return '—';
  const date = new Date(t);
  const options = { hour: '2-digit', minute: '2-digit', hour12: false };
  if (date.toDateString() !== new Date().toDateString()) Object.assign(options, { month: '2-digit', day: '2-digit' });
  return date.toLocaleString('zh-CN', options);
}

const minutes = (seconds) => `${(seconds / 60).toFixed(1)} 分钟 min`;

function age(seconds) {
  if (seconds === null || seconds === undefined) return '无定位 no fix';
  if (seconds < 90) return `${Math.round(seconds)} 秒前 s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} 分钟前 min ago`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} 小时前 h ago`;
  return `${Math.round(seconds / 86_400)} 天前 days ago`;
}

function reason(text) {
  const found = REASONS.find(([pattern]) => pattern.test(text));
  return found ? `${found[1]} · ${text}` : text;
}

function badge(status, labels = null) {
  const span = element('span', { className: `badge status-${status}`, textContent: (labels || {})[status] || STATUS[status]?.label || status });
  span.dataset.status = status;
  return span;
}

function button(text, onClick, props = {}) {
  const made = element('button', { type: 'button', textContent: text, ...props });
  made.addEventListener('click', onClick);
  return made;
}

function labelled(text, control) {
  return element('label', { className: 'field' }, element('span', { textContent: text }), control);
}

/** A request with the token that answers nothing worth reading (DELETE). */
async function remove(url) {
  const response = await fetch(url, { method: 'DELETE', headers: { Accept: 'application/json', ...authorization(url) } });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(problem.description || `${response.status} ${response.statusText}`);
  }
}

/** A point of a geometry to put an incident at: a point, a line's middle vertex, the
 * middle of a polygon's bounds. */
function pointOf(geometry) {
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

const feature = (geometry, properties) => ({ type: 'Feature', geometry, properties });

// -- the live stream ----------------------------------------------------------------------------

/** The panel's own connection to /gps/live: incident messages, and the positions of the
 * units it watches. ``told(message)`` gets each message, ``state(name)`` the connection's
 * state, ``again()`` is called after a reconnection (messages may have been missed). */
class Stream {
  constructor(url, { told, state, again }) {
    Object.assign(this, { url, told, state, again });
    this.devices = [];
    this.socket = null;
    this.attempts = 0;
    this.lost = false; // lost: reconnecting
    this.gap = false; // replaced by one for other units: messages between may be missed
    this.timer = 0;
  }

  watch(devices) {
    const wanted = [...new Set(devices)].sort();
    if (this.socket && wanted.join(',') === this.devices.join(',')) return;
    this.devices = wanted;
    const old = this.socket;
    this.socket = null;
    this.gap = Boolean(old);
    old?.close(1000, 'other units');
    clearTimeout(this.timer);
    this.connect();
  }

  connect() {
    const url = new URL(this.url);
    url.searchParams.set('device', this.devices.join(',') || NO_DEVICE);
    const credential = token();
    if (credential) url.searchParams.set('access_token', credential);
    const socket = new WebSocket(url);
    this.socket = socket;
    this.state(this.lost ? 'reconnecting' : 'connecting');
    socket.onopen = () => {
      this.attempts = 0;
      this.state('live');
      if (this.lost || this.gap) this.again();
      this.lost = false;
      this.gap = false;
    };
    socket.onmessage = (event) => {
      try {
        this.told(JSON.parse(event.data));
      } catch {
        // not ours to understand
      }
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return; // replaced on purpose
      this.socket = null;
      if (event.code === 1008 || event.code === 1003) {
        this.state('polling');
        say(`指挥 command: ${event.reason || event.code}`, true);
        return;
      }
      this.lost = true;
      const ceiling = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.attempts);
      this.attempts += 1;
      this.state('reconnecting');
      this.timer = setTimeout(() => this.connect(), ceiling / 2 + (Math.random() * ceiling) / 2);
    };
  }
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
    this.positions = new Map(); // unit -> [lon, lat] (live)
    this.closures = [];
    this.found = null; // the map search's last choice: {point, address, label}
    this.marker = null;
    this.areas = { loaded: false, visible: false };
    this.timers = {};
    this.reads = 0;
    this.asked = { incidents: 0, units: 0 }; // an older answer does not overwrite a newer one
    this.picks = 0; // a newer pick supersedes the one under way
  }

  start() {
    this.addLayers();
    this.build();
    this.areaSwitch();
    this.legend();
    this.observeSearch();
    this.refreshAll();
    setInterval(() => { // the fixes' ages; closures are not on the live stream
      this.loadUnits();
      this.loadClosures();
    }, EVERY_MS);
    if (this.c.live) {
      this.stream = new Stream(this.c.live, {
        told: (message) => this.told(message),
        state: (name) => { this.root.dataset.stream = name; this.streamLine.dataset.state = name; this.showStream(name); },
        again: () => this.refreshAll(),
      });
      this.stream.watch([]);
    } else {
      this.root.dataset.stream = 'polling';
      this.showStream('polling');
      setInterval(() => this.refreshAll(), POLL_MS);
    }
  }

  // -- map layers

  addLayers() {
    const { map } = this;
    for (const id of SOURCES) map.addSource(id, { type: 'geojson', data: EMPTY });
    // The service areas under the configured lines and points (roads, stations).
    const below = this.config.layers.flatMap((l) => l.maplibre)
      .find((s) => !['fill', 'raster', 'background', 'heatmap'].includes(s.type))?.id;
    const bands = ['match', ['get', 'band'], ...BAND_COLOURS.flatMap((colour, n) => [n, colour]), BAND_COLOURS.at(-1)];
    map.addLayer({ id: 'command-areas', type: 'fill', source: 'command-areas', layout: { visibility: 'none' },
      paint: { 'fill-color': bands, 'fill-opacity': 0.22 } }, below);
    map.addLayer({ id: 'command-areas-line', type: 'line', source: 'command-areas', layout: { visibility: 'none' },
      paint: { 'line-color': bands, 'line-width': 1.2 } }, below);
    map.addLayer({ id: 'command-closures', type: 'fill', source: 'command-closures',
      paint: { 'fill-color': CLOSURE_COLOUR, 'fill-opacity': ['case', ['get', 'active'], 0.3, 0.12] } });
    map.addLayer({ id: 'command-closures-line', type: 'line', source: 'command-closures',
      paint: { 'line-color': CLOSURE_COLOUR, 'line-width': 2, 'line-dasharray': [2, 1] } });
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
    this.map.getSource('command-incidents')?.setData({ type: 'FeatureCollection', features });
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
    this.map.getSource('command-routes')?.setData({ type: 'FeatureCollection', features: routes });
    this.map.getSource('command-units')?.setData({ type: 'FeatureCollection', features: units });
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
    this.closureCount = element('span', { className: 'count' });
    this.closureList = element('ul', { className: 'command-closures' });
    const parts = [element('h2', { textContent: '指挥调度 Command' }), this.streamLine];
    if (this.c.editable) {
      this.newButton = button('新事件 New incident', () => this.openForm(), { className: 'new' });
      parts.push(element('div', { className: 'buttons' }, this.newButton), this.newForm());
    }
    parts.push(
      element('h3', {}, '事件 Incidents ', this.incidentCount), this.openList, this.closedBlock,
      this.detailBox,
      element('h3', {}, '单位 Units ', this.unitCount), this.unitList,
      element('h3', {}, '封路 Road closures ', this.closureCount),
    );
    if (this.c.editable) parts.push(this.closureForm());
    parts.push(this.closureList);
    this.root.replaceChildren(...parts);
    this.root.dataset.incidents = '0';
  }

  showStream(name) {
    const text = { connecting: '连接中 connecting', live: '实时 live', reconnecting: '重连中 reconnecting',
      polling: `定时刷新 polling every ${POLL_MS / 1000} s` }[name] || name;
    this.streamText.textContent = text;
  }

  // -- a new incident

  newForm() {
    const kind = this.kinds.size
      ? element('select', { name: 'kind', required: true },
        ...[...this.kinds.values()].map((k) => element('option', { value: k.id, textContent: k.label })))
      : element('input', { name: 'kind', required: true, maxLength: 40 });
    const level = element('select', { name: 'level' },
      ...Object.entries(LEVELS).map(([n, text]) => element('option', { value: n, textContent: text, selected: n === '3' })));
    this.location = element('input', { name: 'location', required: true, autocomplete: 'off',
      placeholder: '112.0, 22.9', spellcheck: false });
    this.location.addEventListener('input', () => this.typedLocation());
    this.pickButton = button('地图点选 Pick on the map', () => this.pick(), { className: 'pick' });
    this.foundButton = button('', () => this.useFound(), { className: 'found', hidden: true });
    this.formHint = element('p', { className: 'hint' });
    const form = element('form', { className: 'command-new', hidden: true },
      labelled('类型 Kind', kind), labelled('等级 Level', level),
      labelled('地址 Address', element('input', { name: 'address', maxLength: 200 })),
      labelled('描述 Description', element('textarea', { name: 'description', maxLength: 2000, rows: 2 })),
      labelled('位置 Location (经度, 纬度 lon, lat)', this.location),
      element('div', { className: 'buttons' }, this.pickButton, this.foundButton),
      this.formHint,
      element('div', { className: 'buttons' },
        element('button', { type: 'submit', textContent: '上报 Report', className: 'primary' }),
        button('取消 Cancel', () => this.closeForm())));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.report();
    });
    form.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !current()) this.closeForm();
    });
    this.form = form;
    return form;
  }

  openForm() {
    this.form.hidden = false;
    this.newButton.setAttribute('aria-pressed', 'true');
    this.showFound();
    this.form.elements.kind.focus();
    this.pick();
  }

  closeForm() {
    if (current()?.tool === 'command' && current().mode === 'point') current().cancel();
    this.form.hidden = true;
    this.form.reset();
    this.newButton.setAttribute('aria-pressed', 'false');
    this.newButton.focus();
    this.marker?.remove();
    this.marker = null;
    delete this.root.dataset.placing;
  }

  /** The "new incident" mode: the next click on the map places it. */
  async pick() {
    const ticket = ++this.picks;
    this.formHint.textContent = INSTRUCTIONS.point;
    this.pickButton.setAttribute('aria-pressed', 'true');
    this.root.dataset.placing = 'true';
    const geometry = await sketch(this.map, 'point', { tool: 'command' }).done;
    if (ticket !== this.picks) return;
    this.pickButton.setAttribute('aria-pressed', 'false');
    delete this.root.dataset.placing;
    this.formHint.textContent = '';
    if (geometry) this.place(geometry.coordinates);
  }

  place([lon, lat], typed = false) {
    if (!typed) this.location.value = `${lon.toFixed(6)}, ${lat.toFixed(6)}`;
    if (!this.marker) {
      this.marker = new this.maplibregl.Marker({ color: STATUS.reported.colour, draggable: true })
        .setLngLat([lon, lat]).addTo(this.map);
      this.marker.getElement().classList.add('command-marker');
      this.marker.on('dragend', () => {
        const at = this.marker.getLngLat();
        this.location.value = `${at.lng.toFixed(6)}, ${at.lat.toFixed(6)}`;
      });
    } else {
      this.marker.setLngLat([lon, lat]);
    }
  }

  typedLocation() {
    const point = parseCoordinates(this.location.value);
    this.location.setCustomValidity(point || !this.location.value ? '' : '经度, 纬度 lon, lat');
    if (point) this.place(point, true);
  }

  // (the search tool marks its section data-chosen once the map has arrived at a result)
  observeSearch() {
    const panel = document.getElementById('search');
    if (!panel) return;
    const seen = async () => {
      const tag = panel.dataset.chosen;
      if (!tag) return;
      const label = document.getElementById('search-box')?.value || '';
      let point = tag === 'point' ? parseCoordinates(label) : null;
      if (!point) {
        const source = this.map.getSource('search-highlight');
        const data = source ? await source.getData().catch(() => null) : null;
        point = pointOf(data?.geometry || data?.features?.[0]?.geometry);
      }
      if (!point) return;
      this.found = { point, address: tag === 'point' ? '' : label, label };
      this.showFound();
    };
    new MutationObserver(seen).observe(panel, { attributes: true, attributeFilter: ['data-chosen'] });
  }

  showFound() {
    if (!this.foundButton) return;
    this.foundButton.hidden = !this.found;
    if (this.found) this.foundButton.textContent = `用搜索结果 Use the search result: ${this.found.label}`;
  }

  useFound() {
    if (!this.found) return;
    if (current()?.tool === 'command' && current().mode === 'point') current().cancel();
    this.place(this.found.point);
    if (this.found.address && !this.form.elements.address.value) this.form.elements.address.value = this.found.address;
  }

  async report() {
    const fields = this.form.elements;
    const point = parseCoordinates(this.location.value);
    if (!point) {
      say('位置无效 Give the location as "lon, lat" or click the map', true);
      this.location.focus();
      return;
    }
    const payload = {
      kind: fields.kind.value.trim(), level: Number(fields.level.value), lon: point[0], lat: point[1],
      address: fields.address.value.trim() || null, description: fields.description.value.trim() || null,
    };
    try {
      const answer = await postJSON(this.c.incidents, payload);
      const id = answer.body.properties.incident_id;
      say(`已上报 Reported ${id}`);
      this.closeForm();
      await this.loadIncidents();
      await this.select(id, { rank: true });
    } catch (error) {
      say(`上报失败 Not reported: ${error.message}`, true);
    }
  }

  // -- reading

  refreshAll() {
    this.loadIncidents();
    this.loadUnits();
    this.loadClosures();
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
    } else if (message.type === 'position' && Number.isFinite(message.lon)) {
      this.positions.set(message.device, [message.lon, message.lat]);
      this.showDistances();
      this.drawRoutes();
    } else if (message.type === 'dropped') {
      this.refreshAll();
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
      say(`事件 incidents: ${error.message}`, true);
    }
  }

  listIncidents(open, closed) {
    this.openList.replaceChildren(...open.map((f) => this.incidentRow(f)));
    if (!open.length) this.openList.append(element('li', { className: 'empty', textContent: '无进行中的事件 No open incidents' }));
    this.closedList.replaceChildren(...closed.map((f) => this.incidentRow(f)));
    this.closedSummary.textContent = `已结案 Closed (${this.closedCount}${this.closedCount > closed.length ? `, 最近 ${closed.length} latest shown` : ''})`;
    this.closedBlock.hidden = !closed.length;
    this.incidentCount.textContent = String(open.length);
  }

  incidentRow(f) {
    const p = f.properties;
    const chosen = p.incident_id === this.selected;
    const pick = element('button', { type: 'button', className: 'pick' },
      element('span', { className: 'line' }, badge(p.status), ' ', element('b', { textContent: p.incident_id })),
      element('span', { className: 'line about', textContent:
        `${this.kinds.get(p.kind)?.label || p.kind || '—'} · ${p.level ? `${p.level} 级 level` : ''} · ${clock(p.reported_at)}` }),
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
      say(`单位 units: ${error.message}`, true);
      return;
    }
    for (const u of this.units) {
      if (Number.isFinite(u.lon)) this.positions.set(u.unit, [u.lon, u.lat]);
    }
    this.listUnits();
    this.markTaken();
    const serving = this.units.filter((u) => u.status === 'assigned' || u.status === 'on-scene').map((u) => u.unit);
    this.stream?.watch(serving);
  }

  listUnits() {
    const rows = this.units.map((u) => {
      const go = button(u.unit, () => {
        const at = this.positions.get(u.unit);
        if (at) this.map.flyTo({ center: at, zoom: Math.max(this.map.getZoom(), 15) });
      }, { className: 'go', title: '在地图上查看 Show on the map', disabled: !this.positions.has(u.unit) });
      const row = element('li', { className: u.stale ? 'stale' : '' },
        element('div', {}, go, ' ', element('span', { className: 'name', textContent: u.name && u.name !== u.unit ? u.name : '' }),
          ' ', badge(u.status, UNIT_STATUS)),
        element('div', { className: 'about', textContent:
          `${u.kind} · ${u.incident ? `${u.incident} · ` : ''}定位 fix ${age(u.fix_age_s)}` }));
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
    if (at && !this.map.getBounds().contains(at)) this.map.flyTo({ center: at, zoom: Math.max(this.map.getZoom(), 14) });
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
      `上报 reported ${clock(p.reported_at)}${p.closed_at ? ` · 结案 closed ${clock(p.closed_at)}` : ''}` }));
    if (!again || !editable || !this.controls) {
      this.controls = null;
      if (editable) {
        this.kindBoxes = this.unitKindBoxes(p.kind);
        const close = button('结案 Close', () => this.close(close), { className: 'close-incident' });
        const rank = button('推荐车辆 Rank units', () => this.rank(), { className: 'rank' });
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
    return element('fieldset', { className: 'unit-kinds' }, element('legend', { textContent: '车辆类型 Unit kinds' }), ...boxes);
  }

  async rank() {
    const id = this.selected;
    const box = this.candidateBox;
    const all = [...(this.kindBoxes?.querySelectorAll('input') || [])];
    const kinds = all.filter((b) => b.checked).map((b) => b.value);
    if (all.length && !kinds.length) {
      say('请选择车辆类型 Tick at least one unit kind', true);
      return;
    }
    box.dataset.state = 'loading';
    box.replaceChildren(element('p', { className: 'running', textContent: '计算路线中 Ranking by road…' }));
    try {
      const payload = { limit: 5, ...(kinds.length && kinds.length < all.length ? { kinds } : {}) };
      const answer = await postJSON(`${this.c.incidents}/${encodeURIComponent(id)}/candidates`, payload);
      if (id !== this.selected) return;
      this.candidates = answer.body;
      this.showCandidates();
      this.drawRoutes();
      say(`${id}: ${answer.body.candidates.length} 辆可派 units ranked`);
    } catch (error) {
      if (id !== this.selected) return;
      box.dataset.state = 'failed';
      box.replaceChildren(element('p', { className: 'problem', textContent: error.message }));
      say(`推荐失败 Ranking failed: ${error.message}`, true);
    }
  }

  showCandidates() {
    const { candidates, excluded, more } = this.candidates;
    const box = this.candidateBox;
    const parts = [element('h4', { textContent: '推荐车辆（按到达时间）Units by road ETA' })];
    if (candidates.length) {
      const rows = candidates.map((c, n) => {
        const tick = element('input', { type: 'checkbox', checked: n === 0, value: c.unit });
        tick.setAttribute('aria-label', `派遣 dispatch ${c.unit}`);
        const swatch = element('span', { className: 'swatch line' });
        swatch.style.setProperty('--colour', RANK_COLOURS[(c.rank - 1) % RANK_COLOURS.length]);
        const row = element('tr', {},
          element('td', {}, tick),
          element('td', { className: 'number', textContent: String(c.rank) }),
          element('td', {}, swatch, ' ', element('b', { textContent: c.unit }), element('br'),
            element('small', { textContent: `${c.kind} · 定位 fix ${age(c.fix_age_s)}` })),
          element('td', { className: 'number', textContent: minutes(c.seconds) }),
          element('td', { className: 'number', textContent: c.metres === null ? '—' : formatLength(c.metres) }));
        const via = c.roads?.length ? `经 via ${c.roads.join(' → ')}` : '';
        row.title = via;
        Object.assign(row.dataset, { unit: c.unit, rank: String(c.rank), seconds: String(c.seconds), via });
        return row;
      });
      const head = element('tr', {}, ...['派 Send', '#', '车辆 Unit', '到达 ETA', '路程 Distance']
        .map((t) => element('th', { scope: 'col', textContent: t })));
      parts.push(element('table', {}, element('thead', {}, head), element('tbody', {}, ...rows)));
      if (more) parts.push(element('p', { className: 'about', textContent: `另有 ${more} 辆 more units further away` }));
      const send = button('派遣 Dispatch', () => this.dispatch(send), { className: 'dispatch primary' });
      parts.push(element('div', { className: 'buttons' }, send));
    } else {
      parts.push(element('p', { className: 'empty', textContent: '无可派车辆 No unit can be sent' }));
    }
    if (excluded.length) {
      const items = excluded.map((e) => {
        const li = element('li', {}, element('b', { textContent: e.unit }), ` ${e.kind} · `,
          element('span', { className: 'reason', textContent: reason(e.reason) }));
        Object.assign(li.dataset, { unit: e.unit, reason: e.reason });
        return li;
      });
      parts.push(element('h4', { textContent: `未列入 Left out (${excluded.length})` }),
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
      row.title = taken ? `已被派遣 taken (${UNIT_STATUS[status.get(row.dataset.unit)] || ''})` : row.dataset.via;
    }
  }

  async dispatch(send) {
    const id = this.selected;
    const units = [...this.candidateBox.querySelectorAll('tbody input:checked')].map((b) => b.value);
    if (!units.length) {
      say('请勾选车辆 Tick the units to send', true);
      return;
    }
    send.disabled = true;
    try {
      const answer = await postJSON(`${this.c.incidents}/${encodeURIComponent(id)}/dispatch`, { units });
      say(`已派遣 Dispatched ${units.join(', ')} → ${id} (${answer.body.status})`);
      this.candidates = null; // taken: a new ranking for more
      this.candidateBox.replaceChildren();
      this.candidateBox.dataset.state = 'idle';
      await Promise.all([this.loadDetail(), this.loadIncidents(), this.loadUnits()]);
    } catch (error) {
      send.disabled = false;
      say(`派遣失败 Not dispatched: ${error.message}`, true);
      const problem = element('p', { className: 'problem', textContent: error.message });
      problem.dataset.status = String(error.status || '');
      this.candidateBox.prepend(problem);
      if (error.status === 409) this.loadUnits(); // whoever was first: their units greyed
    }
  }

  async close(control) {
    if (control.dataset.confirm !== 'true') { // a second press closes
      control.dataset.confirm = 'true';
      control.textContent = '确认结案？Confirm closing?';
      setTimeout(() => {
        delete control.dataset.confirm;
        control.textContent = '结案 Close';
      }, CONFIRM_MS);
      return;
    }
    const id = this.selected;
    try {
      const answer = await postJSON(`${this.c.incidents}/${encodeURIComponent(id)}/close`, {});
      const freed = answer.body.freed || [];
      say(`已结案 Closed ${id}${freed.length ? `; 释放 freed ${freed.join(', ')}` : ''}`);
      this.candidates = null;
      await Promise.all([this.loadDetail(), this.loadIncidents(), this.loadUnits()]);
    } catch (error) {
      say(`结案失败 Not closed: ${error.message}`, true);
    }
  }

  /** The units sent: ETA, arrival, release; the distance left as their fixes come. */
  assignments() {
    const rows = (this.detail.assignments || []).map((a) => {
      const state = a.released_at ? 'released' : a.arrived_at ? 'on-scene' : 'en-route';
      const label = { released: `已释放 released ${clock(a.released_at)}`, 'on-scene': `到场 on scene ${clock(a.arrived_at)}`,
        'en-route': '途中 en route' }[state];
      const follow = button('跟随 Follow', () => this.follow(a.unit), { className: 'follow' });
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
      const head = element('tr', {}, ...['车辆 Unit', '预计到达 ETA', '状态 State', '']
        .map((t) => element('th', { scope: 'col', textContent: t })));
      box.append(element('h4', { textContent: '已派车辆 Units sent' }),
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
      cell.textContent = `距现场 ${formatLength(distance(where, at))} away`;
    }
  }

  follow(unit) {
    const live = document.querySelector(`#live li[data-device="${CSS.escape(unit)}"] button.follow`);
    if (live && live.getAttribute('aria-pressed') !== 'true') {
      live.click(); // the live tool keeps it in view
      return;
    }
    const at = this.positions.get(unit);
    if (at) this.map.flyTo({ center: at, zoom: Math.max(this.map.getZoom(), 15) });
  }

  // -- road closures

  closureForm() {
    this.closureReason = element('input', { name: 'reason', maxLength: 200, placeholder: '如：火场封锁 e.g. fire cordon' });
    this.closureHours = element('select', { name: 'hours' },
      ...DURATIONS.map(([h, text]) => element('option', { value: String(h), textContent: text, selected: h === 4 })));
    this.closureHint = element('p', { className: 'hint' });
    this.closureButton = button('绘制封路范围 Draw the closed area', () => this.drawClosure(), { className: 'draw-closure' });
    return element('div', { className: 'command-closure' },
      labelled('原因 Reason', this.closureReason), labelled('时长 For', this.closureHours),
      element('div', { className: 'buttons' }, this.closureButton), this.closureHint);
  }

  async drawClosure() {
    const reasonText = this.closureReason.value.trim();
    if (!reasonText) {
      say('请填写封路原因 Give the closure a reason', true);
      this.closureReason.focus();
      return;
    }
    this.closureHint.textContent = INSTRUCTIONS.polygon;
    this.closureButton.setAttribute('aria-pressed', 'true');
    const geometry = await sketch(this.map, 'polygon', { tool: 'command' }).done;
    this.closureButton.setAttribute('aria-pressed', 'false');
    this.closureHint.textContent = '';
    if (!geometry) return;
    const expires = new Date(Date.now() + Number(this.closureHours.value) * 3600_000).toISOString();
    try {
      await postJSON(this.c.closures, { network: this.c.network, reason: reasonText, geometry, expires_at: expires });
      say(`已封路 Roads closed: ${reasonText}`);
      this.closureReason.value = '';
      await this.loadClosures();
      this.closuresChanged();
    } catch (error) {
      say(`封路失败 Not closed: ${error.message}`, true);
    }
  }

  async loadClosures() {
    try {
      const found = await getJSON(`${this.c.closures}?${new URLSearchParams({ network: this.c.network })}`);
      this.closures = found.features || [];
    } catch (error) {
      say(`封路 closures: ${error.message}`, true);
      return;
    }
    this.map.getSource('command-closures')?.setData({ type: 'FeatureCollection', features: this.closures });
    const rows = this.closures.map((f) => {
      const p = f.properties;
      const show = button(p.reason, () => {
        const at = pointOf(f.geometry);
        if (at) this.map.flyTo({ center: at, zoom: Math.max(this.map.getZoom(), 15) });
      }, { className: 'go' });
      const row = element('li', { className: p.active ? 'active' : 'later' }, show,
        element('div', { className: 'about', textContent:
          `${p.active ? '生效中 in force' : `${clock(p.starts_at)} 起 from`} · 至 until ${clock(p.expires_at)} · ${p.created_by}` }));
      if (this.c.editable) row.append(button('解除 Lift', () => this.lift(f.id, p.reason), { className: 'lift' }));
      row.dataset.closure = String(f.id);
      return row;
    });
    if (!rows.length) rows.push(element('li', { className: 'empty', textContent: '无 None' }));
    this.closureList.replaceChildren(...rows);
    this.closureCount.textContent = String(this.closures.length);
  }

  async lift(id, what) {
    try {
      await remove(`${this.c.closures}/${encodeURIComponent(id)}`);
      say(`已解除封路 Closure lifted: ${what}`);
      await this.loadClosures();
      this.closuresChanged();
    } catch (error) {
      say(`解除失败 Not lifted: ${error.message}`, true);
    }
  }

  /** Routes and reach change with the closures: the service areas again when shown. */
  closuresChanged() {
    if (!this.areas.loaded) return;
    this.areas.loaded = false;
    if (this.areas.visible) this.loadAreas();
  }

  // -- the service areas (a layer of the switcher)

  areaSwitch() {
    const areas = this.c.service_areas;
    if (!areas) return;
    const title = `消防站服务范围 Service areas of the stations (${areas.minutes.join('/')} 分钟 min)`;
    const box = element('input', { type: 'checkbox' });
    box.addEventListener('change', () => this.showAreas(box.checked));
    this.areaRow = element('li', {}, element('label', {}, box, ' ', title));
    Object.assign(this.areaRow.dataset, { layer: 'command-areas', state: 'idle', features: '0' });
    const list = document.querySelector('#layers ul');
    list?.prepend(this.areaRow);
  }

  showAreas(visible) {
    this.areas.visible = visible;
    for (const id of ['command-areas', 'command-areas-line']) {
      this.map.setLayoutProperty(id, 'visibility', visible ? 'visible' : 'none');
    }
    document.querySelector('#legend [data-layer="command-areas"]')?.classList.toggle('off', !visible);
    if (visible && !this.areas.loaded) this.loadAreas();
  }

  async loadAreas() {
    const areas = this.c.service_areas;
    this.areaRow.dataset.state = 'loading';
    say('服务范围计算中 Service areas: running…');
    try {
      const url = `${areas.points}?${new URLSearchParams({ f: 'json', limit: String(areas.most + 1) })}`;
      const stations = (await getJSON(url)).features.map((f) => pointOf(f.geometry)).filter(Boolean);
      if (!stations.length) throw new Error(`${areas.collection}: 无站点 no stations`);
      const points = stations.slice(0, areas.most);
      const outputs = await postJSON(areas.execution, { inputs: { network: this.c.network, points, minutes: areas.minutes } });
      const bands = [...areas.minutes].sort((a, b) => a - b);
      const features = (outputs.body.areas?.features || []).map((f) => feature(f.geometry,
        { ...f.properties, band: bands.indexOf(f.properties.minutes) }));
      this.map.getSource('command-areas').setData({ type: 'FeatureCollection', features });
      this.areas.loaded = true;
      this.areaRow.dataset.state = 'done';
      this.areaRow.dataset.features = String(features.length);
      const cut = stations.length > areas.most ? `; 仅前 ${areas.most} 个站 the first ${areas.most} stations` : '';
      say(`服务范围 Service areas: ${points.length} 个站 stations${cut}`);
    } catch (error) {
      this.areaRow.dataset.state = 'failed';
      say(`服务范围 Service areas: ${error.message}`, true);
    }
  }

  /** Legend blocks of the panel's layers, on top of the configured ones. */
  legend() {
    const holder = document.querySelector('#legend div');
    if (!holder) return;
    const block = (layer, title, entries, off = false) => {
      const items = entries.map(([label, colour, symbol]) => {
        const swatch = element('span', { className: `swatch ${symbol}` });
        swatch.style.setProperty('--colour', colour);
        return element('li', {}, swatch, element('span', { textContent: label }));
      });
      const made = element('div', { className: off ? 'off' : '' }, element('h3', { textContent: title }), element('ul', {}, ...items));
      made.dataset.layer = layer;
      return made;
    };
    const blocks = [
      block('command-incidents', '事件 Incidents', Object.values(STATUS).map((s) => [s.label, s.colour, 'circle'])),
      block('command-routes', '路线 Routes', [['推荐路线（按排名）Proposed, by rank', RANK_COLOURS[0], 'line'],
        ['已派车辆路线 Units sent', ASSIGNED_COLOUR, 'line']]),
      block('command-closures', '封路 Road closures', [['封路范围 Closed roads', CLOSURE_COLOUR, 'fill']]),
    ];
    const areas = this.c.service_areas;
    if (areas) {
      const bands = [...areas.minutes].sort((a, b) => a - b);
      blocks.push(block('command-areas', '服务范围 Service areas',
        bands.map((m, n) => [`${m} 分钟内 within ${m} min`, BAND_COLOURS[Math.min(n, BAND_COLOURS.length - 1)], 'fill']), true));
    }
    holder.prepend(...blocks);
    document.getElementById('legend').hidden = false;
  }
}
