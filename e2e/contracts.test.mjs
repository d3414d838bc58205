// End-to-end test of service contracts in the console (issue 18): a
// Ballerina runtime reports two OpenAPI definitions and a tryItHost that
// points at a small HTTP service started by the test; the runtime page's
// Contracts tab renders both (paths, parameters, response schemas with a
// $ref cycle) and "Try it" sends GET /orders/{id} through icpd with the
// operator's Authorization, which the service must receive and icpd must
// neither log nor carry in a JSON body. A second runtime in prod (a
// critical environment) asks for confirmation: Cancel sends nothing, Send
// goes with "confirm": true. The second test: a runtime without a
// tryItHost cannot be tried (the server's reason shows), a Viewer reads the
// contracts but may not try them, and an MI runtime (shared/conformance/
// mi.py) offers one form filled from its APIs' contexts. The Ballerina
// runtimes speak the protocol from the test (full heartbeats, then delta
// heartbeats every 2 s to stay RUNNING). Run
// from the repository root with `node --test e2e/` after `cargo build
// --release`. Screenshots go to target/screenshots/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { shots, cli, withConsole, firstLogin, signIn, runtimeToken, postRuntime } from './helpers.mjs';

const PROJECT = 'orders';
const INTEGRATION = 'order-api';
const CREDENTIAL = 'Bearer e2e-runtime-credential-5b1d9c';
const SLOW = { timeout: 30000 };

/** The orders service's contract as Ballerina's OpenAPI tool writes it: relative paths under a servers URL with the base path. */
const ORDERS = {
  openapi: '3.0.1',
  info: { title: 'Orders', version: '1.2.0', description: 'Orders of the <b>shop</b>.' },
  servers: [{ url: '{server}:{port}/orders', variables: { server: { default: 'http://localhost' }, port: { default: '9090' } } }],
  paths: {
    '/{id}': {
      get: {
        summary: 'One order',
        operationId: 'getOrder',
        parameters: [{ name: 'id', in: 'path', required: true, description: 'The order number', schema: { type: 'integer', format: 'int64' } }],
        responses: {
          200: { description: 'The order', content: { 'application/json': { schema: { $ref: '#/components/schemas/Order' } } } },
          404: { description: 'No such order' },
        },
      },
    },
    '/': {
      post: {
        summary: 'Place an order',
        requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/NewOrder' } } } },
        responses: { 201: { description: 'Placed', content: { 'application/json': { schema: { $ref: '#/components/schemas/Order' } } } } },
      },
    },
  },
  components: {
    schemas: {
      Order: {
        type: 'object',
        required: ['id', 'status'],
        properties: {
          id: { type: 'integer', format: 'int64' },
          status: { type: 'string', enum: ['PLACED', 'SHIPPED'] },
          lines: { type: 'array', items: { $ref: '#/components/schemas/Line' } },
          customer: { $ref: '#/components/schemas/Customer' },
        },
      },
      NewOrder: { type: 'object', required: ['lines'], properties: { lines: { type: 'array', items: { $ref: '#/components/schemas/Line' } } } },
      Line: { type: 'object', required: ['sku'], properties: { sku: { type: 'string' }, quantity: { type: 'integer', minimum: 1 } } },
      // A cycle: a customer referred by a customer.
      Customer: { type: 'object', properties: { name: { type: 'string' }, referredBy: { $ref: '#/components/schemas/Customer' } } },
    },
  },
};

/** The inventory service's contract, sent as JSON text (the bridge may send either). */
const INVENTORY = JSON.stringify({
  openapi: '3.0.1',
  info: { title: 'Inventory', version: '1.0.0' },
  servers: [{ url: '{server}:{port}/inventory' }],
  paths: {
    '/stock/{sku}': {
      get: {
        summary: 'Stock of a product',
        parameters: [
          { name: 'sku', in: 'path', required: true, schema: { type: 'string' } },
          { name: 'warehouse', in: 'query', schema: { type: 'string', enum: ['north', 'south'] } },
        ],
        responses: { 200: { description: 'Stock', content: { 'application/json': { schema: { type: 'object', properties: { available: { type: 'integer' } } } } } } },
      },
    },
  },
});

