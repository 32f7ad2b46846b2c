import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUDIT_FILE, FileStateStore, STATE_FILE } from './state-store.ts';
import { applyRolloutTransition, applyWeights, emptyTrafficState } from './traffic-state.ts';
import type { AuditEventInput, TrafficState } from './traffic-state.ts';
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
