// One product: channel cards (what each serves per platform) with promote, roll back, change
// rollout and halt; the release history with yank and unyank.
//
// A move is checked before it is confirmed: the dialog asks the Hub for a dry run of exactly
// the move it would make (the same route, `?dryRun=true`), so the coverage check shown is the
// Hub's own. The move itself is a compare-and-swap on the version this page showed: if someone
// moved the channel meanwhile, the Hub refuses and the page says so. Forcing a move that
// drops platforms takes a second, explicit confirmation.

import {
  Problem, actor, ago, api, badge, bytes, canRelease, copyable, dialog, field, fill, h, heading, link,
  loading, notify, problemBox, query, seg,
} from '../lib.js';
import { channelStates } from './products.js';

const PAGE = 20;

export async function productPage(main, { product: slug }, search) {
  document.title = `${slug} · Atlas Hub`;
  fill(main, heading(slug), loading());
  const { products } = await api('GET', '/api/v1/admin/products');
  const product = products.find((p) => p.slug === slug);
  if (!product) {
    fill(main, heading(slug), problemBox(new Problem(404, { code: 'not_found', detail: `no product ${slug}` })));
    return;
  }
  document.title = `${product.name} · Atlas Hub`;
  const channels = await channelStates(product);
  const cursor = search.get('cursor');
  const history = await api('GET', `/api/v1/releases/${seg(slug)}${query({ limit: PAGE, cursor })}`);
  const reload = () => productPage(main, { product: slug }, search);
  fill(main,
    heading(product.name, h('span', { class: 'muted' }, product.slug),
      link(`/console/products/${seg(slug)}/usage`, 'Usage and adoption →')),
    h('p', { class: 'muted' },
      product.requiredPlatforms.length
        ? ['Every channel must serve ', product.requiredPlatforms.join(', '), '.']
        : 'No required platforms.',
      product.updaterPublicKey ? ' Updater signatures are checked against its key.' : ''),
    h('section', { 'aria-labelledby': 'channels-h' },
      h('h2', { id: 'channels-h' }, 'Channels'),
      h('div', { class: 'cards' }, channels.map((c) => channelCard(product, c, reload)))),
    h('section', { 'aria-labelledby': 'history-h' },
      h('h2', { id: 'history-h' }, 'Release history'),
      historyTable(product, history, channels, reload),
      pager(slug, cursor, history.nextCursor)));
}

function channelCard(product, c, reload) {
  const release = c.release;
  const may = canRelease(product.slug);
  const actions = may ? [
    h('button', { type: 'button', onclick: () => moveDialog(product, c, 'promote', reload) }, 'Promote…'),
    // A yanked previous release is no rollback target (the Hub refuses it).
    c.previousVersion && !(c.previous && c.previous.yanked) ? h('button', {
      type: 'button', class: 'secondary', onclick: () => moveDialog(product, c, 'rollback', reload),
    }, `Roll back to ${c.previousVersion}…`) : null,
    c.version ? h('button', {
      type: 'button', class: 'secondary', onclick: () => moveDialog(product, c, 'rollout', reload),
    }, 'Change rollout…') : null,
    c.version && c.rolloutPercent > 0 && c.rolloutPercent < 100 && c.previousVersion ? h('button', {
      type: 'button', class: 'danger', onclick: () => moveDialog(product, c, 'halt', reload),
    }, 'Halt rollout…') : null,
  ] : [];
  return h('article', { class: 'card channel', 'aria-labelledby': `ch-${c.name}` },
    h('header', {},
      h('h3', { id: `ch-${c.name}` }, c.name),
      c.version
        ? h('span', { class: 'version' }, link(`/console/products/${seg(product.slug)}/releases/${seg(c.version)}`, c.version))
        : h('span', { class: 'muted' }, 'no release'),
      c.version ? rollout(c) : null),
    // The rollout shows in the header; other problems (missing platforms, a yanked previous
    // release) here.
    c.problems.some(([, text]) => !text.startsWith('rollout'))
      ? h('p', {}, c.problems.filter(([, text]) => !text.startsWith('rollout')).map(([kind, text]) => badge(kind, text)))
      : null,
    release ? artifactTable(release.artifacts) : null,
    h('p', { class: 'small muted' },
      c.lastMove ? ['Last moved ', ago(c.lastMove.at), ' by ', h('strong', {}, actor(c.lastMove.actor))] : ['Updated ', ago(c.updatedAt)]),
    actions.length ? h('div', { class: 'card-actions' }, actions) : null);
}

function rollout(c) {
  if (c.rolloutPercent >= 100) return badge('ok', '100%');
  const label = c.rolloutPercent === 0 ? 'halted' : `${c.rolloutPercent}%`;
  return h('span', { class: 'rollout' },
    h('meter', { min: 0, max: 100, value: c.rolloutPercent, 'aria-label': `rollout ${label}` }),
    badge('warn', label),
    c.previousVersion ? h('span', { class: 'small muted' }, ` others stay on ${c.previousVersion}`) : null);
}

