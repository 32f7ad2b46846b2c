// Serve's route rule (shared/reference/serve.md §1.1): the longest route_prefix
// that matches at a segment boundary wins, "/" catches everything, matching is
// case-sensitive on the percent-decoded path without the query string.
// Lookup walks the path's "/" boundaries from the right: one Map probe per
// segment, no regex, no allocation beyond the candidate substrings.

export interface RouteTable<T> {
  readonly byPrefix: ReadonlyMap<string, T>;
  /** Prefixes sorted longest first (for display and /-/routes). */
  readonly prefixes: readonly string[];
}

export function buildRouteTable<T>(entries: Iterable<readonly [prefix: string, value: T]>): RouteTable<T> {
  const byPrefix = new Map<string, T>();
  for (const [prefix, value] of entries) {
    if (!byPrefix.has(prefix)) byPrefix.set(prefix, value);
  }
  const prefixes = [...byPrefix.keys()].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
  return { byPrefix, prefixes };
}

/** `path` is the request target's path (no query). Returns null when nothing matches. */
export function matchRoute<T>(table: RouteTable<T>, path: string): T | null {
  const map = table.byPrefix;
  let candidate = path;
  for (;;) {
    const hit = map.get(candidate);
    if (hit !== undefined && candidate !== '/') return hit;
    const cut = candidate.lastIndexOf('/');
    if (cut <= 0) break;
    candidate = candidate.slice(0, cut);
  }
  return map.get('/') ?? null;
}

/** Splits a raw request target into the path Serve matches on (decoded, no query). */
export function routingPath(url: string): string {
  const q = url.indexOf('?');
  const raw = q === -1 ? url : url.slice(0, q);
  if (raw.indexOf('%') === -1) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
