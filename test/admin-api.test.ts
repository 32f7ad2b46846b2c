// Admin API (SPEC §7) end to end: auth, body validation, refusals with
// reasons, readiness gate, error shape, open reads on loopback, metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { adminCall, startStack, waitFor, type Stack } from './helpers/stack.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function assertError(r: { status: number; json: Json }, status: number, code: string, message?: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.deepEqual(Object.keys(r.json), ['error'], `error body shape: ${JSON.stringify(r.json)}`);
  assert.deepEqual(Object.keys(r.json['error']).sort(), ['code', 'message']);
  assert.equal(r.json['error']['code'], code);
  assert.equal(typeof r.json['error']['message'], 'string');
  assert.ok(r.json['error']['message'].length > 0);
  if (message) assert.match(r.json['error']['message'], message);
}

async function raw(stack: Stack, method: string, path: string, body: string, headers: Record<string, string>) {
  const res = await fetch(`${stack.admin}${path}`, { method, headers, body });
  return { status: res.status, json: (await res.json()) as Json };
}

/** A request to the admin port with a Host header of our choosing (fetch does not let us set one). */
function withHost(stack: Stack, method: string, path: string, host: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; json: Json | string }> {
  const url = new URL(stack.admin);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: Number(url.port), method, path, headers: { ...headers, host }, setHost: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        let json: Json | string = text;
        try {
          json = JSON.parse(text) as Json;
        } catch {
          // not JSON (metrics, HTML)
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('admin API: auth, validation, refusals, readiness gate, reads, metrics', async (t) => {
  const stack = await startStack();
  try {
    await t.test('mutating calls need the bearer token: 401 without, 403 wrong; checked before the body', async () => {
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: 100 } }, null), 401, 'UNAUTHORIZED');
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: 100 } }, 'nope'), 403, 'FORBIDDEN');
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green' }, null), 401, 'UNAUTHORIZED');
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/pause', undefined, 'wrong-token-of-another-length'), 403, 'FORBIDDEN');
      assertError(await adminCall(stack, 'POST', '/api/v1/reload', undefined, null), 401, 'UNAUTHORIZED');
      // An unauthenticated caller learns nothing about bodies or apps.
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { nonsense: true }, null), 401, 'UNAUTHORIZED');
      assertError(await raw(stack, 'PUT', '/api/v1/apps/llm/weights', '{not json', { 'content-type': 'application/json' }), 401, 'UNAUTHORIZED');
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/nope/weights', { weights: { green: 100 } }, 'bad'), 403, 'FORBIDDEN');
      assert.deepEqual(stack.gw.traffic.weightsOf('llm'), { blue: 100, green: 0 }, 'nothing changed');
    });

    await t.test('400 on invalid bodies, with the reason', async () => {
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 50, green: 40 } }), 400, 'INVALID_WEIGHTS', /sum to 100, got 90/);
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { purple: 100 } }), 400, 'INVALID_WEIGHTS', /unknown cluster "purple"/);
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 101 } }), 400, 'INVALID_BODY');
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: {} }), 400, 'INVALID_BODY');
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: 100 }, extra: 1 }), 400, 'INVALID_BODY');
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', {}), 400, 'INVALID_BODY', /weights/);
      const badJson = await raw(stack, 'PUT', '/api/v1/apps/llm/weights', '{"weights": {', {
        'content-type': 'application/json',
        authorization: 'Bearer test-token',
      });
      assertError(badJson, 400, 'INVALID_JSON', /not valid JSON/);
      // No silent coercion or stripping: a typo or a string where a number belongs is refused.
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: '100' } }), 400, 'INVALID_BODY', /integer/);
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: 100 }, forse: true }), 400, 'INVALID_BODY', /additional properties/);
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: 100 }, force: 'yes' }), 400, 'INVALID_BODY', /boolean/);
      const empty = await raw(stack, 'PUT', '/api/v1/apps/llm/weights', '', { 'content-type': 'application/json', authorization: 'Bearer test-token' });
      assertError(empty, 400, 'INVALID_BODY');
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', steps: [50, 20, 100] }), 400, 'INVALID_POLICY', /ascending/);
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', steps: [20, 50] }), 400, 'INVALID_POLICY', /last step must be 100/);
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', interval: 'soon' }), 400, 'INVALID_BODY', /interval/);
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'purple' }), 400, 'UNKNOWN_CLUSTER', /purple/);
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { steps: [100] }), 400, 'INVALID_BODY', /to/);
      assertError(await adminCall(stack, 'GET', '/api/v1/events?limit=0'), 400, 'INVALID_LIMIT');
      assert.deepEqual(stack.gw.traffic.weightsOf('llm'), { blue: 100, green: 0 }, 'nothing changed');
    });

    await t.test('404 for unknown apps and routes', async () => {
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/nope/weights', { weights: { green: 100 } }), 404, 'UNKNOWN_APP', /nope/);
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/nope/rollout', { to: 'green' }), 404, 'UNKNOWN_APP');
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/nope/rollout/pause'), 404, 'UNKNOWN_APP');
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/explode'), 404, 'UNKNOWN_ACTION');
      // An action with an empty JSON body is just the action.
      assertError(await raw(stack, 'POST', '/api/v1/apps/llm/rollout/pause', '', { 'content-type': 'application/json', authorization: 'Bearer test-token' }), 409, 'NO_ROLLOUT');
      assertError(await adminCall(stack, 'GET', '/api/v1/nothing'), 404, 'NOT_FOUND');
    });

    await t.test('409 readiness gate: green DEPLOYING is refused with the reason; force passes', async () => {
      stack.sim.cluster('green').setAppStatus('llm', 'DEPLOYING');
      const green = () => stack.gw.reconciler.current!.apps.get('llm')!.targets.find((x) => x.cluster.name === 'green')!;
      await waitFor(() => green().serveApp?.status === 'DEPLOYING', 3000, 'dashboard poll sees DEPLOYING');
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: 100 } }), 409, 'NOT_READY', /"llm" on cluster "green" is DEPLOYING, not RUNNING; pass force/);
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green' }), 409, 'NOT_READY', /DEPLOYING/);
      // Moving weight away from a not-ready cluster is always allowed; toward it needs force.
      const st = await adminCall(stack, 'GET', '/api/v1/status', undefined, null);
      const c = (st.json['apps'] as Json[]).find((a) => a['name'] === 'llm')!['clusters'].find((x: Json) => x['cluster'] === 'green');
      assert.equal(c['ready'], false);
      assert.match(c['not_ready_reason'], /DEPLOYING/);
      const forced = await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 90, green: 10 }, force: true });
      assert.equal(forced.status, 200, JSON.stringify(forced.json));
      assert.deepEqual(forced.json['weights'], { blue: 90, green: 10 });
      const back = await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 100 } });
      assert.equal(back.status, 200);
      stack.sim.cluster('green').setAppStatus('llm', 'RUNNING');
      await waitFor(() => green().serveApp?.status === 'RUNNING', 3000, 'dashboard poll sees RUNNING');
      const refused = (await adminCall(stack, 'GET', '/api/v1/events?limit=20')).json['events'].find((e: Json) => e['result'] === 'refused' && /NOT_READY/.test(e['reason']));
      assert.ok(refused, 'refusals are audited');
    });

    await t.test('409 set-weights during an active rollout; 409 second rollout', async () => {
      let r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', steps: [10, 100], interval: '1h' });
      assert.equal(r.status, 201, JSON.stringify(r.json));
      assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: 100 } }), 409, 'ROLLOUT_IN_PROGRESS', /promote or roll it back/);
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green' }), 409, 'ROLLOUT_IN_PROGRESS');
      // Promote and resume move weight to green: gated on readiness (force overrides); rollback never is.
      stack.sim.cluster('green').setAppStatus('llm', 'DEPLOYING');
      const green = () => stack.gw.reconciler.current!.apps.get('llm')!.targets.find((x) => x.cluster.name === 'green')!;
      await waitFor(() => green().serveApp?.status === 'DEPLOYING', 3000, 'dashboard poll sees DEPLOYING');
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/promote'), 409, 'NOT_READY', /DEPLOYING/);
      assert.equal((await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/pause')).status, 200);
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/resume'), 409, 'NOT_READY', /DEPLOYING/);
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/resume', { force: 'yes' }), 400, 'INVALID_BODY');
      r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/resume', { force: true });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json['rollout']['phase'], 'progressing');
      r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/rollback');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json['weights'], { blue: 100, green: 0 });
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/rollback'), 409, 'NOT_RUNNING');
      stack.sim.cluster('green').setAppStatus('llm', 'RUNNING');
      await waitFor(() => green().serveApp?.status === 'RUNNING', 3000, 'dashboard poll sees RUNNING');
    });

    await t.test('reads are open on loopback', async () => {
      for (const path of ['/api/v1/status', '/api/v1/events', '/metrics', '/healthz', '/readyz', '/']) {
        const res = await fetch(`${stack.admin}${path}`);
        await res.arrayBuffer();
        assert.equal(res.status, 200, path);
      }
      const st = await adminCall(stack, 'GET', '/api/v1/status', undefined, null);
      assert.equal(st.json['ready'], true);
      assert.deepEqual((st.json['clusters'] as Json[]).map((c) => c['name']), ['blue', 'green']);
    });

    await t.test('rollout bounds: an interval of 11,400 years (or other unbounded values) is refused naming the field', async () => {
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', interval: '99932400h' }), 400, 'INVALID_POLICY', /interval must be at most 24h \(got 99932400h\)/);
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', interval: 359_766_144_000 }), 400, 'INVALID_POLICY', /interval must be at most 24h/);
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', max_p99_latency: '2h' }), 400, 'INVALID_POLICY', /max_p99_latency must be at most 1h/);
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', min_requests: 5_000_000 }), 400, 'INVALID_POLICY', /min_requests must be at most 1000000/);
      const steps = Array.from({ length: 101 }, (_, i) => i + 1);
      assertError(await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', steps }), 400, 'INVALID_BODY', /steps/);
      assert.equal(stack.gw.traffic.rolloutOf('llm')?.phase ?? null, 'rolled_back', 'no new rollout');
      assert.deepEqual(stack.gw.traffic.weightsOf('llm'), { blue: 100, green: 0 });
    });

    await t.test('Host check (DNS rebinding): only the admin server\'s own names; probes by IP keep working', async () => {
      const port = new URL(stack.admin).port;
      for (const path of ['/api/v1/status', '/api/v1/events', '/metrics', '/', '/api/v1/nothing']) {
        const r = await withHost(stack, 'GET', path, `evil.example:${port}`);
        assert.equal(r.status, 421, path);
        assert.equal((r.json as Json)['error']['code'], 'HOST_NOT_ALLOWED');
        assert.match((r.json as Json)['error']['message'], /"evil\.example:\d+" is not a name of this admin server .*admin\.allowed_hosts/);
      }
      // Refused before the token is even looked at, and nothing changes.
      const put = await withHost(stack, 'PUT', '/api/v1/apps/llm/weights', `evil.example:${port}`, { authorization: 'Bearer test-token', 'content-type': 'application/json' }, JSON.stringify({ weights: { green: 100 } }));
      assert.equal(put.status, 421);
      assert.deepEqual(stack.gw.traffic.weightsOf('llm'), { blue: 100, green: 0 });
      // A pod IP is not this server's name when it listens on loopback only.
      assert.equal((await withHost(stack, 'GET', '/api/v1/status', `10.1.2.3:${port}`)).status, 421);
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'LOCALHOST']) {
        assert.equal((await withHost(stack, 'GET', '/api/v1/status', host)).status, 200, host);
      }
      // Health and readiness answer whatever the Host (kubelet may set its own).
      for (const path of ['/healthz', '/readyz']) assert.equal((await withHost(stack, 'GET', path, `evil.example:${port}`)).status, 200, path);
    });

    await t.test('a JSON content type with a charset parameter is accepted', async () => {
      const r = await raw(stack, 'PUT', '/api/v1/apps/llm/weights', JSON.stringify({ weights: { blue: 100 } }), {
        'content-type': 'application/json; charset=utf-8',
        authorization: 'Bearer test-token',
      });
      assert.equal(r.status, 200, JSON.stringify(r.json));
    });

    await t.test('/metrics shows the weights after a switch; status reports drain and safe_to_delete', async () => {
      const r = await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: 100 } });
      assert.equal(r.status, 200);
      const r2 = await adminCall(stack, 'PUT', '/api/v1/apps/default/weights', { weights: { green: 100 } });
      assert.equal(r2.status, 200);
      const metrics = await (await fetch(`${stack.admin}/metrics`)).text();
      assert.match(metrics, /^serve_gateway_traffic_weight\{app="llm",cluster="green"\} 100$/m);
      assert.match(metrics, /^serve_gateway_traffic_weight\{app="llm",cluster="blue"\} 0$/m);
      const st = await adminCall(stack, 'GET', '/api/v1/status', undefined, null);
      const blue = (st.json['clusters'] as Json[]).find((c) => c['name'] === 'blue')!;
      assert.equal(blue['drained'], true);
      assert.equal(blue['in_flight'], 0);
      assert.equal(blue['safe_to_delete'], true);
      const green = (st.json['clusters'] as Json[]).find((c) => c['name'] === 'green')!;
      assert.equal(green['safe_to_delete'], false);
    });
  } finally {
    await stack.close();
  }
});

