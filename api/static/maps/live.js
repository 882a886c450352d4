// The live tool of the map pages (maps.js installs it once the style has loaded): vehicles
// moved by the platform's live stream (/gps/live, api/live.py), geofence events as they
// happen, and the state of the connection. Installs nothing when the map has no live
// stream (config.live is null: the caller may not read gps_latest).
//
// - Positions: each message moves its device in the vehicles layer's GeoJSON source (a
//   device not seen before is added); the source is set at most once per animation frame,
//   however many messages came meanwhile, and a vehicle glides to its new place when the
//   fleet is small. An older position than the one shown is ignored.
// - Geofence events (enter, exit, dwell): listed newest first (the last EVENTS_KEPT),
//   counted, pulsed on the map; a click flies to the place. The stream names the fence by
//   id: its name is read once from the gps_events collection when the caller may read it.
//   (That collection also holds the units' arrivals on scene, with no fence: the command
//   panel shows those, not this list.)
// - The connection: 连接中 / 实时 / 重连中, with the time of the last message; a lost
//   connection is retried with a capped exponential backoff, and after a reconnection (or
//   when the stream says it dropped messages for a slow client) the vehicles are read
//   again from the collection and the events missed meanwhile from gps_events.
// - A vehicle list: follow a vehicle (the map keeps it in view; dragging the map stops
//   following); vehicles without a fix for STALE_MS are greyed, in the list and on the map.
// - The page's one connection to the stream: it asks for no filter (every vehicle the
//   caller may see, and what happens to the incidents for a caller who may read them), and
//   hands on to the other tools (the command panel, command.js) as window events:
//   spatial:position, spatial:incident and spatial:alarm (detail: the message as the stream
//   sent it; the alarms for the monitoring panel, monitor.js),
//   spatial:live (detail {state}: the connection's state, as data-state below) and
//   spatial:missed (detail {reason}: 'reconnected' or 'dropped': messages may have been
//   missed, read again what the stream keeps current).
//
// Browsers cannot set headers on a WebSocket: the signed-in user's token goes as the
// access_token query parameter (the server hides it in its logs).
//
// For the browser tests: #live carries data-state (connecting, live, reconnecting,
// refused), data-positions (position messages applied), data-events, data-reconnects,
// data-refetches and data-catchups (reads of the events missed, done); each event's li
// carries data-device, data-kind, data-fence (the fence's id) and data-fence-name;
// window.spatialLive.interrupt() closes the socket as a lost connection would, hold() closes
// it and reconnects only at release(); receive(text) takes a message as if the stream sent
// it; vehicle(id) is what the page knows of a device; state is the connection's (which the
// command panel reads when it starts).

import { t } from './i18n.js';
import { element, getJSON, say, section, token } from './common.js';

const EVENTS_KEPT = 50;
const STALE_MS = 5 * 60 * 1000;
const STALE_COLOUR = '#adb5bd';
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;
const STEADY_MS = 10_000;
/** A connection open this long (or that brought a message) resets the backoff. */
const GLIDE_MS = 800;
const GLIDE_FLEET = 300;
/** Above this many vehicles they jump to their new place (each glide frame sets the whole
 * source). */
const GLIDE_FAR_DEG = 0.05;
/** Further than this (about 5 km) a vehicle jumps: a glide across the city says nothing. */
const PULSE_MS = 2400;
const CATCH_UP_MARGIN_MS = 10 * 60_000;
/** Events are read back from this long before the connection was lost (an event's time is
 * its fix's, which a device may send late; those already listed are skipped). */
