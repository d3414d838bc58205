// Overview: counts (with the promotions waiting for the user's decision),
// runtimes per environment by status, projects.

import { get, all, qs, enc } from '../api.js';
import { h, fill, card, link, loading, failure, empty, badge, timeAgo, table } from '../ui.js';
import { liveRefresh } from '../live.js';
import { refreshAwaiting } from '../app.js';

export async function render(ctx) {
  ctx.crumbs(['Overview']);
  const body = h('div', { class: 'stack', testid: 'overview' });
  fill(ctx.el, h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Overview'), h('p', {}, 'Your projects and the runtimes reporting to this control plane.'))), body);
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
