// The service areas of the stations, for the command panel (command.js installs it when the
// configuration's ``command.service_areas`` is set: the caller may read the stations): the
// service-area process (bands of minutes by road from the stations) drawn as a layer of the
// switcher, under the configured lines and points, with its legend; computed when first
// shown, and again after a road closure was made or lifted.
//
// For the browser tests: the switcher's row li[data-layer="command-areas"] carries
// data-state (idle, loading, done, failed) and data-features.

import { t } from './i18n.js';
import { element, getJSON, postJSON, say } from './common.js';
import { collection, feature, legendBlock, pointOf } from './panel.js';

const BAND_COLOURS = ['#2b8a3e', '#94d82d', '#fab005', '#fd7e14', '#e03131', '#ae3ec9'];
const SOURCE = 'command-areas';
const LAYERS = ['command-areas', 'command-areas-line'];

export class Reach {
  /** ``config`` is the map's configuration (its ``command.service_areas`` set). */
  constructor(map, config) {
    this.map = map;
    this.config = config;
    this.c = config.command;
    this.areas = this.c.service_areas;
    this.bands = [...this.areas.minutes].sort((a, b) => a - b);
    this.loaded = false;
    this.visible = false;
  }

  /** The layers, hidden, under the configured lines and points (roads, stations). */
  addLayers() {
    const below = this.config.layers.flatMap((l) => l.maplibre)
      .find((s) => !['fill', 'raster', 'background', 'heatmap'].includes(s.type))?.id;
    const colours = ['match', ['get', 'band'], ...BAND_COLOURS.flatMap((colour, n) => [n, colour]), BAND_COLOURS.at(-1)];
    this.map.addSource(SOURCE, { type: 'geojson', data: collection() });
    this.map.addLayer({ id: LAYERS[0], type: 'fill', source: SOURCE, layout: { visibility: 'none' },
      paint: { 'fill-color': colours, 'fill-opacity': 0.22 } }, below);
    this.map.addLayer({ id: LAYERS[1], type: 'line', source: SOURCE, layout: { visibility: 'none' },
      paint: { 'line-color': colours, 'line-width': 1.2 } }, below);
  }

  /** A row of the layer switcher, on top. */
  addSwitch() {
    const title = t('Service areas of the stations ({minutes} min)', { minutes: this.areas.minutes.join('/') });
    const box = element('input', { type: 'checkbox' });
    box.addEventListener('change', () => this.show(box.checked));
    this.row = element('li', {}, element('label', {}, box, ' ', title));
    Object.assign(this.row.dataset, { layer: SOURCE, state: 'idle', features: '0' });
    document.querySelector('#layers ul')?.prepend(this.row);
  }

  legend() {
    return legendBlock(SOURCE, t('Service areas'), this.bands.map((m, n) =>
      [t('within {n} min', { n: m }), BAND_COLOURS[Math.min(n, BAND_COLOURS.length - 1)], 'fill']), true);
  }

  show(visible) {
    this.visible = visible;
    for (const id of LAYERS) this.map.setLayoutProperty(id, 'visibility', visible ? 'visible' : 'none');
    document.querySelector(`#legend [data-layer="${SOURCE}"]`)?.classList.toggle('off', !visible);
    if (visible && !this.loaded) this.load();
  }

  /** Routes and reach change with the closures: computed again when shown. */
  closuresChanged() {
    if (!this.loaded) return;
    this.loaded = false;
    if (this.visible) this.load();
  }

  async load() {
    const areas = this.areas;
    this.row.dataset.state = 'loading';
    say(`${t('Service areas')}: ${t('running…')}`);
    try {
      const url = `${areas.points}?${new URLSearchParams({ f: 'json', limit: String(areas.most + 1) })}`;
      const stations = (await getJSON(url)).features.map((f) => pointOf(f.geometry)).filter(Boolean);
      if (!stations.length) throw new Error(`${areas.collection}: ${t('no stations')}`);
      const points = stations.slice(0, areas.most);
      const outputs = await postJSON(areas.execution, { inputs: { network: this.c.network, points, minutes: areas.minutes } });
      const features = (outputs.body.areas?.features || []).map((f) => feature(f.geometry,
        { ...f.properties, band: this.bands.indexOf(f.properties.minutes) }));
      this.map.getSource(SOURCE).setData(collection(features));
      this.loaded = true;
      this.row.dataset.state = 'done';
      this.row.dataset.features = String(features.length);
      const cut = stations.length > areas.most ? t('; the first {n} stations', { n: areas.most }) : '';
      say(`${t('Service areas')}: ${t('{n} stations', { n: points.length })}${cut}`);
    } catch (error) {
      this.row.dataset.state = 'failed';
      say(`${t('Service areas')}: ${error.message}`, true);
    }
  }
}
