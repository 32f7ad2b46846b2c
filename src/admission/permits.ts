// Admission counters that several data-plane threads share (config `workers`).
// Each (app, cluster) limiter has a slot of four Int32s in one
// SharedArrayBuffer: permits in flight, requests queued (all threads
// together), and a wake generation that a thread bumps (and Atomics.notify's)
// when it frees a permit another thread's waiter can take. Permits are taken
// only by compare-and-swap below the limit, so the sum over threads never
// exceeds it (docs/workers.md). With one thread the same code runs on a
// private Int32Array: no SharedArrayBuffer, no notify.
//
// Each thread also counts, in its own region of a second buffer, the permits
// it holds and the waiters it queued per slot (plain stores: only that thread
// writes them). When a thread dies the main thread gives its permits back
// (releaseWorker), so a crash never leaks capacity.

/** Offsets inside a slot. */
export const IN_FLIGHT = 0;
export const QUEUED = 1;
export const WAKE = 2;
const SLOT_INTS = 4;
const HELD_INTS = 2;

/** Where one limiter's counters live. */
export interface PermitCell {
  readonly cells: Int32Array;
  /** Index of the slot's IN_FLIGHT cell. */
  readonly base: number;
  /** This thread's [held, queued] pair for the slot. */
  readonly held: Int32Array;
  readonly heldBase: number;
  /** Other threads share the slot: wake them when a permit frees. */
  readonly shared: boolean;
}

/** A cell no other thread sees (one worker, and unit tests). */
export function localCell(): PermitCell {
  return { cells: new Int32Array(SLOT_INTS), base: 0, held: new Int32Array(HELD_INTS), heldBase: 0, shared: false };
}

export interface PermitBuffers {
  readonly cells: SharedArrayBuffer;
  readonly held: SharedArrayBuffer;
  readonly slots: number;
  readonly workers: number;
}

/**
 * The slot table. The main thread assigns slots (slotOf) as its snapshots
 * meet new (app, cluster) keys and sends the assignments to the workers with
 * the input that made them (assign), so every thread's limiter for one key
 * uses one slot. Slots are never reused while the process runs: each (app,
 * cluster) ever routed takes one (a KubeRay upgrade brings a new cluster name
 * per app). A key that finds none counts per thread at limit / workers
 * (control/reconciler.ts), which stays within the limit.
 */
export class PermitTable {
  readonly buffers: PermitBuffers;
  /** This thread's index (0 = main). */
  readonly worker: number;
  readonly #cells: Int32Array;
  readonly #held: Int32Array;
  readonly #keys = new Map<string, number>();
  #full = false;

  constructor(buffers: PermitBuffers, worker: number) {
    this.buffers = buffers;
    this.worker = worker;
    this.#cells = new Int32Array(buffers.cells);
    this.#held = new Int32Array(buffers.held);
  }

  static create(workers: number, slots = 32768): PermitTable {
    return new PermitTable(
      {
        cells: new SharedArrayBuffer(slots * SLOT_INTS * 4),
        held: new SharedArrayBuffer(workers * slots * HELD_INTS * 4),
        slots,
        workers,
      },
      0,
    );
  }

  get size(): number {
    return this.#keys.size;
  }

  /** The slot of a key; the main thread assigns the next free one. -1: the table is full, or (a worker) not assigned. */
  slotOf(key: string): number {
    let s = this.#keys.get(key);
    if (s === undefined) {
      if (this.worker !== 0) return -1;
      if (this.#keys.size >= this.buffers.slots) {
        this.#full = true;
        return -1;
      }
      s = this.#keys.size;
      this.#keys.set(key, s);
    }
    return s;
  }

  /** True once a key found no slot (its limiter then counts for this thread only). */
  get overflowed(): boolean {
    return this.#full;
  }

  /** Assignments made by the main thread, in the order made. */
  entries(from = 0): Array<[string, number]> {
    return [...this.#keys].slice(from);
  }

  /** A worker adopts the main thread's assignments. */
  assign(entries: ReadonlyArray<readonly [string, number]>): void {
    for (const [k, s] of entries) this.#keys.set(k, s);
  }

  /** The cell of an assigned key, or null (unassigned: the caller falls back to a local cell). */
  cell(key: string): PermitCell | null {
    const s = this.#keys.get(key);
    if (s === undefined) return null;
    return {
      cells: this.#cells,
      base: s * SLOT_INTS,
      held: this.#held,
      heldBase: (this.worker * this.buffers.slots + s) * HELD_INTS,
      shared: true,
    };
  }

  /**
   * A worker thread ended: what it held and queued is given back, and the
   * other threads' waiters are woken to take the freed permits.
   */
  releaseWorker(worker: number): { permits: number; queued: number } {
    const { slots } = this.buffers;
    let permits = 0;
    let queued = 0;
    for (let s = 0; s < slots; s++) {
      const h = (worker * slots + s) * HELD_INTS;
      const p = this.#held[h]!;
      const q = this.#held[h + 1]!;
      if (p === 0 && q === 0) continue;
      this.#held[h] = 0;
      this.#held[h + 1] = 0;
      const b = s * SLOT_INTS;
      if (p !== 0) Atomics.sub(this.#cells, b + IN_FLIGHT, p);
      if (q !== 0) Atomics.sub(this.#cells, b + QUEUED, q);
      Atomics.add(this.#cells, b + WAKE, 1);
      Atomics.notify(this.#cells, b + WAKE);
      permits += p;
      queued += q;
    }
    return { permits, queued };
  }
}
