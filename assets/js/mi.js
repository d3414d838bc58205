// Micro Integrator (MI) in the console: the artifact kinds in MI's order,
// a table per kind (read-only on the runtime page; with replicas, sync and
// the controls the server offers on the environment page), an artifact's
// detail as MI reported it (API resources, endpoint attributes, carbon app
// contents, ...), node info with memory in MiB / GiB, and which MI
// control routes the server has.

import { h, badge, table, button } from './ui.js';
import { serverOffers } from './pipeline.js';

/** MI's artifact kinds in the order the console shows them, with labels. */
export const KINDS = [
  ['api', 'APIs'], ['proxy-service', 'Proxy services'], ['endpoint', 'Endpoints'], ['inbound-endpoint', 'Inbound endpoints'],
  ['sequence', 'Sequences'], ['task', 'Tasks'], ['template', 'Templates'], ['message-store', 'Message stores'],
  ['message-processor', 'Message processors'], ['local-entry', 'Local entries'], ['data-service', 'Data services'],
  ['carbon-app', 'Carbon apps'], ['data-source', 'Data sources'], ['connector', 'Connectors'], ['registry-resource', 'Registry resources'],
];
const LABEL = new Map(KINDS);
const ORDER = new Map(KINDS.map(([k], i) => [k, i]));
const ONE = {
  api: 'API', 'proxy-service': 'proxy service', endpoint: 'endpoint', 'inbound-endpoint': 'inbound endpoint', sequence: 'sequence', task: 'task',
  template: 'template', 'message-store': 'message store', 'message-processor': 'message processor', 'local-entry': 'local entry',
  'data-service': 'data service', 'carbon-app': 'carbon app', 'data-source': 'data source', connector: 'connector', 'registry-resource': 'registry resource',
};

export const kindLabel = (k) => LABEL.get(k) || k;
export const kindName = (k) => ONE[k] || k;

