// Access (admins): who may sign in with which role, and the sessions that are live.

import {
  Problem, actor, ago, api, badge, dialog, field, fill, h, heading, isAdmin, loading, notify, seg,
} from '../lib.js';

const KINDS = [
  ['github_user', 'GitHub user', 'octocat'],
  ['github_org', 'GitHub organization', 'acme'],
  ['github_team', 'GitHub team', 'acme/release-ops'],
  ['microsoft_tenant', 'Microsoft tenant', 'tenant id (GUID)'],
  ['microsoft_group', 'Microsoft group', 'tenant id/group object id'],
  ['oidc_subject', 'OpenID subject', 'https://issuer.example subject'],
  ['oidc_email', 'Verified e-mail', 'alice@example.com'],
];

export async function accessPage(main) {
  document.title = 'Access · Atlas Hub';
  fill(main, heading('Access'), loading());
  if (!isAdmin()) {
    // Everyone may see and end their own sessions.
    const { sessions } = await api('GET', '/api/v1/auth/sessions');
    fill(main, heading('Your sessions'),
      h('p', { class: 'muted' }, 'Only admins see who may sign in. These are your own live sessions.'),
      sessionTable(sessions, () => accessPage(main)));
    return;
  }
  const [{ rules }, { sessions }, { products }] = await Promise.all([
    api('GET', '/api/v1/admin/access'),
    api('GET', '/api/v1/auth/sessions?all=true'),
    api('GET', '/api/v1/admin/products'),
  ]);
  const reload = () => accessPage(main);
  fill(main,
    heading('Access', h('button', { type: 'button', class: 'primary', onclick: () => grantDialog(products, reload) }, 'Grant access…')),
    h('section', { 'aria-labelledby': 'rules-h' },
      h('h2', { id: 'rules-h' }, 'Who may sign in'),
      rules.length ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Who', 'Role', 'Products', 'Granted', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rules.map((r) => h('tr', {},
          h('td', {}, h('span', { class: 'small muted' }, `${r.kind} `), h('strong', {}, r.value)),
          h('td', {}, badge(`role-${r.role}`, r.role)),
          h('td', {}, r.role === 'releaser' ? r.products.join(', ') : h('span', { class: 'muted' }, '—')),
          h('td', {}, ago(r.createdAt), h('div', { class: 'small muted' }, actor(r.createdBy))),
          h('td', {}, h('button', {
            type: 'button', class: 'danger small', onclick: () => removeDialog(r, reload),
          }, 'Remove…')))))))
        : h('p', { class: 'empty' }, 'No rules: nobody can sign in.')),
    h('section', { 'aria-labelledby': 'sessions-h' },
      h('h2', { id: 'sessions-h' }, 'Live sessions'),
      sessionTable(sessions, reload)));
}

function sessionTable(sessions, reload) {
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, ['Who', 'Via', 'Browser', 'Signed in', 'Last seen', 'Ends', ''].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, sessions.map((s) => h('tr', {},
      h('td', {}, h('strong', {}, s.person), s.current ? badge('ok', 'you, here') : null),
      h('td', {}, s.provider),
      h('td', { class: 'small' }, s.userAgent || '—'),
      h('td', {}, ago(s.createdAt)),
      h('td', {}, ago(s.lastSeenAt)),
      h('td', {}, ago(s.expiresAt)),
      h('td', {}, h('button', {
        type: 'button', class: 'danger small', onclick: () => endDialog(s, reload),
      }, 'End…')))))));
}

function grantDialog(products, reload) {
  const kind = h('select', {}, KINDS.map(([k, label]) => h('option', { value: k }, label)));
  const value = h('input', { type: 'text', required: true, maxlength: 300, placeholder: KINDS[0][2] });
  kind.addEventListener('change', () => { value.placeholder = KINDS.find(([k]) => k === kind.value)[2]; });
  const role = h('select', {}, ['viewer', 'releaser', 'admin'].map((r) => h('option', { value: r }, r)));
  const productBox = h('fieldset', { class: 'checks', hidden: true }, h('legend', {}, 'Products a releaser may move'),
    h('label', {}, h('input', { type: 'checkbox', value: '*', checked: true }), ' every product'),
    products.map((p) => h('label', {}, h('input', { type: 'checkbox', value: p.slug }), ` ${p.slug}`)));
  role.addEventListener('change', () => { productBox.hidden = role.value !== 'releaser'; });
  dialog('Grant access',
    h('div', {},
      field('Who', kind), field('Name, id or address', value),
      field('Role', role, 'viewer reads everything; releaser also promotes, rolls back and yanks; admin does everything.'),
      productBox),
    [['Grant', 'primary', async () => {
      if (!value.value.trim()) throw new Problem(400, { code: 'invalid_input', detail: 'say who the rule names' });
      const body = { kind: kind.value, value: value.value.trim(), role: role.value };
      if (role.value === 'releaser') {
        body.products = [...productBox.querySelectorAll('input:checked')].map((i) => i.value);
      }
      const rule = await api('POST', '/api/v1/admin/access', body);
      notify(`${rule.kind} ${rule.value} may sign in as ${rule.role}`);
      reload();
    }]]);
}

function removeDialog(rule, reload) {
  dialog(`Remove access for ${rule.value}?`,
    h('p', {}, `Whoever only this rule lets in (${rule.kind} ${rule.value}, ${rule.role}) loses access at their next request.`),
    [['Remove', 'danger', async () => {
      await api('DELETE', `/api/v1/admin/access/${seg(rule.id)}`);
      notify(`rule for ${rule.value} removed`);
      reload();
    }]]);
}

function endDialog(s, reload) {
  dialog(`End ${s.person}’s session?`,
    h('p', {}, s.current ? 'This is your own session here: you will be signed out.' : 'They are signed out at their next request.'),
    [['End session', 'danger', async () => {
      await api('DELETE', `/api/v1/auth/sessions/${seg(s.id)}`);
      notify(`session of ${s.person} ended`);
      if (s.current) location.assign('/console/signin');
      else reload();
    }]]);
}
