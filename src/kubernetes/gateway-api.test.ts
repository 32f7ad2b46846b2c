import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  desiredRouteParents,
  evaluateGatewayApi,
  intersectHostnames,
  mergeConditions,
  sameStatus,
  serviceEndpoints,
  staleAgainst,
  type Condition,
  type GatewayApiInput,
  type HTTPRouteObject,
  type ServiceObject,
} from './gateway-api.ts';
import type { PodObject } from './view.ts';

const CTRL = 'serve-gateway.io/gateway-controller';

function pod(name: string, labels: Record<string, string>, ip: string, ready = true, port = 8000): PodObject {
  return {
    metadata: { name, labels },
    spec: { containers: [{ ports: [{ name: 'serve', containerPort: port }] }] },
    status: { podIP: ip, phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  };
}

const serveSvc = (cluster: string): ServiceObject => ({
  metadata: { name: `${cluster}-serve-svc`, namespace: 'ray' },
  spec: { selector: { 'ray.io/cluster': cluster, 'ray.io/serve': 'true' }, ports: [{ name: 'serve', port: 8000, targetPort: 'serve' }] },
});

/** What KubeRay creates for RayService `llm` mid-upgrade (blue active, green pending at 0). */
function kuberay(over: Partial<GatewayApiInput> = {}, route: Partial<NonNullable<HTTPRouteObject['spec']>> = {}): GatewayApiInput {
  return {
    controllerName: CTRL,
    namespace: 'ray',
    classes: [
      { metadata: { name: 'serve-gateway', generation: 1 }, spec: { controllerName: CTRL } },
      { metadata: { name: 'istio', generation: 1 }, spec: { controllerName: 'istio.io/gateway-controller' } },
    ],
    gateways: [
      { metadata: { name: 'llm-gateway', namespace: 'ray', generation: 2 }, spec: { gatewayClassName: 'serve-gateway', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] } },
      { metadata: { name: 'other', namespace: 'ray', generation: 1 }, spec: { gatewayClassName: 'istio', listeners: [{ name: 'http', protocol: 'HTTP', port: 80 }] } },
    ],
    routes: [
      {
        metadata: { name: 'llm-httproute', namespace: 'ray', generation: 5, creationTimestamp: '2026-12-01T00:00:00Z' },
        spec: {
          parentRefs: [{ name: 'llm-gateway', namespace: 'ray' }],
          rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'blue-serve-svc', namespace: 'ray', port: 8000, weight: 75 }, { name: 'green-serve-svc', namespace: 'ray', port: 8000, weight: 25 }] }],
          ...route,
        },
      },
    ],
    services: [serveSvc('blue'), serveSvc('green'), { metadata: { name: 'serve-gateway', namespace: 'ray' }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] } }],
    pods: [pod('blue-head', { 'ray.io/cluster': 'blue', 'ray.io/serve': 'true' }, '10.1.0.1')],
    ownService: 'serve-gateway',
    rayClusters: new Set(['blue', 'green']),
    ...over,
  };
}

const conds = (list: readonly Condition[]) => Object.fromEntries(list.map((c) => [c.type, `${c.status}/${c.reason}@${c.observedGeneration}`]));

