// A small kubelet stand-in for the KubeRay suite: what the genuine KubeRay
// operator and kube-controller-manager need from the nodes of a cluster, and
// nothing more.
//
// - One Ready Node (`sim-node`).
// - Every Pod without a node is bound to it (POST pods/<p>/binding, as the
//   scheduler does), gets a free address of 10.244.0.0/16, which is added to
//   `lo` of the network namespace this process runs in, and turns Running.
// - A Ray pod's address becomes a Ray node of the simulated fleet
//   (src/sim/ray-fleet.ts): head pods run the dashboard, every node runs a
//   Serve proxy once a config is deployed.
// - Readiness as KubeRay's injected probes decide it: a head pod is Ready once
//   running (raylet and dashboard up); a worker pod is Ready while its Serve
//   proxy answers /-/healthz with "success" (probed every `probeMs`; KubeRay's
//   own probe runs every 5 s with failureThreshold 1).
// - A Pod with a deletionTimestamp loses its Ray node and its address and is
//   deleted with grace period 0 (a real kubelet would kill its containers).
//
// It refuses to start outside a network namespace that has only `lo`, so no
// address is ever added to a real machine's interfaces.
import { execFile } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { promisify } from 'node:util';
import { CoreV1Api, makeInformer, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Informer, KubeConfig, ObjectCache, V1Pod } from '@kubernetes/client-node';
import type { RayFleet } from '../../src/sim/ray-fleet.ts';

const run = promisify(execFile);
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
export const NODE_NAME = 'sim-node';

export interface KubeletOptions {
  /** Worker readiness probe period (default 500 ms). */
  readonly probeMs?: number;
  /** Delay from binding to Running, as image pull and container start (default 200 ms). */
  readonly startMs?: number;
}

export interface KubeletEvent {
  readonly atMs: number;
  readonly pod: string;
  readonly what: 'bound' | 'running' | 'ready' | 'not-ready' | 'deleted';
  readonly detail: string;
}

interface Tracked {
  ip: string | null;
  cluster: string | null;
  head: boolean;
  ready: boolean | null;
  deleting: boolean;
  /** Serializes the work on one pod. */
  chain: Promise<void>;
}

/** Why this process may not add addresses (not in a namespace with only lo), or null. */
export function netnsProblem(): string | null {
  const names = Object.keys(networkInterfaces());
  const others = names.filter((n) => n !== 'lo');
  return others.length === 0 ? null : `this process sees network interfaces other than lo (${others.join(', ')}): not inside the suite's network namespace`;
}

export class Kubelet {
  readonly events: KubeletEvent[] = [];
  readonly errors: string[] = [];
  readonly #core: CoreV1Api;
  readonly #kc: KubeConfig;
  readonly #fleet: RayFleet;
  readonly #probeMs: number;
  readonly #startMs: number;
  readonly #pods = new Map<string, Tracked>();
  readonly #addresses = new Set<string>();
  #informer: (Informer<V1Pod> & ObjectCache<V1Pod>) | null = null;
  #probeTimer: NodeJS.Timeout | null = null;
  #next = 0;
  readonly #block = 1 + (process.pid % 250);
  #stopped = false;

  constructor(kc: KubeConfig, fleet: RayFleet, o: KubeletOptions = {}) {
    const problem = netnsProblem();
    if (problem !== null) throw new Error(`kubelet stand-in: ${problem}`);
    this.#kc = kc;
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#fleet = fleet;
    this.#probeMs = o.probeMs ?? 500;
    this.#startMs = o.startMs ?? 200;
  }

