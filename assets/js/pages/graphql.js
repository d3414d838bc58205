// GraphQL: a small query editor for icpd's GraphQL endpoint (POST /graphql,
// the console API of WSO2 ICP 2), run with the signed-in user's session and
// permissions, beside the schema's documentation read by introspection.
// The document, with Ctrl/Cmd+Enter to run, and the variables (JSON,
// checked before sending) are kept in sessionStorage (this tab only, cleared at sign-out: a document may carry a password); the result shows the
// HTTP status, the time taken, each error with its line:column (a click
// puts the caret there) and the pretty-printed body. The documentation
// lists the Query and Mutation root fields, opens any type's fields, input
// fields or enum values, filters field and type names, and puts a skeleton
// query for a root field into the editor.

import { graphql } from '../api.js';
import { h, fill, card, loading, failure, empty, button, pageHead, badge, field, input, toast } from '../ui.js';

const DOC_KEY = 'icpd.graphql.document';
const VARS_KEY = 'icpd.graphql.variables';
const EXAMPLE = `# Ctrl+Enter (Cmd+Enter on a Mac) runs the document.
{
  systemInfo {
    version
  }
  environments {
    items {
      id
      name
      handler
      critical
    }
    pageInfo {
      total
      limit
      offset
    }
  }
}
`;
// The most results the filter lists per group.
const MAX_HITS = 100;

// graphql-js's getIntrospectionQuery() with its default options.
const TYPE_REF = 'kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }';
const INTROSPECTION = `query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { ${TYPE_REF} }
`;

