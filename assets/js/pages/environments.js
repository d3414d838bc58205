// Environments admin: create (saying where the new one went in the default
// pipeline), edit (name, critical flag, description, data plane and, when
// the server knows it, approvals a promotion into it needs), delete.

import { all, get, post, patch, del, enc } from '../api.js';
import { h, fill, card, loading, failure, button, pageHead, table, badge, field, input, select, modal, confirm, toast, when, link } from '../ui.js';
import { healthBadge } from './dataplanes.js';
import { can } from '../app.js';

export async function render(ctx) {
  ctx.crumbs(['Administration', 'Environments']);
  const list = h('div', { testid: 'environments' }, loading());
  const manage = can('environment:manage');
  fill(ctx.el, pageHead('Environments', 'Where runtimes run. Acting in a critical environment needs environment:manage.',
    manage ? button('New environment', () => edit(null), { kind: 'primary', testid: 'new-environment' }) : null), card(null, null, list));
  let planes = [];
  // requiredApprovals arrives with promotions; edit it only when the server shows it.
  let approvals = false;
  async function load() {
    try {
      let envs;
      [envs, planes] = await Promise.all([all('/environments'), get('/data-planes').then((r) => r.items)]);
      if (!ctx.alive()) return;
      approvals = envs.some((e) => 'requiredApprovals' in e);
      const byHandle = new Map(planes.map((d) => [d.handle, d]));
      fill(list, table(['Name', 'Handle', 'Critical', 'Data plane', ...(approvals ? ['#Approvals'] : []), 'Description', 'Created', ''], envs.map((e) => h('tr', { testid: `environment-${e.handle}` },
        h('td', {}, h('strong', {}, e.name)),
        h('td', { class: 'mono' }, e.handle),
        h('td', {}, e.critical ? badge('critical', 'warn') : h('span', { class: 'muted' }, 'no')),
        h('td', { testid: `environment-data-plane-${e.handle}` }, link('/data-planes', byHandle.get(e.dataPlane)?.name || e.dataPlane || '—'), byHandle.get(e.dataPlane) ? h('div', {}, healthBadge(byHandle.get(e.dataPlane).health)) : null),
        approvals ? h('td', { class: 'num', testid: `environment-approvals-${e.handle}`, title: 'Approvals a promotion into this environment needs' }, String(e.requiredApprovals ?? 0)) : null,
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
    const plane = field('Data plane', select(planes.map((d) => [d.handle, `${d.name} (${d.kind}${d.region ? `, ${d.region}` : ''})`]), { value: e?.dataPlane || 'default', testid: 'environment-data-plane' }));
    const required = approvals ? field('Approvals to promote into it', input({ type: 'number', min: 0, max: 10, step: 1, value: e ? String(e.requiredApprovals ?? 0) : '', placeholder: 'default: 1 if critical, else 0', testid: 'environment-required-approvals' }),
      'Users with environment permission, other than the requester, who must approve a promotion into this environment.') : null;
    let saved = null;
    const ok = await modal({
      title: e ? `Edit ${e.name}` : 'New environment', testid: 'environment-modal',
      body: [name, handle, h('label', { class: 'check', for: 'env-critical' }, critical, 'Critical (production): changes need environment:manage'), plane, required, desc],
      onSubmit: () => {
        const body = { name: name.input.value.trim(), critical: critical.checked, description: desc.input.value.trim(), dataPlane: plane.input.value };
        if (required && required.input.value.trim() !== '') {
          const n = Number(required.input.value);
          if (!Number.isInteger(n) || n < 0) throw new Error('Approvals must be a whole number from 0.');
          // Unchanged stays unsent, so a default (by criticality) stays a default.
          if (!e || n !== e.requiredApprovals) body.requiredApprovals = n;
        }
        return (e ? patch(`/environments/${enc(e.handle)}`, body) : post('/environments', { ...body, handle: handle.input.value.trim() || undefined })).then((r) => { saved = r; });
      },
    });
    // A new environment's answer says where it went in the default pipeline.
    if (ok) { toast(saved?.placement ? `Environment ${saved.handle} created: ${saved.placement.message}.` : 'Environment saved.', 'ok'); load(); }
  }
  async function remove(e) {
    if (!(await confirm(`Delete ${e.name}?`, 'Only an environment without runtimes or active secrets can be deleted.'))) return;
    try { await del(`/environments/${enc(e.handle)}`); toast('Environment deleted.', 'ok'); load(); } catch (err) { toast(err.message, 'bad'); }
  }
  await load();
}
