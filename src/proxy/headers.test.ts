import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  appendForwardingHeaders,
  filterRequestHeaders,
  filterResponseHeaders,
  newRequestHeaderInfo,
} from './headers.ts';

test('request pass strips hop-by-hop and Connection-listed headers, keeps the rest in order', () => {
  const out: string[] = [];
  const info = newRequestHeaderInfo();
  filterRequestHeaders(
    ['Host', 'gw', 'Connection', 'keep-alive, X-Secret', 'X-Secret', 's', 'Keep-Alive', 'timeout=5', 'TE', 'trailers',
      'Content-Length', '3', 'X-Session-Id', 'abc', 'X-Request-Id', 'rid-1', 'X-Forwarded-For', '10.0.0.1', 'Accept', '*/*'],
    out, info, 'x-session-id');
  assert.deepEqual(out, ['Host', 'gw', 'Content-Length', '3', 'X-Session-Id', 'abc', 'Accept', '*/*']);
  assert.equal(info.requestId, 'rid-1');
  assert.equal(info.stickyValue, 'abc');
  assert.equal(info.contentLength, 3);
  appendForwardingHeaders(out, info, '127.0.0.1', 'http');
  assert.deepEqual(out.slice(8), ['x-request-id', 'rid-1', 'x-forwarded-for', '10.0.0.1, 127.0.0.1', 'x-forwarded-proto', 'http', 'x-forwarded-host', 'gw']);
});

test('chunked request bodies are flagged and transfer-encoding is not forwarded', () => {
  const out: string[] = [];
  const info = newRequestHeaderInfo();
  filterRequestHeaders(['Transfer-Encoding', 'chunked', 'Upgrade', 'h2c'], out, info, '');
  assert.deepEqual(out, []);
  assert.equal(info.chunked, true);
});

test('response pass drops hop-by-hop headers and reports stream and request id', () => {
  const raw = ['Connection', 'keep-alive, x-hop', 'x-hop', '1', 'Keep-Alive', 'timeout=90', 'Content-Type', 'text/event-stream',
    'X-Request-ID', 'r', 'server', 'uvicorn', 'Transfer-Encoding', 'chunked'].map((s) => Buffer.from(s));
  const out: string[] = [];
  const info = { hasRequestId: false, contentLength: -1, eventStream: false, hasDate: false };
  filterResponseHeaders(raw, out, info);
  assert.deepEqual(out, ['content-type', 'text/event-stream', 'x-request-id', 'r', 'server', 'uvicorn']);
  assert.equal(info.eventStream, true);
  assert.equal(info.hasRequestId, true);
});

test('every hop-by-hop header is dropped both ways, whatever its case; names of the same length are kept', () => {
  const hop = ['Connection', 'Keep-Alive', 'Proxy-Connection', 'Transfer-Encoding', 'TE', 'Trailer', 'Upgrade', 'HTTP2-Settings'];
  const kept = ['tf', 'trailers', 'upgradE1', 'connectio', 'keep-alivf', 'proxy-connectiox', 'transfer-encodinx', 'http2-settingz', 'x-upgrad'];
  const raw = [...hop, ...hop.map((n) => n.toLowerCase()), ...kept].flatMap((n) => [n, 'v']);
  const out: string[] = [];
  filterRequestHeaders(raw, out, newRequestHeaderInfo(), '');
  assert.deepEqual(out.filter((_, i) => i % 2 === 0), kept);
  const down: string[] = [];
  filterResponseHeaders(raw, down, { hasRequestId: false, contentLength: -1, eventStream: false, hasDate: false });
  assert.deepEqual(down.filter((_, i) => i % 2 === 0), kept.map((n) => n.toLowerCase()));
});
