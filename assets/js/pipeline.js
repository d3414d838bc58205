// The environments pipeline in the console: deployment records, the typed
// configuration editor (secrets only ever as "set · updated · by"), what a
// runtime still runs ("takes effect after restart"), promotion with
// overrides, and promotion lists with approve / reject / cancel, whose
// dialogs show what the promotion changes in its target. Used by the
// integration, project and promotions pages.

import { get, post, patch, qs, enc } from './api.js';
import { h, fill, loading, failure, button, badge, field, input, select, modal, toast, table, timeAgo, when, link, empty } from './ui.js';
import { session, can, refreshAwaiting } from './app.js';

export const TYPES = ['string', 'int', 'float', 'boolean', 'array', 'table'];

let openapi = null;
/** Whether the server lists `path` in its OpenAPI document (so the console never asks for a route that is not there). */
export async function serverHas(path) {
  openapi ||= get('/openapi.json').catch(() => ({ paths: {} }));
  const doc = await openapi;
  return Object.prototype.hasOwnProperty.call(doc?.paths || {}, path);
}

const pathShape = (p) => p.replace(/\{[^}]*\}/g, '{}');
/**
 * Whether the server offers `method` on a path of this shape: `{...}`
 * segments match whatever the server names its parameters, so
 * `.../mi/artifacts/{}/{}` finds `.../mi/artifacts/{kind}/{name}`.
 */
export async function serverOffers(method, path) {
  openapi ||= get('/openapi.json').catch(() => ({ paths: {} }));
  const doc = await openapi;
  const want = pathShape(path);
  const m = method.toLowerCase();
  return Object.entries(doc?.paths || {}).some(([p, ops]) => pathShape(p) === want && Object.prototype.hasOwnProperty.call(ops || {}, m));
}

export const dotted = (v) => (v.section ? `${v.section}.${v.key}` : v.key);

