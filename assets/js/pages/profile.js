// Profile: change your password; personal API tokens (shown once).

import { get, post, del, enc } from '../api.js';
import { h, fill, card, loading, failure, button, pageHead, table, badge, field, input, select, modal, confirm, toast, when, snippet } from '../ui.js';
import { session } from '../app.js';

export async function render(ctx) {
  ctx.crumbs(['Profile']);
  const u = session.user;
  const cur = field('Current password', input({ type: 'password', autocomplete: 'current-password', required: true }));
  const p1 = field('New password', input({ type: 'password', autocomplete: 'new-password', required: true, minlength: 10 }), 'At least 10 characters. Your other sessions are signed out.');
  const p2 = field('Repeat the new password', input({ type: 'password', autocomplete: 'new-password', required: true }));
  const pwForm = h('form', { class: 'stack', testid: 'profile-password' }, cur, p1, p2, button('Change password', null, { kind: 'primary', type: 'submit' }));
  pwForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (p1.input.value !== p2.input.value) return toast('The two new passwords differ.', 'bad');
    try {
      await post('/auth/change-password', { currentPassword: cur.input.value, newPassword: p1.input.value });
      pwForm.reset();
      toast('Password changed.', 'ok');
    } catch (err) { toast(err.message, 'bad'); }
  });
  const tokens = h('div', { testid: 'api-tokens' }, loading());
  fill(ctx.el, pageHead(u.displayName || u.username, `Signed in as ${u.username}`),
    h('div', { class: 'grid two' },
      card('Password', null, pwForm),
      card('Your permissions', null, h('div', { class: 'stack' }, session.permissions.map((p) => h('div', {}, h('strong', {}, p.scope), p.scopeId ? ` ${p.scopeId}` : '', h('div', { class: 'chips' }, p.permissions.map((x) => badge(x, 'info')))))))),
    card('API tokens', button('New token', createToken, { kind: 'primary', small: true, testid: 'new-token' }), h('p', { class: 'muted small' }, 'For scripts: send as Authorization: Bearer <token>. A token acts with your permissions.'), tokens));
  async function load() {
    try {
      const list = await get('/auth/tokens');
      if (!ctx.alive()) return;
      fill(tokens, table(['Name', 'Id', 'Created', 'Expires', 'Last used', 'Status', ''], list.items.map((t) => h('tr', {},
        h('td', {}, h('strong', {}, t.name)), h('td', { class: 'mono' }, t.id), h('td', { class: 'muted' }, when(t.createdAt)),
        h('td', { class: 'muted' }, t.expiresAt ? when(t.expiresAt) : 'never'), h('td', { class: 'muted' }, t.lastUsedAt ? when(t.lastUsedAt) : 'never'),
        h('td', {}, t.revokedAt ? badge('revoked') : badge('active')),
        h('td', {}, t.revokedAt ? null : h('div', { class: 'actions' }, button('Revoke', () => revoke(t), { small: true, kind: 'danger' }))))), { emptyText: 'No API tokens.' }));
    } catch (e) { fill(tokens, failure(e, load)); }
  }
  async function createToken() {
    const name = field('Name', input({ required: true, placeholder: 'e.g. ci-deploy' }));
    const exp = field('Expires', select([['30d', 'In 30 days'], ['90d', 'In 90 days'], ['365d', 'In a year'], ['', 'Never']]));
    let made = null;
    await modal({ title: 'New API token', submit: 'Create token', body: [name, exp], onSubmit: async () => { made = await post('/auth/tokens', { name: name.input.value.trim(), expiresIn: exp.input.value || undefined }); } });
    if (!made) return;
    load();
    await modal({ title: 'API token created', wide: true, body: [h('div', { class: 'callout warn', role: 'alert' }, h('strong', {}, 'Copy it now: '), 'the token is shown only once.'), snippet(made.token)] });
  }
  async function revoke(t) {
    if (!(await confirm(`Revoke ${t.name}?`, 'Scripts using it stop working at once.', { submit: 'Revoke' }))) return;
    try { await del(`/auth/tokens/${enc(t.id)}`); toast('Token revoked.', 'ok'); load(); } catch (e) { toast(e.message, 'bad'); }
  }
  await load();
}
