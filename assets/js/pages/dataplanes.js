// Data planes admin: where environments run (a cloud account and region, or
// a site of your own), each with its environments and its health from their
// runtimes; create, edit and delete (environment:manage).

import { all, get, post, patch, del, enc } from '../api.js';
import { h, fill, card, loading, failure, button, pageHead, table, badge, field, input, select, modal, confirm, toast, when, link } from '../ui.js';
import { can } from '../app.js';
import { liveRefresh } from '../live.js';

const HEALTH = { healthy: 'ok', degraded: 'warn', down: 'bad', empty: '' };

/** A data plane's health badge with its runtime counts. */
export function healthBadge(health, testid) {
  const hl = health || { status: 'empty', running: 0, offline: 0 };
  const counts = hl.status === 'empty' ? 'no runtimes' : `${hl.running} running · ${hl.offline} offline`;
  return h('span', { class: 'chips', testid }, badge(hl.status, HEALTH[hl.status] ?? ''), h('span', { class: 'muted small' }, counts));
}

export async function render(ctx) {
  ctx.crumbs(['Administration', 'Data planes']);
  const list = h('div', { testid: 'data-planes' }, loading());
  const manage = can('environment:manage');
  fill(ctx.el, pageHead('Data planes', 'Where environments run: a cloud account and region, or a site of your own. Health comes from the runtimes of their environments.',
    manage ? button('New data plane', () => edit(null), { kind: 'primary', testid: 'new-data-plane' }) : null), card(null, null, list));
  async function load() {
    try {
      const [planes, envs] = await Promise.all([get('/data-planes'), all('/environments')]);
      if (!ctx.alive()) return;
      const names = new Map(envs.map((e) => [e.handle, e]));
      fill(list, table(['Data plane', 'Kind', 'Region', 'Environments', 'Health', 'Created', ''], planes.items.map((d) => h('tr', { testid: `data-plane-${d.handle}` },
        h('td', {}, h('strong', {}, d.name), h('div', { class: 'mono muted small' }, d.handle), d.description ? h('div', { class: 'muted small' }, d.description) : null),
        h('td', {}, badge(d.kind, d.kind === 'cloud' ? 'info' : 'accent')),
        h('td', {}, d.region || h('span', { class: 'muted' }, '—')),
        h('td', {}, d.environments.length
          ? h('div', { class: 'chips', testid: `data-plane-envs-${d.handle}` }, d.environments.map((e) => badge(names.get(e)?.name || e, names.get(e)?.critical ? 'warn' : '')))
          : h('span', { class: 'muted' }, 'none')),
        h('td', {}, healthBadge(d.health, `data-plane-health-${d.handle}`)),
        h('td', { class: 'muted' }, when(d.createdAt)),
        h('td', {}, manage ? h('div', { class: 'actions' },
          button('Edit', () => edit(d), { small: true, testid: `edit-data-plane-${d.handle}` }),
          button('Delete', () => remove(d), { small: true, kind: 'danger', testid: `delete-data-plane-${d.handle}`, disabled: d.environments.length > 0, title: d.environments.length ? 'Move its environments to another data plane first' : undefined })) : null))),
      { emptyText: 'No data planes.' }),
      h('p', { class: 'muted small' }, 'Environments are moved between data planes on the ', link('/environments', 'Environments'), ' page. When icpd is down, runtimes keep serving; their data plane health catches up when it returns.'));
    } catch (e) { fill(list, failure(e, load)); }
  }
  async function edit(d) {
    const name = field('Name', input({ required: true, value: d?.name || '', testid: 'data-plane-name' }));
    const handle = d ? null : field('Handle', input({ placeholder: 'derived from the name', testid: 'data-plane-handle' }), 'Lower case. Cannot change later.');
    const kind = field('Kind', select([['private', 'private — a site of your own'], ['cloud', 'cloud — a cloud account and region']], { value: d?.kind || 'private', testid: 'data-plane-kind' }));
    const region = field('Region', input({ value: d?.region || '', placeholder: 'eu-west-1', testid: 'data-plane-region' }));
    const desc = field('Description', h('textarea', { testid: 'data-plane-description' }, d?.description || ''));
    const ok = await modal({
      title: d ? `Edit ${d.name}` : 'New data plane', testid: 'data-plane-modal',
      body: [name, handle, kind, region, desc],
      onSubmit: () => {
        const body = { name: name.input.value.trim(), kind: kind.input.value, region: region.input.value.trim(), description: desc.input.value.trim() };
        return d ? patch(`/data-planes/${enc(d.handle)}`, body) : post('/data-planes', { ...body, handle: handle.input.value.trim() || undefined });
      },
    });
    if (ok) { toast('Data plane saved.', 'ok'); load(); }
  }
  async function remove(d) {
    if (!(await confirm(`Delete ${d.name}?`, 'Only a data plane that holds no environment can be deleted.'))) return;
    try { await del(`/data-planes/${enc(d.handle)}`); toast('Data plane deleted.', 'ok'); load(); } catch (err) { toast(err.message, 'bad'); }
  }
  await load();
  ctx.live(liveRefresh(load, (t) => t.startsWith('runtime')));
}
