// A product's usage: who runs which version over time (stacked shares), downloads per
// platform per day, each channel's rollout adoption, and the figures as tables. The charts
// are SVG drawn here from the stats API's numbers: nothing is loaded from elsewhere.

import { api, badge, fill, h, heading, link, loading, query, seg } from '../lib.js';

const NS = 'http://www.w3.org/2000/svg';

/** An SVG element (attributes set as given; text children as text). */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Colours that stay apart for people with the common colour-vision deficiencies. */
const PALETTE = ['#0b5cad', '#e07b00', '#1b9e77', '#8250df', '#c5283d', '#6b7a00', '#00838f', '#7a4d00'];

/** A colour per series name, stable across charts. */
function colours(names) {
  return Object.fromEntries(names.map((n, i) => [n, PALETTE[i % PALETTE.length]]));
}

const PERIODS = [['7', 'Last 7 days'], ['30', 'Last 30 days'], ['90', 'Last 90 days'], ['365', 'Last year']];

function isoDaysAgo(days) {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() - days);
  return d.toISOString().slice(0, 10);
}

/**
 * Stacked bars, one per day: `rows` are `{day, parts: {series: value}}`; `percent` scales
 * every bar to 100%.
 */
function stackedBars(title, rows, series, { percent = false, unit = '' } = {}) {
  const colour = colours(series);
  const width = 720;
  const height = 240;
  const pad = { top: 12, right: 12, bottom: 34, left: 48 };
  const inner = { w: width - pad.left - pad.right, h: height - pad.top - pad.bottom };
  const totals = rows.map((r) => Object.values(r.parts).reduce((a, b) => a + b, 0));
  const max = percent ? 1 : Math.max(1, ...totals);
  const step = inner.w / Math.max(rows.length, 1);
  const bar = Math.max(2, Math.min(36, step * 0.7));
  const y = (v) => pad.top + inner.h - (v / max) * inner.h;
  const ticks = percent ? [0, 0.25, 0.5, 0.75, 1] : [0, max / 2, max].map((t) => Math.round(t));
  const svg = s('svg', {
    viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title, class: 'chart',
  },
  ticks.map((t) => s('g', {},
    s('line', { x1: pad.left, x2: width - pad.right, y1: y(t), y2: y(t), class: 'grid-line' }),
    s('text', { x: pad.left - 6, y: y(t) + 4, 'text-anchor': 'end', class: 'tick' },
      percent ? `${Math.round(t * 100)}%` : `${t}${unit}`))),
  rows.map((r, i) => {
    const total = totals[i] || 1;
    let acc = 0;
    const x = pad.left + i * step + (step - bar) / 2;
    const label = rows.length <= 16 || i % Math.ceil(rows.length / 12) === 0;
    return s('g', {},
      series.filter((name) => r.parts[name]).map((name) => {
        const value = percent ? r.parts[name] / total : r.parts[name];
        const top = y(acc + value);
        const rect = s('rect', {
          x, y: top, width: bar, height: Math.max(0, y(acc) - top), fill: colour[name],
        }, s('title', {}, `${r.day} · ${name}: ${percent ? `${Math.round(value * 100)}%` : r.parts[name]}`));
        acc += value;
        return rect;
      }),
      label ? s('text', { x: x + bar / 2, y: height - pad.bottom + 16, 'text-anchor': 'middle', class: 'tick' }, r.day.slice(5)) : null);
  }));
  const legend = h('ul', { class: 'legend' }, series.map((name) => h('li', {},
    h('span', { class: 'swatch', style: null, dataset: { colour: colour[name] } }), name)));
  // Swatch colours through the DOM (a style attribute would need 'unsafe-inline' styles).
  for (const sw of legend.querySelectorAll('.swatch')) sw.style.background = sw.dataset.colour;
  return h('figure', { class: 'chart-box' }, h('figcaption', {}, title), svg, legend);
}

/** The numbers behind a chart, for those who read tables (and screen readers). */
function dataTable(caption, header, rows) {
  return h('details', {}, h('summary', {}, `${caption} as a table`),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, header.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))))));
}

const fmt = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en'));

