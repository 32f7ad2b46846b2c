// Issue 4, must show: traffic state survives restarts and `kill -9`; audit ids
// continue; a damaged state file is moved aside and the gateway serves from
// the config's weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type Gateway } from '../src/main.ts';
import { ADMIN_TOKEN, LogRecorder, buildConfig, gatewayDoc, startSimOnly, waitFor } from './helpers/stack.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function call(admin: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${admin}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, json: (await res.json()) as Json };
}

async function clusterOf(url: string): Promise<string> {
  const res = await fetch(url);
  await res.arrayBuffer();
  assert.equal(res.status, 200);
  return res.headers.get('x-serve-cluster') ?? '';
}

test('weights, rollout progress and audit ids survive a graceful restart', async () => {
  const sim = await startSimOnly();
  const stateDir = mkdtempSync(join(tmpdir(), 'sg-persist-'));
  const config = buildConfig(gatewayDoc(sim, stateDir));
  const start = () => startGateway({ config, logger: new LogRecorder(), adminToken: ADMIN_TOKEN, watch: false });
  // The readiness gate needs green's first probe and dashboard poll (a busy machine may be slow).
  const greenReady = (g: Gateway) =>
    waitFor(() => g.traffic.notReadyReason('llm', 'green') === null && g.traffic.notReadyReason('default', 'green') === null, 10_000, 'green ready');
  let gw: Gateway | null = await start();
  try {
    await greenReady(gw);
    let r = await call(gw.adminUrl, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 30, green: 70 } });
    assert.equal(r.status, 200);
    r = await call(gw.adminUrl, 'POST', '/api/v1/apps/default/rollout', { to: 'green', steps: [10, 60, 100], interval: '1h' });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    const lastId = ((await call(gw.adminUrl, 'GET', '/api/v1/events?limit=1')).json['events'] as Json[])[0]!['id'] as number;
    assert.equal(lastId, 2);
    await gw.close();

    gw = await start();
    await greenReady(gw);
    assert.deepEqual(gw.traffic.weightsOf('llm'), { blue: 30, green: 70 });
    assert.deepEqual(gw.traffic.weightsOf('default'), { blue: 90, green: 10 });
    const ro = gw.traffic.rolloutOf('default')!;
    assert.equal(ro.phase, 'progressing');
    assert.equal(ro.trafficRoutedPercent, 10);
    r = await call(gw.adminUrl, 'POST', '/api/v1/apps/default/rollout/promote');
    assert.equal(r.status, 200);
    const ev = (await call(gw.adminUrl, 'GET', '/api/v1/events?limit=10')).json['events'] as Json[];
    assert.deepEqual(ev.map((e) => e['id']), [3, 2, 1], 'audit ids continue across the restart');
    assert.equal(ev[0]!['action'], 'rollout_promote');
  } finally {
    await gw?.close();
    await sim.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

test('state survives kill -9 of a real gateway process', async () => {
  const sim = await startSimOnly();
  const dir = mkdtempSync(join(tmpdir(), 'sg-kill9-'));
  const stateDir = join(dir, 'state');
  const [port, adminPort] = [await freePort(), await freePort()];
  const doc = gatewayDoc(sim, stateDir);
  doc['listen'] = `127.0.0.1:${port}`;
  doc['admin'] = { listen: `127.0.0.1:${adminPort}` };
  const configPath = join(dir, 'gateway.yaml');
  writeFileSync(configPath, JSON.stringify(doc, null, 2)); // JSON is YAML
  const admin = `http://127.0.0.1:${adminPort}`;
  const url = `http://127.0.0.1:${port}`;
  const children: ChildProcess[] = [];
  const spawnGateway = async (): Promise<ChildProcess> => {
    const child = spawn(process.execPath, ['src/cli/main.ts', 'start', '--config', configPath, '--log-level', 'warn'], {
      env: { ...process.env, SERVE_GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    let ready = false;
    const poll = async () => {
      while (!ready && child.exitCode === null) {
        try {
          const res = await fetch(`${admin}/api/v1/status`);
          const body = (await res.json()) as Json;
          ready = res.status === 200 && (body['clusters'] as Json[]).every((c) => (c['endpoints'] as Json[]).every((e) => e['healthy']));
        } catch {
          // not listening yet
        }
        if (!ready) await new Promise((r) => setTimeout(r, 20));
      }
    };
    void poll();
    await waitFor(() => ready || child.exitCode !== null, 15_000, 'gateway process ready');
    assert.equal(child.exitCode, null, `gateway exited: ${stderr}`);
    return child;
  };
  const kill9 = async (child: ChildProcess) => {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(child.pid!, 'SIGKILL');
    await exited;
  };
  try {
    let child = await spawnGateway();
    assert.equal(await clusterOf(`${url}/llm/x`), 'blue');
    let r = await call(admin, 'PUT', '/api/v1/apps/llm/weights', { weights: { green: 100 } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    r = await call(admin, 'POST', '/api/v1/apps/default/rollout', { to: 'green', steps: [40, 100], interval: '1h' });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    await kill9(child);

    child = await spawnGateway();
    const status = (await call(admin, 'GET', '/api/v1/status')).json;
    const app = (name: string) => (status['apps'] as Json[]).find((a) => a['name'] === name)!;
    assert.deepEqual(app('llm')['weights'], { blue: 0, green: 100 });
    assert.deepEqual(app('default')['weights'], { blue: 60, green: 40 });
    assert.equal(app('default')['rollout']['phase'], 'progressing');
    assert.equal(await clusterOf(`${url}/llm/after-restart`), 'green');
    const ev = (await call(admin, 'GET', '/api/v1/events?limit=10')).json['events'] as Json[];
    assert.deepEqual(ev.map((e) => e['action']), ['rollout_start', 'set_weights']);
    await kill9(child);
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a damaged state file is moved aside loudly; the gateway serves from the config weights', async () => {
  const sim = await startSimOnly();
  const stateDir = mkdtempSync(join(tmpdir(), 'sg-corrupt-'));
  writeFileSync(join(stateDir, 'traffic-state.json'), '{"format": 1, "version": 3, "apps": {"llm": {"weights": {"blue": 7');
  const logs = new LogRecorder();
  const config = buildConfig(
    gatewayDoc(sim, stateDir, { gateway: { applications: { '*': { weights: { blue: 100 } }, llm: { weights: { green: 100 } } } } }),
  );
  const gw = await startGateway({ config, logger: logs, adminToken: ADMIN_TOKEN, watch: false });
  try {
    const aside = readdirSync(stateDir).filter((n) => n.startsWith('traffic-state.json.corrupt-'));
    assert.equal(aside.length, 1, `moved aside: ${readdirSync(stateDir).join(', ')}`);
    assert.match(readFileSync(join(stateDir, aside[0]!), 'utf8'), /"blue": 7$/);
    const loud = logs.lines.find((l) => l.level === 'error' && /TRAFFIC STATE DAMAGED/.test(l.msg ?? ''));
    assert.ok(loud, 'an error-level log line');
    assert.match(loud.msg!, /not JSON/);
    assert.deepEqual(gw.traffic.weightsOf('llm'), { blue: 0, green: 100 }, 'config weights');
    await waitFor(() => [...gw.reconciler.clusters.values()].every((c) => c.endpoints.every((e) => e.health.probeOk === true)), 5000, 'probes');
    assert.equal(await clusterOf(`${gw.url}/llm/x`), 'green');
    assert.equal(await clusterOf(`${gw.url}/`), 'blue');
    const ev = (await call(gw.adminUrl, 'GET', '/api/v1/events')).json['events'] as Json[];
    assert.equal(ev[0]!['action'], 'state_recovered');
    assert.equal(ev[0]!['app'], '*');
    // The next change writes a good state file again.
    const r = await call(gw.adminUrl, 'PUT', '/api/v1/apps/llm/weights', { weights: { blue: 100 } });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(readFileSync(join(stateDir, 'traffic-state.json'), 'utf8'))['apps']['llm']['weights'], { blue: 100, green: 0 });
  } finally {
    await gw.close();
    await sim.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
});
