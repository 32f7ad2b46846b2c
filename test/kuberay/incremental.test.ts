// Issue 10 with the genuine KubeRay operator (v1.5.0, feature gate
// RayServiceIncrementalUpgrade on): serve-gateway is the Gateway API
// implementation of KubeRay's NewClusterWithIncrementalUpgrade. KubeRay itself
// creates `<rs>-gateway`, `<rs>-httproute` and the per-cluster serve Services,
// reads back the status the gateway writes (IsGatewayReady / IsHTTPRouteReady),
// raises target_capacity through the simulated dashboards and moves the
// HTTPRoute weights; the gateway follows each weight under load. The API
// server, controller manager and operator are the real ones (stack.ts); only
// Ray is simulated (RayFleet, which applies target_capacity in place).
// Run with `npm run test:kuberay`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { DEFAULT_BEHAVIOUR } from '../../src/sim/sim-config.ts';
import type { ServiceAccountAccess } from '../k8s/apiserver.ts';
import { REPO } from '../k8s/apiserver.ts';
import { appWeights, startK8sGateway, statusUntil, until } from '../k8s/kuberay-player.ts';
import type { K8sGateway } from '../k8s/kuberay-player.ts';
import { CONTROLLER_NAME, CountingLoad, GATEWAY_API_CLUSTER_RULES, GATEWAY_API_ROLE_RULES, GATEWAY_CLASS, GW_API, GatewayApiObjects, isGatewayReady, isHTTPRouteReady } from '../k8s/gateway-player.ts';
import { RayServiceUnderTest } from './rayservice.ts';
import { KUBERAY_MS, NS, REACT_MS } from './scenario.ts';
import { STACK_DEADLINE, kubeRayUnavailable, startKubeRayStack } from './stack.ts';
import type { KubeRayStack } from './stack.ts';
import { join } from 'node:path';

const unavailable = kubeRayUnavailable();
const RS = 'inc';
const APPS = ['llm', 'default'] as const;
const GATEWAY_CRDS = ['gatewayclasses', 'gateways', 'httproutes', 'referencegrants'].map((p) => join(REPO, `deploy/crds/gateway-api/gateway.networking.k8s.io_${p}.yaml`));
/** A weight window is judged when it holds this many requests (±5 points is then > 3 σ). */
const MIN_JUDGED = 800;

interface RouteWeights {
  readonly at: number;
  readonly weights: Readonly<Record<string, number>>;
}

