// The web maps' pages (api/routers/maps.py): /maps/ lists the maps the user may open,
// /maps/{subsystem} draws one with MapLibre from its configuration (/maps/{id}/config).
// Plain ES modules, no build step. MapLibre (ES modules only since v6) is imported from the
// platform's /vendor, and only on a map page. Nothing is loaded from another host: the
// basemap is drawn only when the server configures one.
//
// This module draws the map (layers, switcher with opacity and dates, legend, popups, scale,
// coordinates); the tools are modules of their own, each given the map to work on:
// search.js (attribute and place search), measure.js (distance and area), analyse.js
// (draw a shape, run a process, show and download the result), live.js (vehicles and
// geofence events on the live stream, the page's one connection to it, handed on to the
// other tools), command.js (incidents, units and dispatch, on a map configured with
// ``command``; report.js, closures.js and reach.js are its parts), monitor.js (stations
// coloured by their latest readings, a chart of a station's readings, the alarms, on a map
// configured with ``monitor``; chart.js its chart), flood.js (a flood extent at a gauge's
// level, what it covers, the roads it closes, on a map configured with ``flood``), terrain.js
// (3D terrain and hillshade toggles, on a map configured with ``terrain``).

import { t } from './i18n.js';
import {
  authorization, base, body, element, getJSON, popupContent, say, TOKEN, token,
} from './common.js';

const TOOLS = ['search', 'measure', 'analyse', 'live', 'command', 'monitor', 'flood', 'terrain', 'print'];
/** The tool modules, in the panel's order; each exports ``install({map, maplibregl,
 * config})``, called once the map has loaded its style. */

const OPACITY = {
  fill: ['fill-opacity'],
  line: ['line-opacity'],
  circle: ['circle-opacity', 'circle-stroke-opacity'],
  raster: ['raster-opacity'],
  heatmap: ['heatmap-opacity'],
  'fill-extrusion': ['fill-extrusion-opacity'],
  symbol: ['icon-opacity', 'text-opacity'],
};
const BACKGROUND = '#f4f3ef';

