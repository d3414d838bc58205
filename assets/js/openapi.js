// OpenAPI definitions for reading (issue 18): the operations of an OpenAPI 3
// document (Swagger 2's basics too) grouped by path, each with its method,
// summary and description, parameters, request body and responses per
// status, and schemas as an indented tree: local `$ref`s resolved and named,
// nested objects and arrays, required marks, enums, formats, defaults.
// Everything in a definition is untrusted text from a runtime: this module
// builds DOM with createElement and textContent only, never markup, and
// imports nothing (the runtime page adds "Try it" through a callback).
// Guards: a `$ref` inside its own expansion is named, not expanded again;
// schemas stop at MAX_DEPTH levels and MAX_NODES lines per view; an
// operation's detail is built when it is first opened; at most
// MAX_OPERATIONS operations are listed.

export const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
export const MAX_OPERATIONS = 500;
const MAX_DEPTH = 10;
const MAX_NODES = 600;
const MAX_REF_HOPS = 32;
const MAX_TEXT = 2000;

// ---- reading the document ---------------------------------------------------

/** The definition as an object: parsed when the runtime sent JSON text; null when it is not an object. */
export function parseDefinition(definition) {
  let doc = definition;
  if (typeof doc === 'string') {
    try { doc = JSON.parse(doc); } catch { return null; }
  }
  return doc && typeof doc === 'object' && !Array.isArray(doc) ? doc : null;
}

const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const own = (o, k) => isObj(o) && Object.prototype.hasOwnProperty.call(o, k);

/** The value at a local JSON pointer (`#/components/schemas/Order`), or undefined. */
export function pointer(doc, ref) {
  if (typeof ref !== 'string' || !ref.startsWith('#')) return undefined;
  let node = doc;
  for (const raw of ref.slice(1).split('/').slice(1)) {
    let key;
    try { key = decodeURIComponent(raw); } catch { key = raw; }
    key = key.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !Object.prototype.hasOwnProperty.call(node, key)) return undefined;
    node = node[key];
  }
  return node;
}

/** A `$ref`'s last segment: `Order` for `#/components/schemas/Order`. */
export const refName = (ref) => String(ref).split('/').pop().replace(/~1/g, '/').replace(/~0/g, '~');

/**
 * Follows `$ref`s from `node`: { node, refs } with the object reached and
 * the refs followed (node is null for a ref that is remote, missing or
 * circular among refs alone).
 */
export function deref(doc, node) {
  const refs = [];
  while (own(node, '$ref')) {
    const ref = node.$ref;
    if (refs.includes(ref) || refs.length >= MAX_REF_HOPS) return { node: null, refs: [...refs, ref] };
    refs.push(ref);
    node = pointer(doc, ref);
  }
  return { node: isObj(node) ? node : null, refs };
}

/**
 * The base path of the document's first server (`/orders` for
 * `{server}:{port}/orders` or `http://h:9090/orders`), or Swagger 2's
 * `basePath`; '' for none.
 */
