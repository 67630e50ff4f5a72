// The operator console, end to end, in Debian's chromium driven by playwright-core, against
// a running Hub whose Microsoft sign-in goes to the loopback OpenID provider
// (tests/oidc-provider). Run by tests/it/console.rs, which sets the Hub and its data up and
// checks the database afterwards. Each step asserts what a person would see; any failure
// exits non-zero with the step's name. Screenshots of every page go to $SCREENSHOTS.
//
// Environment: HUB_URL, IDP_URL (the provider's base, for its control endpoints), TENANT,
// ADMIN_OID, VIEWER_OID, SCREENSHOTS, CHROMIUM (default /usr/bin/chromium).

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const HUB = env('HUB_URL');
const IDP = env('IDP_URL');
const TENANT = env('TENANT');
const SHOTS = env('SCREENSHOTS');
mkdirSync(SHOTS, { recursive: true });

let step = 'start';
const steps = [];
async function run(name, fn) {
  step = name;
  const started = Date.now();
  await fn();
  steps.push(`${name} (${Date.now() - started} ms)`);
  console.log(`ok: ${name}`);
}

async function nextUser(oid, groups) {
  const r = await fetch(`${IDP}/_control/next-user`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      tenant: TENANT, sub: `sub-${oid}`, email: `${oid}@example.com`, emailVerified: true,
      name: oid, oid, groups,
    }),
  });
  assert.equal(r.status, 204, 'the provider takes the next user');
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

/** A fresh browser profile, failing the run on any script error in the page. */
async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => { throw new Error(`[${step}] script error in the page: ${e.message}`); });
  page.on('dialog', (d) => { throw new Error(`[${step}] unexpected ${d.type()} dialog: ${d.message()}`); });
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

const card = (page, channel) => page.locator('article.channel', { has: page.locator('h3', { hasText: new RegExp(`^${channel}$`) }) });

async function signIn(page, returnTo, who, groups) {
  await nextUser(who, groups);
  const response = await page.goto(`${HUB}${returnTo}`);
  const headers = response.headers();
  assert.match(headers['content-security-policy'] || '', /script-src 'self'/, 'a CSP without inline scripts');
  assert.doesNotMatch(headers['content-security-policy'], /unsafe-inline/);
  assert.equal(headers['x-frame-options'], 'DENY');
  assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
  assert.match(headers['cache-control'] || '', /private|no-store/, 'no shared cache keeps console pages');
  await page.getByRole('heading', { name: 'Sign in to Atlas Hub' }).waitFor();
  await shot(page, 'signin');
  await page.getByRole('link', { name: 'Sign in with Microsoft' }).click();
  await page.waitForURL(`${HUB}${returnTo}`);
  await page.locator('.who .person').waitFor();
}

