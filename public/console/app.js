// The console's shell: who is signed in, the navigation, and which page a path shows.
// Pages render into <main>; every read and write goes through the Hub's JSON API.

import { api, fill, goTo, h, isAdmin, link, session, setRouter, Problem, problemBox } from './lib.js';
import { signinPage } from './pages/signin.js';
import { productsPage } from './pages/products.js';
import { productPage } from './pages/product.js';
import { releasePage } from './pages/release.js';
import { usagePage } from './pages/usage.js';
import { tokensPage } from './pages/tokens.js';
import { packsPage, packPage } from './pages/packs.js';
import { auditPage } from './pages/audit.js';
import { accessPage } from './pages/access.js';

/** Path patterns and their pages; `:name` segments are passed decoded. */
const ROUTES = [
  ['/console', productsPage, 'products'],
  ['/console/products/:product', productPage, 'products'],
  ['/console/products/:product/releases/:version', releasePage, 'products'],
  ['/console/products/:product/usage', usagePage, 'products'],
  ['/console/tokens', tokensPage, 'tokens'],
  ['/console/packs', packsPage, 'packs'],
  ['/console/packs/:pack', packPage, 'packs'],
  ['/console/audit', auditPage, 'audit'],
  ['/console/access', accessPage, 'access'],
];

function match(pathname) {
  const path = pathname.replace(/\/+$/, '') || '/console';
  for (const [pattern, page, section] of ROUTES) {
    const names = [];
    const re = new RegExp(`^${pattern.replace(/:(\w+)/g, (_, n) => { names.push(n); return '([^/]+)'; })}$`);
    const m = path.match(re);
    if (m) {
      const params = Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1])]));
      return { page, section, params };
    }
  }
  return null;
}

async function signOut() {
  try {
    await api('POST', '/api/v1/auth/signout');
  } finally {
    Object.assign(session, { signedIn: false, person: undefined, role: undefined, csrfToken: undefined });
    goTo('/console/signin');
  }
}

function nav(section) {
  const item = (path, label) => h('li', {}, link(path, label));
  const items = [
    item('/console', 'Products'),
    item('/console/packs', 'Packs'),
    item('/console/tokens', 'Tokens'),
    item('/console/audit', 'Audit log'),
    item('/console/access', isAdmin() ? 'Access' : 'Sessions'),
  ];
  const list = h('ul', {}, items);
  for (const a of list.querySelectorAll('a')) {
    if (match(new URL(a.href).pathname)?.section === section) a.setAttribute('aria-current', 'page');
  }
  return h('nav', { 'aria-label': 'Console' }, list);
}

function header(section) {
  return h('header', { class: 'top' },
    h('a', { class: 'brand', href: '/console' }, h('span', { class: 'mark', 'aria-hidden': 'true' }, '◆'), 'Atlas Hub'),
    session.signedIn ? nav(section) : null,
    session.signedIn
      ? h('div', { class: 'who' },
        h('span', { class: 'person', title: `signed in as ${session.person}` }, session.person),
        h('span', { class: `badge role-${session.role}` }, session.role),
        h('button', { type: 'button', class: 'secondary small', onclick: signOut }, 'Sign out'))
      : null);
}

async function loadSession() {
  const response = await fetch('/api/v1/auth/session', { credentials: 'same-origin', cache: 'no-store' });
  const info = await response.json();
  for (const key of Object.keys(session)) delete session[key];
  Object.assign(session, info);
}

async function render() {
  const app = document.getElementById('app');
  const main = h('main', { id: 'main', tabindex: '-1' });
  try {
    await loadSession();
  } catch (e) {
    fill(app, header(''), h('main', { id: 'main' }, problemBox(new Problem(0, { detail: `the Hub could not be reached (${e.message})` }))));
    return;
  }
  const url = new URL(location.href);
  if (url.pathname.replace(/\/+$/, '') === '/console/signin' || !session.signedIn) {
    const returnTo = url.pathname.startsWith('/console/signin')
      ? url.searchParams.get('returnTo') || '/console'
      : url.pathname + url.search;
    if (session.signedIn) {
      goTo(returnTo.startsWith('/console') ? returnTo : '/console');
      return;
    }
    document.title = 'Sign in · Atlas Hub';
    fill(app, header(''), main);
    signinPage(main, { returnTo, reason: url.searchParams.get('reason') });
    return;
  }
  const found = match(url.pathname);
  fill(app, header(found ? found.section : ''), main);
  if (!found) {
    document.title = 'Not found · Atlas Hub';
    fill(main, h('h1', {}, 'Not found'), h('p', {}, 'No console page lives here. ', link('/console', 'Go to the products.')));
    return;
  }
  try {
    await found.page(main, found.params, url.searchParams);
  } catch (problem) {
    if (!(problem instanceof Problem)) throw problem;
    if (problem.status !== 401) fill(main, h('h1', {}, 'Something went wrong'), problemBox(problem));
  }
  main.focus({ preventScroll: true });
}

setRouter(render);
window.addEventListener('popstate', render);
render();
