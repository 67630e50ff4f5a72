// Tokens: issue one (its plaintext is shown once, with a copy button), list them with last
// use, expiry and revocation, revoke one after a confirmation.

import {
  Problem, actor, ago, api, badge, copyable, dialog, field, fill, h, heading, isAdmin, loading, notify,
  seg,
} from '../lib.js';

const SCOPES = ['upload', 'publish', 'promote', 'yank'];

export async function tokensPage(main, _params, _search, created) {
  document.title = 'Tokens · Atlas Hub';
  fill(main, heading('Tokens'), loading());
  const [{ tokens }, { products }, { packs }] = await Promise.all([
    api('GET', '/api/v1/admin/tokens'),
    api('GET', '/api/v1/admin/products'),
    api('GET', '/api/v1/admin/packs'),
  ]);
  const reload = (issued) => tokensPage(main, null, null, issued);
  fill(main,
    heading('Tokens', isAdmin()
      ? h('button', { type: 'button', class: 'primary', onclick: () => issueDialog(products, packs, reload) }, 'Issue a token…')
      : null),
    created ? issuedPanel(created, () => reload()) : null,
    tokens.length ? tokenTable(tokens, () => reload()) : h('p', { class: 'empty' }, 'No tokens.'));
}

function can(t) {
  if (t.kind === 'admin') return 'everything';
  if (t.kind === 'pack') return `deploy pack ${t.pack}`;
  const products = t.products.includes('*') ? 'every product' : t.products.join(', ');
  return `${t.scopes.join(', ')} on ${products}${t.channels.includes('*') ? '' : ` (channels ${t.channels.join(', ')})`}`;
}

function state(t) {
  if (t.revokedAt) return badge('muted', 'revoked');
  if (t.expiresAt && new Date(t.expiresAt) < new Date()) return badge('bad', 'expired');
  if (t.expiresAt && new Date(t.expiresAt) - new Date() < 14 * 86400e3) return badge('warn', 'expires soon');
  return badge('ok', 'active');
}

function tokenTable(tokens, reload) {
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {},
      ['Name', 'Kind', 'May', 'Created', 'Last used', 'Expires', 'State', isAdmin() ? '' : null]
        .filter((x) => x !== null).map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, tokens.map((t) => h('tr', { class: t.revokedAt ? 'revoked' : '' },
      h('td', {}, h('strong', {}, t.name), h('div', { class: 'small muted' }, t.id)),
      h('td', {}, t.kind),
      h('td', {}, can(t)),
      h('td', {}, ago(t.createdAt), h('div', { class: 'small muted' }, actor(t.createdBy))),
      h('td', {}, ago(t.lastUsedAt)),
      h('td', {}, t.expiresAt ? ago(t.expiresAt) : 'never'),
      h('td', {}, state(t)),
      isAdmin() ? h('td', {}, t.revokedAt ? null : h('button', {
        type: 'button', class: 'danger small', onclick: () => revokeDialog(t, reload),
      }, 'Revoke…')) : null)))));
}

function revokeDialog(t, reload) {
  dialog(`Revoke “${t.name}”?`,
    h('p', {}, `Anything using this ${t.kind} token (${can(t)}) is refused from now on. This cannot be undone.`),
    [['Revoke', 'danger', async () => {
      await api('DELETE', `/api/v1/admin/tokens/${seg(t.id)}`);
      notify(`token ${t.name} revoked`);
      reload();
    }]]);
}

function checkboxes(name, values, checked) {
  return h('fieldset', { class: 'checks' }, h('legend', {}, name),
    values.map((v) => h('label', {}, h('input', { type: 'checkbox', value: v, checked: checked.includes(v) }), ` ${v}`)));
}

const checkedIn = (fs) => [...fs.querySelectorAll('input:checked')].map((i) => i.value);

function issueDialog(products, packs, reload) {
  const name = h('input', { type: 'text', required: true, maxlength: 100, placeholder: 'launcher CI' });
  const kind = h('select', {}, ['app', 'pack', 'admin'].map((k) => h('option', { value: k }, k)));
  const productBox = checkboxes('Products', ['*', ...products.map((p) => p.slug)], []);
  const scopeBox = checkboxes('Scopes', SCOPES, ['upload', 'publish']);
  const channels = h('input', { type: 'text', value: '*', placeholder: 'stable, beta or *' });
  const pack = h('select', {}, packs.map((p) => h('option', { value: p.slug }, p.slug)));
  const expires = h('input', { type: 'number', min: 1, max: 3650, placeholder: 'never' });
  const appFields = h('div', {}, productBox, scopeBox, field('Channels (comma-separated, or *)', channels));
  const packFields = h('div', { hidden: true }, packs.length
    ? field('Pack', pack) : h('p', { class: 'muted' }, 'No packs yet.'));
  kind.addEventListener('change', () => {
    appFields.hidden = kind.value !== 'app';
    packFields.hidden = kind.value !== 'pack';
  });
  dialog('Issue a token',
    h('div', {},
      field('Name', name, 'Who or what holds it.'),
      field('Kind', kind, 'app: CI publishing of products; pack: deploys of one pack; admin: everything.'),
      appFields, packFields,
      field('Expires in (days)', expires, 'Empty: never.')),
    [['Issue', 'primary', async () => {
      const body = { name: name.value.trim(), kind: kind.value };
      if (kind.value === 'app') {
        body.products = checkedIn(productBox);
        body.scopes = checkedIn(scopeBox);
        body.channels = channels.value.split(',').map((c) => c.trim()).filter(Boolean);
      }
      if (kind.value === 'pack') body.pack = pack.value;
      if (expires.value) body.expiresInDays = Number(expires.value);
      if (!body.name) throw new Problem(400, { code: 'invalid_input', detail: 'give the token a name' });
      const created = await api('POST', '/api/v1/admin/tokens', body);
      reload(created);
      return true;
    }]]);
}

/** The plaintext, once: it lives in this page's memory only, gone on reload. */
function issuedPanel(created, done) {
  return h('div', { class: 'card once', role: 'status' },
    h('h2', {}, `Token “${created.name}” issued`),
    h('p', {}, h('strong', {}, 'Copy it now: '), 'it is shown only this once. The Hub keeps only a digest of it.'),
    copyable(created.token, 'Copy token'),
    h('p', { class: 'small muted' }, 'Store it as a CI secret (e.g. ATLAS_APP_DEPLOY_TOKEN).'),
    h('button', { type: 'button', class: 'secondary small', onclick: done }, 'Done'));
}
