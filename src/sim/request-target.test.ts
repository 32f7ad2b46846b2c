// The simulator's copy of uvicorn's request-target rule must agree with the
// gateway's (src/routing/route-table.ts): same scope path and query, same
// refusals, on hand-picked targets and on a deterministic random sample.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as gateway from '../routing/route-table.ts';
import { parseTarget, unquote } from './request-target.ts';

const PICKED = [
  '/', '/llm', '/ll%6d/%ZZ', '/ll%6d/%FF', '/a%%41', '/llm#f', '/llm?x#y', '/llm??x', '//llm', '*', '*x?y',
  'http://h/llm?x=1#f', 'HTTP://H/llm', 'https://u:p@h:8443/x', 'http://[::1]:80/x', 'http://[fe80::1%25eth0]/x',
  'http://h', 'http://h?x', 'http://h:99999/x', 'http://h:/x', 'http://h_/x', 'http:///x', 'http://u@@h/x', 'x:', '', '?', '#',
];
const ALPHABET = [...'//%%%2FfeEd08C3Zg?#:@[].*htpl-_~;=&+$,!\'()"{}|\\^`<> ', '\t', '\x7f', '\x00', '\x80', '\xff'];
const PREFIXES = ['', '/', '/llm', 'http://', 'HTTP://', 'https://h', 'http://h', 'http://u@h', 'http://[::1]', 'http://h:8000', 'ftp://', 'x:', '*'];

function* sample(n: number): Generator<string> {
  let seed = 7;
  const rnd = (k: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % k;
  };
  for (let i = 0; i < n; i++) {
    let t = PREFIXES[rnd(PREFIXES.length)]!;
    for (let j = rnd(12); j > 0; j--) t += ALPHABET[rnd(ALPHABET.length)]!;
    yield t;
  }
}

test('the simulator derives scope path and query exactly as the gateway does', () => {
  for (const url of [...PICKED, ...sample(20_000)]) {
    assert.deepEqual(parseTarget(url), gateway.parseTarget(url), JSON.stringify(url));
    assert.equal(unquote(url), gateway.unquote(url), JSON.stringify(url));
  }
});
