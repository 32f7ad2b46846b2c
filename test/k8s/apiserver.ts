// Harness for a real kube-apiserver on 127.0.0.1 (test/k8s/*.test.ts): the
// genuine Kubernetes API server (k8s.io/kubernetes v1.37.2) with an embedded
// single-member etcd in one binary, built from Go modules by
// scripts/build-tools.sh (tools/kube-apiserver/; docs/kubernetes-testing.md).
//
// startApiServer() gives each server its own temp dir (etcd data, generated
// serving cert, token file, service-account keys, kubeconfigs, log) and port,
// RBAC authorization and an admin token in system:masters. No controllers run:
// no scheduler, kubelet or controller-manager, so a test plays those parts
// itself (e.g. sets a Pod's status through the status subresource).
//
// Every server this process started is killed on exit whatever happens; the
// binary also exits by itself when its parent dies (--embedded-exit-with-parent).
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  ApiException,
  ApiextensionsV1Api,
  AuthenticationV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  RbacAuthorizationV1Api,
  loadAllYaml,
} from '@kubernetes/client-node';
import type { V1CustomResourceDefinition, V1PolicyRule } from '@kubernetes/client-node';
import { stringify as toYaml } from 'yaml';

export const REPO = resolve(import.meta.dirname, '../..');
/** The CRDs applyCrds() applies by default: KubeRay v1.5.0 RayService and RayCluster (deploy/crds/README.md). */
export const DEFAULT_CRDS: readonly string[] = [
  join(REPO, 'deploy/crds/ray.io_rayservices.yaml'),
  join(REPO, 'deploy/crds/ray.io_rayclusters.yaml'),
];

/**
 * Deadlines sized for a busy 2-core CI machine (Ray suites running alongside),
 * not for a typical run; a passing run never waits for one.
 */
export const K8S_DEADLINE = {
  /** Process started → GET /readyz 200 (typical 4-5 s on a fresh data dir; K8S_READY_TIMEOUT_MS overrides). */
  ready: Number(process.env['K8S_READY_TIMEOUT_MS']) || 180_000,
  /** CRDs created → condition Established=True (typical 1-4 s for KubeRay's two; 32 s seen at load 15-23). */
  crdEstablished: 120_000,
  /** RBAC objects or a ServiceAccount created → honoured by the authorizer/authenticator (typical < 1 s). */
  rbac: 30_000,
  /** SIGTERM → exit (typical 2 s); then SIGKILL. */
  stop: 20_000,
} as const;

/** A before() hook that starts a server (and applies CRDs) may take this long. */
export const APISERVER_SETUP_TIMEOUT_MS = K8S_DEADLINE.ready + K8S_DEADLINE.crdEstablished + 30_000;

const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
const STDERR_TAIL_LINES = 40;

// ---------------------------------------------------------------- binary

/**
 * Path of the kube-apiserver binary built from the current tools/kube-apiserver
 * sources ($KUBE_APISERVER_BIN overrides), or null with the reason in `why`.
 */
export function apiServerBinary(): { path: string | null; why: string } {
  const env = process.env['KUBE_APISERVER_BIN'];
  if (env) return existsSync(env) ? { path: env, why: '' } : { path: null, why: `KUBE_APISERVER_BIN=${env} does not exist` };
  const r = spawnSync(join(REPO, 'scripts/build-tools.sh'), ['--path', 'kube-apiserver'], { encoding: 'utf8' });
  const path = r.status === 0 ? r.stdout.trim() : '';
  if (path) return { path, why: '' };
  const detail = (r.stderr || '').trim() || (r.error ? String(r.error) : 'not built for the current sources');
  return { path: null, why: `kube-apiserver binary: ${detail} (run scripts/build-tools.sh, or npm run test:k8s)` };
}

/** Why the real-apiserver tests cannot run here, or null. */
export function apiServerUnavailable(): string | null {
  const b = apiServerBinary();
  return b.path ? null : b.why;
}

// ---------------------------------------------------------------- cleanup guard

const live = new Set<ApiServerImpl>();

function killAll(): void {
  for (const s of live) s.killNow();
  live.clear();
}

process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}

// ---------------------------------------------------------------- helpers

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A free port on 127.0.0.1 (released for the caller to bind). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => res(port));
    });
  });
}

