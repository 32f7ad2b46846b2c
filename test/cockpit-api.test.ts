// Issue 11, the API under the cockpit: one naming style (snake_case) in
// GET /api/v1/status; a running rollout shows its step timeline and live gate
// values ("holding: 0 of 50 requests"); every refusal of a token holder is
// audited (bad bodies and unknown apps included), unauthenticated calls are
// not; cross-origin mutating calls are refused; `set` does not report a
// finished rollout as current; the per-cluster 15-minute series; weights
// edited in the config file after state exists are reported on reload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfigFile } from '../src/config/load.ts';
import { startGateway } from '../src/main.ts';
import { ADMIN_TOKEN, LogRecorder, adminCall, gatewayDoc, startSimOnly, startStack, waitFor } from './helpers/stack.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Every key that is not snake_case, with its path; maps keyed by names (weights, clusters of the series) are skipped. */
function camelKeys(v: unknown, path = '$'): string[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => camelKeys(x, `${path}[${i}]`));
  if (v === null || typeof v !== 'object') return [];
  const out: string[] = [];
  for (const [k, x] of Object.entries(v)) {
    if (!/^[a-z][a-z0-9_]*$/.test(k)) out.push(`${path}.${k}`);
    if (k === 'weights' || k === 'to' || k === 'from' || k === 'app_statuses') continue;
    out.push(...camelKeys(x, `${path}.${k}`));
  }
  return out;
}

