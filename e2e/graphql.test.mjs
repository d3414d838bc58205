// End-to-end test of the console's GraphQL page (/graphql-explorer): an
// admin signs in, opens GraphQL from the sidebar, runs { systemInfo {
// version } } with Ctrl+Enter through POST /graphql (session cookie and
// X-CSRF-Token), sees a syntax error and a validation error with their
// line:column (the latter puts the caret there), has invalid variables
// refused before sending, finds the runtimes field's arguments in the
// schema documentation (introspection), its PaginationInput type, the
// filter, and the skeleton query it puts in the editor; the document
// survives a reload; light, dark and 390 px. Run from the repository root
// with `node --test e2e/` after `cargo build --release` (or with
// ICPD_BIN=target/debug/icpd). Screenshots go to target/screenshots/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { shots, withConsole, firstLogin } from './helpers.mjs';

// The page sends invalid documents on purpose: each answer is a 400, which
// Chromium reports as a console error ("Failed to load resource").
const expected400 = (p) => /console error: Failed to load resource: the server responded with a status of 400\b.*\/graphql\)?$/.test(p);

test('GraphQL page: run a query, errors with line:column, variables checked, schema documentation, 390 px and dark', { timeout: 120000 }, async (t) => {
  const started = Date.now();
  await withConsole('graphql', { width: 1440, height: 900 }, async ({ server, initialPassword, page, tid, problems }) => {
    await firstLogin(page, server.management, initialPassword, 'graphql e2e password 1');

    // 1. The sidebar entry opens the page (not /graphql: that is the API);
    // the schema is read by introspection as the page opens.
    const introspected = page.waitForRequest((r) => r.url().endsWith('/graphql') && r.method() === 'POST' && (r.postData() || '').includes('__schema'));
    await tid('nav-graphql').click();
    await page.waitForURL(/\/graphql-explorer$/);
    const intro = await introspected;
    assert.equal(intro.headers()['content-type'], 'application/json');
    assert.ok(intro.headers()['x-csrf-token'], 'the POST carries the X-CSRF-Token header');
    assert.equal(await tid('nav-graphql').getAttribute('class'), 'active');
    await tid('gql-field-Query.runtimes').waitFor();
    // The example document is there, with labels for both text areas.
    assert.match(await tid('gql-document').inputValue(), /systemInfo\s*\{\s*version/);
    assert.equal(await page.getByLabel('Document', { exact: true }).getAttribute('data-testid'), 'gql-document');
    assert.equal(await page.getByLabel('Variables', { exact: true }).getAttribute('data-testid'), 'gql-variables');
    assert.equal(await tid('gql-result-pane').getAttribute('aria-live'), 'polite');

    // 2. Run { systemInfo { version } } with Ctrl+Enter: HTTP 200, the time, the JSON.
    await tid('gql-document').fill('{ systemInfo { version } }');
    const answered = page.waitForResponse((r) => r.url().endsWith('/graphql') && r.request().postData()?.includes('systemInfo { version }'));
    await tid('gql-document').press('Control+Enter');
    const res = await answered;
    assert.equal(res.status(), 200);
    const body = await res.json();
    assert.equal(typeof body.data?.systemInfo?.version, 'string', JSON.stringify(body));
    await page.locator('[data-testid=gql-result]', { hasText: '"version"' }).waitFor();
    assert.ok((await tid('gql-result').textContent()).includes(`"version": ${JSON.stringify(body.data.systemInfo.version)}`));
    assert.equal(await tid('gql-http-status').textContent(), 'HTTP 200');
    assert.match(await tid('gql-time').textContent(), /^\d+ ms$|^\d+\.\d\d s$/);
    assert.equal(await tid('gql-errors').isHidden(), true);
    await page.screenshot({ path: join(shots, 'graphql.png'), fullPage: true });

    // 3. A syntax error (the document ends inside a selection set): HTTP 400
    // and the message with its line:column.
    await tid('gql-document').fill('{ systemInfo { version }');
    await tid('gql-run').click();
    await page.locator('[data-testid=gql-http-status]', { hasText: 'HTTP 400' }).waitFor();
    const syntax = tid('gql-error').first();
    await syntax.waitFor();
    assert.match(await syntax.textContent(), /\S.* at \d+:\d+/);
    assert.match(await tid('gql-error-location').first().textContent(), /^1:\d+$/);

    // A validation error: an unknown field on line 3, column 5; its location
    // puts the caret there.
    const invalid = '{\n  systemInfo {\n    versio\n  }\n}';
    await tid('gql-document').fill(invalid);
    await tid('gql-run').click();
    await page.locator('[data-testid=gql-error]', { hasText: 'versio' }).waitFor();
    assert.equal(await tid('gql-error-location').first().textContent(), '3:5');
    await tid('gql-error-location').first().click();
    assert.equal(await tid('gql-document').evaluate((el) => [el.selectionStart, document.activeElement === el]).then(JSON.stringify), JSON.stringify([invalid.indexOf('versio'), true]));
    await page.screenshot({ path: join(shots, 'graphql-error.png'), fullPage: true });

    // 4. Variables that are not a JSON object are refused before sending.
    await tid('gql-document').fill('query Env($id: String!) { environmentByHandler(environmentHandler: $id) { id } }');
    await tid('gql-variables').fill('{ "id": ');
    let sent = false;
    const watch = (r) => { if (r.url().endsWith('/graphql')) sent = true; };
    page.on('request', watch);
    await tid('gql-run').click();
    await page.locator('[data-testid=gql-variables-error]', { hasText: 'not valid JSON' }).waitFor();
    assert.equal(await tid('gql-variables').getAttribute('aria-invalid'), 'true');
    await tid('gql-variables').fill('["dev"]');
    await page.locator('[data-testid=gql-variables-error]', { hasText: 'must be a JSON object' }).waitFor();
    page.off('request', watch);
    assert.equal(sent, false, 'invalid variables were sent');
    await tid('gql-variables').fill('');
    assert.equal(await tid('gql-variables').getAttribute('aria-invalid'), null);

    // 5. The documentation: Query.runtimes with its arguments, in GraphQL notation.
    await tid('gql-field-Query.runtimes').click();
    await page.locator('[data-testid=gql-doc-title]', { hasText: 'Query.runtimes' }).waitFor();
    const args = tid('gql-doc-args');
    for (const arg of ['status: String', 'environmentId: String', 'projectId: String', 'componentId: String', 'pagination: PaginationInput']) {
      await args.locator('li', { hasText: arg }).first().waitFor();
    }
    assert.match(await tid('gql-docs-body').locator('.gql-returns').textContent(), /^Type RuntimesPage!$/);
    await page.screenshot({ path: join(shots, 'graphql-docs-runtimes.png'), fullPage: true });
    // The argument's type opens: PaginationInput's input fields.
    await args.getByTestId('gql-type-link-PaginationInput').click();
    await page.locator('[data-testid=gql-doc-title]', { hasText: 'PaginationInput' }).waitFor();
    await tid('gql-doc-input-fields').locator('li', { hasText: 'limit: Int' }).waitFor();
    await tid('gql-doc-back').click();
    await page.locator('[data-testid=gql-doc-title]', { hasText: 'Query.runtimes' }).waitFor();
    // A list type renders as [T!]!: RuntimesPage.items.
    await tid('gql-type-link-RuntimesPage').first().click();
    await tid('gql-field-item-RuntimesPage.items').waitFor();
    assert.match(await tid('gql-field-item-RuntimesPage.items').locator('.gql-sig').textContent(), /^items: \[Runtime!\]!$/);

    // The filter finds fields and types by name.
    await tid('gql-docs-filter').fill('systemin');
    await tid('gql-doc-search').waitFor();
    assert.match(await tid('gql-doc-search').textContent(), /Query\.systemInfo: SystemInfo!/);
    await tid('gql-type-link-SystemInfo').first().click();
    await tid('gql-field-item-SystemInfo.version').waitFor();
    assert.equal(await tid('gql-docs-filter').inputValue(), '');
    await tid('gql-docs-filter').fill('no such name anywhere');
    await tid('gql-docs-body').getByTestId('empty').waitFor();
    await tid('gql-docs-filter').fill('');

    // "Put in editor" writes a valid query for Query.runtimes: the server
    // accepts it (200, whatever the resolver answers without a project).
    await tid('gql-doc-home').click();
    await tid('gql-field-Query.runtimes').click();
    await tid('gql-doc-insert').click();
    const skeleton = await tid('gql-document').inputValue();
    assert.match(skeleton, /^query Runtimes\(\$status: String, .*\$pagination: PaginationInput\) \{\n {2}runtimes\(status: \$status, .*pagination: \$pagination\) \{\n/);
    assert.match(skeleton, /\n {4}pageInfo \{\n {6}total\n/);
    const skeletonRun = page.waitForResponse((r) => r.url().endsWith('/graphql') && r.request().postData()?.includes('query Runtimes('));
    await tid('gql-run').click();
    assert.equal((await skeletonRun).status(), 200, 'the skeleton query is a valid document');
    await page.locator('[data-testid=gql-http-status]', { hasText: 'HTTP 200' }).waitFor();

    // 6. The last document survives a reload.
    await tid('gql-document').fill('{ systemInfo { version } }');
    await page.reload();
    await tid('gql-field-Query.runtimes').waitFor();
    assert.equal(await tid('gql-document').inputValue(), '{ systemInfo { version } }');

    // 7. Dark, then 390 px: nothing scrolls the page sideways.
    await tid('gql-run').click();
    await page.locator('[data-testid=gql-result]', { hasText: '"version"' }).waitFor();
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: join(shots, 'graphql-dark.png'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await tid('gql-field-Query.runtimes').waitFor();
    await tid('gql-run').click();
    await page.locator('[data-testid=gql-result]', { hasText: '"version"' }).waitFor();
    const wide = await page.evaluate(() => [...document.querySelectorAll('#content *')]
      .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
      .slice(0, 3).map((el) => `${el.tagName.toLowerCase()}.${el.className}`));
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0 && !wide.length, `the GraphQL page is ${overflow} px too wide at 390: ${wide.join(', ')}`);
    await page.screenshot({ path: join(shots, 'graphql-390.png'), fullPage: true });

    // The two invalid documents were the only 400s; nothing else went wrong.
    assert.equal(problems.filter(expected400).length, 2, JSON.stringify(problems));
    assert.deepEqual(problems.filter((p) => !expected400(p)), [], 'the browser reported errors');
    t.diagnostic(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});
