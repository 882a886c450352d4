// The terrain toggles of the map pages (maps.js installs them once the style has loaded), for
// a map whose configuration has ``terrain`` (layers/subsystems.py: only for callers who may
// read its elevation collection):
//
// - "3D 地形 Terrain": MapLibre's 3D terrain on a ``raster-dem`` source read from the
//   collection's TileJSON (/collections/{id}/terrain/tilejson: Terrarium-encoded PNG tiles),
//   raised by the configured exaggeration, the map tilted to the configured pitch; off, the
//   terrain is removed and the map looks straight down again.
// - "山体阴影 Hillshade": the collection's hillshade map tiles
//   (/collections/{id}/styles/hillshade/map/tiles/...) as a raster layer under the vector
//   layers (above the imagery), with an opacity slider and a legend line.
//
// Both sources are the platform's own (the token goes with them, as with every tile); the
// hillshade layer is added hidden, so no tile is asked for until it is switched on, and the
// terrain's source is added when the terrain is first switched on. The hillshade's legend
// line comes when it is first shown. The other layers' boxes are not remembered across page
// loads, and neither are these.
//
// For the browser tests: the rows div[data-layer="terrain"] and div[data-layer="hillshade"]
// of the layer switcher carry data-state (off, on, failed); window.spatialTerrain:
// terrain(on), hillshade(on), state() ({terrain, pitch, hillshade}).

import { t } from './i18n.js';
import { element, say } from './common.js';
import { legendBlock } from './panel.js';

const DEM = 'terrain-dem';
const HILLSHADE = 'terrain-hillshade';
const EASE_MS = 700;
const SHADE = 'linear-gradient(90deg, #2b2b2b, #f1f1f1)'; // a swatch of shaded to lit slopes

export function install({ map, config }) {
  if (!config.terrain) return;
  const terrain = new Terrain(map, config);
  terrain.start();
  window.spatialTerrain = terrain.hooks();
}

class Terrain {
  constructor(map, config) {
    this.map = map;
    this.config = config;
    this.t = config.terrain;
  }

  hooks() {
    return {
      terrain: (on) => this.setTerrain(on),
      hillshade: (on) => this.setHillshade(on),
      state: () => ({
        terrain: this.map.getTerrain() !== null && this.map.getTerrain() !== undefined,
        pitch: this.map.getPitch(),
        hillshade: this.map.getLayoutProperty(HILLSHADE, 'visibility') === 'visible',
      }),
    };
  }

  start() {
    this.addHillshade();
    this.build();
    this.map.on('error', (event) => {
      if (event.sourceId === DEM) this.failed(this.terrainRow, event);
      if (event.sourceId === HILLSHADE) this.failed(this.hillshadeRow, event);
    });
  }

  /** The hillshade layer, hidden, under the first style layer that is not an area or an
   * image (the lines, points and labels stay on top). */
  addHillshade() {
    const below = this.config.layers.flatMap((l) => l.maplibre)
      .find((s) => !['raster', 'background', 'heatmap'].includes(s.type))?.id;
    this.map.addSource(HILLSHADE, this.t.hillshade);
    this.map.addLayer({
      id: HILLSHADE, type: 'raster', source: HILLSHADE, layout: { visibility: 'none' },
      paint: { 'raster-opacity': this.t.opacity },
    }, below);
  }

  build() {
    const terrainBox = element('input', { type: 'checkbox', name: 'terrain' });
    terrainBox.addEventListener('change', () => this.setTerrain(terrainBox.checked));
    this.terrainRow = element('div', { className: 'terrain-row' },
      element('label', { title: `${this.t.title} · ×${this.t.exaggeration}` }, terrainBox, ` ${t('3D terrain')}`));
    this.terrainRow.dataset.layer = 'terrain';
    this.terrainRow.dataset.state = 'off';
    this.terrainBox = terrainBox;

    const shadeBox = element('input', { type: 'checkbox', name: 'hillshade' });
    shadeBox.addEventListener('change', () => this.setHillshade(shadeBox.checked));
    const slider = element('input', {
      type: 'range', min: 0, max: 100, step: 5, value: Math.round(this.t.opacity * 100),
      title: t('Opacity'),
    });
    slider.setAttribute('aria-label', t('Hillshade opacity'));
    slider.addEventListener('input', () => this.map.setPaintProperty(HILLSHADE, 'raster-opacity', slider.value / 100));
    this.hillshadeRow = element('div', { className: 'terrain-row' },
      element('label', {}, shadeBox, ` ${t('Hillshade')}`), slider);
    this.hillshadeRow.dataset.layer = 'hillshade';
    this.hillshadeRow.dataset.state = 'off';
    this.shadeBox = shadeBox;

    const holder = element('div', { className: 'terrain-toggles' }, this.terrainRow, this.hillshadeRow);
    const layers = document.getElementById('layers');
    layers.querySelector('h2').after(holder);
  }

  /** The hillshade's legend line, added when it is first shown (the legend lists what
   * the map can draw as it is). */
  addLegend() {
    this.legend = legendBlock(HILLSHADE, `${t('Hillshade')} · ${this.t.title}`,
      [[t('Shaded → lit slopes'), SHADE, 'raster']]);
    document.querySelector('#legend div')?.append(this.legend);
    document.getElementById('legend').hidden = false;
  }

  /** Switch the 3D terrain on (the source added the first time) or off. */
  setTerrain(on) {
    this.terrainBox.checked = on;
    if (on) {
      if (!this.map.getSource(DEM)) {
        this.map.addSource(DEM, {
          type: 'raster-dem', url: this.t.tilejson, encoding: this.t.encoding, tileSize: 256,
        });
      }
      this.map.setTerrain({ source: DEM, exaggeration: this.t.exaggeration });
      this.map.easeTo({ pitch: this.t.pitch, duration: EASE_MS });
      say(`${t('3D terrain')}: ${this.t.title} ×${this.t.exaggeration}`);
    } else {
      this.map.setTerrain(null);
      this.map.easeTo({ pitch: 0, bearing: 0, duration: EASE_MS });
      say('');
    }
    this.terrainRow.dataset.state = on ? 'on' : 'off';
  }

  setHillshade(on) {
    this.shadeBox.checked = on;
    this.map.setLayoutProperty(HILLSHADE, 'visibility', on ? 'visible' : 'none');
    if (on && !this.legend) this.addLegend();
    this.legend?.classList.toggle('off', !on);
    this.hillshadeRow.dataset.state = on ? 'on' : 'off';
  }

  failed(row, event) {
    row.dataset.state = 'failed';
    say(`${row.dataset.layer === 'terrain' ? t('3D terrain') : t('Hillshade')}: ${event.error?.message || event.error}`, true);
  }
}
