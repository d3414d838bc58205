// One integration: a card per environment with its runtimes, Add Runtime
// (a new secret and its Config.toml snippet, shown once), its request
// metrics and latest logs (with observability:view), and the integration's
// secrets with revoke.

import { get, all, post, patch, del, enc } from '../api.js';
import { h, fill, card, link, loading, failure, empty, button, modal, confirm, toast, pageHead, table, badge, timeAgo, when, snippet, field, select, input } from '../ui.js';
import { navigate, can } from '../app.js';
import { liveRefresh } from '../live.js';
import { metricsPanel, recentLogs } from '../observability.js';

export async function render(ctx) {
  const { project: ph, integration: ih } = ctx.params;
  const base = `/projects/${enc(ph)}/integrations/${enc(ih)}`;
  ctx.crumbs([['Projects', '/projects'], [ph, `/projects/${enc(ph)}`], ih]);
  fill(ctx.el, loading());
  let integ, project, envs;
  try {
    [integ, project, envs] = await Promise.all([get(base), get(`/projects/${enc(ph)}`), get(`/projects/${enc(ph)}/environments`)]);
  } catch (e) {
    fill(ctx.el, failure(e, () => render(ctx)));
    return;
  }
  envs = envs.environments;
  ctx.crumbs([['Projects', '/projects'], [project.name, `/projects/${enc(ph)}`], integ.name]);
  const envGrid = h('div', { class: 'grid envs', testid: 'environment-cards' }, loading());
  const secrets = h('div', { testid: 'secrets' }, loading());
  const runtimeNames = new Map();
  let metrics = null;
  let logs = null;
  if (can('observability:view')) {
    const scope = { project: ph, integration: ih };
    metrics = metricsPanel(scope, { environments: envs, byResource: true });
    logs = recentLogs(scope, { runtimeName: (id) => runtimeNames.get(id) });
    ctx.live(() => { metrics.stop(); logs.stop(); });
  }
  fill(ctx.el,
    pageHead(integ.name, [badge(integ.runtimeType, 'accent'), ' ', h('span', { class: 'mono' }, `${ph}/${ih}`), integ.description ? ` — ${integ.description}` : ''],
      can('integration:edit') ? button('Edit', () => editIntegration(integ, ph, () => render(ctx)), { testid: 'edit-integration' }) : null,
      can('integration:manage') ? button('Delete integration', () => deleteIntegration(integ, ph), { kind: 'danger', testid: 'delete-integration' }) : null),
    envGrid,
    metrics?.el,
    logs?.el,
    card('Secrets', h('span', { class: 'muted small' }, 'Runtimes authenticate with these. Key material is never shown again.'), secrets));

  const loadRuntimes = async () => {
    const runtimes = await all('/runtimes', { project: ph, integration: ih });
    // The list has no node info; fetch it for the runtimes shown (few per integration).
    await Promise.all(runtimes.slice(0, 50).map(async (r) => {
      try { r.nodeInfo = (await get(`/runtimes/${enc(r.runtimeId)}`)).nodeInfo; } catch { /* deleted meanwhile */ }
    }));
    if (!ctx.alive()) return;
    for (const r of runtimes) runtimeNames.set(r.runtimeId, r.name || r.runtimeId.slice(0, 8));
    fill(envGrid, envs.length ? envs.map((e) => envCard(e, runtimes.filter((r) => r.environment === e.handle))) : empty('This project has no environments.'));
  };
  const loadSecrets = async () => {
    const list = await all('/secrets', { project: ph, integration: ih });
    if (!ctx.alive()) return;
    fill(secrets, table(['Key id', 'Environment', 'Status', 'Created', 'Expires', 'Bound', ''], list.map((s) => h('tr', { testid: `secret-${s.keyId}` },
      h('td', { class: 'mono' }, s.keyId),
      h('td', {}, s.environment),
      h('td', {}, badge(s.status)),
      h('td', { class: 'muted' }, when(s.createdAt)),
      h('td', { class: 'muted' }, s.expiresAt ? when(s.expiresAt) : 'never'),
      h('td', { class: 'muted' }, s.boundAt ? when(s.boundAt) : '—'),
      h('td', {}, s.status === 'active' ? h('div', { class: 'actions' }, button('Revoke', () => revoke(s), { small: true, kind: 'danger', testid: `revoke-${s.keyId}` })) : null))),
    { emptyText: 'No secrets yet: use Add Runtime on an environment.' }));
  };
  async function revoke(s) {
    if (!(await confirm(`Revoke secret ${s.keyId}?`, 'Runtimes using it are refused from their next request. This cannot be undone.', { submit: 'Revoke' }))) return;
    try { await del(`/secrets/${enc(s.keyId)}`); toast(`Secret ${s.keyId} revoked.`, 'ok'); loadSecrets(); } catch (e) { toast(e.message, 'bad'); }
  }

  function envCard(e, runtimes) {
    const running = runtimes.filter((r) => r.status === 'RUNNING').length;
    return h('section', { class: 'card', testid: `env-card-${e.handle}` },
      h('div', { class: 'card-head' },
        h('div', {}, h('h2', {}, e.name, ' ', h('span', { class: 'mono muted small' }, e.handle)), h('div', { class: 'chips' }, e.critical ? badge('critical', 'warn') : null, badge(`${running}/${runtimes.length} running`, running ? 'ok' : ''))),
        h('div', { class: 'actions' },
          link(`${base}/environments/${enc(e.handle)}`, 'Artifacts', { class: 'btn small', testid: `artifacts-${e.handle}` }),
          button('Add Runtime', () => addRuntime(e), { kind: 'primary', small: true, testid: `add-runtime-${e.handle}` }))),
      runtimes.length
        ? table(['Runtime', 'Status', 'Last heartbeat', 'Node'], runtimes.map((r) => h('tr', { testid: `runtime-row-${r.name || r.runtimeId}` },
            h('td', {}, link(`/runtimes/${enc(r.runtimeId)}`, r.name || r.runtimeId, { testid: `runtime-link-${r.name || r.runtimeId}` }), h('div', { class: 'mono muted small' }, r.runtimeId.slice(0, 8))),
            h('td', {}, badge(r.status, undefined, `runtime-status-${r.name || r.runtimeId}`)),
            h('td', {}, 'last heartbeat ', timeAgo(r.lastHeartbeat)),
            h('td', {}, nodeText(r)))))
        : empty('No runtimes in this environment.', 'Add Runtime creates a secret and the Config.toml lines for a new node.'));
  }

  async function addRuntime(e) {
    const expiry = field('Secret expires', select([['', 'Never'], ['30d', 'In 30 days'], ['90d', 'In 90 days'], ['365d', 'In a year']], { testid: 'secret-expiry' }));
    let made = null;
    await modal({
      title: `Add a runtime to ${e.name}`, submit: 'Generate secret', testid: 'add-runtime-modal',
      body: [h('p', {}, 'A new secret bound to ', h('strong', {}, `${ph}/${ih}`), ' in ', h('strong', {}, e.handle), ' lets runtimes register. Every node of this integration can share it.'), expiry],
      onSubmit: async () => {
        made = await post('/secrets', { environment: e.handle, project: ph, integration: ih, expiresIn: expiry.input.value || undefined });
      },
    });
    if (!made) return;
    loadSecrets();
    await modal({
      title: 'Runtime secret created', wide: true, testid: 'secret-modal',
      body: [
        h('div', { class: 'callout warn', role: 'alert', testid: 'secret-warning' }, h('strong', {}, 'Copy it now: this secret is shown only once. '), 'icpd stores it encrypted and cannot show it again; if it is lost, revoke it and generate another.'),
        h('p', {}, 'Add these lines to the runtime\'s ', h('code', {}, 'Config.toml'), ':'),
        snippet(made.configToml, 'config-snippet'),
        h('p', { class: 'muted small' }, 'Key id ', h('code', {}, made.keyId), '. The runtime will appear on this page when its first heartbeat arrives.'),
      ],
    });
  }

  try { await Promise.all([loadRuntimes(), loadSecrets()]); } catch (e) { fill(envGrid, failure(e, () => render(ctx))); }
  // Now that runtime names are known, show them instead of ids.
  if (runtimeNames.size) logs?.reload();
  ctx.live(liveRefresh(loadRuntimes, (t, d) => t.startsWith('runtime') && (!d?.integration || (d.integration === ih && d.project === ph))));
}

