// Paired in-process microbenchmark of the two upstream clients alone (no gateway): undici's Client vs
// H1Client (upstream.client: lean), 64 keep-alive connections, sequential 100-byte POSTs to
// bench/client-micro-server.ts on 127.0.0.1:18100; CPU per request from process.cpuUsage(), 2 s
// blocks alternating in order. Run: taskset -c 0 node bench/client-micro-server.ts &
//   taskset -c 1 node bench/client-micro.ts [ROUNDS]
// Paired in-process comparison: undici Client vs H1Client, 64 connections, sequential POSTs of 100 B.
import { Client } from 'undici';
import { H1Client } from '../src/upstream/h1-client.ts';
const origin = 'http://127.0.0.1:18100';
const body = Buffer.alloc(100, 97);
const headers = ['host', 'x', 'content-type', 'application/json', 'content-length', '100', 'x-request-id', 'abcdefabcdefabcdefabcdefabcdefabcdef', 'x-forwarded-for', '127.0.0.1', 'x-forwarded-proto', 'http'];
type C = { dispatch(o: unknown, h: unknown): boolean; destroy(): Promise<void> };
function make(kind: string): C {
  const o = { connectTimeout: 5000, headersTimeout: 300000, bodyTimeout: 300000, keepAliveTimeout: 4000 };
  return (kind === 'lean' ? new H1Client(origin, { ...o, keepAliveTimeoutThreshold: 1000 }) : new Client(origin, { ...o, pipelining: 1, keepAliveMaxTimeout: 4000, keepAliveTimeoutThreshold: 1000, strictContentLength: true })) as unknown as C;
}
async function block(kind: string, ms: number): Promise<number> {
  const clients = Array.from({ length: 64 }, () => make(kind));
  let n = 0, stop = false, counting = false;
  const loop = (c: C) => new Promise<void>((resolve) => {
    const h = {
      onConnect() {}, onHeaders() { return true; }, onData() { return true; },
      onComplete() { if (counting) n++; if (stop) resolve(); else c.dispatch({ path: '/llm', method: 'POST', headers, body }, h); },
      onError(e: Error) { console.error(kind, e); resolve(); },
    };
    c.dispatch({ path: '/llm', method: 'POST', headers, body }, h);
  });
  const all = clients.map(loop);
  await new Promise((r) => setTimeout(r, 300));
  const u0 = process.cpuUsage(); counting = true;
  await new Promise((r) => setTimeout(r, ms));
  counting = false; const u = process.cpuUsage(u0); const cnt = n;
  stop = true; await Promise.all(all); await Promise.all(clients.map((c) => c.destroy()));
  return (u.user + u.system) / cnt;
}
const rounds = Number(process.argv[2] ?? 6);
const ratios: number[] = [];
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? ['undici', 'lean'] : ['lean', 'undici'];
  const res: Record<string, number> = {};
  for (const k of order) res[k] = await block(k, 2000);
  ratios.push(res.lean! / res.undici!);
  console.log(`round ${r + 1}: undici ${res.undici!.toFixed(2)} µs/req  lean ${res.lean!.toFixed(2)} µs/req  lean/undici ${(res.lean! / res.undici!).toFixed(3)}`);
}
ratios.sort((a, b) => a - b);
console.log(`lean/undici median ${ratios[Math.floor(ratios.length / 2)]!.toFixed(3)} (min ${ratios[0]!.toFixed(3)}, max ${ratios.at(-1)!.toFixed(3)})`);
