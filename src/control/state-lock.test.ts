import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCK_FILE, STALE_MS, StateDirInUseError, StateLock } from './state-lock.ts';

describe('StateLock: one gateway per state_dir', () => {
  const dirs: string[] = [];
  const fresh = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'sg-lock-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const age = (dir: string, ms: number): void => {
    const t = new Date(Date.now() - ms);
    utimesSync(join(dir, LOCK_FILE), t, t);
  };

  test('the first gateway takes the lock; a second one while the first is alive is refused, naming it', () => {
    const dir = fresh();
    const a = StateLock.acquire(dir, { pid: 1001, host: 'node-a', alive: () => true });
    assert.equal(a.takenOver, null);
    assert.equal(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid, 1001);
    assert.throws(
      () => StateLock.acquire(dir, { pid: 1002, host: 'node-a', alive: () => true }),
      (err: Error) => err instanceof StateDirInUseError && /in use by another gateway \(pid 1001 on host node-a, last heartbeat \d+ s ago\)/.test(err.message),
    );
    // Another host (a shared volume) with a fresh heartbeat: refused too.
    assert.throws(() => StateLock.acquire(dir, { pid: 1001, host: 'node-b' }), StateDirInUseError);
    a.lock.release();
    assert.equal(existsSync(join(dir, LOCK_FILE)), false);
    assert.equal(StateLock.acquire(dir, { pid: 1002, host: 'node-a' }).takenOver, null, 'free again after release');
  });

  test('a lock whose owner process is gone (same host) is taken over at once', () => {
    const dir = fresh();
    StateLock.acquire(dir, { pid: 2001, host: 'node-a' });
    const b = StateLock.acquire(dir, { pid: 2002, host: 'node-a', alive: (pid) => pid !== 2001 });
    assert.match(b.takenOver ?? '', /pid 2001 on host node-a \(its process is gone\)/);
    // The same pid again (a container restarted as PID 1 with the same volume) is ours.
    const c = StateLock.acquire(dir, { pid: 2002, host: 'node-a', alive: () => true });
    assert.notEqual(c.takenOver, null);
  });

  test('a lock from another host is taken over only once its heartbeat is stale', () => {
    const dir = fresh();
    StateLock.acquire(dir, { pid: 3001, host: 'node-a' });
    age(dir, STALE_MS - 2_000);
    assert.throws(() => StateLock.acquire(dir, { pid: 3002, host: 'node-b' }), StateDirInUseError);
    age(dir, STALE_MS + 2_000);
    const b = StateLock.acquire(dir, { pid: 3002, host: 'node-b' });
    assert.match(b.takenOver ?? '', /pid 3001 on host node-a \(no heartbeat for \d+ s\)/);
  });

  test('a damaged lock file counts as held while fresh, and is taken over when stale', () => {
    const dir = fresh();
    writeFileSync(join(dir, LOCK_FILE), 'not json');
    assert.throws(() => StateLock.acquire(dir, { pid: 4001, host: 'node-a' }), /pid \? on host \?/);
    age(dir, STALE_MS + 1_000);
    assert.notEqual(StateLock.acquire(dir, { pid: 4001, host: 'node-a' }).takenOver, null);
  });

  test('the heartbeat keeps the lock fresh and notices when another gateway took it', () => {
    const dir = fresh();
    const a = StateLock.acquire(dir, { pid: 5001, host: 'node-a' }).lock;
    age(dir, STALE_MS + 1_000);
    a.heartbeat();
    assert.equal(a.lost, null);
    assert.throws(() => StateLock.acquire(dir, { pid: 5002, host: 'node-b' }), StateDirInUseError, 'the heartbeat made it fresh again');
    age(dir, STALE_MS + 1_000);
    const b = StateLock.acquire(dir, { pid: 5002, host: 'node-b' }).lock;
    a.heartbeat();
    assert.match(a.lost ?? '', /another gateway \(pid 5002 on host node-b\) took the lock/);
    a.release(); // not ours any more: left alone
    assert.equal(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid, 5002);
    b.heartbeat();
    assert.equal(b.lost, null);
  });
});
