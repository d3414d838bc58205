// One runtime: identity, node info, request metrics and latest logs (with
// observability:view), artifacts, log levels and its status history as a
// timeline. An MI runtime shows its node (platform, Java, memory, carbon
// home, OS), its Management API address and its artifacts by kind
// (read-only: changes are made for the integration, on its MI artifacts
// page). When the server offers its contracts route, a Contracts tab
// (`?tab=contracts`, contracts.js) shows the runtime's OpenAPI definitions
// with Try it (for MI: a form for its APIs); that tab is built once and
// kept, so live refreshes leave its open operations and forms alone.

import { get, del, enc } from '../api.js';
import { h, fill, card, link, loading, failure, button, pageHead, table, badge, timeAgo, when, confirm, toast } from '../ui.js';
import { navigate, can } from '../app.js';
import { liveRefresh } from '../live.js';
import { metricsPanel, recentLogs } from '../observability.js';
import { nodeCard, kindSections, ownArtifacts } from '../mi.js';
import { serverOffers } from '../pipeline.js';
import { contractsPanel } from '../contracts.js';

const NODE_LABELS = { osName: 'OS', osVersion: 'OS version', platformName: 'Platform', platformVersion: 'Platform version', ballerinaHome: 'Ballerina home', javaVersion: 'Java', carbonHome: 'Carbon home' };

