import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRouteTable, matchRoute, routingPath } from './route-table.ts';

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

test('routingPath strips the query and decodes percent escapes', () => {
  assert.equal(routingPath('/llm/v1?x=1&y=/z'), '/llm/v1');
  assert.equal(routingPath('/ll%6d/a'), '/llm/a');
  assert.equal(routingPath('/bad%zz'), '/bad%zz');
  assert.equal(routingPath('/plain'), '/plain');
});
