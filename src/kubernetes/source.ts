// Kubernetes mode's config source: turns what KubeWatch sees into a KubeView,
// hands every changed view to the gateway, and keeps the last one on disk
// (`kubernetes.last_known_good`, written atomically) so that a gateway that
// starts while the API server is unreachable still routes: it waits
// `kubernetes.boot_wait` for the first lists, then boots from that file.
import { mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Clock, TimerHandle } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import type { KubernetesConfig } from '../config/types.ts';
import type { ClusterConfig } from '../config/types.ts';
import type { GwRule } from '../core/gateway-rule.ts';
import { buildView, EMPTY_VIEW, type KubeView } from './view.ts';
import { KubeWatch, loadKubeConfig, type WatchStatus } from './watch.ts';

export type ViewSource = 'api' | 'last_known_good' | 'none';

export interface KubeSourceStatus extends WatchStatus {
  readonly source: ViewSource;
  /** Wall ms the current view was saved (last_known_good) or built (api). */
  readonly viewAtMs: number | null;
}

export interface SavedView {
  readonly savedAtMs: number;
  readonly view: KubeView;
  /** Gateway API mode: the HTTPRoute rules and plain-Service backends last derived (absent otherwise). */
  readonly gateway?: SavedGateway;
}

export interface SavedGateway {
  readonly rules: readonly GwRule[];
  readonly services: readonly ClusterConfig[];
}

export class KubernetesSource {
  readonly cfg: KubernetesConfig;
  readonly watch: KubeWatch;
  readonly #clock: Clock;
  readonly #log: Logger;
  #view: KubeView = EMPTY_VIEW;
  #source: ViewSource = 'none';
  #viewAtMs: number | null = null;
  #pending: TimerHandle | null = null;
  #bootTimer: TimerHandle | null = null;
  #lkgError: string | null = null;
  /** The gateway applies a new view (and the one before it). */
  onView: (view: KubeView, prev: KubeView, source: ViewSource) => void = () => {};
  /** Any watched object changed (Gateway API mode re-evaluates its objects). */
  onWatchChange: () => void = () => {};
  /** Booting from last_known_good in Gateway API mode: the rules saved with it. */
  onSavedGateway: (saved: SavedGateway) => void = () => {};
  #gateway: SavedGateway | null = null;

  constructor(cfg: KubernetesConfig, clock: Clock, log: Logger) {
    this.cfg = cfg;
    this.#clock = clock;
    this.#log = log;
    this.watch = new KubeWatch(cfg, loadKubeConfig(cfg), clock, log);
    this.watch.onChange = () => {
      this.#schedule();
      this.onWatchChange();
    };
    this.watch.onSynced = () => this.#rebuild();
  }

  get view(): KubeView {
    return this.#view;
  }

  status(): KubeSourceStatus {
    return { ...this.watch.status(), source: this.#source, viewAtMs: this.#viewAtMs };
  }

  /** Starts watching; boots from last_known_good if the API server has not answered within boot_wait. */
  start(): void {
    const saved = readSavedView(this.cfg.lastKnownGood);
    // The saved view is the history "previous" is judged against, whatever happens next.
    if (saved !== null) this.#view = saved.view;
    this.watch.start();
    this.#bootTimer = this.#clock.setTimeout(() => {
      this.#bootTimer = null;
      if (this.#source !== 'none') return;
      if (saved === null) {
        this.#log.warn({ lastKnownGood: this.cfg.lastKnownGood }, 'kubernetes API server not answering and no last_known_good file: nothing to route yet');
        return;
      }
      this.#log.warn({ lastKnownGood: this.cfg.lastKnownGood, savedAt: new Date(saved.savedAtMs).toISOString(), error: this.watch.status().lastError }, 'kubernetes API server not answering: serving from last_known_good');
      this.#source = 'last_known_good';
      this.#viewAtMs = saved.savedAtMs;
      this.onView(saved.view, EMPTY_VIEW, 'last_known_good');
      if (saved.gateway !== undefined) {
        this.#gateway = saved.gateway;
        this.onSavedGateway(saved.gateway);
      }
    }, this.cfg.bootWaitMs);
  }

  async stop(): Promise<void> {
    if (this.#pending !== null) this.#clock.clearTimeout(this.#pending);
    if (this.#bootTimer !== null) this.#clock.clearTimeout(this.#bootTimer);
    this.#pending = null;
    this.#bootTimer = null;
    await this.watch.stop();
  }

  /** Coalesces a burst of watch events into one rebuild. */
  #schedule(): void {
    if (this.#pending !== null) return;
    this.#pending = this.#clock.setTimeout(() => {
      this.#pending = null;
      this.#rebuild();
    }, 0);
  }

  #rebuild(): void {
    if (!this.watch.status().synced) return;
    const prev = this.#view;
    const next = buildView(this.watch.rayServices(), this.watch.pods(), prev, this.#clock.wallNow());
    const first = this.#source !== 'api';
    if (!first && JSON.stringify(next) === JSON.stringify(prev)) return;
    this.#view = next;
    this.#source = 'api';
    this.#viewAtMs = this.#clock.wallNow();
    this.#save(next);
    this.onView(next, first ? EMPTY_VIEW : prev, 'api');
    this.onWatchChange(); // the Ray clusters changed: backendRefs may resolve differently
  }

  /** Gateway API mode: new rules to keep with the view in last_known_good. */
  saveGateway(gateway: SavedGateway): void {
    this.#gateway = gateway;
    if (this.#source === 'api') this.#save(this.#view);
  }

  #save(view: KubeView): void {
    const path = this.cfg.lastKnownGood;
    try {
      mkdirSync(dirname(path), { recursive: true });
      const tmp = `${path}.tmp`;
      const fd = openSync(tmp, 'w');
      try {
        const doc: SavedView = { savedAtMs: this.#clock.wallNow(), view, ...(this.#gateway !== null ? { gateway: this.#gateway } : {}) };
        writeFileSync(fd, JSON.stringify(doc));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
      if (this.#lkgError !== null) this.#log.info({ path }, 'last_known_good written again');
      this.#lkgError = null;
    } catch (err) {
      if (this.#lkgError === null) this.#log.error({ path, err: (err as Error).message }, 'could not write last_known_good');
      this.#lkgError = (err as Error).message;
    }
  }
}

export function readSavedView(path: string): SavedView | null {
  try {
    const doc = JSON.parse(readFileSync(path, 'utf8')) as SavedView;
    if (typeof doc.savedAtMs !== 'number' || !Array.isArray(doc.view?.rayservices) || !Array.isArray(doc.view?.clusters)) return null;
    return doc;
  } catch {
    return null;
  }
}
