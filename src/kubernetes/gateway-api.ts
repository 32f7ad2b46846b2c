// Gateway API mode (SPEC §11), the decisions: which GatewayClasses, Gateways
// and HTTPRoutes are ours, the status each should carry, and the routing rules
// the data plane compiles. [pure: no clock, no I/O; the status writer adds
// lastTransitionTime and the watch feeds the objects]
//
// Model (docs/gateway-api.md): every Gateway of our classes is served by this
// gateway's one listener (one address for the class); an HTTPRoute attached to
// any of them routes by hostname, path, method and headers to its backendRefs,
// chosen per request by weight. A backendRef is a Service in the route's own
// namespace, resolved to its pods by the Service's selector. A Service that
// selects a Ray cluster the gateway follows (`ray.io/cluster: <name>`, as
// KubeRay's `<cluster>-serve-svc` does) is that cluster, with Serve's own
// route_prefix rule and admission behind it; any other Service is a plain
// backend (its ready pods, passive health only).
//
// Sources for the status rules: gateway-api v1.4 apis/v1 (gateway_types.go,
// httproute_types.go, shared_types.go) and KubeRay's IsGatewayReady /
// IsHTTPRouteReady (utils/util.go), which read Accepted + Programmed on the
// Gateway and Accepted + ResolvedRefs on the route's parent entry.
import type { ClusterConfig } from '../config/types.ts';
import type { GwBackend, GwRule } from '../core/gateway-rule.ts';
import type { PodObject } from './view.ts';

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

// ── the objects, as far as they are read ───────────────────────────────────
interface Meta {
  readonly name?: string;
  readonly namespace?: string;
  readonly generation?: number;
  readonly creationTimestamp?: string | Date;
  readonly resourceVersion?: string;
  readonly uid?: string;
  readonly labels?: Record<string, string>;
  readonly deletionTimestamp?: unknown;
}

export interface Condition {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration: number;
  readonly lastTransitionTime?: string;
}

export interface GatewayClassObject {
  readonly metadata?: Meta;
  readonly spec?: { readonly controllerName?: string; readonly parametersRef?: unknown };
  readonly status?: { readonly conditions?: readonly Condition[] };
}

export interface ListenerSpec {
  readonly name?: string;
  readonly hostname?: string;
  readonly port?: number;
  readonly protocol?: string;
  readonly allowedRoutes?: {
    readonly namespaces?: {
      readonly from?: string;
      readonly selector?: {
        readonly matchLabels?: Readonly<Record<string, string>>;
        readonly matchExpressions?: ReadonlyArray<{ readonly key: string; readonly operator: string; readonly values?: readonly string[] }>;
      };
    };
    readonly kinds?: ReadonlyArray<{ readonly group?: string; readonly kind?: string }>;
  };
}

export interface ListenerStatus {
  readonly name: string;
  readonly supportedKinds: ReadonlyArray<{ readonly group: string; readonly kind: string }>;
  readonly attachedRoutes: number;
  readonly conditions: readonly Condition[];
}

export interface GatewayAddress {
  readonly type: 'IPAddress' | 'Hostname';
  readonly value: string;
}

export interface GatewayStatus {
  readonly addresses?: readonly GatewayAddress[];
  readonly conditions?: readonly Condition[];
  readonly listeners?: readonly ListenerStatus[];
}

export interface GatewayObject {
  readonly metadata?: Meta;
  readonly spec?: {
    readonly gatewayClassName?: string;
    readonly listeners?: readonly ListenerSpec[];
    readonly addresses?: readonly unknown[];
    readonly infrastructure?: { readonly parametersRef?: unknown };
  };
  readonly status?: GatewayStatus;
}

export interface ParentRef {
  readonly group?: string;
  readonly kind?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly sectionName?: string;
  readonly port?: number;
}

export interface BackendRef {
  readonly group?: string;
  readonly kind?: string;
  readonly name?: string;
  readonly namespace?: string;
  readonly port?: number;
  readonly weight?: number;
}

export interface RouteMatchSpec {
  readonly path?: { readonly type?: string; readonly value?: string };
  readonly headers?: ReadonlyArray<{ readonly type?: string; readonly name?: string; readonly value?: string }>;
  readonly queryParams?: ReadonlyArray<{ readonly type?: string; readonly name?: string; readonly value?: string }>;
  readonly method?: string;
}

