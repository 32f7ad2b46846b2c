// File-mode persistence of the traffic state and the audit log, in
// `state_dir`. [adapter: node:fs]
//
//   traffic-state.json             the TrafficState (serializeTrafficState)
//   traffic-state.json.tmp-<pid>   being written; renamed over the state file
//   traffic-state.json.corrupt-<t> a damaged state file moved aside by load()
//   audit.jsonl                    one AuditEvent per line, oldest first
//
// Synchronous on purpose: writes happen on operator actions and rollout
// steps (a few a minute at most), and sync calls make "saved" mean saved
// before the admin API answers. One gateway process owns a state_dir.
//
// Write order of a change (commit): the audit entry is appended and fsynced
// first, then the state file is replaced. So after a crash (kill -9) at any
// point the state file never holds a change the audit log lacks; at worst
// the audit log holds one entry more than the state file, which the next
// start marks `failed` (TrafficController.start). A write that fails leaves
// the previous state file in place and throws StateWriteError; the caller
// applies nothing.

import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import { parseAuditEvent, parseTrafficState, serializeTrafficState } from './traffic-state.ts';
import type { AuditEvent, AuditEventInput, TrafficState } from './traffic-state.ts';

export const STATE_FILE = 'traffic-state.json';
export const AUDIT_FILE = 'audit.jsonl';
const TEMP_PREFIX = `${STATE_FILE}.tmp-`;
const TAIL_CHUNK_BYTES = 64 * 1024;

export interface StateLoadResult {
  /** The saved state, or null when there is none (first start) or it was damaged. */
  readonly state: TrafficState | null;
  /**
   * Set when a damaged state file was found and moved aside: a loud message
   * for the log (and a `state_recovered` audit event). The caller then starts
   * from the configured weights; the gateway never refuses to serve over it.
   */
  readonly recovered: string | null;
}

/** The node:fs calls the store makes: a seam for tests that inject failures or record the write order. */
export interface StateFs {
  openSync(path: string, flags: string, mode?: number): number;
  closeSync(fd: number): void;
  writeSync(fd: number, buf: Uint8Array, offset: number, length: number, position?: number | null): number;
  readSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number | null): number;
  fsyncSync(fd: number): void;
  fstatSync(fd: number): { size: number };
  ftruncateSync(fd: number, len: number): void;
  renameSync(from: string, to: string): void;
  unlinkSync(path: string): void;
  mkdirSync(path: string, opts: { recursive: true }): unknown;
  readdirSync(path: string): string[];
  readFileSync(path: string, encoding: 'utf8'): string;
}

export interface FileStateStoreOptions {
  /** Wall-clock ms for the corrupt-file suffix (Clock.wallNow). Default Date.now. */
  readonly wallNow?: () => number;
  /** Filesystem calls; default node:fs. */
  readonly fs?: StateFs;
}

/**
 * A change could not be recorded. `phase` says how far it got: `audit` =
 * nothing was written; `state` = the audit entry (`auditId`) was written but
 * the state file was not replaced (a `failed` entry follows it when the disk
 * allows). Either way the state file still holds the previous state.
 */
export class StateWriteError extends Error {
  readonly phase: 'audit' | 'state';
  readonly auditId: number | null;
  constructor(phase: 'audit' | 'state', auditId: number | null, cause: unknown) {
    const what = errorText(cause);
    super(phase === 'audit' ? `cannot append to the audit log: ${what}` : `cannot write the state file: ${what}`, { cause });
    this.name = 'StateWriteError';
    this.phase = phase;
    this.auditId = auditId;
  }
}

/**
 * Where the controller records changes: FileStateStore (file mode) or
 * SharedStateStore (kubernetes mode, a ConfigMap shared by every replica).
 * `commit` may be asynchronous; it throws StateWriteError when nothing was
 * recorded, and StateConflictError when another writer changed the state first.
 */
export interface TrafficStore {
  /** For messages and logs: the state_dir, or "ConfigMap <ns>/<name>". */
  readonly where: string;
  load(): StateLoadResult;
  commit(state: TrafficState, event: AuditEventInput): AuditEvent | Promise<AuditEvent>;
  appendAudit(input: AuditEventInput): AuditEvent;
  readAudit(limit: number): AuditEvent[];
  lastVersionedEvent(): AuditEvent | null;
}

/**
 * The shared state changed since this writer last read it (optimistic
 * concurrency: another replica's write came first). `current` is the state
 * now; the change must be decided again on it. Nothing was written.
 */