/** The named type under NON_NULL and LIST wrappers. */
const named = (t) => (t.ofType ? named(t.ofType) : t.name);
/** A type reference in GraphQL notation: `[Runtime!]!`. */
const typeText = (t) => (t.kind === 'NON_NULL' ? `${typeText(t.ofType)}!` : t.kind === 'LIST' ? `[${typeText(t.ofType)}]` : t.name);
const required = (arg) => arg.type.kind === 'NON_NULL' && (arg.defaultValue === null || arg.defaultValue === undefined);
const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);
const ms = (x) => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${Math.round(x)} ms`);
const stored = (key, fallback) => { try { return sessionStorage.getItem(key) ?? fallback; } catch { return fallback; } };
const store = (key, value) => { try { sessionStorage.setItem(key, value); } catch { /* private mode: not kept */ } };

export async function render(ctx) {
  ctx.crumbs(['GraphQL']);

  // ---- editor -------------------------------------------------------------
  const docInput = h('textarea', {
    id: 'gql-document', class: 'gql-textarea', wrap: 'off', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off',
    'aria-describedby': 'gql-document-hint', testid: 'gql-document', value: stored(DOC_KEY, EXAMPLE),
  });
  const gutter = h('div', { class: 'gql-gutter', 'aria-hidden': 'true' });
  const varsInput = h('textarea', {
    id: 'gql-variables', class: 'gql-textarea small-code', wrap: 'off', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off',
    placeholder: '{ "runtimeId": "…" }', 'aria-describedby': 'gql-variables-hint', testid: 'gql-variables', value: stored(VARS_KEY, ''),
  });
  const varsHint = h('div', { class: 'hint', id: 'gql-variables-hint', testid: 'gql-variables-error' }, 'Optional: a JSON object for the document\'s $variables.');
  const runBtn = button('Run', null, { kind: 'primary', type: 'submit', testid: 'gql-run', title: 'Run (Ctrl+Enter or ⌘+Enter)' });
  const editor = h('form', { class: 'stack', testid: 'gql-editor', 'aria-label': 'GraphQL document' },
    h('div', { class: 'field' },
      h('label', { for: 'gql-document' }, 'Document'),
      h('div', { class: 'gql-code' }, gutter, docInput),
      h('div', { class: 'hint', id: 'gql-document-hint' }, 'A query or mutation. Mutations change real data, with your permissions.')),
    h('div', { class: 'field' }, h('label', { for: 'gql-variables' }, 'Variables'), h('div', { class: 'gql-code' }, varsInput), varsHint),
    h('div', { class: 'actions' }, runBtn, h('span', { class: 'muted small' }, 'Ctrl+Enter · ⌘+Enter'),
      h('span', { class: 'gql-spacer' }),
      button('Example', () => { setDocument(EXAMPLE, ''); docInput.focus(); }, { small: true, testid: 'gql-example', title: 'Replace the document with the example query' })));

  // ---- result -------------------------------------------------------------
  const statusEl = h('div', { class: 'gql-status', testid: 'gql-status' });
  const errorsEl = h('ul', { class: 'gql-errors', testid: 'gql-errors', hidden: true });
  const resultEl = h('pre', { class: 'gql-result', tabindex: '0', 'aria-label': 'Result', testid: 'gql-result' });
  const resultPane = h('div', { class: 'gql-pane', 'aria-live': 'polite', testid: 'gql-result-pane' }, statusEl, errorsEl, resultEl);
  fill(statusEl, h('span', { class: 'muted' }, 'Run the document to see its result here.'));

  // ---- documentation ------------------------------------------------------
  const filter = input({ type: 'search', id: 'gql-docs-filter', placeholder: 'Field or type name', testid: 'gql-docs-filter' });
  const docsBody = h('div', { class: 'gql-docs-body', testid: 'gql-docs-body' }, loading('Reading the schema…'));
  const docsNav = h('div', { class: 'gql-docs-nav' });
  const docs = h('section', { class: 'card gql-docs', testid: 'gql-docs', 'aria-labelledby': 'gql-docs-title' },
    h('div', { class: 'card-head' }, h('h2', { id: 'gql-docs-title' }, 'Schema'), button('Reload', () => loadSchema(), { small: true, testid: 'gql-docs-reload', title: 'Read the schema again' })),
    field('Filter', filter),
    docsNav, docsBody);

  fill(ctx.el,
    pageHead('GraphQL', 'Run documents against POST /graphql, the console API of WSO2 ICP 2, as yourself. The schema\'s documentation is read from the server.'),
    h('div', { class: 'gql' },
      h('div', { class: 'gql-main' },
        card(null, null, editor),
        card('Result', null, resultPane)),
      docs));

  // ---- editing ------------------------------------------------------------
  function numberLines() {
    const n = docInput.value.split('\n').length;
    if (gutter.childElementCount === n) return;
    fill(gutter, Array.from({ length: n }, (_, i) => h('div', {}, String(i + 1))));
    gutter.scrollTop = docInput.scrollTop;
  }
  docInput.addEventListener('input', () => { numberLines(); store(DOC_KEY, docInput.value); });
  docInput.addEventListener('scroll', () => { gutter.scrollTop = docInput.scrollTop; });
  varsInput.addEventListener('input', () => { store(VARS_KEY, varsInput.value); if (varsInput.getAttribute('aria-invalid')) checkVariables(); });
  numberLines();

  function setDocument(doc, vars) {
    docInput.value = doc;
    varsInput.value = vars;
    store(DOC_KEY, doc);
    store(VARS_KEY, vars);
    numberLines();
    docInput.scrollTop = 0;
    checkVariables();
  }

  /** Puts the caret at a line and column of the document (1-based, as errors give them). */
  function goTo(line, column) {
    const lines = docInput.value.split('\n');
    const l = Math.min(Math.max(1, line), lines.length);
    let at = 0;
    for (let i = 0; i < l - 1; i++) at += lines[i].length + 1;
    at += Math.min(Math.max(1, column), lines[l - 1].length + 1) - 1;
    docInput.focus();
    docInput.setSelectionRange(at, at);
    const lh = Number.parseFloat(getComputedStyle(docInput).lineHeight) || 18;
    docInput.scrollTop = Math.max(0, (l - 3) * lh);
  }

  /** The variables as an object, undefined when empty; null (with the reason shown) when not a JSON object. */
  function checkVariables() {
    const text = varsInput.value.trim();
    const bad = (msg) => {
      varsInput.setAttribute('aria-invalid', 'true');
      varsHint.textContent = msg;
      varsHint.className = 'hint bad';
      varsHint.setAttribute('role', 'alert');
      return null;
    };
    let value;
    if (text) {
      try { value = JSON.parse(text); } catch (e) { return bad(`The variables are not valid JSON: ${e.message}`); }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return bad('The variables must be a JSON object, such as { "runtimeId": "…" }.');
    }
    varsInput.removeAttribute('aria-invalid');
    varsHint.removeAttribute('role');
    varsHint.className = 'hint';
    varsHint.textContent = 'Optional: a JSON object for the document\'s $variables.';
    return value;
  }

  // ---- running ------------------------------------------------------------
  let runSeq = 0;
  async function run() {
    const query = docInput.value;
    if (!query.trim()) {
      fill(statusEl, h('span', { class: 'bad-text' }, 'The document is empty.'));
      errorsEl.hidden = true;
      resultEl.textContent = '';
      return;
    }
    const variables = checkVariables();
    if (variables === null) { varsInput.focus(); return; }
    store(DOC_KEY, query);
    const my = ++runSeq;
    runBtn.disabled = true;
    runBtn.textContent = 'Running…';
    resultPane.setAttribute('aria-busy', 'true');
    try {
      const res = await graphql(query, variables);
      if (!ctx.alive() || my !== runSeq) return;
      showResult(res);
    } catch (e) {
      if (!ctx.alive() || my !== runSeq) return;
      fill(statusEl, badge(e.status ? `HTTP ${e.status}` : 'No answer', 'bad', 'gql-http-status'));
      showErrors([{ message: e.message }]);
      resultEl.textContent = '';
    } finally {
      if (my === runSeq) {
        runBtn.disabled = false;
        runBtn.textContent = 'Run';
        resultPane.removeAttribute('aria-busy');
      }
    }
  }
  editor.addEventListener('submit', (e) => { e.preventDefault(); run(); });
  editor.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); if (!runBtn.disabled) run(); }
  });

  function showResult({ status, statusText, ms: took, json, text }) {
    const errors = Array.isArray(json?.errors) ? json.errors
      : json?.error?.message ? [{ message: json.error.message }] // icpd's REST-style refusal (e.g. a CSRF check)
        : status >= 400 ? [{ message: (typeof json === 'string' ? json : text || statusText || 'The server refused the request.').slice(0, 500) }] : [];
    const ok = status >= 200 && status < 300;
    fill(statusEl,
      badge(`HTTP ${status}`, ok && !errors.length ? 'ok' : ok ? 'warn' : 'bad', 'gql-http-status'),
      h('span', { class: 'muted', testid: 'gql-time' }, ms(took)),
      errors.length ? h('span', { class: 'muted' }, `${errors.length} error${errors.length === 1 ? '' : 's'}`) : null,
      json && typeof json === 'object' && json.data === null ? h('span', { class: 'muted' }, 'no data') : null);
    showErrors(errors);
    resultEl.textContent = json !== null ? JSON.stringify(json, null, 2) : text;
    resultEl.scrollTop = 0;
  }

  function showErrors(errors) {
    errorsEl.hidden = !errors.length;
    fill(errorsEl, errors.map((err) => {
      const locations = Array.isArray(err?.locations) ? err.locations.filter((l) => Number.isInteger(l?.line) && Number.isInteger(l?.column)) : [];
      const path = Array.isArray(err?.path) && err.path.length ? err.path.join('.') : '';
      return h('li', { class: 'callout bad', testid: 'gql-error' },
        h('span', { class: 'gql-error-message' }, String(err?.message ?? JSON.stringify(err))),
        locations.length ? h('span', { class: 'gql-where' }, ' at ', locations.map((l, i) => [i ? ', ' : '',
          h('button', { type: 'button', class: 'linkish mono', title: `Go to line ${l.line}, column ${l.column}`, testid: 'gql-error-location', onClick: () => goTo(l.line, l.column) }, `${l.line}:${l.column}`)])) : null,
        path ? h('span', { class: 'gql-where' }, ' · path ', h('code', {}, path)) : null);
    }));
  }

  // ---- schema -------------------------------------------------------------
  let schema = null; // { types: Map, query, mutation, list }
  let view = { kind: 'home' };
  const back = [];

  async function loadSchema() {
    fill(docsBody, loading('Reading the schema…'));
    fill(docsNav);
    try {
      const res = await graphql(INTROSPECTION);
      if (!ctx.alive()) return;
      const s = res.json?.data?.__schema;
      if (!s) {
        const why = res.json?.errors?.[0]?.message || res.json?.error?.message || `HTTP ${res.status} ${res.statusText}`.trim();
        throw new Error(`The schema could not be read: ${why}`);
      }
      const types = new Map(s.types.map((t) => [t.name, t]));
      schema = {
        types,
        query: s.queryType ? types.get(s.queryType.name) : null,
        mutation: s.mutationType ? types.get(s.mutationType.name) : null,
        list: s.types.filter((t) => !t.name.startsWith('__')).sort((a, b) => a.name.localeCompare(b.name)),
      };
      show();
    } catch (e) {
      if (ctx.alive()) fill(docsBody, failure(e, loadSchema));
    }
  }

  function open(next) {
    back.push(view);
    view = next;
    if (filter.value) filter.value = '';
    show();
    docsBody.scrollTop = 0;
    docsBody.querySelector('h3')?.focus();
  }

  filter.addEventListener('input', () => show());
  filter.addEventListener('keydown', (e) => { if (e.key === 'Escape' && filter.value) { e.preventDefault(); filter.value = ''; show(); } });

  function show() {
    if (!schema) return;
    const q = filter.value.trim().toLowerCase();
    fill(docsNav, !q && view.kind !== 'home'
      ? h('div', { class: 'gql-crumbs' },
        button('← Back', () => { view = back.pop() || { kind: 'home' }; show(); }, { small: true, testid: 'gql-doc-back' }),
        button('Schema', () => open({ kind: 'home' }), { small: true, testid: 'gql-doc-home' }))
      : null);
    if (q) return fill(docsBody, searchView(q));
    if (view.kind === 'type') return fill(docsBody, typeView(view.name));
    if (view.kind === 'field') return fill(docsBody, fieldView(view.parent, view.name));
    return fill(docsBody, homeView());
  }

  /** A type reference as nodes: wrappers as text, the named type as a link to its documentation. */
  function typeRef(t) {
    if (t.kind === 'NON_NULL') return [typeRef(t.ofType), '!'];
    if (t.kind === 'LIST') return ['[', typeRef(t.ofType), ']'];
    return typeLink(t.name);
  }
  const typeLink = (name) => h('button', { type: 'button', class: 'linkish gql-type', testid: `gql-type-link-${name}`, onClick: () => open({ kind: 'type', name }) }, name);

  function description(text) {
    return text ? h('div', { class: 'gql-desc' }, text) : null;
  }

  function deprecated(item) {
    return item.isDeprecated ? h('div', { class: 'gql-desc' }, badge('deprecated', 'warn'), item.deprecationReason ? ` ${item.deprecationReason}` : '') : null;
  }

  /** One field of an object type: name(args): Type, with its description. */
  function fieldItem(parent, f) {
    return h('li', { testid: `gql-field-item-${parent.name}.${f.name}` },
      h('div', { class: 'gql-sig' },
        h('button', { type: 'button', class: 'linkish gql-fname', testid: `gql-field-${parent.name}.${f.name}`, onClick: () => open({ kind: 'field', parent: parent.name, name: f.name }) }, f.name),
        // Lines break only between arguments: `name: Type,` stays together.
        f.args.length ? ['(', f.args.map((a, i) => [i ? ' ' : '', h('span', { class: 'gql-pair' }, h('span', { class: 'gql-arg' }, a.name), ': ', typeRef(a.type), i < f.args.length - 1 ? ',' : '')])] : null,
        h('span', { class: 'gql-pair' }, f.args.length ? ')' : '', ': ', typeRef(f.type))),
      description(f.description), deprecated(f));
  }

  /** An argument or input field: name: Type = default, with its description. */
  function inputItem(v) {
    return h('li', {},
      h('div', { class: 'gql-sig' }, h('span', { class: 'gql-arg' }, v.name), ': ', typeRef(v.type),
        v.defaultValue !== null && v.defaultValue !== undefined ? h('span', { class: 'muted' }, ` = ${v.defaultValue}`) : null),
      description(v.description));
  }

  function rootSection(title, type, testid) {
    return h('section', { class: 'gql-section', testid },
      h('h3', { tabindex: '-1' }, title, ' ', type ? h('span', { class: 'muted small' }, `${type.name} · ${type.fields.length} fields`) : null),
      type ? h('ul', { class: 'gql-list' }, type.fields.map((f) => fieldItem(type, f))) : empty(`No ${title.toLowerCase()}.`));
  }

  function homeView() {
    return [
      rootSection('Queries', schema.query, 'gql-doc-queries'),
      rootSection('Mutations', schema.mutation, 'gql-doc-mutations'),
      h('details', { class: 'gql-section', testid: 'gql-doc-types' },
        h('summary', {}, `All types (${schema.list.length})`),
        h('ul', { class: 'gql-list compact' }, schema.list.map((t) => h('li', {}, typeLink(t.name), ' ', h('span', { class: 'muted small' }, kindLabel(t.kind)))))),
    ];
  }

  const kindLabel = (kind) => ({ OBJECT: 'type', INPUT_OBJECT: 'input', ENUM: 'enum', SCALAR: 'scalar', INTERFACE: 'interface', UNION: 'union' }[kind] || kind.toLowerCase());

  function typeView(name) {
    const t = schema.types.get(name);
    if (!t) return failure(new Error(`The schema has no type ${name}.`));
    const parts = [h('h3', { tabindex: '-1', testid: 'gql-doc-title' }, h('span', { class: 'gql-type' }, t.name), ' ', badge(kindLabel(t.kind), 'info')), description(t.description)];
    if (t.interfaces?.length) parts.push(h('p', { class: 'small' }, 'Implements ', t.interfaces.map((i, k) => [k ? ', ' : '', typeRef(i)])));
    if (t.possibleTypes?.length) parts.push(h('p', { class: 'small' }, 'One of ', t.possibleTypes.map((i, k) => [k ? ' | ' : '', typeRef(i)])));
    if (t.fields?.length) parts.push(h('h4', {}, 'Fields'), h('ul', { class: 'gql-list', testid: 'gql-doc-fields' }, t.fields.map((f) => fieldItem(t, f))));
    if (t.inputFields?.length) parts.push(h('h4', {}, 'Input fields'), h('ul', { class: 'gql-list', testid: 'gql-doc-input-fields' }, t.inputFields.map(inputItem)));
    if (t.enumValues?.length) {
      parts.push(h('h4', {}, 'Values'), h('ul', { class: 'gql-list', testid: 'gql-doc-enum-values' }, t.enumValues.map((v) => h('li', {},
        h('div', { class: 'gql-sig' }, h('span', { class: 'gql-arg' }, v.name)), description(v.description), deprecated(v)))));
    }
    if (t.kind === 'SCALAR' && !t.description) parts.push(h('p', { class: 'muted small' }, 'A scalar: its values are written as JSON literals.'));
    const uses = usedBy(name);
    if (uses.length) {
      parts.push(h('details', { class: 'gql-section' }, h('summary', {}, `Used by ${uses.length} field${uses.length === 1 ? '' : 's'}`),
        h('ul', { class: 'gql-list compact' }, uses.slice(0, MAX_HITS).map(([p, f]) => h('li', {}, fieldLink(p, f))))));
    }
    return parts;
  }

  const fieldLink = (p, f) => h('button', { type: 'button', class: 'linkish mono', onClick: () => open({ kind: 'field', parent: p.name, name: f.name }) }, `${p.name}.${f.name}`);

  /** The fields and arguments whose type is `name`. */
  function usedBy(name) {
    const out = [];
    for (const p of schema.list) {
      for (const f of p.fields || []) if (named(f.type) === name || f.args.some((a) => named(a.type) === name)) out.push([p, f]);
      for (const f of p.inputFields || []) if (named(f.type) === name) out.push([p, { ...f, args: [] }]);
    }
    return out;
  }

  function fieldView(parentName, name) {
    const parent = schema.types.get(parentName);
    const f = parent?.fields?.find((x) => x.name === name) || parent?.inputFields?.find((x) => x.name === name);
    if (!f) return failure(new Error(`The schema has no field ${parentName}.${name}.`));
    const root = parent === schema.query ? 'query' : parent === schema.mutation ? 'mutation' : null;
    return [
      h('h3', { tabindex: '-1', testid: 'gql-doc-title' }, h('span', { class: 'muted' }, `${parentName}.`), f.name),
      h('div', { class: 'gql-sig gql-returns' }, 'Type ', typeRef(f.type)),
      description(f.description), deprecated(f),
      f.args?.length ? [h('h4', {}, 'Arguments'), h('ul', { class: 'gql-list', testid: 'gql-doc-args' }, f.args.map(inputItem))]
        : h('p', { class: 'muted small', testid: 'gql-doc-args' }, 'No arguments.'),
      root ? h('div', { class: 'actions gql-insert' },
        button('Put in editor', () => insertSkeleton(root, f), { small: true, testid: 'gql-doc-insert', title: 'Replace the document with a query for this field' }),
        h('span', { class: 'muted small' }, 'Replaces the document and the variables.')) : null,
    ];
  }

  function searchView(q) {
    const typeHits = schema.list.filter((t) => t.name.toLowerCase().includes(q));
    const fieldHits = [];
    for (const t of [schema.query, schema.mutation, ...schema.list.filter((x) => x !== schema.query && x !== schema.mutation)]) {
      if (!t) continue;
      for (const f of t.fields || []) if (f.name.toLowerCase().includes(q)) fieldHits.push([t, f]);
      for (const f of t.inputFields || []) if (f.name.toLowerCase().includes(q)) fieldHits.push([t, { ...f, args: [] }]);
    }
    if (!typeHits.length && !fieldHits.length) return empty(`Nothing in the schema matches "${filter.value.trim()}".`, 'The filter looks at type and field names.');
    const more = (n) => (n > MAX_HITS ? h('p', { class: 'muted small' }, `And ${n - MAX_HITS} more: narrow the filter.`) : null);
    return h('div', { testid: 'gql-doc-search' },
      typeHits.length ? h('section', { class: 'gql-section' }, h('h4', {}, `Types (${typeHits.length})`),
        h('ul', { class: 'gql-list compact' }, typeHits.slice(0, MAX_HITS).map((t) => h('li', {}, typeLink(t.name), ' ', h('span', { class: 'muted small' }, kindLabel(t.kind))))), more(typeHits.length)) : null,
      fieldHits.length ? h('section', { class: 'gql-section' }, h('h4', {}, `Fields (${fieldHits.length})`),
        h('ul', { class: 'gql-list compact' }, fieldHits.slice(0, MAX_HITS).map(([t, f]) => h('li', {},
          h('div', { class: 'gql-sig' }, fieldLink(t, f), ': ', typeRef(f.type))))), more(fieldHits.length)) : null);
  }

  // ---- skeleton queries ---------------------------------------------------
  /** A selection set for a type: its scalar fields, and object fields `depth` levels down. */
  function selection(typeName, depth, indent, seen) {
    const t = schema.types.get(typeName);
    if (!t) return '';
    if (t.kind === 'UNION') return `${indent}__typename`;
    if (t.kind !== 'OBJECT' && t.kind !== 'INTERFACE') return '';
    const lines = [];
    for (const f of t.fields || []) {
      if (f.isDeprecated || f.args.some(required)) continue;
      const inner = schema.types.get(named(f.type));
      if (!inner) continue;
      if (inner.kind === 'SCALAR' || inner.kind === 'ENUM') lines.push(`${indent}${f.name}`);
      else if (depth > 0 && !seen.includes(inner.name)) {
        const sub = selection(inner.name, depth - 1, `${indent}  `, [...seen, inner.name]);
        if (sub) lines.push(`${indent}${f.name} {\n${sub}\n${indent}}`);
      }
    }
    return lines.length ? lines.join('\n') : `${indent}__typename`;
  }

  /** A placeholder JSON value for a required argument of type t. */
  function placeholder(t, depth = 0) {
    if (t.kind === 'NON_NULL') return placeholder(t.ofType, depth);
    if (t.kind === 'LIST') return [];
    const n = schema.types.get(t.name);
    if (n?.kind === 'ENUM') return n.enumValues[0]?.name ?? '';
    if (n?.kind === 'INPUT_OBJECT') {
      return depth > 3 ? {} : Object.fromEntries((n.inputFields || []).filter(required).map((v) => [v.name, placeholder(v.type, depth + 1)]));
    }
    return { Int: 0, Float: 0, Boolean: false }[t.name] ?? '';
  }

  function insertSkeleton(operation, f) {
    const decl = f.args.length ? `(${f.args.map((a) => `$${a.name}: ${typeText(a.type)}`).join(', ')})` : '';
    const args = f.args.length ? `(${f.args.map((a) => `${a.name}: $${a.name}`).join(', ')})` : '';
    const ret = schema.types.get(named(f.type));
    const sel = ret && (ret.kind === 'OBJECT' || ret.kind === 'INTERFACE' || ret.kind === 'UNION')
      ? ` {\n${selection(ret.name, 1, '    ', [ret.name])}\n  }` : '';
    const doc = `${operation} ${capital(f.name)}${decl} {\n  ${f.name}${args}${sel}\n}\n`;
    // A variable of a non-null type must be given, even when the argument
    // has a default: the default (a GraphQL literal, JSON for scalars and the
    // bare name for an enum value) or a placeholder.
    const need = f.args.filter((a) => a.type.kind === 'NON_NULL');
    const value = (a) => {
      if (a.defaultValue === null || a.defaultValue === undefined) return placeholder(a.type);
      try { return JSON.parse(a.defaultValue); } catch { return a.defaultValue; }
    };
    const vars = need.length ? JSON.stringify(Object.fromEntries(need.map((a) => [a.name, value(a)])), null, 2) : '';
    setDocument(doc, vars);
    docInput.focus();
    docInput.setSelectionRange(0, 0);
    toast(need.some(required) ? `A ${operation} for ${f.name} is in the editor: fill in its variables.` : `A ${operation} for ${f.name} is in the editor.`);
  }

  await loadSchema();
}
