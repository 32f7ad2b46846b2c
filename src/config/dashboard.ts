// The Serve dashboard REST API (GET /api/serve/applications/, serve.md §4):
// live applications, route prefixes, limits and RUNNING replica counts.
// When the dashboard fails, the last known apps are kept (status UNKNOWN),
// never dropped (SPEC §5 "Head / dashboard down"). A 200 whose body is not a
// Serve applications document (an auth proxy's login page, `{}`, JSON
// without an "applications" object) is such a failure too: only a real
// answer from Serve may say that a cluster serves no apps.
import type { Clock, TimerHandle } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import { chooseIngress, SERVE_DEFAULT_MAX_ONGOING_REQUESTS, SERVE_DEFAULT_MAX_QUEUED_REQUESTS } from './serve-config.ts';
import type { DeploymentLimits } from './serve-config.ts';
import type { ServeApp, ServeAppStatus } from './types.ts';

export const SERVE_APPLICATIONS_PATH = '/api/serve/applications/';

const APP_STATUSES: ReadonlySet<string> = new Set([
  'NOT_STARTED',
  'DEPLOYING',
  'DEPLOY_FAILED',
  'RUNNING',
  'UNHEALTHY',
  'DELETING',
]);

/**
 * ServeInstanceDetails JSON → apps. The ingress deployment is, in order:
 * `deployment_topology.ingress_deployment`; the override from the app policy;
 * the last of `deployed_app_config.deployments` when that list names every
 * deployment; else the last key of `deployments` (Serve lists the ingress last).
 * `replicas` counts RUNNING replicas of the ingress. Unknown fields are ignored.
 */
export function parseServeApplications(
  json: unknown,
  overrides: ReadonlyMap<string, string | null> = new Map(),
): ServeApp[] | Error {
  if (!isObject(json)) return new Error('not a Serve applications document: the body is not a JSON object');
  const appsRaw = json['applications'];
  if (!isObject(appsRaw)) {
    const keys = Object.keys(json).slice(0, 8).map((k) => JSON.stringify(k)).join(', ');
    return new Error(
      appsRaw === undefined
        ? `not a Serve applications document: no "applications" object (keys: ${keys === '' ? 'none' : keys})`
        : 'not a Serve applications document: "applications" is not an object',
    );
  }
  const apps: ServeApp[] = [];
  for (const [key, raw] of Object.entries(appsRaw)) {
    if (!isObject(raw)) return new Error(`dashboard response: applications.${key} is not an object`);
    const name = typeof raw['name'] === 'string' && raw['name'] !== '' ? raw['name'] : key;
    const rp = raw['route_prefix'];
    const routePrefix = typeof rp === 'string' ? rp : null;
    const status: ServeAppStatus =
      typeof raw['status'] === 'string' && APP_STATUSES.has(raw['status']) ? (raw['status'] as ServeAppStatus) : 'UNKNOWN';

    const depsRaw = isObject(raw['deployments']) ? raw['deployments'] : {};
    const limits = new Map<string, DeploymentLimits>();
    for (const [depKey, d] of Object.entries(depsRaw)) {
      if (!isObject(d)) continue;
      const depName = typeof d['name'] === 'string' && d['name'] !== '' ? d['name'] : depKey;
      limits.set(depName, deploymentLimits(depName, d));
    }
    const ordered = orderDeployments(raw, [...limits.keys()]).map((n) => limits.get(n) as DeploymentLimits);
    const topology = isObject(raw['deployment_topology']) ? raw['deployment_topology']['ingress_deployment'] : undefined;
    const override = overrides.get(name) ?? null;
    const wanted =
      typeof topology === 'string' && limits.has(topology) ? topology : override !== null && limits.has(override) ? override : null;
    const ingress: DeploymentLimits =
      ordered.length > 0
        ? chooseIngress(ordered, wanted)
        : {
            name: override ?? '(none)',
            maxOngoingRequests: SERVE_DEFAULT_MAX_ONGOING_REQUESTS,
            maxQueuedRequests: SERVE_DEFAULT_MAX_QUEUED_REQUESTS,
            replicas: 0,
          };
    apps.push({
      name,
      routePrefix,
      ingressDeployment: ingress.name,
      maxOngoingRequests: ingress.maxOngoingRequests,
      maxQueuedRequests: ingress.maxQueuedRequests,
      replicas: ingress.replicas,
      status,
    });
  }
  return apps;
}

