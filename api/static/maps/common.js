// What every module of the map pages shares (api/static/maps/*.js): the platform's base URL,
// the signed-in user's token and the requests that carry it, the status line, and a small
// DOM builder. A plain ES module, no build step.
//
// Credentials: the token the user signed in with (POST /auth/token, kept in this tab's
// sessionStorage) goes as "Authorization: Bearer" on every request to the platform, never to
// a basemap's host.

export const body = document.body;
export const base = body.dataset.base;
export const TOKEN = 'spatial.token';

export function token() {
  try {
    return sessionStorage.getItem(TOKEN);
  } catch {
    return null; // storage switched off: anonymous
  }
}

/** The platform's own URLs get the token; a basemap's host does not. */
export function ours(url) {
  return url === base || url.startsWith(`${base}/`) || url.startsWith(`${base}?`);
}

export function authorization(url) {
  const value = token();
  return value && ours(url) ? { Authorization: `Bearer ${value}` } : {};
}

/** The error of a refused request: the server's problem text, and its status. */
async function failure(response) {
  const problem = await response.json().catch(() => ({}));
  const error = new Error(problem.description || `${response.status} ${response.statusText}`);
  error.status = response.status;
  return error;
}

/** GET a JSON document from the platform (with the token); throws the server's message.
 * ``signal`` (an AbortController's) cancels it. */
export async function getJSON(url, { signal } = {}) {
  const response = await fetch(url, {
    headers: { Accept: 'application/json', ...authorization(url) },
    signal,
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** POST a JSON body to the platform (with the token); the JSON answer, or throws the server's
 * message. ``headers`` are added (e.g. Prefer: respond-async). */
export async function postJSON(url, payload, headers = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      Accept: 'application/json', 'Content-Type': 'application/json',
      ...authorization(url), ...headers,
    },
    body: JSON.stringify(payload),
  });
  if (!response.ok) throw await failure(response);
  return { status: response.status, headers: response.headers, body: await response.json() };
}

/** The status line under the panel: progress, or a problem (red). */
export function say(text, problem = false) {
  const line = document.getElementById('status');
  line.textContent = text;
  line.classList.toggle('problem', problem);
}

export function element(tag, props = {}, ...children) {
  const made = Object.assign(document.createElement(tag), props);
  made.append(...children);
  return made;
}

/** A panel section of the page (api/templates/maps-page.html) to fill, shown. */
export function section(id) {
  const found = document.getElementById(id);
  found.hidden = false;
  return found;
}

/** A feature's attributes for a popup: the layer's ``popup`` list (else its ``search`` list)
 * as a table under the layer's title. */
export function popupContent(layer, properties) {
  const names = layer.popup.length ? layer.popup : layer.search;
  const rows = names.map((name) => {
    const value = properties[name];
    return element('tr', {}, element('th', { textContent: name }),
      element('td', { textContent: value === undefined || value === null ? '—' : String(value) }));
  });
  const content = element('div', { className: 'feature' },
    element('h3', { textContent: layer.title }), element('table', {}, element('tbody', {}, ...rows)));
  content.dataset.layer = layer.id;
  return content;
}

/** Save a Blob as the file ``name`` (from memory: no second request to the server). */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = element('a', { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** The time now as 20261207T231500, for file names. */
export function stamp() {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
}