async function deleteIntegration(integ, ph) {
  if (!(await confirm(`Delete ${integ.name}?`, 'Only possible without RUNNING runtimes. Its OFFLINE runtimes are removed and its secrets revoked.'))) return;
  try { await del(`/projects/${enc(ph)}/integrations/${enc(integ.handle)}`); toast('Integration deleted.', 'ok'); navigate(`/projects/${enc(ph)}`); } catch (e) { toast(e.message, 'bad'); }
}


function nodeText(r) {
  const n = r.nodeInfo || {};
  const platform = [n.platformName, n.platformVersion].filter(Boolean).join(' ');
  const os = [n.osName, n.osVersion].filter(Boolean).join(' ');
  return h('div', { class: 'node', testid: `runtime-node-${r.name || r.runtimeId}` },
    h('div', {}, [r.runtimeType, r.version].filter(Boolean).join(' '), platform ? ` · ${platform}` : ''),
    os ? h('div', {}, os) : null);
}

async function editIntegration(integ, ph, done) {
  const name = field('Name', input({ required: true, value: integ.name }), `The handle stays ${integ.handle}.`);
  const type = field('Runtime type', select([['BI', 'BI'], ['MI', 'MI']], { value: integ.runtimeType }));
  const desc = field('Description', h('textarea', {}, integ.description || ''));
  if (await modal({ title: `Edit ${integ.name}`, body: [name, type, desc], onSubmit: () => patch(`/projects/${enc(ph)}/integrations/${enc(integ.handle)}`, { name: name.input.value.trim(), runtimeType: type.input.value, description: desc.input.value.trim() }) })) {
    toast('Integration saved.', 'ok');
    done();
  }
}
