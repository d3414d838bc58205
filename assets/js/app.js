// The console shell: session, History-API router, sidebar and top bar.
// Each page module exports `render(ctx)`; ctx carries the route params, the
// content element, the signed-in user and `live` (subscriptions dropped on
// navigation).

import { get, post, setCsrf, onUnauthorized } from './api.js';
import { h, fill, link, failure, ago } from './ui.js';
import { startLive, stopLive, liveRefresh } from './live.js';

const SIGNED_IN = 'icpd.signedIn';

const routes = [
  ['/login', 'login', null],
  ['/login/callback', 'login', null],
  ['/', 'overview', 'overview'],
  ['/projects', 'projects', 'projects'],
  ['/projects/:project', 'project', 'projects'],
  ['/projects/:project/integrations/:integration', 'integration', 'projects'],
  ['/projects/:project/integrations/:integration/environments/:env', 'artifacts', 'projects'],
  ['/runtimes', 'runtimes', 'runtimes'],
  ['/runtimes/:runtime', 'runtime', 'runtimes'],
  ['/logs', 'logs', 'logs'],
  // Not /graphql: that path is the API the page calls.
  ['/graphql-explorer', 'graphql', 'graphql'],
  ['/promotions', 'promotions', 'promotions'],
  ['/environments', 'environments', 'environments'],
  ['/data-planes', 'dataplanes', 'dataplanes'],
  ['/access', 'access', 'access'],
  ['/audit', 'audit', 'audit'],
  ['/ingest-tokens', 'ingest-tokens', 'ingest-tokens'],
  ['/profile', 'profile', null],
];

// [key, href, icon, label, permission needed to see the entry (optional)]
const NAV = [
  [null, [['overview', '/', '◎', 'Overview'], ['projects', '/projects', '▦', 'Projects'], ['runtimes', '/runtimes', '⬢', 'Runtimes'], ['logs', '/logs', '≣', 'Logs', 'observability:view'], ['graphql', '/graphql-explorer', '◇', 'GraphQL'], ['promotions', '/promotions', '⇪', 'Promotions']]],
  ['Administration', [['environments', '/environments', '◫', 'Environments'], ['dataplanes', '/data-planes', '⛁', 'Data planes'], ['access', '/access', '◈', 'Access control', 'user:manage'], ['ingest-tokens', '/ingest-tokens', '⇲', 'Ingest tokens', 'integration:view'], ['audit', '/audit', '☰', 'Audit log', 'user:manage']]],
];

export const session = { user: null, permissions: [] };

/** Whether the user holds `perm` anywhere (the server decides per target). */
export function can(perm) {
  return session.permissions.some((p) => p.permissions.includes(perm));
}

function match(path) {
  const parts = path.replace(/\/+$/, '').split('/').filter(Boolean);
  for (const [pattern, page, nav] of routes) {
    const want = pattern.split('/').filter(Boolean);
    if (want.length !== parts.length) continue;
    const params = {};
    if (want.every((w, i) => (w.startsWith(':') ? ((params[w.slice(1)] = decodeURIComponent(parts[i])), true) : w === parts[i]))) {
      return { page, nav, params };
    }
  }
  return null;
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else if (path !== location.pathname + location.search) history.pushState(null, '', path);
  render();
}

let shell = null;
let unsubscribers = [];
let renderSeq = 0;

