// Live updates. When the server offers GET /api/v1/events (listed in the
// OpenAPI document, so the console never provokes a 404), an EventSource
// delivers runtime status changes, registrations and command convergence;
// pages subscribe and refetch what they show. While the stream is
// unavailable, subscribers are instead poked every few seconds.

import { get } from './api.js';

const POLL_MS = 2000;
// Heartbeats are not events (only status changes are), so even with the
// stream up, "last heartbeat" times are refreshed this often.
const TICK_MS = 10000;
const EVENTS = ['runtime.status', 'runtime.registered', 'runtime.removed', 'command'];
const subscribers = new Set();
let source = null;
let pollTimer = null;
let started = false;
let indicator = null;
let tickTimer = null;

function setMode(mode) {
  document.body.dataset.live = mode;
  if (indicator) {
    indicator.className = `live ${mode === 'sse' ? 'on' : mode === 'poll' ? 'poll' : ''}`;
    indicator.textContent = mode === 'sse' ? 'Live' : mode === 'poll' ? 'Live (polling)' : 'Offline';
    indicator.title = mode === 'sse' ? 'Receiving server-sent events' : 'Refreshing every few seconds';
  }
}

function notify(type, data) {
  for (const fn of [...subscribers]) {
    try { fn(type, data); } catch (e) { console.warn('live subscriber failed', e); }
  }
}

function startPolling() {
  if (pollTimer) return;
  setMode('poll');
  pollTimer = setInterval(() => { if (!document.hidden) notify('poll', null); }, POLL_MS);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

function openStream() {
  source = new EventSource('/api/v1/events');
  source.addEventListener('open', () => { stopPolling(); setMode('sse'); notify('reconnected', null); });
  source.addEventListener('error', () => {
    // The browser reconnects by itself unless the stream is closed; poll meanwhile.
    startPolling();
    if (source.readyState === EventSource.CLOSED) { source = null; setTimeout(openStream, 5000); }
  });
  for (const type of EVENTS) {
    source.addEventListener(type, (e) => {
      let data = null;
      try { data = JSON.parse(e.data); } catch { /* ignore malformed frames */ }
      notify(type, data);
    });
  }
}

/** Starts live updates once per signed-in session. */
export async function startLive(el) {
  indicator = el;
  if (started) { setMode(document.body.dataset.live || 'poll'); return; }
  started = true;
  let hasEvents = false;
  try {
    const doc = await get('/openapi.json');
    hasEvents = Object.prototype.hasOwnProperty.call(doc?.paths || {}, '/api/v1/events');
  } catch { hasEvents = false; }
  if (hasEvents && 'EventSource' in window) openStream();
  else startPolling();
  tickTimer = setInterval(() => { if (!pollTimer && !document.hidden) notify('tick', null); }, TICK_MS);
}

export function stopLive() {
  started = false;
  source?.close();
  source = null;
  stopPolling();
  clearInterval(tickTimer);
  tickTimer = null;
}

/** Calls fn(type, data) on every live event; returns the unsubscribe function. */
export function onLive(fn) {
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}

/**
 * Refetches with `load` on live events (debounced), at most one at a time.
 * `relevant(type, data)` filters events; polling ticks always count.
 */
export function liveRefresh(load, relevant = () => true) {
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    if (running) { again = true; return; }
    running = true;
    try { await load(); } catch { /* the page shows its own error state */ }
    running = false;
    if (again) { again = false; run(); }
  };
  return onLive((type, data) => {
    const periodic = type === 'poll' || type === 'tick';
    if (!periodic && type !== 'reconnected' && !relevant(type, data)) return;
    clearTimeout(timer);
    timer = setTimeout(run, periodic ? 0 : 150);
  });
}