  async start(): Promise<void> {
    await this.#core.createNode({
      body: {
        metadata: { name: NODE_NAME, labels: { 'kubernetes.io/hostname': NODE_NAME, 'kubernetes.io/os': 'linux' } },
        status: {
          conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet stand-in is posting ready status' }],
          capacity: { cpu: '64', memory: '256Gi', pods: '250' },
          allocatable: { cpu: '64', memory: '256Gi', pods: '250' },
          addresses: [{ type: 'Hostname', address: NODE_NAME }],
        },
      },
    });
    const informer = makeInformer<V1Pod>(this.#kc, '/api/v1/pods', () => this.#core.listPodForAllNamespaces() as never);
    informer.on('add', (p) => this.#schedule(p));
    informer.on('update', (p) => this.#schedule(p));
    informer.on('error', () => {
      if (!this.#stopped) setTimeout(() => void informer.start().catch(() => {}), 500);
    });
    await informer.start();
    this.#informer = informer;
    this.#probeTimer = setInterval(() => void this.#probeAll(), this.#probeMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#probeTimer !== null) clearInterval(this.#probeTimer);
    await this.#informer?.stop().catch(() => {});
    await Promise.all([...this.#pods.values()].map((t) => t.chain));
    for (const ip of this.#addresses) await run('ip', ['addr', 'del', `${ip}/32`, 'dev', 'lo']).catch(() => {});
    this.#addresses.clear();
  }


  #record(pod: string, what: KubeletEvent['what'], detail = ''): void {
    this.events.push({ atMs: Date.now(), pod, what, detail });
  }

  #schedule(p: V1Pod): void {
    const key = `${p.metadata?.namespace}/${p.metadata?.name}`;
    let t = this.#pods.get(key);
    if (t === undefined) {
      t = { ip: null, cluster: null, head: false, ready: null, deleting: false, chain: Promise.resolve() };
      this.#pods.set(key, t);
    }
    const tracked = t;
    tracked.chain = tracked.chain
      .then(() => (this.#stopped ? undefined : this.#handle(key, tracked, p)))
      .catch((err: unknown) => {
        this.errors.push(`${key}: ${(err as Error).message}`);
      });
  }

  async #handle(key: string, t: Tracked, p: V1Pod): Promise<void> {
    const name = p.metadata?.name ?? '';
    const namespace = p.metadata?.namespace ?? 'default';
    if (p.metadata?.deletionTimestamp) {
      if (t.deleting) return;
      t.deleting = true;
      if (t.ip !== null) {
        await this.#fleet.removeNode(t.ip);
        await run('ip', ['addr', 'del', `${t.ip}/32`, 'dev', 'lo']).catch(() => {});
        this.#addresses.delete(t.ip);
      }
      await this.#core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 }).catch((err: unknown) => {
        if ((err as { code?: number }).code !== 404) throw err;
      });
      this.#pods.delete(key);
      this.#record(key, 'deleted', t.ip ?? '');
      return;
    }
    if (!p.spec?.nodeName) {
      await this.#core.createNamespacedPodBinding({
        name,
        namespace,
        body: { metadata: { name, namespace }, target: { apiVersion: 'v1', kind: 'Node', name: NODE_NAME } },
      });
      this.#record(key, 'bound', NODE_NAME);
      return; // the update that shows spec.nodeName comes next
    }
    if (p.spec.nodeName !== NODE_NAME || t.ip !== null) return;
    await new Promise((r) => setTimeout(r, this.#startMs));
    t.ip = await this.#allocate();
    const labels = p.metadata?.labels ?? {};
    t.cluster = labels['ray.io/cluster'] ?? null;
    t.head = labels['ray.io/node-type'] === 'head';
    if (t.cluster !== null) await this.#fleet.addNode(t.cluster, t.ip, t.head);
    // Non-Ray pods and Ray heads are Ready once running; workers when their proxy says so.
    const ready = t.cluster === null || t.head;
    await this.#patchStatus(p, t.ip, ready, true);
    t.ready = ready;
    this.#record(key, 'running', t.ip);
  }

  async #allocate(): Promise<string> {
    for (let tries = 0; tries < 500; tries++) {
      const n = this.#next++;
      const ip = `10.244.${this.#block}.${2 + (n % 250)}`;
      if (this.#addresses.has(ip)) continue;
      try {
        await run('ip', ['addr', 'add', `${ip}/32`, 'dev', 'lo']);
        this.#addresses.add(ip);
        return ip;
      } catch (err) {
        if (!/File exists/.test(String((err as { stderr?: string }).stderr ?? err))) throw err;
      }
    }
    throw new Error('kubelet stand-in: no free pod address left');
  }

  async #patchStatus(p: V1Pod, ip: string, ready: boolean, starting: boolean): Promise<void> {
    const now = new Date().toISOString();
    const r = ready ? 'True' : 'False';
    const containers = p.spec?.containers ?? [];
    const status: Record<string, unknown> = {
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
        { type: 'Initialized', status: 'True', lastTransitionTime: now },
        { type: 'ContainersReady', status: r, lastTransitionTime: now },
        { type: 'Ready', status: r, lastTransitionTime: now },
      ],
      containerStatuses: containers.map((c) => ({
        name: c.name,
        image: c.image ?? 'unknown',
        imageID: '',
        ready,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: now } },
      })),
    };
    if (starting) Object.assign(status, { phase: 'Running', podIP: ip, podIPs: [{ ip }], hostIP: '10.244.255.254', startTime: now });
    await this.#core.patchNamespacedPodStatus({ name: p.metadata!.name!, namespace: p.metadata!.namespace!, body: { status } }, mergePatch);
  }

  /** KubeRay's worker readiness probe: the node's Serve proxy answers /-/healthz "success". */
  async #probeAll(): Promise<void> {
    const pods = this.#informer?.list() ?? [];
    for (const p of pods) {
      const key = `${p.metadata?.namespace}/${p.metadata?.name}`;
      const t = this.#pods.get(key);
      if (t === undefined || t.ip === null || t.cluster === null || t.head || t.deleting) continue;
      const ip = t.ip;
      let ready = false;
      try {
        const res = await fetch(`http://${ip}:${this.#fleet.servePort}/-/healthz`, { signal: AbortSignal.timeout(1000) });
        ready = res.status === 200 && (await res.text()) === 'success';
      } catch {
        ready = false;
      }
      if (ready === t.ready) continue;
      t.ready = ready;
      t.chain = t.chain
        .then(() => (t.deleting || this.#stopped ? undefined : this.#patchStatus(p, ip, ready, false)))
        .then(() => this.#record(key, ready ? 'ready' : 'not-ready', ip))
        .catch((err: unknown) => {
          t.ready = null; // try again at the next probe
          this.errors.push(`${key}: readiness: ${(err as Error).message}`);
        });
    }
  }
}
