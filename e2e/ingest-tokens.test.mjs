// End-to-end test of ingest tokens in the console and the metrics panel's
// "By resource" table (issue 7): an admin creates an ingest token on the
// Ingest tokens page, reads the token and the Fluent Bit [OUTPUT] section
// shown once, ships a log line and request records with it to the runtime
// listener, finds the line in the logs explorer and the records per
// resource on the integration page (a row narrows the charts), sees that a
// Viewer may list tokens but not create or revoke them, revokes the token
// and gets 401 on the next POST. Run from the repository root with
// `node --test e2e/` after `cargo build --release` (or with
// ICPD_BIN=target/debug/icpd). Screenshots go to target/screenshots/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { shots, bin, cli, withConsole, firstLogin, signIn, postRuntime, percentile } from './helpers.mjs';

const PROJECT = 'shop';
const INTEGRATION = 'checkout';
const VIEWER = 'vera';
const VIEWER_PASSWORD = 'viewer e2e password 1';

test('ingest tokens in the console: create (shown once), ship logs and request records, by-resource metrics, viewer, revoke → 401', { timeout: 120000 }, async (t) => {
  const started = Date.now();
  await withConsole('ingest-tokens', {}, async ({ dataDir, server, initialPassword, page, tid, problems, openPage }) => {
    // The project and integration (a runtime secret creates them) and a read-only user.
    cli(dataDir, ['secret', 'create', '--env', 'dev', '--project', PROJECT, '--integration', INTEGRATION, '--json']);
    execFileSync(bin, ['--data-dir', dataDir, 'user', 'create', VIEWER, '--role', 'Viewer', '--password-stdin'], { input: `${VIEWER_PASSWORD}\n`, encoding: 'utf8' });

    await firstLogin(page, server.management, initialPassword, 'ingest e2e password 1');

    // 1. Administration → Ingest tokens: none yet.
    await tid('nav-ingest-tokens').click();
    await page.waitForURL(/\/ingest-tokens$/);
    await tid('ingest-tokens').getByTestId('empty').waitFor();

    // 2. Create one for the integration; the token and the Fluent Bit section are shown once.
    await tid('new-ingest-token').click();
    await tid('ingest-token-modal').waitFor();
    await tid('ingest-token-name').fill('fluent-bit checkout');
    await tid('ingest-token-environment').selectOption('dev');
    await tid('ingest-token-project').selectOption(PROJECT);
    await page.locator(`[data-testid=ingest-token-integration] option[value=${INTEGRATION}]`).waitFor({ state: 'attached' });
    await tid('ingest-token-integration').selectOption(INTEGRATION);
    await page.locator('[data-testid=ingest-token-scope-note]', { hasText: `dev / ${PROJECT} / ${INTEGRATION}` }).waitFor();
    await tid('modal-submit').click();
    await tid('ingest-token-warning').waitFor();
    const token = (await tid('ingest-token-value').textContent()).trim();
    assert.match(token, /^icpi_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/);
    const id = token.slice(5, 13);
    const fluentBit = await tid('ingest-token-fluent-bit').textContent();
    const runtimeUrl = new URL(server.runtime);
    assert.match(fluentBit, /^\[OUTPUT\]\n {4}Name {10}http\n/);
    assert.ok(fluentBit.includes(`    Host          ${runtimeUrl.hostname}\n`), fluentBit);
    assert.ok(fluentBit.includes(`    Port          ${runtimeUrl.port}\n`), fluentBit);
    assert.ok(fluentBit.includes('    URI           /icp/logs\n'), fluentBit);
    assert.ok(fluentBit.includes(`    Header        Authorization Bearer ${token}\n`), fluentBit);
    if (runtimeUrl.protocol === 'https:') assert.match(fluentBit, /tls\.ca_file +\S+cert\.pem/);
    await tid('ingest-token-fluent-bit-copy').waitFor();
    await page.screenshot({ path: join(shots, 'ingest-token-created.png'), fullPage: true });
    await tid('modal-close').click();

    // Listed with its scope, never the token itself.
    const row = tid(`ingest-token-${id}`);
    await row.waitFor();
    assert.equal(await tid(`ingest-token-status-${id}`).textContent(), 'active');
    assert.match(await tid(`ingest-token-scope-${id}`).textContent(), new RegExp(`dev.*${PROJECT}.*${INTEGRATION}`));
    assert.equal(await tid(`ingest-token-used-${id}`).textContent(), 'never');
    assert.match(await row.textContent(), /fluent-bit checkout.*by admin/);
    assert.equal(await page.getByText(token).count(), 0, 'the token is still on the page');

    // 3. A shipper sends a log line and request records with it.
    const message = `checkout ${id} shipped by fluent bit`;
    const logRes = await postRuntime(server.runtime, '/icp/logs', [{ date: Date.now() / 1000, log: message, level: 'warning', pod: 'checkout-7f9' }], token);
    assert.equal(logRes.status, 200, JSON.stringify(logRes.body));
    assert.equal(logRes.body.accepted, 1, JSON.stringify(logRes.body));
    // [service, resource, method, status, ms]
    const records = [
      ['cart', '/checkout', 'POST', 200, 10], ['cart', '/checkout', 'POST', 201, 20], ['cart', '/checkout', 'POST', 200, 30],
      ['cart', '/checkout', 'POST', 404, 40], ['cart', '/checkout', 'POST', 500, 50],
      ['cart', '/checkout', 'GET', 200, 5],
      ['cart', '/orders/{id}', 'GET', 200, 7], ['cart', '/orders/{id}', 'GET', 200, 9], ['cart', '/orders/{id}', 'GET', 503, 900],
      ['payments', '/charge', 'POST', 200, 120], ['payments', '/charge', 'POST', 200, 80],
    ].map(([service, resource, method, statusCode, responseTimeMs], k) => ({
      time: new Date(Date.now() - 5000 + k * 100).toISOString(), service, resource, method, statusCode, responseTimeMs,
    }));
    const metRes = await postRuntime(server.runtime, '/icp/metrics', records, token);
    assert.equal(metRes.status, 200, JSON.stringify(metRes.body));
    assert.equal(metRes.body.accepted, records.length, JSON.stringify(metRes.body));

    // Its last use shows.
    await page.reload();
    await page.locator(`[data-testid=ingest-token-used-${id}]`, { hasText: /s ago/ }).waitFor();

    // 4. The line is in the logs explorer, attributed to the token's integration.
    await tid('nav-logs').click();
    await page.waitForURL(/\/logs$/);
    await tid('logs-ingest-tokens').waitFor();
    await tid('logs-project').selectOption(PROJECT);
    await page.locator(`[data-testid=logs-integration] option[value=${INTEGRATION}]`).waitFor({ state: 'attached' });
    await tid('logs-integration').selectOption(INTEGRATION);
    const logRow = page.locator('[data-testid^=log-row-]', { hasText: message });
    await logRow.waitFor();
    assert.equal(await tid(`log-level-${await logRow.getAttribute('data-id')}`).textContent(), 'WARN');
    assert.equal(await page.locator('[data-testid^=log-row-]').count(), 1);

    // 5. The integration page: the records per service, resource and method, busiest first.
    await page.goto(`${server.management}/projects/${PROJECT}/integrations/${INTEGRATION}`);
    await tid('metrics-range-1h').click();
    await page.locator('[data-testid=metrics-requests-readout]', { hasText: `${records.length} requests` }).waitFor();
    const resourceRows = page.locator('[data-testid=metrics-resources-table] [data-testid=metrics-resource-row]');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=metrics-resources-table] [data-testid=metrics-resource-row]').length === 4);
    const groups = new Map();
    for (const r of records) {
      const k = `${r.service} ${r.resource} ${r.method}`;
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(r);
    }
    const want = [...groups].sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0]));
    const shown = await resourceRows.evaluateAll((trs) => trs.map((tr) => ({
      key: `${tr.dataset.service} ${tr.dataset.resource} ${tr.dataset.method}`,
      cells: Object.fromEntries([...tr.querySelectorAll('td[data-col]')].map((td) => [td.dataset.col, td.textContent])),
    })));
    assert.deepEqual(shown.map((s) => s.key), want.map(([k]) => k), 'rows sorted by requests');
    const pct = (n, d) => `${Math.round((n / d) * 1000) / 10} %`;
    for (const [i, [k, rs]] of want.entries()) {
      const times = rs.map((r) => r.responseTimeMs);
      const n = rs.length;
      assert.deepEqual(shown[i].cells, {
        requests: String(n),
        errors4xx: n && rs.some((r) => r.statusCode >= 400 && r.statusCode < 500) ? pct(rs.filter((r) => r.statusCode >= 400 && r.statusCode < 500).length, n) : '0 %',
        errors5xx: rs.some((r) => r.statusCode >= 500) ? pct(rs.filter((r) => r.statusCode >= 500).length, n) : '0 %',
        p50: String(percentile(times, 0.5)),
        p95: String(percentile(times, 0.95)),
        p99: String(percentile(times, 0.99)),
      }, k);
    }
    assert.deepEqual(shown[0].cells, { requests: '5', errors4xx: '20 %', errors5xx: '20 %', p50: '30', p95: '50', p99: '50' });
    await tid('metrics').screenshot({ path: join(shots, 'metrics-by-resource.png') });

    // A row narrows the charts to its service and resource (every method); again shows all.
    await resourceRows.filter({ has: page.locator('td', { hasText: '/checkout' }) }).filter({ hasText: 'POST' }).click();
    await page.locator('[data-testid=metrics-filter]', { hasText: 'cart /checkout' }).waitFor();
    await page.locator('[data-testid=metrics-requests-readout]', { hasText: /^6 requests/ }).waitFor();
    await page.locator('[data-testid=metrics-resource-row].selected').first().waitFor();
    assert.equal(await page.locator('[data-testid=metrics-resource-row].selected').count(), 2, 'both methods of /checkout are highlighted');
    assert.equal(await resourceRows.count(), 4, 'the table still lists every resource');
    await tid('metrics').screenshot({ path: join(shots, 'metrics-by-resource-filtered.png') });
    await tid('metrics-filter-clear').click();
    await page.locator('[data-testid=metrics-requests-readout]', { hasText: `${records.length} requests` }).waitFor();
    assert.equal(await tid('metrics-filter').isHidden(), true);

    // 6. A Viewer lists the token but may neither create nor revoke one.
    const vpage = await openPage({ label: 'viewer' });
    await signIn(vpage, server.management, VIEWER, VIEWER_PASSWORD);
    await vpage.getByTestId('nav-ingest-tokens').click();
    await vpage.getByTestId(`ingest-token-${id}`).waitFor();
    assert.equal(await vpage.getByTestId('new-ingest-token').count(), 0, 'a Viewer sees New ingest token');
    assert.equal(await vpage.getByTestId(`revoke-ingest-token-${id}`).count(), 0, 'a Viewer sees Revoke');
    await vpage.screenshot({ path: join(shots, 'ingest-tokens-viewer.png'), fullPage: true });
    await vpage.context().close();

    // 7. Revoke, with confirmation; the next POST is refused.
    await page.goto(`${server.management}/ingest-tokens`);
    await tid(`revoke-ingest-token-${id}`).click();
    await page.locator('[data-testid=confirm]', { hasText: 'refused from their next request' }).waitFor();
    await tid('modal-submit').click();
    await page.locator(`[data-testid=ingest-token-status-${id}]`, { hasText: 'revoked' }).waitFor();
    assert.equal(await tid(`revoke-ingest-token-${id}`).count(), 0);
    await page.screenshot({ path: join(shots, 'ingest-tokens-revoked.png'), fullPage: true });
    const refused = await postRuntime(server.runtime, '/icp/logs', [{ log: 'after revoke', level: 'info' }], token);
    assert.equal(refused.status, 401, JSON.stringify(refused.body));

    // Dark theme.
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.reload();
    await tid(`ingest-token-${id}`).waitFor();
    await page.screenshot({ path: join(shots, 'ingest-tokens-dark.png'), fullPage: true });

    assert.deepEqual(problems, [], 'the browser reported errors');
    t.diagnostic(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});
