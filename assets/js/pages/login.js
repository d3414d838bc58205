// Sign-in, and the forced password change of a first login (the initial
// admin) or after a reset.

import { post, get, setCsrf } from '../api.js';
import { h, field, input, button } from '../ui.js';
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

export function render() {
  if (session.user?.mustChangePassword) return changeForm(null);
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
  return frame('Sign in', 'Manage your integration runtimes.', form);
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
