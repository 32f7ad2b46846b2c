// Admission for one (app, cluster): at most `limit` requests in flight, then a
// bounded FIFO queue with one deadline. One timer per limiter (armed for the
// queue head), never one per waiter. Callback-based so the hot path allocates
// nothing: the request context is the waiter.
import type { Clock, TimerHandle } from '../core/clock.ts';

export interface Waiter {
  /** Set by the limiter; the waiter only reads them. */
  queueDeadlineMs: number;
  queued: boolean;
  onAdmitted(): void;
  onQueueTimeout(): void;
}

export type AcquireResult = 'granted' | 'queued' | 'full';

export class Limiter {
  readonly app: string;
  readonly cluster: string;
  limit: number;
  queueCapacity: number;
  queueTimeoutMs: number;
  inFlight = 0;
  /** Live (not cancelled) waiters. */
  queued = 0;
  #queue: Array<Waiter | null> = [];
  #head = 0;
  #clock: Clock;
  #timer: TimerHandle | null = null;
  readonly #onTimer: () => void;

  constructor(app: string, cluster: string, limit: number, queueCapacity: number, queueTimeoutMs: number, clock: Clock) {
    this.app = app;
    this.cluster = cluster;
    this.limit = limit;
    this.queueCapacity = queueCapacity;
    this.queueTimeoutMs = queueTimeoutMs;
    this.#clock = clock;
    this.#onTimer = () => this.#expire();
  }

  acquire(w: Waiter): AcquireResult {
    if (this.inFlight < this.limit && this.queued === 0) {
      this.inFlight++;
      return 'granted';
    }
    if (this.queued >= this.queueCapacity) return 'full';
    w.queued = true;
    w.queueDeadlineMs = this.#clock.now() + this.queueTimeoutMs;
    this.#queue.push(w);
    this.queued++;
    if (this.#timer === null) this.#arm();
    return 'queued';
  }

  /** Frees one slot and admits queued waiters that now fit. */
  release(): void {
    this.inFlight--;
    this.#pump();
  }

  /** Removes a queued waiter (its client went away). Idempotent. */
  cancel(w: Waiter): void {
    if (!w.queued) return;
    w.queued = false;
    this.queued--;
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
    if (shift !== 0 && this.queued > 0) {
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
  }

  /** Stops the timer; queued waiters time out as if their deadline passed. */
  close(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    for (let w = this.#shift(); w !== null; w = this.#shift()) w.onQueueTimeout();
  }

  #pump(): void {
    while (this.inFlight < this.limit && this.queued > 0) {
      const w = this.#shift();
      if (w === null) break;
      this.inFlight++;
      w.onAdmitted();
    }
  }

  #shift(): Waiter | null {
    while (this.#head < this.#queue.length) {
      const w = this.#queue[this.#head];
      this.#queue[this.#head] = null;
      this.#head++;
      if (w != null && w.queued) {
        w.queued = false;
        this.queued--;
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
    if (this.queued > 0) this.#arm();
  }
}
