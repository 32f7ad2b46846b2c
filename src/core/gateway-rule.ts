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
  /** The rule's RequestHeaderModifier filter, or null. */
  readonly requestHeaders: GwHeaderModifier | null;
  /** The rule's RequestRedirect filter (the request is answered with it, no backend), or null. */
  readonly redirect: GwRedirect | null;
  /** Port of the first Gateway listener the route is attached to (a redirect's default port), or null. */
  readonly listenerPort?: number | null;
}

export interface GwHeaderModifier {
  /** Names as written (sent that way); matched case-insensitively. */
  readonly set: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  readonly add: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  /** Lower case. */
  readonly remove: readonly string[];
}

export interface GwRedirect {
  readonly scheme: string | null;
  readonly hostname: string | null;
  readonly port: number | null;
  /** 301 or 302 (the default). */
  readonly statusCode: number;
  readonly path: { readonly type: 'ReplaceFullPath' | 'ReplacePrefixMatch'; readonly value: string } | null;
}

/**
 * Applies a RequestHeaderModifier to a flat [name, value, ...] header list in
 * place: remove, then set (replaces every value of the name), then add
 * (appends to an existing value with ",", as the Gateway API asks).
 */
export function modifyHeaders(headers: string[], mod: GwHeaderModifier): void {
  const drop = new Set<string>([...mod.remove, ...mod.set.map((h) => h.name.toLowerCase())]);
  if (drop.size > 0) {
    let w = 0;
    for (let r = 0; r < headers.length; r += 2) {
      if (drop.has(headers[r]!.toLowerCase())) continue;
      headers[w] = headers[r]!;
      headers[w + 1] = headers[r + 1]!;
      w += 2;
    }
    headers.length = w;
  }
  for (const h of mod.set) headers.push(h.name, h.value);
  for (const h of mod.add) {
    const lower = h.name.toLowerCase();
    let i = 0;
    while (i < headers.length && headers[i]!.toLowerCase() !== lower) i += 2;
    if (i < headers.length) headers[i + 1] = `${headers[i + 1]},${h.value}`;
    else headers.push(h.name, h.value);
  }
}

/**
 * The Location of a RequestRedirect (HTTPRequestRedirectFilter): scheme,
 * hostname and path from the filter, else from the request. The port: the
 * filter's; else the new scheme's well-known one when the filter sets a
 * scheme; else the Gateway listener's. It is left out when it is the scheme's
 * well-known port.
 */
export function redirectLocation(r: GwRedirect, rule: Pick<GwRule, 'pathType' | 'path' | 'listenerPort'>, req: { scheme: string; host: string; path: string; query: string }): string {
  const scheme = r.scheme ?? req.scheme;
  const host = r.hostname ?? req.host;
  const defaultPort = scheme === 'https' ? 443 : 80;
  const port = r.port ?? (r.scheme !== null ? defaultPort : (rule.listenerPort ?? defaultPort));
  let path = req.path;
  if (r.path?.type === 'ReplaceFullPath') path = r.path.value;
  else if (r.path?.type === 'ReplacePrefixMatch' && rule.pathType === 'PathPrefix') {
    const rest = rule.path === '/' ? req.path : req.path.slice(rule.path.length);
    const prefix = r.path.value.endsWith('/') && rest.startsWith('/') ? r.path.value.slice(0, -1) : r.path.value;
    path = `${prefix}${rest}` || '/';
    if (!path.startsWith('/')) path = `/${path}`;
  }
  const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${scheme}://${hostPart}${port === defaultPort ? '' : `:${port}`}${path}${req.query === '' ? '' : `?${req.query}`}`;
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