describe('the genuine KubeRay operator runs its incremental upgrade through serve-gateway (Gateway API)', { skip: unavailable ?? false, concurrency: false }, () => {
  let stack: KubeRayStack;
  let sa: ServiceAccountAccess;
  let g: K8sGateway | null = null;
  let rs: RayServiceUnderTest | null = null;
  let load: CountingLoad | null = null;

  before(
    async () => {
      stack = await startKubeRayStack({
        featureGates: 'RayServiceIncrementalUpgrade=true',
        extraCrds: GATEWAY_CRDS,
        fleet: { behaviour: new Map([['llm', { ...DEFAULT_BEHAVIOUR, latencyMs: 2 }], ['default', { ...DEFAULT_BEHAVIOUR, latencyMs: 1 }]]) },
      });
      sa = await stack.api.serviceAccountKubeConfig({ name: 'serve-gateway', namespace: NS, rules: [...GATEWAY_API_ROLE_RULES], clusterRules: [...GATEWAY_API_CLUSTER_RULES] });
      console.log(`# stack up in ${stack.timings.total} ms (operator with RayServiceIncrementalUpgrade=true)`);
    },
    { timeout: STACK_DEADLINE.setup },
  );

  after(async () => {
    await load?.stop().catch(() => {});
    await g?.close().catch(() => {});
    await rs?.stop();
    await stack?.stop();
  });

  test('KubeRay advances only on the status the gateway writes; every weight it writes is followed within ±5 points; 0 failed requests', { timeout: 420_000 }, async () => {
    const api = new GatewayApiObjects(stack.api, NS);
    const custom = stack.api.kc.makeApiClient(CustomObjectsApi);
    await api.createClass(GATEWAY_CLASS);
    await api.createService('serve-gateway', { 'app.kubernetes.io/name': 'serve-gateway' }, [{ name: 'http', port: 80, targetPort: 8000 }]);
    g = await startK8sGateway({ kubeconfig: sa.kubeconfigPath, namespace: NS, rayservices: [RS], gatewayApi: { enabled: true, controller_name: CONTROLLER_NAME, service: 'serve-gateway' } });
    const gw = g;
    const fail = (msg: string) => `${msg}\nRayService status changes:\n${rs?.history() ?? ''}\n${stack.describe()}\ngateway log: ${gw.problems()}`;

    rs = new RayServiceUnderTest(stack.api.kc, NS, {
      name: RS,
      deletionDelaySeconds: 5,
      incremental: { gatewayClassName: GATEWAY_CLASS, stepSizePercent: 25, intervalSeconds: 4, maxSurgePercent: 50 },
    });
    await rs.create();
    const running = await rs.waitFor('Running with every app RUNNING', KUBERAY_MS, (c) => c.active !== null && c.ready.startsWith('True') && c.activeApps === 'default:RUNNING,llm:RUNNING', 0, () => stack.describe());
    const blue = running.active!;

    // KubeRay's own objects, and the status it reads back.
    const ready = await until('KubeRay\'s Gateway and HTTPRoute ready as IsGatewayReady / IsHTTPRouteReady check them', KUBERAY_MS, async () => {
      const [gwObj, route] = await Promise.all([api.get('gateways', `${RS}-gateway`), api.get('httproutes', `${RS}-httproute`)]);
      return isGatewayReady(gwObj) && isHTTPRouteReady(route, `${RS}-gateway`, NS) ? { gwObj, route } : undefined;
    }, { everyMs: 100, observe: () => fail('not ready') });
    assert.equal(ready.gwObj.spec.gatewayClassName, GATEWAY_CLASS);
    assert.deepEqual(ready.route.spec.rules[0].backendRefs.map((b: { name: string; weight: number }) => [b.name, b.weight]), [[`${blue}-serve-svc`, 100]]);
    await statusUntil(gw, `both apps on ${blue}, weights from the HTTPRoute`, REACT_MS, (s) =>
      APPS.every((a) => appWeights(s, a)[blue] === 100 && (s['apps'] as Array<Record<string, unknown>>).find((x) => x['name'] === a)?.['weights_from'] === `httproute ${NS}/${RS}-httproute`),
    );
    await until(`a request answered by ${blue}`, REACT_MS, async () => {
      const r = await fetch(`${gw.gw.url}/llm/warm`);
      await r.arrayBuffer();
      return r.status === 200 && r.headers.get('x-serve-cluster') === blue;
    });

    // Every weight KubeRay writes to the HTTPRoute, with when it appeared.
    const seen: RouteWeights[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        try {
          const route = (await custom.getNamespacedCustomObject({ ...GW_API, plural: 'httproutes', namespace: NS, name: `${RS}-httproute` })) as { spec: { rules: Array<{ backendRefs: Array<{ name: string; weight?: number }> }> } };
          const weights = Object.fromEntries(route.spec.rules[0]!.backendRefs.map((b) => [b.name.replace(/-serve-svc$/, ''), b.weight ?? 1]));
          if (JSON.stringify(seen.at(-1)?.weights) !== JSON.stringify(weights)) seen.push({ at: performance.now(), weights });
        } catch {
          /* the next poll */
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    // When the gateway applied each weight set (its status), polled the same way.
    const applied: RouteWeights[] = [];
    let tracing = true;
    const tracer = (async () => {
      while (tracing) {
        try {
          const s = await gw.status();
          const w = appWeights(s, 'llm');
          const weights = Object.fromEntries(Object.entries(w).filter(([, x]) => x > 0));
          if (JSON.stringify(applied.at(-1)?.weights) !== JSON.stringify(weights)) applied.push({ at: performance.now(), weights });
        } catch {
          /* the next poll */
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    load = new CountingLoad(gw.gw.url).start();
    const l = load;
    await until('load on blue', REACT_MS, () => l.samples.length >= 300);
    const specAt = performance.now();
    await rs.upgrade();
    const pending = await rs.waitFor('a pending cluster', KUBERAY_MS, (c) => c.pending !== null && c.pending !== blue, specAt);
    const green = pending.pending!;
    const promoted = await rs.waitFor(`${green} promoted after the incremental upgrade`, 300_000, (c) => c.active === green && c.pending === null, specAt, () => fail(`weights KubeRay wrote: ${seen.map((x) => JSON.stringify(x.weights)).join(' → ')}`));
    await until(`the HTTPRoute names ${green} alone`, KUBERAY_MS, () => JSON.stringify(seen.at(-1)?.weights) === JSON.stringify({ [green]: 100 }));
    await until(`the gateway sends everything to ${green}`, REACT_MS, () => JSON.stringify(applied.at(-1)?.weights) === JSON.stringify({ [green]: 100 }));
    const settleFrom = performance.now();
    await until('1000 requests after the promotion', 120_000, () => l.countIn(settleFrom, Infinity).n >= 1000);
    watching = false;
    tracing = false;
    await Promise.all([watcher, tracer]);
    await l.stop();

    // Each weight set KubeRay wrote: when the gateway applied it, and the share each cluster got until the next one.
    const norm = (w: Readonly<Record<string, number>>) => JSON.stringify(Object.fromEntries(Object.entries(w).filter(([, x]) => x > 0).sort()));
    const judged: string[] = [];
    for (let i = 0; i < seen.length; i++) {
      const s = seen[i]!;
      const total = Object.values(s.weights).reduce((a, b) => a + b, 0);
      const pct = Object.fromEntries(Object.entries(s.weights).map(([c, w]) => [c, (w * 100) / total]));
      const want = norm(Object.fromEntries(Object.entries(pct).map(([c, w]) => [c, Math.round(w)])));
      // In effect already when this poll saw the write (the status poll was quicker), or shown later.
      const before = applied.filter((a) => a.at < s.at).at(-1);
      const app = before !== undefined && norm(before.weights) === want ? before : applied.find((a) => a.at >= s.at && norm(a.weights) === want);
      assert.ok(app !== undefined, fail(`the gateway never showed the weights ${JSON.stringify(s.weights)} KubeRay wrote (applied: ${applied.map((a) => JSON.stringify(a.weights)).join(' → ')})`));
      const from = Math.max(app.at, s.at);
      const end = seen[i + 1]?.at ?? settleFrom + 1e9;
      const { n, by } = l.countIn(from, end);
      const measured = Object.fromEntries(Object.keys(pct).map((c) => [c, n === 0 ? 0 : Math.round(((by.get(c) ?? 0) * 1000) / n) / 10]));
      judged.push(`${JSON.stringify(s.weights)} applied +${Math.max(0, Math.round(app.at - s.at))} ms → ${JSON.stringify(measured)} n=${n}`);
      for (const c of by.keys()) assert.ok(c in pct, fail(`a request went to ${c}, which the HTTPRoute did not name then`));
      if (n >= MIN_JUDGED) for (const [c, w] of Object.entries(pct)) assert.ok(Math.abs(measured[c]! - w) <= 5, fail(`at ${JSON.stringify(s.weights)} ${c} got ${measured[c]}% of ${n} (±5 points)`));
    }
    console.log(`# KubeRay wrote ${seen.length} weight sets; promotion ${Math.round(promoted.at - specAt)} ms after the spec change:`);
    for (const j of judged) console.log(`#   ${j}`);
    const mid = seen.filter((s) => Object.keys(s.weights).length === 2 && Object.values(s.weights).every((w) => w > 0));
    assert.ok(mid.length >= 2, fail(`KubeRay moved the weights in steps (saw ${seen.map((x) => JSON.stringify(x.weights)).join(' → ')})`));
    const failures = l.failures();
    console.log(`# ${l.samples.length} requests, ${failures.length} failed`);
    assert.equal(failures.length, 0, fail(`failed: ${failures.slice(0, 5).map((f) => `${f.status} ${f.error}`).join('; ')}`));
  });
});
