// The lean HTTP/1.1 server on real loopback sockets, driven with raw bytes:
// framing, keep-alive, pipelining order, bodies, upgrades, and malformed or
// smuggled requests (never handed to the pipeline). The whole integration,
// conformance and fuzz suite also runs on it with SG_SERVER_ENGINE=lean.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { H1Server, type H1Handlers, type H1Request, type H1Response } from './h1-server.ts';
import { K_ON_HEADERS_COMPLETE, WasmParser } from '../core/llhttp.ts';
import { needDrain } from '../core/socket-write.ts';
import { filterRawResponseHead, filterResponseHeaders, type ResponseHeaderInfo } from './headers.ts';

interface Seen {
  requests: H1Request[];
  errors: { code: string; active: H1Response | null }[];
  upgrades: { req: H1Request; head: Buffer }[];
}

async function start(onRequest: (req: H1Request, res: H1Response) => void, t: { after(fn: () => unknown): void }, tweak?: (s: H1Server) => void): Promise<{ server: H1Server; port: number; seen: Seen }> {
  const seen: Seen = { requests: [], errors: [], upgrades: [] };
  const handlers: H1Handlers = {
    request: (req, res) => {
      seen.requests.push(req);
      onRequest(req, res);
    },
    upgrade: (req, socket, head) => {
      seen.upgrades.push({ req, head });
      socket.end('HTTP/1.1 101 Switching Protocols\r\n\r\n');
    },
    connect: (_req, socket) => socket.destroy(),
    clientError: (code, socket, active) => {
      seen.errors.push({ code, active });
      socket.write(`HTTP/1.1 400 Bad Request\r\ncontent-length: ${code.length}\r\nconnection: close\r\n\r\n${code}`);
    },
    drop: () => {},
  };
  const server = new H1Server(handlers);
  server.keepAliveTimeout = 75_000;
  tweak?.(server);
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1' }, resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { server, port: (server.address() as AddressInfo).port, seen };
}

/** Sends raw bytes, collects everything until the server closes or `until` matches. */
function exchange(port: number, data: string | Buffer[], until?: (got: string) => boolean): Promise<{ text: string; closed: boolean; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      resolve({ text, closed, socket: s });
    };
    s.on('connect', () => {
      if (typeof data === 'string') s.write(data, 'latin1');
      else for (const d of data) s.write(d);
    });
    s.on('data', (d) => {
      text += d.toString('latin1');
      if (until?.(text)) finish(false);
    });
    s.on('close', () => finish(true));
    s.on('error', (err) => (done ? undefined : reject(err)));
  });
}

function count(text: string, re: RegExp): number {
  return text.match(new RegExp(re.source, 'g'))?.length ?? 0;
}

const echo = (req: H1Request, res: H1Response): void => {
  const chunks: Buffer[] = [];
  req.readBody({
    onBodyChunk: (c) => chunks.push(c),
    onBodyEnd: () => {
      const body = Buffer.from(`${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`);
      res.writeHead(200, ['content-type', 'text/plain', 'content-length', String(body.length)]);
      res.end(body);
    },
  });
};

