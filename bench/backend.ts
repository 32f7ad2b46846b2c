// Bare upstream for the benchmark: emulates the parts of a Ray Serve HTTP proxy that the
// bench drives, with as little CPU per request as node:http allows, so that the core it shares
// with the load generator is not the bottleneck. Not the simulator in src/sim/ (on purpose).
//
//   POST|GET /llm[?delay_ms=N]       -> consume the body, reply exactly 100 bytes of JSON (after N ms)
//   GET /llm/stream?n=400&i=25       -> text/event-stream, headers flushed at once,
//                                       n frames `data: {...}\n\n` every i ms, then `data: [DONE]\n\n`
//   GET /-/healthz                   -> 200 `success`
//   GET /-/routes                    -> {"/llm":"llm"}
//   GET /-/bench-stats[?reset=1]     -> {"in_flight","max_in_flight","served"} of /llm (counted here, at
//                                       the upstream: bench/workers.sh checks admission with it)
//
// Usage: node bench/backend.ts [--port 18000] [--host 127.0.0.1]
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';

const REPLY = Buffer.from(
  JSON.stringify({ id: 'bench-0000000000', object: 'text_completion', text: 'hello from the bench', n: 1 }).padEnd(100, ' '),
);
if (REPLY.length !== 100) throw new Error(`reply is ${REPLY.length} bytes, want 100`);
const REPLY_HEADERS = ['content-type', 'application/json', 'content-length', '100'];
const HEALTH = Buffer.from('success');
const ROUTES = Buffer.from('{"/llm":"llm"}');
const NOT_FOUND = Buffer.from('Path not found');
const DONE = 'data: [DONE]\n\n';
const MAX_FRAMES = 100_000;

function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  return v ?? dflt;
}

function intParam(q: URLSearchParams, name: string, dflt: number, max: number): number {
  const raw = q.get(name);
  if (raw === null) return dflt;
  const v = Number.parseInt(raw, 10);
  return Number.isFinite(v) && v >= 0 ? Math.min(v, max) : dflt;
}

let inFlight = 0;
let maxInFlight = 0;
let served = 0;

function small(req: IncomingMessage, res: ServerResponse, query: string): void {
  inFlight++;
  if (inFlight > maxInFlight) maxInFlight = inFlight;
  const delay = query === '' ? 0 : intParam(new URLSearchParams(query), 'delay_ms', 0, 60_000);
  const send = (): void => {
    inFlight--;
    served++;
    res.writeHead(200, REPLY_HEADERS);
    res.end(REPLY);
  };
  const reply = delay === 0 ? send : (): void => void setTimeout(send, delay);
  if (req.complete) {
    reply();
    return;
  }
  req.on('data', noop);
  req.on('end', reply);
}

function noop(): void {}

function stream(req: IncomingMessage, res: ServerResponse, query: string): void {
  const q = new URLSearchParams(query);
  const n = intParam(q, 'n', 400, MAX_FRAMES);
  const interval = intParam(q, 'i', 25, 60_000);
  req.resume();
  res.writeHead(200, ['content-type', 'text/event-stream', 'cache-control', 'no-cache']);
  res.flushHeaders();
  let sent = 0;
  const timer = setInterval(() => {
    if (sent < n) {
      res.write(`data: {"i":${sent},"token":"tok${sent % 10}"}\n\n`);
      sent++;
      if (sent < n) return;
    }
    clearInterval(timer);
    res.end(DONE);
  }, interval);
  res.on('close', () => clearInterval(timer));
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  const qi = url.indexOf('?');
  const path = qi < 0 ? url : url.slice(0, qi);
  if (path === '/llm') {
    small(req, res, qi < 0 ? '' : url.slice(qi + 1));
    return;
  }
  if (path === '/llm/stream') {
    stream(req, res, qi < 0 ? '' : url.slice(qi + 1));
    return;
  }
  req.resume();
  if (path === '/-/healthz') {
    res.writeHead(200, ['content-type', 'text/plain', 'content-length', String(HEALTH.length)]);
    res.end(HEALTH);
  } else if (path === '/-/bench-stats') {
    const body = JSON.stringify({ in_flight: inFlight, max_in_flight: maxInFlight, served });
    if (url.includes('reset=1')) maxInFlight = inFlight;
    res.writeHead(200, ['content-type', 'application/json']);
    res.end(body);
  } else if (path === '/-/routes') {
    res.writeHead(200, ['content-type', 'application/json', 'content-length', String(ROUTES.length)]);
    res.end(ROUTES);
  } else {
    res.writeHead(404, ['content-type', 'text/plain', 'content-length', String(NOT_FOUND.length)]);
    res.end(NOT_FOUND);
  }
}

const port = Number.parseInt(flag('--port', '18000'), 10);
const host = flag('--host', '127.0.0.1');
const server = http.createServer({ keepAliveTimeout: 90_000, requestTimeout: 0 }, handle);
server.headersTimeout = 60_000;
server.on('clientError', (_err, socket) => socket.destroy());
server.listen({ port, host, backlog: 4096 }, () => {
  process.stdout.write(`backend listening on http://${host}:${port} pid=${process.pid}\n`);
});
const stop = (): void => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
