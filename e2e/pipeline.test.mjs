// End-to-end test of the environments pipeline in the console (issue 8): a
// data plane and a staging environment, the project's pipeline dev → staging
// → prod, a dev deployment record and configuration with a secret, a
// promotion to staging with a database-URL override (applied at once), a
// promotion to prod that waits for a second user's approval in the
// Promotions page (the approver's sidebar and overview count it; the
// dialog shows what changes in prod: version, a changed URL, a changed
// secret only as "changed", a removed and an added key), and a bridge.py
// runtime in prod that is served the promoted configuration. Run from the repository root with `node --test
// e2e/` after `cargo build --release` (or with ICPD_BIN=target/debug/icpd).
// Screenshots go to target/screenshots/pipeline-*.png.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { shots, cli, withConsole, firstLogin, signIn, runtimeToken } from './helpers.mjs';

const PROJECT = 'orders';
const INTEGRATION = 'order-sync';
const ADMIN_PASSWORD = 'pipeline e2e password 1';
const BOB_PASSWORD = 'pipeline e2e bob password 1';
const DEV_SECRET = 'dev-db-s3cret-value';
const DEV_URL = 'jdbc:postgresql://db.dev:5432/orders';
const STAGING_URL = 'jdbc:postgresql://db.staging:5432/orders';
const PROD_OLD_URL = 'jdbc:postgresql://db.prod-old:5432/orders';
const PROD_OLD_SECRET = 'prod-old-db-s3cret-value';