function buildShell() {
  const content = h('main', { class: 'content', id: 'content', tabindex: '-1' });
  const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb', testid: 'breadcrumbs' });
  const liveEl = h('span', { class: 'live', testid: 'live-indicator' }, 'Connecting…');
  const navLinks = {};
  const nav = h('nav', { class: 'nav', 'aria-label': 'Main' }, NAV.map(([section, items]) => [
    section ? h('div', { class: 'section' }, section) : null,
    items.filter(([, , , , perm]) => !perm || can(perm)).map(([key, href, ico, label]) => (navLinks[key] = h('a', { href, 'data-nav': '', testid: `nav-${key}` }, h('span', { class: 'ico', 'aria-hidden': 'true' }, ico), label))),
  ]));
  // How many promotions wait for this user's decision, beside "Promotions".
  const awaitingEl = h('span', { class: 'nav-count', testid: 'nav-promotions-count', hidden: true });
  navLinks.promotions?.append(awaitingEl);
  const name = session.user.displayName || session.user.username;
  const menu = h('button', { type: 'button', class: 'icon-btn menu-btn', 'aria-controls': 'sidebar', 'aria-label': 'Menu', testid: 'menu-toggle' }, '☰');
  const root = h('div', { class: 'shell' },
    h('aside', { class: 'sidebar', id: 'sidebar', testid: 'sidebar' },
      h('div', { class: 'brand' }, h('img', { src: '/assets/icon.svg', alt: '' }), h('div', {}, 'icpd', h('small', {}, 'Integration Control Plane'))),
      nav,
      h('div', { class: 'foot' }, liveEl, h('span', { class: 'muted' }, location.host))),
    h('div', { class: 'main' },
      h('header', { class: 'topbar' }, h('div', { class: 'topbar-start' }, menu, crumbs),
        h('div', { class: 'user' },
          h('a', { href: '/profile', 'data-nav': '', class: 'user', testid: 'nav-profile', title: 'Profile and API tokens' }, h('span', { class: 'avatar', 'aria-hidden': 'true' }, name.slice(0, 1)), name),
          h('button', { type: 'button', class: 'btn small', testid: 'logout', onClick: logout }, 'Sign out'))),
      content),
    h('div', { class: 'scrim', 'aria-hidden': 'true', onClick: () => sidebar(root, menu, false) }));
  sidebarToggle(root, menu);
  return { root, content, crumbs, navLinks, liveEl, awaitingEl };
}

// ---- promotions waiting for the signed-in user -----------------------------

let awaitingUnsub = null;

/**
 * Fetches how many promotions wait for the signed-in user's decision and
 * shows it in the sidebar; resolves the count (null when unknown). Called
 * on navigation, on live ticks, after decisions and by the overview.
 */
export async function refreshAwaiting() {
  const el = shell?.awaitingEl;
  if (!el) return null;
  try {
    const { count } = await get('/promotions/awaiting-me');
    el.textContent = count ? String(count) : '';
    el.hidden = !count;
    el.title = `${count} promotion${count === 1 ? '' : 's'} waiting for your decision`;
    el.setAttribute('aria-label', el.title);
    return count;
  } catch { return null; }
}

// Promotions raise no live events: the count follows the periodic ticks,
// as the promotions page does.
function watchAwaiting() {
  awaitingUnsub?.();
  awaitingUnsub = liveRefresh(refreshAwaiting, () => false);
}

// Below this width the sidebar lies over the page, closed until the menu
// button opens it; above it, it sits beside the page and the button
// collapses it (remembered).
const NARROW = window.matchMedia('(max-width: 860px)');
const SIDEBAR_KEY = 'icpd.sidebar';

function sidebar(root, menu, open, remember = false) {
  root.dataset.sidebar = open ? 'open' : 'closed';
  menu.setAttribute('aria-expanded', String(open));
  if (remember && !NARROW.matches) localStorage.setItem(SIDEBAR_KEY, open ? 'open' : 'closed');
}

function sidebarToggle(root, menu) {
  const initial = () => sidebar(root, menu, !NARROW.matches && localStorage.getItem(SIDEBAR_KEY) !== 'closed');
  initial();
  NARROW.addEventListener('change', () => { if (root.isConnected) initial(); });
  menu.addEventListener('click', () => {
    const open = root.dataset.sidebar !== 'open';
    sidebar(root, menu, open, true);
    // Over the page, the keyboard goes where the eye does.
    if (open && NARROW.matches) root.querySelector('.sidebar a.active, .sidebar a')?.focus();
  });
  // On a narrow screen, following a link or pressing Escape closes it.
  root.addEventListener('click', (e) => { if (NARROW.matches && e.target.closest('.sidebar a[data-nav]')) sidebar(root, menu, false); });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && NARROW.matches && root.dataset.sidebar === 'open' && root.isConnected) sidebar(root, menu, false); });
}

