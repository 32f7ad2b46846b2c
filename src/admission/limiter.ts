// Admission for one (app, cluster): at most `limit` requests in flight, then a
// bounded FIFO queue with one deadline. One timer per limiter (armed for the
// queue head), never one per waiter. Callback-based so the hot path allocates
// nothing: the request context is the waiter.
//
// The counters (in flight, queued) live in a PermitCell: private to the
// limiter with one data-plane thread, a slot of a SharedArrayBuffer that every
// thread's limiter for the same (app, cluster) shares with `workers` > 1
// (permits.ts). A permit is taken only by compare-and-swap below the limit, so
// the threads together never exceed it; each thread queues its own waiters
// (FIFO), and a thread that frees a permit while another thread has waiters
// wakes it through Atomics.notify (docs/workers.md says what is fair).
import type { Clock, TimerHandle } from '../core/clock.ts';
import { IN_FLIGHT, QUEUED, WAKE, localCell, type PermitCell } from './permits.ts';

export interface Waiter {
  /** Set by the limiter; the waiter only reads them. */
  queueDeadlineMs: number;
  queued: boolean;
  onAdmitted(): void;
  onQueueTimeout(): void;
}

export type AcquireResult = 'granted' | 'queued' | 'full';

/** Without a wake from another thread, queued waiters still look for a free permit this often. */
const WAKE_CHECK_MS = 1000;

export class Limiter {
  readonly app: string;
  readonly cluster: string;
  limit: number;
  queueCapacity: number;
  queueTimeoutMs: number;
  /** This thread's live (not cancelled) waiters. */
  #local = 0;
  #queue: Array<Waiter | null> = [];
  #head = 0;
  #clock: Clock;
  #timer: TimerHandle | null = null;
  readonly #onTimer: () => void;
  readonly #c: Int32Array;
  readonly #b: number;
  readonly #h: Int32Array;
  readonly #hb: number;
  readonly #shared: boolean;
  #watching = false;
  #pumpQueued = false;
  readonly #onWake: () => void;
  readonly #pumpSoon: () => void;

  constructor(app: string, cluster: string, limit: number, queueCapacity: number, queueTimeoutMs: number, clock: Clock, cell: PermitCell = localCell()) {
    this.app = app;
    this.cluster = cluster;
    this.limit = limit;
    this.queueCapacity = queueCapacity;
    this.queueTimeoutMs = queueTimeoutMs;
    this.#clock = clock;
    this.#onTimer = () => this.#expire();
    this.#c = cell.cells;
    this.#b = cell.base;
    this.#h = cell.held;
    this.#hb = cell.heldBase;
    this.#shared = cell.shared;
    this.#onWake = () => {
      this.#watching = false;
      this.#wake();
    };
    this.#pumpSoon = () => {
      this.#pumpQueued = false;
      // Read before the pump: a permit freed after it moves the generation, and #watch sees that.
      const gen = Atomics.load(this.#c, this.#b + WAKE);
      this.#pump();
      if (this.#shared && this.#local > 0) this.#watch(gen);
    };
  }

  /** Permits in flight (every thread's, with workers). */
  get inFlight(): number {
    return this.#get(IN_FLIGHT);
  }

  /** Waiters queued (every thread's, with workers). */
  get queued(): number {
    return this.#get(QUEUED);
  }

  /** A permit now, or false; never queues (and never jumps a queue). */
  tryAcquire(): boolean {
    return this.#get(QUEUED) === 0 && this.#take();
  }