export function serverBasePath(doc) {
  if (typeof doc?.basePath === 'string') return trimSlash(doc.basePath);
  const url = Array.isArray(doc?.servers) && typeof doc.servers[0]?.url === 'string' ? doc.servers[0].url : '';
  const m = /^(?:[a-z][a-z0-9+.-]*:\/\/[^/]*|\{[^}]*\}(?::\{[^}]*\}|:\d+)?|[^/]*:\d+)?(\/[^?#]*)?/i.exec(url);
  return trimSlash(m?.[1] || '');
}

const trimSlash = (p) => (p === '/' ? '' : String(p || '').replace(/\/+$/, ''));

/** basePath + path with one slash between. */
export function joinPath(basePath, path) {
  const base = trimSlash(basePath || '');
  const rest = String(path || '');
  if (!base) return rest || '/';
  return rest.startsWith('/') ? base + rest : `${base}/${rest}`;
}

/** A parameter, its `$ref` followed; with `schema` from Swagger 2's type fields when it has none. */
function parameter(doc, p) {
  const { node } = deref(doc, p);
  if (!node || typeof node.name !== 'string') return null;
  const schema = node.schema ?? (node.type ? { type: node.type, format: node.format, items: node.items, enum: node.enum, default: node.default } : undefined);
  return { name: node.name, in: String(node.in || ''), required: !!node.required || node.in === 'path', description: text(node.description), deprecated: !!node.deprecated, schema, example: node.example ?? node.schema?.example, raw: node };
}

/** [[mediaType, {schema, example}]] of a `content` map. */
function contents(doc, content) {
  if (!isObj(content)) return [];
  return Object.entries(content).map(([type, m]) => {
    const media = deref(doc, m).node || {};
    let example = media.example;
    if (example === undefined && isObj(media.examples)) {
      const first = Object.values(media.examples)[0];
      example = deref(doc, first).node?.value;
    }
    return [type, { schema: media.schema, example }];
  });
}

/**
 * The operations of a document, in document order: { path, method,
 * operationId, summary, description, deprecated, parameters, requestBody:
 * { required, description, content } | null, responses: [{ status,
 * description, content }] }. Path-level parameters apply unless the
 * operation redefines them. `truncated` on the list when there were more
 * than MAX_OPERATIONS.
 */
export function operations(doc) {
  const list = [];
  let total = 0;
  if (!isObj(doc?.paths)) return Object.assign(list, { truncated: false, total: 0 });
  for (const [path, rawItem] of Object.entries(doc.paths)) {
    const item = deref(doc, rawItem).node;
    if (!item) continue;
    const shared = Array.isArray(item.parameters) ? item.parameters.map((p) => parameter(doc, p)).filter(Boolean) : [];
    for (const method of METHODS) {
      const op = item[method];
      if (!isObj(op)) continue;
      total += 1;
      if (list.length >= MAX_OPERATIONS) continue;
      const mine = Array.isArray(op.parameters) ? op.parameters.map((p) => parameter(doc, p)).filter(Boolean) : [];
      const key = (p) => `${p.in}:${p.name}`;
      const params = [...shared.filter((s) => !mine.some((m) => key(m) === key(s))), ...mine];
      // Swagger 2: a body parameter is the request body.
      const bodyParam = params.find((p) => p.in === 'body');
      const formParams = params.filter((p) => p.in === 'formData');
      let requestBody = null;
      const rb = deref(doc, op.requestBody).node;
      if (rb) requestBody = { required: !!rb.required, description: text(rb.description), content: contents(doc, rb.content) };
      else if (bodyParam) requestBody = { required: bodyParam.required, description: bodyParam.description, content: [[(op.consumes || doc.consumes || ['application/json'])[0], { schema: bodyParam.raw.schema }]] };
      else if (formParams.length) {
        requestBody = { required: formParams.some((p) => p.required), description: '', content: [['application/x-www-form-urlencoded', { schema: { type: 'object', required: formParams.filter((p) => p.required).map((p) => p.name), properties: Object.fromEntries(formParams.map((p) => [p.name, p.schema || {}])) } }]] };
      }
      const responses = isObj(op.responses) ? Object.entries(op.responses).map(([status, r]) => {
        const res = deref(doc, r).node || {};
        const content = res.content ? contents(doc, res.content) : res.schema ? [[(op.produces || doc.produces || ['application/json'])[0], { schema: res.schema }]] : [];
        return { status, description: text(res.description), content, headers: isObj(res.headers) ? Object.keys(res.headers) : [] };
      }) : [];
      list.push({
        path, method, operationId: text(op.operationId), summary: text(op.summary), description: text(op.description), deprecated: !!op.deprecated,
        parameters: params.filter((p) => p.in !== 'body' && p.in !== 'formData'), requestBody, responses,
      });
    }
  }
  return Object.assign(list, { truncated: total > list.length, total });
}

/** The operations grouped by path, in document order: [[path, [op...]]]. */
export function byPath(ops) {
  const groups = new Map();
  for (const op of ops) {
    if (!groups.has(op.path)) groups.set(op.path, []);
    groups.get(op.path).push(op);
  }
  return [...groups.entries()];
}

/** The JSON media type of a request body, if it has one: [type, {schema, example}]. */
export function jsonContent(requestBody) {
  return requestBody?.content.find(([t]) => /^application\/([\w.+-]*\+)?json\b/i.test(t) || t === '*/*') || null;
}

/**
 * The path with `{name}` replaced by values[name] percent-encoded (as one
 * segment: `/` and `?` are encoded too); a name without a value stays as
 * `{name}`.
 */
export function fillPath(path, values) {
  return String(path).replace(/\{([^}/]+)\}/g, (whole, name) => (values[name] !== undefined && values[name] !== '' ? encodeURIComponent(values[name]) : whole));
}

