import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { ManualClock } from '../core/clock.ts';
import { DashboardPoller, parseServeApplications, serveControllerMissing } from './dashboard.ts';
import type { DashboardState } from './dashboard.ts';
import type { ServeApp } from './types.ts';

// Dashboard answers kept in the repository (see fixtures/README.md for where they come from).
const EXAMPLES = new URL('./fixtures/', import.meta.url);
const example = JSON.parse(readFileSync(new URL('serve-get-applications.response.json', EXAMPLES), 'utf8')) as unknown;
const empty = JSON.parse(readFileSync(new URL('serve-get-applications.empty.response.json', EXAMPLES), 'utf8')) as unknown;

function byName(apps: ServeApp[] | Error): Map<string, ServeApp> {
  assert.ok(!(apps instanceof Error), String(apps));
  return new Map(apps.map((a) => [a.name, a]));
}

describe('parseServeApplications', () => {
  it('reads the example response', () => {
    const apps = byName(parseServeApplications(example, new Map()));
    assert.deepEqual(apps.get('fruit_app'), {
      name: 'fruit_app',
      routePrefix: '/fruit',
      ingressDeployment: 'FruitMarket',
      maxOngoingRequests: 10,
      maxQueuedRequests: -1,
      replicas: 1,
      status: 'RUNNING',
    });
    assert.deepEqual(apps.get('math_app'), {
      name: 'math_app',
      routePrefix: '/calc',
      ingressDeployment: 'Router',
      maxOngoingRequests: 5,
      maxQueuedRequests: -1,
      replicas: 1,
      status: 'DEPLOYING',
    });
  });

  it('uses the override, then counts only RUNNING replicas of it', () => {
    const apps = byName(parseServeApplications(example, new Map([['fruit_app', 'MangoStand'], ['math_app', 'Adder']])));
    assert.equal(apps.get('fruit_app')?.ingressDeployment, 'MangoStand');
    assert.equal(apps.get('fruit_app')?.replicas, 2);
    assert.equal(apps.get('math_app')?.ingressDeployment, 'Adder');
    assert.equal(apps.get('math_app')?.replicas, 0, 'the Adder replica is STARTING');
  });

  it('prefers deployment_topology.ingress_deployment, reads legacy names, keeps null prefixes', () => {
    const json = {
      applications: {
        a: {
          name: 'a',
          route_prefix: null,
          status: 'SOMETHING_NEW',
          deployment_topology: { ingress_deployment: 'Front' },
          deployments: {
            Front: {
              deployment_config: { max_concurrent_queries: 100, max_queued_requests: 7 },
              replicas: [{ state: 'RUNNING' }, { state: 'RUNNING' }, { state: 'STOPPING' }],
              brand_new_field: 1,
            },
            Back: { deployment_config: { max_ongoing_requests: 3 }, replicas: [] },
          },
        },
      },
    };
    const apps = byName(parseServeApplications(json, new Map([['a', 'Back']])));
    assert.deepEqual(apps.get('a'), {
      name: 'a',
      routePrefix: null,
      ingressDeployment: 'Front',
      maxOngoingRequests: 100,
      maxQueuedRequests: 7,
      replicas: 2,
      status: 'UNKNOWN',
    });
  });

  it('orders by deployed_app_config.deployments when it lists every deployment', () => {
    const json = {
      applications: {
        a: {
          status: 'RUNNING',
          route_prefix: '/',
          deployed_app_config: { deployments: [{ name: 'Y' }, { name: 'X' }] },
          deployments: { X: { replicas: [] }, Y: { replicas: [{ state: 'RUNNING' }] } },
        },
      },
    };
    assert.equal(byName(parseServeApplications(json, new Map())).get('a')?.ingressDeployment, 'X');
  });

  it('returns [] for the empty response and Error for garbage', () => {
    assert.deepEqual(parseServeApplications(empty, new Map()), []);
    assert.ok(parseServeApplications('nope', new Map()) instanceof Error);
    assert.ok(parseServeApplications({ applications: [] }, new Map()) instanceof Error);
    // Not a Serve document at all is an error, never "no apps".
    for (const doc of [{}, { error: 'login required' }, { applications: null }, [], null]) {
      const r = parseServeApplications(doc, new Map());
      assert.ok(r instanceof Error, JSON.stringify(doc));
      assert.match(r.message, /^not a Serve applications document/);
    }
    assert.match(String(parseServeApplications({ error: 'x' }, new Map())), /no "applications" object \(keys: "error"\)/);
    assert.equal(serveControllerMissing(empty), true);
    assert.equal(serveControllerMissing(example), false);
  });
});

