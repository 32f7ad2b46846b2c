import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeFs from 'node:fs';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUDIT_FILE, FileStateStore, STATE_FILE, StateWriteError } from './state-store.ts';
import type { StateFs } from './state-store.ts';
import { applyRolloutTransition, applyWeights, emptyTrafficState } from './traffic-state.ts';
import type { AuditEvent, AuditEventInput, TrafficState } from './traffic-state.ts';
import { startRollout } from './rollout.ts';

const WALL = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'serve-gateway-state-'));
  dirs.push(d);
  return d;
}

function sampleState(): TrafficState {
  const base = applyWeights(emptyTrafficState(), 'llm-app', { blue: 100, green: 0 });
  const r = startRollout(
    'llm-app',
    { blue: 100, green: 0 },
    'green',
    { steps: [5, 25, 50, 100], intervalMs: 30_000, maxErrorRate: 0.02, maxP99LatencyMs: 5000, maxTtfbP99Ms: null, minRequests: 50, onFailure: 'rollback' },
    WALL,
  );
  assert.ok(r.ok);
  return applyRolloutTransition(base, r);
}

function audit(n: number): AuditEventInput {
  return {
    at: new Date(WALL + n).toISOString(),
    actor: 'admin',
    app: 'llm-app',
    action: 'set_weights',
    from: { blue: 100, green: 0 },
    to: { blue: 100 - n, green: n },
    reason: `change ${n}`,
    result: 'ok',
  };
}

describe('FileStateStore state', () => {
  it('first start: no state, nothing recovered; the directory is created', () => {
    const dir = join(tempDir(), 'nested', 'var');
    const store = new FileStateStore(dir);
    assert.deepEqual(store.load(), { state: null, recovered: null });
    assert.ok(existsSync(dir));
  });

  it('round-trips through a new store (restart)', () => {
    const dir = tempDir();
    const s = sampleState();
    new FileStateStore(dir).save(s);
    const loaded = new FileStateStore(dir).load();
    assert.equal(loaded.recovered, null);
    assert.deepEqual(loaded.state, s);
    // Only the state file is left: the temp file was renamed.
    assert.deepEqual(readdirSync(dir), [STATE_FILE]);
  });

  it('overwrites on each save', () => {
    const dir = tempDir();
    const store = new FileStateStore(dir);
    store.save(sampleState());
    const next = applyWeights(sampleState(), 'llm-app', { blue: 0, green: 100 });
    store.save(next);
    assert.deepEqual(store.load().state, next);
  });

  for (const [name, content] of [
    ['bad JSON', '{"format": 1, "version": 3, "apps": {'],
    ['empty file', ''],
    ['fails validation', JSON.stringify({ format: 1, version: 1, apps: { a: { weights: { blue: 50 }, rollout: null } } })],
  ] as const) {
    it(`a damaged state file (${name}) is moved aside with a loud message`, () => {
      const dir = tempDir();
      writeFileSync(join(dir, STATE_FILE), content);
      const store = new FileStateStore(dir, { wallNow: () => WALL });
      const r = store.load();
      assert.equal(r.state, null);
      assert.ok(r.recovered !== null);
      assert.match(r.recovered, /^TRAFFIC STATE DAMAGED: .*traffic-state\.json is unusable \(.+\); moved it to .*corrupt-2024-01-02T03-04-05-678Z; starting from the configured weights$/);
      const aside = `${STATE_FILE}.corrupt-2024-01-02T03-04-05-678Z`;
      assert.deepEqual(readdirSync(dir), [aside]);
      assert.equal(readFileSync(join(dir, aside), 'utf8'), content);
      // The next start is a clean first start; saving works again.
      assert.deepEqual(store.load(), { state: null, recovered: null });
      store.save(sampleState());
      assert.deepEqual(store.load().state, sampleState());
    });
  }

  it('a crash between temp write and rename leaves the old state intact', () => {
    const dir = tempDir();
    const old = sampleState();
    new FileStateStore(dir).save(old);
    // The crashed process wrote (part of) its temp file and died before rename.
    writeFileSync(join(dir, `${STATE_FILE}.tmp-99999`), '{"format": 1, "version": 99, "apps": {"llm-app": {"wei');
    const r = new FileStateStore(dir).load();
    assert.equal(r.recovered, null);
    assert.deepEqual(r.state, old);
    assert.deepEqual(readdirSync(dir), [STATE_FILE], 'stray temp file cleaned up');
  });
});

