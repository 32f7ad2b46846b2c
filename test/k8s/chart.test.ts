// Issue 9 item 5, must show: the Helm chart (charts/serve-gateway) with a real
// helm (v3.22.0, built from the Go module by scripts/build-tools.sh helm) against
// the real kube-apiserver (test/k8s/apiserver.ts).
//
// - `helm lint --strict` and `helm template` with the default values, with every
//   option on (fixtures/chart-full-values.yaml) and with persistence; the schema and
//   the chart's own checks refuse what cannot work.
// - The rendered manifests pass a server-side dry-run (server-side apply,
//   fieldValidation=Strict: no unknown field), and the pod template is admitted in a
//   namespace that enforces the "restricted" Pod Security Standard.
// - `helm install` for real, twice (default and full values); `helm upgrade` keeps
//   the generated admin token (lookup).
// - The gateway, started as the image starts it (the CLI with the Deployment's args
//   and env, the installed ConfigMap as its config file) and authenticated as the
//   chart's ServiceAccount (TokenRequest) with only the chart's Role, discovers a
//   RayService played by KubeRayPlayer and routes to it; a verb the Role does not
//   grant is denied (403).
// - Gateway API mode (gatewayAPI.enabled): the GatewayClass, the ClusterRole and
//   binding for GatewayClasses, the Role's Gateway API rules, config.kubernetes.gateway_api;
//   installed without the Gateway API CRDs the gateway keeps running and reports them
//   missing; with them, the chart's RBAC is enough to accept the class, program a
//   Gateway at the chart's Service and route an HTTPRoute.
// Run with `npm run test:k8s` (builds kube-apiserver and helm first).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import type { V1Deployment, V1PolicyRule } from '@kubernetes/client-node';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseConfigText } from '../../src/config/load.ts';
import { APISERVER_SETUP_TIMEOUT_MS, DEFAULT_CRDS, REPO, apiServerUnavailable, kubeconfigYaml, startApiServer, statusOf } from './apiserver.ts';
import type { ApiServer } from './apiserver.ts';
import { CONTROLLER_NAME, GATEWAY_API_CLUSTER_RULES, GATEWAY_API_CRDS, GATEWAY_API_ROLE_RULES, GatewayApiObjects, IncrementalPlayer } from './gateway-player.ts';
import { GATEWAY_ROLE_RULES, GiveUp, KubeRayPlayer, replicaRoleRules, until } from './kuberay-player.ts';

const CHART = join(REPO, 'charts/serve-gateway');
const FIXTURES = join(REPO, 'test/k8s/fixtures');
const FULL_VALUES = join(FIXTURES, 'chart-full-values.yaml');
const PERSISTENCE_VALUES = join(FIXTURES, 'chart-persistence-values.yaml');
const SERVICEMONITOR_CRD = join(FIXTURES, 'chart-servicemonitor-crd.yaml');
/** The Kubernetes version of tools/kube-apiserver, for `helm template` (which has no cluster to ask). */
const KUBE_VERSION = 'v1.37.2';
/** A reaction on a busy 2-core machine (typical: well under a second). */
const REACT_MS = 60_000;
/** One helm command on a busy machine (typical: 0.1-1 s). */
const HELM_TIMEOUT_MS = 120_000;

function helmBinary(): { path: string | null; why: string } {
  const env = process.env['HELM_BIN'];
  if (env) return { path: env, why: '' };
  const r = spawnSync(join(REPO, 'scripts/build-tools.sh'), ['--path', 'helm'], { encoding: 'utf8' });
  const path = r.status === 0 ? r.stdout.trim() : '';
  return path ? { path, why: '' } : { path: null, why: 'helm binary not built for the current tools/helm sources (run scripts/build-tools.sh helm, or npm run test:k8s)' };
}

const helmBin = helmBinary();
const unavailable = apiServerUnavailable() ?? (helmBin.path === null ? helmBin.why : null);

// ---------------------------------------------------------------- helm

const helmHome = mkdtempSync(join(tmpdir(), 'sg-helm-'));