test('keep-alive: two requests on one connection, content-length framing, date and keep-alive headers', async (t) => {
  const { port } = await start(echo, t);
  const r = await exchange(port, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello', (s) => s.includes('POST /b hello'));
  r.socket.destroy();
  assert.equal(count(r.text, /HTTP\/1\.1 200 OK\r\n/), 2);
  assert.match(r.text, /content-length: 7\r\n/);
  assert.match(r.text, /connection: keep-alive\r\nkeep-alive: timeout=75\r\n/);
  assert.match(r.text, /date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\n/);
  assert.ok(r.text.indexOf('GET /a ') < r.text.indexOf('POST /b hello'));
  assert.equal(r.closed, false);
});

test('pipelined requests are answered in order even when the first finishes last; bodies stay with their request', async (t) => {
  const held: (() => void)[] = [];
  const { port, seen } = await start((req, res) => {
    const chunks: Buffer[] = [];
    req.readBody({
      onBodyChunk: (c) => chunks.push(c),
      onBodyEnd: () => {
        const answer = () => {
          const body = Buffer.from(`${req.url}:${Buffer.concat(chunks).toString()}`);
          res.writeHead(200, ['content-length', String(body.length)]);
          res.end(body);
        };
        if (req.url === '/1') held.push(answer);
        else answer();
      },
    });
  }, t);
  const got = exchange(port, 'POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nonePOST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwoGET /3 HTTP/1.1\r\nHost: x\r\n\r\n', (x) => x.includes('/3:'));
  while (held.length === 0) await new Promise((r) => setImmediate(r));
  // Only the first is handed over while its response is open.
  assert.equal(seen.requests.length, 1);
  held.shift()!();
  const r = await got;
  r.socket.destroy();
  const order = [...r.text.matchAll(/\/(\d):([a-z]*)/g)].map((m) => `${m[1]}=${m[2]}`);
  assert.deepEqual(order, ['1=one', '2=two', '3=']);
  assert.equal(seen.requests.length, 3);
});

test('framing: chunked for HTTP/1.1 without a length, close-delimited for HTTP/1.0, no body for HEAD and 204', async (t) => {
  const { port } = await start((req, res) => {
    if (req.url === '/204') {
      res.writeHead(204, []);
      res.end();
      return;
    }
    res.writeHead(200, ['content-type', 'text/event-stream']);
    res.flushHeaders();
    res.write(Buffer.from('data: 1\n\n'));
    res.write(Buffer.from('data: 2\n\n'));
    res.end();
  }, t);
  const chunked = await exchange(port, 'GET /s HTTP/1.1\r\nHost: x\r\n\r\n', (s) => s.endsWith('0\r\n\r\n'));
  chunked.socket.destroy();
  assert.match(chunked.text, /transfer-encoding: chunked\r\n/);
  assert.ok(chunked.text.endsWith('\r\n\r\n9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n'), JSON.stringify(chunked.text));
  const old = await exchange(port, 'GET /s HTTP/1.0\r\n\r\n');
  assert.equal(old.closed, true);
  assert.match(old.text, /connection: close\r\n/);
  assert.doesNotMatch(old.text, /transfer-encoding/);
  assert.ok(old.text.endsWith('\r\n\r\ndata: 1\n\ndata: 2\n\n'));
  const head = await exchange(port, 'HEAD /s HTTP/1.1\r\nHost: x\r\n\r\nGET /204 HTTP/1.1\r\nHost: x\r\n\r\n', (s) => s.includes('204 No Content') && s.endsWith('\r\n\r\n'));
  head.socket.destroy();
  assert.equal(count(head.text, /HTTP\/1\.1 /), 2);
  assert.doesNotMatch(head.text, /data:/);
  assert.doesNotMatch(head.text.slice(head.text.indexOf('204')), /transfer-encoding/);
});

test('a chunked request body streams through bodyStream() in order', async (t) => {
  const { port } = await start((req, res) => {
    const chunks: Buffer[] = [];
    const s = req.bodyStream();
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      const body = Buffer.concat(chunks);
      res.writeHead(200, ['content-length', String(body.length)]);
      res.end(body);
    });
  }, t);
  const r = await exchange(port, 'POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n', (s) => s.endsWith('hello world'));
  r.socket.destroy();
  assert.match(r.text, /content-length: 11\r\n/);
});

