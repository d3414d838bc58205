// Access control: users, groups, roles and role assignments (user:manage).

import { get, all, post, patch, del, enc } from '../api.js';
import { can } from '../app.js';
import { h, fill, card, loading, failure, button, pageHead, table, badge, field, input, select, modal, confirm, toast, when, snippet } from '../ui.js';

const TABS = [['users', 'Users'], ['groups', 'Groups'], ['roles', 'Roles'], ['assignments', 'Role assignments'], ['mappings', 'Group mappings']];

export async function render(ctx) {
  ctx.crumbs(['Administration', 'Access control']);
  if (!can('user:manage')) {
    // Not offered in the sidebar; reached by its address, it asks nothing
    // of the server that would only be refused.
    fill(ctx.el, pageHead('Access control', 'Users, groups, roles and group mappings.'),
      h('div', { testid: 'access-panel' }, h('div', { class: 'callout bad', role: 'alert' },
        'Managing access needs the user:manage permission at organization scope; ask an administrator.')));
    return;
  }
  let tab = new URLSearchParams(location.search).get('tab') || 'users';
  const tabs = h('div', { class: 'tabs', role: 'tablist' });
  const panel = h('div', { role: 'tabpanel', testid: 'access-panel' });
  fill(ctx.el, pageHead('Access control', 'Users, groups and the roles they hold at the organization, a project, an environment or an integration.'), tabs, panel);
  const drawTabs = () => fill(tabs, TABS.map(([k, t]) => h('button', { type: 'button', role: 'tab', 'aria-selected': String(k === tab), testid: `tab-${k}`, onClick: () => { tab = k; history.replaceState(null, '', `/access?tab=${k}`); show(); } }, t)));
  async function show() {
    drawTabs();
    fill(panel, loading());
    try {
      await ({ users, groups, roles, assignments, mappings })[tab](panel, show, ctx);
    } catch (e) {
      fill(panel, failure(e, show));
    }
  }
  await show();
}

async function users(panel, again) {
  const list = await all('/users');
  fill(panel, card('Users', button('New user', create, { kind: 'primary', small: true, testid: 'new-user' }),
    table(['User', 'Display name', 'Source', 'Status', 'Created', ''], list.map((u) => h('tr', { testid: `user-${u.username}` },
      h('td', {}, h('strong', {}, u.username)), h('td', {}, u.displayName || h('span', { class: 'muted' }, '—')),
      h('td', { testid: `user-source-${u.username}` }, u.source === 'local' || !u.source ? h('span', { class: 'muted' }, 'local') : badge(u.source === 'oidc' ? 'single sign-on' : 'LDAP', 'accent')),
      h('td', {}, h('div', { class: 'chips' }, u.locked ? badge('locked', 'bad') : badge('active', 'ok'), u.mustChangePassword ? badge('must change password', 'warn') : null)),
      h('td', { class: 'muted' }, when(u.createdAt)),
      h('td', {}, h('div', { class: 'actions' },
        button('Rename', () => rename(u), { small: true }),
        button('Reset password', () => reset(u), { small: true }),
        button('Delete', () => remove(u), { small: true, kind: 'danger' })))))))); 
  async function create() {
    const name = field('User name', input({ required: true, autocomplete: 'off', testid: 'user-name' }), 'Letters, digits, ".", "_", "-" or "@".');
    const display = field('Display name', input({}));
    const pw = field('Initial password', input({ type: 'password', required: true, minlength: 10, autocomplete: 'new-password' }), 'At least 10 characters; the user must change it at first sign-in.');
    if (await modal({ title: 'New user', body: [name, display, pw], onSubmit: () => post('/users', { username: name.input.value.trim(), displayName: display.input.value.trim(), password: pw.input.value, mustChangePassword: true }) })) {
      toast('User created. Assign a role so they can see something.', 'ok');
      again();
    }
  }
  async function rename(u) {
    const display = field('Display name', input({ value: u.displayName }));
    if (await modal({ title: `Rename ${u.username}`, body: [display], onSubmit: () => patch(`/users/${enc(u.username)}`, { displayName: display.input.value.trim() }) })) again();
  }
  async function reset(u) {
    if (!(await confirm(`Reset ${u.username}'s password?`, 'They get a new random password, shown once, and must change it at sign-in.', { submit: 'Reset', danger: false }))) return;
    try {
      const r = await post(`/users/${enc(u.username)}/reset-password`);
      await modal({ title: 'New password', body: [h('div', { class: 'callout warn' }, 'Shown only once: hand it to the user over a safe channel.'), snippet(r.password)] });
      again();
    } catch (e) { toast(e.message, 'bad'); }
  }
  async function remove(u) {
    if (!(await confirm(`Delete ${u.username}?`, 'Their sessions, tokens and role assignments go too.'))) return;
    try { await del(`/users/${enc(u.username)}`); toast('User deleted.', 'ok'); again(); } catch (e) { toast(e.message, 'bad'); }
  }
}

