// Overview: counts (with the promotions waiting for the user's decision),
// runtimes per environment by status, projects; with MI runtimes about, a
// search for MI artifacts by name (each hit links to its integration and
// to the MI artifacts page of its environment, filtered to it).

import { get, all, qs, enc } from '../api.js';
import { h, fill, card, link, loading, failure, empty, badge, timeAgo, table, field, input } from '../ui.js';
import { liveRefresh } from '../live.js';
import { refreshAwaiting } from '../app.js';
import { serverHas } from '../pipeline.js';
import { kindName } from '../mi.js';

export async function render(ctx) {
  ctx.crumbs(['Overview']);
  const body = h('div', { class: 'stack', testid: 'overview' });
  const searchSlot = h('div', { hidden: true });
  fill(ctx.el, h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Overview'), h('p', {}, 'Your projects and the runtimes reporting to this control plane.'))), searchSlot, body);
  miSearch(ctx, searchSlot);
  fill(body, loading());
  const load = async () => {
    const [envs, projects, running, offline, recent, awaiting] = await Promise.all([
      all('/environments'),
      get('/projects?limit=12'),
      get('/runtimes?status=RUNNING&limit=1'),
      get('/runtimes?status=OFFLINE&limit=1'),
      get('/runtimes?limit=8'),
      refreshAwaiting(),
    ]);
    const perEnv = await Promise.all(envs.map(async (e) => {
      const [r, o] = await Promise.all([
        get(`/runtimes${qs({ environment: e.handle, status: 'RUNNING', limit: 1 })}`),
        get(`/runtimes${qs({ environment: e.handle, status: 'OFFLINE', limit: 1 })}`),
      ]);
      return { env: e, running: r.total, offline: o.total };
    }));
    if (!ctx.alive()) return;
    const stat = (label, value, cls, testid) => h('div', { class: 'card stat', testid }, h('div', { class: 'label' }, label), h('div', { class: `value ${cls || ''}` }, value));
    fill(body,
      h('div', { class: 'grid stats' },
        stat('Projects', projects.total, '', 'stat-projects'),
        stat('Runtimes', running.total + offline.total, '', 'stat-runtimes'),
        stat('Running', running.total, 'ok', 'stat-running'),
        stat('Offline', offline.total, offline.total ? 'bad' : '', 'stat-offline'),
        stat('Awaiting your decision', link('/promotions', awaiting === null ? '—' : String(awaiting), { title: 'Promotions waiting for your approval or rejection' }), awaiting ? 'warn' : '', 'stat-awaiting')),
      h('div', { class: 'grid two' },
        card('Runtimes by environment', link('/environments', 'Manage'),
          perEnv.length ? perEnv.map(({ env, running: r, offline: o }) => {
            const total = r + o;
            const bar = h('div', { class: 'bar', role: 'img', 'aria-label': `${r} running, ${o} offline` });
            if (total) {
              const ok = h('div', { class: 'ok' });
              const bad = h('div', { class: 'bad' });
              ok.style.flexGrow = String(r); // CSSOM, allowed by the CSP (no style attribute)
              bad.style.flexGrow = String(o);
              bar.append(ok, bad);
            }
            return h('div', { class: 'env-row', testid: `env-status-${env.handle}` },
              h('div', { class: 'top' },
                h('div', {}, link(`/runtimes${qs({ environment: env.handle })}`, env.name), ' ', h('span', { class: 'muted small mono' }, env.handle), env.critical ? [' ', badge('critical', 'warn')] : null),
                h('div', { class: 'chips' }, badge(`${r} RUNNING`, r ? 'ok' : ''), badge(`${o} OFFLINE`, o ? 'bad' : ''))),
              bar);
          }) : empty('No environments.')),
        card('Projects', link('/projects', 'All projects'),
          projects.items.length
            ? h('div', { class: 'stack' }, projects.items.map((p) => h('div', { class: 'env-row' },
                h('div', { class: 'top' }, h('div', {}, link(`/projects/${enc(p.handle)}`, p.name), ' ', h('span', { class: 'muted small mono' }, p.handle)),
                  h('span', { class: 'muted small' }, p.description || '')))))
            : empty('No projects yet.', 'Create one to register integrations.', link('/projects', 'Go to projects', { class: 'btn primary' })))),
      card('Recently seen runtimes', link('/runtimes', 'All runtimes'),
        table(['Runtime', 'Status', 'Project / integration', 'Environment', 'Last heartbeat'], recent.items.map((r) => h('tr', {},
          h('td', {}, link(`/runtimes/${enc(r.runtimeId)}`, r.name || r.runtimeId)),
          h('td', {}, badge(r.status)),
          h('td', {}, link(`/projects/${enc(r.project)}/integrations/${enc(r.integration)}`, `${r.project} / ${r.integration}`)),
          h('td', {}, r.environment),
          h('td', {}, timeAgo(r.lastHeartbeat)))), { emptyText: 'No runtime has registered yet.' })));
  };
  try {
    await load();
  } catch (e) {
    fill(body, failure(e, () => render(ctx)));
    return;
  }
  ctx.live(liveRefresh(load, (t) => t.startsWith('runtime')));
}

/** The MI artifact search, shown when the server has it and an MI runtime has registered. */
async function miSearch(ctx, slot) {
  let offered = false;
  try { offered = (await serverHas('/api/v1/mi/artifacts')) && (await get('/runtimes?type=MI&limit=1')).total > 0; } catch { offered = false; }
  if (!offered || !ctx.alive()) return;
  const q = input({ type: 'search', value: new URLSearchParams(location.search).get('q') || '', placeholder: 'Part of the name of an API, proxy service, endpoint, carbon app, …', testid: 'mi-search' });
  const results = h('div', { class: 'mi-search-results', testid: 'mi-search-results', 'aria-live': 'polite' });
  let seq = 0;
  let timer = null;
  const run = async () => {
    if (!ctx.alive()) return;
    const text = q.value.trim();
    history.replaceState(null, '', `/${qs({ q: text })}`);
    const mine = ++seq;
    if (!text) { fill(results); return; }
    fill(results, loading('Searching…'));
    try {
      const limit = 200;
      const { items } = await get(`/mi/artifacts${qs({ q: text, limit })}`);
      if (mine !== seq || !ctx.alive()) return;
      // One row per artifact in an integration and environment; its runtimes together.
      const rows = new Map();
      for (const it of items) {
        const key = [it.project, it.integration, it.environment, it.kind, it.name].join('\u0000');
        if (!rows.has(key)) rows.set(key, { ...it, on: [] });
        rows.get(key).on.push(it);
      }
      const integ = (r) => `/projects/${enc(r.project)}/integrations/${enc(r.integration)}`;
      fill(results,
        table(['Artifact', 'Kind', 'Integration', 'Environment', 'Runtimes'], [...rows.values()].map((r) => h('tr', { testid: `mi-hit-${r.integration}-${r.environment}-${r.kind}-${r.name}` },
          h('td', {}, link(`${integ(r)}/environments/${enc(r.environment)}${qs({ q: r.name })}`, r.name, { title: `${r.name} on the MI artifacts page of ${r.environment}` }),
            r.on.some((x) => x.error) ? h('div', { class: 'bad-text small' }, r.on.find((x) => x.error).error) : null),
          h('td', {}, kindName(r.kind)),
          h('td', {}, link(integ(r), `${r.project} / ${r.integration}`)),
          h('td', {}, r.environment),
          h('td', {}, h('div', { class: 'chips' }, r.on.sort((a, b) => (a.runtimeName || a.runtimeId).localeCompare(b.runtimeName || b.runtimeId)).map((x) => h('span', { class: 'chips' }, link(`/runtimes/${enc(x.runtimeId)}`, x.runtimeName || x.runtimeId.slice(0, 8)),
            x.state ? badge(x.state, x.error ? 'bad' : x.state === 'enabled' || x.state === 'active' ? 'ok' : '') : null)))))),
        { emptyText: `No MI artifact has “${text}” in its name.`, testid: 'mi-search-table' }),
        items.length >= limit ? h('p', { class: 'muted small' }, `The first ${limit} runtimes' matches are shown; type more of the name to narrow.`) : null);
    } catch (e) { if (mine === seq) fill(results, failure(e, run)); }
  };
  q.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(run, 250); });
  const f = field('Name', q);
  fill(slot, card('Find an MI artifact', h('span', { class: 'muted small' }, 'Across the Micro Integrator runtimes you may see'), h('form', { class: 'toolbar tight', role: 'search', onSubmit: (e) => { e.preventDefault(); clearTimeout(timer); run(); } }, f), results));
  f.classList.add('grow');
  slot.hidden = false;
  if (q.value.trim()) run();
}