/** GET over HTTPS without verifying the certificate (the server generates it while starting). */
function probe(url: string, token: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = httpsRequest(url, { rejectUnauthorized: false, headers: { authorization: `Bearer ${token}` }, timeout: timeoutMs }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (body += c));
      r.on('end', () => res({ status: r.statusCode ?? 0, body }));
      r.on('error', rej);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', rej);
    req.end();
  });
}

/** The HTTP status of a client-node error, or undefined. */
export function statusOf(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

async function ignoreConflict<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (statusOf(err) === 409) return undefined;
    throw err;
  }
}

/** Polls until `check` returns true or `timeoutMs` runs out (then throws, naming `what` and the last error). */
async function pollUntil(what: string, timeoutMs: number, check: () => Promise<boolean>, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'not yet';
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() >= deadline) throw new Error(`${what}: not done after ${timeoutMs} ms (last: ${last})`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------- public types

export interface StartOptions {
  /** Binary to run (default: apiServerBinary()). */
  readonly binary?: string;
  /** More kube-apiserver flags, appended after the harness's own. */
  readonly extraArgs?: readonly string[];
  /** Deadline for /readyz (default K8S_DEADLINE.ready). */
  readonly readyTimeoutMs?: number;
}

export interface ServiceAccountOptions {
  /** ServiceAccount (and Role/RoleBinding) name. */
  readonly name: string;
  /** Namespace of the ServiceAccount, Role and RoleBinding (default "default"; created if missing). */
  readonly namespace?: string;
  /** Rules of the Role bound to the ServiceAccount (may be empty: a ServiceAccount with no rights). */
  readonly rules: readonly V1PolicyRule[];
  /** Rules of a ClusterRole bound to it too (cluster-scoped objects: GatewayClasses). */
  readonly clusterRules?: readonly V1PolicyRule[];
  /** Token lifetime (default 3600 s; the API's minimum is 600 s). */
  readonly expirationSeconds?: number;
}

export interface ServiceAccountAccess {
  readonly kc: KubeConfig;
  readonly kubeconfigPath: string;
  readonly token: string;
  /** The ServiceAccount's user name: system:serviceaccount:<namespace>:<name>. */
  readonly user: string;
}

export interface ApiServer {
  /** https://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  /** The temp dir holding etcd's data, certs, keys, kubeconfigs and apiserver.log. */
  readonly dir: string;
  /** Admin (system:masters) kubeconfig file and the KubeConfig loaded from it. */
  readonly kubeconfigPath: string;
  readonly kc: KubeConfig;
  readonly adminToken: string;
  /** PEM of the CA bundle that verifies the serving certificate (the generated apiserver.crt). */
  readonly caPem: string;
  /** Pid of the running server process, or undefined while it is down. */
  readonly pid: number | undefined;
  /** Milliseconds from spawn to /readyz 200 at the last start. */
  readonly lastStartMs: number;
  /** The last `lines` lines of the server's stdout and stderr. */
  logTail(lines?: number): string;
  /**
   * Creates (or reuses) a ServiceAccount, a Role with `rules` and a RoleBinding,
   * requests a token (TokenRequest) and returns a kubeconfig authenticated as it,
   * once the server accepts the token and (for a non-empty Role) grants the first rule.
   */
  serviceAccountKubeConfig(opts: ServiceAccountOptions): Promise<ServiceAccountAccess>;
  /** Creates or replaces CRDs from YAML files (default: DEFAULT_CRDS) and waits until they are Established. */
  applyCrds(files?: readonly string[]): Promise<void>;
  /** Stops the process (SIGTERM, then SIGKILL) and keeps the data: the API is down until resume(). */
  halt(): Promise<void>;
  /** Starts the process again on the same data dir and port and waits for /readyz. */
  resume(): Promise<void>;
  /** halt() then resume(): an API-server restart with the data kept. */
  restart(): Promise<void>;
  /** Stops the process and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------- implementation

class ApiServerImpl implements ApiServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly kubeconfigPath: string;
  readonly kc: KubeConfig;
  readonly adminToken: string;
  caPem = '';
  lastStartMs = 0;
  private readonly binary: string;
  private readonly args: string[];
  private readonly readyTimeoutMs: number;
  private readonly logPath: string;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private exitInfo: string | null = null;
  private tail: string[] = [];
  private partial = '';
  private stopped = false;

  constructor(binary: string, port: number, dir: string, opts: StartOptions) {
    this.binary = binary;
    this.port = port;
    this.dir = dir;
    this.url = `https://127.0.0.1:${port}`;
    this.readyTimeoutMs = opts.readyTimeoutMs ?? K8S_DEADLINE.ready;
    this.logPath = join(dir, 'apiserver.log');
    this.kubeconfigPath = join(dir, 'admin.kubeconfig');
    this.kc = new KubeConfig();
    live.add(this);

    // Files the flags point at: token file, service-account key pair, dirs.
    this.adminToken = `admin-${randomBytes(24).toString('hex')}`;
    writeFileSync(join(dir, 'tokens.csv'), `${this.adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
    const { privateKey, publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    writeFileSync(join(dir, 'sa.key'), privateKey, { mode: 0o600 });
    writeFileSync(join(dir, 'sa.pub'), publicKey);
    mkdirSync(join(dir, 'certs'));
    this.args = [
      `--embedded-etcd-data-dir=${join(dir, 'etcd')}`,
      '--embedded-exit-with-parent',
      '--advertise-address=127.0.0.1',
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${join(dir, 'certs')}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      // The only endpoint of the "kubernetes" Service would be 127.0.0.1, which
      // Endpoints may not hold; nothing here needs it.
      '--endpoint-reconciler-type=none',
      // No controller creates the "default" ServiceAccount that this plugin requires of Pods.
      '--disable-admission-plugins=ServiceAccount',
      `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      ...(opts.extraArgs ?? []),
    ];
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  logTail(lines = STDERR_TAIL_LINES): string {
    const all = this.partial ? [...this.tail, this.partial] : this.tail;
    return all.slice(-lines).join('\n');
  }

  private onOutput(chunk: Buffer): void {
    try {
      appendFileSync(this.logPath, chunk);
    } catch {
      /* the temp dir is gone (stopped): the in-memory tail still has it */
    }
    const text = this.partial + chunk.toString('utf8');
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    this.tail.push(...lines);
    if (this.tail.length > 400) this.tail.splice(0, this.tail.length - 200);
  }

  /** Spawns the process and waits for /readyz 200; on failure kills it and throws what it observed. */
  async launch(): Promise<void> {
    if (this.child) throw new Error('kube-apiserver is already running');
    const t0 = Date.now();
    this.exitInfo = null;
    appendFileSync(this.logPath, `==== start ${new Date().toISOString()}: ${this.binary} ${this.args.join(' ')}\n`);
    const child = spawn(this.binary, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout?.on('data', (c: Buffer) => this.onOutput(c));
    child.stderr?.on('data', (c: Buffer) => this.onOutput(c));
    this.exited = new Promise<void>((res) => {
      child.once('error', (err) => {
        this.exitInfo = `spawn failed: ${err.message}`;
        if (this.child === child) this.child = null;
        res();
      });
      // 'close', not 'exit': its output has been read by then.
      child.once('close', (code, signal) => {
        this.exitInfo = signal ? `killed by ${signal}` : `exited with code ${code}`;
        if (this.child === child) this.child = null;
        res();
      });
    });

    const deadline = t0 + this.readyTimeoutMs;
    let last = 'no answer yet';
    for (;;) {
      if (this.exitInfo !== null) break;
      try {
        const r = await probe(`${this.url}/readyz`, this.adminToken);
        if (r.status === 200) {
          this.lastStartMs = Date.now() - t0;
          this.loadKubeConfig();
          return;
        }
        last = `HTTP ${r.status}: ${r.body.trim().split('\n').filter((l) => !l.startsWith('[+]')).join(' | ').slice(0, 600)}`;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      if (Date.now() >= deadline) break;
      await sleep(250);
    }
    const alive = this.exitInfo === null;
    const report = [
      `kube-apiserver on ${this.url} not ready after ${Date.now() - t0} ms (deadline ${this.readyTimeoutMs} ms)`,
      `process: ${alive ? `alive (pid ${child.pid})` : this.exitInfo}`,
      `last /readyz: ${last}`,
      `last ${STDERR_TAIL_LINES} lines of its output (all of it in ${this.logPath} while the temp dir exists):`,
      this.logTail(STDERR_TAIL_LINES),
    ].join('\n');
    await this.terminate();
    throw new Error(report);
  }

  /** Writes the admin kubeconfig (CA = the serving cert the server generated) and loads it into kc. */
  private loadKubeConfig(): void {
    this.caPem = readFileSync(join(this.dir, 'certs/apiserver.crt'), 'utf8');
    writeFileSync(this.kubeconfigPath, kubeconfigYaml(this.url, this.caPem, 'admin', this.adminToken), { mode: 0o600 });
    this.kc.loadFromFile(this.kubeconfigPath);
  }

  /** SIGTERM, then SIGKILL after K8S_DEADLINE.stop; resolves when the process is gone. */
  private async terminate(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), K8S_DEADLINE.stop);
    await this.exited;
    clearTimeout(killer);
  }

  /** Synchronous last resort for the exit guard: kills the process and removes the temp dir. */
  killNow(): void {
    try {
      this.child?.kill('SIGKILL');
    } catch {
      /* gone */
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  async halt(): Promise<void> {
    await this.terminate();
  }

  async resume(): Promise<void> {
    if (this.stopped) throw new Error('kube-apiserver was stopped (its data dir is gone)');
    await this.launch();
  }

  async restart(): Promise<void> {
    await this.halt();
    await this.resume();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    await this.terminate();
    this.stopped = true;
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }

  async applyCrds(files: readonly string[] = DEFAULT_CRDS): Promise<void> {
    const api = this.kc.makeApiClient(ApiextensionsV1Api);
    const names: string[] = [];
    for (const file of files) {
      // loadAllYaml gives model objects: the typed client serializes by model
      // property names (x_kubernetes_int_or_string, _ref, ...), so plain YAML
      // objects would lose every field whose JSON name differs.
      for (const doc of loadAllYaml(readFileSync(file, 'utf8')) as (V1CustomResourceDefinition | null)[]) {
        const crd = doc;
        if (!crd || crd.kind !== 'CustomResourceDefinition') continue;
        const name = crd.metadata?.name ?? '';
        names.push(name);
        try {
          await api.createCustomResourceDefinition({ body: crd });
        } catch (err) {
          if (statusOf(err) !== 409) throw err;
          const current = await api.readCustomResourceDefinition({ name });
          crd.metadata = { ...crd.metadata, resourceVersion: current.metadata?.resourceVersion };
          await api.replaceCustomResourceDefinition({ name, body: crd });
        }
      }
    }
    for (const name of names) {
      await pollUntil(`CRD ${name} Established`, K8S_DEADLINE.crdEstablished, async () => {
        const crd = await api.readCustomResourceDefinition({ name });
        return (crd.status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True');
      });
      // Established is not yet servable: right after it a list can still get 429 "storage is
      // (re)initializing". Wait until the resource lists (in the default namespace, if namespaced).
      const crd = await api.readCustomResourceDefinition({ name });
      const custom = this.kc.makeApiClient(CustomObjectsApi);
      const version = crd.spec.versions.find((v) => v.storage)?.name ?? crd.spec.versions[0]!.name;
      await pollUntil(`CRD ${name} serves lists`, K8S_DEADLINE.crdEstablished, async () => {
        if (crd.spec.scope === 'Cluster') await custom.listClusterCustomObject({ group: crd.spec.group, version, plural: crd.spec.names.plural });
        else await custom.listNamespacedCustomObject({ group: crd.spec.group, version, namespace: 'default', plural: crd.spec.names.plural });
        return true;
      });
    }
  }

  async serviceAccountKubeConfig(opts: ServiceAccountOptions): Promise<ServiceAccountAccess> {
    const { name, namespace = 'default', rules, expirationSeconds = 3600, clusterRules = [] } = opts;
    const core = this.kc.makeApiClient(CoreV1Api);
    const rbac = this.kc.makeApiClient(RbacAuthorizationV1Api);
    await ignoreConflict(core.createNamespace({ body: { metadata: { name: namespace } } }));
    await ignoreConflict(core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } }));
    await ignoreConflict(rbac.createNamespacedRole({ namespace, body: { metadata: { name }, rules: [...rules] } }));
    await ignoreConflict(
      rbac.createNamespacedRoleBinding({
        namespace,
        body: {
          metadata: { name },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
          subjects: [{ kind: 'ServiceAccount', name, namespace }],
        },
      }),
    );
    if (clusterRules.length > 0) {
      const cname = `${namespace}-${name}`;
      await ignoreConflict(rbac.createClusterRole({ body: { metadata: { name: cname }, rules: [...clusterRules] } }));
      await ignoreConflict(
        rbac.createClusterRoleBinding({
          body: {
            metadata: { name: cname },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: cname },
            subjects: [{ kind: 'ServiceAccount', name, namespace }],
          },
        }),
      );
    }
    const tr = await core.createNamespacedServiceAccountToken({
      name,
      namespace,
      body: { spec: { audiences: [], expirationSeconds } },
    });
    const token = tr.status?.token;
    if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
    const user = `system:serviceaccount:${namespace}:${name}`;
    const path = join(this.dir, `sa-${namespace}-${name}.kubeconfig`);
    writeFileSync(path, kubeconfigYaml(this.url, this.caPem, user, token), { mode: 0o600 });
    const kc = new KubeConfig();
    kc.loadFromFile(path);

    // The authenticator and the RBAC authorizer read through caches: wait until
    // the token is accepted and the Role's first rule is granted.
    const authn = kc.makeApiClient(AuthenticationV1Api);
    await pollUntil(`token of ${user} accepted`, K8S_DEADLINE.rbac, async () => {
      const r = await authn.createSelfSubjectReview({ body: {} });
      return r.status?.userInfo?.username === user;
    });
    for (const [first, scope] of [[rules[0], 'Role'], [clusterRules[0], 'ClusterRole']] as const) {
      const verb = first?.verbs[0];
      if (first && verb && verb !== '*') {
        const authz = this.kc.makeApiClient(AuthorizationV1Api);
        await pollUntil(`RBAC grants ${user} its ${scope}`, K8S_DEADLINE.rbac, async () => {
          const r = await authz.createSubjectAccessReview({
            body: {
              spec: {
                user,
                groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
                resourceAttributes: {
                  namespace,
                  verb,
                  group: first.apiGroups?.[0] ?? '',
                  resource: first.resources?.[0] ?? '',
                  name: first.resourceNames?.[0],
                },
              },
            },
          });
          return r.status?.allowed === true;
        });
      }
    }
    return { kc, kubeconfigPath: path, token, user };
  }
}

