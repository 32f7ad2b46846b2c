// Gateway replicas that know of each other (kubernetes mode with
// `kubernetes.leader_lease`), through coordination.k8s.io/v1 Leases:
//
//   <leader_lease>                  holder = the replica that drives rollouts (the leader)
//   <leader_lease>-member-<replica> one per replica, renewed as its heartbeat; label
//                                   serve-gateway.ray.io/group=<leader_lease>; annotation
//                                   serve-gateway.ray.io/step-stats = its rollout-step measurements
//
// Every `renewMs` (a third of the lease duration), and right after another
// replica's Lease would expire, a replica renews its member Lease, then renews
// (leader) or checks (others) the leader Lease, taking it over when the
// holder's renewal is older than the lease duration, then lists the members. A member is live while its last renewal is younger than its
// lease duration; the live count divides each app's capacity (admission).
// Writes name the resourceVersion they read, so two replicas taking over an
// expired lease at once cannot both win.
//
// A leader stops leading as soon as it has not renewed for two thirds of the
// duration (it may have lost the API server), before anyone can take over:
// at no moment do two replicas drive rollouts. On shutdown a replica deletes
// its member Lease and gives up the leader Lease, so the others act at once.
import type { Clock, TimerHandle } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import type { LeaseApi, LeaseRecord } from './coordination.ts';

export const GROUP_LABEL = 'serve-gateway.ray.io/group';
export const STEP_STATS_ANNOTATION = 'serve-gateway.ray.io/step-stats';
/** A round planned for a lease's expiry runs this long after it. */
const EXPIRY_SLACK_MS = 20;

export interface ReplicasOptions {
  /** This replica's name (its pod name). */
  readonly identity: string;
  readonly leaderLease: string;
  readonly durationMs: number;
  readonly clock: Clock;
  readonly leases: LeaseApi;
  readonly log: Logger;
  /** Annotations this replica publishes on its member Lease at each renewal. */
  readonly publish?: () => Record<string, string>;
}

export interface ReplicasStatus {
  readonly identity: string;
  readonly leader: string | null;
  readonly isLeader: boolean;
  /** Live replicas (this one included), by name. */
  readonly live: readonly string[];
  /** Wall ms of the last successful round with the API server, or null. */
  readonly lastSyncMs: number | null;
  readonly lastError: string | null;
}

/** A Lease name: DNS-1123 (lowercase alphanumerics and '-'), at most 253 characters. */
export function memberLeaseName(leaderLease: string, identity: string): string {
  const id = identity.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'replica';
  return `${leaderLease}-member-${id}`.slice(0, 253).replace(/-+$/, '');
}

export class Replicas {
  readonly #o: ReplicasOptions;
  readonly #memberName: string;
  #members: LeaseRecord[] = [];
  /** The leader Lease as last read. */
  #leaderRecord: LeaseRecord | null = null;
  #leader: string | null = null;
  /** Local clock (monotonic ms) of this replica's last successful leader renewal, or null. */
  #leadingSince: number | null = null;
  #lastRenewOk: number | null = null;
  #lastSyncMs: number | null = null;
  #lastError: string | null = null;
  #timer: TimerHandle | null = null;
  #running = false;
  #round: Promise<void> = Promise.resolve();
  /** What onChange was last called for. */
  #reported: { leader: string | null; isLeader: boolean; live: number } = { leader: null, isLeader: false, live: 1 };
  /** Called when the leader or the live count changes. */
  onChange: () => void = () => {};

  constructor(o: ReplicasOptions) {
    this.#o = o;
    this.#memberName = memberLeaseName(o.leaderLease, o.identity);
  }

  get identity(): string {
    return this.#o.identity;
  }

