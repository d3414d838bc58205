// Ingest tokens: credentials for log and metric shippers (Fluent Bit, an
// OpenTelemetry collector) that send a fixed Authorization header. List
// (never the tokens themselves), create (the token and a Fluent Bit
// [OUTPUT] section, shown once) and revoke, through
// /api/v1/observability/ingest-tokens. Listing needs integration:view on a
// token's scope; creating and revoking need integration:manage there plus
// the environment permission its criticality demands (the server decides).

import { get, all, post, del, enc } from '../api.js';
import { h, fill, card, loading, failure, empty, button, pageHead, table, badge, field, input, select, modal, confirm, toast, when, timeAgo, snippet, link } from '../ui.js';
import { can } from '../app.js';

const BASE = '/observability/ingest-tokens';
// Last use is recorded at most once a minute; the list refreshes as often.
const REFRESH_MS = 30000;

/** "dev / orders / order-sync", the parts that are set. */
const scopeText = (t) => [t.environment, t.project, t.integration].filter(Boolean).join(' / ');

export async function render(ctx) {
  ctx.crumbs(['Administration', 'Ingest tokens']);
  const manage = can('integration:manage');
  const list = h('div', { testid: 'ingest-tokens' }, loading());
  fill(ctx.el,
    pageHead('Ingest tokens', 'Credentials for log and metric shippers (Fluent Bit, an OpenTelemetry collector) that can only send a fixed header. Records a token brings are attributed to its scope.',
      can('observability:view') ? link('/logs', 'Open logs explorer', { class: 'btn', testid: 'ingest-open-logs' }) : null,
      manage ? button('New ingest token', () => create(), { kind: 'primary', testid: 'new-ingest-token' }) : null),
    card(null, null,
      h('p', { class: 'muted small lead' }, 'Shippers send ', h('code', {}, 'Authorization: Bearer icpi_…'), ' to the runtime listener: ',
        h('code', {}, '/icp/logs'), ', ', h('code', {}, '/icp/metrics'), ', ', h('code', {}, '/v1/logs'), ', ', h('code', {}, '/v1/metrics'),
        '. A token is shown only once, at creation; revoking one refuses it from its next request.'),
      list));

  let seq = 0;
  async function load() {
    const my = ++seq;
    try {
      const page = await get(BASE);
      if (!ctx.alive() || my !== seq) return;
      const items = [...page.items].sort((a, b) => (a.status === b.status ? Date.parse(b.createdAt) - Date.parse(a.createdAt) : a.status === 'active' ? -1 : 1));
      fill(list, items.length ? table(['Name', 'Scope', 'Created', 'Last used', 'Status', ''], items.map(row)) : empty('No ingest tokens yet.',
        'Create one for a shipper that sends logs or request records to the runtime listener.',
        manage ? button('New ingest token', () => create(), { kind: 'primary', testid: 'new-ingest-token-empty' }) : null));
    } catch (e) {
      if (my === seq && ctx.alive()) fill(list, failure(e, load));
    }
  }

  function row(t) {
    return h('tr', { testid: `ingest-token-${t.id}`, 'data-name': t.name, 'data-status': t.status },
      h('td', {}, h('strong', {}, t.name), h('div', { class: 'mono muted small' }, t.id)),
      h('td', { testid: `ingest-token-scope-${t.id}` }, h('div', { class: 'chips scope' },
        badge(t.environment, 'info'),
        t.project ? link(`/projects/${enc(t.project)}`, t.project) : h('span', { class: 'muted small' }, 'every project'),
        t.integration ? [h('span', { class: 'muted', 'aria-hidden': 'true' }, '/'), link(`/projects/${enc(t.project)}/integrations/${enc(t.integration)}`, t.integration)] : null)),
      h('td', { class: 'muted' }, when(t.createdAt), h('div', { class: 'small' }, 'by ', t.createdBy)),
      h('td', { class: 'muted', testid: `ingest-token-used-${t.id}` }, t.lastUsedAt ? timeAgo(t.lastUsedAt) : 'never'),
      h('td', {}, badge(t.status, undefined, `ingest-token-status-${t.id}`), t.revokedAt ? h('div', { class: 'muted small' }, when(t.revokedAt)) : null),
      h('td', {}, manage && t.status === 'active'
        ? h('div', { class: 'actions' }, button('Revoke', () => revoke(t), { small: true, kind: 'danger', testid: `revoke-ingest-token-${t.id}` }))
        : null));
  }

  async function create() {
    const [envs, projects] = await Promise.all([all('/environments').catch(() => []), all('/projects').catch(() => [])]);
    const name = field('Name', input({ maxlength: 100, placeholder: 'the scope, e.g. dev/orders/order-sync', testid: 'ingest-token-name' }), 'Optional: what ships with it, e.g. fluent-bit on node-3.');
    const env = field('Environment', select(envs.map((e) => [e.handle, e.critical ? `${e.name} (critical)` : e.name]), { required: true, testid: 'ingest-token-environment' }));
    const proj = field('Project', select([['', 'Every project (the whole environment)'], ...projects.map((p) => [p.handle, p.name])], { testid: 'ingest-token-project' }), 'Optional: narrows the token to one project.');
    const integ = field('Integration', select([['', 'Every integration of the project']], { testid: 'ingest-token-integration', disabled: true }), 'Optional: narrows it to one integration.');
    let integSeq = 0;
    proj.input.addEventListener('change', async () => {
      const my = ++integSeq;
      const p = proj.input.value;
      integ.input.disabled = true;
      fill(integ.input, h('option', { value: '' }, 'Every integration of the project'));
      if (!p) return;
      const items = await all(`/projects/${enc(p)}/integrations`).catch(() => []);
      if (my !== integSeq) return;
      integ.input.append(...items.map((i) => h('option', { value: i.handle }, i.name)));
      integ.input.disabled = false;
    });
    const scopeNote = h('p', { class: 'muted small', testid: 'ingest-token-scope-note' });
    const note = () => fill(scopeNote, 'Records it brings are attributed to ', h('strong', {}, [env.input.value, proj.input.value, integ.input.value].filter(Boolean).join(' / ') || '—'),
      '; a record naming a runtime outside that scope is rejected.');
    [env, proj, integ].forEach((f) => f.input.addEventListener('change', note));
    note();
    let made = null;
    await modal({
      title: 'New ingest token', submit: 'Create token', testid: 'ingest-token-modal',
      body: envs.length ? [name, env, proj, integ, scopeNote] : [h('p', {}, 'There is no environment yet.')],
      onSubmit: async () => {
        if (!env.input.value) throw new Error('Choose an environment.');
        made = await post(BASE, {
          name: name.input.value.trim() || undefined,
          environment: env.input.value,
          project: proj.input.value || undefined,
          integration: (proj.input.value && integ.input.value) || undefined,
        });
      },
    });
    if (!made) return;
    load();
    await modal({
      title: 'Ingest token created', wide: true, testid: 'ingest-token-created',
      body: [
        h('div', { class: 'callout warn', role: 'alert', testid: 'ingest-token-warning' }, h('strong', {}, 'Copy it now: the token is shown only once. '),
          'icpd keeps only its SHA-256 and cannot show it again; if it is lost, revoke it and create another.'),
        h('p', {}, h('strong', {}, made.name), ' · scope ', h('strong', {}, scopeText(made)), ' · id ', h('code', {}, made.id)),
        h('h3', {}, 'Token'),
        snippet(made.token, 'ingest-token-value'),
        h('h3', {}, 'Fluent Bit'),
        h('p', { class: 'muted small' }, 'An ', h('code', {}, '[OUTPUT]'), ' section for ', h('code', {}, 'fluent-bit.conf'),
          ' (the http output with Format json). Add ', h('code', {}, '?runtimeId=…'), ' to the URI to attribute the records to a known runtime; send request records to ',
          h('code', {}, '/icp/metrics'), ' the same way.'),
        snippet(made.fluentBitConfig, 'ingest-token-fluent-bit'),
        h('p', { class: 'muted small' }, 'An OpenTelemetry exporter uses the same token: ', h('code', {}, 'OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20icpi_…'), ' with ', h('code', {}, 'OTEL_EXPORTER_OTLP_PROTOCOL=http/json'), '.'),
      ],
    });
  }

  async function revoke(t) {
    if (!(await confirm(`Revoke ${t.name}?`, `Shippers using ingest token ${t.id} (${scopeText(t)}) are refused from their next request. This cannot be undone.`, { submit: 'Revoke' }))) return;
    try {
      await del(`${BASE}/${enc(t.id)}`);
      toast(`Ingest token ${t.name} revoked.`, 'ok');
      load();
    } catch (e) { toast(e.message, 'bad'); }
  }

  const timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  ctx.live(() => clearInterval(timer));
  await load();
}
