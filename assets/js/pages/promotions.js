// Promotions across the organization: the approvals inbox (pending
// promotions the user may see, with Approve / Reject) and, by status, the
// ones already decided. The requester sees their own pending promotion with
// Cancel, never Approve (the server refuses that too).

import { get, all, qs } from '../api.js';
import { h, fill, card, loading, failure, pageHead, field, select } from '../ui.js';
import { liveRefresh } from '../live.js';
import { promotionTable, serverHas } from '../pipeline.js';

const STATUSES = [['pending', 'Pending (approvals inbox)'], ['applied', 'Applied'], ['rejected', 'Rejected'], ['cancelled', 'Cancelled'], ['failed', 'Failed'], ['', 'All']];

export async function render(ctx) {
  ctx.crumbs(['Promotions']);
  const sp = new URLSearchParams(location.search);
  let status = sp.has('status') ? sp.get('status') : 'pending';
  if (status === 'all') status = '';
  const results = h('div', { testid: 'promotions' }, loading());
  const filter = field('Status', select(STATUSES, { value: status, testid: 'promotions-status' }));
  fill(ctx.el, pageHead('Promotions', 'Deployment records and configuration moved to the next environment of a pipeline. A promotion into an environment that needs approval waits here until enough users other than its requester approve it.'),
    card(null, null, h('div', { class: 'toolbar' }, filter), results));
  if (!(await serverHas('/api/v1/promotions'))) {
    fill(results, failure(new Error('This icpd does not offer promotions yet.')));
    return;
  }
  let envs = [];
  filter.input.addEventListener('change', () => {
    status = filter.input.value;
    history.replaceState(null, '', `/promotions${qs({ status: status || 'all' })}`);
    fill(results, loading());
    load();
  });
  async function load() {
    try {
      if (!envs.length) envs = await all('/environments');
      const page = await get(`/promotions${qs({ status, limit: 100 })}`);
      if (!ctx.alive()) return;
      if (document.querySelector('.backdrop')) return; // a decision dialog is open: keep the row it came from
      fill(results, promotionTable(page.items, envs, {
        showIntegration: true, done: load,
        emptyText: status === 'pending' ? 'Nothing waits for approval.' : 'No promotions with this status.',
      }));
    } catch (e) { fill(results, failure(e, load)); }
  }
  await load();
  // Promotions raise no events; refresh on the periodic ticks.
  ctx.live(liveRefresh(load, () => false));
}
