import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_ROLLOUT, defaultMaxConnections, parseDuration, parseHostPort, parseOrigin, validateConfig } from './schema.ts';
import type { ConfigIssue, GatewayConfig } from './types.ts';

const SERVE_YAML = `
applications:
  - name: llm
    route_prefix: /llm
    import_path: m:app
    deployments:
      - name: Model
        max_ongoing_requests: 8
        autoscaling_config: { min_replicas: 1, initial_replicas: 3, max_replicas: 4 }
      - name: Ingress
        num_replicas: 2
        max_ongoing_requests: 16
        max_queued_requests: 40
  - name: default
    route_prefix: /
    import_path: d:app
`;

const files: Record<string, string> = { [resolve('/etc/gw/serve.yaml')]: SERVE_YAML };
const readFile = (p: string) => {
  const text = files[p];
  if (text === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
  return text;
};

function ok(doc: unknown): GatewayConfig {
  const r = validateConfig(doc, 'gw.yaml', '/etc/gw', readFile);
  if (!r.ok) assert.fail(`expected a valid config, got:\n${r.issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`);
  return r.config;
}

function bad(doc: unknown): ConfigIssue[] {
  const r = validateConfig(doc, 'gw.yaml', '/etc/gw', readFile);
  assert.equal(r.ok, false, 'expected the config to be refused');
  return r.ok ? [] : [...r.issues];
}

const minimal = { clusters: [{ name: 'blue', endpoints: ['http://127.0.0.1:8101'] }] };

describe('validateConfig', () => {
  it('workers: 1 by default, a number, or auto (one per CPU); anything else refused at its key', () => {
    assert.equal(ok(minimal).workers, 1);
    assert.equal(ok({ ...minimal, workers: 4 }).workers, 4);
    const auto = ok({ ...minimal, workers: 'auto' }).workers;
    assert.ok(auto >= 1 && auto <= 64, String(auto));
    for (const w of [0, 65, 2.5, '4', 'many', true]) {
      const issues = bad({ ...minimal, workers: w });
      assert.deepEqual(issues.map((i) => i.path), ['workers'], JSON.stringify(w));
      assert.match(issues[0]!.message, /"auto" or a whole number from 1 to 64/);
    }
  });

  it('fills every default from a minimal config', () => {
    const c = ok(minimal);
    assert.deepEqual(c.listen, { host: '0.0.0.0', port: 8000 });
    assert.deepEqual(c.admin, { listen: { host: '127.0.0.1', port: 9901 }, tokenEnv: 'SERVE_GATEWAY_ADMIN_TOKEN' });
    assert.equal(c.source, 'file');
    assert.equal(c.kubernetes, null);
    assert.equal(c.stateDir, resolve('/etc/gw/var'));
    assert.deepEqual(c.clusters, [{ name: 'blue', endpoints: ['http://127.0.0.1:8101'], dashboard: null, serveApps: null, serveConfigFile: null }]);
    assert.equal(c.applications.size, 0);
    assert.deepEqual(c.defaults, {
      weights: null,
      sticky: null,
      rollout: DEFAULT_ROLLOUT,
      spillover: false,
      ingressDeployment: null,
    });
    assert.deepEqual(c.defaults.rollout, {
      steps: [5, 25, 50, 100],
      intervalMs: 30_000,
      maxErrorRate: 0.02,
      maxP99LatencyMs: 5_000,
      maxTtfbP99Ms: null,
      minRequests: 50,
      onFailure: 'rollback',
    });
    assert.deepEqual(c.admission, { queueSize: 100, queueTimeoutMs: 30_000, gatewayReplicas: 1 });
    assert.deepEqual(c.upstream, {
      connectTimeoutMs: 5_000,
      headersTimeoutMs: 300_000,
      bodyTimeoutMs: 300_000,
      idleTimeoutMs: 4_000,
      maxConnectionsPerEndpoint: 0,
      bufferBodyBytes: 65_536,
      client: 'lean',
      parser: 'wasm',
    });
    assert.deepEqual(c.health, {
      probeIntervalMs: 2_000,
      probeTimeoutMs: 1_000,
      ejectAfterFailures: 3,
      ejectBaseMs: 5_000,
      ejectMaxMs: 60_000,
    });
    assert.deepEqual(c.retry, { maxAttempts: 3, budgetRatio: 0.2, minRetryConcurrency: 3 });
    assert.deepEqual(c.accessLog, { sampleRate: 1 });
    assert.equal(c.serveClusterHeader, true);
    assert.equal(c.dashboardPollMs, 2_000);
    assert.deepEqual(c.shutdown, { drainDelayMs: 1_000, gracePeriodMs: 30_000 });
    assert.deepEqual(c.server, {
      maxConnections: defaultMaxConnections(),
      requestHeaderTimeoutMs: 10_000,
      requestTimeoutMs: 60_000,
      idleTimeoutMs: 75_000,
      writeTimeoutMs: 60_000,
      engine: 'lean',
      parser: 'wasm',
    });
  });

  it('server: limits toward clients, refused with the key path when out of range', () => {
    const c = ok({ ...minimal, server: { max_connections: 100, request_header_timeout: '5s', request_timeout: 0, idle_timeout: '30s', write_timeout: '10s' } });
    assert.deepEqual(c.server, { maxConnections: 100, requestHeaderTimeoutMs: 5_000, requestTimeoutMs: 0, idleTimeoutMs: 30_000, writeTimeoutMs: 10_000, engine: 'lean', parser: 'wasm' });
    const issues = bad({ ...minimal, server: { max_connections: 0, request_header_timeout: 0, idle_timeout: '2h', write_tmeout: '1s' } });
    const paths = issues.map((i) => i.path);
    for (const p of ['server.max_connections', 'server.request_header_timeout', 'server.idle_timeout', 'server.write_tmeout']) assert.ok(paths.includes(p), `${p} in ${paths.join(', ')}`);
    const order = bad({ ...minimal, server: { request_header_timeout: '30s', request_timeout: '10s' } });
    assert.match(order[0]!.message, /must not exceed server.request_timeout/);
  });

  it('upstream.client: lean (default) or undici; anything else refused with the key path', () => {
    assert.equal(ok({ ...minimal, upstream: { client: 'lean' } }).upstream.client, 'lean');
    assert.equal(ok({ ...minimal, upstream: { client: 'undici' } }).upstream.client, 'undici');
    assert.equal(ok({ ...minimal, upstream: {} }).upstream.client, 'lean');
    for (const bad_ of ['node', 'LEAN', 1, true]) {
      const issues = bad({ ...minimal, upstream: { client: bad_ } });
      assert.ok(issues.some((i) => i.path === 'upstream.client'), JSON.stringify(issues));
    }
  });

  it('server.parser and upstream.parser: wasm (default) or native; anything else refused with the key path', () => {
    assert.equal(ok({ ...minimal, server: {} }).server.parser, 'wasm');
    assert.equal(ok({ ...minimal, upstream: {} }).upstream.parser, 'wasm');
    assert.equal(ok({ ...minimal, server: { parser: 'native' } }).server.parser, 'native');
    assert.equal(ok({ ...minimal, upstream: { parser: 'native' } }).upstream.parser, 'native');
    for (const bad_ of ['WASM', 'node', 1, true]) {
      assert.ok(bad({ ...minimal, server: { parser: bad_ } }).some((i) => i.path === 'server.parser'));
      assert.ok(bad({ ...minimal, upstream: { parser: bad_ } }).some((i) => i.path === 'upstream.parser'));
    }
  });

  it('server.engine: lean (default) or node; anything else refused with the key path', () => {
    assert.equal(ok({ ...minimal, server: { engine: 'lean' } }).server.engine, 'lean');
    assert.equal(ok({ ...minimal, server: { engine: 'node' } }).server.engine, 'node');
    assert.equal(ok({ ...minimal, server: {} }).server.engine, 'lean');
    for (const bad_ of ['undici', 'LEAN', 1, true]) {
      const issues = bad({ ...minimal, server: { engine: bad_ } });
      assert.ok(issues.some((i) => i.path === 'server.engine'), JSON.stringify(issues));
    }
  });

  it('max_connections default: half the descriptors left after a reserve, within 64..16384', () => {
    assert.equal(defaultMaxConnections('Max open files            1024                 1048576              files\n'), 384);
    assert.equal(defaultMaxConnections('Max open files            1048576              1048576              files\n'), 16_384);
    assert.equal(defaultMaxConnections('Max open files            200                  200                  files\n'), 64);
    assert.equal(defaultMaxConnections(null), 4096);
  });

  it('normalises a full config', () => {
    const c = ok({
      listen: '0.0.0.0:8080',
      admin: { listen: '[::1]:9000', token_env: 'MY_TOKEN' },
      source: 'file',
      state_dir: '/var/lib/gw',
      clusters: [
        {
          name: 'blue',
          endpoints: ['http://127.0.0.1:8101/', 'http://10.0.0.2:8000'],
          dashboard: 'http://127.0.0.1:8265',
          serve_config: 'serve.yaml',
        },
        { name: 'green', endpoints: ['http://127.0.0.1:8201'], serve_config: { applications: [{ name: 'llm', route_prefix: '/v2', import_path: 'x:y' }] } },
      ],
      applications: {
        llm: {
          weights: { blue: 90, green: 10 },
          sticky: { header: 'X-Session-Id' },
          rollout: { steps: [10, 100], interval: '1m', max_ttfb_p99: '800ms', on_failure: 'pause' },
          spillover: true,
          ingress_deployment: 'Ingress',
        },
      },
      admission: { queue_size: 10, queue_timeout: 5, gateway_replicas: 2 },
      upstream: { connect_timeout: '2s', headers_timeout: '10m', idle_timeout: '3s', max_connections_per_endpoint: 64 },
      health: { probe_interval: '500ms', eject_max: '2m' },
      retry: { max_attempts: 2, budget_ratio: 0.5 },
      access_log: { sample_rate: 0.1 },
      headers: { serve_cluster: false },
      dashboard_poll_interval: '5s',
      shutdown: { drain_delay: 0, grace_period: '1m' },
    });
    assert.deepEqual(c.listen, { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(c.admin.listen, { host: '::1', port: 9000 });
    assert.equal(c.admin.tokenEnv, 'MY_TOKEN');
    assert.equal(c.stateDir, '/var/lib/gw');
    const [blue, green] = c.clusters;
    assert.deepEqual(blue?.endpoints, ['http://127.0.0.1:8101', 'http://10.0.0.2:8000']);
    assert.equal(blue?.dashboard, 'http://127.0.0.1:8265');
    assert.deepEqual(blue?.serveApps, [
      {
        name: 'llm',
        routePrefix: '/llm',
        ingressDeployment: 'Ingress',
        maxOngoingRequests: 16,
        maxQueuedRequests: 40,
        replicas: 2,
        status: 'UNKNOWN',
      },
      {
        name: 'default',
        routePrefix: '/',
        ingressDeployment: '(default)',
        maxOngoingRequests: 5,
        maxQueuedRequests: -1,
        replicas: 1,
        status: 'UNKNOWN',
      },
    ]);
    assert.equal(green?.serveApps?.[0]?.routePrefix, '/v2');
    const llm = c.applications.get('llm');
    assert.deepEqual(llm, {
      weights: { blue: 90, green: 10 },
      sticky: { kind: 'header', name: 'x-session-id' },
      rollout: { ...DEFAULT_ROLLOUT, steps: [10, 100], intervalMs: 60_000, maxTtfbP99Ms: 800, onFailure: 'pause' },
      spillover: true,
      ingressDeployment: 'Ingress',
    });
    assert.deepEqual(c.admission, { queueSize: 10, queueTimeoutMs: 5_000, gatewayReplicas: 2 });
    assert.equal(c.upstream.connectTimeoutMs, 2_000);
    assert.equal(c.upstream.headersTimeoutMs, 600_000);
    assert.equal(c.upstream.idleTimeoutMs, 3_000);
    assert.equal(c.upstream.maxConnectionsPerEndpoint, 64);
    assert.equal(c.health.probeIntervalMs, 500);
    assert.equal(c.health.ejectMaxMs, 120_000);
    assert.deepEqual(c.retry, { maxAttempts: 2, budgetRatio: 0.5, minRetryConcurrency: 3 });
    assert.equal(c.accessLog.sampleRate, 0.1);
    assert.equal(c.serveClusterHeader, false);
    assert.equal(c.dashboardPollMs, 5_000);
    assert.deepEqual(c.shutdown, { drainDelayMs: 0, gracePeriodMs: 60_000 });
  });

  it('merges "*" over the built-in defaults and each app over "*"', () => {
    const c = ok({
      clusters: [
        { name: 'blue', endpoints: ['http://127.0.0.1:1'] },
        { name: 'green', endpoints: ['http://127.0.0.1:2'] },
      ],
      applications: {
        '*': { weights: { blue: 100, green: 0 }, sticky: { cookie: 'sid' }, rollout: { interval: '10s', min_requests: 5 } },
        llm: { rollout: { steps: [50, 100] }, sticky: null },
        chat: { weights: { green: 100 } },
      },
    });
    assert.deepEqual(c.defaults.weights, { blue: 100, green: 0 });
    assert.deepEqual(c.defaults.sticky, { kind: 'cookie', name: 'sid' });
    assert.equal(c.defaults.rollout.intervalMs, 10_000);
    assert.equal(c.defaults.rollout.minRequests, 5);
    assert.deepEqual(c.defaults.rollout.steps, [5, 25, 50, 100]);
    const llm = c.applications.get('llm');
    assert.deepEqual(llm?.weights, { blue: 100, green: 0 });
    assert.equal(llm?.sticky, null);
    assert.deepEqual(llm?.rollout.steps, [50, 100]);
    assert.equal(llm?.rollout.intervalMs, 10_000, 'rollout keys merge key by key');
    assert.equal(llm?.rollout.minRequests, 5);
    const chat = c.applications.get('chat');
    assert.deepEqual(chat?.weights, { green: 100 }, 'weights replace, not merge');
    assert.deepEqual(chat?.sticky, { kind: 'cookie', name: 'sid' });
    assert.equal(c.applications.has('*'), false);
  });

  it('reports every mistake of a bad config with its key path', () => {
    const issues = bad({
      listn: '0.0.0.0:8000',
      listen: 'localhost',
      admin: { listen: '127.0.0.1:9901', token: 'x' },
      clusters: [
        { name: 'blue', endpoints: ['http://127.0.0.1:8101'] },
        { name: 'Green_1', endpoints: ['https://x:1', 'http://127.0.0.1:8201/serve'], dashbaord: 'http://x:1' },
        { name: 'blue', endpoints: [] },
      ],
      applications: {
        llm: {
          weights: { blue: 80, purple: 10 },
          sticky: { header: 'a', cookie: 'b' },
          rollout: { steps: [50, 25, 100], interval: 'soon', max_error_rate: 2, on_failure: 'panic' },
        },
        '*': { spilover: true },
      },
      admission: { queue_size: -1 },
      upstream: { idle_timeout: '120s' },
      access_log: { sample_rate: 1.5 },
    });
    const got = issues.map((i) => `${i.path}: ${i.message}`);
    const expect: [string, RegExp][] = [
      ['listn', /unknown key \(did you mean "listen"\?\)/],
      ['listen', /must be "host:port"/],
      ['admin.token', /unknown key/],
      ['clusters[1].name', /DNS label/],
      ['clusters[1].endpoints[0]', /must be an http:\/\/ URL with host and port/],
      ['clusters[1].endpoints[1]', /must be an http:\/\/ URL with host and port/],
      ['clusters[1].dashbaord', /unknown key \(did you mean "dashboard"\?\)/],
      ['clusters[2].name', /duplicate cluster name "blue"/],
      ['clusters[2].endpoints', /non-empty list/],
      ['applications.llm.weights.purple', /unknown cluster "purple"/],
      ['applications.llm.weights', /must sum to 100 \(got 90\)/],
      ['applications.llm.sticky', /exactly one/],
      ['applications.llm.rollout.steps[1]', /ascending/],
      ['applications.llm.rollout.interval', /must be a duration/],
      ['applications.llm.rollout.max_error_rate', /0\.\.1/],
      ['applications.llm.rollout.on_failure', /rollback" or "pause/],
      ['applications.*.spilover', /unknown key \(did you mean "spillover"\?\)/],
      ['admission.queue_size', /integer >= 0/],
      ['upstream.idle_timeout', /less than 90s/],
      ['access_log.sample_rate', /0\.\.1/],
    ];
    for (const [path, re] of expect) {
      assert.ok(
        issues.some((i) => i.path === path && re.test(i.message)),
        `missing ${path} ~ ${re}; got:\n${got.join('\n')}`,
      );
    }
    assert.equal(issues.length, expect.length, `unexpected extra issues:\n${got.join('\n')}`);
    assert.ok(issues.every((i) => i.file === 'gw.yaml'));
  });

  it('requires at least one cluster and a mapping', () => {
    assert.deepEqual(
      bad({}).map((i) => i.path),
      ['clusters'],
    );
    assert.match(bad(null)[0]?.message ?? '', /empty/);
    assert.match(bad([1])[0]?.message ?? '', /mapping/);
    assert.deepEqual(
      bad({ clusters: [] }).map((i) => i.path),
      ['clusters'],
    );
  });

  it('checks the weights sum and ranges', () => {
    const base = {
      clusters: [
        { name: 'blue', endpoints: ['http://127.0.0.1:1'] },
        { name: 'green', endpoints: ['http://127.0.0.1:2'] },
      ],
    };
    ok({ ...base, applications: { a: { weights: { blue: 0, green: 100 } } } });
    ok({ ...base, applications: { a: { weights: { blue: 100 } } } });
    const i1 = bad({ ...base, applications: { a: { weights: { blue: 60, green: 60 } } } });
    assert.deepEqual(i1.map((i) => `${i.path}: ${i.message}`), ['applications.a.weights: must sum to 100 (got 120)']);
    const i2 = bad({ ...base, applications: { a: { weights: { blue: 100.5, green: -0.5 } } } });
    assert.deepEqual(i2.map((i) => i.path), ['applications.a.weights.blue', 'applications.a.weights.green']);
    const i3 = bad({ ...base, applications: { a: { weights: {} } } });
    assert.deepEqual(i3.map((i) => i.path), ['applications.a.weights']);
  });

  it('validates rollout steps', () => {
    const at = (steps: unknown) =>
      bad({ ...minimal, applications: { a: { rollout: { steps } } } }).map((i) => `${i.path}: ${i.message}`);
    assert.deepEqual(at([5, 50]), ['applications.a.rollout.steps: must end with 100 (got 50)']);
    assert.deepEqual(at([0, 100]), ['applications.a.rollout.steps[0]: must be an integer in 1..100 (got 0)']);
    assert.deepEqual(at([]), ['applications.a.rollout.steps: must be a non-empty list of weights, e.g. [5, 25, 50, 100]']);
    assert.deepEqual(ok({ ...minimal, applications: { a: { rollout: { steps: [100] } } } }).applications.get('a')?.rollout.steps, [100]);
  });

  it('reports serve_config problems under the cluster key', () => {
    const issues = bad({
      clusters: [
        { name: 'blue', endpoints: ['http://127.0.0.1:1'], serve_config: 'missing.yaml' },
        { name: 'green', endpoints: ['http://127.0.0.1:2'], serve_config: 'applications:\n  - name: a\n    route_prefix: nope\n' },
      ],
      applications: { llm: { ingress_deployment: 'Nope' } },
    });
    assert.equal(issues.length, 2);
    assert.equal(issues[0]?.path, 'clusters[0].serve_config');
    assert.match(issues[0]?.message ?? '', /cannot read serve config file "missing.yaml".*ENOENT/);
    assert.equal(issues[1]?.path, 'clusters[1].serve_config.applications[0].route_prefix');
  });

  it('passes ingress_deployment overrides to the serve config', () => {
    const c = ok({
      clusters: [{ name: 'blue', endpoints: ['http://127.0.0.1:1'], serve_config: 'serve.yaml' }],
      applications: { llm: { ingress_deployment: 'Model' } },
    });
    const llm = c.clusters[0]?.serveApps?.find((a) => a.name === 'llm');
    assert.equal(llm?.ingressDeployment, 'Model');
    assert.equal(llm?.replicas, 3, 'autoscaling initial_replicas');
    assert.equal(llm?.maxOngoingRequests, 8);
    const issues = bad({ ...minimal, applications: { '*': { ingress_deployment: 'X' } } });
    assert.equal(issues[0]?.path, 'applications.*.ingress_deployment');
  });

  it('source: kubernetes: discovered clusters, weights by role, every problem by key path', () => {
    const c = ok({ source: 'kubernetes', kubernetes: { namespace: 'ray', rayservices: ['llm'], upgrade: 'rollout', kubeconfig: 'kc.yaml' }, applications: { llm: { weights: { active: 100 } } } });
    assert.equal(c.source, 'kubernetes');
    assert.deepEqual(c.clusters, []);
    assert.deepEqual(c.kubernetes, {
      namespace: 'ray',
      rayservices: ['llm'],
      selector: null,
      kubeconfig: resolve('/etc/gw/kc.yaml'),
      upgrade: 'rollout',
      lastKnownGood: resolve('/etc/gw/var/last-known-good.json'),
      bootWaitMs: 1_000,
      stateConfigMap: null,
      leaderLease: null,
      leaseDurationMs: 15_000,
      gatewayApi: null,
    });
    // Gateway API mode (SPEC §11): the default controller name, a named Service, refusals with the key path.
    const gw = ok({ source: 'kubernetes', kubernetes: { rayservices: ['llm'], gateway_api: { enabled: true, service: 'serve-gateway' } } }).kubernetes!.gatewayApi;
    assert.deepEqual(gw, { controllerName: 'serve-gateway.io/gateway-controller', service: 'serve-gateway' });
    assert.equal(ok({ source: 'kubernetes', kubernetes: { rayservices: ['llm'], gateway_api: { enabled: false } } }).kubernetes!.gatewayApi, null);
    assert.equal(ok({ source: 'kubernetes', kubernetes: { rayservices: ['llm'], gateway_api: { controller_name: 'example.com/ts-gateway' } } }).kubernetes!.gatewayApi!.controllerName, 'example.com/ts-gateway');
    const badName = bad({ source: 'kubernetes', kubernetes: { rayservices: ['llm'], gateway_api: { controller_name: 'no-domain' } } });
    assert.deepEqual(badName.map((i) => i.path), ['kubernetes.gateway_api.controller_name']);
    assert.match(badName[0]!.message, /must be a domain-prefixed path/);
    assert.deepEqual(bad({ source: 'kubernetes', kubernetes: { rayservices: ['llm'], gateway_api: { enabled: true, port: 80 } } }).map((i) => i.path), ['kubernetes.gateway_api.port']);
    assert.equal(ok({ source: 'kubernetes', kubernetes: { selector: 'team=llm' } }).kubernetes!.upgrade, 'follow');
    // Several replicas: both names together, a lease duration, and no hand-set divisor.
    const ha = ok({ source: 'kubernetes', kubernetes: { rayservices: ['llm'], state_configmap: 'gw-state', leader_lease: 'gw-leader', lease_duration: '5s' } }).kubernetes!;
    assert.deepEqual([ha.stateConfigMap, ha.leaderLease, ha.leaseDurationMs], ['gw-state', 'gw-leader', 5_000]);
    const divisor = bad({ source: 'kubernetes', kubernetes: { rayservices: ['llm'], state_configmap: 'gw-state', leader_lease: 'gw-leader' }, admission: { gateway_replicas: 3 } });
    assert.deepEqual(divisor.map((i) => i.path), ['admission.gateway_replicas']);
    assert.match(divisor[0]!.message, /counted, not set/);
    assert.deepEqual(bad({ source: 'kubernetes', kubernetes: { rayservices: ['llm'], leader_lease: 'Bad Name', state_configmap: 'ok' } }).map((i) => i.path), ['kubernetes.leader_lease']);
    assert.match(bad({ source: 'kubernetes', kubernetes: { rayservices: ['llm'] }, admission: { gateway_replicas: 2 } })[0]!.message, /counted, not set, in kubernetes mode/);
    const issues = bad({
      source: 'kubernetes',
      kubernetes: { rayservices: ['Bad_Name'], selector: 'team=llm', upgrade: 'yolo', state_configmap: 'x', colour: 1 },
      clusters: minimal.clusters,
      applications: { llm: { weights: { blue: 100 } } },
    });
    const paths = issues.map((i) => i.path);
    for (const p of ['kubernetes.rayservices[0]', 'kubernetes.selector', 'kubernetes.upgrade', 'kubernetes.leader_lease', 'kubernetes.colour', 'clusters', 'applications.llm.weights.blue']) {
      assert.ok(paths.includes(p), `${p} in ${paths.join(', ')}`);
    }
    assert.match(bad({ source: 'kubernetes' })[0]!.message, /rayservices or selector/);
    assert.match(bad({ ...minimal, kubernetes: { selector: 'a=b' } })[0]!.message, /only read with source: kubernetes/);
  });

  it('refuses unknown sources', () => {
    assert.match(bad({ ...minimal, source: 'consul' })[0]?.message ?? '', /"file" or "kubernetes"/);
  });

  it('treats empty sections as absent', () => {
    const c = ok({ ...minimal, admission: null, upstream: null, applications: null });
    assert.equal(c.admission.queueSize, 100);
  });

  it('reports an endpoint shared by two clusters', () => {
    const issues = bad({
      clusters: [
        { name: 'blue', endpoints: ['http://127.0.0.1:1'] },
        { name: 'green', endpoints: ['http://127.0.0.1:1/'] },
      ],
    });
    assert.deepEqual(issues.map((i) => `${i.path}: ${i.message}`), [
      'clusters[1].endpoints[0]: http://127.0.0.1:1 is already an endpoint of cluster "blue"',
    ]);
  });
});

describe('parseDuration', () => {
  it('reads units and bare numbers as seconds', () => {
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('2m'), 120_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('1.5s'), 1_500);
    assert.equal(parseDuration(30), 30_000);
    assert.equal(parseDuration(0.25), 250);
    assert.equal(parseDuration(0), 0);
    assert.equal(parseDuration('0'), 0);
  });
  it('rejects anything else', () => {
    for (const v of ['30', 'soon', '-1s', '5 minutes', '1d', -1, Number.NaN, true, null, {}]) {
      assert.equal(parseDuration(v), null, String(v));
    }
  });
});

describe('parseHostPort / parseOrigin', () => {
  it('parses host:port', () => {
    assert.deepEqual(parseHostPort('0.0.0.0:8000'), { host: '0.0.0.0', port: 8000 });
    assert.deepEqual(parseHostPort('[::]:80'), { host: '::', port: 80 });
    assert.deepEqual(parseHostPort('gw.local:0'), { host: 'gw.local', port: 0 });
    assert.equal(parseHostPort('8000'), null);
    assert.equal(parseHostPort('host:70000'), null);
    assert.equal(parseHostPort('http://h:1'), null);
  });
  it('accepts only http origins with an explicit port and no path', () => {
    assert.equal(parseOrigin('http://127.0.0.1:8101'), 'http://127.0.0.1:8101');
    assert.equal(parseOrigin('http://svc.ns.svc:8000/'), 'http://svc.ns.svc:8000');
    assert.equal(parseOrigin('http://h:80'), 'http://h');
    assert.equal(parseOrigin('http://h'), null);
    assert.equal(parseOrigin('https://h:443'), null);
    assert.equal(parseOrigin('http://h:1/path'), null);
    assert.equal(parseOrigin('http://h:1?x=1'), null);
    assert.equal(parseOrigin('h:1'), null);
  });
});