/** The `{name}`s of a path, in order. */
export const pathNames = (path) => [...String(path).matchAll(/\{([^}/]+)\}/g)].map((m) => m[1]);

const text = (v) => (typeof v === 'string' ? (v.length > MAX_TEXT ? `${v.slice(0, MAX_TEXT)}…` : v) : '');

// ---- an example value for a schema ----------------------------------------

/**
 * A value shaped like the schema: its example or default, the first enum
 * value, else a placeholder per type, objects with every property (required
 * ones first), arrays with one item. Refs are followed once per branch.
 */
export function exampleOf(doc, schema, depth = 0, stack = []) {
  const { node, refs } = deref(doc, schema);
  if (!node || depth > 6 || refs.some((r) => stack.includes(r))) return null;
  const seen = [...stack, ...refs];
  if (node.example !== undefined) return node.example;
  if (node.default !== undefined) return node.default;
  if (Array.isArray(node.enum) && node.enum.length) return node.enum[0];
  if (Array.isArray(node.allOf)) {
    const parts = node.allOf.map((s) => exampleOf(doc, s, depth + 1, seen));
    if (parts.every(isObj)) return Object.assign({}, ...parts);
    return parts[0] ?? null;
  }
  const alt = node.oneOf || node.anyOf;
  if (Array.isArray(alt) && alt.length) return exampleOf(doc, alt[0], depth + 1, seen);
  const type = Array.isArray(node.type) ? node.type.find((t) => t !== 'null') : node.type;
  if (type === 'array') return node.items ? [exampleOf(doc, node.items, depth + 1, seen)] : [];
  if (type === 'object' || (!type && (node.properties || node.additionalProperties))) {
    const out = {};
    const props = isObj(node.properties) ? Object.entries(node.properties) : [];
    const req = new Set(Array.isArray(node.required) ? node.required : []);
    for (const [k, v] of [...props.filter(([k]) => req.has(k)), ...props.filter(([k]) => !req.has(k))].slice(0, 50)) {
      if (deref(doc, v).node?.readOnly) continue;
      out[k] = exampleOf(doc, v, depth + 1, seen);
    }
    return out;
  }
  if (type === 'integer' || type === 'number') return 0;
  if (type === 'boolean') return false;
  if (type === 'string') {
    return ({ 'date-time': '2026-01-01T00:00:00Z', date: '2026-01-01', email: 'user@example.com', uuid: '00000000-0000-0000-0000-000000000000', uri: 'https://example.com' })[node.format] ?? 'string';
  }
  return null;
}

// ---- DOM ----------------------------------------------------------------------

/** An element with a class and children (nodes or text); never parses markup. */
function el(tag, cls, ...children) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const tid = (e, id) => { if (id) e.dataset.testid = id; return e; };

/** A schema's type in a few words: `string (date-time)`, `array of Order`, `map of integer`, `Order`. */
export function typeLabel(doc, schema, depth = 0) {
  if (!isObj(schema)) return schema === true ? 'any' : '—';
  if (depth > 4) return '…';
  if (own(schema, '$ref')) return refName(schema.$ref);
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  const one = (t) => {
    if (t === 'array') return schema.items ? `array of ${typeLabel(doc, schema.items, depth + 1)}` : 'array';
    if (t === 'object' && isObj(schema.additionalProperties) && !schema.properties) return `map of ${typeLabel(doc, schema.additionalProperties, depth + 1)}`;
    return schema.format ? `${t} (${schema.format})` : t;
  };
  let label = types.map(one).join(' | ');
  if (!label) {
    if (schema.allOf) label = schema.allOf.length === 1 ? typeLabel(doc, schema.allOf[0], depth + 1) : 'all of';
    else if (schema.oneOf) label = 'one of';
    else if (schema.anyOf) label = 'any of';
    else if (schema.properties) label = 'object';
    else if (schema.items) label = `array of ${typeLabel(doc, schema.items, depth + 1)}`;
    else if (schema.enum) label = 'enum';
    else label = 'any';
  }
  return schema.nullable ? `${label} | null` : label;
}