/** MI's logger levels, as `PUT .../mi/loggers/{logger}` takes them. */
export const LEVELS = ['OFF', 'TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];

/** [[kind, label, artifacts]] in MI's kind order, kinds without artifacts left out (unknown kinds last, by name). */
export function byKind(artifacts) {
  const groups = new Map();
  for (const a of artifacts) {
    if (!groups.has(a.kind)) groups.set(a.kind, []);
    groups.get(a.kind).push(a);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => (ORDER.get(a) ?? 99) - (ORDER.get(b) ?? 99) || a.localeCompare(b))
    .map(([k, items]) => [k, kindLabel(k), items]);
}

/** Bytes as MiB below 1 GiB, else GiB: `353 MiB`, `1 GiB`, `1.5 GiB`, `0.5 MiB`. */
export function bytes(n) {
  const v = Number(n);
  if (n === null || n === undefined || n === '' || !Number.isFinite(v)) return '—';
  const mib = v / 1048576;
  const fmt = (x) => (x >= 100 ? String(Math.round(x)) : String(Number(x.toFixed(x >= 10 ? 1 : 2))));
  return mib >= 1024 ? `${fmt(mib / 1024)} GiB` : `${fmt(mib)} MiB`;
}

const same = (a, b) => String(a ?? '').toLowerCase() === String(b ?? '').toLowerCase();

/** The badge colour of a state MI reports. */
function stateKind(v) {
  const s = String(v || '').toLowerCase();
  if (s === 'enabled' || s === 'active') return 'ok';
  if (s === 'faulty' || s === 'error' || s === 'unknown') return 'bad';
  if (s === 'disabled' || s === 'inactive') return '';
  return 'info';
}

const onOff = (v) => (v == null ? null : same(v, 'enabled') ? 'on' : same(v, 'disabled') ? 'off' : String(v));

/** "In sync" or "Converging…", with data-insync for tests. */
export function convergeBadge(inSync, testid) {
  return h('span', { class: `badge dot ${inSync ? 'ok' : 'warn pulse'}`, testid, 'data-insync': String(!!inSync) }, inSync ? 'In sync' : 'Converging…');
}

/**
 * One field of an artifact across its replicas: one badge when they agree,
 * else one per replica ("mi-node-1: disabled").
 */
function replicaValues(a, field, names, show) {
  const one = (v, prefix = '') => (v == null ? h('span', { class: 'muted' }, prefix, '—') : badge(`${prefix}${show(v)}`, field === 'state' ? stateKind(v) : same(v, 'enabled') ? 'info' : ''));
  const rs = a.runtimes || [];
  if (rs.every((r) => same(r[field], rs[0]?.[field]))) return one(rs[0]?.[field]);
  return h('div', { class: 'chips' }, rs.map((r) => one(r[field], `${names(r.runtimeId)}: `)));
}

/** What every replica agrees on for a field, else null. */
function agreed(a, field) {
  const rs = a.runtimes || [];
  return rs.length && rs.every((r) => same(r[field], rs[0][field])) ? rs[0][field] : null;
}

/** "→ disabled" when a value is asked for and not every replica reports it yet. */
function pending(a, field, show) {
  const want = a.desired?.[field];
  if (want == null || (a.runtimes || []).every((r) => same(r[field], want))) return null;
  return h('span', { class: 'mi-desired', title: `Asked for: ${want}` }, '→ ', show(want));
}

/** A short "what it is" per kind, as a column after the name. */
const ASPECT = {
  api: ['Context', (d) => [d.context, d.version ? `v${d.version}` : ''].filter(Boolean).join(' · ')],
  endpoint: ['Type', (d) => d.type],
  'inbound-endpoint': ['Protocol', (d) => d.protocol],
  task: ['Group', (d) => d.group],
  template: ['Type', (d) => d.type],
  'message-store': ['Type', (d) => [d.type, d.size != null ? `${d.size} message${d.size === 1 ? '' : 's'}` : ''].filter(Boolean).join(' · ')],
  'message-processor': ['Type', (d) => [d.type, d.messageStore ? `store ${d.messageStore}` : ''].filter(Boolean).join(' · ')],
  'local-entry': ['Type', (d) => d.type],
  'data-service': ['Description', (d) => d.description],
  'carbon-app': ['Version', (d) => d.version],
  'data-source': ['Type', (d) => d.type],
  connector: ['Package', (d) => d.package],
  'registry-resource': ['Type', (d) => d.type],
};

/** Carbon app name → its error, for the carbon apps reported faulty. */
export function faultyApps(artifacts) {
  return new Map(artifacts.filter((a) => a.kind === 'carbon-app' && (a.error || stateKind(agreed(a, 'state') ?? a.state) === 'bad'))
    .map((a) => [a.name, a.error || 'faulty']));
}

/** The error to flag an artifact with: its own, or its carbon app's when that app is faulty. */
export function artifactError(a, faulty) {
  if (a.error) return a.error;
  if (a.carbonApp && faulty.has(a.carbonApp)) return `In faulty carbon app ${a.carbonApp}: ${faulty.get(a.carbonApp)}`;
  return null;
}

const hasControl = (a) => !!(a.controls && (a.controls.state || a.controls.tracing || a.controls.statistics));

/**
 * The table of one kind's artifacts. `items` are in the shape of the
 * environment view (`{kind, name, carbonApp, error, controls, desired,
 * inSync, replicasDiffer, detail, runtimes: [...]}`). opts: `names`
 * (runtime id → shown name), `faulty` (from faultyApps), `expanded` (a Set
 * of `kind/name` kept across redraws), `sync` (show in sync / converging),
 * `act` (null for read-only, else callbacks present only for what the
 * server offers: `state(a, value)`, `tracing(a, value)`,
 * `statistics(a, value)`, `trigger(a)`), `testid`.
 */
export function kindTable(kind, items, { names = (id) => id.slice(0, 8), faulty = new Map(), expanded = new Set(), sync = false, act = null, testid } = {}) {
  const some = (f) => items.some(f);
  const hasCapp = some((a) => a.carbonApp);
  const aspect = ASPECT[kind] && some((a) => ASPECT[kind][1](a.detail || {})) ? ASPECT[kind] : null;
  const col = (field) => some((a) => a.controls?.[field] || (a.runtimes || []).some((r) => r[field] != null));
  const hasState = col('state');
  const hasTracing = col('tracing');
  const hasStats = col('statistics');
  const showSync = sync && some(hasControl);
  const canState = (a) => act?.state && a.controls?.state;
  const canTrigger = () => act?.trigger && kind === 'task';
  const hasActions = some((a) => canState(a) || canTrigger());
  const headers = ['Name', aspect?.[0], hasCapp ? 'Carbon app' : null, hasState ? 'State' : null, hasTracing ? 'Tracing' : null, hasStats ? 'Statistics' : null, showSync ? 'Sync' : null, hasActions ? '' : null].filter((x) => x !== null && x !== undefined);
  const span = headers.length;
  const rows = items.flatMap((a) => {
    const key = `${kind}/${a.name}`;
    const err = artifactError(a, faulty);
    const detailRow = () => h('tr', { class: 'mi-detail', testid: `mi-detail-${kind}-${a.name}` }, h('td', { colspan: String(span) }, detailView(a, { names })));
    const toggle = (e) => {
      const btn = e.currentTarget;
      const open = btn.getAttribute('aria-expanded') !== 'true';
      btn.setAttribute('aria-expanded', String(open));
      const tr = btn.closest('tr');
      if (open) { expanded.add(key); tr.after(detailRow()); } else { expanded.delete(key); if (tr.nextElementSibling?.classList.contains('mi-detail')) tr.nextElementSibling.remove(); }
    };
    const open = expanded.has(key);
    const switchCell = (field, show) => {
      if (!(act?.[field] && a.controls?.[field])) return h('td', {}, replicaValues(a, field, names, show), pending(a, field, show));
      const on = same(a.desired?.[field] ?? agreed(a, field) ?? 'disabled', 'enabled');
      const label = field === 'tracing' ? 'Tracing' : 'Statistics';
      return h('td', {}, h('div', { class: 'mi-cell' },
        h('button', { type: 'button', class: 'switch', role: 'switch', 'aria-checked': String(on), 'aria-label': `${label} of ${a.name}`, title: `${label}: turn ${on ? 'off' : 'on'}`, testid: `mi-${field}-${kind}-${a.name}`, onClick: () => act[field](a, on ? 'disabled' : 'enabled') },
          h('span', { class: 'knob', 'aria-hidden': 'true' }), on ? 'on' : 'off'),
        a.replicasDiffer || pending(a, field, show) ? replicaValues(a, field, names, show) : null));
    };
    const effectiveState = a.desired?.state ?? agreed(a, 'state') ?? 'enabled';
    const row = h('tr', { class: err ? 'faulty' : '', testid: `mi-row-${kind}-${a.name}`, 'data-name': a.name.toLowerCase(), 'data-faulty': err ? 'true' : null },
      h('td', { class: 'mi-name' },
        h('button', { type: 'button', class: 'linkish expander', 'aria-expanded': String(open), 'aria-label': `Details of ${kindName(kind)} ${a.name}`, testid: `mi-expand-${kind}-${a.name}`, onClick: toggle }, a.name),
        a.replicasDiffer ? [' ', badge('replicas differ', 'warn', `mi-differ-${kind}-${a.name}`)] : null,
        err ? h('div', { class: 'mi-error', testid: `mi-error-${kind}-${a.name}` }, err) : null),
      aspect ? h('td', { class: 'mi-aspect' }, aspect[1](a.detail || {}) || h('span', { class: 'muted' }, '—')) : null,
      hasCapp ? h('td', { class: 'mono small' }, a.carbonApp ? [a.carbonApp, faulty.has(a.carbonApp) ? [' ', badge('faulty', 'bad')] : null] : h('span', { class: 'muted' }, '—')) : null,
      hasState ? h('td', { testid: `mi-state-of-${kind}-${a.name}` }, replicaValues(a, 'state', names, String), pending(a, 'state', String)) : null,
      hasTracing ? switchCell('tracing', onOff) : null,
      hasStats ? switchCell('statistics', onOff) : null,
      showSync ? h('td', {}, hasControl(a) ? convergeBadge(a.inSync, `mi-sync-${kind}-${a.name}`) : null) : null,
      hasActions ? h('td', {}, h('div', { class: 'actions' },
        canState(a) ? button(same(effectiveState, 'disabled') ? 'Enable' : 'Disable', () => act.state(a, same(effectiveState, 'disabled') ? 'enabled' : 'disabled'),
          { small: true, kind: same(effectiveState, 'disabled') ? '' : 'danger', testid: `mi-state-${kind}-${a.name}` }) : null,
        canTrigger() ? button('Trigger', () => act.trigger(a), { small: true, testid: `mi-trigger-${a.name}`, title: `Run ${a.name} once now` }) : null)) : null);
    return open ? [row, detailRow()] : [row];
  });
  return table(headers, rows, { testid, class: 'mi-table' });
}

/** A card per kind that has artifacts, in MI's kind order, titled with the count. */
export function kindSections(artifacts, opts = {}) {
  const faulty = opts.faulty || faultyApps(artifacts);
  return byKind(artifacts).map(([kind, label, items]) => {
    const bad = items.filter((a) => artifactError(a, faulty)).length;
    return h('section', { class: 'card mi-kind', 'data-kind': kind, testid: `mi-kind-${kind}`, id: `mi-kind-${kind}` },
      h('div', { class: 'card-head' }, h('h2', {}, label, ' ', h('span', { class: 'badge mi-count', testid: `mi-count-${kind}` }, String(items.length))),
        bad ? badge(`${bad} faulty`, 'bad') : null),
      kindTable(kind, items, { ...opts, faulty, testid: `mi-table-${kind}` }));
  });
}

/** A runtime's own artifacts (`miArtifacts` of GET /runtimes/{id}) in the environment view's shape, one replica each. */
export function ownArtifacts(r) {
  return Object.values(r.miArtifacts || {}).flat().map((a) => ({
    ...a, controls: null, desired: {}, inSync: true, replicasDiffer: false,
    runtimes: [{ runtimeId: r.runtimeId, state: a.state ?? null, tracing: a.tracing ?? null, statistics: a.statistics ?? null, error: a.error ?? null }],
  }));
}

// ---- an artifact's detail ---------------------------------------------------

const SKIP = new Set(['name', 'resources', 'attributes', 'artifacts', 'runtimeId', 'carbonApp', 'state', 'status', 'tracing', 'statistics', 'errorMessage']);
const pretty = (k) => k.replace(/([a-z])([A-Z])/g, '$1 $2').replace(/^./, (c) => c.toUpperCase()).replace(/\bUrl\b/, 'URL').replace(/\bUrls\b/, 'URLs');

function value(v) {
  if (v === null || v === undefined || v === '') return h('span', { class: 'muted' }, '—');
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (Array.isArray(v)) {
    if (!v.length) return h('span', { class: 'muted' }, 'none');
    if (v.every((x) => typeof x !== 'object' || x === null)) return h('ul', { class: 'plain mono' }, v.map((x) => h('li', {}, String(x))));
    return h('pre', { class: 'mi-json' }, JSON.stringify(v, null, 2));
  }
  if (typeof v === 'object') return h('pre', { class: 'mi-json' }, JSON.stringify(v, null, 2));
  return h('span', { class: /^(https?|jdbc|wss?):|^\//.test(String(v)) ? 'mono' : '' }, String(v));
}

/**
 * The entry as MI reported it: API resources with their methods, endpoint
 * attributes, a carbon app's artifacts, then every other member; and, with
 * more than one replica, what each one reports.
 */
export function detailView(a, { names = (id) => id.slice(0, 8) } = {}) {
  const d = a.detail || {};
  const parts = [];
  if (Array.isArray(d.resources)) {
    parts.push(h('div', {}, h('h3', {}, 'Resources'), table(['Methods', 'Path'], d.resources.map((r) => h('tr', {},
      h('td', {}, h('span', { class: 'chips' }, String(r.methods || '').split(',').map((m) => m.trim()).filter(Boolean).map((m) => h('span', { class: 'method' }, m)))
        , r.methods ? null : h('span', { class: 'muted' }, 'any')),
      h('td', { class: 'mono' }, r.path || r.url || '/*'))), { emptyText: 'No resources.', testid: `mi-resources-${a.name}` })));
  }
  if (Array.isArray(d.attributes)) {
    parts.push(h('div', {}, h('h3', {}, 'Attributes'), d.attributes.length
      ? h('dl', { class: 'kv', testid: `mi-attributes-${a.name}` }, d.attributes.map((x) => [h('dt', {}, x.name), h('dd', { class: 'mono' }, String(x.value ?? ''))]))
      : h('p', { class: 'muted' }, 'No attributes.')));
  }
  if (Array.isArray(d.artifacts)) {
    parts.push(h('div', {}, h('h3', {}, `Contents (${d.artifacts.length})`), d.artifacts.length
      ? h('ul', { class: 'plain mi-contents', testid: `mi-contents-${a.name}` }, d.artifacts.map((x) => h('li', {}, h('span', { class: 'badge' }, x.type || '?'), ' ', h('span', { class: 'mono' }, x.name))))
      : h('p', { class: 'muted' }, 'No artifacts.')));
  }
  const rest = Object.entries(d).filter(([k]) => !SKIP.has(k));
  if (rest.length) parts.push(h('dl', { class: 'kv' }, rest.map(([k, v]) => [h('dt', {}, pretty(k)), h('dd', {}, value(v))])));
  const rs = a.runtimes || [];
  if (rs.length > 1 || a.replicasDiffer) {
    const cols = ['state', 'tracing', 'statistics'].filter((f) => rs.some((r) => r[f] != null));
    const errors = rs.some((r) => r.error);
    const sync = hasControl(a);
    parts.push(h('div', {}, h('h3', {}, 'Per replica'), table(['Runtime', ...cols.map(pretty), ...(errors ? ['Error'] : []), ...(sync ? ['Sync'] : [])], rs.map((r) => h('tr', {},
      h('td', {}, names(r.runtimeId)),
      cols.map((f) => h('td', {}, r[f] == null ? '—' : f === 'state' ? badge(r[f], stateKind(r[f])) : onOff(r[f]))),
      errors ? h('td', { class: r.error ? 'bad-text' : 'muted' }, r.error || '—') : null,
      sync ? h('td', {}, convergeBadge(r.inSync)) : null)))));
  }
  if (!parts.length) parts.push(h('p', { class: 'muted' }, 'MI reported nothing more about it.'));
  return h('div', { class: 'mi-detail-body' }, parts);
}

// ---- node info ----------------------------------------------------------------

/** An MI runtime's node: platform, Java, memory (used of total, max), carbon home, OS. */
export function nodeCard(n) {
  n = n || {};
  const join = (...xs) => xs.filter((x) => x !== null && x !== undefined && x !== '').join(' ');
  const row = (k, v, testid) => [h('dt', {}, k), h('dd', { testid }, v || h('span', { class: 'muted' }, '—'))];
  let memory = null;
  if (n.usedMemory != null || n.totalMemory != null) {
    const max = Number(n.maxMemory) || Number(n.totalMemory) || 0;
    const bar = h('div', { class: 'bar mem', role: 'img', 'aria-label': `${bytes(n.usedMemory)} used, ${bytes(n.totalMemory)} allocated, ${bytes(n.maxMemory)} at most` });
    if (max) {
      const used = h('div', { class: 'used' });
      const alloc = h('div', { class: 'alloc' });
      const rest = h('div', { class: 'rest' });
      used.style.flexGrow = String(Number(n.usedMemory) || 0); // CSSOM, allowed by the CSP
      alloc.style.flexGrow = String(Math.max(0, (Number(n.totalMemory) || 0) - (Number(n.usedMemory) || 0)));
      rest.style.flexGrow = String(Math.max(0, max - (Number(n.totalMemory) || 0)));
      bar.append(used, alloc, rest);
    }
    memory = h('div', { class: 'mi-memory' },
      h('div', {}, h('strong', { class: 'nowrap' }, bytes(n.usedMemory)), ' used of ', h('span', { class: 'nowrap' }, bytes(n.totalMemory)), ' total', n.maxMemory != null ? [' · max ', h('span', { class: 'nowrap' }, bytes(n.maxMemory))] : null),
      bar);
  }
  return h('dl', { class: 'kv', testid: 'mi-node' },
    row('Platform', join(n.platformName, n.platformVersion), 'mi-node-platform'),
    row('Java', join(n.javaVersion, n.javaVendor ? `(${n.javaVendor})` : ''), 'mi-node-java'),
    row('Memory', memory, 'mi-node-memory'),
    row('Carbon home', n.carbonHome ? h('span', { class: 'mono' }, n.carbonHome) : null, 'mi-node-carbon-home'),
    row('OS', join(n.osName, n.osVersion, n.osArch ? `(${n.osArch})` : ''), 'mi-node-os'));
}

// ---- what the server offers ---------------------------------------------------

const SCOPE = '/api/v1/projects/{}/integrations/{}/environments/{}';
/** Which MI control routes the server has (asked of its OpenAPI document, so none is called before it lands). */
export async function miRoutes() {
  const [artifact, logger, trigger] = await Promise.all([
    serverOffers('put', `${SCOPE}/mi/artifacts/{}/{}`),
    serverOffers('put', `${SCOPE}/mi/loggers/{}`),
    serverOffers('post', `${SCOPE}/mi/tasks/{}/trigger`),
  ]);
  return { artifact, logger, trigger };
}

/** The kind chips of a summary: "APIs 2", in MI's order; faulty counts in red. */
export function kindChips(artifacts, { testid } = {}) {
  const faulty = faultyApps(artifacts);
  return h('div', { class: 'chips', testid }, byKind(artifacts).map(([kind, label, items]) => {
    const bad = items.filter((a) => artifactError(a, faulty)).length;
    return h('span', { class: `badge ${bad ? 'bad' : ''}`, testid: testid ? `${testid}-${kind}` : undefined, title: bad ? `${bad} faulty` : undefined }, `${label} ${items.length}`);
  }));
}
