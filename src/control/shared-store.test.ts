import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SharedDocConflict } from '../core/shared-doc.ts';
import type { SharedDoc } from '../core/shared-doc.ts';
import { AUDIT_KEY, STATE_KEY, SharedStateStore } from './shared-store.ts';
import { StateConflictError, StateWriteError } from './state-store.ts';
import type { AuditEventInput, TrafficState } from './traffic-state.ts';

/** A ConfigMap in memory: a version that moves on every write, writes only over the version read. */
class MemDoc implements SharedDoc {
  readonly where = 'ConfigMap test/state';
  data: Record<string, string> | null = null;
  version = 0;
  failNext: Error | null = null;
  async read() {
    return this.data === null ? null : { data: { ...this.data }, version: String(this.version) };
  }
  async write(data: Readonly<Record<string, string>>, version: string | null) {
    if (this.failNext) {
      const e = this.failNext;
      this.failNext = null;
      throw e;
    }
    if ((version === null) !== (this.data === null) || (version !== null && version !== String(this.version))) throw new SharedDocConflict(`at ${this.version}, not ${version}`);
    this.data = { ...data };
    return String(++this.version);
  }
}

const state = (version: number, green: number): TrafficState => ({ version, apps: { llm: { weights: { blue: 100 - green, green }, rollout: null } } });
const event = (version: number): AuditEventInput => ({ at: '2026-12-02T00:00:00.000Z', actor: 'test', app: 'llm', action: 'set_weights', from: null, to: null, reason: 'r', result: 'ok', version });

describe('SharedStateStore: one traffic state for every replica', () => {
  it('the first replica creates the document; the next one reads it', async () => {
    const doc = new MemDoc();
    const a = new SharedStateStore(doc);
    await a.init();
    assert.equal(a.load().state, null);
    assert.ok(doc.data?.[STATE_KEY], 'created with an empty state');
    await a.commit(state(1, 10), event(1));
    const b = new SharedStateStore(doc);
    await b.init();
    assert.deepEqual(b.load().state, state(1, 10));
    assert.equal(b.readAudit(10)[0]?.version, 1);
  });

  it('a write decided on a stale version is refused with the state now (re-read and re-apply); audit ids go on across replicas', async () => {
    const doc = new MemDoc();
    const a = new SharedStateStore(doc);
    const b = new SharedStateStore(doc);
    await a.init();
    await b.init();
    const first = await a.commit(state(1, 10), event(1));
    await assert.rejects(b.commit(state(1, 50), event(1)), (err: unknown) => err instanceof StateConflictError && err.current.version === 1 && err.current.apps['llm']?.weights['green'] === 10);
    const second = await b.commit(state(2, 50), event(2)); // decided again on the newer state
    assert.equal(second.id, first.id + 1);
    assert.deepEqual(doc.data![AUDIT_KEY]!.trim().split('\n').map((l) => JSON.parse(l).version), [1, 2]);
  });

  it('another replica\'s version is taken when newer; its own write is not news; a bad hand edit is refused and the last good state kept', async () => {
    const doc = new MemDoc();
    const a = new SharedStateStore(doc);
    const b = new SharedStateStore(doc);
    await a.init();
    await b.init();
    await a.commit(state(1, 10), event(1));
    const seen = await doc.read();
    assert.deepEqual(a.remote(seen!.data, seen!.version), { kind: 'unchanged' });
    const r = b.remote(seen!.data, seen!.version);
    assert.equal(r.kind, 'state');
    doc.data = { ...doc.data!, [STATE_KEY]: '{"format": 1, "version": "x"' };
    doc.version++;
    const bad = b.remote(doc.data, String(doc.version));
    assert.equal(bad.kind, 'invalid');
    assert.match(b.invalid ?? '', /traffic-state\.json: not JSON/);
    // The next change goes over the bad document (after a conflict that keeps the last good state).
    await assert.rejects(b.commit(state(2, 20), event(2)), (err: unknown) => err instanceof StateConflictError && err.current.version === 1);
    await b.commit(state(2, 20), event(2));
    assert.equal(b.invalid, null);
    assert.match(doc.data![STATE_KEY]!, /"version": 2/);
  });

  it('a failed write is a StateWriteError (nothing written); entries without a change are written in the background', async () => {
    const doc = new MemDoc();
    const a = new SharedStateStore(doc);
    await a.init();
    doc.failNext = new Error('connection refused');
    await assert.rejects(a.commit(state(1, 10), event(1)), StateWriteError);
    a.appendAudit({ ...event(0), action: 'set_weights', result: 'refused', version: undefined });
    await a.settle();
    assert.match(doc.data![AUDIT_KEY]!, /"result":"refused"/);
    assert.equal(a.readAudit(5).length, 1);
  });
});
