// Issue 8, must show: KubeRay's blue/green upgrade (NewCluster), played step by
// step against a real kube-apiserver (kuberay-player.ts, KubeRay's own order), with the gateway in this process as a least-privilege
// ServiceAccount, under closed-loop load (JSON requests and SSE streams,
// every outcome counted by x-serve-cluster).
//
// - upgrade: follow — the gateway switches when KubeRay promotes: 0 failed
//   requests, nothing started on the old cluster after the gateway saw the
//   swap, streams in flight on the old cluster finish there, the old cluster's
//   deletion after rayClusterDeletionDelaySeconds costs nothing.
// - upgrade: rollout — the gateway's own rollout steps run while both clusters
//   exist; when the pending cluster's app fails, the gate rolls it back: traffic
//   stays on the old cluster, the audit log and a Kubernetes Event say why.
// - A spec change mid-upgrade (KubeRay replaces the pending cluster): the
//   abandoned cluster is dropped, the new one followed, 0 failed requests.
// Run with `npm run test:k8s`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { APISERVER_SETUP_TIMEOUT_MS, apiServerUnavailable, startApiServer } from './apiserver.ts';
import type { ApiServer, ServiceAccountAccess } from './apiserver.ts';
import {
  GATEWAY_ROLE_RULES,
  KubeRayPlayer,
  Load,
  StatusTrace,
  appRollout,
  appWeights,
  describeOutcomes,
  k8sSummary,
  rolloutWentWrong,
  rolloutsSucceeded,
  rsClusters,
  startK8sGateway,
  statusUntil,
  switchOutcomes,
  until,
} from './kuberay-player.ts';
import type { K8sGateway, Outcome } from './kuberay-player.ts';

const unavailable = apiServerUnavailable();
const NS = 'ray';
/** A gateway reaction on a busy 2-core machine (typical: well under a second). */
const REACT_MS = 30_000;
/** Load phases end on a count of outcomes; this bounds them. */
const LOAD_MS = 60_000;
const APPS = ['llm', 'default'] as const;
const SIM_APPS = { llm: { latency_ms: 5 }, default: { latency_ms: 2 } };
/** SSE streams: 20 frames 40 ms apart (about 0.8 s each). */
const LOAD_OPTS = { clients: 4, sseTokens: 20, sseIntervalMs: 40 };