/** A service on a free port that answers GET /orders/{id} with the order and what it received; resolves { url, received, close }. */
function startOrdersService() {
  const received = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const seen = { method: req.method, path: url.pathname, query: url.search.slice(1), authorization: req.headers.authorization ?? null };
    received.push(seen);
    const m = /^\/orders\/([^/]+)$/.exec(url.pathname);
    const [status, body] = req.method === 'GET' && m
      ? [200, { id: Number(m[1]), status: 'PLACED', received: seen }]
      : [404, { message: 'no such resource', received: seen }];
    res.writeHead(status, { 'Content-Type': 'application/json', 'X-Echo': 'orders' });
    res.end(JSON.stringify(body));
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({
    url: `http://127.0.0.1:${server.address().port}`,
    received,
    close: () => new Promise((done) => { server.closeAllConnections(); server.close(done); }),
  })));
}

/**
 * A Ballerina runtime of the test: a first full heartbeat (as the bridge
 * sends it at start), a second with what icpd listed in
 * supportedHeartbeatFields (the definitions and tryItHost), then delta
 * heartbeats every 2 s. Resolves { runtimeId, stop }.
 */
async function startRuntime(server, { secret, env, name, tryItHost = undefined }) {
  const runtimeId = randomUUID();
  const token = runtimeToken(secret);
  const full = {
    runtimeId, runtime: name, runtimeType: 'BI', heartbeatVersion: 'v1.0', status: 'RUNNING',
    environment: env, project: PROJECT, component: INTEGRATION, version: '1.2.0',
    nodeInfo: { platformName: 'ballerina', platformVersion: '2201.13.2', osName: 'Linux' },
    artifacts: {
      listeners: [{ name: 'listener_1', package: 'ballerina/http:2', protocol: 'HTTP', port: 9090, host: '0.0.0.0', state: 'enabled' }],
      services: [
        { name: 'service_1', basePath: '/orders', package: 'acme/orders:1', listeners: [{ name: 'listener_1' }], resources: [{ methods: ['GET'], url: '/{id}' }, { methods: ['POST'], url: '/' }], state: 'enabled' },
        { name: 'service_2', basePath: '/inventory', package: 'acme/orders:1', listeners: [{ name: 'listener_1' }], resources: [{ methods: ['GET'], url: '/stock/{sku}' }], state: 'enabled' },
      ],
    },
    logLevels: { 'acme/orders': 'INFO' },
    runtimeHash: 'h1',
    timestamp: [Math.floor(Date.now() / 1000), 0],
  };
  const first = await postRuntime(server.runtime, '/icp/heartbeat', full, token);
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const fields = first.body.supportedHeartbeatFields || [];
  assert.ok(fields.includes('openApiDefinitions') && fields.includes('tryItHost'), `icpd does not list the fields: ${JSON.stringify(fields)}`);
  const second = await postRuntime(server.runtime, '/icp/heartbeat', {
    ...full, runtimeHash: 'h2', tryItHost,
    openApiDefinitions: { 'orders_openapi.json': ORDERS, 'inventory_openapi.json': INVENTORY },
  }, token);
  assert.equal(second.status, 200, JSON.stringify(second.body));
  const timer = setInterval(() => {
    postRuntime(server.runtime, '/icp/deltaHeartbeat', { runtimeId, heartbeatVersion: 'v1.0', runtimeHash: 'h2', timestamp: [Math.floor(Date.now() / 1000), 0] }, token).catch(() => {});
  }, 2000);
  return { runtimeId, stop: () => clearInterval(timer) };
}

