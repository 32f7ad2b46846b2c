// The app route a request goes to: in Gateway API mode the HTTPRoute rule it
// matches picks a backend by weight first (routing/gateway-routes.ts), else
// Serve's route_prefix table decides alone. Shared by HTTP requests and
// upgrades (WebSockets).
import { hostOf, matchGateway } from '../routing/gateway-routes.ts';
import { matchRoute } from '../routing/route-table.ts';
import type { GwRule } from '../core/gateway-rule.ts';
import type { AppRoute, Snapshot } from '../control/snapshot.ts';

export interface AppChoice {
  readonly app: AppRoute | null;
  /** Gateway API mode: the matched rule's chosen backend cannot be used (the request gets 500), else null. */
  readonly invalid: string | null;
  /** Gateway API mode: the matched rule (its filters apply), else null. */
  readonly rule: GwRule | null;
}

const NONE: AppChoice = { app: null, invalid: null, rule: null };

export function selectApp(snap: Snapshot, path: string, method: string, rawHeaders: readonly string[], url: string, random01: number): AppChoice {
  const gw = snap.gateway;
  if (gw === null) {
    const app = matchRoute(snap.routes, path);
    return app === null ? NONE : { app, invalid: null, rule: null };
  }
  const q = url.indexOf('?');
  const m = matchGateway(gw, hostOf(rawHeader(rawHeaders, 'host')), path, method, (n) => rawHeader(rawHeaders, n), q === -1 ? '' : url.slice(q + 1), random01);
  if (m.kind === 'route') return { app: m.route, invalid: null, rule: m.rule };
  if (m.kind === 'redirect') return { app: null, invalid: null, rule: m.rule };
  if (m.kind === 'invalid') return { app: null, invalid: `${m.why} (HTTPRoute ${m.rule.route}, rule ${m.rule.ruleIndex})`, rule: m.rule };
  return NONE;
}

function rawHeader(raw: readonly string[], lowerName: string): string | null {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === lowerName.length && raw[i]!.toLowerCase() === lowerName) return raw[i + 1]!;
  return null;
}
