import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../core/clock.ts';
import { Limiter, type Waiter } from './limiter.ts';

class W implements Waiter {
  queueDeadlineMs = 0;
  queued = false;
  admitted = 0;
  timedOut = 0;
  onAdmitted() {
    this.admitted++;
  }
  onQueueTimeout() {
    this.timedOut++;
  }
}

test('grants up to the limit, queues FIFO, rejects when the queue is full', () => {
  const l = new Limiter('app', 'blue', 2, 2, 1000, new ManualClock());
  const ws = Array.from({ length: 5 }, () => new W());
  assert.deepEqual(ws.map((w) => l.acquire(w)), ['granted', 'granted', 'queued', 'queued', 'full']);
  assert.equal(l.inFlight, 2);
  assert.equal(l.queued, 2);
  l.release();
  assert.equal(ws[2]!.admitted, 1);
  assert.equal(ws[3]!.admitted, 0);
  l.release();
  assert.equal(ws[3]!.admitted, 1);
  assert.equal(l.inFlight, 2);
  assert.equal(l.queued, 0);
});

test('a request never jumps the queue while others wait', () => {
  const l = new Limiter('app', 'blue', 1, 5, 1000, new ManualClock());
  const a = new W(), b = new W(), c = new W();
  l.acquire(a);
  l.acquire(b);
  l.release(); // b admitted
  assert.equal(b.admitted, 1);
  assert.equal(l.acquire(c), 'queued');
});

test('queue deadline fires once per expired waiter, in order, with one timer', () => {
  const clock = new ManualClock();
  const l = new Limiter('app', 'blue', 1, 10, 1000, clock);
  l.acquire(new W());
  const a = new W(), b = new W();
  l.acquire(a);
  clock.advance(400);
  l.acquire(b);
  assert.equal(clock.pendingTimers(), 1);
  clock.advance(600);
  assert.equal(a.timedOut, 1);
  assert.equal(b.timedOut, 0);
  clock.advance(399);
  assert.equal(b.timedOut, 0);
  clock.advance(1);
  assert.equal(b.timedOut, 1);
  assert.equal(l.queued, 0);
  assert.equal(clock.pendingTimers(), 0);
});

test('cancelled waiters free their queue place and are never admitted', () => {
  const l = new Limiter('app', 'blue', 1, 1, 1000, new ManualClock());
  l.acquire(new W());
  const a = new W(), b = new W();
  assert.equal(l.acquire(a), 'queued');
  assert.equal(l.acquire(b), 'full');
  l.cancel(a);
  l.cancel(a);
  assert.equal(l.queued, 0);
  assert.equal(l.acquire(b), 'queued');
  l.release();
  assert.equal(a.admitted, 0);
  assert.equal(b.admitted, 1);
});

test('raising the limit admits waiters; in-flight never exceeds the limit under churn', () => {
  const l = new Limiter('app', 'blue', 3, 1000, 60_000, new ManualClock());
  let max = 0;
  const active: W[] = [];
  const waiters = Array.from({ length: 300 }, () => new W());
  for (const w of waiters) if (l.acquire(w) === 'granted') active.push(w);
  for (let i = 0; i < 300; i++) {
    max = Math.max(max, l.inFlight);
    l.release();
  }
  assert.ok(max <= 3);
  const l2 = new Limiter('app', 'green', 0, 10, 1000, new ManualClock());
  const x = new W();
  assert.equal(l2.acquire(x), 'queued');
  l2.configure(1, 10, 1000);
  assert.equal(x.admitted, 1);
});

test('a lowered queue timeout applies to requests already waiting', () => {
  const clock = new ManualClock();
  const l = new Limiter('app', 'blue', 1, 10, 10_000, clock);
  l.acquire(new W());
  const a = new W();
  l.acquire(a);
  clock.advance(1000);
  l.configure(1, 10, 2000);
  clock.advance(999);
  assert.equal(a.timedOut, 0);
  clock.advance(1);
  assert.equal(a.timedOut, 1, 'enqueued at 0 with a 2 s timeout: out at 2 s, not 10 s');
});