/**
 * True when the response says the Serve controller is not there (empty
 * controller_info, e.g. while the head restarts): not a statement that apps
 * were deleted.
 */
export function serveControllerMissing(json: unknown): boolean {
  if (!isObject(json)) return true;
  const ci = json['controller_info'];
  const apps = json['applications'];
  return isObject(ci) && Object.keys(ci).length === 0 && (!isObject(apps) || Object.keys(apps).length === 0);
}

function deploymentLimits(name: string, d: Record<string, unknown>): DeploymentLimits {
  const cfg = isObject(d['deployment_config']) ? d['deployment_config'] : {};
  const mor = cfg['max_ongoing_requests'] ?? cfg['max_concurrent_queries'];
  const mqr = cfg['max_queued_requests'];
  const replicas = Array.isArray(d['replicas'])
    ? d['replicas'].filter((r) => isObject(r) && r['state'] === 'RUNNING').length
    : 0;
  return {
    name,
    maxOngoingRequests: typeof mor === 'number' && Number.isInteger(mor) && mor > 0 ? mor : SERVE_DEFAULT_MAX_ONGOING_REQUESTS,
    maxQueuedRequests:
      typeof mqr === 'number' && Number.isInteger(mqr) && (mqr === -1 || mqr > 0) ? mqr : SERVE_DEFAULT_MAX_QUEUED_REQUESTS,
    replicas,
  };
}

/** Deployment names in ingress-last order (see parseServeApplications). */
function orderDeployments(app: Record<string, unknown>, names: readonly string[]): string[] {
  const dac = app['deployed_app_config'];
  const listed = isObject(dac) && Array.isArray(dac['deployments']) ? dac['deployments'] : [];
  const order = listed
    .map((d) => (isObject(d) && typeof d['name'] === 'string' ? d['name'] : null))
    .filter((n): n is string => n !== null && names.includes(n));
  if (names.length > 0 && names.every((n) => order.includes(n))) return [...new Set(order)];
  return [...names];
}

// ---------------------------------------------------------------------------

export interface DashboardState {
  /** The last poll succeeded. */
  readonly reachable: boolean;
  /** Last known good apps (status UNKNOWN while unreachable); null = never known. */
  readonly apps: ServeApp[] | null;
  /** clock.now() of the last successful poll. */
  readonly lastSuccessMs: number | null;
  readonly lastError: string | null;
}

export interface DashboardPollerOptions {
  /** Dashboard origin ("http://head:8265"), or a full URL of the applications endpoint. */
  readonly url: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly clock: Clock;
  readonly fetch?: typeof fetch;
  readonly overrides: ReadonlyMap<string, string | null>;
  readonly onUpdate: (state: DashboardState) => void;
  readonly log?: Logger;
}

/** Polls one cluster's dashboard every intervalMs (after the previous poll ends). */
export class DashboardPoller {
  readonly #opts: DashboardPollerOptions;
  readonly #url: string;
  readonly #fetch: typeof fetch;
  #overrides: ReadonlyMap<string, string | null>;
  #state: DashboardState = { reachable: false, apps: null, lastSuccessMs: null, lastError: null };
  #lastGood: ServeApp[] | null = null;
  #timer: TimerHandle | null = null;
  #running = false;
  #inflight: AbortController | null = null;

  /** The dashboard origin this poller was made for. */
  get origin(): string {
    return this.#opts.url;
  }

