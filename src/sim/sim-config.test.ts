import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { parseSimConfig, readSimConfigFile } from './sim-config.ts';
import { loadSimConfig, SimConfigError } from './sim.ts';

const root = resolve(import.meta.dirname, '../..');
const where = { file: 'sim.yaml', baseDir: resolve(root, 'config') };

test('config/sim.yaml: blue (2 proxies) and green (1 proxy) serving config/serve.yaml', () => {
  const cfg = loadSimConfig(resolve(root, 'config/sim.yaml'));
  assert.deepEqual(cfg.control, { host: '127.0.0.1', port: 9950 });
  const [blue, green] = cfg.clusters;
  assert.ok(blue && green);
  assert.equal(blue.name, 'blue');
  assert.deepEqual(blue.proxies.map((p) => p.port), [8101, 8102]);
  assert.deepEqual(blue.dashboard, { host: '127.0.0.1', port: 8265 });
  assert.deepEqual(green.proxies.map((p) => p.port), [8201]);
  assert.equal(green.dashboard?.port, 8266);
  const llm = blue.apps.find((a) => a.name === 'llm');
  assert.deepEqual(
    llm && { prefix: llm.routePrefix, ingress: llm.ingressDeployment, mor: llm.maxOngoingRequests, mqr: llm.maxQueuedRequests, n: llm.replicas },
    { prefix: '/llm', ingress: 'LLMServer', mor: 8, mqr: 16, n: 2 },
  );
  const dflt = blue.apps.find((a) => a.name === 'default');
  assert.equal(dflt?.routePrefix, '/');
  assert.equal(dflt?.maxOngoingRequests, 20);
  assert.equal(dflt?.replicas, 1);
  assert.deepEqual(blue.behaviour.get('llm'), { latencyMs: 20, tokens: 16, tokenIntervalMs: 25 });
  assert.equal(blue.requestTimeoutS, null);
});

test('every problem is reported with its key path', () => {
  const r = parseSimConfig(
    {
      control: 'nope',
      extra: 1,
      clusters: [
        {
          name: 'a',
          proxies: ['127.0.0.1:9000', 'localhost'],
          dashboard: '127.0.0.1:9000',
          serve_config: { applications: [{ name: 'x', route_prefix: '/x/', import_path: 'm:a' }] },
          request_timeout_s: -1,
          apps: { ghost: { latency_ms: 1 } },
          colour: 'blue',
        },
        { name: 'a', proxies: [], serve_config: 'missing-file.yaml' },
      ],
    },
    where,
  );
  assert.equal(r.ok, false);
  const paths = r.ok ? [] : r.issues.map((i) => i.path);
  for (const p of [
    'control',
    'extra',
    'clusters[0].proxies[1]',
    'clusters[0].dashboard',
    'clusters[0].serve_config.applications[0].route_prefix',
    'clusters[0].request_timeout_s',
    'clusters[0].colour',
    'clusters[1].proxies',
    'clusters[1].serve_config',
  ]) {
    assert.ok(paths.includes(p), `expected an issue at ${p}; got ${paths.join(', ')}`);
  }
});

test('inline serve_config, behaviour defaults via "*", request_timeout_s from http_options', () => {
  const r = parseSimConfig(
    {
      clusters: [
        {
          name: 'c',
          proxies: ['127.0.0.1:0'],
          serve_config: {
            http_options: { request_timeout_s: 30 },
            applications: [
              { name: 'a', route_prefix: '/a', import_path: 'm:a' },
              { name: 'b', route_prefix: '/b', import_path: 'm:b' },
            ],
          },
          apps: { '*': { latency_ms: 5 }, b: { tokens: 2 } },
        },
      ],
    },
    where,
  );
  assert.ok(r.ok, JSON.stringify(!r.ok && r.issues));
  const c = r.config.clusters[0];
  assert.equal(c?.requestTimeoutS, 30);
  assert.deepEqual(c?.behaviour.get('b'), { latencyMs: 5, tokens: 2, tokenIntervalMs: 10 });
  assert.equal(c?.behaviour.get('a'), undefined);
  assert.equal(r.config.control, null);
});

test('unknown app in apps, unreadable file, bad YAML', () => {
  const bad = parseSimConfig(
    { clusters: [{ name: 'c', proxies: ['127.0.0.1:0'], serve_config: 'serve.yaml', apps: { nope: {} } }] },
    where,
  );
  assert.ok(!bad.ok && bad.issues.some((i) => i.path === 'clusters[0].apps.nope'));
  const missing = readSimConfigFile(resolve(root, 'config/does-not-exist.yaml'));
  assert.ok(!missing.ok);
  const yaml = parseSimConfig('clusters: [', where);
  assert.ok(!yaml.ok && /not valid YAML/.test(yaml.issues[0]?.message ?? ''));
  assert.throws(() => loadSimConfig(resolve(root, 'config/does-not-exist.yaml')), SimConfigError);
});
