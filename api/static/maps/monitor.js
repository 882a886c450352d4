// The monitoring panel of the map pages (maps.js installs it once the style has loaded), for
// a map whose configuration has ``monitor`` (layers/subsystems.py: the water gauges of the
// water map, the environmental stations of the environment map; only for callers who may
// read the stations' layer).
//
// - The stations' latest readings (GET /alarms/status?collection=...: a FeatureCollection of
//   the stations, each with its worst level and its datastreams' latest values and
//   thresholds) colour the stations' layer: each feature's MapLibre feature-state ``level``
//   (the tiles know a feature by its id, the status by its key: the ids are read once from
//   the features API), matched against the configured levels' colours, the layer's own
//   colour for a station with no reading. A reading under every threshold is ``normal``.
// - A click on a station (or its row, or an alarm) opens a chart of its readings of the last
//   48 h with the threshold lines (chart.js), one datastream at a time (a picker when the
//   station has several).
// - The active alarms (GET /alarms?state=active), of this map's stations only, then kept
//   current from the live stream: the live tool (live.js, the page's one connection) hands
//   on {"type": "alarm", "state": "raised" | "cleared", ...} as the window event
//   spatial:alarm. An alarm, a reconnection (spatial:missed) or every REFRESH_MS (readings
//   that crossed nothing) reads the status again; an open chart is read again too.
//   Without a live stream (the caller may not read it) the panel polls.
//
// For the browser tests: #monitor carries data-stream (connecting, live, reconnecting,
// polling), data-reads (status reads done), data-stations, data-alarms and data-state
// (loading, done, failed); station rows tr[data-key][data-thing][data-level]; alarms
// li[data-alarm][data-thing][data-datastream][data-level]; .monitor-view data-key when a
// station is open; window.spatialMonitor: level(key) (the feature-state of a station's
// feature), station(key), refresh(), open(key, datastream), chart().

import { t } from './i18n.js';
import { body, element, getJSON, say, section } from './common.js';
import { Chart, HOURS } from './chart.js';
import { button, clock, closeIn } from './panel.js';

const REFRESH_MS = 30_000;
const POLL_MS = 20_000; // no live stream
const SOON_MS = 300; // alarms close together: one read of the status
const NORMAL = 'normal';
const STREAM = {
  connecting: t('connecting'), live: t('live'), reconnecting: t('reconnecting'),
  refused: t('refused'), polling: t('polling every {s} s', { s: POLL_MS / 1000 }),
};

export function install({ map, config }) {
  if (!config.monitor) return;
  const layer = config.layers.find((l) => l.id === config.monitor.layer);
  if (!layer) return;
  const monitor = new Monitor(map, config, layer);
  window.spatialMonitor = monitor.hooks();
  monitor.start();
}

/** A number as read: at most 3 decimals, with its unit. */
function reading(value, unit) {
  if (value === null || value === undefined || value === '') return '—';
  const text = typeof value === 'number' ? String(Math.round(value * 1000) / 1000) : String(value);
  return unit ? `${text} ${unit}` : text;
}

/** An alarm as the list (GET /alarms: raised_at, raised_value) and the stream (time,
 * value) say it, in one shape. */
function alarmOf(raw) {
  const a = raw.properties ? { ...raw.properties, id: raw.id ?? raw.properties.id } : raw;
  return {
    ...a, id: String(a.alarm ?? a.id), thing: Number(a.thing), datastream: Number(a.datastream),
    time: a.time ?? a.raised_at, value: a.value ?? a.raised_value,
  };
}

class Monitor {
  constructor(map, config, layer) {
    this.map = map;
    this.m = config.monitor;
    this.layer = layer;
    const source = config.sources[layer.source];
    this.target = source.type === 'vector'
      ? { source: layer.source, sourceLayer: layer.collection } : { source: layer.source };
    this.levels = new Map(this.m.levels.map((l, n) => [l.id, { ...l, rank: n + 1 }]));
    this.stations = new Map(); // key -> the status feature
    this.things = new Map(); // thing id -> key
    this.ids = new Map(); // key -> the feature's id in the tiles
    this.keys = new Map(); // feature id -> key
    this.states = new Map(); // key -> the level set as feature-state
    this.alarms = new Map(); // alarm id -> alarm
    this.open = null; // {key, datastream}
    this.chart = new Chart(this.m.sta, this.levels);
    this.reads = 0;
    this.asked = 0;
    this.soon = 0;
  }

