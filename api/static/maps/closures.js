// The road closures of the command panel (command.js builds it into its section): those of
// the panel's network listed and drawn (/network/closures, api/routers/network.py); for an
// editor, a new one drawn as a polygon (draw.js) with a reason and a duration, and any
// lifted. Closures are not on the live stream: the panel reads them again now and then.
//
// For the browser tests: each closure's li carries data-closure (its id).

import { t } from './i18n.js';
import { authorization, element, getJSON, postJSON, say } from './common.js';
import { INSTRUCTIONS, sketch } from './draw.js';
import { button, clock, closeIn, collection, labelled, legendBlock, pointOf } from './panel.js';

const COLOUR = '#c92a2a';
const DURATIONS = [[1, t('1 hour')], [4, t('{n} hours', { n: 4 })], [12, t('{n} hours', { n: 12 })],
  [24, t('1 day')], [72, t('{n} days', { n: 3 })]];
const SOURCE = 'command-closures';

/** A request with the token that answers nothing worth reading (DELETE). */
async function remove(url) {
  const response = await fetch(url, { method: 'DELETE', headers: { Accept: 'application/json', ...authorization(url) } });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Error(problem.description || `${response.status} ${response.statusText}`);
  }
}

export class Closures {
  /** ``c`` is the map configuration's ``command``; ``changed()`` is called after a closure
   * was made or lifted (routes and reach change with them). */
  constructor(map, c, { changed }) {
    Object.assign(this, { map, c, changed });
    this.features = [];
    this.count = element('span', { className: 'count' });
    this.list = element('ul', { className: 'command-closures' });
  }

  addLayers() {
    this.map.addSource(SOURCE, { type: 'geojson', data: collection() });
    this.map.addLayer({ id: 'command-closures', type: 'fill', source: SOURCE,
      paint: { 'fill-color': COLOUR, 'fill-opacity': ['case', ['get', 'active'], 0.3, 0.12] } });
    this.map.addLayer({ id: 'command-closures-line', type: 'line', source: SOURCE,
      paint: { 'line-color': COLOUR, 'line-width': 2, 'line-dasharray': [2, 1] } });
  }

  legend() {
    return legendBlock('command-closures', t('Road closures'), [[t('Closed roads'), COLOUR, 'fill']]);
  }

  /** The panel's part: the heading, the form (editors) and the list. */
  parts() {
    return [element('h3', {}, `${t('Road closures')} `, this.count),
      ...(this.c.editable ? [this.form()] : []), this.list];
  }

  form() {
    this.reason = element('input', { name: 'reason', maxLength: 200, placeholder: t('e.g. fire cordon') });
    this.hours = element('select', { name: 'hours' },
      ...DURATIONS.map(([h, text]) => element('option', { value: String(h), textContent: text, selected: h === 4 })));
    this.hint = element('p', { className: 'hint' });
    this.drawButton = button(t('Draw the closed area'), () => this.draw(), { className: 'draw-closure' });
    return element('div', { className: 'command-closure' },
      labelled(t('Reason'), this.reason), labelled(t('For'), this.hours),
      element('div', { className: 'buttons' }, this.drawButton), this.hint);
  }

  async draw() {
    const reason = this.reason.value.trim();
    if (!reason) {
      say(t('Give the closure a reason'), true);
      this.reason.focus();
      return;
    }
    this.hint.textContent = INSTRUCTIONS.polygon;
    this.drawButton.setAttribute('aria-pressed', 'true');
    const geometry = await sketch(this.map, 'polygon', { tool: 'command' }).done;
    this.drawButton.setAttribute('aria-pressed', 'false');
    this.hint.textContent = '';
    if (!geometry) return;
    const expires = new Date(Date.now() + Number(this.hours.value) * 3600_000).toISOString();
    try {
      await postJSON(this.c.closures, { network: this.c.network, reason, geometry, expires_at: expires });
      say(`${t('Roads closed')}: ${reason}`);
      this.reason.value = '';
      await this.load();
      this.changed();
    } catch (error) {
      say(`${t('Not closed')}: ${error.message}`, true);
    }
  }

  async load() {
    try {
      const found = await getJSON(`${this.c.closures}?${new URLSearchParams({ network: this.c.network })}`);
      this.features = found.features || [];
    } catch (error) {
      say(`${t('closures')}: ${error.message}`, true);
      return;
    }
    this.map.getSource(SOURCE)?.setData(collection(this.features));
    const rows = this.features.map((f) => {
      const p = f.properties;
      const show = button(p.reason, () => {
        const at = pointOf(f.geometry);
        if (at) closeIn(this.map, at);
      }, { className: 'go' });
      const row = element('li', { className: p.active ? 'active' : 'later' }, show,
        element('div', { className: 'about', textContent:
          `${p.active ? t('in force') : t('from {time}', { time: clock(p.starts_at) })} · ${t('until {time}', { time: clock(p.expires_at) })} · ${p.created_by}` }));
      if (this.c.editable) row.append(button(t('Lift'), () => this.lift(f.id, p.reason), { className: 'lift' }));
      row.dataset.closure = String(f.id);
      return row;
    });
    if (!rows.length) rows.push(element('li', { className: 'empty', textContent: t('None') }));
    this.list.replaceChildren(...rows);
    this.count.textContent = String(this.features.length);
  }

  async lift(id, what) {
    try {
      await remove(`${this.c.closures}/${encodeURIComponent(id)}`);
      say(`${t('Closure lifted')}: ${what}`);
      await this.load();
      this.changed();
    } catch (error) {
      say(`${t('Not lifted')}: ${error.message}`, true);
    }
  }
}
