import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRouteTable, matchRoute, routingPath, upgradeRoutingPath, upstreamTarget } from './route-table.ts';
import { parseTarget, unquote } from '../core/request-target.ts';

const table = buildRouteTable<string>([
  ['/llm', 'llm'],
  ['/llm/v2', 'llm-v2'],
  ['/a/b', 'ab'],
  ['/', 'default'],
]);

test('matches like Serve LongestPrefixRouter', () => {
  const cases: Array<[string, string | null]> = [
    ['/llm', 'llm'],
    ['/llm/', 'llm'],
    ['/llm/v1/chat', 'llm'],
    ['/llm/v2', 'llm-v2'],
    ['/llm/v2/', 'llm-v2'],
    ['/llm/v2x', 'llm'],
    ['/llm/v20/a', 'llm'],
    ['/llmx', 'default'],
    ['/LLM', 'default'],
    ['/a/b/c', 'ab'],
    ['/a/c', 'default'],
    ['/', 'default'],
    ['/x//y', 'default'],
  ];
  for (const [path, want] of cases) assert.equal(matchRoute(table, path), want, path);
});

test('no catch-all means null', () => {
  const t = buildRouteTable<string>([['/llm', 'llm']]);
  assert.equal(matchRoute(t, '/other'), null);
  assert.equal(matchRoute(t, '/'), null);
  assert.equal(matchRoute(t, '/llmx'), null);
  assert.equal(matchRoute(t, '/llm/x'), 'llm');
});

test('prefixes sorted longest first, first entry wins on duplicates', () => {
  const t = buildRouteTable<string>([['/', 'd'], ['/a', 'x'], ['/a', 'y'], ['/abc', 'z']]);
  assert.deepEqual(t.prefixes, ['/abc', '/a', '/']);
  assert.equal(matchRoute(t, '/a/q'), 'x');
});

// Expected values below were read from uvicorn 0.38 + httptools 0.9 (Ray 2.53's
// stack): an ASGI app echoing scope["path"] / scope["query_string"] behind
// uvicorn.run(http="auto", ws="auto"), sent each raw target.
test('routingPath is the scope path uvicorn (httptools) builds', () => {
  const cases: Array<[string, string]> = [
    ['/plain', '/plain'],
    ['/llm/v1?x=1&y=/z', '/llm/v1'],
    ['/ll%6d/a', '/llm/a'],
    ['/ll%6d/%ZZ', '/llm/%ZZ'],
    ['/bad%zz', '/bad%zz'],
    ['/ll%6d/%FF', '/llm/\uFFFD'],
    ['/%e2%82%ac', '/\u20AC'],
    ['/%e2%82', '/\uFFFD'],
    ['/%ed%a0%80', '/\uFFFD\uFFFD\uFFFD'],
    ['/%f0%80%80', '/\uFFFD\uFFFD\uFFFD'],
    ['/%C3%28', '/\uFFFD('],
    ['/%EF%BB%BFx', '/\uFEFFx'],
    ['/a%', '/a%'],
    ['/a%4', '/a%4'],
    ['/a%%41', '/a%A'],
    ['/%00x', '/\u0000x'],
    ['/ll%6d/%2F', '/llm//'],
    ['/llm%2Fx', '/llm/x'],
    ['//llm', '//llm'],
    ['/llm;p', '/llm;p'],
    ['/llm#frag', '/llm'],
    ['/llm/a#f?x', '/llm/a'],
    ['/llm?x#y', '/llm'],
    ['http://host/llm/a', '/llm/a'],
    ['http://host/llm/a?x=1#f', '/llm/a'],
    ['HTTP://host/ll%6d', '/llm'],
    ['https://h:8/llm', '/llm'],
    ['http://u@host/llm', '/llm'],
    ['http://[::1]/llm', '/llm'],
    ['ftp://host/llm', '/llm'],
    ['*', '*'],
  ];
  for (const [url, want] of cases) assert.equal(routingPath(url), want, url);
});

