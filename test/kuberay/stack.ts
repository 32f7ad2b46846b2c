// The KubeRay stack for test/kuberay/*.test.ts, all inside the network
// namespace that run.ts created (this process runs in it):
//
//   kube-apiserver (+ embedded etcd)      test/k8s/apiserver.ts, KubeRay's CRDs applied server-side
//   kube-controller-manager               endpoints, endpointslice and garbage-collector controllers only
//   KubeRay operator v1.5.0               its own main, unchanged, out of cluster, --use-kubernetes-proxy
//   kubelet stand-in                      kubelet.ts: a Ready Node, binding, pod addresses on lo, readiness
//   simulated Ray                         src/sim/ray-fleet.ts: dashboards and Serve proxies on the pods' addresses
//
// The operator reaches Ray only through the API server's proxy subresources
// (services/<cluster>-head-svc:dashboard/proxy, pods/<head>:8000/proxy), which
// resolve Services through the EndpointSlices the controller manager writes:
// the same path it takes in a cluster, with no DNS. All binaries are built
// from Go modules by scripts/build-tools.sh (docs/kubernetes-testing.md).
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, loadAllYaml } from '@kubernetes/client-node';
import { RayFleet } from '../../src/sim/ray-fleet.ts';
import type { RayFleetOptions } from '../../src/sim/ray-fleet.ts';
import { K8S_DEADLINE, REPO, apiServerBinary, freePort, startApiServer } from '../k8s/apiserver.ts';
import type { ApiServer } from '../k8s/apiserver.ts';
import { Kubelet, netnsProblem } from './kubelet.ts';
import type { KubeletOptions } from './kubelet.ts';

/** KubeRay v1.5.0's CRDs, vendored (deploy/crds/README.md). */
export const KUBERAY_CRDS: readonly string[] = ['ray.io_rayclusters.yaml', 'ray.io_rayjobs.yaml', 'ray.io_rayservices.yaml'].map((f) => join(REPO, 'deploy/crds', f));

/** Deadlines sized for a busy 2-core machine; a passing run never waits for one. */
export const STACK_DEADLINE = {
  /** Operator started → its /readyz 200 (typical 0.5 s). */
  operatorReady: 120_000,
  /** The whole stack (apiserver, CRDs, controllers, operator): typical 12-20 s. */
  setup: K8S_DEADLINE.ready + K8S_DEADLINE.crdEstablished + 180_000,
} as const;

const TOOLS = ['kube-apiserver', 'kube-controller-manager', 'kuberay-operator'] as const;

/** Path of a built tool, or null with the reason. */
export function toolBinary(name: (typeof TOOLS)[number]): { path: string | null; why: string } {
  if (name === 'kube-apiserver') return apiServerBinary();
  const r = spawnSync(join(REPO, 'scripts/build-tools.sh'), ['--path', name], { encoding: 'utf8' });
  const path = r.status === 0 ? r.stdout.trim() : '';
  if (path) return { path, why: '' };
  return { path: null, why: `${name} binary: ${(r.stderr || '').trim() || 'not built for the current sources'} (run npm run test:kuberay)` };
}

/**
 * Why the KubeRay suite cannot run in this process, or null. run.ts sets
 * SG_KUBERAY_SKIP when it could not create the namespace; a test file run on
 * its own (not through run.ts) is outside any namespace and says so.
 */
export function kubeRayUnavailable(): string | null {
  const skip = process.env['SG_KUBERAY_SKIP'];
  if (skip) return skip;
  if (!process.env['SG_KUBERAY_NETNS']) return 'not inside the suite\'s network namespace: run it with `npm run test:kuberay` (test/kuberay/run.ts)';
  const ns = netnsProblem();
  if (ns !== null) return ns;
  for (const t of TOOLS) {
    const b = toolBinary(t);
    if (!b.path) return b.why;
  }
  return null;
}

// ---------------------------------------------------------------- processes

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** A child process with its output in a log file and the last lines in memory. */
export class Proc {
  readonly name: string;
  readonly logPath: string;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  exitInfo: string | null = null;
  #tail: string[] = [];

  constructor(name: string, binary: string, args: readonly string[], logPath: string, env: NodeJS.ProcessEnv = process.env) {
    this.name = name;
    this.logPath = logPath;
    appendFileSync(logPath, `==== ${new Date().toISOString()}: ${binary} ${args.join(' ')}\n`);
    // setpriv: the child gets SIGKILL when this process dies, whatever kills it.
    const wrapped = existsSync('/usr/bin/setpriv') ? ['/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', binary, ...args]] as const : [binary, args] as const;
    this.child = spawn(wrapped[0], [...wrapped[1]], { stdio: ['ignore', 'pipe', 'pipe'], env });
    live.add(this.child);
    const onData = (c: Buffer): void => {
      try {
        appendFileSync(logPath, c);
      } catch {
        /* gone */
      }
      this.#tail.push(...c.toString('utf8').split('\n').filter((l) => l !== ''));
      if (this.#tail.length > 400) this.#tail.splice(0, 200);
    };
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
    this.exited = new Promise((res) => {
      this.child.once('error', (err) => {
        this.exitInfo = `spawn failed: ${err.message}`;
        res();
      });
      this.child.once('close', (code, signal) => {
        this.exitInfo = signal ? `killed by ${signal}` : `exited with code ${code}`;
        live.delete(this.child);
        res();
      });
    });
  }

