// A runtime's contracts (issue 18), the runtime page's "Contracts" tab: the
// OpenAPI definitions a Ballerina runtime reported (GET
// /api/v1/runtimes/{id}/openapi), each rendered by openapi.js, and "Try it":
// a form per operation (path parameters substituted and percent-encoded,
// query parameters, headers, a body editor prefilled with an example, the
// operator's own Authorization for the runtime) that POSTs
// /api/v1/runtimes/{id}/try-it and shows the runtime's answer (status,
// time, headers, the body pretty-printed when it is JSON). For an MI
// runtime, which reports no definitions, one generic form, prefilled from
// an MI API's context. The Authorization goes in the X-Try-It-Authorization
// request header only: never in the JSON body, never stored; the field is
// emptied when the page is left. A critical environment asks for
// confirmation before each request and then sends "confirm": true. Try it
// is disabled, with the server's reason, when the runtime cannot be tried
// or the user may not.

import { get, api, enc } from './api.js';
import { h, fill, card, loading, failure, button, badge, field, input, select, table, confirm, timeAgo } from './ui.js';
import { parseDefinition, renderDefinition, serverBasePath, joinPath, pathNames, fillPath, jsonContent, exampleOf } from './openapi.js';
import { bytes } from './mi.js';

/** A definition's size: bytes, KiB below 1 MiB, else as mi.js shows memory. */
const size = (n) => (n < 1024 ? `${n} bytes` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : bytes(n));

const BODY_METHODS = new Set(['post', 'put', 'patch', 'delete']);
const GENERIC_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
// Headers the form keeps out of "Other headers": credentials have their own
// field (sent as X-Try-It-Authorization, never in the body).
const FORBIDDEN = new Set(['authorization', 'x-try-it-authorization', 'cookie', 'proxy-authorization']);

/**
 * The Contracts tab of one runtime: { el, update(runtime), stop() }.
 * update() is called with the runtime's detail on every refresh of the
 * page; the definitions are fetched again only when the runtime's status or
 * try-it host changed (or on Reload), and redrawn only when they changed, so
 * open operations and filled forms stay as they are.
 */