/** What a release serves per platform. */
export function artifactTable(artifacts) {
  const sorted = [...artifacts].sort((a, b) => `${a.os}-${a.arch}-${a.kind}`.localeCompare(`${b.os}-${b.arch}-${b.kind}`));
  return h('div', { class: 'table-wrap' }, h('table', { class: 'artifacts' },
    h('thead', {}, h('tr', {},
      ['Platform', 'Kind', 'File', 'Size', 'SHA-256', 'Signed'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, sorted.map((a) => h('tr', {},
      h('td', { class: 'platform' }, `${a.os}-${a.arch}`, a.primary ? h('div', { class: 'small muted' }, 'primary') : null),
      h('td', {}, a.kind),
      h('td', { class: 'filename' }, h('a', { href: a.downloadUrl, download: '' }, a.filename)),
      h('td', { class: 'num size' }, bytes(a.size)),
      h('td', {}, copyable(a.sha256, 'Copy', true)),
      h('td', {}, a.signature ? badge('ok', 'signed') : badge('muted', 'no')))))));
}

function historyTable(product, history, channels, reload) {
  if (!history.releases.length) return h('p', { class: 'empty' }, 'Nothing published yet.');
  const serving = (v) => channels.filter((c) => c.version === v || (c.previousVersion === v && c.rolloutPercent < 100)).map((c) => c.name);
  const may = canRelease(product.slug);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'history' },
    h('thead', {}, h('tr', {},
      ['Version', 'Published', 'Artifacts', 'Served by', 'State', may ? 'Actions' : null]
        .filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, history.releases.map((r) => h('tr', { class: r.yanked ? 'yanked' : '' },
      h('td', {}, link(`/console/products/${seg(product.slug)}/releases/${seg(r.version)}`, r.version)),
      h('td', {}, ago(r.publishedAt)),
      h('td', { class: 'num' }, String(r.artifactCount)),
      h('td', {}, serving(r.version).join(', ') || h('span', { class: 'muted' }, '—')),
      h('td', {}, r.yanked
        ? [badge('bad', 'yanked'), r.yankReason ? h('div', { class: 'small reason' }, r.yankReason) : null]
        : badge('ok', 'published')),
      may ? h('td', {}, yankCell(product, r, serving(r.version), reload)) : null)))));
}

/** Yank or unyank; a release a channel serves cannot be yanked (the Hub refuses it too). */
function yankCell(product, r, servedBy, reload) {
  if (r.yanked) {
    return h('button', { type: 'button', class: 'secondary small', onclick: () => unyank(product, r, reload) }, 'Unyank');
  }
  if (servedBy.length) {
    return h('span', { class: 'small muted' }, `served by ${servedBy.join(', ')}: move it first`);
  }
  return h('button', { type: 'button', class: 'danger small', onclick: () => yankDialog(product, r, reload) }, 'Yank…');
}

function pager(slug, cursor, next) {
  if (!cursor && !next) return null;
  return h('nav', { class: 'pager', 'aria-label': 'Release history pages' },
    cursor ? link(`/console/products/${seg(slug)}`, '← Newest') : null,
    next ? link(`/console/products/${seg(slug)}?cursor=${encodeURIComponent(next)}`, 'Older →') : null);
}

// ---- Yank ----------------------------------------------------------------------------------

function yankDialog(product, r, reload) {
  const reason = h('input', { type: 'text', required: true, maxlength: 500, placeholder: 'e.g. crashes on start on Windows 10' });
  dialog(`Yank ${product.slug} ${r.version}?`,
    h('div', {},
      h('p', {}, 'A yanked release drops out of latest lookups, the updater and channel moves. Download links already handed out keep working.'),
      field('Reason (kept with the release and in the audit log)', reason)),
    [['Yank', 'danger', async () => {
      if (!reason.value.trim()) {
        throw new Problem(400, { code: 'invalid_input', detail: 'say why the release is yanked' });
      }
      await api('POST', `/api/v1/releases/${seg(product.slug)}/${seg(r.version)}/yank`, { reason: reason.value.trim() });
      notify(`${product.slug} ${r.version} yanked`);
      reload();
    }]]);
}

async function unyank(product, r, reload) {
  try {
    await api('POST', `/api/v1/releases/${seg(product.slug)}/${seg(r.version)}/unyank`);
    notify(`${product.slug} ${r.version} is back`);
    reload();
  } catch (problem) {
    if (!(problem instanceof Problem)) throw problem;
    notify(problem.message, 'bad');
  }
}

// ---- Channel moves ---------------------------------------------------------------------------

const TITLES = {
  promote: (c) => `Promote ${c.name}`,
  rollback: (c) => `Roll back ${c.name} to ${c.previousVersion}`,
  rollout: (c) => `Change the rollout of ${c.name}`,
  halt: (c) => `Halt the rollout of ${c.name}`,
};

