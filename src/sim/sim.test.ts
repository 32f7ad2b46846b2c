import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { openStream, send, sendJson } from '../../test/conformance/http-client.ts';
import { runSimCommand } from './sim-command.ts';
import { parseSimConfig } from './sim-config.ts';
import { startSim } from './sim.ts';
import type { Sim } from './sim.ts';

const SERVE = {
  applications: [
    {
      name: 'llm',
      route_prefix: '/llm',
      import_path: 'm:llm',
      deployments: [
        { name: 'Tokenizer', num_replicas: 3, max_ongoing_requests: 4 },
        { name: 'LLMServer', num_replicas: 2, max_ongoing_requests: 2 },
      ],
    },
    { name: 'one', route_prefix: '/one', import_path: 'm:one', deployments: [{ name: 'One', max_ongoing_requests: 1 }] },
  ],
};

function config(extra: Record<string, unknown> = {}) {
  const r = parseSimConfig(
    {
      control: '127.0.0.1:0',
      clusters: [
        { name: 'blue', proxies: ['127.0.0.1:0', '127.0.0.1:0'], dashboard: '127.0.0.1:0', serve_config: SERVE, apps: { '*': { latency_ms: 0, tokens: 3, token_interval_ms: 1 } }, ...extra },
        { name: 'empty', proxies: ['127.0.0.1:0'], serve_config: { applications: [] } },
      ],
    },
    { file: 'test', baseDir: import.meta.dirname },
  );
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

function refused(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      res.resume();
      resolve(false);
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
    req.end();
  });
}

describe('sim over loopback', () => {
  let sim: Sim;
  let blue: string[];
  let control: string;

  before(async () => {
    sim = await startSim(config());
    blue = sim.cluster('blue').proxyUrls();
    control = sim.controlUrl as string;
  });
  after(() => sim?.close());

  test('concurrency never exceeds max_ongoing_requests × replicas; all requests served', async () => {
    sim.reset();
    const rs = await Promise.all(Array.from({ length: 24 }, (_, i) => send(`${blue[i % 2]}/llm/x?latency_ms=2`)));
    assert.ok(rs.every((r) => r.status === 200));
    const st = sim.stats().clusters['blue']?.apps['llm'];
    assert.ok(st);
    assert.ok(st.max_in_flight_seen <= 4, `max in flight ${st.max_in_flight_seen}`);
    assert.equal(st.completed, 24);
    assert.equal(st.in_flight, 0);
    const replicas = new Set(rs.map((r) => (JSON.parse(r.body) as { replica: string }).replica));
    assert.equal(replicas.size, 2, 'both replicas used');
  });

  test('error fault: Serve 500 text; 503 fault; DEPLOY_FAILED', async () => {
    sim.reset();
    sim.setFaults('blue', 'one', { errorRate: 1 });
    const r = await send(`${blue[0]}/one`);
    assert.equal(r.status, 500);
    assert.equal(r.body, 'Internal Server Error');
    assert.equal(r.headers['content-type'], undefined, 'Ray 2.53 sends its 500 without a content-type');
    assert.equal(r.headers['content-length'], '21');
    sim.setFaults('blue', 'one', { errorRate: 1, status: 503 });
    assert.equal((await send(`${blue[0]}/one`)).status, 503);
    sim.setFaults('blue', 'one', {});
    assert.equal((await send(`${blue[0]}/one`)).status, 200);
    sim.setAppStatus('blue', 'one', 'DEPLOY_FAILED');
    const f = await send(`${blue[0]}/one`);
    assert.equal(f.status, 503);
    assert.equal(f.body, "Deployment(name='One', app='one') is unavailable because it failed to deploy.");
    sim.reset();
    assert.equal((await send(`${blue[0]}/one`)).status, 200);
  });

  test('a queued request whose client leaves never runs and counts as cancelled', async () => {
    sim.reset();
    const holder = await openStream(`${blue[0]}/one/stream?tokens=100000&interval_ms=20`);
    const queued = await new Promise<() => void>((resolve) => {
      const req = httpRequest(`${blue[1]}/one/q`, { agent: false });
      req.on('error', () => {});
      req.end();
      // Wait until the sim has it queued (an event: the control API answers from the same loop).
      const poll = (): void => {
        if ((sim.stats().clusters['blue']?.apps['one']?.queued ?? 0) === 1) resolve(() => req.destroy());
        else setImmediate(poll);
      };
      poll();
    });
    queued();
    holder.destroy();
    const next = await send(`${blue[0]}/one/next`);
    assert.equal(next.status, 200);
    const st = sim.stats().clusters['blue']?.apps['one'];
    assert.equal(st?.cancelled, 2);
    assert.equal(st?.completed, 1, 'the queued request never ran');
    assert.equal(st?.queued, 0);
  });

  test('kill / revive a proxy; stop / start the dashboard (control API)', async () => {
    const post = (path: string, body: unknown = {}) => sendJson(`${control}${path}`, body);
    assert.equal((await post('/clusters/blue/proxies/1/kill')).status, 200);
    assert.equal(await refused(`${blue[1]}/-/healthz`), true);
    const dash = sim.cluster('blue').dashboardUrl as string;
    let d = JSON.parse((await send(`${dash}/api/serve/applications/`)).body);
    assert.equal(Object.values(d.proxies as Record<string, { status: string }>).filter((p) => p.status === 'UNHEALTHY').length, 1);
    assert.equal((await post('/clusters/blue/proxies/1/revive')).status, 200);
    assert.equal((await send(`${blue[1]}/-/healthz`)).body, 'success');
    assert.equal((await post('/clusters/blue/dashboard/stop')).status, 200);
    assert.equal(await refused(`${dash}/api/serve/applications/`), true);
    assert.equal((await post('/clusters/blue/dashboard/start')).status, 200);
    d = JSON.parse((await send(`${dash}/api/serve/applications/`)).body);
    assert.equal(d.applications.llm.route_prefix, '/llm');
    const bad = await post('/clusters/nope/proxies/0/kill');
    assert.equal(bad.status, 404);
    assert.equal(JSON.parse(bad.body).error.code, 'not_found');
  });

  test('scale and status show in the dashboard; all deployments listed; healthz with no replicas', async () => {
    const dash = sim.cluster('blue').dashboardUrl as string;
    const apps = async () => JSON.parse((await send(`${dash}/api/serve/applications/`)).body).applications;
    let a = await apps();
    assert.deepEqual(Object.keys(a.llm.deployments).sort(), ['LLMServer', 'Tokenizer']);
    assert.equal(a.llm.deployments.Tokenizer.replicas.length, 3);
    assert.equal(a.llm.deployments.LLMServer.replicas.length, 2);
    assert.equal((await sendJson(`${control}/clusters/blue/apps/llm/scale`, { replicas: 4 })).status, 200);
    assert.equal((await sendJson(`${control}/clusters/blue/apps/llm/status`, { status: 'DEPLOYING' })).status, 200);
    a = await apps();
    assert.equal(a.llm.status, 'DEPLOYING');
    assert.equal(a.llm.deployments.LLMServer.target_num_replicas, 4);
    assert.equal(a.llm.deployments.LLMServer.replicas.filter((r: { state: string }) => r.state === 'RUNNING').length, 4);
    assert.equal((await sendJson(`${control}/clusters/blue/apps/llm/status`, { status: 'BOGUS' })).status, 400);
    sim.scale('blue', 'llm', 0);
    sim.scale('blue', 'one', 0);
    assert.equal((await send(`${blue[0]}/-/healthz`)).body, 'success', 'head proxy is exempt');
    const w = await send(`${blue[1]}/-/healthz`);
    assert.equal(w.status, 503);
    assert.equal(w.body, 'No replicas are available yet.');
    assert.equal((await sendJson(`${control}/reset`, {})).status, 200);
    a = await apps();
    assert.equal(a.llm.status, 'RUNNING');
    assert.equal(a.llm.deployments.LLMServer.replicas.length, 2);
    const empty = sim.cluster('empty').proxyUrls()[0] as string;
    const e = await send(`${empty}/-/healthz`);
    assert.equal(e.status, 503);
    assert.equal(e.body, 'Route table is not populated yet.');
    const stats = JSON.parse((await send(`${control}/clusters`)).body);
    assert.equal(stats.clusters.blue.apps.llm.replicas, 2);
    assert.equal(typeof stats.clusters.blue.proxies[0].requests, 'number');
  });
});

