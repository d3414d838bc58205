// What the end-to-end tests share: starting icpd on free ports, the CLI, a
// headless Chromium that records console and page errors, one test's
// surroundings (withConsole: data directory, server, browser, and what a
// failure reports), the first login with its forced password change and
// later sign-ins, a runtime's side of the protocol (bridge.py, the MI
// stand-in mi.py, its HS256 bearer token, posts to the runtime listener),
// and for single sign-on: icpd on a management port chosen beforehand with
// a config file, a test CA from the openssl CLI, and the test OpenID
// provider tests/idp/idp.mjs.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createHmac } from 'node:crypto';
import { createServer as createNetServer } from 'node:net';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const bin = process.env.ICPD_BIN ? resolve(root, process.env.ICPD_BIN) : join(root, 'target/release/icpd');
// shared/ lies beside the repository (CI, the main checkout); a git worktree
// one folder further down finds it there; ICPD_SHARED names it outright.
const shared = process.env.ICPD_SHARED ? resolve(process.env.ICPD_SHARED)
  : [resolve(root, '../shared'), resolve(root, '../../shared')].find((d) => existsSync(join(d, 'conformance'))) ?? resolve(root, '../shared');
export const bridgePy = join(shared, 'conformance/bridge.py');
export const miPy = join(shared, 'conformance/mi.py');
export const shots = join(root, 'target/screenshots');

/** Resolves when `child` (icpd serve) has logged both listeners' addresses. */
function listening(child) {
  let log = '';
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`icpd did not start:\n${log}`)), 20000);
    child.on('exit', (code) => fail(new Error(`icpd exited with ${code}:\n${log}`)));
    child.stderr.on('data', (d) => {
      log += d;
      const rt = /listening runtime (https?:\/\/\S+)/.exec(log);
      const mg = /listening management (https?:\/\/\S+)/.exec(log);
      if (rt && mg) { clearTimeout(timer); ok({ child, runtime: rt[1], management: mg[1], log: () => log }); }
    });
  });
}

/** Starts icpd on free ports; resolves when both listeners are up. */
export function startServer(dataDir) {
  const child = spawn(bin, ['--data-dir', dataDir, 'serve', '--runtime-listen', '127.0.0.1:0', '--management-listen', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  return listening(child);
}

/** SIGTERM, then SIGKILL after 5 s; resolves when the process has exited (at once if it has already, by a signal too). */
export function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((ok) => { child.once('exit', ok); child.kill('SIGTERM'); setTimeout(() => child.kill('SIGKILL'), 5000).unref(); });
}

/** Runs `icpd --data-dir DIR ARGS...`; returns stdout. */
export function cli(dataDir, args) {
  return execFileSync(bin, ['--data-dir', dataDir, ...args], { encoding: 'utf8' });
}

/** Runs bridge.py (or another stand-in, such as mi.py) as one runtime; returns { child, log() }. */
export function startBridge(args, script = bridgePy) {
  const child = spawn('python3', [script, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  return { child, log: () => log };
}

/**
 * A page in a context of its own (its own cookies: another user's session)
 * that adds its console errors and page errors to `problems`, marked with
 * `label` if given.
 */
export async function openPage(browser, problems, { width = 1280, height = 800, label = '' } = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width, height } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const mark = label ? `${label}: ` : '';
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`${mark}console error: ${m.text()} (${m.location()?.url || ''})`); });
  page.on('pageerror', (e) => problems.push(`${mark}page error: ${e.message}`));
  return page;
}

/** Headless Chromium; a page that collects console errors and page errors into `problems`. */
export async function openBrowser(viewport = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const problems = [];
  const page = await openPage(browser, problems, viewport);
  return { browser, page, problems, tid: (id) => page.getByTestId(id) };
}

/**
 * One console test's surroundings: a temporary data directory, icpd
 * started on it, and a headless Chromium (see openBrowser). Calls `body`
 * with { dataDir, server, initialPassword, browser, page, tid, problems,
 * startBridge(args), startMi(args), openPage(options) }; bridges (and MI
 * stand-ins) and pages made through
 * these are stopped and watched like the first page. If `body` throws, a
 * screenshot of the page goes to NAME-failure.png and the error gains the
 * browser's problems and the tails of the bridges' and the server's logs.
 * Everything is stopped and removed afterwards.
 */
