// Worker-thread side of permits.test.ts: one "data-plane thread" with its own
// PermitTable view and a Limiter on the shared slot of `key`, driven by
// messages from the test (main thread). Not a test file itself. The test also
// imports `churn` from here to run the same load on the main thread.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../core/clock.ts';
import { Limiter, type Waiter } from './limiter.ts';
import { PermitTable, type PermitBuffers } from './permits.ts';

export interface FixtureData {
  buffers: PermitBuffers;
  worker: number;
  key: string;
  limit: number;
  queueCapacity: number;
  queueTimeoutMs: number;
  /** [holding now, max holding ever seen] across all threads (test a). */
  holding?: SharedArrayBuffer;
}

/** Messages the test sends. */
export type FixtureCommand =
  | { op: 'acquire'; id: number }
  | { op: 'release'; n: number }
  | { op: 'state' }
  | { op: 'churn'; cycles: number; concurrency: number };

/** Messages the fixture answers with. */
export type FixtureReply =
  | { op: 'ready' }
  | { op: 'acquire'; id: number; result: string }
  | { op: 'admitted'; id: number }
  | { op: 'timeout'; id: number }
  | { op: 'release'; n: number }
  | { op: 'state'; inFlight: number; queued: number }
  | ({ op: 'churn' } & ChurnResult);

export interface ChurnResult {
  /** Requests admitted (granted at once or after queueing) and released. */
  done: number;
  /** Of those, how many queued first. */
  queuedCount: number;
  full: number;
  timeouts: number;
}

/**
 * `cycles` acquire → hold (a microtask, a setImmediate or a short spin) →
 * release cycles, `concurrency` of them outstanding at once. `holding` is
 * [holding now, max ever], shared by every thread on the slot: a request adds
 * itself once admitted and takes itself off before releasing.
 */
export function churn(limiter: Limiter, holding: Int32Array, cycles: number, concurrency: number): Promise<ChurnResult> {
  const r: ChurnResult = { done: 0, queuedCount: 0, full: 0, timeouts: 0 };
  let started = 0;
  return new Promise((resolve) => {
    const finish = () => {
      if (r.done + r.full + r.timeouts === cycles) resolve(r);
    };
    const admitted = () => {
      const now = Atomics.add(holding, 0, 1) + 1;
      for (let max = Atomics.load(holding, 1); now > max; max = Atomics.load(holding, 1)) {
        if (Atomics.compareExchange(holding, 1, max, now) === max) break;
      }
      const leave = () => {
        Atomics.sub(holding, 0, 1);
        limiter.release();
        r.done++;
        next();
        finish();
      };
      const x = Math.random();
      if (x < 0.4) setImmediate(leave);
      else if (x < 0.7) queueMicrotask(leave);
      else {
        const until = process.hrtime.bigint() + BigInt(Math.floor(Math.random() * 20_000));
        while (process.hrtime.bigint() < until);
        setImmediate(leave);
      }
    };
    const next = () => {
      if (started === cycles) return;
      started++;
      const w: Waiter = {
        queueDeadlineMs: 0,
        queued: false,
        onAdmitted: admitted,
        onQueueTimeout: () => {
          r.timeouts++;
          next();
          finish();
        },
      };
      const res = limiter.acquire(w);
      if (res === 'granted') admitted();
      else if (res === 'queued') r.queuedCount++;
      else {
        r.full++;
        setImmediate(next);
        finish();
      }
    };
    for (let i = 0; i < concurrency; i++) next();
  });
}

if (!isMainThread) main();

function main(): void {
  const data = workerData as FixtureData;
  const port = parentPort!;
  const table = new PermitTable(data.buffers, data.worker);
  table.assign([[data.key, 0]]);
  const cell = table.cell(data.key);
  if (cell === null) throw new Error('fixture: key not assigned');
  const limiter = new Limiter('app', 'blue', data.limit, data.queueCapacity, data.queueTimeoutMs, systemClock, cell);

  function send(m: FixtureReply): void {
    port.postMessage(m);
  }

  function waiter(id: number): Waiter {
    return {
      queueDeadlineMs: 0,
      queued: false,
      onAdmitted: () => send({ op: 'admitted', id }),
      onQueueTimeout: () => send({ op: 'timeout', id }),
    };
  }

  port.on('message', (m: FixtureCommand) => {
    switch (m.op) {
      case 'acquire':
        send({ op: 'acquire', id: m.id, result: limiter.acquire(waiter(m.id)) });
        break;
      case 'release':
        for (let i = 0; i < m.n; i++) limiter.release();
        send({ op: 'release', n: m.n });
        break;
      case 'state':
        send({ op: 'state', inFlight: limiter.inFlight, queued: limiter.queued });
        break;
      case 'churn':
        void churn(limiter, new Int32Array(data.holding!), m.cycles, m.concurrency).then((r) => send({ op: 'churn', ...r }));
        break;
    }
  });
  send({ op: 'ready' });
}