describe('sim request_timeout_s', () => {
  let sim: Sim;
  before(async () => {
    sim = await startSim(config({ request_timeout_s: 0.05 }), { control: false });
  });
  after(() => sim?.close());

  test('408 with Serve text before headers, cut stream after headers', async () => {
    const url = sim.cluster('blue').proxyUrls()[0] as string;
    const r = await send(`${url}/one/slow?latency_ms=60000`, { headers: { 'x-request-id': 'rid-1' } });
    assert.equal(r.status, 408);
    assert.equal(r.body, 'Request rid-1 timed out after 0.05s.');
    const s = await openStream(`${url}/one/stream?tokens=100000&interval_ms=5`);
    const ended = await new Promise<string>((resolve) => {
      s.res.on('aborted', () => resolve('aborted'));
      s.res.on('error', () => resolve('error'));
      s.res.on('end', () => resolve('end'));
      s.res.resume();
    });
    assert.notEqual(ended, 'end', 'the stream is cut, not finished');
    const st = sim.stats().clusters['blue']?.apps['one'];
    assert.equal(st?.timeouts, 2);
    assert.equal(st?.in_flight, 0);
    assert.equal((await send(`${url}/one/fast`)).status, 200, 'the slot was freed');
  });
});

test('runSimCommand: --help, bad config, start and stop', async () => {
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
  assert.equal(await runSimCommand(['--help'], io), 0);
  assert.match(out.join('\n'), /serve-gateway sim/);
  assert.equal(await runSimCommand(['--config', 'does/not/exist.yaml'], io), 1);
  assert.match(err.join('\n'), /cannot read/);
  assert.equal(await runSimCommand(['--bogus'], io), 2);
  const ac = new AbortController();
  out.length = 0;
  const { writeFileSync, mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'sim-cmd-'));
  const file = join(dir, 'sim.yaml');
  writeFileSync(
    file,
    'clusters:\n  - name: c\n    proxies: ["127.0.0.1:0"]\n    dashboard: "127.0.0.1:0"\n    serve_config:\n      applications: [{name: a, route_prefix: /a, import_path: "m:a"}]\n',
  );
  let healthy = '';
  const rc = runSimCommand(['--config', file], {
    ...io,
    signal: ac.signal,
    onStarted: (s) => {
      void send(`${s.cluster('c').proxyUrls()[0]}/-/healthz`).then((r) => {
        healthy = r.body;
        ac.abort();
      });
    },
  });
  assert.equal(await rc, 0);
  assert.equal(healthy, 'success');
  assert.ok(out.some((l) => /^cluster c proxy 0 http:\/\/127\.0\.0\.1:\d+$/.test(l)));
  assert.ok(out.some((l) => /^cluster c dashboard http:\/\//.test(l)));
});