async function moveDialog(product, c, kind, reload) {
  const { releases } = await api('GET', `/api/v1/releases/${seg(product.slug)}${query({ limit: 100 })}`);
  const candidates = releases.filter((r) => !r.yanked);
  const version = h('select', { disabled: kind !== 'promote' },
    candidates.map((r) => h('option', { value: r.version }, r.version)));
  version.value = { promote: candidates[0]?.version, rollback: c.previousVersion, rollout: c.version, halt: c.version }[kind] || '';
  const percent = h('input', {
    type: 'number', min: 0, max: 100, step: 1, inputmode: 'numeric',
    value: kind === 'halt' ? 0 : kind === 'rollout' ? c.rolloutPercent : 100,
    disabled: kind === 'halt',
  });
  const check = h('div', { class: 'check', 'aria-live': 'polite' });
  const forceBox = h('input', { type: 'checkbox', id: 'force-confirm' });
  const force = h('div', { class: 'force', hidden: true },
    h('label', { for: 'force-confirm' }, forceBox, ' ', h('span', { id: 'force-text' })));
  let verdict = null;

  const body = () => ({
    version: version.value,
    expectedVersion: c.version ?? null,
    rolloutPercent: Number(percent.value),
  });
  const confirm = h('button', { type: 'button', class: 'primary', disabled: true }, 'Confirm');

  async function dryRun() {
    verdict = null;
    confirm.disabled = true;
    force.hidden = true;
    forceBox.checked = false;
    const b = body();
    if (!Number.isInteger(b.rolloutPercent) || b.rolloutPercent < 0 || b.rolloutPercent > 100) {
      fill(check, problemBox(new Problem(400, { code: 'invalid_input', detail: 'the rollout is a whole number from 0 to 100' })));
      return;
    }
    fill(check, h('p', { class: 'muted' }, 'Checking platform coverage…'));
    try {
      await api('PUT', `/api/v1/releases/${seg(product.slug)}/channels/${seg(c.name)}?dryRun=true`, b);
      verdict = { ok: true };
      fill(check, h('p', { class: 'ok-text' }, '✓ ', `${b.version} serves every platform ${c.name} serves today`,
        c.platforms.length ? ` (${c.platforms.join(', ')})` : '', '.'));
      confirm.textContent = 'Confirm';
      confirm.disabled = false;
    } catch (problem) {
      if (!(problem instanceof Problem)) throw problem;
      if (problem.code === 'platforms_missing') {
        verdict = { ok: false, missing: problem.body.missing };
        fill(check, h('div', { class: 'problem', role: 'alert' },
          h('strong', {}, 'Platforms would be missing: '), problem.body.missing.join(', '),
          h('p', {}, `${c.name} serves them today; ${b.version} has no artifact for them, so clients on them would get nothing.`)));
        fill(force.querySelector('#force-text'),
          `I understand that clients on ${problem.body.missing.join(', ')} lose ${c.name}; force the move.`);
        force.hidden = false;
        confirm.textContent = 'Force move';
      } else {
        fill(check, problemBox(problem));
      }
    }
  }
  forceBox.addEventListener('change', () => { confirm.disabled = !forceBox.checked; });
  version.addEventListener('change', dryRun);
  percent.addEventListener('input', dryRun);

  const el = dialog(TITLES[kind](c),
    h('div', {},
      h('p', {}, `${c.name} serves `, h('strong', {}, c.version || 'nothing'),
        c.version ? ` to ${c.rolloutPercent}% of clients` : '', ' now.'),
      field('Release', version),
      field('Rollout: share of clients offered it (%)', percent, '0 halts the rollout; the rest keep the previous release.'),
      check,
      force),
    []);
  // The confirm button sits with the dialog's own actions.
  el.querySelector('.actions').append(confirm);
  confirm.addEventListener('click', async () => {
    if (!verdict) return;
    confirm.disabled = true;
    const b = { ...body(), force: !verdict.ok };
    try {
      const moved = await api('PUT', `/api/v1/releases/${seg(product.slug)}/channels/${seg(c.name)}`, b);
      el.close();
      notify(`${product.slug}/${c.name}: ${c.version || 'nothing'} → ${moved.channel.version} (${moved.channel.rolloutPercent}%)`);
      reload();
    } catch (problem) {
      if (!(problem instanceof Problem)) throw problem;
      const slot = el.querySelector('.dialog-problem');
      if (problem.code === 'channel_moved') {
        fill(slot, h('div', { class: 'problem', role: 'alert' },
          h('strong', {}, 'Someone moved this channel meanwhile. '),
          `${c.name} serves ${problem.body.currentVersion || 'nothing'} now, not ${c.version || 'nothing'}. `,
          h('button', { type: 'button', class: 'secondary small', onclick: () => { el.close(); reload(); } }, 'Reload and look again')));
      } else {
        fill(slot, problemBox(problem));
        confirm.disabled = false;
      }
    }
  });
  await dryRun();
}
