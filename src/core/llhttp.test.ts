// The WebAssembly parser against Node's own binding: for every message of a corpus of requests and
// responses (valid, malformed and smuggling attempts), fed whole, split at every byte and one byte
// at a time, both parsers must report the same events, the same heads, bodies and trailers, the
// same error codes at the same byte, and the same result from finish().
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HTTPParser, K_ON_BODY, K_ON_HEADERS, K_ON_HEADERS_COMPLETE, K_ON_MESSAGE_BEGIN, K_ON_MESSAGE_COMPLETE, METHODS, WasmParser } from './llhttp.ts';

interface AnyParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenientFlags: number): void;
  execute(data: Buffer): number | (Error & { code?: string; bytesParsed?: number });
  finish(): undefined | (Error & { code?: string });
  close(): void;
  [k: number]: unknown;
}

/** Feeds `chunks` to a parser and returns what it reported, normalized to compare. */
function run(make: () => AnyParser, type: 'request' | 'response', chunks: Buffer[], opts: { max?: number; headReturn?: number } = {}): string[] {
  const p = make();
  p.initialize(type === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, opts.max ?? 0, 0);
  const log: string[] = [];
  // Node's binding may hand a long head over in parts (kOnHeaders before kOnHeadersComplete).
  let pendingHeaders: string[] = [];
  let pendingUrl = '';
  let inBody = false;
  let body: Buffer[] = [];
  p[K_ON_MESSAGE_BEGIN] = () => {
    log.push('begin');
    inBody = false;
  };
  p[K_ON_HEADERS] = (h: string[], url: string) => {
    if (inBody) log.push(`trailers ${JSON.stringify(h)}`);
    else {
      pendingHeaders.push(...h);
      pendingUrl += url;
    }
  };
  p[K_ON_HEADERS_COMPLETE] = (major: number, minor: number, headers: string[] | undefined, method: number | undefined, url: string | undefined, status: number | undefined, msg: string | undefined, upgrade: boolean, keepAlive: boolean) => {
    const all = [...pendingHeaders, ...(headers ?? [])];
    const u = pendingUrl + (url ?? '');
    pendingHeaders = [];
    pendingUrl = '';
    inBody = true;
    log.push(
      `head ${JSON.stringify({ major, minor, headers: all, method: method === undefined ? null : METHODS[method], url: type === 'request' ? u : null, status: status ?? null, msg: msg ?? null, upgrade, keepAlive })}`,
    );
    return opts.headReturn ?? 0;
  };
  p[K_ON_BODY] = (b: Buffer) => {
    body.push(Buffer.from(b));
  };
  p[K_ON_MESSAGE_COMPLETE] = () => {
    if (body.length > 0) log.push(`body ${Buffer.concat(body).toString('latin1')}`);
    body = [];
    log.push('complete');
  };
  let offset = 0;
  let stopped = false;
  for (const c of chunks) {
    const r = p.execute(c);
    if (typeof r !== 'number') {
      log.push(`error ${r.code} at ${offset + (r.bytesParsed ?? -1)}`);
      stopped = true;
      break;
    }
    if (r !== c.length) {
      log.push(`stopped at ${offset + r}`);
      stopped = true;
      break;
    }
    offset += c.length;
  }
  if (body.length > 0) log.push(`body so far ${Buffer.concat(body).toString('latin1')}`);
  if (!stopped) {
    const f = p.finish();
    log.push(f === undefined ? 'finish ok' : `finish ${f.code}`);
  }
  p.close();
  return log;
}

const native = () => new HTTPParser() as unknown as AnyParser;
const wasm = () => new WasmParser() as unknown as AnyParser;

function splits(msg: Buffer): Buffer[][] {
  const out: Buffer[][] = [[msg]];
  for (let i = 1; i < msg.length; i++) out.push([msg.subarray(0, i), msg.subarray(i)]);
  const bytes: Buffer[] = [];
  for (let i = 0; i < msg.length; i++) bytes.push(msg.subarray(i, i + 1));
  out.push(bytes);
  return out;
}

function same(type: 'request' | 'response', text: string, opts: { max?: number; headReturn?: number } = {}): void {
  const msg = Buffer.from(text, 'latin1');
  for (const chunks of splits(msg)) {
    const a = run(native, type, chunks, opts);
    const b = run(wasm, type, chunks, opts);
    assert.deepEqual(b, a, `${type} ${JSON.stringify(text)} in ${chunks.length} chunks (${chunks.map((c) => c.length).join('+')})`);
  }
}

const manyHeaders = Array.from({ length: 40 }, (_, i) => `X-H${i}: v${i}\r\n`).join('');

const REQUESTS = [
  'GET / HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET /a?b=c HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n',
  'POST /llm HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello',
  'POST /llm HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: b\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t \r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX-Spaces: value  \t \r\nX-Empty:\r\nX-Obs: caf\xe9\r\n\r\n',
  `GET /many HTTP/1.1\r\nHost: a\r\n${manyHeaders}\r\n`,
  'GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello',
  'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\ntunnel bytes',
  // Header names in several spellings.
  'GET / HTTP/1.1\r\nhost: a\r\nUser-Agent: u\r\nACCEPT: */*\r\nContent-Typ: x\r\nContent-Typee: x\r\ncontent-TYPE: y\r\nTE: t\r\nte: t\r\nX-Request-ID: i\r\nx-request-id: j\r\nHostx: h\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n',
  // Malformed and smuggling attempts: each must fail at the same byte with the same code.
  'G@T / HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET / HTTP/1.1\r\nHost : a\r\n\r\n',
  'GET / HTTP/1.1\nHost: a\n\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n',
  'GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n',
  'GET / HTTP/1.1\r\n Host: a\r\n\r\n',
  'GET / HTTP/2.0\r\nHost: a\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nshort',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel',
];

