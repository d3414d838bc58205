// End-to-end test of the web console in a real Chromium: the acceptance
// flow of the console issue, against a freshly started release build and a
// real bridge.py runtime. Run from the repository root with `node --test e2e/`
// after `cargo build --release`. Screenshots go to target/screenshots/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { shots, startServer, stop, startBridge, openBrowser, firstLogin } from './helpers.mjs';

const NEW_PASSWORD = 'console e2e password 1';

test('console acceptance: first login, project, integration, Add Runtime, live status, listener stop, OFFLINE', { timeout: 240000 }, async (t) => {
  mkdirSync(shots, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'icpd-e2e-'));
  const server = await startServer(join(tmp, 'data'));
  let browser;
  let bridge;
  let problems = [];
  try {
    const initial = readFileSync(join(tmp, 'data', 'initial-admin-password'), 'utf8').trim();
    const b = await openBrowser();
    ({ browser, problems } = b);
    const { page, tid } = b;

    // 1. First login as admin, with the forced password change.
    await firstLogin(page, server.management, initial, NEW_PASSWORD);
    assert.equal(new URL(page.url()).pathname, '/');

    // 2. A project (handle previewed and checked) and an integration.
    await tid('nav-projects').click();
    await tid('new-project').click();
    await tid('project-name').fill('Orders Platform');
    await page.locator('[data-testid=project-handle-preview]', { hasText: 'orders-platform — available' }).waitFor();
    await tid('modal-submit').click();
    await page.waitForURL(/\/projects\/orders-platform$/);
    await tid('new-integration').click();
    await tid('integration-name').fill('Order Sync');
    await tid('modal-submit').click();
    await page.waitForURL(/\/projects\/orders-platform\/integrations\/order-sync$/);
    await tid('env-card-dev').waitFor();

    // 3. Add Runtime: a secret and the Config.toml snippet, shown once.
    await tid('add-runtime-dev').click();
    await tid('modal-submit').click();
    await tid('secret-warning').waitFor();
    const snippet = await tid('config-snippet').textContent();
    const secret = /secret = "([^"]+)"/.exec(snippet)?.[1];
    assert.ok(secret, `no secret in the snippet:\n${snippet}`);
    assert.match(snippet, /project = "orders-platform"/);
    await tid('modal-close').click();

    // 4. A runtime starts with it and appears RUNNING without a reload.
    bridge = startBridge(['--server', server.runtime, '--secret', secret, '--env', 'dev',
      '--project', 'orders-platform', '--integration', 'order-sync', '--runtime', 'n1', '--interval', '2']);
    // A marker on the window proves the page was not reloaded.
    await page.evaluate(() => { window.e2eNoReload = true; });
    await page.locator('[data-testid=runtime-status-n1]', { hasText: 'RUNNING' }).waitFor({ timeout: 20000 });
    assert.equal(await page.evaluate(() => window.e2eNoReload), true, 'the page reloaded');
    await page.locator('[data-testid=secrets] tr', { hasText: 'active' }).first().waitFor();
    await page.screenshot({ path: join(shots, 'integration.png'), fullPage: true });

    // 5. Stop listener_1 and watch it settle in sync.
    await tid('artifacts-dev').click();
    await page.locator('[data-testid=listener-sync-listener_1][data-insync=true]').waitFor();
    await tid('listener-stop-listener_1').click();
    await page.locator('[data-testid=listener-state-listener_1]', { hasText: 'n1: disabled' }).waitFor({ timeout: 30000 });
    await page.locator('[data-testid=listener-sync-listener_1][data-insync=true]').waitFor({ timeout: 30000 });
    await page.locator('[data-testid=command-log] tr', { hasText: 'CONVERGED' }).first().waitFor();
    // A logger level for one chosen runtime only.
    await tid('command-target').selectOption({ index: 1 });
    await page.locator('[data-testid="logger-level-acme/orders"]').selectOption('DEBUG');
    await page.locator('[data-testid="logger-apply-acme/orders"]').click();
    await page.locator('[data-testid="logger-acme/orders"]', { hasText: 'n1: DEBUG' }).waitFor({ timeout: 30000 });
    await page.locator('[data-testid="logger-sync-acme/orders"][data-insync=true]').waitFor({ timeout: 30000 });
    await page.locator('[data-testid=command-log] tr', { hasText: 'SET_LOGGER_LEVEL' }).filter({ hasText: 'CONVERGED' }).first().waitFor();
    await page.screenshot({ path: join(shots, 'artifacts.png'), fullPage: true });

    // 6. Overview and access control.
    await tid('nav-overview').click();
    await page.locator('[data-testid=stat-running]', { hasText: '1' }).waitFor();
    await page.locator('[data-testid=env-status-dev]', { hasText: '1 RUNNING' }).waitFor();
    await page.screenshot({ path: join(shots, 'overview.png'), fullPage: true });
    await tid('nav-access').click();
    await tid('user-admin').waitFor();
    await page.screenshot({ path: join(shots, 'access-control.png'), fullPage: true });

    // 7. Stop the bridge: the runtime turns OFFLINE on its detail page, live.
    await tid('nav-runtimes').click();
    await page.getByRole('link', { name: 'n1', exact: true }).click();
    await page.locator('[data-testid=runtime-detail-status]', { hasText: 'RUNNING' }).waitFor();
    await page.evaluate(() => { window.e2eNoReload = true; });
    await stop(bridge.child);
    bridge = null;
    await page.locator('[data-testid=runtime-detail-status]', { hasText: 'OFFLINE' }).waitFor({ timeout: 50000 });
    await page.locator('[data-testid=status-timeline] li', { hasText: 'OFFLINE' }).waitFor();
    assert.equal(await page.evaluate(() => window.e2eNoReload), true, 'the page reloaded');
    await page.screenshot({ path: join(shots, 'runtime-detail.png'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: join(shots, 'runtime-detail-dark.png'), fullPage: true });
    await tid('nav-projects').click();
    await tid('project-orders-platform').waitFor();
    await page.screenshot({ path: join(shots, 'projects-dark.png'), fullPage: true });

    // 1024 px wide: no page scrolls sideways.
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 1024, height: 768 });
    for (const [nav, ready] of [['nav-overview', 'stat-projects'], ['nav-runtimes', 'runtimes-results'], ['nav-access', 'user-admin']]) {
      await tid(nav).click();
      await tid(ready).waitFor();
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 1024, `${nav}: the page is ${width} px wide at a 1024 px viewport`);
    }
    await tid('nav-overview').click();
    await tid('stat-projects').waitFor();
    await page.screenshot({ path: join(shots, 'overview-1024.png') });

    const live = await page.evaluate(() => document.body.dataset.live);
    t.diagnostic(`live updates via ${live === 'sse' ? 'Server-Sent Events' : 'polling (no /api/v1/events)'}`);
    assert.deepEqual(problems, [], 'the browser reported errors');
  } catch (e) {
    e.message += `\nbrowser problems: ${JSON.stringify(problems, null, 2)}\nbridge log tail:\n${bridge?.log().slice(-1500) ?? ''}\nserver log tail:\n${server.log().slice(-2500)}`;
    throw e;
  } finally {
    if (bridge) await stop(bridge.child);
    await browser?.close();
    await stop(server.child);
    rmSync(tmp, { recursive: true, force: true });
  }
});
