// Runtimes across the organization: filters, pagination, delete (with an
// optional secret revoke), and, filtered to an environment, the runtimes and
// log shippers icpd refused there lately (wrong or revoked secrets, ...).

import { get, all, del, qs, enc } from '../api.js';
import { h, fill, card, link, loading, failure, button, pageHead, table, badge, timeAgo, field, input, select, confirm, toast } from '../ui.js';
import { liveRefresh } from '../live.js';

export async function render(ctx) {
  ctx.crumbs(['Runtimes']);
  const sp = new URLSearchParams(location.search);
  const f = { environment: sp.get('environment') || '', status: sp.get('status') || '', type: sp.get('type') || '', project: sp.get('project') || '', q: sp.get('q') || '' };
  let envs = [];
  try { envs = await all('/environments'); } catch { /* the filter still works by typing */ }
  const envSel = field('Environment', select([['', 'All'], ...envs.map((e) => [e.handle, e.name])], { value: f.environment, testid: 'filter-environment' }));
  const statusSel = field('Status', select([['', 'Any'], 'RUNNING', 'OFFLINE'], { value: f.status, testid: 'filter-status' }));
  const typeSel = field('Type', select([['', 'Any'], 'BI', 'MI'], { value: f.type, testid: 'filter-type' }));
  const proj = field('Project', input({ value: f.project, placeholder: 'handle', testid: 'filter-project' }));
  const text = field('Search', input({ type: 'search', value: f.q, placeholder: 'Name or id', testid: 'filter-q' }));
  text.classList.add('grow');
  const results = h('div', { testid: 'runtimes-results' });
  const refusals = h('div', { testid: 'refusals' });
  fill(ctx.el, pageHead('Runtimes', 'Every runtime registered with this control plane that you may see.'),
    card(null, null, h('form', { class: 'toolbar', role: 'search' }, envSel, statusSel, typeSel, proj, text), results),
    refusals);

  let cursors = [undefined];
  let pageNo = 0;
  const apply = () => {
    Object.assign(f, { environment: envSel.input.value, status: statusSel.input.value, type: typeSel.input.value, project: proj.input.value.trim(), q: text.input.value.trim() });
    history.replaceState(null, '', `/runtimes${qs(f)}`);
    cursors = [undefined];
    pageNo = 0;
    fill(results, loading());
    load();
    loadRefusals();
  };
  for (const s of [envSel, statusSel, typeSel]) s.input.addEventListener('change', apply);
  let timer;
  for (const s of [proj, text]) s.input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(apply, 300); });
  ctx.el.querySelector('form').addEventListener('submit', (e) => { e.preventDefault(); apply(); });

  async function load() {
    try {
      const page = await get(`/runtimes${qs({ ...f, limit: 25, cursor: cursors[pageNo] })}`);
      if (!ctx.alive()) return;
      cursors[pageNo + 1] = page.nextCursor;
      fill(results,
        table(['Runtime', 'Status', 'Project / integration', 'Environment', 'Type', 'Last heartbeat', ''], page.items.map((r) => h('tr', { testid: `runtimes-row-${r.name || r.runtimeId}` },
          h('td', {}, link(`/runtimes/${enc(r.runtimeId)}`, r.name || r.runtimeId), h('div', { class: 'mono muted small' }, r.runtimeId.slice(0, 8))),
          h('td', {}, badge(r.status)),
          h('td', {}, link(`/projects/${enc(r.project)}/integrations/${enc(r.integration)}`, `${r.project} / ${r.integration}`)),
          h('td', {}, r.environment),
          h('td', {}, r.runtimeType),
          h('td', {}, timeAgo(r.lastHeartbeat)),
          h('td', {}, h('div', { class: 'actions' }, button('Delete', () => remove(r), { small: true, kind: 'danger' }))))),
        { emptyText: 'No runtime matches these filters.' }),
        h('div', { class: 'pager' }, h('span', {}, `${page.total} runtime${page.total === 1 ? '' : 's'} · page ${pageNo + 1}`),
          h('div', { class: 'actions' },
            button('Previous', () => { pageNo -= 1; load(); }, { disabled: pageNo === 0, small: true }),
            button('Next', () => { pageNo += 1; load(); }, { disabled: !page.nextCursor, small: true }))));
    } catch (e) {
      fill(results, failure(e, load));
    }
  }

  // Refusals are kept in memory per environment (the last 100), so the
  // panel shows only when the page is filtered to one.
  async function loadRefusals() {
    const env = f.environment;
    if (!env) { fill(refusals); return; }
    let body;
    try {
      const { items } = await get(`/refusals${qs({ environment: env, limit: 20 })}`);
      if (!ctx.alive() || env !== f.environment) return;
      body = table(['When', 'From', 'Reason', 'Credential / runtime', 'Answer'], items.map((r) => h('tr', { testid: `refusal-${r.reason}` },
        h('td', {}, timeAgo(r.at)),
        h('td', { class: 'mono small' }, r.source),
        h('td', {}, badge(r.reason.replaceAll('_', ' '), r.reason === 'rate_limited' ? 'warn' : 'bad')),
        h('td', {}, r.keyId ? h('div', { class: 'mono small' }, `${r.credential || 'key'} ${r.keyId}`) : null,
          r.runtimeId ? h('div', { class: 'mono muted small' }, r.runtimeId.slice(0, 8)) : null),
        h('td', {}, h('div', { class: 'small' }, `${r.status} · ${r.request}`), h('div', { class: 'muted small' }, r.message)))),
      { testid: 'refusals-table', emptyText: `No runtime or log shipper was refused in ${env} since icpd started.` });
    } catch (e) {
      if (!ctx.alive()) return;
      body = failure(e, loadRefusals);
    }
    fill(refusals, card('Recent refusals', button('Refresh', loadRefusals, { small: true, testid: 'refusals-refresh' }),
      h('p', { class: 'muted small' }, 'Runtimes and log shippers turned away in this environment: wrong, revoked or expired secrets, another environment or integration, too many heartbeats.'),
      body));
  }

  async function remove(r) {
    const revoke = h('input', { type: 'checkbox', id: 'revoke-secret' });
    if (!(await confirm(`Delete runtime ${r.name || r.runtimeId}?`, 'If it is still running it registers again with its next full heartbeat.',
      { extra: h('label', { class: 'check', for: 'revoke-secret' }, revoke, 'Also revoke its secret (if no other runtime uses it)') }))) return;
    try { await del(`/runtimes/${enc(r.runtimeId)}${revoke.checked ? '?revokeSecret=true' : ''}`); toast('Runtime deleted.', 'ok'); load(); } catch (e) { toast(e.message, 'bad'); }
  }

  fill(results, loading());
  loadRefusals();
  await load();
  ctx.live(liveRefresh(load, (t) => t.startsWith('runtime')));
}
