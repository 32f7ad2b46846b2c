// Issue 9: many gateway replicas, one decision. Three gateway processes (the
// CLI, as a pod runs it) share one RayService against a real kube-apiserver:
// their traffic state lives in a ConfigMap (kubernetes.state_configmap), one
// of them holds the leader Lease and drives rollouts, each keeps a member
// Lease and divides every app's capacity by the live replicas. KubeRay is
// played by the test (kuberay-player.ts); Serve is simulated on loopback.
//
// - A weight change through any replica is applied by all three (the spread is measured), under load, 0 failed.
// - Admission: each replica admits capacity/3; one killed (SIGKILL), the others reach capacity/2 within the lease
//   duration; Serve never sees more than its capacity (counted at the simulated Serve).
// - A rollout driven by the leader whose gate fails only on traffic another replica served is rolled back (merged gates).
// - The leader killed (SIGKILL) mid-rollout: another takes the Lease and goes on from the same step; the shared audit
//   trail has every step once.
// - A state ConfigMap edited by hand into something invalid is refused (status, metric, Event); the last good state serves.
// Run with `npm run test:k8s`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { APISERVER_SETUP_TIMEOUT_MS, REPO, apiServerUnavailable, freePort, startApiServer } from './apiserver.ts';
import type { ApiServer, ServiceAccountAccess } from './apiserver.ts';
import { ADMIN_TOKEN, KubeRayPlayer, Load, appRollout, appWeights, describeOutcomes, replicaRoleRules, until } from './kuberay-player.ts';

const unavailable = apiServerUnavailable();
const NS = 'ray';
const RS = 'ha';
const STATE_CM = 'gw-state';
const LEADER = 'gw-leader';
/** Short, so that the drills are quick: renewals every second. */
const LEASE_S = 3;
const REACT_MS = 30_000;
/** llm: 2 replicas × max_ongoing_requests 16 (SERVE_CONFIG_V2). */
const CAPACITY = 32;


type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Replica {
  readonly name: string;
  readonly url: string;
  readonly admin: string;
  readonly child: ChildProcess;
  stderr: string;
  call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }>;
  status(): Promise<Json>;
  kill(): Promise<void>;
}

