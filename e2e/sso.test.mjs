// End-to-end test of single sign-on in a real Chromium: the console's
// "Sign in with Test IdP" button, the test OpenID provider's own login form
// (tests/idp/idp.mjs, npm oidc-provider, over TLS from a CA made here with
// the openssl CLI), the callback back to icpd, and a user who sees only
// what the role of her group mapping allows (icp-devs → Viewer on the
// project orders, from icp.toml); sign-out that ends the provider's
// session too; a user none of whose groups has a role, until an
// administrator maps his group in the console (Access control → Group
// mappings) and he sees the project it names. Run from the
// repository root with `node --test e2e/sso.test.mjs` after
// `cargo build --release` and `(cd tests/idp && npm ci)`. Screenshots go to
// target/screenshots/sso-*.png.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'playwright-core';
import { bin, shots, stop, startServer, startServerWith, freePort, startIdp, openBrowser, signIn } from './helpers.mjs';

const ROOT_PASSWORD = 'sso e2e root password 1';
const CLIENT_SECRET = 'icpd-e2e-client-secret';
const USERS = {
  alice: { password: 'alice e2e password', email: 'alice@example.org', name: 'Alice Liddell', groups: ['icp-devs'] },
  bob: { password: 'bob e2e password', email: 'bob@example.org', name: 'Bob Builder', groups: ['marketing'] },
};

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('single sign-on: OpenID provider sign-in, the mapped role\'s view, sign-out at the provider, a user without a role', { timeout: 180000 }, async (t) => {
  const started = Date.now();
  mkdirSync(shots, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'icpd-e2e-sso-'));
  const dataDir = join(tmp, 'data');
  const shot = (page, name) => page.screenshot({ path: join(shots, `sso-${name}.png`), fullPage: true });
  let prep;
  let idp;
  let server;
  let b;
  try {
    // 1. The data, as the local admin, before icpd reads the mapping: a
    //    config mapping whose scope does not exist yet is skipped (with a
    //    warning) until the next start, so the projects come first, on a
    //    server started without SSO, and the SSO server starts afterwards.
    prep = await startServer(dataDir);
    execFileSync(bin, ['--data-dir', dataDir, 'user', 'create', 'root', '--role', 'Super Admin', '--password-stdin'],
      { input: `${ROOT_PASSWORD}\n`, encoding: 'utf8', cwd: tmp });
    const api = await request.newContext({ baseURL: prep.management, ignoreHTTPSErrors: true });
    try {
      const login = await api.post('/api/v1/auth/login', { data: { username: 'root', password: ROOT_PASSWORD } });
      assert.equal(login.status(), 200, await login.text());
      const headers = { Authorization: `Bearer ${(await login.json()).token}` };
      for (const [name, handle] of [['Orders', 'orders'], ['Billing', 'billing']]) {
        const r = await api.post('/api/v1/projects', { headers, data: { name } });
        assert.equal(r.status(), 201, await r.text());
        assert.equal((await r.json()).handle, handle);
      }
    } finally {
      await api.dispose();
    }
    const scheme = new URL(prep.management).protocol;
    await stop(prep.child);

    // The provider, and icpd on a management port chosen beforehand (the
    // redirect URI names it) with an [sso] section in its icp.toml.
    const port = await freePort();
    const management = `${scheme}//127.0.0.1:${port}`;
    idp = await startIdp(join(tmp, 'idp'), {
      clients: [{
        client_id: 'icpd', client_secret: CLIENT_SECRET,
        redirect_uris: [`${management}/login/callback`], post_logout_redirect_uris: [`${management}/login`],
      }],
      users: USERS,
    });
    const secretFile = join(tmp, 'client-secret');
    writeFileSync(secretFile, `${CLIENT_SECRET}\n`);
    const config = join(tmp, 'icp.toml');
    writeFileSync(config, `[sso]
issuer = "${idp.issuer}"
client_id = "icpd"
client_secret_file = "${secretFile}"
redirect_uri = "${management}/login/callback"
post_logout_redirect_uri = "${management}/login"
scopes = ["openid", "email", "profile", "groups"]
groups_claim = "groups"
label = "Test IdP"
ca_file = "${idp.ca}"

[[sso.group_mappings]]
group = "icp-devs"
role = "Viewer"
scope = "project orders"
`);
    server = await startServerWith(dataDir, { managementPort: port, cwd: tmp, config });
    assert.equal(server.management, management);
    // Written to the database at start, the project orders existing.
    assert.match(server.log(), /1 group mapping\(s\) from the config file/);
    assert.doesNotMatch(server.log(), /group_mappings.*skipped/, 'the mapping of icp-devs was skipped');

    b = await openBrowser();
    const { page, tid, problems } = b;

    // 2. alice signs in through the provider and lands on the overview.
    await page.goto(`${management}/login`);
    const ssoButton = tid('sso-button');
    await ssoButton.waitFor();
    assert.equal((await ssoButton.textContent()).trim(), 'Sign in with Test IdP');
    await shot(page, 'login');
    await ssoButton.click();
    await page.waitForURL((u) => u.origin === idp.issuer);
    await page.locator('#login').fill('alice');
    await page.locator('#password').fill(USERS.alice.password);
    await shot(page, 'idp-login');
    await page.locator('#submit').click();
    await page.waitForURL(`${management}/`);
    await tid('sidebar').waitFor();
    await tid('stat-projects').waitFor();
    assert.match(await tid('nav-profile').innerText(), /Alice Liddell$/);
    await shot(page, 'alice-overview');
    await tid('nav-profile').click();
    await page.waitForURL(`${management}/profile`);
    await page.getByText('Signed in as alice@example.org').waitFor();

    // 3. Only what a Viewer of the project orders may see: Orders, not
    //    Billing, no "New project"; access control refused or not offered.
    await tid('nav-projects').click();
    await page.waitForURL(`${management}/projects`);
    await tid('project-orders').waitFor();
    assert.match(await tid('project-orders').innerText(), /Orders/);
    assert.equal(await tid('project-billing').count(), 0, 'Billing is listed for a Viewer of orders only');
    assert.equal(await tid('new-project').count(), 0, 'a Viewer is offered "New project"');
    await shot(page, 'alice-projects');
    // Access control needs user:manage: not in her sidebar, and its
    // address alone shows why without asking the server.
    assert.equal(await tid('nav-access').count(), 0, 'a Viewer is offered Access control');
    assert.equal(await tid('nav-audit').count(), 0, 'a Viewer is offered the audit log');
    await page.goto(`${management}/access`);
    await page.waitForURL(`${management}/access`);
    await tid('access-panel').locator('[role=alert]', { hasText: 'user:manage' }).waitFor();
    assert.equal(await tid('new-user').count(), 0, 'a Viewer is offered "New user"');
    assert.equal(await tid('user-root').count(), 0, 'a Viewer sees the user list');
    await shot(page, 'alice-access');

    // 4. Sign-out ends the provider's session too, and comes back to /login.
    await tid('logout').click();
    await page.waitForURL((u) => u.origin === idp.issuer);
    await page.locator('#logout').waitFor();
    await shot(page, 'idp-logout');
    await page.locator('#logout').click();
    await page.waitForURL(`${management}/login`);
    await tid('sso-button').waitFor();
    await tid('login-form').waitFor();

    // 5. bob's only group (marketing) has no role: the provider signs him
    //    in (its login form again: alice's session there has ended), icpd
    //    refuses, and says why.
    await tid('sso-button').click();
    await page.waitForURL((u) => u.origin === idp.issuer);
    await page.locator('#login').fill('bob');
    await page.locator('#password').fill(USERS.bob.password);
    await page.locator('#submit').click();
    await page.waitForURL((u) => u.origin === management && u.pathname === '/login/callback');
    const error = tid('login-error');
    await error.waitFor();
    const said = await error.innerText();
    for (const text of ["'bob@example.org' signed in", 'none of their groups (marketing) has a role']) {
      assert.ok(said.includes(text), `"${text}" not in the error: ${said}`);
    }
    assert.equal(page.url(), `${management}/login/callback`, 'the code stayed in the address bar');
    assert.equal((await tid('sso-retry').innerText()).trim(), 'Back to sign in');
    assert.equal(await tid('sidebar').count(), 0, 'bob got the console');
    await shot(page, 'bob-no-role');
    await tid('sso-retry').click();
    await page.waitForURL(`${management}/login`);
    await tid('sso-button').waitFor();

    // 5b. An administrator maps bob's group in the console (Access control
    //     → Group mappings): his next sign-in gets the role, on Billing.
    await signIn(page, management, 'root', ROOT_PASSWORD);
    await page.goto(`${management}/access?tab=mappings`);
    await tid('mapping-icp-devs').waitFor();
    assert.match(await tid('mapping-icp-devs').innerText(), /config file/);
    await tid('new-mapping').click();
    await tid('mapping-group').fill('marketing');
    await tid('mapping-source').selectOption('oidc');
    await tid('mapping-role').selectOption('Viewer');
    await tid('scope-type').selectOption('project');
    await tid('scope-project').selectOption('billing');
    await tid('modal-submit').click();
    await tid('mapping-marketing').waitFor();
    const mapped = await tid('mapping-marketing').innerText();
    for (const text of ['oidc', 'Viewer', 'project billing']) assert.ok(mapped.includes(text), `"${text}" not in ${mapped}`);
    await shot(page, 'group-mappings');
    await tid('tab-users').click();
    await tid('user-source-alice@example.org').waitFor();
    assert.equal((await tid('user-source-alice@example.org').innerText()).trim(), 'single sign-on');
    assert.equal((await tid('user-source-root').innerText()).trim(), 'local');
    await tid('logout').click();
    await page.waitForURL(`${management}/login`);
    await tid('sso-button').click();
    // The provider may still hold bob's session (then it sends him straight back).
    const home = page.waitForURL(`${management}/`).then(() => 'home', () => 'timeout');
    const form = page.locator('#login').waitFor().then(() => 'form', () => 'timeout');
    if ((await Promise.race([home, form])) === 'form') {
      await page.locator('#login').fill('bob');
      await page.locator('#password').fill(USERS.bob.password);
      await page.locator('#submit').click();
      await home;
    }
    await tid('nav-projects').click();
    await tid('project-billing').waitFor();
    assert.equal(await tid('project-orders').count(), 0, 'bob sees Orders');
    await shot(page, 'bob-projects');

    // 6. No browser errors, except the refusals this scenario asks for.
    //    Chromium logs every 4xx answer as a console error ("Failed to load
    //    resource: ..."), with the request's URL:
    //    - bob's POST /api/v1/auth/oidc/callback: 403 no_roles is the
    //      answer under test (login.js shows its message); exactly once;
    //    - the test IdP's pages (not icpd's) have no icon: Chromium's own
    //      request for ISSUER/favicon.ico gets 404, any number of times.
    const loadFailed = (status, url) => new RegExp(`^console error: Failed to load resource: the server responded with a status of ${status} \\([^)]*\\) \\(${escape(url)}\\)$`);
    const once = [loadFailed(403, `${management}/api/v1/auth/oidc/callback`)];
    const idpIcon = loadFailed(404, `${idp.issuer}/favicon.ico`);
    for (const re of once) assert.equal(problems.filter((p) => re.test(p)).length, 1, `one console error matching ${re}: ${JSON.stringify(problems)}`);
    const unexpected = problems.filter((p) => !once.some((re) => re.test(p)) && !idpIcon.test(p));
    assert.deepEqual(unexpected, [], 'the browser reported errors');
    t.diagnostic(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (e) {
    await b?.page.screenshot({ path: join(shots, 'sso-failure.png'), fullPage: true }).catch(() => {});
    e.message += `\npage: ${b?.page.url()}\nbrowser problems: ${JSON.stringify(b?.problems ?? [], null, 2)}`
      + `\nIdP log tail:\n${idp?.log().slice(-1500) ?? ''}\nserver log tail:\n${(server ?? prep)?.log().slice(-2500) ?? ''}`;
    throw e;
  } finally {
    await b?.browser.close();
    await stop(server?.child);
    await stop(prep?.child);
    await stop(idp?.child);
    rmSync(tmp, { recursive: true, force: true });
  }
});
