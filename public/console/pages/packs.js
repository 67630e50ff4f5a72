// Packs: their trusted GitHub publishers, builds and channels; a channel rolled back to its
// previous build.

import {
  Problem, actor, ago, api, badge, dialog, field, fill, h, heading, isAdmin, link, loading, notify, seg,
} from '../lib.js';

function publisher(p) {
  if (!p.github) return h('span', { class: 'muted' }, 'no trusted publisher (pack tokens only)');
  const g = p.github;
  return h('span', {},
    h('strong', {}, g.repository),
    h('span', { class: 'small muted' }, ` (repository ${g.repositoryId}, owner ${g.repositoryOwnerId})`),
    g.workflow ? [' · workflow ', h('code', {}, g.workflow)] : null,
    g.environment ? [' · environment ', h('code', {}, g.environment)] : null,
    g.refPattern ? [' · ref ', h('code', {}, g.refPattern)] : null);
}

export async function packsPage(main) {
  document.title = 'Packs · Atlas Hub';
  fill(main, heading('Packs'), loading());
  const { packs } = await api('GET', '/api/v1/admin/packs');
  fill(main, heading('Packs'),
    packs.length ? h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Pack', 'Trusted publisher', 'Deploys', 'Updated'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, packs.map((p) => h('tr', {},
        h('th', { scope: 'row' }, link(`/console/packs/${seg(p.slug)}`, p.name), h('div', { class: 'small muted' }, p.slug)),
        h('td', {}, publisher(p)),
        h('td', {}, p.oidcOnly ? badge('ok', 'GitHub OIDC only') : badge('muted', 'OIDC or pack token')),
        h('td', {}, ago(p.updatedAt)))))))
      : h('p', { class: 'empty' }, 'No packs yet. An admin creates one with ', h('code', {}, 'atlas-hub admin pack create'), '.'));
}

export async function packPage(main, { pack: slug }) {
  document.title = `${slug} · Atlas Hub`;
  fill(main, heading(slug), loading());
  const pack = await api('GET', `/api/v1/admin/packs/${seg(slug)}`);
  const reload = () => packPage(main, { pack: slug });
  fill(main,
    h('p', { class: 'crumbs' }, link('/console/packs', 'Packs')),
    heading(pack.name, h('span', { class: 'muted' }, pack.slug),
      isAdmin() ? h('button', { type: 'button', class: 'secondary', onclick: () => settingsDialog(pack, reload) }, 'Trusted publisher…') : null),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Trusted publisher'), h('dd', {}, publisher(pack)),
      h('dt', {}, 'Deploys'), h('dd', {}, pack.oidcOnly ? 'GitHub OIDC only' : 'GitHub OIDC or a pack deploy token')),
    h('section', { 'aria-labelledby': 'pc-h' },
      h('h2', { id: 'pc-h' }, 'Channels'),
      pack.channels.length ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Channel', 'Build', 'Previous', 'Moved', isAdmin() ? '' : null]
          .filter((x) => x !== null).map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, pack.channels.map((c) => h('tr', {},
          h('th', { scope: 'row' }, c.name),
          h('td', {}, h('strong', {}, c.build)),
          h('td', {}, c.previousBuild || h('span', { class: 'muted' }, '—')),
          h('td', {}, ago(c.updatedAt), h('div', { class: 'small muted' }, actor(c.updatedBy))),
          isAdmin() ? h('td', {}, c.previousBuild ? h('button', {
            type: 'button', class: 'secondary small', onclick: () => rollbackDialog(pack, c, reload),
          }, `Roll back to ${c.previousBuild}…`) : null) : null)))))
        : h('p', { class: 'empty' }, 'No channel yet: the first deploy creates one.')),
    h('section', { 'aria-labelledby': 'pb-h' },
      h('h2', { id: 'pb-h' }, 'Builds'),
      pack.builds.length ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Build', 'Deployed', 'Artifacts', 'On'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, pack.builds.map((b) => h('tr', {},
          h('td', {}, b.build),
          h('td', {}, ago(b.createdAt)),
          h('td', { class: 'num' }, String(b.artifactCount)),
          h('td', {}, pack.channels.filter((c) => c.build === b.build).map((c) => c.name).join(', ') || '—'))))))
        : h('p', { class: 'empty' }, 'No builds yet.')));
}

function rollbackDialog(pack, c, reload) {
  dialog(`Roll back ${pack.slug}/${c.name}?`,
    h('p', {}, `${c.name} serves build ${c.build}; it will serve ${c.previousBuild} again.`),
    [['Roll back', 'primary', async () => {
      await api('PUT', `/api/v1/packs/${seg(pack.slug)}/channels/${seg(c.name)}`, {
        build: c.previousBuild, expectedBuild: c.build,
      });
      notify(`${pack.slug}/${c.name}: ${c.build} → ${c.previousBuild}`);
      reload();
    }]]);
}

function settingsDialog(pack, reload) {
  const g = pack.github || {};
  const input = (value, attrs = {}) => h('input', { type: 'text', value: value ?? '', ...attrs });
  const repository = input(g.repository, { placeholder: 'owner/name' });
  const repositoryId = input(g.repositoryId, { inputmode: 'numeric', placeholder: '123456789' });
  const ownerId = input(g.repositoryOwnerId, { inputmode: 'numeric', placeholder: '987654' });
  const workflow = input(g.workflow, { placeholder: 'deploy-pack.yml (any when empty)' });
  const environment = input(g.environment, { placeholder: 'production (any when empty)' });
  const refPattern = input(g.refPattern, { placeholder: 'refs/tags/* (any when empty)' });
  const oidcOnly = h('input', { type: 'checkbox', checked: pack.oidcOnly });
  dialog(`Trusted publisher of ${pack.slug}`,
    h('div', {},
      h('p', { class: 'small muted' }, 'GitHub Actions OIDC deploys are matched by the repository and owner ids (a renamed repository keeps working; one re-created under the old name does not). Leave the repository empty to remove the publisher.'),
      field('Repository', repository),
      field('Repository id', repositoryId),
      field('Owner id', ownerId),
      field('Workflow file', workflow),
      field('Environment', environment),
      field('Ref pattern', refPattern),
      h('label', { class: 'inline' }, oidcOnly, ' Accept GitHub OIDC deploys only (refuse pack tokens)')),
    [['Save', 'primary', async () => {
      const body = { oidcOnly: oidcOnly.checked };
      if (!repository.value.trim()) {
        body.github = null;
      } else {
        const id = Number(repositoryId.value);
        const owner = Number(ownerId.value);
        if (!Number.isInteger(id) || !Number.isInteger(owner) || id <= 0 || owner <= 0) {
          throw new Problem(400, { code: 'invalid_input', detail: 'the repository and owner ids are positive numbers (see the repository in the GitHub API)' });
        }
        const opt = (el) => el.value.trim() || undefined;
        body.github = {
          repository: repository.value.trim(), repositoryId: id, repositoryOwnerId: owner,
          workflow: opt(workflow), environment: opt(environment), refPattern: opt(refPattern),
        };
      }
      await api('PATCH', `/api/v1/admin/packs/${seg(pack.slug)}`, body);
      notify(`${pack.slug} saved`);
      reload();
    }]]);
}