test('contracts: two OpenAPI definitions rendered on the runtime page; Try it reaches the runtime with the operator\'s credentials; a critical environment asks first', { timeout: 180000 }, async (t) => {
  const started = Date.now();
  const service = await startOrdersService();
  const runtimes = [];
  t.after(async () => { runtimes.forEach((r) => r.stop()); await service.close(); });
  await withConsole('contracts', { width: 1440, height: 900 }, async ({ dataDir, server, initialPassword, page, tid, problems }) => {
    const secretFor = (env) => JSON.parse(cli(dataDir, ['secret', 'create', '--env', env, '--project', PROJECT, '--integration', INTEGRATION, '--json'])).secret;
    const dev = await startRuntime(server, { secret: secretFor('dev'), env: 'dev', name: 'orders-1', tryItHost: service.url });
    runtimes.push(dev);
    const prod = await startRuntime(server, { secret: secretFor('prod'), env: 'prod', name: 'orders-prod-1', tryItHost: service.url });
    runtimes.push(prod);

    // What the console sends to try-it: the credential in its header, never in a body.
    const tryItCalls = [];
    page.on('request', (r) => {
      if (r.url().includes('/try-it')) tryItCalls.push({ body: r.postData() || '', header: r.headers()['x-try-it-authorization'] ?? null });
    });

    await firstLogin(page, server.management, initialPassword, 'contracts e2e password 1');
    await tid('nav-runtimes').click();
    await page.getByRole('link', { name: 'orders-1', exact: true }).click();
    await page.locator('[data-testid=runtime-detail-status]', { hasText: 'RUNNING' }).waitFor(SLOW);
    await tid('runtime-tab-contracts').click();
    await page.waitForURL(/\?tab=contracts$/);
    assert.equal(await tid('runtime-tab-contracts').getAttribute('aria-selected'), 'true');

    // Both definitions, each with its service and base path.
    const orders = tid('contract-orders_openapi.json');
    const inventory = tid('contract-inventory_openapi.json');
    await orders.waitFor(SLOW);
    await inventory.waitFor();
    assert.equal(await page.locator('section.contract').count(), 2);
    assert.equal(await tid('contract-orders_openapi.json-service').textContent(), 'service service_1');
    assert.equal(await tid('contract-orders_openapi.json-base-path').textContent(), 'base path /orders');
    assert.equal(await tid('contract-inventory_openapi.json-service').textContent(), 'service service_2');
    // Text from the definition is text: no markup was made from it.
    assert.match(await orders.textContent(), /Orders of the <b>shop<\/b>\./);
    assert.equal(await orders.locator('b').count(), 0);
    // Paths, with the base path before them.
    // (icpd keeps the document as JSON with its keys in order, so the paths may come sorted.)
    const pathHeads = await orders.locator('.oa-path-head').allTextContents();
    assert.deepEqual(pathHeads.sort(), ['/orders/', '/orders/{id}']);
    assert.deepEqual(await inventory.locator('.oa-path-head').allTextContents(), ['/inventory/stock/{sku}']);

    // GET /{id}: its parameter, and the response schema with $refs resolved.
    const getOrder = tid('contract-orders_openapi.json-op-get-/{id}');
    await getOrder.locator('summary').click();
    const param = getOrder.locator('tr[data-param=id]');
    await param.waitFor();
    assert.match(await param.textContent(), /^id\*\s*\(required\)pathinteger \(int64\)The order number/);
    const schema = tid('contract-orders_openapi.json-op-get-/{id}-response-200-schema');
    const schemaText = await schema.textContent();
    for (const text of ['Order', 'status', 'one of: "PLACED", "SHIPPED"', 'lines', 'array of Line', 'sku', 'min 1', 'customer', 'referredBy', 'Customer again (shown above)']) {
      assert.ok(schemaText.includes(text), `"${text}" not in the response schema: ${schemaText}`);
    }
    assert.match(await schema.locator('.oa-prop', { hasText: /^status/ }).first().locator('.oa-line').first().textContent(), /^status\*/, 'status is marked required');
    assert.match(await tid('contract-orders_openapi.json-op-get-/{id}-response-404').textContent(), /404No such order/);
    // The inventory's query parameter with its enum.
    const stock = tid('contract-inventory_openapi.json-op-get-/stock/{sku}');
    await stock.locator('summary').click();
    assert.match(await stock.locator('tr[data-param=warehouse]').textContent(), /warehousequerystring.*one of: "north", "south"/);
    // POST /: the request body from NewOrder, and Try it prefilled with an example body.
    const postOrder = tid('contract-orders_openapi.json-op-post-/');
    await postOrder.locator('summary').click();
    assert.match(await tid('contract-orders_openapi.json-op-post-/-request').textContent(), /NewOrder.*lines\*.*array of Line/);

    // Not critical: no confirmation; the answer of the runtime, through icpd.
    assert.equal(await tid('tryit-critical').count(), 0);
    await getOrder.getByTestId('tryit-open-get-/{id}').click();
    const form = getOrder.getByTestId('tryit-get-/{id}');
    await form.getByTestId('tryit-get-/{id}-path-id').fill('42');
    await form.getByTestId('tryit-get-/{id}-auth').fill(CREDENTIAL);
    assert.equal(await form.getByTestId('tryit-get-/{id}-url').textContent(), `GET ${service.url}/orders/42`);
    await form.getByTestId('tryit-get-/{id}-send').click();
    const status = form.getByTestId('tryit-get-/{id}-status');
    await status.waitFor(SLOW);
    assert.equal(await status.textContent(), '200');
    assert.match(await form.getByTestId('tryit-get-/{id}-duration').textContent(), /^\d+ ms$/);
    assert.equal(await form.getByTestId('tryit-get-/{id}-answer-url').textContent(), `${service.url}/orders/42`);
    const answer = form.getByTestId('tryit-get-/{id}-answer');
    assert.equal(await answer.getAttribute('data-json'), 'true');
    const shown = JSON.parse(await answer.textContent());
    assert.deepEqual(shown, { id: 42, status: 'PLACED', received: { method: 'GET', path: '/orders/42', query: '', authorization: CREDENTIAL } });
    assert.match(await answer.textContent(), /\n {2}"id": 42,\n/, 'the JSON body is pretty-printed');
    await form.locator('.tryit-headers summary').click();
    assert.match(await form.getByTestId('tryit-get-/{id}-headers-answer').textContent(), /x-echo\s*orders/i);
    // The service received exactly that, with the credential as Authorization.
    assert.deepEqual(service.received, [{ method: 'GET', path: '/orders/42', query: '', authorization: CREDENTIAL }]);
    assert.equal(tryItCalls.length, 1);
    assert.equal(tryItCalls[0].header, CREDENTIAL);
    assert.ok(!tryItCalls[0].body.includes('e2e-runtime-credential'), `the credential is in the JSON body: ${tryItCalls[0].body}`);
    assert.deepEqual(JSON.parse(tryItCalls[0].body), { method: 'GET', path: '/orders/42', headers: {}, target: service.url });
    await page.screenshot({ path: join(shots, 'contracts.png'), fullPage: true });

    // prod is critical: the confirmation; Cancel sends nothing, Send goes with confirm.
    await page.goto(`${server.management}/runtimes/${prod.runtimeId}?tab=contracts`);
    await tid('tryit-critical').waitFor(SLOW);
    const prodGet = tid('contract-orders_openapi.json-op-get-/{id}');
    await prodGet.locator('summary').click();
    await prodGet.getByTestId('tryit-open-get-/{id}').click();
    const prodForm = prodGet.getByTestId('tryit-get-/{id}');
    await prodForm.getByTestId('tryit-get-/{id}-path-id').fill('7');
    assert.match(await prodForm.getByTestId('tryit-get-/{id}-why').textContent(), /confirm/);
    await prodForm.getByTestId('tryit-get-/{id}-send').click();
    const dialog = tid('confirm');
    await dialog.waitFor();
    assert.match(await dialog.textContent(), new RegExp(`GET ${service.url}/orders/7 goes to orders-prod-1 in prod, a critical environment`));
    await page.screenshot({ path: join(shots, 'contracts-critical-confirm.png') });
    await tid('modal-close').click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal(tryItCalls.length, 1, 'a cancelled confirmation sent a request');
    await prodForm.getByTestId('tryit-get-/{id}-send').click();
    await tid('modal-submit').click();
    await prodForm.getByTestId('tryit-get-/{id}-status').waitFor(SLOW);
    assert.equal(await prodForm.getByTestId('tryit-get-/{id}-status').textContent(), '200');
    assert.equal(tryItCalls.length, 2);
    assert.equal(JSON.parse(tryItCalls[1].body).confirm, true);
    assert.equal(tryItCalls[1].header, null, 'no credential typed, none sent');
    assert.deepEqual(service.received.at(-1), { method: 'GET', path: '/orders/7', query: '', authorization: null });

    // A phone's 390 px: the tab, the open operation and its answer fit without scrolling sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    await prodForm.getByTestId('tryit-get-/{id}-answer').scrollIntoViewIfNeeded();
    const wider = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(wider <= 0, `the contracts tab is ${wider} px wider than a 390 px screen`);
    await page.screenshot({ path: join(shots, 'contracts-390.png'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.screenshot({ path: join(shots, 'contracts-critical-dark.png'), fullPage: true });

    // icpd never wrote the credential to its log.
    assert.ok(!server.log().includes('e2e-runtime-credential'), 'the credential is in icpd\'s log');
    assert.deepEqual(problems, [], 'the browser reported errors');
    t.diagnostic(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});

test('contracts: no tryItHost means no Try it, with the reason; a Viewer reads but may not try; an MI runtime\'s APIs fill the form', { timeout: 180000 }, async (t) => {
  const started = Date.now();
  const runtimes = [];
  t.after(() => runtimes.forEach((r) => r.stop()));
  await withConsole('contracts-limits', { width: 1280, height: 900 }, async ({ dataDir, server, initialPassword, page, tid, problems, startMi, openPage }) => {
    const secret = JSON.parse(cli(dataDir, ['secret', 'create', '--env', 'dev', '--project', PROJECT, '--integration', INTEGRATION, '--json'])).secret;
    const hostless = await startRuntime(server, { secret, env: 'dev', name: 'orders-2' });
    runtimes.push(hostless);
    const miSecret = JSON.parse(cli(dataDir, ['secret', 'create', '--env', 'dev', '--json'])).secret;
    startMi(['--server', server.runtime, '--secret', miSecret, '--env', 'dev', '--runtime', 'mi-node-1', '--interval', '2']);

    await firstLogin(page, server.management, initialPassword, 'contracts e2e password 2');
    // No tryItHost: the definitions, and Try it disabled with the server's reason.
    await page.goto(`${server.management}/runtimes/${hostless.runtimeId}?tab=contracts`);
    await tid('contract-orders_openapi.json').waitFor(SLOW);
    assert.equal(await tid('tryit-unavailable').textContent(), 'Try it is unavailable: the runtime reported no tryItHost');
    const op = tid('contract-orders_openapi.json-op-get-/{id}');
    await op.locator('summary').click();
    const open = op.getByTestId('tryit-open-get-/{id}');
    assert.equal(await open.isDisabled(), true);
    assert.match(await open.getAttribute('title'), /no tryItHost/);

    // A Viewer: reads the contracts, may not try them.
    await page.evaluate(async () => {
      const { post } = await import('/assets/js/api.js');
      await post('/users', { username: 'vera', password: 'vera password 12345' });
      await post('/role-assignments', { role: 'Viewer', user: 'vera' });
    });
    const vera = await openPage({ width: 1280, height: 900, label: 'vera' });
    await signIn(vera, server.management, 'vera', 'vera password 12345');
    await vera.goto(`${server.management}/runtimes/${hostless.runtimeId}?tab=contracts`);
    await vera.getByTestId('contract-inventory_openapi.json').waitFor(SLOW);
    await vera.getByTestId('tryit-not-allowed').waitFor();
    const veraOp = vera.getByTestId('contract-inventory_openapi.json-op-get-/stock/{sku}');
    await veraOp.locator('summary').click();
    assert.equal(await veraOp.getByTestId('tryit-open-get-/stock/{sku}').isDisabled(), true);
    await vera.close();

    // MI: no definitions; its APIs, and the generic form filled from a context and a resource.
    await tid('nav-runtimes').click();
    await page.getByRole('link', { name: 'mi-node-1', exact: true }).click();
    await page.locator('[data-testid=runtime-detail-status]', { hasText: 'RUNNING' }).waitFor(SLOW);
    await tid('runtime-tab-contracts').click();
    await tid('mi-try-apis').waitFor(SLOW);
    await tid('mi-try-api-HealthcareAPI').click();
    assert.equal(await tid('tryit-mi-path').inputValue(), '/healthcare');
    await tid('mi-try-apis').getByRole('button', { name: 'GET /doctors/{specialty}' }).click();
    assert.equal(await tid('tryit-mi-method').inputValue(), 'GET');
    assert.equal(await tid('tryit-mi-path').inputValue(), '/healthcare/doctors/{specialty}');
    // Its targets: the scheme, host and port of the API URLs it reported.
    assert.deepEqual(await tid('tryit-mi-target').locator('option').allTextContents(), ['http://127.0.0.1:8290', 'https://127.0.0.1:8253']);
    // A URL-versioned API answers under its context and version, as MI reported its URL.
    assert.equal(await tid('mi-try-api-OrderAPI').textContent(), '/orders/2.0.0');
    await tid('tryit-mi-path').fill('/healthcare/doctors/surgery?day=mon day');
    assert.equal(await tid('tryit-mi-url').textContent(), 'GET http://127.0.0.1:8290/healthcare/doctors/surgery?day=mon%20day');
    await page.screenshot({ path: join(shots, 'contracts-mi.png'), fullPage: true });

    assert.deepEqual(problems, [], 'the browser reported errors');
    t.diagnostic(`took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});
