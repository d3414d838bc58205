// Environments admin: create, edit (name, critical flag, description), delete.

import { all, post, patch, del, enc } from '../api.js';
import { h, fill, card, loading, failure, button, pageHead, table, badge, field, input, modal, confirm, toast, when } from '../ui.js';
import { can } from '../app.js';

export async function render(ctx) {
  ctx.crumbs(['Administration', 'Environments']);
  const list = h('div', { testid: 'environments' }, loading());
  const manage = can('environment:manage');
  fill(ctx.el, pageHead('Environments', 'Where runtimes run. Acting in a critical environment needs environment:manage.',
    manage ? button('New environment', () => edit(null), { kind: 'primary', testid: 'new-environment' }) : null), card(null, null, list));
  async function load() {
    try {
      const envs = await all('/environments');
      if (!ctx.alive()) return;
      fill(list, table(['Name', 'Handle', 'Critical', 'Description', 'Created', ''], envs.map((e) => h('tr', { testid: `environment-${e.handle}` },
        h('td', {}, h('strong', {}, e.name)),
        h('td', { class: 'mono' }, e.handle),
        h('td', {}, e.critical ? badge('critical', 'warn') : h('span', { class: 'muted' }, 'no')),
        h('td', { class: 'muted' }, e.description),
        h('td', { class: 'muted' }, when(e.createdAt)),
        h('td', {}, manage ? h('div', { class: 'actions' },
          button('Edit', () => edit(e), { small: true, testid: `edit-environment-${e.handle}` }),
          button('Delete', () => remove(e), { small: true, kind: 'danger' })) : null))), { emptyText: 'No environments.' }));
    } catch (e) { fill(list, failure(e, load)); }
  }
  async function edit(e) {
    const name = field('Name', input({ required: true, value: e?.name || '', testid: 'environment-name' }));
    const handle = e ? null : field('Handle', input({ placeholder: 'derived from the name', testid: 'environment-handle' }), 'Lower case; used in Config.toml. Cannot change later.');
    const critical = h('input', { type: 'checkbox', id: 'env-critical', checked: e?.critical, testid: 'environment-critical' });
    const desc = field('Description', h('textarea', {}, e?.description || ''));
    const ok = await modal({
      title: e ? `Edit ${e.name}` : 'New environment', testid: 'environment-modal',
      body: [name, handle, h('label', { class: 'check', for: 'env-critical' }, critical, 'Critical (production): changes need environment:manage'), desc],
      onSubmit: () => (e
        ? patch(`/environments/${enc(e.handle)}`, { name: name.input.value.trim(), critical: critical.checked, description: desc.input.value.trim() })
        : post('/environments', { name: name.input.value.trim(), handle: handle.input.value.trim() || undefined, critical: critical.checked, description: desc.input.value.trim() })),
    });
    if (ok) { toast('Environment saved.', 'ok'); load(); }
  }
  async function remove(e) {
    if (!(await confirm(`Delete ${e.name}?`, 'Only an environment without runtimes or active secrets can be deleted.'))) return;
    try { await del(`/environments/${enc(e.handle)}`); toast('Environment deleted.', 'ok'); load(); } catch (err) { toast(err.message, 'bad'); }
  }
  await load();
}
