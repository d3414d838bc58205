// Projects: list or grid, search, create (handle previewed and checked),
// edit, delete.

import { get, post, patch, del, qs, enc } from '../api.js';
import { h, fill, card, link, loading, failure, empty, button, field, input, modal, confirm, toast, pageHead, table, when } from '../ui.js';
import { can } from '../app.js';

const VIEW = 'icpd.projects.view';

export async function render(ctx) {
  ctx.crumbs(['Projects']);
  let view = localStorage.getItem(VIEW) || 'grid';
  let q = new URLSearchParams(location.search).get('q') || '';
  const results = h('div', { testid: 'projects-results' });
  const search = input({ type: 'search', placeholder: 'Search by name or handle', value: q, testid: 'projects-search', 'aria-label': 'Search projects' });
  const seg = h('div', { class: 'seg', role: 'group', 'aria-label': 'View' });
  const setView = (v) => { view = v; localStorage.setItem(VIEW, v); drawSeg(); load(); };
  const drawSeg = () => fill(seg, [['grid', 'Grid'], ['list', 'List']].map(([v, t]) => h('button', { type: 'button', 'aria-pressed': String(view === v), onClick: () => setView(v), testid: `view-${v}` }, t)));
  drawSeg();
  let timer;
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => { q = search.value.trim(); history.replaceState(null, '', `/projects${qs({ q })}`); load(); }, 250); });
  fill(ctx.el,
    pageHead('Projects', 'Projects group integrations; access can be granted per project.',
      can('project:manage') ? button('New project', () => createProject(ctx), { kind: 'primary', testid: 'new-project' }) : null),
    card(null, null, h('div', { class: 'toolbar' }, h('div', { class: 'grow' }, search), seg), results));

  let items = [];
  let cursor = null;
  let total = 0;
  async function load(more = false) {
    if (!more) { fill(results, loading()); items = []; cursor = null; }
    try {
      const page = await get(`/projects${qs({ q, limit: 48, cursor: more ? cursor : undefined })}`);
      if (!ctx.alive()) return;
      items.push(...page.items);
      cursor = page.nextCursor;
      total = page.total;
      draw();
    } catch (e) {
      fill(results, failure(e, () => load()));
    }
  }
  function actions(p) {
    return h('div', { class: 'actions' },
      button('Edit', () => editProject(p, () => load()), { small: true, testid: `edit-project-${p.handle}` }),
      button('Delete', () => deleteProject(p, () => load()), { small: true, kind: 'danger', testid: `delete-project-${p.handle}` }));
  }
  function draw() {
    if (!items.length) {
      fill(results, q ? empty(`No project matches “${q}”.`) : empty('No projects yet.', 'A project holds integrations and their environments.',
        can('project:manage') ? button('Create the first project', () => createProject(ctx), { kind: 'primary' }) : null));
      return;
    }
    const list = view === 'grid'
      ? h('div', { class: 'grid tiles' }, items.map((p) => h('div', { class: 'card', testid: `project-${p.handle}` },
          h('h3', {}, link(`/projects/${enc(p.handle)}`, p.name)),
          h('div', { class: 'muted small mono' }, p.handle),
          h('p', { class: 'muted' }, p.description || 'No description.'),
          actions(p))))
      : table(['Name', 'Handle', 'Description', 'Created', ''], items.map((p) => h('tr', { testid: `project-${p.handle}` },
          h('td', {}, link(`/projects/${enc(p.handle)}`, p.name)),
          h('td', { class: 'mono' }, p.handle),
          h('td', { class: 'muted' }, p.description),
          h('td', { class: 'muted' }, when(p.createdAt)),
          h('td', {}, actions(p)))));
    fill(results, list, h('div', { class: 'pager' }, h('span', {}, `${items.length} of ${total}`), cursor ? button('Load more', () => load(true)) : null));
  }
  load();
}

export async function createProject(ctx, onDone) {
  const name = field('Name', input({ required: true, maxlength: 100, testid: 'project-name' }), 'The handle is derived from the name.');
  const desc = field('Description', h('textarea', { testid: 'project-description' }));
  let seq = 0;
  let timer;
  name.input.addEventListener('input', () => {
    clearTimeout(timer);
    const v = name.input.value.trim();
    if (!v) { name.hint.textContent = 'The handle is derived from the name.'; name.hint.className = 'hint'; return; }
    timer = setTimeout(async () => {
      const mine = ++seq;
      try {
        const r = await get(`/projects/handle-availability${qs({ name: v })}`);
        if (mine !== seq) return;
        name.hint.dataset.testid = 'project-handle-preview';
        name.hint.className = `hint ${r.available ? 'ok' : 'bad'}`;
        name.hint.textContent = r.available ? `Handle: ${r.handle} — available` : `Handle: ${r.handle} — already taken`;
      } catch (e) {
        if (mine === seq) { name.hint.className = 'hint bad'; name.hint.textContent = e.message; }
      }
    }, 200);
  });
  let created = null;
  await modal({
    title: 'New project', submit: 'Create project', testid: 'project-modal', body: [name, desc],
    onSubmit: async () => {
      created = await post('/projects', { name: name.input.value.trim(), description: desc.input.value.trim() });
    },
  });
  if (created) {
    toast(`Project ${created.name} created.`, 'ok');
    if (onDone) onDone(created);
    else import('../app.js').then((m) => m.navigate(`/projects/${enc(created.handle)}`));
  }
}

export async function editProject(p, onDone) {
  const name = field('Name', input({ required: true, value: p.name, testid: 'project-name' }), `The handle stays ${p.handle}.`);
  const desc = field('Description', h('textarea', { testid: 'project-description' }, p.description || ''));
  if (await modal({ title: `Edit ${p.name}`, body: [name, desc], onSubmit: () => patch(`/projects/${enc(p.handle)}`, { name: name.input.value.trim(), description: desc.input.value.trim() }) })) {
    toast('Project saved.', 'ok');
    onDone();
  }
}

export async function deleteProject(p, onDone) {
  if (!(await confirm(`Delete ${p.name}?`, 'Only a project without integrations can be deleted. This cannot be undone.'))) return;
  try {
    await del(`/projects/${enc(p.handle)}`);
    toast(`Project ${p.name} deleted.`, 'ok');
    onDone();
  } catch (e) {
    toast(e.message, 'bad');
  }
}
