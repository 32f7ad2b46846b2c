// Hot reload (a bad file never replaces a good config) and graceful shutdown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { send, openStream } from './conformance/http-client.ts';
import { gatewayDoc, startSimOnly, waitFor, LogRecorder, SERVE_YAML } from './helpers/stack.ts';
import { loadConfigFile } from '../src/config/load.ts';
import { startGateway } from '../src/main.ts';

async function fileStack(t: import('node:test').TestContext) {
  const sim = await startSimOnly();
  const dir = mkdtempSync(join(tmpdir(), 'sg-life-'));
  const file = join(dir, 'gateway.yaml');
  const doc = gatewayDoc(sim, join(dir, 'var'));
  writeFileSync(file, stringify(doc));
  const loaded = await loadConfigFile(file);
  assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.issues));
  const logs = new LogRecorder();
  const gw = await startGateway({ config: loaded.config, configPath: file, logger: logs, watch: false, adminToken: 't' });
  await waitFor(() => [...gw.reconciler.clusters.values()].every((c) => c.endpoints.every((e) => e.health.probeOk === true)), 30_000, 'first probes');
  t.after(async () => {
    await gw.close();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { sim, gw, file, doc, logs };
}

test('reload: a bad file is refused with its key path and the running config keeps serving', async (t) => {
  const { gw, file, doc } = await fileStack(t);
  const before = gw.config;
  writeFileSync(file, stringify({ ...doc, clusters: [{ name: 'blue', endpoints: ['not-a-url'] }], admission: { queue_size: -3 } }));
  const r = await gw.reload('test');
  assert.equal(r.ok, false);
  assert.match(r.error!, /clusters\[0\]\.endpoints\[0\]/);
  assert.match(r.error!, /admission\.queue_size/);
  assert.equal(gw.config, before, 'the running config is kept');
  assert.equal(gw.reconciler.current!.config, before);
  assert.equal((await send(`${gw.url}/llm`)).status, 200);
  const status = await (await fetch(`${gw.adminUrl}/api/v1/status`)).json() as { config: { last_reload: { ok: boolean; error: string } } };
  assert.equal(status.config.last_reload.ok, false);
  const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  assert.match(metrics, /serve_gateway_config_reloads_total\{result="failure"\} 1/);
});

test('reload: a good change is applied in one snapshot swap', async (t) => {
  const { gw, file, doc } = await fileStack(t);
  assert.equal((await send(`${gw.url}/llm`)).headers['x-serve-cluster'], 'blue');
  writeFileSync(file, stringify({ ...doc, applications: { '*': { weights: { green: 100 } } } }));
  const r = await gw.reload('test');
  assert.equal(r.ok, true, r.error ?? '');
  assert.equal((await send(`${gw.url}/llm`)).headers['x-serve-cluster'], 'green');
});

test('shutdown: readyz fails at once, an open stream finishes, then the process stops listening', async (t) => {
  const { gw } = await fileStack(t);
  const stream = await openStream(`${gw.url}/llm/stream?tokens=10&interval_ms=30`);
  const chunks: string[] = [stream.first];
  stream.res.on('data', (c: Buffer) => chunks.push(c.toString()));
  stream.res.resume();
  const ended = new Promise((r) => stream.res.once('end', r));
  const done = gw.shutdown();
  const ready = await fetch(`${gw.adminUrl}/readyz`).catch(() => null);
  assert.equal(ready?.status ?? 503, 503);
  await ended;
  assert.ok(chunks.join('').endsWith('data: [DONE]\n\n'), 'stream completed during the drain');
  await done;
  await assert.rejects(send(`${gw.url}/llm`), 'listener closed after the drain');
});

test('config file changes are picked up by the watcher', async (t) => {
  const sim = await startSimOnly();
  const dir = mkdtempSync(join(tmpdir(), 'sg-watch-'));
  const file = join(dir, 'gateway.yaml');
  const doc = gatewayDoc(sim, join(dir, 'var'), { serveYaml: SERVE_YAML });
  writeFileSync(file, stringify(doc));
  const loaded = await loadConfigFile(file);
  assert.ok(loaded.ok);
  const gw = await startGateway({ config: loaded.config, configPath: file, logger: new LogRecorder(), adminToken: 't' });
  t.after(async () => {
    await gw.close();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  });
  writeFileSync(file, stringify({ ...doc, applications: { '*': { weights: { green: 100 } } } }));
  await waitFor(() => gw.lastReload?.ok === true, 5000, 'reload from the file watcher');
  assert.equal((await send(`${gw.url}/llm`)).headers['x-serve-cluster'], 'green');
});