  acquire(w: Waiter): AcquireResult {
    if (this.#get(QUEUED) === 0 && this.#take()) return 'granted';
    const gen = this.#get(WAKE);
    if (this.#add(QUEUED, 1) >= this.queueCapacity) {
      this.#add(QUEUED, -1);
      return 'full';
    }
    // A permit freed since the try above saw no waiter to wake: take it, unless
    // this thread has waiters ahead (they get it, on the next microtask).
    if (this.#local === 0 && this.#take()) {
      this.#add(QUEUED, -1);
      return 'granted';
    }
    this.#hold(1, 1);
    this.#local++;
    w.queued = true;
    w.queueDeadlineMs = this.#clock.now() + this.queueTimeoutMs;
    this.#queue.push(w);
    if (this.#timer === null) this.#arm();
    if (this.#local > 1 && !this.#pumpQueued && this.inFlight < this.limit) {
      this.#pumpQueued = true;
      queueMicrotask(this.#pumpSoon);
    }
    if (this.#shared) this.#watch(gen);
    return 'queued';
  }

  /** Frees one slot and admits queued waiters that now fit (this thread's first, then wakes the others). */
  release(): void {
    this.#add(IN_FLIGHT, -1);
    this.#hold(0, -1);
    if (this.#get(QUEUED) === 0) return;
    if (this.#local > 0) this.#pump();
    if (this.#shared) this.#notifyOthers();
  }

  /** Removes a queued waiter (its client went away). Idempotent. */
  cancel(w: Waiter): void {
    if (!w.queued) return;
    this.#unqueue(w);
    const i = this.#queue.indexOf(w, this.#head);
    if (i !== -1) this.#queue[i] = null;
    this.#compact();
  }

  /** New capacity from a snapshot: admits waiters if it grew. */
  configure(limit: number, queueCapacity: number, queueTimeoutMs: number): void {
    this.limit = limit;
    this.queueCapacity = queueCapacity;
    const shift = queueTimeoutMs - this.queueTimeoutMs;
    this.queueTimeoutMs = queueTimeoutMs;
    if (shift !== 0 && this.#local > 0) {
      // Waiters keep their place; their deadlines move with the new timeout
      // (FIFO order stays deadline order, so one timer on the head suffices).
      for (let i = this.#head; i < this.#queue.length; i++) {
        const w = this.#queue[i];
        if (w != null && w.queued) w.queueDeadlineMs += shift;
      }
      if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
      this.#timer = null;
      this.#arm();
    }
    this.#pump();
    if (this.#shared) this.#notifyOthers();
  }

  /** Stops the timer; queued waiters time out as if their deadline passed. */
  close(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    for (let w = this.#shift(); w !== null; w = this.#shift()) w.onQueueTimeout();
  }

  /** A permit below the limit, by compare-and-swap (the only way in-flight grows). */
  #take(): boolean {
    const c = this.#c;
    const i = this.#b + IN_FLIGHT;
    if (!this.#shared) {
      const v = c[i]!;
      if (v >= this.limit) return false;
      c[i] = v + 1;
      return true;
    }
    for (;;) {
      const v = Atomics.load(c, i);
      if (v >= this.limit) return false;
      if (Atomics.compareExchange(c, i, v, v + 1) === v) {
        this.#h[this.#hb]!++;
        return true;
      }
    }
  }

  #pump(): void {
    while (this.#local > 0 && this.#take()) {
      const w = this.#shift();
      if (w === null) {
        // Only cancelled entries were left: give the permit back.
        this.#add(IN_FLIGHT, -1);
        this.#hold(0, -1);
        break;
      }
      w.onAdmitted();
    }
  }

  /** Other threads have waiters and a permit is free: bump the wake generation and notify. */
  #notifyOthers(): void {
    const c = this.#c;
    const b = this.#b;
    if (Atomics.load(c, b + QUEUED) > this.#local && Atomics.load(c, b + IN_FLIGHT) < this.limit) {
      Atomics.add(c, b + WAKE, 1);
      Atomics.notify(c, b + WAKE);
    }
  }

  /** Waits (asynchronously) for another thread's notify while this thread has waiters. */
  #watch(gen: number): void {
    if (this.#watching) return;
    const r = Atomics.waitAsync(this.#c, this.#b + WAKE, gen, WAKE_CHECK_MS);
    if (r.async) {
      this.#watching = true;
      void r.value.then(this.#onWake);
    } else if (!this.#pumpQueued) {
      // The generation moved since `gen` was read: look now (on the next microtask).
      this.#pumpQueued = true;
      queueMicrotask(this.#pumpSoon);
    }
  }

  #wake(): void {
    const gen = Atomics.load(this.#c, this.#b + WAKE);
    this.#pump();
    if (this.#local > 0) this.#watch(gen);
  }

  #unqueue(w: Waiter): void {
    w.queued = false;
    this.#local--;
    this.#hold(1, -1);
    this.#add(QUEUED, -1);
  }

  // The counters: atomic on a shared slot, plain on a private cell (one thread: no atomics needed).
  #get(off: number): number {
    return this.#shared ? Atomics.load(this.#c, this.#b + off) : this.#c[this.#b + off]!;
  }

  /** Adds d; returns the value before. */
  #add(off: number, d: number): number {
    const c = this.#c;
    const i = this.#b + off;
    if (this.#shared) return Atomics.add(c, i, d);
    const v = c[i]!;
    c[i] = v + d;
    return v;
  }

  /** This thread's [held, queued] for crash recovery (permits.ts releaseWorker); only kept for a shared slot. */
  #hold(k: number, d: number): void {
    if (this.#shared) this.#h[this.#hb + k]! += d;
  }

  #shift(): Waiter | null {
    while (this.#head < this.#queue.length) {
      const w = this.#queue[this.#head];
      this.#queue[this.#head] = null;
      this.#head++;
      if (w != null && w.queued) {
        this.#unqueue(w);
        this.#compact();
        return w;
      }
    }
    this.#compact();
    return null;
  }

  #compact(): void {
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  #peek(): Waiter | null {
    for (let i = this.#head; i < this.#queue.length; i++) {
      const w = this.#queue[i];
      if (w != null && w.queued) return w;
    }
    return null;
  }

  #arm(): void {
    const head = this.#peek();
    if (head === null) return;
    this.#timer = this.#clock.setTimeout(this.#onTimer, Math.max(0, head.queueDeadlineMs - this.#clock.now()));
    this.#timer.unref?.();
  }

  #expire(): void {
    this.#timer = null;
    const now = this.#clock.now();
    for (;;) {
      const head = this.#peek();
      if (head === null || head.queueDeadlineMs > now) break;
      this.#shift();
      head.onQueueTimeout();
    }
    if (this.#local > 0) this.#arm();
  }
}
