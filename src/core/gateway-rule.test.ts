import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hostScore, modifyHeaders, pathMatches, redirectLocation, type GwRedirect } from './gateway-rule.ts';

describe('gateway rules', () => {
  it('RequestHeaderModifier: remove, set (every value of the name, any case), add (appended with ",")', () => {
    const h = ['x-header-set', 'original', 'X-Header-Add', 'a', 'x-header-remove', 'gone', 'Keep', 'k', 'X-HEADER-SET', 'second'];
    modifyHeaders(h, { set: [{ name: 'X-Header-Set', value: 'set' }], add: [{ name: 'X-Header-Add', value: 'b' }, { name: 'X-New', value: 'n' }], remove: ['x-header-remove'] });
    assert.deepEqual(h, ['X-Header-Add', 'a,b', 'Keep', 'k', 'X-Header-Set', 'set', 'X-New', 'n']);
  });

  it('RequestRedirect: Location from the filter, else the request; the port is the listener\'s unless a scheme or port is set; well-known ports left out', () => {
    const req = { scheme: 'http', host: 'llm.example.com', path: '/v1/chat', query: 'a=1' };
    const rule = { pathType: 'PathPrefix' as const, path: '/v1', listenerPort: 80 };
    const r = (over: Partial<GwRedirect>): GwRedirect => ({ scheme: null, hostname: null, port: null, statusCode: 302, path: null, ...over });
    assert.equal(redirectLocation(r({ hostname: 'example.org' }), rule, req), 'http://example.org/v1/chat?a=1');
    assert.equal(redirectLocation(r({ hostname: 'example.org' }), { ...rule, listenerPort: 8080 }, req), 'http://example.org:8080/v1/chat?a=1');
    assert.equal(redirectLocation(r({ scheme: 'https' }), { ...rule, listenerPort: 8080 }, req), 'https://llm.example.com/v1/chat?a=1');
    assert.equal(redirectLocation(r({ scheme: 'https', port: 8443 }), rule, req), 'https://llm.example.com:8443/v1/chat?a=1');
    assert.equal(redirectLocation(r({ path: { type: 'ReplaceFullPath', value: '/moved' } }), rule, req), 'http://llm.example.com/moved?a=1');
    assert.equal(redirectLocation(r({ path: { type: 'ReplacePrefixMatch', value: '/v2' } }), rule, req), 'http://llm.example.com/v2/chat?a=1');
    assert.equal(redirectLocation(r({ path: { type: 'ReplacePrefixMatch', value: '/' } }), rule, req), 'http://llm.example.com/chat?a=1');
  });

  it('matches whole path segments and scores hostnames', () => {
    assert.ok(pathMatches({ pathType: 'PathPrefix', path: '/llm' }, '/llm/x'));
    assert.ok(!pathMatches({ pathType: 'PathPrefix', path: '/llm' }, '/llmx'));
    assert.ok(pathMatches({ pathType: 'Exact', path: '/a' }, '/a'));
    assert.ok(hostScore(['a.example.com'], 'a.example.com') > hostScore(['*.example.com'], 'a.example.com'));
    assert.equal(hostScore(['*.example.com'], 'example.com'), -1);
    assert.equal(hostScore([], 'anything'), 0);
  });
});
