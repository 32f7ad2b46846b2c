// server.engine: lean end to end, chosen explicitly here: the gateway's data
// plane on the lean HTTP/1.1 server (src/proxy/h1-server.ts). It is the default,
// so every other suite runs on it too (and `npm run test:node-http` runs them on
// node:http's server); src/proxy/h1-server.test.ts tests the server alone at the
// byte level.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { send, sendJson } from './conformance/http-client.ts';
import { startStack } from './helpers/stack.ts';
import { H1Server } from '../src/proxy/h1-server.ts';

const LEAN = { server: { engine: 'lean' } };

test('lean server: small POST, keep-alive GETs, local replies', async (t) => {
  const s = await startStack({ gateway: LEAN });
  t.after(() => s.close());
  assert.equal(s.config.server.engine, 'lean');
  assert.ok(s.gw.server instanceof H1Server, 'server.engine: lean builds an H1Server');
  const r = await sendJson(`${s.url}/llm/v1/chat?x=1`, { prompt: 'hi' });
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).request_id, r.headers['x-request-id']);
  for (let i = 0; i < 5; i++) assert.equal((await send(`${s.url}/llm`)).status, 200);
  const routes = await send(`${s.url}/-/routes`);
  assert.equal(routes.status, 200);
  assert.equal(JSON.parse(routes.body)['/llm'], 'llm');
});

test('lean server: pipelined requests through the gateway come back in order, each with its own request id', async (t) => {
  const s = await startStack({ gateway: LEAN });
  t.after(() => s.close());
  const u = new URL(s.url);
  const ids = ['p-1', 'p-2', 'p-3'];
  const raw = ids.map((id, i) => `POST /llm/${i} HTTP/1.1\r\nhost: x\r\nx-request-id: ${id}\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}`).join('');
  const text = await new Promise<string>((resolve, reject) => {
    const sock = connect({ host: u.hostname, port: Number(u.port) }, () => sock.end(raw));
    let got = '';
    sock.on('data', (d) => (got += d.toString()));
    sock.on('close', () => resolve(got));
    sock.on('error', reject);
  });
  const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
  assert.deepEqual(statuses, ['200', '200', '200']);
  const seen = [...text.matchAll(/x-request-id: (p-\d)/g)].map((m) => m[1]);
  assert.deepEqual(seen, ids);
  // Kept alive between them (the client's FIN came with the last request: answered, then closed).
  assert.equal([...text.matchAll(/^connection: keep-alive\r\nkeep-alive: timeout=\d+\r\n/gm)].length, 3);
});
