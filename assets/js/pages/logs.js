// The logs explorer: runtime log records filtered by environment, project,
// integration, runtime, level, phrase and time range, ordered by their own
// time (newest or oldest first, as the query API orders them, however late
// a batch arrived), with "Load more" (nextCursor), a live tail over
// Server-Sent Events (GET /api/v1/observability/logs/tail with the same
// filters; each record placed at its time) and download.
// The filters live in the URL query, so a view can be shared and survives a
// reload.

import { get, all, qs, enc } from '../api.js';
import { h, fill, card, loading, failure, empty, button, pageHead, field, input, select, link, formatTime } from '../ui.js';
import { can } from '../app.js';
import { LEVELS, levelBadge, compareLogs } from '../observability.js';

const PAGE = 100;
// The table keeps at most this many rows while tailing; older ones drop off.
const MAX_ROWS = 1000;
const RANGES = [['15m', 'Last 15 minutes', 15 * 60e3], ['1h', 'Last hour', 3600e3], ['6h', 'Last 6 hours', 6 * 3600e3], ['24h', 'Last 24 hours', 24 * 3600e3], ['7d', 'Last 7 days', 7 * 24 * 3600e3], ['custom', 'Custom…', 0]];
const FILTER_KEYS = ['environment', 'project', 'integration', 'runtime', 'level', 'q', 'range', 'from', 'to', 'order', 'live'];
const COLUMNS = ['Time', 'Level', 'Environment', 'Integration', 'Runtime', 'Module', 'Message'];
const LIVE_TEXT = { off: 'Live tail off', connecting: 'Connecting…', open: 'Live', reconnecting: 'Reconnecting…', closed: 'Disconnected; retrying…', paused: 'Paused' };