describe('DashboardPoller', () => {
  let body = JSON.stringify(example);
  let status = 200;
  let server: Server | null = null;
  let port = 0;
  const paths: string[] = [];

  async function startServer(): Promise<void> {
    server = createServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body);
    });
    await new Promise<void>((resolve) => server?.listen(port, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  }
  async function stopServer(): Promise<void> {
    const s = server;
    server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
  after(stopServer);

  it('keeps the last known apps while the dashboard is down and recovers', async () => {
    await startServer();
    const clock = new ManualClock(1_000);
    const updates: DashboardState[] = [];
    const poller = new DashboardPoller({
      url: `http://127.0.0.1:${port}`,
      intervalMs: 2_000,
      timeoutMs: 1_000,
      clock,
      overrides: new Map(),
      onUpdate: (s) => updates.push(s),
    });
    assert.deepEqual(poller.current(), { reachable: false, apps: null, lastSuccessMs: null, lastError: null });

    const s1 = await poller.pollOnce();
    assert.equal(paths.at(-1), '/api/serve/applications/');
    assert.equal(s1.reachable, true);
    assert.equal(s1.lastSuccessMs, 1_000);
    assert.equal(s1.apps?.length, 2);
    assert.equal(s1.apps?.find((a) => a.name === 'fruit_app')?.status, 'RUNNING');

    await stopServer();
    clock.advance(2_000);
    const s2 = await poller.pollOnce();
    assert.equal(s2.reachable, false);
    assert.ok(s2.lastError, 'an error is reported');
    assert.equal(s2.lastSuccessMs, 1_000);
    assert.equal(s2.apps?.length, 2, 'apps are never dropped');
    const fruit = s2.apps?.find((a) => a.name === 'fruit_app');
    assert.equal(fruit?.status, 'UNKNOWN');
    assert.equal(fruit?.replicas, 1, 'capacities keep their last known values');
    assert.equal(fruit?.maxOngoingRequests, 10);

    // The controller restarting (empty controller_info) is not "all apps deleted".
    await startServer();
    body = JSON.stringify(empty);
    const s3 = await poller.pollOnce();
    assert.equal(s3.reachable, false);
    assert.match(s3.lastError ?? '', /controller/);
    assert.equal(s3.apps?.length, 2);

    // A 503 from the dashboard is a failure too.
    status = 503;
    body = 'Failed to get a response from the controller.';
    const s4 = await poller.pollOnce();
    assert.equal(s4.reachable, false);
    assert.match(s4.lastError ?? '', /HTTP 503/);
    assert.equal(s4.apps?.length, 2);

    status = 200;
    const changed = structuredClone(example) as { applications: Record<string, unknown> };
    delete changed.applications['math_app'];
    body = JSON.stringify(changed);
    clock.advance(2_000);
    const s5 = await poller.pollOnce();
    assert.equal(s5.reachable, true);
    assert.equal(s5.lastError, null);
    assert.equal(s5.lastSuccessMs, 5_000);
    assert.deepEqual(s5.apps?.map((a) => a.name), ['fruit_app'], 'a live answer is authoritative');
    assert.deepEqual(updates.map((u) => u.reachable), [true, false, false, false, true]);
    assert.equal(poller.current(), s5);
  });

  it('a 200 that is not a Serve applications document is unreachable: last known apps kept, UNKNOWN, a reason', async () => {
    const answers: Array<{ type: string; body: string; want: RegExp }> = [
      { type: 'application/json', body: '{}', want: /^HTTP 200 but not a Serve applications document: no "applications" object \(keys: none\)/ },
      { type: 'application/json', body: '{"status": "ok", "data": {}}', want: /no "applications" object \(keys: "status", "data"\)/ },
      { type: 'text/html; charset=utf-8', body: '<!doctype html><title>Sign in</title><form action="/oauth2/start">', want: /^HTTP 200 but the body is not JSON \(content-type text\/html; charset=utf-8\): not the Serve dashboard/ },
      { type: 'application/json', body: '[]', want: /not a Serve applications document: the body is not a JSON object/ },
    ];
    let answer = { type: 'application/json', body: JSON.stringify(example) };
    const fakeFetch: typeof fetch = async () => new Response(answer.body, { status: 200, headers: { 'content-type': answer.type } });
    const clock = new ManualClock(1_000);
    const updates: DashboardState[] = [];
    const poller = new DashboardPoller({
      url: 'http://head:8265',
      intervalMs: 2_000,
      timeoutMs: 1_000,
      clock,
      fetch: fakeFetch,
      overrides: new Map(),
      onUpdate: (s) => updates.push(s),
    });
    const good = await poller.pollOnce();
    assert.equal(good.reachable, true);
    assert.equal(good.apps?.length, 2);
    for (const a of answers) {
      answer = a;
      clock.advance(2_000);
      const s = await poller.pollOnce();
      assert.equal(s.reachable, false, a.body);
      assert.match(s.lastError ?? '', a.want);
      assert.deepEqual(s.apps?.map((x) => [x.name, x.status]), [['fruit_app', 'UNKNOWN'], ['math_app', 'UNKNOWN']], 'last known apps kept, not "no apps"');
      assert.equal(s.apps?.find((x) => x.name === 'fruit_app')?.replicas, 1);
      assert.equal(s.lastSuccessMs, 1_000);
    }
    // Never answered properly: apps stay unknown (null), not [].
    const fresh = new DashboardPoller({ url: 'http://head:8265', intervalMs: 2_000, timeoutMs: 1_000, clock, fetch: fakeFetch, overrides: new Map(), onUpdate: () => {} });
    answer = { type: 'application/json', body: '{}' };
    const first = await fresh.pollOnce();
    assert.equal(first.reachable, false);
    assert.equal(first.apps, null);
    // A real Serve answer with no apps (controller running) is authoritative.
    answer = { type: 'application/json', body: JSON.stringify({ ...(example as object), applications: {} }) };
    const none = await poller.pollOnce();
    assert.equal(none.reachable, true);
    assert.deepEqual(none.apps, []);
  });

  it('start() polls now and then every interval on the clock; stop() ends it', async () => {
    status = 200;
    body = JSON.stringify(example);
    if (!server) await startServer();
    const clock = new ManualClock();
    let resolveNext: (() => void) | null = null;
    let count = 0;
    const poller = new DashboardPoller({
      url: `http://127.0.0.1:${port}/api/serve/applications/`,
      intervalMs: 2_000,
      timeoutMs: 1_000,
      clock,
      overrides: new Map([['fruit_app', 'MangoStand']]),
      onUpdate: () => {
        count++;
        resolveNext?.();
      },
    });
    const next = () => new Promise<void>((r) => (resolveNext = r));
    let p = next();
    poller.start();
    await p;
    assert.equal(count, 1);
    assert.equal(poller.current().apps?.find((a) => a.name === 'fruit_app')?.ingressDeployment, 'MangoStand');
    await new Promise((r) => setImmediate(r)); // let the loop schedule its timer
    assert.equal(clock.pendingTimers(), 1);
    p = next();
    clock.advance(2_000);
    await p;
    assert.equal(count, 2);
    await new Promise((r) => setImmediate(r));
    poller.stop();
    assert.equal(clock.pendingTimers(), 0);
    clock.advance(10_000);
    assert.equal(count, 2);
  });

  it('pollSoon() polls at once instead of at the end of the interval, and not while a poll is in flight', async () => {
    status = 200;
    body = JSON.stringify(example);
    if (!server) await startServer();
    const clock = new ManualClock();
    let resolveNext: (() => void) | null = null;
    let count = 0;
    const poller = new DashboardPoller({
      url: `http://127.0.0.1:${port}/api/serve/applications/`,
      intervalMs: 60_000,
      timeoutMs: 1_000,
      clock,
      overrides: new Map(),
      onUpdate: () => {
        count++;
        resolveNext?.();
      },
    });
    const next = () => new Promise<void>((r) => (resolveNext = r));
    poller.pollSoon(); // not started: nothing
    assert.equal(count, 0);
    let p = next();
    poller.start();
    poller.pollSoon(); // the first poll is in flight: no second one
    await p;
    await new Promise((r) => setImmediate(r));
    assert.equal(count, 1);
    assert.equal(clock.pendingTimers(), 1);
    p = next();
    poller.pollSoon();
    await p;
    assert.equal(count, 2, 'polled without the clock moving');
    await new Promise((r) => setImmediate(r));
    assert.equal(clock.pendingTimers(), 1, 'one timer: the interval restarted');
    poller.stop();
    assert.equal(clock.pendingTimers(), 0);
  });

  it('times out a hung dashboard using the clock', async () => {
    const clock = new ManualClock();
    const hung: typeof fetch = (_url, init) =>
      new Promise((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal?.reason)));
    const poller = new DashboardPoller({
      url: 'http://127.0.0.1:1',
      intervalMs: 2_000,
      timeoutMs: 1_000,
      clock,
      fetch: hung,
      overrides: new Map(),
      onUpdate: () => {},
    });
    const p = poller.pollOnce();
    clock.advance(1_000);
    const s = await p;
    assert.equal(s.reachable, false);
    assert.match(s.lastError ?? '', /timed out after 1000 ms/);
  });
});
