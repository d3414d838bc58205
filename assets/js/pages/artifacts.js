// Artifacts of an integration in one environment: services with resources
// and listeners, listeners with start/stop and an in-sync indicator that
// settles live, loggers with a level editor, and the command log. An MI
// integration's artifacts are mi-artifacts.js's.

import { get, put, enc } from '../api.js';
import { h, fill, card, link, loading, failure, button, pageHead, table, badge, syncBadge, select, toast, when, empty } from '../ui.js';
import { liveRefresh } from '../live.js';

const LEVELS = ['DEBUG', 'INFO', 'WARN', 'ERROR'];

export async function render(ctx) {
  const { project: ph, integration: ih, env } = ctx.params;
  const base = `/projects/${enc(ph)}/integrations/${enc(ih)}`;
  const api = `${base}/environments/${enc(env)}`;
  ctx.crumbs([['Projects', '/projects'], [ph, `/projects/${enc(ph)}`], [ih, base], env]);
  // A Micro Integrator integration has its own view of its artifacts.
  fill(ctx.el, loading());
  let integ;
  try { integ = await get(base); } catch (e) { fill(ctx.el, failure(e, () => render(ctx))); return; }
  if (!ctx.alive()) return;
  if (integ.runtimeType === 'MI') {
    const mi = await import('./mi-artifacts.js');
    if (ctx.alive()) await mi.render(ctx, integ);
    return;
  }
  const summary = h('div', { class: 'chips', testid: 'artifacts-summary' });
  // Which runtimes start/stop and level changes go to: all of them (the
  // integration's desired state) or one chosen runtime. Kept outside the
  // redrawn body so a live refresh does not reset the choice.
  const targetSelect = select([['', 'All runtimes']], { 'aria-label': 'Apply commands to', testid: 'command-target' });
  const targetBar = h('label', { class: 'target-bar' }, 'Apply commands to', targetSelect);
  const body = h('div', { class: 'stack' }, loading());
  fill(ctx.el, pageHead(`Artifacts in ${env}`, [h('span', { class: 'mono' }, `${ph}/${ih}`), ' — what the runtimes report, and what you asked them to do.'], summary, link(base, 'Back to integration', { class: 'btn' })), targetBar, body);

  let names = {};
  const load = async () => {
    const [view, log] = await Promise.all([get(`${api}/artifacts`), get(`${api}/commands?limit=15`)]);
    if (!ctx.alive()) return;
    names = Object.fromEntries(view.runtimes.map((r) => [r.runtimeId, r.name || r.runtimeId.slice(0, 8)]));
    const chosen = targetSelect.value;
    fill(targetSelect, h('option', { value: '' }, 'All runtimes'),
      view.runtimes.map((r) => h('option', { value: r.runtimeId }, `Only ${names[r.runtimeId]} (${r.status})`)));
    targetSelect.value = view.runtimes.some((r) => r.runtimeId === chosen) ? chosen : '';
    fill(summary, syncBadge(view.inSync, 'artifacts-in-sync'), badge(`${view.runtimes.length} runtime${view.runtimes.length === 1 ? '' : 's'}`, 'accent'));
    if (!view.runtimes.length && !view.listeners.length) {
      fill(body, card(null, null, empty('No runtime has reported artifacts here yet.', 'Start a runtime with a secret from Add Runtime.')));
      return;
    }
    fill(body,
      card('Runtimes', null, h('div', { class: 'chips' }, view.runtimes.map((r) => h('span', { class: 'chips' }, link(`/runtimes/${enc(r.runtimeId)}`, r.name || r.runtimeId), badge(r.status), r.inSync ? null : badge(`${r.pendingCommands} pending`, 'warn')))) ),
      card('Listeners', null, table(['Listener', 'Protocol', 'Address', 'State per runtime', 'Desired', 'Sync', ''], view.listeners.map(listenerRow), { testid: 'listeners' })),
      card('Services', null, table(['Service', 'Base path', 'Listeners', 'Resources', 'State', 'Package'], view.services.map((s) => h('tr', { testid: `service-${s.name}` },
        h('td', {}, h('strong', {}, s.name)),
        h('td', { class: 'mono' }, s.basePath),
        h('td', {}, h('div', { class: 'chips' }, s.listeners.map((l) => badge(l, 'info')))),
        h('td', {}, h('div', { class: 'resources' }, (s.resources || []).map((r) => h('div', { class: 'mono' }, h('span', { class: 'method' }, (r.methods || []).join(' ')), r.url)))),
        h('td', {}, badge(s.state, s.state === 'enabled' ? 'ok' : 'bad')),
        h('td', { class: 'mono muted small' }, s.package))), { emptyText: 'No services.' })),
      card('Loggers', null, table(['Component', 'Level per runtime', 'Desired', 'Sync', 'Set level'], view.loggers.map(loggerRow), { emptyText: 'No loggers reported.' })),
      view.main ? card('Main', null, h('dl', { class: 'kv' }, h('dt', {}, 'Package'), h('dd', { class: 'mono' }, `${view.main.packageOrg}/${view.main.packageName}:${view.main.packageVersion}`))) : null,
      card('Command log', null, table(['Issued', 'Runtime', 'Action', 'Target', 'Status', 'Attempts', 'By'], log.items.map((c) => h('tr', {},
        h('td', { class: 'muted' }, when(c.issuedAt)),
        h('td', {}, names[c.runtimeId] || c.runtimeId.slice(0, 8)),
        h('td', {}, c.action),
        h('td', { class: 'mono' }, c.target, c.value ? ` → ${c.value}` : ''),
        h('td', {}, badge(c.status)),
        h('td', { class: 'num' }, c.attempts),
        h('td', { class: 'muted' }, c.issuedBy))), { emptyText: 'No commands issued yet.', testid: 'command-log' })));
  };

  function listenerRow(l) {
    const enabled = (l.runtimes || []).some((r) => r.state === 'enabled');
    return h('tr', { testid: `listener-${l.name}` },
      h('td', {}, h('strong', {}, l.name), h('div', { class: 'muted small mono' }, l.package)),
      h('td', {}, l.protocol),
      h('td', { class: 'mono' }, `${l.host}:${l.port}`),
      h('td', { testid: `listener-state-${l.name}` }, h('div', { class: 'chips' }, (l.runtimes || []).map((r) => badge(`${names[r.runtimeId] || r.runtimeId.slice(0, 8)}: ${r.state}`, r.state === 'enabled' ? 'ok' : 'bad')))),
      h('td', {}, l.desiredState || h('span', { class: 'muted' }, 'as reported')),
      h('td', {}, syncBadge(l.inSync, `listener-sync-${l.name}`)),
      h('td', {}, h('div', { class: 'actions' },
        button('Start', () => setListener(l, 'enabled'), { small: true, testid: `listener-start-${l.name}`, disabled: l.desiredState === 'enabled' || (!l.desiredState && enabled) }),
        button('Stop', () => setListener(l, 'disabled'), { small: true, kind: 'danger', testid: `listener-stop-${l.name}`, disabled: l.desiredState === 'disabled' }))));
  }

  function loggerRow(l) {
    const current = l.desiredLevel || (l.runtimes?.[0]?.level) || 'INFO';
    const sel = select(LEVELS, { value: current, 'aria-label': `Level of ${l.component}`, testid: `logger-level-${l.component}` });
    return h('tr', { testid: `logger-${l.component}` },
      h('td', { class: 'mono' }, l.component),
      h('td', {}, h('div', { class: 'chips' }, (l.runtimes || []).map((r) => badge(`${names[r.runtimeId] || r.runtimeId.slice(0, 8)}: ${r.level}`, 'info')))),
      h('td', {}, l.desiredLevel || h('span', { class: 'muted' }, 'as reported')),
      h('td', {}, syncBadge(l.inSync, `logger-sync-${l.component}`)),
      h('td', {}, h('div', { class: 'actions' }, sel, button('Apply', () => setLogger(l, sel.value), { small: true, testid: `logger-apply-${l.component}` }))));
  }

  function withTarget(body) {
    return targetSelect.value ? { ...body, runtimeIds: [targetSelect.value] } : body;
  }

  async function setListener(l, state) {
    try {
      const r = await put(`${api}/listeners/${enc(l.name)}`, withTarget({ state }));
      toast(`${state === 'enabled' ? 'Start' : 'Stop'} ${l.name}: ${r.commands?.length ?? 0} command(s) issued.`, 'ok');
      await load();
    } catch (e) { toast(e.message, 'bad'); }
  }

  async function setLogger(l, level) {
    try {
      const r = await put(`${api}/loggers/${enc(l.component)}`, withTarget({ level }));
      toast(`${l.component} → ${level}: ${r.commands?.length ?? 0} command(s) issued.`, 'ok');
      await load();
    } catch (e) { toast(e.message, 'bad'); }
  }

  try { await load(); } catch (e) { fill(body, failure(e, () => render(ctx))); return; }
  // Do not redraw under an open level picker.
  const quiet = () => (document.activeElement?.tagName === 'SELECT' && body.contains(document.activeElement) ? null : load());
  ctx.live(liveRefresh(quiet, (t, d) => !d?.integration || (d.integration === ih && d.project === ph)));
}
