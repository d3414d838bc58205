// The audit log: every change and login attempt, newest first.

import { get, qs } from '../api.js';
import { h, fill, card, loading, failure, button, pageHead, table, badge, field, input, when } from '../ui.js';

export async function render(ctx) {
  ctx.crumbs(['Administration', 'Audit log']);
  const actor = field('Actor', input({ placeholder: 'user name', testid: 'audit-actor' }));
  const action = field('Action', input({ placeholder: 'e.g. POST /api/v1/secrets', testid: 'audit-action' }));
  action.classList.add('grow');
  const results = h('div', { testid: 'audit' }, loading());
  const form = h('form', { class: 'toolbar', role: 'search' }, actor, action, button('Filter', null, { type: 'submit' }));
  fill(ctx.el, pageHead('Audit log', 'Who changed what, when, and from where.'), card(null, null, form, results));
  let rows = [];
  let cursor = null;
  async function load(more = false) {
    if (!more) { rows = []; cursor = null; fill(results, loading()); }
    try {
      const page = await get(`/audit${qs({ actor: actor.input.value.trim(), action: action.input.value.trim(), limit: 50, cursor: more ? cursor : undefined })}`);
      if (!ctx.alive()) return;
      rows.push(...page.items);
      cursor = page.nextCursor;
      fill(results, table(['When', 'Actor', 'Action', 'Target', 'Outcome', 'Client'], rows.map((r) => h('tr', {},
        h('td', { class: 'muted' }, when(r.at)), h('td', {}, r.actor), h('td', { class: 'mono' }, r.action), h('td', { class: 'mono small' }, r.target),
        h('td', {}, badge(r.outcome, r.outcome === 'ok' ? 'ok' : 'bad')), h('td', { class: 'mono muted' }, r.client))), { emptyText: 'No entries match.' }),
      h('div', { class: 'pager' }, h('span', {}, `${rows.length} of ${page.total}`), cursor ? button('Load more', () => load(true)) : null));
    } catch (e) { fill(results, failure(e, () => load())); }
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  await load();
}
