// A new incident, for the command panel of an editor (command.js builds it into its
// section): the "new incident" button and form. The incident is placed by a click on the
// map (the mode the button starts), a typed coordinate ("lon, lat", or as the search box
// takes them) or the place last chosen with the map's search, shown by a marker that can be
// dragged, then reported (POST /incidents).
//
// For the browser tests: #command carries data-placing="true" while a click on the map
// places the incident; the marker's element has the class command-marker.

import { t } from './i18n.js';
import { element, postJSON, say } from './common.js';
import { current, INSTRUCTIONS, sketch } from './draw.js';
import { button, labelled, LEVELS, pointOf, STATUS } from './panel.js';
import { parseCoordinates } from './search.js';

const placing = () => current()?.tool === 'command' && current().mode === 'point';

export class Report {
  /** ``c`` is the map configuration's ``command``; ``kinds`` its incident kinds by id;
   * ``root`` the panel's section; ``reported(id)`` is called once an incident is reported. */
  constructor(map, maplibregl, c, { kinds, root, reported }) {
    Object.assign(this, { map, maplibregl, c, kinds, root, reported });
    this.found = null; // the map search's last choice: {point, address, label}
    this.marker = null;
    this.picks = 0; // a newer pick supersedes the one under way
    this.observeSearch();
  }

  /** The panel's part: the button and the (hidden) form. */
  parts() {
    this.newButton = button(t('New incident'), () => this.open(), { className: 'new' });
    return [element('div', { className: 'buttons' }, this.newButton), this.newForm()];
  }

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
    this.pickButton = button(t('Pick on the map'), () => this.pick(), { className: 'pick' });
    this.foundButton = button('', () => this.useFound(), { className: 'found', hidden: true });
    this.hint = element('p', { className: 'hint' });
    const form = element('form', { className: 'command-new', hidden: true },
      labelled(t('Kind'), kind), labelled(t('Level'), level),
      labelled(t('Address'), element('input', { name: 'address', maxLength: 200 })),
      labelled(t('Description'), element('textarea', { name: 'description', maxLength: 2000, rows: 2 })),
      labelled(t('Location (lon, lat)'), this.location),
      element('div', { className: 'buttons' }, this.pickButton, this.foundButton),
      this.hint,
      element('div', { className: 'buttons' },
        element('button', { type: 'submit', textContent: t('Report'), className: 'primary' }),
        button(t('Cancel'), () => this.close())));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.report();
    });
    form.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !current()) this.close();
    });
    this.form = form;
    return form;
  }

  open() {
    this.form.hidden = false;
    this.newButton.setAttribute('aria-pressed', 'true');
    this.showFound();
    this.form.elements.kind.focus();
    this.pick();
  }

  close() {
    if (placing()) current().cancel();
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
    this.hint.textContent = INSTRUCTIONS.point;
    this.pickButton.setAttribute('aria-pressed', 'true');
    this.root.dataset.placing = 'true';
    const geometry = await sketch(this.map, 'point', { tool: 'command' }).done;
    if (ticket !== this.picks) return;
    this.pickButton.setAttribute('aria-pressed', 'false');
    delete this.root.dataset.placing;
    this.hint.textContent = '';
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
    this.location.setCustomValidity(point || !this.location.value ? '' : t('lon, lat'));
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
    if (this.found) this.foundButton.textContent = `${t('Use the search result')}: ${this.found.label}`;
  }

  useFound() {
    if (!this.found) return;
    if (placing()) current().cancel();
    this.place(this.found.point);
    if (this.found.address && !this.form.elements.address.value) this.form.elements.address.value = this.found.address;
  }

  async report() {
    const fields = this.form.elements;
    const point = parseCoordinates(this.location.value);
    if (!point) {
      say(t('Give the location as "lon, lat" or click the map'), true);
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
      say(`${t('Reported')} ${id}`);
      this.close();
      await this.reported(id);
    } catch (error) {
      say(`${t('Not reported')}: ${error.message}`, true);
    }
  }
}
