import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { GwBackend, GwRule } from '../core/gateway-rule.ts';
import { compileGatewayRoutes, hostOf, matchGateway, percentages, type GatewayRoutes } from './gateway-routes.ts';
import type { Split } from './traffic-split.ts';

interface R {
  readonly name: string;
  readonly routePrefix: string;
  readonly split: Split;
  readonly targets: readonly string[];
}

function rule(over: Partial<GwRule> & { backends: GwBackend[] }): GwRule {
  return { route: 'ray/r', ruleIndex: 0, hostnames: [], pathType: 'PathPrefix', path: '/', method: null, headers: [], queryParams: [], requestHeaders: null, redirect: null, ...over } as GwRule;
}

const ray = (cluster: string, weight: number): GwBackend => ({ kind: 'ray', cluster, weight, service: `${cluster}-serve-svc` });
const svc = (cluster: string, weight: number): GwBackend => ({ kind: 'service', cluster, weight, service: cluster });

/** Apps `llm` at /llm (on blue and green) and `web` at / (blue only). */
function compile(rules: GwRule[]): GatewayRoutes<R> {
  const served: Record<string, readonly string[]> = { llm: ['blue', 'green'], web: ['blue'] };
  const prefix: Record<string, string> = { llm: '/llm', web: '/' };
  return compileGatewayRoutes<R>(
    rules,
    ['llm', 'web'],
    (app, clusters, weights) => (clusters.some((c) => served[app]!.includes(c)) ? { name: app, routePrefix: prefix[app]!, split: { clusters, weights }, targets: clusters } : null),
    (r, cluster) => ({ name: r.route, routePrefix: '/', split: { clusters: [cluster], weights: [100] }, targets: [cluster] }),
  );
}

const noHeader = () => null;

describe('matchGateway', () => {
  it('sends a Ray-cluster rule through Serve\'s route_prefix table, the app split by the rule\'s raw weights', () => {
    const gw = compile([rule({ backends: [ray('blue', 70), ray('green', 30)] })]);
    const m = matchGateway(gw, 'llm.example.com', '/llm/v1/chat', 'POST', noHeader, '', 0.5);
    assert.equal(m.kind, 'route');
    assert.deepEqual(m.kind === 'route' ? [m.route.name, m.route.split] : null, ['llm', { clusters: ['blue', 'green'], weights: [70, 30] }]);
    const web = matchGateway(gw, '', '/index.html', 'GET', noHeader, '', 0.5);
    assert.equal(web.kind === 'route' ? web.route.name : web.kind, 'web');
    // The rule owns the apps' weights, shown in percent.
    assert.deepEqual(gw.owners.get('llm'), { route: 'ray/r', weights: { blue: 70, green: 30 } });
  });

  it('picks plain and invalid backends by weight; weight 0 never; all zero or none is invalid', () => {
    const gw = compile([rule({ backends: [svc('service/a:80', 3), svc('service/z:80', 0), { kind: 'invalid', weight: 1, reason: 'BackendNotFound', service: 'gone' }] })]);
    const pick = (r: number) => {
      const m = matchGateway(gw, '', '/x', 'GET', noHeader, '', r);
      return m.kind === 'route' ? m.route.targets[0] : m.kind === 'invalid' ? `invalid: ${m.why}` : m.kind;
    };
    assert.equal(pick(0), 'service/a:80');
    assert.equal(pick(0.74), 'service/a:80');
    assert.equal(pick(0.76), 'invalid: backendRef Service "gone" is not usable (BackendNotFound)');
    const zero = compile([rule({ backends: [svc('service/z:80', 0)] })]);
    assert.equal(matchGateway(zero, '', '/', 'GET', noHeader, '', 0.3).kind, 'invalid');
    const none = compile([rule({ backends: [] })]);
    const m = matchGateway(none, '', '/', 'GET', noHeader, '', 0.3);
    assert.equal(m.kind === 'invalid' ? m.why : m.kind, 'the HTTPRoute rule has no backendRefs');
  });

  it('follows Gateway API precedence: the most specific host, then the rule order given (Exact, longer paths first)', () => {
    const gw = compile([
      rule({ route: 'ray/exact', pathType: 'Exact', path: '/llm/health', backends: [svc('service/exact:80', 1)] }),
      rule({ route: 'ray/header', path: '/llm', headers: [{ name: 'x-canary', value: 'yes' }], backends: [svc('service/canary:80', 1)] }),
      rule({ route: 'ray/prefix', path: '/llm', backends: [svc('service/prefix:80', 1)] }),
      rule({ route: 'ray/wild', hostnames: ['*.example.com'], backends: [svc('service/wild:80', 1)] }),
      rule({ route: 'ray/named', hostnames: ['api.example.com'], backends: [svc('service/named:80', 1)] }),
      rule({ route: 'ray/get', method: 'GET', path: '/q', queryParams: [{ name: 'v', value: '2' }], backends: [svc('service/q:80', 1)] }),
    ]);
    const at = (host: string, path: string, headers: Record<string, string> = {}, method = 'GET', query = '') => {
      const m = matchGateway(gw, host, path, method, (n) => headers[n] ?? null, query, 0);
      return m.kind === 'route' ? m.route.name : m.kind;
    };
    assert.equal(at('', '/llm/health'), 'ray/exact');
    assert.equal(at('', '/llm/other'), 'ray/prefix');
    assert.equal(at('', '/llm/other', { 'x-canary': 'yes' }), 'ray/header');
    assert.equal(at('', '/llmx'), 'no_rule', 'PathPrefix matches whole segments only');
    assert.equal(at('a.example.com', '/llm/other'), 'ray/wild', 'a matching hostname beats any path');
    assert.equal(at('api.example.com', '/'), 'ray/named', 'an exact hostname beats a wildcard');
    assert.equal(at('example.com', '/zzz'), 'no_rule', '*.example.com does not match example.com');
    assert.equal(at('', '/q', {}, 'GET', 'a=1&v=2'), 'ray/get');
    assert.equal(at('', '/q', {}, 'POST', 'v=2'), 'no_rule');
  });
});

describe('percentages and hostOf', () => {
  it('rounds raw weights to integer percentages summing to 100 (largest remainder)', () => {
    assert.deepEqual(percentages(['a', 'b'], [1, 2]), { a: 33, b: 67 });
    assert.deepEqual(percentages(['a', 'b', 'c'], [1, 1, 1]), { a: 34, b: 33, c: 33 });
    assert.deepEqual(percentages(['a', 'b'], [70, 30]), { a: 70, b: 30 });
    assert.deepEqual(percentages(['a'], [0]), {});
  });

  it('takes the host name without port, lower case', () => {
    assert.equal(hostOf('LLM.Example.com:8080'), 'llm.example.com');
    assert.equal(hostOf('[::1]:80'), '::1');
    assert.equal(hostOf('example.com.'), 'example.com');
    assert.equal(hostOf(null), '');
  });
});