export interface RouteParentStatus {
  readonly parentRef: ParentRef;
  readonly controllerName: string;
  readonly conditions: readonly Condition[];
}

export interface HTTPRouteObject {
  readonly metadata?: Meta;
  readonly spec?: {
    readonly parentRefs?: readonly ParentRef[];
    readonly hostnames?: readonly string[];
    readonly rules?: ReadonlyArray<{
      readonly matches?: readonly RouteMatchSpec[];
      readonly filters?: readonly unknown[];
      readonly backendRefs?: ReadonlyArray<BackendRef & { readonly filters?: readonly unknown[] }>;
    }>;
  };
  readonly status?: { readonly parents?: readonly RouteParentStatus[] };
}

export interface ServiceObject {
  readonly metadata?: Meta;
  readonly spec?: {
    readonly selector?: Record<string, string>;
    readonly clusterIP?: string;
    readonly clusterIPs?: readonly string[];
    readonly ports?: ReadonlyArray<{ readonly name?: string; readonly port?: number; readonly targetPort?: number | string; readonly protocol?: string }>;
  };
  readonly status?: { readonly loadBalancer?: { readonly ingress?: ReadonlyArray<{ readonly ip?: string; readonly hostname?: string }> } };
}

export interface GatewayApiInput {
  readonly controllerName: string;
  /** The namespace the gateway watches (Gateways, HTTPRoutes, Services, Pods). */
  readonly namespace: string;
  readonly classes: readonly GatewayClassObject[];
  readonly gateways: readonly GatewayObject[];
  readonly routes: readonly HTTPRouteObject[];
  readonly services: readonly ServiceObject[];
  readonly pods: readonly PodObject[];
  /** The gateway's own Service name (status.addresses), or null when not configured. */
  readonly ownService: string | null;
  /** Ray clusters the gateway follows (from the RayServices). */
  readonly rayClusters: ReadonlySet<string>;
}

export interface ClassVerdict {
  readonly name: string;
  readonly generation: number;
  readonly conditions: readonly Condition[];
}

export interface GatewayVerdict {
  readonly namespace: string;
  readonly name: string;
  readonly generation: number;
  readonly status: Required<GatewayStatus>;
}

export interface RouteVerdict {
  readonly namespace: string;
  readonly name: string;
  readonly generation: number;
  /** Our entries of status.parents (one per parentRef that names a Gateway of ours). */
  readonly parents: readonly RouteParentStatus[];
}

export interface GatewayApiModel {
  readonly classes: readonly ClassVerdict[];
  readonly gateways: readonly GatewayVerdict[];
  readonly routes: readonly RouteVerdict[];
  /** One entry per (route, rule, match), in precedence order (host specificity is added per request). */
  readonly rules: readonly GwRule[];
  /** Upstream clusters for the plain Services the rules name. */
  readonly services: readonly ClusterConfig[];
}

const HTTP_ROUTE_KIND = { group: GATEWAY_GROUP, kind: 'HTTPRoute' } as const;

function cond(type: string, ok: boolean, reason: string, message: string, generation: number): Condition {
  return { type, status: ok ? 'True' : 'False', reason, message, observedGeneration: generation };
}

