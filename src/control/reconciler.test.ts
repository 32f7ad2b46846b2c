// The reconciler's shared admission (`workers` > 1): a limiter shares its (app,
// cluster) slot with the other threads' limiters; without a slot it admits its
// thread's share of the limit, and it joins the slot once one is there and it is idle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PermitTable } from '../admission/permits.ts';
import { ManualClock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import { validateConfig } from '../config/schema.ts';
import type { GatewayConfig } from '../config/types.ts';
import { Instruments } from '../metrics/instruments.ts';
import { Reconciler } from './reconciler.ts';

const SERVE = `
applications:
  - name: llm
    route_prefix: /llm
    import_path: m:app
    deployments: [{ name: LLM, max_ongoing_requests: 8, num_replicas: 1 }]
  - name: chat
    route_prefix: /chat
    import_path: c:app
    deployments: [{ name: Chat, max_ongoing_requests: 8, num_replicas: 1 }]
`;

function config(workers: number): GatewayConfig {
  const r = validateConfig({ workers, clusters: [{ name: 'blue', endpoints: ['http://127.0.0.1:8101'], serve_config: SERVE }] }, 'gw.yaml', '/tmp', () => '');
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

const none = () => [];
const metrics = () => new Instruments({ inFlight: none, queueDepth: none, capacity: none, trafficWeight: none, endpointHealthy: none, openStreams: none, dashboardReachable: none, snapshotVersion: () => 0 }, { defaultMetrics: false });
const quiet: Logger = { info() {}, warn() {}, error() {}, debug() {}, child: () => quiet };

function limiterOf(r: Reconciler, app: string) {
  return r.current!.apps.get(app)!.targets[0]!.limiter;
}

test('with no shared slot left, a limiter admits limit / workers in its thread (the threads stay within the limit)', () => {
  const permits = PermitTable.create(2, 1);
  const r = new Reconciler(config(2), new ManualClock(), metrics(), quiet, permits);
  r.setConfig(config(2));
  const limits = ['llm', 'chat'].map((a) => limiterOf(r, a).limit).sort();
  assert.deepEqual(limits, [4, 8], 'one app has the slot (8); the other counts alone with 8 / 2');
  assert.equal(permits.size, 1);
  assert.equal(permits.overflowed, true);
});

test('a worker\'s limiter shares the main thread\'s slot; one made before its slot was assigned joins it once idle', () => {
  const main = PermitTable.create(2);
  const worker = new PermitTable(main.buffers, 1);
  const clock = new ManualClock();
  const m = new Reconciler(config(2), clock, metrics(), quiet, main);
  m.setConfig(config(2));
  // The worker only knows the slot of llm so far.
  worker.assign(main.entries().filter(([k]) => k.startsWith('llm')));
  const w = new Reconciler(config(2), clock, metrics(), quiet, worker);
  w.restore(m.inputs());
  const waiter = { queueDeadlineMs: 0, queued: false, onAdmitted() {}, onQueueTimeout() {} };
  assert.equal(limiterOf(m, 'llm').acquire(waiter), 'granted');
  assert.equal(limiterOf(w, 'llm').inFlight, 1, 'the worker sees the main thread\'s permit');
  assert.equal(limiterOf(w, 'chat').limit, 4, 'no slot yet: its share of 8');
  worker.assign(main.entries());
  w.setWeights(new Map());
  const chat = limiterOf(w, 'chat');
  assert.equal(chat.limit, 8);
  assert.equal(limiterOf(m, 'chat').acquire(waiter), 'granted');
  assert.equal(chat.inFlight, 1, 'now shared with the main thread');
});
