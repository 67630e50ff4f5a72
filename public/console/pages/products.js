// Products: every product's channels at a glance, and what needs attention.

import { actor, ago, api, badge, fill, h, heading, link, loading, query, seg } from '../lib.js';

/** The channels of a product with what each serves and its state. */
export async function channelStates(product) {
  const { channels } = await api('GET', `/api/v1/releases/${seg(product.slug)}/channels`);
  const versions = new Set();
  for (const c of channels) {
    if (c.version) versions.add(c.version);
    if (c.previousVersion) versions.add(c.previousVersion);
  }
  const releases = {};
  await Promise.all([...versions].map(async (v) => {
    releases[v] = await api('GET', `/api/v1/releases/${seg(product.slug)}/${seg(v)}`).catch(() => null);
  }));
  const moves = await api('GET', `/api/v1/admin/audit${query({ product: product.slug, action: 'channel.move', limit: 50 })}`)
    .then((page) => page.entries)
    .catch(() => []);
  return channels.map((c) => {
    const release = c.version ? releases[c.version] : null;
    const previous = c.previousVersion ? releases[c.previousVersion] : null;
    const platforms = release ? [...new Set(release.artifacts.map((a) => `${a.os}-${a.arch}`))].sort() : [];
    const missing = (product.requiredPlatforms || []).filter((p) => !platforms.includes(p));
    const lastMove = moves.find((e) => e.subject === `${product.slug}/${c.name}`);
    const problems = [];
    if (c.version && missing.length) problems.push(['bad', `missing ${missing.join(', ')}`]);
    if (!c.version) problems.push(['muted', 'no release yet']);
    if (c.version && c.rolloutPercent < 100) {
      problems.push(['warn', c.rolloutPercent === 0 ? 'rollout halted' : `rollout ${c.rolloutPercent}%`]);
    }
    if (previous && previous.yanked) problems.push(['bad', `previous ${previous.version} yanked`]);
    return { ...c, release, previous, platforms, missing, lastMove, problems };
  });
}

function channelCell(product, c) {
  return h('div', { class: 'cell-channel' },
    h('div', { class: 'channel-line' },
      h('span', { class: 'channel-name' }, c.name),
      c.version ? link(`/console/products/${seg(product.slug)}/releases/${seg(c.version)}`, h('strong', {}, c.version))
        : h('span', { class: 'muted' }, '—'),
      c.version && c.rolloutPercent < 100 && c.previousVersion
        ? h('span', { class: 'muted' }, ` (rest on ${c.previousVersion})`) : null),
    h('div', { class: 'channel-line small' },
      c.platforms.length ? c.platforms.join(' · ') : null),
    h('div', { class: 'channel-line small muted' },
      c.lastMove ? ['moved ', ago(c.lastMove.at), ' by ', actor(c.lastMove.actor)] : ['updated ', ago(c.updatedAt)]),
    c.problems.length ? h('div', { class: 'channel-line' }, c.problems.map(([kind, text]) => badge(kind, text))) : null);
}

export async function productsPage(main) {
  document.title = 'Products · Atlas Hub';
  fill(main, heading('Products'), loading());
  const { products } = await api('GET', '/api/v1/admin/products');
  if (!products.length) {
    fill(main, heading('Products'), h('p', { class: 'empty' },
      'No products yet. An admin creates one with ',
      h('code', {}, 'atlas-hub admin product create'), '.'));
    return;
  }
  const rows = await Promise.all(products.map(async (p) => ({ product: p, channels: await channelStates(p) })));
  const names = [...new Set(rows.flatMap((r) => r.channels.map((c) => c.name)))];
  const order = ['stable', 'beta', 'dev'];
  names.sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || a.localeCompare(b));
  const unhealthy = rows.filter((r) => r.channels.some((c) => c.problems.some(([k]) => k === 'bad' || k === 'warn')));
  fill(main,
    heading('Products'),
    unhealthy.length
      ? h('p', { class: 'attention' }, badge('warn', `${unhealthy.length} need attention`), ' ',
        unhealthy.map((r) => r.product.slug).join(', '))
      : h('p', { class: 'muted' }, 'Every channel serves its required platforms; no rollout in progress.'),
    h('div', { class: 'table-wrap' },
      h('table', { class: 'grid' },
        h('caption', { class: 'sr-only' }, 'Products and what each channel serves'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Product'), names.map((n) => h('th', { scope: 'col' }, n)))),
        h('tbody', {}, rows.map(({ product, channels }) => h('tr', {},
          h('th', { scope: 'row' },
            link(`/console/products/${seg(product.slug)}`, product.name),
            h('div', { class: 'small muted' }, product.slug),
            product.requiredPlatforms.length
              ? h('div', { class: 'small muted' }, 'requires ', product.requiredPlatforms.join(', ')) : null),
          names.map((n) => {
            const c = channels.find((x) => x.name === n);
            return h('td', {}, c ? channelCell(product, c) : h('span', { class: 'muted' }, '—'));
          })))))));
}
