// Composition root: the only place that creates adapters and wires them.
// Start order: metrics → reconciler (first snapshot) → pollers + probers →
// data-plane listener → admin API. Stop order is the reverse, with a drain.
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { systemClock, type Clock, type TimerHandle } from './core/clock.ts';
import type { Logger } from './core/log.ts';
import type { GatewayConfig } from './config/types.ts';
import { loadConfigFile, formatIssues, restartRequiredIssues } from './config/load.ts';
import { DashboardPoller, type DashboardState } from './config/dashboard.ts';
import { watchConfigFile } from './config/file-watch.ts';
import { Reconciler } from './control/reconciler.ts';
import { Instruments, type GaugeSources } from './metrics/instruments.ts';
import { ClusterProber, type ProbeResult } from './health/prober.ts';
import { isAvailable } from './health/outlier.ts';
import { RequestPipeline } from './proxy/pipeline.ts';
import { PermitTable } from './admission/permits.ts';
import { WorkerPool } from './workers/pool.ts';
import { applyServerLimits, createDataServer, listenData, type DataServer } from './proxy/data-server.ts';
import { UpgradeHandler } from './proxy/upgrade.ts';
import { LoggerAccessLog, type AccessLog } from './proxy/access-log.ts';
// The CLI reaches the data plane through this module (the folder rules in test/architecture.test.ts).
export { stdoutAccessLog } from './proxy/access-log.ts';
import { startAdmin, type AdminServer } from './admin/api.ts';
import { TrafficController } from './control/traffic-controller.ts';
import { FileStateStore, type TrafficStore } from './control/state-store.ts';
import { SharedStateStore } from './control/shared-store.ts';
import { mergeWindows, type StatsSnapshot, type StatsWindow } from './control/step-stats.ts';
import { rolloutStepKey } from './control/rollout.ts';
import { ConfigMapDoc, KubeLeases } from './kubernetes/coordination.ts';
import { Replicas, STEP_STATS_ANNOTATION } from './kubernetes/replicas.ts';
import { GatewayApiController } from './kubernetes/gateway-controller.ts';
import type { GatewayApiModel } from './kubernetes/gateway-api.ts';
import { loadKubeConfig } from './kubernetes/watch.ts';
import { hostname } from 'node:os';
import { HEARTBEAT_MS, StateLock } from './control/state-lock.ts';
import type { UpstreamCluster } from './upstream/cluster.ts';
import { KubernetesSource } from './kubernetes/source.ts';
import { clusterConfigs, clusterForRole, EMPTY_VIEW, rayServiceOf, resolveRoleWeights, type KubeView } from './kubernetes/view.ts';
import { decideUpgrades, rolloutFitsDeletionDelay, type UpgradeAction } from './kubernetes/upgrade-policy.ts';
import { ignoredConfigWeights, type AuditEvent } from './control/traffic-state.ts';

export interface GatewayOptions {
  readonly config: GatewayConfig;
  /** The file the config came from; enables reload (SIGHUP, file watch, POST reload). */
  readonly configPath?: string;
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly logger?: Logger;
  /** Access-log sink; defaults to lines through the main logger. */
  readonly accessLog?: AccessLog;
  /** Watch the config file for changes (default true when configPath is set). */
  readonly watch?: boolean;
  /** Override the listen ports (tests use 0). */
  readonly listenPort?: number;
  readonly adminPort?: number;
  readonly probe?: (origin: string, timeoutMs: number) => Promise<ProbeResult>;
  /** Admin token; defaults to the env var named by admin.token_env. */
  readonly adminToken?: string | null;
  /**
   * `workers` > 1: where the worker threads write access-log lines ("stdout",
   * as `serve-gateway start` does; default "off": a caller's accessLog sink
   * cannot cross threads) and their log level (default "info").
   */
  readonly workerAccessLog?: 'stdout' | 'off';
  readonly workerLogLevel?: string;
  /** The worker threads' entry module (tests: one that crashes on purpose). */
  readonly workerThreadUrl?: URL;
}

export interface ReloadStatus {
  ok: boolean;
  atMs: number;
  /** What asked for it: "file change", "SIGHUP", "admin API". */
  reason: string;
  error: string | null;
  /** A reload that worked but left something the operator asked for undone (config weights the traffic state overrides). */
  warnings: string[];
}