  hooks() {
    return {
      level: (key) => {
        const id = this.ids.get(key);
        return id === undefined ? undefined : this.map.getFeatureState({ ...this.target, id }).level;
      },
      station: (key) => this.stations.get(key) || null,
      refresh: () => this.refresh(),
      open: (key, datastream) => this.show(key, datastream),
      chart: () => this.chart.describe(),
    };
  }

  start() {
    this.build();
    this.paint();
    this.clicks();
    this.featureIds().then(() => this.refresh());
    this.loadAlarms();
    if (this.m.live) {
      const on = (name, handler) => window.addEventListener(`spatial:${name}`, (e) => handler(e.detail));
      on('alarm', (message) => this.told(message));
      on('missed', () => { this.loadAlarms(); this.refresh(); });
      on('live', ({ state }) => this.showStream(state));
      this.showStream(window.spatialLive?.state || 'connecting');
      setInterval(() => this.refresh(), REFRESH_MS);
    } else {
      this.showStream('polling');
      setInterval(() => { this.loadAlarms(); this.refresh(); }, POLL_MS);
    }
  }

  // -- the panel

  build() {
    this.root = section('monitor');
    this.root.dataset.reads = '0';
    this.root.dataset.state = 'loading';
    this.streamText = element('span', { className: 'text' });
    this.stream = element('p', { className: 'monitor-stream' }, element('span', { className: 'dot' }), this.streamText);
    this.alarmCount = element('span', { className: 'count', textContent: '0' });
    this.alarmList = element('ol', { className: 'monitor-alarms' });
    this.noAlarm = element('p', { className: 'empty', textContent: t('No active alarm') });
    this.viewTitle = element('h3');
    this.picker = element('select', { className: 'datastream', title: t('Datastream') });
    this.picker.setAttribute('aria-label', t('Datastream'));
    this.picker.addEventListener('change', () => this.show(this.open?.key, Number(this.picker.value)));
    this.view = element('div', { className: 'monitor-view', hidden: true },
      element('div', { className: 'monitor-view-head' }, this.viewTitle,
        button('×', () => this.closeView(), { className: 'close', title: t('Close the view') })),
      this.picker);
    this.stationCount = element('span', { className: 'count' });
    this.stationRows = element('tbody');
    this.root.replaceChildren(
      element('h2', { textContent: this.m.title }), this.stream,
      element('h3', {}, `${t('Active alarms')} `, this.alarmCount), this.noAlarm, this.alarmList,
      this.view,
      element('h3', {}, `${t('Stations')} `, this.stationCount),
      element('div', { className: 'monitor-stations-box' },
        element('table', { className: 'monitor-stations' }, element('thead', {}, element('tr', {},
          element('th', { textContent: t('Station') }), element('th', { textContent: t('Latest') }),
          element('th', { textContent: t('Level') }))), this.stationRows)),
    );
  }

  showStream(state) {
    this.root.dataset.stream = state;
    this.stream.dataset.state = state;
    this.streamText.textContent = STREAM[state] || state;
  }

  /** A level's badge; ``short``: its label's first word (the Chinese), the rest as a tip. */
  badge(level, short = false) {
    const found = this.levels.get(level);
    const label = found?.label || level || '—';
    const span = element('span', { className: 'level', textContent: short ? label.split(' ')[0] : label, title: label });
    span.dataset.level = level || '';
    if (found) span.style.setProperty('--colour', found.color);
    return span;
  }

  // -- the map

  /** Colour the stations by their feature-state ``level``; the layer's own colour else. */
  paint() {
    const pairs = this.m.levels.flatMap((l) => [l.id, l.color]);
    for (const style of this.layer.maplibre) {
      if (style.type !== 'circle') continue;
      const own = this.map.getPaintProperty(style.id, 'circle-color') ?? '#000000';
      this.map.setPaintProperty(style.id, 'circle-color',
        ['match', ['coalesce', ['feature-state', 'level'], ''], ...pairs, own]);
    }
  }

  clicks() {
    for (const style of this.layer.maplibre) {
      this.map.on('click', style.id, (event) => {
        if (body.dataset.tool) return; // a tool is drawing: clicks are its points
        const key = this.keys.get(event.features?.[0]?.id);
        if (key !== undefined) this.show(key);
      });
    }
  }