  get renewMs(): number {
    return Math.max(100, Math.floor(this.#o.durationMs / 3));
  }

  /** This replica leads now: it holds the Lease and renewed it within two thirds of the duration. */
  isLeader(): boolean {
    if (this.#leadingSince === null || this.#lastRenewOk === null) return false;
    return this.#o.clock.now() - this.#lastRenewOk < (this.#o.durationMs * 2) / 3;
  }

  /** Live members now (this one always counts: it is running). */
  live(): LeaseRecord[] {
    const now = this.#o.clock.wallNow();
    return this.#members.filter((m) => m.name === this.#memberName || (m.renewedAtMs !== null && m.renewedAtMs + m.durationS * 1000 > now));
  }

  liveCount(): number {
    const live = this.live();
    return Math.max(1, live.length + (live.some((m) => m.name === this.#memberName) ? 0 : 1));
  }

  status(): ReplicasStatus {
    const live = this.live().map((m) => m.annotations['serve-gateway.ray.io/replica'] ?? m.name);
    if (!this.live().some((m) => m.name === this.#memberName)) live.push(this.#o.identity);
    return { identity: this.#o.identity, leader: this.#leader, isLeader: this.isLeader(), live: live.sort(), lastSyncMs: this.#lastSyncMs, lastError: this.#lastError };
  }

  /** The other live members' published annotations (for merging their measurements). */
  othersAnnotations(): Array<Readonly<Record<string, string>>> {
    return this.live()
      .filter((m) => m.name !== this.#memberName)
      .map((m) => m.annotations);
  }

  /** Runs the first round (so the caller knows the leader and members), then every renewMs. */
  async start(): Promise<void> {
    this.#running = true;
    await this.sync();
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== null) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = null;
    await this.#round;
    const { leases } = this.#o;
    try {
      await leases.delete(this.#memberName);
      if (this.#leadingSince !== null) {
        const l = await leases.get(this.#o.leaderLease);
        if (l !== null && l.holder === this.#o.identity) {
          const now = this.#o.clock.wallNow();
          // Handed over at once: an empty holder is free for anyone.
          await leases.replace({ name: this.#o.leaderLease, holder: '', durationS: 1, renewedAtMs: now, acquiredAtMs: now, transitions: l.transitions }, l.resourceVersion);
        }
      }
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message }, 'could not give up the gateway Leases at shutdown; they expire by themselves');
    }
    this.#leadingSince = null;
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = this.#o.clock.setTimeout(() => {
      this.#timer = null;
      void this.sync().finally(() => this.#schedule());
    }, this.#nextRoundMs());
    this.#timer.unref?.();
  }

  /**
   * The next round: a renewal period from now, or sooner, just after the
   * leader's Lease or another member's would expire (a follower takes over,
   * and the live count shrinks, as soon as a lease duration has passed).
   */
  #nextRoundMs(): number {
    const wall = this.#o.clock.wallNow();
    let d = this.renewMs;
    const soon = (renewedAtMs: number | null, durationS: number): void => {
      if (renewedAtMs === null) return;
      const left = renewedAtMs + durationS * 1000 - wall + EXPIRY_SLACK_MS;
      if (left > 0) d = Math.min(d, left);
    };
    const l = this.#leaderRecord;
    if (l !== null && l.holder !== null && l.holder !== '' && l.holder !== this.#o.identity) soon(l.renewedAtMs, l.durationS);
    for (const m of this.#members) if (m.name !== this.#memberName) soon(m.renewedAtMs, m.durationS);
    return Math.max(EXPIRY_SLACK_MS, d);
  }

  /** One round now: renew this replica's Lease, renew or check the leader's, list the members. Never throws. */
  sync(): Promise<void> {
    // One round at a time: a round reads resourceVersions that the next one writes over.
    this.#round = this.#round.then(() => this.#roundOnce()).catch((err: unknown) => {
      const msg = (err as Error).message ?? String(err);
      if (this.#lastError !== msg) this.#o.log.warn({ err: msg }, 'gateway replica Leases: API call failed; retrying');
      this.#lastError = msg;
    });
    return this.#round;
  }

  async #roundOnce(): Promise<void> {
    const { leases, clock, identity, leaderLease, durationMs } = this.#o;
    const durationS = Math.max(1, Math.ceil(durationMs / 1000));
    const now = clock.wallNow();
    const annotations = { 'serve-gateway.ray.io/replica': identity, ...(this.#o.publish?.() ?? {}) };

    // 1. The heartbeat.
    const mine = await leases.get(this.#memberName);
    const member = { name: this.#memberName, holder: identity, durationS, renewedAtMs: now, acquiredAtMs: now, transitions: 0, labels: { [GROUP_LABEL]: leaderLease }, annotations };
    if (mine === null) await leases.create(member);
    else await leases.replace({ ...member, acquiredAtMs: mine.renewedAtMs ?? now }, mine.resourceVersion);

    // 2. The leader.
    const t0 = clock.now();
    const l = await leases.get(leaderLease);
    const write = { name: leaderLease, holder: identity, durationS, renewedAtMs: now, acquiredAtMs: now };
    let leading = false;
    if (l === null) {
      leading = await leases.create({ ...write, transitions: 0 });
    } else if (l.holder === identity) {
      leading = await leases.replace({ ...write, transitions: l.transitions }, l.resourceVersion);
    } else {
      const vacant = l.holder === null || l.holder === '';
      const expired = l.renewedAtMs === null || l.renewedAtMs + l.durationS * 1000 <= now;
      if (vacant || expired) {
        leading = await leases.replace({ ...write, transitions: l.transitions + 1 }, l.resourceVersion);
        if (leading) this.#o.log.info({ previous: l.holder, lease: leaderLease }, vacant ? 'took the free leader Lease' : 'took over the leader Lease (its holder stopped renewing)');
      }
    }
    if (leading) {
      this.#lastRenewOk = t0;
      this.#leadingSince ??= t0;
      this.#leader = identity;
    } else {
      this.#leadingSince = null;
    }
    this.#leaderRecord = await leases.get(leaderLease);
    this.#leader = leading ? identity : this.#leaderRecord?.holder || null;

    // 3. The members.
    this.#members = await leases.list(`${GROUP_LABEL}=${leaderLease}`);
    this.#lastSyncMs = now;
    this.#lastError = null;
    // Compared with what was last reported: a member's Lease also expires between rounds.
    const before = this.#reported;
    const after = { leader: this.#leader, isLeader: this.isLeader(), live: this.liveCount() };
    this.#reported = after;
    if (after.isLeader !== before.isLeader) this.#o.log.info({ leader: after.leader, identity }, after.isLeader ? 'this replica leads (drives rollouts)' : 'this replica no longer leads');
    if (after.leader !== before.leader || after.isLeader !== before.isLeader || after.live !== before.live) this.onChange();
  }
}