const two = (n) => String(n).padStart(2, '0');
/** An RFC 3339 time as a datetime-local value (local time, minutes). */
function toLocalInput(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}`;
}
const fromLocalInput = (v) => (v ? new Date(v).toISOString() : '');

/** Wraps each case-insensitive occurrence of `phrase` in <mark>. */
function highlight(text, phrase) {
  const p = phrase.replace(/^"|"$/g, '').trim();
  if (!p) return text;
  const out = [];
  const lower = text.toLowerCase();
  const needle = p.toLowerCase();
  let at = 0;
  for (let i = lower.indexOf(needle); i !== -1 && out.length < 200; i = lower.indexOf(needle, i + needle.length)) {
    out.push(text.slice(at, i), h('mark', {}, text.slice(i, i + needle.length)));
    at = i + needle.length;
  }
  out.push(text.slice(at));
  return out;
}

export async function render(ctx) {
  ctx.crumbs(['Logs']);
  const sp = new URLSearchParams(location.search);
  const f = Object.fromEntries(FILTER_KEYS.map((k) => [k, sp.get(k) || '']));
  if (!RANGES.some(([k]) => k === f.range)) f.range = f.from || f.to ? 'custom' : '24h';
  if (f.order !== 'asc') f.order = 'desc';
  if (!f.project) f.integration = '';

  fill(ctx.el, loading());
  // The catalog for the selects and runtime names. A failure leaves the
  // choices empty; the log query itself still works.
  const [envs, projects, runtimes] = await Promise.all([
    all('/environments').catch(() => []),
    all('/projects').catch(() => []),
    all('/runtimes').catch(() => []),
  ]);
  if (!ctx.alive()) return;
  const runtimeNames = new Map(runtimes.map((r) => [r.runtimeId, r.name || r.runtimeId.slice(0, 8)]));
  const runtimeLabel = (id) => (id ? runtimeNames.get(id) || id.slice(0, 8) : '—');

  // Filters.
  const envSel = field('Environment', select([['', 'All'], ...envs.map((e) => [e.handle, e.name])], { value: f.environment, testid: 'logs-environment' }));
  const projSel = field('Project', select([['', 'All'], ...projects.map((p) => [p.handle, p.name])], { value: f.project, testid: 'logs-project' }));
  const integSel = field('Integration', select([['', 'All']], { testid: 'logs-integration', disabled: !f.project, title: f.project ? undefined : 'Choose a project first' }));
  const rtSel = field('Runtime', select([['', 'All']], { testid: 'logs-runtime' }));
  const rangeSel = field('Time range', select(RANGES.map(([k, label]) => [k, label]), { value: f.range, testid: 'logs-range' }));
  const fromIn = field('From', h('input', { type: 'datetime-local', value: toLocalInput(f.from), testid: 'logs-from' }));
  const toIn = field('To', h('input', { type: 'datetime-local', value: toLocalInput(f.to), testid: 'logs-to', title: 'Leave empty for "until now"' }));
  fromIn.classList.add('when');
  toIn.classList.add('when');
  const orderSel = field('Order', select([['desc', 'Newest first'], ['asc', 'Oldest first']], { value: f.order, testid: 'logs-order' }));
  const search = field('Search', input({ type: 'search', value: f.q, placeholder: 'A word or phrase in the message', testid: 'logs-search' }));
  search.classList.add('grow');
  const chosenLevels = new Set(f.level ? f.level.split(',').map((l) => l.trim().toUpperCase()) : []);
  const levelBoxes = LEVELS.map((l) => h('input', { type: 'checkbox', id: `level-${l}`, value: l, checked: chosenLevels.has(l), testid: `logs-level-${l}` }));
  const levels = h('fieldset', { class: 'levels', testid: 'logs-levels' },
    h('legend', {}, 'Levels'),
    levelBoxes.map((b) => h('label', { class: 'check', for: b.id }, b, levelBadge(b.value))));

  // Live tail controls.
  const liveBtn = h('button', { type: 'button', class: 'btn live-toggle', 'aria-pressed': String(!!f.live), testid: 'logs-live-toggle', title: 'Show new records as they arrive' }, 'Live tail');
  const pauseBtn = button('Pause', null, { small: true, testid: 'logs-pause' });
  const liveState = h('span', { class: 'live', role: 'status', testid: 'logs-live-state', 'data-state': 'off' }, LIVE_TEXT.off);
  const liveCount = h('span', { class: 'muted small', testid: 'logs-live-count' });

  const dlNd = h('a', { class: 'btn', testid: 'logs-download-ndjson', download: '' }, 'Download NDJSON');
  const dlText = h('a', { class: 'btn', testid: 'logs-download-text', download: '' }, 'Download text');

  // Results.
  const tbody = h('tbody', { testid: 'logs-rows' });
  const tableWrap = h('div', { class: 'table-wrap logs-results' }, h('table', { class: 'logs', testid: 'logs-table' },
    h('thead', {}, h('tr', {}, COLUMNS.map((t) => h('th', { scope: 'col' }, t)))),
    tbody));
  const stateBox = h('div', { class: 'logs-results', testid: 'logs-state' });
  const countEl = h('span', { testid: 'logs-count' });
  const moreBtn = button('Load more', () => loadMore(), { testid: 'logs-load-more' });
  const pager = h('div', { class: 'pager' }, countEl, moreBtn);

  const form = h('form', { class: 'stack', role: 'search', testid: 'logs-filters' },
    h('div', { class: 'toolbar tight' }, envSel, projSel, integSel, rtSel),
    h('div', { class: 'toolbar tight' }, rangeSel, fromIn, toIn, orderSel, search),
    h('div', { class: 'toolbar tight' }, levels, h('div', { class: 'live-bar' }, liveBtn, liveState, liveCount, pauseBtn)));
  fill(ctx.el,
    pageHead('Logs', 'Runtime log records from every integration you may see. Click a record for its attributes.', dlNd, dlText,
      can('integration:view') ? link('/ingest-tokens', 'Ingest tokens', { class: 'btn', testid: 'logs-ingest-tokens', title: 'Credentials for Fluent Bit and other log shippers' }) : null),
    card(null, null, form, stateBox, tableWrap, pager));

  // Catalog-dependent choices.
  let integrations = [];
  async function loadIntegrations() {
    integrations = f.project ? await all(`/projects/${enc(f.project)}/integrations`).catch(() => []) : [];
    if (!ctx.alive()) return;
    fill(integSel.input, h('option', { value: '' }, 'All'), integrations.map((i) => h('option', { value: i.handle }, i.name)));
    integSel.input.disabled = !f.project;
    integSel.input.title = f.project ? '' : 'Choose a project first';
    integSel.input.value = integrations.some((i) => i.handle === f.integration) ? f.integration : '';
    if (!integSel.input.value) f.integration = '';
  }
  function fillRuntimes() {
    const list = runtimes.filter((r) => (!f.environment || r.environment === f.environment) && (!f.project || r.project === f.project) && (!f.integration || r.integration === f.integration));
    // Keep a runtime named in the URL even if the catalog does not list it.
    const opts = list.map((r) => [r.runtimeId, `${r.name || r.runtimeId.slice(0, 8)} (${r.environment})`]);
    if (f.runtime && !opts.some(([id]) => id === f.runtime)) opts.unshift([f.runtime, runtimeLabel(f.runtime)]);
    fill(rtSel.input, h('option', { value: '' }, 'All'), opts.map(([v, l]) => h('option', { value: v }, l)));
    rtSel.input.value = f.runtime;
  }

  // Query parameters.
  const presetMs = () => RANGES.find(([k]) => k === f.range)?.[2] || 0;
  const scope = () => ({ environment: f.environment, project: f.project, integration: f.project ? f.integration : '', runtime: f.runtime, level: f.level, q: f.q });
  const bounds = () => (f.range === 'custom' ? { from: f.from, to: f.to } : { from: new Date(Date.now() - presetMs()).toISOString(), to: '' });
  const liveAllowed = () => !(f.range === 'custom' && f.to);
  const liveOn = () => !!f.live && liveAllowed();

  function syncControls() {
    const custom = f.range === 'custom';
    fromIn.hidden = !custom;
    toIn.hidden = !custom;
    liveBtn.setAttribute('aria-pressed', String(liveOn()));
    liveBtn.classList.toggle('primary', liveOn());
    liveBtn.disabled = !liveAllowed();
    liveBtn.title = liveAllowed() ? 'Show new records as they arrive' : 'Live tail needs a range that reaches now (clear "To")';
    pauseBtn.hidden = !liveOn();
    liveCount.hidden = !liveOn();
    // New records arrive at the top, so a live view is newest first.
    orderSel.input.disabled = liveOn();
    orderSel.input.value = liveOn() ? 'desc' : f.order;
    orderSel.input.title = liveOn() ? 'Live tail shows the newest first' : '';
    const dl = (format) => `/api/v1/observability/logs/download${qs({ ...scope(), ...bounds(), order: f.order, format })}`;
    dlNd.href = dl('ndjson');
    dlText.href = dl('text');
  }

  function readForm() {
    f.environment = envSel.input.value;
    f.runtime = rtSel.input.value;
    f.integration = f.project ? integSel.input.value : '';
    f.range = rangeSel.input.value;
    f.from = f.range === 'custom' ? fromLocalInput(fromIn.input.value) : '';
    f.to = f.range === 'custom' ? fromLocalInput(toIn.input.value) : '';
    // While live tail forces newest first, the select shows that, not the choice.
    if (!orderSel.input.disabled) f.order = orderSel.input.value;
    f.q = search.input.value.trim();
    const lv = levelBoxes.filter((b) => b.checked).map((b) => b.value);
    f.level = lv.length && lv.length < LEVELS.length ? lv.join(',') : '';
  }

  function apply() {
    readForm();
    const keep = { ...f, order: f.order === 'desc' ? '' : f.order, range: f.range === '24h' ? '' : f.range };
    history.replaceState(null, '', `/logs${qs(keep)}`);
    syncControls();
    retail();
    load();
  }

  // Table state.
  const shown = new Map(); // id -> { row, detail }
  let nextCursor = null;
  let trimmed = false;
  let loaded = false;
  let loadSeq = 0;
  let loadPromise = Promise.resolve();
  const pending = []; // live records received while the first page loads
  let source = null;
  let tailKey = '';
  let retryTimer = null;
  let paused = false;
  const held = []; // records received while paused
  let received = 0;

  function logRow(r, fresh) {
    const tr = h('tr', {
      class: `log-row${fresh ? ' fresh' : ''}`, tabindex: '0', 'aria-expanded': 'false', testid: `log-row-${r.id}`,
      'data-id': r.id, 'data-level': r.level, 'data-runtime': r.runtimeId || '',
    },
    h('td', { class: 'mono nowrap', title: r.time }, h('time', { datetime: r.time }, formatTime(r.time, { ms: true }))),
    h('td', {}, levelBadge(r.level, `log-level-${r.id}`)),
    h('td', { class: 'small', testid: `log-environment-${r.id}` }, r.environment),
    h('td', { class: 'small' }, r.project ? `${r.project} / ${r.integration ?? '—'}` : h('span', { class: 'muted' }, '—')),
    h('td', { class: 'mono small', testid: `log-runtime-${r.id}`, title: r.runtimeId || '' }, runtimeLabel(r.runtimeId)),
    h('td', { class: 'mono small' }, r.module || '—'),
    h('td', { class: 'log-message', testid: `log-message-${r.id}` }, highlight(r.message, f.q)));
    if (fresh) tr.addEventListener('animationend', () => tr.classList.remove('fresh'), { once: true });
    const entry = { row: tr, detail: null, record: r };
    const toggle = () => {
      if (entry.detail) { entry.detail.remove(); entry.detail = null; tr.setAttribute('aria-expanded', 'false'); return; }
      entry.detail = detailRow(r);
      tr.after(entry.detail);
      tr.setAttribute('aria-expanded', 'true');
    };
    tr.addEventListener('click', () => { if (!getSelection().toString()) toggle(); });
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(); } });
    shown.set(r.id, entry);
    return tr;
  }

  function detailRow(r) {
    const value = (v) => (v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v));
    const attrs = Object.entries(r.attributes || {});
    const base = [['Time', r.time], ['Environment', r.environment], ['Project', r.project], ['Integration', r.integration], ['Runtime', r.runtimeId ? `${runtimeLabel(r.runtimeId)} · ${r.runtimeId}` : null], ['Module', r.module], ['Record id', r.id]];
    return h('tr', { class: 'log-detail', testid: `log-detail-${r.id}` }, h('td', { colspan: String(COLUMNS.length) },
      r.message.includes('\n') ? h('pre', { class: 'log-full' }, r.message) : null,
      h('dl', { class: 'kv' },
        base.filter(([, v]) => v !== null && v !== undefined && v !== '').map(([k, v]) => [h('dt', {}, k), h('dd', { class: 'mono' }, v)]),
        attrs.map(([k, v]) => [h('dt', { class: 'mono', testid: `log-attr-${r.id}-${k}` }, k), h('dd', { class: 'mono' }, value(v))])),
      attrs.length ? null : h('p', { class: 'muted small' }, 'No attributes.')));
  }

  function removeEntry(id) {
    const e = shown.get(id);
    if (!e) return;
    e.row.remove();
    e.detail?.remove();
    shown.delete(id);
  }

  function showCount() {
    const n = shown.size;
    stateBox.replaceChildren();
    tableWrap.hidden = n === 0;
    if (n === 0 && loaded) fill(stateBox, empty('No log records match.', liveOn() ? 'Waiting for new records: they appear here as they arrive.' : 'Widen the time range or clear a filter. Runtimes send logs to /icp/logs or /v1/logs on the runtime listener.'));
    countEl.textContent = n ? `${n.toLocaleString()} record${n === 1 ? '' : 's'}${trimmed ? ` (the newest ${MAX_ROWS.toLocaleString()} are kept while tailing)` : ''}` : '';
    moreBtn.hidden = !nextCursor || trimmed;
  }

  // Records from the tail (or a catch-up query), placed at their own time
  // among the rows (newest on top: a live view is newest first), so a late
  // batch lands where a query would put it. One older than the range, or
  // older than the last row while older pages are still to load (it comes
  // with "Load more"), is not shown.
  function insertLive(items) {
    let added = 0;
    const from = Date.parse(bounds().from);
    for (const r of [...items].sort(compareLogs)) {
      if (shown.has(r.id) || Date.parse(r.time) < from) continue;
      let before = tbody.querySelector('tr.log-row');
      while (before && compareLogs(shown.get(before.dataset.id).record, r) > 0) {
        before = before.nextElementSibling;
        while (before && !before.classList.contains('log-row')) before = before.nextElementSibling;
      }
      if (!before && nextCursor) continue;
      const row = logRow(r, true);
      if (before) tbody.insertBefore(row, before); else tbody.append(row);
      added += 1;
    }
    while (shown.size > MAX_ROWS) {
      const last = [...tbody.querySelectorAll('tr.log-row')].at(-1);
      removeEntry(last.dataset.id);
      trimmed = true;
    }
    if (added) { received += added; showLiveCount(); }
    showCount();
  }

  async function load() {
    const my = ++loadSeq;
    loaded = false;
    // The stream (re)opened in the same task, so anything held is from the old filters.
    pending.length = 0;
    for (const id of [...shown.keys()]) removeEntry(id);
    nextCursor = null;
    trimmed = false;
    tableWrap.hidden = true;
    moreBtn.hidden = true;
    countEl.textContent = '';
    fill(stateBox, loading('Loading log records…'));
    const run = (async () => {
      let page;
      try {
        page = await get(`/observability/logs${qs({ ...scope(), ...bounds(), order: liveOn() ? 'desc' : f.order, limit: PAGE })}`);
      } catch (e) {
        if (my !== loadSeq || !ctx.alive()) return;
        fill(stateBox, failure(e.status === 403 ? new Error('You may not view these logs.') : e, load));
        return;
      }
      if (my !== loadSeq || !ctx.alive()) return;
      tbody.append(...page.items.filter((r) => !shown.has(r.id)).map((r) => logRow(r, false)));
      nextCursor = page.nextCursor || null;
      loaded = true;
      showCount();
      if (pending.length) insertLive(pending.splice(0));
    })();
    loadPromise = run;
    await run;
  }

  async function loadMore() {
    if (!nextCursor) return;
    moreBtn.disabled = true;
    const my = loadSeq;
    try {
      const page = await get(`/observability/logs${qs({ ...scope(), ...bounds(), order: liveOn() ? 'desc' : f.order, limit: PAGE, cursor: nextCursor })}`);
      if (my !== loadSeq || !ctx.alive()) return;
      tbody.append(...page.items.filter((r) => !shown.has(r.id)).map((r) => logRow(r, false)));
      nextCursor = page.nextCursor || null;
      showCount();
    } catch (e) {
      fill(stateBox, failure(e, loadMore));
    } finally {
      moreBtn.disabled = false;
    }
  }

  // Live tail.

  function setLive(state) {
    liveState.dataset.state = state;
    liveState.className = `live ${state === 'open' && !paused ? 'on' : state === 'off' ? '' : 'poll'}`;
    liveState.textContent = paused && state === 'open' ? `${LIVE_TEXT.paused} · ${held.length} new` : LIVE_TEXT[state];
  }
  function showLiveCount() {
    liveCount.textContent = received ? `${received.toLocaleString()} new since connecting` : '';
  }

  function closeTail() {
    clearTimeout(retryTimer);
    source?.close();
    source = null;
  }

  function incoming(items) {
    if (!loaded) {
      pending.push(...items);
      if (pending.length > MAX_ROWS) pending.splice(0, pending.length - MAX_ROWS);
      return;
    }
    if (paused) {
      held.push(...items);
      if (held.length > MAX_ROWS) held.splice(0, held.length - MAX_ROWS);
      setLive(liveState.dataset.state);
      return;
    }
    insertLive(items);
  }

  // After each (re)connect, fetch what arrived while no stream was open.
  async function catchUp(src) {
    await loadPromise;
    if (source !== src || !loaded || !ctx.alive()) return;
    // By record time, as the query orders them; a record stored while no
    // stream was open with a time older than this is found by reloading.
    let newest = null;
    for (const { record } of shown.values()) if (!newest || compareLogs(record, newest) > 0) newest = record;
    const from = newest ? new Date(Date.parse(newest.time) - 1000).toISOString() : bounds().from;
    try {
      const page = await get(`/observability/logs${qs({ ...scope(), from, order: 'desc', limit: 500 })}`);
      if (source === src) incoming(page.items);
    } catch { /* the stream itself still delivers */ }
  }

  function openTail() {
    closeTail();
    const src = new EventSource(`/api/v1/observability/logs/tail${qs(scope())}`);
    source = src;
    setLive('connecting');
    src.addEventListener('open', () => {
      if (source !== src) return;
      setLive('open');
      catchUp(src);
    });
    src.addEventListener('error', () => {
      if (source !== src) return;
      if (src.readyState === EventSource.CLOSED) {
        setLive('closed');
        retryTimer = setTimeout(() => { if (source === src && ctx.alive()) openTail(); }, 5000);
      } else setLive('reconnecting');
    });
    src.addEventListener('log', (e) => {
      if (source !== src) return;
      try { incoming([JSON.parse(e.data)]); } catch { /* a malformed frame */ }
    });
  }

  // (Re)opens the stream when live tail is on and its filters changed.
  function retail() {
    const key = liveOn() ? qs(scope()) || '?' : '';
    if (key === tailKey && (source || !key)) return;
    tailKey = key;
    received = 0;
    showLiveCount();
    if (!key) { closeTail(); setLive('off'); return; }
    openTail();
  }

  function setPaused(p) {
    paused = p;
    pauseBtn.textContent = p ? 'Resume' : 'Pause';
    pauseBtn.setAttribute('aria-pressed', String(p));
    if (!p && held.length) insertLive(held.splice(0));
    setLive(liveState.dataset.state);
  }

  // Wiring.
  liveBtn.addEventListener('click', () => {
    f.live = liveOn() ? '' : '1';
    if (!f.live) setPaused(false);
    apply();
  });
  pauseBtn.addEventListener('click', () => setPaused(!paused));
  for (const s of [rtSel, orderSel, fromIn, toIn]) s.input.addEventListener('change', apply);
  envSel.input.addEventListener('change', () => { f.environment = envSel.input.value; fillRuntimes(); apply(); });
  projSel.input.addEventListener('change', async () => {
    f.project = projSel.input.value;
    f.integration = '';
    f.runtime = '';
    await loadIntegrations();
    fillRuntimes();
    apply();
  });
  integSel.input.addEventListener('change', () => { f.integration = integSel.input.value; f.runtime = ''; fillRuntimes(); apply(); });
  rangeSel.input.addEventListener('change', () => {
    if (rangeSel.input.value === 'custom' && !fromIn.input.value) {
      // Start the custom range from the preset that was shown.
      fromIn.input.value = toLocalInput(new Date(Date.now() - (presetMs() || 24 * 3600e3)).toISOString());
    }
    apply();
  });
  for (const b of levelBoxes) b.addEventListener('change', apply);
  let typing;
  search.input.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(apply, 350); });
  form.addEventListener('submit', (e) => { e.preventDefault(); clearTimeout(typing); apply(); });

  ctx.live(() => { closeTail(); clearTimeout(typing); loadSeq += 1; });

  await loadIntegrations();
  fillRuntimes();
  syncControls();
  setLive('off');
  retail();
  await load();
}
