import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { DIRECT_WRITES, DirectWriter, directWrite, needDrain, writesPending } from './socket-write.ts';

/** A loopback pair: the client socket, and the server side (paused until `received()` reads it to the end). */
async function pair(): Promise<{ client: Socket; peer: Socket; server: Server; received: () => Promise<Buffer> }> {
  const server = createServer({ pauseOnConnect: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const client = connect(port, '127.0.0.1');
  const [[peer]] = await Promise.all([once(server, 'connection') as Promise<[Socket]>, once(client, 'connect')]);
  const received = async (): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    peer.on('data', (d: Buffer) => chunks.push(d));
    peer.resume();
    await once(peer, 'end');
    return Buffer.concat(chunks);
  };
  return { client, peer, server, received };
}

test('the stream_wrap binding is there (a Node without it writes through socket.write, slower)', () => {
  assert.equal(DIRECT_WRITES, true);
});

test('direct writes and socket.write() interleaved arrive whole and in order', async () => {
  const { client, server, received } = await pair();
  const w = new DirectWriter();
  const expected: Buffer[] = [];
  for (let i = 0; i < 200; i++) {
    const b = Buffer.from(`message ${i} ${'x'.repeat(i % 37)}\n`);
    expected.push(b);
    if (i % 3 === 2) client.write(b);
    else assert.equal(directWrite(client, w, b), true);
  }
  const got = received();
  client.end();
  assert.deepEqual(await got, Buffer.concat(expected));
  assert.equal(w.pending, 0);
  server.close();
});

test('a write libuv has to queue returns false, counts as pending, keeps its place, and ends with a drain', async () => {
  const { client, server, received } = await pair();
  const w = new DirectWriter();
  // The peer does not read yet: 32 MiB cannot all go out at once.
  const big = Buffer.alloc(32 * 1024 * 1024, 0x61);
  let drains = 0;
  client.on('drain', () => drains++);
  assert.equal(directWrite(client, w, big), false);
  assert.equal(w.pending, 1);
  assert.equal(needDrain(client, w), true);
  assert.equal(writesPending(client, w), true);
  // While it is queued, the next write goes through the Writable, behind it.
  const tail = Buffer.from('the end\n');
  directWrite(client, w, tail);
  assert.equal(w.pending, 1);
  const got = received();
  await once(client, 'drain');
  assert.equal(w.pending, 0);
  client.end();
  const all = await got;
  assert.equal(all.length, big.length + tail.length);
  assert.equal(all.subarray(big.length).toString(), 'the end\n');
  assert.equal(all.indexOf(0x74), big.length, 'no byte of the tail before the end of the big write');
  assert.ok(drains >= 1);
  server.close();
});

test('a socket destroyed with a write queued: the write is dropped, nothing throws, no drain', async () => {
  const { client, peer, server } = await pair();
  const w = new DirectWriter();
  let drains = 0;
  client.on('drain', () => drains++);
  client.on('error', () => {});
  assert.equal(directWrite(client, w, Buffer.alloc(32 * 1024 * 1024)), false);
  client.destroy();
  await once(client, 'close');
  await new Promise((r) => setImmediate(r));
  assert.equal(w.pending, 0);
  assert.equal(drains, 0);
  peer.destroy();
  server.close();
});

test('a corked socket, or one still connecting, is written through its Writable', async () => {
  const { client, server, received } = await pair();
  const w = new DirectWriter();
  client.cork();
  directWrite(client, w, Buffer.from('a'));
  assert.equal(client.writableLength, 1, 'buffered by the Writable while corked');
  client.uncork();
  const { port } = server.address() as { port: number };
  const early = connect(port, '127.0.0.1');
  const w2 = new DirectWriter();
  directWrite(early, w2, Buffer.from('b'));
  assert.equal(early.writableLength, 1, 'buffered by the Writable until connected');
  early.destroy();
  const got = received();
  client.end();
  assert.equal((await got).toString(), 'a');
  server.close();
});
