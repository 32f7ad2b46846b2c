// Issue 10, must show: serve-gateway as the Gateway API implementation behind
// KubeRay's incremental upgrade (NewClusterWithIncrementalUpgrade), against a
// real kube-apiserver with the Gateway API standard-channel CRDs (v1.4.0,
// vendored) and the RayService CRD. The test plays KubeRay (gateway-player.ts:
// the serve Services, Gateway and HTTPRoute as KubeRay builds them, its
// readiness checks read back from the API server, its weight and capacity
// loop) and the kubelet (kuberay-player.ts); the gateway runs in this process
// as a ServiceAccount bound to its Role and ClusterRole only.
//
// - The whole upgrade step by step, then a second upgrade rolled back midway:
//   every status the test reads is what IsGatewayReady / IsHTTPRouteReady
//   require, traffic counted at the simulated Serve clusters follows each
//   weight within ±5 points, 0 failed requests.
// - Status correctness: BackendNotFound (and its repair), NotAllowedByListeners,
//   a Gateway of another class left alone, observedGeneration after edits, the
//   admin API refusing weights an HTTPRoute owns.
// Run with `npm run test:k8s`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { APISERVER_SETUP_TIMEOUT_MS, apiServerUnavailable, startApiServer } from './apiserver.ts';
import type { ApiServer, ServiceAccountAccess } from './apiserver.ts';
import { GATEWAY_ROLE_RULES, KubeRayPlayer, appWeights, replicaRoleRules, sleep, startK8sGateway, statusUntil, until } from './kuberay-player.ts';
import type { K8sGateway } from './kuberay-player.ts';
import {
  CONTROLLER_NAME,
  GATEWAY_API_CLUSTER_RULES,
  GATEWAY_API_CRDS,
  GATEWAY_API_ROLE_RULES,
  GATEWAY_CLASS,
  GatewayApiObjects,
  CountingLoad,
  IncrementalPlayer,
  isGatewayReady,
  isHTTPRouteReady,
  type Obj,
} from './gateway-player.ts';

const unavailable = apiServerUnavailable();
const NS = 'ray';
const RS = 'llm';
/** A reaction on a busy 2-core machine (typical: well under a second). */
const REACT_MS = 30_000;
const APPS = ['llm', 'default'] as const;
const SIM_APPS = { llm: { latency_ms: 2 }, default: { latency_ms: 1 } };
/** Requests counted for each weight before KubeRay's next step (±5 points is then > 4 σ). */
const SAMPLES_PER_STEP = 1500;
const TOLERANCE_POINTS = 5;

