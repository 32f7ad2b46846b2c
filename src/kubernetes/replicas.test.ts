import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import type { LeaseApi, LeaseRecord, LeaseWrite } from './coordination.ts';
import { GROUP_LABEL, Replicas, memberLeaseName } from './replicas.ts';

/** Leases in memory with resourceVersions, as the API server keeps them. */
class MemLeases implements LeaseApi {
  readonly byName = new Map<string, LeaseRecord>();
  #rv = 0;
  #put(l: LeaseWrite): void {
    this.byName.set(l.name, { name: l.name, holder: l.holder, renewedAtMs: l.renewedAtMs, durationS: l.durationS, transitions: l.transitions, annotations: { ...(l.annotations ?? {}) }, labels: { ...(l.labels ?? {}) }, resourceVersion: String(++this.#rv) });
  }
  async get(name: string) {
    return this.byName.get(name) ?? null;
  }
  async create(l: LeaseWrite) {
    if (this.byName.has(l.name)) return false;
    this.#put(l);
    return true;
  }
  async replace(l: LeaseWrite, rv: string) {
    if (this.byName.get(l.name)?.resourceVersion !== rv) return false;
    this.#put(l);
    return true;
  }
  async list(sel: string) {
    const [k, v] = sel.split('=') as [string, string];
    return [...this.byName.values()].filter((l) => l.labels[k] === v);
  }
  async delete(name: string) {
    this.byName.delete(name);
  }
}

const quiet: Logger = { info() {}, warn() {}, error() {}, debug() {}, child: () => quiet } as unknown as Logger;
const WALL = 1_800_000_000_000;

describe('Replicas: one leader, live members, through Leases', () => {
  it('the first replica leads; the others follow and count each other; a crashed leader is replaced after the lease duration, never before', async () => {
    const leases = new MemLeases();
    const [clockA, clockB] = [new ManualClock(0, WALL), new ManualClock(0, WALL)];
    const make = (identity: string, clock: ManualClock) => new Replicas({ identity, leaderLease: 'gw-leader', durationMs: 3000, clock, leases, log: quiet, publish: () => ({ 'x/stats': identity }) });
    const a = make('gw-a', clockA);
    const b = make('gw-b', clockB);
    let bChanges = 0;
    b.onChange = () => bChanges++;
    await a.start();
    await b.start();
    await a.sync();
    assert.equal(a.isLeader(), true);
    assert.equal(b.isLeader(), false);
    assert.equal(b.status().leader, 'gw-a');
    assert.deepEqual([a.liveCount(), b.liveCount()], [2, 2]);
    assert.deepEqual(b.othersAnnotations().map((x) => x['x/stats']), ['gw-a']);
    assert.equal(leases.byName.get(memberLeaseName('gw-leader', 'gw-b'))?.labels[GROUP_LABEL], 'gw-leader');

    // gw-a stops (its clock, and so its renewals, stop): not taken over before the duration...
    clockB.advance(2000);
    await b.sync();
    assert.equal(b.isLeader(), false, 'the lease is 2 s old: still gw-a\'s');
    // ...and taken over after it; gw-a's member Lease no longer counts.
    clockB.advance(1500);
    await b.sync();
    assert.equal(b.isLeader(), true, JSON.stringify([b.status(), leases.byName.get('gw-leader')]));
    assert.equal(leases.byName.get('gw-leader')?.transitions, 1);
    assert.equal(b.liveCount(), 1);
    assert.ok(bChanges >= 2, 'told about the new leader and the live count');
    // gw-a's view of itself: it has not renewed for two thirds of the duration, so it no longer leads.
    clockA.advance(2001);
    assert.equal(a.isLeader(), false);
    a.onChange = () => {};
  });

  it('a replica that stops gives the leader Lease up at once and leaves the count', async () => {
    const leases = new MemLeases();
    const clock = new ManualClock(0, WALL);
    const a = new Replicas({ identity: 'gw-a', leaderLease: 'l', durationMs: 15_000, clock, leases, log: quiet });
    const c = new Replicas({ identity: 'gw-c', leaderLease: 'l', durationMs: 15_000, clock, leases, log: quiet });
    await a.start();
    await c.start();
    assert.equal(a.isLeader(), true);
    await a.stop();
    await c.sync();
    assert.equal(c.isLeader(), true, 'no need to wait 15 s');
    assert.equal(c.liveCount(), 1);
    await c.stop();
    assert.equal(leases.byName.size, 1, 'only the (free) leader Lease is left');
  });

  it('member Lease names are DNS-1123', () => {
    assert.equal(memberLeaseName('gw-leader', 'Pod_Name.0'), 'gw-leader-member-pod-name-0');
    assert.equal(memberLeaseName('gw', '___'), 'gw-member-replica');
  });
});