test('status: snake_case everywhere; a rollout with its timeline and live gate values; refusals audited; CSRF', async (t) => {
  const stack = await startStack();
  t.after(() => stack.close());
  const status = async () => (await adminCall(stack, 'GET', '/api/v1/status')).json as Json;

  await t.test('a running rollout: snake_case keys, steps, gate values against thresholds, why it holds, the badge', async () => {
    const r = await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout', { to: 'green', steps: [10, 50, 100], interval: 3600, min_requests: 50 });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    assert.deepEqual(camelKeys(r.json), []);
    const s = await status();
    assert.deepEqual(camelKeys(s), []);
    const app = (s['apps'] as Json[]).find((a) => a['name'] === 'llm')!;
    assert.equal(app['status'], 'Progressing');
    const ro = app['rollout'];
    assert.equal(ro['active_cluster'], 'blue');
    assert.equal(ro['pending_cluster'], 'green');
    assert.equal(ro['traffic_routed_percent'], 10);
    assert.deepEqual(ro['steps'], [10, 50, 100]);
    assert.equal(ro['step_index'], 0);
    assert.equal(ro['next_step_percent'], 50);
    assert.equal(ro['policy']['interval_ms'], 3_600_000);
    assert.ok(ro['next_step_in_ms'] > 3_000_000 && ro['next_step_in_ms'] <= 3_600_000);
    assert.equal(ro['gate']['requests'], 0);
    assert.equal(ro['gate']['min_requests'], 50);
    assert.equal(ro['gate']['max_error_rate'], 0.02);
    assert.equal(ro['gate']['holding'], 'holding: 0 of 50 requests');
    assert.match(ro['summary'], /^holding: 0 of 50 requests; next step to 50% in 60 min at the earliest/);
    assert.match(s['generated_at'], /^\d{4}-\d\d-\d\dT/);
    const green = (s['clusters'] as Json[]).find((c) => c['name'] === 'green')!;
    assert.equal(green['safe_to_delete'], false);
    assert.equal(green['safe_to_delete_reason'], 'still has weight: llm 10%');
    assert.equal(green['capacity'], 8 + 20);
  });

  await t.test('set after a finished rollout does not report it; the badge reads RolledBack until weights move', async () => {
    assert.equal((await adminCall(stack, 'POST', '/api/v1/apps/llm/rollout/rollback')).status, 200);
    let app = ((await status())['apps'] as Json[]).find((a) => a['name'] === 'llm')!;
    assert.equal(app['status'], 'RolledBack');
    assert.equal(app['rollout']['gate'], null);
    const r = await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 90, green: 10 } });
    assert.equal(r.status, 200);
    assert.equal(r.json['rollout'], null, 'the rolled-back rollout is history, not the current one');
    app = ((await status())['apps'] as Json[]).find((a) => a['name'] === 'llm')!;
    assert.equal(app['status'], 'Healthy');
    assert.equal((await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 100 } })).status, 200);
  });

  await t.test('every refusal of a token holder is audited, bad bodies and unknown apps included; 401/403 are not', async () => {
    const calls: Array<[string, string, unknown, number, string, string]> = [
      // [method, path, body, status, code, audited action]
      ['PUT', '/api/v1/apps/llm/weights', { weights: { blue: 'all' } }, 400, 'INVALID_BODY', 'set_weights'],
      ['PUT', '/api/v1/apps/nope/weights', { weights: { blue: 100 } }, 404, 'UNKNOWN_APP', 'set_weights'],
      ['POST', '/api/v1/apps/llm/rollout', { to: 'green', interval: 'soon' }, 400, 'INVALID_BODY', 'rollout_start'],
      ['POST', '/api/v1/apps/llm/rollout', { to: 'green', forse: true }, 400, 'INVALID_BODY', 'rollout_start'],
      ['POST', '/api/v1/apps/nope/rollout/pause', undefined, 404, 'UNKNOWN_APP', 'rollout_pause'],
      ['POST', '/api/v1/apps/llm/rollout/promote', undefined, 409, 'NOT_RUNNING', 'rollout_promote'],
    ];
    for (const [method, path, body, want, code, action] of calls) {
      const r = await adminCall(stack, method, path, body);
      assert.equal(r.status, want, `${method} ${path}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json['error']['code'], code);
      const last = ((await adminCall(stack, 'GET', '/api/v1/events?limit=1')).json['events'] as Json[])[0]!;
      assert.equal(last['result'], 'refused', `${method} ${path}`);
      assert.equal(last['action'], action);
      assert.match(last['reason'], new RegExp(`^${code}: `));
    }
    const before = ((await adminCall(stack, 'GET', '/api/v1/events?limit=1')).json['events'] as Json[])[0]!['id'];
    assert.equal((await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: 100 } }, null)).status, 401);
    assert.equal((await adminCall(stack, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: 100 } }, 'wrong')).status, 403);
    const after = ((await adminCall(stack, 'GET', '/api/v1/events?limit=1')).json['events'] as Json[])[0]!['id'];
    assert.equal(after, before, 'an unauthenticated caller cannot write to the audit log');
  });

  await t.test('a mutating call from another origin is refused (CSRF), its own origin is not', async () => {
    const call = (origin: string) =>
      fetch(`${stack.admin}/api/v1/apps/llm/rollout/pause`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, origin } });
    const evil = await call('http://evil.example');
    assert.equal(evil.status, 403);
    assert.equal(((await evil.json()) as Json)['error']['code'], 'CROSS_ORIGIN');
    const own = await call(stack.admin);
    assert.equal(own.status, 409, 'passes the origin check (then: no rollout)');
  });

  await t.test('GET /api/v1/series: per cluster, buckets of the last 15 minutes', async () => {
    const r = await adminCall(stack, 'GET', '/api/v1/series');
    assert.equal(r.status, 200);
    assert.equal(r.json['bucket_ms'], 5000);
    assert.deepEqual(Object.keys(r.json['clusters']).sort(), ['blue', 'green']);
    for (let i = 0; i < 5; i++) await (await fetch(`${stack.url}/llm/x${i}`)).arrayBuffer();
    stack.gw.reconciler.series.close(Date.now());
    const s = (await adminCall(stack, 'GET', '/api/v1/series')).json;
    const blue = s['clusters']['blue'] as Json[];
    const last = blue.at(-1)!;
    assert.ok(last['requests'] >= 5, JSON.stringify(last));
    assert.equal(last['errors'], 0);
    assert.ok(last['request_rate'] > 0);
    assert.ok(last['p50_latency_ms'] !== null && last['p99_latency_ms'] >= last['p50_latency_ms']);
    assert.deepEqual(camelKeys(s), []);
  });
});

test('weights edited in the config file after traffic state exists: the reload says they were not applied (status, log)', async (t) => {
  const sim = await startSimOnly();
  const dir = mkdtempSync(join(tmpdir(), 'sg-weights-'));
  const file = join(dir, 'gateway.yaml');
  const doc = gatewayDoc(sim, join(dir, 'var'));
  writeFileSync(file, stringify(doc));
  const loaded = await loadConfigFile(file);
  assert.ok(loaded.ok);
  const logs = new LogRecorder();
  const gw = await startGateway({ config: loaded.config, configPath: file, logger: logs, watch: false, adminToken: ADMIN_TOKEN });
  t.after(async () => {
    await gw.close();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await waitFor(() => [...gw.reconciler.clusters.values()].every((c) => c.endpoints.every((e) => e.health.probeOk === true)), 30_000, 'first probes');
  const headers = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
  // The operator's weights are in the traffic state now.
  let res = await fetch(`${gw.adminUrl}/api/v1/apps/llm/weights`, { method: 'PUT', headers, body: JSON.stringify({ weights: { blue: 100, green: 0 } }) });
  assert.equal(res.status, 200);
  res = await fetch(`${gw.adminUrl}/api/v1/apps/llm/weights`, { method: 'PUT', headers, body: JSON.stringify({ weights: { blue: 90, green: 10 } }) });
  assert.equal(res.status, 200);
  writeFileSync(file, stringify({ ...doc, applications: { '*': { weights: { blue: 100 } }, llm: { weights: { blue: 50, green: 50 } } } }));
  res = await fetch(`${gw.adminUrl}/api/v1/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(res.status, 200);
  assert.deepEqual(gw.traffic.weightsOf('llm'), { blue: 90, green: 10 }, 'the state wins');
  const s = (await (await fetch(`${gw.adminUrl}/api/v1/status`)).json()) as Json;
  const lr = s['config']['last_reload'];
  assert.equal(lr['ok'], true);
  assert.equal(lr['reason'], 'admin API');
  assert.equal(lr['warnings'].length, 1);
  assert.match(lr['warnings'][0], /^applications\.llm\.weights changed in the config file, but app "llm" keeps blue=90 green=10 from the traffic state; run "serve-gateway traffic set llm blue=50 green=50"/);
  assert.ok(logs.lines.some((l) => l.level === 'warn' && /applications\.llm\.weights changed/.test(l.msg ?? '')));
});