const STATES = {
  connecting: t('connecting'),
  live: t('live'),
  reconnecting: t('reconnecting'),
  refused: t('refused'),
};
const KINDS = { enter: t('enter'), exit: t('exit'), dwell: t('dwell') };
/** The geofence events' kinds (gps_events also holds 'on-scene', an arrival: no fence). */
const FENCE_FILTER = `kind IN (${Object.keys(KINDS).map((k) => `'${k}'`).join(', ')})`;
const REFUSALS = new Set([1003, 1008]);
/** Close codes the server gives a request it will refuse again (no access, a bad filter).
 * A refusal before the handshake reaches a browser only as 1006, like a lost connection:
 * that is retried, no more often than RETRY_MAX_MS. */
const KEYS_KEPT = 5000;
/** Events remembered (to skip one told twice, by the stream and by a catch-up). */

/** A local time of day, with the date when it is not today's. */
function clock(time) {
  const date = new Date(time);
  const today = date.toDateString() === new Date().toDateString();
  return today ? date.toLocaleTimeString('zh-CN', { hour12: false })
    : date.toLocaleString('zh-CN', {
      month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
      hour12: false,
    });
}

const when = (time) => {
  const parsed = Date.parse(time);
  return Number.isNaN(parsed) ? 0 : parsed;
};

/** Hand on to the page's other tools (see above). */
const tell = (name, detail) => window.dispatchEvent(new CustomEvent(`spatial:${name}`, { detail }));

export function install({ map, maplibregl, config }) {
  if (!config.live) return;
  const layer = config.layers.find(
    (l) => l.collection === config.live.collection && config.sources[l.source]?.type === 'geojson',
  );
  const eventsLayer = config.layers.find((l) => l.collection === 'gps_events' && l.items);
  const items = layer ? config.sources[layer.source].data : null;
  const live = new Live(map, maplibregl, config.live.url, layer, items, eventsLayer);
  window.spatialLive = live.hooks();
  live.start();
}

class Live {
  constructor(map, maplibregl, url, layer, items, eventsLayer) {
    this.map = map;
    this.maplibregl = maplibregl;
    this.url = url;
    this.layer = layer; // the vehicles layer (undefined: events only)
    this.itemsUrl = typeof items === 'string' ? items : null;
    this.eventsUrl = eventsLayer?.items || null;
    this.vehicles = new Map(); // device -> {feature, to, from, start, row}
    this.dirty = false;
    this.frame = 0;
    this.follow = null;
    this.fences = new Map(); // fence id -> name, or a promise of it
    this.eventKeys = new Set();
    this.counts = { positions: 0, events: 0, reconnects: 0, refetches: 0, catchups: 0 };
    this.socket = null;
    this.attempts = 0;
    this.retry = 0;
    this.lastMessage = null;
    this.lostAt = null;
    this.build();
  }

  hooks() {
    const live = this;
    return {
      get state() { return live.state; },
      interrupt: () => this.socket?.close(4000, 'interrupted'),
      hold: () => {
        this.held = true;
        this.socket?.close(4000, 'held');
      },
      release: () => {
        this.held = false;
        this.connectNow();
      },
      receive: (text) => this.receive(text), // as if the stream said it
      vehicle: (device) => {
        const found = this.vehicles.get(device);
        return found ? { ...found.feature.properties, to: found.to,
          shown: found.feature.geometry.coordinates } : null;
      },
    };
  }

  // -- the panel ------------------------------------------------------------------------------

  build() {
    this.root = section('live');
    this.status = element('span', { className: 'text' });
    this.statusLine = element('p', { className: 'live-status' },
      element('span', { className: 'dot' }), this.status);
    this.vehicleCount = element('span', { className: 'count' });
    this.vehicleList = element('ul', { className: 'live-vehicles' });
    this.eventCount = element('span', { className: 'count', textContent: '0' });
    this.eventList = element('ol', { className: 'live-events' });
    this.root.replaceChildren(
      element('h2', { textContent: t('Live') }),
      this.statusLine,
      ...(this.layer ? [element('h3', {}, `${t('Vehicles')} `, this.vehicleCount), this.vehicleList] : []),
      element('h3', {}, `${t('Geofence events')} `, this.eventCount),
      this.eventList,
    );
    this.map.on('dragstart', () => this.setFollow(null));
    this.map.on('moveend', () => this.keepFollowed()); // it may have moved meanwhile
    this.setState('connecting');
  }