/**
 * A schema as a tree: one line per property (name, required mark, type,
 * description, enum, default, constraints) with nested objects and array
 * items indented under it. `name` labels the root line (omitted: the
 * root's own type line).
 */
export function schemaView(doc, schema, { testid } = {}) {
  const budget = { left: MAX_NODES, cut: false };
  const root = el('ul', 'oa-schema');
  tid(root, testid);
  line(doc, root, null, schema, false, 0, [], budget);
  if (budget.cut) root.append(el('li', 'oa-cut muted', `… the rest is not shown (more than ${MAX_NODES} lines)`));
  return root;
}

function constraints(s) {
  const out = [];
  const add = (label, v) => { if (v !== undefined && v !== null && typeof v !== 'object') out.push(`${label} ${v}`); };
  add('min', s.minimum); add('max', s.maximum); add('min length', s.minLength); add('max length', s.maxLength);
  add('min items', s.minItems); add('max items', s.maxItems); add('pattern', s.pattern);
  if (s.readOnly) out.push('read-only');
  if (s.writeOnly) out.push('write-only');
  if (s.deprecated) out.push('deprecated');
  return out;
}

const short = (v) => {
  const s = typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
};

/** Appends one line (and its children) for `schema` to the list `ul`. */
function line(doc, ul, name, schema, required, depth, stack, budget) {
  if (budget.left <= 0) { budget.cut = true; return; }
  budget.left -= 1;
  const { node, refs } = deref(doc, schema);
  const li = el('li', 'oa-prop');
  const head = el('div', 'oa-line');
  if (name !== null) {
    head.append(el('span', 'oa-name', name));
    if (required) {
      const mark = el('span', 'oa-required', '*');
      mark.title = 'required';
      head.append(mark, el('span', 'visually-hidden', ' (required)'));
    }
  }
  const cycle = refs.find((r) => stack.includes(r));
  head.append(el('span', 'oa-type', typeLabel(doc, schema)));
  if (refs.length && own(schema, '$ref') && node) {
    const shown = typeLabel(doc, node);
    if (shown && shown !== 'any' && shown !== refName(schema.$ref)) head.append(el('span', 'oa-type muted', ` ${shown}`));
  }
  li.append(head);
  ul.append(li);
  if (!node) {
    if (own(schema, '$ref')) li.append(el('div', 'oa-note muted', cycle ? 'refers to itself' : `not found in this document: ${schema.$ref}`));
    return;
  }
  if (node.description || node.title) li.append(el('div', 'oa-desc', text(node.description || node.title)));
  const facts = [];
  if (Array.isArray(node.enum) && node.enum.length) facts.push(el('span', 'oa-enum', 'one of: ', node.enum.slice(0, 30).map((v, i) => [i ? ', ' : '', el('code', '', short(v))]), node.enum.length > 30 ? `, … (${node.enum.length})` : ''));
  if (node.default !== undefined) facts.push(el('span', '', 'default: ', el('code', '', short(node.default))));
  if (node.example !== undefined && !isObj(node.example) && !Array.isArray(node.example)) facts.push(el('span', '', 'example: ', el('code', '', short(node.example))));
  const c = constraints(node);
  if (c.length) facts.push(el('span', '', c.join(' · ')));
  if (facts.length) li.append(el('div', 'oa-facts muted', facts.map((f, i) => [i ? ' · ' : '', f])));
  if (cycle) {
    li.append(el('div', 'oa-note muted', `${refName(cycle)} again (shown above)`));
    return;
  }
  if (depth >= MAX_DEPTH) {
    li.append(el('div', 'oa-note muted', '… nested deeper than shown'));
    return;
  }
  const next = [...stack, ...refs];
  const kids = el('ul', 'oa-schema');
  const child = (n, s, r) => line(doc, kids, n, s, r, depth + 1, next, budget);
  for (const [key, label] of [['allOf', 'all of'], ['oneOf', 'one of'], ['anyOf', 'any of']]) {
    if (!Array.isArray(node[key])) continue;
    if (key === 'allOf') { node.allOf.forEach((s) => child(null, s, false)); continue; }
    const alt = el('li', 'oa-prop');
    alt.append(el('div', 'oa-line', el('span', 'oa-type', `${label}:`)));
    const altList = el('ul', 'oa-schema oa-alternatives');
    node[key].forEach((s) => line(doc, altList, null, s, false, depth + 1, next, budget));
    alt.append(altList);
    kids.append(alt);
  }
  if (isObj(node.properties)) {
    const req = new Set(Array.isArray(node.required) ? node.required : []);
    for (const [k, v] of Object.entries(node.properties)) child(k, v, req.has(k));
  }
  if (isObj(node.additionalProperties) && node.properties) child('(other names)', node.additionalProperties, false);
  else if (isObj(node.additionalProperties)) child('(any name)', node.additionalProperties, false);
  if (node.items && isObj(node.items)) {
    const item = deref(doc, node.items).node;
    // "array of string" says it all; items with structure get a line.
    if (item && (item.properties || item.items || item.allOf || item.oneOf || item.anyOf || item.enum || item.additionalProperties || item.description)) child('[item]', node.items, false);
  }
  if (kids.childElementCount) li.append(kids);
}

