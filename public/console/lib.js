// What every page of the console shares: building elements (text is always set as text,
// never parsed as HTML: names, notes and file names come from the database and are
// attacker-controlled), calling the Hub's JSON API (the same routes the CLI uses, with the
// session's CSRF token on every change), dialogs, and formatting.

/** The signed-in operator, as GET /api/v1/auth/session tells it. */
export const session = { signedIn: false, providers: [] };

/**
 * An element: `h('a', {href: '/x', class: 'link'}, 'text', child)`. Strings become text
 * nodes; `on*` attributes become event listeners; `null`/`false` children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A problem the Hub answered (RFC 9457), or a network failure. */
export class Problem extends Error {
  constructor(status, body) {
    super((body && body.detail) || `the Hub answered ${status}`);
    this.status = status;
    this.body = body || {};
    this.code = this.body.code || (status === 0 ? 'network' : 'unknown');
  }
}

/**
 * Calls the Hub's API. Changes carry the session's CSRF token (`x-atlas-csrf`); the browser
 * adds `Origin` and `Sec-Fetch-Site`, which the Hub checks too. A 401 means the session
 * ended: the page goes to sign-in and comes back here afterwards.
 */
export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') {
    headers['x-atlas-csrf'] = session.csrfToken || '';
  }
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new Problem(0, { detail: `the Hub could not be reached (${e.message})` });
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (response.status === 401 && data && data.code === 'session_invalid') {
    goTo(`/console/signin?returnTo=${encodeURIComponent(location.pathname + location.search)}`);
    throw new Problem(401, data);
  }
  if (!response.ok) throw new Problem(response.status, data);
  return data;
}

/** Query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Path segment, encoded. */
export const seg = (s) => encodeURIComponent(s);

// ---- Navigation ------------------------------------------------------------------------

let router = () => {};

/** Sets what renders a path (app.js). */
export function setRouter(fn) {
  router = fn;
}

/** Goes to a console path without reloading the page. */
export function goTo(path) {
  if (location.pathname + location.search !== path) history.pushState(null, '', path);
  router();
}

/** A link inside the console (a real link: it opens in a new tab too). */
export function link(path, ...children) {
  return h('a', {
    href: path,
    onclick: (e) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      goTo(path);
    },
  }, ...children);
}

// ---- Roles ---------------------------------------------------------------------------

/** Whether the operator may do admin things (tokens, products, packs, access). */
export const isAdmin = () => session.role === 'admin';

/** Whether the operator may move channels and yank releases of `product`. */
export function canRelease(product) {
  if (session.role === 'admin') return true;
  if (session.role !== 'releaser') return false;
  const products = session.products || [];
  return products.includes('*') || products.includes(product);
}

// ---- Formatting ----------------------------------------------------------------------

export function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

export function when(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

/** How long ago, in words, with the exact time as a tooltip. */
export function ago(iso) {
  if (!iso) return h('span', {}, 'never');
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  const steps = [[60, 'second'], [60, 'minute'], [24, 'hour'], [30, 'day'], [12, 'month'], [Infinity, 'year']];
  let value = Math.abs(seconds);
  let unit = 'second';
  for (const [size, name] of steps) {
    unit = name;
    if (value < size) break;
    value = Math.floor(value / size);
  }
  const text = seconds < 0 ? `in ${value} ${unit}${value === 1 ? '' : 's'}`
    : seconds < 10 ? 'just now' : `${value} ${unit}${value === 1 ? '' : 's'} ago`;
  return h('time', { datetime: iso, title: when(iso) }, text);
}

/** A badge: `kind` is ok, warn, bad or muted. */
export const badge = (kind, text) => h('span', { class: `badge ${kind}` }, text);

/** How the console names an actor: `token:ci (uuid)` is shown as `token:ci`, the id on hover. */
export function actor(name) {
  const m = /^(token:.*) \(([0-9a-f-]{36})\)$/.exec(name || '');
  return m ? h('span', { title: `token id ${m[2]}` }, m[1]) : h('span', {}, name || '–');
}

/**
 * A value with a button that copies it (the whole value, however it is shown: `short`
 * shows its first characters, the rest on hover).
 */
export function copyable(value, label = 'Copy', short = false) {
  const button = h('button', {
    type: 'button',
    class: 'copy',
    'aria-label': `${label} ${value}`,
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(value);
        button.textContent = 'Copied';
      } catch {
        // No clipboard (an insecure context): select the text for the person to copy.
        const range = document.createRange();
        range.selectNodeContents(code);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        button.textContent = 'Selected';
      }
      setTimeout(() => { button.textContent = label; }, 1500);
    },
  }, label);
  const code = short
    ? h('code', { class: 'value', title: value }, `${value.slice(0, 12)}…`)
    : h('code', { class: 'value' }, value);
  return h('span', { class: 'copyable' }, code, button);
}

// ---- Feedback --------------------------------------------------------------------------

/** A message in the status region (read out by screen readers). */
export function notify(text, kind = 'ok') {
  const region = document.getElementById('status');
  const note = h('div', { class: `note ${kind}`, role: kind === 'bad' ? 'alert' : 'status' }, text);
  region.append(note);
  setTimeout(() => note.remove(), kind === 'bad' ? 12000 : 5000);
}

/** A problem shown next to what caused it: its detail and code. */
export function problemBox(problem) {
  const extra = [];
  if (problem.body && Array.isArray(problem.body.missing)) {
    extra.push(h('p', {}, 'Missing platforms: ', problem.body.missing.join(', ')));
  }
  return h('div', { class: 'problem', role: 'alert' },
    h('strong', {}, problem.code && problem.code !== 'unknown' ? `${problem.code}: ` : ''),
    problem.message,
    extra);
}

/** Shows `problem` in `slot` (an element next to the control that failed). */
export function showProblem(slot, problem) {
  fill(slot, problemBox(problem));
}

// ---- Dialogs -------------------------------------------------------------------------

/**
 * A modal dialog (the native `<dialog>`: focus is kept inside, Escape closes it). `body` is
 * an element; `actions` are `[label, kind, handler]`, each handler returning whether to close.
 */
export function dialog(title, body, actions) {
  const slot = h('div', { class: 'dialog-problem' });
  const buttons = actions.map(([label, kind, handler]) => h('button', {
    type: 'button',
    class: kind,
    onclick: async (e) => {
      const button = e.currentTarget;
      button.disabled = true;
      try {
        const close = await handler(slot);
        if (close !== false) el.close();
      } catch (problem) {
        if (problem instanceof Problem) showProblem(slot, problem);
        else throw problem;
      } finally {
        button.disabled = false;
      }
    },
  }, label));
  const el = h('dialog', { 'aria-labelledby': 'dialog-title' },
    h('h2', { id: 'dialog-title' }, title),
    body,
    slot,
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', onclick: () => el.close() }, 'Cancel'),
      buttons));
  el.addEventListener('close', () => el.remove());
  document.body.append(el);
  el.showModal();
  return el;
}

/** A labelled form field. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    input,
    hint ? h('small', {}, hint) : null);
}

/** A page heading with optional actions on the right. */
export function heading(title, ...actions) {
  return h('div', { class: 'page-head' }, h('h1', {}, title), h('div', { class: 'head-actions' }, actions));
}

/** Loading placeholder. */
export const loading = () => h('p', { class: 'muted', 'aria-busy': 'true' }, 'Loading…');
