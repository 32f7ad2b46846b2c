// The floor of the gateway's design: its two HTTP/1.1 engines (H1Server and H1Client, llhttp in
// WebAssembly, reads into one buffer) joined by the least a proxy must do, and nothing else: no
// routing, admission, metrics, request ids, x-forwarded-* headers, access log, timeouts policy or
// retries. Every request goes to the bench backend (127.0.0.1:18000) on an idle keep-alive client;
// hop-by-hop headers are dropped both ways. It listens where bench/gateway.bench.yaml does
// (127.0.0.1:18080) and ignores its arguments, so bench/ab.sh runs it as a "gateway" through a
// wrapper:
//
//   printf '#!/bin/sh\nexec %s/node_modules/.bin/node --max-semi-space-size=4 %s/bench/floor.ts\n' "$PWD" "$PWD" >/tmp/floor
//   chmod +x /tmp/floor && NGINX=1 bench/ab.sh . /tmp/floor 7 5
//
// The gateway's CPU per request minus the floor's is what its features cost (docs/benchmarks.md,
// "Sixth session"). Not a product: it answers nothing but the proxied requests.
import { H1Server, type BodySink, type H1Handlers, type H1Request, type H1Response } from '../src/proxy/h1-server.ts';
import { H1Client } from '../src/upstream/h1-client.ts';

const UPSTREAM = 'http://127.0.0.1:18000';
const idle: H1Client[] = [];

function client(): H1Client {
  return idle.pop() ?? new H1Client(UPSTREAM, { keepAliveTimeout: 4000, keepAliveTimeoutThreshold: 1000, headersTimeout: 300_000, bodyTimeout: 300_000 });
}

function hopByHop(lower: string): boolean {
  return lower === 'connection' || lower === 'keep-alive' || lower === 'transfer-encoding' || lower === 'te' || lower === 'upgrade' || lower === 'trailer' || lower === 'proxy-connection';
}

function forward(req: H1Request, res: H1Response, body: Buffer | null): void {
  const c = client();
  const raw = req.rawHeaders;
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (!hopByHop(raw[i]!.toLowerCase())) headers.push(raw[i]!, raw[i + 1]!);
  c.dispatch(
    { method: req.method, path: req.url, headers, body, headersChecked: true },
    {
      onHeaders(status: number, rawRes: string[]): boolean {
        const out: string[] = [];
        for (let i = 0; i < rawRes.length; i += 2) {
          const name = rawRes[i]!.toLowerCase();
          if (!hopByHop(name)) out.push(name, rawRes[i + 1]!);
        }
        res.writeHeadParsed(status, out);
        return true;
      },
      onData: (chunk: Buffer): boolean => res.write(chunk),
      onComplete(): void {
        res.end();
        idle.push(c);
      },
      onError(): void {
        res.destroy();
      },
    },
  );
}

const handlers: H1Handlers = {
  request(req, res) {
    const chunks: Buffer[] = [];
    const sink: BodySink = {
      onBodyChunk: (chunk) => chunks.push(chunk),
      onBodyEnd: () => forward(req, res, chunks.length === 0 ? null : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)),
    };
    req.readBody(sink);
  },
  upgrade: (_req, socket) => socket.destroy(),
  connect: (_req, socket) => socket.destroy(),
  clientError: (_code, socket) => socket.destroy(),
  drop: () => {},
};

new H1Server(handlers).listen({ host: '127.0.0.1', port: 18080 }, () => console.log('floor listening on 127.0.0.1:18080'));
process.on('SIGINT', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
