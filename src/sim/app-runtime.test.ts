import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ServeApp } from '../config/types.ts';
import { AppRuntime } from './app-runtime.ts';
import type { Replica, Waiter } from './app-runtime.ts';
import { ProxyRouter } from './proxy-router.ts';

function app(over: Partial<ServeApp> = {}): ServeApp {
  return { name: 'a', routePrefix: '/a', ingressDeployment: 'D', maxOngoingRequests: 2, maxQueuedRequests: -1, replicas: 2, status: 'RUNNING', ...over };
}

function waiter(log: Replica[]): Waiter & { router?: ProxyRouter } {
  const w: Waiter & { router?: ProxyRouter } = {
    assign(r) {
      w.router?.dequeued();
      log.push(r);
    },
  };
  return w;
}

test('P2C fills every replica up to max_ongoing_requests, never beyond', () => {
  const rt = new AppRuntime('c', app({ replicas: 3, maxOngoingRequests: 4 }), { latencyMs: 0, tokens: 1, tokenIntervalMs: 0 });
  const got: Replica[] = [];
  for (let i = 0; i < 12; i++) {
    const r = rt.tryAcquire();
    assert.ok(r, `slot ${i}`);
    got.push(r);
  }
  assert.equal(rt.tryAcquire(), null);
  assert.deepEqual(rt.replicas.map((r) => r.inFlight), [4, 4, 4]);
  assert.equal(rt.stats.maxInFlightSeen, 12);
  rt.release(got[0] as Replica);
  assert.equal(rt.stats.inFlight, 11);
});

test('P2C prefers the less loaded of two replicas', () => {
  const rt = new AppRuntime('c', app({ replicas: 2, maxOngoingRequests: 100 }), { latencyMs: 0, tokens: 1, tokenIntervalMs: 0 });
  for (let i = 0; i < 50; i++) rt.tryAcquire();
  // With two replicas both are always the candidates, so the load stays balanced.
  const [x, y] = rt.replicas.map((r) => r.inFlight);
  assert.ok(Math.abs((x ?? 0) - (y ?? 0)) <= 1, `${x} vs ${y}`);
});

test('per-proxy FIFO queue: woken in order on release, bounded by max_queued_requests', () => {
  const rt = new AppRuntime('c', app({ replicas: 1, maxOngoingRequests: 1, maxQueuedRequests: 2 }), { latencyMs: 0, tokens: 1, tokenIntervalMs: 0 });
  const p1 = new ProxyRouter(rt);
  const p2 = new ProxyRouter(rt);
  const order: string[] = [];
  const mk = (name: string, router: ProxyRouter): Waiter => ({
    assign() {
      router.dequeued();
      order.push(name);
    },
  });
  const first = p1.route(mk('first', p1));
  assert.equal(first.kind, 'assigned');
  assert.equal(p1.route(mk('q1', p1)).kind, 'queued');
  assert.equal(p2.route(mk('q2', p2)).kind, 'queued');
  const q3 = mk('q3', p1);
  assert.equal(p1.route(q3).kind, 'queued');
  const rejected = p1.route(mk('x', p1));
  assert.deepEqual(rejected, { kind: 'rejected', message: 'Request dropped due to backpressure (num_queued_requests=2, max_queued_requests=2).' });
  assert.equal(p2.route(mk('q4', p2)).kind, 'queued', 'the limit is per proxy');
  assert.equal(rt.stats.queued, 4);
  assert.equal(rt.stats.rejected, 1);
  assert.equal(p1.cancel(q3), true, 'a queued request can leave');
  assert.equal(p1.cancel(q3), false);
  const replica = (first as { replica: Replica }).replica;
  rt.release(replica);
  rt.release(replica);
  rt.release(replica);
  assert.deepEqual(order, ['q1', 'q2', 'q4']);
  assert.equal(p1.queued + p2.queued, 0);
  assert.equal(rt.stats.queued, 0);
});

test('scale: down drains removed replicas, up wakes waiters, 0 makes requests wait', () => {
  const rt = new AppRuntime('c', app({ replicas: 2, maxOngoingRequests: 1 }), { latencyMs: 0, tokens: 1, tokenIntervalMs: 0 });
  const a = rt.tryAcquire() as Replica;
  const b = rt.tryAcquire() as Replica;
  rt.scale(1);
  assert.equal(rt.runningReplicas, 1);
  assert.equal(rt.replicas.length, 2, 'busy replica kept until idle');
  const stopping = rt.replicas.find((r) => r.stopping) as Replica;
  rt.release(stopping);
  assert.equal(rt.replicas.length, 1);
  const other = stopping === a ? b : a;
  rt.release(other);
  rt.scale(0);
  assert.equal(rt.tryAcquire(), null);
  const log: Replica[] = [];
  rt.wait(waiter(log));
  rt.scale(3);
  assert.equal(log.length, 1, 'scale-up serves the waiting request');
  assert.equal(rt.replicas.length, 3);
});