  setState(state, detail = '') {
    this.state = state;
    this.root.dataset.state = state;
    this.statusLine.dataset.state = state;
    this.showStatus(detail);
    tell('live', { state });
  }

  showStatus(detail = '') {
    const parts = [STATES[this.state]];
    if (detail) parts.push(detail);
    if (this.lastMessage) parts.push(t('last {time}', { time: clock(this.lastMessage) }));
    this.status.textContent = parts.join(' · ');
  }

  count(name, by = 1) {
    this.counts[name] += by;
    this.root.dataset[name] = String(this.counts[name]);
  }

  // -- the connection -------------------------------------------------------------------------

  start() {
    for (const name of Object.keys(this.counts)) this.root.dataset[name] = '0';
    if (this.itemsUrl) this.refetch();
    this.connect();
    setInterval(() => this.markStale(), 15_000);
    window.addEventListener('online', () => {
      if (this.state === 'reconnecting') this.connectNow();
    });
  }

  connect() {
    const url = new URL(this.url);
    const credential = token();
    if (credential) url.searchParams.set('access_token', credential);
    // A map without vehicles asks for no positions (nor fence events): alarms, incidents.
    if (!this.layer) url.searchParams.set('positions', 'false');
    const socket = new WebSocket(url);
    this.socket = socket;
    let opened = 0;
    let heard = false;
    socket.onopen = () => {
      opened = Date.now();
      const again = this.lostAt !== null;
      this.setState('live');
      if (again) {
        this.count('reconnects');
        this.catchUp(this.lostAt, 'reconnected');
        this.lostAt = null;
      }
    };
    socket.onmessage = (event) => {
      heard = true;
      this.receive(event.data);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      if (REFUSALS.has(event.code)) {
        this.setState('refused', event.reason);
        say(`${t('live')}: ${event.reason || event.code}`, true);
        return;
      }
      if (heard || (opened && Date.now() - opened > STEADY_MS)) this.attempts = 0;
      if (this.lostAt === null) this.lostAt = this.lastMessage || Date.now();
      if (this.held) {
        this.setState('reconnecting', t('held'));
        return;
      }
      const ceiling = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.attempts);
      const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      this.attempts += 1;
      this.setState('reconnecting', `${(delay / 1000).toFixed(1)} s`);
      this.retry = setTimeout(() => this.connectNow(), delay);
    };
    // no onerror: a failed connection also closes, and the close retries
  }

  connectNow() {
    clearTimeout(this.retry);
    if (this.socket || this.held) return;
    this.setState(this.lostAt === null ? 'connecting' : 'reconnecting');
    this.connect();
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return; // not ours to understand
    }
    const previous = this.lastMessage;
    this.lastMessage = Date.now();
    if (message.type === 'position') {
      this.position(message);
      tell('position', message);
    } else if (message.type === 'event') {
      this.event(message, true);
    } else if (message.type === 'incident') {
      tell('incident', message);
    } else if (message.type === 'alarm') {
      tell('alarm', message);
    } else if (message.type === 'dropped') {
      this.catchUp(previous || this.lastMessage, 'dropped');
    }
    this.showStatus();
  }

  /** Read the vehicles again, and the events since ``since`` (ms), after messages may have
   * been missed (``reason``: 'reconnected' or 'dropped'); the other tools are told. */
  catchUp(since, reason) {
    if (this.itemsUrl) this.refetch();
    if (this.eventsUrl && since) this.missedEvents(since - CATCH_UP_MARGIN_MS);
    tell('missed', { reason });
  }

  async refetch() {
    try {
      const found = await getJSON(this.itemsUrl);
      for (const feature of found.features || []) {
        const [lon, lat] = feature.geometry?.coordinates || [];
        if (lon === undefined) continue;
        this.place(feature.properties.device_id, lon, lat, feature.properties, feature.id);
      }
      this.count('refetches');
    } catch (error) {
      say(`${t('live')}: ${error.message}`, true);
    }
  }

  async missedEvents(since) {
    const url = new URL(this.eventsUrl);
    url.search = new URLSearchParams({
      f: 'json', datetime: `${new Date(since).toISOString()}/..`, sortby: '-time', limit: String(EVENTS_KEPT),
      filter: FENCE_FILTER, 'filter-lang': 'cql2-text',
    }).toString();
    try {
      const found = await getJSON(url.toString());
      for (const feature of (found.features || []).reverse()) {
        const p = feature.properties;
        const [lon, lat] = feature.geometry?.coordinates || [];
        if (p.fence) this.fences.set(Number(p.fence_id), p.fence);
        this.event({ device: p.device_id, fence: p.fence_id, kind: p.kind, time: p.time, lon, lat },
          false);
      }
      this.count('catchups');
    } catch (error) {
      say(`${t('live')}: ${error.message}`, true);
    }
  }

  // -- vehicles -------------------------------------------------------------------------------

  position(message) {
    if (!this.layer) return;
    const properties = {
      device_id: message.device, name: message.name, kind: message.kind,
      department: message.department, time: message.time, speed: message.speed,
      course: message.course,
    };
    if (this.place(message.device, message.lon, message.lat, properties)) this.count('positions');
  }

  /** Put a device at a place (newer than what is shown); true when it moved. */
  place(device, lon, lat, properties, id) {
    if (!device || !Number.isFinite(lon) || !Number.isFinite(lat)) return false;
    let vehicle = this.vehicles.get(device);
    if (vehicle && when(properties.time) < when(vehicle.feature.properties.time)) return false;
    const now = performance.now();
    if (!vehicle) {
      vehicle = {
        feature: { type: 'Feature', geometry: { type: 'Point', coordinates: [lon, lat] }, properties: {} },
        to: [lon, lat], from: [lon, lat], start: now,
      };
      this.vehicles.set(device, vehicle);
    }
    if (id !== undefined) vehicle.feature.id = id;
    Object.assign(vehicle.feature.properties, properties);
    const [x, y] = vehicle.feature.geometry.coordinates;
    const far = Math.abs(x - lon) > GLIDE_FAR_DEG || Math.abs(y - lat) > GLIDE_FAR_DEG;
    vehicle.from = far || this.vehicles.size > GLIDE_FLEET ? [lon, lat] : [x, y];
    vehicle.to = [lon, lat];
    vehicle.start = now;
    vehicle.changed = true;
    this.schedule();
    return true;
  }

  schedule() {
    this.dirty = true;
    if (!this.frame) this.frame = requestAnimationFrame((now) => this.draw(now));
  }

  /** One frame: move the gliding vehicles, set the source once, update the list. */
  draw(now) {
    this.frame = 0;
    let gliding = false;
    for (const vehicle of this.vehicles.values()) {
      const coordinates = vehicle.feature.geometry.coordinates;
      if (coordinates[0] === vehicle.to[0] && coordinates[1] === vehicle.to[1]) continue;
      const t = Math.min(1, Math.max(0, (now - vehicle.start) / GLIDE_MS));
      const eased = t * (2 - t);
      vehicle.feature.geometry.coordinates = t >= 1 ? [...vehicle.to] : [
        vehicle.from[0] + (vehicle.to[0] - vehicle.from[0]) * eased,
        vehicle.from[1] + (vehicle.to[1] - vehicle.from[1]) * eased,
      ];
      if (t < 1) gliding = true;
    }
    if (this.dirty) {
      this.dirty = false;
      this.markStale(false);
      this.listVehicles();
      this.keepFollowed();
    }
    this.map.getSource(this.layer.source)?.setData({
      type: 'FeatureCollection', features: [...this.vehicles.values()].map((v) => v.feature),
    });
    if (gliding) this.frame = requestAnimationFrame((next) => this.draw(next));
  }

  /** Grey the vehicles without a fix for STALE_MS (redrawn when one changes). */
  markStale(redraw = true) {
    if (!this.layer) return;
    let changed = false;
    const now = Date.now();
    for (const vehicle of this.vehicles.values()) {
      const stale = now - when(vehicle.feature.properties.time) > STALE_MS;
      if (vehicle.feature.properties.stale !== stale) {
        vehicle.feature.properties.stale = stale;
        vehicle.row?.classList.toggle('stale', stale);
        changed = true;
      }
    }
    if (!this.staleStyled) this.styleStale();
    if (changed && redraw) this.schedule();
  }

  /** The vehicles layer's circles in grey when stale (the configured colour otherwise). */
  styleStale() {
    this.staleStyled = true;
    const id = this.layer.maplibre[0]?.id;
    if (this.map.getLayer(id)?.type !== 'circle') return;
    const colour = this.map.getPaintProperty(id, 'circle-color');
    if (colour === undefined) return;
    this.map.setPaintProperty(id, 'circle-color',
      ['case', ['==', ['get', 'stale'], true], STALE_COLOUR, colour]);
  }

  listVehicles() {
    let added = false;
    for (const [device, vehicle] of this.vehicles) {
      if (!vehicle.changed) continue;
      vehicle.changed = false;
      if (!vehicle.row) {
        vehicle.row = this.vehicleRow(device);
        added = true;
      }
      const p = vehicle.feature.properties;
      const speed = Number.isFinite(p.speed) ? ` · ${(p.speed * 3.6).toFixed(0)} km/h` : '';
      vehicle.row.querySelector('.name').textContent = p.name && p.name !== device ? p.name : '';
      vehicle.row.querySelector('.about').textContent = `${p.kind || '—'} · ${p.time ? clock(p.time) : '—'}${speed}`;
      vehicle.row.classList.toggle('stale', Boolean(p.stale));
      vehicle.row.dataset.time = p.time || '';
    }
    if (added) {
      const rows = [...this.vehicles.keys()].sort().map((d) => this.vehicles.get(d).row);
      this.vehicleList.replaceChildren(...rows);
      this.vehicleCount.textContent = String(rows.length);
    }
  }

  vehicleRow(device) {
    const follow = element('button', { type: 'button', className: 'follow', textContent: t('Follow') });
    follow.setAttribute('aria-pressed', 'false');
    follow.addEventListener('click', () => this.setFollow(this.follow === device ? null : device));
    const row = element('li', {},
      element('div', {}, element('b', { textContent: device }), ' ', element('span', { className: 'name' })),
      element('div', { className: 'about' }), follow);
    row.dataset.device = device;
    return row;
  }

  setFollow(device) {
    if (this.follow === device) return;
    const before = this.vehicles.get(this.follow)?.row;
    before?.classList.remove('followed');
    before?.querySelector('.follow').setAttribute('aria-pressed', 'false');
    this.follow = device;
    this.root.dataset.follow = device || '';
    const vehicle = this.vehicles.get(device);
    if (!vehicle) return;
    vehicle.row?.classList.add('followed');
    vehicle.row?.querySelector('.follow').setAttribute('aria-pressed', 'true');
    this.map.flyTo({ center: vehicle.to, zoom: Math.max(this.map.getZoom(), 15) });
  }

  /** The followed vehicle in view: recentre when it nears the map's edge. */
  keepFollowed() {
    const vehicle = this.vehicles.get(this.follow);
    if (!vehicle || this.map.isMoving()) return;
    const { width, height } = this.map.getCanvas().getBoundingClientRect();
    const { x, y } = this.map.project(vehicle.to);
    if (x < width * 0.2 || x > width * 0.8 || y < height * 0.2 || y > height * 0.8) {
      this.map.easeTo({ center: vehicle.to, duration: 600 });
    }
  }

  // -- geofence events ------------------------------------------------------------------------

  /** Show a geofence event (``fresh``: from the stream now, pulsed; else caught up,
   * quietly); anything else (an arrival on scene has no fence) is not one. */
  event(message, fresh) {
    if (!Object.hasOwn(KINDS, message.kind) || message.fence === null || message.fence === undefined) return;
    const fence = Number(message.fence);
    const key = `${message.device}|${fence}|${message.kind}|${when(message.time)}`;
    if (this.eventKeys.has(key)) return;
    this.eventKeys.add(key);
    if (this.eventKeys.size > KEYS_KEPT) { // forget the oldest half (a Set keeps its order)
      [...this.eventKeys].slice(0, KEYS_KEPT / 2).forEach((old) => this.eventKeys.delete(old));
    }
    this.count('events');
    this.eventCount.textContent = String(this.counts.events);
    const place = [message.lon, message.lat];
    const name = element('span', { className: 'fence', textContent: `#${fence}` });
    const vehicleName = this.vehicles.get(message.device)?.feature.properties.name;
    const button = element('button', { type: 'button' },
      element('time', { dateTime: message.time, textContent: clock(message.time) }), ' ',
      element('b', { textContent: message.device, title: vehicleName || '' }), ' ',
      element('span', { className: `kind ${message.kind}`, textContent: KINDS[message.kind] || message.kind }),
      ' ', name);
    const item = element('li', { className: fresh ? 'fresh' : 'late' }, button);
    Object.assign(item.dataset, { device: message.device, kind: message.kind, fence: String(fence),
      time: String(when(message.time)) });
    button.addEventListener('click', () => {
      this.setFollow(null); // the dispatcher looks there now
      this.map.flyTo({ center: place, zoom: Math.max(this.map.getZoom(), 15) });
      this.pulse(place, message.kind);
    });
    this.insertEvent(item);
    this.nameFence(fence).then((fenceName) => {
      name.textContent = fenceName;
      item.dataset.fenceName = fenceName;
    });
    if (fresh) this.pulse(place, message.kind);
  }

  /** Newest first by the event's time (of events at the same time, the last told first);
   * only the last EVENTS_KEPT are kept. */
  insertEvent(item) {
    const t = Number(item.dataset.time);
    const after = [...this.eventList.children].find((li) => Number(li.dataset.time) <= t);
    this.eventList.insertBefore(item, after || null);
    while (this.eventList.children.length > EVENTS_KEPT) this.eventList.lastElementChild.remove();
  }

  /** A fence's name, read once (its id when it cannot be read). */
  nameFence(fence) {
    if (!this.fences.has(fence)) {
      const fallback = t('fence #{n}', { n: fence });
      let asked = Promise.resolve(fallback);
      if (this.eventsUrl) {
        const query = new URLSearchParams({ f: 'json', fence_id: String(fence), limit: '1',
          properties: 'fence', skipGeometry: 'true' });
        asked = getJSON(`${this.eventsUrl}?${query}`)
          .then((found) => found.features?.[0]?.properties?.fence || fallback)
          .catch(() => fallback);
      }
      this.fences.set(fence, asked);
      asked.then((name) => this.fences.set(fence, name));
    }
    return Promise.resolve(this.fences.get(fence));
  }

  /** A short pulse on the map at an event's place. */
  pulse(place, kind) {
    if (!place.every(Number.isFinite)) return;
    // (the marker positions its element by a transform: the pulse scales a child)
    const dot = element('div', { className: 'live-pulse-at' }, element('div', { className: `live-pulse ${kind}` }));
    const marker = new this.maplibregl.Marker({ element: dot }).setLngLat(place).addTo(this.map);
    setTimeout(() => marker.remove(), PULSE_MS);
  }
}