/** Evaluates every Gateway API object of the namespace against our controller name. */
export function evaluateGatewayApi(input: GatewayApiInput): GatewayApiModel {
  const ns = input.namespace;
  // GatewayClasses: ours when spec.controllerName is our name.
  const classes: ClassVerdict[] = [];
  const acceptedClasses = new Set<string>();
  for (const c of input.classes) {
    const name = c.metadata?.name;
    if (name === undefined || c.spec?.controllerName !== input.controllerName) continue;
    const gen = c.metadata?.generation ?? 0;
    const params = c.spec?.parametersRef !== undefined && c.spec.parametersRef !== null;
    classes.push({
      name,
      generation: gen,
      conditions: [
        params
          ? cond('Accepted', false, 'InvalidParameters', 'serve-gateway takes no GatewayClass parameters; remove spec.parametersRef', gen)
          : cond('Accepted', true, 'Accepted', `handled by ${input.controllerName}`, gen),
      ],
    });
    if (!params) acceptedClasses.add(name);
  }

  const servicesByName = new Map<string, ServiceObject>();
  for (const s of input.services) if (s.metadata?.name !== undefined && (s.metadata.namespace ?? ns) === ns) servicesByName.set(s.metadata.name, s);
  // null: no own Service configured (Programmed without an address); []: configured, no address yet.
  const addresses = input.ownService === null ? null : ownAddresses(servicesByName.get(input.ownService) ?? null);

  // Gateways of our accepted classes, in this namespace.
  interface GwInfo {
    readonly obj: GatewayObject;
    readonly name: string;
    readonly generation: number;
    readonly listeners: ReadonlyArray<{ spec: ListenerSpec; name: string; valid: boolean; kindsOk: boolean; conditions: Condition[]; supportedKinds: ListenerStatus['supportedKinds'] }>;
    readonly accepted: boolean;
    readonly conditions: Condition[];
    attached: Map<string, number>;
  }
  const gateways = new Map<string, GwInfo>();
  for (const g of input.gateways) {
    const name = g.metadata?.name;
    if (name === undefined || (g.metadata?.namespace ?? ns) !== ns) continue;
    if (!acceptedClasses.has(g.spec?.gatewayClassName ?? '')) continue;
    const gen = g.metadata?.generation ?? 0;
    const listeners = (g.spec?.listeners ?? []).map((l) => evaluateListener(l, gen));
    const valid = listeners.filter((l) => l.valid).length;
    const conditions: Condition[] = [];
    let accepted: boolean;
    if ((g.spec?.addresses?.length ?? 0) > 0) {
      accepted = false;
      conditions.push(cond('Accepted', false, 'UnsupportedAddress', 'spec.addresses is not supported: the address is the gateway Service\'s', gen));
    } else if (g.spec?.infrastructure?.parametersRef !== undefined && g.spec.infrastructure.parametersRef !== null) {
      accepted = false;
      conditions.push(cond('Accepted', false, 'InvalidParameters', 'spec.infrastructure.parametersRef is not supported', gen));
    } else if (valid === 0) {
      accepted = false;
      conditions.push(cond('Accepted', false, 'ListenersNotValid', 'no listener is valid (serve-gateway serves HTTP listeners only)', gen));
    } else {
      accepted = true;
      conditions.push(
        valid === listeners.length
          ? cond('Accepted', true, 'Accepted', 'served by serve-gateway', gen)
          : cond('Accepted', true, 'ListenersNotValid', `${listeners.length - valid} of ${listeners.length} listeners are not valid`, gen),
      );
    }
    if (!accepted) conditions.push(cond('Programmed', false, 'Invalid', 'the Gateway is not accepted', gen));
    else if (addresses !== null && addresses.length === 0) {
      conditions.push(cond('Programmed', false, 'AddressNotAssigned', `the gateway Service "${input.ownService}" has no address yet`, gen));
    } else conditions.push(cond('Programmed', true, 'Programmed', 'routes are live in serve-gateway', gen));
    gateways.set(`${ns}/${name}`, { obj: g, name, generation: gen, listeners, accepted, conditions, attached: new Map() });
  }

  // HTTPRoutes: one parent entry per parentRef naming a Gateway of ours.
  const routes: RouteVerdict[] = [];
  const rules: Array<GwRule & { readonly created: string; readonly matchIndex: number }> = [];
  const plain = new Map<string, ClusterConfig>();
  for (const r of input.routes) {
    const rname = r.metadata?.name;
    const rns = r.metadata?.namespace ?? ns;
    if (rname === undefined || rns !== ns) continue;
    const gen = r.metadata?.generation ?? 0;
    const parents: RouteParentStatus[] = [];
    const resolved = resolveRefs(r, rns, servicesByName, input, plain);
    const unsupported = unsupportedValue(r);
    // Hostnames this route is reachable under, over every accepted attachment (null = any).
    let hostnames: Set<string> | null = new Set();
    let acceptedAny = false;
    let listenerPort: number | null = null;
    for (const ref of r.spec?.parentRefs ?? []) {
      if ((ref.group ?? GATEWAY_GROUP) !== GATEWAY_GROUP || (ref.kind ?? 'Gateway') !== 'Gateway') continue;
      const gw = gateways.get(`${ref.namespace ?? rns}/${ref.name ?? ''}`);
      if (gw === undefined) continue; // not a Gateway of ours: another controller's business
      const candidates = gw.listeners.filter((l) => (ref.sectionName === undefined || ref.sectionName === l.name) && (ref.port === undefined || ref.port === l.spec.port));
      let accepted: Condition;
      if (candidates.length === 0) {
        accepted = cond('Accepted', false, 'NoMatchingParent', `no listener of Gateway ${gw.name} matches ${ref.sectionName !== undefined ? `sectionName "${ref.sectionName}"` : ''}${ref.port !== undefined ? ` port ${ref.port}` : ''}`.trim(), gen);
      } else {
        const allowing = candidates.filter((l) => l.valid && l.kindsOk && namespaceAllowed(l.spec, rns, ns));
        const hostOk: Array<{ l: (typeof allowing)[number]; hosts: string[] | null }> = [];
        for (const l of allowing) {
          const hosts = intersectHostnames(l.spec.hostname, r.spec?.hostnames ?? []);
          if (hosts !== undefined) hostOk.push({ l, hosts });
        }
        if (allowing.length === 0) accepted = cond('Accepted', false, 'NotAllowedByListeners', `no listener of Gateway ${gw.name} allows this route (kind, namespace or protocol)`, gen);
        else if (hostOk.length === 0) accepted = cond('Accepted', false, 'NoMatchingListenerHostname', 'no hostname of the route matches a listener hostname', gen);
        else if (unsupported !== null) accepted = cond('Accepted', false, 'UnsupportedValue', unsupported, gen);
        else {
          accepted = cond('Accepted', true, 'Accepted', `attached to Gateway ${gw.name}`, gen);
          acceptedAny = true;
          for (const { l, hosts } of hostOk) {
            gw.attached.set(l.name, (gw.attached.get(l.name) ?? 0) + 1);
            listenerPort ??= l.spec.port ?? null;
            if (hosts === null) hostnames = null;
            else if (hostnames !== null) for (const h of hosts) hostnames.add(h);
          }
        }
      }
      const refs = resolved.problem === null
        ? cond('ResolvedRefs', true, 'ResolvedRefs', 'every backendRef resolves', gen)
        : cond('ResolvedRefs', false, resolved.problem.reason, resolved.problem.message, gen);
      if (parents.some((p) => sameParentRef(p.parentRef, ref))) continue;
      parents.push({ parentRef: ref, controllerName: input.controllerName, conditions: [accepted, refs] });
    }
    if (parents.length === 0) continue;
    routes.push({ namespace: rns, name: rname, generation: gen, parents });
    if (!acceptedAny) continue;
    const created = String(r.metadata?.creationTimestamp instanceof Date ? r.metadata.creationTimestamp.toISOString() : (r.metadata?.creationTimestamp ?? ''));
    (r.spec?.rules ?? []).forEach((rule, ruleIndex) => {
      const backends = resolved.perRule[ruleIndex] ?? [];
      const matches = rule.matches !== undefined && rule.matches.length > 0 ? rule.matches : [{}];
      matches.forEach((m, matchIndex) => {
        const pathType = m.path?.type === 'Exact' ? 'Exact' : 'PathPrefix';
        let path = m.path?.value ?? '/';
        if (pathType === 'PathPrefix' && path.length > 1 && path.endsWith('/')) path = path.replace(/\/+$/, '') || '/';
        rules.push({
          route: `${rns}/${rname}`,
          ruleIndex,
          matchIndex,
          created,
          hostnames: hostnames === null ? [] : [...hostnames].sort(),
          pathType,
          path,
          method: m.method ?? null,
          headers: (m.headers ?? []).map((h) => ({ name: (h.name ?? '').toLowerCase(), value: h.value ?? '' })),
          queryParams: (m.queryParams ?? []).map((q) => ({ name: q.name ?? '', value: q.value ?? '' })),
          backends,
          ...ruleFilters(rule.filters ?? []),
          listenerPort,
        });
      });
    });
  }

  // Gateway status, now that the attached routes are counted.
  const gwOut: GatewayVerdict[] = [];
  for (const gw of gateways.values()) {
    gwOut.push({
      namespace: ns,
      name: gw.name,
      generation: gw.generation,
      status: {
        addresses: addresses ?? [],
        conditions: gw.conditions,
        listeners: gw.listeners.map((l) => ({ name: l.name, supportedKinds: l.supportedKinds, attachedRoutes: gw.attached.get(l.name) ?? 0, conditions: l.conditions })),
      },
    });
  }
  rules.sort(comparePrecedence);
  return {
    classes,
    gateways: gwOut,
    routes,
    rules: rules.map(({ created: _c, matchIndex: _m, ...rule }) => rule),
    services: [...plain.values()],
  };
}