const METHOD_ORDER = new Map(METHODS.map((m, i) => [m, i]));

/**
 * A rendered definition: a section per path with its operations, each a
 * <details> whose body (description, parameters, request body, responses)
 * is built when first opened. opts.tryIt(op) may return an element put at
 * the top of the body (the "Try it" form); opts.basePath is shown before
 * each path; opts.testid prefixes test ids (`PREFIX-definition`,
 * `PREFIX-path-/{id}`, `PREFIX-op-get-/{id}`).
 */
export function renderDefinition(doc, { tryIt, basePath = '', testid = 'oa' } = {}) {
  const ops = operations(doc);
  const wrap = el('div', 'oa');
  tid(wrap, `${testid}-definition`);
  const info = isObj(doc.info) ? doc.info : {};
  const head = el('div', 'oa-info');
  if (info.title || info.version) head.append(el('div', 'oa-title', el('strong', '', text(info.title) || 'Untitled'), info.version ? el('span', 'muted', ` · version ${text(String(info.version))}`) : null));
  const spec = text(String(doc.openapi || doc.swagger || ''));
  if (spec) head.append(el('div', 'muted small', `${doc.openapi ? 'OpenAPI' : 'Swagger'} ${spec}`));
  if (info.description) head.append(el('div', 'oa-desc', text(info.description)));
  if (head.childElementCount) wrap.append(head);
  if (!ops.length) {
    wrap.append(el('p', 'muted', 'The definition lists no operations.'));
    return wrap;
  }
  for (const [path, list] of byPath(ops)) {
    const full = joinPath(basePath, path);
    const section = el('section', 'oa-path');
    tid(section, `${testid}-path-${path}`);
    section.append(el('h4', 'oa-path-head mono', basePath ? el('span', 'muted', trimSlash(basePath)) : null, path));
    for (const op of [...list].sort((a, b) => METHOD_ORDER.get(a.method) - METHOD_ORDER.get(b.method))) {
      const d = el('details', 'oa-op');
      d.dataset.method = op.method;
      tid(d, `${testid}-op-${op.method}-${path}`);
      const sum = el('summary', 'oa-op-head',
        el('span', `oa-method m-${op.method}`, op.method.toUpperCase()),
        el('span', 'oa-op-path mono', full),
        op.summary ? el('span', 'oa-op-summary', op.summary) : null,
        op.deprecated ? el('span', 'badge warn', 'deprecated') : null);
      d.append(sum);
      let built = false;
      d.addEventListener('toggle', () => {
        if (!d.open || built) return;
        built = true;
        d.append(operationBody(doc, op, { tryIt, testid: `${testid}-op-${op.method}-${path}` }));
      });
      section.append(d);
    }
    wrap.append(section);
  }
  if (ops.truncated) wrap.append(el('p', 'callout warn', `Only the first ${MAX_OPERATIONS} of ${ops.total} operations are listed.`));
  return wrap;
}

