// DOM building blocks for the console: h() instead of HTML strings (so no
// markup injection and no inline styles, which the CSP forbids), badges,
// relative times, toasts, modals and the loading / empty / error states.

/** Creates an element. attrs: class, text, on<Event>, testid, or attributes. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'testid') el.dataset.testid = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** An internal link handled by the router. */
export const link = (href, text, attrs = {}) => h('a', { href, 'data-nav': '', ...attrs }, text);

export function button(text, onClick, { kind = '', testid, small, type = 'button', disabled, title } = {}) {
  return h('button', {
    type, class: `btn ${kind}${small ? ' small' : ''}`, onClick, testid, disabled, title,
  }, text);
}

const STATUS = { RUNNING: 'ok', OFFLINE: 'bad', PENDING: 'warn', CONVERGED: 'ok', SUPERSEDED: '', active: 'ok', revoked: 'bad', expired: 'warn' };

export function badge(text, kind = STATUS[text] ?? '', testid) {
  return h('span', { class: `badge dot ${kind}`, testid }, text);
}

export function syncBadge(inSync, testid) {
  return h('span', {
    class: `badge ${inSync ? 'ok' : 'warn pulse'} dot`, testid, 'data-insync': String(!!inSync),
  }, inSync ? 'In sync' : 'Syncing…');
}

