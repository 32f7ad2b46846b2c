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

import {
  closeSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
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

export interface FileStateStoreOptions {
  /** Wall-clock ms for the corrupt-file suffix (Clock.wallNow). Default Date.now. */
  readonly wallNow?: () => number;
}

export class FileStateStore {
  readonly #dir: string;
  readonly #statePath: string;
  readonly #auditPath: string;
  readonly #wallNow: () => number;
  #dirReady = false;
  /** Next audit id; null until the audit file's tail has been read. */
  #nextAuditId: number | null = null;

  constructor(stateDir: string, options: FileStateStoreOptions = {}) {
    this.#dir = stateDir;
    this.#statePath = join(stateDir, STATE_FILE);
    this.#auditPath = join(stateDir, AUDIT_FILE);
    this.#wallNow = options.wallNow ?? Date.now;
  }

  get dir(): string {
    return this.#dir;
  }

  /**
   * Reads the saved state. Leftover temp files (a crash between write and
   * rename) are deleted: the state file they would have replaced is intact.
   * A damaged state file is moved to `traffic-state.json.corrupt-<time>`.
   * Throws only when the directory itself cannot be read.
   */
  load(): StateLoadResult {
    this.#ensureDir();
    for (const name of readdirSync(this.#dir)) {
      if (name.startsWith(TEMP_PREFIX)) unlinkQuiet(join(this.#dir, name));
    }
    let text: string;
    try {
      text = readFileSync(this.#statePath, 'utf8');
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
      renameSync(this.#statePath, aside);
      fsyncDir(this.#dir);
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
    const tmp = join(this.#dir, `${TEMP_PREFIX}${process.pid}`);
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeAll(fd, Buffer.from(serializeTrafficState(state), 'utf8'));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.#statePath);
    fsyncDir(this.#dir);
  }

  /** Appends one event (numbered here: ids continue across restarts) and fsyncs it. */
  appendAudit(input: AuditEventInput): AuditEvent {
    this.#ensureDir();
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
    };
    const fd = openSync(this.#auditPath, 'a+', 0o644);
    try {
      // A torn last line (crash mid-append) must not swallow this one.
      const size = fstatSync(fd).size;
      const needsNewline = size > 0 && lastByte(fd, size) !== 0x0a;
      writeAll(fd, Buffer.from(`${needsNewline ? '\n' : ''}${JSON.stringify(event)}\n`, 'utf8'));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.#nextAuditId = id + 1;
    return event;
  }

  /** The newest `limit` events, newest first. Reads only the file's tail. */
  readAudit(limit: number): AuditEvent[] {
    const out: AuditEvent[] = [];
    if (limit <= 0) return out;
    for (const line of linesBackward(this.#auditPath)) {
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
      for (const line of linesBackward(this.#auditPath)) {
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
    mkdirSync(this.#dir, { recursive: true });
    this.#dirReady = true;
  }
}

function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

function lastByte(fd: number, size: number): number {
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, size - 1);
  return b[0]!;
}

/** Makes a rename durable. Not possible on every platform (Windows): best effort. */
function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // EISDIR / EPERM on platforms without directory fsync.
  } finally {
    closeSync(fd);
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

/** Non-empty lines of a file, last first, reading 64 KiB chunks from the end. */
function* linesBackward(path: string): Generator<string> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    let pos = fstatSync(fd).size;
    let carry = Buffer.alloc(0);
    while (pos > 0) {
      const n = Math.min(TAIL_CHUNK_BYTES, pos);
      pos -= n;
      const chunk = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const r = readSync(fd, chunk, got, n - got, pos + got);
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
    closeSync(fd);
  }
}
