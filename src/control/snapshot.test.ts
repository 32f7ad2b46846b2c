import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Limiter } from '../admission/limiter.ts';
import { ManualClock } from '../core/clock.ts';
import type { GwRule } from '../core/gateway-rule.ts';
import { validateConfig } from '../config/schema.ts';
import type { GatewayConfig } from '../config/types.ts';
import type { AppClusterHandles } from '../metrics/instruments.ts';
import { matchGateway } from '../routing/gateway-routes.ts';
import { UpstreamCluster } from '../upstream/cluster.ts';
import { buildSnapshot, PLAIN_SERVICE_LIMIT, type ClusterApps, type SnapshotBindings } from './snapshot.ts';
import type { StepStats } from './step-stats.ts';

const app = (prefix: string) => ({ applications: [{ name: 'llm', route_prefix: prefix, import_path: 'x:y', deployments: [{ name: 'D', num_replicas: 2, max_ongoing_requests: 8 }] }] });

function config(): GatewayConfig {
  const r = validateConfig(
    {
      clusters: [
        { name: 'blue', endpoints: ['http://127.0.0.1:8101'], serve_config: app('/llm') },
        { name: 'green', endpoints: ['http://127.0.0.1:8201'], serve_config: app('/llm') },
      ],
    },
    'gw.yaml',
    '/etc/gw',
    () => '',
  );
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  // Kubernetes mode adds a plain Service's cluster to the effective config (its name is not a file-mode name).
  return { ...r.config, clusters: [...r.config.clusters, { name: 'service/echo:80', endpoints: ['http://127.0.0.1:8301'], dashboard: null, serveApps: null, plainService: true }] };
}

function bindings(cfg: GatewayConfig): SnapshotBindings {
  const clock = new ManualClock(0);
  return {
    cluster: (name) => new UpstreamCluster(cfg.clusters.find((c) => c.name === name)!, cfg.upstream),
    limiter: (a, c, limit, q, t) => new Limiter(a, c, limit, q, t, clock),
    handles: () => ({}) as AppClusterHandles,
    stats: () => ({}) as StepStats,
  };
}

const rule = (backends: GwRule['backends']): GwRule => ({ route: 'ray/llm-httproute', ruleIndex: 0, hostnames: [], pathType: 'PathPrefix', path: '/', method: null, headers: [], queryParams: [], backends, requestHeaders: null, redirect: null });

describe('buildSnapshot in Gateway API mode', () => {
  it('an HTTPRoute rule owns the weights of the apps behind its Ray clusters; plain backends get no admission limit', () => {
    const cfg = config();
    const clusterApps = new Map<string, ClusterApps>(cfg.clusters.map((c) => [c.name, { apps: c.serveApps ?? [], source: c.serveApps === null ? 'none' : 'serve_config', stale: false }]));
    const snap = buildSnapshot(
      {
        version: 1,
        config: cfg,
        clusterApps,
        // The traffic state says otherwise: the HTTPRoute wins.
        weights: new Map([['llm', { blue: 100, green: 0, 'service/echo:80': 0 }]]),
        // In precedence order (evaluateGatewayApi sorts them): the longer path first.
        gatewayRules: [
          { ...rule([{ kind: 'service', cluster: 'service/echo:80', weight: 1, service: 'echo' }, { kind: 'service', cluster: 'service/gone:80', weight: 1, service: 'gone' }]), ruleIndex: 1, path: '/echo' },
          rule([{ kind: 'ray', cluster: 'blue', weight: 1, service: 'blue-serve-svc' }, { kind: 'ray', cluster: 'green', weight: 2, service: 'green-serve-svc' }]),
        ],
      },
      bindings(cfg),
    );
    const llm = snap.apps.get('llm')!;
    assert.equal(llm.weightsFrom, 'ray/llm-httproute');
    assert.deepEqual(llm.split.weights, [33, 67, 0], 'shown in percent');
    const gw = snap.gateway!;
    const m = matchGateway(gw, '', '/llm/x', 'GET', () => null, '', 0);
    assert.deepEqual(m.kind === 'route' ? [m.route.name, m.route.split.weights, m.route.targets.map((t) => t.cluster.name)] : m.kind, ['llm', [1, 2], ['blue', 'green']]);
    const plain = matchGateway(gw, '', '/echo/x', 'GET', () => null, '', 0.1);
    assert.deepEqual(plain.kind === 'route' ? [plain.route.name, plain.route.targets[0]!.limit] : plain.kind, ['ray/llm-httproute', PLAIN_SERVICE_LIMIT]);
    // A plain cluster the config does not have yet: its share fails (500), nothing throws.
    const gone = matchGateway(gw, '', '/echo/x', 'GET', () => null, '', 0.9);
    assert.equal(gone.kind, 'invalid');
  });
});
