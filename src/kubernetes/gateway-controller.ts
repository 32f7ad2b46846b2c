// Gateway API mode (SPEC §11), the loop: on every watched change it evaluates
// the GatewayClasses, Gateways, HTTPRoutes, Services and Pods of the namespace
// (gateway-api.ts), hands the routing rules to the gateway, and — on the
// replica that holds the leader Lease, or the only replica — writes the status
// each object should carry: only when it differs, with the resourceVersion it
// was read at (PUT /status; a 409 waits for the newer object from the watch).
import type { Clock, TimerHandle } from '../core/clock.ts';
import type { Logger } from '../core/log.ts';
import type { GatewayApiConfig } from '../config/types.ts';
import {
  desiredGatewayStatus,
  desiredRouteParents,
  evaluateGatewayApi,
  mergeConditions,
  sameStatus,
  staleAgainst,
  type GatewayApiModel,
  type HTTPRouteObject,
} from './gateway-api.ts';
import type { KubeWatch } from './watch.ts';

export interface GatewayApiControllerDeps {
  readonly cfg: GatewayApiConfig;
  readonly namespace: string;
  readonly watch: KubeWatch;
  readonly clock: Clock;
  readonly log: Logger;
  /** This replica writes status (leader, or the only replica). */
  readonly writesStatus: () => boolean;
  /** Ray clusters the gateway follows now (from the RayServices). */
  readonly rayClusters: () => ReadonlySet<string>;
  /** A new model (rules or plain-Service clusters changed). */
  readonly onModel: (model: GatewayApiModel) => void;
}

export interface GatewayApiStatusReport {
  readonly controller_name: string;
  readonly synced: boolean;
  readonly last_error: string | null;
  readonly writes_status: boolean;
  readonly status_writes: number;
  readonly last_write_error: string | null;
  readonly gateways: ReadonlyArray<{ name: string; accepted: boolean; programmed: boolean; attached_routes: number }>;
  readonly routes: ReadonlyArray<{ name: string; accepted: boolean; resolved_refs: boolean; reason: string }>;
}

type Plural = 'gatewayclasses' | 'gateways' | 'httproutes';

type Put = 'ok' | 'conflict' | 'error';
const RETRY_MS = 1_000;
const CONFLICT_RETRY_MS = 100;

function worse(a: Put, b: Put): Put {
  return a === 'error' || b === 'error' ? 'error' : a === 'conflict' || b === 'conflict' ? 'conflict' : 'ok';
}

export class GatewayApiController {
  readonly #d: GatewayApiControllerDeps;
  #model: GatewayApiModel | null = null;
  #modelKey = '';
  #timer: TimerHandle | null = null;
  #writing = false;
  #again = false;
  #stopped = false;
  #writes = 0;
  #writeError: string | null = null;
  /** What we last wrote per object, by the resourceVersion we wrote against (skip rewriting until the watch shows the result). */
  readonly #written = new Map<string, string>();

  constructor(deps: GatewayApiControllerDeps) {
    this.#d = deps;
  }

  get model(): GatewayApiModel | null {
    return this.#model;
  }