/** An operation's detail: description, try-it, parameters, request body, responses. */
export function operationBody(doc, op, { tryIt, testid } = {}) {
  const body = el('div', 'oa-op-body');
  if (op.operationId) body.append(el('div', 'muted small', 'Operation ', el('code', '', op.operationId)));
  if (op.description && op.description !== op.summary) body.append(el('p', 'oa-desc', op.description));
  const trying = tryIt?.(op);
  if (trying) body.append(trying);
  body.append(el('h5', '', 'Parameters'));
  if (op.parameters.length) {
    const table = el('table', 'oa-params');
    tid(table, `${testid}-params`);
    table.append(el('thead', '', el('tr', '', ['Name', 'In', 'Type', 'Description'].map((t) => el('th', '', t)))));
    table.append(el('tbody', '', op.parameters.map((p) => {
      const name = el('td', '', el('span', 'oa-name', p.name));
      if (p.required) {
        const mark = el('span', 'oa-required', '*');
        mark.title = 'required';
        name.append(mark, el('span', 'visually-hidden', ' (required)'));
      }
      const tr = el('tr', '', name, el('td', '', p.in), el('td', 'oa-type', typeLabel(doc, p.schema)),
        el('td', '', p.description ? el('div', 'oa-desc', p.description) : null, paramFacts(doc, p)));
      tr.dataset.param = p.name;
      return tr;
    })));
    body.append(el('div', 'table-wrap', table));
  } else body.append(el('p', 'muted', 'None.'));
  if (op.requestBody) {
    body.append(el('h5', '', 'Request body', op.requestBody.required ? el('span', 'oa-required', ' *') : el('span', 'muted', ' (optional)')));
    if (op.requestBody.description) body.append(el('div', 'oa-desc', op.requestBody.description));
    for (const [type, media] of op.requestBody.content) {
      body.append(el('div', 'oa-media', el('code', 'oa-media-type', type)), schemaView(doc, media.schema, { testid: `${testid}-request` }));
    }
  }
  body.append(el('h5', '', 'Responses'));
  if (!op.responses.length) body.append(el('p', 'muted', 'None described.'));
  for (const r of op.responses) {
    const block = el('div', 'oa-response');
    tid(block, `${testid}-response-${r.status}`);
    const kind = /^2/.test(r.status) ? 'ok' : /^[45]/.test(r.status) ? 'bad' : /^3/.test(r.status) ? 'info' : '';
    block.append(el('div', 'oa-line', el('span', `badge ${kind}`, r.status), r.description ? el('span', 'oa-desc', r.description) : null));
    for (const [type, media] of r.content) {
      block.append(el('div', 'oa-media', el('code', 'oa-media-type', type)));
      if (media.schema) block.append(schemaView(doc, media.schema, { testid: `${testid}-response-${r.status}-schema` }));
    }
    if (r.headers.length) block.append(el('div', 'muted small', 'Headers: ', r.headers.join(', ')));
    body.append(block);
  }
  return body;
}

function paramFacts(doc, p) {
  const s = deref(doc, p.schema).node;
  if (!s && p.example === undefined) return null;
  const facts = [];
  if (Array.isArray(s?.enum)) facts.push(`one of: ${s.enum.slice(0, 20).map(short).join(', ')}`);
  if (s?.default !== undefined) facts.push(`default: ${short(s.default)}`);
  const ex = p.example ?? s?.example;
  if (ex !== undefined) facts.push(`example: ${short(ex)}`);
  if (p.deprecated) facts.push('deprecated');
  return facts.length ? el('div', 'muted small', facts.join(' · ')) : null;
}