  tail(n = 30): string {
    return this.#tail.slice(-n).join('\n');
  }


  async stop(): Promise<void> {
    if (this.exitInfo !== null) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}

async function waitHttp200(what: string, url: string, proc: Proc, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  let last = 'no answer yet';
  for (;;) {
    if (proc.exitInfo !== null) throw new Error(`${what}: the process ${proc.exitInfo}\n${proc.tail()}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (r.status === 200) return;
      last = `HTTP ${r.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not ready after ${timeoutMs} ms (last: ${last})\n${proc.tail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---------------------------------------------------------------- server-side apply

/** PATCH application/apply-patch+yaml (server-side apply) with the admin token. */
function applyPatch(api: ApiServer, path: string, yamlText: string): Promise<void> {
  return new Promise((res, rej) => {
    const body = Buffer.from(yamlText);
    const req = httpsRequest(
      `${api.url}${path}?fieldManager=serve-gateway-tests&force=true`,
      {
        method: 'PATCH',
        ca: api.caPem,
        headers: { authorization: `Bearer ${api.adminToken}`, 'content-type': 'application/apply-patch+yaml', 'content-length': body.length },
        timeout: 60_000,
      },
      (r) => {
        let text = '';
        r.setEncoding('utf8');
        r.on('data', (c: string) => (text += c));
        r.on('end', () => ((r.statusCode ?? 0) < 300 ? res() : rej(new Error(`server-side apply ${path}: HTTP ${r.statusCode} ${text.slice(0, 400)}`))));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`server-side apply ${path}: no answer in 60 s`)));
    req.on('error', rej);
    req.end(body);
  });
}

/** Applies CRD files server-side (they are too large for a client-side apply) and waits until each serves lists. */
export async function applyCrdsServerSide(api: ApiServer, files: readonly string[]): Promise<void> {
  const names: Array<{ name: string; group: string; plural: string; version: string; cluster: boolean }> = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const doc of loadAllYaml(text) as Array<{ kind?: string; metadata?: { name?: string }; spec?: { group: string; scope?: string; names: { plural: string }; versions: Array<{ name: string; storage?: boolean }> } } | null>) {
      if (!doc || doc.kind !== 'CustomResourceDefinition' || !doc.metadata?.name || !doc.spec) continue;
      const v = doc.spec.versions.find((x) => x.storage) ?? doc.spec.versions[0]!;
      names.push({ name: doc.metadata.name, group: doc.spec.group, plural: doc.spec.names.plural, version: v.name, cluster: doc.spec.scope === 'Cluster' });
    }
    // One file holds one CRD (KubeRay's and the Gateway API's layout): send the file's YAML as is.
    await applyPatch(api, `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${names[names.length - 1]!.name}`, text);
  }
  const ext = api.kc.makeApiClient(ApiextensionsV1Api);
  const custom = api.kc.makeApiClient(CustomObjectsApi);
  for (const n of names) {
    const deadline = Date.now() + K8S_DEADLINE.crdEstablished;
    for (;;) {
      try {
        const crd = await ext.readCustomResourceDefinition({ name: n.name });
        if ((crd.status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True')) {
          if (n.cluster) await custom.listClusterCustomObject({ group: n.group, version: n.version, plural: n.plural });
          else await custom.listNamespacedCustomObject({ group: n.group, version: n.version, namespace: 'default', plural: n.plural });
          break;
        }
      } catch {
        /* not yet */
      }
      if (Date.now() > deadline) throw new Error(`CRD ${n.name} not serving after ${K8S_DEADLINE.crdEstablished} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

// ---------------------------------------------------------------- the stack

export interface StackOptions {
  readonly fleet?: RayFleetOptions;
  readonly kubelet?: KubeletOptions;
  /** KubeRay operator feature gates (e.g. "RayServiceIncrementalUpgrade=true"). */
  readonly featureGates?: string;
  /** More CRD files applied (server-side) before the operator starts (e.g. the Gateway API's). */
  readonly extraCrds?: readonly string[];
}

export interface KubeRayStack {
  readonly api: ApiServer;
  readonly fleet: RayFleet;
  readonly kubelet: Kubelet;
  readonly controllerManager: Proc;
  readonly operator: Proc;
  /** Milliseconds each part took to start, and the whole. */
  readonly timings: Readonly<Record<'apiserver' | 'crds' | 'controllerManager' | 'operator' | 'total', number>>;
  /** A few lines on what each part did lately (for failure messages). */
  describe(): string;
  stop(): Promise<void>;
}

export async function startKubeRayStack(o: StackOptions = {}): Promise<KubeRayStack> {
  const t0 = performance.now();
  const timings: Record<'apiserver' | 'crds' | 'controllerManager' | 'operator' | 'total', number> = { apiserver: 0, crds: 0, controllerManager: 0, operator: 0, total: 0 };
  const api = await startApiServer();
  timings.apiserver = api.lastStartMs;
  const parts: Array<{ stop(): Promise<void> }> = [];
  try {
    let t = performance.now();
    await applyCrdsServerSide(api, [...KUBERAY_CRDS, ...(o.extraCrds ?? [])]);
    timings.crds = Math.round(performance.now() - t);

    t = performance.now();
    const kcmBin = toolBinary('kube-controller-manager').path!;
    const controllerManager = new Proc('kube-controller-manager', kcmBin, [
      '--embedded-exit-with-parent',
      `--kubeconfig=${api.kubeconfigPath}`,
      '--controllers=endpoints-controller,endpointslice-controller,garbage-collector-controller',
      '--leader-elect=false',
      '--secure-port=0',
      '--use-service-account-credentials=false',
      '--concurrent-endpoint-syncs=5',
    ], join(api.dir, 'kube-controller-manager.log'));
    parts.push(controllerManager);
    // Ready once its informers run: an Endpoints object for a Service appears.
    const core = api.kc.makeApiClient(CoreV1Api);
    await core.createNamespacedService({ namespace: 'default', body: { metadata: { name: 'kcm-probe' }, spec: { selector: { probe: 'kcm' }, ports: [{ port: 80 }] } } });
    const deadline = Date.now() + STACK_DEADLINE.operatorReady;
    for (;;) {
      if (controllerManager.exitInfo !== null) throw new Error(`kube-controller-manager ${controllerManager.exitInfo}\n${controllerManager.tail()}`);
      const slices = await core.listNamespacedEndpoints({ namespace: 'default', fieldSelector: 'metadata.name=kcm-probe' }).catch(() => null);
      if ((slices?.items.length ?? 0) > 0) break;
      if (Date.now() > deadline) throw new Error(`kube-controller-manager: no Endpoints written after ${STACK_DEADLINE.operatorReady} ms\n${controllerManager.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await core.deleteNamespacedService({ namespace: 'default', name: 'kcm-probe' });
    timings.controllerManager = Math.round(performance.now() - t);

    const fleet = new RayFleet(o.fleet);
    parts.push({ stop: () => fleet.close() });
    const kubelet = new Kubelet(api.kc, fleet, o.kubelet);
    await kubelet.start();
    parts.push(kubelet);

    t = performance.now();
    const probePort = await freePort();
    const metricsPort = await freePort();
    const operator = new Proc(
      'kuberay-operator',
      toolBinary('kuberay-operator').path!,
      [
        '--enable-leader-election=false',
        `--metrics-addr=127.0.0.1:${metricsPort}`,
        `--health-probe-bind-address=127.0.0.1:${probePort}`,
        '--use-kubernetes-proxy',
        '--log-stdout-encoder=console',
        ...(o.featureGates ? [`--feature-gates=${o.featureGates}`] : []),
      ],
      join(api.dir, 'kuberay-operator.log'),
      { ...process.env, KUBECONFIG: api.kubeconfigPath },
    );
    parts.push(operator);
    await waitHttp200('kuberay-operator /readyz', `http://127.0.0.1:${probePort}/readyz`, operator, STACK_DEADLINE.operatorReady);
    timings.operator = Math.round(performance.now() - t);
    timings.total = Math.round(performance.now() - t0);

    return {
      api,
      fleet,
      kubelet,
      controllerManager,
      operator,
      timings,
      describe() {
        const fe = fleet.events.slice(-12).map((e) => `${new Date(e.atMs).toISOString().slice(11, 23)} ${e.cluster} ${e.what} ${e.detail}`);
        const ke = kubelet.events.slice(-12).map((e) => `${new Date(e.atMs).toISOString().slice(11, 23)} ${e.pod} ${e.what} ${e.detail}`);
        return [
          'fleet:',
          ...fe,
          'kubelet:',
          ...ke,
          ...(kubelet.errors.length ? ['kubelet errors:', ...kubelet.errors.slice(-5)] : []),
          `operator (${operator.exitInfo ?? 'running'}), last lines:`,
          operator.tail(12),
        ].join('\n');
      },
      async stop() {
        for (const p of [...parts].reverse()) await p.stop().catch(() => {});
        await api.stop();
      },
    };
  } catch (err) {
    for (const p of [...parts].reverse()) await (p as { stop(): Promise<void> }).stop().catch(() => {});
    await api.stop();
    throw err;
  }
}