async function groups(panel, again) {
  const [list, people] = await Promise.all([all('/groups'), all('/users')]);
  fill(panel, card('Groups', button('New group', () => edit(null), { kind: 'primary', small: true, testid: 'new-group' }),
    table(['Group', 'Description', 'Members', ''], list.map((g) => h('tr', {},
      h('td', {}, h('strong', {}, g.name)), h('td', { class: 'muted' }, g.description),
      h('td', {}, h('div', { class: 'chips' }, g.members.map((m) => badge(m, 'info')))),
      h('td', {}, h('div', { class: 'actions' }, button('Edit', () => edit(g), { small: true }), button('Delete', () => remove(g), { small: true, kind: 'danger' }))))),
    { emptyText: 'No groups yet. Groups let you assign a role to many users at once.' })));
  async function edit(g) {
    const name = field('Name', input({ required: true, value: g?.name || '' }));
    const desc = field('Description', input({ value: g?.description || '' }));
    const boxes = people.map((u) => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: u.username, checked: g?.members.includes(u.username) }), u.username));
    const body = { };
    if (await modal({
      title: g ? `Edit ${g.name}` : 'New group', body: [name, desc, h('fieldset', {}, h('legend', {}, 'Members'), h('div', { class: 'checks' }, boxes))],
      onSubmit: () => {
        Object.assign(body, { name: name.input.value.trim(), description: desc.input.value.trim(), members: boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value) });
        return g ? patch(`/groups/${g.id}`, body) : post('/groups', body);
      },
    })) { toast('Group saved.', 'ok'); again(); }
  }
  async function remove(g) {
    if (!(await confirm(`Delete ${g.name}?`, 'Its role assignments go too.'))) return;
    try { await del(`/groups/${g.id}`); again(); } catch (e) { toast(e.message, 'bad'); }
  }
}

async function roles(panel, again) {
  const r = await get('/roles');
  fill(panel, card('Roles', button('New role', () => edit(null), { kind: 'primary', small: true, testid: 'new-role' }),
    table(['Role', 'Permissions', ''], r.items.map((role) => h('tr', {},
      h('td', {}, h('strong', {}, role.name), ' ', role.builtin ? badge('built-in') : badge('custom', 'accent'), h('div', { class: 'muted small' }, role.description)),
      h('td', {}, h('div', { class: 'chips' }, role.permissions.map((p) => badge(p, 'info')))),
      h('td', {}, role.builtin ? null : h('div', { class: 'actions' }, button('Edit', () => edit(role), { small: true }), button('Delete', () => remove(role), { small: true, kind: 'danger' }))))))));
  async function edit(role) {
    const name = field('Name', input({ required: true, value: role?.name || '' }));
    const desc = field('Description', input({ value: role?.description || '' }));
    const boxes = r.permissions.map((p) => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: p, checked: role?.permissions.includes(p) }), h('code', {}, p)));
    if (await modal({
      title: role ? `Edit ${role.name}` : 'New role', body: [name, desc, h('fieldset', {}, h('legend', {}, 'Permissions'), h('div', { class: 'checks' }, boxes))],
      onSubmit: () => {
        const body = { name: name.input.value.trim(), description: desc.input.value.trim(), permissions: boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value) };
        return role ? patch(`/roles/${role.id}`, body) : post('/roles', body);
      },
    })) { toast('Role saved.', 'ok'); again(); }
  }
  async function remove(role) {
    if (!(await confirm(`Delete ${role.name}?`, 'Its assignments go too.'))) return;
    try { await del(`/roles/${role.id}`); again(); } catch (e) { toast(e.message, 'bad'); }
  }
}

/** The scope fields of a form (kind, then project, environment or
 * integration as the kind needs) and the API's scope object they give. */
function scopePicker(projects, envs) {
  const type = field('Scope', select([['organization', 'Organization'], ['project', 'Project'], ['environment', 'Environment'], ['integration', 'Integration']], { testid: 'scope-type' }));
  const proj = field('Project', select(projects.map((p) => [p.handle, p.name]), { testid: 'scope-project' }));
  const env = field('Environment', select(envs.map((e) => [e.handle, e.name]), { testid: 'scope-environment' }));
  const integ = field('Integration', input({ placeholder: 'integration handle', testid: 'scope-integration' }));
  const sync = () => {
    const t = type.input.value;
    proj.hidden = !(t === 'project' || t === 'integration');
    env.hidden = t !== 'environment';
    integ.hidden = t !== 'integration';
  };
  type.input.addEventListener('change', sync);
  sync();
  return {
    fields: [type, proj, env, integ],
    value() {
      const t = type.input.value;
      const scope = { type: t };
      if (t === 'project' || t === 'integration') scope.project = proj.input.value;
      if (t === 'environment') scope.environment = env.input.value;
      if (t === 'integration') scope.integration = integ.input.value.trim();
      return scope;
    },
  };
}