describe('FileStateStore audit', () => {
  it('numbers events, reads newest first, honours limit', () => {
    const store = new FileStateStore(tempDir());
    assert.deepEqual(store.readAudit(10), []);
    for (let i = 1; i <= 5; i++) assert.equal(store.appendAudit(audit(i)).id, i);
    const got = store.readAudit(3);
    assert.deepEqual(got.map((e) => e.id), [5, 4, 3]);
    assert.deepEqual(got[0], { id: 5, ...audit(5) });
    assert.deepEqual(store.readAudit(100).map((e) => e.id), [5, 4, 3, 2, 1]);
    assert.deepEqual(store.readAudit(0), []);
  });

  it('ids continue after re-open, and a torn last line is skipped, not glued to', () => {
    const dir = tempDir();
    const a = new FileStateStore(dir);
    a.appendAudit(audit(1));
    a.appendAudit(audit(2));
    appendFileSync(join(dir, AUDIT_FILE), '{"id": 3, "at": "2024-'); // crash mid-append
    const b = new FileStateStore(dir);
    assert.equal(b.appendAudit(audit(3)).id, 3);
    assert.equal(b.appendAudit(audit(4)).id, 4);
    assert.deepEqual(new FileStateStore(dir).readAudit(10).map((e) => e.id), [4, 3, 2, 1]);
    const lines = readFileSync(join(dir, AUDIT_FILE), 'utf8').split('\n');
    assert.equal(lines.length, 6); // 1, 2, torn, 3, 4, ''
    assert.equal(lines.at(-1), '');
  });

  it('reads the tail across chunk boundaries (many events, long reasons, non-ASCII)', () => {
    const dir = tempDir();
    const store = new FileStateStore(dir);
    for (let i = 1; i <= 400; i++) store.appendAudit({ ...audit(i % 100), reason: `ünïcode ${'x'.repeat(400)} ${i}` });
    const reopened = new FileStateStore(dir);
    const got = reopened.readAudit(300);
    assert.equal(got.length, 300);
    assert.deepEqual(got.slice(0, 3).map((e) => e.id), [400, 399, 398]);
    assert.equal(got[299]!.id, 101);
    assert.ok(got[0]!.reason.startsWith('ünïcode'));
    assert.ok(got[0]!.reason.endsWith(' 400'));
    assert.equal(reopened.appendAudit(audit(1)).id, 401);
  });
});

// ---- write order and failures (issue 7, defect 3) ---------------------------

/** node:fs with a hook before every call: the hook may throw (a failure) or record the call. */
function hookedFs(before: (op: string, path: string | null) => void): StateFs {
  const paths = new Map<number, string>();
  const pathOf = (fd: number) => paths.get(fd) ?? null;
  return {
    openSync(path, flags, mode) {
      before('open', path);
      const fd = nodeFs.openSync(path, flags, mode);
      paths.set(fd, path);
      return fd;
    },
    closeSync(fd) {
      paths.delete(fd);
      nodeFs.closeSync(fd);
    },
    writeSync(fd, buf, offset, length, position) {
      before('write', pathOf(fd));
      return nodeFs.writeSync(fd, buf, offset, length, position);
    },
    readSync: (fd, buf, offset, length, position) => nodeFs.readSync(fd, buf, offset, length, position),
    fsyncSync(fd) {
      before('fsync', pathOf(fd));
      nodeFs.fsyncSync(fd);
    },
    fstatSync: (fd) => nodeFs.fstatSync(fd),
    ftruncateSync(fd, len) {
      before('ftruncate', pathOf(fd));
      nodeFs.ftruncateSync(fd, len);
    },
    renameSync(from, to) {
      before('rename', to);
      nodeFs.renameSync(from, to);
    },
    unlinkSync(path) {
      before('unlink', path);
      nodeFs.unlinkSync(path);
    },
    mkdirSync: (path, opts) => nodeFs.mkdirSync(path, opts),
    readdirSync: (path) => nodeFs.readdirSync(path),
    readFileSync: (path, enc) => nodeFs.readFileSync(path, enc),
  };
}

function change(state: TrafficState, green: number): { next: TrafficState; event: AuditEventInput } {
  const next = applyWeights(state, 'llm-app', { blue: 100 - green, green });
  return {
    next,
    event: { ...audit(green), from: state.apps['llm-app']?.weights ?? null, to: next.apps['llm-app']!.weights, version: next.version },
  };
}

/** Every state version on disk has an ok audit entry with that version and the same weights. */
function assertStateCovered(dir: string): { state: TrafficState | null; events: AuditEvent[] } {
  const store = new FileStateStore(dir);
  const { state, recovered } = store.load();
  assert.equal(recovered, null);
  const events = store.readAudit(1000);
  if (state !== null) {
    const ev = events.find((e) => e.result === 'ok' && e.version === state.version);
    assert.ok(ev, `state version ${state.version} has no audit entry (audit: ${events.map((e) => `${e.id}:${e.result}:v${e.version}`).join(' ')})`);
    assert.deepEqual(ev.to, state.apps['llm-app']!.weights);
  }
  return { state, events };
}

