// PermitTable + Limiter across real worker threads (permits.fixture.ts is the
// worker side). Tests wait on messages, never on time; the deadlines below are
// failsafes only, so a lost wake fails a test instead of hanging the run.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { systemClock, type Clock } from '../core/clock.ts';
import { Limiter, type Waiter } from './limiter.ts';
import { PermitTable } from './permits.ts';
import { churn, type FixtureCommand, type FixtureData, type FixtureReply } from './permits.fixture.ts';

const KEY = 'app\u0000blue';
const FAILSAFE_MS = 8000;

interface Options {
  limit: number;
  queueCapacity: number;
  queueTimeoutMs?: number;
  holding?: SharedArrayBuffer;
}

/** The main thread's side: a table with `workers` slots of held counters, KEY on slot 0. */
function mainTable(workers: number): PermitTable {
  const t = PermitTable.create(workers, 4);
  assert.equal(t.slotOf(KEY), 0);
  return t;
}

function mainLimiter(t: PermitTable, o: Options, clock: Clock = systemClock): Limiter {
  return new Limiter('app', 'blue', o.limit, o.queueCapacity, o.queueTimeoutMs ?? 60_000, clock, t.cell(KEY)!);
}

interface Wanted {
  match: (m: FixtureReply) => boolean;
  resolve: (m: FixtureReply) => void;
  timer?: ReturnType<typeof setTimeout>;
}

/** A fixture thread with a buffered inbox: `next` takes the first message that matches. */
class Thread {
  readonly worker: Worker;
  readonly index: number;
  #inbox: FixtureReply[] = [];
  #wanted: Wanted[] = [];
  #error: Error | null = null;

  constructor(t: PermitTable, index: number, o: Options) {
    this.index = index;
    const data: FixtureData = {
      buffers: t.buffers,
      worker: index,
      key: KEY,
      limit: o.limit,
      queueCapacity: o.queueCapacity,
      queueTimeoutMs: o.queueTimeoutMs ?? 60_000,
      holding: o.holding,
    };
    this.worker = new Worker(new URL('./permits.fixture.ts', import.meta.url), { workerData: data });
    this.worker.on('message', (m: FixtureReply) => {
      const i = this.#wanted.findIndex((w) => w.match(m));
      if (i === -1) this.#inbox.push(m);
      else this.#wanted.splice(i, 1)[0]!.resolve(m);
    });
    this.worker.on('error', (e) => {
      this.#error = e;
    });
  }

  send(m: FixtureCommand): void {
    this.worker.postMessage(m);
  }

