// Sign-in, and the forced password change of a first login (the initial
// admin) or after a reset.

import { post, get, setCsrf } from '../api.js';
import { h, fill, field, input, button } from '../ui.js';
import { session, signedIn, navigate } from '../app.js';

function frame(title, subtitle, form) {
  return h('div', { class: 'login' }, h('div', { class: 'card' },
    h('div', { class: 'brand' }, h('img', { src: '/assets/icon.svg', alt: '' }), h('div', {}, 'icpd', h('small', {}, 'Integration Control Plane'))),
    h('h2', {}, title), subtitle ? h('p', { class: 'muted' }, subtitle) : null, form));
}

function next() {
  const n = new URLSearchParams(location.search).get('next');
  return n && n.startsWith('/') && !n.startsWith('//') ? n : '/';
}

const SSO_NEXT = 'icpd.sso.next';
const SSO_END = 'icpd.sso.endSession';

/** Where the provider's end-session endpoint is, for logout (or null). */
export function ssoEndSession() {
  try { return sessionStorage.getItem(SSO_END); } catch { return null; }
}

export function render() {
  if (session.user?.mustChangePassword) return changeForm(null);
  if (location.pathname === '/login/callback') return callback();
  const error = h('div', { class: 'callout bad', role: 'alert', hidden: true, testid: 'login-error' });
  const user = field('User name', input({ name: 'username', autocomplete: 'username', required: true, testid: 'login-username' }));
  const pass = field('Password', input({ type: 'password', name: 'password', autocomplete: 'current-password', required: true, testid: 'login-password' }));
  const submit = button('Sign in', null, { kind: 'primary', type: 'submit', testid: 'login-submit' });
  const form = h('form', { class: 'stack', testid: 'login-form' }, error, user, pass, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      const r = await post('/auth/login', { username: user.input.value.trim(), password: pass.input.value });
      setCsrf(r.csrfToken);
      signedIn({ user: r.user, permissions: r.permissions, csrfToken: r.csrfToken });
      if (r.mustChangePassword) {
        form.closest('.login').replaceWith(changeForm(pass.input.value));
      } else {
        navigate(next(), { replace: true });
      }
    } catch (err) {
      error.textContent = err.status === 401 ? 'Wrong user name or password.' : err.message;
      error.hidden = false;
      pass.input.select();
    } finally {
      submit.disabled = false;
    }
  });
  setTimeout(() => user.input.focus());
  // Single sign-on and the password policy come from the server.
  const sso = h('div', { class: 'stack', testid: 'sso' });
  get('/auth/providers').then((p) => {
    if (p.oidc) {
      const go = button(`Sign in with ${p.oidc.label}`, async () => {
        go.disabled = true;
        error.hidden = true;
        try {
          try { sessionStorage.setItem(SSO_NEXT, next()); } catch { /* storage off */ }
          const r = await post('/auth/oidc/start');
          location.assign(r.authorizationUrl);
        } catch (err) {
          error.textContent = err.message;
          error.hidden = false;
          go.disabled = false;
        }
      }, { kind: 'primary', testid: 'sso-button' });
      fill(sso, go, h('p', { class: 'muted center' }, p.passwordLogin || p.ldap ? 'or with your user name and password:' : `Password sign-in is for the break-glass account${p.breakGlassUser ? ` (${p.breakGlassUser})` : ''} only.`));
    } else if (!p.passwordLogin) {
      fill(sso, h('p', { class: 'muted' }, 'Password sign-in is switched off here, except for the break-glass account.'));
    }
  }).catch(() => { /* the form still works */ });
  return frame('Sign in', 'Manage your integration runtimes.', h('div', { class: 'stack' }, sso, form));
}

/** The provider sent the browser back: complete the sign-in. */
function callback() {
  const q = new URLSearchParams(location.search);
  const status = h('div', { class: 'stack', testid: 'sso-callback' }, h('p', { class: 'muted' }, 'Completing single sign-on…'));
  const fail = (message) => fill(status,
    h('div', { class: 'callout bad', role: 'alert', testid: 'login-error' }, message),
    h('a', { href: '/login', 'data-nav': '', testid: 'sso-retry' }, 'Back to sign in'));
  let dest = '/';
  try { dest = sessionStorage.getItem(SSO_NEXT) || '/'; sessionStorage.removeItem(SSO_NEXT); } catch { /* storage off */ }
  if (!dest.startsWith('/') || dest.startsWith('//')) dest = '/';
  const code = q.get('code');
  const state = q.get('state');
  // The code must not stay in the address bar or the history.
  history.replaceState(null, '', '/login/callback');
  if (q.get('error')) {
    fail(`The identity provider did not sign you in: ${q.get('error_description') || q.get('error')}.`);
  } else if (!code || !state) {
    fail('The identity provider sent no code back. Start the sign-in again.');
  } else {
    post('/auth/oidc/callback', { code, state }).then((r) => {
      setCsrf(r.csrfToken);
      try { if (r.endSessionUrl) sessionStorage.setItem(SSO_END, r.endSessionUrl); } catch { /* storage off */ }
      signedIn({ user: r.user, permissions: r.permissions, csrfToken: r.csrfToken });
      navigate(dest, { replace: true });
    }).catch((err) => fail(err.message));
  }
  return frame('Single sign-on', null, status);
}

function changeForm(current) {
  const error = h('div', { class: 'callout bad', role: 'alert', hidden: true, testid: 'password-error' });
  const cur = current === null
    ? field('Current password', input({ type: 'password', autocomplete: 'current-password', required: true, testid: 'current-password' }))
    : null;
  const p1 = field('New password', input({ type: 'password', autocomplete: 'new-password', required: true, minlength: 10, testid: 'new-password' }), 'At least 10 characters.');
  const p2 = field('Repeat the new password', input({ type: 'password', autocomplete: 'new-password', required: true, testid: 'new-password-repeat' }));
  const submit = button('Change password and continue', null, { kind: 'primary', type: 'submit', testid: 'change-password-submit' });
  const form = h('form', { class: 'stack', testid: 'change-password-form' }, error, cur, p1, p2, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    if (p1.input.value !== p2.input.value) {
      error.textContent = 'The two new passwords differ.';
      error.hidden = false;
      return;
    }
    submit.disabled = true;
    try {
      await post('/auth/change-password', { currentPassword: current ?? cur.input.value, newPassword: p1.input.value });
      signedIn(await get('/auth/me'));
      navigate(next(), { replace: true });
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  setTimeout(() => (cur || p1).input.focus());
  return frame('Choose a new password', 'This is your first sign-in (or your password was reset): choose your own password before continuing.',
    h('div', { class: 'stack' }, h('div', { class: 'callout info', testid: 'must-change-password' }, 'A password change is required.'), form));
}
