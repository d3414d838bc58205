// The OpenID provider of icpd's integration tests: the certified
// `oidc-provider` package behind a Node HTTPS server on 127.0.0.1, with a
// login form of its own and a few test-only endpoints. Started by
// tests/idp.rs (`Idp::start`); not for anything but tests.
//
//   node idp.mjs --cert CERT.pem --key KEY.pem --state STATE.json [--port N]
//
// - Listens first (on port N, or 0 for a free one), then builds the
//   Provider with the issuer https://127.0.0.1:PORT it got, so no port
//   is chosen and then lost to another process.
// - STATE.json: {"clients": [{client_id, client_secret, redirect_uris,
//   post_logout_redirect_uris, token_endpoint_auth_method?}],
//   "users": {"alice": {password, email, email_verified?, name, groups}}}.
//   Clients are read once at start; users at every login and every time
//   the provider asks for an account's claims, so a test can change a
//   user's groups between two sign-ins.
// - Claims: sub (the user id), email, email_verified, preferred_username
//   (the user id), name, groups; all of them in the ID token itself
//   (conformIdTokenClaims: false) for the scopes openid email profile
//   groups. Consent is implicit: every requested scope is granted.
// - Authorization code flow only, PKCE S256 required, RS256 ID tokens,
//   RP-initiated logout (a confirmation form: button #logout). At the
//   token endpoint a client may use client_secret_basic or
//   client_secret_post, whichever it is registered with.
// - Test endpoints, outside OIDC: GET /test/health; POST /test/rotate
//   replaces the signing key (new kid, the old one leaves the JWKS) by
//   building a new Provider on the same issuer, clients and cookie keys.
// - Prints {"issuer": "..."} as one line on stdout when ready; everything
//   else goes to stderr, and no password, secret or token is logged.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

// oidc-provider prints notices with console.info: keep stdout for the
// ready line alone.
console.log = console.error;
console.info = console.error;

const { values: args } = parseArgs({
  options: {
    cert: { type: 'string' },
    key: { type: 'string' },
    state: { type: 'string' },
    port: { type: 'string', default: '0' },
  },
});
for (const name of ['cert', 'key', 'state']) {
  if (!args[name]) {
    console.error(`idp.mjs: --${name} is required`);
    process.exit(2);
  }
}

function readState() {
  return JSON.parse(readFileSync(args.state, 'utf8'));
}

function user(id) {
  const users = readState().users ?? {};
  return Object.hasOwn(users, id) ? users[id] : undefined;
}

const htmlEscape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res, status, title, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${htmlEscape(title)}</title></head>
<body><h1>${htmlEscape(title)}</h1>
${body}
</body></html>`);
}

function loginForm(res, uid, status, { login = '', error = '' } = {}) {
  page(res, status, 'Sign in to the test IdP', `${error ? `<p id="error" role="alert">${htmlEscape(error)}</p>` : ''}
<form method="post" action="/interaction/${htmlEscape(uid)}/login" autocomplete="off">
<label for="login">User</label> <input id="login" name="login" value="${htmlEscape(login)}" required autofocus>
<label for="password">Password</label> <input id="password" name="password" type="password" required>
<button id="submit" type="submit">Sign in</button>
</form>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function newSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `test-${randomBytes(8).toString('hex')}`, use: 'sig', alg: 'RS256' };
}

const tls = { cert: readFileSync(args.cert), key: readFileSync(args.key) };
const initial = readState();
const clients = (initial.clients ?? []).map((c) => ({
  grant_types: ['authorization_code'],
  response_types: ['code'],
  id_token_signed_response_alg: 'RS256',
  token_endpoint_auth_method: 'client_secret_basic',
  ...c,
}));
const cookieKeys = [randomBytes(32).toString('base64url')];

// Set once listening; the Provider is built for it.
let issuer;
let provider;
let providerHandler;
let signingKey;

