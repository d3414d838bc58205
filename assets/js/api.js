// The management API from the browser: the session cookie authenticates
// (HttpOnly, so JavaScript never sees the token) and unsafe methods carry
// the session's CSRF token from the login response or GET /auth/me.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const session = { csrf: null, onUnauthorized: null };

export function setCsrf(token) { session.csrf = token; }
export function onUnauthorized(fn) { session.onUnauthorized = fn; }

/**
 * Calls the API; resolves to the JSON body (or null), rejects with ApiError.
 * opts.headers: extra request headers (such as the try-it credentials,
 * which must never travel in a body that may be logged).
 */
export async function api(method, path, body, { headers: extra } = {}) {
  const headers = { ...extra, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach icpd. Check that the server is running.');
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!res.ok) {
    const e = json?.error;
    const err = new ApiError(res.status, e?.code || 'http', e?.message || `${res.status} ${res.statusText}`);
    if (res.status === 401 && !path.startsWith('/auth/login') && session.onUnauthorized) session.onUnauthorized(err);
    throw err;
  }
  return json;
}

/**
 * Runs a GraphQL document against POST /graphql (icpd's ICP 2-compatible
 * console API) with the session cookie and CSRF token, as api() sends
 * unsafe requests. Resolves { status, statusText, ms, json, text } whatever
 * the status, since a 400 carries the document's {"errors": [...]} for the
 * caller to show; rejects with ApiError on a network failure, and on 401
 * after the unauthorized handler has run (the session is gone).
 */
export async function graphql(query, variables) {
  const headers = { Accept: 'application/json', 'Content-Type': 'application/json' };
  if (session.csrf) headers['X-CSRF-Token'] = session.csrf;
  const body = JSON.stringify(variables === undefined ? { query } : { query, variables });
  const started = performance.now();
  let res;
  let text;
  try {
    res = await fetch('/graphql', { method: 'POST', headers, credentials: 'same-origin', body });
    text = await res.text();
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach icpd. Check that the server is running.');
  }
  const ms = performance.now() - started;
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (res.status === 401) {
    const err = new ApiError(401, json?.error?.code || 'unauthorized', json?.errors?.[0]?.message || json?.error?.message || 'Your session has ended. Sign in again.');
    session.onUnauthorized?.(err);
    throw err;
  }
  return { status: res.status, statusText: res.statusText, ms, json, text };
}

export const get = (p) => api('GET', p);
export const post = (p, b = {}) => api('POST', p, b);
export const put = (p, b = {}) => api('PUT', p, b);
export const patch = (p, b = {}) => api('PATCH', p, b);
export const del = (p) => api('DELETE', p);

/** Builds a query string from an object, skipping empty values. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
  const s = u.toString();
  return s ? `?${s}` : '';
}

export const enc = encodeURIComponent;

/** Every item of a paged list (follows nextCursor; for small lists). */
export async function all(path, params = {}) {
  const items = [];
  let cursor;
  do {
    const page = await get(path + qs({ ...params, limit: 500, cursor }));
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && items.length < 5000);
  return items;
}
