// One gateway per `state_dir` (file mode). Two gateways writing one state
// file would overwrite each other's changes with the same version numbers, so
// the second one is refused at start. [adapter: node:fs]
//
//   gateway.lock   {"pid", "host", "token", "since"}; its mtime is the owner's heartbeat
//
// The owner touches the file every HEARTBEAT_MS. A lock is stale (and taken
// over) when its heartbeat is older than STALE_MS, or when its owner ran on
// this host and that process is gone (a kill -9, a crashed container that
// restarted with the same volume). A lock whose owner is alive, or on another
// host with a fresh heartbeat (a shared volume), refuses the start.
//
// The lock is created with link(2), which fails if the name exists, so two
// gateways starting together cannot both create it. Taking over a stale lock
// renames a new one over it; two take-overs racing each other are caught by
// the heartbeat, which re-reads the lock: a gateway that finds another's
// token there stops writing state (StateLock.lost) instead of diverging.
import { randomBytes } from 'node:crypto';
import * as nodeFs from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export const LOCK_FILE = 'gateway.lock';
export const HEARTBEAT_MS = 5_000;
export const STALE_MS = 3 * HEARTBEAT_MS;

interface LockContent {
  readonly pid: number;
  readonly host: string;
  readonly token: string;
  readonly since: string;
}

/** The start is refused: another gateway holds the state_dir. */
export class StateDirInUseError extends Error {
  /** Print the message alone: it is the whole story (no stack). */
  readonly expose = true;
  constructor(message: string) {
    super(message);
    this.name = 'StateDirInUseError';
  }
}

export interface StateLockOptions {
  readonly pid?: number;
  readonly host?: string;
  /** Wall-clock ms (Clock.wallNow). */
  readonly wallNow?: () => number;
  /** Whether a process of this host is alive (default: kill(pid, 0)). */
  readonly alive?: (pid: number) => boolean;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class StateLock {
  readonly path: string;
  readonly #token: string;
  readonly #wallNow: () => number;
  /** Why the lock is no longer ours (another gateway took it), or null. */
  lost: string | null = null;
  #released = false;

  private constructor(path: string, token: string, wallNow: () => number) {
    this.path = path;
    this.#token = token;
    this.#wallNow = wallNow;
  }

  /**
   * Takes the lock of `dir` (creating the directory), or throws
   * StateDirInUseError naming the holder. `takenOver` says whose stale lock
   * was replaced, for the log.
   */
  static acquire(dir: string, o: StateLockOptions = {}): { lock: StateLock; takenOver: string | null } {
    const pid = o.pid ?? process.pid;
    const host = o.host ?? hostname();
    const wallNow = o.wallNow ?? Date.now;
    const alive = o.alive ?? processAlive;
    nodeFs.mkdirSync(dir, { recursive: true });
    const path = join(dir, LOCK_FILE);
    const token = randomBytes(12).toString('hex');
    const content: LockContent = { pid, host, token, since: new Date(wallNow()).toISOString() };
    const tmp = join(dir, `${LOCK_FILE}.tmp-${pid}-${token}`);
    nodeFs.writeFileSync(tmp, `${JSON.stringify(content)}\n`, { mode: 0o644 });
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          nodeFs.linkSync(tmp, path);
          return { lock: new StateLock(path, token, wallNow), takenOver: null };
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const held = readLock(path);
        if (held === null) continue; // removed meanwhile: try to create again
        const ageMs = wallNow() - held.mtimeMs;
        const holder = `pid ${held.content?.pid ?? '?'} on host ${held.content?.host ?? '?'}`;
        const deadHere = held.content !== null && held.content.host === host && (held.content.pid === pid || !alive(held.content.pid));
        if (!deadHere && ageMs <= STALE_MS) {
          throw new StateDirInUseError(
            `state_dir ${dir} is in use by another gateway (${holder}, last heartbeat ${Math.max(0, Math.round(ageMs / 1000))} s ago): ` +
              `two gateways on one state_dir would overwrite each other's traffic state. Give each gateway its own state_dir ` +
              `(or stop the other one; a lock whose heartbeat is older than ${STALE_MS / 1000} s is taken over).`,
          );
        }
        // Stale: replace it atomically, then check that ours is the one in place.
        nodeFs.renameSync(tmp, path);
        const now = readLock(path);
        if (now?.content?.token !== token) {
          throw new StateDirInUseError(`state_dir ${dir}: another gateway took over the stale lock at the same time (${now?.content ? `pid ${now.content.pid} on host ${now.content.host}` : 'unknown'})`);
        }
        const why = deadHere ? 'its process is gone' : `no heartbeat for ${Math.round(ageMs / 1000)} s`;
        return { lock: new StateLock(path, token, wallNow), takenOver: `${holder} (${why})` };
      }
      throw new StateDirInUseError(`state_dir ${dir}: could not take the lock ${path} (it keeps changing)`);
    } finally {
      try {
        nodeFs.unlinkSync(tmp);
      } catch {
        /* linked or renamed: the name is gone or still needed by nobody */
      }
    }
  }

  /** Touches the lock (the heartbeat); sets `lost` when another gateway's lock is in its place. */
  heartbeat(): void {
    if (this.#released || this.lost !== null) return;
    const held = readLock(this.path);
    if (held?.content?.token !== this.#token) {
      this.lost = held?.content
        ? `another gateway (pid ${held.content.pid} on host ${held.content.host}) took the lock ${this.path}`
        : `the lock ${this.path} was removed`;
      return;
    }
    const t = new Date(this.#wallNow());
    try {
      nodeFs.utimesSync(this.path, t, t);
    } catch (err) {
      this.lost = `cannot touch the lock ${this.path}: ${(err as Error).message}`;
    }
  }

  /** Removes the lock if it is still ours. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    const held = readLock(this.path);
    if (held?.content?.token === this.#token) {
      try {
        nodeFs.unlinkSync(this.path);
      } catch {
        /* gone */
      }
    }
  }
}

function readLock(path: string): { content: LockContent | null; mtimeMs: number } | null {
  let text: string;
  let mtimeMs: number;
  try {
    mtimeMs = nodeFs.statSync(path).mtimeMs;
    text = nodeFs.readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const c = JSON.parse(text) as Partial<LockContent>;
    if (typeof c.pid === 'number' && typeof c.host === 'string' && typeof c.token === 'string') {
      return { content: { pid: c.pid, host: c.host, token: c.token, since: String(c.since ?? '') }, mtimeMs };
    }
  } catch {
    /* damaged: treated as a holder we know nothing about */
  }
  return { content: null, mtimeMs };
}