  next<T extends FixtureReply['op']>(
    op: T,
    match: (m: Extract<FixtureReply, { op: T }>) => boolean = () => true,
    deadlineMs = FAILSAFE_MS,
  ): Promise<Extract<FixtureReply, { op: T }>> {
    type M = Extract<FixtureReply, { op: T }>;
    const pred = (m: FixtureReply): boolean => m.op === op && match(m as M);
    const i = this.#inbox.findIndex(pred);
    if (i !== -1) return Promise.resolve(this.#inbox.splice(i, 1)[0] as M);
    return new Promise<M>((resolve, reject) => {
      const entry: Wanted = {
        match: pred,
        resolve: (m: FixtureReply) => {
          clearTimeout(entry.timer);
          resolve(m as M);
        },
      };
      entry.timer = setTimeout(() => {
        this.#wanted.splice(this.#wanted.indexOf(entry), 1);
        reject(new Error(`thread ${this.index}: no '${op}' message within ${deadlineMs} ms${this.#error ? ` (${this.#error.message})` : ''}`));
      }, deadlineMs);
      this.#wanted.push(entry);
    });
  }

  /** Terminates the thread; what is still awaited never settles (and keeps no timer alive). */
  async stop(): Promise<void> {
    for (const w of this.#wanted) clearTimeout(w.timer);
    this.#wanted = [];
    await this.worker.terminate();
  }

  /** Sends a command and waits for its answer. */
  async ask<T extends FixtureReply['op']>(m: FixtureCommand & { op: T }): Promise<Extract<FixtureReply, { op: T }>> {
    const id = (m as { id?: number }).id;
    const reply = this.next(m.op as T, (r) => id === undefined || (r as { id?: number }).id === id);
    this.send(m);
    return reply;
  }

  async acquire(id: number): Promise<string> {
    return (await this.ask({ op: 'acquire', id })).result;
  }

  /** Whatever happened to a queued request: 'admitted' or 'timeout'. */
  async outcome(id: number): Promise<string> {
    const admitted = this.next('admitted', (m) => m.id === id);
    const timeout = this.next('timeout', (m) => m.id === id);
    const m = await Promise.race([admitted, timeout]);
    admitted.catch(() => {});
    timeout.catch(() => {});
    return m.op;
  }
}

async function start(t: PermitTable, indices: number[], o: Options): Promise<Thread[]> {
  const threads = indices.map((i) => new Thread(t, i, o));
  await Promise.all(threads.map((th) => th.next('ready')));
  return threads;
}

async function stop(threads: Thread[]): Promise<void> {
  await Promise.all(threads.map((th) => th.stop()));
}

class W implements Waiter {
  queueDeadlineMs = 0;
  queued = false;
  /** 'admitted' or 'timeout', once one happens. */
  readonly outcome: Promise<string>;
  readonly #then: (() => void) | undefined;
  #resolve!: (s: string) => void;
  constructor(then?: () => void) {
    this.outcome = new Promise((r) => (this.#resolve = r));
    this.#then = then;
  }
  onAdmitted(): void {
    this.#resolve('admitted');
    this.#then?.();
  }
  onQueueTimeout(): void {
    this.#resolve('timeout');
  }
}

/** Resolves to `fallback` after the failsafe (a ref'd timer: keeps the loop alive while waiting). */
function failsafe<T>(p: Promise<T>, fallback: T, ms = FAILSAFE_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([p, new Promise<T>((r) => (timer = setTimeout(() => r(fallback), ms)))]).finally(() => clearTimeout(timer));
}

/**
 * Main + 2 fixture threads each run `cycles` acquire → hold → release cycles on
 * one slot, `concurrency` outstanding per thread; `holding` counts requests
 * between admission and release across all threads.
 */
async function contention(t: TestContext, limit: number, concurrency: number, cycles: number): Promise<void> {
  const holding = new SharedArrayBuffer(8);
  const h = new Int32Array(holding);
  const o: Options = { limit, queueCapacity: 1_000_000, queueTimeoutMs: 60_000, holding };
  const table = mainTable(3);
  const limiter = mainLimiter(table, o);
  const threads = await start(table, [1, 2], o);
  try {
    const done = threads.map((th) => th.next('churn', undefined, 2 * FAILSAFE_MS)); // the failsafe below answers first
    for (const th of threads) th.send({ op: 'churn', cycles, concurrency });
    const all = Promise.all([churn(limiter, h, cycles, concurrency), ...done]);
    const results = await failsafe(all, null);
    const state = `inFlight ${limiter.inFlight}, queued ${limiter.queued}, holding ${Atomics.load(h, 0)}, [held, queued] per thread ${JSON.stringify(heldPairs(table))}`;
    assert.ok(results !== null, `not every request got through within ${FAILSAFE_MS} ms: ${state}`);
    t.diagnostic(`max holding ${Atomics.load(h, 1)}; queued first per thread: ${results.map((r) => r.queuedCount).join(', ')}`);
    assert.ok(Atomics.load(h, 1) <= limit, `max holding ${Atomics.load(h, 1)} > limit ${limit}`);
    assert.ok(Atomics.load(h, 1) >= 1);
    assert.equal(Atomics.load(h, 0), 0);
    for (const r of results) assert.deepEqual([r.done, r.full, r.timeouts], [cycles, 0, 0]);
    assert.equal(limiter.inFlight, 0);
    assert.equal(limiter.queued, 0);
    // Every thread's own [held, queued] counters are back to zero too.
    assert.deepEqual(heldPairs(table), [[0, 0], [0, 0], [0, 0]]);
  } finally {
    await stop(threads);
  }
}

/** Each thread's [held, queued] for KEY's slot (0). */
function heldPairs(t: PermitTable): Array<[number, number]> {
  const held = new Int32Array(t.buffers.held);
  return Array.from({ length: t.buffers.workers }, (_, w): [number, number] => {
    const i = w * t.buffers.slots * 2;
    return [Atomics.load(held, i), Atomics.load(held, i + 1)];
  });
}

test('exact under contention: main + 2 threads, limit 3, 6 outstanding: never more than 3 held, every request gets in', (t) =>
  contention(t, 3, 2, 20_000));

test('exact under contention: main + 2 threads hand one permit around (limit 1, 3 outstanding)', (t) => contention(t, 1, 1, 10_000));

test('a permit freed on one thread admits the waiter queued on another', async () => {
  const o: Options = { limit: 2, queueCapacity: 10 };
  const table = mainTable(3);
  const [a, b] = await start(table, [1, 2], o);
  try {
    assert.equal(await a!.acquire(1), 'granted');
    assert.equal(await a!.acquire(2), 'granted');
    assert.equal(await b!.acquire(3), 'queued');
    const admitted = b!.next('admitted', (m) => m.id === 3);
    await a!.ask({ op: 'release', n: 1 });
    await admitted;
    const s = await b!.ask({ op: 'state' });
    assert.deepEqual([s.inFlight, s.queued], [2, 0]);
  } finally {
    await stop([a!, b!]);
  }
});

test('the queue capacity counts every thread\u2019s waiters', async () => {
  const o: Options = { limit: 1, queueCapacity: 2 };
  const table = mainTable(2);
  const limiter = mainLimiter(table, o);
  const [b] = await start(table, [1], o);
  try {
    assert.equal(limiter.acquire(new W()), 'granted');
    const queuedHere = new W();
    assert.equal(limiter.acquire(queuedHere), 'queued');
    assert.equal(await b!.acquire(1), 'queued');
    assert.equal(await b!.acquire(2), 'full');
    assert.equal(limiter.acquire(new W()), 'full');
    assert.deepEqual([limiter.inFlight, limiter.queued], [1, 2]);
    limiter.cancel(queuedHere);
  } finally {
    await stop([b!]);
  }
});

test('releaseWorker gives back what a terminated thread held and queued; a waiter on the main thread gets its permit', async () => {
  const o: Options = { limit: 3, queueCapacity: 10 };
  const table = mainTable(2);
  const limiter = mainLimiter(table, o);
  const [b] = await start(table, [1], o);
  let terminated = false;
  try {
    assert.equal(limiter.acquire(new W()), 'granted');
    assert.equal(await b!.acquire(1), 'granted');
    assert.equal(await b!.acquire(2), 'granted');
    assert.equal(await b!.acquire(3), 'queued');
    assert.equal(await b!.acquire(4), 'queued');
    const mine = new W();
    assert.equal(limiter.acquire(mine), 'queued');
    assert.deepEqual([limiter.inFlight, limiter.queued], [3, 3]);

    await b!.worker.terminate();
    terminated = true;
    assert.deepEqual(table.releaseWorker(1), { permits: 2, queued: 2 });
    // What the main thread itself holds: one permit, one waiter (admitted on the wake, not synchronously).
    assert.deepEqual([limiter.inFlight, limiter.queued], [1, 1]);
    assert.deepEqual(table.releaseWorker(1), { permits: 0, queued: 0 }, 'idempotent');

    assert.equal(await failsafe(mine.outcome, 'stuck'), 'admitted');
    assert.deepEqual([limiter.inFlight, limiter.queued], [2, 0]);
    limiter.release();
    limiter.release();
    assert.deepEqual([limiter.inFlight, limiter.queued], [0, 0]);
  } finally {
    if (!terminated) await stop([b!]);
  }
});

// Three "threads" on one slot, run on this one thread so the interleaving is
// exact: three PermitTable views (indices 0, 1, 2) over the same buffers, each
// with its own Limiter. A's clock runs H's operations from inside A.acquire,
// between the moment A reads the wake generation and the moment it starts
// watching it: what another thread's release + acquire can do at that point.
test('a waiter whose wake generation moved before it started watching is still woken later', async () => {
  const o: Options = { limit: 1, queueCapacity: 10, queueTimeoutMs: 2000 };
  const t0 = mainTable(3);
  const t1 = new PermitTable(t0.buffers, 1);
  const t2 = new PermitTable(t0.buffers, 2);
  t1.assign(t0.entries());
  t2.assign(t0.entries());
  let during: (() => void) | null = null;
  const clockA: Clock = {
    ...systemClock,
    now: () => {
      const f = during;
      during = null;
      f?.();
      return systemClock.now();
    },
  };
  const A = mainLimiter(t0, o, clockA);
  const H = mainLimiter(t1, o);
  const C = mainLimiter(t2, o);
  const releaseSoon = (l: Limiter) => () => setImmediate(() => l.release());

  assert.equal(H.acquire(new W()), 'granted');
  const c1 = new W(releaseSoon(C));
  assert.equal(C.acquire(c1), 'queued'); // C watches the wake generation
  // While A queues: H frees its permit (wakes the others: WAKE moves) and a new
  // request on H takes it again (H has no waiters of its own, the permit is free).
  during = () => {
    H.release();
    assert.equal(H.acquire(new W()), 'granted');
  };
  const a1 = new W(releaseSoon(A));
  assert.equal(A.acquire(a1), 'queued');
  assert.equal(during, null);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual([A.inFlight, A.queued], [1, 2]);

  // H lets go: c1 and a1 each get the permit in turn (each releases it at once).
  H.release();
  const outcomes = await Promise.all([failsafe(c1.outcome, 'stuck', 4000), failsafe(a1.outcome, 'stuck', 4000)]);
  assert.deepEqual(
    outcomes,
    ['admitted', 'admitted'],
    `a1: ${outcomes[1]}, though c1 released the permit right after its admission: ` +
      'limiter.ts #watch saw the generation move (not-equal), queued #pumpSoon, and that pump found no permit ' +
      'but never watched again, so later notifies and the 1 s re-check never reach A',
  );
  await new Promise((r) => setImmediate(r));
  assert.deepEqual([A.inFlight, A.queued], [0, 0]);
});