async function logout() {
  // A single-sign-on session also ends at the provider, when it says how.
  let end = null;
  try { end = sessionStorage.getItem('icpd.sso.endSession'); sessionStorage.removeItem('icpd.sso.endSession'); } catch { /* storage off */ }
  try { const r = await post('/auth/logout'); end = end || r?.endSessionUrl || null; } catch { /* the session may be gone already */ }
  signedOut();
  if (end) location.assign(end);
}

function signedOut() {
  localStorage.removeItem(SIGNED_IN);
  // The GraphQL page's document and variables may hold a password.
  try { sessionStorage.removeItem('icpd.graphql.document'); sessionStorage.removeItem('icpd.graphql.variables'); } catch { /* storage off */ }
  session.user = null;
  setCsrf(null);
  stopLive();
  awaitingUnsub?.();
  awaitingUnsub = null;
  shell = null;
  navigate('/login', { replace: true });
}

/** Called by the login page once the user may use the console. */
export function signedIn(me) {
  session.user = me.user;
  session.permissions = me.permissions || [];
  setCsrf(me.csrfToken);
  localStorage.setItem(SIGNED_IN, '1');
}

function setCrumbs(items) {
  fill(shell.crumbs, items.flatMap((c, i) => [
    i ? h('span', { class: 'sep', 'aria-hidden': 'true' }, '/') : null,
    Array.isArray(c) ? link(c[1], c[0]) : h('span', {}, c),
  ]));
  document.title = `${items.map((c) => (Array.isArray(c) ? c[0] : c)).at(-1) || 'Overview'} · icpd`;
}

async function render() {
  const seq = ++renderSeq;
  unsubscribers.forEach((u) => u());
  unsubscribers = [];
  const route = match(location.pathname);
  const app = document.getElementById('app');
  app.className = '';
  if (!session.user || session.user.mustChangePassword || route?.page === 'login') {
    if (session.user && !session.user.mustChangePassword) return navigate('/', { replace: true });
    const { render: page } = await import('./pages/login.js');
    shell = null;
    fill(app, page());
    return;
  }
  if (!shell) {
    shell = buildShell();
    fill(app, shell.root);
    startLive(shell.liveEl);
    watchAwaiting();
  }
  if (route?.page !== 'overview') refreshAwaiting(); // the overview refreshes it with its own figures
  for (const [k, a] of Object.entries(shell.navLinks)) a.classList.toggle('active', k === route?.nav);
  const content = shell.content;
  if (!route) {
    setCrumbs(['Not found']);
    fill(content, failure(new Error(`No page at ${location.pathname}.`)));
    return;
  }
  const ctx = {
    params: route.params,
    el: content,
    crumbs: setCrumbs,
    live: (unsub) => unsubscribers.push(unsub),
    alive: () => seq === renderSeq,
  };
  try {
    const mod = await import(`./pages/${route.page}.js`);
    if (seq !== renderSeq) return;
    await mod.render(ctx);
  } catch (e) {
    if (seq === renderSeq) fill(content, failure(e, render));
  }
}

// Internal links go through the router.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-nav]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', render);

// "4 s ago" labels stay current.
setInterval(() => {
  for (const t of document.querySelectorAll('[data-ago]')) if (t.dataset.ago) t.textContent = ago(t.dataset.ago);
}, 1000);

onUnauthorized(() => { if (session.user) signedOut(); });

async function boot() {
  // Only ask the server about a session we believe exists, so a fresh
  // browser never logs a 401.
  if (localStorage.getItem(SIGNED_IN)) {
    try { signedIn(await get('/auth/me')); } catch { localStorage.removeItem(SIGNED_IN); session.user = null; }
  }
  if (!session.user && location.pathname !== '/login' && location.pathname !== '/login/callback') {
    const back = location.pathname + location.search;
    history.replaceState(null, '', back === '/' ? '/login' : `/login?next=${encodeURIComponent(back)}`);
  }
  render();
}

boot();