export async function usagePage(main, { product }, search) {
  document.title = `${product} usage · Atlas Hub`;
  const days = Number(search.get('days')) || 30;
  fill(main, heading(`${product}: usage`), loading());
  const report = await api('GET', `/api/v1/admin/stats/${seg(product)}${query({ since: isoDaysAgo(days - 1) })}`);
  const byVersion = await api('GET', `/api/v1/admin/stats/${seg(product)}${query({ since: isoDaysAgo(days - 1), by: 'version' })}`);

  const versions = [...new Set(report.installedBase.flatMap((d) => d.versions.map((v) => v.version)))]
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  // Every day of the period gets its place on the axis, with or without data.
  const dayList = [];
  for (let d = new Date(`${report.since}T00:00:00Z`); d <= new Date(`${report.until}T00:00:00Z`); d.setUTCDate(d.getUTCDate() + 1)) {
    dayList.push(d.toISOString().slice(0, 10));
  }
  const byDay = Object.fromEntries(report.installedBase.map((d) => [d.day, d]));
  const base = report.installedBase.length ? dayList.map((day) => ({
    day, parts: Object.fromEntries((byDay[day]?.versions || []).map((v) => [v.version, v.clients])),
  })) : [];
  const platforms = [...new Set(report.dailyDownloads.map((d) => d.platform))].sort();
  const downloads = !report.dailyDownloads.length ? [] : dayList.map((day) => ({
    day,
    parts: Object.fromEntries(report.dailyDownloads.filter((d) => d.day === day).map((d) => [d.platform, d.downloads])),
  }));
  const t = report.totals;

  fill(main,
    h('p', { class: 'crumbs' }, link('/console', 'Products'), ' / ', link(`/console/products/${seg(product)}`, product)),
    heading(`${product}: usage`,
      h('nav', { class: 'periods', 'aria-label': 'Period' }, PERIODS.map(([d, label]) => (Number(d) === days
        ? h('strong', { 'aria-current': 'true' }, label)
        : link(`/console/products/${seg(product)}/usage?days=${d}`, label))))),
    h('div', { class: 'tiles' },
      [['Downloads', t.downloads], ['Update checks', t.updateChecks], ['Latest lookups', t.latestLookups], ['Distinct clients', t.distinctClients]]
        .map(([label, value]) => h('div', { class: 'tile' }, h('div', { class: 'tile-value' }, fmt(value)), h('div', { class: 'tile-label' }, label)))),
    h('p', { class: 'small muted' }, report.counted),
    h('section', { 'aria-labelledby': 'base-h' },
      h('h2', { id: 'base-h' }, 'Versions in use'),
      base.length
        ? [stackedBars('Share of clients on each version, per day', base, versions, { percent: true }),
          dataTable('Versions in use', ['Day', 'Clients', ...versions],
            report.installedBase.map((d) => [d.day, fmt(d.clients),
              ...versions.map((v) => { const x = d.versions.find((y) => y.version === v); return x ? `${Math.round(x.share * 100)}% (${fmt(x.clients)})` : '–'; })]))]
        : h('p', { class: 'empty' }, 'No update check reported a version in this period.')),
    h('section', { 'aria-labelledby': 'dl-h' },
      h('h2', { id: 'dl-h' }, 'Downloads per platform'),
      downloads.length
        ? [stackedBars('Downloads per day, by platform', downloads, platforms),
          dataTable('Downloads', ['Day', ...platforms], downloads.filter((d) => Object.keys(d.parts).length).map((d) => [d.day, ...platforms.map((p) => fmt(d.parts[p] || 0))]))]
        : h('p', { class: 'empty' }, 'No downloads in this period.')),
    h('section', { 'aria-labelledby': 'ro-h' },
      h('h2', { id: 'ro-h' }, 'Rollouts'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'rollouts' },
        h('thead', {}, h('tr', {}, ['Channel', 'Release', 'Rollout', 'Offered', 'Adopted', 'Adoption'].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, report.rollouts.map((r) => h('tr', {},
          h('td', {}, r.channel),
          h('td', {}, r.version),
          h('td', {}, r.rolloutPercent >= 100 ? badge('ok', '100%') : badge('warn', `${r.rolloutPercent}%`)),
          h('td', { class: 'num' }, fmt(r.offered)),
          h('td', { class: 'num' }, fmt(r.adopted)),
          h('td', {}, r.adoption === undefined ? h('span', { class: 'muted' }, 'nobody offered yet')
            : h('span', { class: 'adoption' },
              h('meter', { min: 0, max: 1, value: r.adoption, 'aria-label': `${r.channel} adoption` }),
              ` ${Math.round(r.adoption * 100)}%`)))))))),
    h('section', { 'aria-labelledby': 'ver-h' },
      h('h2', { id: 'ver-h' }, 'By version'),
      h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Version', 'Downloads', 'Update checks from it', 'Latest lookups of it', 'Clients running it'].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, byVersion.rows.map((r) => h('tr', {},
          h('td', {}, r.key === '(not given)' ? h('span', { class: 'muted' }, r.key) : link(`/console/products/${seg(product)}/releases/${seg(r.key)}`, r.key)),
          h('td', { class: 'num' }, fmt(r.downloads)),
          h('td', { class: 'num' }, fmt(r.updateChecks)),
          h('td', { class: 'num' }, fmt(r.latestLookups)),
          h('td', { class: 'num' }, fmt(r.distinctClients)))))))));
}

/** One release's downloads over the last 30 days (the release page). */
export async function releaseDownloads(product, version) {
  const report = await api('GET', `/api/v1/admin/stats/${seg(product)}${query({ since: isoDaysAgo(29), by: 'version' })}`);
  const row = report.rows.find((r) => r.key === version);
  return row ? row.downloads : 0;
}
