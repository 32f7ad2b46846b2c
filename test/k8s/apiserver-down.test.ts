// Issue 8, must show: the API server goes away and the data plane does not
// notice. Against a real kube-apiserver (halted and resumed on the same data
// dir by the harness), a gateway in this process as a least-privilege
// ServiceAccount, KubeRay and the kubelet played by kuberay-player.ts:
//
// - API server stopped for 30 s under load (JSON + SSE): 0 failed requests; the
//   status API says it is not synced while it is down, and synced again after.
// - A gateway restarted while the API server is down serves from
//   `last_known_good` within 2 s of its start (measured, printed, asserted),
//   and goes back to the API once it answers.
// Run with `npm run test:k8s`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { APISERVER_SETUP_TIMEOUT_MS, K8S_DEADLINE, apiServerUnavailable, startApiServer } from './apiserver.ts';
import type { ApiServer, ServiceAccountAccess } from './apiserver.ts';
import { GATEWAY_ROLE_RULES, KubeRayPlayer, Load, appWeights, describeOutcomes, k8sSummary, rsClusters, sleep, startK8sGateway, statusUntil, until } from './kuberay-player.ts';
import type { K8sGateway } from './kuberay-player.ts';

const unavailable = apiServerUnavailable();
const NS = 'ray';
const RS = 'outage';
/** A gateway reaction on a busy 2-core machine (typical: well under a second). */
const REACT_MS = 30_000;
const LOAD_MS = 60_000;
/** The issue's numbers. */
const OUTAGE_MS = 30_000;
const LKG_WITHIN_MS = 2_000;

