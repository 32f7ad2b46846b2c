// H1Client against small raw node:net servers on loopback (no fakes): framing,
// reuse rules, timeouts, back-pressure, streamed bodies, malformed responses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { H1Client, type H1DispatchOptions, type H1Handler } from './h1-client.ts';

interface RawReq {
  readonly head: string;
  readonly method: string;
  readonly body: Buffer;
  readonly chunked: boolean;
  /** Connection number (0-based) and index of the request on it. */
  readonly conn: number;
  readonly index: number;
  readonly socket: Socket;
}

/** A raw HTTP/1.1 server: parses request heads and bodies (length or chunked), calls `answer` for each. */
async function rawServer(answer: (r: RawReq) => void): Promise<{ server: Server; origin: string; conns: Socket[]; reqs: RawReq[] }> {
  const conns: Socket[] = [];
  const reqs: RawReq[] = [];
  const server = createServer((socket) => {
    const conn = conns.length;
    conns.push(socket);
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    let index = 0;
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buf.subarray(0, end).toString('latin1');
        const lower = head.toLowerCase();
        let rest = buf.subarray(end + 4);
        let body: Buffer;
        const cl = /\r\ncontent-length: *(\d+)/.exec(lower);
        const chunked = /\r\ntransfer-encoding: *chunked/.test(lower);
        if (chunked) {
          const parts: Buffer[] = [];
          let off = 0;
          for (;;) {
            const nl = rest.indexOf('\r\n', off);
            if (nl === -1) return;
            const size = parseInt(rest.subarray(off, nl).toString(), 16);
            if (size === 0) {
              if (rest.length < nl + 4) return;
              off = nl + 4;
              break;
            }
            if (rest.length < nl + 2 + size + 2) return;
            parts.push(rest.subarray(nl + 2, nl + 2 + size));
            off = nl + 2 + size + 2;
          }
          body = Buffer.concat(parts);
          rest = rest.subarray(off);
        } else if (cl !== null) {
          const n = Number(cl[1]);
          if (rest.length < n) return;
          body = rest.subarray(0, n);
          rest = rest.subarray(n);
        } else body = Buffer.alloc(0);
        buf = rest;
        const r: RawReq = { head, method: head.slice(0, head.indexOf(' ')), body: Buffer.from(body), chunked, conn, index: index++, socket };
        reqs.push(r);
        answer(r);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, conns, reqs };
}

async function closeServer(server: Server, conns: Socket[]): Promise<void> {
  for (const c of conns) c.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

interface Result {
  status: number;
  headers: string[];
  body: string;
  error: (Error & { code?: string }) | null;
  trailers: string[] | null;
  chunks: number;
}

/** Sends one request; resolves with what the handler saw. `onData` may pause (return false). */
function send(client: H1Client, opts: Partial<H1DispatchOptions> = {}, hooks: Partial<H1Handler> & { paused?: (resume: () => void, r: Result) => void } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const r: Result = { status: 0, headers: [], body: '', error: null, trailers: null, chunks: 0 };
    const parts: Buffer[] = [];
    let resume: () => void = () => {};
    let paused = false;
    client.dispatch(
      { path: '/', method: 'GET', headers: ['host', 'upstream'], body: null, ...opts },
      {
        onConnect: hooks.onConnect,
        onHeaders(status, headers, res) {
          r.status = status;
          r.headers = headers;
          resume = res;
          return true;
        },
        onData(chunk) {
          parts.push(chunk);
          r.chunks++;
          if (hooks.paused !== undefined && !paused) {
            paused = true;
            hooks.paused(resume, r);
            return false;
          }
          return true;
        },
        onComplete(trailers) {
          r.body = Buffer.concat(parts).toString();
          r.trailers = trailers;
          resolve(r);
        },
        onError(err) {
          r.body = Buffer.concat(parts).toString();
          r.error = err;
          resolve(r);
        },
      },
    );
  });
}

const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