export class Gateway {
  readonly reconciler: Reconciler;
  readonly metrics: Instruments;
  readonly proxy: RequestPipeline;
  readonly upgrades: UpgradeHandler;
  readonly traffic: TrafficController;
  readonly log: Logger;
  readonly clock: Clock;
  readonly server: DataServer;
  admin: AdminServer | null = null;
  readonly pollers = new Map<string, DashboardPoller>();
  readonly probers = new Map<string, ClusterProber>();
  readonly dashboardStates = new Map<string, DashboardState>();
  lastReload: ReloadStatus | null = null;
  draining = false;
  url = '';
  adminUrl = '';
  readonly #opts: GatewayOptions;
  /** The config as read from the file; in kubernetes mode the running config adds the discovered clusters. */
  #fileConfig: GatewayConfig;
  /** Kubernetes mode: the discovery source (null in file mode). */
  kubernetes: KubernetesSource | null = null;
  /** Gateway API mode (kubernetes.gateway_api); else null. */
  gatewayApi: GatewayApiController | null = null;
  /** `workers` > 1: the other data-plane threads; else null. */
  workers: WorkerPool | null = null;
  readonly #permits: PermitTable | null;
  /** Upgrade actions not yet possible (target not serving yet), retried until done (#owe). */
  #owedUpgrades: { prev: KubeView } | null = null;
  /** The last upgrade pass had a state write fail (retry slowly). */
  #upgradeWriteFailed = false;
  #upgradeRetry: TimerHandle | null = null;
  /** The tail of the queue of views being applied (#applyView). */
  #views: Promise<void> = Promise.resolve();
  #stopWatch: (() => void) | null = null;
  #sweeper: TimerHandle | null = null;
  readonly #store: FileStateStore;
  /** Kubernetes mode with several replicas (state_configmap + leader_lease); else null. */
  readonly #shared: SharedStateStore | null = null;
  readonly #doc: ConfigMapDoc | null = null;
  readonly replicas: Replicas | null = null;
  #invalidVersion: string | null = null;
  #stateLock: StateLock | null = null;
  #lockTimer: TimerHandle | null = null;
  #seriesTimer: TimerHandle | null = null;
  readonly #onHup = () => void this.reload('SIGHUP');

