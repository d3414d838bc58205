// One integration: a card per environment of the project's pipeline with its
// deployment record, configuration (typed values; secrets only as "set"),
// Promote to the next environment, and its runtimes (flagged when they
// still run another version or an older configuration revision); Add
// Runtime (a new secret and its Config.toml snippet, shown once); the
// promotions of the integration; its request metrics and latest logs (with
// observability:view), and the integration's secrets with revoke. For an
// MI integration each environment also sums up its MI artifacts by kind,
// flags faulty ones, and links to the MI artifacts page.

import { get, all, post, patch, del, enc } from '../api.js';
import { h, fill, card, link, loading, failure, empty, button, modal, confirm, toast, pageHead, table, badge, timeAgo, when, snippet, field, select, input } from '../ui.js';
import { navigate, can } from '../app.js';
import { liveRefresh } from '../live.js';
import { metricsPanel, recentLogs } from '../observability.js';
import { deploymentBlock, configBlock, recordDeployment, deploymentHistory, editConfig, configHistory, rolloutCell, promote, promotionTable, serverHas } from '../pipeline.js';
import { kindChips, faultyApps, artifactError, kindName, convergeBadge } from '../mi.js';

export async function render(ctx) {
  const { project: ph, integration: ih } = ctx.params;
  const base = `/projects/${enc(ph)}/integrations/${enc(ih)}`;
  ctx.crumbs([['Projects', '/projects'], [ph, `/projects/${enc(ph)}`], ih]);
  fill(ctx.el, loading());
  let integ, project, envs, orgEnvs, promotions;
  try {
    [integ, project, envs, orgEnvs, promotions] = await Promise.all([get(base), get(`/projects/${enc(ph)}`), get(`/projects/${enc(ph)}/environments`), all('/environments'),
      serverHas('/api/v1/projects/{project}/integrations/{integration}/promotions')]);
  } catch (e) {
    fill(ctx.el, failure(e, () => render(ctx)));
    return;
  }
  envs = envs.environments;
  const mi = integ.runtimeType === 'MI' && await serverHas('/api/v1/projects/{project}/integrations/{integration}/environments/{env}/mi/artifacts');
  const miViews = new Map(); // env handle -> the MI artifacts view (environments with runtimes only)
  // The pipeline's stages carry the environment; requiredApprovals is on the organization's list.
  const orgEnv = new Map(orgEnvs.map((e) => [e.handle, e]));
  envs = envs.map((s) => ({ ...(s.environment || s), ...orgEnv.get((s.environment || s).handle), next: s.next ?? null }));
  const envByHandle = new Map(envs.map((e) => [e.handle, e]));
  const state = new Map(); // env handle -> { deployment, config }
  const promoBox = h('div', { testid: 'integration-promotions' }, loading());
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
    promotions ? card('Promotions', h('span', { class: 'muted small' }, 'Deployment and configuration moved to the next environment, with overrides and approvals.'), promoBox) : null,
    metrics?.el,
    logs?.el,
    card('Secrets', h('span', { class: 'muted small' }, 'Runtimes authenticate with these. Key material is never shown again.'), secrets));

  let runtimesNow = [];
  const drawCards = () => fill(envGrid, envs.length ? envs.map((e) => envCard(e, runtimesNow.filter((r) => r.environment === e.handle))) : empty('This project has no environments.'));
  // Deployment record and configuration per environment (a list, not /current, so "none yet" is no error).
  const loadPipeline = async () => {
    const got = await Promise.all(envs.map(async (e) => {
      const at = `${base}/environments/${enc(e.handle)}`;
      const [d, c] = await Promise.all([get(`${at}/deployments?limit=1`), get(`${at}/config`)]);
      return [e.handle, { deployment: d.items[0] || null, config: c }];
    }));
    if (!ctx.alive()) return;
    for (const [k, v] of got) state.set(k, v);
  };
  let pendingTo = new Map(); // env handle -> its pending promotion
  const loadPromotions = async () => {
    if (!promotions) return;
    const page = await get(`${base}/promotions?limit=20`);
    if (!ctx.alive()) return;
    pendingTo = new Map(page.items.filter((p) => p.status === 'pending').map((p) => [p.to, p]));
    fill(promoBox, promotionTable(page.items, orgEnvs, { done: refreshAll, emptyText: 'No promotions yet: use "Promote to …" on an environment.' }));
  };
  const refreshAll = async ({ quiet = false } = {}) => {
    try { await Promise.all([loadPipeline(), loadPromotions()]); await loadRuntimes(); } catch (e) { if (!quiet) toast(e.message, 'bad'); }
  };
  const loadRuntimes = async () => {
    const runtimes = await all('/runtimes', { project: ph, integration: ih });
    // The list has no node info; fetch it for the runtimes shown (few per integration).
    await Promise.all(runtimes.slice(0, 50).map(async (r) => {
      try { r.nodeInfo = (await get(`/runtimes/${enc(r.runtimeId)}`)).nodeInfo; } catch { /* deleted meanwhile */ }
    }));
    if (mi) {
      await Promise.all(envs.filter((e) => runtimes.some((r) => r.environment === e.handle)).map(async (e) => {
        try { miViews.set(e.handle, await get(`${base}/environments/${enc(e.handle)}/mi/artifacts`)); } catch (err) { miViews.set(e.handle, { failed: err }); }
      }));
    }
    if (!ctx.alive()) return;
    for (const r of runtimes) runtimeNames.set(r.runtimeId, r.name || r.runtimeId.slice(0, 8));
    runtimesNow = runtimes;
    drawCards();
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
    const st = state.get(e.handle) || {};
    const next = e.next ? envByHandle.get(e.next) : null;
    const restart = runtimes.filter((r) => r.versionMismatch === true || r.configOutdated === true).length;
    const incoming = pendingTo.get(e.handle);
    const outgoing = next ? pendingTo.get(next.handle) : null;
    const act = async (fn) => { if (await fn()) refreshAll(); };
    return h('section', { class: 'card env-card', testid: `env-card-${e.handle}` },
      h('div', { class: 'card-head' },
        h('div', {}, h('h2', {}, e.name, ' ', h('span', { class: 'mono muted small' }, e.handle)), h('div', { class: 'chips' }, e.critical ? badge('critical', 'warn') : null, badge(`${running}/${runtimes.length} running`, running ? 'ok' : ''),
          restart ? badge(`${restart} to restart`, 'warn', `env-restart-${e.handle}`) : null,
          incoming ? badge(`promotion #${incoming.id} from ${incoming.from} waiting: ${incoming.approvals.length}/${incoming.requiredApprovals} approvals`, 'warn', `env-pending-${e.handle}`) : null)),
        h('div', { class: 'actions' },
          promotions && next && can('integration:manage')
            ? button(`Promote to ${next.name}`, () => act(() => promote(base, e, next, st.deployment, st.config)), { kind: 'primary', small: true, testid: `promote-${e.handle}`, disabled: !st.deployment || !!outgoing,
                title: outgoing ? `Promotion #${outgoing.id} to ${next.name} is waiting for approval` : st.deployment ? `Copy ${st.deployment.version} and configuration r${st.config?.revision || 0} to ${next.name}` : 'Record a deployment here first' })
            : null,
          link(`${base}/environments/${enc(e.handle)}`, mi ? 'MI artifacts' : 'Artifacts', { class: 'btn small', testid: `artifacts-${e.handle}` }),
          button('Add Runtime', () => addRuntime(e), { small: true, testid: `add-runtime-${e.handle}` }))),
      h('div', { class: 'grid two pipe' },
        h('div', {}, deploymentBlock(e, st.deployment),
          h('div', { class: 'actions' },
            can('integration:manage') ? button('Record deployment', () => act(() => recordDeployment(base, e, st.deployment)), { small: true, testid: `record-deployment-${e.handle}` }) : null,
            button('History', () => deploymentHistory(base, e), { small: true, testid: `deployment-history-${e.handle}` }))),
        h('div', {}, configBlock(e, st.config),
          h('div', { class: 'actions' },
            can('integration:edit') && st.config ? button('Edit configuration', () => act(() => editConfig(base, e, st.config)), { small: true, testid: `config-edit-${e.handle}` }) : null,
            button('Revisions', () => configHistory(base, e), { small: true, testid: `config-history-${e.handle}` })))),
      runtimes.length
        ? table(['Runtime', 'Status', 'Version / config', 'Last heartbeat', 'Node'], runtimes.map((r) => h('tr', { testid: `runtime-row-${r.name || r.runtimeId}` },
            h('td', {}, link(`/runtimes/${enc(r.runtimeId)}`, r.name || r.runtimeId, { testid: `runtime-link-${r.name || r.runtimeId}` }), h('div', { class: 'mono muted small' }, r.runtimeId.slice(0, 8))),
            h('td', {}, badge(r.status, undefined, `runtime-status-${r.name || r.runtimeId}`)),
            h('td', {}, rolloutCell(r)),
            h('td', {}, 'last heartbeat ', timeAgo(r.lastHeartbeat)),
            h('td', {}, nodeText(r)))))
        : empty('No runtimes in this environment.', mi ? 'Add Runtime creates a secret for the [icp_config] of a Micro Integrator\'s deployment.toml.' : 'Add Runtime creates a secret and the Config.toml lines for a new node.'),
      mi && runtimes.length ? miSummary(e, miViews.get(e.handle)) : null);
  }

  // What the MI runtimes of an environment run: kinds with counts, faulty artifacts with their errors.
  function miSummary(e, v) {
    if (!v) return null;
    const head = h('div', { class: 'label' }, 'MI artifacts', v.failed ? null : convergeBadge(v.inSync, `mi-env-sync-${e.handle}`),
      link(`${base}/environments/${enc(e.handle)}`, 'View all', { testid: `mi-env-open-${e.handle}` }));
    if (v.failed) return h('div', { class: 'mi-env', testid: `mi-env-${e.handle}` }, head, h('div', { class: 'bad-text small' }, v.failed.message));
    const faulty = faultyApps(v.artifacts);
    const errs = v.artifacts.filter((a) => artifactError(a, faulty));
    return h('div', { class: 'mi-env', testid: `mi-env-${e.handle}` }, head,
      v.artifacts.length ? kindChips(v.artifacts, { testid: `mi-env-kinds-${e.handle}` }) : h('div', { class: 'muted small' }, 'The runtimes report no artifacts.'),
      errs.length ? h('div', { class: 'callout bad', role: 'alert', testid: `mi-env-faults-${e.handle}` },
        errs.map((a) => h('div', {}, h('strong', {}, a.name), ` (${kindName(a.kind)}): ${artifactError(a, faulty)}`))) : null);
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

  try { await Promise.all([loadPipeline(), loadSecrets()]); await loadRuntimes(); } catch (e) { fill(envGrid, failure(e, () => render(ctx))); }
  try { await loadPromotions(); } catch (e) { fill(promoBox, failure(e, loadPromotions)); }
  // Now that runtime names are known, show them instead of ids.
  if (runtimeNames.size) logs?.reload();
  ctx.live(liveRefresh(loadRuntimes, (t, d) => t.startsWith('runtime') && (!d?.integration || (d.integration === ih && d.project === ph))));
  // Records, configuration and promotions change by other users' hands too; no event says so, so poll them slowly.
  const slow = setInterval(() => { if (!document.hidden && !document.querySelector('.backdrop')) refreshAll({ quiet: true }); }, 5000);
  ctx.live(() => clearInterval(slow));
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