function evaluateListener(l: ListenerSpec, gen: number) {
  const name = l.name ?? '';
  const protocol = l.protocol ?? '';
  const kinds = l.allowedRoutes?.kinds;
  const supported = kinds === undefined || kinds.length === 0 ? [HTTP_ROUTE_KIND] : kinds.filter((k) => (k.group ?? GATEWAY_GROUP) === GATEWAY_GROUP && k.kind === 'HTTPRoute').map(() => HTTP_ROUTE_KIND);
  const kindsOk = supported.length > 0;
  const badKinds = kinds !== undefined && kinds.length > supported.length;
  const valid = protocol === 'HTTP';
  const conditions: Condition[] = [
    valid
      ? cond('Accepted', true, 'Accepted', 'HTTP listener', gen)
      : cond('Accepted', false, 'UnsupportedProtocol', `protocol ${protocol || '(none)'} is not supported; serve-gateway serves HTTP`, gen),
    valid ? cond('Programmed', true, 'Programmed', 'live', gen) : cond('Programmed', false, 'Invalid', 'the listener is not accepted', gen),
    badKinds ? cond('ResolvedRefs', false, 'InvalidRouteKinds', 'only HTTPRoute (gateway.networking.k8s.io) is supported in allowedRoutes.kinds', gen) : cond('ResolvedRefs', true, 'ResolvedRefs', 'all references resolved', gen),
    cond('Conflicted', false, 'NoConflicts', 'no conflicts', gen),
  ];
  return { spec: l, name, valid, kindsOk, conditions, supportedKinds: valid ? supported.slice(0, 1) : [] };
}