function buildProvider() {
  signingKey = newSigningKey();
  const p = new Provider(issuer, {
    clients,
    jwks: { keys: [signingKey] },
    cookies: { keys: cookieKeys },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    conformIdTokenClaims: false,
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      Grant: 3600,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
    },
    responseTypes: ['code'],
    pkce: { required: () => true },
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource(ctx, form) {
          ctx.type = 'html';
          ctx.body = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign out of the test IdP</title></head>
<body><h1>Sign out of the test IdP?</h1>
${form}
<button id="logout" type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button id="stay" type="submit" form="op.logoutForm">No, stay signed in</button>
</body></html>`;
        },
        postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Signed out</title></head><body><h1 id="signed-out">Signed out of the test IdP</h1></body></html>';
        },
      },
    },
    async findAccount(_ctx, id) {
      if (!user(id)) return undefined;
      return {
        accountId: id,
        async claims() {
          // Read again: the state file may have changed since the login.
          const u = user(id) ?? {};
          return {
            sub: id,
            email: u.email,
            email_verified: u.email_verified ?? true,
            preferred_username: u.preferred_username ?? id,
            name: u.name,
            groups: u.groups ?? [],
          };
        },
      };
    },
    // First-party: whatever the client asks for is granted, no consent page.
    async loadExistingGrant(ctx) {
      const { Grant } = ctx.oidc.provider;
      const clientId = ctx.oidc.client.clientId;
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(clientId);
      let grant = grantId ? await Grant.find(grantId) : undefined;
      if (!grant) grant = new Grant({ clientId, accountId: ctx.oidc.account.accountId });
      grant.addOIDCScope(ctx.oidc.requestParamOIDCScopes);
      grant.addOIDCClaims(ctx.oidc.requestParamClaims);
      await grant.save();
      return grant;
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Error</title></head><body><h1>Error</h1><pre id="error">${htmlEscape(JSON.stringify(out, null, 2))}</pre></body></html>`;
    },
  });
  p.on('server_error', (_ctx, err) => console.error('idp server_error:', err));
  return p;
}

async function interaction(req, res, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    return page(res, 400, 'Sign-in expired', `<p id="error">${htmlEscape(err.message)}</p>`);
  }
  if (details.uid !== uid) {
    return page(res, 400, 'Sign-in mismatch', '<p id="error">this sign-in is not the current one</p>');
  }
  const { prompt } = details;
  if (prompt.name === 'login') {
    if (req.method === 'GET' && action === undefined) {
      return loginForm(res, uid, 200);
    }
    if (req.method === 'POST' && action === 'login') {
      const form = await readForm(req);
      const login = form.get('login') ?? '';
      const u = user(login);
      if (!u || typeof u.password !== 'string' || form.get('password') !== u.password) {
        return loginForm(res, uid, 401, { login, error: 'Wrong user or password.' });
      }
      return provider.interactionFinished(req, res, { login: { accountId: login } }, {
        mergeWithLastSubmission: false,
      });
    }
  } else if (prompt.name === 'consent') {
    // Not reached with loadExistingGrant above; granted all the same.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
  }
  return page(res, 400, 'Unexpected step', `<p id="error">no ${htmlEscape(req.method)} here for prompt ${htmlEscape(prompt.name)}</p>`);
}

function json(res, status, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Cache-Control', 'no-store');
  res.end(JSON.stringify(body));
}

async function handle(req, res) {
  const url = new URL(req.url, issuer);
  if (url.pathname === '/test/health' && req.method === 'GET') {
    return json(res, 200, { ok: true, issuer, kid: signingKey.kid });
  }
  if (url.pathname === '/test/rotate' && req.method === 'POST') {
    const before = signingKey.kid;
    provider = buildProvider();
    providerHandler = provider.callback();
    return json(res, 200, { previous: before, kid: signingKey.kid });
  }
  const m = url.pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login))?$/);
  if (m) {
    return interaction(req, res, m[1], m[2]);
  }
  return providerHandler(req, res);
}

const server = createServer(tls, (req, res) => {
  handle(req, res).catch((err) => {
    console.error('idp: request failed:', err);
    if (!res.headersSent) json(res, 500, { error: 'server_error' });
    else res.destroy();
  });
});

server.on('error', (err) => {
  console.error('idp: cannot listen:', err.message);
  process.exit(1);
});

server.listen(Number(args.port), '127.0.0.1', () => {
  issuer = `https://127.0.0.1:${server.address().port}`;
  provider = buildProvider();
  providerHandler = provider.callback();
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

// The harness closes stdin (or dies): stop with it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