/** A value as text: strings as they are, the rest as JSON. */
export function valueText(v) {
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** The editor's text for a value of a type, parsed back to JSON; throws with a message naming the key. */
export function parseValue(type, text, name) {
  const t = String(text ?? '');
  const bad = (what) => new Error(`${name}: ${what}`);
  switch (type) {
    case 'string': return t;
    case 'int':
      if (!/^\s*-?\d+\s*$/.test(t)) throw bad('an int is a whole number');
      return Number(t);
    case 'float': {
      const n = Number(t);
      if (t.trim() === '' || !Number.isFinite(n)) throw bad('a float is a number such as 2.5');
      return n;
    }
    case 'boolean':
      if (t !== 'true' && t !== 'false') throw bad('a boolean is true or false');
      return t === 'true';
    case 'array':
    case 'table': {
      let v;
      try { v = JSON.parse(t); } catch { throw bad(`an ${type === 'array' ? 'array is JSON such as ["a", "b"]' : 'table is a JSON object such as {"host": "db"}'}`); }
      if (type === 'array' ? !Array.isArray(v) : (v === null || typeof v !== 'object' || Array.isArray(v))) throw bad(`not ${type === 'array' ? 'an array' : 'a table (JSON object)'}`);
      return v;
    }
    default: throw bad(`unknown type ${type}`);
  }
}

/** An input for a value of `type` (re-made when the type changes); `.read()` gives its text. */
function valueInput(type, text, { secret = false, testid } = {}) {
  let el;
  if (type === 'boolean') el = select(['true', 'false'], { value: text === 'false' ? 'false' : 'true', testid, 'aria-label': 'Value' });
  else if (type === 'array' || type === 'table') el = h('textarea', { class: 'mono code-input', rows: 2, testid, 'aria-label': 'Value (JSON)', placeholder: type === 'array' ? '["a", "b"]' : '{"key": "value"}' }, text || '');
  else el = input({ value: text || '', testid, 'aria-label': 'Value', type: secret ? 'password' : 'text', autocomplete: secret ? 'new-password' : 'off', inputmode: type === 'int' || type === 'float' ? 'decimal' : undefined, placeholder: type === 'string' ? '' : type === 'int' ? '10' : '2.5' });
  return el;
}

/** "set · updated 3 min ago · by alice" for a secret value. */
export function secretSet(v, testid) {
  return h('span', { class: 'secret-set', testid }, badge('secret', 'accent'), ' set · updated ', timeAgo(v.updatedAt), ' · by ', h('strong', {}, v.updatedBy));
}

// ---- deployment records ---------------------------------------------------

export async function recordDeployment(base, env, current) {
  const version = field('Version', input({ required: true, value: current?.version || '', placeholder: '1.4.0', testid: 'deployment-version' }));
  const artifact = field('Artifact', input({ required: true, value: current?.artifact || '', placeholder: 'registry.example.com/orders:1.4.0 or orders.jar', testid: 'deployment-artifact' }), 'An image tag or a file name.');
  const sha = field('SHA-256 (optional)', input({ class: 'mono', placeholder: '64 hex digits', testid: 'deployment-sha256' }));
  let made = null;
  await modal({
    title: `Record a deployment in ${env.name}`, submit: 'Record deployment', testid: 'deployment-modal',
    body: [h('p', { class: 'muted' }, 'The record says which version should run here. It supersedes the current one; runtimes reporting another version are flagged until they restart on it.'), version, artifact, sha],
    onSubmit: async () => {
      const s = sha.input.value.trim().toLowerCase();
      if (s && !/^[0-9a-f]{64}$/.test(s)) throw new Error('The SHA-256 is 64 hexadecimal digits.');
      made = await post(`${base}/environments/${enc(env.handle)}/deployments`, { version: version.input.value.trim(), artifact: artifact.input.value.trim(), sha256: s || undefined });
    },
  });
  if (made) toast(`Deployment ${made.version} recorded in ${env.name}.`, 'ok');
  return made;
}

export async function deploymentHistory(base, env) {
  const box = h('div', { testid: 'deployment-history' }, loading());
  const shown = modal({ title: `Deployments in ${env.name}`, wide: true, body: [box] });
  try {
    const page = await get(`${base}/environments/${enc(env.handle)}/deployments${qs({ limit: 50 })}`);
    fill(box, table(['Version', 'Artifact', 'SHA-256', 'Recorded', 'By'], page.items.map((d, i) => h('tr', {},
      h('td', {}, h('strong', {}, d.version), i === 0 ? [' ', badge('current', 'ok')] : null, d.promotedFrom ? h('div', { class: 'muted small' }, 'promoted') : null),
      h('td', { class: 'mono small wrap' }, d.artifact),
      h('td', { class: 'mono small', title: d.sha256 || '' }, d.sha256 ? `${d.sha256.slice(0, 12)}…` : '—'),
      h('td', {}, when(d.createdAt)),
      h('td', {}, d.createdBy))), { emptyText: 'No deployment recorded yet.' }));
  } catch (e) { fill(box, failure(e)); }
  return shown;
}

/** The deployment block of an environment card. */
export function deploymentBlock(env, d) {
  return h('div', { class: 'pipe-block', testid: `deployment-${env.handle}` },
    h('div', { class: 'label' }, 'Deployment'),
    d
      ? h('div', {},
          h('div', {}, h('strong', { class: 'version', testid: `deployment-version-${env.handle}` }, d.version), d.promotedFrom ? [' ', badge('promoted', 'info')] : null),
          h('div', { class: 'mono small wrap', testid: `deployment-artifact-${env.handle}` }, d.artifact),
          d.sha256 ? h('div', { class: 'mono small muted', title: d.sha256 }, `sha256 ${d.sha256.slice(0, 16)}…`) : null,
          h('div', { class: 'muted small' }, 'by ', d.createdBy, ' · ', timeAgo(d.createdAt)))
      : h('div', { class: 'muted', testid: `deployment-version-${env.handle}` }, 'No deployment recorded.'));
}

// ---- configuration ---------------------------------------------------------

/** The configuration block of an environment card: revision and values. */
export function configBlock(env, cfg) {
  const values = cfg?.values || [];
  return h('div', { class: 'pipe-block', testid: `config-${env.handle}` },
    h('div', { class: 'label' }, 'Configuration ', h('span', { class: 'badge', testid: `config-revision-${env.handle}` }, cfg?.revision ? `revision ${cfg.revision}` : 'no revision'),
      cfg?.promotedFrom ? [' ', badge(`promoted from ${cfg.promotedFrom.environment} r${cfg.promotedFrom.revision}`, 'info')] : null),
    values.length
      ? h('table', { class: 'config-table' }, h('tbody', {}, values.map((v) => h('tr', {},
          h('td', { class: 'mono' }, v.section ? h('span', { class: 'muted' }, `[${v.section}] `) : null, v.key),
          h('td', { class: 'small muted' }, v.type || ''),
          h('td', { class: 'mono wrap', testid: `config-value-${env.handle}-${dotted(v)}` }, v.secret ? secretSet(v) : valueText(v.value))))))
      : h('div', { class: 'muted small' }, 'No values: the runtime gets an empty Config.toml from icpd.'),
    cfg?.revision ? h('div', { class: 'muted small' }, `r${cfg.revision} by `, cfg.createdBy, ' · ', timeAgo(cfg.createdAt), cfg.comment ? ` — ${cfg.comment}` : '') : null);
}

/**
 * The configuration editor: every key as a row (section, key, type, value,
 * secret); secrets show "set" with Replace. Saves one new revision with the
 * rows changed, expecting the revision it was opened on.
 */
export async function editConfig(base, env, cfg) {
  const rows = [];
  const tbody = h('tbody', { testid: 'config-rows' });
  const addRow = (v) => {
    const i = rows.length;
    const row = { orig: v || null, removed: false, replace: false };
    const section = input({ value: v?.section || '', placeholder: 'org.module', class: 'mono', readonly: v ? true : undefined, testid: `config-section-${i}`, 'aria-label': 'Section' });
    const key = input({ value: v?.key || '', placeholder: 'key', class: 'mono', readonly: v ? true : undefined, testid: `config-key-${i}`, 'aria-label': 'Key' });
    const type = select(TYPES, { value: v?.type || 'string', testid: `config-type-${i}`, 'aria-label': 'Type' });
    const secret = h('input', { type: 'checkbox', checked: v?.secret, testid: `config-secret-${i}`, 'aria-label': 'Secret', title: 'Secret: encrypted, never shown again' });
    const cell = h('td', { class: 'value-cell' });
    let valueEl = null;
    const drawValue = () => {
      if (v?.secret && !row.replace) {
        valueEl = null;
        secret.disabled = true;
        type.disabled = true;
        fill(cell, h('div', { class: 'secret-line' }, secretSet(v, `config-secret-set-${i}`), button('Replace', () => { row.replace = true; drawValue(); valueEl?.focus(); }, { small: true, testid: `config-replace-${i}` })));
        return;
      }
      secret.disabled = false;
      type.disabled = false;
      const text = valueEl ? valueEl.value : (v && !v.secret ? valueText(v.value) : '');
      valueEl = valueInput(type.value, text, { secret: secret.checked, testid: `config-value-${i}` });
      fill(cell, valueEl);
    };
    type.addEventListener('change', drawValue);
    secret.addEventListener('change', drawValue);
    row.read = () => ({ section: section.value.trim(), key: key.value.trim(), type: type.value, secret: secret.checked, text: valueEl ? valueEl.value : null });
    const tr = h('tr', { testid: `config-row-${i}` }, h('td', {}, section), h('td', {}, key), h('td', {}, type), cell, h('td', { class: 'center' }, secret),
      h('td', {}, button('Remove', () => { row.removed = !row.removed; tr.classList.toggle('removed', row.removed); }, { small: true, kind: 'danger', testid: `config-remove-${i}` })));
    row.tr = tr;
    drawValue();
    rows.push(row);
    tbody.append(tr);
    return row;
  };
  for (const v of cfg.values) addRow(v);
  if (!cfg.values.length) addRow(null);
  const comment = field('Comment', input({ placeholder: 'What changed and why', testid: 'config-comment' }));
  let saved = null;
  await modal({
    title: `Configuration of ${env.name}`, submit: 'Save revision', wide: true, testid: 'config-modal',
    body: [
      h('p', { class: 'muted' }, `Values for the integration's Config.toml in ${env.name}, under [section] (org.module; empty for top-level keys). Saving makes revision ${cfg.revision + 1}; runtimes pick it up when they restart. Secret values are encrypted and never shown again.`),
      h('div', { class: 'table-wrap' }, h('table', { class: 'config-edit' }, h('thead', {}, h('tr', {}, ['Section', 'Key', 'Type', 'Value', 'Secret', ''].map((t) => h('th', {}, t)))), tbody)),
      button('Add value', () => addRow(null).tr.querySelector('input')?.focus(), { small: true, testid: 'config-add' }),
      comment,
    ],
    onSubmit: async () => {
      const set = [];
      const unset = [];
      for (const row of rows) {
        const r = row.read();
        const o = row.orig;
        const name = dotted(r) || 'a new value';
        if (row.removed) { if (o) unset.push({ section: o.section, key: o.key }); continue; }
        if (!o) {
          if (!r.key && !r.text) continue;
          if (!r.key) throw new Error('Every value needs a key.');
          set.push({ section: r.section, key: r.key, type: r.type, value: parseValue(r.type, r.text, name), secret: r.secret });
          continue;
        }
        if (o.secret && !row.replace) continue;
        const value = parseValue(r.type, r.text, name);
        const changed = o.secret || r.type !== o.type || r.secret !== o.secret || JSON.stringify(value) !== JSON.stringify(o.value);
        if (changed) set.push({ section: o.section, key: o.key, type: r.type, value, secret: r.secret });
      }
      if (!set.length && !unset.length) throw new Error('Nothing changed.');
      saved = await patch(`${base}/environments/${enc(env.handle)}/config`, { set, unset, comment: comment.input.value.trim() || undefined, expectedRevision: cfg.revision });
    },
  });
  if (saved) toast(`Configuration revision ${saved.revision} saved in ${env.name}.`, 'ok');
  return saved;
}

export async function configHistory(base, env) {
  const box = h('div', { testid: 'config-history' }, loading());
  const detail = h('div', { testid: 'config-history-detail' });
  const shown = modal({ title: `Configuration revisions in ${env.name}`, wide: true, body: [box, detail] });
  const show = async (n) => {
    fill(detail, loading());
    try {
      const cfg = await get(`${base}/environments/${enc(env.handle)}/config${qs({ revision: n })}`);
      fill(detail, h('h3', {}, `Revision ${n}`), configBlock(env, cfg));
    } catch (e) { fill(detail, failure(e)); }
  };
  try {
    const page = await get(`${base}/environments/${enc(env.handle)}/config/revisions${qs({ limit: 50 })}`);
    fill(box, table(['#Revision', 'When', 'By', 'Comment', '#Values', ''], page.items.map((r) => h('tr', {},
      h('td', { class: 'num' }, h('strong', {}, `r${r.revision}`)),
      h('td', {}, when(r.createdAt)),
      h('td', {}, r.createdBy),
      h('td', {}, r.comment || h('span', { class: 'muted' }, '—'), r.promotedFrom ? h('div', {}, badge(`promoted from ${r.promotedFrom.environment} r${r.promotedFrom.revision}`, 'info')) : null),
      h('td', { class: 'num' }, String(r.values)),
      h('td', {}, button('Values', () => show(r.revision), { small: true, testid: `config-history-show-${r.revision}` })))), { emptyText: 'No revision yet.' }));
  } catch (e) { fill(box, failure(e)); }
  return shown;
}

/** What a runtime runs against what should run: version and fetched configuration revision. */
export function rolloutCell(r) {
  const id = r.name || r.runtimeId;
  const restart = r.versionMismatch === true || r.configOutdated === true;
  const why = [
    r.versionMismatch === true ? `runs ${r.version || 'an unreported version'}, the record says ${r.deployedVersion}` : null,
    r.configOutdated === true ? `fetched configuration r${r.configRevision}, current is r${r.currentConfigRevision}` : null,
  ].filter(Boolean).join('; ');
  return h('div', { class: 'rollout' },
    h('div', { testid: `runtime-version-${id}` }, r.version || h('span', { class: 'muted' }, 'version not reported')),
    h('div', { class: 'muted small', testid: `runtime-config-${id}` }, r.configRevision != null ? ['config r', String(r.configRevision), ' fetched ', timeAgo(r.configFetchedAt)] : 'config never fetched'),
    restart ? h('span', { class: 'badge warn', title: why, testid: `runtime-restart-${id}` }, 'takes effect after restart') : null,
    restart ? h('div', { class: 'muted small' }, why) : null);
}

// ---- promotions ------------------------------------------------------------

const PROMO = { pending: 'warn', applied: 'ok', rejected: 'bad', cancelled: '', failed: 'bad' };

/** May the signed-in user approve promotions into `env` (the server decides per target)? */
export function mayApprove(env) {
  return can('environment:manage') || (!env?.critical && can('environment:manage-non-production'));
}

/**
 * The promote dialog: what is copied from `from` (deployment and
 * configuration revision), override rows and a comment. Resolves the
 * created promotion or null.
 */
export async function promote(base, from, to, deployment, cfg) {
  const rows = [];
  const tbody = h('tbody', { testid: 'override-rows' });
  const keys = h('datalist', { id: 'promote-keys' }, (cfg?.values || []).map((v) => h('option', { value: dotted(v) })));
  const addRow = () => {
    const i = rows.length;
    const section = input({ placeholder: 'org.module', class: 'mono', testid: `override-section-${i}`, 'aria-label': 'Section' });
    const key = input({ placeholder: 'key', class: 'mono', testid: `override-key-${i}`, 'aria-label': 'Key', list: 'promote-keys' });
    const type = select(TYPES, { testid: `override-type-${i}`, 'aria-label': 'Type' });
    const secret = h('input', { type: 'checkbox', testid: `override-secret-${i}`, 'aria-label': 'Secret' });
    const cell = h('td', { class: 'value-cell' });
    let valueEl = null;
    const draw = () => { const text = valueEl?.value || ''; valueEl = valueInput(type.value, text, { secret: secret.checked, testid: `override-value-${i}` }); fill(cell, valueEl); };
    // Picking an existing key ("section.key" from the list) fills section, key, type and secret.
    key.addEventListener('change', () => {
      const hit = (cfg?.values || []).find((v) => dotted(v) === key.value.trim());
      if (!hit) return;
      section.value = hit.section;
      key.value = hit.key;
      if (hit.type) type.value = hit.type;
      secret.checked = hit.secret;
      draw();
    });
    type.addEventListener('change', draw);
    secret.addEventListener('change', draw);
    const row = { removed: false };
    row.read = () => ({ section: section.value.trim(), key: key.value.trim(), type: type.value, secret: secret.checked, text: valueEl.value });
    const tr = h('tr', {}, h('td', {}, section), h('td', {}, key), h('td', {}, type), cell, h('td', { class: 'center' }, secret),
      h('td', {}, button('Remove', () => { row.removed = true; tr.remove(); }, { small: true, kind: 'danger' })));
    draw();
    rows.push(row);
    tbody.append(tr);
    return tr;
  };
  const values = cfg?.values || [];
  const comment = field('Comment', h('textarea', { testid: 'promote-comment', rows: 2 }), 'For the approvers and the audit log.');
  const approvals = to.requiredApprovals ?? (to.critical ? 1 : 0);
  let made = null;
  await modal({
    title: `Promote to ${to.name}`, submit: approvals ? 'Request promotion' : 'Promote', wide: true, testid: 'promote-modal',
    body: [
      h('div', { class: 'promote-summary', testid: 'promote-summary' },
        h('div', {}, h('div', { class: 'label' }, `Deployment from ${from.name}`),
          h('strong', { testid: 'promote-version' }, deployment.version), h('div', { class: 'mono small wrap' }, deployment.artifact),
          deployment.sha256 ? h('div', { class: 'mono small muted' }, `sha256 ${deployment.sha256.slice(0, 16)}…`) : null),
        h('div', {}, h('div', { class: 'label' }, `Configuration from ${from.name}`),
          h('strong', { testid: 'promote-config-revision' }, cfg?.revision ? `revision ${cfg.revision}` : 'no configuration'),
          h('div', { class: 'muted small' }, `${values.length} value${values.length === 1 ? '' : 's'} (${values.filter((v) => v.secret).length} secret) carry over unless overridden.`))),
      values.length ? h('details', {}, h('summary', {}, 'Values that carry over'),
        h('ul', { class: 'plain small' }, values.map((v) => h('li', { class: 'mono' }, dotted(v), ' = ', v.secret ? h('span', { class: 'muted' }, 'secret (carried over, re-encrypted)') : valueText(v.value))))) : null,
      h('div', { class: approvals ? 'callout warn' : 'callout info', testid: 'promote-approvals' },
        approvals ? `${to.name} needs ${approvals} approval${approvals === 1 ? '' : 's'} from users other than you; the promotion waits until then.` : `${to.name} needs no approval: the promotion is applied at once.`),
      h('div', {}, h('h3', {}, 'Overrides'), h('p', { class: 'muted small' }, `Values that differ in ${to.name}: database URLs, credentials, endpoints. Pick an existing key or type a new one.`),
        keys,
        h('div', { class: 'table-wrap' }, h('table', { class: 'config-edit' }, h('thead', {}, h('tr', {}, ['Section', 'Key', 'Type', 'Value', 'Secret', ''].map((t) => h('th', {}, t)))), tbody)),
        button('Add override', () => addRow().querySelector('input')?.focus(), { small: true, testid: 'override-add' })),
      comment,
    ],
    onSubmit: async () => {
      const overrides = [];
      for (const row of rows) {
        if (row.removed) continue;
        const r = row.read();
        if (!r.key && !r.text) continue;
        if (!r.key) throw new Error('Every override needs a key.');
        overrides.push({ section: r.section, key: r.key, type: r.type, value: parseValue(r.type, r.text, dotted(r)), secret: r.secret });
      }
      made = await post(`${base}/promotions`, { from: from.handle, to: to.handle, overrides, comment: comment.input.value.trim() || undefined });
    },
  });
  if (made) toast(made.status === 'applied' ? `Promoted to ${to.name}.` : `Promotion to ${to.name} requested: waiting for approval.`, 'ok');
  return made;
}

const CHANGE = { added: 'ok', removed: 'bad', changed: 'warn', unchanged: '' };

/** A configuration value in a diff cell: plain values as text, a secret only as what happens to it. */
function diffValue(k, side) {
  const secret = side === 'from' ? (k.wasSecret ?? k.secret) : k.secret;
  const present = side === 'from' ? k.change !== 'added' : k.change !== 'removed';
  if (!present) return h('span', { class: 'muted' }, '—');
  if (secret) {
    // Never a value: the old one is "set"; the new one is set, changed or unchanged.
    const text = side === 'from' ? 'set' : { added: 'set', changed: 'changed', unchanged: 'unchanged' }[k.change];
    return h('span', { class: 'secret-set' }, badge('secret', 'accent'), ' ', text);
  }
  const v = k[side];
  return h('span', { class: `mono wrap ${k.change === 'unchanged' ? '' : side === 'from' ? 'diff-old' : 'diff-new'}` }, valueText(v));
}

function diffRow(k) {
  const name = dotted(k);
  return h('tr', { testid: `change-${name}`, 'data-change': k.change },
    h('td', { class: 'mono' }, h('div', {}, k.key), k.section ? h('div', { class: 'muted small' }, `[${k.section}]`) : null),
    h('td', {}, badge(k.change, CHANGE[k.change])),
    h('td', { testid: `change-from-${name}` }, diffValue(k, 'from')),
    h('td', { testid: `change-to-${name}` }, diffValue(k, 'to')));
}

/** What a promotion changes in its target: deployment from → to, every configuration key old → new. */
export function changesView(p) {
  const c = p.changes;
  if (!c) return h('p', { class: 'muted small' }, 'This icpd does not say what a promotion changes.');
  const d = c.deployment;
  const cfg = c.configuration;
  const moved = cfg.keys.filter((k) => k.change !== 'unchanged');
  const same = cfg.keys.filter((k) => k.change === 'unchanged');
  const counts = ['changed', 'added', 'removed', 'unchanged'].filter((n) => cfg[n]).map((n) => `${cfg[n]} ${n}`).join(' · ');
  return h('div', { class: 'changes', testid: 'decision-changes' },
    h('h3', {}, `What changes in ${p.to}`),
    h('div', { class: 'change-line', testid: 'change-deployment', 'data-changed': String(d.changed) },
      h('span', { class: 'label' }, 'Deployment'),
      d.from ? h('strong', { class: d.changed ? 'diff-old' : '' }, d.from.version) : h('span', { class: 'muted' }, 'none'),
      h('span', { class: 'arrow', 'aria-label': 'becomes' }, '→'),
      h('strong', { class: d.changed ? 'diff-new' : '' }, d.to.version),
      d.changed ? null : h('span', { class: 'muted small' }, '(unchanged)'),
      d.changed && d.from && d.from.version === d.to.version ? h('span', { class: 'muted small' }, '(another artifact)') : null),
    h('div', { class: 'change-line', testid: 'change-configuration' },
      h('span', { class: 'label' }, 'Configuration'),
      cfg.newRevision
        ? h('span', {}, cfg.fromRevision ? `revision ${cfg.fromRevision}` : 'none', ' → a new revision', counts ? h('span', { class: 'muted' }, ` · ${counts}`) : null)
        : h('span', { class: 'muted' }, cfg.fromRevision ? `stays at revision ${cfg.fromRevision}` : 'none, and none is promoted')),
    moved.length ? table(['Key', 'Change', `Now in ${p.to}`, 'After'], moved.map(diffRow), { class: 'config-table diff-table' }) : null,
    same.length ? h('details', { testid: 'changes-unchanged' }, h('summary', {}, `${same.length} unchanged key${same.length === 1 ? '' : 's'}`),
      h('table', { class: 'config-table diff-table' }, h('tbody', {}, same.map(diffRow)))) : null,
    cfg.newRevision && !cfg.keys.length ? h('p', { class: 'muted small' }, 'No values before or after.') : null);
}

async function decide(p, action, done) {
  const reject = action === 'reject';
  const comment = field(reject ? 'Why (required)' : 'Comment (optional)', h('textarea', { rows: 3, required: reject, testid: 'decision-comment' }));
  // The list leaves out what a promotion changes; the promotion itself says it.
  const changes = h('div', { testid: 'decision-changes-box' }, loading());
  get(`/promotions/${enc(p.id)}`).then((full) => fill(changes, changesView(full)), (e) => fill(changes, failure(e)));
  // A refused or failed decision (409: the source or target changed) shows in the dialog; the list refreshes either way.
  await modal({
    title: `${reject ? 'Reject' : action === 'cancel' ? 'Cancel' : 'Approve'} promotion #${p.id}`, submit: reject ? 'Reject' : action === 'cancel' ? 'Cancel promotion' : 'Approve', danger: reject || action === 'cancel', cancel: 'Back',
    testid: 'decision-modal', wide: true,
    body: [h('p', {}, `${p.project}/${p.integration}: ${p.deployment?.version ?? ''} from ${p.from} to ${p.to}, configuration revision ${p.sourceConfigRevision ?? '—'}.`),
      changes,
      action === 'approve' ? h('p', { class: 'muted small' }, 'When enough approvals are in, the promotion is applied at once: a new deployment record and configuration revision in ', p.to, '.') : null, comment],
    onSubmit: async () => {
      const text = comment.input.value.trim();
      if (reject && !text) throw new Error('Say why you reject it.');
      const r = await post(`/promotions/${enc(p.id)}/${action}`, { comment: text || undefined });
      toast(action === 'approve' ? (r?.status === 'applied' ? `Approved: promotion #${p.id} applied to ${p.to}.` : `Approved promotion #${p.id}.`) : `Promotion #${p.id} ${reject ? 'rejected' : 'cancelled'}.`, 'ok');
      return true;
    },
  });
  refreshAwaiting();
  done?.();
}

/** A table of promotions with their status and, for pending ones, the actions the user may take. */
export function promotionTable(items, envs, { showIntegration = false, done, emptyText = 'No promotions yet.' } = {}) {
  if (!items.length) return empty(emptyText);
  const byHandle = new Map(envs.map((e) => [e.handle, e]));
  const me = session.user?.username;
  return h('div', { class: 'table-wrap' }, h('table', { testid: 'promotions-table' },
    h('thead', {}, h('tr', {}, [showIntegration ? 'Integration' : null, 'Promotion', 'Version / config', 'Status', 'Requested', 'Approvals', ''].filter((x) => x !== null).map((t) => h('th', {}, t)))),
    h('tbody', {}, items.map((p) => {
      const mine = p.requestedBy === me;
      const approved = (p.approvals || []).some((a) => a.user === me);
      // The server says whether the caller may decide now (mayApprove); older servers do not, so guess from permissions.
      const canAct = p.status === 'pending' && ('mayApprove' in p ? p.mayApprove : mayApprove(byHandle.get(p.to)));
      return h('tr', { testid: `promotion-${p.id}`, 'data-status': p.status },
        showIntegration ? h('td', {}, link(`/projects/${enc(p.project)}/integrations/${enc(p.integration)}`, `${p.project} / ${p.integration}`)) : null,
        h('td', {}, h('strong', {}, `#${p.id} `), `${p.from} → ${p.to}`, p.comment ? h('div', { class: 'muted small' }, p.comment) : null,
          (p.overrides || []).length ? h('div', { class: 'small' }, 'overrides: ', p.overrides.map((o, i) => [i ? ', ' : '', h('code', {}, dotted(o)), o.secret ? ' (secret)' : ''])) : null),
        h('td', {}, h('strong', {}, p.deployment?.version ?? '—'), h('div', { class: 'muted small' }, p.sourceConfigRevision ? `config r${p.sourceConfigRevision}` : 'no configuration'),
          p.appliedRevision ? h('div', { class: 'muted small' }, `→ r${p.appliedRevision} in ${p.to}`) : null),
        h('td', {}, badge(p.status, PROMO[p.status] ?? '', `promotion-status-${p.id}`),
          p.rejection ? h('div', { class: 'small muted', testid: `promotion-rejection-${p.id}` }, `by ${p.rejection.user}${p.rejection.comment ? `: ${p.rejection.comment}` : ''}`) : null,
          p.cancellation ? h('div', { class: 'small muted' }, `by ${p.cancellation.user}${p.cancellation.comment ? `: ${p.cancellation.comment}` : ''}`) : null,
          p.appliedAt ? h('div', { class: 'small muted' }, 'applied ', timeAgo(p.appliedAt)) : null,
          p.failure ? h('div', { class: 'small bad-text' }, typeof p.failure === 'string' ? p.failure : (p.failure.reason || p.failure.message || JSON.stringify(p.failure))) : null),
        h('td', {}, p.requestedBy, ' · ', timeAgo(p.requestedAt)),
        h('td', { testid: `promotion-approvals-${p.id}` }, `${(p.approvals || []).length}/${p.requiredApprovals}`,
          (p.approvals || []).map((a) => h('div', { class: 'muted small' }, `✓ ${a.user}${a.comment ? `: ${a.comment}` : ''}`))),
        h('td', {}, p.status === 'pending' ? h('div', { class: 'actions' },
          canAct && !mine && !approved ? button('Approve', () => decide(p, 'approve', done), { small: true, kind: 'primary', testid: `approve-${p.id}` }) : null,
          canAct && !mine ? button('Reject', () => decide(p, 'reject', done), { small: true, kind: 'danger', testid: `reject-${p.id}` }) : null,
          mine ? h('span', { class: 'muted small', testid: `own-promotion-${p.id}` }, 'Your request: another user approves') : null,
          mine ? button('Cancel', () => decide(p, 'cancel', done), { small: true, testid: `cancel-${p.id}` }) : null,
          approved ? h('span', { class: 'muted small' }, 'You approved') : null) : null));
    }))));
}
