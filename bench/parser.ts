// The parsers alone, no sockets: Node's llhttp binding (HTTPParser) against llhttp in WebAssembly
// (WasmParser, src/core/llhttp.ts), each parsing the bench's small request (POST, 100-byte body)
// and a typical Serve response with the callbacks the lean engines set, N times in a loop. Prints
// ns per message. WasmParser with copyBodies (as the engines run it: the read buffer is shared, so
// a body chunk is copied into the Buffer pool) and without.
//
//   taskset -c 1 node bench/parser.ts [N]      (default 1,000,000 messages per row, after 200,000 of warm-up)
import { HTTPParser, K_ON_BODY, K_ON_HEADERS_COMPLETE, K_ON_MESSAGE_BEGIN, K_ON_MESSAGE_COMPLETE, WasmParser } from '../src/core/llhttp.ts';

const N = Number(process.argv[2] ?? 1_000_000);
const request = Buffer.from(`POST /llm HTTP/1.1\r\nHost: 127.0.0.1:18080\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n${'x'.repeat(100)}`);
const response = Buffer.from(
  'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 27\r\ndate: Wed, 02 Dec 2026 14:00:00 GMT\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\n\r\n{"ok":true,"text":"hello"}\n',
);

interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenientFlags: number): void;
  execute(data: Buffer): unknown;
  [k: number]: unknown;
}

const makers: [string, () => Parser][] = [
  ['native (Node binding)', () => new HTTPParser() as unknown as Parser],
  ['wasm', () => new WasmParser()],
  [
    'wasm, copyBodies',
    () => {
      const w = new WasmParser();
      w.copyBodies = true;
      return w;
    },
  ],
];

let sink = 0;
for (const [name, make] of makers) {
  for (const [what, buf, type] of [
    ['request', request, HTTPParser.REQUEST],
    ['response', response, HTTPParser.RESPONSE],
  ] as const) {
    const p = make();
    p.initialize(type, {}, 0, 0);
    p[K_ON_MESSAGE_BEGIN] = () => sink++;
    p[K_ON_HEADERS_COMPLETE] = (_a: number, _b: number, h: string[]) => {
      sink += h.length;
      return 0;
    };
    p[K_ON_BODY] = (b: Buffer) => (sink += b.length);
    p[K_ON_MESSAGE_COMPLETE] = () => sink++;
    for (let i = 0; i < 200_000; i++) p.execute(buf);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) p.execute(buf);
    const ns = Number(process.hrtime.bigint() - t0) / N;
    console.log(`${name.padEnd(22)} ${what.padEnd(9)} ${ns.toFixed(0)} ns/message`);
  }
}
if (sink === -1) console.log(sink);
