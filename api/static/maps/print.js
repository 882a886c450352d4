// The print tool (see maps.js): 打印 Print, a PDF of the map as it is shown, made by the server
// (POST /maps/{id}/print, api/routers/printing.py): the title, paper, orientation and scale
// chosen here (the scale offered first is the one nearest the map's zoom), the map's centre,
// its visible layers and the imagery date picked, and the selected features (picked on the
// map with 选择要素, or the feature the search chose) whose attributes the PDF lists. A
// finished analysis (analyse.js) gets a 打印报告 button that prints its table, with the
// zone drawn for it, as a report with its map: the rows the page shows, not a new run.
// The PDF is downloaded as a Blob: nothing comes from another host.
//
// For tests and scripts the section carries data-state (idle, printing, done, failed) and,
// once done, data-bytes (the request sent is in data-request, as JSON); data-selected
// counts the features picked.

import { t } from './i18n.js';
import {
  authorization, base, body, download, element, say, section, stamp,
} from './common.js';

const SCALES = [2000, 5000, 10000, 25000, 50000];
const CSS_PIXEL_M = 0.0254 / 96;
const EARTH_M = 40075016.686;
const SELECTION = 'print-selection';
const EMPTY = { type: 'FeatureCollection', features: [] };

/** The scale of the map's centre on the screen (1:n), from its zoom (512-pixel tiles). */
export function screenScale(map) {
  const latitude = map.getCenter().lat * (Math.PI / 180);
  const metresPerPixel = (EARTH_M * Math.cos(latitude)) / (512 * 2 ** map.getZoom());
  return metresPerPixel / CSS_PIXEL_M;
}

/** The offered scale nearest ``scale`` (on a log scale). */
export function nearestScale(scale) {
  return SCALES.reduce((best, s) => (Math.abs(Math.log(s / scale)) < Math.abs(Math.log(best / scale)) ? s : best));
}

function field(text, control) {
  return element('label', { className: 'print-field' }, element('span', { textContent: text }), control);
}

function choices(name, options, chosen) {
  const select = element('select', { name });
  for (const [value, label] of options) select.append(element('option', { value: String(value), textContent: label, selected: value === chosen }));
  return select;
}

function visibleLayers(map, config) {
  return config.layers
    .filter((layer) => layer.maplibre.some((s) => map.getLayer(s.id) && map.getLayoutProperty(s.id, 'visibility') !== 'none'))
    .map((layer) => layer.id);
}

/** The imagery date picked in the layer switcher for a visible imagery layer, if any. */
function pickedDate(config, shown) {
  for (const layer of config.layers) {
    if (!shown.includes(layer.id) || !layer.datetimes?.length) continue;
    const picker = document.querySelector(`#layers li[data-layer="${CSS.escape(layer.id)}"] select.dates`);
    return picker?.value || layer.datetimes[0].datetime;
  }
  return null;
}

function ensureLayers(map) {
  if (map.getSource(SELECTION)) return;
  map.addSource(SELECTION, { type: 'geojson', data: EMPTY });
  map.addLayer({ id: 'print-selection-fill', type: 'fill', source: SELECTION,
    filter: ['match', ['geometry-type'], ['Polygon', 'MultiPolygon'], true, false],
    paint: { 'fill-color': '#f08c00', 'fill-opacity': 0.3 } });
  map.addLayer({ id: 'print-selection-line', type: 'line', source: SELECTION,
    paint: { 'line-color': '#f08c00', 'line-width': 2.5 } });
}

/** The analysis result shown (analyse.js's panel) as a report body: its title, process,
 * inputs, first table (columns, rows as the cells' values) and drawn zone. */
function reportOf(config, result) {
  const title = result.querySelector('h3')?.textContent || result.dataset.process;
  const offer = config.processes.find((p) => p.id === result.dataset.process && p.title === title)
    || config.processes.find((p) => p.id === result.dataset.process);
  const table = result.querySelector('table:not(.values)');
  let columns;
  let rows;
  if (table) {
    const lines = [...table.querySelectorAll('tbody tr')];
    // The cells name their columns (the headings may be translated).
    columns = lines.length ? [...lines[0].cells].map((td) => td.dataset.column)
      : [...table.querySelectorAll('thead th')].map((th) => th.textContent);
    rows = lines.map((tr) => Object.fromEntries(
      [...tr.cells].map((td) => [td.dataset.column, JSON.parse(td.dataset.value ?? 'null')])));
  } else {
    columns = ['name', 'value'];
    rows = [...result.querySelectorAll('table.values tr')].map((tr) => ({
      name: tr.querySelector('th')?.textContent, value: JSON.parse(tr.querySelector('td')?.dataset.value ?? 'null'),
    }));
  }
  const report = { title, process: result.dataset.process, inputs: offer?.inputs || {}, columns, rows };
  if (result.dataset.geometry) report.geometry = JSON.parse(result.dataset.geometry);
  return report;
}

