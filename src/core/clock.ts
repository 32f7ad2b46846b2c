// Time is a parameter. Decisions take `now`; adapters take a Clock so tests
// can move time by hand instead of sleeping.
import { performance } from 'node:perf_hooks';

export interface Clock {
  /** Milliseconds, monotonic within a process run. */
  now(): number;
  /** Wall-clock milliseconds since the epoch (for audit records). */
  wallNow(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export interface TimerHandle {
  unref?(): unknown;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

interface ManualTimer {
  at: number;
  fn: () => void;
  seq: number;
  cancelled: boolean;
}

/** A clock for tests: time moves only through advance(). */
export class ManualClock implements Clock {
  #now: number;
  #wall: number;
  #timers: ManualTimer[] = [];
  #seq = 0;

  constructor(startMs = 0, wallStartMs = 1_700_000_000_000) {
    this.#now = startMs;
    this.#wall = wallStartMs;
  }

  now(): number {
    return this.#now;
  }

  wallNow(): number {
    return this.#wall + this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t: ManualTimer = { at: this.#now + Math.max(0, ms), fn, seq: this.#seq++, cancelled: false };
    this.#timers.push(t);
    return t as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    (handle as unknown as ManualTimer).cancelled = true;
  }

  /** Moves time forward, firing due timers in order (timers set while firing run too). */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      this.#timers = this.#timers.filter((t) => !t.cancelled);
      this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#timers[0];
      if (next === undefined || next.at > end) break;
      this.#timers.shift();
      this.#now = next.at;
      next.fn();
    }
    this.#now = end;
  }

  pendingTimers(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }
}
