// The Gateway API routing rule, as the Kubernetes side derives it from an
// HTTPRoute (kubernetes/gateway-api.ts) and the data plane compiles and
// matches it (routing/gateway-routes.ts): the value both sides share, with
// the two match predicates. [pure]

export type GwBackend =
  /** A Ray cluster the gateway follows: Serve's route_prefix and admission apply. */
  | { readonly kind: 'ray'; readonly cluster: string; readonly weight: number; readonly service: string }
  /** A plain Service: its ready pods. `cluster` names its upstream cluster (ClusterConfig with plainService). */
  | { readonly kind: 'service'; readonly cluster: string; readonly weight: number; readonly service: string }
  /** Not resolvable (ResolvedRefs=False): its share of requests gets 500. */
  | { readonly kind: 'invalid'; readonly weight: number; readonly reason: string; readonly service: string };

export interface GwHeaderMatch {
  /** Lower case. */
  readonly name: string;
  readonly value: string;
}

export interface GwRule {
  /** "namespace/name" of the HTTPRoute. */
  readonly route: string;
  readonly ruleIndex: number;
  /** Lower-case hostnames the request's Host must match ("*.example.com" wildcards); empty = any. */
  readonly hostnames: readonly string[];
  readonly pathType: 'Exact' | 'PathPrefix';
  /** PathPrefix without a trailing "/" (except "/" itself). */
  readonly path: string;
  readonly method: string | null;
  readonly headers: readonly GwHeaderMatch[];
  readonly queryParams: readonly GwHeaderMatch[];
  readonly backends: readonly GwBackend[];
}

/** How well `host` (lower case, no port) matches a rule's hostnames: -1 no match, 0 any, higher = more specific. */
export function hostScore(hostnames: readonly string[], host: string): number {
  if (hostnames.length === 0) return 0;
  let best = -1;
  for (const h of hostnames) {
    if (h === host) best = Math.max(best, 1000 + h.length);
    else if (h.startsWith('*.') && host.endsWith(h.slice(1)) && host.length > h.length - 1) best = Math.max(best, h.length);
  }
  return best;
}

/** Does a request path match a rule's path (PathPrefix matches whole segments)? */
export function pathMatches(rule: Pick<GwRule, 'pathType' | 'path'>, path: string): boolean {
  if (rule.pathType === 'Exact') return path === rule.path;
  if (rule.path === '/') return true;
  if (!path.startsWith(rule.path)) return false;
  return path.length === rule.path.length || path.charCodeAt(rule.path.length) === 47 /* / */;
}