describe('evaluateGatewayApi', () => {
  it('KubeRay\'s objects: class Accepted, Gateway Accepted+Programmed with its address and listener, route parent Accepted+ResolvedRefs, Ray backends', () => {
    const m = evaluateGatewayApi(kuberay());
    assert.deepEqual(m.classes.map((c) => [c.name, conds(c.conditions)]), [['serve-gateway', { Accepted: 'True/Accepted@1' }]]);
    assert.equal(m.gateways.length, 1, 'the Gateway of another class is not ours');
    const g = m.gateways[0]!;
    assert.deepEqual(conds(g.status.conditions), { Accepted: 'True/Accepted@2', Programmed: 'True/Programmed@2' });
    assert.deepEqual(g.status.addresses, [{ type: 'IPAddress', value: '10.96.0.10' }]);
    const l = g.status.listeners[0]!;
    assert.deepEqual([l.name, l.attachedRoutes, l.supportedKinds], ['http', 1, [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }]]);
    assert.deepEqual(conds(l.conditions), { Accepted: 'True/Accepted@2', Programmed: 'True/Programmed@2', ResolvedRefs: 'True/ResolvedRefs@2', Conflicted: 'False/NoConflicts@2' });
    const r = m.routes[0]!;
    assert.deepEqual(r.parents.map((p) => [p.parentRef, p.controllerName, conds(p.conditions)]), [[{ name: 'llm-gateway', namespace: 'ray' }, CTRL, { Accepted: 'True/Accepted@5', ResolvedRefs: 'True/ResolvedRefs@5' }]]);
    assert.deepEqual(m.rules.map((x) => x.backends), [[{ kind: 'ray', cluster: 'blue', weight: 75, service: 'blue-serve-svc' }, { kind: 'ray', cluster: 'green', weight: 25, service: 'green-serve-svc' }]]);
    assert.deepEqual(m.services, []);
  });

  it('ResolvedRefs is about references, not readiness: a pending serve Service with no ready pod resolves', () => {
    const m = evaluateGatewayApi(kuberay({ pods: [] }));
    assert.equal(conds(m.routes[0]!.parents[0]!.conditions)['ResolvedRefs'], 'True/ResolvedRefs@5');
  });

  it('names the reason of each refusal', () => {
    const reason = (input: GatewayApiInput, type: string) => {
      const c = evaluateGatewayApi(input).routes[0]?.parents[0]?.conditions.find((x) => x.type === type);
      return c === undefined ? null : `${c.status}/${c.reason}`;
    };
    const backends = (refs: NonNullable<NonNullable<HTTPRouteObject['spec']>['rules']>[number]['backendRefs']) => ({ rules: [{ backendRefs: refs }] });
    assert.equal(reason(kuberay({}, backends([{ name: 'nope', port: 8000 }])), 'ResolvedRefs'), 'False/BackendNotFound');
    assert.equal(reason(kuberay({}, backends([{ name: 'blue-serve-svc', port: 9999 }])), 'ResolvedRefs'), 'False/BackendNotFound');
    assert.equal(reason(kuberay({}, backends([{ group: 'inference.networking.k8s.io', kind: 'InferencePool', name: 'pool' }])), 'ResolvedRefs'), 'False/InvalidKind');
    assert.equal(reason(kuberay({}, backends([{ name: 'blue-serve-svc', namespace: 'other', port: 8000 }])), 'ResolvedRefs'), 'False/RefNotPermitted');
    assert.equal(reason(kuberay({}, { parentRefs: [{ name: 'llm-gateway', sectionName: 'https' }] }), 'Accepted'), 'False/NoMatchingParent');
    assert.equal(reason(kuberay({}, { parentRefs: [{ name: 'llm-gateway', port: 8080 }] }), 'Accepted'), 'False/NoMatchingParent');
    assert.equal(reason(kuberay({}, { rules: [{ filters: [{ type: 'URLRewrite' }], backendRefs: [{ name: 'blue-serve-svc', port: 8000 }] }] }), 'Accepted'), 'False/UnsupportedValue');
    assert.equal(reason(kuberay({}, { rules: [{ filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x', value: 'y' }] } }], backendRefs: [{ name: 'blue-serve-svc', port: 8000 }] }] }), 'Accepted'), 'True/Accepted');
    const grpcOnly = kuberay({
      gateways: [{ metadata: { name: 'llm-gateway', namespace: 'ray', generation: 1 }, spec: { gatewayClassName: 'serve-gateway', listeners: [{ name: 'http', protocol: 'HTTP', port: 80, allowedRoutes: { kinds: [{ kind: 'GRPCRoute' }] } }] } }],
    });
    assert.equal(reason(grpcOnly, 'Accepted'), 'False/NotAllowedByListeners');
    const lis = evaluateGatewayApi(grpcOnly).gateways[0]!.status.listeners[0]!;
    assert.deepEqual([lis.supportedKinds, lis.attachedRoutes, conds(lis.conditions)['ResolvedRefs']], [[], 0, 'False/InvalidRouteKinds@1']);
    const hosted = kuberay({
      gateways: [{ metadata: { name: 'llm-gateway', namespace: 'ray', generation: 1 }, spec: { gatewayClassName: 'serve-gateway', listeners: [{ name: 'http', protocol: 'HTTP', port: 80, hostname: 'a.example.com' }] } }],
    }, { hostnames: ['b.example.com'] });
    assert.equal(reason(hosted, 'Accepted'), 'False/NoMatchingListenerHostname');
    // A route whose parent is another class's Gateway is not ours: no status entry at all.
    assert.deepEqual(evaluateGatewayApi(kuberay({}, { parentRefs: [{ name: 'other' }] })).routes, []);
  });

  it('Gateways: unsupported protocols, addresses; Programmed waits for the gateway Service\'s address', () => {
    const gw = (listeners: object[], extra: object = {}) =>
      evaluateGatewayApi(kuberay({ gateways: [{ metadata: { name: 'g', namespace: 'ray', generation: 3 }, spec: { gatewayClassName: 'serve-gateway', listeners, ...extra } }] as never })).gateways[0]!;
    assert.deepEqual(conds(gw([{ name: 'https', protocol: 'HTTPS', port: 443 }]).status.conditions), { Accepted: 'False/ListenersNotValid@3', Programmed: 'False/Invalid@3' });
    const mixed = gw([{ name: 'http', protocol: 'HTTP', port: 80 }, { name: 'tcp', protocol: 'TCP', port: 9000 }]);
    assert.equal(conds(mixed.status.conditions)['Accepted'], 'True/ListenersNotValid@3');
    assert.equal(conds(mixed.status.listeners[1]!.conditions)['Accepted'], 'False/UnsupportedProtocol@3');
    assert.equal(conds(gw([{ name: 'http', protocol: 'HTTP', port: 80 }], { addresses: [{ value: '1.2.3.4' }] }).status.conditions)['Accepted'], 'False/UnsupportedAddress@3');
    const noSvc = evaluateGatewayApi(kuberay({ services: [serveSvc('blue')] })).gateways[0]!;
    assert.deepEqual([conds(noSvc.status.conditions)['Programmed'], noSvc.status.addresses], ['False/AddressNotAssigned@2', []]);
    const unset = evaluateGatewayApi(kuberay({ ownService: null })).gateways[0]!;
    assert.equal(conds(unset.status.conditions)['Programmed'], 'True/Programmed@2');
    const params = evaluateGatewayApi(kuberay({ classes: [{ metadata: { name: 'serve-gateway', generation: 4 }, spec: { controllerName: CTRL, parametersRef: { kind: 'ConfigMap', name: 'x' } } }] }));
    assert.deepEqual([conds(params.classes[0]!.conditions), params.gateways], [{ Accepted: 'False/InvalidParameters@4' }, []]);
  });

  it('a Service that selects no followed Ray cluster is a plain backend: its ready pods, targetPort by name', () => {
    const echo: ServiceObject = { metadata: { name: 'echo', namespace: 'ray' }, spec: { selector: { app: 'echo' }, ports: [{ port: 80, targetPort: 'serve' }] } };
    const m = evaluateGatewayApi(
      kuberay(
        { services: [echo], pods: [pod('e1', { app: 'echo' }, '10.2.0.1', true, 3000), pod('e2', { app: 'echo' }, '10.2.0.2', false, 3000), pod('x', { app: 'other' }, '10.2.0.3')] },
        { rules: [{ backendRefs: [{ name: 'echo', port: 80 }] }] },
      ),
    );
    assert.deepEqual(m.rules[0]!.backends, [{ kind: 'service', cluster: 'service/echo:80', weight: 1, service: 'echo' }]);
    assert.deepEqual(m.services, [{ name: 'service/echo:80', endpoints: ['http://10.2.0.1:3000'], dashboard: null, serveApps: null, plainService: true }]);
    assert.deepEqual(serviceEndpoints({}, 80, [pod('e1', { app: 'echo' }, '10.2.0.1')]), [], 'no selector, no endpoints');
    assert.deepEqual(serviceEndpoints({ app: 'echo' }, 8080, [pod('e1', { app: 'echo' }, 'fd00::1')]), ['http://[fd00::1]:8080']);
  });

  it('allowedRoutes.namespaces.from Selector: only the kubernetes.io/metadata.name label is known', () => {
    const withSelector = (selector: object) =>
      evaluateGatewayApi(
        kuberay({
          gateways: [{ metadata: { name: 'llm-gateway', namespace: 'ray', generation: 1 }, spec: { gatewayClassName: 'serve-gateway', listeners: [{ name: 'http', protocol: 'HTTP', port: 80, allowedRoutes: { namespaces: { from: 'Selector', selector } } }] } }],
        }),
      ).routes[0]!.parents[0]!.conditions.find((c) => c.type === 'Accepted')!.reason;
    assert.equal(withSelector({ matchLabels: { 'kubernetes.io/metadata.name': 'ray' } }), 'Accepted');
    assert.equal(withSelector({ matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['ray', 'x'] }] }), 'Accepted');
    assert.equal(withSelector({ matchLabels: { 'kubernetes.io/metadata.name': 'other' } }), 'NotAllowedByListeners');
    assert.equal(withSelector({ matchLabels: { team: 'llm' } }), 'NotAllowedByListeners', 'other namespace labels are not known');
  });

  it('intersects listener and route hostnames', () => {
    assert.equal(intersectHostnames(undefined, []), null);
    assert.deepEqual(intersectHostnames('*.example.com', []), ['*.example.com']);
    assert.deepEqual(intersectHostnames('*.example.com', ['a.example.com', 'other.org']), ['a.example.com']);
    assert.deepEqual(intersectHostnames('a.example.com', ['*.example.com']), ['a.example.com']);
    assert.deepEqual(intersectHostnames('*.example.com', ['*.a.example.com']), ['*.a.example.com']);
    assert.equal(intersectHostnames('a.example.com', ['b.example.com']), undefined);
  });
});

describe('status merge', () => {
  const c = (type: string, status: Condition['status'], gen: number, ltt?: string): Condition => ({ type, status, reason: type, message: '', observedGeneration: gen, ...(ltt ? { lastTransitionTime: ltt } : {}) });

  it('keeps lastTransitionTime unless the status flips, keeps other types, spots a stale cache', () => {
    const current = [c('Accepted', 'True', 1, 't0'), c('Custom', 'True', 1, 't0')];
    const merged = mergeConditions(current, [c('Accepted', 'True', 2), c('Programmed', 'False', 2)], 't1');
    assert.deepEqual(merged.map((x) => [x.type, x.lastTransitionTime, x.observedGeneration]), [['Accepted', 't0', 2], ['Programmed', 't1', 2], ['Custom', 't0', 1]]);
    assert.equal(mergeConditions(current, [c('Accepted', 'False', 2)], 't1')[0]!.lastTransitionTime, 't1');
    assert.equal(staleAgainst(current, 0), true);
    assert.equal(staleAgainst(current, 1), false);
    assert.ok(sameStatus({ a: [c('Accepted', 'True', 1, 'x')], b: 1 }, { b: 1, a: [c('Accepted', 'True', 1, 'y')] }), 'lastTransitionTime and key order do not count');
  });

  it('route parents: other controllers\' entries stay, ours are replaced', () => {
    const theirs = { parentRef: { name: 'g' }, controllerName: 'istio.io/gateway-controller', conditions: [c('Accepted', 'True', 1, 't0')] };
    const oursOld = { parentRef: { name: 'llm-gateway', namespace: 'ray' }, controllerName: CTRL, conditions: [c('Accepted', 'False', 4, 't0')] };
    const v = evaluateGatewayApi(kuberay()).routes[0]!;
    const out = desiredRouteParents([theirs, oursOld], v, CTRL, 't1');
    assert.deepEqual(out.map((p) => [p.controllerName, p.conditions.map((x) => `${x.type}=${x.status}@${x.observedGeneration} ${x.lastTransitionTime}`)]), [
      ['istio.io/gateway-controller', ['Accepted=True@1 t0']],
      [CTRL, ['Accepted=True@5 t1', 'ResolvedRefs=True@5 t1']],
    ]);
  });
});
