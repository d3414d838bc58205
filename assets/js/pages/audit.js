// The audit log: every change and login attempt, newest first, filtered by
// actor, action and time (a range back from now, or from/to typed as the
// console shows times), with the reason a refused request was given. The
// filters live in the query string, so a view can be shared.

import { get, qs } from '../api.js';
import { h, fill, card, loading, failure, button, pageHead, table, badge, field, input, select, formatTime, parseTime } from '../ui.js';

const RANGES = [['', 'Any time'], ['1h', 'Last hour'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days'], ['custom', 'From … to …']];
const RANGE_MS = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3 };

/** "POST /api/v1/a/{b}/c" with places to break after each slash. */
function breakable(text) {
  return String(text).split('/').flatMap((part, i) => (i ? [h('wbr'), `/${part}`] : [part]));
}

export async function render(ctx) {
  ctx.crumbs(['Administration', 'Audit log']);
  const q = new URLSearchParams(location.search);
  const actor = field('Actor', input({ placeholder: 'user name', testid: 'audit-actor', value: q.get('actor') || '' }));
  const action = field('Action', input({ placeholder: 'e.g. POST /api/v1/secrets', testid: 'audit-action', value: q.get('action') || '' }));
  action.classList.add('grow');
  const initialRange = q.get('from') || q.get('to') ? 'custom' : (RANGE_MS[q.get('range')] ? q.get('range') : '');
  const range = field('Time', select(RANGES, { testid: 'audit-range', value: initialRange }));
  const timeHint = 'e.g. 2026-12-01 14:03, or 14:03 for today';
  const from = field('From', input({ placeholder: 'YYYY-MM-DD HH:MM', testid: 'audit-from', value: q.get('from') ? formatTime(Number(q.get('from')), { seconds: false }) : '' }), timeHint);
  const to = field('To', input({ placeholder: 'YYYY-MM-DD HH:MM', testid: 'audit-to', value: q.get('to') ? formatTime(Number(q.get('to')), { seconds: false }) : '' }), '');
  for (const f of [from, to]) f.classList.add('when');
  const showCustom = () => { const on = range.input.value === 'custom'; from.hidden = !on; to.hidden = !on; };
  range.input.addEventListener('change', showCustom);
  showCustom();
  const results = h('div', { testid: 'audit' }, loading());
  const form = h('form', { class: 'toolbar audit-filters', role: 'search' }, actor, action, range, from, to, button('Filter', null, { type: 'submit', testid: 'audit-filter' }));
  fill(ctx.el, pageHead('Audit log', 'Who changed what, when, and from where; why a request was refused.'), card(null, null, form, results));

  /** The time bounds the form asks for ({ from, to } in ms), or null after marking what is wrong. */
  function bounds() {
    const bad = (f, msg) => { f.hint.textContent = msg; f.hint.className = 'hint bad'; f.input.setAttribute('aria-invalid', 'true'); return null; };
    for (const f of [from, to]) { f.input.removeAttribute('aria-invalid'); f.hint.className = 'hint'; }
    from.hint.textContent = timeHint;
    to.hint.textContent = '';
    const r = range.input.value;
    if (RANGE_MS[r]) return { from: Date.now() - RANGE_MS[r] };
    if (r !== 'custom') return {};
    const out = {};
    for (const [f, key] of [[from, 'from'], [to, 'to']]) {
      const text = f.input.value.trim();
      if (!text) continue;
      const ms = parseTime(text);
      if (ms === null) return bad(f, 'Not a time: type it as 2026-12-01 14:03, or 14:03 for today.');
      out[key] = ms;
    }
    if (out.from !== undefined && out.to !== undefined && out.from >= out.to) return bad(to, 'Must be after From.');
    return out;
  }

  let rows = [];
  let cursor = null;
  let shown = null;
  async function load(more = false) {
    if (!more) {
      const b = bounds();
      if (!b) return;
      shown = {
        actor: actor.input.value.trim() || undefined,
        action: action.input.value.trim() || undefined,
        from: b.from === undefined ? undefined : new Date(b.from).toISOString(),
        to: b.to === undefined ? undefined : new Date(b.to).toISOString(),
      };
      const r = range.input.value;
      history.replaceState(null, '', `/audit${qs({ actor: shown.actor, action: shown.action, range: RANGE_MS[r] ? r : undefined, from: r === 'custom' ? b.from : undefined, to: r === 'custom' ? b.to : undefined })}`);
      rows = [];
      cursor = null;
      fill(results, loading());
    }
    try {
      const page = await get(`/audit${qs({ ...shown, limit: 50, cursor: more ? cursor : undefined })}`);
      if (!ctx.alive()) return;
      rows.push(...page.items);
      cursor = page.nextCursor;
      fill(results, h('div', { class: 'audit-table' }, table(['When', 'Actor', 'Action', 'Target', 'Outcome', 'Client'], rows.map((r) => h('tr', { testid: `audit-row-${r.id}` },
        h('td', { class: 'muted nowrap', title: formatTime(r.at, { seconds: true }) }, formatTime(r.at)),
        h('td', { class: 'actor' }, r.actor),
        h('td', { class: 'mono wrap' }, breakable(r.action)),
        h('td', { class: 'mono small wrap' }, breakable(r.target)),
        h('td', { class: 'outcome' }, badge(r.outcome, r.outcome === 'ok' ? 'ok' : 'bad'),
          r.reason ? h('div', { class: 'small bad-text reason', testid: `audit-reason-${r.id}` }, r.reason) : null),
        h('td', { class: 'mono muted nowrap' }, r.client))), { testid: 'audit-table', emptyText: 'No entries match.' })),
      h('div', { class: 'pager' }, h('span', {}, `${rows.length} of ${page.total}`), cursor ? button('Load more', () => load(true)) : null));
    } catch (e) { fill(results, failure(e, () => load())); }
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  await load();
}