  /** The tiles' feature ids of the stations, by key (once). */
  async featureIds() {
    if (!this.m.key || !this.layer.items) return;
    const query = new URLSearchParams({ f: 'json', limit: '10000', properties: this.m.key, skipGeometry: 'true' });
    try {
      const found = await getJSON(`${this.layer.items}?${query}`);
      for (const f of found.features || []) {
        const key = f.properties?.[this.m.key];
        if (key === undefined || key === null || f.id === undefined) continue;
        this.ids.set(String(key), f.id);
        this.keys.set(f.id, String(key));
      }
    } catch (error) {
      say(`${this.m.title}: ${error.message}`, true);
    }
  }

  setLevel(key, level) {
    const id = this.ids.get(key);
    if (id === undefined || this.states.get(key) === level) return;
    this.states.set(key, level);
    this.map.setFeatureState({ ...this.target, id }, { level });
  }

  // -- the stations' status

  /** The datastreams a station's colour comes from: those of the configured observed
   * property, else all. */
  colouring(station) {
    const streams = station.properties?.datastreams || [];
    const wanted = this.m.property?.toLowerCase();
    return wanted ? streams.filter((d) => String(d.property).toLowerCase() === wanted) : streams;
  }

  /** The level drawn for a station: the worst of its colouring datastreams (the status
   * says the worst of all), ``normal`` under every threshold, null without a reading. */
  levelOf(station) {
    const streams = this.colouring(station);
    const rank = (level) => this.levels.get(level)?.rank || 0;
    const worst = this.m.property
      ? streams.map((d) => d.level).filter(Boolean).sort((a, b) => rank(b) - rank(a))[0]
      : station.properties?.level;
    if (worst) return worst;
    const read = streams.some((d) => d.value !== null && d.value !== undefined);
    return read ? NORMAL : null;
  }

  async refresh() {
    const asked = ++this.asked;
    try {
      const found = await getJSON(this.m.status);
      if (asked !== this.asked) return; // a newer read answers
      this.stations.clear();
      this.things.clear();
      for (const station of found.features || []) {
        const key = String(station.id);
        this.stations.set(key, station);
        if (station.properties?.thing !== undefined) this.things.set(Number(station.properties.thing), key);
        this.setLevel(key, this.levelOf(station));
      }
      this.listStations();
      this.listAlarms();
      this.reads += 1;
      Object.assign(this.root.dataset, { reads: String(this.reads), state: 'done', stations: String(this.stations.size) });
      if (this.open && this.newer(this.open)) this.show(this.open.key, this.open.datastream);
    } catch (error) {
      if (asked !== this.asked) return;
      this.root.dataset.state = 'failed';
      say(`${this.m.title}: ${error.message}`, true);
    }
  }

  /** Whether the open chart's datastream has a newer reading than it shows. */
  newer({ key, datastream, time }) {
    const stream = this.stations.get(key)?.properties?.datastreams?.find((d) => d.id === datastream);
    return Boolean(stream) && stream.time !== time;
  }

  refreshSoon() {
    clearTimeout(this.soon);
    this.soon = setTimeout(() => this.refresh(), SOON_MS);
  }

  /** Worst first, then by name. */
  listStations() {
    const rank = (s) => this.levels.get(this.levelOf(s))?.rank || 0;
    const sorted = [...this.stations.entries()].sort(([, a], [, b]) => rank(b) - rank(a)
      || String(a.properties?.name).localeCompare(String(b.properties?.name), 'zh-CN'));
    const rows = sorted.map(([key, station]) => {
      const p = station.properties || {};
      const main = this.mainDatastream(station);
      const name = button(p.name || key, () => this.show(key), { className: 'go' });
      const row = element('tr', {}, element('td', {}, name),
        element('td', { className: 'number', textContent: main ? reading(main.value, main.unit) : '—' }),
        element('td', {}, this.badge(this.levelOf(station), true)));
      Object.assign(row.dataset, { key, thing: String(p.thing ?? ''), level: this.levelOf(station) || '' });
      row.classList.toggle('open', this.open?.key === key);
      return row;
    });
    this.stationRows.replaceChildren(...rows);
    this.stationCount.textContent = String(rows.length);
  }

  /** The datastream a station's colour comes from (the one at its level), else the first
   * with thresholds, else the first. */
  mainDatastream(station) {
    const streams = this.colouring(station);
    const level = this.levelOf(station);
    return streams.find((d) => d.level && d.level === level)
      || streams.find((d) => d.thresholds?.length) || streams[0]
      || station.properties?.datastreams?.[0] || null;
  }

  // -- alarms

