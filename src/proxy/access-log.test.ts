import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferedLineSink, JsonLineAccessLog, LoggerAccessLog } from './access-log.ts';

test('JSON lines parse, escape client-controlled strings and keep pino layout', () => {
  const lines: string[] = [];
  const log = new JsonLineAccessLog({ write: (l: string) => lines.push(l) });
  log.log('id"1\n', 'POST', '/llm/v1?q="x"\\', 'llm', 'blue', 200, '', 1, 12.3456, 3.21);
  log.log('id2', 'GET', '/nope', '', '', 404, 'NR', 0, 0.5, -1);
  assert.equal(lines.length, 2);
  assert.ok(lines.every((l) => l.endsWith('}\n') && !l.slice(0, -1).includes('\n')));
  const a = JSON.parse(lines[0]!);
  assert.equal(a.level, 30);
  assert.equal(typeof a.time, 'number');
  assert.equal(a.kind, 'access');
  assert.equal(a.req_id, 'id"1\n');
  assert.equal(a.path, '/llm/v1?q="x"\\');
  assert.deepEqual([a.app, a.cluster, a.status, a.flag, a.attempts, a.duration_ms, a.ttfb_ms], ['llm', 'blue', 200, '', 1, 12.35, 3.21]);
  const b = JSON.parse(lines[1]!);
  assert.equal(b.ttfb_ms, null);
  assert.equal(b.flag, 'NR');
});

test('the logger adapter passes the same fields as an object', () => {
  const objs: object[] = [];
  new LoggerAccessLog({ info: (o: object) => objs.push(o) }).log('r', 'GET', '/x', 'a', 'c', 503, 'QF', 0, 1, -1);
  assert.deepEqual(objs[0], { req_id: 'r', method: 'GET', path: '/x', app: 'a', cluster: 'c', status: 503, flag: 'QF', attempts: 0, duration_ms: 1, ttfb_ms: null });
});

test('buffered sink writes in batches, on flush, and drops (counting) when the output is backed up', () => {
  const writes: string[] = [];
  const out = { writableLength: 0, write: (s: string) => writes.push(s) };
  const sink = new BufferedLineSink(out, 10, 100);
  sink.write('aaaa\n');
  assert.equal(writes.length, 0);
  sink.write('bbbbbb\n');
  assert.deepEqual(writes, ['aaaa\nbbbbbb\n']);
  sink.write('c\n');
  sink.flush();
  sink.flush();
  assert.deepEqual(writes, ['aaaa\nbbbbbb\n', 'c\n']);
  out.writableLength = 1000;
  sink.write('lost\n');
  sink.flush();
  assert.equal(sink.dropped, 1);
  assert.equal(writes.length, 2);
});

test('durations print as round2 would print them', async () => {
  const { hundredths } = await import('./access-log.ts');
  for (const ms of [0, 0.001, 0.004, 0.005, 0.01, 0.1, 0.29, 1, 1.5, 1.05, 12.3456, 99.995, 100, 1234.5, 0.125, 7.0049, 1e6 + 0.07, 3e13]) {
    assert.equal(hundredths(ms), String(Math.round(ms * 100) / 100), String(ms));
  }
  for (let i = 0; i < 20_000; i++) {
    const ms = Math.random() * 10 ** (i % 7);
    assert.equal(hundredths(ms), String(Math.round(ms * 100) / 100), String(ms));
  }
});

test('client strings with non-ASCII, control or quote characters are escaped; plain ones pass as is', () => {
  const lines: string[] = [];
  const log = new JsonLineAccessLog({ write: (l: string) => lines.push(l) });
  const paths = ['/llm', '/ü?x=ÿ', '/a\u0000b', '/\ud800', '/tab\there', "/q'~"];
  for (const p of paths) log.log('x', 'GET', p, 'a', 'c', 200, '', 1, 1, 1);
  assert.deepEqual(lines.map((l) => JSON.parse(l).path), paths);
  assert.ok(lines[0]!.includes('"path":"/llm"'));
});