/** Show the sign-in form; on success keep the token and call ``then``. */
function offerSignIn(then) {
  const form = document.getElementById('signin');
  form.hidden = false;
  form.onsubmit = async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    const response = await fetch(`${base}/auth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: fields.get('username'), password: fields.get('password') }),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      say(`${t('Sign-in failed')}: ${answer.description || response.status}`, true);
      return;
    }
    sessionStorage.setItem(TOKEN, answer.access_token);
    form.hidden = true;
    say('');
    then();
  };
}

// -- the index --------------------------------------------------------------------------------

async function indexPage() {
  if (!token()) {
    offerSignIn(indexPage); // the server listed the maps anyone may open
    return;
  }
  try {
    const [listed, me] = await Promise.all([
      getJSON(`${base}/maps/subsystems`),
      getJSON(`${base}/auth/me`),
    ]);
    document.getElementById('maps').replaceChildren(
      ...listed.subsystems.map((s) =>
        element('li', {}, element('a', { href: `${base}/maps/${s.id}`, textContent: s.title }),
          element('p', { textContent: s.description })),
      ),
    );
    document.getElementById('who').textContent = `${me.username}${me.department ? ` · ${me.department}` : ''}`;
  } catch (error) {
    say(error.message, true);
    if (error.status === 401) {
      sessionStorage.removeItem(TOKEN);
      offerSignIn(indexPage);
    }
  }
}

// -- the map page -----------------------------------------------------------------------------

/** The MapLibre style: a plain background, the basemap if configured, then the layers (the
 * configuration lists them bottom first). */
function styleOf(config) {
  const sources = { ...config.sources };
  const layers = [{ id: 'background', type: 'background', paint: { 'background-color': BACKGROUND } }];
  if (config.basemap) {
    const url = config.basemap.url;
    const tiles = url.includes('{s}') ? ['a', 'b', 'c'].map((s) => url.replace('{s}', s)) : [url];
    sources['basemap'] = { type: 'raster', tiles, tileSize: 256, attribution: config.basemap.attribution || '' };
    layers.push({ id: 'basemap', type: 'raster', source: 'basemap' });
  }
  for (const layer of config.layers) layers.push(...layer.maplibre);
  return { version: 8, sources, layers };
}

function setVisible(map, layer, visible) {
  for (const style of layer.maplibre) map.setLayoutProperty(style.id, 'visibility', visible ? 'visible' : 'none');
}

function setOpacity(map, layer, opacity) {
  for (const style of layer.maplibre) {
    for (const property of OPACITY[style.type] || []) map.setPaintProperty(style.id, property, opacity);
  }
}

/** An imagery layer's date picker: the mosaic as seen at the chosen date (the newest scene
 * at or before it, per place). The first choice is the configuration's tile URL. */
function datePicker(map, config, layer) {
  const picker = element('select', { className: 'dates', title: t('Imagery date') });
  picker.setAttribute('aria-label', `${layer.title}: ${t('date')}`);
  for (const choice of layer.datetimes) {
    picker.append(element('option', { value: choice.datetime, textContent: choice.label }));
  }
  picker.addEventListener('change', () => {
    const url = new URL(config.sources[layer.source].tiles[0].replaceAll('{', '%7B').replaceAll('}', '%7D'));
    url.searchParams.set('datetime', picker.value);
    const tiles = url.toString().replaceAll('%7B', '{').replaceAll('%7D', '}');
    map.getSource(layer.source).setTiles([tiles]);
    picker.dataset.tiles = tiles;
  });
  return picker;
}

/** A row per layer, top layer first: a visibility box and an opacity slider. */
function layerSwitcher(map, config, legendBlocks) {
  const list = document.querySelector('#layers ul');
  for (const layer of [...config.layers].reverse()) {
    const box = element('input', { type: 'checkbox', checked: layer.visible });
    const slider = element('input', {
      type: 'range', min: 0, max: 100, step: 5, value: Math.round(layer.opacity * 100),
      title: t('Opacity'),
    });
    slider.setAttribute('aria-label', `${layer.title}: ${t('opacity')}`);
    box.addEventListener('change', () => {
      setVisible(map, layer, box.checked);
      legendBlocks.get(layer.id)?.classList.toggle('off', !box.checked);
    });
    slider.addEventListener('input', () => setOpacity(map, layer, slider.value / 100));
    const row = element('li', {}, element('label', {}, box, ' ', layer.title), slider);
    if (layer.datetimes?.length) row.append(datePicker(map, config, layer));
    row.dataset.layer = layer.id;
    list.append(row);
  }
  document.getElementById('layers').hidden = false;
}

/** The legend of each layer that has one, in the switcher's order. */
function legend(config) {
  const blocks = new Map();
  const holder = document.querySelector('#legend div');
  for (const layer of [...config.layers].reverse()) {
    if (!layer.legend.length) continue;
    const entries = layer.legend.map((entry) => {
      const swatch = element('span', { className: `swatch ${entry.symbol}` });
      swatch.style.setProperty('--colour', entry.color);
      return element('li', {}, swatch, element('span', { textContent: entry.label }));
    });
    const block = element('div', { className: layer.visible ? '' : 'off' },
      element('h3', { textContent: layer.title }), element('ul', {}, ...entries));
    block.dataset.layer = layer.id;
    blocks.set(layer.id, block);
    holder.append(block);
  }
  document.getElementById('legend').hidden = blocks.size === 0;
  return blocks;
}

/** The pointer's position: CGCS2000 geographic coordinates (EPSG:4490), which is what
 * the platform serves (CGCS2000 and WGS 84 differ by centimetres; MapLibre draws lon/lat). */
class Coordinates {
  onAdd() {
    this.box = element('div', { className: 'maplibregl-ctrl coordinates', textContent: 'CGCS2000 —' });
    this.box.title = t('CGCS2000 (EPSG:4490) longitude, latitude');
    return this.box;
  }

  onRemove() {
    this.box.remove();
  }

  show(lngLat) {
    if (!lngLat) {
      this.box.textContent = 'CGCS2000 —';
      return;
    }
    const lon = `${Math.abs(lngLat.lng).toFixed(6)}°${lngLat.lng < 0 ? 'W' : 'E'}`;
    const lat = `${Math.abs(lngLat.lat).toFixed(6)}°${lngLat.lat < 0 ? 'S' : 'N'}`;
    this.box.textContent = `CGCS2000 ${lon} ${lat}`;
    this.box.dataset.lon = lngLat.lng.toFixed(6);
    this.box.dataset.lat = lngLat.lat.toFixed(6);
  }
}

/** Click a feature of a vector layer: its popup attributes, from the tile, or from the
 * features API when the tile does not carry them all. */
function popups(maplibregl, map, config) {
  const owner = new Map();
  for (const layer of config.layers) {
    if (layer.kind === 'raster' || !layer.popup.length) continue;
    for (const style of layer.maplibre) owner.set(style.id, layer);
  }
  const ids = [...owner.keys()];
  for (const id of ids) {
    map.on('mouseenter', id, () => { map.getCanvas().style.cursor = 'pointer'; });
    map.on('mouseleave', id, () => { map.getCanvas().style.cursor = ''; });
  }
  map.on('click', async (event) => {
    if (body.dataset.tool) return; // a tool is drawing: clicks are its points
    const shown = ids.filter((id) => map.getLayoutProperty(id, 'visibility') !== 'none');
    if (!shown.length) return;
    const hit = map.queryRenderedFeatures(event.point, { layers: shown })[0];
    if (!hit) return;
    const layer = owner.get(hit.layer.id);
    let properties = hit.properties || {};
    if (layer.popup.some((name) => !(name in properties)) && hit.id !== undefined) {
      try {
        const found = await getJSON(`${layer.items}/${encodeURIComponent(hit.id)}?f=json`);
        properties = found.properties || properties;
      } catch (error) {
        say(error.message, true);
      }
    }
    new maplibregl.Popup({ maxWidth: '380px' })
      .setLngLat(event.lngLat)
      .setDOMContent(popupContent(layer, properties))
      .addTo(map);
  });
}

async function mapPage() {
  let config;
  try {
    config = await getJSON(body.dataset.config);
  } catch (error) {
    say(error.message, true);
    if (error.status === 401) {
      sessionStorage.removeItem(TOKEN);
      offerSignIn(mapPage);
    }
    return;
  }
  document.title = `${config.title} · ${t('Map')}`;
  document.getElementById('title').textContent = config.title;
  const maplibregl = await import('../../vendor/maplibre-gl/dist/maplibre-gl.mjs');
  const [west, south, east, north] = config.extent;
  const map = new maplibregl.Map({
    container: 'map',
    style: styleOf(config),
    bounds: [[west, south], [east, north]],
    fitBoundsOptions: { padding: 20 },
    transformRequest: (url) => ({ url, headers: authorization(url) }),
    attributionControl: { compact: true },
  });
  window.spatialMap = map; // for the browser tests and for a user's console
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  map.addControl(new maplibregl.ScaleControl({ maxWidth: 120, unit: 'metric' }), 'bottom-left');
  const coordinates = new Coordinates();
  map.addControl(coordinates, 'bottom-left');
  map.on('mousemove', (event) => coordinates.show(event.lngLat));
  map.on('mouseout', () => coordinates.show(null));
  map.on('error', (event) => {
    const text = event.error?.message || String(event.error || event);
    say(text, true);
    console.error(`map: ${text}`);
  });
  layerSwitcher(map, config, legend(config));
  popups(maplibregl, map, config);
  const tools = await Promise.all(TOOLS.map((name) => import(`./${name}.js`)));
  const context = { map, maplibregl, config };
  const ready = () => {
    for (const [n, tool] of tools.entries()) {
      try {
        tool.install(context);
      } catch (error) {
        say(`${TOOLS[n]}: ${error.message}`, true);
        console.error(`${TOOLS[n]}: ${error.message}`);
      }
    }
    map.once('idle', () => {
      performance.mark('spatial-map-drawn'); // benchmarks/maps.py: navigation to drawn
      body.dataset.state = 'drawn';
    });
    // 'idle' comes at the end of a frame: when the map loaded and went idle while the
    // tools were being imported (a loaded machine) and no tool changed it, no frame would
    // follow and the page would never say it is drawn. One more frame says it.
    map.triggerRepaint();
  };
  if (map.loaded()) ready();
  else map.once('load', ready);
}

if (document.getElementById('map')) mapPage();
else indexPage();