export class StateConflictError extends Error {
  readonly current: TrafficState;
  constructor(current: TrafficState) {
    super(`the shared traffic state changed meanwhile (now at version ${current.version})`);
    this.name = 'StateConflictError';
    this.current = current;
  }
}

export class FileStateStore implements TrafficStore {
  readonly #dir: string;
  readonly #statePath: string;
  readonly #auditPath: string;
  readonly #wallNow: () => number;
  readonly #fs: StateFs;
  #dirReady = false;
  #guard: () => string | null = () => null;
  /** Next audit id; null until the audit file's tail has been read. */
  #nextAuditId: number | null = null;

  constructor(stateDir: string, options: FileStateStoreOptions = {}) {
    this.#dir = stateDir;
    this.#statePath = join(stateDir, STATE_FILE);
    this.#auditPath = join(stateDir, AUDIT_FILE);
    this.#wallNow = options.wallNow ?? Date.now;
    this.#fs = options.fs ?? (nodeFs as unknown as StateFs);
  }

  get dir(): string {
    return this.#dir;
  }

  get where(): string {
    return this.#dir;
  }

  /**
   * A check run before every change is recorded: a reason not to write
   * (another gateway took the state_dir's lock: state-lock.ts), or null.
   */
  setGuard(guard: () => string | null): void {
    this.#guard = guard;
  }