function boundsOf(geometry) {
  const xs = [];
  const ys = [];
  const walk = (c) => { if (typeof c[0] === 'number') { xs.push(c[0]); ys.push(c[1]); } else c.forEach(walk); };
  walk(geometry.coordinates || []);
  return xs.length ? [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)] : null;
}

class PrintTool {
  constructor({ map, config }) {
    this.map = map;
    this.config = config;
    this.selection = { layer: null, collection: null, features: new Map() };
    this.panel = section('print');
    this.panel.dataset.state = 'idle';
    this.build();
    this.watchAnalysis();
  }

  build() {
    const { map, config } = this;
    this.title = element('input', { name: 'title', value: config.title, maxLength: 200 });
    this.paper = choices('paper', [['A4', 'A4'], ['A3', 'A3']], 'A4');
    this.orientation = choices('orientation', [['landscape', t('Landscape')], ['portrait', t('Portrait')]], 'landscape');
    this.scale = choices('scale', SCALES.map((s) => [s, `1:${s.toLocaleString('en')}`]), nearestScale(screenScale(map)));
    map.on('zoomend', () => { if (!this.form.hidden) this.scale.value = String(nearestScale(screenScale(map))); });
    this.picking = element('button', { type: 'button', textContent: t('Select features'), className: 'pick' });
    this.picking.setAttribute('aria-pressed', 'false');
    this.count = element('span', { className: 'count', textContent: '' });
    const clear = element('button', { type: 'button', textContent: t('Clear selection'), className: 'clear' });
    this.go = element('button', { type: 'submit', textContent: t('Make the PDF'), className: 'go' });
    this.form = element('form', { className: 'print-form', hidden: true },
      field(t('Title'), this.title), field(t('Paper'), this.paper),
      field(t('Orientation'), this.orientation), field(t('Scale'), this.scale),
      element('div', { className: 'buttons' }, this.picking, clear), this.count,
      element('div', { className: 'buttons' }, this.go));
    const open = element('button', { type: 'button', textContent: t('Print'), className: 'open' });
    open.dataset.print = 'open';
    open.addEventListener('click', () => {
      this.form.hidden = !this.form.hidden;
      if (!this.form.hidden) this.scale.value = String(nearestScale(screenScale(map)));
    });
    this.picking.addEventListener('click', () => this.setPicking(this.picking.getAttribute('aria-pressed') !== 'true'));
    clear.addEventListener('click', () => this.clearSelection());
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.print(this.request());
    });
    map.on('click', (event) => this.pick(event));
    this.panel.replaceChildren(element('h2', { textContent: t('Print') }), open, this.form);
  }

  setPicking(on) {
    this.picking.setAttribute('aria-pressed', String(on));
    this.picking.classList.toggle('active', on);
    if (on) {
      ensureLayers(this.map);
      body.dataset.tool = 'print'; // clicks pick features, not popups
    } else if (body.dataset.tool === 'print') {
      delete body.dataset.tool;
    }
  }

  pick(event) {
    // Picking is on, and no other tool is sketching (a sketch's clicks are its vertices).
    if (this.picking.getAttribute('aria-pressed') !== 'true' || (body.dataset.tool || 'print') !== 'print') return;
    body.dataset.tool = 'print'; // back after another tool's sketch ended
    const { map, config } = this;
    const owner = new Map();
    for (const layer of config.layers) {
      if (layer.kind === 'raster') continue;
      for (const style of layer.maplibre) if (map.getLayer(style.id) && map.getLayoutProperty(style.id, 'visibility') !== 'none') owner.set(style.id, layer);
    }
    const hit = map.queryRenderedFeatures(event.point, { layers: [...owner.keys()] }).find((f) => f.id !== undefined);
    if (!hit) return;
    const layer = owner.get(hit.layer.id);
    const chosen = this.selection;
    if (chosen.collection !== layer.collection) {
      chosen.features.clear();
      chosen.collection = layer.collection;
      chosen.layer = layer;
    }
    if (chosen.features.has(hit.id)) chosen.features.delete(hit.id);
    else chosen.features.set(hit.id, { type: 'Feature', id: hit.id, properties: {}, geometry: hit.geometry });
    this.showSelection();
  }

  showSelection() {
    const { features, layer } = this.selection;
    this.map.getSource(SELECTION)?.setData({ type: 'FeatureCollection', features: [...features.values()] });
    this.count.textContent = features.size ? t('{n} selected: {layer}', { n: features.size, layer: layer.title }) : '';
    this.panel.dataset.selected = String(features.size);
  }

  clearSelection() {
    this.selection.features.clear();
    this.selection.collection = null;
    this.showSelection();
  }

  /** The features to list: those picked, else the one the search chose. */
  selected() {
    const { features, collection } = this.selection;
    if (features.size) return { collection, ids: [...features.keys()] };
    const chosen = document.getElementById('search')?.dataset.chosen;
    const [layerId, id] = (chosen || '').split('/');
    const layer = this.config.layers.find((l) => l.id === layerId);
    if (layer && id && /^\d+$/.test(id)) return { collection: layer.collection, ids: [Number(id)] };
    return null;
  }

  request() {
    const { map, config } = this;
    const layers = visibleLayers(map, config);
    const centre = map.getCenter();
    const asked = {
      paper: this.paper.value, orientation: this.orientation.value, scale: Number(this.scale.value),
      center: [Number(centre.lng.toFixed(7)), Number(centre.lat.toFixed(7))],
      title: this.title.value.trim() || config.title, layers,
    };
    const datetime = pickedDate(config, layers);
    if (datetime) asked.datetime = datetime;
    const selected = this.selected();
    if (selected) asked.selected = selected;
    return asked;
  }

  async print(asked) {
    const url = `${base}/maps/${this.config.id}/print`;
    this.panel.dataset.state = 'printing';
    this.panel.dataset.request = JSON.stringify(asked);
    this.go.disabled = true;
    say(t('Printing…'));
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { Accept: 'application/pdf', 'Content-Type': 'application/json', ...authorization(url) },
        body: JSON.stringify(asked),
      });
      if (!response.ok) {
        const problem = await response.json().catch(() => ({}));
        throw new Error(problem.description || `${response.status} ${response.statusText}`);
      }
      const blob = await response.blob();
      download(blob, `${this.config.id}-${stamp()}.pdf`);
      this.panel.dataset.bytes = String(blob.size);
      this.panel.dataset.state = 'done';
      say(t('Printed'));
    } catch (error) {
      this.panel.dataset.state = 'failed';
      say(`${t('Print')}: ${error.message}`, true);
    } finally {
      this.go.disabled = false;
    }
  }

  /** A 打印报告 button in each finished analysis result. */
  watchAnalysis() {
    const result = document.querySelector('#analyse .result');
    if (!result) return;
    const offer = () => {
      if (result.dataset.state !== 'done') return;
      const downloads = result.querySelector('.downloads');
      if (!downloads || downloads.querySelector('[data-print="report"]')) return;
      const button = element('button', { type: 'button', textContent: t('Print report') });
      button.dataset.print = 'report';
      button.addEventListener('click', () => this.printReport(result));
      downloads.append(button);
    };
    new MutationObserver(offer).observe(result, { attributes: true, attributeFilter: ['data-state'], childList: true });
  }

  printReport(result) {
    const report = reportOf(this.config, result);
    const asked = {
      paper: this.paper.value, orientation: this.orientation.value, title: report.title,
      layers: visibleLayers(this.map, this.config), report,
    };
    const box = report.geometry ? boundsOf(report.geometry) : null;
    if (box && box[2] > box[0] && box[3] > box[1]) {
      asked.bbox = box; // the zone fits the page at a round scale
    } else {
      const centre = this.map.getCenter();
      asked.center = [centre.lng, centre.lat];
      asked.scale = Number(this.scale.value);
    }
    const datetime = pickedDate(this.config, asked.layers);
    if (datetime) asked.datetime = datetime;
    this.print(asked);
  }
}

export function install(context) {
  return new PrintTool(context);
}
