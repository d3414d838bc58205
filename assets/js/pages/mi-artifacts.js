// The MI artifacts of an integration in one environment (the artifacts
// route of an integration whose runtimeType is MI; artifacts.js hands
// over): a section per artifact kind in MI's order with counts; per
// artifact its carbon app, state (one badge when the replicas agree, one
// per replica and "replicas differ" when not), tracing and statistics,
// errors in red (faulty carbon apps and what they carry), in sync /
// converging, and an expandable detail as MI reported it. When the server
// offers the routes (asked of its OpenAPI document): Enable / Disable,
// tracing and statistics switches, Trigger for tasks, and logger levels.
// A filter narrows the artifacts by name across kinds (kept in ?q=).

import { get, put, post, qs, enc } from '../api.js';
import { h, fill, card, link, loading, failure, empty, pageHead, table, badge, select, button, toast, field, input } from '../ui.js';
import { can } from '../app.js';
import { liveRefresh } from '../live.js';
import { kindSections, faultyApps, artifactError, kindName, byKind, convergeBadge, miRoutes, LEVELS } from '../mi.js';

/** How often the view is re-read while something converges (heartbeats carry the outcome; no event says so). */
const CONVERGING_MS = 2000;

export async function render(ctx, integ) {
  const { project: ph, integration: ih, env } = ctx.params;
  const base = `/projects/${enc(ph)}/integrations/${enc(ih)}`;
  const api = `${base}/environments/${enc(env)}`;
  ctx.crumbs([['Projects', '/projects'], [ph, `/projects/${enc(ph)}`], [integ.name, base], env]);
  fill(ctx.el, loading());
  const routes = await miRoutes();
  if (!ctx.alive()) return;
  const manage = can('integration:manage');
  const offered = manage && (routes.artifact || routes.trigger || routes.logger);

  const summary = h('div', { class: 'chips', testid: 'mi-summary' });
  const filter = input({ type: 'search', value: new URLSearchParams(location.search).get('q') || '', placeholder: 'Part of a name', testid: 'mi-filter' });
  const target = select([['', 'All runtimes']], { testid: 'mi-target' });
  const filterField = field('Filter artifacts by name', filter);
  filterField.classList.add('grow');
  const toolbar = h('div', { class: 'toolbar mi-toolbar', role: 'search' }, filterField, offered ? field('Apply changes to', target) : null);
  const body = h('div', { class: 'stack' }, loading());
  fill(ctx.el,
    pageHead(['MI artifacts in ', env], [badge('MI', 'accent'), ' ', h('span', { class: 'mono' }, `${ph}/${ih}`), ' — what the Micro Integrator runtimes report, and what you asked of them.'], summary,
      link(base, 'Back to integration', { class: 'btn' })),
    toolbar, body);

  const expanded = new Set(); // kind/name of the open details, kept across redraws
  let names = (id) => id.slice(0, 8);
  let busy = false;
  let fast = null;
  ctx.live(() => clearTimeout(fast));
  const withTarget = (b) => (target.value ? { ...b, runtimeIds: [target.value] } : b);

  async function send(what, call) {
    if (busy) return;
    busy = true;
    try {
      const r = await call();
      const n = r?.commands?.length;
      toast(`${what}${n === undefined ? '' : `: ${n} command${n === 1 ? '' : 's'} issued`}.`, 'ok');
      await load();
    } catch (e) {
      toast(e.status === 403 ? `Refused: ${e.message}` : e.message, 'bad');
    } finally { busy = false; }
  }
  const setField = (a, f, value) => send(`${kindName(a.kind)} ${a.name}: ${f} ${value}`,
    () => put(`${api}/mi/artifacts/${enc(a.kind)}/${enc(a.name)}`, withTarget({ [f]: value })));
  const act = !manage ? null : {
    ...(routes.artifact ? { state: (a, v) => setField(a, 'state', v), tracing: (a, v) => setField(a, 'tracing', v), statistics: (a, v) => setField(a, 'statistics', v) } : {}),
    ...(routes.trigger ? { trigger: (a) => send(`Task ${a.name} triggered`, () => post(`${api}/mi/tasks/${enc(a.name)}/trigger`, withTarget({}))) } : {}),
  };

  const noMatch = h('div', { hidden: true, testid: 'mi-no-match' });
  const applyFilter = () => {
    const q = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const sec of body.querySelectorAll('section[data-kind]')) {
      let n = 0;
      let total = 0;
      for (const tr of sec.querySelectorAll('tr[data-name]')) {
        total += 1;
        const hit = !q || tr.dataset.name.includes(q);
        tr.hidden = !hit;
        if (tr.nextElementSibling?.classList.contains('mi-detail')) tr.nextElementSibling.hidden = !hit;
        if (hit) n += 1;
      }
      sec.hidden = !n;
      const count = sec.querySelector('.mi-count');
      if (count) count.textContent = q ? `${n} of ${total}` : String(total);
      const jump = body.querySelector(`[data-jump="${sec.dataset.kind}"]`);
      if (jump) jump.hidden = !n;
      shown += n;
    }
    fill(noMatch, q && !shown ? empty(`No MI artifact here has “${filter.value.trim()}” in its name.`) : null);
    noMatch.hidden = !(q && !shown);
  };
  filter.addEventListener('input', () => {
    const q = filter.value.trim();
    history.replaceState(null, '', `${location.pathname}${qs({ q })}`);
    applyFilter();
  });

  const load = async () => {
    const view = await get(`${api}/mi/artifacts`);
    if (!ctx.alive()) return;
    const byId = new Map(view.runtimes.map((r) => [r.runtimeId, r.name || r.runtimeId.slice(0, 8)]));
    names = (id) => byId.get(id) || id.slice(0, 8);
    const chosen = target.value;
    fill(target, h('option', { value: '' }, 'All runtimes'), view.runtimes.map((r) => h('option', { value: r.runtimeId }, `Only ${names(r.runtimeId)} (${r.status})`)));
    target.value = view.runtimes.some((r) => r.runtimeId === chosen) ? chosen : '';
    const faulty = faultyApps(view.artifacts);
    const errors = view.artifacts.filter((a) => artifactError(a, faulty));
    fill(summary,
      view.runtimes.length ? convergeBadge(view.inSync, 'mi-in-sync') : null,
      badge(`${view.runtimes.length} runtime${view.runtimes.length === 1 ? '' : 's'}`, 'accent'),
      badge(`${view.artifacts.length} artifact${view.artifacts.length === 1 ? '' : 's'}`),
      errors.length ? badge(`${errors.length} faulty`, 'bad', 'mi-faulty-count') : null);
    // Keep the keyboard where it was across a redraw.
    const focused = body.contains(document.activeElement) ? document.activeElement.dataset.testid : null;
    if (!view.runtimes.length) {
      fill(body, card(null, null, empty('No MI runtime has reported here yet.', 'Start a Micro Integrator with a secret from Add Runtime on the integration page ([icp_config] in deployment.toml).')));
    } else {
      fill(body,
        card('Runtimes', null, h('div', { class: 'mi-runtimes', testid: 'mi-runtimes' }, view.runtimes.map((r) => h('div', { class: 'mi-runtime', testid: `mi-runtime-${r.name || r.runtimeId}` },
          link(`/runtimes/${enc(r.runtimeId)}`, r.name || r.runtimeId), badge(r.status),
          r.management ? h('span', { class: 'mono small muted', title: 'Management API' }, `${r.management.host}:${r.management.port}`) : h('span', { class: 'muted small' }, 'no Management API address'),
          r.managementWarning ? h('span', { class: 'badge warn', title: r.managementWarning, testid: 'mi-address-warning' }, 'address doubtful') : null,
          r.inSync ? null : badge(r.pendingCommands ? `${r.pendingCommands} pending` : 'converging', 'warn'))))),
        errors.length ? h('div', { class: 'callout bad', role: 'alert', testid: 'mi-faults' },
          h('strong', {}, `${errors.length} faulty artifact${errors.length === 1 ? '' : 's'}`),
          h('ul', { class: 'plain' }, errors.map((a) => h('li', {}, h('strong', {}, a.name), ` (${kindName(a.kind)}): `, artifactError(a, faulty))))) : null,
        view.artifacts.length ? h('nav', { class: 'chips mi-jump', 'aria-label': 'Artifact kinds' }, byKind(view.artifacts).map(([kind, label, items]) => h('button', {
          type: 'button', class: `badge mi-jump-btn ${items.some((a) => artifactError(a, faulty)) ? 'bad' : ''}`, 'data-jump': kind, testid: `mi-jump-${kind}`,
          onClick: () => body.querySelector(`section[data-kind="${kind}"]`)?.scrollIntoView({ block: 'start' }),
        }, `${label} ${items.length}`))) : null,
        noMatch,
        view.artifacts.length
          ? kindSections(view.artifacts, { names, faulty, expanded, sync: true, act })
          : card(null, null, empty('The runtimes report no artifacts.', 'Deploy a carbon app (CApp) to the Micro Integrator.')),
        card('Loggers', routes.logger && manage ? h('span', { class: 'muted small' }, 'Levels as icpd last read them from each runtime') : null,
          table(['Logger', 'Level', 'Desired', 'Sync', ...(routes.logger && manage ? ['Set level'] : [])], view.loggers.map(loggerRow), { emptyText: 'No loggers read from the runtimes yet.', testid: 'mi-loggers' })));
      applyFilter();
    }
    if (focused) body.querySelector(`[data-testid="${CSS.escape(focused)}"]`)?.focus();
    // While replicas converge, re-read soon: their next heartbeat carries the outcome.
    clearTimeout(fast);
    if (!view.inSync) fast = setTimeout(quiet, CONVERGING_MS);
  };

  function loggerRow(l) {
    const rs = l.runtimes || [];
    const agree = rs.every((r) => r.level === rs[0]?.level);
    const current = l.desiredLevel || (agree ? rs[0]?.level : null) || 'INFO';
    const sel = select(LEVELS.includes(current) ? LEVELS : [current, ...LEVELS], { value: current, 'aria-label': `Level of ${l.logger}`, testid: `mi-logger-level-${l.logger}` });
    return h('tr', { testid: `mi-logger-${l.logger}` },
      h('td', { class: 'mono' }, l.logger),
      h('td', { testid: `mi-logger-levels-${l.logger}` }, agree ? badge(rs[0]?.level || '—', 'info') : h('div', { class: 'chips' }, rs.map((r) => badge(`${names(r.runtimeId)}: ${r.level}`, 'info')))),
      h('td', {}, l.desiredLevel || h('span', { class: 'muted' }, 'as reported')),
      h('td', {}, convergeBadge(l.inSync, `mi-logger-sync-${l.logger}`)),
      routes.logger && manage ? h('td', {}, h('div', { class: 'actions' }, sel,
        button('Apply', () => send(`Logger ${l.logger} → ${sel.value}`, () => put(`${api}/mi/loggers/${enc(l.logger)}`, withTarget({ level: sel.value }))), { small: true, testid: `mi-logger-apply-${l.logger}` }))) : null);
  }

  // Do not redraw under an open level picker or a request in flight.
  const quiet = async () => {
    if (busy || document.hidden || (document.activeElement?.tagName === 'SELECT' && body.contains(document.activeElement))) {
      clearTimeout(fast);
      fast = setTimeout(quiet, CONVERGING_MS);
      return;
    }
    try { await load(); } catch { /* the next refresh tries again; the first load shows errors */ }
  };
  try { await load(); } catch (e) { fill(body, failure(e, () => render(ctx, integ))); return; }
  ctx.live(liveRefresh(quiet, (t, d) => !d?.integration || (d.integration === ih && d.project === ph && (!d.environment || d.environment === env))));
}
