// The audit log: every write with who and when, filtered by product, pack, actor, action and
// time, a page at a time; each entry links to what it changed.

import { actor, api, field, fill, goTo, h, heading, link, loading, query, seg, when } from '../lib.js';

const ACTIONS = [
  'release.publish', 'release.yank', 'release.unyank', 'channel.move',
  'pack.deploy', 'pack.channel.move', 'pack.create', 'pack.update',
  'product.create', 'product.update', 'token.issue', 'token.revoke',
  'access.grant', 'access.revoke', 'session.signin', 'session.signout', 'session.revoke',
];

const FILTERS = ['product', 'pack', 'actor', 'action', 'since', 'until'];

/** Where an entry's subject lives in the console. */
function target(e) {
  const s = e.subject;
  if (e.action.startsWith('pack.')) {
    const pack = s.split(/[@/]/)[0];
    return `/console/packs/${seg(pack)}`;
  }
  if (s.startsWith('token:')) return '/console/tokens';
  if (s.startsWith('access_rule:') || s.startsWith('session:')) return '/console/access';
  const at = s.indexOf('@');
  if (at > 0) return `/console/products/${seg(s.slice(0, at))}/releases/${seg(s.slice(at + 1))}`;
  return `/console/products/${seg(s.split('/')[0])}`;
}

function detail(e) {
  const d = e.detail || {};
  switch (e.action) {
    case 'channel.move':
      return `${d.from || 'nothing'} → ${d.to} (${d.rolloutPercent}%)${d.forced ? `, forced without ${(d.missingPlatforms || []).join(', ')}` : ''}`;
    case 'release.yank':
      return d.reason ? `because: ${d.reason}` : '';
    case 'release.publish':
      return `${d.artifacts} artifacts${d.channel ? ` to ${d.channel}` : ''}`;
    default:
      // Other details as `key: value` pairs (timestamps left out: the entry has its own).
      return Object.entries(d)
        .filter(([k, v]) => v !== null && !/At$/.test(k))
        .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') || '—' : typeof v === 'object' ? JSON.stringify(v) : v}`)
        .join(' · ');
  }
}

/** A datetime-local value as RFC 3339 (UTC), or empty. */
const rfc3339 = (v) => (v ? new Date(v).toISOString() : '');

export async function auditPage(main, _params, search) {
  document.title = 'Audit log · Atlas Hub';
  const values = Object.fromEntries(FILTERS.map((f) => [f, search.get(f) || '']));
  const inputs = {
    product: h('input', { type: 'text', name: 'product', value: values.product, placeholder: 'launcher' }),
    pack: h('input', { type: 'text', name: 'pack', value: values.pack, placeholder: 'maps' }),
    actor: h('input', { type: 'text', name: 'actor', value: values.actor, placeholder: 'github:octocat' }),
    action: h('select', { name: 'action' }, h('option', { value: '' }, 'any'),
      ACTIONS.map((a) => h('option', { value: a, selected: a === values.action }, a))),
    since: h('input', { type: 'datetime-local', name: 'since', value: values.since ? values.since.slice(0, 16) : '' }),
    until: h('input', { type: 'datetime-local', name: 'until', value: values.until ? values.until.slice(0, 16) : '' }),
  };
  const form = h('form', {
    class: 'filters',
    onsubmit: (ev) => {
      ev.preventDefault();
      const params = {};
      for (const f of FILTERS) {
        const v = inputs[f].value.trim();
        params[f] = f === 'since' || f === 'until' ? rfc3339(v) : v;
      }
      goTo(`/console/audit${query(params)}`);
    },
  },
  field('Product', inputs.product), field('Pack', inputs.pack), field('Actor', inputs.actor),
  field('Action', inputs.action), field('From', inputs.since), field('Until', inputs.until),
  h('div', { class: 'field buttons' },
    h('button', { type: 'submit', class: 'primary' }, 'Filter'),
    h('button', { type: 'button', class: 'secondary', onclick: () => goTo('/console/audit') }, 'Clear')));
  fill(main, heading('Audit log'), form, loading());
  const cursor = search.get('cursor');
  const page = await api('GET', `/api/v1/admin/audit${query({ ...values, limit: 50, cursor })}`);
  const filtered = FILTERS.some((f) => values[f]);
  fill(main, heading('Audit log'), form,
    page.entries.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'audit' },
      h('thead', {}, h('tr', {}, ['When', 'Who', 'Action', 'On', 'Detail'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, page.entries.map((e) => h('tr', {},
        h('td', { class: 'nowrap' }, when(e.at)),
        h('td', {}, actor(e.actor)),
        h('td', {}, h('code', {}, e.action)),
        h('td', {}, link(target(e), e.subject)),
        h('td', { class: 'detail' }, detail(e)))))))
      : h('p', { class: 'empty' }, filtered ? 'No entry matches these filters.' : 'Nothing has happened yet.'),
    h('nav', { class: 'pager', 'aria-label': 'Audit log pages' },
      cursor ? link(`/console/audit${query(values)}`, '← Newest') : null,
      page.nextCursor ? link(`/console/audit${query({ ...values, cursor: page.nextCursor })}`, 'Older →') : null));
}
