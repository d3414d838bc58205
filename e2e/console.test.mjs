// End-to-end tests of the web console in a real Chromium: the acceptance
// flow of the console issue, and the console at a phone's 390 px and a
// desktop's 1440 px (issue 13: sidebar, audit log, time format, sparse
// metrics), against a freshly started release build and a real bridge.py
// runtime. Run from the repository root with `node --test e2e/` after
// `cargo build --release`. Screenshots go to target/screenshots/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { request } from 'playwright-core';
import { shots, stop, withConsole, firstLogin, runtimeToken, postRuntime } from './helpers.mjs';

const NEW_PASSWORD = 'console e2e password 1';

test('console acceptance: first login, project, integration, Add Runtime, live status, listener stop, OFFLINE', { timeout: 240000 }, async (t) => {
  await withConsole('console', {}, async ({ server, initialPassword, page, tid, problems, startBridge }) => {
    // 1. First login as admin, with the forced password change.
    await firstLogin(page, server.management, initialPassword, NEW_PASSWORD);
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
    const bridge = startBridge(['--server', server.runtime, '--secret', secret, '--env', 'dev',
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
  });
});

/** Whether the page scrolls sideways: its width beyond the viewport's, in px. */
const overflow = (page) => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

test('console at 390 and 1440 px: collapsing sidebar, audit log with time range and reasons, one time format, sparse metrics', { timeout: 240000 }, async (t) => {
  await withConsole('console-sizes', { width: 1440, height: 900 }, async ({ server, initialPassword, page, tid, problems, startBridge }) => {
    await firstLogin(page, server.management, initialPassword, NEW_PASSWORD);

    // A project, an integration, a secret and a Viewer, through the API as the console calls it.
    const secret = await page.evaluate(async () => {
      const { post } = await import('/assets/js/api.js');
      await post('/projects', { name: 'Orders Platform' });
      await post('/projects/orders-platform/integrations', { name: 'Order Sync', runtimeType: 'BI' });
      await post('/users', { username: 'vera', password: 'vera password 12345' });
      await post('/role-assignments', { role: 'Viewer', user: 'vera' });
      return (await post('/secrets', { environment: 'dev', project: 'orders-platform', integration: 'order-sync' })).secret;
    });
    // Refused requests, from outside the browser (the console itself never
    // provokes one): no permission, and a body of the wrong type.
    const api = await request.newContext({ baseURL: server.management, ignoreHTTPSErrors: true });
    t.after(() => api.dispose());
    const login = await api.post('/api/v1/auth/login', { data: { username: 'vera', password: 'vera password 12345' } });
    assert.equal(login.status(), 200);
    const headers = { Authorization: `Bearer ${(await login.json()).token}` };
    assert.equal((await api.post('/api/v1/projects', { headers, data: { name: 'Shop' } })).status(), 403);
    assert.equal((await api.post('/api/v1/auth/change-password', { headers, data: { currentPassword: 8675309, newPassword: 'x' } })).status(), 400);

    // 1440 px: the audit log fits without scrolling sideways, with each
    // refused request's reason and times as 24-hour clock times.
    await tid('nav-audit').click();
    const denied = page.locator('[data-testid^=audit-reason-]', { hasText: 'this needs the project:manage permission' });
    await denied.waitFor();
    assert.match(await page.locator('[data-testid^=audit-reason-]', { hasText: 'invalid JSON body' }).textContent(), /^invalid JSON body: invalid type: integer, expected/);
    assert.equal(await page.getByText('8675309').count(), 0, 'the mistyped value is not shown');
    const fit = await page.evaluate(() => {
      const wrap = document.querySelector('[data-testid=audit] .table-wrap');
      return { table: wrap.scrollWidth, wrap: wrap.clientWidth, page: document.documentElement.scrollWidth };
    });
    assert.ok(fit.table <= fit.wrap, `the audit table is ${fit.table} px in ${fit.wrap} px`);
    assert.ok(fit.page <= 1440, `the page is ${fit.page} px wide at 1440`);
    const times = await page.locator('[data-testid=audit-table] tbody tr td:first-child').allTextContents();
    assert.ok(times.length >= 8, times.join());
    for (const t of times) assert.match(t, /^\d{2}:\d{2}:\d{2}$/, 'today: a 24-hour time with seconds');
    await page.screenshot({ path: join(shots, 'audit-1440.png'), fullPage: true });

    // One format everywhere: formatTime in ui.js.
    const formats = await page.evaluate(async () => {
      const { formatTime, parseTime, when } = await import('/assets/js/ui.js');
      const other = new Date(2026, 11, 1, 14, 3, 7);
      const today = new Date();
      today.setHours(14, 3, 7, 0);
      return {
        today: formatTime(today.toISOString()), todayShort: formatTime(today.getTime(), { seconds: false }),
        other: formatTime(other.getTime()), otherSeconds: formatTime(other.toISOString(), { seconds: true }),
        none: formatTime(null), same: when === formatTime,
        parsed: parseTime('2026-12-01 14:03') === new Date(2026, 11, 1, 14, 3).getTime(), bad: parseTime('2026-02-30 10:00'),
      };
    });
    assert.deepEqual(formats, { today: '14:03:07', todayShort: '14:03', other: '2026-12-01 14:03', otherSeconds: '2026-12-01 14:03:07', none: '—', same: true, parsed: true, bad: null });

    // The time range goes to the API as from/to; a range in the future is empty.
    await tid('audit-range').selectOption('custom');
    await tid('audit-from').fill('not a time');
    await tid('audit-filter').click();
    assert.equal(await tid('audit-from').getAttribute('aria-invalid'), 'true');
    const later = new Date(Date.now() + 2 * 3600e3);
    const two = (n) => String(n).padStart(2, '0');
    await tid('audit-from').fill(`${later.getFullYear()}-${two(later.getMonth() + 1)}-${two(later.getDate())} ${two(later.getHours())}:${two(later.getMinutes())}`);
    const asked = page.waitForRequest((r) => r.url().includes('/api/v1/audit?') && r.url().includes('from='));
    await tid('audit-filter').click();
    const from = new URL((await asked).url()).searchParams.get('from');
    assert.ok(Math.abs(Date.parse(from) - later.getTime()) < 60000, from);
    await page.locator('[data-testid=audit] [data-testid=empty]', { hasText: 'No entries match.' }).waitFor();
    await tid('audit-range').selectOption('1h');
    await tid('audit-filter').click();
    await denied.waitFor();
    assert.match(page.url(), /\/audit\?range=1h$/);

    // The menu button collapses the sidebar on a wide screen too.
    assert.equal(await tid('menu-toggle').getAttribute('aria-expanded'), 'true');
    await tid('menu-toggle').click();
    await tid('sidebar').waitFor({ state: 'hidden' });
    await tid('menu-toggle').click();
    await tid('nav-audit').waitFor();

    // 390 px: the sidebar starts closed; nothing scrolls the page sideways;
    // the audit table scrolls inside its card.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.emulateMedia({ reducedMotion: 'reduce' }); // no slide, so the screenshot shows it open
    await page.reload();
    await denied.waitFor();
    assert.equal(await tid('sidebar').isVisible(), false, 'the sidebar is closed at 390 px');
    assert.equal(await tid('menu-toggle').getAttribute('aria-expanded'), 'false');
    assert.ok(await overflow(page) <= 0, `the audit page is ${await overflow(page)} px too wide at 390`);
    assert.ok(await page.evaluate(() => { const w = document.querySelector('[data-testid=audit] .table-wrap'); return w.scrollWidth > w.clientWidth; }), 'the audit table scrolls inside its card');
    await page.screenshot({ path: join(shots, 'audit-390-sidebar-closed.png'), fullPage: true });
    await tid('menu-toggle').click();
    await tid('nav-projects').waitFor();
    assert.equal(await tid('menu-toggle').getAttribute('aria-expanded'), 'true');
    assert.ok(await overflow(page) <= 0);
    await page.screenshot({ path: join(shots, 'audit-390-sidebar-open.png') });
    // Following a link closes it.
    await tid('nav-projects').click();
    await tid('sidebar').waitFor({ state: 'hidden' });
    await tid('project-orders-platform').waitFor();
    // A dialog fits.
    await tid('new-project').click();
    const dialog = await page.locator('form.modal').boundingBox();
    assert.ok(dialog.x >= 0 && dialog.x + dialog.width <= 390, `the dialog spans ${dialog.x}–${dialog.x + dialog.width} px`);
    await page.screenshot({ path: join(shots, 'dialog-390.png') });
    await tid('modal-close').click();

    // A runtime with sparse request records: 4 requests 20 minutes ago (one
    // 5xx), 2 in each of 6 buckets later, 12 in one bucket.
    startBridge(['--server', server.runtime, '--secret', secret, '--env', 'dev',
      '--project', 'orders-platform', '--integration', 'order-sync', '--runtime', 'n1', '--interval', '2']);
    // Every page fits 390 px (what is wider scrolls inside its card).
    for (const path of ['/', '/projects', '/projects/orders-platform', '/projects/orders-platform/integrations/order-sync', '/runtimes', '/logs', '/promotions',
      '/environments', '/data-planes', '/access', '/ingest-tokens', '/audit', '/profile']) {
      await page.goto(`${server.management}${path}`);
      await tid('nav-overview').waitFor({ state: 'attached' });
      await page.waitForFunction(() => document.querySelector('#content')?.childElementCount && !document.querySelector('#content .spinner'));
      const wide = await page.evaluate(() => [...document.querySelectorAll('#content *')]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5 && !el.closest('.table-wrap, .chart-plot, .snippet pre, .pipe-block'))
        .slice(0, 3).map((el) => `${el.tagName.toLowerCase()}.${el.className}`));
      assert.ok(await overflow(page) <= 0, `${path} is ${await overflow(page)} px too wide at 390: ${wide.join(', ')}`);
    }
    await page.goto(`${server.management}/runtimes`);
    const link = page.getByRole('link', { name: 'n1', exact: true });
    await link.waitFor({ timeout: 20000 });
    const runtimeId = (await link.getAttribute('href')).split('/').pop();
    const MIN = 60000;
    const minute = Math.floor(Date.now() / MIN) * MIN;
    const at = (ago, k) => new Date(minute - ago * MIN + 1000 + k * 10).toISOString();
    const record = (ago, k, statusCode, responseTimeMs) => ({ time: at(ago, k), service: 'orders', resource: '/orders', method: 'POST', statusCode, responseTimeMs, runtimeId });
    const records = [
      ...[[200, 20], [200, 30], [500, 400], [200, 25]].map(([s, ms], k) => record(20, k, s, ms)),
      ...[17, 16, 15, 14, 13, 12].flatMap((ago) => [record(ago, 0, 200, 40 + ago), record(ago, 1, 200, 90 + 3 * ago)]),
      ...Array.from({ length: 12 }, (_, k) => record(8, k, k < 3 ? 503 : k === 3 ? 404 : 200, 20 + k * 15)),
    ];
    const posted = await postRuntime(server.runtime, '/icp/metrics', records, runtimeToken(secret));
    assert.equal(posted.body.accepted, records.length, JSON.stringify(posted.body));
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`${server.management}/runtimes/${runtimeId}`);
    await tid('metrics-range-1h').click();
    const errors = page.locator('[data-testid=metrics-errors][data-state=data]');
    await errors.waitFor();
    // Rates beside counts; the buckets under 5 requests get no point.
    await page.locator('[data-testid=metrics-errors-readout]', { hasText: '5xx 14.3 % (4) · 4xx 3.57 % (1) of 28 requests · 7 buckets under 5 requests not drawn' }).waitFor();
    assert.equal(await errors.locator('.series[data-series=errors5xx] :is(circle.point, path.line)').count(), 1, 'one bucket has a rate');
    // The readout of a bucket gives its counts: 20 minutes ago, 1 of 4.
    // (Stepped back bucket by bucket from now with the arrow key.)
    const stepTo = async (chart, text) => {
      await chart.locator('svg').focus();
      const readout = page.locator(`[data-testid=${await chart.getAttribute('data-testid')}-readout]`);
      for (let i = 0; i < 60 && !(await readout.textContent()).includes(text); i++) await page.keyboard.press('ArrowLeft');
      const shown = await readout.textContent();
      assert.ok(shown.includes(text), `${text} not in the readout: ${shown}`);
    };
    await stepTo(errors, '5xx — (1 of 4 requests)');
    const latency = page.locator('[data-testid=metrics-latency][data-state=data]');
    await stepTo(latency, '2 requests');
    // With 2 requests a bucket's p95 is its p99: p99 is drawn wide and
    // dashed, under p95, so both show.
    const order = await latency.locator('svg .series').evaluateAll((gs) => gs.map((g) => `${g.dataset.series}${g.classList.contains('dashed') ? ' dashed' : ''}`));
    assert.deepEqual(order, ['p99 dashed', 'p95', 'p50']);
    const widths = await latency.locator('svg .series .line').evaluateAll((ls) => ls.map((l) => Number.parseFloat(getComputedStyle(l).strokeWidth)));
    assert.ok(widths[0] > widths[1], `p99 ${widths[0]} px, p95 ${widths[1]} px`);
    await page.keyboard.press('Escape');
    await tid('metrics').screenshot({ path: join(shots, 'metrics-sparse.png') });

    assert.deepEqual(problems, [], 'the browser reported errors');
  });
});