/** GET on the runtime listener with a bearer token; resolves { status, headers, text }. */
function getRuntime(baseUrl, path, token) {
  const url = new URL(path, baseUrl);
  return new Promise((ok, fail) => {
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = request(url, { method: 'GET', rejectUnauthorized: false, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => ok({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', fail);
    req.end();
  });
}

test('pipeline: data plane, staging, dev config with a secret, promotion to staging with an override, to prod with approval, runtime gets the config', { timeout: 240000 }, async (t) => {
  const started = Date.now();
  const shot = (page, name) => page.screenshot({ path: join(shots, `pipeline-${name}.png`), fullPage: true });
  await withConsole('pipeline', { width: 1360, height: 900 }, async ({ dataDir, server, initialPassword, page, tid, problems, startBridge, openPage }) => {
    await firstLogin(page, server.management, initialPassword, ADMIN_PASSWORD);

    // The project and integration, with a prod secret bound to it for the runtime later (CLI).
    const prodSecret = JSON.parse(cli(dataDir, ['secret', 'create', '--env', 'prod', '--project', PROJECT, '--integration', INTEGRATION, '--json']));
    assert.ok(prodSecret.secret, JSON.stringify(prodSecret));

    // 1. A data plane, in the console.
    await tid('nav-dataplanes').click();
    await tid('data-plane-default').waitFor();
    await tid('new-data-plane').click();
    await tid('data-plane-name').fill('EU Cloud');
    await tid('data-plane-kind').selectOption('cloud');
    await tid('data-plane-region').fill('eu-west-1');
    await tid('data-plane-description').fill('AWS account 1234');
    await tid('modal-submit').click();
    await tid('data-plane-eu-cloud').waitFor();
    await page.locator('[data-testid=data-plane-health-eu-cloud]', { hasText: 'empty' }).waitFor();

    // 2. A non-critical staging environment on it.
    await tid('nav-environments').click();
    await tid('environment-prod').waitFor();
    await tid('new-environment').click();
    await tid('environment-name').fill('Staging');
    await tid('environment-data-plane').selectOption('eu-cloud');
    await tid('modal-submit').click();
    // The answer says where it went in the default pipeline (issue 13).
    await page.locator('[data-testid=toast]', { hasText: 'placed after dev, before prod in the default pipeline' }).waitFor();
    await page.locator('[data-testid=environment-data-plane-staging]', { hasText: 'EU Cloud' }).waitFor();
    assert.equal(await tid('environment-approvals-prod').textContent(), '1');
    assert.equal(await tid('environment-approvals-staging').textContent(), '0');
    await shot(page, 'environments');
    await tid('nav-dataplanes').click();
    await page.locator('[data-testid=data-plane-envs-eu-cloud]', { hasText: 'Staging' }).waitFor();
    await shot(page, 'data-planes');

    // 3. The project's pipeline: the non-critical staging went before the
    // critical prod (issue 13), so it is dev → staging → prod already.
    await page.goto(`${server.management}/projects/${PROJECT}`);
    await page.locator('[data-testid=pipeline] > li').nth(1).getByTestId('pipeline-stage-staging').waitFor();
    const stages = await page.locator('[data-testid^=pipeline-stage-]').evaluateAll((els) => els.map((e) => e.dataset.testid.replace('pipeline-stage-', '')));
    assert.deepEqual(stages, ['dev', 'staging', 'prod']);
    // Saved from the editor (staging up, and down again), it becomes the project's own.
    await tid('choose-environments').click();
    await tid('pipeline-up-staging').click();
    await tid('pipeline-down-staging').click();
    await tid('modal-submit').click();
    await page.locator('[data-testid=toast]', { hasText: 'Pipeline saved: dev → staging → prod' }).waitFor();

    // 4. A dev deployment record and configuration with a secret.
    await tid(`integration-${INTEGRATION}`).getByRole('link').first().click();
    await page.waitForURL(new RegExp(`/integrations/${INTEGRATION}$`));
    await tid('record-deployment-dev').click();
    await tid('deployment-version').fill('1.4.0');
    await tid('deployment-artifact').fill('registry.example.com/orders:1.4.0');
    await tid('deployment-sha256').fill('a'.repeat(64));
    await tid('modal-submit').click();
    await page.locator('[data-testid=deployment-version-dev]', { hasText: '1.4.0' }).waitFor();

    await tid('config-edit-dev').click();
    await tid('config-section-0').fill('acme.orders');
    await tid('config-key-0').fill('dbUrl');
    await tid('config-value-0').fill(DEV_URL);
    await tid('config-add').click();
    await tid('config-section-1').fill('acme.orders');
    await tid('config-key-1').fill('poolSize');
    await tid('config-type-1').selectOption('int');
    await tid('config-value-1').fill('10');
    await tid('config-add').click();
    await tid('config-section-2').fill('acme.orders');
    await tid('config-key-2').fill('dbPassword');
    await tid('config-secret-2').check();
    await tid('config-value-2').fill(DEV_SECRET);
    await tid('config-comment').fill('database settings');
    await tid('modal-submit').click();
    await page.locator('[data-testid=config-revision-dev]', { hasText: 'revision 1' }).waitFor();
    await page.locator('[data-testid="config-value-dev-acme.orders.dbPassword"]', { hasText: 'set' }).waitFor();
    assert.equal(await tid('config-value-dev-acme.orders.poolSize').textContent(), '10');
    assert.ok(!(await page.content()).includes(DEV_SECRET), 'the secret value is on the page');
    await shot(page, 'integration-dev');

    // The editor shows the secret as set with Replace, never its value.
    await tid('config-edit-dev').click();
    await page.locator('[data-testid=config-modal] [data-testid^=config-secret-set-]').waitFor();
    assert.ok(!(await page.content()).includes(DEV_SECRET), 'the secret value is in the editor');
    await tid('modal-close').click();

    t.diagnostic(`pages 1–3 walked in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // prod runs an older release (API): a record, and a configuration with
    // another URL, another secret and a key the promotion will remove.
    const me = await (await page.request.get(`${server.management}/api/v1/auth/me`)).json();
    const headers = { 'X-CSRF-Token': me.csrfToken };
    const prodPath = `${server.management}/api/v1/projects/${PROJECT}/integrations/${INTEGRATION}/environments/prod`;
    let res = await page.request.post(`${prodPath}/deployments`, { headers, data: { version: '1.3.0', artifact: 'registry.example.com/orders:1.3.0' } });
    assert.equal(res.status(), 201, await res.text());
    res = await page.request.patch(`${prodPath}/config`, { headers, data: { set: [
      { section: 'acme.orders', key: 'dbUrl', value: PROD_OLD_URL },
      { section: 'acme.orders', key: 'dbPassword', value: PROD_OLD_SECRET, secret: true },
      { section: 'acme.orders', key: 'legacyMode', value: true },
    ] } });
    assert.equal(res.status(), 200, await res.text());
    await page.reload();
    await page.locator('[data-testid=deployment-version-prod]', { hasText: '1.3.0' }).waitFor();

    // 5. Promote dev → staging with a database-URL override: staging needs no approval, applied at once.
    await tid('promote-dev').click();
    await page.locator('[data-testid=promote-version]', { hasText: '1.4.0' }).waitFor();
    assert.equal(await tid('promote-config-revision').textContent(), 'revision 1');
    assert.match(await tid('promote-approvals').textContent(), /needs no approval/);
    await tid('override-add').click();
    await tid('override-section-0').fill('acme.orders');
    await tid('override-key-0').fill('dbUrl');
    await tid('override-value-0').fill(STAGING_URL);
    await tid('promote-comment').fill('to staging with its database');
    await page.screenshot({ path: join(shots, 'pipeline-promote-dialog.png') });
    await tid('modal-submit').click();
    await page.locator('[data-testid=promotions-table] tr[data-status=applied]', { hasText: 'dev → staging' }).waitFor();
    await page.locator('[data-testid=deployment-version-staging]', { hasText: '1.4.0' }).waitFor();
    await page.locator('[data-testid="config-value-staging-acme.orders.dbUrl"]', { hasText: STAGING_URL }).waitFor();
    await page.locator('[data-testid="config-value-staging-acme.orders.dbPassword"]', { hasText: 'set' }).waitFor();
    assert.equal(await tid('config-value-staging-acme.orders.poolSize').textContent(), '10');

    // 6. Promote staging → prod: prod is critical, so it waits for one approval.
    await tid('promote-staging').click();
    assert.match(await tid('promote-approvals').textContent(), /needs 1 approval/);
    await tid('promote-comment').fill('release 1.4.0');
    await tid('modal-submit').click();
    const pending = page.locator('[data-testid=promotions-table] tr[data-status=pending]', { hasText: 'staging → prod' });
    await pending.waitFor();
    const promotionId = (await pending.getAttribute('data-testid')).replace('promotion-', '');
    // The requester sees their own pending promotion, without Approve.
    await tid(`own-promotion-${promotionId}`).waitFor();
    assert.equal(await tid(`approve-${promotionId}`).count(), 0, 'the requester has an Approve button');
    await page.locator('[data-testid=deployment-version-prod]', { hasText: '1.3.0' }).waitFor();
    await shot(page, 'integration-pending');
    await tid('nav-promotions').click();
    await tid(`promotion-${promotionId}`).waitFor();
    assert.equal(await tid(`approve-${promotionId}`).count(), 0, 'the requester has an Approve button in the inbox');
    // Nothing waits for the requester's decision: no count beside Promotions.
    const mine = await (await page.request.get(`${server.management}/api/v1/promotions/awaiting-me`)).json();
    assert.deepEqual(mine, { count: 0 });
    assert.equal(await tid('nav-promotions-count').isHidden(), true, 'the requester is counted as an approver');
    await shot(page, 'promotions-requester');

    // 7. A second user with the Admin role (API), who approves in a second browser context.
    res = await page.request.post(`${server.management}/api/v1/users`, { headers, data: { username: 'bob', displayName: 'Bob Approver', password: BOB_PASSWORD } });
    assert.equal(res.status(), 201, await res.text());
    res = await page.request.post(`${server.management}/api/v1/role-assignments`, { headers, data: { role: 'Admin', user: 'bob' } });
    assert.equal(res.status(), 201, await res.text());

    const bob = await openPage({ width: 1360, height: 900, label: 'bob' });
    const btid = (id) => bob.getByTestId(id);
    await signIn(bob, server.management, 'bob', BOB_PASSWORD);
    // One promotion waits for bob: the overview and the sidebar say so.
    assert.equal(await btid('stat-awaiting').locator('.value').textContent(), '1');
    await bob.locator('[data-testid=nav-promotions-count]', { hasText: '1' }).waitFor();
    await shot(bob, 'overview-awaiting');
    await btid('nav-promotions').click();
    await btid(`approve-${promotionId}`).waitFor();
    await shot(bob, 'promotions-approver');
    await btid(`approve-${promotionId}`).click();
    // The dialog shows what changes in prod; secrets never as values.
    await btid('decision-changes').waitFor();
    const deployment = await btid('change-deployment').textContent();
    assert.match(deployment, /1\.3\.0\s*→\s*1\.4\.0/);
    const change = async (key) => {
      const row = btid(`change-acme.orders.${key}`);
      return { change: await row.getAttribute('data-change'), from: await btid(`change-from-acme.orders.${key}`).textContent(), to: await btid(`change-to-acme.orders.${key}`).textContent() };
    };
    assert.deepEqual(await change('dbUrl'), { change: 'changed', from: PROD_OLD_URL, to: STAGING_URL });
    assert.deepEqual(await change('dbPassword'), { change: 'changed', from: 'secret set', to: 'secret changed' });
    assert.deepEqual(await change('legacyMode'), { change: 'removed', from: 'true', to: '—' });
    assert.deepEqual(await change('poolSize'), { change: 'added', from: '—', to: '10' });
    assert.match(await btid('change-configuration').textContent(), /revision 1 → a new revision · 2 changed · 1 added · 1 removed/);
    const dialog = await bob.content();
    for (const secret of [DEV_SECRET, PROD_OLD_SECRET]) assert.ok(!dialog.includes(secret), `${secret} is in the dialog`);
    await bob.screenshot({ path: join(shots, 'pipeline-approve-dialog.png') });
    await btid('decision-comment').fill('looks good');
    await btid('modal-submit').click();
    await bob.locator('[data-testid=promotions] [data-testid=empty]').waitFor();
    // Decided: nothing waits for bob any more.
    await btid('nav-promotions-count').waitFor({ state: 'hidden' });
    await btid('promotions-status').selectOption('applied');
    await bob.locator(`[data-testid=promotion-status-${promotionId}]`, { hasText: 'applied' }).waitFor();
    await bob.locator(`[data-testid=promotion-approvals-${promotionId}]`, { hasText: 'bob' }).waitFor();
    await shot(bob, 'promotions-applied');

    // 8. The prod view shows the promoted version and configuration; the secret only as set.
    await page.goto(`${server.management}/projects/${PROJECT}/integrations/${INTEGRATION}`);
    await page.locator('[data-testid=deployment-version-prod]', { hasText: '1.4.0' }).waitFor();
    await page.locator('[data-testid="config-value-prod-acme.orders.dbUrl"]', { hasText: STAGING_URL }).waitFor();
    await page.locator('[data-testid="config-value-prod-acme.orders.dbPassword"]', { hasText: 'set' }).waitFor();
    await page.locator(`[data-testid=promotion-status-${promotionId}]`, { hasText: 'applied' }).waitFor();
    const prodRevision = Number((await tid('config-revision-prod').textContent()).replace(/\D+/g, ''));
    assert.ok(prodRevision >= 1, `prod revision ${prodRevision}`);
    assert.ok(!(await page.content()).includes(DEV_SECRET), 'the secret value is on the page');

    // 9. A bridge.py runtime in prod, with the secret bound to the integration there (CLI), is served the promoted values.
    startBridge(['--server', server.runtime, '--secret', prodSecret.secret, '--env', 'prod', '--project', PROJECT,
      '--integration', INTEGRATION, '--runtime', 'prod-1', '--interval', '2']);
    await page.locator('[data-testid=runtime-status-prod-1]', { hasText: 'RUNNING' }).waitFor({ timeout: 20000 });
    const served = await getRuntime(server.runtime, '/icp/config?runtime=prod-1', runtimeToken(prodSecret.secret));
    assert.equal(served.status, 200, served.text);
    assert.equal(Number(served.headers['x-icp-config-revision']), prodRevision);
    assert.match(served.text, /\[acme\.orders\]/);
    assert.ok(served.text.includes(`"${STAGING_URL}"`), `no override in:\n${served.text}`);
    assert.ok(served.text.includes(`"${DEV_SECRET}"`), 'the decrypted secret is not served');
    assert.match(served.text, /poolSize = 10/);
    assert.ok(!served.text.includes('legacyMode'), `the removed key is served:\n${served.text}`);
    assert.ok(!served.text.includes(PROD_OLD_SECRET), 'the old prod secret is served');
    // The runtime's fetched revision shows; it reports no version, so it is flagged until it restarts on 1.4.0.
    await page.locator('[data-testid=runtime-config-prod-1]', { hasText: `config r${prodRevision} fetched` }).waitFor({ timeout: 20000 });
    await tid('runtime-restart-prod-1').waitFor();
    await shot(page, 'integration-prod');
    await tid('runtime-link-prod-1').click();
    await tid('runtime-version-mismatch').waitFor();
    await shot(page, 'runtime');
    await page.goBack();
    await page.locator('[data-testid=runtime-status-prod-1]', { hasText: 'RUNNING' }).waitFor();

    // Replace the dev secret and remove a key: revision 2; the secret stays only "set".
    await tid('config-edit-dev').click();
    const replace = page.locator('[data-testid^=config-replace-]');
    const i = (await replace.getAttribute('data-testid')).replace('config-replace-', '');
    await replace.click();
    assert.equal(await tid(`config-value-${i}`).getAttribute('type'), 'password');
    await tid(`config-value-${i}`).fill('dev-db-s3cret-2');
    const keys = await page.locator('[data-testid^=config-key-]').evaluateAll((els) => els.map((e) => e.value));
    await tid(`config-remove-${keys.indexOf('poolSize')}`).click();
    await tid('modal-submit').click();
    await page.locator('[data-testid=config-revision-dev]', { hasText: 'revision 2' }).waitFor();
    assert.equal(await tid('config-value-dev-acme.orders.poolSize').count(), 0);
    await page.locator('[data-testid="config-value-dev-acme.orders.dbPassword"]', { hasText: 'set' }).waitFor();
    assert.ok(!(await page.content()).includes('dev-db-s3cret-2'), 'the new secret value is on the page');

    // The project lists the version in each environment.
    await page.goto(`${server.management}/projects/${PROJECT}`);
    for (const env of ['dev', 'staging', 'prod']) await page.locator(`[data-testid=version-${INTEGRATION}-${env}]`, { hasText: '1.4.0' }).waitFor();
    await shot(page, 'project');

    // The data plane of prod now has a runtime.
    await tid('nav-dataplanes').click();
    await page.locator('[data-testid=data-plane-health-default]', { hasText: 'healthy' }).waitFor();
    await shot(page, 'data-planes-health');
    await bob.context().close();

    t.diagnostic(`walked in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.deepEqual(problems, [], 'the browser reported errors');
  });
});