/** A kubeconfig with one cluster, one token user and one current context. */
export function kubeconfigYaml(server: string, caPem: string, user: string, token: string): string {
  return toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user, namespace: 'default' } }],
    'current-context': 'test',
  });
}

const TEMP_PREFIX = 'sg-apiserver-';

/**
 * Removes temp dirs left by test processes that were killed (SIGKILL skips the
 * exit guard; their servers exit by themselves via --embedded-exit-with-parent).
 */
function sweepStaleDirs(): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir()).filter((n) => n.startsWith(TEMP_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = join(tmpdir(), name);
    let owner = 0;
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'));
    } catch {
      continue; // being created, or not ours
    }
    if (!Number.isInteger(owner) || owner <= 0 || owner === process.pid) continue;
    try {
      process.kill(owner, 0);
      continue; // owner alive
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') continue;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts a kube-apiserver (with embedded etcd) on a free loopback port and a
 * fresh temp dir, and waits until /readyz answers 200. Call stop() when done
 * (the exit guard kills it anyway).
 */
export async function startApiServer(opts: StartOptions = {}): Promise<ApiServer> {
  const binary = opts.binary ?? apiServerBinary().path;
  if (!binary) throw new Error(apiServerBinary().why);
  sweepStaleDirs();
  const dir = mkdtempSync(join(tmpdir(), TEMP_PREFIX));
  writeFileSync(join(dir, 'owner.pid'), String(process.pid));
  let server: ApiServerImpl | null = null;
  try {
    server = new ApiServerImpl(binary, await freePort(), dir, opts);
    await server.launch();
    return server;
  } catch (err) {
    if (server) await server.stop();
    else rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