describe('KubeRay blue/green upgrade under load, real kube-apiserver', { skip: unavailable ?? false, concurrency: false }, () => {
  let server: ApiServer;
  let sa: ServiceAccountAccess;
  const players: KubeRayPlayer[] = [];
  const gateways: K8sGateway[] = [];
  const loads: Load[] = [];
  const traces: StatusTrace[] = [];

  before(
    async () => {
      server = await startApiServer();
      await server.applyCrds();
      sa = await server.serviceAccountKubeConfig({ name: 'serve-gateway', namespace: NS, rules: [...GATEWAY_ROLE_RULES] });
      console.log(`# kube-apiserver ready in ${server.lastStartMs} ms`);
    },
    { timeout: APISERVER_SETUP_TIMEOUT_MS },
  );

  after(async () => {
    for (const l of loads) await l.stop().catch(() => {});
    for (const t of traces) await t.stop().catch(() => {});
    for (const g of gateways) await g.close().catch(() => {});
    for (const p of players) await p.stopAll().catch(() => {});
    await server?.stop();
  });

  /** A RayService serving from its first cluster, a gateway following it, both apps answered by that cluster. */
  async function serving(name: string, o: { upgrade: 'follow' | 'rollout'; deletionDelaySeconds: number; applications?: Record<string, unknown> }) {
    const p = new KubeRayPlayer({ server, namespace: NS, name, deletionDelaySeconds: o.deletionDelaySeconds, apps: SIM_APPS });
    players.push(p);
    await p.createRayService();
    const blue = await p.deployFirstCluster();
    const g = await startK8sGateway({ kubeconfig: sa.kubeconfigPath, namespace: NS, rayservices: [name], upgrade: o.upgrade, ...(o.applications ? { applications: o.applications } : {}) });
    gateways.push(g);
    await statusUntil(g, `${blue} serving both apps`, REACT_MS, (s) => APPS.every((a) => appWeights(s, a)[blue] === 100) && rsClusters(s, name).get(blue)?.['ready_endpoints'] === 3);
    await until(`a request answered by ${blue}`, REACT_MS, async () => {
      const r = await fetch(`${g.gw.url}/llm/warm`);
      await r.arrayBuffer();
      return r.status === 200 && r.headers.get('x-serve-cluster') === blue;
    });
    const load = new Load(g.gw.url, LOAD_OPTS).start();
    loads.push(load);
    const trace = new StatusTrace(g);
    traces.push(trace);
    const t0 = load.startedAt;
    const loadUntil = (what: string, pred: (o: Outcome) => boolean, n: number) =>
      until(`${n} outcomes: ${what}`, LOAD_MS, () => load.outcomes.filter(pred).length >= n, { observe: () => load.summary() });
    const fail = (msg: string) =>
      `${msg}\nload: ${load.summary()}\nfailures: ${describeOutcomes(load.failures(), t0)}\n` +
      `weights seen: ${APPS.map((a) => `${a}: ${trace.weightsSeen(a).join(' → ')}`).join('; ')}\n` +
      `player: ${p.timeline.map((x) => `${Math.round(x.at - t0)}ms ${x.what}`).join(' | ')}\ngateway log: ${g.problems()}`;
    /** statusUntil, failing with the whole story (load, weights seen, player steps, audit log, gateway log). */
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
    return { p, g, blue, load, trace, t0, loadUntil, fail, waitStatus };
  }

  test('upgrade: follow — the switch at KubeRay’s promotion under load: 0 failed requests, nothing new on the old cluster, its streams finish', { timeout: 240_000 }, async () => {
    const rs = 'follow';
    const { p, g, blue, load, trace, t0, loadUntil, fail, waitStatus } = await serving(rs, { upgrade: 'follow', deletionDelaySeconds: 3 });
    await loadUntil(`on ${blue}`, (o) => o.cluster === blue, 30);

    // §2.4: spec change → pending cluster → its pods Ready → apps DEPLOYING, RUNNING.
    const green = await p.beginUpgrade();
    await p.startCluster(green);
    await waitStatus(`${green} known as pending`, REACT_MS, (s) => rsClusters(s, rs).get(green)?.['role'] === 'pending');
    await p.setPodsReady(green, true);
    await waitStatus(`${green} has 3 ready endpoints`, REACT_MS, (s) => rsClusters(s, rs).get(green)?.['ready_endpoints'] === 3);
    await p.setAppStatuses(green, 'DEPLOYING');
    await p.setAppStatuses(green, 'RUNNING');
    const runningAt = performance.now();
    // Following KubeRay means nothing moves on RUNNING alone: load keeps going to blue meanwhile.
    await loadUntil(`started on ${blue} after the pending apps were RUNNING`, (o) => o.start > runningAt && o.cluster === blue, 10);

    // The status swap (promotion).
    const promoteAt = performance.now();
    await p.promote();
    const seen = await waitStatus('the gateway switched both apps', REACT_MS, (s) => APPS.every((a) => appWeights(s, a)[green] === 100), 10);
    const swapMs = seen.at - promoteAt;
    assert.equal(rsClusters(seen.status, rs).get(blue)?.['role'], 'previous', fail(`the old cluster is "previous" while it has pods: ${k8sSummary(seen.status)}`));

    // Old pods deleted after the delay; the gateway drops the cluster.
    const deletedAt = await p.clusters.get(blue)!.deleted;
    await waitStatus(`${blue} dropped`, REACT_MS, (s) => !rsClusters(s, rs).has(blue));
    await loadUntil(`started after ${blue} was deleted`, (o) => o.start > deletedAt, 30);
    await load.stop();
    await trace.stop();

    const { failed, lateOld, earlyNew, streamsAtSwap, afterSwitch: after } = switchOutcomes(load, { blue, green, seenAt: seen.at, promoteAt });
    const audit = (await g.events()).filter((e) => e['actor'] === 'kubernetes');
    console.log(
      `# follow: ${load.summary()}; promotion written ${Math.round(promoteAt - t0)} ms into the load, switch seen on the status API ${swapMs.toFixed(0)} ms later; ` +
        `SSE streams on ${blue} in flight at the promotion: ${streamsAtSwap.length} (completed ${streamsAtSwap.filter((o) => o.ok).length}); ` +
        `${blue} deleted ${Math.round(deletedAt - promoteAt)} ms after the promotion; started after the switch: ${after.length}, on ${blue}: ${lateOld.length}; ` +
        `audit by kubernetes: ${audit.map((e) => `${e['app']} ${e['action']} ${JSON.stringify(e['to'])}`).join('; ')}`,
    );
    assert.equal(failed.length, 0, fail(`failed requests: ${failed.length}`));
    assert.equal(lateOld.length, 0, fail(`requests started on ${blue} after the gateway saw the swap: ${describeOutcomes(lateOld, t0)}`));
    assert.equal(earlyNew.length, 0, fail(`requests answered by ${green} before KubeRay promoted it: ${describeOutcomes(earlyNew, t0)}`));
    assert.ok(streamsAtSwap.length >= 1, fail('some SSE streams were in flight on the old cluster at the promotion'));
    assert.ok(streamsAtSwap.every((o) => o.ok && o.end < deletedAt), fail(`streams on ${blue} at the swap complete before its deletion: ${describeOutcomes(streamsAtSwap.filter((o) => !o.ok), t0)}`));
    assert.ok(after.length >= 30 && after.every((o) => o.cluster === green), fail(`everything after the switch on ${green}`));
    for (const app of APPS) {
      assert.ok(
        audit.some((e) => e['app'] === app && e['result'] === 'ok' && (e['to'] as Record<string, number> | null)?.[green] === 100),
        fail(`an audit entry by "kubernetes" switches ${app} to ${green}: ${JSON.stringify(audit)}`),
      );
    }
  });

  test('upgrade: rollout — the gateway’s steps (50 %, 100 %) run while both clusters exist, 0 failed requests', { timeout: 240_000 }, async () => {
    const rs = 'rollout';
    const policy = { steps: [50, 100], interval: '2s', min_requests: 5, max_p99_latency: '30s' };
    const { p, g, blue, load, trace, t0, loadUntil, fail, waitStatus } = await serving(rs, { upgrade: 'rollout', deletionDelaySeconds: 15, applications: { '*': { rollout: policy } } });
    await loadUntil(`on ${blue}`, (o) => o.cluster === blue, 30);

    const green = await p.beginUpgrade();
    await p.startCluster(green, { readyPods: true });
    await waitStatus(`${green} has 3 ready endpoints`, REACT_MS, (s) => rsClusters(s, rs).get(green)?.['ready_endpoints'] === 3);
    await p.setAppStatuses(green, 'DEPLOYING');
    await p.setAppStatuses(green, 'RUNNING');
    // KubeRay promotes as soon as every app is RUNNING; it does not wait for the gateway.
    const promoteAt = performance.now();
    await p.promote();
    const done = await waitStatus(
      'both rollouts complete',
      REACT_MS + 60_000,
      rolloutsSucceeded(APPS, green),
      50,
      rolloutWentWrong(APPS, green),
    );
    const blueGoneAtCompletion = p.clusters.get(blue)!.deletedAt !== null;
    const deletedAt = await p.clusters.get(blue)!.deleted;
    await loadUntil(`started after ${blue} was deleted`, (o) => o.start > deletedAt, 20);
    await load.stop();
    await trace.stop();

    const is = (app: string, b: number, gr: number) => (s: Record<string, unknown>) => {
      const w = appWeights(s as never, app);
      return (w[blue] ?? 0) === b && (w[green] ?? 0) === gr;
    };
    const failed = load.failures();
    const lines: string[] = [];
    for (const app of APPS) {
      const half = trace.first(is(app, 50, 50));
      const full = trace.first(is(app, 0, 100));
      assert.ok(half && full, fail(`${app} went through 50/50 then 0/100; weights seen: ${trace.weightsSeen(app).join(' → ')}`));
      // Before the rollout started (last sample at blue 100 before the 50 % step), nothing of the app reached green.
      const lastAllBlue = trace.lastBefore(half.at, is(app, 100, 0));
      const early = load.outcomes.filter((o) => o.app === app && o.cluster === green && lastAllBlue !== undefined && o.end < lastAllBlue.sent);
      assert.equal(early.length, 0, fail(`${app} on ${green} before the rollout started: ${describeOutcomes(early, t0)}`));
      // During the 50 % step both clusters served the app.
      const step = load.outcomes.filter((o) => o.app === app && o.start > half.at && o.end < full.sent);
      const onBlue = step.filter((o) => o.cluster === blue).length;
      const onGreen = step.filter((o) => o.cluster === green).length;
      assert.ok(onBlue > 0 && onGreen > 0, fail(`${app} during the 50 % step: ${onBlue} on ${blue}, ${onGreen} on ${green}`));
      assert.ok(full.at < deletedAt, fail(`${app} reached 100 % while ${blue} still existed`));
      lines.push(
        `${app}: 50 % at ${Math.round(half.at - promoteAt)} ms, 100 % at ${Math.round(full.at - promoteAt)} ms after the promotion (step: ${onBlue} on ${blue}, ${onGreen} on ${green})`,
      );
    }
    const audit = await g.events();
    const byK8s = audit.filter((e) => e['actor'] === 'kubernetes');
    console.log(
      `# rollout: ${load.summary()}; ${lines.join('; ')}; ${blue} deleted ${Math.round(deletedAt - promoteAt)} ms after the promotion; ` +
        `audit: ${audit.map((e) => `${e['app']} ${e['action']} by ${e['actor']}`).join(', ')}`,
    );
    assert.equal(blueGoneAtCompletion, false, fail('the rollout finished before KubeRay deleted the old cluster'));
    assert.equal(failed.length, 0, fail(`failed requests: ${failed.length}`));
    for (const app of APPS) {
      assert.ok(byK8s.some((e) => e['app'] === app && e['action'] === 'rollout_start'), fail(`rollout of ${app} started by "kubernetes": ${JSON.stringify(audit)}`));
      assert.ok(audit.some((e) => e['app'] === app && e['action'] === 'rollout_complete'), fail(`rollout of ${app} complete in the audit log`));
    }
    const lateOld = load.outcomes.filter((o) => o.cluster === blue && o.start > done.at);
    assert.equal(lateOld.length, 0, fail(`nothing started on ${blue} after both rollouts completed: ${describeOutcomes(lateOld, t0)}`));
  });

  test('upgrade: rollout — the pending cluster’s app fails its gate: rolled back, traffic stays on the old cluster, the audit log and a Kubernetes Event say why', { timeout: 240_000 }, async () => {
    const rs = 'rollback';
    const policy = { steps: [50, 100], interval: '2s', min_requests: 5, max_error_rate: 0.02, max_p99_latency: '30s' };
    const { p, g, blue, load, trace, t0, loadUntil, fail, waitStatus } = await serving(rs, { upgrade: 'rollout', deletionDelaySeconds: 120, applications: { '*': { rollout: policy } } });
    await loadUntil(`on ${blue}`, (o) => o.cluster === blue, 30);

    const green = await p.beginUpgrade();
    await p.startCluster(green, { readyPods: true });
    // Serve reports the app RUNNING, but every request to it fails (a bad model build).
    p.sim(green).setFaults('llm', { errorRate: 1 });
    await waitStatus(`${green} has 3 ready endpoints`, REACT_MS, (s) => rsClusters(s, rs).get(green)?.['ready_endpoints'] === 3);
    await p.setAppStatuses(green, 'DEPLOYING');
    await p.setAppStatuses(green, 'RUNNING');
    const promoteAt = performance.now();
    await p.promote();
    const rolledBack = await waitStatus(
      'the llm rollout rolled back',
      REACT_MS + 30_000,
      (s) => appRollout(s, 'llm')?.['phase'] === 'rolled_back' && appWeights(s, 'llm')[blue] === 100,
      25,
      (s) => (appWeights(s, 'llm')[green] === 100 ? `llm moved to the failing ${green} 100 % (rollout: ${JSON.stringify(appRollout(s, 'llm'))})` : null),
    );
    await loadUntil(`llm started after the rollback`, (o) => o.app === 'llm' && o.start > rolledBack.at, 40);
    await load.stop();
    await trace.stop();

    // The requests the gate had to see failing: llm on the pending cluster, before the rollback.
    const gateFailures = load.failures().filter((o) => o.app === 'llm' && o.cluster === green && o.status === 500);
    const otherFailures = load.failures().filter((o) => !gateFailures.includes(o));
    const llmAfter = load.outcomes.filter((o) => o.app === 'llm' && o.start > rolledBack.at);
    const llmOnGreen = load.outcomes.filter((o) => o.app === 'llm' && o.cluster === green);
    const audit = await g.events();
    const failedEntry = audit.find((e) => e['app'] === 'llm' && e['action'] === 'rollout_failed');
    const k8sEvent = await until(
      'a Kubernetes Event on the RayService about the llm rollback',
      REACT_MS,
      async () => (await p.events()).find((e) => (e.message ?? '').includes('app llm') && /gate failed/.test(e.message ?? '')),
      { everyMs: 200 },
    );
    console.log(
      `# rollback: ${load.summary()}; llm requests on ${green}: ${llmOnGreen.length}, failed there (what the gate needed to see): ${gateFailures.length} ` +
        `(min_requests ${policy.min_requests}, plus what was in flight before the gate acted); other failures: ${otherFailures.length}; ` +
        `rolled back ${Math.round(rolledBack.at - promoteAt)} ms after the promotion; llm after the rollback: ${llmAfter.length}, on ${blue}: ${llmAfter.filter((o) => o.cluster === blue).length}; ` +
        `weights seen llm: ${trace.weightsSeen('llm').join(' → ')}; default: ${trace.weightsSeen('default').join(' → ')}\n` +
        `# audit: ${failedEntry ? `${failedEntry['action']} by ${failedEntry['actor']}: ${failedEntry['reason']}` : 'none'}\n` +
        `# Kubernetes Event: ${k8sEvent.type} ${k8sEvent.reason}: ${k8sEvent.message}`,
    );
    assert.equal(otherFailures.length, 0, fail(`failures other than the gate's: ${describeOutcomes(otherFailures, t0)}`));
    assert.ok(gateFailures.length >= policy.min_requests, fail(`the gate saw at least min_requests failing requests (${gateFailures.length})`));
    assert.ok(gateFailures.every((o) => o.start < rolledBack.at), fail(`gate failures all started before the rollback was seen: ${describeOutcomes(gateFailures.filter((o) => o.start >= rolledBack.at), t0)}`));
    assert.ok(llmAfter.length >= 40 && llmAfter.every((o) => o.cluster === blue && o.ok), fail(`llm stays on ${blue} after the rollback: ${describeOutcomes(llmAfter.filter((o) => o.cluster !== blue || !o.ok), t0)}`));
    assert.ok(failedEntry, fail(`audit entry rollout_failed for llm: ${JSON.stringify(audit)}`));
    assert.match(String(failedEntry['reason']), /gate failed/);
    assert.match(String(failedEntry['reason']), /error rate/);
    assert.match(String(failedEntry['reason']), new RegExp(green));
    assert.equal(k8sEvent.type, 'Warning');
    assert.equal(k8sEvent.involvedObject.kind, 'RayService');
    assert.equal(k8sEvent.involvedObject.name, rs);
    assert.match(k8sEvent.message ?? '', /error rate/);
    assert.equal(p.clusters.get(blue)!.deletedAt, null, 'the old cluster still exists (KubeRay deletes it after the delay)');
  });

  test('spec change mid-upgrade: KubeRay replaces the pending cluster; the gateway drops the abandoned one and follows the new one, 0 failed requests', { timeout: 240_000 }, async () => {
    const rs = 'respec';
    const { p, g, blue, load, trace, t0, loadUntil, fail, waitStatus } = await serving(rs, { upgrade: 'follow', deletionDelaySeconds: 6 });
    await loadUntil(`on ${blue}`, (o) => o.cluster === blue, 30);

    const first = await p.beginUpgrade();
    await p.startCluster(first, { readyPods: true });
    await p.setAppStatuses(first, 'DEPLOYING');
    await waitStatus(`${first} pending with 3 ready endpoints`, REACT_MS, (s) => {
      const c = rsClusters(s, rs).get(first);
      return c?.['role'] === 'pending' && c['ready_endpoints'] === 3;
    });

    // The spec changes again before the first pending cluster was promoted.
    const replaceAt = performance.now();
    const { abandoned, pending: second } = await p.replacePending();
    assert.equal(abandoned, first);
    const dropped = await waitStatus(`${first} dropped, ${second} pending`, REACT_MS, (s) => !rsClusters(s, rs).has(first) && rsClusters(s, rs).get(second)?.['role'] === 'pending');
    const droppedBeforeDeletion = p.clusters.get(first)!.deletedAt === null;
    await p.setPodsReady(second, true);
    await waitStatus(`${second} has 3 ready endpoints`, REACT_MS, (s) => rsClusters(s, rs).get(second)?.['ready_endpoints'] === 3);
    await p.setAppStatuses(second, 'DEPLOYING');
    await p.setAppStatuses(second, 'RUNNING');
    const promoteAt = performance.now();
    await p.promote();
    const seen = await waitStatus(`the gateway switched both apps to ${second}`, REACT_MS, (s) => APPS.every((a) => appWeights(s, a)[second] === 100), 10);
    await p.clusters.get(first)!.deleted;
    const blueDeletedAt = await p.clusters.get(blue)!.deleted;
    await waitStatus(`${blue} dropped`, REACT_MS, (s) => !rsClusters(s, rs).has(blue));
    await loadUntil(`started after ${blue} was deleted`, (o) => o.start > blueDeletedAt, 20);
    await load.stop();
    await trace.stop();

    const failed = load.failures();
    const onAbandoned = load.outcomes.filter((o) => o.cluster === first);
    const lateOld = load.outcomes.filter((o) => o.cluster === blue && o.start > seen.at);
    const listedAbandonedAfterDrop = trace.samples.filter((x) => x.sent > dropped.at && rsClusters(x.status, rs).has(first));
    console.log(
      `# spec change mid-upgrade: ${load.summary()}; ${first} dropped ${Math.round(dropped.at - replaceAt)} ms after the replacement ` +
        `(${droppedBeforeDeletion ? 'before' : 'after'} its pods were deleted); switch to ${second} seen ${Math.round(seen.at - promoteAt)} ms after the promotion; ` +
        `requests on ${first}: ${onAbandoned.length}`,
    );
    assert.equal(failed.length, 0, fail(`failed requests: ${failed.length}`));
    assert.equal(onAbandoned.length, 0, fail(`requests on the abandoned cluster ${first}`));
    assert.equal(lateOld.length, 0, fail(`requests started on ${blue} after the switch: ${describeOutcomes(lateOld, t0)}`));
    assert.equal(listedAbandonedAfterDrop.length, 0, fail(`${first} came back in the status after it was dropped: ${k8sSummary(listedAbandonedAfterDrop[0]?.status ?? null)}`));
    assert.equal(droppedBeforeDeletion, true, fail(`${first} dropped as soon as KubeRay stopped naming it, while its pods still existed`));
    assert.ok(load.outcomes.filter((o) => o.start > seen.at).every((o) => o.cluster === second), fail(`everything after the switch on ${second}`));
  });
});
