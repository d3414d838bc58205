// Observability pieces shared by the logs explorer and the integration and
// runtime pages: level badges, the log API's order, the metrics panel (request
// rate, error rate, latency percentiles over a chosen range, from
// GET /api/v1/observability/metrics) and the "recent logs" card.

import { get, qs } from './api.js';
import { h, fill, link, loading, failure, empty as emptyState, table, formatTime } from './ui.js';
import { timeChart, num, plural } from './chart.js';

export const LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];
const LEVEL_KIND = { TRACE: '', DEBUG: '', INFO: 'info', WARN: 'warn', ERROR: 'bad', FATAL: 'bad solid' };

export function levelBadge(level, testid) {
  return h('span', { class: `badge level ${LEVEL_KIND[level] ?? ''}`, testid, 'data-level': level }, level);
}

/**
 * The order of the log API, oldest first: by the record's own time, then
 * by id (ids rise with arrival within a millisecond; they are decimal
 * strings longer than a double holds, so compared as BigInt).
 */
export function compareLogs(a, b) {
  const dt = Date.parse(a.time) - Date.parse(b.time);
  if (dt) return dt;
  const x = BigInt(a.id);
  const y = BigInt(b.id);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Ranges the metrics panel offers, with the bucket size that gives 60-96 points. */
export const METRIC_RANGES = [
  ['15m', 15 * 60, 15],
  ['1h', 3600, 60],
  ['6h', 6 * 3600, 300],
  ['24h', 24 * 3600, 900],
  ['7d', 7 * 24 * 3600, 7200],
];
const RANGE_KEY = 'icpd.metricsRange';
/**
 * A bucket with fewer requests gets no point on the error-rate chart (one
 * failure in two requests is 50 %, and a sparse range would swing between
 * 0 and 100 %); its counts still show in the readout.
 */
export const MIN_RATE_REQUESTS = 5;

/** The link to the logs explorer for a scope ({ environment, project, integration, runtime }). */
export const logsHref = (scope) => `/logs${qs(scope)}`;

/**
 * The metrics panel for a scope: { el, stop }. `environments` (optional)
 * adds an environment choice. Refreshes itself every 30 s (15 s for the
 * 15-minute range) until stop().
 */
export function metricsPanel(scope, { environments = null, testid = 'metrics', byResource = false } = {}) {
  let range = localStorage.getItem(RANGE_KEY);
  if (!METRIC_RANGES.some(([k]) => k === range)) range = '1h';
  let environment = scope.environment || '';
  // The charts' filter from a "By resource" row: { service, resource } or null.
  let only = null;
  const charts = {
    requests: timeChart({ title: 'Request rate', unit: 'req/s', area: true, testid: `${testid}-requests`, emptyText: 'No requests in this range.' }),
    errors: timeChart({ title: 'Error rate', unit: '%', testid: `${testid}-errors`, emptyText: 'No requests in this range.' }),
    latency: timeChart({ title: 'Latency', unit: 'ms', testid: `${testid}-latency`, emptyText: 'No requests in this range.' }),
  };
  const buttons = METRIC_RANGES.map(([k]) => h('button', {
    type: 'button', 'aria-pressed': String(k === range), testid: `${testid}-range-${k}`,
    onClick: () => { range = k; localStorage.setItem(RANGE_KEY, k); buttons.forEach((b) => b.setAttribute('aria-pressed', String(b.textContent === k))); load(true); },
  }, k));
  const envSel = environments && environments.length > 1
    ? h('select', { 'aria-label': 'Environment', testid: `${testid}-environment`, onChange: (e) => { environment = e.target.value; load(true); } },
      h('option', { value: '' }, 'All environments'), environments.map((e) => h('option', { value: e.handle }, e.name)))
    : null;
  const note = h('div', { class: 'muted small chart-note', testid: `${testid}-note` });
  const grid = h('div', { class: 'grid charts' }, Object.values(charts).map((c) => c.el));
  // One empty state for the panel rather than three empty charts.
  const none = h('div', { hidden: true, testid: `${testid}-empty` });
  const filterChip = h('span', { class: 'badge accent filter-chip', hidden: true, testid: `${testid}-filter` });
  const pick = (p) => {
    only = p;
    filterChip.hidden = !p;
    if (p) {
      fill(filterChip, h('span', {}, 'Only ', h('span', { class: 'mono' }, `${p.service} ${p.resource}`)),
        h('button', { type: 'button', class: 'chip-x', 'aria-label': 'Show every resource', title: 'Show every resource', testid: `${testid}-filter-clear`, onClick: () => pick(null) }, '×'));
    }
    load(true);
  };
  const resources = byResource ? resourceTable(testid, pick) : null;
  const el = h('section', { class: 'card', testid },
    h('div', { class: 'card-head' },
      h('h2', {}, 'Metrics'),
      h('div', { class: 'actions' }, filterChip, envSel, h('div', { class: 'seg', role: 'group', 'aria-label': 'Time range' }, buttons))),
    grid,
    none,
    note,
    resources?.el);

  const label = () => METRIC_RANGES.find(([k]) => k === range)[0];
  let seq = 0;
  async function load(showLoading = false) {
    const my = ++seq;
    const [, seconds, step] = METRIC_RANGES.find(([k]) => k === range);
    const stepMs = step * 1000;
    // Whole buckets, the last one holding now.
    const to = Math.ceil((Date.now() + 1) / stepMs) * stepMs;
    const from = to - seconds * 1000;
    if (showLoading) {
      grid.hidden = false;
      none.hidden = true;
      Object.values(charts).forEach((c) => c.setState('loading'));
    }
    const where = { ...scope, environment, from: new Date(from).toISOString(), to: new Date(to).toISOString() };
    // The table: one bucket over the whole range, one series per
    // service, resource and method (not narrowed by the charts' filter).
    if (resources) {
      if (showLoading) resources.loading();
      get(`/observability/metrics${qs({ ...where, step: seconds, groupBy: 'resource' })}`)
        .then((r) => { if (my === seq) resources.set(r.series || [], only, label()); })
        .catch((e) => { if (my === seq) resources.fail(e, () => load(true)); });
    }
    let m;
    try {
      m = await get(`/observability/metrics${qs({ ...where, service: only?.service, resource: only?.resource, step })}`);
    } catch (e) {
      if (my !== seq) return;
      grid.hidden = true;
      none.hidden = false;
      fill(none, e.status === 403 ? h('p', { class: 'muted' }, 'You may not view metrics here.') : failure(e, () => load(true)));
      return;
    }
    if (my !== seq) return;
    render(m, from, to);
  }

  function render(m, from, to) {
    const stepMs = (m.stepSeconds || 60) * 1000;
    const sr = (m.series || [])[0];
    const points = sr?.points || [];
    const times = points.map((p) => Date.parse(p.time));
    const total = sr?.total || { requests: 0 };
    const span = { from: m.from ? Date.parse(m.from) : from, to: m.to ? Date.parse(m.to) : to };
    const empty = !total.requests;
    grid.hidden = empty;
    none.hidden = !empty;
    if (empty) {
      fill(none, only
        ? emptyState(`No requests to ${only.service} ${only.resource} in the last ${label()}.`, 'Clear the resource filter below to see every request.')
        : emptyState(`No requests in the last ${label()}.`, 'Runtimes send request records to /icp/metrics (or OTLP metrics to /v1/metrics) on the runtime listener; pick a longer range to look further back.'));
    }
    // Per second, or per minute when traffic is light (0.02 req/s reads worse than 1.2 req/min).
    const peak = Math.max(0, ...points.map((p) => p.requests)) / (stepMs / 1000);
    const perMin = peak < 1;
    const rateUnit = perMin ? 60 : 1;
    const rate = (p) => (p.requests * rateUnit) / (stepMs / 1000);
    const secs = (span.to - span.from) / 1000;
    const counts = points.map((p) => p.requests);
    charts.requests.set({
      ...span, times, stepMs, empty, counts,
      unit: perMin ? 'req/min' : 'req/s',
      series: [{ name: perMin ? 'requests/min' : 'requests/s', key: 'requests', values: points.map(rate) }],
      summary: `${total.requests.toLocaleString()} request${total.requests === 1 ? '' : 's'} · avg ${num((total.requests * rateUnit) / secs)} ${perMin ? 'req/min' : 'req/s'}`,
    });
    const pct = (f) => (f === null || f === undefined ? null : f * 100);
    const rated = (p) => p.requests >= MIN_RATE_REQUESTS;
    const unrated = points.filter((p) => p.requests && !rated(p)).length;
    const errorCounts = `5xx ${total.errors5xx ?? 0} and 4xx ${total.errors4xx ?? 0} of ${plural(total.requests, 'request')}`;
    charts.errors.set({
      ...span, times, stepMs, counts,
      empty: empty || (!points.some(rated) && `Fewer than ${MIN_RATE_REQUESTS} requests in every bucket, too few for a rate: ${errorCounts}. A longer range has bigger buckets.`),
      series: [
        { name: '5xx', key: 'errors5xx', color: 3, values: points.map((p) => (rated(p) ? pct(p.errorRate5xx) : null)), counts: points.map((p) => p.errors5xx) },
        { name: '4xx', key: 'errors4xx', color: 4, values: points.map((p) => (rated(p) ? pct(p.errorRate4xx) : null)), counts: points.map((p) => p.errors4xx) },
      ],
      summary: `5xx ${charts.errors.format(pct(total.errorRate5xx))} (${total.errors5xx ?? 0}) · 4xx ${charts.errors.format(pct(total.errorRate4xx))} (${total.errors4xx ?? 0}) of ${plural(total.requests, 'request')}${unrated ? ` · ${unrated} bucket${unrated === 1 ? '' : 's'} under ${MIN_RATE_REQUESTS} requests not drawn` : ''}`,
    });
    charts.latency.set({
      ...span, times, stepMs, empty, counts,
      series: [
        { name: 'p50', key: 'p50', values: points.map((p) => p.latencyP50Ms) },
        { name: 'p95', key: 'p95', values: points.map((p) => p.latencyP95Ms) },
        // Wide and dashed under p95: with few requests the two are equal.
        { name: 'p99', key: 'p99', dash: true, values: points.map((p) => p.latencyP99Ms) },
      ],
      summary: ['P50', 'P95', 'P99'].map((q) => `${q.toLowerCase()} ${charts.latency.format(total[`latency${q}Ms`])}`).join(' · '),
    });
    fill(note, `${formatTime(span.from, { seconds: false })} – ${formatTime(span.to, { seconds: false })}, ${num(stepMs / 1000 >= 60 ? stepMs / 60000 : stepMs / 1000)} ${stepMs >= 60000 ? 'min' : 's'} buckets. Hover a chart (or focus it and use the arrow keys) for a bucket's values.`);
  }

  Object.values(charts).forEach((c) => c.setState('loading'));
  load();
  let ticks = 0;
  const timer = setInterval(() => { ticks += 1; if (!document.hidden && (range === '15m' || ticks % 2 === 0)) load(); }, 15000);
  return { el, stop: () => clearInterval(timer), reload: () => load() };
}

const pctText = (f) => (f === null || f === undefined ? '—' : `${num(f * 100)} %`);
const msText = (v) => (v === null || v === undefined ? '—' : num(v));

/**
 * The "By resource" part of the metrics panel: one row per service,
 * resource and method over the whole range, busiest first. Clicking a row
 * narrows the charts to that service and resource (every method: the API
 * filters by service and resource); clicking it again shows everything.
 */
function resourceTable(testid, onPick) {
  const body = h('div', { testid: `${testid}-resources-body` });
  const el = h('div', { class: 'by-resource', testid: `${testid}-resources`, hidden: true },
    h('h3', {}, 'By resource'),
    body);
  let only = null;
  const same = (a, b) => a && b && a.service === b.service && a.resource === b.resource;
  function set(series, picked, label) {
    only = picked;
    const rows = series.filter((sr) => sr.total?.requests > 0)
      .sort((a, b) => b.total.requests - a.total.requests
        || `${a.service}\0${a.resource}\0${a.method}`.localeCompare(`${b.service}\0${b.resource}\0${b.method}`));
    // Nothing to list (and no filter to clear): the panel's empty state says it.
    el.hidden = !rows.length && !only;
    if (!rows.length) {
      fill(body, emptyState(`No requests in the last ${label}.`));
      return;
    }
    fill(body, h('div', { class: 'table-wrap' }, h('table', { class: 'resources-table', testid: `${testid}-resources-table` },
      h('caption', { class: 'muted small' }, `Request records in the last ${label}, busiest first. Click a row to show only that resource in the charts.`),
      h('thead', {}, h('tr', {}, [['Service'], ['Resource'], ['Method'], ['Requests', 1], ['4xx', 1], ['5xx', 1], ['p50 ms', 1], ['p95 ms', 1], ['p99 ms', 1]]
        .map(([t, n]) => h('th', { scope: 'col', class: n ? 'num' : '' }, t)))),
      h('tbody', {}, rows.map((sr) => row(sr))))));
  }
  function row(sr) {
    const t = sr.total;
    const key = { service: sr.service, resource: sr.resource };
    const selected = same(key, only);
    const toggle = () => onPick(selected ? null : key);
    return h('tr', {
      class: `pickable${selected ? ' selected' : ''}`, testid: `${testid}-resource-row`,
      'data-service': sr.service, 'data-resource': sr.resource, 'data-method': sr.method, 'data-requests': t.requests,
      onClick: (e) => { if (!e.target.closest('button')) toggle(); },
    },
    h('td', { class: 'mono' }, sr.service || '—'),
    h('td', { class: 'mono' }, h('button', {
      type: 'button', class: 'linkish', 'aria-pressed': String(selected), onClick: toggle,
      title: selected ? 'Show every resource in the charts' : 'Show only this resource in the charts',
    }, sr.resource || '—')),
    h('td', {}, sr.method ? h('span', { class: 'method' }, sr.method) : '—'),
    h('td', { class: 'num', 'data-col': 'requests' }, t.requests.toLocaleString()),
    h('td', { class: `num${t.errors4xx ? ' warn-text' : ''}`, 'data-col': 'errors4xx', title: `${t.errors4xx} of ${t.requests}` }, pctText(t.errorRate4xx)),
    h('td', { class: `num${t.errors5xx ? ' bad-text' : ''}`, 'data-col': 'errors5xx', title: `${t.errors5xx} of ${t.requests}` }, pctText(t.errorRate5xx)),
    h('td', { class: 'num', 'data-col': 'p50' }, msText(t.latencyP50Ms)),
    h('td', { class: 'num', 'data-col': 'p95' }, msText(t.latencyP95Ms)),
    h('td', { class: 'num', 'data-col': 'p99' }, msText(t.latencyP99Ms)));
  }
  return {
    el,
    set,
    loading: () => fill(body, loading()),
    fail: (e, retry) => { el.hidden = false; fill(body, e.status === 403 ? h('p', { class: 'muted' }, 'You may not view metrics here.') : failure(e, retry)); },
  };
}

/**
 * The latest log records of a scope by their own time, newest first (the
 * query API's order), with a link into the explorer: { el, stop }.
 * Refreshes every 10 s until stop().
 */
export function recentLogs(scope, { testid = 'recent-logs', limit = 8, runtimeName = () => null } = {}) {
  const body = h('div', { testid: `${testid}-body` }, loading());
  const el = h('section', { class: 'card', testid },
    h('div', { class: 'card-head' }, h('h2', {}, 'Recent logs'), link(logsHref(scope), 'Open in logs explorer', { class: 'btn small', testid: `${testid}-open` })),
    body);
  let seq = 0;
  async function load() {
    const my = ++seq;
    try {
      const page = await get(`/observability/logs${qs({ ...scope, order: 'desc', limit })}`);
      if (my !== seq) return;
      fill(body, page.items.length
        ? table(['Time', 'Level', scope.runtime ? null : 'Runtime', 'Message'].filter(Boolean), page.items.map((r) => h('tr', { testid: `${testid}-row-${r.id}` },
          h('td', { class: 'mono nowrap', title: r.time }, formatTime(r.time, { ms: true })),
          h('td', {}, levelBadge(r.level)),
          scope.runtime ? null : h('td', { class: 'mono small' }, r.runtimeId ? runtimeName(r.runtimeId) || r.runtimeId.slice(0, 8) : '—'),
          h('td', { class: 'log-message' }, r.message))))
        : emptyState('No log records yet.', 'Runtimes send logs to /icp/logs or /v1/logs on the runtime listener.'));
    } catch (e) {
      if (my !== seq) return;
      fill(body, e.status === 403 ? h('p', { class: 'muted' }, 'You may not view logs here.') : failure(e, load));
    }
  }
  load();
  const timer = setInterval(() => { if (!document.hidden) load(); }, 10000);
  return { el, stop: () => clearInterval(timer), reload: load };
}