/** "4 s ago" for an RFC 3339 time; kept current by the ticker in app.js. */
export function ago(iso) {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function timeAgo(iso, attrs = {}) {
  return h('time', { datetime: iso || '', 'data-ago': iso || '', title: iso ? formatTime(iso, { seconds: true }) : '', ...attrs }, ago(iso));
}

const two = (n) => String(n).padStart(2, '0');
const ymd = (d) => `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;

/**
 * The console's one way to show a time: 24 h, local time, the date only
 * when it is not today: `14:03:07` today, `2026-12-01 14:03` other days.
 * isoOrMs: an RFC 3339 string, Unix milliseconds or a Date. seconds: true
 * shows them on other days too, false leaves them out today too. ms: true
 * shows seconds and milliseconds on any day (`14:03:07.123`, for log
 * records). '—' for no time.
 */
export function formatTime(isoOrMs, { seconds, ms = false } = {}) {
  if (isoOrMs === null || isoOrMs === undefined || isoOrMs === '') return '—';
  const d = new Date(isoOrMs);
  if (Number.isNaN(d.getTime())) return String(isoOrMs);
  const today = ymd(d) === ymd(new Date());
  const secs = ms || (seconds ?? today) ? `:${two(d.getSeconds())}${ms ? `.${String(d.getMilliseconds()).padStart(3, '0')}` : ''}` : '';
  const clock = `${two(d.getHours())}:${two(d.getMinutes())}${secs}`;
  return today ? clock : `${ymd(d)} ${clock}`;
}

/** The same as formatTime (the name the pages used before it). */
export const when = formatTime;

/**
 * Reads a time typed as formatTime writes it (`2026-12-01 14:03`,
 * `2026-12-01`, `14:03` or `14:03:07` for today; local time) or as
 * RFC 3339; returns Unix ms, or null when the text is not a time.
 */
export function parseTime(text) {
  const t = String(text || '').trim();
  const date = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$/.exec(t);
  const clock = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(t);
  const valid = (hh, mi, ss) => hh <= 23 && mi <= 59 && ss <= 59;
  let d;
  if (date) {
    const [y, mo, da, hh, mi, ss] = date.slice(1).map((x) => Number(x || 0));
    d = new Date(y, mo - 1, da, hh, mi, ss);
    // new Date(2026, 1, 31) is a day in March: refuse what does not round-trip.
    if (d.getMonth() !== mo - 1 || d.getDate() !== da || !valid(hh, mi, ss)) return null;
  } else if (clock) {
    const [hh, mi, ss] = clock.slice(1).map((x) => Number(x || 0));
    if (!valid(hh, mi, ss)) return null;
    d = new Date();
    d.setHours(hh, mi, ss, 0);
  } else if (/^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})$/i.test(t)) d = new Date(t);
  else return null;
  return Number.isNaN(d.getTime()) ? null : d.getTime();
}

export function loading(label = 'Loading…') {
  return h('div', { class: 'state', role: 'status' }, h('div', { class: 'spinner boot-inline' }), h('div', {}, label));
}

export function empty(title, hint, action) {
  return h('div', { class: 'state', testid: 'empty' }, h('div', { class: 'big' }, '∅'), h('div', {}, title), hint ? h('div', { class: 'small' }, hint) : null, action || null);
}

export function failure(err, retry) {
  return h('div', { class: 'state error', role: 'alert' },
    h('div', { class: 'big' }, '!'),
    h('div', {}, err?.message || String(err)),
    retry ? button('Retry', retry) : null);
}

export function card(title, actions, ...body) {
  return h('section', { class: 'card' },
    title || actions ? h('div', { class: 'card-head' }, title ? h('h2', {}, title) : h('span'), actions || null) : null,
    ...body);
}

export function table(headers, rows, { testid, emptyText = 'Nothing here yet.', class: cls } = {}) {
  if (!rows.length) return empty(emptyText);
  return h('div', { class: 'table-wrap' }, h('table', { class: cls, testid },
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { class: t.startsWith('#') ? 'num' : '' }, t.replace(/^#/, ''))))),
    h('tbody', {}, rows)));
}

let fieldSeq = 0;
/** A labelled form field; returns the wrapper (input at .input). */
export function field(labelText, input, hint) {
  const id = input.id || `f${++fieldSeq}`;
  input.id = id;
  const hintEl = h('div', { class: 'hint', id: `${id}-hint` }, hint || '');
  if (hint !== undefined) input.setAttribute('aria-describedby', hintEl.id);
  const wrap = h('div', { class: 'field' }, h('label', { for: id }, labelText), input, hint !== undefined ? hintEl : null);
  wrap.input = input;
  wrap.hint = hintEl;
  return wrap;
}

export const input = (attrs = {}) => h('input', { type: 'text', autocomplete: 'off', ...attrs });

export function select(options, attrs = {}) {
  const el = h('select', attrs);
  for (const o of options) {
    const [value, label] = Array.isArray(o) ? o : [o, o];
    el.append(h('option', { value }, label));
  }
  if (attrs.value !== undefined) el.value = attrs.value;
  return el;
}

export function toast(message, kind = '') {
  const t = h('div', { class: `toast ${kind}`, role: kind === 'bad' ? 'alert' : 'status', testid: 'toast' }, message);
  document.getElementById('toasts').append(t);
  setTimeout(() => t.remove(), kind === 'bad' ? 8000 : 4000);
}

/**
 * Opens a modal. body: nodes; onSubmit(form) may throw (the error shows in
 * the dialog) or return false to keep it open. Resolves true when submitted.
 */
export function modal({ title, body, submit = 'Save', danger = false, wide = false, testid, onSubmit, cancel = 'Cancel' }) {
  return new Promise((resolve) => {
    const previous = document.activeElement;
    const errorBox = h('div', { class: 'callout bad', role: 'alert', hidden: true, testid: 'modal-error' });
    const submitBtn = onSubmit ? button(submit, null, { kind: danger ? 'danger solid' : 'primary', type: 'submit', testid: 'modal-submit' }) : null;
    const close = (ok) => { backdrop.remove(); document.removeEventListener('keydown', onKey); previous?.focus?.(); resolve(ok); };
    const form = h('form', { class: 'modal' + (wide ? ' wide' : ''), role: 'dialog', 'aria-modal': 'true', 'aria-label': title, testid },
      h('header', {}, h('h2', {}, title), h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close', onClick: () => close(false) }, '×')),
      h('div', { class: 'body stack' }, errorBox, body),
      h('footer', {}, button(onSubmit ? cancel : 'Close', () => close(false), { testid: 'modal-close' }), submitBtn));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!onSubmit) return close(true);
      submitBtn.disabled = true;
      errorBox.hidden = true;
      try {
        const r = await onSubmit(form);
        if (r !== false) close(true);
      } catch (err) {
        errorBox.textContent = err.message || String(err);
        errorBox.hidden = false;
      } finally {
        submitBtn.disabled = false;
      }
    });
    const onKey = (e) => { if (e.key === 'Escape') close(false); };
    document.addEventListener('keydown', onKey);
    const backdrop = h('div', { class: 'backdrop', onMousedown: (e) => { if (e.target === backdrop) close(false); } }, form);
    document.body.append(backdrop);
    (form.querySelector('input, select, textarea') || form.querySelector('footer .btn'))?.focus();
  });
}

export function confirm(title, message, { submit = 'Delete', danger = true, extra } = {}) {
  return modal({ title, body: [h('p', {}, message), extra || null], submit, danger, onSubmit: () => true, testid: 'confirm' });
}

/** A copyable block (secrets, snippets). */
export function snippet(text, testid) {
  const pre = h('pre', { testid }, text);
  const copy = button('Copy', async () => {
    try {
      await navigator.clipboard.writeText(text);
      copy.textContent = 'Copied';
    } catch {
      const r = document.createRange();
      r.selectNodeContents(pre);
      getSelection().removeAllRanges();
      getSelection().addRange(r);
      copy.textContent = 'Selected: press Ctrl+C';
    }
    setTimeout(() => { copy.textContent = 'Copy'; }, 2000);
  }, { small: true, testid: testid ? `${testid}-copy` : undefined });
  return h('div', { class: 'snippet' }, pre, copy);
}

export function pageHead(title, subtitle, ...actions) {
  return h('div', { class: 'page-head' },
    h('div', {}, h('h1', {}, title), subtitle ? h('p', {}, subtitle) : null),
    h('div', { class: 'actions' }, actions));
}