  /**
   * Reads the saved state. Leftover temp files (a crash between write and
   * rename) are deleted: the state file they would have replaced is intact.
   * A damaged state file is moved to `traffic-state.json.corrupt-<time>`.
   * Throws only when the directory itself cannot be read.
   */
  load(): StateLoadResult {
    this.#ensureDir();
    const fs = this.#fs;
    for (const name of fs.readdirSync(this.#dir)) {
      if (name.startsWith(TEMP_PREFIX)) unlinkQuiet(fs, join(this.#dir, name));
    }
    let text: string;
    try {
      text = fs.readFileSync(this.#statePath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: null, recovered: null };
      return {
        state: null,
        recovered: `TRAFFIC STATE NOT LOADED: cannot read ${this.#statePath} (${(err as Error).message}); starting from the configured weights`,
      };
    }
    const parsed = parseTrafficState(text);
    if (!(parsed instanceof Error)) return { state: parsed, recovered: null };

    const stamp = new Date(this.#wallNow()).toISOString().replace(/[:.]/g, '-');
    const aside = `${this.#statePath}.corrupt-${stamp}`;
    let moved: string;
    try {
      fs.renameSync(this.#statePath, aside);
      fsyncDir(fs, this.#dir);
      moved = `moved it to ${aside}`;
    } catch (err) {
      moved = `could not move it aside (${(err as Error).message})`;
    }
    return {
      state: null,
      recovered: `TRAFFIC STATE DAMAGED: ${this.#statePath} is unusable (${parsed.message}); ${moved}; starting from the configured weights`,
    };
  }

  /**
   * Saves durably: write a temp file in the same directory, fsync it, rename
   * it over the state file (atomic), fsync the directory. A crash at any
   * point leaves either the old or the new state, never a mix.
   */
  save(state: TrafficState): void {
    this.#ensureDir();
    const fs = this.#fs;
    const tmp = join(this.#dir, `${TEMP_PREFIX}${process.pid}`);
    const fd = fs.openSync(tmp, 'w', 0o644);
    try {
      try {
        writeAll(fs, fd, Buffer.from(serializeTrafficState(state), 'utf8'));
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, this.#statePath);
    } catch (err) {
      unlinkQuiet(fs, tmp);
      throw err;
    }
    fsyncDir(fs, this.#dir);
  }

  /**
   * Records one change: appends `event` to the audit log (fsynced), then saves
   * `state`. Throws StateWriteError when either fails; after an audit entry
   * was written but the state was not, a `failed` entry naming it is
   * appended (best effort: the disk may be full). Returns the audit event.
   */
  commit(state: TrafficState, event: AuditEventInput): AuditEvent {
    let written: AuditEvent;
    const refused = this.#guard();
    if (refused !== null) throw new StateWriteError('audit', null, new Error(refused));
    try {
      written = this.appendAudit(event);
    } catch (err) {
      throw new StateWriteError('audit', null, err);
    }
    try {
      this.save(state);
    } catch (err) {
      const failure = new StateWriteError('state', written.id, err);
      try {
        this.appendAudit({
          at: event.at,
          actor: event.actor,
          app: event.app,
          action: event.action,
          from: event.from,
          to: null,
          reason: `not applied: event #${written.id} was recorded but ${failure.message}; traffic unchanged`,
          result: 'failed',
          ...(event.version !== undefined ? { version: event.version } : {}),
        });
      } catch {
        // The disk refuses this too; the next start reconciles (TrafficController.start).
      }
      throw failure;
    }
    return written;
  }

  /** Appends one event (numbered here: ids continue across restarts) and fsyncs it. */
  appendAudit(input: AuditEventInput): AuditEvent {
    this.#ensureDir();
    const fs = this.#fs;
    const id = this.#nextId();
    const event: AuditEvent = {
      id,
      at: input.at,
      actor: input.actor,
      app: input.app,
      action: input.action,
      from: input.from,
      to: input.to,
      reason: input.reason,
      result: input.result,
      ...(input.version !== undefined ? { version: input.version } : {}),
    };
    const fd = fs.openSync(this.#auditPath, 'a+', 0o644);
    let size = -1;
    try {
      // A torn last line (crash mid-append) must not swallow this one.
      size = fs.fstatSync(fd).size;
      const needsNewline = size > 0 && lastByte(fs, fd, size) !== 0x0a;
      writeAll(fs, fd, Buffer.from(`${needsNewline ? '\n' : ''}${JSON.stringify(event)}\n`, 'utf8'));
      fs.fsyncSync(fd);
    } catch (err) {
      // A short write (disk full) must not leave a line that parses later as a change that happened.
      if (size >= 0) {
        try {
          fs.ftruncateSync(fd, size);
        } catch {
          // Nothing more to do; a torn line is skipped by readers.
        }
      }
      throw err;
    } finally {
      fs.closeSync(fd);
    }
    this.#nextAuditId = id + 1;
    return event;
  }

  /**
   * The newest audit event that records a state version (an applied or
   * attempted change), looking back at most `maxLines` lines; null if none.
   */
  lastVersionedEvent(maxLines = 1000): AuditEvent | null {
    let n = 0;
    for (const line of linesBackward(this.#fs, this.#auditPath)) {
      if (++n > maxLines) break;
      const event = parseAuditEvent(line);
      if (event !== null && event.version !== undefined) return event;
    }
    return null;
  }

  /** The newest `limit` events, newest first. Reads only the file's tail. */
  readAudit(limit: number): AuditEvent[] {
    const out: AuditEvent[] = [];
    if (limit <= 0) return out;
    for (const line of linesBackward(this.#fs, this.#auditPath)) {
      const event = parseAuditEvent(line);
      if (event === null) continue;
      out.push(event);
      if (out.length >= limit) break;
    }
    return out;
  }

  #nextId(): number {
    if (this.#nextAuditId === null) {
      let last = 0;
      for (const line of linesBackward(this.#fs, this.#auditPath)) {
        const event = parseAuditEvent(line);
        if (event !== null) {
          last = event.id;
          break;
        }
      }
      this.#nextAuditId = last + 1;
    }
    return this.#nextAuditId;
  }

  #ensureDir(): void {
    if (this.#dirReady) return;
    this.#fs.mkdirSync(this.#dir, { recursive: true });
    this.#dirReady = true;
  }
}

function writeAll(fs: StateFs, fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}

function lastByte(fs: StateFs, fd: number, size: number): number {
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, size - 1);
  return b[0]!;
}

/** Makes a rename durable. Not possible on every platform (Windows): best effort. */
function fsyncDir(fs: StateFs, dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fs.fsyncSync(fd);
  } catch {
    // EISDIR / EPERM on platforms without directory fsync.
  } finally {
    fs.closeSync(fd);
  }
}

function unlinkQuiet(fs: StateFs, path: string): void {
  try {
    fs.unlinkSync(path);
  } catch {
    // Already gone.
  }
}

function errorText(err: unknown): string {
  return (err as Error)?.message ?? String(err);
}

/** Non-empty lines of a file, last first, reading 64 KiB chunks from the end. */
function* linesBackward(fs: StateFs, path: string): Generator<string> {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    let pos = fs.fstatSync(fd).size;
    let carry = Buffer.alloc(0);
    while (pos > 0) {
      const n = Math.min(TAIL_CHUNK_BYTES, pos);
      pos -= n;
      const chunk = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const r = fs.readSync(fd, chunk, got, n - got, pos + got);
        if (r === 0) break;
        got += r;
      }
      const data = carry.length === 0 ? chunk : Buffer.concat([chunk, carry]);
      let end = data.length;
      for (let i = data.length - 1; i >= 0; i--) {
        if (data[i] === 0x0a) {
          if (end > i + 1) yield data.toString('utf8', i + 1, end);
          end = i;
        }
      }
      carry = data.subarray(0, end);
    }
    if (carry.length > 0) yield carry.toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}
