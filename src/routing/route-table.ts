// Serve's route rule (LongestPrefixRouter.match_route
// in ray/serve/_private/proxy_router.py): the longest route_prefix that matches
// at a segment boundary wins, "/" catches every path that starts with "/",
// matching is case-sensitive on the path uvicorn decoded (routingPath below).
// Lookup walks the path's "/" boundaries from the right: one Map probe per
// segment, no regex, no allocation beyond the candidate substrings.

import { MAX_TARGET, parseRawTarget, parseTarget, unquote } from '../core/request-target.ts';

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

/**
 * `path` is the routing path (routingPath). Returns null when nothing matches;
 * like Serve's startswith test, a path that does not start with "/" ("*")
 * matches nothing, not even "/".
 */
export function matchRoute<T>(table: RouteTable<T>, path: string): T | null {
  if (path.charCodeAt(0) !== 47 /* / */) return null;
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

// ── Request targets: the path Serve matches on ─────────────────────────────
// Serve routes on the ASGI scope["path"] that uvicorn builds (Ray 2.53: uvicorn
// 0.38, httptools 0.9 parser, proxy.py matches proxy_request.route_path, which
// is scope["path"] minus root_path, i.e. this path). uvicorn's
// HttpToolsProtocol.on_headers_complete does:
//   parsed = httptools.parse_url(target)      # http-parser's http_parser_parse_url
//   path = parsed.path.decode("ascii")         # no path (absolute-form "http://h") → 400
//   if "%" in path: path = urllib.parse.unquote(path)
//   query_string = parsed.query or b""
// so an absolute-form target routes on its path, the fragment ("#...") is
// dropped from path and query, and unquote() keeps invalid escapes ("%ZZ")
// as they are and turns invalid UTF-8 ("%FF") into U+FFFD. Any target that
// http_parser_parse_url refuses (bad host or port, no path) is a 400
// "Invalid HTTP request received." from uvicorn: parseTarget returns null.
// WebSocket upgrades take another route through uvicorn (websockets_impl:
// the target is split at the first "?" and unquoted, nothing else): see
// upgradeRoutingPath.
// `url` is the target as node:http hands it over (req.url): llhttp has
// already refused spaces, control characters and bytes above 0x7e.

/**
 * The path Serve matches on for a raw request target. A target that uvicorn
 * answers with 400 gives a string that matches no route (it does not start
 * with "/"). Cheap for the common origin-form target: index scans only.
 */
export function routingPath(url: string): string {
  if (url.charCodeAt(0) === 47 /* / */ && url.length <= MAX_TARGET) {
    // Origin-form: the path ends at the first "?" or "#" (a "#" after "?" ends the query).
    const q = url.indexOf('?');
    let raw = q === -1 ? url : url.slice(0, q);
    const hash = raw.indexOf('#');
    if (hash !== -1) raw = raw.slice(0, hash);
    return raw.indexOf('%') === -1 ? raw : unquote(raw);
  }
  const t = parseTarget(url);
  if (t !== null) return t.path;
  return url.charCodeAt(0) === 47 ? '' : url;
}

/**
 * The routing path of an HTTP/1.1 upgrade. uvicorn hands `Upgrade: websocket`
 * (with `Connection: upgrade`) to its websockets protocol, which takes
 * unquote(target before the first "?"): no absolute-form, no fragment removal
 * (`/llm#x` is not under /llm there). Other upgrades are plain HTTP requests
 * to uvicorn.
 */
export function upgradeRoutingPath(url: string, upgrade: string | undefined): string {
  if (upgrade === undefined || upgrade.toLowerCase() !== 'websocket') return routingPath(url);
  const q = url.indexOf('?');
  const raw = q === -1 ? url : url.slice(0, q);
  return raw.indexOf('%') === -1 ? raw : unquote(raw);
}

/**
 * The target to send to Serve for the same scope path and query: the target
 * itself when it is origin-form, else "/path?query" (undici refuses a path
 * that is not "/..." or "http(s)://...", and uvicorn ignores the authority of
 * an absolute-form target anyway). A target uvicorn refuses is returned as is.
 */
export function upstreamTarget(url: string): string {
  if (url.charCodeAt(0) === 47 /* / */) return url;
  const r = parseRawTarget(url);
  if (r === null || r.rawPath.charCodeAt(0) !== 47) return url;
  return r.rawQuery === '' ? r.rawPath : `${r.rawPath}?${r.rawQuery}`;
}