  constructor(opts: DashboardPollerOptions) {
    this.#opts = opts;
    this.#url = applicationsUrl(opts.url);
    this.#fetch = opts.fetch ?? globalThis.fetch;
    this.#overrides = opts.overrides;
  }

  /** Polls now, then every intervalMs until stop(). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    void this.#loop();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer !== null) this.#opts.clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#inflight?.abort(new Error('poller stopped'));
  }

  current(): DashboardState {
    return this.#state;
  }

  /**
   * Polls now rather than at the end of the interval (something says the
   * apps changed: KubeRay promoted the cluster). No-op while a poll is in
   * flight or when stopped; the interval restarts after this poll.
   */
  pollSoon(): void {
    if (!this.#running || this.#timer === null) return;
    this.#opts.clock.clearTimeout(this.#timer);
    this.#timer = null;
    void this.#loop();
  }

  /** New ingress overrides (config reload); applied from the next poll. */
  setOverrides(overrides: ReadonlyMap<string, string | null>): void {
    this.#overrides = overrides;
  }

  /** One poll: updates the state, calls onUpdate, returns the new state. Never throws. */
  async pollOnce(): Promise<DashboardState> {
    const ac = new AbortController();
    this.#inflight = ac;
    const { clock, timeoutMs } = this.#opts;
    const timer = clock.setTimeout(() => ac.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    let next: DashboardState;
    try {
      const apps = await this.#fetchApps(ac.signal);
      this.#lastGood = apps;
      next = { reachable: true, apps, lastSuccessMs: clock.now(), lastError: null };
    } catch (err) {
      const message = ac.signal.aborted ? String((ac.signal.reason as Error)?.message ?? ac.signal.reason) : errorText(err);
      next = {
        reachable: false,
        apps: this.#lastGood === null ? null : this.#lastGood.map((a) => ({ ...a, status: 'UNKNOWN' as const })),
        lastSuccessMs: this.#state.lastSuccessMs,
        lastError: message,
      };
      if (this.#state.reachable || this.#state.lastError === null) {
        this.#opts.log?.warn({ url: this.#url, err: message }, 'Serve dashboard unreachable; keeping last known apps');
      }
    } finally {
      clock.clearTimeout(timer);
      if (this.#inflight === ac) this.#inflight = null;
    }
    if (next.reachable && !this.#state.reachable && this.#state.lastError !== null) {
      this.#opts.log?.info({ url: this.#url }, 'Serve dashboard reachable again');
    }
    this.#state = next;
    try {
      this.#opts.onUpdate(next);
    } catch (err) {
      this.#opts.log?.error({ err: errorText(err) }, 'dashboard onUpdate failed');
    }
    return next;
  }

  async #fetchApps(signal: AbortSignal): Promise<ServeApp[]> {
    const res = await this.#fetch(this.#url, { signal, headers: { accept: 'application/json' } });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${body.slice(0, 200).trim()}`);
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      const type = res.headers.get('content-type') ?? 'none';
      throw new Error(`HTTP 200 but the body is not JSON (content-type ${type}): not the Serve dashboard (a proxy or login page?)`);
    }
    if (isObject(json) && serveControllerMissing(json)) throw new Error('Serve controller not running (empty controller_info)');
    const apps = parseServeApplications(json, this.#overrides);
    if (apps instanceof Error) throw new Error(`HTTP 200 but ${apps.message}`);
    return apps;
  }

  async #loop(): Promise<void> {
    if (!this.#running) return;
    await this.pollOnce();
    if (!this.#running) return;
    this.#timer = this.#opts.clock.setTimeout(() => {
      this.#timer = null;
      void this.#loop();
    }, this.#opts.intervalMs);
  }
}

function applicationsUrl(url: string): string {
  const u = new URL(url);
  if (u.pathname === '/' || u.pathname === '') u.pathname = SERVE_APPLICATIONS_PATH;
  return u.toString();
}

function errorText(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  const cause = e?.cause?.code ?? e?.cause?.message;
  return cause ? `${e.message ?? String(err)} (${cause})` : (e?.message ?? String(err));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
