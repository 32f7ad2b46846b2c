// Gateway API mode: the app route a request goes to. The HTTPRoute rule it
// matches picks a backend by weight first (routing/gateway-routes.ts); a
// Ray-cluster backend then goes through Serve's route_prefix table. Shared by
// HTTP requests and upgrades (WebSockets).
import { hostOf, matchGateway, type GatewayRoutes } from '../routing/gateway-routes.ts';
import type { GwRule } from '../core/gateway-rule.ts';
import type { AppRoute } from '../control/snapshot.ts';

export interface AppChoice {
  readonly app: AppRoute | null;
  /** Gateway API mode: the matched rule's chosen backend cannot be used (the request gets 500), else null. */
  readonly invalid: string | null;
  /** Gateway API mode: the matched rule (its filters apply), else null. */
  readonly rule: GwRule | null;
}

const NONE: AppChoice = { app: null, invalid: null, rule: null };

/**
 * Gateway API mode (the snapshot's `gateway`; without it callers use
 * `matchRoute(snap.routes, path)` and allocate nothing): the HTTPRoute rule,
 * then its backend by weight (`random` is drawn only here).
 */
export function selectGatewayApp(gw: GatewayRoutes<AppRoute>, path: string, method: string, rawHeaders: readonly string[], url: string, random: () => number): AppChoice {
  const q = url.indexOf('?');
  const m = matchGateway(gw, hostOf(rawHeader(rawHeaders, 'host')), path, method, (n) => rawHeader(rawHeaders, n), q === -1 ? '' : url.slice(q + 1), random());
  if (m.kind === 'route') return { app: m.route, invalid: null, rule: m.rule };
  if (m.kind === 'redirect') return { app: null, invalid: null, rule: m.rule };
  if (m.kind === 'invalid') return { app: null, invalid: `${m.why} (HTTPRoute ${m.rule.route}, rule ${m.rule.ruleIndex})`, rule: m.rule };
  return NONE;
}

function rawHeader(raw: readonly string[], lowerName: string): string | null {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === lowerName.length && raw[i]!.toLowerCase() === lowerName) return raw[i + 1]!;
  return null;
}