describe('three gateway replicas: shared state, one leader, admission shares (real kube-apiserver)', { skip: unavailable ?? false, concurrency: false }, () => {
  let server: ApiServer;
  let sa: ServiceAccountAccess;
  let player: KubeRayPlayer;
  let blue: string;
  let green: string;
  const replicas: Replica[] = [];
  const dirs: string[] = [];
  const loads: Load[] = [];

  async function startReplica(name: string): Promise<Replica> {
    const dir = mkdtempSync(join(tmpdir(), `sg-replica-${name}-`));
    dirs.push(dir);
    const [port, adminPort] = [await freePort(), await freePort()];
    const configPath = join(dir, 'gateway.yaml');
    writeFileSync(
      configPath,
      stringify({
        source: 'kubernetes',
        kubernetes: { namespace: NS, rayservices: [RS], kubeconfig: sa.kubeconfigPath, upgrade: 'hold', state_configmap: STATE_CM, leader_lease: LEADER, lease_duration: `${LEASE_S}s`, boot_wait: '5s' },
        listen: `127.0.0.1:${port}`,
        admin: { listen: `127.0.0.1:${adminPort}` },
        state_dir: join(dir, 'state'),
        health: { probe_interval: '200ms', probe_timeout: '2s' },
        dashboard_poll_interval: '200ms',
        access_log: { sample_rate: 0 },
        shutdown: { drain_delay: '0s', grace_period: '2s' },
        applications: { '*': { rollout: { steps: [50, 100], interval: '2s', min_requests: 20, max_error_rate: 0.05, max_p99_latency: '30s' } } },
      }),
    );
    const child = spawn(process.execPath, [join(REPO, 'src/cli/main.ts'), 'start', '--config', configPath, '--log-level', 'warn'], {
      env: { ...process.env, SERVE_GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN, POD_NAME: name },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const r: Replica = {
      name,
      url: `http://127.0.0.1:${port}`,
      admin: `http://127.0.0.1:${adminPort}`,
      child,
      stderr: '',
      async call(method, path, body) {
        const res = await fetch(`${r.admin}${path}`, {
          method,
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          signal: AbortSignal.timeout(10_000),
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
        const text = await res.text();
        let json: Json = {};
        try {
          json = JSON.parse(text) as Json;
        } catch {
          json = { text };
        }
        return { status: res.status, json };
      },
      async status() {
        const s = await r.call('GET', '/api/v1/status');
        if (s.status !== 200) throw new Error(`${name} status: ${s.status}`);
        return s.json;
      },
      async kill() {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = new Promise((res) => child.once('exit', res));
        child.kill('SIGKILL');
        await gone;
      },
    };
    child.stderr!.on('data', (d: Buffer) => (r.stderr = (r.stderr + d.toString()).slice(-4000)));
    replicas.push(r);
    await until(`${name} ready`, REACT_MS, async () => {
      if (child.exitCode !== null) throw new Error(`${name} exited ${child.exitCode}: ${r.stderr}`);
      const res = await fetch(`${r.admin}/readyz`).catch(() => null);
      return res?.status === 200;
    });
    return r;
  }

  /** Requests a replica has finished for (app, cluster): its serve_gateway_requests_total. */
  const sentTo = async (r: Replica, app: string, cluster: string): Promise<number> => {
    const text = await (await fetch(`${r.admin}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    return text
      .split('\n')
      .filter((l) => l.startsWith('serve_gateway_requests_total{') && l.includes(`app="${app}"`) && l.includes(`cluster="${cluster}"`))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  };
  const live = (): Replica[] => replicas.filter((r) => r.child.exitCode === null && r.child.signalCode === null);
  const replicasOf = (s: Json): Json => s['kubernetes']?.['replicas'] ?? {};
  const capacityOf = (s: Json, app: string, cluster: string): number | undefined =>
    ((s['apps'] ?? []) as Json[]).find((a) => a['name'] === app)?.['clusters']?.find((c: Json) => c['cluster'] === cluster)?.['capacity'];
  const story = async (): Promise<string> => {
    const lines: string[] = [];
    for (const r of replicas) {
      const s = r.child.exitCode === null && r.child.signalCode === null ? await r.status().catch((e: unknown) => ({ error: String(e) })) : { exited: r.child.exitCode ?? r.child.signalCode };
      lines.push(`${r.name}: ${JSON.stringify({ replicas: replicasOf(s as Json), shared: (s as Json)['kubernetes']?.['shared_state'], weights: appWeights(s as Json, 'llm') })} stderr: ${r.stderr.slice(-600)}`);
    }
    return lines.join('\n');
  };

  before(
    async () => {
      server = await startApiServer();
      await server.applyCrds();
      sa = await server.serviceAccountKubeConfig({ name: 'serve-gateway', namespace: NS, rules: replicaRoleRules(STATE_CM) });
      player = new KubeRayPlayer({ server, namespace: NS, name: RS, deletionDelaySeconds: 600, apps: { llm: { latency_ms: 200 }, default: { latency_ms: 2 } } });
      await player.createRayService();
      blue = await player.deployFirstCluster();
      green = await player.beginUpgrade();
      await player.startCluster(green, { readyPods: true });
      await player.setAppStatuses(green, 'RUNNING');
      for (const n of ['gw-0', 'gw-1', 'gw-2']) await startReplica(n);
      let seen: Json[] = [];
      await until('three live replicas, one leader, every replica serving both clusters', REACT_MS, async () => {
        const all = (seen = await Promise.all(live().map((r) => r.status())));
        const leaders = all.filter((s) => replicasOf(s)['is_leader'] === true);
        return all.every((s) => replicasOf(s)['live_count'] === 3 && capacityOf(s, 'llm', green) !== undefined) && leaders.length === 1;
      }, { observe: () => seen.map((s, i) => `${replicas[i]?.name}: ${JSON.stringify(replicasOf(s))} shared ${JSON.stringify(s['kubernetes']?.['shared_state'])} llm ${JSON.stringify(((s['apps'] ?? []) as Json[]).find((a) => a['name'] === 'llm')?.['clusters']?.map((c: Json) => [c['cluster'], c['capacity']]))} stderr ${replicas[i]?.stderr.slice(-500)}`).join('\n') });
    },
    { timeout: APISERVER_SETUP_TIMEOUT_MS + 120_000 },
  );

  after(async () => {
    for (const l of loads) await l.stop().catch(() => {});
    for (const r of replicas) await r.kill();
    await player?.stopAll().catch(() => {});
    await server?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('a weight change through any replica is applied by all three (spread measured), under load, 0 failed requests', { timeout: 120_000 }, async () => {
    const [a, b, c] = live() as [Replica, Replica, Replica];
    const runs = live().map((r) => new Load(r.url, { clients: 2, sseTokens: 5, sseIntervalMs: 20 }).start());
    loads.push(...runs);
    await until('load on every replica', REACT_MS, () => runs.every((l) => l.outcomes.length >= 10));
    const spreads: number[] = [];
    for (const [via, weights] of [[b, { [blue]: 50, [green]: 50 }], [c, { [blue]: 100, [green]: 0 }], [a, { [blue]: 70, [green]: 30 }]] as const) {
      const sent = performance.now();
      const put = await via.call('PUT', '/api/v1/apps/default/weights', { weights });
      const answered = performance.now();
      assert.equal(put.status, 200, JSON.stringify(put.json));
      const seen = await Promise.all(
        live().map((r) =>
          until(`${r.name} applies ${JSON.stringify(weights)}`, REACT_MS, async () => {
            const w = appWeights(await r.status(), 'default');
            return Object.entries(weights).every(([k, v]) => (w[k] ?? 0) === v) ? performance.now() : undefined;
          }, { everyMs: 5 }),
        ),
      );
      const spread = Math.max(...seen) - answered;
      spreads.push(spread);
      console.log(`# weight change through ${via.name}: answered in ${Math.round(answered - sent)} ms; applied by all three ${Math.round(spread)} ms after the answer (per replica: ${seen.map((t) => Math.round(t - answered)).join(', ')} ms)`);
    }
    for (const l of runs) await l.stop();
    const failed = runs.flatMap((l) => l.failures());
    console.log(`# spread over ${spreads.length} changes: max ${Math.round(Math.max(...spreads))} ms; load: ${runs.map((l) => l.summary()).join(' | ')}`);
    assert.equal(failed.length, 0, `failed requests: ${describeOutcomes(failed)}`);
    assert.ok(Math.max(...spreads) < 5_000, `every change reached every replica (requirement: 1 s; measured ${spreads.map(Math.round).join(', ')} ms)`);
    const audit = (await a.call('GET', '/api/v1/events?limit=50')).json['events'] as Json[];
    assert.ok(audit.filter((e) => e['action'] === 'set_weights' && e['app'] === 'default').length >= 3, 'the shared audit trail has the three changes, whoever made them');
  });

  test('admission: each replica admits capacity/3; one killed, the others reach capacity/2 within the lease duration; Serve never sees more than its capacity', { timeout: 180_000 }, async () => {
    const each = Math.floor(CAPACITY / 3);
    await until(`every replica admits ${each} for llm on ${blue}`, REACT_MS, async () => (await Promise.all(live().map((r) => r.status()))).every((s) => capacityOf(s, 'llm', blue) === each));
    player.sim(blue).reset();
    // 3 × 24 clients of 200 ms requests: far above what Serve can take.
    const runs = live().map((r) => {
      const l = new Load(r.url, { clients: 24, sseTokens: 3, sseIntervalMs: 50, pauseAfterErrorMs: 50 });
      return l.start();
    });
    loads.push(...runs);
    try {
      await admissionDrill(runs, each);
    } finally {
      for (const l of runs) await l.stop();
    }
  });

  async function admissionDrill(runs: Load[], each: number): Promise<void> {
    await until('Serve saturated', REACT_MS, () => player.sim(blue).stats().apps['llm']!.max_in_flight_seen >= CAPACITY - 3);
    const statuses = await Promise.all(live().map((r) => r.status()));
    const leader = live().find((r, i) => replicasOf(statuses[i]!)['is_leader'] === true)!;
    const victim = live().find((r) => r !== leader)!;
    const killedAt = performance.now();
    await victim.kill();
    const halves = Math.floor(CAPACITY / 2);
    const reached = await until(`the two survivors admit ${halves}`, REACT_MS, async () => {
      const ss = await Promise.all(live().map((r) => r.status()));
      return ss.every((s) => capacityOf(s, 'llm', blue) === halves && replicasOf(s)['live_count'] === 2) ? performance.now() : undefined;
    }, { everyMs: 50 });
    const survivors = runs.filter((_, i) => replicas[i] !== victim);
    await until('load after the re-share', REACT_MS, () => survivors.every((l) => l.outcomes.filter((o) => o.start > reached).length >= 20));
    const maxSeen = player.sim(blue).stats().apps['llm']!.max_in_flight_seen;
    console.log(
      `# admission: capacity ${CAPACITY}; 3 replicas admitted ${each} each; ${victim.name} killed; the other two admitted ${halves} each ${Math.round(reached - killedAt)} ms later ` +
        `(lease duration ${LEASE_S} s); most in flight at Serve at any moment: ${maxSeen}; load: ${runs.map((l) => l.summary()).join(' | ')}`,
    );
    assert.ok(maxSeen <= CAPACITY, `Serve saw at most its capacity (${maxSeen} > ${CAPACITY})`);
    assert.ok(reached - killedAt < (LEASE_S + 2) * 1000, `re-shared within the lease duration and a renewal (${Math.round(reached - killedAt)} ms)`);
  }

  test('merged gates: a rollout driven by the leader fails its gate on traffic another replica served, and is rolled back', { timeout: 120_000 }, async () => {
    const statuses = await Promise.all(live().map((r) => r.status()));
    const leader = live().find((_, i) => replicasOf(statuses[i]!)['is_leader'] === true)!;
    const other = live().find((r) => r !== leader)!;
    assert.ok(leader && other, await story());
    player.sim(green).setFaults('default', { errorRate: 1 });
    const set = await other.call('PUT', '/api/v1/apps/default/weights', { weights: { [blue]: 100, [green]: 0 } });
    assert.equal(set.status, 200, JSON.stringify(set.json));
    // Only the other replica carries traffic: the leader's own window stays empty.
    const leaderBefore = await sentTo(leader, 'default', green);
    const load = new Load(other.url, { clients: 4, sseTokens: 3, sseIntervalMs: 10 }).start();
    loads.push(load);
    const start = await leader.call('POST', '/api/v1/apps/default/rollout', { to: green });
    assert.equal(start.status, 201, JSON.stringify(start.json));
    const rolledBack = await until('the default rollout rolled back', REACT_MS, async () => {
      const s = await leader.status();
      const r = appRollout(s, 'default');
      return r?.['phase'] === 'rolled_back' ? r : undefined;
    }, { everyMs: 50, observe: () => 'rollout not rolled back' });
    await load.stop();
    player.sim(green).setFaults('default', {});
    // What the leader itself sent to the new cluster meanwhile, from its own request counter.
    const leaderRequests = (await sentTo(leader, 'default', green)) - leaderBefore;
    console.log(`# merged gates: rolled back by the leader ${leader.name} on ${other.name}'s traffic: ${rolledBack['reason']}; requests the leader itself sent to ${green}: ${leaderRequests}; load through ${other.name}: ${load.summary()}`);
    assert.match(String(rolledBack['reason']), /error rate/);
    assert.equal(leaderRequests, 0, 'the leader sent none of it: the gate judged the other replica\'s traffic');
    const audit = (await other.call('GET', '/api/v1/events?limit=50')).json['events'] as Json[];
    assert.ok(audit.some((e) => e['app'] === 'default' && e['action'] === 'rollout_failed' && e['actor'] === 'rollout'), 'the rollback by the driver is in the shared trail');
  });

  test('the leader killed (SIGKILL) mid-rollout: another replica takes the Lease and goes on from the same step; every step once in the audit trail', { timeout: 180_000 }, async () => {
    const statuses = await Promise.all(live().map((r) => r.status()));
    const leader = live().find((_, i) => replicasOf(statuses[i]!)['is_leader'] === true)!;
    const other = live().find((r) => r !== leader)!;
    const load = new Load(other.url, { clients: 4, sseTokens: 3, sseIntervalMs: 10 }).start();
    loads.push(load);
    const start = await other.call('POST', '/api/v1/apps/llm/rollout', { to: green, steps: [25, 50, 75, 100], interval: '4s', min_requests: 1 });
    assert.equal(start.status, 201, JSON.stringify(start.json));
    await until('llm at 50 %', REACT_MS, async () => appWeights(await other.status(), 'llm')[green] === 50, { everyMs: 50 });
    const killedAt = performance.now();
    await leader.kill();
    const took = await until(`${other.name} leads`, REACT_MS, async () => (replicasOf(await other.status())['is_leader'] === true ? performance.now() : undefined), { everyMs: 50 });
    const done = await until('the llm rollout succeeded', 60_000, async () => (appRollout(await other.status(), 'llm')?.['phase'] === 'succeeded' ? performance.now() : undefined), { everyMs: 100 });
    await load.stop();
    const audit = ((await other.call('GET', '/api/v1/events?limit=200')).json['events'] as Json[]).filter((e) => e['app'] === 'llm' && e['result'] === 'ok' && String(e['action']).startsWith('rollout')).reverse();
    const greenSteps = audit.filter((e) => e['to'] !== null).map((e) => (e['to'] as Record<string, number>)[green]);
    console.log(
      `# leader ${leader.name} killed at 50 %; ${other.name} led ${Math.round(took - killedAt)} ms later (lease duration ${LEASE_S} s); the rollout finished ${Math.round(done - killedAt)} ms after the kill; ` +
        `steps in the shared audit trail: ${audit.map((e) => `${e['action']}→${(e['to'] as Record<string, number> | null)?.[green] ?? '-'} (${e['actor']})`).join(', ')}; load: ${load.summary()}`,
    );
    assert.deepEqual(greenSteps, [25, 50, 75, 100], 'every step once: none repeated, none skipped');
    assert.equal(load.failures().length, 0, describeOutcomes(load.failures()));
    assert.ok(took - killedAt < (LEASE_S + 2) * 1000, `taken over within the lease duration and a renewal (${Math.round(took - killedAt)} ms)`);
  });

  test('a state ConfigMap edited by hand into something invalid is refused loudly; the last good state keeps serving', { timeout: 60_000 }, async () => {
    const r = live()[0]!;
    const before = appWeights(await r.status(), 'llm');
    const core = server.kc.makeApiClient(CoreV1Api);
    const cm = await core.readNamespacedConfigMap({ namespace: NS, name: STATE_CM });
    cm.data = { ...cm.data, 'traffic-state.json': '{"format": "nope"' };
    await core.replaceNamespacedConfigMap({ namespace: NS, name: STATE_CM, body: cm });
    const refused = await until('the edit refused', REACT_MS, async () => {
      const s = await r.status();
      return s['kubernetes']?.['shared_state']?.['invalid'] ? s : undefined;
    });
    const metrics = await (await fetch(`${r.admin}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    const event = await until('a Warning Event on the RayService', REACT_MS, async () => (await player.events()).find((e) => e.reason === 'ServeGatewaySharedStateInvalid'));
    console.log(`# hand edit refused: ${refused['kubernetes']['shared_state']['invalid']}; Event: ${event.type} ${event.reason}`);
    assert.deepEqual(appWeights(refused, 'llm'), before, 'the last good weights still serve');
    assert.match(metrics, /serve_gateway_shared_state_invalid 1/);
    assert.equal(event.type, 'Warning');
    // The next change writes a good document over the bad one.
    const fix = await r.call('PUT', '/api/v1/apps/llm/weights', { weights: before[blue] === 100 ? { [blue]: 0, [green]: 100 } : { [blue]: 100, [green]: 0 } });
    assert.equal(fix.status, 200, JSON.stringify(fix.json));
    await until('the document good again', REACT_MS, async () => (await r.status())['kubernetes']?.['shared_state']?.['invalid'] === null);
  });
});