test('parseTarget: query without the fragment; null where uvicorn answers 400', () => {
  assert.deepEqual(parseTarget('/llm?x#y'), { path: '/llm', query: 'x' });
  assert.deepEqual(parseTarget('/llm??a=%ZZ'), { path: '/llm', query: '?a=%ZZ' });
  assert.deepEqual(parseTarget('http://h/llm?'), { path: '/llm', query: '' });
  assert.deepEqual(parseTarget('http://h:65535/x?q=1'), { path: '/x', query: 'q=1' });
  const refused = ['', 'http://host', 'http://host?x=1', 'http://host#f', 'http:/llm', 'http:llm', 'http:///llm', 'http://host:99999/llm',
    'http://host:/llm', 'http://exa_mple.com/llm', 'http://u@@host/llm', 'http://u@/llm', 'x-y+z://host/llm', 'llm', './llm', '?x=1', '#f',
    `/${'a'.repeat(0xffff)}`];
  for (const url of refused) {
    assert.equal(parseTarget(url), null, url);
    assert.notEqual(routingPath(url).charCodeAt(0), 47, `${url} must match no route`);
  }
  // node:http refuses these before routingPath sees them; parseTarget still says 400.
  for (const url of ['/a b', '/a\tb', '/a\u007fb', '/llm/\u00e9']) assert.equal(parseTarget(url), null, url);
});

test('matchRoute: a path that does not start with "/" matches nothing, not even "/"', () => {
  assert.equal(matchRoute(table, '*'), null);
  assert.equal(matchRoute(table, ''), null);
  assert.equal(matchRoute(table, 'http://host/llm'), null);
  assert.equal(matchRoute(table, routingPath('http://host/llm/x')), 'llm');
  assert.equal(matchRoute(table, routingPath('/ll%6d/%ZZ')), 'llm');
  assert.equal(matchRoute(table, routingPath('/ll%6d/%FF')), 'llm');
  assert.equal(matchRoute(table, routingPath('/llm#x')), 'llm');
  assert.equal(matchRoute(table, routingPath('/ll%6d%2Fv2')), 'llm-v2');
});

test('upgradeRoutingPath: websocket upgrades split at "?" and unquote, nothing else (uvicorn websockets_impl)', () => {
  assert.equal(upgradeRoutingPath('/llm#x', 'websocket'), '/llm#x');
  assert.equal(upgradeRoutingPath('/llm?a#b', 'WebSocket'), '/llm');
  assert.equal(upgradeRoutingPath('/ll%6d/%ZZ', 'websocket'), '/llm/%ZZ');
  assert.equal(upgradeRoutingPath('http://h/llm', 'websocket'), 'http://h/llm');
  assert.equal(matchRoute(table, upgradeRoutingPath('http://h/llm', 'websocket')), null);
  // Any other upgrade is a plain HTTP request to uvicorn.
  assert.equal(upgradeRoutingPath('/llm#x', 'h2c'), '/llm');
  assert.equal(upgradeRoutingPath('http://h/llm', undefined), '/llm');
});

test('upstreamTarget: origin-form as is, absolute-form as path and query', () => {
  assert.equal(upstreamTarget('/llm/a?x=1#f'), '/llm/a?x=1#f');
  assert.equal(upstreamTarget('HTTP://H/llm/a?x=1#f'), '/llm/a?x=1');
  assert.equal(upstreamTarget('http://u@h:8/ll%6d/%ZZ'), '/ll%6d/%ZZ');
  assert.equal(upstreamTarget('http://h/llm?#f'), '/llm');
  assert.equal(upstreamTarget('http://host'), 'http://host');
});

test('unquote is urllib.parse.unquote (utf-8, errors="replace")', () => {
  assert.equal(unquote('%41%4a%4A'), 'AJJ');
  assert.equal(unquote('%G1%1G%'), '%G1%1G%');
  assert.equal(unquote('%f0%9f%98%80'), '\u{1F600}');
  assert.equal(unquote('%f0%9f%98'), '\uFFFD');
  assert.equal(unquote('%c0%af'), '\uFFFD\uFFFD');
  assert.equal(unquote('\u00e9%41'), '\u00e9A');
});