describe('FileStateStore commit', () => {
  it('writes the audit entry (fsynced) before the state file is replaced', () => {
    const dir = tempDir();
    const ops: string[] = [];
    const store = new FileStateStore(dir, {
      fs: hookedFs((op, path) => {
        if (path !== null && op !== 'open') ops.push(`${op} ${path.slice(dir.length + 1).replace(/\.tmp-\d+$/, '.tmp')}`);
      }),
    });
    const { next, event } = change(emptyTrafficState(), 10);
    const written = store.commit(next, event);
    assert.equal(written.version, next.version);
    const auditDone = ops.indexOf(`fsync ${AUDIT_FILE}`);
    const stateRename = ops.indexOf(`rename ${STATE_FILE}`);
    assert.ok(auditDone !== -1 && stateRename !== -1, ops.join(', '));
    assert.ok(auditDone < ops.indexOf(`write ${STATE_FILE}.tmp`), `audit fsynced before the state is written: ${ops.join(', ')}`);
    assert.ok(auditDone < stateRename);
    assertStateCovered(dir);
  });

  it('a crash (kill -9) at any filesystem call of a commit never leaves a state the audit log lacks', () => {
    // Count the mutating calls of one commit, then "crash" at each of them in turn: from that
    // call on every call fails, as if the process were gone (no cleanup runs).
    const probeDir = tempDir();
    const base = change(emptyTrafficState(), 10);
    new FileStateStore(probeDir).commit(base.next, base.event);
    let calls = 0;
    const second = change(base.next, 20);
    new FileStateStore(probeDir, { fs: hookedFs(() => void calls++) }).commit(second.next, second.event);
    assert.ok(calls >= 6, `a commit makes several calls (${calls})`);

    for (let crashAt = 0; crashAt < calls; crashAt++) {
      const dir = tempDir();
      new FileStateStore(dir).commit(base.next, base.event);
      let n = 0;
      const crashing = new FileStateStore(dir, {
        fs: hookedFs(() => {
          if (n++ >= crashAt) throw Object.assign(new Error('process killed'), { code: 'EKILLED' });
        }),
      });
      try {
        crashing.commit(second.next, second.event);
      } catch {
        // Expected unless the crash came after the rename (the directory fsync is best effort).
      }
      const { state, events } = assertStateCovered(dir);
      assert.ok(state !== null);
      assert.ok(state.version === base.next.version || state.version === second.next.version, `crash at call ${crashAt}`);
      assert.ok(events.length <= 2);
    }
  });

  it('audit write fails: nothing is written, the old state stays, no torn entry', () => {
    const dir = tempDir();
    const base = change(emptyTrafficState(), 10);
    new FileStateStore(dir).commit(base.next, base.event);
    const before = readFileSync(join(dir, AUDIT_FILE), 'utf8');
    // Disk full in the middle of the audit line: the partial line is cut off again.
    let writes = 0;
    const store = new FileStateStore(dir, {
      fs: {
        ...hookedFs(() => {}),
        writeSync(fd, buf, offset, length, position) {
          if (++writes > 1) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return nodeFs.writeSync(fd, buf, offset, Math.min(length, 20), position); // a short write first
        },
      },
    });
    const next = change(base.next, 20);
    const err = assert.throws(() => store.commit(next.next, next.event), (e: unknown) => e instanceof StateWriteError && e.phase === 'audit');
    void err;
    assert.equal(readFileSync(join(dir, AUDIT_FILE), 'utf8'), before, 'the audit log is as it was');
    assert.deepEqual(new FileStateStore(dir).load().state, base.next);
    assert.deepEqual(readdirSync(dir).sort(), [AUDIT_FILE, STATE_FILE]);
  });

  it('state write fails after the audit entry: a failed entry names it, the old state stays', () => {
    const dir = tempDir();
    const base = change(emptyTrafficState(), 10);
    new FileStateStore(dir).commit(base.next, base.event);
    const store = new FileStateStore(dir, {
      fs: hookedFs((op, path) => {
        if (op === 'rename' && path?.endsWith(STATE_FILE)) throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });
      }),
    });
    const next = change(base.next, 20);
    assert.throws(
      () => store.commit(next.next, next.event),
      (e: unknown) => e instanceof StateWriteError && e.phase === 'state' && e.auditId === 2 && /EIO/.test(e.message),
    );
    const { state, events } = assertStateCovered(dir);
    assert.deepEqual(state, base.next);
    assert.deepEqual(events.map((e) => [e.id, e.result]), [[3, 'failed'], [2, 'ok'], [1, 'ok']]);
    assert.match(events[0]!.reason, /^not applied: event #2 was recorded but cannot write the state file: EIO/);
    assert.equal(events[0]!.version, next.next.version, 'the failed entry names the version it annuls');
    assert.deepEqual(readdirSync(dir).sort(), [AUDIT_FILE, STATE_FILE], 'the temp file is removed');
    assert.equal(store.lastVersionedEvent()?.id, 3, 'the failed entry: a restart does not mark #2 again');
  });
});