  /**
   * Boot from last_known_good: the saved rules route until the API server
   * answers (no status is written from them; the first evaluation replaces them).
   */
  adoptSaved(rules: GatewayApiModel['rules'], services: GatewayApiModel['services']): void {
    if (this.#model !== null) return;
    const model: GatewayApiModel = { classes: [], gateways: [], routes: [], rules, services };
    this.#model = model;
    this.#modelKey = JSON.stringify([rules, services]);
    this.#d.onModel(model);
  }

  /** Something changed (a watch event, the view, leadership): re-evaluate soon, once per burst. */
  schedule(delayMs = 0): void {
    if (this.#stopped || this.#timer !== null) return;
    this.#timer = this.#d.clock.setTimeout(() => {
      this.#timer = null;
      this.#refresh();
    }, delayMs);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) this.#d.clock.clearTimeout(this.#timer);
    this.#timer = null;
  }

  report(): GatewayApiStatusReport {
    const s = this.#d.watch.gatewayApiStatus();
    const m = this.#model;
    const isTrue = (conds: ReadonlyArray<{ type: string; status: string }>, type: string) => conds.some((c) => c.type === type && c.status === 'True');
    return {
      controller_name: this.#d.cfg.controllerName,
      synced: s?.synced ?? false,
      last_error: s?.lastError ?? null,
      writes_status: this.#d.writesStatus(),
      status_writes: this.#writes,
      last_write_error: this.#writeError,
      gateways: (m?.gateways ?? []).map((g) => ({
        name: `${g.namespace}/${g.name}`,
        accepted: isTrue(g.status.conditions, 'Accepted'),
        programmed: isTrue(g.status.conditions, 'Programmed'),
        attached_routes: g.status.listeners.reduce((a, l) => a + l.attachedRoutes, 0),
      })),
      routes: (m?.routes ?? []).map((r) => {
        const conds = r.parents.flatMap((p) => p.conditions);
        const bad = conds.find((c) => c.status !== 'True');
        return { name: `${r.namespace}/${r.name}`, accepted: r.parents.some((p) => isTrue(p.conditions, 'Accepted')), resolved_refs: r.parents.every((p) => isTrue(p.conditions, 'ResolvedRefs')), reason: bad === undefined ? '' : `${bad.type}=${bad.status} ${bad.reason}: ${bad.message}` };
      }),
    };
  }

  #refresh(): void {
    const w = this.#d.watch;
    if (!(w.gatewayApiStatus()?.synced ?? false)) return;
    const model = evaluateGatewayApi({
      controllerName: this.#d.cfg.controllerName,
      namespace: this.#d.namespace,
      classes: w.gatewayClasses(),
      gateways: w.gateways(),
      routes: w.httpRoutes(),
      services: w.services(),
      pods: w.pods(),
      ownService: this.#d.cfg.service,
      rayClusters: this.#d.rayClusters(),
    });
    this.#model = model;
    const key = JSON.stringify([model.rules, model.services]);
    if (key !== this.#modelKey) {
      this.#modelKey = key;
      this.#d.onModel(model);
    }
    if (this.#d.writesStatus()) void this.#writeAll(model);
  }

  /** One pass of status writes at a time; a change during a pass runs another pass after it. */
  async #writeAll(model: GatewayApiModel): Promise<void> {
    if (this.#writing) {
      this.#again = true;
      return;
    }
    this.#writing = true;
    let retry: Put = 'ok';
    try {
      const w = this.#d.watch;
      const now = new Date(this.#d.clock.wallNow()).toISOString();
      for (const c of model.classes) {
        const obj = w.gatewayClasses().find((x) => x.metadata?.name === c.name);
        if (obj === undefined || staleAgainst(obj.status?.conditions, c.generation)) continue;
        const conditions = mergeConditions(obj.status?.conditions, c.conditions, now);
        if (sameStatus(obj.status?.conditions ?? [], conditions)) continue;
        retry = worse(retry, await this.#put('gatewayclasses', obj, { ...obj.status, conditions }));
      }
      for (const g of model.gateways) {
        const obj = w.gateways().find((x) => x.metadata?.name === g.name);
        if (obj === undefined || staleAgainst(obj.status?.conditions, g.generation)) continue;
        const status = desiredGatewayStatus(obj.status, g, now);
        if (sameStatus(pick(obj.status), pick(status))) continue;
        retry = worse(retry, await this.#put('gateways', obj, { ...obj.status, ...status }));
      }
      const ctrl = this.#d.cfg.controllerName;
      for (const obj of w.httpRoutes()) {
        const v = model.routes.find((r) => r.name === obj.metadata?.name) ?? null;
        const current = obj.status?.parents ?? [];
        if (v === null && !current.some((p) => p.controllerName === ctrl)) continue;
        const gen = obj.metadata?.generation ?? 0;
        if (current.some((p) => p.controllerName === ctrl && staleAgainst(p.conditions, gen))) continue;
        // Not ours any more (parentRef or class changed): our entries go, other controllers' stay.
        const parents = v === null ? current.filter((p) => p.controllerName !== ctrl) : desiredRouteParents(current, v, ctrl, now);
        if (sameStatus(current, parents)) continue;
        retry = worse(retry, await this.#put('httproutes', obj as HTTPRouteObject, { ...obj.status, parents }));
      }
    } finally {
      this.#writing = false;
    }
    if (this.#again) {
      this.#again = false;
      this.schedule();
    } else if (retry !== 'ok') this.schedule(retry === 'conflict' ? CONFLICT_RETRY_MS : RETRY_MS);
  }

  /** PUT one status. */
  async #put(plural: Plural, obj: { metadata?: { name?: string; resourceVersion?: string } }, status: object): Promise<Put> {
    const name = obj.metadata?.name ?? '';
    const rv = obj.metadata?.resourceVersion ?? '';
    const wkey = `${plural}/${name}`;
    const body = JSON.stringify(status);
    if (this.#written.get(wkey) === `${rv}\u0000${body}`) return 'ok'; // already sent for this version; the watch will show it
    try {
      await this.#d.watch.replaceGatewayApiStatus(plural, { ...(obj as object), status } as never);
      this.#written.set(wkey, `${rv}\u0000${body}`);
      this.#writes++;
      if (this.#writeError !== null) this.#d.log.info({ object: wkey }, 'Gateway API status written again');
      this.#writeError = null;
      this.#d.log.debug({ object: wkey }, 'Gateway API status written');
      return 'ok';
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === 409) return 'conflict'; // a newer object: evaluate again once the watch has it
      const message = `${wkey}: ${(err as Error).message}`.slice(0, 300);
      if (this.#writeError === null) this.#d.log.warn({ object: wkey, err: message }, 'could not write Gateway API status; retrying');
      this.#writeError = message;
      return 'error';
    }
  }
}

function pick(s: { addresses?: unknown; conditions?: unknown; listeners?: unknown } | undefined): object {
  return { addresses: s?.addresses ?? [], conditions: s?.conditions ?? [], listeners: s?.listeners ?? [] };
}