function scopeText(s) {
  switch (s.type) {
    case 'project': return `project ${s.project}`;
    case 'environment': return `environment ${s.environment}`;
    case 'integration': return `integration ${s.project}/${s.integration}`;
    default: return 'organization';
  }
}

async function assignments(panel, again) {
  const [list, roleList, people, groupList, envs, projects] = await Promise.all([all('/role-assignments'), get('/roles'), all('/users'), all('/groups'), all('/environments'), all('/projects')]);
  fill(panel, card('Role assignments', button('Assign a role', create, { kind: 'primary', small: true, testid: 'new-assignment' }),
    table(['Who', 'Role', 'Scope', 'Since', ''], list.map((a) => h('tr', {},
      h('td', {}, a.user ? ['user ', h('strong', {}, a.user)] : ['group ', h('strong', {}, a.group)]),
      h('td', {}, badge(a.role, 'accent')), h('td', {}, scopeText(a.scope)), h('td', { class: 'muted' }, when(a.createdAt)),
      h('td', {}, h('div', { class: 'actions' }, button('Remove', () => remove(a), { small: true, kind: 'danger' }))))), { emptyText: 'No assignments.' })));
  async function create() {
    const role = field('Role', select(roleList.items.map((r) => [r.name, r.name])));
    const who = field('Assign to', select([...people.map((u) => [`user:${u.username}`, `user ${u.username}`]), ...groupList.map((g) => [`group:${g.name}`, `group ${g.name}`])]));
    const scope = scopePicker(projects, envs);
    if (await modal({
      title: 'Assign a role', body: [role, who, ...scope.fields],
      onSubmit: () => {
        const [kind, name] = who.input.value.split(/:(.*)/s);
        return post('/role-assignments', { role: role.input.value, [kind]: name, scope: scope.value() });
      },
    })) { toast('Role assigned.', 'ok'); again(); }
  }
  async function remove(a) {
    if (!(await confirm('Remove this assignment?', `${a.user || a.group} loses ${a.role} at ${scopeText(a.scope)}.`, { submit: 'Remove' }))) return;
    try { await del(`/role-assignments/${a.id}`); again(); } catch (e) { toast(e.message, 'bad'); }
  }
}

// Directory groups (the OIDC groups claim, LDAP groups) that give roles.
async function mappings(panel, again) {
  const [list, roleList, envs, projects] = await Promise.all([all('/sso/group-mappings'), get('/roles'), all('/environments'), all('/projects')]);
  fill(panel, card('Group mappings', button('Map a group', create, { kind: 'primary', small: true, testid: 'new-mapping' }),
    h('p', { class: 'muted' }, 'Members of a directory group get the role at the scope from their next sign-in; a user removed from the group loses it at their next sign-in, and their sessions and API tokens stop within 12 hours. Mappings from the config file are changed there.'),
    table(['Directory group', 'Source', 'Role', 'Scope', 'From', ''], list.map((m) => h('tr', { testid: `mapping-${m.group}` },
      h('td', {}, h('strong', {}, m.group)), h('td', {}, m.source || 'any'),
      h('td', {}, badge(m.role, 'accent')), h('td', {}, scopeText(m.scope)),
      h('td', { class: 'muted' }, m.origin === 'config' ? 'config file' : when(m.createdAt)),
      h('td', {}, m.origin === 'api' ? h('div', { class: 'actions' }, button('Remove', () => remove(m), { small: true, kind: 'danger' })) : null))), { emptyText: 'No group gives a role yet: single sign-on users cannot sign in until one does.' })));
  async function create() {
    const group = field('Directory group', input({ required: true, autocomplete: 'off', testid: 'mapping-group' }), 'As the identity provider or directory names it.');
    const source = field('Source', select([['', 'Any'], ['oidc', 'Single sign-on (OIDC)'], ['ldap', 'LDAP']], { testid: 'mapping-source' }));
    const role = field('Role', select(roleList.items.map((r) => [r.name, r.name]), { testid: 'mapping-role' }));
    const scope = scopePicker(projects, envs);
    if (await modal({
      title: 'Map a directory group', body: [group, source, role, ...scope.fields],
      onSubmit: () => {
        const body = { group: group.input.value.trim(), role: role.input.value, scope: scope.value() };
        if (source.input.value) body.source = source.input.value;
        return post('/sso/group-mappings', body);
      },
    })) { toast('Group mapped.', 'ok'); again(); }
  }
  async function remove(m) {
    if (!(await confirm('Remove this mapping?', `Members of ${m.group} lose ${m.role} at ${scopeText(m.scope)}.`, { submit: 'Remove' }))) return;
    try { await del(`/sso/group-mappings/${m.id}`); again(); } catch (e) { toast(e.message, 'bad'); }
  }
}