test('content-length body; keep-alive: sequential requests reuse one socket', async () => {
  const s = await rawServer((r) => r.socket.write(ok(`hello ${r.index}`)));
  const c = new H1Client(s.origin);
  for (let i = 0; i < 3; i++) {
    const r = await send(c);
    assert.equal(r.error, null);
    assert.equal(r.status, 200);
    assert.equal(r.body, `hello ${i}`);
  }
  assert.equal(s.conns.length, 1);
  assert.match(s.reqs[0]!.head, /^GET \/ HTTP\/1\.1\r\nhost: upstream\r\nconnection: keep-alive$/);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('adds host from the origin when the request has none; POST without a body gets content-length: 0', async () => {
  const s = await rawServer((r) => r.socket.write(ok('x')));
  const c = new H1Client(s.origin);
  await send(c, { method: 'POST', headers: [] });
  assert.match(s.reqs[0]!.head, new RegExp(`host: ${new URL(s.origin).host}`));
  assert.match(s.reqs[0]!.head, /content-length: 0/);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('chunked response body with trailers', async () => {
  const s = await rawServer((r) => r.socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n'));
  const c = new H1Client(s.origin);
  const r = await send(c);
  assert.equal(r.body, 'hello world');
  assert.deepEqual(r.trailers, ['x-t', '1']);
  const r2 = await send(c);
  assert.equal(r2.body, 'hello world');
  assert.equal(s.conns.length, 1);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('close-delimited body ends at FIN; the socket is not reused', async () => {
  const s = await rawServer((r) => {
    r.socket.write('HTTP/1.1 200 OK\r\n\r\npart one,');
    setTimeout(() => r.socket.end(' part two'), 20);
  });
  const c = new H1Client(s.origin);
  const r = await send(c);
  assert.equal(r.error, null);
  assert.equal(r.body, 'part one, part two');
  const r2 = await send(c);
  assert.equal(r2.body, 'part one, part two');
  assert.equal(s.conns.length, 2);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('1xx interim responses (100, 103) are skipped', async () => {
  const s = await rawServer((r) => {
    r.socket.write('HTTP/1.1 100 Continue\r\n\r\n');
    setTimeout(() => r.socket.write(`HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n${ok('final')}`), 10);
  });
  const c = new H1Client(s.origin);
  const r = await send(c);
  assert.equal(r.status, 200);
  assert.equal(r.body, 'final');
  assert.equal((await send(c)).body, 'final');
  assert.equal(s.conns.length, 1);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('HEAD, 204 and 304 have no body (a content-length on them is not read); the socket is reused', async () => {
  const s = await rawServer((r) => {
    if (r.method === 'HEAD') r.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n');
    else if (r.head.startsWith('GET /204')) r.socket.write('HTTP/1.1 204 No Content\r\n\r\n');
    else if (r.head.startsWith('GET /304')) r.socket.write('HTTP/1.1 304 Not Modified\r\ncontent-length: 50\r\n\r\n');
    else r.socket.write(ok('after'));
  });
  const c = new H1Client(s.origin);
  const h = await send(c, { method: 'HEAD' });
  assert.equal(h.status, 200);
  assert.equal(h.body, '');
  const n = await send(c, { path: '/204' });
  assert.equal(n.status, 204);
  const m = await send(c, { path: '/304' });
  assert.equal(m.status, 304);
  assert.equal(m.body, '');
  const a = await send(c);
  assert.equal(a.body, 'after');
  assert.equal(s.conns.length, 1);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('server Connection: close: the next request opens a new socket', async () => {
  const s = await rawServer((r) => r.socket.write(ok('bye', 'connection: close\r\n')));
  const c = new H1Client(s.origin);
  const events: string[] = [];
  c.on('connect', () => events.push('connect'));
  c.on('disconnect', () => events.push('disconnect'));
  assert.equal((await send(c)).body, 'bye');
  assert.equal((await send(c)).body, 'bye');
  assert.equal(s.conns.length, 2);
  assert.deepEqual(events.slice(0, 3), ['connect', 'disconnect', 'connect']);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('Keep-Alive timeout hint: the socket is not reused within threshold of the server timeout', async () => {
  // timeout=1 minus the 1 s threshold: never reused.
  const s = await rawServer((r) => r.socket.write(ok('k', 'keep-alive: timeout=1\r\n')));
  const c = new H1Client(s.origin);
  await send(c);
  await send(c);
  assert.equal(s.conns.length, 2);
  await c.destroy();
  await closeServer(s.server, s.conns);
  // timeout=5: reused.
  const s2 = await rawServer((r) => r.socket.write(ok('k', 'Keep-Alive: timeout=5, max=100\r\n')));
  const c2 = new H1Client(s2.origin);
  await send(c2);
  await send(c2);
  assert.equal(s2.conns.length, 1);
  await c2.destroy();
  await closeServer(s2.server, s2.conns);
});

test('our idle timeout: a socket idle longer than keepAliveTimeout is not reused', async () => {
  const s = await rawServer((r) => r.socket.write(ok('i')));
  const c = new H1Client(s.origin, { keepAliveTimeout: 50 });
  await send(c);
  await sleep(120);
  await send(c);
  assert.equal(s.conns.length, 2);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('a server that closes an idle pooled socket: the next request goes on a new socket', async () => {
  const s = await rawServer((r) => {
    r.socket.write(ok('once'));
    setTimeout(() => r.socket.end(), 10);
  });
  const c = new H1Client(s.origin);
  let disconnects = 0;
  c.on('disconnect', () => disconnects++);
  assert.equal((await send(c)).body, 'once');
  await sleep(80);
  assert.equal(disconnects, 1);
  assert.equal(c.connected, false);
  assert.equal((await send(c)).body, 'once');
  assert.equal(s.conns.length, 2);
  assert.equal(s.reqs.filter((r) => r.conn === 0).length, 1);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('a stray byte on an idle pooled socket destroys it (never read as the next response)', async () => {
  const s = await rawServer((r) => {
    r.socket.write(ok('first'));
    if (r.conn === 0) setTimeout(() => r.socket.write(ok('SMUGGLED')), 10);
  });
  const c = new H1Client(s.origin);
  assert.equal((await send(c)).body, 'first');
  await sleep(80);
  const r = await send(c);
  assert.equal(r.body, 'first');
  assert.equal(s.conns.length, 2);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('a reused socket closed before any response byte fails with UND_ERR_SOCKET (stale, retryable when idempotent)', async () => {
  const s = await rawServer((r) => {
    if (r.index === 0) r.socket.write(ok('one'));
    else r.socket.destroy();
  });
  const c = new H1Client(s.origin);
  await send(c);
  const r = await send(c);
  assert.equal(r.error?.code, 'UND_ERR_SOCKET');
  assert.equal(r.status, 0);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('a socket closed mid-body (content-length, chunked) fails with UND_ERR_SOCKET', async () => {
  for (const resp of ['HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b', 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n']) {
    const s = await rawServer((r) => {
      r.socket.write(resp);
      setTimeout(() => r.socket.end(), 20);
    });
    const c = new H1Client(s.origin);
    const r = await send(c);
    assert.equal(r.status, 200);
    assert.equal(r.error?.code, 'UND_ERR_SOCKET', resp);
    await c.destroy();
    await closeServer(s.server, s.conns);
  }
});

test('a socket reset mid-body fails with ECONNRESET or UND_ERR_SOCKET', async () => {
  const s = await rawServer((r) => {
    r.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc');
    setTimeout(() => r.socket.resetAndDestroy(), 20);
  });
  const c = new H1Client(s.origin);
  const r = await send(c);
  assert.ok(r.error?.code === 'ECONNRESET' || r.error?.code === 'UND_ERR_SOCKET', r.error?.code);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('connect refused: ECONNREFUSED and a connectionError event', async () => {
  const s = await rawServer(() => {});
  const origin = s.origin;
  await closeServer(s.server, s.conns);
  const c = new H1Client(origin);
  let connErrors = 0;
  c.on('connectionError', () => connErrors++);
  const r = await send(c);
  assert.equal(r.error?.code, 'ECONNREFUSED');
  assert.equal(connErrors, 1);
  await c.destroy();
});

test('headers timeout: UND_ERR_HEADERS_TIMEOUT', async () => {
  const s = await rawServer(() => {});
  const c = new H1Client(s.origin, { headersTimeout: 100 });
  const r = await send(c);
  assert.equal(r.error?.code, 'UND_ERR_HEADERS_TIMEOUT');
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('body timeout: UND_ERR_BODY_TIMEOUT after a gap in the body', async () => {
  const s = await rawServer((r) => r.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc'));
  const c = new H1Client(s.origin, { bodyTimeout: 100 });
  const r = await send(c);
  assert.equal(r.status, 200);
  assert.equal(r.error?.code, 'UND_ERR_BODY_TIMEOUT');
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('back-pressure: onData → false pauses the socket until resume(); the body then arrives whole', async () => {
  const size = 8 * 1024 * 1024;
  let serverBlocked = false;
  const s = await rawServer((r) => {
    r.socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${size}\r\n\r\n`);
    const chunk = Buffer.alloc(64 * 1024, 97);
    let sent = 0;
    const pump = (): void => {
      while (sent < size) {
        sent += chunk.length;
        if (!r.socket.write(chunk)) {
          serverBlocked = true;
          r.socket.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  const c = new H1Client(s.origin, { bodyTimeout: 50 });
  let chunksWhilePaused = -1;
  const r = await send(c, {}, {
    paused(resume, res) {
      const at = res.chunks;
      setTimeout(() => {
        chunksWhilePaused = res.chunks - at;
        resume();
      }, 300); // longer than bodyTimeout: a paused body is not an upstream timeout
    },
  });
  assert.equal(r.error, null);
  assert.equal(r.body.length, size);
  assert.equal(chunksWhilePaused, 0);
  assert.equal(serverBlocked, true);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('streamed request body without content-length goes chunked, with back-pressure from the socket', async () => {
  const s = await rawServer((r) => r.socket.write(ok(`got ${r.body.length} ${r.chunked}`)));
  const c = new H1Client(s.origin);
  const part = Buffer.alloc(256 * 1024, 98);
  async function* gen(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 16; i++) {
      yield part;
      if (i % 4 === 0) await sleep(5);
    }
  }
  const r = await send(c, { method: 'POST', body: Readable.from(gen()) });
  assert.equal(r.error, null);
  assert.equal(r.body, `got ${16 * part.length} true`);
  assert.match(s.reqs[0]!.head, /transfer-encoding: chunked/);
  // The socket is reused afterwards.
  assert.equal((await send(c)).body, 'got 0 false');
  assert.equal(s.conns.length, 1);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('streamed request body with content-length: sent as is; a short or long body fails (strict content-length)', async () => {
  const s = await rawServer((r) => r.socket.write(ok(`got ${r.body.toString()}`)));
  const c = new H1Client(s.origin);
  const r = await send(c, { method: 'PUT', headers: ['content-length', '6'], body: Readable.from([Buffer.from('abc'), Buffer.from('def')]) });
  assert.equal(r.body, 'got abcdef');
  assert.doesNotMatch(s.reqs[0]!.head, /transfer-encoding/);
  const short = await send(c, { method: 'PUT', headers: ['content-length', '10'], body: Readable.from([Buffer.from('abc')]) });
  assert.equal(short.error?.code, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
  const long = await send(c, { method: 'PUT', headers: ['content-length', '2'], body: Readable.from([Buffer.from('abc')]) });
  assert.equal(long.error?.code, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
  const buf = await send(c, { method: 'PUT', headers: ['content-length', '2'], body: Buffer.from('abc') });
  assert.equal(buf.error?.code, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('malformed responses are errors: invalid chunk size, two content-lengths, CL with TE, a bad status line', async () => {
  const bad = [
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
    'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!',
    'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    'HTTP/1.1 2OO OK\r\ncontent-length: 1\r\n\r\nx',
    'HTTP/1.1 200 OK\r\nbad header\r\ncontent-length: 1\r\n\r\nx',
  ];
  for (const resp of bad) {
    const s = await rawServer((r) => r.socket.write(resp));
    const c = new H1Client(s.origin);
    const r = await send(c);
    assert.ok(r.error !== null, `no error for ${JSON.stringify(resp)}`);
    assert.match(r.error.code ?? '', /^HPE_/);
    await c.destroy();
    await closeServer(s.server, s.conns);
  }
});

test('response splitting: bytes after a complete response are never parsed as the next response', async () => {
  const s = await rawServer((r) => {
    if (r.conn === 0) r.socket.write(`${ok('hello')}${ok('SMUGGLED')}`);
    else r.socket.write(ok('genuine'));
  });
  const c = new H1Client(s.origin);
  const first = await send(c);
  assert.equal(first.error, null);
  assert.equal(first.body, 'hello');
  const second = await send(c);
  assert.equal(second.body, 'genuine');
  assert.equal(s.conns.length, 2);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('a second final response inside one read while the body is paused is not delivered', async () => {
  const s = await rawServer((r) => {
    if (r.conn === 0) r.socket.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n${ok('SMUGGLED')}`);
    else r.socket.write(ok('genuine'));
  });
  const c = new H1Client(s.origin);
  const first = await send(c, {}, { paused: (resume) => setTimeout(resume, 20) });
  assert.equal(first.error, null);
  assert.equal(first.body, 'abcdef');
  assert.equal((await send(c)).body, 'genuine');
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('bytes read while a response was paused are never the response of a request dispatched from its onComplete', { timeout: 20_000 }, async () => {
  let conn0: Socket | null = null;
  const s = await rawServer((r) => {
    if (r.conn === 0 && r.index === 0) {
      conn0 = r.socket;
      r.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234');
    } else if (r.conn !== 0) r.socket.write(ok('GOOD'));
    // conn 0's second request is never answered.
  });
  const c = new H1Client(s.origin, { headersTimeout: 5000 });
  const second = await new Promise<Result>((resolve) => {
    const parts: Buffer[] = [];
    let resume: () => void = () => {};
    let paused = false;
    c.dispatch(
      { path: '/', method: 'GET', headers: ['host', 'upstream'], body: null },
      {
        onHeaders(_status, _headers, res) {
          resume = res;
          return true;
        },
        onData(chunk) {
          parts.push(chunk);
          if (paused) return true;
          paused = true;
          // While paused (reading falls back to 'data' events): the rest of the body, then, in a read of
          // its own, a stray response; both wait in the socket's buffer until resume().
          const turns = async () => {
            for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
          };
          conn0!.write('56789', () => void turns().then(() => conn0!.write(ok('EVIL'), () => void turns().then(resume))));
          return false;
        },
        // As the endpoint does: the next waiter gets the connection inside onComplete.
        onComplete: () => {
          assert.equal(Buffer.concat(parts).toString(), '0123456789');
          void send(c).then(resolve);
        },
        onError: (err) => assert.fail(err),
      },
    );
  });
  assert.equal(second.error, null);
  assert.equal(second.body, 'GOOD', 'the stray bytes went with the old socket');
  assert.equal(s.conns.length, 2);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('abort mid-response: UND_ERR_ABORTED, the socket is closed', async () => {
  const s = await rawServer((r) => r.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc'));
  const c = new H1Client(s.origin);
  let abort: (err?: Error) => void = () => {};
  const p = send(c, {}, { onConnect: (a) => (abort = a) });
  await sleep(50);
  abort();
  const r = await p;
  assert.equal(r.error?.code, 'UND_ERR_ABORTED');
  assert.equal(c.connected, false);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('destroy() fails the request in flight and resolves once the socket closed', async () => {
  const s = await rawServer(() => {});
  const c = new H1Client(s.origin);
  const p = send(c);
  await sleep(30);
  await c.destroy();
  const r = await p;
  assert.equal(r.error?.code, 'UND_ERR_DESTROYED');
  const again = await send(c);
  assert.equal(again.error?.code, 'UND_ERR_DESTROYED');
  await closeServer(s.server, s.conns);
});

test('an early answer before the streamed request body ended: complete, the socket is not reused, a later body error is not unhandled', async () => {
  const s = await rawServer(() => {});
  s.server.removeAllListeners('connection');
  s.server.on('connection', (socket: Socket) => {
    s.conns.push(socket);
    socket.on('error', () => {});
    socket.once('data', () => socket.write(ok('too big')));
  });
  const c = new H1Client(s.origin);
  const body = new Readable({ read() {} });
  body.push(Buffer.alloc(1000, 99));
  const r = await send(c, { method: 'POST', body });
  assert.equal(r.error, null);
  assert.equal(r.body, 'too big');
  body.destroy(new Error('aborted'));
  await sleep(20);
  assert.equal(c.connected, false);
  await c.destroy();
  await closeServer(s.server, s.conns);
});

test('a header value with CR, LF or another control character is refused before anything is written, unless the caller vouches for the list (headersChecked)', async () => {
  const s = await rawServer((r) => r.socket.write(ok('x')));
  const c = new H1Client(s.origin);
  for (const bad of ['a\r\nx-injected: 1', 'a\nb', 'a\u0001b']) {
    const r = await send(c, { headers: ['host', 'upstream', 'x-v', bad] });
    assert.equal((r.error as Error & { code?: string } | null)?.code, 'UND_ERR_INVALID_ARG', JSON.stringify(bad));
  }
  assert.equal(s.reqs.length, 0, 'nothing was written');
  // headersChecked: the list came out of llhttp in strict mode (the pipeline's case); not checked again.
  const r = await send(c, { headers: ['host', 'upstream', 'x-v', 'a\u0001b'], headersChecked: true });
  assert.equal(r.error, null);
  assert.equal(s.reqs.length, 1);
  await c.destroy();
  await closeServer(s.server, s.conns);
});