describe('API server down, real kube-apiserver', { skip: unavailable ?? false, concurrency: false }, () => {
  let server: ApiServer;
  let sa: ServiceAccountAccess;
  let player: KubeRayPlayer;
  const gateways: K8sGateway[] = [];
  const loads: Load[] = [];
  let stateDir = '';

  before(
    async () => {
      server = await startApiServer();
      await server.applyCrds();
      sa = await server.serviceAccountKubeConfig({ name: 'serve-gateway', namespace: NS, rules: [...GATEWAY_ROLE_RULES] });
      console.log(`# kube-apiserver ready in ${server.lastStartMs} ms`);
      player = new KubeRayPlayer({ server, namespace: NS, name: RS, deletionDelaySeconds: 60, apps: { llm: { latency_ms: 5 }, default: { latency_ms: 2 } } });
      await player.createRayService();
      await player.deployFirstCluster();
    },
    { timeout: APISERVER_SETUP_TIMEOUT_MS },
  );

  after(async () => {
    for (const l of loads) await l.stop().catch(() => {});
    for (const g of gateways) await g.close().catch(() => {});
    await player?.stopAll().catch(() => {});
    await server?.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  test('the API server stopped for 30 s under load: 0 failed requests', { timeout: OUTAGE_MS + 4 * K8S_DEADLINE.ready }, async () => {
    const blue = player.active!;
    const g = await startK8sGateway({ kubeconfig: sa.kubeconfigPath, namespace: NS, rayservices: [RS], upgrade: 'follow' });
    gateways.push(g);
    stateDir = g.stateDir;
    await statusUntil(g, `${blue} serving, synced`, REACT_MS, (s) => s['kubernetes']?.['synced'] === true && appWeights(s, 'llm')[blue] === 100 && rsClusters(s, RS).get(blue)?.['ready_endpoints'] === 3);
    // The view the gateway routes by is on disk before the outage.
    await until('last_known_good written with the cluster', REACT_MS, () => existsSync(g.lastKnownGood) && readFileSync(g.lastKnownGood, 'utf8').includes(blue));

    const load = new Load(g.gw.url, { clients: 4, sseTokens: 20, sseIntervalMs: 40 }).start();
    loads.push(load);
    const t0 = load.startedAt;
    const fail = (msg: string) => `${msg}\nload: ${load.summary()}\nfailures: ${describeOutcomes(load.failures(), t0)}\ngateway log: ${g.problems()}`;
    await until('30 requests before the outage', LOAD_MS, () => load.outcomes.length >= 30, { observe: () => load.summary() });

    const haltStart = performance.now();
    await server.halt();
    const downAt = performance.now();
    // The outage: the status API is sampled all along (this is the 30 s the issue asks for, not a wait for logic).
    const seen: Array<{ at: number; synced: unknown; connected: unknown; source: unknown; weights: Record<string, number> }> = [];
    let notSyncedAt: number | null = null;
    while (performance.now() - downAt < OUTAGE_MS) {
      const s = await g.status();
      const at = performance.now();
      const k = s['kubernetes'];
      seen.push({ at, synced: k?.['synced'], connected: k?.['connected'], source: k?.['source'], weights: appWeights(s, 'llm') });
      // `synced` (both lists arrived once) may stay true; `connected` says whether the watches are up now.
      if (notSyncedAt === null && (k?.['synced'] === false || k?.['connected'] === false)) notSyncedAt = at;
      await sleep(250);
    }
    const outage = load.outcomes.filter((o) => o.start > downAt);
    const resumeStart = performance.now();
    await server.resume();
    const upAt = performance.now();
    const resynced = await statusUntil(g, 'connected to the API again', REACT_MS + K8S_DEADLINE.ready, (s) => {
      const k = s['kubernetes'];
      return k?.['synced'] === true && k['connected'] !== false && k['source'] === 'api';
    }, 100);
    await until('30 requests after the API server is back', LOAD_MS, () => load.outcomes.filter((o) => o.start > resynced.at).length >= 30, { observe: () => load.summary() });
    await load.stop();

    const failed = load.failures();
    console.log(
      `# API server down: halt took ${Math.round(downAt - haltStart)} ms (it stops listening at once; with watches open it exits only on the harness's SIGKILL after 20 s), down ${Math.round(resumeStart - downAt)} ms, resume took ${Math.round(upAt - resumeStart)} ms (ready in ${server.lastStartMs} ms); ` +
        `gateway reported the outage (synced or connected false) ${notSyncedAt === null ? 'never' : `${Math.round(notSyncedAt - haltStart)} ms after the halt began`} ` +
        `(synced seen: ${[...new Set(seen.map((x) => String(x.synced)))].join('/')}, connected seen: ${[...new Set(seen.map((x) => String(x.connected)))].join('/')}), ` +
        `connected again ${Math.round(resynced.at - resumeStart)} ms after the resume began; ` +
        `${load.summary()}; during the outage: ${outage.length} requests (${outage.filter((o) => o.kind === 'sse').length} streams), failed ${outage.filter((o) => !o.ok).length}`,
    );
    assert.equal(failed.length, 0, fail(`failed requests: ${failed.length}`));
    assert.ok(outage.length >= 30, fail(`load went on during the outage (${outage.length})`));
    assert.ok(load.outcomes.every((o) => o.cluster === blue), fail(`every request on ${blue}`));
    assert.ok(seen.every((x) => x.weights[blue] === 100), fail(`routing unchanged during the outage: ${JSON.stringify(seen.find((x) => x.weights[blue] !== 100))}`));
    assert.notEqual(notSyncedAt, null, fail(`the status API says the gateway is cut off (synced or connected false) while the API server is down: ${JSON.stringify(seen.slice(-3))}`));
    await g.close({ keepStateDir: true });
    gateways.splice(gateways.indexOf(g), 1);
  });

  test('a gateway restarted while the API server is down serves from last_known_good within 2 s', { timeout: 4 * K8S_DEADLINE.ready }, async () => {
    assert.ok(stateDir !== '' && existsSync(stateDir), 'the first test left the state dir (with last_known_good) of the gateway it stopped');
    const blue = player.active!;
    await server.halt();

    const t0 = performance.now();
    const g = await startK8sGateway({ kubeconfig: sa.kubeconfigPath, namespace: NS, rayservices: [RS], upgrade: 'follow', stateDir });
    gateways.push(g);
    const startMs = g.startReturnedAt - g.startedAt;
    const seen: Record<string, number> = {};
    let last = '';
    await until(
      'both apps served from last_known_good',
      REACT_MS,
      async () => {
        for (const [app, path] of [['llm', '/llm/lkg'], ['default', '/web/lkg']] as const) {
          if (seen[app] !== undefined) continue;
          const r = await fetch(`${g.gw.url}${path}`, { signal: AbortSignal.timeout(5_000) });
          const body = await r.text();
          last = `${app}: ${r.status} ${r.headers.get('x-serve-cluster') ?? '-'} ${body.slice(0, 160)}`;
          if (r.status === 200 && r.headers.get('x-serve-cluster') === blue) seen[app] = performance.now() - t0;
        }
        return seen['llm'] !== undefined && seen['default'] !== undefined;
      },
      { everyMs: 10, observe: () => `${last}; gateway log: ${g.problems()}` },
    );
    const servedMs = Math.max(seen['llm']!, seen['default']!);
    const s = await g.status();
    console.log(
      `# last_known_good boot: startGateway returned after ${startMs.toFixed(0)} ms; llm served at ${seen['llm']!.toFixed(0)} ms, default at ${seen['default']!.toFixed(0)} ms after the start ` +
        `(API server down); status: ${k8sSummary(s)}`,
    );
    assert.ok(servedMs < LKG_WITHIN_MS, `served from last_known_good ${servedMs.toFixed(0)} ms after the start (requirement: < ${LKG_WITHIN_MS} ms)`);
    assert.equal(s['kubernetes']?.['source'], 'last_known_good');
    assert.equal(s['kubernetes']?.['synced'], false);

    // Requests keep working; when the API server answers again the gateway goes back to it.
    const load = new Load(g.gw.url, { clients: 2, sseTokens: 10, sseIntervalMs: 20 }).start();
    loads.push(load);
    const resumeStart = performance.now();
    await server.resume();
    const back = await statusUntil(g, 'back on the API', REACT_MS + K8S_DEADLINE.ready, (x) => x['kubernetes']?.['source'] === 'api' && x['kubernetes']?.['synced'] === true && x['kubernetes']?.['connected'] !== false, 100);
    await until('20 requests after the gateway is back on the API', LOAD_MS, () => load.outcomes.filter((o) => o.start > back.at).length >= 20, { observe: () => load.summary() });
    await load.stop();
    console.log(`# back on the API ${Math.round(back.at - resumeStart)} ms after the resume began; ${load.summary()}`);
    assert.deepEqual(load.failures().map((o) => o.error), [], `no failed requests: ${describeOutcomes(load.failures(), load.startedAt)}`);
    assert.ok(load.outcomes.every((o) => o.cluster === blue));
    assert.equal(rsClusters(back.status, RS).get(blue)?.['role'], 'active');
  });
});