  async loadAlarms() {
    try {
      const found = await getJSON(`${this.m.alarms}?state=active`);
      const list = Array.isArray(found) ? found : found.alarms || found.features || found.items || [];
      this.alarms.clear();
      for (const raw of list) {
        const alarm = alarmOf(raw);
        this.alarms.set(alarm.id, alarm);
      }
      this.listAlarms();
    } catch (error) {
      say(`${t('alarms')}: ${error.message}`, true);
    }
  }

  /** A message of the live stream: an alarm raised or cleared. */
  told(message) {
    const alarm = alarmOf(message);
    if (message.state === 'cleared') this.alarms.delete(alarm.id);
    else this.alarms.set(alarm.id, { ...alarm, fresh: true });
    const key = this.things.get(alarm.thing);
    const station = this.stations.get(key);
    const colours = station && this.colouring(station).some((d) => d.id === alarm.datastream);
    if (colours && message.state !== 'cleared' && message.level) this.setLevel(key, message.level); // at once
    this.listAlarms();
    this.refreshSoon();
  }

  /** This map's stations' alarms, newest first. */
  listAlarms() {
    const mine = [...this.alarms.values()].filter((a) => this.things.has(a.thing))
      .sort((a, b) => String(b.time).localeCompare(String(a.time)));
    const items = mine.map((a) => {
      const key = this.things.get(a.thing);
      const station = this.stations.get(key);
      const stream = station?.properties?.datastreams?.find((d) => d.id === a.datastream);
      const go = button('', () => this.show(key, a.datastream, true));
      go.append(element('time', { dateTime: a.time || '', textContent: clock(a.time) }), ' ',
        element('b', { textContent: station?.properties?.name || a.name || key }), ' ',
        this.badge(a.level), ' ',
        element('span', { className: 'value', textContent: reading(a.value, stream?.unit) }),
        ...(a.threshold !== undefined && a.threshold !== null
          ? [element('span', { className: 'threshold', textContent: ` ≥ ${reading(a.threshold, stream?.unit)}` })] : []),
        ...(stream ? [element('span', { className: 'about', textContent: ` · ${stream.property || stream.name}` })] : []));
      const li = element('li', { className: a.fresh ? 'fresh' : '' }, go);
      Object.assign(li.dataset, { alarm: a.id, thing: String(a.thing), datastream: String(a.datastream),
        level: a.level || '' });
      return li;
    });
    this.alarmList.replaceChildren(...items);
    this.alarmCount.textContent = String(items.length);
    this.noAlarm.hidden = items.length > 0;
    this.root.dataset.alarms = String(items.length);
  }

  // -- a station's chart

  /** Open a station's chart (``datastream``: one of its datastreams' ids, the main one by
   * default); ``go``: fly there. */
  async show(key, datastream = null, go = false) {
    const station = this.stations.get(key);
    if (!station) return;
    const streams = station.properties?.datastreams || [];
    const chosen = streams.find((d) => d.id === datastream) || this.mainDatastream(station);
    const p = station.properties || {};
    if (go && station.geometry) closeIn(this.map, station.geometry.coordinates, 14);
    this.open = { key, datastream: chosen?.id ?? null, time: chosen?.time ?? null };
    this.view.hidden = false;
    this.view.dataset.key = key;
    this.viewTitle.replaceChildren(`${p.name || key} `, this.badge(this.levelOf(station)));
    this.picker.replaceChildren(...streams.map((d) => element('option', {
      value: String(d.id), selected: d.id === chosen?.id,
      textContent: [`${d.property || d.name} ${reading(d.value, d.unit)}`,
        ...(d.windows || []).map((w) => `${w.hours} h ${reading(w.value, d.unit)}`)].join(' · '),
    })));
    this.picker.hidden = streams.length < 2;
    for (const row of this.stationRows.children) row.classList.toggle('open', row.dataset.key === key);
    if (!chosen) {
      this.chart.close();
      this.view.append(element('p', { className: 'empty', textContent: t('No datastream') }));
      return;
    }
    this.view.querySelector(':scope > p.empty')?.remove();
    try {
      await this.chart.show(chosen, this.view);
    } catch (error) {
      say(`${HOURS} h: ${error.message}`, true);
    }
  }

  closeView() {
    this.open = null;
    this.chart.close();
    this.view.hidden = true;
    delete this.view.dataset.key;
    for (const row of this.stationRows.children) row.classList.remove('open');
  }
}