  constructor(opts: GatewayOptions) {
    this.#opts = opts;
    this.#fileConfig = opts.config;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger ?? (pino({ name: 'serve-gateway' }) as unknown as Logger);
    const config = opts.config;
    this.metrics = new Instruments(this.#gaugeSources());
    this.#permits = config.workers > 1 ? PermitTable.create(config.workers) : null;
    this.reconciler = new Reconciler(config, this.clock, this.metrics, this.log, this.#permits);
    this.reconciler.onClustersRemoved = (removed) => this.#retireClusters(removed);
    this.#store = new FileStateStore(config.stateDir);
    this.#store.setGuard(() => (this.#stateLock?.lost ? `the state_dir lock is lost: ${this.#stateLock.lost}; this gateway no longer writes traffic state` : null));
    // Kubernetes mode with several replicas: the traffic state lives in a ConfigMap all of them
    // share, one of them (the leader Lease holder) drives rollouts, each counts the live ones.
    const k = config.kubernetes;
    let store: TrafficStore = this.#store;
    if (k !== null && k.stateConfigMap !== null && k.leaderLease !== null) {
      const kc = loadKubeConfig(k);
      this.#doc = new ConfigMapDoc(kc, k.namespace, k.stateConfigMap);
      this.#shared = new SharedStateStore(this.#doc, (err) => this.log.warn({ err: (err as Error).message }, 'could not write an audit entry to the shared state'));
      store = this.#shared;
      this.replicas = new Replicas({
        identity: replicaIdentity(),
        leaderLease: k.leaderLease,
        durationMs: k.leaseDurationMs,
        clock: this.clock,
        leases: new KubeLeases(kc, k.namespace),
        log: this.log.child({ component: 'replicas' }),
        publish: () => this.#publishStepStats(),
      });
      this.replicas.onChange = () => this.#onReplicasChanged();
    }
    this.traffic = new TrafficController({
      reconciler: this.reconciler,
      store,
      clock: this.clock,
      log: this.log,
      metrics: this.metrics,
      onAudit: (e) => this.#mirrorAudit(e),
      ...(this.replicas !== null
        ? {
            drives: () => this.replicas!.isLeader(),
            observe: (app: string, cluster: string) => this.#observeAllReplicas(app, cluster),
            restartStepsAtStart: false,
          }
        : {}),
    });
    this.proxy = new RequestPipeline({
      store: this.reconciler.store,
      clock: this.clock,
      random: opts.random ?? Math.random,
      metrics: this.metrics,
      accessLog: opts.accessLog ?? new LoggerAccessLog(this.log.child({ kind: 'access' })),
      ready: () => !this.draining,
    });
    this.upgrades = new UpgradeHandler(this.proxy.deps);
    this.server = createDataServer(this.proxy, this.upgrades, this.metrics, config);
  }

  get config(): GatewayConfig {
    return this.reconciler.config;
  }

  async start(): Promise<void> {
    if (this.#shared === null) {
      // One gateway per state_dir: refused here, before anything listens (state-lock.ts).
      const { lock, takenOver } = StateLock.acquire(this.#store.dir);
      this.#stateLock = lock;
      if (takenOver !== null) this.log.warn({ stateDir: this.#store.dir, previous: takenOver }, 'took over a stale state_dir lock');
      this.#scheduleLockHeartbeat();
    } else {
      await this.#startShared();
    }
    this.traffic.start(); // loads persisted weights, publishes the first snapshot
    if (this.#doc !== null && this.#shared !== null) {
      const shared = this.#shared;
      this.#doc.watch(
        (data, version) => {
          const r = shared.remote(data, version);
          if (r.kind === 'state') void this.traffic.adoptRemote(r.state);
          else if (r.kind === 'invalid') this.#sharedStateInvalid(version, r.message);
        },
        (err) => this.log.debug?.({ err: (err as Error)?.message ?? String(err) }, 'shared state watch ended; restarting'),
      );
    }
    if (this.replicas !== null) await this.replicas.start();
    this.#syncPollersAndProbers();
    const cfg = this.config;
    if (cfg.kubernetes !== null) {
      this.kubernetes = new KubernetesSource(cfg.kubernetes, this.clock, this.log.child({ component: 'kubernetes' }));
      this.kubernetes.onView = (view, prev) => this.#applyView(view, prev);
      const gwCfg = cfg.kubernetes.gatewayApi;
      if (gwCfg !== null) {
        // HTTPRoutes decide first: until they are listed, no request has a route (SPEC §11).
        this.reconciler.setGatewayRules([]);
        const source = this.kubernetes;
        this.gatewayApi = new GatewayApiController({
          cfg: gwCfg,
          namespace: cfg.kubernetes.namespace,
          watch: source.watch,
          clock: this.clock,
          log: this.log.child({ component: 'gateway-api' }),
          writesStatus: () => this.replicas === null || this.replicas.isLeader(),
          rayClusters: () => new Set(source.view.clusters.map((c) => c.name)),
          onModel: (model) => this.#applyGatewayModel(model),
        });
        source.onWatchChange = () => this.gatewayApi?.schedule();
        source.onSavedGateway = (saved) => this.gatewayApi?.adoptSaved(saved.rules, saved.services);
      }
      this.kubernetes.start();
    }
    await listenData(this.server, this.#opts.listenPort ?? cfg.listen.port, cfg.listen.host, cfg.workers > 1);
    const port = (this.server.address() as AddressInfo).port;
    this.url = `http://${hostForUrl(cfg.listen.host)}:${port}`;
    if (this.#permits !== null) {
      // The other data-plane threads listen on the same port (SO_REUSEPORT).
      this.workers = new WorkerPool({
        count: cfg.workers,
        reconciler: this.reconciler,
        metrics: this.metrics,
        permits: this.#permits,
        clock: this.clock,
        log: this.log.child({ component: 'workers' }),
        host: cfg.listen.host,
        port,
        accessLog: this.#opts.workerAccessLog ?? 'off',
        logLevel: this.#opts.workerLogLevel ?? 'info',
        ...(this.#opts.workerThreadUrl !== undefined ? { threadUrl: this.#opts.workerThreadUrl } : {}),
      });
      await this.workers.start();
    }
    this.admin = await startAdmin(this, {
      host: cfg.admin.listen.host,
      port: this.#opts.adminPort ?? cfg.admin.listen.port,
      token: this.#opts.adminToken !== undefined ? this.#opts.adminToken : (process.env[cfg.admin.tokenEnv] ?? null),
    });
    this.adminUrl = this.admin.url;
    if (this.#opts.configPath !== undefined && this.#opts.watch !== false) {
      this.#stopWatch = watchConfigFile(this.#opts.configPath, () => void this.reload('file change'), {
        extraFiles: serveConfigFiles(cfg),
      });
      process.on('SIGHUP', this.#onHup);
    }
    this.#scheduleSweep();
    this.#scheduleSeries();
    this.log.info({ url: this.url, admin: this.adminUrl, apps: [...(this.reconciler.current?.apps.keys() ?? [])], node_flags: nodeFlags() }, 'serve-gateway started');
  }

  /** Re-reads the config file; a bad file never replaces the running config. */
  async reload(reason: string): Promise<ReloadStatus> {
    const path = this.#opts.configPath;
    if (path === undefined) {
      return (this.lastReload = { ok: false, atMs: this.clock.wallNow(), reason, error: 'gateway was started without a config file', warnings: [] });
    }
    const result = await loadConfigFile(path);
    // Listeners, state_dir and the admin token are set up at start: a change to them is refused too.
    const issues = result.ok ? restartRequiredIssues(this.config, result.config, path) : result.issues;
    if (!result.ok || issues.length > 0) {
      const error = formatIssues(issues);
      this.metrics.configReloads.labels('failure').inc();
      this.log.error({ reason, issues }, 'config reload refused; keeping the running config');
      return (this.lastReload = { ok: false, atMs: this.clock.wallNow(), reason, error, warnings: [] });
    }
    // Weights edited in the file do not move an app whose weights the traffic state holds: say so.
    const warnings = ignoredConfigWeights(configWeights(this.#fileConfig), configWeights(result.config), this.traffic.state);
    for (const w of warnings) this.log.warn({ reason }, w);
    this.#fileConfig = result.config;
    this.reconciler.setConfig(this.#effectiveConfig(this.kubernetes?.view ?? EMPTY_VIEW));
    applyServerLimits(this.server, result.config);
    this.traffic.onConfigChanged();
    this.#syncPollersAndProbers();
    this.metrics.configReloads.labels('success').inc();
    this.log.info({ reason }, 'config reloaded');
    return (this.lastReload = { ok: true, atMs: this.clock.wallNow(), reason, error: null, warnings });
  }

  /** SIGTERM: fail readiness now, stop accepting after drain_delay, give in-flight work grace_period. */
  async shutdown(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const { drainDelayMs, gracePeriodMs } = this.config.shutdown;
    this.log.info({ drainDelayMs, gracePeriodMs }, 'draining');
    const workersDrained = this.workers?.drain(drainDelayMs, gracePeriodMs) ?? Promise.resolve();
    await delay(this.clock, drainDelayMs);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    let graceTimer: TimerHandle | null = null;
    const grace = new Promise<void>((resolve) => {
      graceTimer = this.clock.setTimeout(() => {
        if (this.proxy.counters.activeRequests > 0 || this.upgrades.open > 0) {
          this.log.warn({ active: this.proxy.counters.activeRequests, upgraded: this.upgrades.open }, 'grace period over; closing remaining connections');
        }
        this.server.closeAllConnections();
        this.upgrades.closeAll();
        resolve();
      }, gracePeriodMs);
    });
    await Promise.race([closed, grace]);
    if (graceTimer !== null) this.clock.clearTimeout(graceTimer);
    // A worker whose loop is stuck must not hold SIGTERM forever: close() terminates what is left.
    let workersTimer: TimerHandle | null = null;
    await Promise.race([workersDrained, new Promise<void>((resolve) => (workersTimer = this.clock.setTimeout(resolve, drainDelayMs + gracePeriodMs + 5000)))]);
    if (workersTimer !== null) this.clock.clearTimeout(workersTimer);
    await this.close();
  }

  /**
   * A cluster name, or in kubernetes mode a role (active, pending, previous) of
   * the RayService that serves `app`, as the cluster name; null when the role
   * has no cluster now. Names pass through unchanged.
   */
  resolveCluster(app: string, nameOrRole: string): string | null {
    const view = this.kubernetes?.view;
    if (view === undefined || (nameOrRole !== 'active' && nameOrRole !== 'pending' && nameOrRole !== 'previous')) return nameOrRole;
    return clusterForRole(view, app, nameOrRole);
  }

  /** The running config for a view: the file's config with the view's clusters, weights by role resolved. */
  #effectiveConfig(view: KubeView): GatewayConfig {
    const base = this.#fileConfig;
    if (base.kubernetes === null) return base;
    const admission = this.replicas === null ? base.admission : { ...base.admission, gatewayReplicas: this.replicas.liveCount() };
    const plain = this.gatewayApi?.model?.services ?? [];
    return { ...base, admission, clusters: [...clusterConfigs(view), ...plain], applications: resolveRoleWeights(base.applications, base.defaults, view) };
  }

  /**
   * Kubernetes mode: a new view of the RayServices. The upgrade policy decides
   * against the traffic as it is; an action whose target the running config
   * already knows is carried out first (so a switch away from a cluster that
   * is about to disappear is made, and audited, while it still exists), then
   * the view's clusters replace the running ones, then the remaining actions.
   */
  #applyView(view: KubeView, prev: KubeView): void {
    // Views apply one at a time, in order (recording an action may wait on the shared store).
    this.#views = this.#views.then(
      () => this.#applyViewNow(view, prev),
      () => this.#applyViewNow(view, prev),
    );
  }

  async #applyViewNow(view: KubeView, prev: KubeView): Promise<void> {
    const mode = this.#fileConfig.kubernetes!.upgrade;
    const actions = decideUpgrades(mode, prev, view, (app) => this.#appTraffic(app));
    this.#upgradeWriteFailed = false;
    const known = new Set(this.config.clusters.map((c) => c.name));
    const now = actions.filter((a) => known.has(a.to));
    const later = actions.filter((a) => !known.has(a.to));
    let owed = await this.#runUpgrades(now);
    this.reconciler.setConfig(this.#effectiveConfig(view));
    this.traffic.onConfigChanged();
    this.#syncPollersAndProbers();
    owed = (await this.#runUpgrades(later)) || owed;
    this.#owe(owed ? prev : null);
  }

  #appTraffic(app: string): { weights: Record<string, number>; rollout: { pendingCluster: string; phase: string } | null } | null {
    const weights = this.traffic.weightsOf(app);
    if (weights === null) return null;
    const r = this.traffic.rolloutOf(app);
    return { weights, rollout: r === null ? null : { pendingCluster: r.pendingCluster, phase: r.phase } };
  }

  /** Carries out upgrade actions; true when one must wait (its target is not serving yet). */
  async #runUpgrades(actions: readonly UpgradeAction[]): Promise<boolean> {
    let owed = false;
    for (const a of actions) {
      // Gateway API mode: an app reached by an HTTPRoute moves with its weights, not by our policy.
      if (this.reconciler.current?.apps.get(a.app)?.weightsFrom != null) continue;
      if (a.kind !== 'promote' && this.traffic.notReadyReason(a.app, a.to) !== null) {
        // Often only the dashboard's answer is stale (KubeRay promoted on RUNNING since the last poll).
        this.pollers.get(a.to)?.pollSoon();
        owed = true;
        continue;
      }
      const r = await (a.kind === 'switch'
          ? this.traffic.setWeights(a.app, { [a.to]: 100 }, { force: true, actor: 'kubernetes', reason: a.reason })
          : a.kind === 'start_rollout'
            ? this.traffic.startRollout(a.app, { to: a.to }, 'kubernetes')
            : this.traffic.controlRollout(a.app, 'promote', 'kubernetes', { force: true }));
      if (!r.ok) {
        this.log.warn({ app: a.app, action: a.kind, to: a.to, code: r.code, message: r.message }, 'upgrade action refused');
        if (r.code === 'STATE_WRITE_FAILED') owed = this.#upgradeWriteFailed = true;
      } else this.log.info({ app: a.app, action: a.kind, to: a.to, reason: a.reason }, 'upgrade action');
    }
    return owed;
  }

  /**
   * Retries the upgrade decisions against `prev` until none is owed: every
   * 100 ms (a target becomes ready with the next probe or dashboard poll, and
   * the decision is cheap), every second after a state write failed.
   */
  #owe(prev: KubeView | null): void {
    if (prev === null) {
      this.#owedUpgrades = null;
      return;
    }
    this.#owedUpgrades = { prev };
    if (this.#upgradeRetry !== null) return;
    this.#upgradeRetry = this.clock.setTimeout(() => {
      this.#upgradeRetry = null;
      const owed = this.#owedUpgrades;
      const src = this.kubernetes;
      if (owed === null || src === null || this.draining) return;
      this.#upgradeWriteFailed = false;
      void this.#runUpgrades(decideUpgrades(this.#fileConfig.kubernetes!.upgrade, owed.prev, src.view, (app) => this.#appTraffic(app))).then((again) =>
        this.#owe(again ? owed.prev : null),
      );
    }, this.#upgradeWriteFailed ? 1000 : 100);
    this.#upgradeRetry.unref?.();
  }

  /** Kubernetes mode: audit entries of an app also become Events on its RayService. */
  #mirrorAudit(e: AuditEvent): void {
    const src = this.kubernetes;
    if (src === null || e.app === '*') return;
    const rs = rayServiceOf(src.view, e.app);
    if (rs === null || rs.uid === '') return;
    const warning = e.result !== 'ok' || e.action === 'rollout_failed' || e.action.includes('rollback');
    const reason = `ServeGateway${e.action.split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('')}`;
    const weights = e.to === null ? '' : ` weights ${JSON.stringify(e.to)}`;
    void src.watch.event({ name: rs.name, uid: rs.uid }, warning ? 'Warning' : 'Normal', reason, `app ${e.app}: ${e.reason}${weights} (by ${e.actor}${e.result !== 'ok' ? `, ${e.result}` : ''})`);
  }

  /**
   * Reads the shared state before the controller starts, waiting at most
   * kubernetes.boot_wait: without an API server the gateway starts from the
   * configured weights, and the watch brings the shared state when it can.
   */
  async #startShared(): Promise<void> {
    const shared = this.#shared!;
    const k = this.config.kubernetes!;
    let timer: TimerHandle | null = null;
    const late = new Promise<'late'>((resolve) => (timer = this.clock.setTimeout(() => resolve('late'), k.bootWaitMs)));
    const read = shared.init();
    try {
      const r = await Promise.race([read.then(() => 'read' as const), late]);
      if (r === 'late') {
        this.log.warn({ where: shared.where, bootWaitMs: k.bootWaitMs }, 'shared traffic state not read yet (API server slow or away); starting from the configured weights, the watch brings it');
        // Read after all: the controller has started by then, so it takes the state as another replica's.
        read.then(
          () => {
            const state = shared.load().state;
            if (state !== null) void this.traffic.adoptRemote(state);
          },
          () => {},
        );
      }
    } catch (err) {
      this.log.warn({ where: shared.where, err: (err as Error).message }, 'cannot read the shared traffic state; starting from the configured weights, the watch brings it');
    } finally {
      if (timer !== null) this.clock.clearTimeout(timer);
    }
  }

  /** A version of the state ConfigMap that does not parse (a hand edit): refused, loudly; the last good state serves. */
  #sharedStateInvalid(version: string, message: string): void {
    if (this.#invalidVersion === version) return;
    this.#invalidVersion = version;
    const text = `${this.#shared!.where} (resourceVersion ${version}) refused: ${message}; the last good traffic state keeps serving, and the next change writes it back`;
    this.log.error({ where: this.#shared!.where, version }, text);
    const src = this.kubernetes;
    if (src === null) return;
    for (const rs of src.view.rayservices) if (rs.uid !== '') void src.watch.event({ name: rs.name, uid: rs.uid }, 'Warning', 'ServeGatewaySharedStateInvalid', text);
  }

  /** Kubernetes mode with shared state: where it lives, the version this replica has, a refused hand edit; else null. */
  sharedStateStatus(): { configmap: string; version: string | null; invalid: string | null } | null {
    const s = this.#shared;
    return s === null ? null : { configmap: s.where, version: s.version, invalid: s.invalid };
  }

  /** The leader changed, or the live replica count (each replica's admission share). */
  #onReplicasChanged(): void {
    this.reconciler.setConfig(this.#effectiveConfig(this.kubernetes?.view ?? EMPTY_VIEW));
    this.traffic.onConfigChanged();
    this.gatewayApi?.schedule(); // a new leader writes the Gateway API status
  }

  /** Gateway API mode: new HTTPRoute rules or plain-Service backends. */
  #applyGatewayModel(model: GatewayApiModel): void {
    this.kubernetes?.saveGateway({ rules: model.rules, services: model.services });
    this.reconciler.setGatewayRules(model.rules, this.#effectiveConfig(this.kubernetes?.view ?? EMPTY_VIEW));
    this.traffic.onConfigChanged();
    this.#syncPollersAndProbers();
  }

  /** This replica's measurements of each rollout's current step, for the leader to merge. */
  #publishStepStats(): Record<string, string> {
    const out: Record<string, { cluster: string; step: string; window: StatsWindow }> = {};
    for (const [app, t] of Object.entries(this.traffic.state.apps)) {
      const r = t.rollout;
      if (r === null || r.phase !== 'progressing') continue;
      out[app] = { cluster: r.pendingCluster, step: rolloutStepKey(r), window: this.reconciler.stats.windowFor(app, r.pendingCluster) };
    }
    return { [STEP_STATS_ANNOTATION]: JSON.stringify(out) };
  }

  /** What the leader's gates judge: its own window of the step plus every live replica's (same step only). */
  #observeAllReplicas(app: string, cluster: string): StatsSnapshot | null {
    const r = this.traffic.rolloutOf(app);
    if (r === null || this.replicas === null) return null;
    const step = rolloutStepKey(r);
    const windows: StatsWindow[] = [this.reconciler.stats.windowFor(app, cluster)];
    for (const ann of this.replicas.othersAnnotations()) {
      let published: unknown;
      try {
        published = JSON.parse(ann[STEP_STATS_ANNOTATION] ?? '{}');
      } catch {
        continue;
      }
      const e = (published as Record<string, { cluster?: unknown; step?: unknown; window?: StatsWindow }>)[app];
      if (e !== undefined && e.cluster === cluster && e.step === step && e.window !== undefined) windows.push(e.window);
    }
    return mergeWindows(windows);
  }

  /** Stops everything at once (tests, and the end of shutdown). */
  async close(): Promise<void> {
    this.draining = true;
    if (this.#upgradeRetry !== null) this.clock.clearTimeout(this.#upgradeRetry);
    this.#doc?.stopWatch();
    await this.replicas?.stop();
    await this.#shared?.settle();
    this.gatewayApi?.stop();
    await this.kubernetes?.stop();
    process.off('SIGHUP', this.#onHup);
    this.#stopWatch?.();
    if (this.#sweeper !== null) this.clock.clearTimeout(this.#sweeper);
    if (this.#seriesTimer !== null) this.clock.clearTimeout(this.#seriesTimer);
    for (const p of this.pollers.values()) p.stop();
    for (const p of this.probers.values()) p.stop();
    this.traffic.stop();
    if (this.#lockTimer !== null) this.clock.clearTimeout(this.#lockTimer);
    this.#stateLock?.release();
    await this.workers?.close();
    for (const l of this.reconciler.limiters.values()) l.close();
    this.server.closeAllConnections();
    this.upgrades.closeAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.admin?.close();
    await Promise.all([...this.reconciler.clusters.values()].map((c) => c.close()));
  }

  #syncPollersAndProbers(): void {
    const cfg = this.config;
    const overrides = new Map<string, string | null>();
    for (const [app, p] of cfg.applications) overrides.set(app, p.ingressDeployment);
    for (const [name, poller] of this.pollers) {
      const c = cfg.clusters.find((x) => x.name === name);
      // Gone, or (kubernetes mode) the head pod was replaced and the dashboard moved.
      if (c === undefined || c.dashboard === null || c.dashboard !== poller.origin) {
        poller.stop();
        this.pollers.delete(name);
        this.dashboardStates.delete(name);
      } else poller.setOverrides(overrides);
    }
    for (const c of cfg.clusters) {
      if (c.dashboard !== null && !this.pollers.has(c.name)) {
        const poller = new DashboardPoller({
          url: c.dashboard,
          intervalMs: cfg.dashboardPollMs,
          // At least 2 s (a busy head answers slowly; a poll never overlaps the next), at most 5 s.
          timeoutMs: Math.min(Math.max(cfg.dashboardPollMs, 2000), 5000),
          clock: this.clock,
          overrides,
          log: this.log.child({ cluster: c.name }),
          onUpdate: (state) => this.#onDashboard(c.name, state),
        });
        this.pollers.set(c.name, poller);
        poller.start();
      }
    }
    // Probers follow the runtime cluster objects (recreated when endpoints change).
    for (const [name, prober] of this.probers) {
      if (this.reconciler.clusters.get(name) !== prober.cluster) {
        prober.stop();
        this.probers.delete(name);
      }
    }
    for (const [name, cluster] of this.reconciler.clusters) {
      // A plain Service (Gateway API mode) has no Serve /-/healthz: passive health only.
      if (cfg.clusters.find((c) => c.name === name)?.plainService === true) continue;
      if (!this.probers.has(name)) {
        const prober = new ClusterProber(cluster, cfg.health, this.clock, this.log, this.#opts.probe);
        this.probers.set(name, prober);
        prober.start();
      }
    }
  }

  #onDashboard(cluster: string, state: DashboardState): void {
    this.dashboardStates.set(cluster, state);
    const cfg = this.config.clusters.find((c) => c.name === cluster);
    if (state.apps !== null) {
      this.reconciler.setClusterApps(cluster, { apps: state.apps, source: 'dashboard', stale: !state.reachable });
    } else if (cfg !== undefined) {
      // Never reached yet: fall back to the serve config, marked stale.
      this.reconciler.setClusterApps(cluster, cfg.serveApps === null ? { apps: [], source: 'none', stale: true } : { apps: cfg.serveApps, source: 'serve_config', stale: true });
    }
  }

  #retireClusters(removed: UpstreamCluster[]): void {
    for (const c of removed) {
      this.probers.get(c.name)?.stop();
      this.probers.delete(c.name);
      // In-flight requests keep their connections; idle ones close now, the rest as they finish.
      void c.close();
    }
  }

  /** The state_dir lock's heartbeat; a lost lock is logged once (writes then fail: setGuard). */
  #scheduleLockHeartbeat(): void {
    this.#lockTimer = this.clock.setTimeout(() => {
      const lock = this.#stateLock;
      if (lock === null) return;
      const before = lock.lost;
      lock.heartbeat();
      if (before === null && lock.lost !== null) this.log.error({ stateDir: this.#store.dir, why: lock.lost }, 'state_dir lock lost: traffic changes are refused from now on');
      this.#scheduleLockHeartbeat();
    }, HEARTBEAT_MS);
    this.#lockTimer.unref?.();
  }

  /** Every few seconds: close idle upstream connections; all of them for drained clusters. */
  #scheduleSweep(): void {
    this.#sweeper = this.clock.setTimeout(() => {
      const now = this.clock.now();
      for (const c of this.reconciler.clusters.values()) c.closeIdle(now, c.drained);
      this.#scheduleSweep();
    }, 5000);
    this.#sweeper.unref?.();
  }