interface HelmResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function helm(args: string[], kubeconfig?: string): Promise<HelmResult> {
  const t0 = performance.now();
  return new Promise((res, rej) => {
    const child = spawn(helmBin.path!, args, {
      cwd: REPO,
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        HOME: helmHome,
        HELM_CACHE_HOME: join(helmHome, 'cache'),
        HELM_CONFIG_HOME: join(helmHome, 'config'),
        HELM_DATA_HOME: join(helmHome, 'data'),
        KUBECONFIG: kubeconfig ?? join(helmHome, 'no-cluster'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), HELM_TIMEOUT_MS);
    child.on('error', rej);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

async function helmOk(args: string[], kubeconfig?: string): Promise<HelmResult> {
  const r = await helm(args, kubeconfig);
  assert.equal(r.code, 0, `helm ${args.join(' ')} failed:\n${r.stderr}\n${r.stdout.slice(0, 2000)}`);
  return r;
}

type Manifest = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function template(release: string, namespace: string, extra: string[] = []): Promise<Manifest[]> {
  const r = await helmOk(['template', release, CHART, '--namespace', namespace, '--kube-version', KUBE_VERSION, ...extra]);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

function one(ms: readonly Manifest[], kind: string, name?: string): Manifest {
  const found = ms.filter((m) => m.kind === kind && (name === undefined || m.metadata?.name === name));
  assert.equal(found.length, 1, `one ${kind}${name ? ` ${name}` : ''} in ${ms.map((m) => `${m.kind}/${m.metadata?.name}`).join(', ')}`);
  return found[0]!;
}

const kinds = (ms: readonly Manifest[]) => ms.map((m) => m.kind).sort();

/** The gateway's durations (docs/configuration.md) in seconds. */
function seconds(v: string | number): number {
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v.trim());
  assert.ok(m, `duration ${v}`);
  return (Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h']);
}

// ---------------------------------------------------------------- raw API calls

interface Raw {
  status: number;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

function raw(server: ApiServer, method: string, path: string, body?: string, contentType = 'application/json', token = server.adminToken): Promise<Raw> {
  return new Promise((res, rej) => {
    const req = httpsRequest(
      `${server.url}${path}`,
      { method, ca: server.caPem, headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body !== undefined ? { 'content-type': contentType } : {}) } },
      (r) => {
        let text = '';
        r.setEncoding('utf8');
        r.on('data', (c: string) => (text += c));
        r.on('end', () => {
          let json: unknown = text;
          try {
            json = JSON.parse(text);
          } catch {
            /* text */
          }
          res({ status: r.statusCode ?? 0, json });
        });
      },
    );
    req.on('error', rej);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Plural and scope of a kind, from the API server's discovery. */
async function resourceOf(server: ApiServer, apiVersion: string, kind: string): Promise<{ plural: string; namespaced: boolean }> {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const r = await raw(server, 'GET', base);
  assert.equal(r.status, 200, `discovery ${base}: ${JSON.stringify(r.json).slice(0, 300)}`);
  const res = (r.json.resources as Array<{ name: string; kind: string; namespaced: boolean }>).find((x) => x.kind === kind && !x.name.includes('/'));
  assert.ok(res, `${kind} is served by ${base}`);
  return { plural: res.name, namespaced: res.namespaced };
}

/** Server-side apply with dryRun=All and fieldValidation=Strict: the API server validates, stores nothing. */
async function dryRunApply(server: ApiServer, m: Manifest, fallbackNs: string): Promise<Raw> {
  const { plural, namespaced } = await resourceOf(server, m.apiVersion!, m.kind!);
  const base = m.apiVersion!.includes('/') ? `/apis/${m.apiVersion}` : `/api/${m.apiVersion}`;
  const ns = namespaced ? `/namespaces/${m.metadata?.namespace ?? fallbackNs}` : '';
  const path = `${base}${ns}/${plural}/${m.metadata!.name}?dryRun=All&fieldManager=chart-test&fieldValidation=Strict&force=true`;
  return raw(server, 'PATCH', path, JSON.stringify(m), 'application/apply-patch+yaml');
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

// ---------------------------------------------------------------- the suite

describe('charts/serve-gateway with a real helm against a real kube-apiserver', { skip: unavailable ?? false, concurrency: false }, () => {
  let server: ApiServer;
  const players: KubeRayPlayer[] = [];
  const children: ChildProcess[] = [];
  const tempDirs: string[] = [helmHome];

  before(
    async () => {
      server = await startApiServer();
      await server.applyCrds([...DEFAULT_CRDS, SERVICEMONITOR_CRD]);
      const core = server.kc.makeApiClient(CoreV1Api);
      for (const name of ['gw', 'gw-full', 'ray-full', 'restricted', 'gw-api']) {
        const labels: Record<string, string> = name === 'restricted' ? { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' } : {};
        await core.createNamespace({ body: { metadata: { name, labels } } });
      }
      const v = await helmOk(['version', '--short']);
      console.log(`# kube-apiserver ready in ${server.lastStartMs} ms; helm ${v.stdout.trim()} (${helmBin.path})`);
    },
    { timeout: APISERVER_SETUP_TIMEOUT_MS },
  );

  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    for (const p of players) await p.stopAll().catch(() => {});
    await server?.stop();
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });

  test('helm lint --strict passes with the default, full and persistence values; the schema and the chart refuse what cannot work', { timeout: 300_000 }, async () => {
    for (const values of [[], ['-f', FULL_VALUES], ['-f', PERSISTENCE_VALUES], ['--set', 'gatewayAPI.enabled=true']]) {
      const r = await helmOk(['lint', '--strict', CHART, ...values]);
      assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      console.log(`# helm lint --strict ${values.join(' ') || '(defaults)'}: ${r.ms.toFixed(0)} ms`);
    }
    const refused: Array<[string[], RegExp]> = [
      [['--set', 'replicaCount=0'], /replicaCount.*minimum/],
      [['--set', 'service.type=Bogus'], /service\/type/],
      [['--set', 'unknownTopLevel=1'], /additional properties 'unknownTopLevel' not allowed|unknownTopLevel/],
      [['--set', 'gatewayApi.enabled=true', '--set', 'config.source=file'], /gatewayAPI\.enabled needs config\.source: kubernetes/],
      [['--set', 'gatewayAPI.controllerName=no-domain'], /controllerName/],
      [['--set', 'gatewayApi.gatewayClass.name=Not_A_Name'], /gatewayClass\/name|gatewayClass.*name/],
      [['--set', 'config.listen=0.0.0.0:1'], /config\.listen is set by the chart/],
      [['--set', 'config.state_dir=/data/state'], /config\.state_dir \(\/data\/state\) must be relative or under \/var\/lib\/serve-gateway/],
      [['-f', PERSISTENCE_VALUES, '--set', 'replicaCount=2'], /persistence\.enabled needs replicaCount 1/],
      [['--set', 'config.kubernetes.selector=team=llm'], /give rayservices or selector, not both/],
    ];
    for (const [args, why] of refused) {
      const r = await helm(['template', 'x', CHART, '--kube-version', KUBE_VERSION, ...args]);
      assert.notEqual(r.code, 0, `helm template ${args.join(' ')} is refused`);
      assert.match(r.stderr, why, `helm template ${args.join(' ')}: ${r.stderr}`);
    }
  });

  test('helm template: what the default and the full values render', { timeout: 300_000 }, async () => {
    const defaults = await template('gw', 'gw');
    assert.deepEqual(kinds(defaults), ['ConfigMap', 'Deployment', 'Role', 'RoleBinding', 'Secret', 'Service', 'Service', 'ServiceAccount']);
    const full = await template('gw', 'gw-full', ['-f', FULL_VALUES]);
    assert.deepEqual(kinds(full), ['ConfigMap', 'ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Ingress', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Service', 'Service', 'ServiceAccount', 'ServiceMonitor']);
    const persistent = await template('gw', 'gw', ['-f', PERSISTENCE_VALUES]);
    assert.equal(one(persistent, 'PersistentVolumeClaim').spec.resources.requests.storage, '2Gi');
    assert.equal(one(persistent, 'Deployment').spec.strategy.type, 'Recreate');

    const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
    const imageStateDir = /^ENV SERVE_GATEWAY_STATE_DIR=(\S+)$/m.exec(dockerfile)?.[1];
    assert.ok(imageStateDir, 'the Dockerfile sets SERVE_GATEWAY_STATE_DIR');
    const fullValues = parseYaml(readFileSync(FULL_VALUES, 'utf8'));

    for (const [label, ms, values] of [
      ['defaults', defaults, parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8'))],
      ['full', full, fullValues],
    ] as const) {
      const dep = one(ms, 'Deployment') as V1Deployment;
      const pod = dep.spec!.template.spec!;
      const c = pod.containers[0]!;
      assert.equal(pod.securityContext?.runAsNonRoot, true, `${label}: runAsNonRoot`);
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${label}: read-only root filesystem`);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL']);
      assert.ok(c.resources?.requests?.['cpu'] && c.resources?.requests?.['memory'], `${label}: resource requests`);
      assert.deepEqual([c.livenessProbe?.httpGet?.path, c.livenessProbe?.httpGet?.port], ['/healthz', 'admin']);
      assert.deepEqual([c.readinessProbe?.httpGet?.path, c.readinessProbe?.httpGet?.port], ['/readyz', 'admin']);
      assert.equal(c.ports?.find((p) => p.name === 'admin')?.containerPort, values.containerPorts.admin);
      // The writable volume is where the image's SERVE_GATEWAY_STATE_DIR points, and the env says so too.
      const stateMount = c.volumeMounts?.find((m) => m.name === 'state');
      assert.equal(stateMount?.mountPath, imageStateDir);
      assert.equal(c.env?.find((e) => e.name === 'SERVE_GATEWAY_STATE_DIR')?.value, imageStateDir);
      assert.equal(c.volumeMounts?.find((m) => m.name === 'config')?.readOnly, true);
      // preStop sleep, then the gateway's drain: drain_delay + grace_period, plus the margin.
      const sd = values.config.shutdown ?? {};
      const expected = values.lifecycle.preStopSleepSeconds + Math.ceil(seconds(sd.drain_delay ?? '1s')) + Math.ceil(seconds(sd.grace_period ?? '30s')) + values.lifecycle.exitMarginSeconds;
      assert.equal(pod.terminationGracePeriodSeconds, expected, `${label}: terminationGracePeriodSeconds`);
      assert.deepEqual(c.lifecycle?.preStop?.exec?.command, ['sleep', String(values.lifecycle.preStopSleepSeconds)]);
      // The Role is exactly what the gateway needs: what the discovery suite grants, and the state
      // ConfigMap (by the name the rendered config gives) and the Leases of the shared state.
      const role = one(ms, 'Role');
      const stateCm = (parseYaml(ms.find((m) => m.kind === 'ConfigMap' && m.data?.['gateway.yaml'] !== undefined)!.data['gateway.yaml']) as { kubernetes: { state_configmap: string } }).kubernetes.state_configmap;
      assert.deepEqual(role.rules as V1PolicyRule[], replicaRoleRules(stateCm), `${label}: the Role's rules`);
      assert.equal(ms.filter((m) => m.kind.startsWith('Cluster')).length, 0, `${label}: nothing cluster-wide`);
      // The config the chart renders is one the gateway accepts, with its state on the volume.
      const cm = ms.find((m) => m.kind === 'ConfigMap' && m.data?.['gateway.yaml'] !== undefined)!;
      const prev = process.env['SERVE_GATEWAY_STATE_DIR'];
      process.env['SERVE_GATEWAY_STATE_DIR'] = imageStateDir;
      let parsed;
      try {
        parsed = parseConfigText(cm.data['gateway.yaml'], 'gateway.yaml', '/etc/serve-gateway');
      } finally {
        if (prev === undefined) delete process.env['SERVE_GATEWAY_STATE_DIR'];
        else process.env['SERVE_GATEWAY_STATE_DIR'] = prev;
      }
      assert.ok(parsed.ok, `${label}: the gateway accepts the chart's config: ${JSON.stringify(parsed.ok ? '' : parsed.issues)}`);
      assert.equal(parsed.config.stateDir, imageStateDir);
      assert.equal(parsed.config.kubernetes?.lastKnownGood, `${imageStateDir}/last-known-good.json`);
      assert.equal(parsed.config.admin.listen.host, '0.0.0.0');
      assert.equal(parsed.config.kubernetes?.namespace, role.metadata?.namespace, `${label}: the gateway watches the Role's namespace`);
    }

    // Full values: each option shows up where it should.
    assert.equal(one(full, 'Role').metadata?.namespace, 'ray-full', 'the Role lives in the watched namespace');
    assert.deepEqual(one(full, 'RoleBinding').subjects, [{ kind: 'ServiceAccount', name: 'gw-full-sa', namespace: 'gw-full' }]);
    const dep = one(full, 'Deployment');
    assert.equal(dep.spec.replicas, undefined, 'the HPA owns the replica count');
    assert.equal(dep.spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name, 'gw-admin');
    assert.equal(dep.spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.key, 'admin-token');
    const hpa = one(full, 'HorizontalPodAutoscaler');
    assert.deepEqual([hpa.spec.minReplicas, hpa.spec.maxReplicas, hpa.spec.scaleTargetRef.name], [2, 6, 'gw-full']);
    const fullCfg = parseYaml(one(full, 'ConfigMap', 'gw-full').data['gateway.yaml']);
    assert.equal(fullCfg.admission?.gateway_replicas, undefined, 'kubernetes mode counts the live replicas: no hand-set divisor');
    assert.deepEqual([fullCfg.kubernetes.state_configmap, fullCfg.kubernetes.leader_lease], ['gw-full-state', 'gw-full-leader'], 'the replicas share their state');
    const haRules = one(full, 'Role').rules.filter((r: { resources: string[] }) => r.resources.includes('configmaps') || r.resources.includes('leases'));
    assert.deepEqual(haRules.find((r: { resourceNames?: string[] }) => r.resourceNames)?.resourceNames, ['gw-full-state'], 'the state ConfigMap is granted by name');
    assert.ok(fullCfg.admin.allowed_hosts.includes('gateway-admin.example.com') && fullCfg.admin.allowed_hosts.includes('gw-full-admin.gw-full.svc'));
    const sm = one(full, 'ServiceMonitor');
    assert.deepEqual(sm.spec.endpoints[0].authorization, { type: 'Bearer', credentials: { name: 'gw-admin', key: 'admin-token' } });
    assert.equal(sm.spec.endpoints[0].port, 'admin');
    assert.equal(sm.spec.selector.matchLabels['app.kubernetes.io/component'], 'admin');
    const ing = one(full, 'Ingress');
    assert.equal(ing.metadata.annotations['nginx.ingress.kubernetes.io/proxy-buffering'], 'off');
    assert.ok(Number(ing.metadata.annotations['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 3600);
    assert.deepEqual(ing.spec.rules.map((r: { host: string }) => r.host), ['llm.example.com', 'api.llm.example.com']);
    const dash = one(full, 'ConfigMap', 'gw-full-dashboard');
    assert.equal(dash.metadata.labels['grafana_dashboard'], '1');
    const board = JSON.parse(dash.data['serve-gateway.json']) as { panels: Array<{ targets?: Array<{ expr: string }> }> };
    // Every metric the dashboard queries is one the gateway registers (docs/metrics.md, itself checked
    // against the registry by test/docs-truth), and every contract metric is on the dashboard.
    const metricsDoc = readFileSync(join(REPO, 'docs/metrics.md'), 'utf8');
    const documented = new Set([...metricsDoc.matchAll(/^\| `(serve_gateway_[a-z_]+)`/gm)].map((m) => m[1]!));
    const contract = [...metricsDoc.matchAll(/^\| `(serve_gateway_[a-z_]+)` \(\*\*contract\*\*\)/gm)].map((m) => m[1]!);
    const used = new Set(board.panels.flatMap((p) => p.targets ?? []).flatMap((t) => [...t.expr.matchAll(/serve_gateway_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''))));
    for (const name of used) {
      const family = name.startsWith('serve_gateway_process_') || name.startsWith('serve_gateway_nodejs_');
      assert.ok(documented.has(name) || family, `the dashboard queries ${name}, which docs/metrics.md does not list`);
    }
    for (const name of contract) assert.ok(used.has(name), `the dashboard shows the contract metric ${name}`);
    console.log(`# dashboard: ${board.panels.length} panels, ${used.size} metrics`);
  });

  test('helm template with gatewayAPI.enabled: the GatewayClass, the ClusterRole and binding for GatewayClasses, the Role\'s Gateway API rules, config.kubernetes.gateway_api', { timeout: 300_000 }, async () => {
    const cfgOf = (ms: readonly Manifest[]) => parseYaml(ms.find((m) => m.kind === 'ConfigMap' && m.data?.['gateway.yaml'] !== undefined)!.data['gateway.yaml']);
    /** The Gateway API rules of the Role: GATEWAY_API_ROLE_RULES past the Kubernetes-mode ones. */
    const gwRoleRules = GATEWAY_API_ROLE_RULES.slice(GATEWAY_ROLE_RULES.length);
    // gatewayApi (the spelling of docs/gateway-api.md) is an alias of gatewayAPI (the contract value).
    for (const flag of ['gatewayApi.enabled=true', 'gatewayAPI.enabled=true']) {
      const ms = await template('gw', 'gw', ['--set', flag]);
      assert.deepEqual(kinds(ms), ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'GatewayClass', 'Role', 'RoleBinding', 'Secret', 'Service', 'Service', 'ServiceAccount'], flag);
      const cls = one(ms, 'GatewayClass');
      assert.equal(cls.apiVersion, 'gateway.networking.k8s.io/v1');
      assert.equal(cls.metadata.name, 'serve-gateway');
      assert.equal(cls.metadata.namespace, undefined, 'the GatewayClass is cluster-scoped');
      assert.deepEqual(cls.spec, { controllerName: CONTROLLER_NAME });
      const cr = one(ms, 'ClusterRole');
      assert.equal(cr.metadata.name, 'gw-gw-serve-gateway-gatewayclasses', 'named after the release namespace and name');
      assert.equal(cr.metadata.namespace, undefined);
      assert.deepEqual(cr.rules, GATEWAY_API_CLUSTER_RULES);
      const crb = one(ms, 'ClusterRoleBinding');
      assert.equal(crb.metadata.name, cr.metadata.name);
      assert.deepEqual(crb.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: cr.metadata.name });
      assert.deepEqual(crb.subjects, [{ kind: 'ServiceAccount', name: 'gw-serve-gateway', namespace: 'gw' }]);
      assert.deepEqual(one(ms, 'Role').rules, [...replicaRoleRules('gw-serve-gateway-state'), ...gwRoleRules], `${flag}: the Role's rules`);
      const cfg = cfgOf(ms);
      assert.deepEqual(cfg.kubernetes.gateway_api, { enabled: true, controller_name: CONTROLLER_NAME, service: 'gw-serve-gateway' });
      // That Service is the chart's data-plane Service, in the namespace the gateway looks it up in.
      const svc = one(ms, 'Service', 'gw-serve-gateway');
      assert.equal(svc.metadata.namespace, cfg.kubernetes.namespace);
      assert.equal(svc.spec.ports[0].name, 'http');
      const parsed = parseConfigText(one(ms, 'ConfigMap').data['gateway.yaml'], 'gateway.yaml', '/etc/serve-gateway');
      assert.ok(parsed.ok, `the gateway accepts the chart's config: ${JSON.stringify(parsed.ok ? '' : parsed.issues)}`);
      assert.deepEqual(parsed.config.kubernetes?.gatewayApi, { controllerName: CONTROLLER_NAME, service: 'gw-serve-gateway' });
    }

    // Another watched namespace: the gateway would look the Service up there, so no service (Programmed without an address).
    const other = await template('gw', 'gw', ['--set', 'gatewayApi.enabled=true', '--set', 'config.kubernetes.namespace=ray-api']);
    assert.deepEqual(cfgOf(other).kubernetes.gateway_api, { enabled: true, controller_name: CONTROLLER_NAME });
    assert.equal(one(other, 'Role').metadata.namespace, 'ray-api');
    assert.deepEqual(one(other, 'Role').rules.slice(-gwRoleRules.length), gwRoleRules);
    assert.deepEqual(one(other, 'ClusterRoleBinding').subjects, [{ kind: 'ServiceAccount', name: 'gw-serve-gateway', namespace: 'gw' }]);

    // The user's config.kubernetes.gateway_api wins, as it is; the GatewayClass takes its controller_name.
    const mine = await template('gw', 'gw', ['--set', 'gatewayApi.enabled=true', '--set-json', 'config.kubernetes.gateway_api={"controller_name":"example.com/llm-gateway","service":"edge"}']);
    assert.deepEqual(cfgOf(mine).kubernetes.gateway_api, { controller_name: 'example.com/llm-gateway', service: 'edge' });
    assert.equal(one(mine, 'GatewayClass').spec.controllerName, 'example.com/llm-gateway');
    assert.deepEqual(one(mine, 'Role').rules.slice(-gwRoleRules.length), gwRoleRules);
    // ... also off: the RBAC follows the rendered config (nothing cluster-wide), the class stays.
    const off = await template('gw', 'gw', ['--set', 'gatewayApi.enabled=true', '--set-json', 'config.kubernetes.gateway_api={"enabled":false}']);
    assert.deepEqual(kinds(off), ['ConfigMap', 'Deployment', 'GatewayClass', 'Role', 'RoleBinding', 'Secret', 'Service', 'Service', 'ServiceAccount']);
    assert.deepEqual(one(off, 'Role').rules, replicaRoleRules('gw-serve-gateway-state'));
    // ... and on without gatewayAPI.enabled: its RBAC, no GatewayClass.
    const cfgOnly = await template('gw', 'gw', ['--set-json', 'config.kubernetes.gateway_api={"enabled":true}']);
    assert.deepEqual(kinds(cfgOnly), ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'Role', 'RoleBinding', 'Secret', 'Service', 'Service', 'ServiceAccount']);

    // The class's name and controller, and no class.
    const named = await template('gw', 'gw', ['--set', 'gatewayAPI.enabled=true', '--set', 'gatewayAPI.gatewayClass.name=llm-gateways', '--set', 'gatewayApi.controllerName=example.com/gw']);
    assert.deepEqual([one(named, 'GatewayClass').metadata.name, one(named, 'GatewayClass').spec.controllerName, cfgOf(named).kubernetes.gateway_api.controller_name], ['llm-gateways', 'example.com/gw', 'example.com/gw']);
    const noClass = await template('gw', 'gw', ['--set', 'gatewayAPI.enabled=true', '--set', 'gatewayApi.gatewayClass.create=false']);
    assert.equal(noClass.filter((m) => m.kind === 'GatewayClass').length, 0);
    assert.equal(one(noClass, 'ClusterRole').metadata.name, 'gw-gw-serve-gateway-gatewayclasses');
    // Cluster-wide names do not collide between releases of the same name in two namespaces.
    const twin = await template('gw', 'gw-full', ['--set', 'gatewayAPI.enabled=true', '--set', 'gatewayAPI.gatewayClass.create=false']);
    assert.equal(one(twin, 'ClusterRole').metadata.name, 'gw-full-gw-serve-gateway-gatewayclasses');
  });

  test('the rendered manifests pass a server-side dry-run (strict field validation); the pod is admitted under Pod Security "restricted"', { timeout: 300_000 }, async () => {
    for (const [label, ns, extra] of [
      ['defaults', 'gw', []],
      ['full', 'gw-full', ['-f', FULL_VALUES]],
      ['persistence', 'gw', ['-f', PERSISTENCE_VALUES]],
    ] as const) {
      const ms = await template('dry', ns, [...extra]);
      for (const m of ms) {
        const r = await dryRunApply(server, m, ns);
        assert.equal(r.status, 201, `${label}: dry-run ${m.kind}/${m.metadata?.name}: ${r.status} ${JSON.stringify(r.json).slice(0, 600)}`);
      }
      // Nothing was stored.
      const cms = await server.kc.makeApiClient(CoreV1Api).listNamespacedConfigMap({ namespace: ns, labelSelector: 'app.kubernetes.io/instance=dry' });
      assert.equal(cms.items.length, 0);
      // The Deployment's pod, as the ReplicaSet controller would create it, in a namespace enforcing "restricted".
      const dep = one(ms, 'Deployment');
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: `pss-${label}`, namespace: 'restricted' }, spec: dep.spec.template.spec };
      const r = await raw(server, 'POST', '/api/v1/namespaces/restricted/pods?dryRun=All&fieldValidation=Strict', JSON.stringify(pod));
      assert.equal(r.status, 201, `${label}: the pod is admitted under "restricted": ${JSON.stringify(r.json).slice(0, 600)}`);
      console.log(`# dry-run ${label}: ${ms.length} objects accepted; pod admitted under Pod Security "restricted"`);
    }
    // The check is real: a pod without the chart's securityContext is refused there.
    const bare = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'pss-bare', namespace: 'restricted' }, spec: { containers: [{ name: 'c', image: 'serve-gateway:0.1.0' }] } };
    const r = await raw(server, 'POST', '/api/v1/namespaces/restricted/pods?dryRun=All', JSON.stringify(bare));
    assert.equal(r.status, 403, JSON.stringify(r.json).slice(0, 300));
    assert.match(String(r.json.message), /violates PodSecurity "restricted/);
    // And strict field validation is on: an unknown field is refused.
    const typo = (await template('typo', 'gw')).find((m) => m.kind === 'Service')!;
    typo['spec']['portz'] = [];
    const t = await dryRunApply(server, typo, 'gw');
    assert.notEqual(t.status, 201, JSON.stringify(t.json).slice(0, 300));
    assert.match(String(t.json.message), /\.spec\.portz: field not declared in schema/);
  });

  test('helm install for real (default and full values); helm upgrade keeps the generated admin token', { timeout: 300_000 }, async () => {
    const core = server.kc.makeApiClient(CoreV1Api);
    const apps = server.kc.makeApiClient(AppsV1Api);
    const rbac = server.kc.makeApiClient(RbacAuthorizationV1Api);
    const custom = server.kc.makeApiClient(CustomObjectsApi);
    const kubeconfig = server.kubeconfigPath;

    const install = await helmOk(['install', 'gw', CHART, '--namespace', 'gw', '--wait=false'], kubeconfig);
    console.log(`# helm install (defaults): ${install.ms.toFixed(0)} ms`);
    assert.match(install.stdout, /STATUS: deployed/);
    assert.match(install.stdout, /export SERVE_GATEWAY_ADMIN_TOKEN=\$\(kubectl -n gw get secret gw-serve-gateway-admin-token/, 'NOTES tell how to get the token');
    assert.match(install.stdout, /serve-gateway traffic status --admin http:\/\/localhost:9901/, 'NOTES tell how to run the CLI');
    assert.match(install.stdout, /kubectl -n gw port-forward svc\/gw-serve-gateway-admin 9901:9901/);
    const dep = await apps.readNamespacedDeployment({ namespace: 'gw', name: 'gw-serve-gateway' });
    assert.equal(dep.spec?.replicas, 1);
    await core.readNamespacedService({ namespace: 'gw', name: 'gw-serve-gateway' });
    await core.readNamespacedService({ namespace: 'gw', name: 'gw-serve-gateway-admin' });
    await core.readNamespacedServiceAccount({ namespace: 'gw', name: 'gw-serve-gateway' });
    await core.readNamespacedConfigMap({ namespace: 'gw', name: 'gw-serve-gateway' });
    await rbac.readNamespacedRole({ namespace: 'gw', name: 'gw-serve-gateway' });
    await rbac.readNamespacedRoleBinding({ namespace: 'gw', name: 'gw-serve-gateway' });
    const secret = await core.readNamespacedSecret({ namespace: 'gw', name: 'gw-serve-gateway-admin-token' });
    const token = Buffer.from(secret.data?.['token'] ?? '', 'base64').toString();
    assert.match(token, /^[A-Za-z0-9]{48}$/);

    const upgrade = await helmOk(['upgrade', 'gw', CHART, '--namespace', 'gw', '--set', 'logLevel=debug'], kubeconfig);
    assert.match(upgrade.stdout, /REVISION: 2/);
    const after = await core.readNamespacedSecret({ namespace: 'gw', name: 'gw-serve-gateway-admin-token' });
    assert.equal(Buffer.from(after.data?.['token'] ?? '', 'base64').toString(), token, 'the generated token is kept across upgrades');
    const dep2 = await apps.readNamespacedDeployment({ namespace: 'gw', name: 'gw-serve-gateway' });
    assert.equal(dep2.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === 'LOG_LEVEL')?.value, 'debug', 'the upgrade applied');

    // Full values: the existing admin Secret comes first (the chart does not create it).
    await core.createNamespacedSecret({ namespace: 'gw-full', body: { metadata: { name: 'gw-admin' }, stringData: { 'admin-token': 'full-values-token' } } });
    const full = await helmOk(['install', 'gw', CHART, '--namespace', 'gw-full', '-f', FULL_VALUES], kubeconfig);
    console.log(`# helm install (full values): ${full.ms.toFixed(0)} ms`);
    assert.match(full.stdout, /Several replicas: they share one traffic state \(ConfigMap gw-full-state\)/);
    for (const [what, read] of [
      ['Deployment', () => apps.readNamespacedDeployment({ namespace: 'gw-full', name: 'gw-full' })],
      ['Role in ray-full', () => rbac.readNamespacedRole({ namespace: 'ray-full', name: 'gw-full' })],
      ['RoleBinding in ray-full', () => rbac.readNamespacedRoleBinding({ namespace: 'ray-full', name: 'gw-full' })],
      ['ServiceAccount', () => core.readNamespacedServiceAccount({ namespace: 'gw-full', name: 'gw-full-sa' })],
      ['dashboard ConfigMap', () => core.readNamespacedConfigMap({ namespace: 'gw-full', name: 'gw-full-dashboard' })],
      ['PodDisruptionBudget', () => raw(server, 'GET', '/apis/policy/v1/namespaces/gw-full/poddisruptionbudgets/gw-full').then((r) => assert.equal(r.status, 200))],
      ['HorizontalPodAutoscaler', () => raw(server, 'GET', '/apis/autoscaling/v2/namespaces/gw-full/horizontalpodautoscalers/gw-full').then((r) => assert.equal(r.status, 200))],
      ['Ingress', () => raw(server, 'GET', '/apis/networking.k8s.io/v1/namespaces/gw-full/ingresses/gw-full').then((r) => assert.equal(r.status, 200))],
      ['ServiceMonitor', () => custom.getNamespacedCustomObject({ group: 'monitoring.coreos.com', version: 'v1', namespace: 'gw-full', plural: 'servicemonitors', name: 'gw-full' })],
    ] as const) {
      await assert.doesNotReject(read() as Promise<unknown>, `${what} exists`);
    }
    const list = await helmOk(['list', '--all-namespaces', '-o', 'json'], kubeconfig);
    const releases = (JSON.parse(list.stdout) as Array<{ name: string; namespace: string; status: string }>).map((r) => `${r.namespace}/${r.name}:${r.status}`).sort();
    assert.deepEqual(releases, ['gw-full/gw:deployed', 'gw/gw:deployed']);
  });

  /**
   * The gateway as the image runs it, on this machine: the installed Deployment's args and env, its
   * ConfigMap as the config directory, the state volume, and a TokenRequest token of the chart's
   * ServiceAccount (as the kubelet mounts it), so that the API server enforces the chart's RBAC.
   */
  async function startAsPod(ns: string, deployment: string, admin: number) {
    const core = server.kc.makeApiClient(CoreV1Api);
    const apps = server.kc.makeApiClient(AppsV1Api);
    // The pod's view: the ServiceAccount's token (TokenRequest, as the kubelet mounts it), the
    // ConfigMap as /etc/serve-gateway, the state volume, the Deployment's args and env.
    const dep = await apps.readNamespacedDeployment({ namespace: ns, name: deployment });
    const pod = dep.spec!.template.spec!;
    const c = pod.containers[0]!;
    const saName = pod.serviceAccountName!;
    const tr = await core.createNamespacedServiceAccountToken({ namespace: ns, name: saName, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
    const saToken = tr.status?.token ?? '';
    assert.ok(saToken, 'TokenRequest gave a token');
    const user = `system:serviceaccount:${ns}:${saName}`;
    const root = mkdtempSync(join(tmpdir(), 'sg-chart-pod-'));
    tempDirs.push(root);
    const kubeconfigPath = join(root, 'sa.kubeconfig');
    writeFileSync(kubeconfigPath, kubeconfigYaml(server.url, server.caPem, user, saToken), { mode: 0o600 });
    const saKc = new KubeConfig();
    saKc.loadFromFile(kubeconfigPath);

    const mounts = new Map<string, string>();
    for (const vm of c.volumeMounts ?? []) {
      const local = join(root, vm.name);
      mkdirSync(local, { recursive: true });
      mounts.set(vm.mountPath, local);
      const vol = pod.volumes?.find((v) => v.name === vm.name);
      if (vol?.configMap) {
        const cm = await core.readNamespacedConfigMap({ namespace: ns, name: vol.configMap.name! });
        for (const [k, v] of Object.entries(cm.data ?? {})) writeFileSync(join(local, k), v);
      }
    }
    const map = (s: string) => {
      for (const [from, to] of mounts) if (s === from || s.startsWith(`${from}/`)) return to + s.slice(from.length);
      return s;
    };
    const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: root, KUBECONFIG: kubeconfigPath };
    for (const e of c.env ?? []) {
      if (e.value !== undefined) env[e.name] = map(e.value);
      else if (e.valueFrom?.secretKeyRef) {
        const s = await core.readNamespacedSecret({ namespace: ns, name: e.valueFrom.secretKeyRef.name! });
        env[e.name] = Buffer.from(s.data?.[e.valueFrom.secretKeyRef.key] ?? '', 'base64').toString();
      }
    }
    assert.ok(env['SERVE_GATEWAY_ADMIN_TOKEN'], 'the admin token comes from the Secret');
    const adminToken = env['SERVE_GATEWAY_ADMIN_TOKEN'];

    // ENTRYPOINT ["node", "src/cli/main.ts"] + the Deployment's args.
    const child = spawn(process.execPath, ['src/cli/main.ts', ...(c.args ?? []).map(map)], { cwd: REPO, env, stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    const err = { text: '' };
    child.stderr!.on('data', (d: Buffer) => (err.text += d.toString()));
    const adminUrl = `http://127.0.0.1:${admin}`;
    const status = async () => {
      const r = await fetch(`${adminUrl}/api/v1/status`, { headers: { authorization: `Bearer ${adminToken}` }, signal: AbortSignal.timeout(5_000) });
      return (await r.json()) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    };
    return { child, stderr: () => err.text, status, adminUrl, adminToken, saKc, user };
  }

  test('the gateway as the image runs it, with the chart\'s ServiceAccount token and Role only, discovers a RayService and routes; other verbs are denied', { timeout: 300_000 }, async () => {
    const core = server.kc.makeApiClient(CoreV1Api);
    // A release of its own on free ports (the gateway runs on this machine, not in a pod).
    const [http, admin] = [await freePort(), await freePort()];
    await helmOk(['install', 'run', CHART, '--namespace', 'gw', '--set', `containerPorts.http=${http}`, '--set', `containerPorts.admin=${admin}`], server.kubeconfigPath);

    // The RayService the chart's config names (rayservices: [llm]), played by KubeRay and the kubelet.
    const player = new KubeRayPlayer({ server, namespace: 'gw', name: 'llm', deletionDelaySeconds: 60 });
    players.push(player);
    await player.createRayService();

    const { child, stderr, status, adminUrl, adminToken, saKc, user } = await startAsPod('gw', 'run-serve-gateway', admin);
    await until('the gateway synced with the API server as the chart\'s ServiceAccount', REACT_MS, async () => {
      if (child.exitCode !== null) throw new Error(`gateway exited ${child.exitCode}: ${stderr()}`);
      const s = await status();
      return s['kubernetes']?.['synced'] === true && s['kubernetes']?.['connected'] === true;
    }, { observe: () => stderr().slice(-2000) });

    const blue = await player.deployFirstCluster();
    let last = '';
    await until('llm routed to the discovered cluster', REACT_MS, async () => {
      if (child.exitCode !== null) throw new Error(`gateway exited ${child.exitCode}: ${stderr()}`);
      const r = await fetch(`http://127.0.0.1:${http}/llm/chart`, { signal: AbortSignal.timeout(5_000) });
      const body = await r.text();
      last = `${r.status} ${r.headers.get('x-serve-cluster')} ${body.slice(0, 200)}`;
      return r.status === 200 && r.headers.get('x-serve-cluster') === blue;
    }, { observe: () => `${last}\n${stderr().slice(-2000)}` });
    const ready = await fetch(`${adminUrl}/readyz`);
    assert.equal(ready.status, 200, 'readyz (the readiness probe) is 200 once a route exists');
    assert.equal((await fetch(`${adminUrl}/healthz`)).status, 200);
    // Through the admin Service's name (allowed_hosts), as in-cluster CLI use and the ServiceMonitor's Host would be.
    const viaName = await fetch(`${adminUrl}/metrics`, { headers: { host: `run-serve-gateway-admin.gw.svc:${admin}`, authorization: `Bearer ${adminToken}` } });
    assert.equal(viaName.status, 200);
    assert.match(await viaName.text(), /serve_gateway_requests_total\{app="llm",cluster="[^"]+",code="200"/);
    // The audit trail reaches the RayService as Events (events create is granted).
    const s = await status();
    assert.equal(s['kubernetes']['source'], 'api');
    // The shared state is on: with the chart's Role the gateway created its state ConfigMap and took the leader Lease.
    assert.equal(s['kubernetes']['replicas']?.['is_leader'], true, `leads: ${JSON.stringify(s['kubernetes']['replicas'])}`);
    assert.equal(s['kubernetes']['replicas']?.['last_error'], null);
    const stateCm = await core.readNamespacedConfigMap({ namespace: 'gw', name: 'run-serve-gateway-state' });
    assert.ok(stateCm.data?.['traffic-state.json'], 'the state ConfigMap exists, created by the gateway');
    assert.equal(s['kubernetes']['last_error'] ?? null, null, `no API error: ${JSON.stringify(s['kubernetes']['last_error'])}`);

    // The chart's Role, enforced by the API server's RBAC authorizer: only what it grants.
    const saCore = saKc.makeApiClient(CoreV1Api);
    const saCustom = saKc.makeApiClient(CustomObjectsApi);
    await saCustom.listNamespacedCustomObject({ group: 'ray.io', version: 'v1', namespace: 'gw', plural: 'rayservices' });
    await saCore.listNamespacedPod({ namespace: 'gw' });
    const denied: Array<[string, () => Promise<unknown>]> = [
      ['list secrets', () => saCore.listNamespacedSecret({ namespace: 'gw' })],
      ['get the admin token Secret', () => saCore.readNamespacedSecret({ namespace: 'gw', name: 'run-serve-gateway-admin-token' })],
      ['update a rayservice', () => saCustom.patchNamespacedCustomObject({ group: 'ray.io', version: 'v1', namespace: 'gw', plural: 'rayservices', name: 'llm', body: [{ op: 'add', path: '/metadata/labels', value: { x: 'y' } }] })],
      ['list configmaps', () => saCore.listNamespacedConfigMap({ namespace: 'gw' })],
      ['create pods', () => saCore.createNamespacedPod({ namespace: 'gw', body: { metadata: { name: 'x' }, spec: { containers: [{ name: 'x', image: 'x' }] } } })],
      ['list rayclusters', () => saCustom.listNamespacedCustomObject({ group: 'ray.io', version: 'v1', namespace: 'gw', plural: 'rayclusters' })],
      ['list pods in another namespace', () => saCore.listNamespacedPod({ namespace: 'ray-full' })],
      ['list namespaces', () => saCore.listNamespace()],
    ];
    for (const [what, call] of denied) await assert.rejects(call(), (err) => statusOf(err) === 403, `${what} is denied to ${user}`);
    console.log(`# gateway as ${user}: synced, routed llm to ${blue}; ${denied.length} other verbs denied (403)`);

    // SIGTERM drains and exits 0 (what the kubelet sends after preStop).
    child.kill('SIGTERM');
    const code = await until('the gateway exits after SIGTERM', REACT_MS, () => (child.exitCode !== null ? child.exitCode : undefined));
    assert.equal(code, 0, stderr());
    await player.stopAll();
  });

  test('Gateway API mode installed: without the Gateway API CRDs the gateway runs and reports them missing; with them, the chart\'s GatewayClass and RBAC let it accept the class, program a Gateway at the chart\'s Service and route its HTTPRoute', { timeout: 300_000 }, async () => {
    const NS = 'gw-api';
    const core = server.kc.makeApiClient(CoreV1Api);
    const rbac = server.kc.makeApiClient(RbacAuthorizationV1Api);
    const kubeconfig = server.kubeconfigPath;
    const [http, admin] = [await freePort(), await freePort()];
    const values = ['--namespace', NS, '--set', 'gatewayApi.enabled=true', '--set', 'service.port=80', '--set', `containerPorts.http=${http}`, '--set', `containerPorts.admin=${admin}`];

    // No Gateway API CRDs in the cluster: the chart's GatewayClass cannot be installed ...
    const refused = await helm(['install', 'gapi-nocrd', CHART, ...values], kubeconfig);
    assert.notEqual(refused.code, 0, 'a GatewayClass needs the Gateway API CRDs');
    assert.match(refused.stderr, /GatewayClass/);
    // ... without it the release installs, and the gateway runs.
    const install = await helmOk(['install', 'gapi', CHART, ...values, '--set', 'gatewayApi.gatewayClass.create=false'], kubeconfig);
    assert.match(install.stdout, /Gateway API mode: the gateway serves the Gateways in namespace gw-api/);
    assert.match(install.stdout, /their address is the ClusterIP of Service gapi-serve-gateway\s+\(port 80\)/);
    assert.match(install.stdout, /type: NewClusterWithIncrementalUpgrade, clusterUpgradeOptions: \{gatewayClassName: <your GatewayClass>/);
    const crName = 'gw-api-gapi-serve-gateway-gatewayclasses';
    assert.deepEqual((await rbac.readClusterRole({ name: crName })).rules?.map((r) => r.resources), [['gatewayclasses'], ['gatewayclasses/status']]);
    await rbac.readClusterRoleBinding({ name: crName });

    const player = new KubeRayPlayer({ server, namespace: NS, name: 'llm', deletionDelaySeconds: 60 });
    players.push(player);
    await player.createRayService();
    const g = await startAsPod(NS, 'gapi-serve-gateway', admin);
    const alive = () => {
      if (g.child.exitCode !== null) throw new GiveUp(`gateway exited ${g.child.exitCode}: ${g.stderr().slice(-2000)}`);
    };
    const missing = await until('the gateway follows its RayService and reports the missing Gateway API resources', REACT_MS, async () => {
      alive();
      const s = await g.status();
      const ga = s['kubernetes']?.['gateway_api'];
      return s['kubernetes']?.['synced'] === true && typeof ga?.['last_error'] === 'string' ? ga : undefined;
    }, { observe: () => g.stderr().slice(-2000) });
    assert.equal(missing['synced'], false);
    assert.match(missing['last_error'], /gatewayclasses|gateways|httproutes/i);
    console.log(`# without the Gateway API CRDs: gateway_api.last_error ${JSON.stringify(missing['last_error']).slice(0, 200)}`);

    // The CRDs arrive: the watches retry (back-off up to 8 s). The whole Gateway API render passes a strict server-side dry-run.
    await server.applyCrds(GATEWAY_API_CRDS.filter((f) => !DEFAULT_CRDS.includes(f)));
    for (const m of await template('dry', NS, ['--set', 'gatewayApi.enabled=true'])) {
      const r = await dryRunApply(server, m, NS);
      assert.equal(r.status, 201, `dry-run ${m.kind}/${m.metadata?.name}: ${r.status} ${JSON.stringify(r.json).slice(0, 600)}`);
    }
    const upgrade = await helmOk(['upgrade', 'gapi', CHART, ...values], kubeconfig);
    assert.match(upgrade.stdout, /clusterUpgradeOptions: \{gatewayClassName: serve-gateway,/);
    const api = new GatewayApiObjects(server, NS);
    await until('the gateway accepted the chart\'s GatewayClass (ClusterRole: gatewayclasses/status)', REACT_MS, async () => {
      alive();
      const cls = await api.getClass('serve-gateway');
      return (cls.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Accepted' && c.status === 'True');
    }, { observe: () => g.stderr().slice(-2000) });

    // What KubeRay creates after the first promotion, served with the chart's Role.
    const blue = await player.deployFirstCluster();
    const inc = new IncrementalPlayer(player, server, { stepSizePercent: 25, intervalSeconds: 1, maxSurgePercent: 50 });
    await inc.createServeService(blue);
    await inc.createGateway('serve-gateway');
    await inc.writeRoute([[blue, 100]]);
    await until('Gateway and HTTPRoute ready as KubeRay checks them', REACT_MS, async () => {
      alive();
      return inc.ready();
    }, { observe: () => g.stderr().slice(-2000) });
    const svc = await core.readNamespacedService({ namespace: NS, name: 'gapi-serve-gateway' });
    assert.equal(svc.spec?.ports?.[0]?.port, 80);
    const gwObj = await api.get('gateways', inc.gatewayName);
    assert.deepEqual(gwObj.status.addresses, [{ type: 'IPAddress', value: svc.spec?.clusterIP }], 'the Gateway\'s address is the chart\'s Service');
    let last = '';
    await until('llm routed through the HTTPRoute', REACT_MS, async () => {
      alive();
      const r = await fetch(`http://127.0.0.1:${http}/llm/chart`, { signal: AbortSignal.timeout(5_000) });
      last = `${r.status} ${r.headers.get('x-serve-cluster')} ${(await r.text()).slice(0, 200)}`;
      return r.status === 200 && r.headers.get('x-serve-cluster') === blue;
    }, { observe: () => `${last}\n${g.stderr().slice(-2000)}` });
    const s = await g.status();
    assert.equal(s['kubernetes']['gateway_api']['last_error'], null);
    assert.equal(s['kubernetes']['gateway_api']['last_write_error'], null);
    const app = (s['apps'] as Array<Record<string, unknown>>).find((a) => a['name'] === 'llm');
    assert.equal(app?.['weights_from'], `httproute ${NS}/${inc.routeName}`);
    console.log(`# Gateway API mode: class accepted, Gateway programmed at ${svc.spec?.clusterIP}, llm routed to ${blue} through ${inc.routeName}`);

    g.child.kill('SIGTERM');
    assert.equal(await until('the gateway exits after SIGTERM', REACT_MS, () => (g.child.exitCode !== null ? g.child.exitCode : undefined)), 0, g.stderr());
    await player.stopAll();
    // helm uninstall removes the cluster-wide objects too.
    await helmOk(['uninstall', 'gapi', '--namespace', NS], kubeconfig);
    await assert.rejects(rbac.readClusterRole({ name: crName }), (err) => statusOf(err) === 404);
    await assert.rejects(rbac.readClusterRoleBinding({ name: crName }), (err) => statusOf(err) === 404);
    await assert.rejects(api.getClass('serve-gateway'), (err) => statusOf(err) === 404);
  });

  test('helm uninstall removes what the chart created', { timeout: 300_000 }, async () => {
    const rbac = server.kc.makeApiClient(RbacAuthorizationV1Api);
    await helmOk(['uninstall', 'run', '--namespace', 'gw'], server.kubeconfigPath);
    await assert.rejects(rbac.readNamespacedRole({ namespace: 'gw', name: 'run-serve-gateway' }), (err) => statusOf(err) === 404);
    await assert.rejects(server.kc.makeApiClient(CoreV1Api).readNamespacedSecret({ namespace: 'gw', name: 'run-serve-gateway-admin-token' }), (err) => statusOf(err) === 404);
  });
});