try {
  const admin = await newPage();

  await run('an admin signs in and lands where they were going', async () => {
    await signIn(admin, '/console/products/launcher', env('ADMIN_OID'), ['release-admins']);
    assert.equal(await admin.locator('.who .person').textContent(), `microsoft:${TENANT}/${env('ADMIN_OID')}`);
    assert.equal(await admin.locator('.who .badge').textContent(), 'admin');
    await card(admin, 'stable').waitFor();
    await shot(admin, 'product');
  });

  await run('the products page shows each channel and what needs attention', async () => {
    await admin.getByRole('link', { name: 'Products', exact: true }).click();
    await admin.getByRole('heading', { name: 'Products' }).waitFor();
    const row = admin.locator('tr', { has: admin.getByRole('link', { name: 'Launcher' }) });
    await row.getByRole('link', { name: '1.0.0' }).first().waitFor();
    await admin.getByText('Every channel serves its required platforms').waitFor();
  });

  await run('promote with a 25% rollout, the coverage check shown before confirming', async () => {
    await admin.goto(`${HUB}/console/products/launcher`);
    await card(admin, 'stable').getByRole('button', { name: 'Promote…' }).click();
    const dialog = admin.locator('dialog');
    await dialog.locator('select').selectOption('1.1.0');
    await dialog.locator('input[type=number]').fill('25');
    await dialog.locator('.ok-text').waitFor();
    assert.match(await dialog.locator('.ok-text').textContent(), /serves every platform stable serves today/);
    await shot(admin, 'promote-dialog');
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await dialog.waitFor({ state: 'detached' });
    const stable = card(admin, 'stable');
    await stable.locator('.version', { hasText: '1.1.0' }).waitFor();
    await stable.locator('.badge', { hasText: '25%' }).waitFor();
    await shot(admin, 'promoted');
  });

  await run('a move that misses a platform is refused naming it, then forced with a second confirmation', async () => {
    await card(admin, 'beta').getByRole('button', { name: 'Promote…' }).click();
    const dialog = admin.locator('dialog');
    await dialog.locator('select').selectOption('1.2.0');
    const problem = dialog.locator('.check .problem');
    await problem.waitFor();
    assert.match(await problem.textContent(), /Platforms would be missing: windows-x86_64/);
    const force = dialog.getByRole('button', { name: 'Force move' });
    assert.equal(await force.isDisabled(), true, 'forcing needs the second confirmation');
    await shot(admin, 'force-dialog');
    await dialog.getByRole('checkbox').check();
    await force.click();
    await dialog.waitFor({ state: 'detached' });
    await card(admin, 'beta').locator('.version', { hasText: '1.2.0' }).waitFor();
  });

  await run('the products page shows what needs attention', async () => {
    await admin.getByRole('link', { name: 'Products', exact: true }).click();
    const attention = admin.locator('.attention');
    await attention.waitFor();
    assert.match(await attention.textContent(), /1 need attention\s*launcher/);
    const row = admin.locator('tr', { has: admin.getByRole('link', { name: 'Launcher' }) });
    await row.locator('.badge', { hasText: 'missing windows-x86_64' }).waitFor();
    await row.locator('.badge', { hasText: 'rollout 25%' }).waitFor();
    await shot(admin, 'products');
    await admin.getByRole('link', { name: 'Launcher' }).click();
    await card(admin, 'beta').waitFor();
  });

  await run('a move someone else made meanwhile is refused and shown', async () => {
    await card(admin, 'dev').getByRole('button', { name: 'Promote…' }).click();
    const dialog = admin.locator('dialog');
    await dialog.locator('select').selectOption('1.0.0');
    await dialog.locator('.ok-text').waitFor();
    // Someone else moves dev while the dialog is open (the page still shows the old version).
    const other = await admin.evaluate(async () => {
      const s = await (await fetch('/api/v1/auth/session')).json();
      const r = await fetch('/api/v1/releases/launcher/channels/dev', {
        method: 'PUT',
        headers: { 'content-type': 'application/json', 'x-atlas-csrf': s.csrfToken },
        body: JSON.stringify({ version: '1.1.0' }),
      });
      return r.status;
    });
    assert.equal(other, 200);
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await dialog.locator('.dialog-problem', { hasText: 'Someone moved this channel meanwhile' }).waitFor();
    await dialog.getByRole('button', { name: 'Reload and look again' }).click();
    await card(admin, 'dev').locator('.version', { hasText: '1.1.0' }).waitFor();
  });

  await run('roll back', async () => {
    await card(admin, 'beta').getByRole('button', { name: /Roll back to 1\.0\.0/ }).click();
    const dialog = admin.locator('dialog');
    await dialog.locator('.ok-text').waitFor();
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await dialog.waitFor({ state: 'detached' });
    await card(admin, 'beta').locator('.version', { hasText: '1.0.0' }).waitFor();
  });

  await run('yank a release with a reason', async () => {
    const row = admin.locator('table.history tr', { has: admin.getByRole('link', { name: '1.2.0', exact: true }) });
    await row.getByRole('button', { name: 'Yank…' }).click();
    const dialog = admin.locator('dialog');
    await dialog.getByRole('button', { name: 'Yank' }).click();
    await dialog.locator('.dialog-problem', { hasText: 'say why' }).waitFor();
    await dialog.getByLabel(/Reason/).fill('crashes on start on <b>Windows</b>');
    await dialog.getByRole('button', { name: 'Yank' }).click();
    await dialog.waitFor({ state: 'detached' });
    await row.locator('.badge', { hasText: 'yanked' }).waitFor();
    assert.equal(await row.locator('.reason').textContent(), 'crashes on start on <b>Windows</b>');
    await shot(admin, 'history-yanked');
  });

  await run('release notes with markup render as text', async () => {
    await admin.goto(`${HUB}/console/products/launcher/releases/1.1.0`);
    const notes = admin.locator('pre.notes');
    await notes.waitFor();
    assert.equal(await notes.textContent(), env('NOTES'));
    assert.equal(await admin.evaluate(() => window.__xss), undefined, 'no script from the notes ran');
    assert.equal(await notes.locator('script, img').count(), 0);
    await admin.getByRole('link', { name: 'launcher-1.1.0.AppImage' }).waitFor();
    await shot(admin, 'release');
  });

  let plaintext = '';
  await run('issue a token: the plaintext is shown once and gone after a reload', async () => {
    await admin.goto(`${HUB}/console/tokens`);
    await admin.getByRole('button', { name: 'Issue a token…' }).click();
    const dialog = admin.locator('dialog');
    await dialog.getByLabel('Name').fill('e2e CI');
    await dialog.getByLabel('launcher').check();
    await dialog.getByRole('button', { name: 'Issue' }).click();
    await dialog.waitFor({ state: 'detached' });
    const once = admin.locator('.card.once');
    plaintext = await once.locator('code').textContent();
    assert.match(plaintext, /^atlas_app_[A-Za-z0-9]{43}$/);
    await shot(admin, 'token-issued');
    await admin.reload();
    await admin.getByRole('cell', { name: /e2e CI/ }).waitFor();
    assert.equal((await admin.content()).includes(plaintext), false, 'the plaintext is gone after a reload');
    await shot(admin, 'tokens');
  });

  await run('revoke the token after a confirmation', async () => {
    const row = admin.locator('tr', { has: admin.getByRole('cell', { name: /e2e CI/ }) });
    await row.getByRole('button', { name: 'Revoke…' }).click();
    await admin.locator('dialog').getByRole('button', { name: 'Revoke' }).click();
    await row.locator('.badge', { hasText: 'revoked' }).waitFor();
    const check = await fetch(`${HUB}/api/v1/admin/products`, { headers: { authorization: `Bearer ${plaintext}` } });
    assert.equal(check.status, 401, 'the revoked token is refused');
  });

  await run('every step is in the audit log, with filters and links', async () => {
    await admin.goto(`${HUB}/console/audit`);
    await admin.locator('table.audit').waitFor();
    const text = await admin.locator('table.audit').textContent();
    for (const action of ['channel.move', 'release.yank', 'token.issue', 'token.revoke', 'session.signin']) {
      assert.ok(text.includes(action), `${action} in the audit log`);
    }
    await shot(admin, 'audit');
    await admin.getByLabel('Action').selectOption('release.yank');
    await admin.getByRole('button', { name: 'Filter' }).click();
    await admin.waitForURL(/action=release\.yank/);
    // The URL changes before the filtered page replaces the table: wait for the rows to
    // settle (if they never do, the count below fails) rather than count the old table's.
    await admin
      .waitForFunction(() => document.querySelectorAll('table.audit tbody tr').length === 1, null, { timeout: 10000 })
      .catch(() => {});
    assert.equal(await admin.locator('table.audit tbody tr').count(), 1);
    await admin.getByRole('link', { name: 'launcher@1.2.0' }).click();
    await admin.getByRole('heading', { name: 'launcher 1.2.0' }).waitFor();
    assert.match(await admin.locator('dd.reason').textContent(), /crashes on start/);
  });

  await run('usage: versions in use, downloads per platform, rollout adoption', async () => {
    await admin.goto(`${HUB}/console/products/launcher`);
    await admin.getByRole('link', { name: 'Usage and adoption →' }).click();
    await admin.getByRole('heading', { name: 'Versions in use' }).waitFor();
    const tile = (label) => admin.locator('.tile', { hasText: label }).locator('.tile-value');
    assert.equal(await tile('Update checks').textContent(), '30');
    assert.equal(await tile('Downloads').textContent(), '8');
    // An estimate (HyperLogLog): within a couple of the 30 clients.
    const distinct = Number(await tile('Distinct clients').textContent());
    assert.ok(Math.abs(distinct - 30) <= 2, `about 30 distinct clients, not ${distinct}`);
    assert.equal(await admin.locator('svg.chart').count(), 2);
    assert.ok(await admin.locator('svg.chart rect').count() >= 2, 'bars are drawn');
    const legend = await admin.locator('ul.legend').first().textContent();
    assert.match(legend, /0\.9\.0/);
    assert.match(legend, /1\.0\.0/);
    const stable = admin.locator('table.rollouts tr', { hasText: 'stable' });
    assert.match(await stable.textContent(), /1\.1\.0/);
    await shot(admin, 'usage');
  });

  await run('a pack channel rolled back to its previous build', async () => {
    await admin.goto(`${HUB}/console/packs`);
    await admin.getByRole('heading', { name: 'Packs' }).waitFor();
    await shot(admin, 'packs');
    await admin.getByRole('link', { name: 'Maps' }).click();
    const live = admin.locator('tr', { has: admin.getByRole('rowheader', { name: 'live' }) });
    await live.getByRole('button', { name: 'Roll back to 2026.1…' }).click();
    await admin.locator('dialog').getByRole('button', { name: 'Roll back' }).click();
    await live.locator('td strong', { hasText: '2026.1' }).waitFor();
    assert.equal(await admin.locator('table tbody tr', { hasText: '2026.2' }).count() >= 1, true);
    await shot(admin, 'pack');
  });

  await run('packs and access pages', async () => {
    await admin.goto(`${HUB}/console/access`);
    await admin.getByRole('heading', { name: 'Who may sign in' }).waitFor();
    await shot(admin, 'access');
  });

  await run('at phone width the pages still work', async () => {
    await admin.setViewportSize({ width: 390, height: 844 });
    await admin.goto(`${HUB}/console/products/launcher`);
    await card(admin, 'stable').waitFor();
    const overflow = await admin.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the page does not scroll sideways (${overflow}px too wide)`);
    await shot(admin, 'product-phone');
  });

  const viewer = await newPage();
  await run('a viewer sees no write buttons', async () => {
    await signIn(viewer, '/console/products/launcher', env('VIEWER_OID'), []);
    assert.equal(await viewer.locator('.who .badge').textContent(), 'viewer');
    await card(viewer, 'stable').waitFor();
    await viewer.getByRole('heading', { name: 'Release history' }).waitFor();
    assert.equal(await viewer.getByRole('button', { name: /Promote|Roll back|rollout|Yank|Unyank/ }).count(), 0);
    await shot(viewer, 'viewer-product');
    await viewer.goto(`${HUB}/console/tokens`);
    await viewer.getByRole('heading', { name: 'Tokens' }).waitFor();
    assert.equal(await viewer.getByRole('button', { name: /Issue|Revoke/ }).count(), 0);
    assert.equal(await viewer.getByRole('link', { name: 'Access' }).count(), 0);
  });

  await run('a crafted write from a viewer session is refused', async () => {
    const answer = await viewer.evaluate(async () => {
      const s = await (await fetch('/api/v1/auth/session')).json();
      const r = await fetch('/api/v1/releases/launcher/channels/stable', {
        method: 'PUT',
        headers: { 'content-type': 'application/json', 'x-atlas-csrf': s.csrfToken },
        body: JSON.stringify({ version: '1.0.0' }),
      });
      return { status: r.status, body: await r.json() };
    });
    assert.equal(answer.status, 403);
    assert.equal(answer.body.code, 'scope_denied');
  });

  await run('sign out', async () => {
    await viewer.getByRole('button', { name: 'Sign out' }).click();
    await viewer.getByRole('heading', { name: 'Sign in to Atlas Hub' }).waitFor();
  });
} catch (e) {
  console.error(`FAILED at step "${step}": ${e.stack || e}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log(`all ${steps.length} steps passed:\n  ${steps.join('\n  ')}`);