  /** Every series bucket: close it as one point of each cluster's 15-minute ring (dashboard charts). */
  #scheduleSeries(): void {
    const series = this.reconciler.series;
    this.#seriesTimer = this.clock.setTimeout(() => {
      series.retain(new Set(this.config.clusters.map((c) => c.name)));
      for (const c of this.config.clusters) series.of(c.name);
      series.close(this.clock.wallNow());
      this.#scheduleSeries();
    }, series.bucketMs);
    this.#seriesTimer.unref?.();
  }

  #gaugeSources(): GaugeSources {
    const self = this;
    const targets = function* () {
      const snap = self.reconciler.current;
      if (snap === null) return;
      for (const app of snap.apps.values()) for (let i = 0; i < app.targets.length; i++) yield [app, app.targets[i]!, app.split.weights[i]!] as const;
    };
    return {
      *inFlight() {
        for (const [app, t] of targets()) yield [app.name, t.cluster.name, t.limiter.inFlight];
      },
      *queueDepth() {
        for (const [app, t] of targets()) yield [app.name, t.cluster.name, t.limiter.queued];
      },
      *capacity() {
        for (const [app, t] of targets()) yield [app.name, t.cluster.name, t.limit];
      },
      *trafficWeight() {
        for (const [app, t, w] of targets()) yield [app.name, t.cluster.name, w];
      },
      *endpointHealthy() {
        const now = self.clock.now();
        for (const c of self.reconciler.clusters.values()) {
          for (const e of c.endpoints) yield [c.name, e.origin, !c.circuitOpen && isAvailable(e.health, now) ? 1 : 0];
        }
      },
      *openStreams() {
        for (const c of self.reconciler.clusters.values()) yield [c.name, c.openStreams + (self.workers?.load(c.name).openStreams ?? 0)];
      },
      *dashboardReachable() {
        for (const [name, s] of self.dashboardStates) yield [name, s.reachable ? 1 : 0];
      },
      snapshotVersion: () => self.reconciler.current?.version ?? 0,
      *rolloutFitsDeletionDelay() {
        const src = self.kubernetes;
        if (src === null) return;
        for (const rs of src.view.rayservices) {
          for (const a of rs.apps) {
            const p = (self.config.applications.get(a.name) ?? self.config.defaults).rollout;
            yield [rs.name, a.name, rolloutFitsDeletionDelay(p.steps, p.intervalMs, rs.deletionDelayMs) ? 1 : 0];
          }
        }
      },
      kubernetesConnected: () => (self.kubernetes === null ? null : self.kubernetes.status().connected ? 1 : 0),
      replicas: () =>
        self.replicas === null ? null : { leader: self.replicas.isLeader() ? 1 : 0, live: self.replicas.liveCount(), sharedStateInvalid: self.#shared?.invalid ? 1 : 0 },
    };
  }
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const gw = new Gateway(opts);
  try {
    await gw.start();
  } catch (err) {
    await gw.close().catch(() => {});
    throw err;
  }
  return gw;
}