test('smuggling and malformed heads are parse errors: nothing after them is handed over', async (t) => {
  const cases: [string, string][] = [
    ['CL and TE together', 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['two different Content-Length', 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcdGET /smuggled HTTP/1.1\r\n\r\n'],
    ['bad chunk size', 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /smuggled HTTP/1.1\r\n\r\n'],
    ['space before colon', 'GET /a HTTP/1.1\r\nHost : x\r\n\r\n'],
    ['bare LF line ends', 'GET /a HTTP/1.1\nHost: x\n\nGET /smuggled HTTP/1.1\n\n'],
    ['obs-fold', 'GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n'],
  ];
  for (const [what, raw] of cases) {
    const { port, seen } = await start(echo, t);
    const r = await exchange(port, raw);
    assert.equal(r.closed, true, what);
    assert.ok(seen.errors.length === 1 && seen.errors[0]!.code.startsWith('HPE_'), `${what}: ${JSON.stringify(seen.errors.map((e) => e.code))}`);
    assert.ok(!seen.requests.some((q) => q.url === '/smuggled'), what);
    assert.doesNotMatch(r.text, /smuggled/, what);
  }
});

test('a head over maxHeaderSize is HPE_HEADER_OVERFLOW', async (t) => {
  const { port, seen } = await start(echo, t);
  const r = await exchange(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
  assert.equal(r.closed, true);
  assert.deepEqual(seen.errors.map((e) => e.code), ['HPE_HEADER_OVERFLOW']);
  assert.equal(seen.requests.length, 0);
});

test('a header value with CR or LF is refused (ERR_INVALID_CHAR) and nothing is written', async (t) => {
  let thrown: unknown = null;
  const { port } = await start((_req, res) => {
    try {
      res.writeHead(200, ['x-a', 'ok\r\nset-cookie: evil=1']);
    } catch (err) {
      thrown = err;
    }
    res.writeHead(500, ['content-length', '0']);
    res.end();
  }, t);
  const r = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', (s) => s.endsWith('\r\n\r\n'));
  r.socket.destroy();
  assert.equal((thrown as { code?: string } | null)?.code, 'ERR_INVALID_CHAR');
  assert.match(r.text, /^HTTP\/1\.1 500 /);
  assert.doesNotMatch(r.text, /evil/);
});

test('Connection: close and a client FIN after its request: the response goes out whole, then the connection closes', async (t) => {
  const { port } = await start((req, res) => {
    req.readBody({
      onBodyChunk: () => {},
      // Answered later than the FIN arrives.
      onBodyEnd: () =>
        setImmediate(() => {
          res.writeHead(200, ['content-length', '2']);
          res.end(Buffer.from('ok'));
        }),
    });
  }, t);
  const closeReq = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(closeReq.closed, true);
  assert.match(closeReq.text, /connection: close\r\n[\s\S]*\r\n\r\nok$/);
  const fin = await new Promise<string>((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.end('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    let text = '';
    s.on('data', (d) => (text += d.toString()));
    s.on('close', () => resolve(text));
  });
  assert.match(fin, /^HTTP\/1\.1 200 OK[\s\S]*\r\n\r\nok$/);
});

test('an upgrade leaves the server with the bytes after its head; a pipelined upgrade waits for the response before it', async (t) => {
  let release: (() => void) | null = null;
  const { port, seen } = await start((_req, res) => {
    release = () => {
      res.writeHead(200, ['content-length', '0']);
      res.end();
    };
  }, t);
  const got = exchange(port, 'GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nEARLY', (s) => s.includes('101'));
  while (release === null) await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.equal(seen.upgrades.length, 0, 'the upgrade waits for the response in progress');
  (release as () => void)();
  const r = await got;
  r.socket.destroy();
  assert.ok(r.text.indexOf('200 OK') < r.text.indexOf('101'));
  assert.equal(seen.upgrades.length, 1);
  assert.equal(seen.upgrades[0]!.req.url, '/ws');
  assert.equal(seen.upgrades[0]!.head.toString(), 'EARLY');
});

test('close(): idle connections go on closeIdleConnections(), a response in progress ends with connection: close', async (t) => {
  let release: (() => void) | null = null;
  const { server, port } = await start((req, res) => {
    if (req.url === '/slow') {
      release = () => {
        res.writeHead(200, ['content-length', '2']);
        res.end(Buffer.from('ok'));
      };
      return;
    }
    echo(req, res);
  }, t);
  const idle = await exchange(port, 'GET /1 HTTP/1.1\r\nHost: x\r\n\r\n', (s) => s.includes('GET /1'));
  const idleClosed = new Promise((r) => idle.socket.once('close', r));
  const slow = exchange(port, 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
  while (release === null) await new Promise((r) => setImmediate(r));
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  await idleClosed;
  (release as () => void)();
  const r = await slow;
  assert.equal(r.closed, true);
  assert.match(r.text, /connection: close\r\n[\s\S]*\r\n\r\nok$/);
  await closed;
  assert.equal(server.conns.size, 0);
});

// ── found in review: each was a defect before its fix ─────────────────────

test('a client that leaves mid-upload before anyone reads the body stream does not crash the process', async (t) => {
  let made = false;
  const { port, server } = await start((req) => {
    // Taken as a stream, but nobody listens yet (the pipeline waiting for an upstream connection).
    req.bodyStream();
    made = true;
  }, t);
  const s = connect(port, '127.0.0.1', () => s.write('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial'));
  while (!made) await new Promise((r) => setImmediate(r));
  s.destroy();
  while (server.conns.size > 0) await new Promise((r) => setImmediate(r));
  // Still serving.
  const { port: p2 } = await start(echo, t);
  const r = await exchange(p2, 'GET /after HTTP/1.1\r\nHost: x\r\n\r\n', (x) => x.includes('GET /after'));
  r.socket.destroy();
});

test('a client that does not read its responses is not read either (pipelined flood, answered at once)', async (t) => {
  const body = Buffer.alloc(16 * 1024, 'r');
  const { port, server, seen } = await start((_req, res) => {
    res.writeHead(200, ['content-length', String(body.length)]);
    res.end(body);
  }, t);
  const s = connect(port, '127.0.0.1');
  // Torn down with requests the server never read: the server's close resets the connection.
  s.on('error', () => {});
  t.after(() => s.destroy());
  await new Promise((r) => s.once('connect', r));
  s.pause();
  const one = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  const many = Buffer.concat(Array(4096).fill(one));
  // The client writes until its own buffer holds what the server refuses to read.
  while (s.writableLength < 4 * many.length) s.write(many);
  while (server.conns.size === 0) await new Promise((r) => setImmediate(r));
  const [conn] = [...server.conns];
  assert.ok(conn !== undefined);
  // Until the server has stopped reading because its responses are not taken.
  const deadline = Date.now() + 20_000;
  // (Responses go to the socket's handle directly, core/socket-write.ts: what libuv still holds
  // counts as unsent too.)
  const unsent = (): number => conn.socket.writableLength + ((conn.socket as unknown as { _handle: { writeQueueSize: number } | null })._handle?.writeQueueSize ?? 0);
  while (!(conn.socket.isPaused() && needDrain(conn.socket, conn.writer))) {
    assert.ok(Date.now() < deadline, `server still reading: handed over ${seen.requests.length}, unsent ${unsent()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  // Answered requests stop at about what the socket buffers hold, far from all that was sent.
  assert.ok(unsent() < 8 << 20, `server-side unsent bytes: ${unsent()}`);
  assert.ok(seen.requests.length < 4096 * 2, `handed over: ${seen.requests.length}`);
  assert.ok(s.writableLength > 2 * many.length, 'the client is left holding its requests');
});

test('pipelined requests behind one that closes the connection are never handed over', async (t) => {
  const { port, seen } = await start((_req, res) => {
    res.writeHead(200, ['content-length', '0', 'connection', 'close']);
    res.end();
  }, t);
  const r = await exchange(port, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nxGET /c HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal(r.closed, true);
  assert.deepEqual(seen.requests.map((q) => q.url), ['/a']);
  assert.equal(count(r.text, /HTTP\/1\.1 /), 1);
  assert.deepEqual(seen.errors, []);
});

test('HTTP/1.1 without Host is refused in its turn (ERR_MISSING_HOST), HTTP/1.0 without Host is served', async (t) => {
  const { port, seen } = await start(echo, t);
  const r = await exchange(port, 'GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /nohost HTTP/1.1\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal(r.closed, true);
  assert.deepEqual(seen.requests.map((q) => q.url), ['/ok']);
  assert.deepEqual(seen.errors.map((e) => [e.code, e.active]), [['ERR_MISSING_HOST', null]]);
  assert.ok(r.text.indexOf('GET /ok') < r.text.indexOf('400 Bad Request'));
  const old = await exchange(port, 'GET /old HTTP/1.0\r\n\r\n');
  assert.match(old.text, /GET \/old/);
});

test('keep-alive timeout counts from when the response left, not from end(): a slow reader gets all of it', async (t) => {
  const big = Buffer.alloc(8 << 20, 'b');
  let ended = false;
  const { port, server } = await start((_req, res) => {
    res.writeHead(200, ['content-length', String(big.length)]);
    res.end(big);
    ended = true;
  }, t, (srv) => (srv.keepAliveTimeout = 1));
  const s = connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  t.after(() => s.destroy());
  s.pause();
  while (!ended) await new Promise((r) => setImmediate(r));
  const [conn] = [...server.conns];
  assert.ok(conn !== undefined && conn.socket.writableLength > 0, 'the response is still in the write buffer');
  server.sweep(performance.now() + 60_000);
  assert.equal(conn.socket.destroyed, false, 'not closed as idle while its response is unsent');
  let got = 0;
  s.on('data', (d: Buffer) => (got += d.length));
  s.resume();
  while (got < big.length) await new Promise((r) => setImmediate(r));
  // Now idle for real: the sweep closes it.
  while (conn.socket.writableLength > 0) await new Promise((r) => setImmediate(r));
  server.sweep(performance.now() + 60_000);
  assert.equal(conn.socket.destroyed, true);
});

test('timeouts through sweep(): a head not finished in headersTimeout and a body not finished in requestTimeout are ERR_HTTP_REQUEST_TIMEOUT', async (t) => {
  let handed: H1Response | null = null;
  const { server, port, seen } = await start((req, res) => {
    handed = res;
    req.readBody({ onBodyChunk: () => {}, onBodyEnd: () => {} });
  }, t, (srv) => {
    srv.headersTimeout = 1000;
    srv.requestTimeout = 5000;
  });
  const head = connect(port, '127.0.0.1', () => head.write('GET / HTTP/1.1\r\nHost: x\r\n'));
  const body = connect(port, '127.0.0.1', () => body.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc'));
  t.after(() => {
    head.destroy();
    body.destroy();
  });
  while (server.conns.size < 2 || handed === null) await new Promise((r) => setImmediate(r));
  server.sweep(performance.now() + 500);
  assert.equal(seen.errors.length, 0, 'nothing is late yet');
  server.sweep(performance.now() + 2000);
  assert.deepEqual(seen.errors.map((e) => [e.code, e.active]), [['ERR_HTTP_REQUEST_TIMEOUT', null]]);
  server.sweep(performance.now() + 6000);
  assert.equal(seen.errors.length, 2);
  assert.equal(seen.errors[1]!.code, 'ERR_HTTP_REQUEST_TIMEOUT');
  assert.equal(seen.errors[1]!.active, handed, 'the body timeout names the response in progress');
});

test('a body shorter or longer than its content-length closes the connection instead of breaking the framing', async (t) => {
  const { port } = await start((req, res) => {
    res.writeHead(200, ['content-length', '5']);
    if (req.url === '/long') {
      assert.equal(res.write(Buffer.from('123456')), false);
      res.end();
    } else res.end(Buffer.from('123'));
  }, t);
  for (const path of ['/short', '/long']) {
    const r = await exchange(port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(r.closed, true, path);
    // The head was still pending: nothing at all goes out, and /next is never read.
    assert.equal(r.text, '', `${path}: no partial response is passed off as a whole one`);
  }
});

test('writeHeadParsed (headers that came out of llhttp) writes what writeHead writes', async (t) => {
  const headers = ['content-type', 'text/plain', 'x-a', 'tab\there ÿ', 'content-length', '2'];
  const { port } = await start((req, res) => {
    if (req.url === '/parsed') res.writeHeadParsed(200, headers);
    else res.writeHead(200, headers);
    res.end(Buffer.from('ok'));
  }, t);
  const strip = (x: string) => x.replace(/date: [^\r]*\r\n/, '');
  const a = await exchange(port, 'GET /checked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const b = await exchange(port, 'GET /parsed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(strip(b.text), strip(a.text));
  assert.match(a.text, /x-a: tab\there ÿ\r\n/);
});

test('after a response that closes the connection, what the client still sends is neither handed over nor timed out', async (t) => {
  const big = Buffer.alloc(8 << 20, 'a');
  let ended = false;
  const { server, port, seen } = await start((_req, res) => {
    res.writeHead(200, ['content-length', String(big.length), 'connection', 'close']);
    res.end(big);
    ended = true;
  }, t);
  const s = connect(port, '127.0.0.1');
  // Torn down with requests the server never read: the server's close resets the connection.
  s.on('error', () => {});
  t.after(() => s.destroy());
  await new Promise((r) => s.once('connect', r));
  s.pause(); // a slow reader: the closing response stays in the server's buffer
  s.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\n');
  while (!ended) await new Promise((r) => setImmediate(r));
  const [conn] = [...server.conns];
  assert.ok(conn !== undefined);
  await new Promise<void>((r) => s.write('GET /b HTTP/1.1\r\nHost: x\r\n\r\n', () => r()));
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  server.sweep(performance.now() + 120_000);
  assert.deepEqual(seen.requests.map((q) => q.url), ['/a']);
  assert.deepEqual(seen.errors, [], 'no request timeout for bytes after the closing response');
  assert.equal(conn.socket.destroyed, false, 'the response still goes out whole');
});

test('writeHeadRaw (a response head still in bytes, filtered by filterRawResponseHead) writes what the string path writes', async (t) => {
  // Upstream heads: names in several cases, hop-by-hop and Connection headers, trailing spaces,
  // empty values, an upstream x-request-id and date, no length (chunked downstream), an event
  // stream, HEAD and HTTP/1.0 requests, statuses without a body, a non-canonical separator.
  const heads = [
    'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\ndate: Tue, 01 Dec 2026 10:00:00 GMT\r\nx-request-id: up-1\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n',
    'HTTP/1.1 201 Created\r\nX-Trail: v \t\r\nX-A:   spaced value  \t\r\nX-Empty:\r\nTE: trailers\r\nTrailer: x\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nHttp2-Settings: y\r\ncontent-length: 5\r\n\r\n',
    'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n',
    'HTTP/1.1 200 OK\r\nconnection: close\r\nx-b: ÿ tab\there\r\ncontent-length: 5\r\n\r\n',
    'HTTP/1.1 204 No Content\r\nx-c: 1\r\n\r\n',
    'HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\nSERVER: uvicorn\r\n\r\n',
    'HTTP/1.1 200 OK\r\nconnection: x-drop, keep-alive\r\nx-drop: 1\r\ncontent-length: 5\r\n\r\n',
    'HTTP/1.1 299 Custom\r\ncontent-length: 5\r\n\r\n',
  ];
  const used: Record<string, boolean> = {};
  const infos: Record<string, ResponseHeaderInfo> = {};
  const { port } = await start((req, res) => {
    const [, mode, n] = req.url.split('/');
    const p = new WasmParser();
    p.rawHeads = true;
    p.initialize(WasmParser.RESPONSE, {}, 0, 0);
    p[K_ON_HEADERS_COMPLETE] = (_a: number, _b: number, headers: string[] | null, _m: unknown, _u: unknown, status: number) => {
      assert.equal(headers, null);
      const info: ResponseHeaderInfo = { hasRequestId: false, contentLength: -1, eventStream: false, hasDate: false };
      const keep: number[] = [];
      let raw = false;
      if (mode === 'raw' && filterRawResponseHead(p.raw, keep, info)) {
        const extra = info.hasRequestId ? ['x-serve-cluster', 'blue'] : ['x-request-id', 'gw-1', 'x-serve-cluster', 'blue'];
        raw = res.writeHeadRaw(status, p.raw, keep, info, extra);
      }
      if (!raw) {
        const out: string[] = [];
        Object.assign(info, { hasRequestId: false, contentLength: -1, eventStream: false, hasDate: false });
        filterResponseHeaders(p.raw.headers(), out, info);
        if (!info.hasRequestId) out.push('x-request-id', 'gw-1');
        out.push('x-serve-cluster', 'blue');
        res.writeHeadParsed(status, out);
      }
      used[`${mode}/${n}`] = raw;
      infos[`${mode}/${n}`] = info;
      return 0;
    };
    assert.equal(p.execute(Buffer.from(heads[Number(n)]!, 'latin1')), heads[Number(n)]!.length);
    p.close();
    res.end(Buffer.from('hello'));
  }, t);
  const strip = (x: string) => x.replace(/date: [A-Z][a-z][a-z], \d\d [A-Z][a-z][a-z] \d{4} [\d:]{8} GMT\r\n/, 'date: (now)\r\n');
  for (let n = 0; n < heads.length; n++) {
    for (const [method, version] of [['GET', '1.1'], ['HEAD', '1.1'], ['GET', '1.0']] as const) {
      const ask = (mode: string) => exchange(port, `${method} /${mode}/${n} HTTP/${version}\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const a = await ask('str');
      const b = await ask('raw');
      assert.equal(strip(b.text), strip(a.text), `head ${n}, ${method} HTTP/${version}`);
      assert.deepEqual(infos[`raw/${n}`], infos[`str/${n}`], `head ${n}`);
    }
  }
  // The raw path was taken except where it hands over to the strings: a Connection header naming
  // another header (7), a status with no line of its own (8).
  assert.deepEqual(Object.keys(used).filter((k) => k.startsWith('raw/') && !used[k]).sort(), ['raw/7', 'raw/8']);
});
