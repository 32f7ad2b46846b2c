// One scenario of the KubeRay suite: a RayService that the genuine operator
// brought to Running, a gateway in kubernetes mode following it as a
// least-privilege ServiceAccount, closed-loop load through the gateway (JSON
// and SSE, every outcome with the cluster that answered) and a trace of the
// gateway's status, with waits that fail with the whole story.
import { DEFAULT_BEHAVIOUR } from '../../src/sim/sim-config.ts';
import type { ServiceAccountAccess } from '../k8s/apiserver.ts';
import { GATEWAY_ROLE_RULES, Load, StatusTrace, appWeights, describeOutcomes, rsClusters, startK8sGateway, statusUntil, until } from '../k8s/kuberay-player.ts';
import type { K8sGateway, Outcome } from '../k8s/kuberay-player.ts';
import { RayServiceUnderTest } from './rayservice.ts';
import type { StatusChange } from './rayservice.ts';
import { startKubeRayStack } from './stack.ts';
import type { KubeRayStack } from './stack.ts';

export const NS = 'ray';
export const APPS = ['llm', 'default'] as const;
/** KubeRay's own pace: a reconcile every 2 s, a cluster start, the Serve deploy. Generous for a busy 2-core machine. */
export const KUBERAY_MS = 120_000;
/** A gateway reaction (typical: well under a second). */
export const REACT_MS = 30_000;
/** Load phases end on a count of outcomes; this bounds them. */
export const LOAD_MS = 90_000;
/** SSE streams: 20 frames 40 ms apart (about 0.8 s each). */
export const LOAD_OPTS = { clients: 4, sseTokens: 20, sseIntervalMs: 40 };
/** Head + 2 workers, each with a Serve proxy. */
export const ENDPOINTS = 3;

/** What a test file keeps to clean up after itself. */
export class Registry {
  readonly rayservices: RayServiceUnderTest[] = [];
  readonly gateways: K8sGateway[] = [];
  readonly loads: Load[] = [];
  readonly traces: StatusTrace[] = [];

  async close(): Promise<void> {
    for (const l of this.loads) await l.stop().catch(() => {});
    for (const t of this.traces) await t.stop().catch(() => {});
    for (const g of this.gateways) await g.close().catch(() => {});
    for (const r of this.rayservices) await r.stop();
  }
}

/** The stack with the suite's app behaviour, and the gateway's ServiceAccount (its least-privilege Role). */
export async function startSuite(): Promise<{ stack: KubeRayStack; sa: ServiceAccountAccess }> {
  const stack = await startKubeRayStack({
    fleet: {
      behaviour: new Map([
        ['llm', { ...DEFAULT_BEHAVIOUR, latencyMs: 5 }],
        ['default', { ...DEFAULT_BEHAVIOUR, latencyMs: 2 }],
      ]),
    },
  });
  const sa = await stack.api.serviceAccountKubeConfig({ name: 'serve-gateway', namespace: NS, rules: [...GATEWAY_ROLE_RULES] });
  const t = stack.timings;
  console.log(
    `# stack up in ${t.total} ms: kube-apiserver ${t.apiserver} ms, KubeRay CRDs (server-side apply) ${t.crds} ms, ` +
      `kube-controller-manager ${t.controllerManager} ms, kuberay-operator ${t.operator} ms`,
  );
  return { stack, sa };
}

export interface ServingOptions {
  readonly deletionDelaySeconds: number;
  readonly upgrade: 'follow' | 'rollout' | 'hold';
  readonly applications?: Record<string, unknown>;
}

export async function serving(stack: KubeRayStack, sa: ServiceAccountAccess, reg: Registry, name: string, o: ServingOptions) {
  const rs = new RayServiceUnderTest(stack.api.kc, NS, { name, deletionDelaySeconds: o.deletionDelaySeconds });
  reg.rayservices.push(rs);
  const createdAt = performance.now();
  await rs.create();
  const running = await rs.waitFor(
    'Running with every app RUNNING',
    KUBERAY_MS,
    (c) => c.active !== null && c.ready.startsWith('True') && c.activeApps === 'default:RUNNING,llm:RUNNING',
    0,
    () => stack.describe(),
  );
  const blue = running.active!;
  const g = await startK8sGateway({
    kubeconfig: sa.kubeconfigPath,
    namespace: NS,
    rayservices: [name],
    upgrade: o.upgrade,
    ...(o.applications ? { applications: o.applications } : {}),
  });
  reg.gateways.push(g);
  const routable = await statusUntil(
    g,
    `${blue} serving both apps from ${ENDPOINTS} endpoints`,
    REACT_MS,
    (s) => APPS.every((a) => appWeights(s, a)[blue] === 100) && rsClusters(s, name).get(blue)?.['ready_endpoints'] === ENDPOINTS,
  );
  await until(`a request answered by ${blue}`, REACT_MS, async () => {
    const r = await fetch(`${g.gw.url}/llm/warm`);
    await r.arrayBuffer();
    return r.status === 200 && r.headers.get('x-serve-cluster') === blue;
  });
  const load = new Load(g.gw.url, LOAD_OPTS).start();
  reg.loads.push(load);
  const trace = new StatusTrace(g);
  reg.traces.push(trace);
  const t0 = load.startedAt;
  const loadUntil = (what: string, pred: (o: Outcome) => boolean, n: number) =>
    until(`${n} outcomes: ${what}`, LOAD_MS, () => load.outcomes.filter(pred).length >= n, { observe: () => load.summary() });
  const fail = (msg: string) =>
    `${msg}\nload: ${load.summary()}\nfailures: ${describeOutcomes(load.failures(), t0)}\n` +
    `weights seen: ${APPS.map((a) => `${a}: ${trace.weightsSeen(a).join(' → ')}`).join('; ')}\n` +
    `RayService status changes:\n${rs.history(t0)}\n${stack.describe()}\ngateway log: ${g.problems()}`;
  const waitStatus = async (
    what: string,
    ms: number,
    pred: (s: Record<string, any>) => boolean, // eslint-disable-line @typescript-eslint/no-explicit-any
    everyMs?: number,
    giveUpIf?: (s: Record<string, any>) => string | null, // eslint-disable-line @typescript-eslint/no-explicit-any
  ) => {
    try {
      return await statusUntil(g, what, ms, pred, everyMs, giveUpIf);
    } catch (err) {
      const audit = await g.events().catch((e: unknown) => [{ error: String(e) }]);
      throw new Error(fail(`${(err as Error).message}\naudit: ${audit.map((e) => JSON.stringify(e)).join('\n  ')}`));
    }
  };
  const waitKubeRay = async (what: string, pred: (c: StatusChange) => boolean, from = 0) => {
    try {
      return await rs.waitFor(what, KUBERAY_MS, pred, from);
    } catch (err) {
      throw new Error(fail((err as Error).message));
    }
  };
  /** Waits until KubeRay and the garbage collector deleted every pod of `cluster`; returns when. */
  const podsGone = (cluster: string) =>
    until(`every pod of ${cluster} deleted`, KUBERAY_MS, async () => ((await rs.pods(cluster)) === 0 ? performance.now() : undefined), {
      everyMs: 100,
      observe: () => fail(`${cluster} still has pods`),
    });
  return { rs, g, blue, load, trace, t0, createdAt, runningAt: running.at, routableAt: routable.at, loadUntil, fail, waitStatus, waitKubeRay, podsGone };
}
