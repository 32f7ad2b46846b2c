// Gateway API mode's request routing (SPEC §11): the HTTPRoute rule a request
// matches, then one of the rule's backends by weight. A Ray-cluster backend
// hands the request to Serve's own route_prefix rule on the Ray clusters of the
// rule (their split is the rule's weights); a plain Service backend is one
// upstream cluster; an unresolvable backend's share gets 500.
//
// Compiled into the snapshot by `compileGatewayRoutes`; requests only read it.
import { hostScore, pathMatches, type GwRule } from '../core/gateway-rule.ts';
import { buildRouteTable, matchRoute, type RouteTable } from './route-table.ts';
import type { Split } from './traffic-split.ts';

/** What a compiled rule needs from an app route (the snapshot's AppRoute). */
export interface SplitRoute<T> {
  readonly routePrefix: string;
  readonly split: Split;
  readonly targets: readonly T[];
}

export interface GwEntry<R> {
  readonly rule: GwRule;
  /** Σ weights of every backend (ray + plain + invalid). */
  readonly total: number;
  /** Σ weights of the Ray-cluster backends. */
  readonly rayWeight: number;
  /** Serve's route table over the rule's Ray clusters, each app split by the rule's weights. */
  readonly rayRoutes: RouteTable<R>;
  readonly plain: ReadonlyArray<{ readonly weight: number; readonly route: R }>;
  readonly invalidWeight: number;
}

export interface GatewayRoutes<R> {
  readonly entries: ReadonlyArray<GwEntry<R>>;
  /** Per app: the HTTPRoute ("ns/name") whose rule sets its weights, and those weights (the first rule in precedence that names a cluster serving it). */
  readonly owners: ReadonlyMap<string, { readonly route: string; readonly weights: Readonly<Record<string, number>> }>;
}

export type GatewayMatch<R> =
  | { readonly kind: 'route'; readonly route: R; readonly rule: GwRule }
  /** The rule answers with a redirect (RequestRedirect filter); no backend. */
  | { readonly kind: 'redirect'; readonly rule: GwRule }
  | { readonly kind: 'no_rule' }
  | { readonly kind: 'no_app'; readonly rule: GwRule }
  | { readonly kind: 'invalid'; readonly rule: GwRule; readonly why: string };

/**
 * Compiles rules against the snapshot's apps. `rayApp(app, clusters, weights)`
 * gives the app's route restricted to `clusters` with raw `weights` (or null
 * when none of them serves the app); `plainRoute(rule, cluster)` the route of a
 * plain Service backend.
 */
export function compileGatewayRoutes<R extends SplitRoute<unknown>>(
  rules: readonly GwRule[],
  appNames: readonly string[],
  rayApp: (app: string, clusters: readonly string[], weights: readonly number[]) => R | null,
  plainRoute: (rule: GwRule, cluster: string) => R,
): GatewayRoutes<R> {
  const owners = new Map<string, { route: string; weights: Record<string, number> }>();
  const entries = rules.map((rule): GwEntry<R> => {
    const clusters: string[] = [];
    const weights: number[] = [];
    let rayWeight = 0;
    let invalidWeight = 0;
    const plain: Array<{ weight: number; route: R }> = [];
    for (const b of rule.backends) {
      if (b.kind === 'ray') {
        const i = clusters.indexOf(b.cluster);
        if (i === -1) {
          clusters.push(b.cluster);
          weights.push(b.weight);
        } else weights[i]! += b.weight;
        rayWeight += b.weight;
      } else if (b.kind === 'service') plain.push({ weight: b.weight, route: plainRoute(rule, b.cluster) });
      else invalidWeight += b.weight;
    }
    const table: Array<readonly [string, R]> = [];
    if (clusters.length > 0) {
      for (const app of appNames) {
        const r = rayApp(app, clusters, weights);
        if (r === null) continue;
        table.push([r.routePrefix, r]);
        if (!owners.has(app) && rayWeight > 0) owners.set(app, { route: rule.route, weights: percentages(clusters, weights) });
      }
    }
    return { rule, total: rayWeight + invalidWeight + plain.reduce((a, p) => a + p.weight, 0), rayWeight, rayRoutes: buildRouteTable(table), plain, invalidWeight };
  });
  return { entries, owners };
}

/** Integer percentages summing to 100 (largest remainder), for display and drain accounting. */
export function percentages(clusters: readonly string[], weights: readonly number[]): Record<string, number> {
  const total = weights.reduce((a, b) => a + b, 0);
  const out: Record<string, number> = {};
  if (total === 0) return out;
  const exact = weights.map((w) => (w * 100) / total);
  const floor = exact.map(Math.floor);
  let left = 100 - floor.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => [e - floor[i]!, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of order) {
    if (left === 0) break;
    floor[i]!++;
    left--;
  }
  clusters.forEach((c, i) => (out[c] = floor[i]!));
  return out;
}

/**
 * The route for one request. `header(name)` returns the first value of a
 * (lower-case) header or null; `query` is the raw query string without "?".
 */
export function matchGateway<R>(
  gw: GatewayRoutes<R>,
  host: string,
  path: string,
  method: string,
  header: (name: string) => string | null,
  query: string,
  random01: number,
): GatewayMatch<R> {
  let best: GwEntry<R> | null = null;
  let bestScore = -1;
  for (const e of gw.entries) {
    const r = e.rule;
    const score = hostScore(r.hostnames, host);
    if (score <= bestScore || !pathMatches(r, path)) continue;
    if (r.method !== null && r.method !== method) continue;
    let ok = true;
    for (const h of r.headers) if (header(h.name) !== h.value) ok = false;
    for (const q of r.queryParams) if (queryValue(query, q.name) !== q.value) ok = false;
    if (!ok) continue;
    best = e;
    bestScore = score;
  }
  if (best === null) return { kind: 'no_rule' };
  const rule = best.rule;
  if (rule.redirect !== null) return { kind: 'redirect', rule };
  if (best.total === 0) return { kind: 'invalid', rule, why: rule.backends.length === 0 ? 'the HTTPRoute rule has no backendRefs' : 'every backendRef of the HTTPRoute rule has weight 0' };
  let point = random01 * best.total;
  if (point < best.rayWeight) {
    const route = matchRoute(best.rayRoutes, path);
    return route === null ? { kind: 'no_app', rule } : { kind: 'route', route, rule };
  }
  point -= best.rayWeight;
  for (const p of best.plain) {
    if (point < p.weight) return { kind: 'route', route: p.route, rule };
    point -= p.weight;
  }
  const bad = rule.backends.find((b) => b.kind === 'invalid');
  return { kind: 'invalid', rule, why: bad !== undefined && bad.kind === 'invalid' ? `backendRef Service "${bad.service}" is not usable (${bad.reason})` : 'backendRef not usable' };
}

function queryValue(query: string, name: string): string | null {
  if (query === '') return null;
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    const k = eq === -1 ? pair : pair.slice(0, eq);
    if (k === name) return eq === -1 ? '' : pair.slice(eq + 1);
  }
  return null;
}

/** The Host header's name without port, lower case ("[::1]:80" → "::1"). */
export function hostOf(hostHeader: string | null): string {
  if (hostHeader === null) return '';
  let h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end === -1 ? h : h.slice(1, end);
  }
  const colon = h.lastIndexOf(':');
  if (colon !== -1) h = h.slice(0, colon);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}