/** GET with a Host header of our choosing (fetch sets its own), body as text. */
function getWithHost(base: string, path: string, host: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { headers: { host }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

interface StepReport {
  readonly weights: Readonly<Record<string, number>>;
  /** Weight write → the gateway applied it (null: no write before this step). */
  readonly applyMs: number | null;
  readonly n: number;
  readonly measured: Readonly<Record<string, number>>;
}

describe('Gateway API mode: KubeRay incremental upgrade through serve-gateway, real kube-apiserver', { skip: unavailable ?? false, concurrency: false }, () => {
  let server: ApiServer;
  let sa: ServiceAccountAccess;
  let api: GatewayApiObjects;
  let g: K8sGateway;
  let p: KubeRayPlayer;
  let inc: IncrementalPlayer;
  const loads: CountingLoad[] = [];

  before(
    async () => {
      server = await startApiServer();
      await server.applyCrds(GATEWAY_API_CRDS);
      sa = await server.serviceAccountKubeConfig({ name: 'serve-gateway', namespace: NS, rules: [...GATEWAY_API_ROLE_RULES], clusterRules: [...GATEWAY_API_CLUSTER_RULES] });
      api = new GatewayApiObjects(server, NS);
      // The chart's GatewayClass and the gateway's own Service (its ClusterIP is the Gateways' address).
      await api.createClass(GATEWAY_CLASS);
      await api.createService('serve-gateway', { 'app.kubernetes.io/name': 'serve-gateway' }, [{ name: 'http', port: 80, targetPort: 8000 }]);
      console.log(`# kube-apiserver ready in ${server.lastStartMs} ms`);
    },
    { timeout: APISERVER_SETUP_TIMEOUT_MS },
  );

  after(async () => {
    for (const l of loads) await l.stop().catch(() => {});
    await g?.close().catch(() => {});
    await p?.stopAll().catch(() => {});
    await server?.stop();
  });

  /** The gateway's status shows `weights` (percent) for every app, from the HTTPRoute; returns when it did. */
  async function applied(weights: Readonly<Record<string, number>>): Promise<number> {
    const want = Object.entries(weights).filter(([, w]) => w > 0);
    const seen = await statusUntil(
      g,
      `weights ${JSON.stringify(weights)} applied from the HTTPRoute`,
      REACT_MS,
      (s) =>
        APPS.every((a) => {
          const app = (s['apps'] as Array<Record<string, unknown>>).find((x) => x['name'] === a);
          const w = appWeights(s, a);
          return app?.['weights_from'] === `httproute ${NS}/${RS}-httproute` && want.every(([c, x]) => w[c] === x) && Object.entries(w).every(([c, x]) => x === 0 || weights[c] === x);
        }),
      10,
    );
    return seen.at;
  }

  /** After a weight write: when the gateway applied it, then SAMPLES_PER_STEP requests counted, compared with the weights. */
  async function measureStep(load: CountingLoad, weights: Readonly<Record<string, number>>, afterWrite = true): Promise<StepReport> {
    const writeAt = afterWrite ? inc.writes.at(-1)!.at : null;
    const appliedAt = await applied(weights);
    await until(`${SAMPLES_PER_STEP} requests at ${JSON.stringify(weights)}`, 120_000, () => load.countIn(appliedAt, Infinity).n >= SAMPLES_PER_STEP);
    const { n, by } = load.countIn(appliedAt, performance.now());
    const measured: Record<string, number> = {};
    for (const c of Object.keys(weights)) measured[c] = Math.round(((by.get(c) ?? 0) * 1000) / n) / 10;
    for (const [c, w] of Object.entries(weights)) {
      assert.ok(Math.abs(measured[c]! - w) <= TOLERANCE_POINTS, `at ${JSON.stringify(weights)} cluster ${c} got ${measured[c]}% of ${n} requests (tolerance ±${TOLERANCE_POINTS} points)`);
    }
    for (const c of by.keys()) assert.ok(c in weights, `a request was answered by ${c}, which the HTTPRoute does not name`);
    return { weights, applyMs: writeAt === null ? null : Math.round(appliedAt - writeAt), n, measured };
  }

  test('KubeRay’s incremental upgrade step by step, then a second upgrade rolled back midway: weights followed within ±5 points, 0 failed requests', { timeout: 600_000 }, async () => {
    p = new KubeRayPlayer({ server, namespace: NS, name: RS, deletionDelaySeconds: 2, apps: SIM_APPS });
    inc = new IncrementalPlayer(p, server, { stepSizePercent: 25, intervalSeconds: 1, maxSurgePercent: 50 });
    await p.createRayService();
    const blue = await p.deployFirstCluster();
    g = await startK8sGateway({
      kubeconfig: sa.kubeconfigPath,
      namespace: NS,
      rayservices: [RS],
      upgrade: 'follow',
      gatewayApi: { enabled: true, controller_name: CONTROLLER_NAME, service: 'serve-gateway' },
    });
    // §1.2 step 5, after the first promotion: the serve Service, the Gateway, the HTTPRoute (active 100).
    await inc.createServeService(blue);
    const gwObj = await inc.createGateway(GATEWAY_CLASS);
    await inc.writeRoute([[blue, 100]]);

    // What KubeRay reads: Gateway Accepted+Programmed, the route's parent Accepted+ResolvedRefs.
    const readyAt = performance.now();
    await until('Gateway and HTTPRoute ready as KubeRay checks them', REACT_MS, () => inc.ready(), { everyMs: 20 });
    console.log(`# Gateway and HTTPRoute ready ${Math.round(performance.now() - readyAt)} ms after the HTTPRoute was created`);
    const gwNow = await api.get('gateways', inc.gatewayName);
    const routeNow = await api.get('httproutes', inc.routeName);
    const svc = await api.core.readNamespacedService({ name: 'serve-gateway', namespace: NS });
    const gen = gwNow.metadata!.generation!;
    const cond = (list: any[], type: string) => list.find((c) => c.type === type); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.deepEqual(gwNow.status.addresses, [{ type: 'IPAddress', value: svc.spec!.clusterIP }]);
    for (const t of ['Accepted', 'Programmed']) assert.deepEqual([cond(gwNow.status.conditions, t).status, cond(gwNow.status.conditions, t).reason, cond(gwNow.status.conditions, t).observedGeneration], ['True', t, gen]);
    const listener = gwNow.status.listeners[0];
    assert.equal(gwNow.status.listeners.length, 1);
    assert.equal(listener.name, 'http');
    assert.deepEqual(listener.supportedKinds, [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }]);
    assert.equal(listener.attachedRoutes, 1);
    for (const [t, st] of [['Accepted', 'True'], ['Programmed', 'True'], ['ResolvedRefs', 'True'], ['Conflicted', 'False']] as const) assert.equal(cond(listener.conditions, t).status, st, `listener ${t}`);
    const parents = routeNow.status.parents;
    assert.equal(parents.length, 1);
    assert.deepEqual(parents[0].parentRef, { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: inc.gatewayName, namespace: NS }, 'parentRef copied verbatim (with the defaulted group and kind)');
    assert.equal(parents[0].controllerName, CONTROLLER_NAME);
    for (const t of ['Accepted', 'ResolvedRefs']) assert.deepEqual([cond(parents[0].conditions, t).status, cond(parents[0].conditions, t).reason, cond(parents[0].conditions, t).observedGeneration], ['True', t, routeNow.metadata!.generation]);
    const cls = await api.getClass(GATEWAY_CLASS);
    assert.equal(cond(cls.status.conditions, 'Accepted').status, 'True');
    assert.ok(isGatewayReady(gwNow) && isHTTPRouteReady(routeNow, inc.gatewayName, NS));
    assert.equal(gwObj.metadata?.generation, gen);

    await applied({ [blue]: 100 });
    const load = new CountingLoad(g.gw.url).start();
    loads.push(load);
    const steps: StepReport[] = [await measureStep(load, { [blue]: 100 })];

    // The admin API does not set weights an HTTPRoute owns; traffic status says where they come from.
    const refused = await g.admin('PUT', '/api/v1/apps/llm/weights', { weights: { active: 100 } });
    assert.equal(refused.status, 409, JSON.stringify(refused.json));
    assert.equal(refused.json['error']['code'], 'WEIGHTS_OWNED_BY_HTTPROUTE');
    assert.match(String(refused.json['error']['message']), new RegExp(`HTTPRoute ${NS}/${RS}-httproute`));

    // ── upgrade 1: spec change → pending cluster → its serve Service, weight 0 → the loop to 0/100 → promotion.
    /** §1.2: spec change → pending cluster, its serve Service, weight 0, apps RUNNING; then KubeRay's loop until the pending weight is `upTo`. */
    const upgradeTo = async (active: string, upTo: number): Promise<string> => {
      const pending = await p.beginUpgrade();
      await p.startCluster(pending);
      await p.setPodsReady(pending, true);
      await inc.createServeService(pending);
      await inc.writeRoute([[active, 100], [pending, 0]]);
      await p.setAppStatuses(pending, 'DEPLOYING');
      await p.setAppStatuses(pending, 'RUNNING');
      steps.push(await measureStep(load, { [active]: 100, [pending]: 0 }));
      inc.pendingCapacity = 0;
      inc.activeCapacity = 100;
      inc.pendingWeight = 0;
      while (inc.pendingWeight < upTo) {
        await sleep(inc.o.intervalSeconds * 1000);
        const w = await inc.step(active, pending);
        if (w === null) throw new Error('KubeRay would stall: Gateway or HTTPRoute not ready');
        if (inc.writes.at(-1)!.weights[pending] === w) steps.push(await measureStep(load, { [active]: 100 - w, [pending]: w }));
      }
      return pending;
    };
    const green = await upgradeTo(blue, 100);
    // Promotion at 0/100; the next reconcile rewrites the route with the new active cluster alone.
    await p.promote();
    await inc.writeRoute([[green, 100]]);
    steps.push(await measureStep(load, { [green]: 100 }));
    await p.clusters.get(blue)!.deleted;
    await api.deleteService(`${blue}-serve-svc`);

    // ── upgrade 2, rolled back at 50/50 (KubeRay 1.7): the weight moves back by the same steps.
    const red = await upgradeTo(green, 50);
    while (inc.pendingWeight > 0) {
      await sleep(inc.o.intervalSeconds * 1000);
      const w = await inc.stepBack(green, red);
      steps.push(await measureStep(load, { [green]: 100 - w, [red]: w }));
    }
    // Rolled back: the pending cluster goes, the route names the active cluster alone again.
    await inc.writeRoute([[green, 100]]);
    steps.push(await measureStep(load, { [green]: 100 }));
    await p.deleteCluster(red);
    await api.deleteService(`${red}-serve-svc`);
    steps.push(await measureStep(load, { [green]: 100 }, false));

    await load.stop();
    const failures = load.failures();
    console.log(`# steps (weights → measured, requests, weight applied ms after the HTTPRoute write):`);
    for (const s of steps) console.log(`#   ${JSON.stringify(s.weights)} → ${JSON.stringify(s.measured)} n=${s.n}${s.applyMs === null ? '' : ` applied ${s.applyMs} ms`}`);
    const applies = steps.slice(1).flatMap((s) => (s.applyMs === null ? [] : [s.applyMs]));
    console.log(`# ${load.samples.length} requests, ${failures.length} failed; weight applied after ${Math.min(...applies)}–${Math.max(...applies)} ms (median ${applies.sort((a, b) => a - b)[Math.floor(applies.length / 2)]} ms)`);
    assert.equal(failures.length, 0, `failed requests: ${failures.slice(0, 5).map((f) => `${f.status} ${f.error}`).join('; ')}\ngateway log: ${g.problems()}`);
  });

  test('status: BackendNotFound and its repair, NotAllowedByListeners, another class left alone, observedGeneration follows edits', { timeout: 180_000 }, async () => {
    assert.ok(g !== undefined, 'the gateway of the first test runs');
    const host = 'status.example.com';
    await api.createClass('other-class', 'example.com/another-controller');
    const foreign = await api.create('gateways', 'foreign', { gatewayClassName: 'other-class', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] });
    await api.create('gateways', 'status-gw', {
      gatewayClassName: GATEWAY_CLASS,
      listeners: [
        { name: 'http', protocol: 'HTTP', port: 80 },
        // Only GRPCRoutes may attach here: an HTTPRoute naming this listener is not allowed.
        { name: 'grpc-only', protocol: 'HTTP', port: 8080, allowedRoutes: { kinds: [{ kind: 'GRPCRoute' }] } },
      ],
    });
    await api.create('httproutes', 'missing-backend', {
      parentRefs: [{ name: 'status-gw', sectionName: 'http' }],
      hostnames: [host],
      rules: [{ backendRefs: [{ name: 'not-there', port: 8000 }] }],
    });
    await api.create('httproutes', 'not-allowed', {
      parentRefs: [{ name: 'status-gw', sectionName: 'grpc-only' }],
      hostnames: ['other.example.com'],
      rules: [{ backendRefs: [{ name: `${p.active}-serve-svc`, port: 8000 }] }],
    });
    const parentCond = async (route: string, type: string) => {
      const r = await api.get('httproutes', route);
      const c = (r.status?.parents?.[0]?.conditions ?? []).find((x: { type: string }) => x.type === type);
      return c === undefined ? null : { status: c.status as string, reason: c.reason as string, observedGeneration: c.observedGeneration as number, generation: r.metadata!.generation! };
    };
    const missing = await until('missing-backend: ResolvedRefs=False BackendNotFound', REACT_MS, async () => {
      const c = await parentCond('missing-backend', 'ResolvedRefs');
      return c?.status === 'False' ? c : undefined;
    });
    assert.equal(missing.reason, 'BackendNotFound');
    assert.equal(missing.observedGeneration, missing.generation);
    assert.equal((await parentCond('missing-backend', 'Accepted'))?.status, 'True', 'the route is accepted; only its reference is unresolved');
    // Its share of requests gets 500 (the Gateway API's rule), with the reason.
    const r500 = await until('the route with the missing backend live', REACT_MS, async () => {
      const r = await getWithHost(g.gw.url, '/llm/x', host);
      return r.status === 500 ? r : undefined;
    });
    assert.equal(r500.headers['x-gateway-flag'], 'BI');
    assert.match(r500.text, /not-there.*BackendNotFound/);

    const notAllowed = await until('not-allowed: Accepted=False NotAllowedByListeners', REACT_MS, async () => {
      const c = await parentCond('not-allowed', 'Accepted');
      return c?.status === 'False' ? c : undefined;
    });
    assert.equal(notAllowed.reason, 'NotAllowedByListeners');
    const statusGw = await api.get('gateways', 'status-gw');
    const grpcOnly = statusGw.status.listeners.find((l: { name: string }) => l.name === 'grpc-only');
    assert.deepEqual(grpcOnly.supportedKinds, []);
    assert.equal(grpcOnly.attachedRoutes, 0);
    assert.equal(grpcOnly.conditions.find((c: { type: string }) => c.type === 'ResolvedRefs').reason, 'InvalidRouteKinds');
    assert.equal(statusGw.status.listeners.find((l: { name: string }) => l.name === 'http').attachedRoutes, 1);

    // The Service appears later (informer events come in any order): ResolvedRefs turns True.
    await api.createService('not-there', { 'ray.io/cluster': p.active!, 'ray.io/serve': 'true' }, [{ name: 'serve', port: 8000, targetPort: 'serve' }]);
    await until('missing-backend: ResolvedRefs=True once the Service exists', REACT_MS, async () => (await parentCond('missing-backend', 'ResolvedRefs'))?.status === 'True');
    const ok = await until('a request for the repaired route served', REACT_MS, async () => {
      const r = await getWithHost(g.gw.url, '/llm/x', host);
      return r.status === 200 ? r : undefined;
    });
    assert.equal(ok.headers['x-serve-cluster'], p.active);

    // observedGeneration follows a spec edit of the route and of the class.
    const edited = await api.updateSpec('httproutes', 'missing-backend', (spec) => ({ ...spec, rules: [{ backendRefs: [{ name: 'not-there', port: 8000, weight: 3 }] }] }));
    await until('observedGeneration of the edited route', REACT_MS, async () => (await parentCond('missing-backend', 'Accepted'))?.observedGeneration === edited.metadata!.generation);
    const cls = await api.getClass(GATEWAY_CLASS);
    cls.spec.description = 'edited';
    const clsEdited = (await api.custom.replaceClusterCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', plural: 'gatewayclasses', name: GATEWAY_CLASS, body: cls })) as Obj;
    await until('observedGeneration of the edited GatewayClass', REACT_MS, async () => {
      const c = (await api.getClass(GATEWAY_CLASS)).status.conditions.find((x: { type: string }) => x.type === 'Accepted');
      return c.observedGeneration === clsEdited.metadata!.generation;
    });

    // The Gateway of another class: untouched (the CRD's defaults), after all the writes above.
    const after = await api.get('gateways', 'foreign');
    assert.deepEqual(after.status, foreign.status, 'status of a Gateway of another class is never written');
    assert.equal(after.metadata?.resourceVersion, foreign.metadata?.resourceVersion);
    const otherClass = await api.getClass('other-class');
    assert.equal(otherClass.status.conditions[0].reason, 'Pending', 'another controller’s GatewayClass is left alone');
    const report = (await g.status())['kubernetes']['gateway_api'];
    assert.equal(report['controller_name'], CONTROLLER_NAME);
    assert.equal(report['writes_status'], true);
    assert.ok(report['status_writes'] > 0);
  });
  test('a gateway that starts while the API server is down routes by the HTTPRoute rules saved in last_known_good', { timeout: 180_000 }, async () => {
    assert.ok(g !== undefined, 'the gateway of the first test runs');
    const saved = JSON.parse(readFileSync(g.lastKnownGood, 'utf8')) as { gateway?: { rules: unknown[] } };
    assert.ok((saved.gateway?.rules.length ?? 0) >= 1, 'the rules are saved with the view');
    const dir = mkdtempSync(join(tmpdir(), 'sg-gwapi-lkg-'));
    const lkg = join(dir, 'lkg.json');
    copyFileSync(g.lastKnownGood, lkg);
    await server.halt();
    let g2: K8sGateway | null = null;
    try {
      g2 = await startK8sGateway({
        kubeconfig: sa.kubeconfigPath,
        namespace: NS,
        rayservices: [RS],
        stateDir: join(dir, 'state'),
        lastKnownGood: lkg,
        gatewayApi: { enabled: true, controller_name: CONTROLLER_NAME, service: 'serve-gateway' },
      });
      const g2url = g2.gw.url;
      const r = await until('a request routed by the saved HTTPRoute rules', REACT_MS, async () => {
        const res = await fetch(`${g2url}/llm/from-lkg`);
        await res.arrayBuffer();
        return res.status === 200 ? res : undefined;
      });
      assert.equal(r.headers.get('x-serve-cluster'), p.active);
      const st = await g2.status();
      assert.equal(st['kubernetes']['source'], 'last_known_good');
      assert.equal((st['apps'] as Array<Record<string, unknown>>).find((a) => a['name'] === 'llm')?.['weights_from'], `httproute ${NS}/${RS}-httproute`);
      assert.equal(st['kubernetes']['gateway_api']['synced'], false, 'the API server is down: nothing is written from saved rules');
    } finally {
      await g2?.close();
      await server.resume();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test('several replicas: only the leader Lease holder writes status; when it goes, the next one does', { timeout: 180_000 }, async () => {
    assert.ok(g !== undefined, 'the gateway of the first test ran');
    await g.close(); // it writes status without a Lease: it would be a third writer
    const replicaSa = await server.serviceAccountKubeConfig({
      name: 'serve-gateway-ha',
      namespace: NS,
      rules: [...GATEWAY_API_ROLE_RULES, ...replicaRoleRules('gw-state').slice(GATEWAY_ROLE_RULES.length)],
      clusterRules: [...GATEWAY_API_CLUSTER_RULES],
    });
    const start = async (pod: string): Promise<K8sGateway> => {
      const was = process.env['POD_NAME'];
      process.env['POD_NAME'] = pod; // the replica's identity (the downward API's pod name)
      try {
        return await startK8sGateway({
          kubeconfig: replicaSa.kubeconfigPath,
          namespace: NS,
          rayservices: [RS],
          gatewayApi: { enabled: true, controller_name: CONTROLLER_NAME, service: 'serve-gateway' },
          kubernetesExtra: { state_configmap: 'gw-state', leader_lease: 'gw-leader', lease_duration: '3s' },
        });
      } finally {
        if (was === undefined) delete process.env['POD_NAME'];
        else process.env['POD_NAME'] = was;
      }
    };
    const a = await start('gw-a');
    const b = await start('gw-b');
    const replicas = [a, b];
    try {
      const report = async (x: K8sGateway) => (await x.status())['kubernetes']['gateway_api'] as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
      const leaderOf = async () => {
        const r = await Promise.all(replicas.map(report));
        const leaders = replicas.filter((_, i) => r[i]!['writes_status'] === true);
        return leaders.length === 1 ? leaders[0]! : undefined;
      };
      const leader = await until('exactly one replica writes status', REACT_MS, leaderOf);
      const follower = leader === a ? b : a;
      // A route edit: only the leader writes the new observedGeneration.
      // Always a different weight than the one there now, so every edit bumps the generation
      // (a random weight equal to the last one left the spec, and the generation, unchanged).
      const bump = async () =>
        (
          await api.updateSpec('httproutes', 'missing-backend', (spec) => {
            const now = Number(spec?.rules?.[0]?.backendRefs?.[0]?.weight ?? 0);
            return { ...spec, rules: [{ backendRefs: [{ name: 'not-there', port: 8000, weight: (now % 50) + 1 }] }] };
          })
        ).metadata!.generation!;
      const gen1 = await bump();
      await until('the edit acknowledged', REACT_MS, async () => (await api.get('httproutes', 'missing-backend')).status.parents[0].conditions.every((c: { observedGeneration: number }) => c.observedGeneration === gen1));
      assert.ok((await report(leader))['status_writes'] > 0);
      assert.equal((await report(follower))['status_writes'], 0, 'a follower never writes Gateway API status');
      // The leader goes; the follower takes the Lease over and writes.
      await leader.close();
      replicas.splice(replicas.indexOf(leader), 1);
      const tookOver = performance.now();
      await until('the follower leads', REACT_MS, async () => (await report(follower))['writes_status'] === true);
      const gen2 = await bump();
      await until('the edit acknowledged by the new leader', REACT_MS, async () => (await api.get('httproutes', 'missing-backend')).status.parents[0].conditions.every((c: { observedGeneration: number }) => c.observedGeneration === gen2));
      console.log(`# new leader writing ${Math.round(performance.now() - tookOver)} ms after the old one stopped (lease 3 s)`);
      assert.ok((await report(follower))['status_writes'] > 0);
    } finally {
      for (const x of replicas) await x.close().catch(() => {});
    }
  });
});
