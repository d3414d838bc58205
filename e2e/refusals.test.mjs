// End-to-end test of "Recent refusals" on the Runtimes page (issue 13,
// point 4): a runtime registers, its secret is revoked, its next
// heartbeats get 401 "revoked"; the Runtimes page filtered to the
// environment shows the refusal (reason, key id, runtime, answer), and the
// unfiltered page shows no panel. Run from the repository root with
// `node --test e2e/` after `cargo build --release` (or with
// ICPD_BIN=target/debug/icpd). Screenshots go to target/screenshots/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { shots, cli, withConsole, firstLogin, runtimeToken, postRuntime } from './helpers.mjs';

test('runtimes page: a revoked secret shows under Recent refusals for its environment', { timeout: 120000 }, async (t) => {
  const started = Date.now();
  await withConsole('refusals', {}, async ({ dataDir, server, initialPassword, page, tid, problems }) => {
    const { secret, keyId } = JSON.parse(cli(dataDir, ['secret', 'create', '--env', 'dev', '--project', 'shop', '--integration', 'checkout', '--json']));
    const runtimeId = randomUUID();
    const full = {
      runtimeId, runtime: 'checkout-1', runtimeType: 'BI', heartbeatVersion: 'v1.0', status: 'RUNNING',
      environment: 'dev', project: 'shop', component: 'checkout', runtimeHash: 'h1', timestamp: [Math.floor(Date.now() / 1000), 0],
    };
    const ok = await postRuntime(server.runtime, '/icp/heartbeat', full, runtimeToken(secret));
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    cli(dataDir, ['secret', 'revoke', keyId]);
    for (let i = 0; i < 3; i += 1) {
      const refused = await postRuntime(server.runtime, '/icp/deltaHeartbeat', { runtimeId, heartbeatVersion: 'v1.0', runtimeHash: 'h1' }, runtimeToken(secret));
      assert.equal(refused.status, 401, JSON.stringify(refused.body));
      assert.match(refused.body.error.message, /revoked/);
    }

    await firstLogin(page, server.management, initialPassword, 'refusals e2e password 1');

    // Unfiltered: the runtime, no refusals panel.
    await tid('nav-runtimes').click();
    await tid('runtimes-row-checkout-1').waitFor();
    assert.equal(await tid('refusals-table').count(), 0, 'a refusals panel without an environment');

    // Filtered to dev: the three refusals, newest first.
    await tid('filter-environment').selectOption('dev');
    await page.waitForURL(/environment=dev/);
    await tid('refusals-table').waitFor();
    const rows = tid('refusals-table').locator('tbody tr');
    assert.equal(await rows.count(), 3);
    const first = await rows.first().innerText();
    for (const text of ['revoked', `runtime secret ${keyId}`, runtimeId.slice(0, 8), '401 · POST /icp/deltaHeartbeat', '127.0.0.1']) {
      assert.ok(first.includes(text), `"${text}" not in ${first}`);
    }
    assert.ok(!first.includes(secret.split('.')[1]), 'key material on the page');
    await tid('refusals').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(shots, 'runtimes-refusals.png'), fullPage: true });

    // Refresh picks up a new one; prod has none.
    await postRuntime(server.runtime, '/icp/heartbeat', full, runtimeToken(secret));
    await tid('refusals-refresh').click();
    await page.locator('[data-testid=refusals-table] tbody tr').nth(3).waitFor();
    assert.match(await rows.first().innerText(), /POST \/icp\/heartbeat/);
    await tid('filter-environment').selectOption('prod');
    await page.waitForURL(/environment=prod/);
    await page.locator('[data-testid=refusals] [data-testid=empty]', { hasText: 'No runtime or log shipper was refused in prod' }).waitFor();

    assert.deepEqual(problems, [], 'the browser reported errors');
    t.diagnostic(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});
