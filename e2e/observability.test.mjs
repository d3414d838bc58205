// End-to-end test of built-in observability in the console (issue 7): logs
// from a bridge.py-driven runtime appear live in the logs explorer, phrase
// search narrows them, and request records become a metrics chart with
// data on the integration page. Run from the repository root with
// `node --test e2e/` after `cargo build --release` (or with
// ICPD_BIN=target/debug/icpd). Screenshots go to target/screenshots/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { shots, cli, withConsole, firstLogin, runtimeToken, postRuntime, percentile } from './helpers.mjs';

const PROJECT = 'orders';
const INTEGRATION = 'order-sync';
const RUNTIME = 'node-1';

test('observability: live logs from a bridge.py runtime in the explorer, search, and metrics charts with data', { timeout: 120000 }, async (t) => {
  const started = Date.now();
  const runtimeId = randomUUID();
  await withConsole('observability', {}, async ({ dataDir, server, initialPassword, page, tid, problems, startBridge }) => {
    // A secret bound to the integration (created with it) and a real runtime using it.
    const made = JSON.parse(cli(dataDir, ['secret', 'create', '--env', 'dev', '--project', PROJECT, '--integration', INTEGRATION, '--json']));
    assert.ok(made.secret, `no secret in ${JSON.stringify(made)}`);
    startBridge(['--server', server.runtime, '--secret', made.secret, '--env', 'dev', '--project', PROJECT,
      '--integration', INTEGRATION, '--runtime', RUNTIME, '--runtime-id', runtimeId, '--interval', '2']);
    const token = runtimeToken(made.secret);

    await firstLogin(page, server.management, initialPassword, 'observability e2e password 1');

    // The runtime is registered (seen RUNNING on its integration page).
    await page.goto(`${server.management}/projects/${PROJECT}/integrations/${INTEGRATION}`);
    await page.locator(`[data-testid=runtime-status-${RUNTIME}]`, { hasText: 'RUNNING' }).waitFor({ timeout: 20000 });
    await tid('metrics').waitFor();
    await page.locator('[data-testid=recent-logs] [data-testid=empty]').waitFor();

    // 1. The explorer, by the sidebar; that integration chosen; live tail on.
    await tid('nav-logs').click();
    await page.waitForURL(/\/logs$/);
    await tid('logs-project').selectOption(PROJECT);
    await page.locator(`[data-testid=logs-integration] option[value=${INTEGRATION}]`).waitFor({ state: 'attached' });
    await tid('logs-integration').selectOption(INTEGRATION);
    await tid('logs-state').getByTestId('empty').waitFor();
    await tid('logs-live-toggle').click();
    await page.locator('[data-testid=logs-live-state][data-state=open]').waitFor();
    assert.match(page.url(), new RegExp(`project=${PROJECT}&integration=${INTEGRATION}.*live=1`));
    await page.evaluate(() => { window.e2eNoReload = true; });

    // 2. The runtime posts log lines (Ballerina JSON log lines, its own bearer token).
    const now = Date.now();
    const lines = [
      { time: new Date(now - 3000).toISOString(), level: 'INFO', module: 'acme/orders', message: 'order 1001 accepted', runtimeId, orderId: 1001 },
      { time: new Date(now - 2000).toISOString(), level: 'WARN', module: 'acme/inventory', message: 'stock low for sku A-7', runtimeId, sku: 'A-7' },
      { time: new Date(now - 1000).toISOString(), level: 'ERROR', module: 'acme/payments', message: 'payment gateway timeout for order 1002', runtimeId, orderId: 1002, gateway: 'stripe-eu' },
    ];
    const res = await postRuntime(server.runtime, '/icp/logs', lines.map((l) => JSON.stringify(l)).join('\n'), token);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.accepted, 3, JSON.stringify(res.body));

    // They appear without a reload, with their level and runtime.
    for (const l of lines) {
      const row = page.locator('[data-testid^=log-row-]', { hasText: l.message });
      await row.waitFor();
      const id = await row.getAttribute('data-id');
      assert.equal(await tid(`log-level-${id}`).textContent(), l.level);
      assert.equal(await tid(`log-runtime-${id}`).textContent(), RUNTIME);
      assert.equal(await row.getAttribute('data-runtime'), runtimeId);
    }
    assert.equal(await page.locator('[data-testid^=log-row-]').count(), 3);
    assert.equal(await page.evaluate(() => window.e2eNoReload), true, 'the page reloaded');
    // Newest first: the ERROR line (last posted) is on top.
    assert.match(await page.locator('[data-testid^=log-row-]').first().textContent(), /payment gateway timeout/);
    // A late line (older than one already shown) lands at its own time, not on top.
    const late = { time: new Date(now - 2500).toISOString(), level: 'INFO', module: 'acme/inventory', message: 'stock reserved for order 1001', runtimeId };
    const resLate = await postRuntime(server.runtime, '/icp/logs', JSON.stringify(late), token);
    assert.equal(resLate.body.accepted, 1, JSON.stringify(resLate.body));
    await page.locator('[data-testid^=log-row-]', { hasText: late.message }).waitFor();
    const rowTexts = () => page.locator('[data-testid^=log-row-] [data-testid^=log-message-]').allTextContents();
    assert.deepEqual(await rowTexts(), [lines[2].message, lines[1].message, late.message, lines[0].message]);
    const lateId = await page.locator('[data-testid^=log-row-]', { hasText: late.message }).getAttribute('data-id');
    assert.equal(await tid(`log-environment-${lateId}`).textContent(), 'dev');
    // A row opens to its attributes.
    const errorRow = page.locator('[data-testid^=log-row-]', { hasText: 'payment gateway' });
    const errorId = await errorRow.getAttribute('data-id');
    await errorRow.click();
    await page.locator(`[data-testid=log-detail-${errorId}]`, { hasText: 'stripe-eu' }).waitFor();
    await page.screenshot({ path: join(shots, 'observability-logs-live.png'), fullPage: true });

    // 3. Phrase search: only the matching line is left, and the URL keeps it.
    await tid('logs-search').fill('gateway timeout');
    await page.waitForURL(/q=gateway\+timeout/);
    await page.locator('[data-testid=logs-live-state][data-state=open]').waitFor();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid^=log-row-]').length === 1);
    await page.locator('[data-testid^=log-row-]', { hasText: 'payment gateway timeout for order 1002' }).waitFor();
    // A reload restores the view from the URL.
    await page.reload();
    await page.locator('[data-testid^=log-row-]', { hasText: 'payment gateway timeout' }).waitFor();
    assert.equal(await tid('logs-search').inputValue(), 'gateway timeout');
    assert.equal(await tid('logs-integration').inputValue(), INTEGRATION);
    assert.equal(await page.locator('[data-testid^=log-row-]').count(), 1);
    await page.locator('[data-testid=logs-live-state][data-state=open]').waitFor();
    // A matching line posted now arrives live; a non-matching one does not.
    const more = [
      { time: new Date().toISOString(), level: 'INFO', module: 'acme/orders', message: 'order 1003 accepted', runtimeId },
      { time: new Date().toISOString(), level: 'FATAL', module: 'acme/payments', message: 'gateway timeout budget exhausted', runtimeId },
    ];
    const res2 = await postRuntime(server.runtime, '/icp/logs', more, token);
    assert.equal(res2.body.accepted, 2, JSON.stringify(res2.body));
    await page.locator('[data-testid^=log-row-]', { hasText: 'budget exhausted' }).waitFor();
    assert.equal(await page.locator('[data-testid^=log-row-]', { hasText: 'order 1003' }).count(), 0);
    assert.equal(await page.locator('[data-testid^=log-row-]').count(), 2);
    const dl = await tid('logs-download-ndjson').getAttribute('href');
    assert.match(dl, /^\/api\/v1\/observability\/logs\/download\?.*q=gateway\+timeout.*format=ndjson/);
    // The download link (same session cookie) gives the same two records.
    const download = await page.request.get(new URL(dl, server.management).href);
    assert.equal(download.status(), 200);
    const downloaded = (await download.text()).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(downloaded.map((r) => r.message).sort(), ['gateway timeout budget exhausted', 'payment gateway timeout for order 1002']);
    await page.screenshot({ path: join(shots, 'observability-logs-search.png'), fullPage: true });

    // 4. Request records: 2xx, 4xx and 5xx with known response times.
    const records = [
      [200, 12], [200, 18], [200, 25], [201, 31], [200, 40], [200, 55], [404, 8], [500, 120], [503, 480], [200, 70],
    ].map(([statusCode, responseTimeMs], k) => ({
      time: new Date(Date.now() - 5000 + k * 100).toISOString(), service: 'orders', resource: '/orders', method: 'POST', statusCode, responseTimeMs, runtimeId,
    }));
    const res3 = await postRuntime(server.runtime, '/icp/metrics', records, token);
    assert.equal(res3.status, 200, JSON.stringify(res3.body));
    assert.equal(res3.body.accepted, records.length, JSON.stringify(res3.body));
    const times = records.map((r) => r.responseTimeMs);
    const ms = (v) => (v >= 1000 ? `${v / 1000} s` : `${v} ms`);

    // 5. The integration page draws them.
    await page.goto(`${server.management}/projects/${PROJECT}/integrations/${INTEGRATION}`);
    await tid('metrics-range-1h').click();
    const requests = page.locator('[data-testid=metrics-requests][data-state=data]');
    await requests.waitFor();
    assert.ok(await requests.locator('svg .series path.line').count() > 0, 'no request-rate line');
    await page.locator('[data-testid=metrics-requests-readout]', { hasText: `${records.length} requests` }).waitFor();
    await page.locator('[data-testid=metrics-errors][data-state=data]').waitFor();
    await page.locator('[data-testid=metrics-errors-readout]', { hasText: '5xx 20 % (2)' }).waitFor();
    assert.match(await tid('metrics-errors-readout').textContent(), /4xx 10 % \(1\)/);
    const latency = page.locator('[data-testid=metrics-latency][data-state=data]');
    await latency.waitFor();
    const expected = `p50 ${ms(percentile(times, 0.5))} · p95 ${ms(percentile(times, 0.95))} · p99 ${ms(percentile(times, 0.99))}`;
    assert.equal(await tid('metrics-latency-readout').textContent(), expected);
    // The bucket under the pointer: the readout names its values. The
    // charts sit below the environment cards, so at 800 px they may lie
    // below the viewport, and they move down when the cards finish loading:
    // wait for the cards, then hover() the chart's hit area (it lies over
    // the series and takes the pointer events) at the p50 point's x, which
    // scrolls it into view and retries until the pointer lands on it.
    await page.locator(`[data-testid=runtime-status-${RUNTIME}]`, { hasText: 'RUNNING' }).waitFor();
    const point = latency.locator('svg .series[data-series=p50] :is(circle.point, path.line)').first();
    await point.waitFor();
    const hit = latency.locator('svg rect.hit');
    const [pointBox, hitBox] = [await point.boundingBox(), await hit.boundingBox()];
    await hit.hover({ position: { x: pointBox.x + pointBox.width / 2 - hitBox.x, y: hitBox.height / 2 } });
    await page.locator('[data-testid=metrics-latency-readout].hover', { hasText: /p50 \d+(\.\d+)? ms/ }).waitFor();
    await page.locator('[data-testid=recent-logs] tr', { hasText: 'budget exhausted' }).waitFor();
    await tid('metrics').screenshot({ path: join(shots, 'observability-metrics.png') });
    await page.screenshot({ path: join(shots, 'observability-integration.png'), fullPage: true });

    // 6. The runtime page has the same panel, for that runtime.
    await page.goto(`${server.management}/runtimes/${runtimeId}`);
    await page.locator('[data-testid=metrics-requests-readout]', { hasText: `${records.length} requests` }).waitFor();
    await page.screenshot({ path: join(shots, 'observability-runtime.png'), fullPage: true });

    // 7. Dark theme, over a week: a line from two days ago shows its date (24 h, local time).
    const old = new Date(Date.now() - 2 * 86400e3);
    const resOld = await postRuntime(server.runtime, '/icp/logs', JSON.stringify({ time: old.toISOString(), level: 'INFO', message: 'nightly export finished', runtimeId }), token);
    assert.equal(resOld.body.accepted, 1, JSON.stringify(resOld.body));
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.goto(`${server.management}/logs?project=${PROJECT}&integration=${INTEGRATION}&range=7d`);
    await page.locator('[data-testid^=log-row-]', { hasText: 'order 1003' }).waitFor();
    const oldRow = page.locator('[data-testid^=log-row-]').last();
    assert.match(await oldRow.textContent(), /nightly export finished/);
    const two = (n) => String(n).padStart(2, '0');
    const oldDay = `${old.getFullYear()}-${two(old.getMonth() + 1)}-${two(old.getDate())}`;
    assert.match(await oldRow.locator('time').textContent(), new RegExp(`^${oldDay} ${two(old.getHours())}:\\d{2}:\\d{2}\\.\\d{3}$`));
    await page.screenshot({ path: join(shots, 'observability-logs-dark.png'), fullPage: true });

    assert.deepEqual(problems, [], 'the browser reported errors');
    t.diagnostic(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});