/** App name ("*" = defaults) → the weights the config file sets for it. */
function configWeights(cfg: GatewayConfig): Map<string, Readonly<Record<string, number>> | null> {
  const m = new Map<string, Readonly<Record<string, number>> | null>([['*', cfg.defaults.weights]]);
  for (const [app, p] of cfg.applications) m.set(app, p.weights);
  return m;
}

function serveConfigFiles(cfg: GatewayConfig): string[] {
  const files = cfg.clusters.map((c) => c.serveConfigFile ?? null).filter((f): f is string => f !== null);
  return [...new Set(files)];
}

export function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

function delay(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0) return resolve();
    clock.setTimeout(resolve, ms);
  });
}

/** This replica's name: its pod name (POD_NAME from the downward API, else HOSTNAME, which Kubernetes sets to it). */
function replicaIdentity(): string {
  return process.env['POD_NAME'] || process.env['HOSTNAME'] || hostname();
}

/**
 * Node/V8 flags given to this process, for the startup line (the young-generation cap shows
 * here): NODE_OPTIONS, then the command line's, which take precedence.
 */
export function nodeFlags(): string[] {
  const env = process.env['NODE_OPTIONS'];
  return [...(env ? env.split(/\s+/).filter((f) => f !== '') : []), ...process.execArgv];
}