const RESPONSES = [
  'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  'HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n',
  'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end',
  'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x01x',
  'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n',
  'HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx',
  'HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n',
  `HTTP/1.1 200 OK\r\n${manyHeaders}Content-Length: 0\r\n\r\n`,
  'HTTP/1.1 2000 OK\r\n\r\n',
  'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n',
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc',
  'HTTP/1.1 200 OK\r\nX-Bad\x7f: 1\r\n\r\n',
];

test('requests: the same events, heads, bodies and errors as Node’s binding, however the bytes arrive', () => {
  for (const r of REQUESTS) same('request', r);
});

test('responses: the same as Node’s binding, however the bytes arrive', () => {
  for (const r of RESPONSES) same('response', r);
});

test('a response whose body is skipped (HEAD): kOnHeadersComplete returning 1', () => {
  same('response', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n', { headReturn: 1 });
  same('response', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n', { headReturn: 1 });
});

test('the header-size limit: HPE_HEADER_OVERFLOW at the same byte as Node’s binding', () => {
  const big = `GET /${'u'.repeat(60)} HTTP/1.1\r\nHost: a\r\nX-Long: ${'v'.repeat(100)}\r\n\r\n`;
  for (const max of [50, 64, 100, 170, 171, 172, 180, 1000]) same('request', big, { max });
  same('response', `HTTP/1.1 200 OK\r\nX-Long: ${'v'.repeat(100)}\r\nContent-Length: 0\r\n\r\n`, { max: 80 });
  // Trailers count anew after the head.
  same('request', `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: ${'t'.repeat(60)}\r\n\r\n`, { max: 60 });
});

test('chunk extensions: up to 16 KiB per chunk as Node’s binding, more is HPE_CHUNK_EXTENSIONS_OVERFLOW', () => {
  const head = 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n';
  const ok = Buffer.from(`${head}5;${'e'.repeat(16000)}\r\nhello\r\n5;x=${'v'.repeat(16000)}\r\nworld\r\n0;${'z'.repeat(16000)}\r\n\r\n`, 'latin1');
  const big = Buffer.from(`${head}5;${'e'.repeat(20000)}\r\nhello\r\n0\r\n\r\n`, 'latin1');
  const endless = Buffer.from(`${head}5;${'e'.repeat(200_000)}`, 'latin1');
  for (const piece of [ok.length, 1000, 7]) {
    const chunks = (b: Buffer) => Array.from({ length: Math.ceil(b.length / piece) }, (_, i) => b.subarray(i * piece, (i + 1) * piece));
    for (const make of [native, wasm]) {
      const good = run(make, 'request', chunks(ok));
      assert.deepEqual(good.slice(-3), [`body hello${'world'}`, 'complete', 'finish ok'], String(piece));
      for (const bad of [big, endless]) {
        const log = run(make, 'request', chunks(bad));
        assert.match(log.find((l) => l.startsWith('error')) ?? 'none', /^error HPE_CHUNK_EXTENSIONS_OVERFLOW/, `${piece}: ${log.join(' | ').slice(0, 200)}`);
      }
    }
  }
});

test('a copied body chunk outlives the buffer it was read from', () => {
  const p = new WasmParser();
  p.copyBodies = true;
  p.initialize(WasmParser.REQUEST, {}, 0, 0);
  const got: Buffer[] = [];
  p[K_ON_BODY] = (b: Buffer) => got.push(b);
  const buf = Buffer.from('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello', 'latin1');
  assert.equal(p.execute(buf), buf.length);
  buf.fill(0);
  assert.equal(Buffer.concat(got).toString(), 'hello');
  p.close();
});

test('a parser run from inside another parser’s callback parses its own bytes', () => {
  const outer = new WasmParser();
  const inner = new WasmParser();
  outer.initialize(WasmParser.REQUEST, {}, 0, 0);
  inner.initialize(WasmParser.RESPONSE, {}, 0, 0);
  const seen: string[] = [];
  inner[K_ON_HEADERS_COMPLETE] = (_a: number, _b: number, _h: string[], _m: unknown, _u: unknown, status: number) => {
    seen.push(`inner ${status}`);
    return 0;
  };
  outer[K_ON_HEADERS_COMPLETE] = (_a: number, _b: number, headers: string[], _m: number, url: string) => {
    seen.push(`outer ${url} ${headers.join(',')}`);
    const r = Buffer.from('HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n');
    assert.equal(inner.execute(r), r.length);
    return 0;
  };
  outer[K_ON_BODY] = (b: Buffer) => seen.push(`body ${b.toString()}`);
  const req = Buffer.from('POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc');
  assert.equal(outer.execute(req), req.length);
  assert.deepEqual(seen, ['outer /x Host,a,Content-Length,3', 'inner 201', 'body abc']);
  outer.close();
  inner.close();
});