export async function render(ctx) {
  const id = ctx.params.runtime;
  ctx.crumbs([['Runtimes', '/runtimes'], id.slice(0, 8)]);
  fill(ctx.el, loading());
  // Built once and moved into each re-render, so charts keep their range and
  // hover state across live refreshes.
  let metrics = null;
  let logs = null;
  if (can('observability:view')) {
    metrics = metricsPanel({ runtime: id });
    logs = recentLogs({ runtime: id });
    ctx.live(() => { metrics.stop(); logs.stop(); });
  }
  const expanded = new Set(); // MI artifact details left open across refreshes
  const contracts = (await serverOffers('get', '/api/v1/runtimes/{}/openapi')) ? contractsPanel(id) : null;
  if (contracts) ctx.live(() => contracts.stop());
  let tab = contracts && new URLSearchParams(location.search).get('tab') === 'contracts' ? 'contracts' : 'overview';
  const head = h('div');
  const tabs = contracts ? h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Runtime' }) : null;
  const panel = h('div', { class: 'stack', role: contracts ? 'tabpanel' : null, id: 'runtime-panel', testid: 'runtime-panel' });
  let last = null;
  const drawTabs = () => fill(tabs, [['overview', 'Overview'], ['contracts', 'Contracts']].map(([k, t]) => h('button', {
    type: 'button', role: 'tab', 'aria-selected': String(k === tab), 'aria-controls': 'runtime-panel', testid: `runtime-tab-${k}`,
    onClick: () => {
      if (tab === k) return;
      tab = k;
      history.replaceState(null, '', `${location.pathname}${k === 'overview' ? '' : `?tab=${k}`}`);
      drawTabs();
      if (last) draw(last);
    },
  }, t)));
  if (tabs) drawTabs();
  const load = async () => {
    const r = await get(`/runtimes/${enc(id)}`);
    if (!ctx.alive()) return;
    last = r;
    draw(r);
  };
  const draw = (r) => {
    ctx.crumbs([['Runtimes', '/runtimes'], r.name || id]);
    const integ = `/projects/${enc(r.project)}/integrations/${enc(r.integration)}`;
    const art = r.artifacts || {};
    const kv = (pairs) => h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
    const history = [...(r.statusHistory || [])].reverse();
    const isMi = r.runtimeType === 'MI';
    const miArtifacts = isMi ? ownArtifacts(r) : [];
    const names = () => r.name || r.runtimeId.slice(0, 8);
    fill(head,
      pageHead([r.name || r.runtimeId, ' ', badge(r.status, undefined, 'runtime-detail-status')], h('span', { class: 'mono' }, r.runtimeId),
        link(`${integ}/environments/${enc(r.environment)}`, isMi ? 'MI artifacts of the integration' : 'Artifacts and commands', { class: 'btn' }),
        button('Delete', () => remove(r), { kind: 'danger', testid: 'delete-runtime' })));
    if (!ctx.el.contains(panel)) fill(ctx.el, head, tabs, panel);
    contracts?.update(r);
    if (tab === 'contracts') {
      // Moved in only when missing: moving it would drop the focus of a form being typed in.
      if (panel.firstChild !== contracts.el || panel.childNodes.length !== 1) fill(panel, contracts.el);
      return;
    }
    fill(panel,
      metrics?.el,
      h('div', { class: 'split' },
        h('div', { class: 'stack' },
          h('div', { class: 'grid two' },
            card('Runtime', null, kv([
              ['Integration', link(integ, `${r.project} / ${r.integration}`)],
              ['Environment', r.environment],
              ['Type', r.runtimeType],
              ['Version', r.version],
              ['Deployment record', r.deployedVersion ? [r.deployedVersion, r.versionMismatch ? [' ', h('span', { class: 'badge warn', testid: 'runtime-version-mismatch', title: `It reports ${r.version || 'no version'}` }, 'takes effect after restart')] : null] : null],
              ['Configuration', r.currentConfigRevision != null || r.configRevision != null ? [r.configRevision != null ? `fetched r${r.configRevision} ` : 'never fetched ', r.configFetchedAt ? timeAgo(r.configFetchedAt) : null,
                r.currentConfigRevision != null ? ` · current r${r.currentConfigRevision}` : null,
                r.configOutdated ? [' ', h('span', { class: 'badge warn', testid: 'runtime-config-outdated' }, 'takes effect after restart')] : null] : null],
              ['Registered', when(r.registeredAt)],
              ['Last heartbeat', timeAgo(r.lastHeartbeat, { testid: 'runtime-last-heartbeat' })],
              ['Secret', r.secretKeyId ? h('code', {}, r.secretKeyId) : null],
              isMi ? ['Management API', r.management ? h('span', { class: 'mono', testid: 'runtime-management' }, `https://${r.management.host}:${r.management.port}`) : null] : null,
            ])),
            isMi ? card('Node', null, nodeCard(r.nodeInfo)) : card('Node', null, r.nodeInfo ? kv(Object.entries(r.nodeInfo).map(([k, v]) => [NODE_LABELS[k] || k.replace(/([A-Z])/g, ' $1').replace(/^./, (c) => c.toUpperCase()), v === null ? '—' : String(v)])) : h('p', { class: 'muted' }, 'Not reported.'))),
          logs?.el,
          isMi ? null : card('Listeners', null, table(['Listener', 'Protocol', 'Address', 'State'], (art.listeners || []).map((l) => h('tr', {},
            h('td', {}, h('strong', {}, l.name), h('div', { class: 'muted small mono' }, l.package)), h('td', {}, l.protocol), h('td', { class: 'mono' }, `${l.host}:${l.port}`), h('td', {}, badge(l.state, l.state === 'enabled' ? 'ok' : 'bad')))), { emptyText: 'No listeners reported.' })),
          isMi ? null : card('Services', null, table(['Service', 'Base path', 'Listeners', 'Resources', 'State'], (art.services || []).map((s) => h('tr', {},
            h('td', {}, h('strong', {}, s.name), h('div', { class: 'muted small mono' }, s.package)), h('td', { class: 'mono' }, s.basePath),
            h('td', {}, h('div', { class: 'chips' }, (s.listeners || []).map((l) => badge(typeof l === 'string' ? l : l.name, 'info')))),
            h('td', {}, h('div', { class: 'resources' }, (s.resources || []).map((x) => h('div', { class: 'mono' }, h('span', { class: 'method' }, (x.methods || []).join(' ')), x.url)))),
            h('td', {}, badge(s.state, s.state === 'enabled' ? 'ok' : 'bad')))), { emptyText: 'No services reported.' })),
          card('Log levels', null, table(['Component', 'Level'], Object.entries(r.logLevels || {}).map(([c, l]) => h('tr', {}, h('td', { class: 'mono' }, c), h('td', {}, badge(l, 'info')))), { emptyText: 'No loggers reported.' }))),
        card('Status history', null, history.length
          ? h('ol', { class: 'timeline', testid: 'status-timeline' }, history.map((e) => h('li', { class: e.status === 'RUNNING' ? 'ok' : 'bad' },
              h('div', {}, h('strong', {}, e.status), e.reason ? h('span', { class: 'muted' }, ` — ${e.reason}`) : null),
              h('div', { class: 'when' }, when(e.at), ' · ', timeAgo(e.at)))))
          : h('p', { class: 'muted' }, 'No transitions recorded.'))),
      isMi ? h('div', { class: 'stack', testid: 'runtime-mi-artifacts' }, miArtifacts.length
        ? kindSections(miArtifacts, { names, expanded })
        : card('MI artifacts', null, h('p', { class: 'muted' }, 'The runtime reports no artifacts.'))) : null);
  };
  try { await load(); } catch (e) { fill(ctx.el, failure(e, () => render(ctx))); return; }
  ctx.live(liveRefresh(load, (t, d) => !d?.runtimeId || d.runtimeId === id));
}

async function remove(r) {
  const revoke = h('input', { type: 'checkbox', id: 'revoke-secret', testid: 'revoke-secret' });
  if (!(await confirm(`Delete runtime ${r.name || r.runtimeId}?`, 'It disappears from the console; if it is still running it registers again with its next full heartbeat.',
    { extra: h('label', { class: 'check', for: 'revoke-secret' }, revoke, 'Also revoke its secret (if no other runtime uses it)') }))) return;
  try {
    await del(`/runtimes/${enc(r.runtimeId)}${revoke.checked ? '?revokeSecret=true' : ''}`);
    toast('Runtime deleted.', 'ok');
    navigate('/runtimes');
  } catch (e) { toast(e.message, 'bad'); }
}