export async function withConsole(name, viewport, body) {
  mkdirSync(shots, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), `icpd-e2e-${name}-`));
  const dataDir = join(tmp, 'data');
  const server = await startServer(dataDir);
  const bridges = [];
  let b;
  try {
    b = await openBrowser(viewport);
    const initialPassword = readFileSync(join(dataDir, 'initial-admin-password'), 'utf8').trim();
    await body({
      ...b,
      dataDir,
      server,
      initialPassword,
      startBridge: (args) => { const bridge = startBridge(args); bridges.push(bridge); return bridge; },
      startMi: (args) => { const mi = startBridge(args, miPy); bridges.push(mi); return mi; },
      openPage: (options) => openPage(b.browser, b.problems, options),
    });
  } catch (e) {
    await b?.page.screenshot({ path: join(shots, `${name}-failure.png`), fullPage: true }).catch(() => {});
    const bridgeLogs = bridges.map((bridge) => `\nbridge log tail:\n${bridge.log().slice(-1500)}`).join('');
    e.message += `\nbrowser problems: ${JSON.stringify(b?.problems ?? [], null, 2)}${bridgeLogs}\nserver log tail:\n${server.log().slice(-2500)}`;
    throw e;
  } finally {
    for (const bridge of bridges) await stop(bridge.child);
    await b?.browser.close();
    await stop(server.child);
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Signs a user in on the login page; ends on the overview. */
export async function signIn(page, managementUrl, username, password) {
  const tid = (id) => page.getByTestId(id);
  await page.goto(`${managementUrl}/login`);
  await tid('login-username').fill(username);
  await tid('login-password').fill(password);
  await tid('login-submit').click();
  await tid('stat-projects').waitFor();
}

/** The first login as admin with the forced password change; ends on the overview. */
export async function firstLogin(page, managementUrl, initialPassword, newPassword) {
  const tid = (id) => page.getByTestId(id);
  await page.goto(managementUrl);
  await page.waitForURL(/\/login$/);
  await tid('login-username').fill('admin');
  await tid('login-password').fill(initialPassword);
  await tid('login-submit').click();
  await tid('change-password-form').waitFor();
  await tid('new-password').fill(newPassword);
  await tid('new-password-repeat').fill(newPassword);
  await tid('change-password-submit').click();
  await tid('stat-projects').waitFor();
}

const b64url = (s) => Buffer.from(s).toString('base64url');

/** A runtime bearer token exactly as bridge.py's jwt_hs256 (and Ballerina's jwt:issue) builds it. */
export function runtimeToken(secret, now = Math.floor(Date.now() / 1000)) {
  const dot = secret.indexOf('.');
  const [kid, material] = dot > 0 ? [secret.slice(0, dot), secret.slice(dot + 1)] : ['', secret];
  const header = { alg: 'HS256', typ: 'JWT', ...(kid ? { kid } : {}) };
  const payload = { exp: now + 3600, iat: now, nbf: now, iss: 'icp-runtime-jwt-issuer', aud: 'icp-server', scope: 'runtime_agent' };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${createHmac('sha256', material).update(input).digest('base64url')}`;
}

/** POSTs JSON to the runtime listener (TLS not verified: a self-signed test certificate); resolves { status, body }. */
export function postRuntime(baseUrl, path, body, token) {
  const url = new URL(path, baseUrl);
  const data = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return new Promise((ok, fail) => {
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = request(url, {
      method: 'POST', rejectUnauthorized: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length, Authorization: `Bearer ${token}` },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        ok({ status: res.statusCode, body: json ?? text });
      });
    });
    req.on('error', fail);
    req.end(data);
  });
}

/** Nearest-rank percentile: the ⌈q·n⌉-th smallest. */
export function percentile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1];
}

// ---- single sign-on: a management port known in advance, an OpenID provider ----

/** A TCP port on 127.0.0.1 that was free a moment ago (listened on with port 0, then closed). */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createNetServer();
    s.unref();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/**
 * Starts icpd as startServer does, but with the management listener on
 * `managementPort` (0: a free one), in the working directory `cwd` and
 * with `--config config` when given; resolves as startServer does.
 */
export function startServerWith(dataDir, { managementPort = 0, cwd, config } = {}) {
  const args = ['--data-dir', dataDir, ...(config ? ['--config', config] : []),
    'serve', '--runtime-listen', '127.0.0.1:0', '--management-listen', `127.0.0.1:${managementPort}`];
  const child = spawn(bin, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  return listening(child);
}

/**
 * A test CA and a server certificate it signed for 127.0.0.1 and
 * localhost, made with the openssl CLI in `dir`; returns the paths
 * { ca, cert, key } (PEM).
 */
export function makeTestCertificates(dir) {
  mkdirSync(dir, { recursive: true });
  const p = (f) => join(dir, f);
  const openssl = (args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2',
    '-subj', '/CN=icpd e2e test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=127.0.0.1']);
  writeFileSync(p('server.ext'), ['subjectAltName=IP:127.0.0.1,DNS:localhost', 'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth', ''].join('\n'));
  openssl(['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial',
    '-out', p('server.pem'), '-days', '2', '-extfile', p('server.ext')]);
  return { ca: p('ca.pem'), cert: p('server.pem'), key: p('server.key') };
}

export const idpScript = join(root, 'tests/idp/idp.mjs');

/**
 * Starts the test OpenID provider (tests/idp/idp.mjs, npm oidc-provider)
 * on a free port with a fresh certificate, and `state` (clients, users)
 * written to DIR/state.json. Resolves { child, issuer, ca (the CA's PEM
 * path, for icpd's sso.ca_file), stateFile, log() } once it has printed
 * its issuer. Its standard input stays open: it stops when that closes.
 */
export function startIdp(dir, state) {
  if (!existsSync(join(root, 'tests/idp/node_modules/oidc-provider'))) {
    throw new Error('tests/idp/node_modules is missing: run (cd tests/idp && npm ci --no-audit --no-fund)');
  }
  const tls = makeTestCertificates(join(dir, 'tls'));
  const stateFile = join(dir, 'state.json');
  writeFileSync(stateFile, JSON.stringify(state, null, 2));
  const child = spawn(process.execPath, [idpScript, '--cert', tls.cert, '--key', tls.key, '--state', stateFile], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`the IdP did not start:\n${log}`)), 20000);
    child.on('exit', (code) => { clearTimeout(timer); fail(new Error(`the IdP exited with ${code}:\n${log}`)); });
    child.stdout.on('data', (d) => {
      out += d;
      const line = /^(\{.*\})\r?\n/m.exec(out)?.[1];
      if (!line) return;
      clearTimeout(timer);
      try {
        ok({ child, issuer: JSON.parse(line).issuer, ca: tls.ca, stateFile, log: () => log });
      } catch (e) { fail(e); }
    });
  });
}
