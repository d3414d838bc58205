// One project: its integrations (with runtime counts) and environments.

import { get, all, post, put, del, qs, enc } from '../api.js';
import { h, fill, card, link, loading, failure, empty, button, field, input, select, modal, confirm, toast, pageHead, table, badge, when } from '../ui.js';
import { can, navigate } from '../app.js';
import { editProject, deleteProject } from './projects.js';
import { liveRefresh } from '../live.js';

export async function render(ctx) {
  const ph = ctx.params.project;
  ctx.crumbs([['Projects', '/projects'], ph]);
  fill(ctx.el, loading());
  let project, envs, allEnvs;
  try {
    [project, envs, allEnvs] = await Promise.all([get(`/projects/${enc(ph)}`), get(`/projects/${enc(ph)}/environments`), all('/environments')]);
  } catch (e) {
    fill(ctx.el, failure(e, () => render(ctx)));
    return;
  }
  ctx.crumbs([['Projects', '/projects'], project.name]);
  const integrations = h('div', { testid: 'integrations' }, loading());
  const reload = () => render(ctx);
  fill(ctx.el,
    pageHead(project.name, project.description || `Handle ${project.handle}`,
      button('Edit', () => editProject(project, reload), { testid: 'edit-project' }),
      button('Delete', () => deleteProject(project, () => navigate('/projects')), { kind: 'danger', testid: 'delete-project' }),
      can('integration:edit') ? button('New integration', () => createIntegration(project), { kind: 'primary', testid: 'new-integration' }) : null),
    h('div', { class: 'split' },
      card('Integrations', null, integrations),
      card('Environments', button('Choose', () => chooseEnvironments(project, envs.environments, allEnvs, reload), { small: true, testid: 'choose-environments' }),
        h('p', { class: 'muted small' }, 'The environments this project deploys to, in promotion order.'),
        h('ol', { class: 'stack', testid: 'project-environments' }, envs.environments.map((e) => h('li', {}, h('strong', {}, e.name), ' ', h('span', { class: 'mono muted small' }, e.handle), e.critical ? [' ', badge('critical', 'warn')] : null))))));

  const load = async () => {
    const [list, runtimes] = await Promise.all([all(`/projects/${enc(ph)}/integrations`), all('/runtimes', { project: ph })]);
    if (!ctx.alive()) return;
    const counts = {};
    for (const r of runtimes) {
      const c = (counts[r.integration] ||= { RUNNING: 0, OFFLINE: 0 });
      c[r.status] = (c[r.status] || 0) + 1;
    }
    fill(integrations, list.length
      ? table(['Integration', 'Handle', 'Type', 'Runtimes', 'Created'], list.map((i) => {
          const c = counts[i.handle] || { RUNNING: 0, OFFLINE: 0 };
          return h('tr', { testid: `integration-${i.handle}` },
            h('td', {}, link(`/projects/${enc(ph)}/integrations/${enc(i.handle)}`, i.name), i.description ? h('div', { class: 'muted small' }, i.description) : null),
            h('td', { class: 'mono' }, i.handle),
            h('td', {}, badge(i.runtimeType, 'accent')),
            h('td', {}, h('div', { class: 'chips' }, badge(`${c.RUNNING} RUNNING`, c.RUNNING ? 'ok' : ''), c.OFFLINE ? badge(`${c.OFFLINE} OFFLINE`, 'bad') : null)),
            h('td', { class: 'muted' }, when(i.createdAt)));
        }))
      : empty('No integrations yet.', 'An integration is one deployable unit; its runtimes register per environment.',
          can('integration:edit') ? button('Create an integration', () => createIntegration(project), { kind: 'primary' }) : null));
  };
  try { await load(); } catch (e) { fill(integrations, failure(e, load)); }
  ctx.live(liveRefresh(load, (t, d) => t.startsWith('runtime') && (!d?.project || d.project === ph)));
}

async function createIntegration(project) {
  const name = field('Name', input({ required: true, maxlength: 100, testid: 'integration-name' }), 'The handle is derived from the name (lower case, dashes).');
  const type = field('Runtime type', select([['BI', 'BI — WSO2 Integrator: BI (Ballerina)'], ['MI', 'MI — Micro Integrator']], { testid: 'integration-type' }));
  const desc = field('Description', h('textarea', { testid: 'integration-description' }));
  name.input.addEventListener('input', () => {
    const handle = name.input.value.trim().toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
    name.hint.textContent = handle ? `Handle (approximately): ${handle}` : 'The handle is derived from the name (lower case, dashes).';
  });
  let made = null;
  await modal({
    title: `New integration in ${project.name}`, submit: 'Create integration', testid: 'integration-modal', body: [name, type, desc],
    onSubmit: async () => {
      made = await post(`/projects/${enc(project.handle)}/integrations`, { name: name.input.value.trim(), runtimeType: type.input.value, description: desc.input.value.trim() });
    },
  });
  if (made) {
    toast(`Integration ${made.name} created.`, 'ok');
    navigate(`/projects/${enc(project.handle)}/integrations/${enc(made.handle)}`);
  }
}

async function chooseEnvironments(project, current, allEnvs, done) {
  const chosen = new Set(current.map((e) => e.handle));
  const boxes = allEnvs.map((e) => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: e.handle, checked: chosen.has(e.handle) }), `${e.name} (${e.handle})`));
  if (await modal({
    title: 'Project environments', body: [h('p', { class: 'muted' }, 'Pick the environments this project uses.'), h('div', { class: 'checks' }, boxes)],
    onSubmit: () => put(`/projects/${enc(project.handle)}/environments`, { environments: boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value) }),
  })) {
    toast('Environments saved.', 'ok');
    done();
  }
}

