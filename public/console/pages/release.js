// One release: its notes (as text), every artifact with its download link and checksum, and
// where it is served.

import { ago, api, badge, fill, h, heading, link, loading, seg, when } from '../lib.js';
import { artifactTable } from './product.js';
import { releaseDownloads } from './usage.js';

export async function releasePage(main, { product, version }) {
  document.title = `${product} ${version} · Atlas Hub`;
  fill(main, heading(`${product} ${version}`), loading());
  const [release, { channels }] = await Promise.all([
    api('GET', `/api/v1/releases/${seg(product)}/${seg(version)}`),
    api('GET', `/api/v1/releases/${seg(product)}/channels`),
  ]);
  const downloads = await releaseDownloads(product, release.version).catch(() => null);
  const serving = channels.filter((c) => c.version === release.version
    || (c.previousVersion === release.version && c.rolloutPercent < 100));
  fill(main,
    h('p', { class: 'crumbs' }, link('/console', 'Products'), ' / ', link(`/console/products/${seg(product)}`, product)),
    heading(`${product} ${release.version}`,
      release.yanked ? badge('bad', 'yanked') : badge('ok', 'published')),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Published'), h('dd', {}, when(release.publishedAt), ' (', ago(release.publishedAt), ')'),
      h('dt', {}, 'Downloads'), h('dd', {}, downloads === null ? '–' : `${downloads.toLocaleString('en')} in the last 30 days`),
      h('dt', {}, 'Served by'), h('dd', {}, serving.length
        ? serving.map((c) => `${c.name}${c.version === release.version ? '' : ' (previous, outside the rollout)'}`).join(', ')
        : 'no channel'),
      release.yanked ? [
        h('dt', {}, 'Yanked'), h('dd', {}, when(release.yankedAt)),
        h('dt', {}, 'Why'), h('dd', { class: 'reason' }, release.yankReason || '—'),
      ] : null),
    h('section', { 'aria-labelledby': 'notes-h' },
      h('h2', { id: 'notes-h' }, 'Notes'),
      release.notes ? h('pre', { class: 'notes' }, release.notes) : h('p', { class: 'muted' }, 'No notes.')),
    h('section', { 'aria-labelledby': 'artifacts-h' },
      h('h2', { id: 'artifacts-h' }, `Artifacts (${release.artifacts.length})`),
      artifactTable(release.artifacts)));
}