test('admin API without a configured token refuses every mutating call', async () => {
  const stack = await startStack({ gatewayOptions: { adminToken: null } });
  try {
    assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: 100 } }), 403, 'TOKEN_NOT_CONFIGURED', /SERVE_GATEWAY_ADMIN_TOKEN/);
    assertError(await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: 100 } }, null), 403, 'TOKEN_NOT_CONFIGURED');
    const st = await adminCall(stack, 'GET', '/api/v1/status', undefined, null);
    assert.equal(st.status, 200);
  } finally {
    await stack.close();
  }
});

test('admin on all interfaces: any IP literal Host (kubelet, Prometheus by pod IP) and admin.allowed_hosts; other names refused', async () => {
  const stack = await startStack({ gateway: { admin: { listen: '0.0.0.0:0', allowed_hosts: ['gw-admin.ops.svc'] } } });
  try {
    const port = new URL(stack.admin).port;
    for (const host of [`10.244.1.12:${port}`, `[fd00::12]:${port}`, `gw-admin.ops.svc:${port}`, `localhost:${port}`]) {
      const m = await withHost(stack, 'GET', '/metrics', host);
      assert.equal(m.status, 200, host);
      assert.match(m.json as string, /serve_gateway_/);
      assert.equal((await withHost(stack, 'GET', '/readyz', host)).status, 200, host);
    }
    for (const host of [`evil.example:${port}`, `gw-admin.ops.svc.evil.example:${port}`]) {
      assert.equal((await withHost(stack, 'GET', '/metrics', host)).status, 421, host);
    }
  } finally {
    await stack.close();
  }
});
