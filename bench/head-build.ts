// Ways of serializing an HTTP/1.1 head (with a 100-byte body behind it) into one Buffer, ns per head
// on one core: the rope of template strings both lean engines use (written with one latin1 write,
// which flattens it), an array join, a JavaScript loop storing char codes, and one Buffer#latin1Write
// per piece. The header strings are made fresh every iteration, as the parser makes them (substrings
// of one latin1 decode); "strings only" is that part alone. docs/benchmarks.md, "Sixth session".
//
//   taskset -c 1 node bench/head-build.ts
/** Buffer's own latin1 methods (what toString('latin1') and write(s, 'latin1') call, without their argument checks). */
type Latin1 = Buffer & { latin1Slice(start: number, end: number): string; latin1Write(s: string, offset: number): number };
const src = Buffer.from('POST /llm HTTP/1.1\r\nHost: 127.0.0.1:18080\r\nContent-Type: application/json\r\nContent-Length: 100\r\nx-request-id: 3f2a9c1e-5b7d-4e21-8a6c-000000012345\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: 127.0.0.1:18080\r\n');
const body = Buffer.alloc(100, 97);
function fresh(): string[] {
  const all = (src as Latin1).latin1Slice(0, src.length);
  const out: string[] = [];
  let i = all.indexOf('\r\n') + 2;
  while (i < all.length) { const c = all.indexOf(': ', i); const e = all.indexOf('\r\n', c); out.push(all.substring(i, c), all.substring(c + 2, e)); i = e + 2; }
  return out;
}
function rope(h: string[]): Buffer {
  let head = `POST /llm HTTP/1.1\r\n`;
  for (let i = 0; i < h.length; i += 2) head += `${h[i]}: ${h[i + 1]}\r\n`;
  head += 'connection: keep-alive\r\n\r\n';
  const hl = head.length;
  const out = Buffer.allocUnsafe(hl + body.length);
  out.write(head, 0, hl, 'latin1');
  body.copy(out, hl);
  return out;
}
function put(b: Buffer, p: number, s: string): number { const n = s.length; for (let i = 0; i < n; i++) b[p + i] = s.charCodeAt(i); return p + n; }
function loop(h: string[]): Buffer {
  let n = 20 + 26 + body.length;
  for (let i = 0; i < h.length; i += 2) n += h[i]!.length + h[i + 1]!.length + 4;
  const out = Buffer.allocUnsafe(n);
  let p = put(out, 0, 'POST /llm HTTP/1.1\r\n');
  for (let i = 0; i < h.length; i += 2) { p = put(out, p, h[i]!); out[p++] = 58; out[p++] = 32; p = put(out, p, h[i + 1]!); out[p++] = 13; out[p++] = 10; }
  p = put(out, p, 'connection: keep-alive\r\n\r\n');
  for (let i = 0; i < body.length; i++) out[p + i] = body[i]!;
  return out.subarray(0, p + body.length);
}
function join(h: string[]): Buffer {
  const parts: string[] = ['POST /llm HTTP/1.1'];
  for (let i = 0; i < h.length; i += 2) parts.push(h[i] + ': ' + h[i + 1]);
  parts.push('connection: keep-alive', '', '');
  const head = parts.join('\r\n');
  const out = Buffer.allocUnsafe(head.length + body.length) as Latin1;
  out.latin1Write(head, 0);
  body.copy(out, head.length);
  return out;
}
function lw(h: string[]): Buffer {
  let n = 20 + 26 + body.length;
  for (let i = 0; i < h.length; i += 2) n += h[i]!.length + h[i + 1]!.length + 4;
  const out = Buffer.allocUnsafe(n) as Latin1;
  let p = out.latin1Write('POST /llm HTTP/1.1\r\n', 0);
  for (let i = 0; i < h.length; i += 2) { p += out.latin1Write(h[i]!, p); out[p++] = 58; out[p++] = 32; p += out.latin1Write(h[i + 1]!, p); out[p++] = 13; out[p++] = 10; }
  p += out.latin1Write('connection: keep-alive\r\n\r\n', p);
  body.copy(out, p);
  return out.subarray(0, p + body.length);
}
let sink = 0;
const fns: [string, (h: string[]) => Buffer][] = [['rope', rope], ['loop', loop], ['join', join], ['latin1Write', lw], ['strings only', (h) => body]];
const check = [rope(fresh()).toString('latin1'), loop(fresh()).toString('latin1'), join(fresh()).toString('latin1'), lw(fresh()).toString('latin1')];
if (check[0] !== check[1] || check[0] !== check[2]) throw new Error('mismatch');
for (let r = 0; r < 4; r++) for (const [name, f] of fns) {
  const N = 300000; const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) sink += f(fresh()).length;
  console.log(name.padEnd(13), (Number(process.hrtime.bigint() - t) / N).toFixed(0), 'ns');
}