export function contractsPanel(runtimeId) {
  const el = h('div', { class: 'stack', testid: 'contracts' }, loading('Reading the runtime\'s contracts…'));
  let runtime = null;
  let data = null;
  let seen = null; // what the last fetch depended on
  let drawn = null; // what the definitions were drawn from
  let loadSeq = 0;
  const watchers = new Set(); // forms that follow the try-it state
  const status = h('div', { class: 'stack', testid: 'tryit-state', 'aria-live': 'polite' });
  const defs = h('div', { class: 'stack' });

  const tryState = () => data?.tryIt || { targets: [], available: false, reason: 'Not read yet.', critical: false, allowed: false };

  async function load(force = false) {
    const my = ++loadSeq;
    try {
      const next = await get(`/runtimes/${enc(runtimeId)}/openapi`);
      if (my !== loadSeq) return;
      data = next;
      draw(force);
    } catch (e) {
      if (my !== loadSeq) return;
      if (!data) fill(el, failure(e, () => load(true)));
    }
  }

  function draw(force) {
    const items = data.items || [];
    const key = JSON.stringify([runtime?.runtimeType, items.map((i) => [i.fileName, i.receivedAt, i.sizeBytes, i.problem])]);
    drawStatus();
    if (!force && key === drawn && el.contains(defs)) { watchers.forEach((w) => w()); return; }
    drawn = key;
    watchers.clear();
    const isMi = runtime?.runtimeType === 'MI';
    fill(defs, isMi ? miCard() : items.length
      ? items.map((item, i) => definitionCard(item, i))
      : card('Contracts', null, h('p', { class: 'muted', testid: 'contracts-empty' }, 'The runtime reported no OpenAPI definitions. A Ballerina runtime reports those packed into it (its services\' contracts) with a full heartbeat.')));
    if (!el.contains(defs)) {
      fill(el,
        h('div', { class: 'card-head contracts-head' },
          h('h2', {}, isMi ? 'Try MI APIs' : `Contracts (${items.length})`),
          button('Reload', () => load(true), { small: true, testid: 'contracts-reload', title: 'Read the definitions again' })),
        status, defs);
    } else {
      el.querySelector('.contracts-head h2').textContent = isMi ? 'Try MI APIs' : `Contracts (${items.length})`;
    }
  }

  function drawStatus() {
    const t = tryState();
    const targets = t.targets || [];
    fill(status,
      !t.available ? h('div', { class: 'callout warn', role: 'status', testid: 'tryit-unavailable' }, `Try it is unavailable: ${t.reason || 'the runtime cannot be reached.'}`) : null,
      !t.allowed ? h('div', { class: 'callout info', testid: 'tryit-not-allowed' }, 'You may read these contracts but not try them: trying needs integration:edit on the integration and the permission its environment asks for.') : null,
      t.available && t.allowed ? h('div', { class: 'tryit-summary muted small' },
            'Try it sends requests to ', targets.map((u, i) => [i ? ', ' : '', h('code', {}, u)]),
            ' with your own credentials for the runtime.',
            t.critical ? [' ', h('span', { class: 'badge warn', testid: 'tryit-critical' }, 'critical environment'), ' Each request asks for confirmation.'] : null) : null);
  }

  // ---- a definition -----------------------------------------------------------

  function definitionCard(item, i) {
    const doc = parseDefinition(item.definition);
    const basePath = item.basePath ?? (doc ? serverBasePath(doc) : '');
    const id = `contract-${i}`;
    const tid = `contract-${item.fileName}`;
    const facts = h('div', { class: 'chips contract-facts' },
      item.service ? badge(`service ${item.service}`, 'info', `${tid}-service`) : null,
      basePath ? h('span', { class: 'badge', testid: `${tid}-base-path` }, `base path ${basePath}`) : null,
      item.sizeBytes != null ? h('span', { class: 'badge', title: `${item.sizeBytes} bytes as the runtime sent it` }, size(item.sizeBytes)) : null,
      item.receivedAt ? h('span', { class: 'muted small' }, 'received ', timeAgo(item.receivedAt)) : null);
    let body;
    if (!doc) {
      body = h('div', { class: 'callout warn', testid: `${tid}-problem` }, item.problem || 'icpd did not keep this definition (it is not a JSON object).');
    } else {
      body = renderDefinition(doc, { basePath, testid: tid, tryIt: (op) => operationTry(doc, op, basePath) });
    }
    return h('section', { class: 'card contract', testid: tid, 'data-file': item.fileName, 'aria-labelledby': `${id}-title` },
      h('div', { class: 'card-head' }, h('h3', { id: `${id}-title`, class: 'mono' }, item.fileName), facts),
      body);
  }

  /** The "Try it" block inside an operation: a button that opens the form. */
  function operationTry(doc, op, basePath) {
    const holder = h('div', { class: 'tryit-holder' });
    const open = button('Try it', () => {
      open.hidden = true;
      const form = tryForm({
        method: op.method.toUpperCase(), template: joinPath(basePath, op.path), params: op.parameters,
        body: op.requestBody ? bodyStart(doc, op.requestBody) : null,
        testid: `tryit-${op.method}-${op.path}`,
        onClose: () => { form.remove(); open.hidden = false; open.focus(); },
      });
      holder.append(form);
      form.querySelector('input, textarea, select')?.focus();
    }, { small: true, kind: 'primary', testid: `tryit-open-${op.method}-${op.path}` });
    holder.append(open);
    const sync = () => {
      const t = tryState();
      open.disabled = !t.available || !t.allowed;
      open.title = !t.available ? `Unavailable: ${t.reason || 'the runtime cannot be reached'}` : !t.allowed ? 'Trying needs integration:edit and the environment\'s permission' : '';
    };
    sync();
    watchers.add(sync);
    return holder;
  }

  /** The body editor's start: { type, text } from the JSON media type's example or schema. */
  function bodyStart(doc, requestBody) {
    const json = jsonContent(requestBody);
    if (json) {
      const [type, media] = json;
      let value = media.example;
      if (value === undefined && media.schema) value = exampleOf(doc, media.schema);
      return { type: type === '*/*' ? 'application/json' : type, text: JSON.stringify(value ?? {}, null, 2) };
    }
    const [type] = requestBody.content[0] || ['text/plain'];
    return { type, text: '' };
  }

  // ---- MI: one generic form, prefilled from an API's context --------------------

  function miCard() {
    const apis = Object.values(runtime?.miArtifacts || {}).flat().filter((a) => a.kind === 'api' && typeof a.detail?.context === 'string');
    const generic = tryForm({ method: 'GET', template: null, params: [], body: { type: 'application/json', text: '' }, testid: 'tryit-mi', generic: true });
    const use = (method, path) => {
      generic.setRequest(method, path);
      generic.scrollIntoView({ block: 'nearest' });
      generic.querySelector('input[name=path]')?.focus();
    };
    // Where the API answers: the path of the URL MI reported (its context,
    // and its version for a URL-versioned API), else its context.
    const base = (a) => {
      try { return decodeURI(new URL(a.detail.url).pathname).replace(/\/+$/, '') || a.detail.context; } catch { return a.detail.context; }
    };
    const resourceButtons = (a) => (a.detail.resources || []).flatMap((r) => {
      const methods = (Array.isArray(r.methods) ? r.methods : String(r.methods || 'GET').split(',')).map((m) => String(m).trim()).filter(Boolean);
      const path = joinPath(base(a), r.path || r.url || '');
      return methods.map((m) => button(`${m} ${r.path || r.url || '/'}`, () => use(m.toUpperCase(), path), { small: true, title: `Put ${m} ${path} in the form` }));
    });
    const rows = apis.map((a) => h('tr', {},
      h('td', {}, h('strong', {}, a.name)),
      h('td', { class: 'mono' }, button(base(a), () => use('GET', base(a)), { small: true, testid: `mi-try-api-${a.name}`, title: `Put ${base(a)} in the form` })),
      h('td', {}, h('div', { class: 'chips' }, resourceButtons(a)))));
    return [
      card('MI APIs', null, apis.length
        ? table(['API', 'Context', 'Resources'], rows, { testid: 'mi-try-apis' })
        : h('p', { class: 'muted' }, 'The runtime reports no APIs. Any path can still be tried below.')),
      card('Request', null, generic),
    ];
  }

  // ---- the form -------------------------------------------------------------------

  /**
   * A try-it form. template: the path with {names} (null for the generic
   * form, which has a free path and a method choice). params: the
   * operation's parameters. body: { type, text } or null.
   */
  function tryForm({ method, template, params, body, testid, onClose, generic = false }) {
    const t0 = tryState();
    const methodSel = generic ? select(GENERIC_METHODS, { value: method, testid: `${testid}-method`, name: 'method' }) : null;
    const pathInput = generic ? input({ name: 'path', value: '/', class: 'mono', testid: `${testid}-path`, required: true, spellcheck: 'false' }) : null;
    const targetSel = select((t0.targets || []).map((u) => [u, u]), { testid: `${testid}-target` });
    const pathFields = new Map();
    if (!generic) {
      for (const name of pathNames(template)) {
        const p = params.find((x) => x.in === 'path' && x.name === name);
        const start = p?.example ?? p?.schema?.example ?? p?.schema?.default;
        pathFields.set(name, field(`${name} (path)`, input({ testid: `${testid}-path-${name}`, required: true, value: start === undefined ? '' : String(start), 'data-param': name }), p?.description || undefined));
      }
    }
    const named = (where) => (generic ? [] : params.filter((p) => p.in === where)).map((p) => {
      const start = p.example ?? p.schema?.example ?? p.schema?.default;
      const f = field(`${p.name} (${where}${p.required ? ', required' : ''})`, input({ testid: `${testid}-${where}-${p.name}`, value: start === undefined ? '' : String(start), required: p.required || undefined }), p.description || undefined);
      f.param = p;
      return f;
    });
    const queryFields = named('query');
    const headerFields = named('header').filter((f) => !FORBIDDEN.has(f.param.name.toLowerCase()));
    const extraQuery = field(queryFields.length ? 'Other query parameters' : 'Query', input({ testid: `${testid}-query`, placeholder: 'a=1&b=two', class: 'mono', spellcheck: 'false' }), 'As it goes after the ?, percent-encoded where needed.');
    const headersBox = field('Headers', h('textarea', { class: 'code-input', rows: '2', testid: `${testid}-headers`, spellcheck: 'false', placeholder: 'Accept: application/json' }), 'One per line, Name: value. Credentials go in the field below.');
    const bodyBox = h('textarea', { class: 'code-input tryit-body', rows: '6', testid: `${testid}-body`, spellcheck: 'false' });
    bodyBox.value = body?.text ?? '';
    const bodyField = field(body?.type ? `Body (${body.type})` : 'Body', bodyBox);
    if (!body && !generic) bodyField.hidden = true;
    const auth = field('Authorization for the runtime', input({ type: 'password', autocomplete: 'new-password', testid: `${testid}-auth`, placeholder: 'Bearer …', spellcheck: 'false' }),
      'Optional. Sent to the runtime as its Authorization header; icpd neither logs nor keeps it.');
    const preview = h('div', { class: 'tryit-url mono', testid: `${testid}-url`, 'aria-live': 'off' });
    const error = h('div', { class: 'callout bad', role: 'alert', hidden: true, testid: `${testid}-error` });
    const send = button('Send', null, { kind: 'primary', type: 'submit', testid: `${testid}-send` });
    const why = h('span', { class: 'muted small', testid: `${testid}-why` });
    const result = h('div', { class: 'tryit-result', 'aria-live': 'polite', testid: `${testid}-result` });

    const currentMethod = () => (generic ? methodSel.value : method);
    // The generic path may carry its own ?query, moved to the query.
    const typedPath = () => {
      const t = pathInput.value.trim();
      const q = t.indexOf('?');
      return q < 0 ? [t, ''] : [t.slice(0, q), t.slice(q + 1)];
    };
    const currentPath = () => {
      if (generic) return uriPart(typedPath()[0], /[?#]/);
      return fillPath(template, Object.fromEntries([...pathFields].map(([k, f]) => [k, f.input.value])));
    };
    const currentQuery = () => {
      const u = new URLSearchParams();
      for (const f of queryFields) if (f.input.value !== '') u.append(f.param.name, f.input.value);
      const extra = [generic ? typedPath()[1] : '', extraQuery.input.value.trim().replace(/^\?/, '')].filter(Boolean).map((x) => uriPart(x, /#/));
      return [u.toString(), ...extra].filter(Boolean).join('&');
    };
    const refresh = () => {
      const q = currentQuery();
      preview.textContent = `${currentMethod()} ${targetSel.value || ''}${currentPath()}${q ? `?${q}` : ''}`;
      if (generic) bodyField.hidden = !BODY_METHODS.has(methodSel.value.toLowerCase()) && !bodyBox.value;
    };
    const sync = () => {
      const t = tryState();
      const have = [...targetSel.options].map((o) => o.value);
      if (JSON.stringify(have) !== JSON.stringify(t.targets || [])) {
        const was = targetSel.value;
        fill(targetSel, (t.targets || []).map((u) => h('option', { value: u }, u)));
        if ((t.targets || []).includes(was)) targetSel.value = was;
      }
      targetField.hidden = (t.targets || []).length < 2;
      send.disabled = !t.available || !t.allowed;
      why.textContent = !t.available ? `Unavailable: ${t.reason || 'the runtime cannot be reached'}` : !t.allowed ? 'Trying needs integration:edit and the environment\'s permission.' : t.critical ? 'Critical environment: you will be asked to confirm.' : '';
      refresh();
    };
    const targetField = field('Target', targetSel);

    const form = h('form', { class: 'tryit stack', testid, 'aria-label': `Try ${method} ${template || 'a request'}`, novalidate: true },
      generic ? h('div', { class: 'tryit-line' }, field('Method', methodSel), h('div', { class: 'grow' }, field('Path', pathInput, 'The API\'s context and the resource, e.g. /healthcare/doctors/surgery.'))) : null,
      targetField,
      pathFields.size ? h('fieldset', {}, h('legend', {}, 'Path parameters'), h('div', { class: 'tryit-grid' }, [...pathFields.values()])) : null,
      queryFields.length ? h('fieldset', {}, h('legend', {}, 'Query parameters'), h('div', { class: 'tryit-grid' }, queryFields)) : null,
      extraQuery,
      headerFields.length ? h('fieldset', {}, h('legend', {}, 'Header parameters'), h('div', { class: 'tryit-grid' }, headerFields)) : null,
      headersBox, bodyField, auth,
      h('div', { class: 'field' }, h('div', { class: 'muted small' }, 'Request'), preview),
      error,
      h('div', { class: 'actions' }, send, onClose ? button('Close', onClose, { small: true, testid: `${testid}-close` }) : null, why),
      result);
    form.addEventListener('input', refresh);
    form.addEventListener('change', refresh);
    form.setRequest = (m, path) => { methodSel.value = GENERIC_METHODS.includes(m) ? m : 'GET'; pathInput.value = path; refresh(); };
    watchers.add(sync);
    sync();

    const bad = (msg, focus) => { error.textContent = msg; error.hidden = false; focus?.focus(); return null; };

    /** The request to send, or null (with the reason shown) when the form is not ready. */
    function request() {
      error.hidden = true;
      for (const f of [...pathFields.values(), ...queryFields, ...headerFields]) f.input.removeAttribute('aria-invalid');
      for (const [name, f] of pathFields) {
        if (f.input.value === '') { f.input.setAttribute('aria-invalid', 'true'); return bad(`Give the path parameter ${name} a value.`, f.input); }
      }
      for (const f of [...queryFields, ...headerFields]) {
        if (f.param.required && f.input.value === '') { f.input.setAttribute('aria-invalid', 'true'); return bad(`${f.param.name} is required.`, f.input); }
      }
      const path = currentPath();
      if (!path.startsWith('/')) return bad('The path starts with /.', pathInput);
      const headers = {};
      for (const f of headerFields) if (f.input.value !== '') headers[f.param.name] = f.input.value;
      const lines = headersBox.input.value.split('\n').map((l) => l.trim()).filter(Boolean);
      for (const l of lines) {
        const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*:\s*(.*)$/.exec(l);
        if (!m) return bad(`Not a header: "${l.slice(0, 60)}". Write Name: value.`, headersBox.input);
        if (FORBIDDEN.has(m[1].toLowerCase())) return bad(`Put credentials in "Authorization for the runtime", not in the headers (${m[1]}).`, headersBox.input);
        headers[m[1]] = m[2];
      }
      const m = currentMethod();
      const withBody = !bodyField.hidden && bodyBox.value !== '' && m !== 'GET' && m !== 'HEAD';
      if (withBody && body?.type && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) headers['Content-Type'] = body.type;
      const req = { method: m, path, headers };
      const q = currentQuery();
      if (q) req.query = q;
      if (withBody) req.body = bodyBox.value;
      if (targetSel.value) req.target = targetSel.value;
      return req;
    }

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const t = tryState();
      if (send.disabled || !t.available || !t.allowed) return;
      const req = request();
      if (!req) return;
      if (t.critical) {
        const q = req.query ? `?${req.query}` : '';
        const ok = await confirm(`Send to a critical environment?`,
          `${req.method} ${req.target || ''}${req.path}${q} goes to ${runtime?.name || runtimeId} in ${runtime?.environment || 'a critical environment'}, a critical environment. It is a real request: it may change real data.`,
          { submit: 'Send' });
        if (!ok) return;
        req.confirm = true;
      }
      const secret = auth.input.value;
      send.disabled = true;
      send.textContent = 'Sending…';
      form.setAttribute('aria-busy', 'true');
      fill(result, loading('Waiting for the runtime…'));
      try {
        const res = await api('POST', `/runtimes/${enc(runtimeId)}/try-it`, req, secret ? { headers: { 'X-Try-It-Authorization': secret } } : {});
        showAnswer(result, res, testid);
      } catch (err) {
        fill(result, h('div', { class: 'callout bad', role: 'alert', testid: `${testid}-failed` },
          h('strong', {}, err.status ? `icpd answered ${err.status}` : 'No answer', ': '), err.message));
      } finally {
        send.textContent = 'Send';
        form.removeAttribute('aria-busy');
        sync();
      }
    });
    return form;
  }

  return {
    el,
    /** Called with the runtime's detail on each refresh of the page. */
    update(r) {
      runtime = r;
      const key = `${r.status}|${r.tryItHost ?? ''}|${r.lastFullHeartbeat ?? ''}`;
      if (key !== seen) { seen = key; load(); }
    },
    /** Forgets typed credentials (the page is being left). */
    stop() {
      loadSeq += 1;
      for (const i of el.querySelectorAll('input[type=password]')) i.value = '';
    },
  };
}

/**
 * Text typed for a path or query, with what a URI cannot carry as is
 * (spaces, non-ASCII, control characters and `also`) percent-encoded;
 * what is already percent-encoded stays.
 */
function uriPart(text, also) {
  return Array.from(text, (c) => (/[\x21-\x7e]/.test(c) && !also.test(c) ? c : encodeURIComponent(c))).join('');
}

/** The runtime's answer: status, time, URL, truncation, headers and body (JSON pretty-printed). */
function showAnswer(result, res, testid) {
  const status = Number(res.status);
  const kind = status >= 200 && status < 300 ? 'ok' : status >= 400 ? 'bad' : 'info';
  const headers = Array.isArray(res.headers) ? res.headers : Object.entries(res.headers || {});
  const type = headers.find(([k]) => String(k).toLowerCase() === 'content-type')?.[1] || '';
  let text = typeof res.body === 'string' ? res.body : res.body == null ? '' : JSON.stringify(res.body);
  let pretty = false;
  if (text && (/json/i.test(type) || /^\s*[[{]/.test(text))) {
    try { text = JSON.stringify(JSON.parse(text), null, 2); pretty = true; } catch { /* shown as received */ }
  }
  fill(result,
    h('div', { class: 'tryit-status' },
      badge(`${status}`, kind, `${testid}-status`),
      h('span', { class: 'muted', testid: `${testid}-duration` }, `${res.durationMs ?? '?'} ms`),
      h('code', { class: 'tryit-answer-url', testid: `${testid}-answer-url` }, res.url || ''),
      res.bodyTruncated ? badge('body truncated', 'warn', `${testid}-truncated`) : null),
    headers.length ? h('details', { class: 'tryit-headers' }, h('summary', {}, `Headers (${headers.length})`),
      h('dl', { class: 'kv mono small', testid: `${testid}-headers-answer` }, headers.map(([k, v]) => [h('dt', {}, String(k)), h('dd', {}, String(v))]))) : null,
    text
      ? h('pre', { class: 'tryit-answer', tabindex: '0', 'aria-label': 'Response body', testid: `${testid}-answer`, 'data-json': pretty ? 'true' : null }, text)
      : h('p', { class: 'muted', testid: `${testid}-answer` }, 'No body.'));
}
