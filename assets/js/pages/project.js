// One project: its pipeline (the ordered environments a promotion moves
// through), and its integrations with runtime counts and, per environment,
// the version its current deployment record names.

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
      card('Pipeline', can('project:edit') ? button('Edit pipeline', () => chooseEnvironments(project, envs.environments, allEnvs, reload), { small: true, testid: 'choose-environments' }) : null,
        h('p', { class: 'muted small' }, 'The environments this project deploys to, in promotion order: an integration is promoted only to the next one.'),
        h('ol', { class: 'flow', testid: 'pipeline' }, envs.environments.map((e, i) => h('li', {},
          i ? h('span', { class: 'arrow', 'aria-hidden': 'true' }, '→') : null,
          h('div', { class: `stage${e.critical ? ' critical' : ''}`, testid: `pipeline-stage-${e.handle}` }, h('strong', {}, e.name), h('span', { class: 'mono muted small' }, e.handle),
            h('div', { class: 'chips' }, e.critical ? badge('critical', 'warn') : null, approvalsOf(allEnvs, e) ? badge(`${approvalsOf(allEnvs, e)} approval${approvalsOf(allEnvs, e) === 1 ? '' : 's'}`, 'info') : null)))))),
      card('Integrations', null, integrations));

  const load = async () => {
    const [list, runtimes] = await Promise.all([all(`/projects/${enc(ph)}/integrations`), all('/runtimes', { project: ph })]);
    // The current record per integration and environment (a list of one, so "none" is no error); the first 50 integrations.
    const stages = envs.environments;
    const versions = {};
    await Promise.all(list.slice(0, 50).flatMap((i) => stages.map(async (e) => {
      try {
        const page = await get(`/projects/${enc(ph)}/integrations/${enc(i.handle)}/environments/${enc(e.handle)}/deployments?limit=1`);
        (versions[i.handle] ||= {})[e.handle] = page.items[0] || null;
      } catch { /* shown as unknown */ }
    })));
    if (!ctx.alive()) return;
    const counts = {};
    for (const r of runtimes) {
      const c = (counts[r.integration] ||= { RUNNING: 0, OFFLINE: 0 });
      c[r.status] = (c[r.status] || 0) + 1;
    }
    fill(integrations, list.length
      ? table(['Integration', 'Type', ...stages.map((e) => e.name), 'Runtimes'], list.map((i) => {
          const c = counts[i.handle] || { RUNNING: 0, OFFLINE: 0 };
          return h('tr', { testid: `integration-${i.handle}` },
            h('td', {}, link(`/projects/${enc(ph)}/integrations/${enc(i.handle)}`, i.name), h('div', { class: 'mono muted small' }, i.handle), i.description ? h('div', { class: 'muted small' }, i.description) : null),
            h('td', {}, badge(i.runtimeType, 'accent')),
            stages.map((e) => {
              const d = versions[i.handle]?.[e.handle];
              return h('td', { testid: `version-${i.handle}-${e.handle}`, title: d ? `${d.artifact} · by ${d.createdBy} · ${when(d.createdAt)}` : '' },
                d ? h('strong', {}, d.version) : h('span', { class: 'muted' }, d === null ? '—' : '?'));
            }),
            h('td', {}, h('div', { class: 'chips' }, badge(`${c.RUNNING} RUNNING`, c.RUNNING ? 'ok' : ''), c.OFFLINE ? badge(`${c.OFFLINE} OFFLINE`, 'bad') : null)));
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

function approvalsOf(allEnvs, e) {
  const full = allEnvs.find((x) => x.handle === e.handle);
  return full && 'requiredApprovals' in full ? full.requiredApprovals : 0;
}

/** The pipeline editor: which environments, in which order (the current pipeline first, the rest after it). */
async function chooseEnvironments(project, current, allEnvs, done) {
  const chosen = new Set(current.map((e) => e.handle));
  const order = [...current.map((e) => allEnvs.find((x) => x.handle === e.handle) || e), ...allEnvs.filter((e) => !chosen.has(e.handle))];
  const list = h('ol', { class: 'order-list', testid: 'pipeline-order' });
  const draw = () => fill(list, order.map((e, i) => {
    const box = h('input', { type: 'checkbox', value: e.handle, checked: chosen.has(e.handle), testid: `pipeline-env-${e.handle}`,
      onChange: (ev) => { if (ev.target.checked) chosen.add(e.handle); else chosen.delete(e.handle); draw(); } });
    const move = (d) => { const j = i + d; [order[i], order[j]] = [order[j], order[i]]; draw(); };
    return h('li', { class: chosen.has(e.handle) ? '' : 'off', testid: `pipeline-item-${e.handle}` },
      h('span', { class: 'muted small' }, `${i + 1}.`),
      h('label', { class: 'check' }, box, e.name, ' ', h('span', { class: 'mono muted small' }, e.handle), e.critical ? badge('critical', 'warn') : null),
      button('↑', () => move(-1), { small: true, disabled: i === 0, testid: `pipeline-up-${e.handle}`, title: 'Earlier in the pipeline' }),
      button('↓', () => move(1), { small: true, disabled: i === order.length - 1, testid: `pipeline-down-${e.handle}`, title: 'Later in the pipeline' }));
  }));
  draw();
  const preview = () => order.filter((e) => chosen.has(e.handle)).map((e) => e.handle).join(' → ');
  if (await modal({
    title: 'Project pipeline', testid: 'pipeline-modal',
    body: [h('p', { class: 'muted' }, 'Pick the environments this project uses and put them in promotion order: an integration is promoted from each one only to the next.'), list],
    onSubmit: () => {
      if (!chosen.size) throw new Error('A project needs at least one environment.');
      return put(`/projects/${enc(project.handle)}/environments`, { environments: order.filter((e) => chosen.has(e.handle)).map((e) => e.handle) });
    },
  })) {
    toast(`Pipeline saved: ${preview()}.`, 'ok');
    done();
  }
}

