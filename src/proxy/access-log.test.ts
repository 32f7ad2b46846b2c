import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineBatch, JsonLineAccessLog, LoggerAccessLog, writeHundredths, writeUint } from './access-log.ts';

/** A log whose batches are flushed after every line, and the lines it wrote. */
function collecting(): { log: JsonLineAccessLog; lines: string[] } {
  const lines: string[] = [];
  const out = { writableLength: 0, write: (b: Buffer) => lines.push(b.toString('utf8')) };
  return { log: new JsonLineAccessLog(new LineBatch(out, 1)), lines };
}

function text(write: (b: Buffer, p: number) => number): string {
  const b = Buffer.alloc(64, 0x21);
  return b.toString('latin1', 0, write(b, 0));
}

test('JSON lines parse, escape client-controlled strings and keep pino layout', () => {
  const { log, lines } = collecting();
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

test('a batch writes when full and on flush, drops (counting) when the output is backed up, and reuses its buffer only when the output let go of it', () => {
  const writes: Buffer[] = [];
  const out = { writableLength: 0, write: (b: Buffer) => writes.push(Buffer.from(b)) };
  const batch = new LineBatch(out, 10, 100);
  const line = (s: string): boolean => {
    if (!batch.begin(s.length)) return false;
    batch.pos += batch.buf.write(s, batch.pos, 'latin1');
    batch.end();
    return true;
  };
  const first = batch.buf;
  line('aaaa\n');
  assert.equal(writes.length, 0);
  line('bbbbbb\n');
  assert.deepEqual(writes.map(String), ['aaaa\nbbbbbb\n']);
  line('c\n');
  batch.flush();
  batch.flush();
  assert.deepEqual(writes.map(String), ['aaaa\nbbbbbb\n', 'c\n']);
  assert.equal(batch.buf, first, 'an output that wrote synchronously leaves the buffer to be reused');
  // A line longer than the buffer gets a buffer of its own size, after what was batched.
  line('d\n');
  line('x'.repeat(20_000) + '\n');
  batch.flush();
  assert.deepEqual(writes.slice(2).map((b) => b.length), [2, 20_001]);
  // An output that keeps the chunk (still queued) keeps the buffer too: the next line goes to a new one.
  const held: Buffer[] = [];
  const slow = { writableLength: 0, write: (b: Buffer) => { held.push(b); slow.writableLength += b.length; } };
  const b2 = new LineBatch(slow, 4, 1000);
  assert.ok(b2.begin(5));
  b2.pos += b2.buf.write('one\n', b2.pos, 'latin1');
  b2.end();
  assert.ok(b2.begin(5));
  b2.pos += b2.buf.write('two\n', b2.pos, 'latin1');
  b2.end();
  assert.deepEqual(held.map(String), ['one\n', 'two\n']);
  out.writableLength = 1000;
  assert.equal(line('lost\n'), false);
  batch.flush();
  assert.equal(batch.dropped, 1);
  assert.equal(writes.length, 4);
});

test('durations print as round2 would print them, integers as String does', () => {
  const hundredths = (ms: number) => text((b, p) => writeHundredths(b, p, ms));
  for (const ms of [0, 0.001, 0.004, 0.005, 0.01, 0.1, 0.29, 1, 1.5, 1.05, 12.3456, 99.995, 100, 1234.5, 0.125, 7.0049, 1e6 + 0.07, 3e13, 1e20, -0.001, -2.5]) {
    assert.equal(hundredths(ms), String(Math.round(ms * 100) / 100), String(ms));
  }
  for (let i = 0; i < 20_000; i++) {
    const ms = Math.random() * 10 ** (i % 7);
    assert.equal(hundredths(ms), String(Math.round(ms * 100) / 100), String(ms));
  }
  for (const n of [0, 7, 9, 10, 99, 100, 101, 503, 999, 1000, 999_999_999, 1e9, 1e9 + 5, 123_456_789_012, 1_733_000_000_000, Number.MAX_SAFE_INTEGER, 1e21, -1, 2.5]) {
    assert.equal(text((b, p) => writeUint(b, p, n)), String(n));
  }
});

test('client strings with non-ASCII, control or quote characters are escaped; plain ones pass as is', () => {
  const { log, lines } = collecting();
  const paths = ['/llm', '/ü?x=ÿ', '/a\u0000b', '/\ud800', '/tab\there', "/q'~"];
  for (const p of paths) log.log('x', 'GET', p, 'a', 'c', 200, '', 1, 1, 1);
  assert.deepEqual(lines.map((l) => JSON.parse(l).path), paths);
  assert.ok(lines[0]!.includes('"path":"/llm"'));
});

test('any string round-trips, however long, with every field intact', () => {
  const { log, lines } = collecting();
  const pool = ['a', '/', '"', '\\', '\u0001', '\u007f', 'é', '\u2028', '\ud83d\ude00', '\ud800', '\udfff', ' '];
  const rnd = (n: number) => Array.from({ length: n }, () => pool[Math.floor(Math.random() * pool.length)]).join('');
  const cases: string[][] = [];
  // The method, app and cluster repeat in runs and change (their encodings are kept while they repeat).
  for (let i = 0; i < 300; i++) cases.push([rnd(i % 40), i % 7 < 3 ? 'POST' : rnd(3), rnd(i), i % 5 < 2 ? 'app' : rnd(2), i % 3 === 0 ? 'blue' : rnd(2)]);
  cases.push(['id', 'GET', '\u0001'.repeat(20_000), 'app', 'blue']); // 120 KB escaped: more than a batch buffer
  for (const [id, method, path, app, cluster] of cases) log.log(id!, method!, path!, app!, cluster!, 200, 'UF', 2, 1.25, 0.5);
  assert.equal(lines.length, cases.length);
  lines.forEach((l, i) => {
    assert.ok(l.endsWith('}\n') && !l.slice(0, -1).includes('\n'));
    const o = JSON.parse(l);
    assert.deepEqual([o.req_id, o.method, o.path, o.app, o.cluster], cases[i]);
    assert.deepEqual([o.status, o.flag, o.attempts, o.duration_ms, o.ttfb_ms], [200, 'UF', 2, 1.25, 0.5]);
  });
});