function namespaceAllowed(l: ListenerSpec, routeNs: string, gatewayNs: string): boolean {
  const from = l.allowedRoutes?.namespaces?.from ?? 'Same';
  if (from === 'All') return true;
  if (from === 'Same') return routeNs === gatewayNs;
  if (from !== 'Selector') return false;
  // Namespaces are not watched: the one label every namespace has (its name, set by the API
  // server since Kubernetes 1.22) is all a selector may use here (docs/gateway-api.md).
  const sel = l.allowedRoutes?.namespaces?.selector;
  const labels: Record<string, string> = { [NAMESPACE_NAME_LABEL]: routeNs };
  const exprs = sel?.matchExpressions ?? [];
  const matchLabels = Object.entries(sel?.matchLabels ?? {});
  if (matchLabels.length + exprs.length === 0) return true; // an empty selector selects every namespace
  for (const [k, v] of matchLabels) if (labels[k] !== v) return false;
  for (const e of exprs) {
    const has = e.key in labels;
    const value = labels[e.key];
    const values = e.values ?? [];
    if (e.operator === 'In' && !(has && values.includes(value!))) return false;
    if (e.operator === 'NotIn' && has && values.includes(value!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/**
 * The hostnames a route gets on a listener (Gateway API hostname intersection):
 * null = any host; undefined = no intersection (the route does not attach).
 */
export function intersectHostnames(listener: string | undefined, route: readonly string[]): string[] | null | undefined {
  const l = listener?.toLowerCase();
  const rs = route.map((h) => h.toLowerCase());
  if (l === undefined || l === '') return rs.length === 0 ? null : rs;
  if (rs.length === 0) return [l];
  const out: string[] = [];
  for (const r of rs) {
    // Exact names, a name under a wildcard listener, a wildcard route under a name listener.
    if (r === l) out.push(r);
    else if (l.startsWith('*.') && !r.startsWith('*.') && r.endsWith(l.slice(1))) out.push(r);
    else if (r.startsWith('*.') && !l.startsWith('*.') && l.endsWith(r.slice(1))) out.push(l);
    else if (l.startsWith('*.') && r.startsWith('*.')) {
      // Both wildcards: the more specific one, if it lies inside the other.
      if (l.endsWith(r.slice(1))) out.push(l);
      else if (r.endsWith(l.slice(1))) out.push(r);
    }
  }
  const hosts = [...new Set(out.filter((h) => h !== ''))];
  return hosts.length === 0 ? undefined : hosts;
}

function unsupportedValue(r: HTTPRouteObject): string | null {
  for (const [i, rule] of (r.spec?.rules ?? []).entries()) {
    for (const [j, f] of (rule.filters ?? []).entries()) {
      const type = (f as { type?: string }).type ?? '';
      if (type !== 'RequestHeaderModifier' && type !== 'RequestRedirect') return `rules[${i}].filters[${j}]: ${type || 'this'} filter is not implemented by serve-gateway (RequestHeaderModifier and RequestRedirect are)`;
    }
    for (const [j, b] of (rule.backendRefs ?? []).entries()) if ((b.filters?.length ?? 0) > 0) return `rules[${i}].backendRefs[${j}].filters: filters are not implemented by serve-gateway`;
    for (const [j, m] of (rule.matches ?? []).entries()) {
      if (m.path?.type === 'RegularExpression') return `rules[${i}].matches[${j}].path: RegularExpression is not supported (Exact and PathPrefix are)`;
      for (const h of m.headers ?? []) if ((h.type ?? 'Exact') !== 'Exact') return `rules[${i}].matches[${j}].headers: only Exact header matches are supported`;
      for (const q of m.queryParams ?? []) if ((q.type ?? 'Exact') !== 'Exact') return `rules[${i}].matches[${j}].queryParams: only Exact query matches are supported`;
    }
  }
  return null;
}

/** The rule's RequestHeaderModifier and RequestRedirect filters (the API server has validated their shape). */
function ruleFilters(filters: readonly unknown[]): Pick<GwRule, 'requestHeaders' | 'redirect'> {
  let requestHeaders: GwRule['requestHeaders'] = null;
  let redirect: GwRule['redirect'] = null;
  type KV = { name?: string; value?: string };
  for (const raw of filters) {
    const f = raw as {
      type?: string;
      requestHeaderModifier?: { set?: KV[]; add?: KV[]; remove?: string[] };
      requestRedirect?: { scheme?: string; hostname?: string; port?: number; statusCode?: number; path?: { type?: string; replaceFullPath?: string; replacePrefixMatch?: string } };
    };
    if (f.type === 'RequestHeaderModifier' && f.requestHeaderModifier !== undefined) {
      const m = f.requestHeaderModifier;
      const kv = (list: KV[] | undefined) => (list ?? []).map((h) => ({ name: h.name ?? '', value: h.value ?? '' }));
      requestHeaders = { set: kv(m.set), add: kv(m.add), remove: (m.remove ?? []).map((n) => n.toLowerCase()) };
    } else if (f.type === 'RequestRedirect' && f.requestRedirect !== undefined) {
      const r = f.requestRedirect;
      const path =
        r.path?.type === 'ReplaceFullPath' ? { type: 'ReplaceFullPath' as const, value: r.path.replaceFullPath ?? '/' }
        : r.path?.type === 'ReplacePrefixMatch' ? { type: 'ReplacePrefixMatch' as const, value: r.path.replacePrefixMatch ?? '/' }
        : null;
      redirect = { scheme: r.scheme ?? null, hostname: r.hostname ?? null, port: r.port ?? null, statusCode: r.statusCode === 301 ? 301 : 302, path };
    }
  }
  return { requestHeaders, redirect };
}

interface Resolved {
  readonly perRule: GwBackend[][];
  readonly problem: { reason: string; message: string } | null;
}

function resolveRefs(r: HTTPRouteObject, rns: string, services: ReadonlyMap<string, ServiceObject>, input: GatewayApiInput, plain: Map<string, ClusterConfig>): Resolved {
  let problem: Resolved['problem'] = null;
  const note = (reason: string, message: string) => {
    if (problem === null) problem = { reason, message };
  };
  const perRule = (r.spec?.rules ?? []).map((rule) =>
    (rule.backendRefs ?? []).map((b): GwBackend => {
      const weight = typeof b.weight === 'number' && b.weight >= 0 ? b.weight : 1;
      const name = b.name ?? '';
      const group = b.group ?? '';
      const kind = b.kind ?? 'Service';
      if (group !== '' || kind !== 'Service') {
        note('InvalidKind', `backendRef ${group === '' ? '' : `${group}/`}${kind} ${name}: only core Services are supported`);
        return { kind: 'invalid', weight, reason: 'InvalidKind', service: name };
      }
      if (b.namespace !== undefined && b.namespace !== rns) {
        note('RefNotPermitted', `backendRef Service ${b.namespace}/${name} is in another namespace (ReferenceGrants are not supported)`);
        return { kind: 'invalid', weight, reason: 'RefNotPermitted', service: name };
      }
      const svc = services.get(name);
      if (svc === undefined) {
        note('BackendNotFound', `Service ${rns}/${name} not found`);
        return { kind: 'invalid', weight, reason: 'BackendNotFound', service: name };
      }
      const port = (svc.spec?.ports ?? []).find((p) => p.port === b.port);
      if (port === undefined) {
        note('BackendNotFound', `Service ${rns}/${name} has no port ${b.port ?? '(none)'}`);
        return { kind: 'invalid', weight, reason: 'BackendNotFound', service: name };
      }
      const selector = svc.spec?.selector ?? {};
      const rayCluster = selector['ray.io/cluster'];
      if (rayCluster !== undefined && input.rayClusters.has(rayCluster)) return { kind: 'ray', cluster: rayCluster, weight, service: name };
      const cluster = `service/${name}:${port.port}`;
      if (!plain.has(cluster)) plain.set(cluster, { name: cluster, endpoints: serviceEndpoints(selector, port.targetPort ?? port.port!, input.pods), dashboard: null, serveApps: null, plainService: true });
      return { kind: 'service', cluster, weight, service: name };
    }),
  );
  return { perRule, problem };
}

/** Ready, running pods that the selector picks, as origins (http://ip:port), sorted. A Service without a selector has none. */
export function serviceEndpoints(selector: Readonly<Record<string, string>>, targetPort: number | string, pods: readonly PodObject[]): string[] {
  const keys = Object.keys(selector);
  if (keys.length === 0) return [];
  const out = new Set<string>();
  for (const p of pods) {
    const labels = p.metadata?.labels ?? {};
    if (p.metadata?.deletionTimestamp || !keys.every((k) => labels[k] === selector[k])) continue;
    const ip = p.status?.podIP;
    if (ip === undefined || ip === '' || p.status?.phase !== 'Running') continue;
    if (!(p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false)) continue;
    let port: number | null = typeof targetPort === 'number' ? targetPort : null;
    if (typeof targetPort === 'string') {
      for (const c of p.spec?.containers ?? []) for (const cp of c.ports ?? []) if (cp.name === targetPort && typeof cp.containerPort === 'number') port = cp.containerPort;
      if (port === null && /^\d+$/.test(targetPort)) port = Number(targetPort);
    }
    if (port === null) continue;
    out.add(`http://${ip.includes(':') ? `[${ip}]` : ip}:${port}`);
  }
  return [...out].sort();
}

function ownAddresses(svc: ServiceObject | null): GatewayAddress[] {
  if (svc === null) return [];
  const out: GatewayAddress[] = [];
  for (const i of svc.status?.loadBalancer?.ingress ?? []) {
    if (i.ip) out.push({ type: 'IPAddress', value: i.ip });
    else if (i.hostname) out.push({ type: 'Hostname', value: i.hostname });
  }
  const ips = svc.spec?.clusterIPs ?? (svc.spec?.clusterIP ? [svc.spec.clusterIP] : []);
  for (const ip of ips) if (ip !== '' && ip !== 'None') out.push({ type: 'IPAddress', value: ip });
  return out.slice(0, 16);
}

function sameParentRef(a: ParentRef, b: ParentRef): boolean {
  return (a.group ?? GATEWAY_GROUP) === (b.group ?? GATEWAY_GROUP) && (a.kind ?? 'Gateway') === (b.kind ?? 'Gateway') && a.namespace === b.namespace && a.name === b.name && a.sectionName === b.sectionName && a.port === b.port;
}

/**
 * Gateway API match precedence (httproute_types.go HTTPRouteRule): Exact path
 * before prefix, longer prefix first, method, more header matches, more query
 * matches, then the oldest route, then namespace/name, then rule and match order.
 */
function comparePrecedence(a: GwRule & { created: string; matchIndex: number }, b: GwRule & { created: string; matchIndex: number }): number {
  if (a.pathType !== b.pathType) return a.pathType === 'Exact' ? -1 : 1;
  if (a.path.length !== b.path.length) return b.path.length - a.path.length;
  if ((a.method === null) !== (b.method === null)) return a.method !== null ? -1 : 1;
  if (a.headers.length !== b.headers.length) return b.headers.length - a.headers.length;
  if (a.queryParams.length !== b.queryParams.length) return b.queryParams.length - a.queryParams.length;
  if (a.created !== b.created) return a.created < b.created ? -1 : 1;
  if (a.route !== b.route) return a.route < b.route ? -1 : 1;
  if (a.ruleIndex !== b.ruleIndex) return a.ruleIndex - b.ruleIndex;
  return a.matchIndex - b.matchIndex;
}

// ── status merge (what the writer PUTs) ────────────────────────────────────

/**
 * Merges desired conditions into the current ones: one entry per type, other
 * types kept, lastTransitionTime kept unless the status flips.
 */
export function mergeConditions(current: readonly Condition[] | undefined, desired: readonly Condition[], nowIso: string): Condition[] {
  const out: Condition[] = [];
  for (const d of desired) {
    const was = current?.find((c) => c.type === d.type);
    out.push({ ...d, lastTransitionTime: was !== undefined && was.status === d.status && was.lastTransitionTime ? String(was.lastTransitionTime) : nowIso });
  }
  for (const c of current ?? []) if (!desired.some((d) => d.type === c.type)) out.push(c);
  return out;
}

/** A condition written for a newer generation than `generation`: our copy of the object is stale. */
export function staleAgainst(conditions: readonly Condition[] | undefined, generation: number): boolean {
  return (conditions ?? []).some((c) => typeof c.observedGeneration === 'number' && c.observedGeneration > generation);
}

export function desiredGatewayStatus(current: GatewayStatus | undefined, v: GatewayVerdict, nowIso: string): GatewayStatus {
  return {
    addresses: v.status.addresses,
    conditions: mergeConditions(current?.conditions, v.status.conditions, nowIso),
    listeners: v.status.listeners.map((l) => ({ ...l, conditions: mergeConditions(current?.listeners?.find((x) => x.name === l.name)?.conditions, l.conditions, nowIso) })),
  };
}

export function desiredRouteParents(current: readonly RouteParentStatus[] | undefined, v: RouteVerdict, controllerName: string, nowIso: string): RouteParentStatus[] {
  const others = (current ?? []).filter((p) => p.controllerName !== controllerName);
  const ours = v.parents.map((p) => {
    const was = (current ?? []).find((c) => c.controllerName === controllerName && sameParentRef(c.parentRef, p.parentRef));
    return { ...p, conditions: mergeConditions(was?.conditions, p.conditions, nowIso) };
  });
  return [...others, ...ours].slice(0, 32);
}

/** Same status, ignoring lastTransitionTime and key order. */
export function sameStatus(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  return JSON.stringify(v, (k, x) => {
    if (k === 'lastTransitionTime') return undefined;
    if (x !== null && typeof x === 'object' && !Array.isArray(x)) {
      const o: Record<string, unknown> = {};
      for (const kk of Object.keys(x as object).sort()) o[kk] = (x as Record<string, unknown>)[kk];
      return o;
    }
    return x;
  });
}
